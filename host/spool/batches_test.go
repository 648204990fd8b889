package spool

import (
	"bytes"
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
