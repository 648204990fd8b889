package main

import (
	"os"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

var relayBin, routerWasm string

func TestMain(m *testing.M) {
	testutil.MainWithPlugin(m, "./plugins/router", "router", &relayBin, &routerWasm)
}

const zone = `
my.smarthost.com.   MX 10 in.smarthost.com.
in.smarthost.com.   A  127.0.0.2
plain.example.      MX 10 mx.plain.example.
mx.plain.example.   A  127.0.0.4
internal.example.   MX 10 wrong.example.
wrong.example.      A  127.0.0.4
`

// TestRouterEndToEnd: the router, configured only from its table, gives every recipe.
func TestRouterEndToEnd(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	smarthost, internal, plain, literal := sinks[0], sinks[1], sinks[2], sinks[3]
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+`
[[plugins]]
path = "`+routerWasm+`"
[plugins.config]
tenant_header = "X-Tenant"
[[plugins.config.rules]]
tenant = "bulk"
queue = "[127.0.0.5]"
[[plugins.config.rules]]
recipient_domain = "*.smarthosted.example"
routing_domain = "my.smarthost.com"
[plugins.config.queues."internal.example"]
mx_list = [{ name = "gw.internal.example", addr = "127.0.0.3" }]
retry_interval = "1s"
`)
	relay := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	// The queue config's retry_interval (1s, not the server's 20m) drives the retry.
	internal.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT", Times: 1})
	c := testutil.Dial(t, relay.SMTP)
	c.Hello("client.test")
	for _, tc := range []struct{ rcpt, body string }{
		{"a@eu.smarthosted.example", "X-Tenant: t1\r\nSubject: x\r\n\r\nhi\r\n"},
		{"b@plain.example", "X-Tenant: bulk\r\nSubject: x\r\n\r\nhi\r\n"},
		{"c@internal.example", "Subject: x\r\n\r\nhi\r\n"},
		{"d@plain.example", "Subject: x\r\n\r\nhi\r\n"},
		// A tenant header the relay cannot use in a queue name is left out, not an error.
		{"e@plain.example", "X-Tenant: acme@corp\r\nSubject: x\r\n\r\nhi\r\n"},
	} {
		if code, msg := c.Send("s@sender.test", []string{tc.rcpt}, tc.body); code != 250 {
			t.Fatalf("%s: %d %s", tc.rcpt, code, msg)
		}
	}
	smarthost.WaitCount(t, 1, 10*time.Second)
	literal.WaitCount(t, 1, 10*time.Second)
	internal.WaitCount(t, 1, 10*time.Second)
	plain.WaitCount(t, 2, 10*time.Second)
	want := map[string]string{
		"a@eu.smarthosted.example": "t1@eu.smarthosted.example!my.smarthost.com",
		"b@plain.example":          "[127.0.0.5]",
		"c@internal.example":       "internal.example",
		"d@plain.example":          "plain.example",
		"e@plain.example":          "plain.example",
	}
	for rcpt, queue := range want {
		rec := relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Delivery" && r["recipient"] == rcpt }, 5*time.Second)
		if rec["queue"] != queue {
			t.Errorf("%s: queue %v, want %s", rcpt, rec["queue"], queue)
		}
	}
	rec := relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Delivery" && r["recipient"] == "c@internal.example" }, time.Second)
	if rec["num_attempts"] != 1.0 {
		t.Errorf("internal.example delivered after %v failed attempts, want 1 (retried after the plugin's 1s)", rec["num_attempts"])
	}
}

func TestRouterRefusesBadConfigAtStart(t *testing.T) {
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, `
[[plugins]]
path = "`+routerWasm+`"
[[plugins.config.rules]]
recipient_domain = "x.example"
`)
	_ = addr
	os.WriteFile(dir+"/bad.toml", []byte(cfg), 0o600)
	out, err := exec(dir, relayBin, "serve", "--config", dir+"/bad.toml")
	if err == nil || !contains(out, "rules[0]: set exactly one of routing_domain and queue") {
		t.Fatalf("err %v, output %s", err, out)
	}
}
