package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// freePort is a TCP port nothing listened on a moment ago (for configs that must name one).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Every input here made `wasmta serve` fail at start while `wasmta config check` said "ok":
// a CA file that is not PEM (check only looked that it existed), listen addresses that collide
// or are not on this machine, directories that cannot be created. Both must now fail, with the
// same message.
func TestAudit9ConfigCheckFailsWhereServeFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "afile"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notpem.txt"), []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := freePort(t)
	cfg := func(spool, logs, smtp, http, extra string) string {
		return fmt.Sprintf("[spool]\npath = %q\n[logs]\ndir = %q\n[smtp]\n%s\n[http]\n%s\n[dns]\nresolvers = [\"127.0.0.1:1\"]\n%s",
			spool, logs, smtp, http, extra)
	}
	lo := `listen = ["127.0.0.1:0"]`
	httpLo := `listen = "127.0.0.1:0"`
	cases := []struct{ name, text, want string }{
		{"egress CA file not PEM", cfg("spool", "logs", lo, httpLo, "[egress]\ntls_ca_file = \"notpem.txt\"\n"), "egress.tls_ca_file"},
		{"smtp listen twice", cfg("spool", "logs", fmt.Sprintf(`listen = ["127.0.0.1:%d", "127.0.0.1:%d"]`, p, p), httpLo, ""), "smtp.listen"},
		{"smtp and http on one address", cfg("spool", "logs", fmt.Sprintf(`listen = ["127.0.0.1:%d"]`, p), fmt.Sprintf(`listen = "127.0.0.1:%d"`, p), ""), "http.listen"},
		{"listen_tls on a listen address", cfg("spool", "logs", fmt.Sprintf("listen = [\"127.0.0.1:%d\"]\nlisten_tls = [\"127.0.0.1:%d\"]", p, p), httpLo, ""), "smtp.listen_tls"},
		{"wildcard and loopback on one port", cfg("spool", "logs", fmt.Sprintf(`listen = ["0.0.0.0:%d", "[::1]:%d"]`, p, p), httpLo, ""), "smtp.listen"},
		// 192.0.2.1 (TEST-NET-1, RFC 5737) is on no interface: binding it fails, nothing is sent.
		{"smtp address not on this machine", cfg("spool", "logs", `listen = ["192.0.2.1:2525"]`, httpLo, ""), "smtp.listen"},
		{"http address not on this machine", cfg("spool", "logs", lo, "listen = \"192.0.2.1:8025\"\ntoken = \"t\"", ""), "http.listen"},
		{"spool under a file", cfg("afile/spool", "logs", lo, httpLo, ""), "spool.path"},
		{"spool is a file", cfg("afile", "logs", lo, httpLo, ""), "spool.path"},
		{"logs under a file", cfg("spool", "afile/logs", lo, httpLo, ""), "logs.dir"},
		{"webhook queue under a file", cfg("spool", "logs", lo, httpLo, "[logs.webhook]\nurl = \"http://127.0.0.1:1/hook\"\ndir = \"afile/webhook\"\n"), "logs.webhook.dir"},
		{"wasm cache under a file", "wasm_cache = \"afile/cache\"\n" + cfg("spool", "logs", lo, httpLo, "[[plugins]]\npath = \""+fixture(t, "setmeta")+"\"\n"), "wasm_cache"},
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
	// What serve accepts, check accepts: IPv4 and IPv6 loopback may share a port, port 0 twice
	// is two ports.
	t.Run("accepted", func(t *testing.T) {
		path := filepath.Join(dir, "accepted.toml")
		text := cfg("spool", "logs", fmt.Sprintf(`listen = ["127.0.0.1:%d", "[::1]:%d", "127.0.0.1:0", "127.0.0.1:0"]`, p, p), httpLo, "")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runBin(dir, "config", "check", path); err != nil || !strings.Contains(out, "ok") {
			t.Fatalf("config check: err=%v output %q, want ok", err, out)
		}
	})
}

// A reload applies the plugins and the DKIM keys; every other setting is read at start. An
// operator who edits, say, smtp.max_recipients and sends SIGHUP was told nothing, and the old
// limit went on. The reload now says which changed keys wait for a restart.
func TestAudit9ReloadNamesSettingsItDoesNotApply(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, "watch = false\n[dns]\nresolvers = [\"127.0.0.1:1\"]\n")
	r := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	edited := strings.Replace(cfg, "[smtp]\n", "[smtp]\nmax_recipients = 1\n", 1) + "[queue]\nretry_interval = \"1m\"\n"
	if err := os.WriteFile(r.Config, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Process().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.WaitStderr("apply only after a restart", 30*time.Second)
	line := ""
	for _, l := range strings.Split(r.Stderr(), "\n") {
		if strings.Contains(l, "apply only after a restart") {
			line = l
		}
	}
	if !strings.Contains(line, "smtp.max_recipients") || !strings.Contains(line, "queue.retry_interval") || strings.Contains(line, "smtp.listen") {
		t.Fatalf("warning %q, want smtp.max_recipients and queue.retry_interval named, nothing else", line)
	}
	// What it says is so: the old limit still holds.
	c, err := dialQuiet(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, l := range []string{"EHLO x", "MAIL FROM:<a@relay.test>", "RCPT TO:<b@example.test>", "RCPT TO:<c@example.test>"} {
		if code, err := c.cmd(l); err != nil || code != 250 {
			t.Fatalf("%s: %d %v, want 250 (the limit changes at a restart)", l, code, err)
		}
	}
}
