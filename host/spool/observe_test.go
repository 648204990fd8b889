package spool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

type commits struct {
	mu     sync.Mutex
	n      int
	writes int
}

func (c *commits) Commit(d time.Duration, writes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 || writes <= 0 {
		panic("empty commit observed")
	}
	c.n++
	c.writes += writes
}

// The commit observer sees every write, gathered into group commits.
func TestCommitObserver(t *testing.T) {
	var obs commits
	s, err := OpenContext(context.Background(), Options{Path: t.TempDir(), MinFree: 1 << 20, Observer: &obs})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Put([]*message.Message{msg(i)}, []byte("body")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	m := msg(99)
	if err := s.Put([]*message.Message{m}, []byte("body")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(m); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // flushes the delete
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.writes != 10 || obs.n < 1 || obs.n > 10 {
		t.Fatalf("%d commits of %d writes, want 10 writes (9 puts, 1 delete)", obs.n, obs.writes)
	}
}
