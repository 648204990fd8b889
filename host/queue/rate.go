package queue

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
)

// bucket is a token bucket in GCRA form (the generic cell rate algorithm, also what KumoMTA's
// throttles use): tat is the theoretical arrival time of the next event when events are spaced
// one Interval apart, and a burst of Burst events may come early by (Burst-1) intervals.
//
// reserve never refuses: it hands out the time at which the caller's event conforms, and
// books it. Callers wait until that time (a message goes back to the timer heap, a connection
// attempt sleeps), so a backlog is spread over exact slots instead of every waiter retrying
// when the next token appears.
type bucket struct {
	rate abi.Rate
	// key names the limit in Options.Shared when the cluster shares it; "" keeps it local.
	key string

	mu  sync.Mutex
	tat time.Time
	// fallback is the local share of a shared limit (rate / nodes) while the cluster does not
	// answer under fail_open; made for nodes nodes.
	fallback *bucket
	nodes    int
	// A shared limit's slots booked in the cluster and not handed out yet (see shared): slot i
	// is at base + i intervals, for i in [used, booked).
	fill         sync.Mutex // one batch asked for at a time
	base         time.Time
	used, booked int
	size         int  // the next batch's size (0: none booked yet)
	wasted       bool // slots of the batch went unused
}

func newBucket(r abi.Rate) *bucket {
	if r.N == 0 {
		return nil
	}
	if r.Burst == 0 {
		r.Burst = 1
	}
	return &bucket{rate: r}
}

// idle reports whether b holds no booking after now, so that dropping it (with its ready
// queue) and starting afresh later cannot let an event through early. A nil bucket is idle.
func (b *bucket) idle(now time.Time) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	tat, fallback := b.tat, b.fallback
	b.mu.Unlock()
	// A shared batch's slots not handed out count only while one may still be (next drops a
	// slot more than batchHorizon late): a batch a burst left half used is past, not ahead,
	// and must not keep its queue listed for ever.
	b.fill.Lock()
	b.mu.Lock()
	last := b.base.Add(time.Duration(b.booked-1)*b.rate.Interval() + batchHorizon)
	pending := b.used < b.booked && !last.Before(now)
	b.mu.Unlock()
	b.fill.Unlock()
	return !tat.After(now) && !pending && fallback.idle(now)
}

// reserve books one event and returns when it may happen (now or later). A nil bucket is
// unlimited.
func (b *bucket) reserve(now time.Time) time.Time {
	if b == nil {
		return now
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	iv := b.rate.Interval()
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	at := tat.Add(-time.Duration(b.rate.Burst-1) * iv)
	if at.Before(now) {
		at = now
	}
	b.tat = tat.Add(iv)
	return at
}

// scaled is b's local share among nodes: nodes × the period, and the burst divided
// (rounded up), so that n nodes on their own together stay within the shared limit.
func (b *bucket) scaled(nodes int) *bucket {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fallback == nil || b.nodes != nodes {
		r := b.rate
		r.Per *= time.Duration(nodes)
		r.Burst = (max(r.Burst, 1) + uint64(nodes) - 1) / uint64(nodes)
		b.fallback, b.nodes = newBucket(r), nodes
	}
	return b.fallback
}

// SharedLimits makes rate and connection limits hold for a whole cluster of nodes (host/cluster
// implements it over Redis). With Options.Shared nil every limit is local to this node.
//
// Keys name what a limit applies to: "queue:<scheduled queue>" for a queue's
// max_message_rate, "msg:<ready queue>" and "conn:<ready queue>" for an egress path's
// max_message_rate and max_connection_rate, and "<ready queue>" for its connection_limit
// (a ready queue is "<site>" or "<source>-><site>").
type SharedLimits interface {
	// Reserve books n events of rate r under key, one interval apart, and returns how long
	// the caller waits before the first (GCRA with reservation semantics, as bucket.reserve).
	Reserve(ctx context.Context, key string, r abi.Rate, n int) (time.Duration, error)
	// Acquire takes one of limit places under key for a connection; nil, nil when all are
	// taken (the caller waits and tries again).
	Acquire(ctx context.Context, key string, limit int) (Lease, error)
	// FallbackNodes says what a limit does while Reserve or Acquire fail (the shared store is
	// away): n >= 1 enforces the limit divided by n locally (fail_open), 0 defers (fail_closed).
	FallbackNodes() int
}

// Lease is a connection's place under a shared connection limit.
type Lease interface {
	// Lost reports that the place no longer counts (it expired): the connection should close.
	Lost() bool
	// Release gives the place back.
	Release()
}

// Waits without a booking: a shared limit whose store does not answer under fail_closed, and a
// shared connection limit whose places are all taken. Spread (×0.5 to ×1.5) so that the
// waiting messages and connections of a node do not come back in one wave.
const (
	unavailableWait = time.Second
	leaseWait       = 200 * time.Millisecond
)

func spread(d time.Duration) time.Duration { return d/2 + rand.N(d) }

// A fast shared limit is booked in batches: one round trip to the cluster books several slots,
// which this node then hands out one by one. A batch covers at most batchHorizon (and at most
// maxBatch slots), so a limit of one event per batchHorizon or slower (100/s and below) books
// one slot per event, exactly as the local bucket does. Within that cap the batch follows the
// node's demand: it doubles while batches are used up and halves when slots go unused, so a
// node that sends little books little. A slot is handed out at its time or up to batchHorizon
// late (a later one is dropped), so a batch shifts at most batchHorizon's worth of events: the
// limit holds over any window, give or take that much. Without batches every message would
// pay a round trip for a limit that does not bind (docs/performance.md, Cluster).
const (
	batchHorizon = 10 * time.Millisecond
	maxBatch     = 1000
)

// maxBatchOf is the largest batch of r one round trip books.
func maxBatchOf(r abi.Rate) int {
	iv := r.Interval()
	if iv <= 0 {
		return maxBatch
	}
	return int(min(max(batchHorizon/iv, 1), maxBatch))
}

// next hands out the next slot booked in the cluster and reports how long to wait for it;
// ok is false when none is left.
func (b *bucket) next(now time.Time) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	iv := b.rate.Interval()
	if b.used < b.booked && iv > 0 {
		if stale := now.Add(-batchHorizon); b.base.Add(time.Duration(b.used) * iv).Before(stale) {
			b.used += int(stale.Sub(b.base.Add(time.Duration(b.used)*iv))/iv) + 1
			b.wasted = true
		}
	}
	if b.used >= b.booked {
		return 0, false
	}
	at := b.base.Add(time.Duration(b.used) * iv)
	b.used++
	return max(0, at.Sub(now)), true
}

// shared books one event of b's shared limit: from the batch this node holds, else from a
// new batch booked in the cluster.
func (m *Manager) shared(b *bucket) (time.Duration, error) {
	if d, ok := b.next(m.opt.Clock.Now()); ok {
		return d, nil
	}
	b.fill.Lock()
	defer b.fill.Unlock()
	if d, ok := b.next(m.opt.Clock.Now()); ok {
		return d, nil // another caller booked a batch meanwhile
	}
	b.mu.Lock()
	switch {
	case b.size == 0 || b.wasted:
		b.size = max(1, b.size/2)
	default:
		b.size = min(b.size*2, maxBatchOf(b.rate))
	}
	n := b.size
	b.mu.Unlock()
	d, err := m.opt.Shared.Reserve(m.ctx, b.key, b.rate, n)
	if err != nil {
		return 0, err
	}
	now := m.opt.Clock.Now()
	b.mu.Lock()
	b.base, b.used, b.booked, b.wasted = now.Add(d), 0, n, false
	b.mu.Unlock()
	d, _ = b.next(now)
	return d, nil
}

// limiter returns b when it already enforces r under key, else a fresh bucket for r (rate
// limits named by key are shared when the cluster is configured).
func (m *Manager) limiter(b *bucket, r abi.Rate, key string) *bucket {
	if m.opt.Shared == nil || r.Local {
		key = "" // "local:": each node's own, as KumoMTA
	}
	if b.same(r) && (b == nil || b.key == key) {
		return b
	}
	nb := newBucket(r)
	if nb != nil {
		nb.key = key
	}
	return nb
}

// reserve books one event in b and returns how long the caller waits for it. booked is false
// when nothing could be booked (a shared limit under fail_closed whose store does not answer):
// the caller waits and books again.
func (m *Manager) reserve(b *bucket, now time.Time) (wait time.Duration, booked bool) {
	if b == nil {
		return 0, true
	}
	if b.key == "" {
		return b.reserve(now).Sub(now), true
	}
	d, err := m.shared(b)
	if err == nil {
		return d, true
	}
	n := m.opt.Shared.FallbackNodes()
	if n <= 0 {
		return spread(unavailableWait), false
	}
	return b.scaled(n).reserve(now).Sub(now), true
}

// same reports whether b enforces r (so a refreshed config keeps its bucket, and its bookings).
func (b *bucket) same(r abi.Rate) bool {
	if b == nil {
		return r.N == 0
	}
	if r.Burst == 0 {
		r.Burst = 1
	}
	return b.rate == r
}

// Throttle stages a message passes on its way to a ready queue. A message that waited for a
// slot holds it: when it comes back from the timer heap it must not book a second one.
const (
	heldQueueSlot uint8 = 1 << iota // the scheduled queue's max_message_rate
	heldPathSlot                    // the egress path's max_message_rate
)

// throttle books a slot for msg in b unless msg already holds one for stage. It reports true
// when the slot is in the future: msg is then back on the timer heap, due at its slot, and the
// caller must let go of it. Waiting for a slot is not an attempt and writes no record; nor is
// waiting for a shared limit's store to come back (fail_closed), which books nothing.
//
// A slot held is kept until the message leaves dispatch (forgetSlots): one that passed the
// queue's stage holding its slot may still wait for the path's, and when it comes back from
// that wait it must pass the queue's stage again without booking a second slot.
func (m *Manager) throttle(msg *message.Message, b *bucket, stage uint8) bool {
	if b == nil {
		return false
	}
	k := msg.ID.MapKey()
	m.slotsMu.Lock()
	held := m.slots[k]
	m.slotsMu.Unlock()
	if held&stage != 0 {
		return false
	}
	now := m.opt.Clock.Now()
	wait, booked := m.reserve(b, now)
	if wait <= 0 {
		return false
	}
	if booked {
		m.slotsMu.Lock()
		m.slots[k] |= stage
		m.slotsMu.Unlock()
		m.throttled.Add(1)
	}
	msg.Due = now.Add(wait)
	m.wait(msg)
	return true
}

// forgetSlots drops the slots a message holds (it left the queue, or an admin operation
// moved it: it books again, which can only make it later, never early).
func (m *Manager) forgetSlots(id message.ID) {
	m.slotsMu.Lock()
	delete(m.slots, id.MapKey())
	m.slotsMu.Unlock()
}

// waitSlot books a slot in b and sleeps until it comes, by the manager's clock. It returns
// false when ctx ends first.
func (m *Manager) waitSlot(ctx context.Context, b *bucket) bool {
	for {
		wait, booked := m.reserve(b, m.opt.Clock.Now())
		if wait <= 0 {
			return true
		}
		if !m.sleep(ctx, wait) {
			return false
		}
		if booked {
			return true
		}
	}
}

// sleep waits d by the manager's clock; false when ctx ends first.
func (m *Manager) sleep(ctx context.Context, d time.Duration) bool {
	done := make(chan struct{})
	t := m.opt.Clock.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
