package app

import (
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/dkim"
)

// loadDKIM reads every [[dkim]] key. A missing or unreadable file, a file that is not PEM, an
// RSA key under 1024 bits or another key type stops start-up, a reload and `config check` alike,
// with an error naming the entry.
func loadDKIM(cfg *config.Config) (*dkim.Keys, error) {
	entries := make([]dkim.Entry, len(cfg.DKIM))
	for i, d := range cfg.DKIM {
		entries[i] = dkim.Entry{Name: d.Name, KeyFile: d.KeyFile, SignSenderDomains: d.SignSenderDomains,
			Domain: d.Domain, Selector: d.Selector, Headers: d.Headers, OverSign: d.OverSign}
	}
	return dkim.Load(entries)
}

// reloadDKIM loads the keys of a re-read config and, only if all are good, makes them the ones
// dkim_sign accepts and reception signs with (key rotation without a restart).
func (a *App) reloadDKIM(cfg *config.Config) error {
	ks, err := loadDKIM(cfg)
	if err != nil {
		return err
	}
	a.dkim.Set(ks)
	return nil
}
