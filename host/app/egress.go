package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/delivery"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/route"
)

// egressPaths is the queue's PathSource: the [egress] defaults (with the [delivery] spelling
// of some keys), then the first [[egress.path]] that matches, then what the plugins'
// get_egress_path_config sets. Each distinct transport setting (TLS mode, credentials, EHLO
// name, source address, timeouts) gets one delivery client, shared by the sites that use it;
// the path's smtp_port goes with the dialer (it replaces the default port of the site's hosts). The queue
// caches a site's path (refresh_interval) and drops it when plugins are reloaded
// (queue.Manager.InvalidateConfigs), so the hook runs about once per site and interval.
type egressPaths struct {
	defaults config.EgressPath
	sources  map[string]config.EgressSource // [egress_source.NAME]
	rules    []config.EgressPathRule
	secrets  map[string]config.Secret
	base     delivery.Options // trust roots
	plugins  *plugin.Chain    // nil or empty: no get_egress_path_config

	mu      sync.Mutex
	clients map[transport]*delivery.Client
}

// transport is what makes two paths need different delivery clients.
type transport struct {
	tls, user, secret, ehlo, source string
	allowPlain                      bool
	connect, command, data          time.Duration
}

func newEgressPaths(cfg *config.Config) (*egressPaths, error) {
	e := &egressPaths{
		defaults: cfg.EgressDefaults(),
		sources:  cfg.EgressSources,
		rules:    cfg.Egress.Paths,
		secrets:  cfg.Secrets,
		clients:  map[transport]*delivery.Client{},
	}
	if f := cfg.Egress.TLSCAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("configuration key egress.tls_ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("configuration key egress.tls_ca_file: %s holds no PEM certificate", f)
		}
		e.base.RootCAs = pool
	}
	return e, nil
}

// resolve is the path of a destination, egress source ("" for none) and site, before any
// plugin: [egress], then the source's source_address and ehlo_domain, then the first
// [[egress.path]] that matches the bare site.
func (e *egressPaths) resolve(routingDomain, source, site string) config.EgressPath {
	p := e.defaults
	if src, ok := e.sources[source]; ok {
		if src.SourceAddress != "" {
			p.SourceAddress, _ = netip.ParseAddr(src.SourceAddress) // checked at load
		}
		if src.EHLODomain != "" {
			p.EHLODomain = src.EHLODomain
		}
	}
	for i := range e.rules {
		if e.rules[i].Matches(routingDomain, site) {
			p, _ = p.With(&e.rules[i].EgressPathConfig) // checked at load
			break
		}
	}
	return p
}

func (e *egressPaths) EgressPath(ctx context.Context, routingDomain, source, site string) (queue.Path, error) {
	p := e.resolve(routingDomain, source, site)
	if e.plugins != nil && e.plugins.Active() {
		// The plugin's answer is checked while it runs (make_egress_path_config returns
		// Invalid, with the reason in last_error), over the path the config gives this site.
		check := func(c *abi.EgressPathConfig) error {
			q, err := p.With(c)
			if err != nil {
				return err
			}
			return e.checkSecrets(q, routingDomain, site)
		}
		c, _, err := e.plugins.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: routingDomain, Site: site, Check: check})
		if err != nil {
			return queue.Path{}, err
		}
		if c != nil {
			p, _ = p.With(c) // checked above
		}
	}
	if err := e.checkSecrets(p, routingDomain, site); err != nil {
		return queue.Path{}, err
	}
	return queue.Path{
		ConnectionLimit:            p.ConnectionLimit,
		MaxDeliveriesPerConnection: p.MaxDeliveriesPerConnection,
		MaxMessageRate:             p.MaxMessageRate,
		MaxConnectionRate:          p.MaxConnectionRate,
		IdleTimeout:                p.IdleTimeout,
		Dialer:                     e.dialer(p),
	}, nil
}

// checkSecrets refuses a path whose credentials name no secret, or a secret that its
// allowed_sites / allowed_routing_domains keep from this destination: a plugin chooses a path's
// settings, and a password sent to a site is a password that site learns.
func (e *egressPaths) checkSecrets(p config.EgressPath, routingDomain, site string) error {
	if err := p.CheckSecrets(e.secrets); err != nil {
		return err
	}
	if p.AuthSecret != "" {
		if err := e.secrets[p.AuthSecret].Allows(routingDomain, site); err != nil {
			return &abi.FieldError{Field: "smtp_auth_plain_password", Err: fmt.Errorf("secret %q: %w", p.AuthSecret, err)}
		}
	}
	return nil
}

// dialer connects with the path's client and port; it is comparable, so the queue keeps the
// connections of a path whose transport did not change (queue.sameDialer).
func (e *egressPaths) dialer(p config.EgressPath) queue.Dialer {
	return pathDialer{c: e.client(p), port: p.SMTPPort}
}

// pathDialer replaces the port of the hosts that got the resolver's default (the destination
// named none) with the path's smtp_port; a port the destination names is kept, as in KumoMTA.
type pathDialer struct {
	c    *delivery.Client
	port uint16
}

func (d pathDialer) Connect(ctx context.Context, hosts []route.Host) (queue.Conn, error) {
	if d.port != 0 && slices.ContainsFunc(hosts, func(h route.Host) bool { return h.DefaultPort && h.Port != d.port }) {
		hosts = slices.Clone(hosts) // the ready queue's slice, shared by its connections
		for i := range hosts {
			if hosts[i].DefaultPort {
				hosts[i].Port = d.port
			}
		}
	}
	return dialer{d.c}.Connect(ctx, hosts)
}

func (e *egressPaths) client(p config.EgressPath) *delivery.Client {
	k := transport{tls: p.EnableTLS, user: p.AuthUsername, secret: p.AuthSecret, ehlo: p.EHLODomain, allowPlain: p.AllowAuthWithoutTLS,
		connect: p.ConnectTimeout, command: p.CommandTimeout, data: p.DataTimeout}
	if p.SourceAddress.IsValid() {
		k.source = p.SourceAddress.String()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.clients[k]; c != nil {
		return c
	}
	opt := e.base
	opt.TLS, opt.EHLOName, opt.SourceAddr = p.EnableTLS, p.EHLODomain, p.SourceAddress
	opt.ConnectTimeout, opt.CommandTimeout, opt.DataTimeout = p.ConnectTimeout, p.CommandTimeout, p.DataTimeout
	if p.AuthUsername != "" {
		opt.AuthUsername, opt.AuthPassword = p.AuthUsername, e.secrets[p.AuthSecret].Value()
		opt.AllowAuthWithoutTLS = p.AllowAuthWithoutTLS
	}
	c := delivery.New(opt)
	if len(e.clients) >= maxClients {
		// A plugin can make a path per site (an EHLO name with the site in it): without a
		// bound the map would grow with every site ever delivered to. Clients hold no
		// connections, so starting over costs at most one reconnection per ready queue
		// (its dialer is no longer the same; queue.sameDialer).
		clear(e.clients)
	}
	e.clients[k] = c
	return c
}

// maxClients bounds the delivery clients kept for distinct transports.
const maxClients = 4096
