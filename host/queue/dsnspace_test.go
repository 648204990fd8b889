package queue

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/bounce"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/spool"
	"github.com/wasmta/wasmta/host/testutil"
)

// Below spool.min_free the DSN of a message that failed is refused for space like any new
// mail. Removing the failed message anyway lost the DSN for good: the sender never learned.
// As Postfix does, the failed message stays spooled (not attempted again, its Bounce record
// written once) and its DSN is retried with the usual backoff until space is back, then
// spooled and delivered once. The spool is real, on a tmpfs of its own filled with a ballast
// (the test needs root, as the spool's own space tests do).
func TestDSNRefusedForSpaceIsRetried(t *testing.T) {
	const reserve = 64 << 20
	fs := filepath.Join(t.TempDir(), "fs")
	testutil.MountTmpfs(t, fs, 256<<20)
	sp, err := spool.OpenContext(context.Background(), spool.Options{Path: filepath.Join(fs, "spool"), MinFree: reserve})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	var h *harness
	h = newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.Store = sp
		// What the relay's bounce hook does (host/app): build the DSN, spool it like any mail.
		o.OnFailure = func(m *message.Message, f Failure) error {
			body, err := sp.Body(m)
			if err != nil {
				t.Errorf("body of the failed message: %v", err)
			}
			dsn, data, err := bounce.New(bounce.Options{Hostname: "relay.test"}, bounce.Failure{Msg: m, Reply: f.Reply}, body, h.clock.Now())
			if err != nil {
				t.Error(err)
				return nil
			}
			return h.m.Submit([]*message.Message{dsn}, data)
		}
	})
	gate := make(chan struct{})
	var open sync.Once
	t.Cleanup(func() { open.Do(func() { close(gate) }) }) // before the harness stops: nothing stays stuck
	h.dialer.send = func(_ *fakeConn, rcpt string) (message.Reply, error) {
		if rcpt == "a@sender.test" { // the DSN, to the failed message's sender
			return message.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}, nil
		}
		<-gate
		return message.Reply{}, message.Errorf(550, "5.1.1", "no such user")
	}
	msg := h.submit(1)[0]
	eventually(t, func() bool { _, _, _, sending := h.dialer.stats(); return sending == 1 }, "the attempt under way")
	ballast := testutil.Ballast(t, fs, "ballast", reserve-4<<20) // below the reserve: deliveries go on, new mail is refused
	eventually(t, func() bool { return sp.Room(0) != nil }, "the spool to refuse new mail for space")
	open.Do(func() { close(gate) }) // the attempt fails for good: 550

	h.waitRecords("Bounce", msg.ID, 1)
	eventually(t, func() bool { return h.m.timers.Len() == 1 || h.m.Stats().Queued == 0 }, "the failed message held or gone")
	if err := sp.Flush(); err != nil {
		t.Fatal(err)
	}
	kept, err := sp.Get(msg.ID)
	if err != nil {
		t.Fatalf("the failed message left the spool while its DSN was refused for space (the DSN is lost): %v", err)
	}
	if kept.Failed == nil || kept.Failed.Type != "Bounce" || kept.Failed.Reply.Code != 550 {
		t.Fatalf("the held message's record: %+v", kept.Failed)
	}
	if !strings.Contains(h.diag.String(), "delivery status notification not spooled") {
		t.Fatalf("the refused DSN not reported:\n%s", h.diag.String())
	}

	// While space stays short the DSN is retried and refused again, with nothing new logged.
	h.clock.Advance(2 * time.Minute)
	eventually(t, func() bool {
		m, err := sp.Get(msg.ID)
		return err == nil && m.Failed != nil && m.Failed.Notices == 2
	}, "a second refused DSN")

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return sp.Room(1<<20) == nil }, "space back")
	h.clock.Advance(5 * time.Minute)
	dsns := func() []map[string]any {
		var out []map[string]any
		for _, r := range h.records("Delivery", "") {
			if r["recipient"] == "a@sender.test" {
				out = append(out, r)
			}
		}
		return out
	}
	eventually(t, func() bool { return len(dsns()) > 0 }, "the DSN delivered to the sender")
	eventually(t, func() bool { return h.m.Stats().Queued == 0 }, "the queue empty")
	eventually(t, func() bool { _, err := sp.Get(msg.ID); return err == message.ErrNotInSpool },
		"the failed message out of the spool once its DSN is (its delete follows the queue's count)")
	if n := len(dsns()); n != 1 {
		t.Fatalf("%d DSNs delivered, want 1", n)
	}
	if n := len(h.records("Bounce", msg.ID)); n != 1 {
		t.Fatalf("%d Bounce records for the failed message, want 1", n)
	}
	if s := h.m.Stats(); s.Bounced != 1 || s.Delivered != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A message held for its DSN is marked in its record, so that after a restart it is not
// attempted again: only its DSN is, with the failure it reports. One whose mark reached the
// disk but whose Bounce record did not (a crash in between: Logged unset) gets its record then,
// once.
func TestHeldForDSNAcrossRestart(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	var h *harness
	var f failures
	h = newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.Store = sp
		o.OnFailure = func(m *message.Message, fl Failure) error {
			f.mu.Lock()
			f.got = append(f.got, fl)
			f.mu.Unlock()
			return nil
		}
	})
	now := h.clock.Now()
	held := &message.Message{ID: message.NewID(now), Sender: "a@sender.test", Recipient: "r@site.test", Queue: "site.test",
		Created: now, Due: now, Attempts: 1, Protocol: "ESMTP",
		Failed: &message.Failed{Type: "Bounce", Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"},
			Site: "mx.site.test", PeerName: "mx.site.test", PeerAddr: "192.0.2.1", Notices: 3, Logged: true}}
	unlogged := &message.Message{ID: message.NewID(now.Add(time.Nanosecond)), Sender: "a@sender.test", Recipient: "u@site.test", Queue: "site.test",
		Created: now, Due: now, Attempts: 1, Protocol: "ESMTP",
		Failed: &message.Failed{Type: "Bounce", Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"},
			Site: "mx.site.test", PeerName: "mx.site.test", PeerAddr: "192.0.2.1", Notices: 1}}
	if err := sp.Put([]*message.Message{held, unlogged}, []byte("Subject: t\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := sp.ScanSched(func(s message.Sched) error { h.m.RecoverSched(s); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second)
	eventually(t, func() bool { return h.m.Stats().Queued == 0 }, "the held message's DSN sent")
	got, _ := f.all()
	if len(got) == 2 && got[0].Reply.Code == 550 && got[1].Reply.Code == 550 {
		got = got[:1] // the same failure for both; the first is checked
	}
	if len(got) != 1 || got[0].Type != "Bounce" || got[0].Reply.Code != 550 || got[0].Site != "mx.site.test" ||
		got[0].Peer == nil || got[0].Peer.Name != "mx.site.test" || got[0].Peer.Addr.String() != "192.0.2.1" {
		t.Fatalf("OnFailure calls %+v", got)
	}
	if c, _, _, _ := h.dialer.stats(); c != 0 {
		t.Fatalf("%d connections for a message that had already failed", c)
	}
	if recs := h.records("", held.ID); len(recs) != 0 {
		t.Fatalf("records for the held message after the restart: %v", recs)
	}
	recs := h.records("", unlogged.ID)
	if len(recs) != 1 || recs[0]["type"] != "Bounce" || recs[0]["recipient"] != "u@site.test" {
		t.Fatalf("records for the message whose Bounce record a crash lost: %v, want its Bounce once", recs)
	}
	eventually(t, func() bool { _, err := sp.Get(held.ID); return err == message.ErrNotInSpool }, "the held message out of the spool")
}
