package spool

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// Get reads a message's record, and sees an Update sent before it even while the disk has not
// written it yet: the queue reads the record of a rescheduled message again when it comes due,
// which with a short retry interval can be before its Update is committed.
func TestGetSeesUnwrittenUpdate(t *testing.T) {
	obs := &stall{entered: make(chan struct{}), release: make(chan struct{})}
	s, err := OpenContext(context.Background(), Options{Path: t.TempDir(), MinFree: 1 << 20, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(obs.release) }) }
	defer release()
	m := msg(1)
	if err := s.Put([]*message.Message{m}, []byte("body")); err != nil {
		t.Fatal(err)
	}
	<-obs.entered // the committer is stuck from here on: the Update below stays unwritten

	got, err := s.Get(m.ID)
	if err != nil || got.Recipient != m.Recipient || got.Attempts != 0 || got.Meta["tenant"] != "t" {
		t.Fatalf("Get after Put: %+v, %v", got, err)
	}
	m.Attempts, m.Due = 1, m.Due.Add(time.Hour)
	if err := s.Update(m); err != nil {
		t.Fatal(err)
	}
	got, err = s.Get(m.ID)
	if err != nil || got.Attempts != 1 || !got.Due.Equal(m.Due) {
		t.Fatalf("Get after an unwritten Update: %+v, %v; want attempts 1", got, err)
	}
	release()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, err = s.Get(m.ID); err != nil || got.Attempts != 1 {
		t.Fatalf("Get after the Update was written: %+v, %v", got, err)
	}
	if err := s.Delete(m); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(m.ID); !errors.Is(err, message.ErrNotInSpool) {
		t.Fatalf("Get of a deleted message: %v, want ErrNotInSpool", err)
	}
}

// ScanSched reads the scheduling part of every record across a restart, counts shared bodies
// as Scan does (a body is deleted with the last message that shares it, not before), and keeps
// no reference count for a body only one message uses.
func TestScanSchedAndBodyReferences(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	shared := []*message.Message{msg(1), msg(2), msg(3)}
	single := msg(4)
	single.Queue, single.Attempts, single.Due = "t@z.test", 2, single.Due.Add(time.Hour)
	if err := s.Put(shared, []byte("shared body")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]*message.Message{single}, []byte("single body")); err != nil {
		t.Fatal(err)
	}
	if n := refEntries(s); n != 1 {
		t.Fatalf("%d reference counts kept, want 1 (the shared body's)", n)
	}
	if err := s.Delete(shared[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := map[message.ID]message.Sched{}
	if err := s.ScanSched(func(m message.Sched) error { got[m.ID] = m; return nil }, func(k []byte, err error) {
		t.Errorf("unreadable %s: %v", k, err)
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("scanned %d messages, want 3", len(got))
	}
	g := got[single.ID]
	if g.Queue != "t@z.test" || g.Attempts != 2 || !g.Due.Equal(single.Due) || !g.Created.Equal(single.Created) || g.BodyID != single.ID {
		t.Fatalf("scanned %+v, want the record's scheduling fields", g)
	}
	if b := got[shared[1].ID].BodyID; b != shared[0].ID {
		t.Fatalf("shared message's body id %s, want %s", b, shared[0].ID)
	}
	if n := refEntries(s); n != 1 {
		t.Fatalf("%d reference counts kept after the scan, want 1", n)
	}
	for i, m := range []*message.Message{shared[1], shared[2]} {
		if body, err := s.Body(m); err != nil || string(body) != "shared body" {
			t.Fatalf("shared body before delete %d: %q, %v", i, body, err)
		}
		if err := s.Delete(m); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Body(shared[2]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("shared body after its last message: %v, want ErrNotFound", err)
	}
	if err := s.Delete(single); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Body(single); !errors.Is(err, ErrNotFound) {
		t.Fatalf("single body after its message: %v, want ErrNotFound", err)
	}
	if n := refEntries(s); n != 0 {
		t.Fatalf("%d reference counts left", n)
	}
}

func refEntries(s *Spool) int {
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	return len(s.refs)
}

// A record written before Sched existed (and before messages had DSN parameters) is read by
// ScanSched and Get: spools of older versions stay readable.
func TestScanSchedReadsOldRecord(t *testing.T) {
	v, err := os.ReadFile("testdata/record-before-dsn.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const id = message.ID("0189c1a2b3c4d5e6f708192a3b4c5d6e")
	r := &request{ops: []op{{metaKey(id), v}}, done: make(chan error, 1)}
	if err := s.send(r); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	var got []message.Sched
	if err := s.ScanSched(func(m message.Sched) error { got = append(got, m); return nil }, func(k []byte, err error) {
		t.Errorf("unreadable %s: %v", k, err)
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != id || got[0].Attempts != 1 || got[0].Queue == "" || got[0].Due.IsZero() {
		t.Fatalf("scanned %+v", got)
	}
	m, err := s.Get(id)
	if err != nil || m.Recipient != "bob@example.com" {
		t.Fatalf("Get: %+v, %v", m, err)
	}
}

// The records the relay writes take the fast path of decodeSched (a start-up with a large
// spool depends on it), and read as json.Unmarshal reads them.
func TestDecodeSchedFastPathTakesRelayRecords(t *testing.T) {
	now := time.Now()
	for _, m := range []*message.Message{
		msg(1),
		{ID: message.NewID(now), Sender: "", Recipient: "ü@bücher.test", Queue: "c:t@bücher.test!smart.test", Created: now,
			Due: now.Add(time.Hour).In(time.FixedZone("x", 3600)), Attempts: 7, Size: 1 << 20, BodyID: message.NewID(now.Add(-1)),
			Protocol: "ESMTP", PeerName: "client.test", PeerAddr: "[::1]:25", AuthnID: "u\"ser", TLS: &message.TLS{Version: "TLS1.3", Cipher: "c"},
			Policy: []string{"a.wasm@1", "b.wasm@2"}, Meta: map[string]string{"tenant": "t", "x": "line\nbreak"},
			DSN: &message.DSN{Ret: "HDRS", EnvID: "e", Notify: []string{"SUCCESS", "DELAY"}, ORcptType: "rfc822", ORcpt: "o@x.test"}},
	} {
		v, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := fastSched(v)
		if !ok {
			t.Fatalf("fast path refused %s", v)
		}
		var slow message.Sched
		if err := json.Unmarshal(v, &slow); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) || fast.ID != m.ID || fast.Attempts != m.Attempts || !fast.Due.Equal(m.Due) {
			t.Fatalf("fast %+v, json.Unmarshal %+v", fast, slow)
		}
	}
}
