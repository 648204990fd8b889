package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/wiring"
)

// Check validates cfg the way New and Start would, without opening the spool or the logs and
// without listening on the configured ports: listen addresses and directories (checkPlaces),
// relay and prohibited networks, DNS resolvers, the TLS certificate and key, the users file,
// every [[dkim]] key file, the bounce classification rules, and every plugin compiled and
// initialised with its [plugins.config]. `wasmta config check` runs it, so a config it accepts
// does not fail at `wasmta serve` for any of these reasons. Warnings are legal but risky
// settings (an open relay).
func Check(ctx context.Context, cfg *config.Config, diag *slog.Logger) (warnings []string, err error) {
	if diag == nil {
		diag = slog.Default()
	}
	if err := checkPlaces(cfg); err != nil {
		return nil, err
	}
	if _, err := config.ParsePrefixes(cfg.SMTP.RelayHosts); err != nil {
		return nil, err
	}
	if _, err := wiring.Resolver(cfg); err != nil {
		return nil, err
	}
	if _, err := serverTLS(cfg); err != nil {
		return nil, err
	}
	if _, err := openUsers(cfg); err != nil {
		return nil, err
	}
	if _, err := loadDKIM(cfg); err != nil {
		return nil, err
	}
	if _, err := bounceRules(cfg); err != nil {
		return nil, err
	}
	if c, err := openCluster(cfg, diag); err != nil {
		return nil, err
	} else if c != nil {
		_ = c.Close()
	}
	if len(cfg.Plugins) > 0 {
		h, err := plugin.NewHost("", diag) // in memory: a check writes nothing to disk
		if err != nil {
			return nil, err
		}
		defer h.Close()
		chain, err := wiring.LoadPlugins(ctx, h, cfg.Plugins)
		if err != nil {
			return nil, err
		}
		chain.Close(ctx)
	}
	return relayWarnings(cfg), nil
}

// serverTLS loads the SMTP server certificate; nil when none is configured.
func serverTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.SMTP.TLSCertificate == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.SMTP.TLSCertificate, cfg.SMTP.TLSPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("configuration key smtp.tls_certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// relayWarnings names relay_hosts entries that let every address of a family relay: legal
// (design.md §7 wants an open relay to be explicit, not impossible) but worth a loud word.
func relayWarnings(cfg *config.Config) []string {
	prefixes, _ := config.ParsePrefixes(cfg.SMTP.RelayHosts)
	var out []string
	for _, p := range prefixes {
		if p.Bits() == 0 {
			out = append(out, fmt.Sprintf("smtp.relay_hosts contains %s: every %s client may relay through this server (an open relay)", p, family(p.Addr())))
		}
	}
	return out
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
