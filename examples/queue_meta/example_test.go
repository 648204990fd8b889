package queuemeta

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

var relayBin, pluginWasm string

func TestMain(m *testing.M) {
	testutil.MainWithPlugin(m, "./examples/queue_meta/plugin", "queue_meta", &relayBin, &pluginWasm)
}

const zone = `
example.com.          MX 10 mx.example.com.
mx.example.com.       A  127.0.0.2
my.smarthost.com.     MX 10 in.smarthost.com.
in.smarthost.com.     A  127.0.0.3
`

func TestQueueMetaRecipe(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+
		testutil.PluginSection(t, "wasmta.toml", pluginWasm))
	relay := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	c := testutil.Dial(t, relay.SMTP)
	c.Hello("client.test")
	for _, rcpt := range []string{"a@example.com", "b@Other.Example"} {
		if code, msg := c.Send("s@sender.test", []string{rcpt}, "Subject: x\r\n\r\nhi\r\n"); code != 250 {
			t.Fatalf("%d %s", code, msg)
		}
	}
	sinks[1].WaitCount(t, 2, 10*time.Second)
	if sinks[0].Count() != 0 {
		t.Fatal("the recipient domain's MX was used")
	}
	for _, rcpt := range []string{"a@example.com", "b@Other.Example"} {
		rec := relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Delivery" && r["recipient"] == rcpt }, 5*time.Second)
		if rec["queue"] != "my.smarthost.com" {
			t.Errorf("%s: queue %v", rcpt, rec["queue"])
		}
	}
}
