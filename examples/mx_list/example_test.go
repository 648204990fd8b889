package mxlist

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

var relayBin, pluginWasm string

func TestMain(m *testing.M) {
	testutil.MainWithPlugin(m, "./examples/mx_list/plugin", "mx_list", &relayBin, &pluginWasm)
}

// domain.to.be.smart.hosted has an MX that must NOT be used; smart.host.local has an A.
const zone = `
domain.to.be.smart.hosted.  MX 10 wrong.example.
wrong.example.              A  127.0.0.4
smart.host.local.           A  127.0.0.2
other.example.              MX 10 mx.other.example.
mx.other.example.           A  127.0.0.4
`

func TestMXListRecipe(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	first, second, wrong := sinks[0], sinks[1], sinks[2]
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+
		testutil.PluginSection(t, "wasmta.toml", pluginWasm, "10.0.0.1", "127.0.0.3"))
	relay := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	send := func(rcpt string) {
		c := testutil.Dial(t, relay.SMTP)
		defer c.Close()
		c.Hello("client.test")
		if code, msg := c.Send("a@sender.test", []string{rcpt}, "Subject: x\r\n\r\nhi\r\n"); code != 250 {
			t.Fatalf("%d %s", code, msg)
		}
	}

	// Order: the first entry gets the mail.
	send("u1@domain.to.be.smart.hosted")
	first.WaitCount(t, 1, 10*time.Second)
	rec := relay.WaitLog(func(r map[string]any) bool {
		return r["type"] == "Delivery" && r["recipient"] == "u1@domain.to.be.smart.hosted"
	}, 5*time.Second)
	if rec["queue"] != "domain.to.be.smart.hosted" || rec["site"] != "mx_list:smart.host.local,127.0.0.3" {
		t.Fatalf("queue %v site %v", rec["queue"], rec["site"])
	}

	// The first entry down: the second ({name, addr}) gets it, named by its name.
	first.Close()
	send("u2@domain.to.be.smart.hosted")
	second.WaitCount(t, 1, 10*time.Second)
	rec = relay.WaitLog(func(r map[string]any) bool {
		return r["type"] == "Delivery" && r["recipient"] == "u2@domain.to.be.smart.hosted"
	}, 5*time.Second)
	if p := rec["peer_address"].(map[string]any); p["name"] != "mx.example.com" || p["addr"] != "127.0.0.3" {
		t.Fatalf("peer %v", p)
	}

	// Other domains: default MX resolution.
	send("u3@other.example")
	wrong.WaitCount(t, 1, 10*time.Second)

	for _, q := range dns.Queries() {
		if q.Type == "MX" && q.Name != "other.example." {
			t.Errorf("MX query for an mx_list domain or entry: %v", q)
		}
	}
	if wrong.Count() != 1 {
		t.Fatalf("the overridden domain's own MX got mail")
	}
}
