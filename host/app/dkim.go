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
