package app

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
)

// BenchmarkReception is whole reception through real SMTP on loopback — parse, policy, spool
// synced to disk, Reception record, queued — with and without the router plugin on every
// message. Delivery runs too (to a sink), as in production. 20 client connections in parallel.
func BenchmarkReception(b *testing.B) {
	b.Run("no-plugin", func(b *testing.B) { benchReception(b, "") })
	b.Run("router", func(b *testing.B) {
		wasm, err := testutil.BuildGoPlugin(b.TempDir(), "./plugins/router", "router")
		if err != nil {
			b.Fatal(err)
		}
		benchReception(b, fmt.Sprintf(`
[[plugins]]
path = %q
[[plugins.config.rules]]
recipient_domain = "*"
routing_domain = "example.com"
`, wasm))
	})
}

func benchReception(b *testing.B, plugins string) {
	port, _ := testutil.StartSinks(b, "127.0.0.2")
	dns := testutil.StartDNS(b, "example.com. MX 10 mx.example.com.\nmx.example.com. A 127.0.0.2\n")
	a := startApp(b, testConfig(b, b.TempDir(), dns.Addr, port, plugins), slog.New(slog.NewTextHandler(io.Discard, nil)))
	inject(b, a)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// inject sends b.N 4 KB messages over 20 parallel SMTP connections (the timed part).
func inject(b *testing.B, a *App) {
	addr := a.SMTPAddrs()[0].String()
	body := testutil.Message("s@sender.test", "r@example.com", "bench", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 60))
	b.SetParallelism(10) // 10 × GOMAXPROCS(2) = 20 connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := testutil.Dial(b, addr)
		c.Hello("bench.test")
		for pb.Next() {
			if code, msg := c.Send("s@sender.test", []string{"r@example.com"}, body); code != 250 {
				b.Errorf("%d %s", code, msg)
				return
			}
		}
		c.Close()
	})
	b.StopTimer()
}
