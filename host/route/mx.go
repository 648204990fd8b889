package route

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/wasmta/wasmta/host/message"
)

// Host is one address a site's messages may be delivered to.
type Host struct {
	Name string     // MX host name (or mx_list name, or the literal text) for logs and TLS SNI
	Addr netip.Addr // the address to connect to
	Port uint16     // resolved port (entry port, else default port)
	// DefaultPort: the destination named no port, so Port is the resolver's default, which
	// an egress path's smtp_port replaces (a port the destination names is kept).
	DefaultPort bool
}

// Site is where a destination resolved to: the key of a ready queue and the hosts to try.
type Site struct {
	// Name is the ready-queue key; scheduled queues whose destinations resolve to the same Name
	// share its connections (design.md §4):
	//   - a literal: the bare IP ("10.0.0.1", "::1");
	//   - an MX set: the MX host names sorted by preference then name, joined with "," (an
	//     implicit MX: the domain itself);
	//   - an mx_list: "mx_list:" + the entries' labels (MXEntry.Label) joined with ",".
	// A port named in the destination is appended as ":port" to a literal's or an MX set's name,
	// since the same hosts on another port are another place to connect to.
	Name string
	// Hosts in try order: preference ascending, addresses shuffled within one preference (to
	// spread load, RFC 5321 §5.1); an mx_list in listed order, each name expanded to its A then
	// AAAA addresses in resolver order.
	Hosts []Host
}

// MXEntry is one element of a queue config's mx_list (design.md §4, §5): Name only ("smart.host.local",
// "[10.0.0.1]", "host:2525"), or Name with Addr, an IP ("10.0.0.1", "[10.0.0.1]",
// "10.0.0.1:2525", "[::1]:2525", "[IPv6:::1]") to connect to while Name serves TLS SNI and logs.
type MXEntry struct{ Name, Addr string }

// Label is the entry's part of an mx_list site name: Addr when set, else Name, as written
// (KumoMTA's MxListEntry::label).
func (e MXEntry) Label() string {
	if e.Addr != "" {
		return e.Addr
	}
	return e.Name
}

// Validate reports whether the entry can be used, so that a plugin's queue config is refused at
// plugin time rather than bouncing mail at delivery time (design.md §3).
func (e MXEntry) Validate() error {
	_, _, _, err := e.parse()
	return err
}

// parse returns the entry's name target, and for a {Name, Addr} entry the address and its port.
func (e MXEntry) parse() (name Target, addr netip.Addr, port uint16, err error) {
	if e.Name == "" {
		if e.Addr != "" {
			return Target{}, netip.Addr{}, 0, targetErr("invalid mx_list entry {addr %s}: a name is required with an addr", show(e.Addr))
		}
		return Target{}, netip.Addr{}, 0, targetErr("invalid mx_list entry: empty")
	}
	name, err = ParseTarget(e.Name)
	if err != nil || e.Addr == "" {
		return name, netip.Addr{}, 0, err
	}
	if a, err := netip.ParseAddr(e.Addr); err == nil && a.Zone() == "" {
		return name, a, 0, nil
	}
	if ap, err := netip.ParseAddrPort(e.Addr); err == nil && ap.Addr().Zone() == "" && ap.Port() != 0 {
		return name, ap.Addr(), ap.Port(), nil
	}
	if t, err := ParseTarget(e.Addr); err == nil && t.IsLiteral() {
		return name, t.IP, t.Port, nil
	}
	return Target{}, netip.Addr{}, 0, targetErr("invalid mx_list entry {name %s, addr %s}: addr is not an IP address", show(e.Name), show(e.Addr))
}

// Resolver resolves destinations into sites (design.md §4). The zero value is ready to use (servers
// from /etc/resolv.conf, the defaults below); set the fields before first use and do not change
// them afterwards. It is safe for concurrent use.
type Resolver struct {
	Servers     []string         // "host:port" DNS servers, tried in order; /etc/resolv.conf's when empty
	Timeout     time.Duration    // per query, DefaultTimeout when 0
	NegativeTTL time.Duration    // how long NXDOMAIN/NODATA are cached, DefaultNegativeTTL when 0
	Prohibited  []netip.Prefix   // never deliver to these; the caller supplies the default (design.md §11)
	DefaultPort uint16           // DefaultSMTPPort when 0
	Now         func() time.Time // clock seam for the cache; time.Now when nil

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry // positive answers by record TTL, negative by NegativeTTL
	// asking holds the questions sent and not answered yet, so that each goes out once
	// (lookup).
	asking map[cacheKey]*asking

	sysOnce    sync.Once
	sysServers []string
	sysErr     error
}

// maxParallel bounds the A/AAAA lookups one Resolve runs at once, so that a domain with a
// hostile number of MX records cannot open hundreds of sockets.
const maxParallel = 16

// A domain can publish thousands of MX records, and a name thousands of addresses (an answer
// over TCP holds up to 64 KiB). Every one of them would be looked up, kept in the site and
// tried in turn by a connection, each for up to egress.connect_timeout: hours of one worker
// and thousands of queries to the domain's servers for one message. Only the best maxMXNames
// names (by preference) are looked up and the first maxSiteHosts addresses tried, as Postfix
// (smtp_mx_address_limit, 5) and Exim (hosts_max_try, 5) limit theirs; an mx_list, which the
// operator wrote, is not cut.
const (
	maxMXNames   = 20
	maxSiteHosts = 20
)

func (r *Resolver) defaultPort() uint16 {
	if r.DefaultPort != 0 {
		return r.DefaultPort
	}
	return DefaultSMTPPort
}

// dnsFailure is the transient error for a destination DNS could not resolve now; it is retried
// until the message's max_age (design.md §4). 4.4.4 is "unable to route" (RFC 3463).
func dnsFailure(format string, args ...any) *message.Error {
	return message.Errorf(451, "4.4.4", format, args...)
}

// Resolve turns a destination (a queue's routing domain or domain, design.md §2) or, when mxList is
// non-empty, the mx_list override into the site to deliver to (design.md §4).
//
// Errors are *message.Error values: 451 4.4.4 (transient) for NXDOMAIN, DNS failures and MX sets
// without any address; 556 5.1.10 for a null MX (RFC 7505); 550 5.1.2 for a destination or
// mx_list entry that cannot be parsed; 550 5.4.4 when every address is prohibited (451 4.4.4
// when, besides, a DNS lookup failed for another host).
func (r *Resolver) Resolve(ctx context.Context, destination string, mxList []MXEntry) (Site, error) {
	var (
		site   Site
		unsure error
		err    error
	)
	if len(mxList) > 0 {
		site, unsure, err = r.resolveList(ctx, destination, mxList)
	} else {
		site, unsure, err = r.resolveDestination(ctx, destination)
	}
	if err != nil {
		return Site{}, err
	}
	return r.dropProhibited(site, unsure)
}

// dropProhibited removes the hosts whose address is prohibited; with none left the message
// bounces (550 5.4.4): delivering to ourselves would loop, and retrying cannot change the answer
// until the operator changes the config. unsure is the DNS failures of hosts left out of site:
// with any, a host that did not resolve may be the one to deliver to, so the failure is
// transient (RFC 5321 §5.1), like a set of which no host resolved.
func (r *Resolver) dropProhibited(site Site, unsure error) (Site, error) {
	if len(r.Prohibited) == 0 {
		return site, nil
	}
	var first netip.Addr
	kept := site.Hosts[:0:0]
	for _, h := range site.Hosts {
		if r.prohibited(h.Addr) {
			if !first.IsValid() {
				first = h.Addr
			}
			continue
		}
		kept = append(kept, h)
	}
	if len(kept) == 0 {
		if unsure != nil {
			return Site{}, dnsFailure("%s is on the list of prohibited hosts, and DNS lookups failed for other hosts", first).Wrap(unsure)
		}
		return Site{}, message.Errorf(550, "5.4.4", "%s is on the list of prohibited hosts", first)
	}
	site.Hosts = kept
	return site, nil
}

// prohibited also checks an IPv4-mapped IPv6 address as the IPv4 address it reaches, so that
// "[IPv6:::ffff:127.0.0.1]" cannot slip past 127.0.0.0/8.
func (r *Resolver) prohibited(a netip.Addr) bool {
	a = a.WithZone("")
	for _, p := range r.Prohibited {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// portOr returns p, or the default port when p is 0.
func (r *Resolver) portOr(p uint16) uint16 {
	if p != 0 {
		return p
	}
	return r.defaultPort()
}

// withPort appends ":port" to a site name when the destination named a port.
func withPort(name string, port uint16) string {
	if port == 0 {
		return name
	}
	return name + ":" + strconv.Itoa(int(port))
}

// resolveDestination resolves a routing domain or queue domain: a literal directly, a name by
// its MX records.
func (r *Resolver) resolveDestination(ctx context.Context, destination string) (Site, error, error) {
	t, err := ParseTarget(destination)
	if err != nil {
		return Site{}, nil, err
	}
	port := r.portOr(t.Port)
	if t.IsLiteral() {
		// RFC 5321 §4.1.3: a literal is the host itself; no DNS is involved.
		return Site{
			Name:  withPort(t.IP.String(), t.Port),
			Hosts: []Host{{Name: Target{IP: t.IP}.String(), Addr: t.IP, Port: port, DefaultPort: t.Port == 0}},
		}, nil, nil
	}

	mx, err := r.lookup(ctx, t.Name, dns.TypeMX)
	if err != nil {
		return Site{}, nil, dnsFailure("failed to resolve %s: DNS lookup failed", t.Name).Wrap(err)
	}
	if mx.nxdomain {
		// Transient rather than a bounce: a domain being set up, or a resolver's bad moment,
		// must not destroy mail; max_age bounds the retries (design.md §4).
		return Site{}, nil, dnsFailure("failed to resolve %s: NXDOMAIN", t.Name)
	}
	records := mx.mx
	if len(records) == 0 {
		// RFC 5321 §5.1: no MX records but the name exists, so the name itself is the implicit
		// MX, with its own A/AAAA.
		records = []mxRecord{{host: t.Name}}
	}
	if len(records) == 1 && records[0].host == "" {
		// RFC 7505 §3: a single MX of "." says the domain accepts no mail.
		return Site{}, nil, message.Errorf(556, "5.1.10", "Recipient address has a null MX")
	}
	// A "." among other MX records breaks RFC 7505 §3 ("MUST NOT advertise any other MX RR");
	// it cannot be connected to, so it is skipped and the others are used. So is a host name
	// that is not a usable DNS name: it would end up in logs, site names and TLS SNI.
	var errs []error
	records = slices.DeleteFunc(slices.Clone(records), func(m mxRecord) bool {
		if m.host == "" {
			return true
		}
		if _, reason := normalizeName(m.host); reason != "" {
			errs = append(errs, fmt.Errorf("MX host %q skipped: %s", m.host, reason))
			return true
		}
		return false
	})
	slices.SortFunc(records, func(a, b mxRecord) int {
		return cmp.Or(cmp.Compare(a.pref, b.pref), strings.Compare(a.host, b.host))
	})
	// A host listed twice is tried at its best preference only.
	seen := make(map[string]bool, len(records))
	records = slices.DeleteFunc(records, func(m mxRecord) bool {
		dup := seen[m.host]
		seen[m.host] = true
		return dup
	})
	if len(records) > maxMXNames {
		records = records[:maxMXNames]
	}

	names := make([]string, len(records))
	for i, m := range records {
		names[i] = m.host
	}
	addrs, lookupErrs := r.resolveNames(ctx, names)
	errs = append(errs, lookupErrs...)

	var hosts []Host
	for i := 0; i < len(records); {
		j := i
		start := len(hosts)
		for ; j < len(records) && records[j].pref == records[i].pref; j++ {
			for _, a := range addrs[j] {
				hosts = append(hosts, Host{Name: records[j].host, Addr: a, Port: port, DefaultPort: t.Port == 0})
			}
		}
		// Spread load over equal-preference hosts (RFC 5321 §5.1).
		group := hosts[start:]
		rand.Shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		i = j
	}
	if len(hosts) > maxSiteHosts {
		hosts = hosts[:maxSiteHosts]
	}
	if len(hosts) == 0 {
		e := dnsFailure("MX didn't resolve to any hosts")
		if err := errors.Join(errs...); err != nil {
			e = e.Wrap(err)
		}
		return Site{}, nil, e
	}
	return Site{Name: withPort(strings.Join(names, ","), t.Port), Hosts: hosts}, lookupFailures(lookupErrs), nil
}

// resolveList resolves an mx_list: entries in order, names by A/AAAA only (design.md §4: never MX,
// the operator already chose the hosts), literals and {name, addr} entries without DNS.
func (r *Resolver) resolveList(ctx context.Context, destination string, list []MXEntry) (Site, error, error) {
	type parsed struct {
		name Target
		addr netip.Addr
		port uint16
	}
	entries := make([]parsed, len(list))
	labels := make([]string, len(list))
	var lookupNames []string
	lookupIndex := make([]int, len(list)) // entry -> index in lookupNames, or -1
	for i, e := range list {
		name, addr, port, err := e.parse()
		if err != nil {
			return Site{}, nil, err
		}
		entries[i] = parsed{name, addr, port}
		labels[i] = e.Label()
		lookupIndex[i] = -1
		if !addr.IsValid() && !name.IsLiteral() {
			lookupIndex[i] = len(lookupNames)
			lookupNames = append(lookupNames, name.Name)
		}
	}
	addrs, errs := r.resolveNames(ctx, lookupNames)

	var hosts []Host
	for i, e := range entries {
		hostName := e.name.Name
		if e.name.IsLiteral() {
			hostName = Target{IP: e.name.IP}.String()
		}
		switch {
		case e.addr.IsValid():
			p := cmp.Or(e.port, e.name.Port)
			hosts = append(hosts, Host{Name: hostName, Addr: e.addr, Port: r.portOr(p), DefaultPort: p == 0})
		case e.name.IsLiteral():
			hosts = append(hosts, Host{Name: hostName, Addr: e.name.IP, Port: r.portOr(e.name.Port), DefaultPort: e.name.Port == 0})
		default:
			for _, a := range addrs[lookupIndex[i]] {
				hosts = append(hosts, Host{Name: hostName, Addr: a, Port: r.portOr(e.name.Port), DefaultPort: e.name.Port == 0})
			}
		}
	}
	if len(hosts) == 0 {
		e := dnsFailure("mx_list for %s didn't resolve to any hosts", show(destination))
		if err := errors.Join(errs...); err != nil {
			e = e.Wrap(err)
		}
		return Site{}, nil, e
	}
	return Site{Name: "mx_list:" + strings.Join(labels, ","), Hosts: hosts}, lookupFailures(errs), nil
}

// lookupFailure is a name whose A and AAAA lookups failed (no server answered usably), as
// opposed to a name that does not exist or has no address: DNS may answer it later.
type lookupFailure struct{ error }

func (f *lookupFailure) Unwrap() error { return f.error }

// lookupFailures joins the lookupFailures among errs; nil if there is none.
func lookupFailures(errs []error) error {
	var out []error
	for _, err := range errs {
		var f *lookupFailure
		if errors.As(err, &f) {
			out = append(out, err)
		}
	}
	return errors.Join(out...)
}

// resolveNames looks up the A and AAAA addresses of each name, in parallel, and returns them
// per name (A then AAAA, each in resolver order). A name that fails is left empty, with its error
// in errs: one broken host must not stop delivery to the others.
func (r *Resolver) resolveNames(ctx context.Context, names []string) (addrs [][]netip.Addr, errs []error) {
	addrs = make([][]netip.Addr, len(names))
	perName := make([]error, len(names))
	if len(names) == 1 {
		// The usual case (one MX host, or an implicit MX): no goroutine to wait for.
		addrs[0], perName[0] = r.resolveAddrs(ctx, names[0])
		if perName[0] != nil {
			errs = perName
		}
		return addrs, errs
	}
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			addrs[i], perName[i] = r.resolveAddrs(ctx, n)
		}()
	}
	wg.Wait()
	for _, err := range perName {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return addrs, errs
}

// resolveAddrs looks up one name's A and AAAA records. Partial answers are used: an AAAA
// SERVFAIL does not hide good A records.
func (r *Resolver) resolveAddrs(ctx context.Context, name string) ([]netip.Addr, error) {
	var (
		wg     sync.WaitGroup
		a, aaa answer
		aErr   error
		aaaErr error
	)
	// Both answers are usually cached (every message to a domain resolves it again): only a
	// miss is worth a goroutine, so that the two queries of a miss run in parallel.
	fqdn := strings.ToLower(dns.Fqdn(name))
	if ans, ok := r.cached(cacheKey{fqdn, dns.TypeAAAA}); ok {
		aaa = ans
		a, aErr = r.lookup(ctx, fqdn, dns.TypeA)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			aaa, aaaErr = r.lookup(ctx, fqdn, dns.TypeAAAA)
		}()
		a, aErr = r.lookup(ctx, fqdn, dns.TypeA)
		wg.Wait()
	}
	out := append(slices.Clip(a.addrs), aaa.addrs...)
	if len(out) > 0 {
		return out, nil
	}
	switch {
	case aErr != nil || aaaErr != nil:
		return nil, &lookupFailure{errors.Join(aErr, aaaErr)}
	case a.nxdomain || aaa.nxdomain:
		return nil, errors.New(name + ": NXDOMAIN")
	default:
		return nil, errors.New(name + ": no A or AAAA records")
	}
}
