package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

func fixture(t *testing.T, name string) string {
	p, err := filepath.Abs(filepath.Join("..", "..", "host", "plugin", "testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pluginConfig(path string) string {
	return "\n[[plugins]]\npath = \"" + path + "\"\ntimeout = \"100ms\"\nmax_memory = \"4MiB\"\n"
}

// A plugin that traps, loops forever or runs out of memory during reception: the client gets
// 451 4.3.0 (it keeps the message and retries), and the server keeps serving.
func TestBrokenMessageHookAnswers451AndServerStaysUp(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"trap", "loop", "memory"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, zone, []string{"127.0.0.4"}, pluginConfig(fixture(t, name)))
			for i := 0; i < 3; i++ {
				c := testutil.Dial(t, e.relay.SMTP)
				c.Hello("client.test")
				c.Expect(250, "MAIL FROM:<a@sender.test>")
				c.Expect(250, "RCPT TO:<x@implicit.test>")
				code, msg := c.Data("Subject: x\r\n\r\nhi\r\n")
				if code != 451 || !strings.HasPrefix(msg, "4.3.0") {
					t.Fatalf("attempt %d: %d %s, want 451 4.3.0", i, code, msg)
				}
				if strings.Contains(msg, "wasm") || strings.Contains(msg, "unreachable") {
					t.Fatalf("reply leaks internals: %s", msg)
				}
				c.Close()
			}
			e.relay.WaitStderr("message hook failed", 5*time.Second)
			if e.sinks["127.0.0.4"].Count() != 0 {
				t.Fatal("a message got through a failing policy")
			}
		})
	}
}

// get_queue_config failing leaves the message queued (TransientFailure record); nothing is
// lost: after a restart without the broken plugin it is delivered at its persisted due time.
func TestBrokenQueueConfigKeepsMessageQueued(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"2s\"\n"+pluginConfig(fixture(t, "qtrap")))
	e.send("a@sender.test", "kept@implicit.test", "queued")
	rec := e.relay.WaitLog(recipientIs("TransientFailure", "kept@implicit.test"), 10*time.Second)
	if testutil.Code(rec) != 451 || !strings.Contains(rec["response"].(map[string]any)["content"].(string), "queue configuration unavailable") {
		t.Fatalf("record %v", rec)
	}
	e.relay.WaitStderr("queue config failed", 5*time.Second)
	e.relay.Kill()
	cfg, _ := os.ReadFile(e.relay.Config)
	fixed := strings.Replace(string(cfg), pluginConfig(fixture(t, "qtrap")), "", 1)
	os.WriteFile(e.relay.Config, []byte(fixed), 0o600)
	e.relay.Start()
	e.sinks["127.0.0.4"].WaitCount(t, 1, 30*time.Second)
}

func TestBrokenPluginStopsStartup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, want := range map[string]string{
		"nomarker":      `missing export "wasmta_abi_v1"`,
		"unknownimport": "imports wasmta.frobnicate",
		"initfail":      "wasmta_init returned 3: config missing",
	} {
		os.WriteFile(dir+"/c.toml", []byte(pluginConfig(fixture(t, name))), 0o600)
		out, err := runBin(dir, "serve", "--config", dir+"/c.toml")
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: err=%v out=%s", name, err, out)
		}
		out, err = runBin(dir, "plugin", "check", fixture(t, name))
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("plugin check %s: err=%v out=%s", name, err, out)
		}
	}
	out, err := runBin(dir, "plugin", "check", fixture(t, "meta"))
	if err != nil || !strings.Contains(out, "hooks: smtp_server_message_received") || !strings.Contains(out, "abi: 1.2") {
		t.Fatalf("check ok plugin: %v %s", err, out)
	}
}

// A plugin's reject reaches the client with its own code and is logged as a Rejection.
func TestPluginRejectReachesClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, pluginConfig(fixture(t, "reject")))
	c := testutil.Dial(t, e.relay.SMTP)
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<a@sender.test>")
	c.Expect(250, "RCPT TO:<x@implicit.test>")
	if code, msg := c.Data("Subject: x\r\n\r\nhi\r\n"); code != 550 || msg != "5.7.1 no thanks" {
		t.Fatalf("%d %q", code, msg)
	}
	e.relay.WaitLog(recipientIs("Rejection", "x@implicit.test"), 5*time.Second)
}

func TestPluginDryRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(dir+"/msg.eml", []byte("Subject: Hello\nFrom: a@x.test\n\nbody\n"), 0o600)
	out, err := runBin(dir, "plugin", "test", fixture(t, "meta"), "--message", dir+"/msg.eml", "--from", "a@x.test", "--rcpt", "b@example.com", "--meta", "tenant=t1")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"result: accepted",
		`routing_domain = "my.smarthost.test"`,
		`subject = "Hello"`,
		"X-Policy: seen",
		"X-Trailer: seen",
		"recipient b@example.com -> queue t1@example.com!my.smarthost.test",
		"queue config: server defaults",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = runBin(dir, "plugin", "test", fixture(t, "queuecfg"), "--rcpt", "x@smart.example")
	if err != nil || !strings.Contains(out, `"mx_list":["smart.host.local",{"name":"mx.example.com","addr":"127.0.0.3"}]`) {
		t.Fatalf("queue config dry run: %v\n%s", err, out)
	}
	out, err = runBin(dir, "plugin", "test", fixture(t, "reject"), "--rcpt", "x@y.test")
	if err != nil || !strings.Contains(out, "result: rejected: 550 5.7.1 no thanks") {
		t.Fatalf("reject dry run: %v\n%s", err, out)
	}
	out, err = runBin(dir, "plugin", "test", fixture(t, "trap"), "--rcpt", "x@y.test")
	if err == nil || !strings.Contains(out, "FAILED") {
		t.Fatalf("trap dry run: %v\n%s", err, out)
	}
}

func TestRouteExplain(t *testing.T) {
	t.Parallel()
	dns := testutil.StartDNS(t, zone+"my.smarthost.test. MX 10 mx1.example.com.\n")
	dir := t.TempDir()
	cfg := dir + "/c.toml"
	os.WriteFile(cfg, []byte(`[dns]
resolvers = ["`+dns.Addr+`"]
[delivery]
prohibited_hosts = []
smtp_port = 2525
`+pluginConfig(fixture(t, "meta"))), 0o600)
	out, err := runBin(dir, "route", "explain", "--config", cfg, "--rcpt", "bob@example.com")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"plugins: meta.wasm@",
		"queue: example.com!my.smarthost.test",
		"queue config (server defaults): retry_interval=20m0s",
		"site: ",
		"mx1.example.com [127.0.0.2]:2525",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	// Without plugins: the recipient domain's own MX, in preference order.
	os.WriteFile(cfg, []byte("[dns]\nresolvers = [\""+dns.Addr+"\"]\n[delivery]\nprohibited_hosts = []\n"), 0o600)
	out, err = runBin(dir, "route", "explain", "--config", cfg, "--rcpt", "bob@example.com")
	i1, i2 := strings.Index(out, "mx1.example.com"), strings.Index(out, "mx2.example.com")
	if err != nil || i1 < 0 || i2 < i1 {
		t.Fatalf("plain MX explain: %v\n%s", err, out)
	}
	// A host whose address is prohibited is named as left out, not silently missing.
	os.WriteFile(cfg, []byte("[dns]\nresolvers = [\""+dns.Addr+"\"]\n[delivery]\nprohibited_hosts = [\"127.0.0.2/32\"]\n"), 0o600)
	out, err = runBin(dir, "route", "explain", "--config", cfg, "--rcpt", "bob@example.com")
	tried, left, _ := strings.Cut(out, "left out, their address is in delivery.prohibited_hosts:")
	if err != nil || !strings.Contains(tried, "mx2.example.com [127.0.0.3]") || strings.Contains(tried, "mx1.example.com [") ||
		!strings.Contains(left, "mx1.example.com [127.0.0.2]") {
		t.Fatalf("explain with a prohibited MX host: %v\n%s", err, out)
	}
	out, _ = runBin(dir, "route", "explain", "--config", cfg, "--rcpt", "x@nullmx.test")
	if !strings.Contains(out, "delivery would fail: 556 5.1.10") {
		t.Fatalf("null MX explain:\n%s", out)
	}
}

// One client who can make the plugin trap (here: any envelope sender starting with "e") must
// not stop reception for everyone: after 150 crafted messages from 127.0.0.1, each answered
// 451 4.3.0, a client on 127.0.0.2 still gets 250 and its mail is delivered. Reception hands the
// client address to the plugin host, whose breaker needs failures from several clients.
func TestOneClientCannotStopReceptionForAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, pluginConfig(fixture(t, "picky")))
	c := testutil.DialFrom(t, "127.0.0.1", e.relay.SMTP)
	c.Hello("evil.test")
	for i := range 150 {
		c.Expect(250, "MAIL FROM:<evil@attacker.test>")
		c.Expect(250, "RCPT TO:<x%d@implicit.test>", i)
		if code, msg := c.Data("Subject: crafted\r\n\r\nx\r\n"); code != 451 || !strings.HasPrefix(msg, "4.3.0") {
			t.Fatalf("crafted message %d: %d %s, want 451 4.3.0", i, code, msg)
		}
	}
	c.Close()
	good := testutil.DialFrom(t, "127.0.0.2", e.relay.SMTP)
	good.Hello("friend.test")
	if code, msg := good.Send("a@sender.test", []string{"friend@implicit.test"}, "Subject: hi\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("another client after one client's crafted traps: %d %s", code, msg)
	}
	e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
}
