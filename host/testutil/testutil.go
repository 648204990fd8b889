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
	"net"
	"slices"
	"testing"
	"time"
)

// MustListenPort returns a TCP port on ip that was free at the time of the
// call: it listens on ip:0, records the port and closes the listener. The port
// may be taken by someone else before the caller binds it, so prefer binding
// with port 0 and reading the address back when possible.
func MustListenPort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("testutil: listen on %s:0: %v", ip, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("testutil: close listener on %s: %v", l.Addr(), err)
	}
	return port
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
