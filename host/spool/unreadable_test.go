package spool

import (
	"errors"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/wasmta/wasmta/host/message"
)

// rawSet writes key = val straight into Badger, as a damaged or foreign record would be.
func rawSet(t *testing.T, s *Spool, key string, val []byte) {
	t.Helper()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) }); err != nil {
		t.Fatal(err)
	}
}

func rawHas(t *testing.T, s *Spool, key string) bool {
	t.Helper()
	err := s.db.View(func(txn *badger.Txn) error { _, err := txn.Get([]byte(key)); return err })
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// One record the start-up scan cannot read must not keep the scan from deleting the bodies no
// message refers to (what a crash while spooling leaves), nor be reported again at every
// start: it is set aside once, under the quarantine prefix, with its body, for an operator.
func TestUnreadableRecordSetAsideAndOrphansStillSwept(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := msg(1)
	if err := s.Put([]*message.Message{good}, []byte("good body")); err != nil {
		t.Fatal(err)
	}
	bad := message.NewID(time.Now().Add(time.Second))
	orphan := message.NewID(time.Now().Add(2 * time.Second))
	rawSet(t, s, "m/"+string(bad), []byte(`{"id":"`+string(bad)+`","queue":`)) // cut short
	rawSet(t, s, "b/"+string(bad), []byte("the damaged record's body"))
	rawSet(t, s, "b/"+string(orphan), []byte("left by a crash between the two steps of a put"))

	var reported []string
	var found []message.ID
	scan := func(s *Spool) {
		t.Helper()
		reported, found = nil, nil
		if err := s.ScanSched(func(m message.Sched) error { found = append(found, m.ID); return nil },
			func(key []byte, err error) { reported = append(reported, string(key)) }); err != nil {
			t.Fatal(err)
		}
	}
	scan(s)
	if len(found) != 1 || found[0] != good.ID {
		t.Fatalf("scan found %v, want only %s", found, good.ID)
	}
	if len(reported) != 1 || reported[0] != "m/"+string(bad) {
		t.Fatalf("unreadable records reported: %q, want the damaged one once", reported)
	}
	if rawHas(t, s, "b/"+string(orphan)) {
		t.Fatal("the orphan body was kept: one unreadable record disabled the sweep")
	}
	if !rawHas(t, s, "b/"+string(good.ID)) || !rawHas(t, s, "b/"+string(bad)) {
		t.Fatal("the sweep deleted a body a record refers to")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	scan(s)
	if len(reported) != 0 {
		t.Fatalf("the damaged record reported again at the next start: %q", reported)
	}
	if !rawHas(t, s, "q/"+string(bad)) || !rawHas(t, s, "b/"+string(bad)) {
		t.Fatal("the damaged record and its body are not kept aside for an operator")
	}
}

// A record whose scheduling fields read but the rest does not (a field of the wrong type) is
// found unreadable only when its message comes due: Get says so in a way the queue can tell
// from a read that failed for now (Unreadable), and Quarantine sets it aside.
func TestQuarantine(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := msg(1)
	if err := s.Put([]*message.Message{m}, []byte("body")); err != nil {
		t.Fatal(err)
	}
	v, _ := encode(m)
	rawSet(t, s, "m/"+string(m.ID), []byte(strings.Replace(string(v), `"tenant":"t"`, `"tenant":1`, 1)))
	_, err = s.Get(m.ID)
	var u interface{ Unreadable() bool }
	if !errors.As(err, &u) || !u.Unreadable() {
		t.Fatalf("Get of a damaged record: %v, want an Unreadable error", err)
	}
	if err := s.Quarantine(m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Quarantine: %v", err)
	}
	if !rawHas(t, s, "q/"+string(m.ID)) || !rawHas(t, s, "b/"+string(m.ID)) {
		t.Fatal("the quarantined record or its body is gone")
	}
}
