package route

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestResolveBoundsAHostileMXSet: a domain that publishes 25 MX names of three addresses each
// gets its best names looked up and its first addresses tried, not all of them: otherwise one
// message would hold a connection for 75 connect timeouts and cost 51 queries.
func TestResolveBoundsAHostileMXSet(t *testing.T) {
	var zone strings.Builder
	for i := range 25 {
		fmt.Fprintf(&zone, "many.test. 300 IN MX %d mx%02d.many.test.\n", 10+i, i)
		for j := range 3 {
			fmt.Fprintf(&zone, "mx%02d.many.test. 300 IN A 198.51.%d.%d\n", i, 100+i, j+1)
		}
	}
	srv := newTestDNS(t, zone.String())
	r, _ := newTestResolver(t, srv)
	site, err := r.Resolve(context.Background(), "many.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(site.Hosts) != 20 {
		t.Fatalf("%d hosts, want 20", len(site.Hosts))
	}
	for i, h := range site.Hosts {
		// Preference order: the first 20 addresses are those of the first names, three each.
		if want := fmt.Sprintf("mx%02d.many.test", i/3); h.Name != want {
			t.Fatalf("host %d is %s, want %s (best preference first)", i, h.Name, want)
		}
	}
	if n := len(srv.Queries()); n > 1+2*20 {
		t.Fatalf("%d queries for one resolve, want at most 41", n)
	}
}
