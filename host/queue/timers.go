package queue

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// timerHeap holds messages waiting for their next attempt, earliest first, and hands each to
// fire when it is due. One goroutine and one timer serve every waiting message.
type timerHeap struct {
	mu    sync.Mutex
	h     msgHeap
	wake  chan struct{}
	fire  func(*message.Message)
	clock Clock
}

func (t *timerHeap) init(fire func(*message.Message), clock Clock) {
	t.fire, t.clock, t.wake = fire, clock, make(chan struct{}, 1)
}

// poke wakes run without blocking; one pending wake-up is enough.
func (t *timerHeap) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *timerHeap) push(m *message.Message) {
	t.mu.Lock()
	heap.Push(&t.h, m)
	first := t.h[0] == m
	t.mu.Unlock()
	if first {
		t.poke()
	}
}

// extract removes the matching messages (match runs under the heap's lock).
func (t *timerHeap) extract(match func(*message.Message) bool) []*message.Message {
	t.mu.Lock()
	var out []*message.Message
	keep := t.h[:0]
	for _, m := range t.h {
		if match(m) {
			out = append(out, m)
		} else {
			keep = append(keep, m)
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

// each calls f for every waiting message, under the heap's lock: f must not modify it.
func (t *timerHeap) each(f func(*message.Message)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.h {
		f(m)
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
		var due []*message.Message
		var wait time.Duration
		t.mu.Lock()
		now := t.clock.Now()
		for len(t.h) > 0 {
			if d := t.h[0].Due.Sub(now); d > 0 {
				wait = d
				break
			}
			due = append(due, heap.Pop(&t.h).(*message.Message))
		}
		t.mu.Unlock()
		for _, m := range due {
			t.fire(m)
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

type msgHeap []*message.Message

func (h msgHeap) Len() int           { return len(h) }
func (h msgHeap) Less(i, j int) bool { return h[i].Due.Before(h[j].Due) }
func (h msgHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *msgHeap) Push(x any)        { *h = append(*h, x.(*message.Message)) }
func (h *msgHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}
