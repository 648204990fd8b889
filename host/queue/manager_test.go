package queue

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

var week = 7 * 24 * time.Hour

// Retries wait retry_interval, then twice as long each time, capped by max_retry_interval; the
// retry timer does not fire a moment early; the attempt after the last failure delivers.
func TestRetryBackoff(t *testing.T) {
	cfg := Config{RetryInterval: 20 * time.Minute, MaxRetryInterval: time.Hour, MaxAge: week}
	h := newHarness(t, cfg, nil)
	var attempts atomic.Int32
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		if attempts.Add(1) <= 3 {
			return message.Reply{}, errTemp
		}
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	msg := h.submit(1)[0]
	last := h.clock.Now()
	for i, want := range []time.Duration{20 * time.Minute, 40 * time.Minute, time.Hour} {
		h.waitRecords("TransientFailure", msg.ID, i+1)
		var stored message.Message
		eventually(t, func() bool { stored, _ = h.store.get(msg.ID); return stored.Attempts == i+1 }, "attempt %d in the spool", i+1)
		wait := stored.Due.Sub(last)
		if j := min(cfg.RetryInterval/20, time.Minute) / 2; wait < want-j || wait > want+j {
			t.Fatalf("retry %d after %s, want %s ± %s", i+1, wait, want, j)
		}
		// The heap's timer is armed for the due time; one second before it, nothing runs.
		eventually(t, func() bool { return h.clock.pending(stored.Due) }, "retry timer at %s", stored.Due)
		h.clock.AdvanceTo(stored.Due.Add(-time.Second))
		if n := attempts.Load(); n != int32(i+1) {
			t.Fatalf("attempt %d ran early", n)
		}
		if !h.clock.pending(stored.Due) {
			t.Fatal("retry timer fired early")
		}
		h.clock.AdvanceTo(stored.Due)
		last = stored.Due
	}
	rec := h.waitRecords("Delivery", msg.ID, 1)[0]
	if rec["num_attempts"] != 3.0 {
		t.Fatalf("delivery record: %v", rec)
	}
	eventually(t, func() bool { return h.store.len() == 0 }, "the delivered message out of the spool") // deleted after its record
	if s := h.m.Stats(); s.Delivered != 1 || s.Transient != 3 || s.Queued != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A message whose next attempt would fall after max_age expires (551 5.4.7) after the record of
// the failure that ended it; one recovered already too old expires without a connection.
func TestExpiry(t *testing.T) {
	cfg := Config{RetryInterval: 40 * time.Minute, MaxAge: time.Hour}
	h := newHarness(t, cfg, nil)
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) { return message.Reply{}, errTemp }
	msg := h.submit(1)[0]
	h.waitRecords("TransientFailure", msg.ID, 1)
	var stored message.Message
	eventually(t, func() bool { stored, _ = h.store.get(msg.ID); return stored.Attempts == 1 }, "first failure in the spool")
	eventually(t, func() bool { return h.clock.pending(stored.Due) }, "retry timer")
	h.clock.AdvanceTo(stored.Due)
	rec := h.waitRecords("Expiration", msg.ID, 1)[0]
	resp := rec["response"].(map[string]any)
	if resp["code"] != 551.0 || !strings.Contains(resp["content"].(string), "max_age=1h0m0s") {
		t.Fatalf("expiration record: %v", rec)
	}
	if n := len(h.records("TransientFailure", msg.ID)); n != 2 {
		t.Fatalf("%d TransientFailure records, want 2", n)
	}
	eventually(t, func() bool { _, ok := h.store.get(msg.ID); return !ok }, "the expired message out of the spool") // deleted after its record

	connects, _, _, _ := h.dialer.stats()
	old := &message.Message{ID: "00000000000000000000000000000001", Sender: "a@sender.test", Recipient: "old@site.test",
		Queue: "site.test", Created: h.clock.Now().Add(-2 * time.Hour), Due: h.clock.Now().Add(-time.Hour)}
	h.store.Update(old)
	h.m.Recover(old)
	h.waitRecords("Expiration", old.ID, 1)
	if c, _, _, _ := h.dialer.stats(); c != connects {
		t.Fatal("an expired message opened a connection")
	}
	if s := h.m.Stats(); s.Expired != 2 || s.Queued != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Never more than connection_limit connections to a site, however many messages wait; the
// waiting ones share the open connections.
func TestConnectionLimit(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) { o.ConnectionLimit = 2 })
	gate := make(chan struct{})
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		<-gate
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	msgs := h.submit(10)
	eventually(t, func() bool {
		items, active := h.readyState()
		_, _, _, sending := h.dialer.stats()
		return items == 8 && active == 2 && sending == 2
	}, "2 sends in progress and 8 waiting")
	if c, _, _, _ := h.dialer.stats(); c != 2 {
		t.Fatalf("%d connections for a limit of 2", c)
	}
	close(gate)
	for _, m := range msgs {
		h.waitRecords("Delivery", m.ID, 1)
	}
	if c, _, maxOpen, _ := h.dialer.stats(); c != 2 || maxOpen != 2 {
		t.Fatalf("%d connections, %d at once; want 2 and 2", c, maxOpen)
	}
}

// A connection carries at most max_deliveries_per_connection messages, then a new one opens.
func TestMaxDeliveriesPerConnection(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.ConnectionLimit = 1
		o.MaxDeliveriesPerConnection = 3
	})
	msgs := h.submit(7)
	for _, m := range msgs {
		h.waitRecords("Delivery", m.ID, 1)
	}
	// The fake clock never lets the connection idle out, so only the limit closes it.
	c, _, maxOpen, _ := h.dialer.stats()
	if c != 3 || maxOpen != 1 {
		t.Fatalf("%d connections (%d at once), want 3 (1)", c, maxOpen)
	}
	h.dialer.mu.Lock()
	defer h.dialer.mu.Unlock()
	for i, conn := range h.dialer.conns {
		if n := conn.Sent(); n > 3 {
			t.Fatalf("connection %d carried %d messages", i, n)
		}
	}
}

// When every host of the site fails, every message waiting for the site fails with it, after
// one connection attempt, not one each.
func TestConnectFailureDrainsReadyQueue(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) { o.ConnectionLimit = 1 })
	release := make(chan struct{})
	h.dialer.connect = func(int) error {
		<-release
		return message.Errorf(451, "4.4.1", "no answer from any host of the site")
	}
	msgs := h.submit(5)
	eventually(t, func() bool { items, _ := h.readyState(); return items == 4 }, "4 messages waiting behind the connect")
	close(release)
	for _, m := range msgs {
		rec := h.waitRecords("TransientFailure", m.ID, 1)[0]
		if rec["response"].(map[string]any)["code"] != 451.0 {
			t.Fatalf("record %v", rec)
		}
	}
	if c, _, _, _ := h.dialer.stats(); c != 1 {
		t.Fatalf("%d connection attempts, want 1", c)
	}
	if items, active := h.readyState(); items != 0 || active != 0 {
		t.Fatalf("ready queue left with %d items, %d workers", items, active)
	}
}

// Stop lets the send in progress finish; when its context ends first, it aborts the connection
// and the message becomes a transient failure in the spool. Either way nothing runs after Stop
// returns, and waiting messages stay in the spool.
func TestStop(t *testing.T) {
	for _, abort := range []bool{false, true} {
		name := map[bool]string{false: "finish", true: "abort"}[abort]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, nil)
			inSend, release := make(chan *fakeConn, 1), make(chan struct{})
			h.dialer.send = func(c *fakeConn, _ string) (message.Reply, error) {
				inSend <- c
				select {
				case <-release:
					return message.Reply{Code: 250, Text: "ok"}, nil
				case <-c.aborted:
					return message.Reply{}, message.Errorf(451, "4.4.2", "connection lost")
				}
			}
			waiting := &message.Message{ID: "00000000000000000000000000000002", Sender: "a@sender.test", Recipient: "later@site.test",
				Queue: "site.test", Created: h.clock.Now(), Due: h.clock.Now().Add(time.Hour)}
			h.store.Update(waiting)
			h.m.Recover(waiting)
			msg := h.submit(1)[0]
			conn := <-inSend

			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() { h.m.Stop(ctx); close(stopped) }()
			if abort {
				cancel()
			} else {
				defer cancel()
				close(release)
			}
			<-stopped
			want := map[bool]string{false: "Delivery", true: "TransientFailure"}[abort]
			if n := len(h.records(want, msg.ID)); n != 1 {
				t.Fatalf("%d %s records when Stop returned", n, want)
			}
			select {
			case <-conn.aborted:
				if !abort {
					t.Fatal("connection aborted although the send finished in time")
				}
			default:
				if abort {
					t.Fatal("connection not aborted")
				}
			}
			if _, ok := h.store.get(msg.ID); ok == !abort {
				t.Fatalf("in spool after Stop: %v", ok)
			}
			// The waiting message stays in the spool, and its time coming changes nothing.
			h.clock.Advance(2 * time.Hour)
			if c, _, _, _ := h.dialer.stats(); c != 1 {
				t.Fatalf("%d connections after Stop", c)
			}
			if m, ok := h.store.get(waiting.ID); !ok || m.Attempts != 0 {
				t.Fatalf("waiting message: %+v %v", m, ok)
			}
		})
	}
}

// A failed spool delete is logged and counted: the message would come back after a restart.
func TestDeleteFailureLoggedAndCounted(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, nil)
	h.store.deleteErr = errors.New("disk on fire")
	msg := h.submit(1)[0]
	h.waitRecords("Delivery", msg.ID, 1)
	eventually(t, func() bool { return h.m.Stats().DeleteFailures == 1 }, "DeleteFailures == 1")
	if d := h.diag.String(); !strings.Contains(d, "spool delete failed") || !strings.Contains(d, "disk on fire") || !strings.Contains(d, string(msg.ID)) {
		t.Fatalf("diagnostics:\n%s", d)
	}
}

// A panic in a delivery (from the dialer or the connection) or in a dispatch (from the
// resolver) fails that message transiently with a retry, goes to diagnostics with its stack,
// and the manager goes on delivering.
func TestPanicFailsMessageTransiently(t *testing.T) {
	for _, where := range []string{"Send", "Connect", "Resolve"} {
		t.Run(where, func(t *testing.T) {
			var panics atomic.Int32
			boom := func() {
				if panics.Add(1) == 1 {
					panic("injected panic in " + where)
				}
			}
			h := newHarness(t, Config{RetryInterval: 10 * time.Minute, MaxAge: week}, func(o *Options) {
				if where == "Resolve" {
					o.Resolver = resolverFunc(func() { boom() })
				}
			})
			switch where {
			case "Send":
				h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
					boom()
					return message.Reply{Code: 250, Text: "ok"}, nil
				}
			case "Connect":
				h.dialer.connect = func(int) error { boom(); return nil }
			}
			msg := h.submit(1)[0]
			rec := h.waitRecords("TransientFailure", msg.ID, 1)[0]
			resp := rec["response"].(map[string]any)
			if resp["code"] != 451.0 || resp["content"] != "internal error during delivery" {
				t.Fatalf("record: %v", rec)
			}
			d := h.diag.String()
			if !strings.Contains(d, "injected panic in "+where) || !strings.Contains(d, "goroutine ") || !strings.Contains(d, "TestPanicFailsMessageTransiently") {
				t.Fatalf("diagnostics lack the panic and its stack:\n%s", d)
			}
			if h.m.Stats().Panics != 1 {
				t.Fatalf("stats %+v", h.m.Stats())
			}
			if where == "Send" {
				h.dialer.mu.Lock()
				aborted := h.dialer.conns[0].aborted
				h.dialer.mu.Unlock()
				<-aborted // the connection in an unknown state is dropped, not reused
			}
			var stored message.Message
			eventually(t, func() bool { stored, _ = h.store.get(msg.ID); return stored.Attempts == 1 }, "retry in the spool")
			eventually(t, func() bool { return h.clock.pending(stored.Due) }, "retry timer")
			h.clock.AdvanceTo(stored.Due)
			h.waitRecords("Delivery", msg.ID, 1)
		})
	}
}

type resolverFunc func()

func (f resolverFunc) Resolve(ctx context.Context, d string, mx []route.MXEntry) (route.Site, error) {
	f()
	return oneSite{}.Resolve(ctx, d, mx)
}
