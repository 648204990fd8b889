package queue

import (
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
