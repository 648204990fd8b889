package queue

import (
	"context"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// A message that waited for its queue's max_message_rate and then for its path's comes back
// from the timer heap holding both slots, and goes: it books neither again. It once let go of
// the queue slot when it passed the queue's stage, so at its path slot it booked a second
// queue slot and waited once more: with both limits set, messages went out later than either
// allows, and each took two of its queue's slots.
func TestThrottledTwiceBooksOnce(t *testing.T) {
	paths := &staticPaths{path: Path{MaxMessageRate: rate(t, "1/s")}}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week, MaxMessageRate: rate(t, "2/s")},
		func(o *Options) { o.Paths = paths })
	throttled := func() int64 { return h.m.Stats().Throttled }
	// t=0: one goes; the queue's rate spaces the others at 0.5 s and 1 s.
	h.submit(3)
	eventually(t, func() bool { return h.deliveredCount() == 1 && throttled() == 2 }, "one delivery, two waiting for the queue")
	// t=0.5: the second passes the queue and waits for the path's slot at 1 s.
	h.clock.Advance(500 * time.Millisecond)
	eventually(t, func() bool { return throttled() == 3 }, "the second waiting for the path")
	// t=1: it holds both slots and goes; the third passes the queue, waits for the path.
	h.clock.Advance(500 * time.Millisecond)
	eventually(t, func() bool { return h.deliveredCount() == 2 && throttled() == 4 },
		"the second delivered at its path slot (delivered %d, throttled %d)", h.deliveredCount(), throttled())
	h.clock.Advance(time.Second)
	eventually(t, func() bool { return h.deliveredCount() == 3 }, "the third delivered at its path slot")
	if n := throttled(); n != 4 {
		t.Fatalf("%d waits for 2 messages held back by 2 limits each", n)
	}
	h.m.slotsMu.Lock()
	defer h.m.slotsMu.Unlock()
	if len(h.m.slots) != 0 {
		t.Fatalf("slots left behind: %v", h.m.slots)
	}
}

// A message that holds a slot and then ends without reaching a connection (its destination
// does not resolve: it bounces) leaves nothing behind in the slots kept for waiting messages.
func TestThrottledThenBouncedForgetsItsSlot(t *testing.T) {
	bounce := resolveWith(func() error { return message.Errorf(556, "5.1.10", "Recipient address has a null MX") })
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week, MaxMessageRate: rate(t, "2/s")},
		func(o *Options) { o.Resolver = bounce })
	h.submit(2)
	eventually(t, func() bool { return len(h.records("Bounce", "")) == 1 && h.m.Stats().Throttled == 1 }, "one bounce, one waiting")
	h.clock.Advance(500 * time.Millisecond)
	eventually(t, func() bool { return len(h.records("Bounce", "")) == 2 }, "the second bounce")
	h.m.slotsMu.Lock()
	defer h.m.slotsMu.Unlock()
	if len(h.m.slots) != 0 {
		t.Fatalf("slots left behind: %v", h.m.slots)
	}
}

// resolveWith is a resolver that fails with what fail returns, or resolves as oneSite.
type resolveWith func() error

func (f resolveWith) Resolve(ctx context.Context, d string, mx []route.MXEntry) (route.Site, error) {
	if err := f(); err != nil {
		return route.Site{}, err
	}
	return oneSite{}.Resolve(ctx, d, mx)
}
