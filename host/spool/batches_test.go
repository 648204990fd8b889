package spool

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/message"
)

func scanAll(t *testing.T, s *Spool) []*message.Message {
	t.Helper()
	var got []*message.Message
	if err := s.Scan(func(m *message.Message) error { got = append(got, m); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	return got
}

// The batches of one transaction are one write: when a later batch cannot be written, the
// earlier ones are not spooled either (reception answered 451; nothing may be delivered).
func TestPutBatchesAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := msg(1), msg(2)
	bad.ID = message.ID(strings.Repeat("f", 70000)) // over Badger's key size: this batch fails
	err = s.PutBatches([]message.Batch{{Msgs: []*message.Message{good}, Body: []byte("x body")},
		{Msgs: []*message.Message{bad}, Body: []byte("y body")}})
	if err == nil {
		t.Fatal("a batch that cannot be written was accepted")
	}
	if _, err := s.Body(good); err != ErrNotFound {
		t.Fatalf("body of the accepted batch stayed: %v", err)
	}
	s.Close()
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := scanAll(t, s); len(got) != 0 {
		t.Fatalf("%d messages of a failed transaction spooled", len(got))
	}
}

// Batches with different bodies (hooks edited headers differently) keep their own; batches
// whose bodies are equal store it once. Each body lives until its last message is deleted.
func TestPutBatchesBodies(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shared := []byte("Subject: same\r\n\r\nhi\r\n")
	x1, x2, y, z := msg(1), msg(2), msg(3), msg(4)
	err = s.PutBatches([]message.Batch{
		{Msgs: []*message.Message{x1, x2}, Body: []byte("X-Routed: x\r\n" + string(shared))},
		{Msgs: []*message.Message{y}, Body: shared},
		{Msgs: []*message.Message{z}, Body: bytes.Clone(shared)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if x1.BodyID != x1.ID || x2.BodyID != x1.ID || y.BodyID != y.ID || z.BodyID != y.ID {
		t.Fatalf("body ids %s %s %s %s", x1.BodyID, x2.BodyID, y.BodyID, z.BodyID)
	}
	if b, err := s.Body(x2); err != nil || !strings.HasPrefix(string(b), "X-Routed: x") {
		t.Fatalf("x body %q %v", b, err)
	}
	s.Delete(y)
	s.Flush()
	if b, err := s.Body(z); err != nil || !bytes.Equal(b, shared) {
		t.Fatalf("shared body gone before its last message: %q %v", b, err)
	}
	s.Delete(z)
	s.Delete(x1)
	s.Flush()
	if _, err := s.Body(z); err != ErrNotFound {
		t.Fatalf("shared body outlived its messages: %v", err)
	}
	if b, err := s.Body(x2); err != nil || len(b) == 0 {
		t.Fatalf("x body gone before its last message: %v", err)
	}
}

// A transaction whose recipient-domain groups have different bodies, each stored inline, can
// be bigger than one Badger transaction: it is still spooled whole (bodies first, then every
// meta record at once), and every body reads back.
func TestPutBatchesBeyondOneBadgerTransaction(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var bs []message.Batch
	for i := range 200 { // 200 × 60 KB: about five times what one transaction takes
		body := bytes.Repeat([]byte(fmt.Sprintf("%04d", i)), 15<<10) // all different
		bs = append(bs, message.Batch{Msgs: []*message.Message{msg(1000 + i)}, Body: body})
	}
	if err := s.PutBatches(bs); err != nil {
		t.Fatalf("200 groups of 60 KB: %v", err)
	}
	for _, b := range bs {
		got, err := s.Body(b.Msgs[0])
		if err != nil || !bytes.Equal(got, b.Body) {
			t.Fatalf("body of %s: %d bytes, %v", b.Msgs[0].ID, len(got), err)
		}
	}
	if n := len(scanAll(t, s)); n != 200 {
		t.Fatalf("%d messages spooled, want 200", n)
	}
}

// A body no message refers to (a crash between the two steps above) is deleted by the next
// scan; bodies that messages refer to stay.
func TestScanSweepsOrphanBodies(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := msg(1)
	if err := s.Put([]*message.Message{kept}, []byte("kept body")); err != nil {
		t.Fatal(err)
	}
	orphan := &message.Message{ID: msg(2).ID, BodyID: msg(2).ID}
	r := &request{ops: []op{{bodyKey(orphan.BodyID), []byte("orphan body")}}, done: make(chan error, 1)}
	if err := s.send(r); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := len(scanAll(t, s)); n != 1 {
		t.Fatalf("%d messages after reopening, want 1", n)
	}
	if _, err := s.Body(orphan); err != ErrNotFound {
		t.Fatalf("orphan body still there: %v", err)
	}
	if b, err := s.Body(kept); err != nil || string(b) != "kept body" {
		t.Fatalf("kept body: %q %v", b, err)
	}
}
