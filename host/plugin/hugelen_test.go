package plugin

import (
	"context"
	"runtime"
	"testing"

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
