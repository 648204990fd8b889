package spool

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

func msg(i int) *message.Message {
	now := time.Now()
	return &message.Message{ID: message.NewID(now), Sender: "s@x.test", Recipient: fmt.Sprintf("r%d@y.test", i),
		Queue: "y.test", Created: now, Due: now, Meta: map[string]string{"tenant": "t"}}
}

func TestPutScanUpdateDeleteAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := msg(1), msg(2)
	if err := s.Put([]*message.Message{a}, []byte("body a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]*message.Message{b}, []byte("body b")); err != nil {
		t.Fatal(err)
	}
	a.Attempts, a.Due = 3, a.Due.Add(time.Hour)
	if err := s.Update(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(b); err != nil {
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
	var got []*message.Message
	if err := s.Scan(func(m *message.Message) error { got = append(got, m); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != a.ID || got[0].Attempts != 3 || !got[0].Due.Equal(a.Due) || got[0].Meta["tenant"] != "t" {
		t.Fatalf("after reopen: %+v", got)
	}
	body, err := s.Body(got[0])
	if err != nil || string(body) != "body a" {
		t.Fatalf("body %q %v", body, err)
	}
	if _, err := s.Body(b); err != ErrNotFound {
		t.Fatalf("deleted body: %v", err)
	}
}

func TestScanOldestFirst(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []message.ID
	for i := range 20 {
		m := msg(i)
		ids = append(ids, m.ID)
		if err := s.Put([]*message.Message{m}, nil); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	s.Scan(func(m *message.Message) error {
		if m.ID != ids[i] {
			t.Fatalf("position %d: %s, want %s", i, m.ID, ids[i])
		}
		i++
		return nil
	}, nil)
}

func TestConcurrentPutsAreGroupedAndAllDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 4096)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Put([]*message.Message{msg(i)}, body); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s.Close()
	s, _ = Open(dir, nil)
	defer s.Close()
	n := 0
	s.Scan(func(*message.Message) error { n++; return nil }, nil)
	if n != 200 {
		t.Fatalf("%d messages after reopen, want 200", n)
	}
}

func TestLargeBodyGoesToValueLog(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := msg(0)
	body := bytes.Repeat([]byte("0123456789"), 2<<20) // 20 MiB, the default size limit
	if err := s.Put([]*message.Message{m}, body); err != nil {
		t.Fatal(err)
	}
	got, err := s.Body(m)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("large body round trip failed: %v", err)
	}
}

func TestWritesAfterCloseFail(t *testing.T) {
	s, _ := Open(t.TempDir(), nil)
	s.Close()
	if err := s.Put([]*message.Message{msg(0)}, nil); err != ErrClosed {
		t.Fatalf("put after close: %v", err)
	}
}

// BenchmarkPut measures synced Put throughput with concurrent writers (group commit).
func BenchmarkPut(b *testing.B) {
	s, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := bytes.Repeat([]byte("x"), 4096)
	b.SetParallelism(10) // 10 × GOMAXPROCS writers, like 20 SMTP sessions on 2 cores
	b.SetBytes(4096)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Put([]*message.Message{msg(0)}, body); err != nil {
				b.Error(err)
			}
		}
	})
}

// The recipients of one transaction share one stored body, which outlives every message but
// the last; after a restart the references are counted again from the spool.
func TestSharedBodyRefcount(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*message.Message
	for i := range 400 { // 400 recipients of a 60 KB message: one body, not 400
		msgs = append(msgs, msg(i))
	}
	body := bytes.Repeat([]byte("y"), 60<<10)
	if err := s.Put(msgs, body); err != nil {
		t.Fatal(err)
	}
	s.Delete(msgs[0])
	s.Close()
	s, _ = Open(dir, nil)
	defer s.Close()
	var left []*message.Message
	s.Scan(func(m *message.Message) error { left = append(left, m); return nil }, nil)
	if len(left) != 399 {
		t.Fatalf("%d left", len(left))
	}
	for _, m := range left[:398] {
		s.Delete(m)
	}
	s.Flush()
	if b, err := s.Body(left[398]); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("body gone before its last message: %v", err)
	}
	s.Delete(left[398])
	s.Flush()
	if _, err := s.Body(left[398]); err != ErrNotFound {
		t.Fatalf("body outlived its messages: %v", err)
	}
}
