package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/testutil"
)

// End-to-end tests of the get_egress_path_config hook (ABI 1.2): the real binary, a plugin
// whose answer is its own [plugins.config] (host/plugin/testdata/egresspath.wat), DNS and
// sinks on loopback.

// egressHookPlugin is the [[plugins]] section of the egresspath fixture with config as its
// [plugins.config] table (TOML key = value lines).
func egressHookPlugin(t *testing.T, config string) string {
	return pluginConfig(fixture(t, "egresspath")) + "[plugins.config]\n" + config + "\n"
}

// The plugin sets connection_limit = 1 and ehlo_domain: a slow sink with several messages
// waiting never sees two connections at once (the [egress] default is 32), and every message
// arrives after EHLO with the plugin's name.
func TestEgressHookConnectionLimitAndEHLO(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{DataDelay: 200 * time.Millisecond}, "127.0.0.41")
	r := egressEnv(t, "hook.test. A 127.0.0.41\n", port,
		egressHookPlugin(t, "connection_limit = 1\nehlo_domain = \"out.hook.test\""))
	var rcpts []string
	for i := range 6 {
		rcpts = append(rcpts, fmt.Sprintf("r%d@hook.test", i))
	}
	sendTo(t, r, rcpts...)
	got := sinks[0].WaitCount(t, len(rcpts), 30*time.Second)
	if n := sinks[0].MaxOpen(); n != 1 {
		t.Fatalf("%d connections open at once, want 1 (the plugin's connection_limit)", n)
	}
	for _, m := range got {
		if m.Helo != "out.hook.test" {
			t.Fatalf("%s arrived after EHLO %q, want the plugin's out.hook.test", m.To[0], m.Helo)
		}
	}
}

// A plugin answering with an unknown field fails the hook: the message stays queued with a
// TransientFailure, and the diagnostics name the field; nothing reaches the sink.
func TestEgressHookUnknownFieldKeepsMessageQueued(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.42")
	r := egressEnv(t, "typo.test. A 127.0.0.42\n", port, egressHookPlugin(t, "conection_limit = 1"))
	sendTo(t, r, "kept@typo.test")
	rec := r.WaitLog(recipientIs("TransientFailure", "kept@typo.test"), 10*time.Second)
	if testutil.Code(rec) != 451 || content(rec) != "egress path configuration unavailable" {
		t.Fatalf("TransientFailure record: %v", rec)
	}
	r.WaitStderr("egress path config failed", 5*time.Second)
	if !strings.Contains(r.Stderr(), `unknown field \"conection_limit\"`) {
		t.Fatalf("diagnostics do not name the unknown field:\n%s", r.Stderr())
	}
	if n := sinks[0].Count(); n != 0 {
		t.Fatalf("%d message(s) delivered without an egress path", n)
	}
}

// A secret whose allowed_sites names one smarthost: the plugin that names it for that site
// gets AUTH there; the same plugin naming it for another site is refused, that message stays
// queued, and the other site never sees a connection, let alone the password.
func TestEgressHookSecretOnlyForAllowedSites(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{Users: map[string]string{"relay-user": smarthostPassword}},
		"127.0.0.43", "127.0.0.44")
	good, evil := sinks[0], sinks[1]
	r := egressEnv(t, "good.test. MX 10 mx.good.test.\nmx.good.test. A 127.0.0.43\nevil.test. MX 10 mx.evil.test.\nmx.evil.test. A 127.0.0.44\n", port,
		fmt.Sprintf("[secrets]\nsmarthost = { value = %q, allowed_sites = [\"mx.good.test\"] }\n", smarthostPassword)+
			egressHookPlugin(t, "smtp_auth_plain_username = \"relay-user\"\nsmtp_auth_plain_password = \"smarthost\"\nallow_smtp_auth_plain_without_tls = true"))
	sendTo(t, r, "bob@good.test", "eve@evil.test")
	if got := good.WaitCount(t, 1, 10*time.Second)[0]; got.AuthUser != "relay-user" {
		t.Fatalf("the allowed site saw AUTH user %q", got.AuthUser)
	}
	rec := r.WaitLog(recipientIs("TransientFailure", "eve@evil.test"), 10*time.Second)
	if testutil.Code(rec) != 451 || content(rec) != "egress path configuration unavailable" {
		t.Fatalf("TransientFailure record: %v", rec)
	}
	r.WaitStderr(`not allowed for site \"mx.evil.test\" (allowed_sites)`, 5*time.Second)
	if n := evil.Connections(); n != 0 {
		t.Fatalf("the site the secret is not for got %d connection(s)", n)
	}
	for _, where := range []string{r.Stderr(), fmt.Sprint(r.LogRecords())} {
		if strings.Contains(where, smarthostPassword) {
			t.Fatal("the smarthost password was written to the logs")
		}
	}
}

// A reload that changes the plugin drops the cached path: the next message goes out with the
// new settings, even though a connection made with the old ones is still open and idle.
func TestEgressHookReloadDropsCachedPath(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.45")
	dns := testutil.StartDNS(t, "reload.test. A 127.0.0.45\n")
	dir := t.TempDir()
	// Idle connections stay open across the reload (the tests' default is 200ms), and only the
	// control socket reloads (no watcher racing it).
	delivery := strings.Replace(testutil.DeliveryConfig(dns.Addr, port), `idle_timeout = "200ms"`, `idle_timeout = "60s"`, 1)
	cfg, addr := testutil.RelayConfig(t, dir, "watch = false\n"+delivery+egressHookPlugin(t, "ehlo_domain = \"first.hook.test\""))
	r := testutil.StartRelay(t, relayBin, dir, cfg, addr)

	sendTo(t, r, "one@reload.test")
	if got := sinks[0].WaitCount(t, 1, 10*time.Second)[0]; got.Helo != "first.hook.test" {
		t.Fatalf("first message after EHLO %q", got.Helo)
	}
	b, err := os.ReadFile(r.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.Config, []byte(strings.Replace(string(b), "first.hook.test", "second.hook.test", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := control.Send(defaultSock(r), "reload")
	if err != nil || !resp.OK || len(resp.Results) != 1 || !resp.Results[0].Changed {
		t.Fatalf("reload: %+v %v", resp, err)
	}
	sendTo(t, r, "two@reload.test")
	got := sinks[0].WaitCount(t, 2, 10*time.Second)
	if got[1].Helo != "second.hook.test" {
		t.Fatalf("after the reload, a message arrived after EHLO %q, want second.hook.test", got[1].Helo)
	}
}
