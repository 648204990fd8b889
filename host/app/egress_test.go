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
