package routingdomain

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

var relayBin, pluginWasm string

func TestMain(m *testing.M) {
	testutil.MainWithPlugin(m, "./examples/routing_domain/plugin", "routing_domain", &relayBin, &pluginWasm)
}

const zone = `
example.com.           MX 10 mx.example.com.
mx.example.com.        A  127.0.0.2
my.smarthost.com.      MX 10 relay.smarthost.com.
relay.smarthost.com.   A  127.0.0.3
`

func TestRoutingDomainRecipe(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+
		testutil.PluginSection(t, "wasmta.toml", pluginWasm))
	relay := testutil.StartRelay(t, relayBin, dir, cfg, addr)

	c := testutil.Dial(t, relay.SMTP)
	c.Hello("client.test")
	if code, msg := c.Send("a@sender.test", []string{"bob@example.com"}, "X-Tenant: t1\r\nX-Campaign: c1\r\nSubject: 1\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	if code, msg := c.Send("a@sender.test", []string{"carol@example.com"}, "Subject: 2\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	got := sinks[1].WaitCount(t, 2, 10*time.Second)
	if sinks[0].Count() != 0 {
		t.Fatal("example.com's own MX was used")
	}
	if got[0].To[0] != "bob@example.com" && got[1].To[0] != "bob@example.com" {
		t.Fatalf("recipients %v %v", got[0].To, got[1].To)
	}
	want := map[string]string{
		"bob@example.com":   "c1:t1@example.com!my.smarthost.com",
		"carol@example.com": "example.com!my.smarthost.com",
	}
	for rcpt, queue := range want {
		rec := relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Delivery" && r["recipient"] == rcpt }, 5*time.Second)
		if rec["queue"] != queue {
			t.Errorf("%s: queue %v, want %s", rcpt, rec["queue"], queue)
		}
		meta := rec["meta"].(map[string]any)
		if meta["routing_domain"] != "my.smarthost.com" {
			t.Errorf("%s: meta %v", rcpt, meta)
		}
		if rec["peer_address"].(map[string]any)["name"] != "relay.smarthost.com" {
			t.Errorf("%s: delivered via %v", rcpt, rec["peer_address"])
		}
	}
	rec := relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Reception" && r["recipient"] == "bob@example.com" }, time.Second)
	if m := rec["meta"].(map[string]any); m["tenant"] != "t1" || m["campaign"] != "c1" {
		t.Errorf("reception meta %v", m)
	}
	if p, _ := rec["policy"].([]any); len(p) != 1 {
		t.Errorf("reception record does not name the plugin generation: %v", rec["policy"])
	}
	for _, q := range dns.Queries() {
		if q.Name == "example.com." {
			t.Errorf("the recipient domain was resolved: %v", q)
		}
	}
}
