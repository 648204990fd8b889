package queue

import (
	"sync"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// Messages being dispatched. Between leaving the timer heap (or reception) and reaching a ready
// queue, a message has its queue config read, its destination resolved and its egress path
// fetched: usually an instant, at most the DNS timeout when DNS is in trouble, which is when an
// operator looks. Meanwhile it is in neither the heap nor a ready queue, so the registry keeps
// the admin API's summary, listing and inspect honest about it (state "dispatching").
//
// It keeps only what dispatch does not change (the dispatch goroutine may write the message
// itself: a retry moves its due time), so a reader never races it; inspect and listings read
// the message's record from the spool, as for a message held in brief. A rebind does not reach
// a message while it is dispatched: it lands in a ready queue or on the timer heap a moment
// later, where the next rebind finds it. The cost is one short lock when dispatch begins and
// one when it ends.

// dispatchEntry is a message being dispatched.
type dispatchEntry struct {
	id      message.ID
	queue   string
	created time.Time
}

// dispatches is the registry of messages being dispatched, by key.
type dispatches struct {
	mu sync.Mutex
	m  map[message.Key]dispatchEntry
}

// beginDispatch registers a message about to be dispatched; endDispatch forgets it.
func (m *Manager) beginDispatch(id message.ID, queue string, created time.Time) message.Key {
	k := id.MapKey()
	m.dispatching.mu.Lock()
	if m.dispatching.m == nil {
		m.dispatching.m = map[message.Key]dispatchEntry{}
	}
	m.dispatching.m[k] = dispatchEntry{id: id, queue: queue, created: created}
	m.dispatching.mu.Unlock()
	return k
}

func (m *Manager) endDispatch(k message.Key) {
	m.dispatching.mu.Lock()
	delete(m.dispatching.m, k)
	m.dispatching.mu.Unlock()
}

// eachDispatch calls f for every message being dispatched, under the registry's lock.
func (m *Manager) eachDispatch(f func(dispatchEntry)) {
	m.dispatching.mu.Lock()
	defer m.dispatching.mu.Unlock()
	for _, d := range m.dispatching.m {
		f(d)
	}
}
