package spool

import (
	"testing"

	"github.com/wasmta/wasmta/host/message"
)

// Admin rules survive a reopen, a deleted rule does not come back, and rules never appear to
// Scan as messages (a rule read as a message would be "delivered").
func TestRulesPersistApartFromMessages(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]*message.Message{msg(1)}, []byte("body")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		if err := s.PutRule(id, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRule("r1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("health of an open spool: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Health() == nil {
		t.Fatal("a closed spool reports healthy")
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rules, err := s.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || string(rules["r2"]) != `{"id":"r2"}` {
		t.Fatalf("rules after reopen: %q", rules)
	}
	n := 0
	if err := s.Scan(func(*message.Message) error { n++; return nil }, func(key []byte, err error) {
		t.Errorf("scan saw %q as a bad message: %v", key, err)
	}); err != nil || n != 1 {
		t.Fatalf("scan: %d messages, %v", n, err)
	}
}
