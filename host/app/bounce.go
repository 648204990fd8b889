package app

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/wasmta/wasmta/host/bounce"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/route"
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
//
// When the DSN cannot be spooled (no spool space) the error goes back to the queue, which
// keeps the failed message and calls the hook again later (queue.Options.OnFailure).
func (a *App) bounceHook() func(*message.Message, queue.Failure) error {
	if !a.cfg.Bounce.Enabled {
		return nil
	}
	opt := a.dsnOptions()
	return func(m *message.Message, f queue.Failure) error {
		if !m.WantsFailureDSN() {
			return nil
		}
		bf := bounce.Failure{Msg: m, Expired: f.Type == logs.Expiration, Reply: f.Reply}
		if bf.Expired {
			bf.Reply = f.Last // the Expiration record's 551 5.4.7 is the relay's verdict; Last is why
		}
		return a.sendDSN(opt, bf, f.Peer)
	}
}

// relayedHook is the queue's OnRelayed when [bounce] enabled is true (nil otherwise): a
// message whose client asked for NOTIFY=SUCCESS went to a next hop without DSN, which will
// not report its delivery, so the sender gets a "relayed" DSN now (RFC 3461 §5.2.2). It is
// built, spooled and ordered like a failure DSN (see bounceHook).
func (a *App) relayedHook() func(*message.Message, queue.Relayed) {
	if !a.cfg.Bounce.Enabled {
		return nil
	}
	opt := a.dsnOptions()
	return func(m *message.Message, r queue.Relayed) {
		_ = a.sendDSN(opt, bounce.Failure{Msg: m, Relayed: true, Reply: r.Reply}, r.Peer) // logged there
	}
}

func (a *App) dsnOptions() bounce.Options {
	return bounce.Options{
		Hostname:        a.cfg.Hostname,
		MaxReturnedSize: int(a.cfg.Bounce.MaxReturnedSize),
		Tenant:          a.cfg.Bounce.Tenant,
	}
}

// sendDSN builds the DSN bf describes (peer: the host that gave its reply) and spools it. It
// returns the error of a DSN it could not spool; one it could not build (or a panic) is logged
// and not returned: trying again would not help.
func (a *App) sendDSN(opt bounce.Options, bf bounce.Failure, peer *route.Host) (err error) {
	m := bf.Msg
	// A failing notification must never disturb the record of the failure it reports.
	defer func() {
		if p := recover(); p != nil {
			a.diag.Error("panic while building a DSN", "id", m.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	now := time.Now()
	if peer != nil {
		bf.RemoteMTA = peer.Name
		if bf.RemoteMTA == "" {
			bf.RemoteMTA = peer.Addr.String()
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
	dsn, data, berr := bounce.New(opt, bf, body, now)
	if berr != nil {
		a.diag.Error("DSN not built", "id", m.ID, "err", berr)
		return nil
	}
	if err := a.queue.Submit([]*message.Message{dsn}, data); err != nil {
		if bf.Relayed {
			a.diag.Error("DSN not spooled", "id", m.ID, "dsn", dsn.ID, "err", err)
		}
		return err // a failure DSN: the queue logs it and tries again (queue.Options.OnFailure)
	}
	a.diag.Debug("DSN queued", "id", m.ID, "dsn", dsn.ID, "to", m.Sender)
	return nil
}
