package plugin

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
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
