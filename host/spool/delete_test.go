package spool

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// stall holds the committer inside its first observed commit until released: a disk whose
// sync does not come back.
type stall struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *stall) Commit(time.Duration, int) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.entered)
		<-s.release
	}
}

// blockedInDelete reports whether some goroutine waits inside Spool.Delete.
func blockedInDelete() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[chan send") && strings.Contains(g, "spool.(*Spool).Delete(") {
			return true
		}
	}
	return false
}

// While the disk does not sync, Delete lets at most MaxUnsyncedDeletes deletes wait and then
// blocks its caller: a delivery cannot run ahead of the spool, so a crash brings back at most
// that many delivered messages. Once the sync comes back every delete completes.
func TestDeleteWaitsWhenTooManyUnsynced(t *testing.T) {
	const max = 4
	obs := &stall{entered: make(chan struct{}), release: make(chan struct{})}
	s, err := OpenContext(context.Background(), Options{Path: t.TempDir(), MinFree: 1 << 20, Observer: obs, MaxUnsyncedDeletes: max})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(obs.release) }) }
	defer release() // before Close: a stalled committer would keep Close waiting
	var msgs []*message.Message
	for i := range 20 {
		msgs = append(msgs, msg(i))
	}
	if err := s.Put(msgs, []byte("body")); err != nil {
		t.Fatal(err)
	}
	<-obs.entered // the messages are synced; the committer is stuck from here on
	var returned atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, m := range msgs {
			if err := s.Delete(m); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !blockedInDelete() {
		if time.Now().After(deadline) {
			t.Fatalf("Delete never blocked: %d deletes returned with the disk stalled", returned.Load())
		}
		select {
		case <-done:
			t.Fatalf("all %d deletes returned with the disk stalled (none synced)", returned.Load())
		case <-time.After(time.Millisecond):
		}
	}
	if n := returned.Load(); n != max {
		t.Fatalf("%d deletes returned unsynced, want %d", n, max)
	}
	release()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("deletes still blocked after the disk came back: %d returned", returned.Load())
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}
