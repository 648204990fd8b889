package config

import "net/netip"

// KeyedAddr is an ip:port and the configuration key that names it.
type KeyedAddr struct{ Key, Addr string }

// ListenAddrs are the addresses the server listens on (smtp.listen, smtp.listen_tls and
// http.listen), each with its key.
func (c *Config) ListenAddrs() []KeyedAddr {
	var out []KeyedAddr
	for _, a := range c.SMTP.Listen {
		out = append(out, KeyedAddr{"smtp.listen", a})
	}
	for _, a := range c.SMTP.ListenTLS {
		out = append(out, KeyedAddr{"smtp.listen_tls", a})
	}
	if c.HTTP.Listen != "" {
		out = append(out, KeyedAddr{"http.listen", c.HTTP.Listen})
	}
	return out
}

// validateListeners refuses listen addresses that cannot all be bound at once, which would
// stop `wasmta serve` at start with "address already in use" after `config check` passed:
// the same ip:port twice (in smtp.listen, smtp.listen_tls and http.listen together), or a
// port shared with a wildcard address. Go listens on 0.0.0.0 and [::] alike with one
// dual-stack socket, so a wildcard takes its port on every address of both families; two
// specific addresses (127.0.0.1 and [::1]) may share a port. Port 0 is a new port each time.
func (c *Config) validateListeners() error {
	type listener struct {
		key string
		ap  netip.AddrPort
	}
	var seen []listener
	for _, l := range c.ListenAddrs() {
		ap, err := netip.ParseAddrPort(l.Addr)
		if err != nil || ap.Port() == 0 {
			continue // a bad address is reported by validate, with its key
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) // ::ffff:127.0.0.1 is 127.0.0.1
		for _, o := range seen {
			switch {
			case o.ap.Port() != ap.Port():
			case o.ap == ap:
				return keyErr(l.Key, "%s is also in %s: each address can be listened on once", l.Addr, o.key)
			case o.ap.Addr().IsUnspecified() || ap.Addr().IsUnspecified():
				return keyErr(l.Key, "%s and %s (%s) share port %d: a wildcard address takes its port on every address", l.Addr, o.ap, o.key, ap.Port())
			}
		}
		seen = append(seen, listener{l.Key, ap})
	}
	return nil
}
