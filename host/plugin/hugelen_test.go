package plugin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// A guest length far over a host call's limit is refused without the host copying it: the
// memory cap (max_memory) bounds what a plugin can make the server hold, and a copy of the
// guest's bytes per call, before the length was checked, let a plugin make the host allocate
// as much again as its whole linear memory on every call (up to 4 GiB with the largest
// max_memory, times the calls running at once). The guest still gets its status.
func TestHugeLengthsAreNotCopied(t *testing.T) {
	const region = 16 << 20 // the guest's length, see testdata/hugelen.wat
	for _, tc := range []struct {
		name, config string
		status       int32
	}{
		{"reject text", "1", abi.Limit},
		{"header name", "2", abi.Invalid},
		{"meta key", "3", abi.Invalid},
		{"non-ASCII header name", "4", abi.NotFound},
		// Over 998 bytes is Limit whatever else is wrong with the value: its length is checked
		// before it is scanned for CR or LF (the scan cost time in proportion to the length).
		{"header value with a CR", "5", abi.Limit},
		// No meta key is longer than set_meta allows: Invalid, as set_meta says, without
		// hashing the key.
		{"get_meta key", "6", abi.Invalid},
		{"routing_domain value", "7", abi.Limit},
		{"ASCII header name", "8", abi.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := load(t, "hugelen", func(s *Spec) { s.Config, s.MaxMemory, s.PoolSize = []byte(tc.config), 32<<20, 1 })
			if err != nil {
				t.Fatal(err)
			}
			c := NewChain(p)
			// The first call runs on the instance the load started; the second on the same
			// instance, so that nothing but the calls themselves allocates.
			for i := range 2 {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				m := testMessage()
				if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&after)
				if want := string(rune('0' - tc.status)); m.Meta["rc"] != want {
					t.Fatalf("the guest got status -%s, want %d", m.Meta["rc"], tc.status)
				}
				if n := after.TotalAlloc - before.TotalAlloc; n > region/4 {
					t.Fatalf("call %d: the host allocated %d bytes for a refused %d-byte argument", i+1, n, region)
				}
				if len(m.Data) != len(testMessage().Data) || len(m.Meta) != 2 {
					t.Fatalf("call %d: the refused call changed the message: %d bytes, meta %v", i+1, len(m.Data), m.Meta)
				}
			}
		})
	}
}

// BenchmarkHugeLength is a host call whose guest length is 16 MiB (testdata/hugelen.wat), each
// refused: the refusal must cost about what a short argument's does, not time in proportion to
// the length (a scan, a hash or a copy before the length check cost about 0.5 s at 4 GiB, the
// largest max_memory). Compare ns/op with the "short" case.
func BenchmarkHugeLength(b *testing.B) {
	for _, bc := range []struct{ name, config string }{
		{"reject_text", "1"}, {"header_name", "2"}, {"meta_key", "3"}, {"nonascii_header_name", "4"},
		{"header_value_CR", "5"}, {"get_meta_key", "6"}, {"routing_domain_value", "7"}, {"ascii_header_name", "8"},
		{"short", "0"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := load(b, "hugelen", func(s *Spec) { s.Config, s.MaxMemory, s.PoolSize = []byte(bc.config), 32<<20, 1 })
			if err != nil {
				b.Fatal(err)
			}
			// Maps of more than 8 entries hash a key to look it up (smaller ones compare it): the
			// message's meta and the routing cache get 16 each.
			for i := range 16 {
				if err := p.host.routing.check(abi.MetaRoutingDomain, fmt.Sprintf("d%d.test", i)); err != nil {
					b.Fatal(err)
				}
			}
			msg := func() *Message {
				m := testMessage()
				for i := range 16 {
					m.Meta[fmt.Sprintf("k%d", i)] = "v"
				}
				return m
			}
			c := NewChain(p)
			ctx := context.Background()
			if _, err := c.MessageHook(ctx, abi.HookSMTPServerMessageReceived, msg()); err != nil {
				b.Fatal(err) // the first call fills the guest's memory where its case does
			}
			b.ResetTimer()
			for range b.N {
				if _, err := c.MessageHook(ctx, abi.HookSMTPServerMessageReceived, msg()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The same for a guest's stdout/stderr: one fd_write of 8 MiB (testdata/stdoutflood.wat) is
// turned into lines without the host copying all of it; only what a log line keeps is copied.
func TestHugeOutputIsNotCopied(t *testing.T) {
	p, _ := loadDiag(t, "stdoutflood", func(s *Spec) { s.MaxMemory, s.PoolSize, s.Timeout = 16<<20, 1, 30*time.Second })
	c := NewChain(p)
	for i := range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 2<<20 {
			t.Fatalf("call %d: the host allocated %d bytes for an 8 MiB write", i+1, n)
		}
	}
}

// Lines split across writes come out whole, and a line longer than abi.MaxLogLine is cut, also
// when it never ends.
func TestGuestOutputLines(t *testing.T) {
	d := &diagRecords{}
	diag := slog.New(d)
	o := &guestOutput{diag: diag, plugin: "p", limit: newLogLimiter(diag, "p")}
	long := strings.Repeat("x", abi.MaxLogLine+10)
	for _, w := range []string{"ab", "c\nd", "e\n\n", long[:100], long[100:] + "\nf", "g\n", long, "y\n"} {
		o.Write([]byte(w))
	}
	var got []string
	for _, r := range d.all("plugin output") {
		got = append(got, r.attrs["line"])
	}
	want := []string{"abc", "de", "", long[:abi.MaxLogLine], "fg", long[:abi.MaxLogLine], "y"}
	if !slices.Equal(got, want) {
		t.Fatalf("lines %q,\nwant %q", got, want)
	}
}

// One write of 8 MiB of empty lines: the host reads its first outputWindow bytes as lines (what
// the rate lets through is written, the rest of those counted), and drops the rest unread,
// counted as one line: reading all of it cost time in proportion to a length the guest chose
// (BenchmarkGuestOutputFlood), up to its whole memory, in a host call nothing interrupts.
func TestHugeOutputIsNotRead(t *testing.T) {
	d := &diagRecords{}
	diag := slog.New(d)
	o := &guestOutput{diag: diag, plugin: "p", limit: newLogLimiter(diag, "p")}
	const size = 8 << 20
	if n, err := o.Write(bytes.Repeat([]byte{'\n'}, size)); n != size || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	o.limit.report() // as the timer would, a second later
	written := len(d.all("plugin output"))
	reports := d.all("plugin log lines dropped")
	if written == 0 || len(reports) != 1 {
		t.Fatalf("%d lines written, %d drop reports; want some and one", written, len(reports))
	}
	if got, want := reports[0].attrs["dropped"], fmt.Sprint(outputWindow-written+1); got != want {
		t.Fatalf("drop report %v: %s lines dropped, want %s (the window's lines not written, and the rest as one)", reports[0].attrs, got, want)
	}
	if got, _ := strconv.Atoi(reports[0].attrs["bytes"]); got < size-outputWindow {
		t.Fatalf("drop report %v: %d bytes dropped, want the unread %d at least", reports[0].attrs, got, size-outputWindow)
	}
	// Over the rate, a write is not read at all: one line dropped. The buckets are emptied and
	// their refill put off, so that a slow run (-race) cannot earn a line meanwhile.
	o.limit.mu.Lock()
	o.limit.lines, o.limit.bytes, o.limit.last = 0, 0, time.Now().Add(time.Hour)
	o.limit.mu.Unlock()
	o.Write(bytes.Repeat([]byte{'\n'}, size))
	o.limit.report()
	if reports = d.all("plugin log lines dropped"); len(reports) != 2 || reports[1].attrs["dropped"] != "1" {
		t.Fatalf("a write over the rate: drop reports %v, want a second one of 1 line", reports)
	}
	// The next line after the flood is written whole.
	o.limit.lines, o.limit.bytes, o.limit.last = logBurstLines, logBurstBytes, time.Now()
	o.Write([]byte("after\n"))
	if all := d.all("plugin output"); all[len(all)-1].attrs["line"] != "after" {
		t.Fatalf("the line after the flood: %q", all[len(all)-1].attrs["line"])
	}
}

// BenchmarkGuestOutputFlood is one guest write of 64 MiB of empty lines to stderr (the rate
// long spent): its cost must not grow with the length.
func BenchmarkGuestOutputFlood(b *testing.B) {
	diag := slog.New(slog.DiscardHandler)
	o := &guestOutput{diag: diag, plugin: "p", limit: newLogLimiter(diag, "p")}
	p := bytes.Repeat([]byte{'\n'}, 64<<20)
	b.ResetTimer()
	for range b.N {
		o.Write(p)
	}
}
