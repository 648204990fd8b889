package plugin

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/wasmta/wasmta/abi"
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
	for i := 0; i < b.N; i++ {
		m.Data, m.Meta = data, map[string]string{"tenant": "t1"}
		start := time.Now()
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	testutil.ReportPercentiles(b, lat)
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
		g.sem <- struct{}{}
		in, err := g.newInstance(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		g.discard(in)
	}
}

// BenchmarkCallFloor is the floor under every hook call: a bare wazero call of a function that
// returns at once, on a runtime built as the host builds it (WithCloseOnContextDone, which makes
// wazero start a goroutine per call to watch the context) and without it.
func BenchmarkCallFloor(b *testing.B) {
	code, err := os.ReadFile("testdata/noop.wasm")
	if err != nil {
		b.Fatal(err)
	}
	for _, closeOnDone := range []bool{true, false} {
		b.Run(fmt.Sprintf("closeOnContextDone=%v", closeOnDone), func(b *testing.B) {
			ctx := context.Background()
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(closeOnDone))
			defer rt.Close(ctx)
			mod, err := rt.Instantiate(ctx, code)
			if err != nil {
				b.Fatal(err)
			}
			f, stack := mod.ExportedFunction("f"), make([]uint64, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := f.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
