package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// End-to-end tests: the real wasmta binary, a real DNS server on loopback, real SMTP sinks on
// loopback addresses, a real SMTP client.

var relayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasmta-e2e")
	if err != nil {
		panic(err)
	}
	relayBin, err = testutil.BuildRelay(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one relay with its DNS server and sinks.
type env struct {
	t     *testing.T
	dns   *testutil.DNSServer
	port  int
	sinks map[string]*testutil.Sink // by IP
	relay *testutil.Relay
}

// newEnv starts sinks on the given IPs (one shared port), a DNS server with zone, and the relay
// configured to use both; extra is appended to the config.
func newEnv(t *testing.T, zone string, sinkIPs []string, extra string) *env {
	t.Helper()
	e := &env{t: t, sinks: map[string]*testutil.Sink{}}
	var sinks []*testutil.Sink
	e.port, sinks = testutil.StartSinks(t, sinkIPs...)
	for i, ip := range sinkIPs {
		e.sinks[ip] = sinks[i]
	}
	e.dns = testutil.StartDNS(t, zone)
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(e.dns.Addr, e.port)+extra)
	e.relay = testutil.StartRelay(t, relayBin, dir, cfg, addr)
	return e
}

func (e *env) send(from, to, subject string) string {
	e.t.Helper()
	c := testutil.Dial(e.t, e.relay.SMTP)
	defer c.Close()
	c.Hello("client.test")
	code, msg := c.Send(from, []string{to}, testutil.Message(from, to, subject, "hello"))
	if code != 250 {
		e.t.Fatalf("DATA: %d %s", code, msg)
	}
	return msg
}

func recipientIs(typ, rcpt string) func(map[string]any) bool {
	return func(r map[string]any) bool { return r["type"] == typ && r["recipient"] == rcpt }
}

const zone = `
example.com.        MX 10 mx1.example.com.
example.com.        MX 20 mx2.example.com.
mx1.example.com.    A  127.0.0.2
mx2.example.com.    A  127.0.0.3
implicit.test.      A  127.0.0.4
nullmx.test.        MX 0 .
`

func TestMXPreferenceFallback(t *testing.T) {
	t.Parallel()
	// Only 127.0.0.3 (mx2) listens: mx1 refuses connections, so delivery falls back to mx2.
	e := newEnv(t, zone, []string{"127.0.0.3"}, "")
	reply := e.send("a@sender.test", "bob@example.com", "fallback")
	if !strings.HasPrefix(reply, "2.0.0 OK queued as ") {
		t.Fatalf("250 reply should carry the spool id, got %q", reply)
	}
	id := strings.TrimPrefix(reply, "2.0.0 OK queued as ")
	got := e.sinks["127.0.0.3"].WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "bob@example.com" || got[0].From != "a@sender.test" {
		t.Fatalf("envelope: %+v", got[0])
	}
	if !strings.HasPrefix(string(got[0].Data), "Received: from client.test") || !strings.Contains(string(got[0].Data), id) {
		t.Fatalf("missing trace header with id %s:\n%s", id, got[0].Data)
	}
	rec := e.relay.WaitLog(recipientIs("Delivery", "bob@example.com"), 5*time.Second)
	if rec["id"] != id || rec["queue"] != "example.com" {
		t.Fatalf("delivery record: %v", rec)
	}
	peer := rec["peer_address"].(map[string]any)
	if peer["name"] != "mx2.example.com" || peer["addr"] != "127.0.0.3" {
		t.Fatalf("delivered via %v, want mx2.example.com 127.0.0.3", peer)
	}
	e.relay.WaitLog(recipientIs("Reception", "bob@example.com"), time.Second)
}

func TestImplicitMX(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	e.send("a@sender.test", "carol@implicit.test", "implicit")
	e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
}

func TestNullMXBounces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.2"}, "")
	e.send("a@sender.test", "dave@nullmx.test", "nullmx")
	rec := e.relay.WaitLog(recipientIs("Bounce", "dave@nullmx.test"), 10*time.Second)
	resp := rec["response"].(map[string]any)
	if testutil.Code(rec) != 556 || !strings.Contains(fmt.Sprint(resp["content"]), "null MX") {
		t.Fatalf("bounce record: %v", rec)
	}
	if ec := resp["enhanced_code"].(map[string]any); ec["subject"] != 1.0 || ec["detail"] != 10.0 {
		t.Fatalf("enhanced code: %v", ec)
	}
}

func TestLiteralRecipient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.5"}, "")
	e.send("a@sender.test", "eve@[127.0.0.5]", "literal")
	got := e.sinks["127.0.0.5"].WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "eve@[127.0.0.5]" {
		t.Fatalf("recipient %v", got[0].To)
	}
	if q := e.relay.WaitLog(recipientIs("Delivery", "eve@[127.0.0.5]"), 5*time.Second)["queue"]; q != "[127.0.0.5]" {
		t.Fatalf("queue %v", q)
	}
	for _, q := range e.dns.Queries() {
		t.Fatalf("a literal must not touch DNS, saw %v", q)
	}
}

func TestNonConformingLiteralRefusedInEnvelope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.2"}, "")
	c := testutil.Dial(t, e.relay.SMTP)
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<a@sender.test>")
	if code, msg := c.Cmd("RCPT TO:<x@[::1]>"); code != 553 {
		t.Fatalf("RCPT x@[::1]: %d %s, want 553", code, msg)
	}
	c.Expect(250, "RCPT TO:<x@[IPv6:::1]>")
	if code, msg := c.Cmd("MAIL FROM:<y@[::1]>"); code != 503 && code != 501 {
		t.Fatalf("second MAIL: %d %s", code, msg)
	}
}

func TestTransientThenSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1s\"\n")
	e.sinks["127.0.0.4"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT", Code: 451, Times: 2})
	start := time.Now()
	e.send("a@sender.test", "frank@implicit.test", "retry")
	e.sinks["127.0.0.4"].WaitCount(t, 1, 20*time.Second)
	// Backoff: 1s after the first failure, 2s after the second.
	if el := time.Since(start); el < 2500*time.Millisecond {
		t.Fatalf("delivered after %s; backoff 1s+2s should take about 3s", el)
	}
	rec := e.relay.WaitLog(recipientIs("Delivery", "frank@implicit.test"), 5*time.Second)
	if rec["num_attempts"] != 2.0 {
		t.Fatalf("num_attempts %v, want 2", rec["num_attempts"])
	}
	n := 0
	for _, r := range e.relay.LogRecords() {
		if recipientIs("TransientFailure", "frank@implicit.test")(r) {
			n++
			if testutil.Code(r) != 451 {
				t.Fatalf("transient record: %v", r)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d TransientFailure records, want 2", n)
	}
}

func TestPermanentFailureBounces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	e.sinks["127.0.0.4"].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Text: "no such user"})
	e.send("a@sender.test", "gone@implicit.test", "bounce")
	rec := e.relay.WaitLog(recipientIs("Bounce", "gone@implicit.test"), 10*time.Second)
	if testutil.Code(rec) != 550 || !strings.Contains(fmt.Sprint(rec["response"]), "no such user") {
		t.Fatalf("bounce record: %v", rec)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1s\"\nmax_age = \"3s\"\n")
	e.sinks["127.0.0.4"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	e.send("a@sender.test", "slow@implicit.test", "expire")
	rec := e.relay.WaitLog(recipientIs("Expiration", "slow@implicit.test"), 15*time.Second)
	if testutil.Code(rec) != 551 || !strings.Contains(fmt.Sprint(rec["response"]), "max_age") {
		t.Fatalf("expiration record: %v", rec)
	}
	if e.sinks["127.0.0.4"].Count() != 0 {
		t.Fatal("expired message was delivered")
	}
}

func TestRelayDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	// The relay allows 127.0.0.0/8 by default; this env narrows it to 127.0.0.1 so a client
	// connecting from 127.0.0.9 is a stranger.
	cfg, err := os.ReadFile(e.relay.Config)
	if err != nil {
		t.Fatal(err)
	}
	e.relay.Kill()
	narrowed := strings.Replace(string(cfg), "[smtp]\n", "[smtp]\nrelay_hosts = [\"127.0.0.1/32\"]\n", 1)
	if err := os.WriteFile(e.relay.Config, []byte(narrowed), 0o600); err != nil {
		t.Fatal(err)
	}
	e.relay.Start()
	c := testutil.DialFrom(t, "127.0.0.9", e.relay.SMTP)
	c.Hello("stranger.test")
	c.Expect(250, "MAIL FROM:<a@sender.test>")
	code, msg := c.Cmd("RCPT TO:<x@implicit.test>")
	if code != 550 || msg != "5.7.1 relaying denied" {
		t.Fatalf("stranger RCPT: %d %s, want 550 5.7.1 relaying denied (design §7)", code, msg)
	}
	e.relay.WaitLog(recipientIs("Rejection", "x@implicit.test"), 5*time.Second)
	// The allowed client still relays.
	c2 := testutil.DialFrom(t, "127.0.0.1", e.relay.SMTP)
	c2.Hello("friend.test")
	if code, msg := c2.Send("a@sender.test", []string{"y@implicit.test"}, "Subject: hi\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("friend: %d %s", code, msg)
	}
	e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
}

// TestKill9AfterBurst: every message that got 250 survives kill -9 and is delivered exactly once
// after a restart. The sink is down during the burst so nothing leaves before the kill.
func TestKill9AfterBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1s\"\n")
	sink := e.sinks["127.0.0.4"]
	sink.Close() // connections refused: every attempt is a transient failure

	const conns, perConn = 5, 40
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testutil.Dial(t, e.relay.SMTP)
			c.Hello("burst.test")
			for j := 0; j < perConn; j++ {
				rcpt := fmt.Sprintf("u%d-%d@implicit.test", i, j)
				if code, msg := c.Send("a@sender.test", []string{rcpt}, testutil.Message("a@sender.test", rcpt, "burst", "x")); code != 250 {
					t.Errorf("%s: %d %s", rcpt, code, msg)
				}
			}
			c.Close()
		}()
	}
	wg.Wait()
	e.relay.Kill() // SIGKILL right after the last 250

	// Bring the sink back on the same address and port, then restart the relay.
	sink = testutil.StartSink(t, fmt.Sprintf("127.0.0.4:%d", e.port))
	e.relay.Start()
	sink.WaitCount(t, conns*perConn, 30*time.Second)
	waitQueueEmpty(t, defaultSock(e.relay)) // every redelivery, duplicate or not, has happened
	got := sink.Messages()
	seen := map[string]int{}
	for _, m := range got {
		seen[m.To[0]]++
	}
	for i := 0; i < conns; i++ {
		for j := 0; j < perConn; j++ {
			rcpt := fmt.Sprintf("u%d-%d@implicit.test", i, j)
			if seen[rcpt] != 1 {
				t.Errorf("%s delivered %d times", rcpt, seen[rcpt])
			}
		}
	}
	if len(got) != conns*perConn {
		t.Fatalf("sink got %d messages, want %d", len(got), conns*perConn)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	e.send("a@sender.test", "h@implicit.test", "before stop")
	e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
	if err := e.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.relay.Stderr(), "wasmta stopped") {
		t.Fatalf("no clean stop in diagnostics:\n%s", e.relay.Stderr())
	}
}

func TestBadConfigNamesKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct{ cfg, want string }{
		{"[smtp]\nlisten = [\"127.0.0.1:1\"]\nbogus = 1\n", "smtp.bogus"},
		{"[queue]\nretry_interval = \"soon\"\n", "queue.retry_interval"},
		{"[smtp]\nrelay_hosts = [\"10.0.0.1/8\"]\n", "smtp.relay_hosts"},
		{"[http]\nlisten = \"0.0.0.0:8025\"\n", "http.token"},
	} {
		path := dir + "/bad.toml"
		os.WriteFile(path, []byte(tc.cfg), 0o600)
		out, err := runBin(dir, "serve", "--config", path)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("config %q: err=%v output=%q, want an error naming %s", tc.cfg, err, out, tc.want)
		}
	}
}

func TestReceptionLimitsAndReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	cfg, _ := os.ReadFile(e.relay.Config)
	e.relay.Kill()
	limited := strings.Replace(string(cfg), "[smtp]\n", "[smtp]\nmax_message_size = \"10KiB\"\nmax_recipients = 2\n", 1)
	os.WriteFile(e.relay.Config, []byte(limited), 0o600)
	e.relay.Start()

	c := testutil.Dial(t, e.relay.SMTP)
	ext := strings.Join(c.Hello("client.test"), " ")
	for _, want := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 10240", "SMTPUTF8"} {
		if !strings.Contains(ext, want) {
			t.Errorf("EHLO lacks %s: %s", want, ext)
		}
	}
	// Too many recipients.
	c.Expect(250, "MAIL FROM:<a@sender.test>")
	c.Expect(250, "RCPT TO:<r1@implicit.test>")
	c.Expect(250, "RCPT TO:<r2@implicit.test>")
	if code, msg := c.Cmd("RCPT TO:<r3@implicit.test>"); code != 452 || !strings.HasPrefix(msg, "4.5.3") {
		t.Fatalf("third RCPT: %d %s, want 452 4.5.3", code, msg)
	}
	// Too big.
	code, msg := c.Data("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 1024))
	if code != 552 || !strings.HasPrefix(msg, "5.3.4") {
		t.Fatalf("big message: %d %s, want 552 5.3.4", code, msg)
	}
	// Bad syntax.
	if code, _ := c.Cmd("MAIL FROM:<not an address>"); code/100 != 5 {
		t.Fatalf("bad sender accepted: %d", code)
	}
	c.Expect(250, "RSET")
	// Null sender is fine; two recipients give two spool ids in one reply.
	c.Expect(250, "MAIL FROM:<>")
	c.Expect(250, "RCPT TO:<r1@implicit.test>")
	c.Expect(250, "RCPT TO:<r2@implicit.test>")
	code, msg = c.Data("Subject: two\r\n\r\nhi\r\n")
	if code != 250 || len(strings.Fields(strings.TrimPrefix(msg, "2.0.0 OK queued as "))) != 2 {
		t.Fatalf("two recipients: %d %s", code, msg)
	}
	e.sinks["127.0.0.4"].WaitCount(t, 2, 10*time.Second)
	if c.Expect(221, "QUIT") == "" {
		t.Fatal("empty QUIT reply")
	}
	// Nothing that was refused reached the sink.
	if n := e.sinks["127.0.0.4"].Count(); n != 2 {
		t.Fatalf("sink got %d messages, want 2", n)
	}
}

func TestBanner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	conn, err := net.Dial("tcp", e.relay.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "220 relay.test ESMTP wasmta\r\n" {
		t.Fatalf("banner %q %v", line, err)
	}
}

func TestConnectionReuseAndLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	cfg, _ := os.ReadFile(e.relay.Config)
	e.relay.Kill()
	os.WriteFile(e.relay.Config, []byte(strings.Replace(string(cfg),
		"[delivery]\n", "[delivery]\nconnection_limit = 2\nmax_deliveries_per_connection = 1000\n", 1)+
		""), 0o600)
	e.relay.Start()
	sink := e.sinks["127.0.0.4"]
	sink.SetBehavior(testutil.Behavior{Mode: testutil.Accept})
	const n = 60
	c := testutil.Dial(t, e.relay.SMTP)
	c.Hello("client.test")
	for i := 0; i < n; i++ {
		rcpt := fmt.Sprintf("m%d@implicit.test", i)
		if code, msg := c.Send("a@sender.test", []string{rcpt}, testutil.Message("a@sender.test", rcpt, "reuse", "x")); code != 250 {
			t.Fatalf("%d %s", code, msg)
		}
	}
	sink.WaitCount(t, n, 10*time.Second)
	// Each connection stays open while messages keep coming (idle_timeout 200ms), and there are
	// never more than connection_limit of them.
	if got := sink.Connections(); got > 4 {
		t.Fatalf("%d connections for %d messages with connection_limit 2: not reused", got, n)
	}
}

// SIGTERM while mail flows in and out: every message that got 250 is delivered exactly once
// across the restart, none that got another reply is delivered.
func TestGracefulStopUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1s\"\n")
	sink := e.sinks["127.0.0.4"]
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialQuiet(e.relay.SMTP)
			if err != nil {
				return
			}
			defer c.Close()
			for n := 0; ; n++ {
				rcpt := fmt.Sprintf("g%d-%d@implicit.test", w, n)
				code, err := c.send("a@sender.test", rcpt, "Subject: stop\r\n\r\nhi\r\n")
				if err != nil {
					return // the server went away mid-transaction: the client keeps the message
				}
				if code == 250 {
					mu.Lock()
					accepted[rcpt] = true
					mu.Unlock()
				}
			}
		}()
	}
	for sink.Count() < 100 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.relay.Stop(); err != nil { // SIGTERM, graceful
		t.Fatal(err)
	}
	wg.Wait()
	e.relay.Start()
	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for sink.Count() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	waitQueueEmpty(t, defaultSock(e.relay))
	seen := map[string]int{}
	for _, m := range sink.Messages() {
		seen[m.To[0]]++
	}
	for rcpt := range accepted {
		if seen[rcpt] != 1 {
			t.Errorf("%s got 250 and was delivered %d times", rcpt, seen[rcpt])
		}
	}
	for rcpt := range seen {
		if !accepted[rcpt] {
			t.Errorf("%s delivered without a 250", rcpt)
		}
	}
	t.Logf("%d accepted before the stop, all delivered once", n)
}
