package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/testutil"
)

// An outside tester's pass over design.md's promises that no other end-to-end test pinned: each
// test runs the real binary with a real DNS server and real sinks on loopback and asserts what a
// user sees (replies, log records, the admin summary).

// enhanced returns a record's response enhanced code as "c.s.d" ("" when it has none).
func enhanced(rec map[string]any) string {
	resp, _ := rec["response"].(map[string]any)
	ec, ok := resp["enhanced_code"].(map[string]any)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%v.%v.%v", ec["class"], ec["subject"], ec["detail"])
}

// TestSpecAuditEnvelopeLiterals: design §3. In the envelope the IPv6 tag is required but its
// case is not; [::1] is refused in MAIL FROM (501) as in RCPT TO (553), and so is a literal
// without its ']'.
func TestSpecAuditEnvelopeLiterals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	c := testutil.Dial(t, e.relay.SMTP)
	c.Hello("client.test")
	if code, msg := c.Cmd("MAIL FROM:<y@[::1]>"); code != 501 || !strings.HasPrefix(msg, "5.1.7 ") || !strings.Contains(msg, "IPv6:") {
		t.Errorf("MAIL FROM:<y@[::1]>: %d %s, want 501 5.1.7 naming the IPv6: tag", code, msg)
	}
	c.Expect(250, "MAIL FROM:<y@[ipv6:::1]>")
	c.Expect(250, "RCPT TO:<a@[IPV6:::1]>")
	c.Expect(250, "RCPT TO:<b@[10.0.0.1]>")
	for _, rcpt := range []string{"c@[::1]", "d@[10.0.0.1", "e@[10.0.0.256]"} {
		if code, msg := c.Cmd("RCPT TO:<%s>", rcpt); code != 553 || !strings.HasPrefix(msg, "5.1.3 ") {
			t.Errorf("RCPT TO:<%s>: %d %s, want 553 5.1.3", rcpt, code, msg)
		}
	}
}

// TestSpecAuditDefaultProhibitedHosts: design §4. With [delivery] prohibited_hosts left at its
// default, loopback destinations (a literal, or a name resolving to one) bounce 550 5.4.4 and
// nothing is sent to them.
func TestSpecAuditDefaultProhibitedHosts(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.4", "127.0.0.5")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, fmt.Sprintf("[dns]\nresolvers = [%q]\n[delivery]\nsmtp_port = %d\n", dns.Addr, port))
	relay := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	c := testutil.Dial(t, relay.SMTP)
	c.Hello("client.test")
	for _, rcpt := range []string{"a@[127.0.0.5]", "b@implicit.test"} {
		if code, msg := c.Send("s@sender.test", []string{rcpt}, testutil.Message("s@sender.test", rcpt, "x", "hi")); code != 250 {
			t.Fatalf("%s: %d %s", rcpt, code, msg)
		}
		rec := relay.WaitLog(recipientIs("Bounce", rcpt), 10*time.Second)
		if testutil.Code(rec) != 550 || enhanced(rec) != "5.4.4" {
			t.Errorf("%s: bounce %v, want 550 5.4.4", rcpt, rec["response"])
		}
	}
	for i, s := range sinks {
		if n := s.Count(); n != 0 {
			t.Errorf("sink %d got %d messages", i, n)
		}
	}
}

// TestSpecAuditNXDOMAINThenExpiry: design §4 and §5. A destination that does not exist is a
// transient failure (451 4.4.4), retried until max_age, then expired with 551 5.4.7.
func TestSpecAuditNXDOMAINThenExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1s\"\nmax_age = \"2s\"\n")
	e.send("a@sender.test", "x@nx.test", "nx")
	rec := e.relay.WaitLog(recipientIs("TransientFailure", "x@nx.test"), 10*time.Second)
	if testutil.Code(rec) != 451 || enhanced(rec) != "4.4.4" {
		t.Errorf("NXDOMAIN: %v, want 451 4.4.4", rec["response"])
	}
	rec = e.relay.WaitLog(recipientIs("Expiration", "x@nx.test"), 15*time.Second)
	if testutil.Code(rec) != 551 || enhanced(rec) != "5.4.7" {
		t.Errorf("expiry: %v, want 551 5.4.7", rec["response"])
	}
}

// TestSpecAuditRecordFields: design §9. Every field the spec lists is in the Reception and the
// Delivery record of one message (delivery_protocol only where a delivery reached a host, as
// docs/logs.md says), with values that agree with each other.
func TestSpecAuditRecordFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	reply := e.send("a@sender.test", "f@implicit.test", "fields")
	id := strings.TrimPrefix(reply, "2.0.0 OK queued as ")
	e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
	del := e.relay.WaitLog(recipientIs("Delivery", "f@implicit.test"), 5*time.Second)
	rcv := e.relay.WaitLog(recipientIs("Reception", "f@implicit.test"), time.Second)
	common := []string{"type", "id", "sender", "recipient", "queue", "site", "size", "response",
		"peer_address", "timestamp", "created", "num_attempts", "meta", "reception_protocol"}
	for _, rec := range []map[string]any{rcv, del} {
		for _, f := range common {
			if _, ok := rec[f]; !ok {
				t.Errorf("%s record lacks %q: %v", rec["type"], f, rec)
			}
		}
		if rec["id"] != id || rec["sender"] != "a@sender.test" || rec["queue"] != "implicit.test" ||
			rec["reception_protocol"] != "ESMTP" || rec["created"] != rcv["created"] || rec["size"] != rcv["size"] {
			t.Errorf("%s record: %v", rec["type"], rec)
		}
		if _, ok := rec["timestamp"].(float64); !ok {
			t.Errorf("%s timestamp %v, want Unix seconds", rec["type"], rec["timestamp"])
		}
		for _, f := range []string{"code", "enhanced_code", "content"} {
			if _, ok := rec["response"].(map[string]any)[f]; !ok {
				t.Errorf("%s response lacks %q", rec["type"], f)
			}
		}
		peer := rec["peer_address"].(map[string]any)
		if peer["name"] == nil || peer["addr"] == nil {
			t.Errorf("%s peer_address %v", rec["type"], peer)
		}
	}
	if del["delivery_protocol"] != "ESMTP" || del["site"] == "" || del["num_attempts"] != 0.0 || testutil.Code(del) != 250 {
		t.Errorf("Delivery record: %v", del)
	}
	if p := rcv["peer_address"].(map[string]any); p["name"] != "client.test" || p["addr"] != "127.0.0.1" {
		t.Errorf("Reception peer_address %v, want the EHLO name and the client IP", p)
	}
}

// TestSpecAuditTooManyConnections: design §7. A connection over max_connections gets 421 and
// is closed; the ones within the limit keep working.
func TestSpecAuditTooManyConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	cfg, _ := os.ReadFile(e.relay.Config)
	e.relay.Kill()
	os.WriteFile(e.relay.Config, []byte(strings.Replace(string(cfg), "[smtp]\n", "[smtp]\nmax_connections = 1\n", 1)), 0o600)
	e.relay.Start()
	// The readiness probe's connection is released when the server sees it close: poll until a
	// session gets its banner, then hold it.
	banner := func() (net.Conn, string) {
		conn, err := net.Dial("tcp", e.relay.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return conn, line
	}
	deadline := time.Now().Add(10 * time.Second)
	first, line := banner()
	for !strings.HasPrefix(line, "220 ") {
		first.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no session within the limit of 1: %q", line)
		}
		time.Sleep(20 * time.Millisecond)
		first, line = banner()
	}
	defer first.Close()
	second, line := banner()
	defer second.Close()
	if !strings.HasPrefix(line, "421 4.3.2 ") {
		t.Fatalf("connection over the limit: %q, want 421 4.3.2", line)
	}
	fmt.Fprintf(first, "NOOP\r\n")
	if line, _ = bufio.NewReader(first).ReadString('\n'); !strings.HasPrefix(line, "250 ") {
		t.Fatalf("the session within the limit: NOOP got %q", line)
	}
}

// TestSpecAuditSeedRecipesQueueNames: design §2 and the routing guide's recipes through the
// router plugin. The scheduled queue names — tenant and campaign kept with routing_domain, a
// verbatim queue meta (not lower-cased), literals — are what the Reception records and the admin queue summary
// show, while the mail waits (the smarthost defers it).
func TestSpecAuditSeedRecipesQueueNames(t *testing.T) {
	t.Parallel()
	wasm := routerWasm(t)
	const seedZone = zone + `
my.smarthost.com.   MX 10 in.smarthost.com.
in.smarthost.com.   A  127.0.0.2
`
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	e := newEnv(t, seedZone, []string{"127.0.0.2", "127.0.0.5"}, fmt.Sprintf(`[http]
listen = %q
[queue]
retry_interval = "1h"
[[plugins]]
path = %q
[plugins.config]
tenant_header = "X-Tenant"
campaign_header = "X-Campaign"
[[plugins.config.rules]]
recipient_domain = "literal.example"
queue = "[127.0.0.5]"
[[plugins.config.rules]]
recipient_domain = "v6.example"
routing_domain = "[IPv6:::1]"
[[plugins.config.rules]]
recipient_domain = "nonconforming.example"
routing_domain = "[::1]"
[[plugins.config.rules]]
recipient_domain = "upper.example"
queue = "My.SmartHost.COM"
[[plugins.config.rules]]
recipient_domain = "*"
routing_domain = "my.smarthost.com"
`, httpAddr, wasm))
	(&httpEnv{env: e}).waitHTTP(httpAddr)
	for _, s := range e.sinks {
		s.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	}
	want := map[string]string{ // recipient -> scheduled queue
		"a@Example.COM":           "c1:t1@example.com!my.smarthost.com",
		"b@example.com":           "example.com!my.smarthost.com",
		"c@literal.example":       "[127.0.0.5]",
		"d@v6.example":            "v6.example![IPv6:::1]",
		"e@nonconforming.example": "nonconforming.example![::1]",
		"f@upper.example":         "My.SmartHost.COM", // the queue meta, verbatim
	}
	c := testutil.Dial(t, e.relay.SMTP)
	c.Hello("client.test")
	for rcpt := range want {
		body := "Subject: x\r\n\r\nhi\r\n"
		if rcpt == "a@Example.COM" {
			body = "X-Tenant: t1\r\nX-Campaign: c1\r\n" + body
		}
		if code, msg := c.Send("s@sender.test", []string{rcpt}, body); code != 250 {
			t.Fatalf("%s: %d %s", rcpt, code, msg)
		}
	}
	// The same recipes over the HTTP injection API (http_message_generated), tenant and
	// campaign from the message's headers as over SMTP.
	admin := &adminEnv{&httpEnv{env: e, url: "http://" + httpAddr}}
	r := admin.inject(map[string]any{
		"envelope_sender": "s@sender.test",
		"content":         map[string]any{"subject": "x", "text_body": "hi", "headers": map[string]string{"X-Tenant": "t2"}},
		"recipients":      []map[string]string{{"email": "g@Other.example"}, {"email": "h@[IPv6:::1]"}},
	})
	if r.SuccessCount != 2 || r.FailCount != 0 {
		t.Fatalf("inject: %+v", r)
	}
	want["g@Other.example"] = "t2@other.example!my.smarthost.com"
	want["h@[IPv6:::1]"] = "t2@[ipv6:::1]!my.smarthost.com" // the recipient domain is lower-cased, tag included
	for rcpt, q := range want {
		rec := e.relay.WaitLog(recipientIs("Reception", rcpt), 5*time.Second)
		if rec["queue"] != q {
			t.Errorf("%s: Reception queue %v, want %s", rcpt, rec["queue"], q)
		}
	}
	// The smarthost and the literal defer everything; [::1] has no sink: each queue keeps its
	// message, and the summary lists it by the same name.
	admin.waitSummary("every recipe's queue", func(s queue.Summary) bool {
		for _, q := range want {
			if sq := schedQ(s, q); sq == nil || sq.Count != 1 {
				return false
			}
		}
		return true
	})
	if n := e.sinks["127.0.0.2"].Count() + e.sinks["127.0.0.5"].Count(); n != 0 {
		t.Fatalf("deferring sinks accepted %d messages", n)
	}

	// The queue-name parts are what the admin selectors match: a tenant, and a routing domain
	// compared as written ([::1] is not [IPv6:::1]).
	for _, tc := range []struct{ flag, value, rcpt string }{
		{"--tenant", "t1", "a@Example.COM"},
		{"--routing-domain", "[::1]", "e@nonconforming.example"},
	} {
		out, err := runBin(e.relay.Dir, "queue", "bounce", tc.flag, tc.value, "--reason", "audit", "--duration", "1m", "--api", admin.url)
		if err != nil || !strings.Contains(out, "bounced 1 message(s)") {
			t.Fatalf("queue bounce %s %s: %v\n%s", tc.flag, tc.value, err, out)
		}
		e.relay.WaitLog(recipientIs("AdminBounce", tc.rcpt), 5*time.Second)
		delete(want, tc.rcpt)
	}
	admin.waitSummary("the other queues untouched", func(s queue.Summary) bool {
		for _, q := range want {
			if sq := schedQ(s, q); sq == nil || sq.Count != 1 {
				return false
			}
		}
		return s.Queued == int64(len(want))
	})
}

// TestSpecAuditRouterBadLiteralIsConfigError: design §3 — a literal missing its ']' or not an
// IP is a configuration error when the plugin takes its config: `wasmta config check` and
// so serve, refuse the router's config naming the rule, instead of starting and answering 451 to
// every message the rule matches.
func TestSpecAuditRouterBadLiteralIsConfigError(t *testing.T) {
	t.Parallel()
	wasm := routerWasm(t)
	dir := t.TempDir()
	for _, tc := range []struct{ rule, want string }{
		{`routing_domain = "[10.0.0.1"`, "rules[0]"},
		{`queue = "[::1"`, "rules[0]"},
		{`queue = "t@example.com![10.0.0.256]"`, "rules[0]"},
	} {
		cfg, _ := testutil.RelayConfig(t, dir, fmt.Sprintf("[[plugins]]\npath = %q\n[[plugins.config.rules]]\nrecipient_domain = \"*\"\n%s\n", wasm, tc.rule))
		path := filepath.Join(dir, "bad.toml")
		os.WriteFile(path, []byte(cfg), 0o600)
		// config check initialises plugins exactly as serve does (TestConfigCheckFailsWhereServeFails);
		// serve itself would keep running on the old code.
		out, err := runBin(dir, "config", "check", path)
		if err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, "literal") {
			t.Errorf("%s: err=%v output=%q, want an error naming %s and the literal", tc.rule, err, out, tc.want)
		}
	}
}

// TestSpecAuditRebindRefusesMalformedRouting: a rebind whose data would give a queue or
// routing domain that delivery cannot parse is refused with the parse error, and the message
// stays queued where it was: one typo in an admin command must not bounce the mail it selects.
func TestSpecAuditRebindRefusesMalformedRouting(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1h\"\n")
	e.sinks["127.0.0.4"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	e.send("a@sender.test", "m@implicit.test", "rebind me")
	e.relay.WaitLog(recipientIs("TransientFailure", "m@implicit.test"), 10*time.Second)
	for _, set := range []string{"queue=[10.0.0.1", "routing_domain=[10.0.0.256]", "queue=@"} {
		out, err := e.cli("retry", "--domain", "implicit.test", "--set", set)
		if err == nil || !strings.Contains(out, "400") {
			t.Errorf("retry --set %s: err %v, output %q; want a refusal (400)", set, err, out)
		}
	}
	// The message was left where it was: a valid rebind still finds it, and its next attempt
	// is a retry from the new queue, not a bounce.
	if out := e.mustCLI("retry", "--domain", "implicit.test", "--set", "routing_domain=[127.0.0.4]"); !strings.Contains(out, "1 message") {
		t.Fatalf("a valid rebind after the refused ones: %q, want it to find the message", out)
	}
	e.relay.WaitLog(func(r map[string]any) bool {
		return recipientIs("TransientFailure", "m@implicit.test")(r) && r["queue"] == "implicit.test![127.0.0.4]"
	}, 10*time.Second)
	for _, r := range e.relay.LogRecords() {
		if recipientIs("Bounce", "m@implicit.test")(r) {
			t.Fatalf("a refused rebind bounced the message: %v", r)
		}
	}
}

// TestSpecAudit3xxWhere2xxExpectedIsTransient: design §6 — a 3xx reply where a 2xx was expected
// (here to RCPT) is a transient failure: the message is retried and delivered, never bounced.
func TestSpecAudit3xxWhere2xxExpectedIsTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1s\"\n")
	e.sinks["127.0.0.4"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT", Code: 354, Text: "surprise", Times: 1})
	e.send("a@sender.test", "r@implicit.test", "3xx")
	rec := e.relay.WaitLog(recipientIs("TransientFailure", "r@implicit.test"), 10*time.Second)
	if testutil.Code(rec)/100 != 4 && testutil.Code(rec) != 354 {
		t.Errorf("transient record %v", rec["response"])
	}
	e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
	e.relay.WaitLog(recipientIs("Delivery", "r@implicit.test"), 5*time.Second)
	for _, r := range e.relay.LogRecords() {
		if recipientIs("Bounce", "r@implicit.test")(r) {
			t.Fatalf("a 3xx bounced the message: %v", r)
		}
	}
}

// TestSpecAuditRoutingDomainPorts: design §3 — a port may follow an IPv4 literal or a name in a
// routing domain, and delivery connects there instead of [delivery] smtp_port (the name is still
// resolved as usual, here by implicit MX); the queue name keeps the port.
func TestSpecAuditRoutingDomainPorts(t *testing.T) {
	t.Parallel()
	wasm := routerWasm(t)
	port := testutil.MustListenPort(t, "127.0.0.7")
	other := testutil.StartSink(t, fmt.Sprintf("127.0.0.7:%d", port))
	e := newEnv(t, zone+"smart.host.local. A 127.0.0.7\n", []string{"127.0.0.4"}, fmt.Sprintf(`[[plugins]]
path = %q
[[plugins.config.rules]]
recipient_domain = "literal.example"
routing_domain = "[127.0.0.7]:%d"
[[plugins.config.rules]]
recipient_domain = "name.example"
routing_domain = "smart.host.local:%d"
`, wasm, port, port))
	want := map[string]string{
		"a@literal.example": fmt.Sprintf("literal.example![127.0.0.7]:%d", port),
		"b@name.example":    fmt.Sprintf("name.example!smart.host.local:%d", port),
	}
	for rcpt := range want {
		e.send("s@sender.test", rcpt, "port")
	}
	other.WaitCount(t, 2, 10*time.Second)
	for rcpt, q := range want {
		rec := e.relay.WaitLog(recipientIs("Delivery", rcpt), 5*time.Second)
		if rec["queue"] != q || rec["peer_address"].(map[string]any)["addr"] != "127.0.0.7" {
			t.Errorf("%s: queue %v peer %v, want %s via 127.0.0.7", rcpt, rec["queue"], rec["peer_address"], q)
		}
	}
}
