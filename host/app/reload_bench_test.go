package app

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// twoVersions returns two different builds of a plugin: WAT fixtures, or two Go examples.
func twoVersions(b *testing.B, kind string) (string, string) {
	if kind == "wat" {
		return "../plugin/testdata/route_a.wasm", "../plugin/testdata/route_b.wasm"
	}
	dir := b.TempDir()
	x, err := testutil.BuildGoPlugin(dir, "./examples/queue_meta/plugin", "a")
	if err != nil {
		b.Fatal(err)
	}
	y, err := testutil.BuildGoPlugin(dir, "./examples/routing_domain/plugin", "b")
	if err != nil {
		b.Fatal(err)
	}
	return x, y
}

func copyOver(b *testing.B, src, dst string) {
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		b.Fatal(err)
	}
}

// startWithPlugin runs the relay in-process with one plugin at dir/policy.wasm, watched.
func startWithPlugin(b *testing.B, first string) (*App, string) {
	port, _ := testutil.StartSinks(b, "127.0.0.2", "127.0.0.3") // route_a and route_b deliver there
	dns := testutil.StartDNS(b, "example.com. MX 10 mx.example.com.\nmx.example.com. A 127.0.0.2\n")
	dir := b.TempDir()
	plug := filepath.Join(dir, "policy.wasm")
	copyOver(b, first, plug)
	a := startApp(b, testConfig(b, dir, dns.Addr, port, fmt.Sprintf(`
[[plugins]]
path = %q
[plugins.config]
smarthost = "example.com"
queue = "example.com"
`, plug)), slog.New(slog.NewTextHandler(io.Discard, nil)))
	return a, plug
}

// BenchmarkReloadLatency: from the moment a new plugin file is renamed into place until the
// new generation serves (fsnotify + 50 ms debounce + compile + checks + eager instance +
// wasmta_init + swap). The first reload of each version compiles; later ones hit the cache.
func BenchmarkReloadLatency(b *testing.B) {
	for _, kind := range []string{"wat", "go"} {
		b.Run(kind, func(b *testing.B) {
			x, y := twoVersions(b, kind)
			a, plug := startWithPlugin(b, x)
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				src := y
				if i%2 == 1 {
					src = x
				}
				before := a.Status()[0].Generation
				start := time.Now()
				copyOver(b, src, plug)
				for a.Status()[0].Generation == before {
					time.Sleep(100 * time.Microsecond)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			first := lat[0]
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
			b.ReportMetric(float64(first.Milliseconds()), "first-ms")
		})
	}
}

// BenchmarkReceptionDuringReloads: whole reception (as BenchmarkReception) while the plugin file
// is replaced every second, against the same load with no reloads.
func BenchmarkReceptionDuringReloads(b *testing.B) {
	for _, kind := range []string{"wat", "go"} {
		for _, reload := range []bool{false, true} {
			name := kind + "/steady"
			if reload {
				name = kind + "/reloading"
			}
			b.Run(name, func(b *testing.B) {
				x, y := twoVersions(b, kind)
				a, plug := startWithPlugin(b, x)
				var stop atomic.Bool
				done := make(chan struct{})
				reloads := 0
				go func() {
					defer close(done)
					for i := 0; reload && !stop.Load(); i++ {
						time.Sleep(time.Second)
						src := y
						if i%2 == 1 {
							src = x
						}
						copyOver(b, src, plug)
						reloads++
					}
				}()
				inject(b, a)
				stop.Store(true)
				<-done
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				b.ReportMetric(float64(reloads), "reloads")
			})
		}
	}
}
