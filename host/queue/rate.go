package queue

import (
	"context"
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

	mu  sync.Mutex
	tat time.Time
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

// renew returns b when it already enforces r, else a fresh bucket for r.
func renew(b *bucket, r abi.Rate) *bucket {
	if b.same(r) {
		return b
	}
	return newBucket(r)
}

// Throttle stages a message passes on its way to a ready queue. A message that waited for a
// slot holds it: when it comes back from the timer heap it must not book a second one.
const (
	heldQueueSlot uint8 = 1 << iota // the scheduled queue's max_message_rate
	heldPathSlot                    // the egress path's max_message_rate
)

// throttle books a slot for msg in b unless msg already holds one for stage. It reports true
// when the slot is in the future: msg is then back on the timer heap, due at its slot, and the
// caller must let go of it. Waiting for a slot is not an attempt and writes no record.
func (m *Manager) throttle(msg *message.Message, b *bucket, stage uint8) bool {
	if b == nil {
		return false
	}
	k := msg.ID.MapKey()
	m.slotsMu.Lock()
	held := m.slots[k]
	if held&stage != 0 {
		if held &^= stage; held == 0 {
			delete(m.slots, k)
		} else {
			m.slots[k] = held
		}
		m.slotsMu.Unlock()
		return false
	}
	m.slotsMu.Unlock()
	now := m.opt.Clock.Now()
	at := b.reserve(now)
	if !at.After(now) {
		return false
	}
	m.slotsMu.Lock()
	m.slots[k] |= stage
	m.slotsMu.Unlock()
	m.throttled.Add(1)
	msg.Due = at
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
	if b == nil {
		return true
	}
	now := m.opt.Clock.Now()
	at := b.reserve(now)
	if !at.After(now) {
		return true
	}
	done := make(chan struct{})
	t := m.opt.Clock.AfterFunc(at.Sub(now), func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
