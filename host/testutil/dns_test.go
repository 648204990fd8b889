package testutil

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

const testZone = `
example.com.          SOA   ns1.example.com. hostmaster.example.com. 1 3600 600 86400 60
example.com.          MX    10 mx1.example.com.
example.com.          MX    20 MX2.example.com.
mx1.example.com.      A     127.0.0.2
mx2.example.com.      A     127.0.0.3
MX2.Example.COM.      AAAA  ::1
a.deep.example.com.   TXT   "hello world"
other.test.       60  A     192.0.2.1
`

func query(t *testing.T, s *DNSServer, net, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: net}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		t.Fatalf("%s query %s %s: %v", net, name, dns.TypeToString[qtype], err)
	}
	if r.Id != m.Id || len(r.Question) != 1 || r.Question[0].Name != name {
		t.Fatalf("reply does not match query: %v", r)
	}
	return r
}

func TestDNSAnswersUDPAndTCP(t *testing.T) {
	s := StartDNS(t, testZone)
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q", s.Addr)
	}
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			r := query(t, s, proto, "example.com.", dns.TypeMX)
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 2 {
				t.Fatalf("MX: %v", r)
			}
			var hosts []string
			for _, rr := range r.Answer {
				mx := rr.(*dns.MX)
				hosts = append(hosts, fmt.Sprintf("%d %s", mx.Preference, strings.ToLower(mx.Mx)))
				if mx.Hdr.Ttl != defaultZoneTTL {
					t.Errorf("TTL = %d, want default %d", mx.Hdr.Ttl, defaultZoneTTL)
				}
			}
			slices.Sort(hosts)
			if strings.Join(hosts, ",") != "10 mx1.example.com.,20 mx2.example.com." {
				t.Errorf("MX hosts = %v", hosts)
			}

			r = query(t, s, proto, "mx1.example.com.", dns.TypeA)
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.2" {
				t.Errorf("A: %v", r)
			}
			// Case-insensitive, answer spelled like the question.
			r = query(t, s, proto, "Mx2.EXAMPLE.com.", dns.TypeAAAA)
			if len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "::1" ||
				r.Answer[0].Header().Name != "Mx2.EXAMPLE.com." {
				t.Errorf("AAAA: %v", r)
			}
			r = query(t, s, proto, "other.test.", dns.TypeA)
			if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 60 {
				t.Errorf("explicit TTL: %v", r)
			}
		})
	}
}

func soaOf(t *testing.T, r *dns.Msg) *dns.SOA {
	t.Helper()
	if len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Fatalf("want empty answer and one authority record: %v", r)
	}
	soa, ok := r.Ns[0].(*dns.SOA)
	if !ok {
		t.Fatalf("authority is %T, want SOA", r.Ns[0])
	}
	return soa
}

func TestDNSNegativeAnswers(t *testing.T) {
	s := StartDNS(t, testZone)

	r := query(t, s, "udp", "nope.example.com.", dns.TypeMX)
	if r.Rcode != dns.RcodeNameError || !r.Authoritative {
		t.Fatalf("unknown name: %v", r)
	}
	if soa := soaOf(t, r); soa.Hdr.Name != "example.com." || soa.Minttl != 60 {
		t.Errorf("NXDOMAIN SOA = %v", soa)
	}

	r = query(t, s, "tcp", "mx1.example.com.", dns.TypeAAAA)
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		t.Fatalf("NODATA: %v", r)
	}
	if soa := soaOf(t, r); soa.Hdr.Name != "example.com." {
		t.Errorf("NODATA SOA = %v", soa)
	}

	// Empty non-terminal: exists, so NODATA rather than NXDOMAIN.
	r = query(t, s, "udp", "deep.example.com.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("empty non-terminal: %v", r)
	}
	soaOf(t, r)

	// No SOA in scope: a synthetic one is used.
	r = query(t, s, "udp", "missing.test.", dns.TypeA)
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("missing.test: %v", r)
	}
	if soa := soaOf(t, r); soa.Hdr.Name != "." {
		t.Errorf("synthetic SOA = %v", soa)
	}
	r = query(t, s, "udp", "other.test.", dns.TypeMX)
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("other.test MX: %v", r)
	}
	soaOf(t, r)
}

func TestDNSServFail(t *testing.T) {
	s := StartDNS(t, testZone)
	s.ServFail("EXAMPLE.com")
	for _, qt := range []uint16{dns.TypeMX, dns.TypeA, dns.TypeTXT} {
		if r := query(t, s, "udp", "example.com.", qt); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s: rcode %s, want SERVFAIL", dns.TypeToString[qt], dns.RcodeToString[r.Rcode])
		}
	}
	if r := query(t, s, "udp", "mx1.example.com.", dns.TypeA); r.Rcode != dns.RcodeSuccess {
		t.Errorf("other names must not fail: %v", r)
	}
	s.ClearServFail("example.com.")
	if r := query(t, s, "tcp", "example.com.", dns.TypeMX); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Errorf("after ClearServFail: %v", r)
	}
}

func TestDNSSetZone(t *testing.T) {
	s := StartDNS(t, testZone)
	if err := s.SetZone("$TTL 30\nexample.net. MX 5 mx.example.net.\nmx.example.net. A 127.0.0.9\n"); err != nil {
		t.Fatal(err)
	}
	if r := query(t, s, "udp", "example.com.", dns.TypeMX); r.Rcode != dns.RcodeNameError {
		t.Errorf("old records still served: %v", r)
	}
	r := query(t, s, "udp", "mx.example.net.", dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
		t.Fatalf("new records: %v", r)
	}
	if err := s.SetZone("example.org. MX not-a-number x."); err == nil {
		t.Fatalf("SetZone accepted bad zone text")
	}
	if r := query(t, s, "udp", "mx.example.net.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("bad SetZone replaced the zone: %v", r)
	}
}

func TestDNSQueryLog(t *testing.T) {
	s := StartDNS(t, testZone)
	query(t, s, "udp", "Example.COM.", dns.TypeMX)
	query(t, s, "tcp", "mx1.example.com.", dns.TypeA)
	query(t, s, "udp", "nope.example.com.", dns.TypeAAAA)
	s.ServFail("bad.example.com.")
	query(t, s, "udp", "bad.example.com.", dns.TypeTXT)
	want := []DNSQuery{
		{"example.com.", "MX"},
		{"mx1.example.com.", "A"},
		{"nope.example.com.", "AAAA"},
		{"bad.example.com.", "TXT"},
	}
	got := s.Queries()
	if !slices.Equal(got, want) {
		t.Fatalf("Queries = %v, want %v", got, want)
	}
	got[0].Name = "changed"
	if s.Queries()[0].Name != "example.com." {
		t.Fatalf("Queries did not return a copy")
	}
	s.ResetQueries()
	if n := len(s.Queries()); n != 0 {
		t.Fatalf("after ResetQueries: %d queries", n)
	}
	query(t, s, "udp", "example.com.", dns.TypeA)
	if got := s.Queries(); len(got) != 1 || got[0] != (DNSQuery{"example.com.", "A"}) {
		t.Fatalf("Queries after reset = %v", got)
	}
}

func TestDNSEDNSAndTruncation(t *testing.T) {
	var zone strings.Builder
	for i := range 60 {
		fmt.Fprintf(&zone, "big.test. A 10.0.%d.%d\n", i/256, i%256)
	}
	s := StartDNS(t, zone.String())

	r := query(t, s, "udp", "big.test.", dns.TypeA)
	if !r.Truncated || len(r.Answer) >= 60 {
		t.Fatalf("plain UDP: truncated=%v answers=%d, want truncated", r.Truncated, len(r.Answer))
	}
	r = query(t, s, "tcp", "big.test.", dns.TypeA)
	if r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("TCP: truncated=%v answers=%d, want all 60", r.Truncated, len(r.Answer))
	}

	m := new(dns.Msg)
	m.SetQuestion("big.test.", dns.TypeA)
	m.SetEdns0(4096, false)
	r, _, err := (&dns.Client{}).Exchange(m, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.IsEdns0() == nil || r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("EDNS UDP: opt=%v truncated=%v answers=%d", r.IsEdns0(), r.Truncated, len(r.Answer))
	}
}

func TestDNSConcurrent(t *testing.T) {
	s := StartDNS(t, testZone)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			proto := []string{"udp", "tcp"}[i%2]
			m := new(dns.Msg)
			m.SetQuestion("example.com.", dns.TypeMX)
			r, _, err := (&dns.Client{Net: proto}).Exchange(m, s.Addr)
			if err != nil {
				t.Error(err)
				return
			}
			if len(r.Answer) != 2 {
				t.Errorf("answers = %d", len(r.Answer))
			}
		})
		if i == 10 {
			if err := s.SetZone(testZone); err != nil {
				t.Error(err)
			}
		}
	}
	wg.Wait()
	if n := len(s.Queries()); n != 20 {
		t.Fatalf("logged %d queries, want 20", n)
	}
}

func TestStartDNSBadZone(t *testing.T) {
	msg := expectFatal(t, func(tb testing.TB) { StartDNS(tb, "example.com. MX x") })
	if !strings.Contains(msg, "StartDNS") {
		t.Errorf("fatal message %q", msg)
	}
}
