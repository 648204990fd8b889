package spool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// Big bodies that arrive together are gathered into one group commit, and Badger addresses its
// value log with 32-bit offsets: one write of more than 4 GiB of bodies is refused whole. That
// must cost no message and leave the spool healthy; it used to fail every Put of the batch and
// mark the spool failed, so that every later message got 451 until a restart.
func TestGroupCommitOfBigBodiesOver4GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 4 GiB to the spool")
	}
	const n, size = 65, 64 << 20 // 65 × 64 MiB: over 4 GiB in one batch
	obs := &stall{entered: make(chan struct{}), release: make(chan struct{})}
	s, err := OpenContext(context.Background(), Options{Path: t.TempDir(), MinFree: 1 << 20, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if free := s.Stats().Free; free < 3*n*size/2 {
		t.Skipf("%d bytes free; the test writes %d", free, n*size)
	}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(obs.release) }) }
	defer release()
	if err := s.Put([]*message.Message{msg(0)}, []byte("first")); err != nil {
		t.Fatal(err)
	}
	<-obs.entered              // the committer is held: what comes now is gathered into one batch
	body := make([]byte, size) // one buffer for all: each Put stores its own copy
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.Put([]*message.Message{msg(i + 1)}, body) }()
	}
	for deadline := time.Now().Add(20 * time.Second); len(s.reqs) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Puts queued", len(s.reqs), n)
		}
	}
	release()
	failed := 0
	for range n {
		if err := <-errs; err != nil {
			failed++
			t.Log(err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d Puts of big bodies failed", failed, n)
	}
	if err := s.Put([]*message.Message{msg(n + 1)}, []byte("small")); err != nil {
		t.Fatalf("a small message after the big batch: %v", err)
	}
}
