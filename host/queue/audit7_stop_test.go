package queue

import (
	"context"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"testing"
	"time"
)

// Stopping leaves the messages waiting for a connection as they were: no attempt was made, so
// no TransientFailure record, no attempt counted, no retry time pushed back. A worker that was
// waiting for its turn under max_connection_rate when the relay stopped once recorded
// "451 4.3.2 shutting down" for every message of its ready queue and put each off by
// retry_interval, so a restart delayed mail that was about to go.
func TestStopLeavesWaitingMessagesAlone(t *testing.T) {
	paths := &staticPaths{path: Path{MaxConnectionRate: rate(t, "1/h"), MaxDeliveriesPerConnection: 1}}
	h := newHarness(t, Config{RetryInterval: 20 * time.Minute, MaxAge: week}, func(o *Options) { o.Paths = paths })
	msgs := h.submit(3)
	due := map[string]time.Time{}
	for _, m := range msgs {
		due[string(m.ID)] = m.Due // the manager's copy changes; the spool's must not
	}
	// The first takes the hour's connection and is delivered; the connection then closes
	// (one delivery per connection), and the next connection waits for the next hour.
	eventually(t, func() bool { return h.deliveredCount() == 1 }, "one delivery")
	eventually(t, func() bool { _, active := h.readyState(); return active == 2 }, "two workers waiting for their connection slot")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.m.Stop(ctx)

	if recs := h.records("TransientFailure", ""); len(recs) != 0 {
		t.Errorf("%d TransientFailure record(s) written by the stop, e.g. %v", len(recs), recs[0]["response"])
	}
	for _, m := range msgs {
		got, ok := h.store.get(m.ID)
		if !ok {
			continue // the delivered one
		}
		if want := due[string(m.ID)]; got.Attempts != 0 || !got.Due.Equal(want) {
			t.Errorf("%s: attempts %d, due %s after the stop; want 0 and %s as spooled", m.ID, got.Attempts, got.Due, want)
		}
	}
}

// blockingResolver answers only when its context ends (a DNS query in progress at the stop).
type blockingResolver struct{ entered chan struct{} }

func (r blockingResolver) Resolve(ctx context.Context, _ string, _ []route.MXEntry) (route.Site, error) {
	close(r.entered)
	<-ctx.Done()
	return route.Site{}, message.Errorf(451, "4.4.3", "DNS lookup failed").Wrap(ctx.Err())
}

// A message whose destination was being resolved when the relay stopped is left as it was
// spooled: the lookup was cut short by the stop, not by DNS.
func TestStopDuringResolveLeavesTheMessageAlone(t *testing.T) {
	r := blockingResolver{entered: make(chan struct{})}
	h := newHarness(t, Config{RetryInterval: 20 * time.Minute, MaxAge: week}, func(o *Options) { o.Resolver = r })
	msgs := h.submit(1)
	due := msgs[0].Due
	<-r.entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.m.Stop(ctx)
	if recs := h.records("TransientFailure", ""); len(recs) != 0 {
		t.Errorf("%d TransientFailure record(s) written by the stop: %v", len(recs), recs[0]["response"])
	}
	if got, _ := h.store.get(msgs[0].ID); got.Attempts != 0 || !got.Due.Equal(due) {
		t.Errorf("attempts %d, due %s after the stop; want 0 and %s as spooled", got.Attempts, got.Due, due)
	}
}
