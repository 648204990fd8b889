// Package testutil provides real network fixtures for end-to-end tests of
// the mail relay: an authoritative DNS server on loopback that serves zone
// text (see StartDNS) and SMTP sinks bound to loopback addresses that record
// what they receive and can be told to misbehave (see StartSink and
// StartSinks).
//
// Every fixture binds its sockets before its Start function returns, so
// callers may connect immediately; no sleeping is required. Fixtures are
// stopped automatically through t.Cleanup.
//
// Sinks are usually bound to distinct addresses in 127.0.0.0/8 (for example
// 127.0.0.2 and 127.0.0.3) so that MX hosts can be told apart by IP while all
// listening on the same port. On Linux the whole 127.0.0.0/8 range is routed
// to the loopback interface; on other systems the extra aliases may need to
// be configured.
package testutil

import (
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MustListenPort returns a TCP port on ip that was free at the time of the call. The port
// may be taken by someone else before the caller binds it, so prefer binding with port 0 and
// reading the address back when possible.
//
// It is picked at random below the kernel's ephemeral range, not with ip:0: a port the kernel
// hands out for :0 comes from the same range as the source ports of outgoing connections, and
// with many tests connecting at once a freed one was soon reused by some client's connect,
// so the relay then failed to bind ("address already in use", seen under parallel tests).
func MustListenPort(t testing.TB, ip string) int {
	t.Helper()
	low := ephemeralLow()
	for range 200 {
		port := low - 1 - rand.IntN(low-10000)
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			t.Fatalf("testutil: close listener on %s: %v", l.Addr(), err)
		}
		return port
	}
	t.Fatalf("testutil: no free port on %s below %d", ip, low)
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux default 32768).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	return low
}

// ReportPercentiles reports the p50 and p99 of per-operation latencies as benchmark metrics.
func ReportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
