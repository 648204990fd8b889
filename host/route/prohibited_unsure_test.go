package route

import (
	"context"
	"net/netip"
	"testing"
)

// An MX set whose only addresses that resolved are prohibited, while another MX host's lookup
// failed (SERVFAIL), is not known to loop: the host that did not resolve may be the one that
// takes the mail. RFC 5321 §5.1 makes a temporary DNS error a temporary failure, so this is
// 451 4.4.4 and the message is retried, never the 550 5.4.4 bounce of a set whose every host
// is known to be prohibited.
func TestProhibitedWithAnUnresolvedHostIsTransient(t *testing.T) {
	srv := newTestDNS(t, `
nolisting.test.       300 IN MX 10 mx.nolisting.test.
nolisting.test.       300 IN MX 20 trap.nolisting.test.
mx.nolisting.test.    300 IN A 192.0.2.70
trap.nolisting.test.  300 IN A 127.0.0.1
`)
	srv.ServFail("mx.nolisting.test.")
	r, _ := newTestResolver(t, srv)
	r.Prohibited = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	ctx := context.Background()

	_, err := r.Resolve(ctx, "nolisting.test", nil)
	wantError(t, err, 451, "4.4.4", "")

	// The same in an mx_list.
	_, err = r.Resolve(ctx, "nolisting.test", []MXEntry{{Name: "mx.nolisting.test"}, {Name: "trap.nolisting.test"}})
	wantError(t, err, 451, "4.4.4", "")

	// Once the lookup works, the set resolves without the prohibited host.
	srv.mu.Lock()
	clear(srv.servfail)
	srv.mu.Unlock()
	r2, _ := newTestResolver(t, srv)
	r2.Prohibited = r.Prohibited
	site, err := r2.Resolve(ctx, "nolisting.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(site.Hosts); len(got) != 1 || got[0] != "192.0.2.70" {
		t.Fatalf("hosts %v", got)
	}
}
