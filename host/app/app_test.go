package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
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
[logs]
dir = %q
[smtp]
listen = ["127.0.0.1:0"]
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
