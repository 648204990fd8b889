package app

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/wasmta/wasmta/host/bounce"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/queue"
)

// bounceHook is the queue's OnFailure when [bounce] enabled is true (nil otherwise): it sends
// the sender of a bounced or expired message a delivery status notification (host/bounce).
//
// It runs on the queue goroutine that ended the message, before the message leaves the spool:
// the body is read from there, and the DSN is spooled (synced) by the normal Submit path
// before the original's entry is deleted, so a crash in between sends the DSN twice rather
// than never. Submit queues it like any mail: its queue is the sender's domain (with
// bounce.tenant when set), so get_queue_config applies. A DSN has the null sender, so its own
// failure only logs a Bounce or Expiration record (message.WantsFailureDSN).
func (a *App) bounceHook() func(*message.Message, queue.Failure) {
	if !a.cfg.Bounce.Enabled {
		return nil
	}
	opt := bounce.Options{
		Hostname:        a.cfg.Hostname,
		MaxReturnedSize: int(a.cfg.Bounce.MaxReturnedSize),
		Tenant:          a.cfg.Bounce.Tenant,
	}
	return func(m *message.Message, f queue.Failure) {
		// A failing notification must never disturb the record of the failure it reports.
		defer func() {
			if p := recover(); p != nil {
				a.diag.Error("panic while building a DSN", "id", m.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
		}()
		if !m.WantsFailureDSN() {
			return
		}
		now := time.Now()
		bf := bounce.Failure{Msg: m, Expired: f.Type == logs.Expiration, Reply: f.Reply}
		if bf.Expired {
			bf.Reply = f.Last // the Expiration record's 551 5.4.7 is the relay's verdict; Last is why
		}
		if f.Peer != nil {
			bf.RemoteMTA = f.Peer.Name
			if bf.RemoteMTA == "" {
				bf.RemoteMTA = f.Peer.Addr.String()
			}
		}
		if bf.Reply.Code != 0 {
			bf.LastAttempt = now
		}
		body, err := a.spool.Body(m)
		if err != nil {
			a.diag.Warn("DSN sent without the original message: its body is unreadable", "id", m.ID, "err", err)
			body = nil
		}
		dsn, data, err := bounce.New(opt, bf, body, now)
		if err != nil {
			a.diag.Error("DSN not built", "id", m.ID, "err", err)
			return
		}
		if err := a.queue.Submit([]*message.Message{dsn}, data); err != nil {
			a.diag.Error("DSN not spooled", "id", m.ID, "dsn", dsn.ID, "err", err)
			return
		}
		a.diag.Debug("DSN queued", "id", m.ID, "dsn", dsn.ID, "to", m.Sender)
	}
}
