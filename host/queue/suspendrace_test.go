package queue

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// TestCancelledSuspensionReleasesAMessageBeingDispatched: a suspension cancelled while a
// message for its queue is being dispatched must not hold that message until the suspension
// would have ended. The dispatch read the rules before the cancel and put the message back
// on the timer heap after the cancel had released what was there, so it waited (here an hour).
// Each round races a fresh message's dispatch against the cancel.
func TestCancelledSuspensionReleasesAMessageBeingDispatched(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: 24 * time.Hour}, nil)
	for round := range 40 {
		rule, err := h.m.Suspend(RuleRequest{Selector: Selector{QueueNames: []string{"held.test"}}, Reason: "test", Duration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []*message.Message
		for range 10 {
			msgs = append(msgs, h.submitTo("held.test", "rcpt@held.test"))
		}
		if err := h.m.CancelRule(KindSuspend, rule.ID); err != nil {
			t.Fatal(err)
		}
		want := (round + 1) * len(msgs)
		eventually(t, func() bool { return h.deliveredCount() == want }, "round %d: %d deliveries (%d)", round, want, h.deliveredCount())
	}
}
