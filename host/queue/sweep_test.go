package queue

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// A relay that has delivered to many sites does not keep a ready queue for each forever: once
// a queue has had nothing to do for readyIdleLimit it is dropped, and the next message for
// that site gets a fresh one and is delivered.
func TestIdleReadyQueuesAreDropped(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: time.Hour}, nil)
	first := h.submit(1)
	h.waitRecords("Delivery", first[0].ID, 1)
	listed := func() bool {
		h.m.readyMu.Lock()
		defer h.m.readyMu.Unlock()
		return h.m.ready["mx.site.test"] != nil
	}
	if !listed() {
		t.Fatal("no ready queue after a delivery")
	}
	h.clock.Advance(readyIdleLimit - 2*time.Minute) // the idle connection closes; still recent
	if n := h.m.sweepReady(h.clock.Now()); n != 0 {
		t.Fatalf("swept %d queue(s) used %v ago", n, readyIdleLimit-2*time.Minute)
	}
	// The once-a-minute sweep drops it after readyIdleLimit.
	for i := 0; i < 5 && listed(); i++ {
		h.clock.Advance(time.Minute)
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, func() bool { return !listed() }, "the idle ready queue to be dropped")
	if got := h.m.Summary().Ready; len(got) != 0 {
		t.Fatalf("summary still lists %+v", got)
	}
	second := h.submit(1)
	h.waitRecords("Delivery", second[0].ID, 1)
	if !listed() {
		t.Fatal("the next message's queue is not listed")
	}
}

// A queue that is pinned by a dispatch, holds a message or a connection, or has a rate slot
// booked ahead is never dropped: its replacement would start a fresh rate and let an event
// through early, or a message would go to a queue no longer listed.
func TestBusyReadyQueuesAreKept(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: time.Hour}, nil)
	h.waitRecords("Delivery", h.submit(1)[0].ID, 1)
	h.m.readyMu.Lock()
	rq := h.m.ready["mx.site.test"]
	h.m.readyMu.Unlock()
	later := h.clock.Now().Add(2 * readyIdleLimit)

	rq.mu.Lock()
	rq.usedAt = h.clock.Now().Add(-2 * readyIdleLimit)
	rq.msgRate = newBucket(abi.Rate{N: 1, Per: time.Hour})
	rq.mu.Unlock()
	rq.msgRate.reserve(later)
	rq.msgRate.reserve(later)    // the next slot is an hour after later
	h.clock.Advance(time.Minute) // past the idle connection's timeout
	eventually(t, func() bool { _, active := h.readyState(); return active == 0 }, "the idle connection to close")
	if n := h.m.sweepReady(later); n != 0 {
		t.Fatal("swept a queue with a rate slot booked ahead")
	}
	rq.mu.Lock()
	rq.msgRate = nil
	rq.mu.Unlock()
	rq.pins.Add(1) // a dispatch between readyQueue and push
	if n := h.m.sweepReady(later); n != 0 {
		t.Fatal("swept a pinned queue")
	}
	h.m.unpin(rq)
	if n := h.m.sweepReady(later); n != 1 {
		t.Fatalf("swept %d, want the now idle queue", n)
	}
}
