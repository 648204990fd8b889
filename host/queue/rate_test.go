package queue

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
)

func rate(t *testing.T, s string) abi.Rate {
	t.Helper()
	r, err := abi.ParseRate(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The bucket spaces events one interval apart, lets max_burst go at once after a quiet spell,
// and never books two events into one slot.
func TestBucketSlots(t *testing.T) {
	c := newFakeClock()
	t0 := c.Now()
	b := newBucket(rate(t, "10/s"))
	for i, want := range []time.Duration{0, 100, 200, 300} {
		if got := b.reserve(t0).Sub(t0); got != want*time.Millisecond {
			t.Fatalf("10/s event %d at +%v, want +%vms", i, got, want)
		}
	}
	// Idle past the bookings: the next event goes at once, and only one.
	t1 := t0.Add(5 * time.Second)
	if at := b.reserve(t1); !at.Equal(t1) {
		t.Fatalf("after a quiet spell: %v", at.Sub(t1))
	}
	if at := b.reserve(t1); at.Sub(t1) != 100*time.Millisecond {
		t.Fatalf("second event after a quiet spell: +%v, want +100ms", at.Sub(t1))
	}

	burst := newBucket(rate(t, "10/s,max_burst=3"))
	for i, want := range []time.Duration{0, 0, 0, 100, 200} {
		if got := burst.reserve(t0).Sub(t0); got != want*time.Millisecond {
			t.Fatalf("burst 3: event %d at +%v, want +%vms", i, got, want)
		}
	}

	// However many callers book at once, no two slots coincide: 100 bookings of 100/m cover
	// 99 minutes.
	slow := newBucket(rate(t, "100/m"))
	var mu sync.Mutex
	seen := map[time.Time]bool{}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := slow.reserve(t0)
			mu.Lock()
			seen[at] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 100 || !seen[t0.Add(99*600*time.Millisecond)] {
		t.Fatalf("%d distinct slots for 100 bookings", len(seen))
	}
	if newBucket(abi.Rate{}) != nil || !(*bucket)(nil).reserve(t0).Equal(t0) {
		t.Fatal("a zero rate must be unlimited")
	}
}

// deliveredCount counts Delivery records.
func (h *harness) deliveredCount() int { return len(h.records("Delivery", "")) }

// A queue's max_message_rate holds messages back on the timer heap: with the clock stopped
// only the first goes; each 100 ms of clock lets exactly one more through, and waiting for a
// slot is not an attempt and writes no record.
func TestQueueMaxMessageRate(t *testing.T) {
	cfg := Config{RetryInterval: time.Minute, MaxAge: week, MaxMessageRate: rate(t, "10/s")}
	h := newHarness(t, cfg, nil)
	msgs := h.submit(5)
	eventually(t, func() bool { return h.deliveredCount() == 1 && h.m.Stats().Throttled == 4 }, "one delivery and four throttled")
	for i := 2; i <= 5; i++ {
		// Give a wrongly released message the chance to show up before the clock moves.
		time.Sleep(20 * time.Millisecond)
		if n := h.deliveredCount(); n != i-1 {
			t.Fatalf("%d deliveries before the clock reached slot %d", n, i)
		}
		h.clock.Advance(100 * time.Millisecond)
		eventually(t, func() bool { return h.deliveredCount() == i }, "%d deliveries", i)
	}
	for _, m := range msgs {
		rec := h.waitRecords("Delivery", m.ID, 1)[0]
		if rec["num_attempts"] != 0.0 {
			t.Fatalf("a throttled message counted an attempt: %v", rec)
		}
	}
	if n := len(h.records("TransientFailure", "")); n != 0 {
		t.Fatalf("%d TransientFailure records for waiting on a rate", n)
	}
	h.m.slotsMu.Lock()
	defer h.m.slotsMu.Unlock()
	if len(h.m.slots) != 0 {
		t.Fatalf("slots left behind: %v", h.m.slots)
	}
}

// staticPaths gives every site the same path and counts the questions.
type staticPaths struct {
	mu    sync.Mutex
	path  Path
	err   error
	asked []string
}

func (s *staticPaths) EgressPath(_ context.Context, routingDomain, _, site string) (Path, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, routingDomain+" "+site)
	return s.path, s.err
}

// The egress path's limits replace the server-wide ones: its connection limit, its
// max_deliveries_per_connection, its message rate; and it is asked with the destination and
// the site.
func TestPathLimits(t *testing.T) {
	paths := &staticPaths{path: Path{ConnectionLimit: 2, MaxDeliveriesPerConnection: 2}}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.ConnectionLimit = 10
		o.Paths = paths
	})
	gate := make(chan struct{})
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		<-gate
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	msgs := h.submit(8)
	eventually(t, func() bool {
		items, active := h.readyState()
		_, _, _, sending := h.dialer.stats()
		return items == 6 && active == 2 && sending == 2
	}, "2 sends in progress and 6 waiting")
	close(gate)
	for _, m := range msgs {
		h.waitRecords("Delivery", m.ID, 1)
	}
	if c, _, maxOpen, _ := h.dialer.stats(); maxOpen != 2 || c < 4 {
		t.Fatalf("%d connections, %d at once; want at least 4 (8 messages, 2 each) and 2", c, maxOpen)
	}
	h.dialer.mu.Lock()
	for i, conn := range h.dialer.conns {
		if n := conn.Sent(); n > 2 {
			t.Fatalf("connection %d carried %d messages, the path allows 2", i, n)
		}
	}
	h.dialer.mu.Unlock()
	paths.mu.Lock()
	defer paths.mu.Unlock()
	if len(paths.asked) != 1 || paths.asked[0] != "site.test mx.site.test" {
		t.Fatalf("path asked %v, want once for (site.test, mx.site.test)", paths.asked)
	}
}

// A path's max_connection_rate spaces connection attempts by the clock.
func TestPathConnectionRate(t *testing.T) {
	paths := &staticPaths{path: Path{ConnectionLimit: 3, MaxDeliveriesPerConnection: 1, MaxConnectionRate: rate(t, "1/s")}}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) { o.Paths = paths })
	h.submit(3)
	eventually(t, func() bool { return h.deliveredCount() == 1 }, "the first delivery")
	time.Sleep(20 * time.Millisecond)
	if c, _, _, _ := h.dialer.stats(); c != 1 {
		t.Fatalf("%d connections before the clock moved, want 1", c)
	}
	h.clock.Advance(time.Second)
	eventually(t, func() bool { c, _, _, _ := h.dialer.stats(); return c == 2 }, "the second connection")
	h.clock.Advance(time.Second)
	eventually(t, func() bool { return h.deliveredCount() == 3 }, "three deliveries")
}

// A path that cannot be had (a failing hook) fails the message transiently, with a reply that
// says so, and the next attempt asks again.
func TestPathFailureRetries(t *testing.T) {
	paths := &staticPaths{err: message.Errorf(451, "4.3.0", "plugin failed")}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) { o.Paths = paths })
	m := h.submit(1)[0]
	rec := h.waitRecords("TransientFailure", m.ID, 1)[0]
	if resp := rec["response"].(map[string]any); resp["content"] != "egress path configuration unavailable" {
		t.Fatalf("record: %v", rec)
	}
	paths.mu.Lock()
	paths.err, paths.path = nil, Path{}
	paths.mu.Unlock()
	h.clock.Advance(2 * time.Minute)
	h.waitRecords("Delivery", m.ID, 1)
}
