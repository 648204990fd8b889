package literals

import (
	"fmt"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

var relayBin, pluginWasm string

func TestMain(m *testing.M) {
	testutil.MainWithPlugin(m, "./examples/literals/plugin", "literals", &relayBin, &pluginWasm)
}

func TestLiteralsRecipe(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.5")
	v6 := testutil.StartSink(t, fmt.Sprintf("[::1]:%d", port))
	dns := testutil.StartDNS(t, "")
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+
		testutil.PluginSection(t, "wasmta.toml", pluginWasm,
			"[10.0.0.1]", "[127.0.0.5]", "[IPv6:2001:db8::1]", "[IPv6:::1]", "[2001:db8::1]", "[::1]"))
	relay := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	c := testutil.Dial(t, relay.SMTP)
	c.Hello("client.test")
	want := map[string]string{ // recipient -> queue
		"a@v4.example":            "[127.0.0.5]",
		"b@v6.example":            "v6.example![IPv6:::1]",
		"c@nonconforming.example": "nonconforming.example![::1]",
	}
	for rcpt := range want {
		if code, msg := c.Send("s@sender.test", []string{rcpt}, "Subject: x\r\n\r\nhi\r\n"); code != 250 {
			t.Fatalf("%s: %d %s", rcpt, code, msg)
		}
	}
	sinks[0].WaitCount(t, 1, 10*time.Second)
	v6.WaitCount(t, 2, 10*time.Second)
	for rcpt, queue := range want {
		rec := relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Delivery" && r["recipient"] == rcpt }, 5*time.Second)
		if rec["queue"] != queue {
			t.Errorf("%s: queue %v, want %s", rcpt, rec["queue"], queue)
		}
	}
	if q := dns.Queries(); len(q) != 0 {
		t.Errorf("literals must not touch DNS: %v", q)
	}
	// [::1] is still refused in the envelope.
	c.Expect(250, "MAIL FROM:<s@sender.test>")
	if code, _ := c.Cmd("RCPT TO:<x@[::1]>"); code != 553 {
		t.Errorf("RCPT x@[::1]: %d, want 553", code)
	}
}
