package queue

import (
	"sync"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
)

// Pool is an egress pool (KumoMTA's make_egress_pool): the sources a scheduled queue's
// messages leave from, each with its weight. Entries of weight 0 are never picked.
type Pool []PoolEntry

// PoolEntry is one source of a pool.
type PoolEntry struct {
	Source string
	Weight int
}

// place is where an attempt happened, for its log record: the ready queue's name, and the
// egress pool and source it used ("" for the built-in pool).
type place struct {
	site, pool, source string
}

// picker picks the sources of one pool by smooth weighted round robin (as nginx does): each
// pick adds every entry's weight to its credit, takes the entry with the most credit and
// charges it the total. Over each cycle of total picks, every entry is picked exactly weight
// times, and the picks of a heavy entry are spread out rather than bunched.
type picker struct {
	mu      sync.Mutex
	entries Pool
	credit  []int
	total   int
}

func newPicker(p Pool) *picker {
	k := &picker{credit: make([]int, 0, len(p))}
	for _, e := range p {
		if e.Weight > 0 {
			k.entries = append(k.entries, e)
			k.credit = append(k.credit, 0)
			k.total += e.Weight
		}
	}
	return k
}

// pick returns the next source; ok is false for a pool with no entry of positive weight.
func (k *picker) pick() (source string, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	best := -1
	for i, e := range k.entries {
		k.credit[i] += e.Weight
		if best < 0 || k.credit[i] > k.credit[best] {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	k.credit[best] -= k.total
	return k.entries[best].Source, true
}

// source picks the egress source of an attempt for a queue config's pool: "" for the built-in
// pool (the system picks the address, the path's source_address applies).
func (m *Manager) source(pool string) (string, *message.Error) {
	if pool == "" || pool == abi.DefaultEgressPool {
		return "", nil
	}
	k := m.pickers[pool]
	if k == nil {
		// KumoMTA keeps such a message queued with a transient failure: the pool may be
		// configured by the time of the next attempt (a corrected plugin, a restart).
		return "", message.Errorf(451, "4.4.4", "egress pool %q is not configured", pool)
	}
	s, ok := k.pick()
	if !ok {
		return "", message.Errorf(451, "4.4.4", "egress pool %q has no source with a weight above 0", pool)
	}
	return s, nil
}

// readyQueueName is KumoMTA's ready queue naming, "source->site", without its protocol suffix;
// the built-in pool's queues keep the bare site, so their names are what they always were.
func readyQueueName(source, site string) string {
	if source == "" {
		return site
	}
	return source + "->" + site
}
