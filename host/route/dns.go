package route

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults of Resolver's fields, the same as KumoMTA's resolver defaults.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultNegativeTTL = 5 * time.Minute
	DefaultSMTPPort    = 25

	// maxCacheEntries bounds the cache's memory; when it is full, expired entries go first and
	// then arbitrary ones, which only costs a repeated query.
	maxCacheEntries = 65536
	// ednsSize is the UDP payload size we advertise (the DNS Flag Day 2020 value), so that large
	// MX sets rarely need the TCP fallback yet fragments are avoided.
	ednsSize = 1232
)

// ResolversFromFile reads the "nameserver" lines of a resolv.conf file (design.md §4: the default
// resolvers come from /etc/resolv.conf) and returns them as "host:port" addresses.
func ResolversFromFile(path string) ([]string, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, err
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("%s: no nameserver lines", path)
	}
	servers := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		servers = append(servers, net.JoinHostPort(s, cfg.Port))
	}
	return servers, nil
}

// answer is what one (name, type) query told us, as cached.
type answer struct {
	nxdomain bool         // the name does not exist
	mx       []mxRecord   // MX answers
	addrs    []netip.Addr // A or AAAA answers, in the order the resolver gave them
}

type mxRecord struct {
	pref uint16
	host string // lower-cased, no trailing dot; "" for the root (RFC 7505 null MX)
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	ans     answer
	expires time.Time
}

// errNoServers is returned when no resolver is configured and /etc/resolv.conf gives none.
var errNoServers = errors.New("no DNS servers configured")

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

func (r *Resolver) negativeTTL() time.Duration {
	if r.NegativeTTL > 0 {
		return r.NegativeTTL
	}
	return DefaultNegativeTTL
}

// servers returns the configured servers, or those of /etc/resolv.conf read once.
func (r *Resolver) servers() ([]string, error) {
	if len(r.Servers) > 0 {
		return r.Servers, nil
	}
	r.sysOnce.Do(func() {
		r.sysServers, r.sysErr = ResolversFromFile("/etc/resolv.conf")
	})
	if r.sysErr != nil {
		return nil, fmt.Errorf("%w: %w", errNoServers, r.sysErr)
	}
	return r.sysServers, nil
}

// lookup answers one question, from the cache when it can. NXDOMAIN and NODATA are answers (and
// cached for NegativeTTL); an error means no server gave a usable answer (SERVFAIL, REFUSED,
// timeout, network trouble), which is never cached so that the next attempt asks again.
//
// Concurrent lookups of one question that miss the cache send it once: the first asks, the
// others wait for its answer (every message of a busy destination is dispatched on its own, so
// an expired answer would otherwise be asked for by each message in flight at that moment).
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (answer, error) {
	key := cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
	for {
		r.mu.Lock()
		if ans, ok := r.cachedLocked(key); ok {
			r.mu.Unlock()
			return ans, nil
		}
		f := r.asking[key]
		if f == nil {
			f = &asking{done: make(chan struct{})}
			if r.asking == nil {
				r.asking = make(map[cacheKey]*asking)
			}
			r.asking[key] = f
			r.mu.Unlock()
			defer func() {
				r.mu.Lock()
				delete(r.asking, key) // after ask stored the answer: a later lookup finds it
				r.mu.Unlock()
				close(f.done)
			}()
			f.ans, f.err = r.ask(ctx, key)
			f.cut = ctx.Err() != nil
			return f.ans, f.err
		}
		r.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return answer{}, ctx.Err()
		}
		if !f.cut || ctx.Err() != nil {
			return f.ans, f.err
		}
		// The asker's own deadline cut its question short, not ours: ask again.
	}
}

// asking is a question on its way to the DNS servers; lookups of the same question wait for
// done, then share ans and err.
type asking struct {
	done chan struct{}
	ans  answer
	err  error
	cut  bool // the asker's context ended: its error says nothing about the question
}

// ask sends one question to the servers in turn and caches what they answer (see lookup).
func (r *Resolver) ask(ctx context.Context, key cacheKey) (answer, error) {
	qtype := key.qtype
	servers, err := r.servers()
	if err != nil {
		return answer{}, err
	}
	var errs []error
	for _, server := range servers {
		resp, err := r.exchange(ctx, key.name, qtype, server)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s via %s: %w", key.name, dns.TypeToString[qtype], server, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		switch resp.Rcode {
		case dns.RcodeNameError:
			ans := answer{nxdomain: true}
			r.store(key, ans, r.negativeTTL())
			return ans, nil
		case dns.RcodeSuccess:
			ans, ttl := parseAnswer(resp, qtype)
			if len(ans.mx) == 0 && len(ans.addrs) == 0 {
				ttl = r.negativeTTL()
			}
			r.store(key, ans, ttl)
			return ans, nil
		default:
			// SERVFAIL, REFUSED and the like: the next server may know better.
			errs = append(errs, fmt.Errorf("%s %s via %s: %s", key.name, dns.TypeToString[qtype], server, dns.RcodeToString[resp.Rcode]))
		}
	}
	return answer{}, errors.Join(errs...)
}

// exchange sends one query to one server over UDP and repeats it over TCP when the answer is
// truncated (RFC 7766 §5: a truncated UDP answer must be retried over TCP).
func (r *Resolver) exchange(ctx context.Context, fqdn string, qtype uint16, server string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsSize, false)
	c := &dns.Client{Net: "udp", Timeout: r.timeout(), UDPSize: ednsSize}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, err
	}
	// The id already matched; the question must too, or this is an answer to something else.
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, fqdn) || resp.Question[0].Qtype != qtype {
		return nil, errors.New("answer does not match the question")
	}
	if resp.Truncated {
		return nil, errors.New("answer truncated over TCP")
	}
	return resp, nil
}

// parseAnswer takes the records of qtype from an answer section, following whatever CNAME chain
// the recursive resolver included, and the smallest TTL among them (a chain expires with its
// shortest-lived link).
func parseAnswer(resp *dns.Msg, qtype uint16) (answer, time.Duration) {
	var ans answer
	minTTL := ^uint32(0)
	for _, rr := range resp.Answer {
		h := rr.Header()
		if h.Class != dns.ClassINET {
			continue
		}
		switch v := rr.(type) {
		case *dns.MX:
			if qtype != dns.TypeMX {
				continue
			}
			ans.mx = append(ans.mx, mxRecord{pref: v.Preference, host: strings.TrimSuffix(strings.ToLower(v.Mx), ".")})
		case *dns.A:
			a, ok := netip.AddrFromSlice(v.A.To4())
			if qtype != dns.TypeA || !ok {
				continue
			}
			ans.addrs = append(ans.addrs, a)
		case *dns.AAAA:
			a, ok := netip.AddrFromSlice(v.AAAA.To16())
			if qtype != dns.TypeAAAA || !ok {
				continue
			}
			ans.addrs = append(ans.addrs, a)
		case *dns.CNAME:
		default:
			continue
		}
		minTTL = min(minTTL, h.Ttl)
	}
	if minTTL == ^uint32(0) {
		minTTL = 0
	}
	return ans, time.Duration(minTTL) * time.Second
}

func (r *Resolver) cached(key cacheKey) (answer, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cachedLocked(key)
}

// cachedLocked is cached with r.mu held.
func (r *Resolver) cachedLocked(key cacheKey) (answer, bool) {
	e, ok := r.cache[key]
	if !ok {
		return answer{}, false
	}
	if !r.now().Before(e.expires) {
		delete(r.cache, key)
		return answer{}, false
	}
	return e.ans, true
}

func (r *Resolver) store(key cacheKey, ans answer, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.cache == nil {
		r.cache = make(map[cacheKey]cacheEntry)
	}
	if len(r.cache) >= maxCacheEntries {
		for k, e := range r.cache {
			if !now.Before(e.expires) {
				delete(r.cache, k)
			}
		}
		for k := range r.cache {
			if len(r.cache) < maxCacheEntries*3/4 {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[key] = cacheEntry{ans: ans, expires: now.Add(ttl)}
}
