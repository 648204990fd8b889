package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Packaging, end to end: the version flag, the reference config, readiness for systemd, and
// what `make install` lays out.

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	flag, err := runBin(dir, "--version")
	if err != nil {
		t.Fatalf("--version: %v %s", err, flag)
	}
	cmd, err := runBin(dir, "version")
	if err != nil {
		t.Fatalf("version: %v %s", err, cmd)
	}
	if !strings.HasPrefix(flag, "wasmta ") || flag != cmd {
		t.Fatalf("--version printed %q, version printed %q", flag, cmd)
	}
}

// What `wasmta config default` prints is a config `wasmta config check` accepts unchanged, and
// so are the examples for systemd and containers.
func TestConfigDefaultIsAcceptedByCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ref, err := exec.Command(relayBin, "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"[spool]", "min_free = ", "max_connections = ", "enable_tls = ", "# [[dkim]]"} {
		if !strings.Contains(string(ref), key) {
			t.Errorf("config default lacks %q", key)
		}
	}
	path := filepath.Join(dir, "reference.toml")
	if err := os.WriteFile(path, ref, 0o644); err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(repoRoot(t), "docs", "dist")
	for _, p := range []string{path, filepath.Join(dist, "wasmta.toml"), filepath.Join(dist, "container.toml")} {
		if out, err := runBin(dir, "config", "check", p); err != nil || strings.TrimSpace(out) != "ok" {
			t.Errorf("config check %s: %v\n%s", p, err, out)
		}
	}
}

// Under systemd (Type=notify) the relay says READY=1 only when SMTP answers, RELOADING=1 then
// READY=1 around a SIGHUP reload, and STOPPING=1 when SIGTERM starts the graceful stop.
func TestSdNotifyReadiness(t *testing.T) {
	t.Parallel()
	l, sock := notifyListener(t, "")
	dir := t.TempDir()
	cfg, smtpAddr := testutil.RelayConfig(t, dir, "[dns]\nresolvers = [\"127.0.0.1:1\"]\n")
	path := filepath.Join(dir, "wasmta.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(relayBin, "serve", "--config", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	if got := readNotify(t, l, 30*time.Second); !strings.HasPrefix(got, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1\n%s", got, stderr.String())
	}
	// READY means ready: the banner comes at once, without waiting or retrying.
	c, err := net.DialTimeout("tcp", smtpAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("READY=1 sent but SMTP does not answer: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || !strings.HasPrefix(banner, "220 ") {
		t.Fatalf("banner after READY=1: %q %v", banner, err)
	}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, l, 30*time.Second); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", got)
	}
	if got := readNotify(t, l, 30*time.Second); !strings.HasPrefix(got, "READY=1\n") {
		t.Fatalf("after the reload: %q, want READY=1", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, l, 30*time.Second); !strings.HasPrefix(got, "STOPPING=1\n") {
		t.Fatalf("after SIGTERM: %q, want STOPPING=1", got)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("graceful stop: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit within 60s of SIGTERM")
	}
}

// `make install DESTDIR=…` lays out the binary, the router plugin, man pages, completions, the
// systemd unit, the example config, the reference config and the licence; with PREFIX the unit
// points at that install, and systemd-analyze finds nothing wrong with it.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed (Debian package make)")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		// Not skipped: the unit would go unverified without anyone noticing. .ci/run installs it.
		t.Fatal("systemd-analyze not found: install Debian's systemd package (apt-get install systemd) to verify docs/dist/wasmta.service")
	}
	root := repoRoot(t)
	dest := t.TempDir()
	make := func(args ...string) {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-C", root, "--no-print-directory"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	make("install", "DESTDIR="+dest)

	files := map[string]string{ // path under DESTDIR: text it must contain
		"usr/local/bin/wasmta":                                  "",
		"usr/local/lib/wasmta/plugins/router.wasm":              "\x00asm",
		"usr/local/share/man/man1/wasmta.1":                     ".TH \"WASMTA\" \"1\"",
		"usr/local/share/man/man1/wasmta-serve.1":               "wasmta-serve",
		"usr/local/share/man/man1/wasmta-config-default.1":      "default value",
		"usr/local/share/bash-completion/completions/wasmta":    "complete -o default -F __start_wasmta wasmta",
		"usr/local/share/zsh/site-functions/_wasmta":            "#compdef wasmta",
		"usr/local/share/fish/vendor_completions.d/wasmta.fish": "complete -c wasmta",
		"usr/local/lib/systemd/system/wasmta.service":           "ExecStart=/usr/local/bin/wasmta serve --config /etc/wasmta/wasmta.toml",
		"etc/wasmta/wasmta.toml":                                "[smtp]",
		"usr/local/share/doc/wasmta/wasmta.reference.toml":      "max_deliveries_per_connection = 1024",
		"usr/local/share/doc/wasmta/LICENSE":                    "Apache License",
	}
	for rel, want := range files {
		b, err := os.ReadFile(filepath.Join(dest, rel))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not contain %q", rel, want)
		}
	}
	out, err := exec.Command(filepath.Join(dest, "usr/local/bin/wasmta"), "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "wasmta ") || strings.Contains(string(out), "wasmta dev") {
		t.Errorf("installed --version: %q %v (want the Makefile's VERSION, not dev)", out, err)
	}

	// An existing config is kept on a second install.
	conf := filepath.Join(dest, "etc/wasmta/wasmta.toml")
	if err := os.WriteFile(conf, []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	make("install", "DESTDIR="+dest)
	if b, _ := os.ReadFile(conf); string(b) != "# mine\n" {
		t.Errorf("make install overwrote an existing config: %q", b)
	}

	// PREFIX and SYSCONFDIR without DESTDIR: the unit names this install's paths, which exist,
	// so systemd-analyze can check every directive and command of the real unit.
	pre := t.TempDir()
	make("install", "PREFIX="+pre+"/usr", "SYSCONFDIR="+pre+"/etc")
	unit := filepath.Join(pre, "usr/lib/systemd/system/wasmta.service")
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "ExecStart="+pre+"/usr/bin/wasmta serve --config "+pre+"/etc/wasmta/wasmta.toml") {
		t.Fatalf("unit does not point at the PREFIX install:\n%s", b)
	}
	// --man=no: the man pages named by Documentation= are in the install, not in man's path.
	// systemd-analyze exits 0 on unknown keys and bad values, so any output is a failure.
	res, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(res))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, res)
	}
	for _, d := range []string{"Type=notify", "User=wasmta", "ProtectSystem=strict", "StateDirectory=wasmta",
		"WorkingDirectory=/var/lib/wasmta", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
		"PrivateTmp=yes", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(b), "\n"+d+"\n") {
			t.Errorf("unit lacks %s", d)
		}
	}
}

// repoRoot is the module root (tests run in cmd/wasmta).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}
