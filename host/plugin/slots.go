package plugin

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// slots is a counting semaphore: at most max holders at once, and those that find it full wait
// in line (first come, first served) until a deadline. Taking and giving back a slot while
// nobody waits is one atomic compare-and-swap each; a buffered channel used as a semaphore
// took a runtime lock for each, and the two were a tenth of a one-call hook.
//
// state holds the slots taken (low 32 bits) and the waiters in line (high 32 bits). Waiters
// join and leave the line only under mu. A holder that gives back its slot while someone
// waits hands it over (the count taken stays), so while anyone waits every slot is taken: a
// newcomer never passes the line, and no slot is free while someone waits for one.
type slots struct {
	max   uint32
	state atomic.Uint64
	mu    sync.Mutex
	line  []*slotWaiter // under mu, first in line first
}

const (
	oneWaiter    = 1 << 32
	waiterLeaves = ^uint64(oneWaiter - 1) // added to state: one waiter fewer
)

type slotWaiter struct {
	ready chan struct{} // closed when the slot is handed over
}

func newSlots(max int) *slots { return &slots{max: uint32(max)} }

// taken is how many slots are taken now.
func (s *slots) taken() int { return int(uint32(s.state.Load())) }

// waiting is how many wait in line now.
func (s *slots) waiting() int { return int(s.state.Load() >> 32) }

// tryAcquire takes a slot if one is free and nobody waits.
func (s *slots) tryAcquire() bool {
	for {
		v := s.state.Load()
		if uint32(v) >= s.max || v>>32 != 0 {
			return false
		}
		if s.state.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// acquire takes a slot, waiting until deadline (mono) at most; waited says it had to wait.
// It fails with errPoolWait at the deadline, or with ctx's error when ctx ends first.
func (s *slots) acquire(ctx context.Context, deadline int64) (waited bool, err error) {
	if s.tryAcquire() {
		return false, nil
	}
	s.mu.Lock()
	for {
		v := s.state.Load()
		if uint32(v) < s.max { // freed meanwhile (then nobody waits: see the type's comment)
			if s.state.CompareAndSwap(v, v+1) {
				s.mu.Unlock()
				return true, nil
			}
			continue
		}
		if s.state.CompareAndSwap(v, v+oneWaiter) {
			break
		}
	}
	w := &slotWaiter{ready: make(chan struct{})}
	s.line = append(s.line, w)
	s.mu.Unlock()

	t := time.NewTimer(time.Duration(deadline - mono()))
	defer t.Stop()
	select {
	case <-w.ready:
		return true, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errPoolWait
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.line, w); i >= 0 {
		s.line = slices.Delete(s.line, i, i+1)
		s.state.Add(waiterLeaves)
		return true, err
	}
	// Handed a slot just as the wait ended: it is ours.
	return true, nil
}

// release gives back a slot, to the first in line if anyone waits.
func (s *slots) release() {
	for {
		v := s.state.Load()
		if v>>32 != 0 {
			break
		}
		if uint32(v) == 0 {
			panic("plugin: run slot released more often than taken")
		}
		if s.state.CompareAndSwap(v, v-1) {
			return
		}
	}
	s.mu.Lock()
	if len(s.line) == 0 { // the waiter seen above gave up meanwhile; none can join under mu
		s.state.Add(^uint64(0)) // -1
		s.mu.Unlock()
		return
	}
	w := s.line[0]
	s.line[0] = nil
	s.line = s.line[1:]
	s.state.Add(waiterLeaves) // the slot passes to w: the count taken stays
	s.mu.Unlock()
	close(w.ready)
}
