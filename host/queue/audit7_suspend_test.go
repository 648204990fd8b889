package queue

import (
	"testing"
	"time"
)

// Messages that waited for their queue's max_message_rate and came due while their queue was
// suspended book a new slot when the suspension runs out: the slots they had are past. They
// once kept them, so at the end of the suspension every such message went at once, past the
// rate (a resume, which books again, did not have the problem).
func TestSuspendedMessagesKeepToTheRate(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week, MaxMessageRate: rate(t, "1/s")}, nil)
	throttled := func() int64 { return h.m.Stats().Throttled }
	// t=0: one goes; the others get the slots at 1 s, 2 s and 3 s.
	h.submit(4)
	eventually(t, func() bool { return h.deliveredCount() == 1 && throttled() == 3 }, "one delivery, three waiting for their slots")
	r, err := h.m.Suspend(RuleRequest{Reason: "maintenance", Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Each comes due at its slot and is held by the suspension.
	for i := 1; i <= 3; i++ {
		h.clock.Advance(time.Second)
		eventually(t, func() bool { return h.heldBySuspension(r.Expires) == i }, "%d held by the suspension", i)
	}
	// The suspension runs out: the first goes at once (the bucket is idle by then), the others
	// wait for new slots, one a second.
	h.clock.AdvanceTo(r.Expires)
	eventually(t, func() bool { return throttled() == 5 || h.deliveredCount() > 2 }, "the released messages booking new slots")
	if n := h.deliveredCount(); n != 2 {
		t.Fatalf("%d delivered when the suspension ended, want 1 (max_message_rate 1/s)", n-1)
	}
	h.clock.Advance(time.Second)
	eventually(t, func() bool { return h.deliveredCount() == 3 }, "one more a second later")
}

// heldBySuspension counts the messages on the timer heap due when a suspension ends.
func (h *harness) heldBySuspension(until time.Time) int {
	n := 0
	h.m.timers.each(func(e *entry) {
		if e.due == nanos(until) {
			n++
		}
	})
	return n
}
