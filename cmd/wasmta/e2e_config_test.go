package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `wasmta config check` fails on exactly what `wasmta serve` fails on: a missing plugin, a
// plugin whose wasmta_init refuses its config, a missing TLS file; each with the same message.
// An open relay_hosts is legal but warned about.
func TestConfigCheckFailsWhereServeFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := "[spool]\npath = \"spool\"\n[logs]\ndir = \"logs\"\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n[dns]\nresolvers = [\"127.0.0.1:1\"]\n"
	withTLS := strings.Replace(base, "[dns]", "tls_certificate = \"missing.crt\"\ntls_private_key = \"missing.key\"\n[dns]", 1)
	cases := []struct {
		name, text, want string
	}{
		{"missing plugin", base + "[[plugins]]\npath = \"no/such/plugin.wasm\"\n", "configuration key plugins[0]: plugin plugin.wasm: open no/such/plugin.wasm"},
		{"second plugin broken", base + "[[plugins]]\npath = \"" + fixture(t, "setmeta") + "\"\n[[plugins]]\npath = \"" + fixture(t, "initfail") + "\"\n", "configuration key plugins[1]: plugin initfail.wasm"},
		{"init refuses config", base + "[[plugins]]\npath = \"" + fixture(t, "initfail") + "\"\n", "config missing"},
		{"missing TLS file", withTLS, "smtp.tls_certificate"},
		{"bad bounce rules", strings.Replace(base, "[logs]\n", "[logs]\nbounce_rules = \"no-such-rules.toml\"\n", 1), "logs.bounce_rules"},
		{"hostname not a domain", "hostname = \"mta example\"\n" + base, "configuration key hostname"},
		{"router literal without ']'", base + "[[plugins]]\npath = \"" + routerWasm(t) + "\"\n[[plugins.config.rules]]\nrecipient_domain = \"*\"\nrouting_domain = \"[10.0.0.1\"\n", "rules[0]: domain literal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".toml")
			if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			checkAndServeFail(t, dir, path, c.want)
		})
	}
	t.Run("open relay warns", func(t *testing.T) {
		path := filepath.Join(dir, "open.toml")
		text := strings.Replace(base, "[dns]", "relay_hosts = [\"0.0.0.0/0\", \"::1/128\"]\n[dns]", 1)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runBin(dir, "config", "check", path)
		if err != nil || !strings.Contains(out, "warning: smtp.relay_hosts contains 0.0.0.0/0") || !strings.Contains(out, "open relay") {
			t.Fatalf("err=%v output %q, want ok with an open-relay warning", err, out)
		}
	})
}

// errLine is the "Error: ..." line cobra prints.
func errLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Error: ") {
			return l
		}
	}
	return out
}
