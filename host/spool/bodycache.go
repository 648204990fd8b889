package spool

import (
	"sync"

	"github.com/wasmta/wasmta/host/message"
)

// bodyCacheBytes is the memory the body cache may hold. At a few thousand 4 KiB messages a
// second it keeps about the last second of bodies: a message delivered at once (the usual case)
// is attempted within milliseconds of its Put, and one that waits longer is read from Badger like
// any retry.
const bodyCacheBytes = 8 << 20

// bodyCache keeps the bodies of the most recent Puts in memory so that a message's first
// delivery attempt does not read back from Badger what reception handed over a moment before:
// a read transaction, a skiplist search and a copy, about 3 % of the relay's CPU per message.
// Eviction is first in, first out; a body leaves as soon as its last message is deleted.
//
// Bodies are shared, never copied: Body hands out the slice reception stored, capped at its
// length so that an append by a reader makes a copy instead of writing into it. No reader
// writes into a body.
type bodyCache struct {
	mu    sync.Mutex
	m     map[message.Key]cachedBody
	order []message.Key // insertion order; keys already dropped are skipped when reached
	head  int           // order[head:] are the live entries (and dropped ones)
	bytes int
}

// cachedBody is a kept body and what it counts against the budget: the capacity of the array
// it came from, which a slice capped at its length no longer shows.
type cachedBody struct {
	data []byte
	size int
}

func newBodyCache() *bodyCache { return &bodyCache{m: map[message.Key]cachedBody{}} }

// add keeps body as the body id refers to. A body bigger than a quarter of the budget is not
// kept: it would push out many small ones.
func (c *bodyCache) add(id message.ID, body []byte) {
	size := cap(body) // the whole backing array stays alive while the slice is kept
	if size > bodyCacheBytes/4 || len(body) == 0 {
		return
	}
	k := id.MapKey()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	for c.bytes+size > bodyCacheBytes && c.head < len(c.order) {
		c.evict()
	}
	c.m[k] = cachedBody{body[:len(body):len(body)], size}
	c.order = append(c.order, k)
	c.bytes += size
	if c.head > 1024 && c.head > len(c.order)/2 {
		// Reclaim the evicted prefix so that order does not grow for ever.
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
	if n := len(c.order) - c.head; n > 1024 && n > 2*len(c.m) {
		// Most places left in order are of bodies dropped (delivered) before eviction
		// reached them: when every body is delivered in time eviction never runs, and
		// without this order would grow by one key for every message. Keeping only the live
		// ones costs their number, at most once per as many adds.
		live := c.order[:0]
		for _, k := range c.order[c.head:] {
			if _, ok := c.m[k]; ok {
				live = append(live, k)
			}
		}
		clear(c.order[len(live):])
		c.order, c.head = live, 0
	}
}

// evict drops the oldest entry (c.mu held).
func (c *bodyCache) evict() {
	k := c.order[c.head]
	c.order[c.head] = message.Key{}
	c.head++
	if b, ok := c.m[k]; ok {
		c.bytes -= b.size
		delete(c.m, k)
	}
}

// get returns the kept body of id, if any.
func (c *bodyCache) get(id message.ID) ([]byte, bool) {
	k := id.MapKey()
	c.mu.Lock()
	b, ok := c.m[k]
	c.mu.Unlock()
	return b.data, ok
}

// drop forgets the body of id: its last message is gone.
func (c *bodyCache) drop(id message.ID) {
	k := id.MapKey()
	c.mu.Lock()
	if b, ok := c.m[k]; ok {
		c.bytes -= b.size
		delete(c.m, k)
	}
	c.mu.Unlock()
}
