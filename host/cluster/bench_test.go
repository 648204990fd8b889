package cluster

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// BenchmarkReserve is the cost of one shared throttle check (one EVALSHA of the GCRA script)
// against a redis-server on loopback, as a delivery pays it per message and per limit: p50 and
// p99 of the round trip, and this process's CPU per check. The limit does not bind (1e6/s).
//
//	go test -run - -bench Reserve -benchtime 5000x ./host/cluster
func BenchmarkReserve(b *testing.B) {
	r := testutil.StartRedis(b)
	c, err := Open(Options{URL: r.URL(), Cluster: "bench", Node: "n1"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Reserve(ctx, "warm", time.Microsecond, 1, 1); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		t0 := time.Now()
		if _, err := c.Reserve(ctx, "msg:mx.example.com", time.Microsecond, 1, 1); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	testutil.ReportPercentiles(b, lat)
}

// cpuTime is this process's CPU time (user + system) so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAcquireRelease is a connection's cost under a shared connection_limit: one lease
// taken and given back.
func BenchmarkAcquireRelease(b *testing.B) {
	r := testutil.StartRedis(b)
	c, err := Open(Options{URL: r.URL(), Cluster: "bench", Node: "n1"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		l, err := c.Acquire(ctx, "mx.example.com", 32)
		if err != nil || l == nil {
			b.Fatal(l, err)
		}
		l.Release()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	testutil.ReportPercentiles(b, lat)
}
