package route

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// testDNS is a real DNS server on loopback (UDP and TCP on one port) that answers from zone
// text: NXDOMAIN for unknown names, NODATA with an SOA for known names without the asked type,
// SERVFAIL for names in servfail, silence for names in drop, and a truncated UDP answer for names
// in truncate (the full answer comes over TCP). It logs every question.
//
// It is written here rather than taken from host/testutil so that route's tests stand alone.
type testDNS struct {
	Addr string

	mu       sync.Mutex
	records  map[string][]dns.RR // by lower-cased FQDN
	servfail map[string]bool
	drop     map[string]bool
	truncate map[string]bool
	hold     map[string]chan struct{} // answers for these names wait until the channel closes
	queries  []testQuery
}

type testQuery struct {
	Name string // lower-cased FQDN
	Type uint16
	Net  string // "udp" or "tcp"
}

func (q testQuery) String() string { return q.Name + " " + dns.TypeToString[q.Type] }

const testSOA = "example. 60 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60"

func newTestDNS(t *testing.T, zone string) *testDNS {
	t.Helper()
	s := &testDNS{
		records:  make(map[string][]dns.RR),
		servfail: make(map[string]bool),
		drop:     make(map[string]bool),
		truncate: make(map[string]bool),
		hold:     make(map[string]chan struct{}),
	}
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "zone")
	zp.SetDefaultTTL(300)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone: %v", err)
	}

	// UDP and TCP share the port so that the resolver's TCP fallback reaches the same server.
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("listen tcp: %v", err)
	}
	s.Addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

func (s *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	network := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	s.mu.Lock()
	s.queries = append(s.queries, testQuery{Name: name, Type: q.Qtype, Net: network})
	servfail, drop, truncate := s.servfail[name], s.drop[name], s.truncate[name]
	rrs, known := s.records[name]
	hold := s.hold[name]
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}

	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	switch {
	case drop:
		return
	case servfail:
		m.Rcode = dns.RcodeServerFailure
	case truncate && network == "udp":
		m.Truncated = true
	case !known:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, mustRR(testSOA))
	default:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		if len(m.Answer) == 0 {
			m.Ns = append(m.Ns, mustRR(testSOA))
		}
	}
	_ = w.WriteMsg(m)
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(fmt.Sprintf("%s: %v", s, err))
	}
	return rr
}

// set marks names (FQDN, any case) in one of the misbehaviour maps.
func (s *testDNS) set(m map[string]bool, names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		m[strings.ToLower(dns.Fqdn(n))] = true
	}
}

func (s *testDNS) ServFail(names ...string) { s.set(s.servfail, names...) }
func (s *testDNS) Drop(names ...string)     { s.set(s.drop, names...) }
func (s *testDNS) Truncate(names ...string) { s.set(s.truncate, names...) }

// Hold makes the answers for name wait until release is called (once, before the test ends).
func (s *testDNS) Hold(name string) (release func()) {
	c := make(chan struct{})
	s.mu.Lock()
	s.hold[strings.ToLower(dns.Fqdn(name))] = c
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(c) }) }
}

// Queries returns the questions asked so far, as "name TYPE", and forgets them.
func (s *testDNS) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.queries))
	for i, q := range s.queries {
		out[i] = q.String()
	}
	s.queries = nil
	return out
}

// Asked is how many times name was asked about so far (with any type); it forgets nothing.
func (s *testDNS) Asked(name string) int {
	name = strings.ToLower(dns.Fqdn(name))
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, q := range s.queries {
		if q.Name == name {
			n++
		}
	}
	return n
}

// RawQueries returns the questions asked so far with their transport, and forgets them.
func (s *testDNS) RawQueries() []testQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.queries
	s.queries = nil
	return out
}
