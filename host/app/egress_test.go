package app

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// A path's smtp_port replaces the default port only: a literal that names its own port keeps
// it (KumoMTA's precedence), even on a path that sets smtp_port.
func TestPathSMTPPortKeepsNamedPort(t *testing.T) {
	dns := testutil.StartDNS(t, zone)
	named := testutil.StartSink(t, "127.0.0.3:0")
	pathPort := testutil.StartSink(t, "127.0.0.3:0")
	namedPort := netip.MustParseAddrPort(named.Addr).Port()
	pp := netip.MustParseAddrPort(pathPort.Addr).Port()
	cfg := testConfig(t, t.TempDir(), dns.Addr, 9, fmt.Sprintf(`
[[egress.path]]
site = "127.0.0.3"
smtp_port = %d
[[egress.path]]
site = "127.0.0.3:%d"
smtp_port = %d
`, pp, namedPort, pp))
	a := startApp(t, cfg, nil)
	submit(t, a, "a@example.com", map[string]string{"routing_domain": fmt.Sprintf("[127.0.0.3]:%d", namedPort)})
	submit(t, a, "b@example.com", map[string]string{"routing_domain": "[127.0.0.3]"})
	if got := named.WaitCount(t, 1, 10*time.Second); got[0].To[0] != "a@example.com" {
		t.Fatalf("the literal's own port got %v", got[0].To)
	}
	if got := pathPort.WaitCount(t, 1, 10*time.Second); got[0].To[0] != "b@example.com" {
		t.Fatalf("the path's smtp_port got %v", got[0].To)
	}
	if named.Count() != 1 || pathPort.Count() != 1 {
		t.Fatalf("named port sink %d messages, smtp_port sink %d; want 1 and 1", named.Count(), pathPort.Count())
	}
}

// Paths that differ per site (a plugin putting the site in the EHLO name) do not make the
// delivery clients grow without bound; equal transports share one client.
func TestEgressClientsAreBounded(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "127.0.0.1:1", 9, "")
	e, err := newEgressPaths(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := e.defaults
	first := e.client(p)
	if e.client(p) != first {
		t.Fatal("the same transport got a second client")
	}
	for i := range maxClients + 100 {
		q := p
		q.EHLODomain = fmt.Sprintf("mx%d.example.net", i)
		e.client(q)
	}
	if n := len(e.clients); n > maxClients {
		t.Fatalf("%d clients kept, want at most %d", n, maxClients)
	}
	if c := e.client(p); c == nil {
		t.Fatal("no client after the map started over")
	}
}
