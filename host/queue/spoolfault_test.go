package queue

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/spool"
)

// failingSpool opens a real spool whose syncs fail, the way a disk does, once fail is set.
func failingSpool(t *testing.T, dir string, diag *syncBuffer) (*spool.Spool, *atomic.Bool) {
	t.Helper()
	fail := new(atomic.Bool)
	sp, err := spool.OpenContext(context.Background(), spool.Options{
		Path: dir, Log: slog.New(slog.NewTextHandler(diag, nil)),
		WrapSync: func(sync func() error) func() error {
			return func() error {
				if fail.Load() {
					return errors.New("input/output error")
				}
				return sync()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp, fail
}

// Once a spool write has failed, the spool refuses every delete until a restart: a message
// delivered from then on stays spooled and is delivered again after the restart. So the queue
// must stop delivering: the messages stay queued (no attempt, no record per message), the
// failure is logged once at error level, and all of them are still in the spool, unchanged,
// for the restart.
func TestSpoolFailureStopsDeliveries(t *testing.T) {
	dir := t.TempDir()
	var spoolDiag syncBuffer
	sp, fail := failingSpool(t, dir, &spoolDiag)
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, func(o *Options) { o.Store = sp })
	var refuse atomic.Bool
	refuse.Store(true)
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		if refuse.Load() {
			return message.Reply{}, errTemp
		}
		return message.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}, nil
	}
	msgs := h.submit(5)
	for _, m := range msgs {
		h.waitRecords("TransientFailure", m.ID, 1)
	}
	eventually(t, func() bool { return h.m.timers.Len() == len(msgs) }, "every message waiting for its retry")
	if err := sp.Flush(); err != nil { // the retries' updates are on disk
		t.Fatal(err)
	}

	fail.Store(true)
	if err := sp.Flush(); err == nil {
		t.Fatal("a flush whose sync failed succeeded")
	}
	refuse.Store(false)
	h.clock.Advance(2 * time.Hour) // every message comes due
	eventually(t, func() bool {
		return strings.Contains(h.diag.String(), "deliveries stopped") || len(h.records("Delivery", "")) > 0 ||
			h.m.Stats().DeleteFailures > 0
	}, "the queue to notice the failed spool")
	if recs := h.records("Delivery", ""); len(recs) > 0 {
		t.Fatalf("%d messages delivered after the spool failed (each is delivered again after the restart)", len(recs))
	}
	eventually(t, func() bool { return h.m.timers.Len() == len(msgs) }, "the due messages back in the queue")
	if n := len(h.records("TransientFailure", "")); n != len(msgs) {
		t.Fatalf("%d TransientFailure records, want the %d from before the failure", n, len(msgs))
	}
	if s := h.m.Stats(); s.Queued != int64(len(msgs)) || s.Transient != int64(len(msgs)) || s.DeleteFailures != 0 {
		t.Fatalf("stats after the failure: %+v", s)
	}
	if n := strings.Count(h.diag.String(), "deliveries stopped"); n != 1 {
		t.Fatalf("deliveries stopped noted %d times, want once:\n%s", n, h.diag.String())
	}
	if n := strings.Count(spoolDiag.String(), "level=ERROR"); n != 1 {
		t.Fatalf("the spool failure logged %d times at error level, want once:\n%s", n, spoolDiag.String())
	}
	if err := sp.Failed(); err == nil {
		t.Fatal("spool not marked failed")
	}

	// After a restart every message is there, its attempts as they were before the failure.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.m.Stop(ctx)
	sp.Close()
	again, err := spool.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	found := 0
	if err := again.Scan(func(m *message.Message) error {
		found++
		if m.Attempts != 1 {
			t.Errorf("%s: %d attempts after the restart, want 1", m.ID, m.Attempts)
		}
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if found != len(msgs) {
		t.Fatalf("%d messages in the spool after the restart, want %d", found, len(msgs))
	}
}

// A record whose scheduling fields read at start-up but whose whole record does not (a field of
// the wrong type) used to be read again every minute for ever, with an error each time, and
// never expired. It is set aside once, with one error naming its id, and the other messages
// are delivered.
func TestUnreadableRecordSetAsideOnce(t *testing.T) {
	dir := t.TempDir()
	now := newFakeClock().Now() // the harness's clock starts there too
	good := &message.Message{ID: message.NewID(now), Sender: "a@sender.test", Recipient: "r@site.test",
		Queue: "site.test", Created: now, Due: now, Protocol: "ESMTP", Meta: map[string]string{"tenant": "t"}}
	bad := *good
	bad.ID = message.NewID(now.Add(time.Millisecond))
	bad.Recipient = "damaged@site.test"
	{
		sp, err := spool.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Put([]*message.Message{good, &bad}, []byte("Subject: t\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		sp.Close()
	}
	// Damage the record's meta: a number where a string belongs.
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("m/" + bad.ID))
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		damaged := strings.Replace(string(v), `"tenant":"t"`, `"tenant":1`, 1)
		if damaged == string(v) {
			t.Fatalf("record without the tenant to damage: %s", v)
		}
		return txn.Set([]byte("m/"+bad.ID), []byte(damaged))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	sp, err := spool.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) { o.Store = sp })
	if err := sp.ScanSched(func(s message.Sched) error { h.m.RecoverSched(s); return nil },
		func(key []byte, err error) { t.Errorf("start-up scan could not read %s: %v", key, err) }); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second) // the recovered messages come due
	h.waitRecords("Delivery", good.ID, 1)
	for range 5 { // five minutes: a record retried every minute would be read five more times
		h.clock.Advance(time.Minute)
	}
	eventually(t, func() bool { return h.m.Stats().Queued == 0 }, "the damaged message out of the queue (queued %d)", h.m.Stats().Queued)
	if n := strings.Count(h.diag.String(), string(bad.ID)); n != 1 {
		t.Fatalf("the damaged record named %d times in the diagnostics, want once:\n%s\n%v", n, h.diag.String(), h.records("", ""))
	}
	if !strings.Contains(h.diag.String(), "level=ERROR") {
		t.Fatalf("the damaged record not reported at error level:\n%s", h.diag.String())
	}
	if _, err := sp.Get(bad.ID); !errors.Is(err, message.ErrNotInSpool) {
		t.Fatalf("the damaged record is still scheduled in the spool: %v", err)
	}
	if recs := h.records("", bad.ID); len(recs) != 0 {
		t.Fatalf("log records for the damaged message: %v", recs)
	}
}
