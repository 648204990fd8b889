package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"sync"

	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/delivery"
	"github.com/wasmta/wasmta/host/queue"
)

// egressPaths is the queue's PathSource: the [egress] defaults (with the [delivery] spelling
// of some keys), then the first [[egress.path]] that matches. Each distinct transport setting
// (TLS mode, credentials, EHLO name, source address) gets one delivery client, shared by the
// sites that use it.
type egressPaths struct {
	defaults config.EgressPath
	rules    []config.EgressPathRule
	secrets  map[string]config.Secret
	base     delivery.Options // timeouts and trust roots

	mu      sync.Mutex
	clients map[transport]*delivery.Client
}

// transport is what makes two paths need different delivery clients.
type transport struct {
	tls, user, secret, ehlo, source string
	allowPlain                      bool
}

func newEgressPaths(cfg *config.Config) (*egressPaths, error) {
	e := &egressPaths{
		defaults: cfg.EgressDefaults(),
		rules:    cfg.Egress.Paths,
		secrets:  cfg.Secrets,
		base: delivery.Options{
			ConnectTimeout: cfg.Delivery.ConnectTimeout.D(),
			CommandTimeout: cfg.Delivery.CommandTimeout.D(),
			DataTimeout:    cfg.Delivery.DataTimeout.D(),
		},
		clients: map[transport]*delivery.Client{},
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

// resolve is the path of a destination and site, before any plugin.
func (e *egressPaths) resolve(routingDomain, site string) config.EgressPath {
	p := e.defaults
	for i := range e.rules {
		if e.rules[i].Matches(routingDomain, site) {
			p, _ = p.With(&e.rules[i].EgressPathConfig) // checked at load
			break
		}
	}
	return p
}

func (e *egressPaths) EgressPath(_ context.Context, routingDomain, site string) (queue.Path, error) {
	p := e.resolve(routingDomain, site)
	if err := p.CheckSecrets(e.secrets); err != nil {
		return queue.Path{}, err
	}
	return queue.Path{
		ConnectionLimit:            p.ConnectionLimit,
		MaxDeliveriesPerConnection: p.MaxDeliveriesPerConnection,
		MaxMessageRate:             p.MaxMessageRate,
		MaxConnectionRate:          p.MaxConnectionRate,
		Dialer:                     dialer{e.client(p)},
	}, nil
}

func (e *egressPaths) client(p config.EgressPath) *delivery.Client {
	k := transport{tls: p.EnableTLS, user: p.AuthUsername, secret: p.AuthSecret, ehlo: p.EHLODomain, allowPlain: p.AllowAuthWithoutTLS}
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
	if p.AuthUsername != "" {
		opt.AuthUsername, opt.AuthPassword = p.AuthUsername, e.secrets[p.AuthSecret].Value()
		opt.AllowAuthWithoutTLS = p.AllowAuthWithoutTLS
	}
	c := delivery.New(opt)
	e.clients[k] = c
	return c
}
