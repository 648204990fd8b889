package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/spool"
	"github.com/wasmta/wasmta/host/testutil"
)

// These tests run the relay in-process (real spool on disk, real DNS server and sinks on
// loopback) to set meta from Go, as plugins will: the queue and delivery layers must already
// honour routing_domain and queue meta.

const zone = `
example.com.          MX 10 mx.example.com.
mx.example.com.       A  127.0.0.2
my.smarthost.test.    MX 10 smtp.smarthost.test.
smtp.smarthost.test.  A  127.0.0.3
`

func start(t *testing.T) (*App, map[string]*testutil.Sink, *testutil.DNSServer) {
	t.Helper()
	port, sinks := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3")
	dns := testutil.StartDNS(t, zone)
	a := startApp(t, testConfig(t, t.TempDir(), dns.Addr, port, ""), nil)
	return a, map[string]*testutil.Sink{"127.0.0.2": sinks[0], "127.0.0.3": sinks[1]}, dns
}

// submit queues a message the way reception does: the queue name comes from meta and the
// recipient's domain.
func submit(t *testing.T, a *App, rcpt string, meta map[string]string) *message.Message {
	t.Helper()
	_, domain, err := route.ParseMailbox(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	queue := route.QueueName(meta, domain)
	now := time.Now()
	m := &message.Message{ID: message.NewID(now), Sender: "s@sender.test", Recipient: rcpt,
		Meta: meta, Queue: queue, Created: now, Due: now, Protocol: "ESMTP"}
	if err := a.Submit([]*message.Message{m}, []byte("Subject: t\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoutingDomainMeta(t *testing.T) {
	a, sinks, dns := start(t)
	// As reception computes it from meta: tenant and campaign kept, routing domain appended.
	submit(t, a, "bob@example.com", map[string]string{"routing_domain": "my.smarthost.test", "tenant": "t1", "campaign": "c1"})
	got := sinks["127.0.0.3"].WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "bob@example.com" {
		t.Fatalf("recipient %v", got[0].To)
	}
	if sinks["127.0.0.2"].Count() != 0 {
		t.Fatal("the recipient domain's own MX was used")
	}
	for _, q := range dns.Queries() {
		if q.Name == "example.com." {
			t.Fatalf("MX of the recipient domain was queried: %v", q)
		}
	}
	rec := waitRecord(t, a, "Delivery")
	if rec["queue"] != "c1:t1@example.com!my.smarthost.test" {
		t.Fatalf("queue in log %v", rec["queue"])
	}
}

func TestQueueMetaVerbatim(t *testing.T) {
	a, sinks, _ := start(t)
	submit(t, a, "carol@Example.COM", map[string]string{"queue": "my.smarthost.test", "tenant": "ignored"})
	sinks["127.0.0.3"].WaitCount(t, 1, 10*time.Second)
	if rec := waitRecord(t, a, "Delivery"); rec["queue"] != "my.smarthost.test" {
		t.Fatalf("queue in log %v", rec["queue"])
	}
}

func waitRecord(t *testing.T, a *App, typ string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range testutil.ReadLogRecords(t, a.cfg.Logs.Dir) {
			if r["type"] == typ {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s record", typ)
	return nil
}

func TestLiteralRoutingTargets(t *testing.T) {
	a, sinks, dns := start(t)
	// An IPv6 sink on ::1 with the same port as the others.
	port := sinks["127.0.0.2"].Addr[len("127.0.0.2:"):]
	v6 := testutil.StartSink(t, "[::1]:"+port)

	submit(t, a, "a@example.com", map[string]string{"routing_domain": "[127.0.0.3]"})
	submit(t, a, "b@example.com", map[string]string{"queue": "[IPv6:::1]"})
	submit(t, a, "c@example.com", map[string]string{"routing_domain": "[::1]"}) // non-conforming, accepted for routing
	sinks["127.0.0.3"].WaitCount(t, 1, 10*time.Second)
	got := v6.WaitCount(t, 2, 10*time.Second)
	if len(got) != 2 {
		t.Fatalf("::1 sink got %d", len(got))
	}
	for _, q := range dns.Queries() {
		t.Fatalf("literals must not touch DNS, saw %v", q)
	}
}

// testConfig is an in-process relay config: everything under dir, SMTP on a free port, DNS at
// dnsAddr, delivery to port on loopback; extra is appended (plugins).
func testConfig(t testing.TB, dir, dnsAddr string, port int, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Sprintf(`
hostname = "relay.test"
control_socket = %q
wasm_cache = %q
[spool]
path = %q
min_free = "32MiB"
[logs]
dir = %q
[smtp]
listen = ["127.0.0.1:0"]
[http]
listen = ""
[dns]
resolvers = [%q]
[delivery]
smtp_port = %d
prohibited_hosts = []
`, filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "cache"), filepath.Join(dir, "spool"), filepath.Join(dir, "logs"), dnsAddr, port) + extra)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startApp starts an in-process relay (diagnostics to diag, or the default) stopped at cleanup.
func startApp(t testing.TB, cfg *config.Config, diag *slog.Logger) *App {
	t.Helper()
	a, err := New(cfg, diag)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	return a
}

// Recovery queues nothing before the whole spool is scanned: a recovered message that bounces at
// once must not take the shared body of a sibling further on.
func TestRecoveryKeepsSharedBodies(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.2")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	cfg := testConfig(t, dir, dns.Addr, port, "")
	sp, err := spool.Open(cfg.Spool.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	bad := &message.Message{ID: message.NewID(now), Sender: "s@x.test", Recipient: "a@example.com", Queue: "@", Created: now, Due: now}
	good := &message.Message{ID: message.NewID(now.Add(time.Millisecond)), Sender: "s@x.test", Recipient: "b@example.com", Queue: "example.com", Created: now, Due: now}
	if err := sp.Put([]*message.Message{bad, good}, []byte("Subject: shared\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	a := startApp(t, cfg, nil)
	got := sinks[0].WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "b@example.com" || !strings.Contains(string(got[0].Data), "Subject: shared") {
		t.Fatalf("delivered %v", got[0])
	}
	if rec := waitRecord(t, a, "Bounce"); rec["recipient"] != "a@example.com" {
		t.Fatalf("bounce %v", rec)
	}
}

// A plugin added to the config by a reload applies to reception at once (the server started
// without any), and a plugin config that cannot be handed over leaves the running one serving.
func TestReloadAddsPluginAndRefusesBadConfig(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	base := testConfig(t, dir, dns.Addr, port, "")
	path := filepath.Join(dir, "c.toml")
	text := fmt.Sprintf("control_socket = %q\nwasm_cache = %q\n[spool]\npath = %q\nmin_free = \"32MiB\"\n[logs]\ndir = %q\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = \"\"\n[dns]\nresolvers = [%q]\n[delivery]\nsmtp_port = %d\nprohibited_hosts = []\n",
		base.ControlSocket, base.WasmCache, base.Spool.Path, base.Logs.Dir, dns.Addr, port)
	os.WriteFile(path, []byte(text), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Watch = false
	a := startApp(t, cfg, nil)
	a.SetConfigPath(path)
	plug, _ := filepath.Abs("../plugin/testdata/route_b.wasm") // routing_domain [127.0.0.3]
	os.WriteFile(path, []byte(text+fmt.Sprintf("[[plugins]]\npath = %q\n", plug)), 0o600)
	if _, err := a.Reload("test"); err != nil {
		t.Fatal(err)
	}
	c := testutil.Dial(t, a.SMTPAddrs()[0].String())
	c.Hello("t.test")
	if code, msg := c.Send("s@x.test", []string{"r@example.com"}, "Subject: x\r\n\r\nx\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	sinks[1].WaitCount(t, 1, 10*time.Second) // routed by the plugin, not example.com's MX (.2)

	gen := a.Status()[0].Generation
	os.WriteFile(path, []byte(text+fmt.Sprintf("[[plugins]]\npath = %q\n[plugins.config]\nk = nan\n", plug)), 0o600)
	if _, err := a.Reload("test"); err == nil {
		t.Fatal("a config that cannot be encoded was accepted")
	}
	if st := a.Status(); len(st) != 1 || st[0].Generation != gen {
		t.Fatalf("the running plugin was dropped: %+v", st)
	}
}
