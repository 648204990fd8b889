package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/testutil"
)

// newHoldEnv is newAdminEnv with sinks made with opts (one shared port).
func newHoldEnv(t *testing.T, opts testutil.SinkOptions, sinkIPs []string, extra string) *adminEnv {
	t.Helper()
	e := &env{t: t, sinks: map[string]*testutil.Sink{}}
	var sinks []*testutil.Sink
	e.port, sinks = testutil.StartSinksWith(t, opts, sinkIPs...)
	for i, ip := range sinkIPs {
		e.sinks[ip] = sinks[i]
	}
	e.dns = testutil.StartDNS(t, httpZone)
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	dir := t.TempDir()
	cfg, smtpAddr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(e.dns.Addr, e.port)+
		fmt.Sprintf("[http]\nlisten = %q\ntoken = %q\n", addr, adminToken)+extra)
	e.relay = testutil.StartRelay(t, relayBin, dir, cfg, smtpAddr)
	he := &httpEnv{env: e, url: "http://" + addr}
	he.waitHTTP(addr)
	return &adminEnv{he}
}

// waitHolding waits until the sink holds n DATA replies: n attempts are under way.
func waitHolding(t *testing.T, s *testutil.Sink, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Holding() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the sink holds %d DATA replies, want %d", s.Holding(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inspected is the inspect-message answer, as far as these tests read it.
type inspected struct {
	ID      string
	Message struct {
		Recipient, Queue, Site, State string
		NumAttempts                   int `json:"num_attempts"`
	}
}

// An operator who inspects a message while a connection is delivering it sees it, in state
// "delivering" with its site (it used to get 404, as if the message were gone); so does the
// scheduled queue's listing and the summary. A rebind asked for meanwhile is applied when the
// attempt ends in a temporary failure: the message moves to the smarthost and is delivered
// there at once, with an AdminRebind record.
func TestAdminSeesMessageMidDelivery(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	e := newHoldEnv(t, testutil.SinkOptions{HoldData: hold}, []string{"127.0.0.4", "127.0.0.6"}, "[queue]\nretry_interval = \"1h\"\n")
	implicit, smarthost := e.sinks["127.0.0.4"], e.sinks["127.0.0.6"]
	implicit.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "DATA", Times: 1})
	id := spoolID(t, e.send("a@sender.test", "mid@implicit.test", "mid-delivery"))
	waitHolding(t, implicit, 1)

	var in inspected
	out := e.mustCLI("inspect", id)
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	if in.ID != id || in.Message.Recipient != "mid@implicit.test" || in.Message.State != "delivering" ||
		in.Message.Site == "" || in.Message.Queue != "implicit.test" {
		t.Fatalf("inspect of a message being delivered:\n%s", out)
	}
	code, body := e.get("/api/admin/inspect-sched-q/v1?queue_name="+url.QueryEscape("implicit.test"), adminToken)
	if code != 200 || !strings.Contains(body, `"num_scheduled":1`) || !strings.Contains(body, `"state":"delivering"`) {
		t.Fatalf("inspect-sched-q: %d %s", code, body)
	}
	s := e.waitSummary("the message being delivered", func(s queue.Summary) bool {
		q := schedQ(s, "implicit.test")
		return s.Queued == 1 && q != nil && q.Delivering == 1
	})
	if len(s.Ready) != 1 || s.Ready[0].Delivering != 1 {
		t.Fatalf("summary's ready queues: %+v", s.Ready)
	}

	// The CLI's tables show it too: 0 waiting, 1 delivering, in both the scheduled and the
	// ready queue.
	table := e.mustCLI("summary")
	if !regexp.MustCompile(`(?m)^implicit\.test +0 +1 `).MatchString(table) ||
		!regexp.MustCompile(`(?m)^\S+ +0 +1 +1 `).MatchString(table[strings.Index(table, "READY QUEUE"):]) {
		t.Fatalf("summary tables do not show the message being delivered:\n%s", table)
	}

	code, body = e.request("POST", "/api/admin/rebind/v1", strings.NewReader(
		`{"queue_names": ["implicit.test"], "reason": "move", "data": {"routing_domain": "smarthost.test"}}`),
		"Authorization", "Bearer "+adminToken, "Content-Type", "application/json")
	var res queue.RebindResult
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Matched != 0 || res.InFlight != 1 {
		t.Fatalf("rebind during the attempt: %d %s", code, body)
	}
	// The same asked from the CLI says what will happen to it.
	if out := e.mustCLI("retry", "--domain", "implicit.test", "--set", "routing_domain=smarthost.test", "--reason", "move"); !strings.Contains(out, "1 more being attempted: rebound when the attempt ends") {
		t.Fatalf("queue retry during the attempt: %q", out)
	}
	hold <- struct{}{} // the attempt ends: 451 at DATA
	e.relay.WaitLog(recipientIs("TransientFailure", "mid@implicit.test"), 10*time.Second)
	waitHolding(t, smarthost, 1) // the smarthost holds its DATA reply too (same options)
	hold <- struct{}{}
	got := smarthost.WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "mid@implicit.test" {
		t.Fatalf("smarthost got %v", got[0].To)
	}
	rec := e.relay.WaitLog(recipientIs("AdminRebind", "mid@implicit.test"), 5*time.Second)
	if rec["id"] != id || !strings.Contains(fmt.Sprint(rec["response"]), "Rebound from implicit.test to implicit.test!smarthost.test: move") {
		t.Fatalf("AdminRebind record %v", rec)
	}
	e.relay.WaitLog(recipientIs("Delivery", "mid@implicit.test"), 10*time.Second)
	if n := implicit.Count(); n != 0 {
		t.Fatalf("the held attempt was recorded as delivered (%d)", n)
	}
}

// A bounce rule made while a message is being delivered says so (in_flight), and bounces it as
// soon as the attempt ends without a delivery: not an hour later at its next retry.
func TestAdminBounceMidDelivery(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	e := newHoldEnv(t, testutil.SinkOptions{HoldData: hold}, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1h\"\n")
	implicit := e.sinks["127.0.0.4"]
	implicit.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "DATA", Times: 1})
	id := spoolID(t, e.send("a@sender.test", "gone@implicit.test", "bounce me"))
	waitHolding(t, implicit, 1)

	code, body := e.request("POST", "/api/admin/bounce/v1", strings.NewReader(
		`{"domain": "implicit.test", "reason": "bad send", "duration": "10m"}`),
		"Authorization", "Bearer "+adminToken, "Content-Type", "application/json")
	var res struct {
		TotalBounced int `json:"total_bounced"`
		InFlight     int `json:"in_flight"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || res.TotalBounced != 0 || res.InFlight != 1 {
		t.Fatalf("bounce during the attempt: %d %s", code, body)
	}
	hold <- struct{}{}
	e.relay.WaitLog(recipientIs("TransientFailure", "gone@implicit.test"), 10*time.Second)
	rec := e.relay.WaitLog(recipientIs("AdminBounce", "gone@implicit.test"), 5*time.Second)
	if rec["id"] != id || testutil.Code(rec) != 551 {
		t.Fatalf("AdminBounce record %v", rec)
	}
	e.waitSummary("nothing queued", func(s queue.Summary) bool { return s.Queued == 0 })
	if code, _ := e.get("/api/admin/inspect-message/v1?id="+id, adminToken); code != 404 {
		t.Fatalf("inspect of the bounced message: %d", code)
	}
}

// A relay that hands a message to a next hop without DSN can no longer honour NOTIFY=SUCCESS
// for it, so it tells the sender so itself: a "relayed" DSN (RFC 3461 §5.2.2), Action relayed,
// Status 2.0.0, with the next hop's reply and only the original's headers even on RET=FULL
// (RFC 3461 §4.3: no failure, no content). None goes out for a recipient that did not ask for
// SUCCESS, nor for one whose next hop offers DSN (the parameters went on with the message, so
// the notification is that hop's to send).
func TestRelayedDSN(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.93", "127.0.0.94")
	plain, senderDom := sinks[0], sinks[1]
	capable := testutil.StartSinkWith(t, fmt.Sprintf("127.0.0.92:%d", port), testutil.SinkOptions{DSN: true})
	dns := testutil.StartDNS(t, "plain.test. A 127.0.0.93\ncapable.test. A 127.0.0.92\nrelayed-sender.test. A 127.0.0.94\n")
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port))
	relay := testutil.StartRelay(t, relayBin, dir, cfg, addr)

	const sender = "alice@relayed-sender.test"
	c := testutil.Dial(t, relay.SMTP)
	defer c.Close()
	c.Hello("client.test")
	orig := "From: <" + sender + ">\r\nSubject: relayed\r\nMessage-ID: <rel-1@relayed-sender.test>\r\n\r\nthe secret body\r\n"
	var ids []string
	for _, tx := range []struct{ mail, rcpt string }{
		{"MAIL FROM:<" + sender + "> RET=FULL ENVID=QQ314", "RCPT TO:<bob@plain.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@plain.test"},
		{"MAIL FROM:<" + sender + ">", "RCPT TO:<carol@plain.test> NOTIFY=FAILURE"},
		{"MAIL FROM:<" + sender + ">", "RCPT TO:<dan@plain.test>"},
		{"MAIL FROM:<" + sender + ">", "RCPT TO:<erin@capable.test> NOTIFY=SUCCESS"},
	} {
		c.Expect(250, "%s", tx.mail)
		c.Expect(250, "%s", tx.rcpt)
		code, msg := c.Data(orig)
		if code != 250 {
			t.Fatalf("DATA: %d %s", code, msg)
		}
		ids = append(ids, spoolID(t, msg))
	}
	for _, rcpt := range []string{"bob@plain.test", "carol@plain.test", "dan@plain.test", "erin@capable.test"} {
		relay.WaitLog(recipientIs("Delivery", rcpt), 15*time.Second)
	}
	// A DSN is spooled (its Reception record) before the Delivery record of the message it
	// reports on: every DSN there will be is in the log by now.
	var dsnOf []any
	for _, r := range relay.LogRecords() {
		if meta, _ := r["meta"].(map[string]any); r["type"] == "Reception" && meta["bounce_type"] == "dsn" {
			dsnOf = append(dsnOf, meta["bounce_of"])
		}
	}
	if len(dsnOf) != 1 || dsnOf[0] != ids[0] {
		t.Fatalf("DSNs spooled for %v, want one for %s (NOTIFY=SUCCESS to a next hop without DSN)", dsnOf, ids[0])
	}
	if got := capable.WaitCount(t, 1, 10*time.Second)[0].DSN.Notify; len(got) != 1 || got[0] != "SUCCESS" {
		t.Fatalf("the DSN-capable next hop got NOTIFY %v", got)
	}
	if n := plain.WaitCount(t, 3, 10*time.Second); len(n) != 3 {
		t.Fatalf("plain next hop got %d", len(n))
	}

	got := senderDom.WaitCount(t, 1, 15*time.Second)[0]
	if got.From != "" || len(got.To) != 1 || got.To[0] != sender {
		t.Fatalf("DSN envelope: from <%s> to %v, want <> to %s", got.From, got.To, sender)
	}
	r := parseDSN(t, got.Data)
	if s := r.header.Get("Subject"); !strings.Contains(strings.ToLower(s), "relayed") {
		t.Errorf("Subject %q", s)
	}
	if v := r.header.Get("In-Reply-To"); v != "<rel-1@relayed-sender.test>" {
		t.Errorf("In-Reply-To %q", v)
	}
	if v := r.perMessage.Get("Original-Envelope-Id"); v != "QQ314" {
		t.Errorf("Original-Envelope-Id %q", v)
	}
	for k, want := range map[string]string{
		"Action": "relayed", "Status": "2.0.0", "Final-Recipient": "rfc822; bob@plain.test",
		"Original-Recipient": "rfc822; Bob@plain.test", "Final-Log-ID": ids[0],
	} {
		if v := r.recipient.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	if v := r.recipient.Get("Diagnostic-Code"); !strings.HasPrefix(v, "smtp; 250") {
		t.Errorf("Diagnostic-Code %q", v)
	}
	if v := r.recipient.Get("Remote-MTA"); !strings.HasPrefix(v, "dns; ") {
		t.Errorf("Remote-MTA %q", v)
	}
	if r.types[2] != "text/rfc822-headers" || strings.Contains(r.returned, "secret body") {
		t.Errorf("a relayed DSN returned %s:\n%s", r.types[2], r.returned)
	}
	if !strings.Contains(r.text, "relayed") {
		t.Errorf("text part:\n%s", r.text)
	}
}
