package testutil

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// defaultZoneTTL is the TTL given to records whose zone text specifies none.
const defaultZoneTTL = 300

// DNSServer is an authoritative DNS server on 127.0.0.1 that answers from
// zone text. It serves UDP and TCP on the same port. It is safe for concurrent
// use.
//
// Answer rules:
//   - qname has records of qtype: NOERROR with those records (qtype ANY
//     returns every record of the name). CNAMEs are not chased.
//   - qname exists (it owns records, or it is an empty non-terminal above a
//     name that does) but has no record of qtype: NOERROR, empty answer and
//     an SOA in the authority section (NODATA).
//   - qname does not exist: NXDOMAIN with an SOA in the authority section.
//   - qname was passed to ServFail: SERVFAIL, whatever the type.
//
// The SOA used for negative answers is the zone's SOA whose owner most
// closely encloses qname; if there is none, a synthetic SOA owned by the
// root is used. Names are compared case-insensitively and answers carry the
// owner name spelled as in the question. Responses have the AA bit set, echo
// EDNS0 when the query carries it, and are truncated (TC bit) over UDP when
// they do not fit the client's buffer.
type DNSServer struct {
	// Addr is "127.0.0.1:port"; UDP and TCP listen on the same port.
	Addr string

	udp, tcp *dns.Server
	done     chan error // one value per serve goroutine when it returns
	stopOnce sync.Once

	mu       sync.Mutex
	zone     *zoneData // immutable once built; replaced by SetZone
	servfail map[string]bool
	queries  []DNSQuery
}

// DNSQuery is one question received by a DNSServer.
type DNSQuery struct {
	Name string // fully-qualified and lower-case, e.g. "example.com."
	Type string // "MX", "A", "AAAA", "TXT", ...; "TYPE65534" for unknown types
}

// zoneData is a parsed zone. It is never modified after parseZone returns.
type zoneData struct {
	// names maps each lower-case owner name, and each empty non-terminal
	// above one, to its records by type.
	names map[string]map[uint16][]dns.RR
	soas  []*dns.SOA
}

// StartDNS parses zone (origin ".", default TTL 300 unless the text sets
// one) and starts serving it on 127.0.0.1 over UDP and TCP on one port. Both
// sockets are bound and serving when it returns. The server stops when the
// test ends. A zone that does not parse is fatal.
func StartDNS(t testing.TB, zone string) *DNSServer {
	t.Helper()
	s, err := ServeDNS(zone, "127.0.0.1")
	if err != nil {
		t.Fatalf("testutil: StartDNS: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// ServeDNS is StartDNS outside a test (for the benchmark's zonedns tool): it serves zone on
// ip over UDP and TCP on one kernel-chosen port until Stop.
func ServeDNS(zone, ip string) (*DNSServer, error) {
	return serveDNSOn(zone, func() (net.PacketConn, net.Listener, error) { return listenUDPAndTCP(ip, 10) })
}

// ServeDNSAt serves zone on a fixed "ip:port" (UDP and TCP).
func ServeDNSAt(zone, addr string) (*DNSServer, error) {
	return serveDNSOn(zone, func() (net.PacketConn, net.Listener, error) {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			return nil, nil, err
		}
		return pc, l, nil
	})
}

func serveDNSOn(zone string, listen func() (net.PacketConn, net.Listener, error)) (*DNSServer, error) {
	z, err := parseZone(zone)
	if err != nil {
		return nil, err
	}
	s := &DNSServer{zone: z, servfail: map[string]bool{}}

	pc, l, err := listen()
	if err != nil {
		return nil, err
	}
	s.Addr = pc.LocalAddr().String()

	handler := dns.HandlerFunc(s.serveDNS)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: l, Handler: handler, NotifyStartedFunc: notify}
	s.done = make(chan error, 2)
	go func() { s.done <- s.udp.ActivateAndServe() }()
	go func() { s.done <- s.tcp.ActivateAndServe() }()

	// Wait until both servers are running so that Stop can shut them down (miekg/dns
	// refuses to shut down a server not yet started).
	for range 2 {
		select {
		case <-started:
		case err := <-s.done:
			pc.Close()
			l.Close()
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	return s, nil
}

// listenUDPAndTCP binds a UDP socket on ip with a kernel-chosen port, then a
// TCP listener on the same port, retrying with a new port if TCP is taken.
func listenUDPAndTCP(ip string, attempts int) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range attempts {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err == nil {
			return pc, l, nil
		}
		lastErr = err
		pc.Close()
	}
	return nil, nil, fmt.Errorf("no port free for both UDP and TCP on %s after %d attempts: %w", ip, attempts, lastErr)
}

// Stop shuts the server down.
func (s *DNSServer) Stop() {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.udp.ShutdownContext(ctx)
		s.tcp.ShutdownContext(ctx)
		for range 2 {
			select {
			case <-s.done:
			case <-ctx.Done():
				return
			}
		}
	})
}

// SetZone replaces all records with those parsed from zone. On a parse error
// the current records are kept. Names set with ServFail stay failing.
func (s *DNSServer) SetZone(zone string) error {
	z, err := parseZone(zone)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.zone = z
	s.mu.Unlock()
	return nil
}

// ServFail makes the server answer SERVFAIL for name, whatever the query
// type, until ClearServFail is called for it.
func (s *DNSServer) ServFail(name string) {
	s.mu.Lock()
	s.servfail[canonicalName(name)] = true
	s.mu.Unlock()
}

// ClearServFail undoes ServFail(name): the name is answered from the zone
// again.
func (s *DNSServer) ClearServFail(name string) {
	s.mu.Lock()
	delete(s.servfail, canonicalName(name))
	s.mu.Unlock()
}

// Queries returns a copy of the questions received so far, in arrival order.
func (s *DNSServer) Queries() []DNSQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DNSQuery(nil), s.queries...)
}

// ResetQueries empties the query log.
func (s *DNSServer) ResetQueries() {
	s.mu.Lock()
	s.queries = nil
	s.mu.Unlock()
}

func canonicalName(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}

func (s *DNSServer) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)

	if r.Opcode != dns.OpcodeQuery {
		m.SetRcode(r, dns.RcodeNotImplemented)
		s.write(w, r, m)
		return
	}
	if len(r.Question) != 1 {
		m.SetRcode(r, dns.RcodeFormatError)
		s.write(w, r, m)
		return
	}
	q := r.Question[0]
	name := canonicalName(q.Name)

	s.mu.Lock()
	s.queries = append(s.queries, DNSQuery{Name: name, Type: dns.Type(q.Qtype).String()})
	fail := s.servfail[name]
	z := s.zone
	s.mu.Unlock()

	if fail {
		m.SetRcode(r, dns.RcodeServerFailure)
		s.write(w, r, m)
		return
	}

	m.Authoritative = true
	types, ok := z.names[name]
	if !ok {
		m.SetRcode(r, dns.RcodeNameError)
		m.Ns = []dns.RR{z.soaFor(name)}
		s.write(w, r, m)
		return
	}
	var rrs []dns.RR
	if q.Qtype == dns.TypeANY {
		for _, set := range types {
			rrs = append(rrs, set...)
		}
	} else {
		rrs = types[q.Qtype]
	}
	if len(rrs) == 0 {
		m.Ns = []dns.RR{z.soaFor(name)}
		s.write(w, r, m)
		return
	}
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = q.Name
		m.Answer = append(m.Answer, c)
	}
	s.write(w, r, m)
}

// write echoes EDNS0, truncates UDP answers to the client's buffer size and
// sends m.
func (s *DNSServer) write(w dns.ResponseWriter, r, m *dns.Msg) {
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		if opt.UDPSize() > uint16(size) {
			size = int(opt.UDPSize())
		}
		m.SetEdns0(4096, opt.Do())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// soaFor returns the SOA to put in the authority section of a negative
// answer for name.
func (z *zoneData) soaFor(name string) dns.RR {
	var best *dns.SOA
	for _, soa := range z.soas {
		if dns.IsSubDomain(soa.Hdr.Name, name) &&
			(best == nil || dns.CountLabel(soa.Hdr.Name) > dns.CountLabel(best.Hdr.Name)) {
			best = soa
		}
	}
	if best == nil {
		return &dns.SOA{
			Hdr:     dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: defaultZoneTTL},
			Ns:      "ns.invalid.",
			Mbox:    "hostmaster.invalid.",
			Serial:  1,
			Refresh: 3600,
			Retry:   600,
			Expire:  86400,
			Minttl:  defaultZoneTTL,
		}
	}
	return dns.Copy(best)
}

// parseZone parses zone text with origin "." and a default TTL of 300.
func parseZone(text string) (*zoneData, error) {
	z := &zoneData{names: map[string]map[uint16][]dns.RR{}}
	zp := dns.NewZoneParser(strings.NewReader(text), ".", "")
	zp.SetDefaultTTL(defaultZoneTTL)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		owner := strings.ToLower(h.Name)
		types := z.names[owner]
		if types == nil {
			types = map[uint16][]dns.RR{}
			z.names[owner] = types
		}
		types[h.Rrtype] = append(types[h.Rrtype], rr)
		if soa, ok := rr.(*dns.SOA); ok {
			soa.Hdr.Name = owner
			z.soas = append(z.soas, soa)
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("parse zone: %w", err)
	}
	// Ancestors of owner names exist as empty non-terminals: they get NODATA
	// rather than NXDOMAIN.
	owners := make([]string, 0, len(z.names))
	for owner := range z.names {
		owners = append(owners, owner)
	}
	for _, owner := range owners {
		for off, end := dns.NextLabel(owner, 0); !end; off, end = dns.NextLabel(owner, off) {
			parent := owner[off:]
			if _, ok := z.names[parent]; !ok {
				z.names[parent] = map[uint16][]dns.RR{}
			}
		}
	}
	return z, nil
}
