package conformance

import (
	"context"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/testutil"
)

// BenchmarkLanguages measures, per language: .wasm size, starting one more instance, and the
// conformance message hook on the routing vector (p50/p99, CPU time and allocations per call;
// 18 host calls, 19 in Rust: eight set_meta, two header edits and a refused one).
func BenchmarkLanguages(b *testing.B) {
	langs := languages(b)
	names := make([]string, 0, len(langs))
	for l := range langs {
		names = append(names, l)
	}
	slices.Sort(names)
	h, err := plugin.NewHost(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	for _, lang := range names {
		wasm := langs[lang]
		b.Run(lang+"/hook", func(b *testing.B) {
			st, _ := os.Stat(wasm)
			// A second, not the default 100 ms: on a loaded machine a call can wait that long for
			// a CPU, and a benchmark that fails on one such call measures nothing.
			p, err := h.Load(context.Background(), plugin.Spec{Path: wasm, Config: []byte(config), Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			c := plugin.NewChain(p)
			v := messageVectors[0]
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				m := &plugin.Message{Sender: v.sender, Recipients: v.rcpts, Meta: map[string]string{"in": "hello"}, Data: []byte(v.data)}
				start := time.Now()
				if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			testutil.ReportPercentiles(b, lat)
			b.ReportMetric(float64(st.Size()), "wasm-bytes")
		})
		b.Run(lang+"/instantiate", func(b *testing.B) {
			p, err := h.Load(context.Background(), plugin.Spec{Path: wasm, Config: []byte(config), PoolSize: 2})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := p.Generation().StartInstanceForBenchmark(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpuTime is the CPU time this process has used so far (user and system, all threads): on a
// shared machine a benchmark's wall time per op includes waiting for a CPU, its CPU time not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
