package spool

import (
	"errors"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// After a failed sync nothing can be told it is on disk: Linux marks the pages whose write-back
// failed clean and reports the error once, so a later fsync that succeeds does not bring them
// back, and Badger's replay of a memtable log stops at the first damaged entry, dropping every
// transaction written after it too. A Put already waiting for the committer when the sync
// failed (its send passed the health check just before) must get an error like the one whose
// sync failed, not a success that stands behind a 250.
func TestAudit10PutQueuedBehindAFailedSyncFails(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inSync, release := make(chan struct{}), make(chan struct{})
	diskErr := errors.New("input/output error")
	calls := 0
	real := s.sync
	s.sync = func() error { // runs on the committer goroutine only
		calls++
		if calls == 1 {
			close(inSync)
			<-release
			return diskErr
		}
		return real()
	}
	put := func(id string) <-chan error {
		done := make(chan error, 1)
		go func() {
			m := &message.Message{ID: message.ID(id), Sender: "s@x.test", Recipient: "r@y.test", Queue: "y.test"}
			done <- s.Put([]*message.Message{m}, []byte("Subject: "+id+"\r\n\r\nbody\r\n"))
		}()
		return done
	}
	first := put("00000000000000000000000000000001")
	<-inSync // the committer is in the first sync, which is going to fail
	second := put("00000000000000000000000000000002")
	deadline := time.Now().Add(5 * time.Second)
	for len(s.reqs) == 0 { // the second Put is queued for the committer
		if time.Now().After(deadline) {
			t.Fatal("second Put never reached the committer's queue")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; !errors.Is(err, diskErr) {
		t.Fatalf("Put whose sync failed: %v", err)
	}
	if err := <-second; err == nil {
		t.Fatal("a Put committed after a failed sync was told it is on disk (the client would get 250)")
	}
	if !s.Stats().Failed { // wasmta_spool_failed
		t.Fatal("Stats().Failed is false after a failed sync")
	}
}
