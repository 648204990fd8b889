package route

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

const testZone = `
pref.test.          300 IN MX 10 mx1.pref.test.
pref.test.          300 IN MX 10 mx2.pref.test.
pref.test.          300 IN MX 20 backup.pref.test.
mx1.pref.test.      300 IN A    192.0.2.1
mx2.pref.test.      300 IN A    192.0.2.2
mx2.pref.test.      300 IN AAAA 2001:db8::2
backup.pref.test.   300 IN A    192.0.2.3

implicit.test.      300 IN A    192.0.2.10
implicit.test.      300 IN AAAA 2001:db8::10

nullmx.test.        300 IN MX 0 .
nodata.test.        300 IN TXT  "no mail here"

broken.test.        300 IN MX 10 gone.broken.test.
partial.test.       300 IN MX 10 gone.partial.test.
partial.test.       300 IN MX 20 ok.partial.test.
ok.partial.test.    300 IN A    192.0.2.20
odd.test.           300 IN MX 10 a\032b.odd.test.
odd.test.           300 IN MX 20 ok.partial.test.
a\032b.odd.test.    300 IN A    192.0.2.21
mixednull.test.     300 IN MX 0  .
mixednull.test.     300 IN MX 10 ok.partial.test.

loop.test.          300 IN MX 10 self.loop.test.
loop.test.          300 IN MX 20 other.loop.test.
self.loop.test.     300 IN A    127.0.0.1
other.loop.test.    300 IN A    192.0.2.30
loopall.test.       300 IN MX 10 self.loop.test.

smart.relay.test.   300 IN A    192.0.2.40
smart.relay.test.   300 IN A    192.0.2.41
smart.relay.test.   300 IN AAAA 2001:db8::40
second.relay.test.  300 IN A    192.0.2.42

ttl.test.           60  IN MX 10 mx.ttl.test.
mx.ttl.test.        120 IN A    192.0.2.50

trunc.test.         300 IN MX 10 mx.trunc.test.
mx.trunc.test.      300 IN A    192.0.2.60

servfail.test.      300 IN MX 10 mx.servfail.test.
slow.test.          300 IN MX 10 mx.slow.test.
`

// fakeClock is a settable clock for the cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestResolver(t *testing.T, srv *testDNS) (*Resolver, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return &Resolver{
		Servers: []string{srv.Addr},
		Timeout: time.Second,
		Now:     clock.Now,
	}, clock
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// wantQueries compares the server's query log, in any order (lookups run in parallel).
func wantQueries(t *testing.T, srv *testDNS, want ...string) {
	t.Helper()
	got := sorted(srv.Queries())
	if !slices.Equal(got, sorted(want)) {
		t.Errorf("queries = %q, want %q", got, sorted(want))
	}
}

// wantError checks that err is a *message.Error with the code, enhanced code and a text part.
func wantError(t *testing.T, err error, code int, enhanced, text string) *message.Error {
	t.Helper()
	var e *message.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *message.Error %d %s, got %v", code, enhanced, err)
	}
	if e.Code != code || e.Enhanced != enhanced || !strings.Contains(e.Text, text) {
		t.Errorf("got %q, want %d %s containing %q", e.Reply.String(), code, enhanced, text)
	}
	if e.Temporary() != (code/100 == 4) {
		t.Errorf("Temporary() = %v for %d", e.Temporary(), code)
	}
	return e
}

func addrs(hosts []Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.Addr.String())
	}
	return out
}

func TestResolvePreferenceAndShuffle(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	ctx := context.Background()
	firsts := map[string]int{}
	for i := range 200 {
		site, err := r.Resolve(ctx, "Pref.TEST", nil)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			wantQueries(t, srv, "pref.test. MX",
				"mx1.pref.test. A", "mx1.pref.test. AAAA",
				"mx2.pref.test. A", "mx2.pref.test. AAAA",
				"backup.pref.test. A", "backup.pref.test. AAAA")
		}
		if site.Name != "mx1.pref.test,mx2.pref.test,backup.pref.test" {
			t.Fatalf("site name %q", site.Name)
		}
		got := addrs(site.Hosts)
		if len(got) != 4 {
			t.Fatalf("hosts %v", site.Hosts)
		}
		// Preference 10 first, in any order; preference 20 last.
		if !slices.Equal(sorted(got[:3]), []string{"192.0.2.1", "192.0.2.2", "2001:db8::2"}) || got[3] != "192.0.2.3" {
			t.Fatalf("hosts out of preference order: %v", got)
		}
		for _, h := range site.Hosts {
			wantName := map[string]string{"192.0.2.1": "mx1.pref.test", "192.0.2.2": "mx2.pref.test",
				"2001:db8::2": "mx2.pref.test", "192.0.2.3": "backup.pref.test"}[h.Addr.String()]
			if h.Name != wantName || h.Port != 25 {
				t.Fatalf("host %+v, want name %q port 25", h, wantName)
			}
		}
		firsts[got[0]]++
	}
	// The cache answered every call after the first.
	wantQueries(t, srv)
	// Shuffled within the preference: every one of the three came first at some point
	// (the chance that one never does in 200 fair shuffles is below 1e-34).
	if len(firsts) != 3 {
		t.Errorf("first hosts over 200 calls: %v", firsts)
	}
}

func TestResolvePorts(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	r.DefaultPort = 2500
	ctx := context.Background()

	site, err := r.Resolve(ctx, "implicit.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if site.Name != "implicit.test" || site.Hosts[0].Port != 2500 {
		t.Errorf("default port: %+v", site)
	}
	site, err = r.Resolve(ctx, "implicit.test:2525", nil)
	if err != nil {
		t.Fatal(err)
	}
	if site.Name != "implicit.test:2525" {
		t.Errorf("site name %q", site.Name)
	}
	for _, h := range site.Hosts {
		if h.Port != 2525 {
			t.Errorf("host %+v, want port 2525", h)
		}
	}
}

func TestResolveImplicitMX(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	site, err := r.Resolve(context.Background(), "implicit.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantQueries(t, srv, "implicit.test. MX", "implicit.test. A", "implicit.test. AAAA")
	if site.Name != "implicit.test" {
		t.Errorf("site name %q", site.Name)
	}
	if got := sorted(addrs(site.Hosts)); !slices.Equal(got, []string{"192.0.2.10", "2001:db8::10"}) {
		t.Errorf("hosts %v", site.Hosts)
	}
	for _, h := range site.Hosts {
		if h.Name != "implicit.test" {
			t.Errorf("host name %q", h.Name)
		}
	}

	// A name with neither MX nor address records has nowhere to go: transient, like KumoMTA.
	_, err = r.Resolve(context.Background(), "nodata.test", nil)
	wantError(t, err, 451, "4.4.4", "MX didn't resolve to any hosts")
}

func TestResolveNullMX(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	_, err := r.Resolve(context.Background(), "nullmx.test", nil)
	wantError(t, err, 556, "5.1.10", "Recipient address has a null MX")
	wantQueries(t, srv, "nullmx.test. MX")
}

func TestResolveNXDOMAIN(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	_, err := r.Resolve(context.Background(), "nosuch.test", nil)
	wantError(t, err, 451, "4.4.4", "failed to resolve nosuch.test: NXDOMAIN")
	wantQueries(t, srv, "nosuch.test. MX")
}

func TestResolveServFail(t *testing.T) {
	srv := newTestDNS(t, testZone)
	srv.ServFail("servfail.test")
	r, _ := newTestResolver(t, srv)
	for range 2 {
		_, err := r.Resolve(context.Background(), "servfail.test", nil)
		e := wantError(t, err, 451, "4.4.4", "failed to resolve servfail.test")
		// The peer sees no resolver detail; the cause keeps it for the logs.
		if strings.Contains(e.Text, "127.0.0.1") || e.Cause == nil || !strings.Contains(e.Cause.Error(), "SERVFAIL") {
			t.Errorf("text %q, cause %v", e.Text, e.Cause)
		}
		// SERVFAIL is not cached: each attempt asks again.
		wantQueries(t, srv, "servfail.test. MX")
	}
}

func TestResolveTimeoutAndNextServer(t *testing.T) {
	bad := newTestDNS(t, testZone)
	bad.Drop("slow.test", "implicit.test")
	good := newTestDNS(t, testZone)
	r := &Resolver{Servers: []string{bad.Addr}, Timeout: 100 * time.Millisecond}

	start := time.Now()
	_, err := r.Resolve(context.Background(), "slow.test", nil)
	wantError(t, err, 451, "4.4.4", "failed to resolve slow.test")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}

	// Servers are tried in order: a silent first server falls through to the second.
	r = &Resolver{Servers: []string{bad.Addr, good.Addr}, Timeout: 100 * time.Millisecond}
	site, err := r.Resolve(context.Background(), "implicit.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(site.Hosts) != 2 {
		t.Errorf("hosts %v", site.Hosts)
	}
	wantQueries(t, good, "implicit.test. MX", "implicit.test. A", "implicit.test. AAAA")
}

func TestResolveHostFailuresSkipped(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	site, err := r.Resolve(context.Background(), "partial.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if site.Name != "gone.partial.test,ok.partial.test" {
		t.Errorf("site name %q (the site is the MX set, resolvable or not)", site.Name)
	}
	if got := addrs(site.Hosts); !slices.Equal(got, []string{"192.0.2.20"}) {
		t.Errorf("hosts %v", got)
	}

	// A host name that is no DNS name (here "a b.odd.test") is skipped, not looked up.
	srv.Queries()
	site, err = r.Resolve(context.Background(), "odd.test", nil)
	if err != nil || site.Name != "ok.partial.test" || !slices.Equal(addrs(site.Hosts), []string{"192.0.2.20"}) {
		t.Errorf("odd.test: %+v, %v", site, err)
	}
	wantQueries(t, srv, "odd.test. MX")

	// A "." beside other MX records breaks RFC 7505; the usable records are used.
	site, err = r.Resolve(context.Background(), "mixednull.test", nil)
	if err != nil || site.Name != "ok.partial.test" || !slices.Equal(addrs(site.Hosts), []string{"192.0.2.20"}) {
		t.Errorf("mixednull.test: %+v, %v", site, err)
	}

	_, err = r.Resolve(context.Background(), "broken.test", nil)
	e := wantError(t, err, 451, "4.4.4", "MX didn't resolve to any hosts")
	if e.Cause == nil || !strings.Contains(e.Cause.Error(), "gone.broken.test") {
		t.Errorf("cause %v", e.Cause)
	}
}

func TestResolveTruncatedFallsBackToTCP(t *testing.T) {
	srv := newTestDNS(t, testZone)
	srv.Truncate("trunc.test")
	r, _ := newTestResolver(t, srv)
	site, err := r.Resolve(context.Background(), "trunc.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(site.Hosts); !slices.Equal(got, []string{"192.0.2.60"}) {
		t.Errorf("hosts %v", got)
	}
	var nets []string
	for _, q := range srv.RawQueries() {
		if q.Name == "trunc.test." {
			nets = append(nets, q.Net)
		}
	}
	if !slices.Equal(nets, []string{"udp", "tcp"}) {
		t.Errorf("trunc.test queried over %v, want udp then tcp", nets)
	}
}

func TestResolveMXList(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	list := []MXEntry{
		{Name: "smart.relay.test"},
		{Name: "[192.0.2.99]:2525"},
		{Name: "mx.example.test", Addr: "192.0.2.77:587"},
		{Name: "second.relay.test:2526"},
		{Name: "tls.example.test", Addr: "[IPv6:2001:db8::77]"},
		{Name: "v6.example.test:465", Addr: "[2001:db8::78]:2465"},
		{Name: "nosuch.test"}, // unresolvable entries are skipped
	}
	site, err := r.Resolve(context.Background(), "example.com", list)
	if err != nil {
		t.Fatal(err)
	}
	// Plain names: A and AAAA only, never MX, and nothing for the others.
	wantQueries(t, srv,
		"smart.relay.test. A", "smart.relay.test. AAAA",
		"second.relay.test. A", "second.relay.test. AAAA",
		"nosuch.test. A", "nosuch.test. AAAA")
	wantName := "mx_list:smart.relay.test,[192.0.2.99]:2525,192.0.2.77:587,second.relay.test:2526," +
		"[IPv6:2001:db8::77],[2001:db8::78]:2465,nosuch.test"
	if site.Name != wantName {
		t.Errorf("site name %q, want %q", site.Name, wantName)
	}
	ip := netip.MustParseAddr
	want := []Host{
		{"smart.relay.test", ip("192.0.2.40"), 25, true},
		{"smart.relay.test", ip("192.0.2.41"), 25, true},
		{"smart.relay.test", ip("2001:db8::40"), 25, true},
		{"[192.0.2.99]", ip("192.0.2.99"), 2525, false},
		{"mx.example.test", ip("192.0.2.77"), 587, false},
		{"second.relay.test", ip("192.0.2.42"), 2526, false},
		{"tls.example.test", ip("2001:db8::77"), 25, true},
		{"v6.example.test", ip("2001:db8::78"), 2465, false},
	}
	if !slices.Equal(site.Hosts, want) {
		t.Errorf("hosts\n got %v\nwant %v", site.Hosts, want)
	}

	// Listed order is kept on every call: no shuffle.
	for range 20 {
		again, err := r.Resolve(context.Background(), "example.com", list)
		if err != nil || !slices.Equal(again.Hosts, want) {
			t.Fatalf("second resolution %v, %v", again.Hosts, err)
		}
	}
	wantQueries(t, srv) // cached

	// A port from the name is used when the addr has none.
	site, err = r.Resolve(context.Background(), "example.com", []MXEntry{{Name: "n.test:2600", Addr: "192.0.2.1"}})
	if err != nil || site.Hosts[0].Port != 2600 || site.Name != "mx_list:192.0.2.1" {
		t.Errorf("name port: %+v, %v", site, err)
	}
}

func TestResolveMXListErrors(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	ctx := context.Background()

	_, err := r.Resolve(ctx, "example.com", []MXEntry{{Name: "nosuch.test"}, {Name: "nodata.test"}})
	wantError(t, err, 451, "4.4.4", "mx_list for \"example.com\" didn't resolve to any hosts")

	for _, e := range []MXEntry{
		{},
		{Addr: "192.0.2.1"},
		{Name: "[10.0.0.1"},
		{Name: "ok.test", Addr: "not-an-ip"},
		{Name: "ok.test", Addr: "192.0.2.1:0"},
		{Name: "ok.test", Addr: "fe80::1%eth0"},
	} {
		if e.Validate() == nil {
			t.Errorf("Validate(%+v) accepted", e)
		}
		_, err := r.Resolve(ctx, "example.com", []MXEntry{{Name: "smart.relay.test"}, e})
		wantError(t, err, 550, "5.1.2", "invalid")
	}
	wantQueries(t, srv, "nosuch.test. A", "nosuch.test. AAAA", "nodata.test. A", "nodata.test. AAAA")
}

func TestResolveLiteralsSkipDNS(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	ip := netip.MustParseAddr
	tests := []struct {
		dest string
		site Site
	}{
		{"[192.0.2.5]", Site{"192.0.2.5", []Host{{"[192.0.2.5]", ip("192.0.2.5"), 25, true}}}},
		{"[192.0.2.5]:2525", Site{"192.0.2.5:2525", []Host{{"[192.0.2.5]", ip("192.0.2.5"), 2525, false}}}},
		{"[IPv6:2001:db8::5]", Site{"2001:db8::5", []Host{{"[IPv6:2001:db8::5]", ip("2001:db8::5"), 25, true}}}},
		{"[ipv6:::1]", Site{"::1", []Host{{"[IPv6:::1]", ip("::1"), 25, true}}}},
		{"[::1]", Site{"::1", []Host{{"[IPv6:::1]", ip("::1"), 25, true}}}},
	}
	for _, tt := range tests {
		t.Run(tt.dest, func(t *testing.T) {
			site, err := r.Resolve(context.Background(), tt.dest, nil)
			if err != nil {
				t.Fatal(err)
			}
			if site.Name != tt.site.Name || !slices.Equal(site.Hosts, tt.site.Hosts) {
				t.Errorf("got %+v, want %+v", site, tt.site)
			}
		})
	}
	site, err := r.Resolve(context.Background(), "example.com", []MXEntry{{Name: "[192.0.2.6]"}, {Name: "[IPv6:::1]"}})
	if err != nil || len(site.Hosts) != 2 || site.Name != "mx_list:[192.0.2.6],[IPv6:::1]" {
		t.Errorf("mx_list literals: %+v, %v", site, err)
	}
	wantQueries(t, srv)

	_, err = r.Resolve(context.Background(), "[192.0.2.5", nil)
	wantError(t, err, 550, "5.1.2", "missing ']'")
}

func TestResolveProhibited(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	r.Prohibited = []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("0.0.0.0/8"),
	}
	ctx := context.Background()

	for dest, addr := range map[string]string{
		"[127.0.0.1]":             "127.0.0.1",
		"[IPv6:::1]":              "::1",
		"[IPv6:::ffff:127.0.0.2]": "::ffff:127.0.0.2", // mapped addresses reach IPv4 loopback
		"[0.0.0.0]":               "0.0.0.0",
		"loopall.test":            "127.0.0.1",
	} {
		_, err := r.Resolve(ctx, dest, nil)
		wantError(t, err, 550, "5.4.4", addr+" is on the list of prohibited hosts")
	}
	_, err := r.Resolve(ctx, "example.com", []MXEntry{{Name: "mx.example.test", Addr: "127.0.0.1"}})
	wantError(t, err, 550, "5.4.4", "127.0.0.1 is on the list of prohibited hosts")

	// Only the prohibited addresses are dropped.
	site, err := r.Resolve(ctx, "loop.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(site.Hosts); !slices.Equal(got, []string{"192.0.2.30"}) {
		t.Errorf("hosts %v", got)
	}

	// Without a list (tests deliver to loopback), loopback is fine.
	r.Prohibited = nil
	if _, err := r.Resolve(ctx, "[127.0.0.1]", nil); err != nil {
		t.Error(err)
	}
}

func TestResolveCacheTTL(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, clock := newTestResolver(t, srv)
	ctx := context.Background()
	resolve := func() {
		t.Helper()
		site, err := r.Resolve(ctx, "ttl.test", nil)
		if err != nil || !slices.Equal(addrs(site.Hosts), []string{"192.0.2.50"}) {
			t.Fatalf("got %+v, %v", site, err)
		}
	}
	resolve()
	wantQueries(t, srv, "ttl.test. MX", "mx.ttl.test. A", "mx.ttl.test. AAAA")
	resolve()
	wantQueries(t, srv)

	// The MX answer (TTL 60) expires first; the A answer (TTL 120) is still good, and the AAAA
	// NODATA is cached for NegativeTTL (5 minutes by default).
	clock.Advance(61 * time.Second)
	resolve()
	wantQueries(t, srv, "ttl.test. MX")
	clock.Advance(59 * time.Second) // t = 120s: the A answer expires, the new MX answer has 1s left
	resolve()
	wantQueries(t, srv, "mx.ttl.test. A")
	clock.Advance(200 * time.Second)
	resolve()
	wantQueries(t, srv, "ttl.test. MX", "mx.ttl.test. A", "mx.ttl.test. AAAA")
}

func TestResolveNegativeCache(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, clock := newTestResolver(t, srv)
	r.NegativeTTL = time.Minute
	ctx := context.Background()

	for range 3 {
		_, err := r.Resolve(ctx, "nosuch.test", nil)
		wantError(t, err, 451, "4.4.4", "NXDOMAIN")
	}
	wantQueries(t, srv, "nosuch.test. MX")
	_, _ = r.Resolve(ctx, "nodata.test", nil)
	_, _ = r.Resolve(ctx, "nodata.test", nil)
	wantQueries(t, srv, "nodata.test. MX", "nodata.test. A", "nodata.test. AAAA")

	clock.Advance(59 * time.Second)
	_, _ = r.Resolve(ctx, "nosuch.test", nil)
	wantQueries(t, srv)
	clock.Advance(2 * time.Second)
	_, _ = r.Resolve(ctx, "nosuch.test", nil)
	_, _ = r.Resolve(ctx, "nodata.test", nil)
	wantQueries(t, srv, "nosuch.test. MX", "nodata.test. MX", "nodata.test. A", "nodata.test. AAAA")
}

func TestResolveConcurrent(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			dest := []string{"pref.test", "implicit.test", "partial.test", "[192.0.2.1]"}[i%4]
			if _, err := r.Resolve(context.Background(), dest, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestResolveCanceled(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Resolve(ctx, "pref.test", nil)
	wantError(t, err, 451, "4.4.4", "failed to resolve pref.test")
}

func TestResolversFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:2\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ResolversFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.53:53", "[2001:db8::53]:53"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	empty := filepath.Join(t.TempDir(), "empty.conf")
	if err := os.WriteFile(empty, []byte("search example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolversFromFile(empty); err == nil {
		t.Error("a file without nameservers was accepted")
	}
	if _, err := ResolversFromFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
}
