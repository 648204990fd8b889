package queue

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// Admin readers (inspect, the queue listing, the summary) and rebinds run while connections
// attempt the very messages they look at; each attempt fails once, then delivers. Every message
// ends delivered exactly once, and nothing races (run with -race).
func TestAdminDuringAttemptsRace(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: time.Hour}, nil)
	var seen sync.Map
	var sending atomic.Int32
	h.dialer.send = func(_ *fakeConn, rcpt string) (message.Reply, error) {
		sending.Add(1)
		defer sending.Add(-1)
		time.Sleep(100 * time.Microsecond) // long enough for the readers to meet the attempt
		if _, again := seen.LoadOrStore(rcpt, true); !again {
			return message.Reply{}, errTemp
		}
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var sawDelivering atomic.Bool
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			msgs, _ := h.m.Messages("site.test", 1000)
			for _, q := range msgs {
				if q.State == StateDelivering {
					sawDelivering.Store(true)
					if got, ok := h.m.Inspect(q.ID); ok && got.Recipient != q.Recipient {
						t.Errorf("inspect %s: %+v", q.ID, got)
					}
				}
			}
			h.m.Summary()
			if _, err := h.m.Rebind(RebindRequest{Reason: "flush", AlwaysFlush: true, SuppressLogging: true}); err != nil {
				t.Error(err)
			}
		}
	}()
	var msgs []*message.Message
	for range 20 {
		msgs = append(msgs, h.submit(5)...)
	}
	want := map[message.ID]string{}
	for _, m := range msgs {
		want[m.ID] = "Delivery"
	}
	h.waitAll(want)
	close(stop)
	readers.Wait()
	eventually(t, func() bool { return h.m.Stats().Queued == 0 }, "every message to end")
	if n := len(h.records("Delivery", "")); n != len(msgs) {
		t.Fatalf("%d deliveries of %d messages", n, len(msgs))
	}
	if !sawDelivering.Load() {
		t.Log("no reader met an attempt in flight this run")
	}
}

// A message being attempted keeps at most MaxFlightRebinds rebinds; the rest leave it alone
// and say so (in_flight 0). When the attempt fails, the kept ones are applied in order.
func TestFlightRebindsAreBounded(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	release := make(chan struct{})
	var attempts atomic.Int32
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		if attempts.Add(1) == 1 {
			<-release
			return message.Reply{}, errTemp
		}
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	msg := h.submit(1)[0]
	eventually(t, func() bool { _, _, _, sending := h.dialer.stats(); return sending == 1 }, "the attempt to start")
	for i := range MaxFlightRebinds + 3 {
		res, err := h.m.Rebind(RebindRequest{Reason: "r", Data: map[string]string{"n": fmt.Sprint(i)}, AlwaysFlush: true, SuppressLogging: true})
		want := 1
		if i >= MaxFlightRebinds {
			want = 0
		}
		if err != nil || res.InFlight != want || res.Matched != 0 {
			t.Fatalf("rebind %d: %+v %v, want in_flight %d", i, res, err, want)
		}
	}
	close(release)
	h.waitRecords("Delivery", msg.ID, 1)
	stored := h.records("Delivery", msg.ID)[0]
	if meta, _ := stored["meta"].(map[string]any); meta["n"] != fmt.Sprint(MaxFlightRebinds-1) {
		t.Fatalf("meta after the kept rebinds: %v", stored["meta"])
	}
}

// flightRebindHarness submits one message whose first connection waits for release, so that
// it is in flight while the test rebinds it (one kept rebind, data and a flush, logged), and
// returns the message and release. The rebind, applied when the attempt fails, makes the
// message due at once; without it the retry would wait an hour of a clock that never moves.
func flightRebindHarness(t *testing.T, connect func(n int) error) (*harness, *message.Message, chan struct{}) {
	t.Helper()
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	release := make(chan struct{})
	h.dialer.connect = func(n int) error {
		if n == 1 {
			<-release
		}
		return connect(n)
	}
	msg := h.submit(1)[0]
	eventually(t, func() bool { q, ok := h.m.Inspect(msg.ID); return ok && q.State == StateDelivering }, "the attempt to start")
	res, err := h.m.Rebind(RebindRequest{Reason: "moved by hand", Data: map[string]string{"tag": "x"}, AlwaysFlush: true})
	if err != nil || res.InFlight != 1 {
		t.Fatalf("rebind: %+v %v, want in_flight 1", res, err)
	}
	return h, msg, release
}

// A rebind asked for during an attempt that fails because the spool could not read the body
// for now (a transient 451) is applied when the attempt ends, as for any temporary failure:
// the operator was told in_flight 1.
func TestFlightRebindSurvivesBodyReadFailure(t *testing.T) {
	h, msg, release := flightRebindHarness(t, func(int) error { return nil })
	h.store.mu.Lock()
	h.store.bodyErrs = []error{fmt.Errorf("disk hiccup")}
	h.store.mu.Unlock()
	close(release)
	h.waitRecords("TransientFailure", msg.ID, 1)
	h.waitRecords("AdminRebind", msg.ID, 1)
	d := h.waitRecords("Delivery", msg.ID, 1)[0]
	if meta, _ := d["meta"].(map[string]any); meta["tag"] != "x" {
		t.Fatalf("meta of the delivered message: %v", d["meta"])
	}
}

// A rebind asked for during an attempt that ends in a panic (here in the dialer) is applied
// when the panic is turned into a temporary failure, not dropped with the flight.
func TestFlightRebindSurvivesPanic(t *testing.T) {
	h, msg, release := flightRebindHarness(t, func(n int) error {
		if n == 1 {
			panic("injected panic in connect")
		}
		return nil
	})
	close(release)
	h.waitRecords("TransientFailure", msg.ID, 1)
	h.waitRecords("AdminRebind", msg.ID, 1)
	d := h.waitRecords("Delivery", msg.ID, 1)[0]
	if meta, _ := d["meta"].(map[string]any); meta["tag"] != "x" {
		t.Fatalf("meta of the delivered message: %v", d["meta"])
	}
	if q, ok := h.m.Inspect(msg.ID); ok {
		t.Fatalf("delivered message still listed: %+v", q)
	}
}
