package spool

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/wasmta/wasmta/host/message"
)

// The newest bodies are served from memory, within the cache's budget, and every body reads
// back as it was put whether it comes from memory or from Badger; a reader's append cannot
// change what the next reader gets, and a body is gone with its last message.
func TestBodyCache(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 3 * bodyCacheBytes / (64 << 10) // three budgets' worth of 64 KiB bodies
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = msg(i)
		body := bytes.Repeat([]byte(fmt.Sprintf("%07d\r\n", i)), (64<<10)/9)
		if err := s.Put(msgs[i:i+1], body); err != nil {
			t.Fatal(err)
		}
	}
	if s.bodies.bytes > bodyCacheBytes {
		t.Fatalf("cache holds %d bytes, budget %d", s.bodies.bytes, bodyCacheBytes)
	}
	if _, ok := s.bodies.get(msgs[0].BodyID); ok {
		t.Fatal("the oldest body is still cached past the budget")
	}
	if _, ok := s.bodies.get(msgs[n-1].BodyID); !ok {
		t.Fatal("the newest body is not cached")
	}
	for _, i := range []int{0, n / 2, n - 1} {
		b, err := s.Body(msgs[i])
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte(fmt.Sprintf("%07d\r\n", i)), (64<<10)/9)
		if !bytes.Equal(b, want) {
			t.Fatalf("body %d reads back wrong", i)
		}
		_ = append(b, "X-Appended: by a reader\r\n"...)
		if again, _ := s.Body(msgs[i]); !bytes.Equal(again, want) {
			t.Fatalf("body %d changed by a reader's append", i)
		}
	}
	if err := s.Delete(msgs[n-1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Body(msgs[n-1]); err != ErrNotFound {
		t.Fatalf("body of a deleted message: %v, want ErrNotFound", err)
	}
}

// Reception hands over bodies with spare capacity. The cache counts that capacity when a body
// comes and must give back the same amount when it goes: it once gave back only the length, so
// the budget filled with bodies long gone and, after about a thousand messages, almost every
// first delivery read its body back from Badger.
func TestBodyCacheCountsWhatItKeeps(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2 * bodyCacheBytes / (4 << 10) { // twice the budget in 4 KiB bodies
		m := msg(i)
		body := make([]byte, 4<<10, 12<<10) // as reception leaves it: room to spare
		copy(body, fmt.Sprintf("body %d\r\n", i))
		if err := s.Put([]*message.Message{m}, body); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.bodies.get(m.BodyID); !ok {
			t.Fatalf("message %d: its body is not cached right after its Put", i)
		}
		if err := s.Delete(m); err != nil {
			t.Fatal(err)
		}
	}
	if s.bodies.bytes != 0 || len(s.bodies.m) != 0 {
		t.Fatalf("every message is deleted, yet the cache counts %d bytes in %d bodies", s.bodies.bytes, len(s.bodies.m))
	}
}

// A body delivered at once leaves the cache by drop, long before eviction would reach it; its
// place in the insertion order must go too. It once stayed there, and since eviction (the only
// thing that trimmed the order) never ran while every body was delivered in time, the order
// grew by 16 bytes for every message the relay ever received: a relay that keeps up with its
// traffic grew without bound.
func TestBodyCacheForgetsDeliveredBodies(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 4096
	for i := 0; i < n; i += 64 { // 64 transactions of different bodies per write: a quick test
		var batches []message.Batch
		for j := i; j < i+64; j++ {
			batches = append(batches, message.Batch{Msgs: []*message.Message{msg(j)}, Body: fmt.Appendf(nil, "body %d\r\n", j)})
		}
		if err := s.PutBatches(batches); err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			if err := s.Delete(b.Msgs[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := s.bodies
	c.mu.Lock()
	kept, live := len(c.order)-c.head, len(c.m)
	c.mu.Unlock()
	if live != 0 || kept > 2048 {
		t.Fatalf("after %d messages put and delivered, the cache keeps %d bodies and %d places in its order", n, live, kept)
	}
}
