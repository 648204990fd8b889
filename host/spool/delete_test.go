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

// Deletes that nobody waits for wait for the next Put's commit; when no Put comes they are
// committed on their own, within lazyCommitDelay or once half the tokens are theirs. Either
// way none of them stays uncommitted: Delete never blocks for good on an idle relay, and what
// was deleted stays deleted when the spool is opened again.
func TestDeferredDeleteSync(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenContext(context.Background(), Options{Path: dir, MinFree: 1 << 20, MaxUnsyncedDeletes: 8})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*message.Message
	for i := range 40 {
		msgs = append(msgs, msg(i))
	}
	if err := s.Put(msgs, []byte("body")); err != nil {
		t.Fatal(err)
	}
	// More deletes than tokens, and no other write: the committer must sync on its own.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, m := range msgs[:30] {
			if err := s.Delete(m); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deletes blocked with nothing else written: their sync never came")
	}
	if err := s.Flush(); err != nil { // every token back
		t.Fatal(err)
	}
	// One more delete, then nothing: its token comes back by the deferred sync.
	if err := s.Delete(msgs[30]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.unsynced) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d deletes still unsynced after 10 s without other writes", len(s.unsynced))
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenContext(context.Background(), Options{Path: dir, MinFree: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	if err := s.Scan(func(*message.Message) error { n++; return nil }, func(k []byte, err error) { t.Errorf("%s: %v", k, err) }); err != nil {
		t.Fatal(err)
	}
	if n != 9 {
		t.Fatalf("%d messages after reopening, want the 9 not deleted", n)
	}
}
