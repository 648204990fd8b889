package queue

import (
	"container/heap"
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// entry is a message waiting on the timer heap. A message waiting for a retry is held in brief
// (KumoMTA "shrinks" idle messages the same way): its id in binary form, its due time, attempt
// count, creation time and scheduled queue, which is what the heap's order, the admin
// selectors (they match on the queue's name) and the summaries need. Its record is read again
// from the spool when it comes due (Manager.load). Messages not yet attempted, and those an
// admin operation changed, keep their full record (msg) until their next attempt: theirs may be
// newer than the spool's until the write lands, and a just-received message is about to be
// attempted anyway.
//
// Entries are held by value: a million waiting messages are one slice of 56-byte entries, with
// no allocation of their own for the collector to walk.
type entry struct {
	key      message.Key      // valid when msg is nil
	due      int64            // Unix nanoseconds
	created  int64            // Unix nanoseconds
	q        *schedQueue      // the message's scheduled queue (shared by its messages)
	msg      *message.Message // the full record, or nil: read it from the spool
	attempts int32
}

func (e *entry) dueTime() time.Time     { return fromNanos(e.due) }
func (e *entry) createdTime() time.Time { return fromNanos(e.created) }

// zeroNanos stands for the zero time.Time, whose UnixNano is undefined; it sorts first.
const zeroNanos = math.MinInt64

// nanos is t in Unix nanoseconds, clamped to what an int64 holds (years 1678 to 2262: a
// suspension may be set to end later than that).
func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return zeroNanos
	case t.Unix() >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	case t.Unix() <= math.MinInt64/int64(time.Second):
		return zeroNanos + 1
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == zeroNanos {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// id is the message's spool id.
func (e *entry) id() message.ID {
	if e.msg != nil {
		return e.msg.ID
	}
	return e.key.ID()
}

// timerHeap holds messages waiting for their next attempt, earliest first, and hands each to
// fire when it is due. One goroutine and one timer serve every waiting message.
type timerHeap struct {
	mu     sync.Mutex
	h      entryHeap
	wake   chan struct{}
	fire   func(entry)
	clock  Clock
	halted atomic.Bool // fire nothing more (Manager.storeFailed)
}

// halt stops run from firing anything more; the messages stay on the heap.
func (t *timerHeap) halt() {
	t.halted.Store(true)
	t.poke()
}

func (t *timerHeap) init(fire func(entry), clock Clock) {
	t.fire, t.clock, t.wake = fire, clock, make(chan struct{}, 1)
}

// poke wakes run without blocking; one pending wake-up is enough.
func (t *timerHeap) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *timerHeap) push(e entry) {
	t.mu.Lock()
	first := len(t.h) == 0 || e.due < t.h[0].due // an earlier wake-up is needed
	t.h.push(e)
	t.mu.Unlock()
	if first {
		t.poke()
	}
}

// extract removes the matching messages (match runs under the heap's lock).
func (t *timerHeap) extract(match func(*entry) bool) []entry {
	t.mu.Lock()
	var out []entry
	keep := t.h[:0]
	for i := range t.h {
		if match(&t.h[i]) {
			out = append(out, t.h[i])
		} else {
			keep = append(keep, t.h[i])
		}
	}
	clear(t.h[len(keep):])
	t.h = keep
	heap.Init(&t.h)
	t.mu.Unlock()
	if len(out) > 0 {
		t.poke() // the earliest due time may have changed
	}
	return out
}

// each calls f for every waiting message, under the heap's lock: f must not modify it, nor keep
// the pointer.
func (t *timerHeap) each(f func(*entry)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.h {
		f(&t.h[i])
	}
}

// Len is the number of waiting messages.
func (t *timerHeap) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.h)
}

// run hands due messages to fire until ctx ends. It returns normally only then; a panic
// (from fire) leaves the heap intact for the caller to run again.
func (t *timerHeap) run(ctx context.Context) {
	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var due []entry
		var wait time.Duration
		t.mu.Lock()
		now := t.clock.Now().UnixNano()
		for len(t.h) > 0 && !t.halted.Load() {
			if d := t.h[0].due - now; d > 0 {
				wait = time.Duration(d)
				break
			}
			due = append(due, t.h.pop())
		}
		if cap(t.h) > 1024 && len(t.h) < cap(t.h)/4 {
			// A drained backlog (a million messages delivered after an outage) would otherwise
			// keep its whole array.
			t.h = append(entryHeap(nil), t.h...)
		}
		t.mu.Unlock()
		for _, e := range due {
			t.fire(e)
		}
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if wait > 0 {
			timer = t.clock.AfterFunc(wait, t.poke)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		}
	}
}

// entryHeap is a binary min-heap by due time. push and pop are container/heap's algorithms
// without its interface{} boxing, which would allocate for every entry pushed or popped.
type entryHeap []entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(entry)) } // for heap.Init's interface only
func (h *entryHeap) Pop() any          { return h.pop() }

func (h *entryHeap) push(e entry) {
	*h = append(*h, e)
	s := *h
	for j := len(s) - 1; j > 0; {
		i := (j - 1) / 2
		if s[i].due <= s[j].due {
			break
		}
		s[i], s[j] = s[j], s[i]
		j = i
	}
}

func (h *entryHeap) pop() entry {
	s := *h
	n := len(s) - 1
	s[0], s[n] = s[n], s[0]
	for i := 0; ; {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && s[r].due < s[j].due {
			j = r
		}
		if s[i].due <= s[j].due {
			break
		}
		s[i], s[j] = s[j], s[i]
		i = j
	}
	x := s[n]
	s[n] = entry{}
	*h = s[:n]
	return x
}
