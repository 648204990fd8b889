package queue

import (
	"context"
	"testing"

	"github.com/wasmta/wasmta/host/route"
)

// heldResolver answers once released: a destination whose DNS is slow.
type heldResolver struct {
	entered, release chan struct{}
}

func (r heldResolver) Resolve(ctx context.Context, d string, mx []route.MXEntry) (route.Site, error) {
	close(r.entered)
	select {
	case <-r.release:
	case <-ctx.Done():
	}
	return oneSite{}.Resolve(ctx, d, mx)
}

// A message whose destination is being resolved is still in the admin view: counted in its
// scheduled queue, listed, and found by inspect in state "dispatching". It used to be in no
// state at all (404 on inspect, missing from the summary) for as long as DNS took.
func TestDispatchingMessageIsVisible(t *testing.T) {
	r := heldResolver{entered: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t, Config{MaxAge: week}, func(o *Options) { o.Resolver = r })
	msg := h.submit(1)[0]
	<-r.entered

	s := h.m.Summary()
	count := 0
	for _, q := range s.Scheduled {
		if q.Name == msg.Queue {
			count = q.Count
		}
	}
	if count != 1 {
		t.Fatalf("summary counts %d in %s while its message is being dispatched; want 1 (%+v)", count, msg.Queue, s.Scheduled)
	}
	got, ok := h.m.Inspect(msg.ID)
	if !ok || got.State != StateDispatching || got.Recipient != msg.Recipient {
		t.Fatalf("inspect while dispatching: found %v, %+v", ok, got)
	}
	list, n := h.m.Messages(msg.Queue, 10)
	if n != 1 || len(list) != 1 || list[0].ID != msg.ID || list[0].State != StateDispatching {
		t.Fatalf("listing while dispatching: %d, %+v", n, list)
	}

	close(r.release)
	eventually(t, func() bool { return h.deliveredCount() == 1 }, "delivery once DNS answers")
	eventually(t, func() bool { _, ok := h.m.Inspect(msg.ID); return !ok }, "the delivered message gone from the admin view")
	if _, n := h.m.Messages(msg.Queue, 10); n != 0 {
		t.Fatalf("%d messages listed after delivery", n)
	}
}
