package plugin

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/plugin/guard"
	"github.com/wasmta/wasmta/host/testutil"
)

// benchHook measures one message hook call through the chain (instance from the pool, the
// call, staged effects applied) and reports p50/p99 next to the mean.
func benchHook(b *testing.B, p *Plugin) {
	c := NewChain(p)
	m := testMessage()
	data := m.Data
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	// The message's own meta map is reception's, made whether or not a plugin runs: reused
	// here so that the figures are the hook's cost alone.
	meta := map[string]string{}
	for i := 0; i < b.N; i++ {
		clear(meta)
		meta["tenant"] = "t1"
		m.Data, m.Meta = data, meta
		start := time.Now()
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportCPU(b, cpu)
	testutil.ReportPercentiles(b, lat)
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

// reportCPU reports the process's CPU time per op since since (cpuTime).
func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(b.N), "cpu-ns/op")
}

// BenchmarkMessageHook compares a hand-written WAT plugin (testdata/meta.wat: set_meta,
// get_header, prepend and append a header) with the Go SDK's routing_domain example (get_header
// twice, set_meta once) on the same message.
func BenchmarkMessageHook(b *testing.B) {
	b.Run("wat", func(b *testing.B) { benchHook(b, mustLoad(b, "meta")) })
	b.Run("wat-set-meta", func(b *testing.B) { benchHook(b, mustLoad(b, "setmeta")) })
	// routing_domain example: two get_header, one set_meta.
	b.Run("go", func(b *testing.B) { benchHook(b, goPlugin(b, "routing_domain", `{"smarthost":"my.smarthost.test"}`)) })
	// queue_meta example: one set_meta, the same work as wat-set-meta.
	b.Run("go-set-meta", func(b *testing.B) { benchHook(b, goPlugin(b, "queue_meta", `{"queue":"my.smarthost.test"}`)) })
	// plugins/router with one catch-all rule, as in docs/bench/bench-plugin.toml.
	b.Run("go-router", func(b *testing.B) {
		benchHook(b, goPlugin(b, "../plugins/router", `{"rules":[{"recipient_domain":"*","routing_domain":"example.net"}]}`))
	})
}

func goPlugin(b *testing.B, example, config string) *Plugin {
	dir := b.TempDir()
	pkg := "./examples/" + example + "/plugin"
	if strings.HasPrefix(example, "../") {
		pkg = "./" + strings.TrimPrefix(example, "../")
		example = "router"
	}
	wasm, err := testutil.BuildGoPlugin(dir, pkg, example)
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHost(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	p, err := h.Load(context.Background(), Spec{Path: wasm, Config: []byte(config)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// BenchmarkInstantiate is the cost of one more pooled instance (start + wasmta_init).
func BenchmarkInstantiate(b *testing.B) {
	p := mustLoad(b, "meta")
	g := p.Generation()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !g.reserve() {
			b.Fatal("pool full")
		}
		in, err := g.newInstance(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		g.discard(in)
	}
}

// checkModes are the ways a runtime can make guest code stoppable: wazero's own checks
// (WithCloseOnContextDone, a goroutine per call and a trip into Go at every loop iteration),
// package guard's checks in the code (what the host does), or none at all (for reference: a
// guest that loops forever could then not be stopped).
var checkModes = []string{"closeOnContextDone", "guard", "none"}

// instantiateAs compiles and instantiates testdata/name.wasm as mode says.
func instantiateAs(b *testing.B, name, mode string) (api.Module, func()) {
	code, err := os.ReadFile("testdata/" + name + ".wasm")
	if err != nil {
		b.Fatal(err)
	}
	if mode == "guard" {
		if code, err = guard.Instrument(code); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(mode == "closeOnContextDone"))
	mod, err := rt.InstantiateWithConfig(ctx, code, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		b.Fatal(err)
	}
	return mod, func() { rt.Close(ctx) }
}

// BenchmarkCallFloor is the floor under every hook call: a bare wazero call of a function that
// returns at once, in each check mode.
func BenchmarkCallFloor(b *testing.B) {
	for _, mode := range checkModes {
		b.Run(mode, func(b *testing.B) {
			mod, done := instantiateAs(b, "noop", mode)
			defer done()
			ctx := context.Background()
			f, stack := mod.ExportedFunction("f"), make([]uint64, 1)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				if err := f.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkLoop is what the checks cost in a tight loop: one call of 1,000,000 iterations of an
// add and a decrement (testdata/count.wat), in each check mode.
func BenchmarkLoop(b *testing.B) {
	const n = 1_000_000
	for _, mode := range checkModes {
		b.Run(mode, func(b *testing.B) {
			mod, done := instantiateAs(b, "count", mode)
			defer done()
			ctx := context.Background()
			f, stack := mod.ExportedFunction("count"), make([]uint64, 1)
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				stack[0] = n
				if err := f.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkInstrument is what package guard adds to loading the largest plugin we have, the Go
// router (plugins/router, several MB): one pass over its code.
func BenchmarkInstrument(b *testing.B) {
	wasm, err := testutil.BuildGoPlugin(b.TempDir(), "./plugins/router", "router")
	if err != nil {
		b.Fatal(err)
	}
	code, err := os.ReadFile(wasm)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(code)))
	b.ResetTimer()
	var out []byte
	for i := 0; i < b.N; i++ {
		if out, err = guard.Instrument(code); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(code)), "in-bytes")
	b.ReportMetric(float64(len(out)), "out-bytes")
}
