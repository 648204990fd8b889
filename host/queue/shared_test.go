package queue

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/cluster"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/testutil"
)

// Shared limits against a real Redis (host/cluster), on real time: the waits for a store that
// is away are real (a second), so these tests take seconds, not milliseconds.

// clusterLimits is the adapter host/app wires (app/cluster.go), repeated here.
type clusterLimits struct{ c *cluster.Client }

func (s clusterLimits) Reserve(ctx context.Context, key string, r abi.Rate, n int) (time.Duration, error) {
	return s.c.Reserve(ctx, key, r.Interval(), r.Burst, n)
}

func (s clusterLimits) Acquire(ctx context.Context, key string, limit int) (Lease, error) {
	l, err := s.c.Acquire(ctx, key, limit)
	if l == nil {
		return nil, err
	}
	return l, nil
}

func (s clusterLimits) FallbackNodes() int { return s.c.FallbackNodes() }

func clusterNode(t *testing.T, r *testutil.Redis, name string, failClosed bool) clusterLimits {
	t.Helper()
	c, err := cluster.Open(cluster.Options{URL: r.URL(), Cluster: "test", Node: name, FailClosed: failClosed,
		Timeout: 300 * time.Millisecond, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return clusterLimits{c}
}

// ever is a max_age no test reaches (the harness's messages are created on its fake clock's
// date, in the past of real time).
const ever = 100 * 365 * 24 * time.Hour

// sharedHarness is a harness on real time whose limits are shared through s.
func sharedHarness(t *testing.T, cfg Config, s SharedLimits, tweak func(*Options)) *harness {
	return newHarness(t, cfg, func(o *Options) {
		o.Clock, o.Shared = realClock{}, s
		if tweak != nil {
			tweak(o)
		}
	})
}

// fail_closed with Redis away: nothing is delivered, nothing fails or bounces, no attempt is
// counted; when Redis is back every message goes.
func TestSharedFailClosedDefers(t *testing.T) {
	r := testutil.StartRedis(t)
	s := clusterNode(t, r, "a", true)
	r.Stop()
	h := sharedHarness(t, Config{RetryInterval: time.Minute, MaxAge: ever, MaxMessageRate: rate(t, "100/s")}, s, nil)
	msgs := h.submit(3)
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if c, _, _, _ := h.dialer.stats(); c != 0 || len(h.records("", "")) != 3 {
			t.Fatalf("with Redis away under fail_closed: %d connections, records %v (want the 3 Receptions only)", c, h.records("", ""))
		}
	}
	if h.store.len() != 3 {
		t.Fatalf("%d messages in the spool, want 3", h.store.len())
	}
	r.Start()
	deadline := time.Now().Add(10 * time.Second)
	for h.deliveredCount() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 delivered 10 s after Redis came back", h.deliveredCount())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range msgs {
		if rec := h.waitRecords("Delivery", m.ID, 1)[0]; rec["num_attempts"] != 0.0 {
			t.Fatalf("waiting for Redis counted an attempt: %v", rec)
		}
	}
	if n := len(h.records("TransientFailure", "")) + len(h.records("Bounce", "")); n != 0 {
		t.Fatalf("%d failure records for waiting on Redis", n)
	}
}

// fail_open with Redis away: delivery goes on under the local limits.
func TestSharedFailOpenDelivers(t *testing.T) {
	r := testutil.StartRedis(t)
	s := clusterNode(t, r, "a", false)
	r.Stop()
	h := sharedHarness(t, Config{RetryInterval: time.Minute, MaxAge: ever, MaxMessageRate: rate(t, "100/s")}, s, nil)
	h.submit(5)
	eventually(t, func() bool { return h.deliveredCount() == 5 }, "5 deliveries with Redis away under fail_open")
	if st := s.c.Stats(); st.Up || st.Fallbacks == 0 {
		t.Fatalf("cluster stats %+v: want down, with fallbacks counted", st)
	}
}

// down is a shared store that never answers, with 3 nodes seen last (fail_open).
type down struct{}

var errDown = errors.New("store away")

func (down) Reserve(context.Context, string, abi.Rate, int) (time.Duration, error) { return 0, errDown }
func (down) Acquire(context.Context, string, int) (Lease, error)                   { return nil, errDown }
func (down) FallbackNodes() int                                                    { return 3 }

// Under fail_open the local share is the limit divided by the node count last seen: a
// connection_limit of 5 among 3 nodes is 2 here (rounded up), a rate of 10/s is 10 per 3 s.
func TestFailOpenShare(t *testing.T) {
	b := newBucket(rate(t, "10/s,max_burst=4"))
	b.key = "k"
	s := b.scaled(3)
	if s.rate.Interval() != 300*time.Millisecond || s.rate.Burst != 2 {
		t.Fatalf("10/s,max_burst=4 among 3 nodes: interval %v, burst %d", s.rate.Interval(), s.rate.Burst)
	}
	if b.scaled(3) != s || b.scaled(2) == s {
		t.Fatal("the share is not kept for one node count, or kept across counts")
	}

	paths := &staticPaths{path: Path{ConnectionLimit: 5}}
	h := sharedHarness(t, Config{RetryInterval: time.Minute, MaxAge: ever}, down{}, func(o *Options) { o.Paths = paths })
	gate := make(chan struct{})
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		<-gate
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	msgs := h.submit(6)
	eventually(t, func() bool { _, _, _, sending := h.dialer.stats(); return sending == 2 }, "2 sends")
	time.Sleep(300 * time.Millisecond) // a third connection, if the share were wrong, would show by now
	if _, open, _, _ := h.dialer.stats(); open != 2 {
		t.Fatalf("%d connections open, want 2 (ceil(5/3))", open)
	}
	close(gate)
	for _, m := range msgs {
		h.waitRecords("Delivery", m.ID, 1)
	}
}

// Two nodes (two managers, one dialer standing for the destination) sharing a connection_limit
// of 2 never have a third connection open between them, and both deliver.
func TestSharedConnectionLimitAcrossNodes(t *testing.T) {
	r := testutil.StartRedis(t)
	paths := &staticPaths{path: Path{ConnectionLimit: 2, MaxDeliveriesPerConnection: 1}}
	cfg := Config{RetryInterval: time.Minute, MaxAge: ever}
	a := sharedHarness(t, cfg, clusterNode(t, r, "a", false), func(o *Options) { o.Paths = paths })
	b := sharedHarness(t, cfg, clusterNode(t, r, "b", false), func(o *Options) { o.Paths = paths; o.Dialer = a.dialer })
	a.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		time.Sleep(30 * time.Millisecond)
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	a.submit(6)
	b.submit(6)
	eventually(t, func() bool { return a.deliveredCount() == 6 && b.deliveredCount() == 6 }, "12 deliveries")
	if c, _, maxOpen, _ := a.dialer.stats(); maxOpen != 2 || c != 12 {
		t.Fatalf("%d connections, %d at once between two nodes; want 12 and 2", c, maxOpen)
	}
}

// counted counts the round trips a shared store gets.
type counted struct {
	SharedLimits
	mu       sync.Mutex
	reserves []int // n of each Reserve
}

func (c *counted) Reserve(ctx context.Context, key string, r abi.Rate, n int) (time.Duration, error) {
	c.mu.Lock()
	c.reserves = append(c.reserves, n)
	c.mu.Unlock()
	return c.SharedLimits.Reserve(ctx, key, r, n)
}

// A limit that does not bind costs a round trip per batch, not one per message, and batches
// grow with the demand up to the limit's share of 10 ms; a slow limit books each message's
// slot on its own.
func TestSharedRateBatches(t *testing.T) {
	r := testutil.StartRedis(t)
	for _, c := range []struct {
		rate string
		max  int
	}{{"100000/s", 1000}, {"1000/s", 10}, {"100/s", 1}, {"20/s", 1}} {
		t.Run(c.rate, func(t *testing.T) {
			s := &counted{SharedLimits: clusterNode(t, r, "a", false)}
			h := sharedHarness(t, Config{RetryInterval: time.Minute, MaxAge: ever, MaxMessageRate: rate(t, c.rate)}, s, nil)
			h.submit(40)
			eventually(t, func() bool { return h.deliveredCount() == 40 }, "40 deliveries")
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Logf("batches %v", s.reserves)
			if s.reserves[0] != 1 || slices.Max(s.reserves) > c.max {
				t.Fatalf("batches %v: want the first of 1, none over %d", s.reserves, c.max)
			}
			if c.max == 1 && len(s.reserves) != 40 || c.max > 1 && len(s.reserves) > 20 {
				t.Fatalf("%d round trips for 40 messages (batches of at most %d)", len(s.reserves), c.max)
			}
		})
	}
}

// A rate written "local:…" stays each node's own: Redis is never asked.
func TestSharedLocalRate(t *testing.T) {
	r := testutil.StartRedis(t)
	s := &counted{SharedLimits: clusterNode(t, r, "a", false)}
	h := sharedHarness(t, Config{RetryInterval: time.Minute, MaxAge: ever, MaxMessageRate: rate(t, "local:1000/s")}, s, nil)
	h.submit(5)
	eventually(t, func() bool { return h.deliveredCount() == 5 }, "5 deliveries")
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reserves) != 0 {
		t.Fatalf("%d round trips for a local: rate", len(s.reserves))
	}
}
