package queue

import (
	"runtime"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// Messages that arrive together while one connection is idle: the idle connection takes one
// and new connections open for the others (ConnectionLimit allowing). A push once counted a
// connection as idle until it woke, so every message arriving before the woken one took its
// own saw "a connection is idle" and opened none: a burst after a quiet spell went out one
// by one on the single connection that had been waiting.
func TestBurstOpensConnectionsBesideTheIdleOne(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, nil)
	first := h.submit(1)[0]
	h.waitRecords("Delivery", first.ID, 1)
	h.m.readyMu.Lock()
	rq := h.m.ready["mx.site.test"]
	h.m.readyMu.Unlock()
	idle := func() int { rq.mu.Lock(); defer rq.mu.Unlock(); return rq.idle }
	eventually(t, func() bool { return idle() == 1 }, "the connection idle")

	gate := make(chan struct{})
	defer close(gate)
	h.dialer.mu.Lock()
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		<-gate
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	h.dialer.mu.Unlock()
	now := h.clock.Now()
	var items []*item
	for i := range 3 {
		msg := &message.Message{ID: message.NewID(now.Add(time.Duration(i + 100))), Sender: "a@sender.test",
			Recipient: "burst@site.test", Queue: "site.test", Created: now, Due: now}
		if err := h.store.PutBatches([]message.Batch{{Msgs: []*message.Message{msg}, Body: []byte("Subject: t\r\n\r\nhi\r\n")}}); err != nil {
			t.Fatal(err)
		}
		items = append(items, &item{msg: msg, cfg: Config{RetryInterval: time.Minute, MaxAge: week}})
	}
	// The three arrive before the woken connection runs (one P: it runs when this goroutine
	// lets it), as a burst of dispatches does on a busy relay.
	prev := runtime.GOMAXPROCS(1)
	for _, it := range items {
		rq.push(it)
	}
	runtime.GOMAXPROCS(prev)
	eventually(t, func() bool { _, _, _, sending := h.dialer.stats(); return sending == 3 }, "three sends at once")
}
