package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// fd_write and fd_read take at most abi.MaxIOVecs iovecs, poll_oneoff abi.MaxSubscriptions
// subscriptions (testdata/wasiabuse.wat): more is errno inval (28), before any is read.
// wazero's own went through every one the guest listed, each a host write (or read, or for
// poll_oneoff an allocation outside the plugin's memory cap), in one call that nothing
// interrupts: up to half a billion with 4 GiB (BenchmarkPollOneoffHuge).
func TestWASIIovecLimit(t *testing.T) {
	for _, tc := range []struct{ name, config, errno string }{
		{"fd_write over the limit", "1", "28"},
		{"fd_read over the limit", "2", "28"},
		{"fd_write at the limit", "3", "00"},
		{"poll_oneoff over the limit", "5", "28"},
		{"poll_oneoff at the limit", "6", "00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := load(t, "wasiabuse", func(s *Spec) { s.Config, s.MaxMemory = []byte(tc.config), 80<<20 })
			if err != nil {
				t.Fatal(err)
			}
			m := testMessage()
			if _, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
				t.Fatal(err)
			}
			if m.Meta["rc"] != tc.errno {
				t.Fatalf("errno %s, want %s", m.Meta["rc"], tc.errno)
			}
		})
	}
}

// random_get of 64 MiB (about 160 ms of the system's generator) in a hook with a 20 ms deadline:
// the call fails at its deadline, as any overrunning call does. It used to fill all of the
// length first, however long the deadline was past (BenchmarkRandomGetPastDeadline), and then
// the hook, with no check of the guest's left to pass, returned 0: a call 8 times over its
// deadline succeeded.
func TestRandomGetEndsAtTheDeadline(t *testing.T) {
	p, err := load(t, "wasiabuse", func(s *Spec) { s.Config, s.MaxMemory, s.Timeout = []byte("4"), 80<<20, 20*time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage()
	_, err = NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
	var f *Failure
	if !errors.As(err, &f) || !strings.Contains(f.Reason, "deadline") {
		t.Fatalf("got %v, want a deadline Failure", err)
	}
	if _, ok := m.Meta["rc"]; ok {
		t.Fatal("the failed call's meta was applied")
	}
	// With time enough, random_get fills it all.
	p, err = load(t, "wasiabuse", func(s *Spec) { s.Config, s.MaxMemory, s.Timeout = []byte("4"), 80<<20, 30*time.Second })
	if err != nil {
		t.Fatal(err)
	}
	m = testMessage()
	if _, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil || m.Meta["rc"] != "00" {
		t.Fatalf("random_get with time enough: %v, errno %q", err, m.Meta["rc"])
	}
}

// BenchmarkRandomGetPastDeadline is a hook that asks random_get for 64 MiB with a 20 ms
// deadline: its cost must be about the deadline, not the length.
func BenchmarkRandomGetPastDeadline(b *testing.B) {
	p, err := load(b, "wasiabuse", func(s *Spec) { s.Config, s.MaxMemory, s.Timeout = []byte("4"), 80<<20, 20*time.Millisecond })
	if err != nil {
		b.Fatal(err)
	}
	c := NewChain(p)
	b.ResetTimer()
	for range b.N {
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err == nil {
			b.Fatal("the call did not fail")
		}
	}
}

// BenchmarkPollOneoffHuge is a hook that calls poll_oneoff with 500,000 subscriptions (reads of
// stdin); its allocations (allocs/op, B/op) must not grow with the count.
func BenchmarkPollOneoffHuge(b *testing.B) {
	p, err := load(b, "wasiabuse", func(s *Spec) { s.Config, s.MaxMemory, s.Timeout = []byte("7"), 80<<20, 10*time.Second })
	if err != nil {
		b.Fatal(err)
	}
	c := NewChain(p)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
			b.Fatal(err)
		}
	}
}
