package main

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/wasmta/wasmta/host/testutil"
)

// Delivery status notifications (docs/bounces.md), end to end: the real binary, DNS on
// loopback, the recipient's domain on one sink and the sender's domain on another.

const dsnZone = `
dsn-rcpt.test.    A 127.0.0.4
dsn-sender.test.  A 127.0.0.6
`

const (
	rcptSink   = "127.0.0.4"
	senderSink = "127.0.0.6"
	dsnSender  = "alice@dsn-sender.test"
)

// dsnReport is a DSN as a receiving program reads it (with go-message).
type dsnReport struct {
	header     gomessage.Header
	types      []string // part content types
	text       string
	perMessage textproto.Header
	recipient  textproto.Header
	returned   string
}

func parseDSN(t *testing.T, data []byte) dsnReport {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("DSN does not parse: %v\n%s", err, data)
	}
	r := dsnReport{header: e.Header}
	mt, params, _ := e.Header.ContentType()
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type %q %v, want multipart/report; report-type=delivery-status", mt, params)
	}
	mr := e.MultipartReader()
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := p.Header.ContentType()
		r.types = append(r.types, ct)
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch len(r.types) {
		case 1:
			r.text = string(body)
		case 2:
			br := bufio.NewReader(bytes.NewReader(body))
			if r.perMessage, err = textproto.ReadHeader(br); err != nil {
				t.Fatalf("per-message fields: %v", err)
			}
			if r.recipient, err = textproto.ReadHeader(br); err != nil {
				t.Fatalf("per-recipient fields: %v", err)
			}
		case 3:
			r.returned = string(body)
		}
	}
	if len(r.types) != 3 || r.types[0] != "text/plain" || r.types[1] != "message/delivery-status" {
		t.Fatalf("DSN parts %v, want text/plain, message/delivery-status and the returned content", r.types)
	}
	return r
}

// isDSNReception matches the Reception record of a DSN to dsnSender.
func isDSNReception(r map[string]any) bool {
	meta, _ := r["meta"].(map[string]any)
	return r["type"] == "Reception" && r["sender"] == "" && r["recipient"] == dsnSender && meta["bounce_type"] == "dsn"
}

func countRecords(e *env, match func(map[string]any) bool) int {
	n := 0
	for _, r := range e.relay.LogRecords() {
		if match(r) {
			n++
		}
	}
	return n
}

// A recipient refused with 550 produces a DSN at the sender's domain: an RFC 3464 report with
// the remote's reply and the original's headers (not its body).
func TestDSNOnBounce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dsnZone, []string{rcptSink, senderSink}, "")
	e.sinks[rcptSink].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Text: "no such user"})
	orig := "From: Alice <" + dsnSender + ">\r\nTo: <bob@dsn-rcpt.test>\r\nSubject: doomed lunch\r\n" +
		"Message-ID: <lunch-42@dsn-sender.test>\r\n\r\nthe secret body\r\n"
	c := testutil.Dial(t, e.relay.SMTP)
	defer c.Close()
	if ext := c.Hello("client.test"); !slices.Contains(ext, "DSN") {
		t.Fatalf("EHLO does not offer DSN: %q", ext)
	}
	code, reply := c.Send(dsnSender, []string{"bob@dsn-rcpt.test"}, orig)
	if code != 250 {
		t.Fatalf("DATA: %d %s", code, reply)
	}
	id := strings.TrimPrefix(reply, "2.0.0 OK queued as ")

	got := e.sinks[senderSink].WaitCount(t, 1, 15*time.Second)[0]
	if got.From != "" || len(got.To) != 1 || got.To[0] != dsnSender {
		t.Fatalf("DSN envelope: from <%s> to %v, want <> to %s", got.From, got.To, dsnSender)
	}
	r := parseDSN(t, got.Data)
	for k, want := range map[string]string{
		"From": "Mail Delivery System <MAILER-DAEMON@relay.test>", "To": "<" + dsnSender + ">",
		"Auto-Submitted": "auto-replied", "In-Reply-To": "<lunch-42@dsn-sender.test>",
	} {
		if v := r.header.Get(k); v != want {
			t.Errorf("DSN header %s: %q, want %q", k, v, want)
		}
	}
	if v := r.perMessage.Get("Reporting-MTA"); v != "dns; relay.test" {
		t.Errorf("Reporting-MTA %q", v)
	}
	if _, err := time.Parse(time.RFC1123Z, r.perMessage.Get("Arrival-Date")); err != nil {
		t.Errorf("Arrival-Date %q: %v", r.perMessage.Get("Arrival-Date"), err)
	}
	for k, want := range map[string]string{
		"Final-Recipient": "rfc822; bob@dsn-rcpt.test", "Action": "failed",
		"Status":          "5.0.0", // the sink answers 550 5.0.0
		"Diagnostic-Code": "smtp; 550 5.0.0 no such user", "Remote-MTA": "dns; dsn-rcpt.test",
		"Final-Log-ID": id,
	} {
		if v := r.recipient.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	if _, err := time.Parse(time.RFC1123Z, r.recipient.Get("Last-Attempt-Date")); err != nil {
		t.Errorf("Last-Attempt-Date %q: %v", r.recipient.Get("Last-Attempt-Date"), err)
	}
	if r.types[2] != "text/rfc822-headers" || !strings.Contains(r.returned, "Subject: doomed lunch\r\n") ||
		!strings.Contains(r.returned, "Message-ID: <lunch-42@dsn-sender.test>") || !strings.Contains(r.returned, "Received: from client.test") ||
		strings.Contains(r.returned, "the secret body") {
		t.Errorf("returned part %s:\n%s", r.types[2], r.returned)
	}
	if !strings.Contains(r.text, "550 5.0.0 no such user") {
		t.Errorf("text part:\n%s", r.text)
	}
	// The log tells the story: the original's Bounce, the DSN's Reception (linked by meta
	// bounce_of) and Delivery.
	e.relay.WaitLog(recipientIs("Bounce", "bob@dsn-rcpt.test"), 5*time.Second)
	rec := e.relay.WaitLog(isDSNReception, 5*time.Second)
	if meta := rec["meta"].(map[string]any); meta["bounce_of"] != id || rec["queue"] != "dsn-sender.test" || rec["reception_protocol"] != "DSN" {
		t.Errorf("DSN Reception record: %v", rec)
	}
	e.relay.WaitLog(recipientIs("Delivery", dsnSender), 5*time.Second)
}

// A DSN that bounces too is only logged: the original's Bounce, the DSN's Bounce, and no
// third message.
func TestDSNOfDSNIsNotSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dsnZone, []string{rcptSink, senderSink}, "")
	e.sinks[rcptSink].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Text: "no such user"})
	e.sinks[senderSink].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Text: "no such sender"})
	e.send(dsnSender, "bob@dsn-rcpt.test", "doomed twice")
	rec := e.relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Bounce" && r["sender"] == "" }, 15*time.Second)
	if rec["recipient"] != dsnSender || !strings.Contains(rec["response"].(map[string]any)["content"].(string), "no such sender") {
		t.Fatalf("the DSN's Bounce record: %v", rec)
	}
	waitQueueEmpty(t, defaultSock(e.relay)) // nothing left that could still produce a message
	if n := countRecords(e, testutil.Type("Reception")); n != 2 {
		t.Fatalf("%d Reception records, want 2 (the message and one DSN)", n)
	}
	if n := countRecords(e, testutil.Type("Bounce")); n != 2 {
		t.Fatalf("%d Bounce records, want 2", n)
	}
	if e.sinks[rcptSink].Count()+e.sinks[senderSink].Count() != 0 {
		t.Fatal("a sink accepted a message")
	}
}

// A message that expires produces a DSN with Status 4.4.7 and the last attempt's reply.
func TestDSNOnExpiry(t *testing.T) {
	t.Parallel()
	// The second attempt (about 1 s in) would schedule the third about 2 s later: past max_age,
	// so the message expires right after the attempt whose reply the DSN quotes. (With
	// max_age = 3s the third attempt's time fell just inside it about half the time, jitter
	// deciding, and the message then expired at dispatch, with no reply to quote.)
	e := newEnv(t, dsnZone, []string{rcptSink, senderSink}, "[queue]\nretry_interval = \"1s\"\nmax_age = \"2s\"\n")
	e.sinks[rcptSink].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT", Code: 451, Text: "greylisted"})
	e.send(dsnSender, "slow@dsn-rcpt.test", "too slow")
	got := e.sinks[senderSink].WaitCount(t, 1, 20*time.Second)[0]
	r := parseDSN(t, got.Data)
	for k, want := range map[string]string{
		"Final-Recipient": "rfc822; slow@dsn-rcpt.test", "Action": "failed", "Status": "4.4.7",
		"Diagnostic-Code": "smtp; 451 4.0.0 greylisted", "Remote-MTA": "dns; dsn-rcpt.test",
	} {
		if v := r.recipient.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	if !strings.Contains(r.header.Get("Subject"), "expired") {
		t.Errorf("Subject %q", r.header.Get("Subject"))
	}
	e.relay.WaitLog(recipientIs("Expiration", "slow@dsn-rcpt.test"), 5*time.Second)
}

// NOTIFY=NEVER, and NOTIFY without FAILURE, produce no DSN; NOTIFY=FAILURE with RET=FULL,
// ENVID and ORCPT produces one that returns the whole message and carries them.
func TestDSNNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dsnZone, []string{rcptSink, senderSink}, "")
	e.sinks[rcptSink].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Text: "no such user"})
	c := testutil.Dial(t, e.relay.SMTP)
	defer c.Close()
	c.Hello("client.test")
	for _, tx := range []struct{ mail, rcpt string }{
		{"MAIL FROM:<" + dsnSender + ">", "RCPT TO:<never@dsn-rcpt.test> NOTIFY=NEVER"},
		{"MAIL FROM:<" + dsnSender + ">", "RCPT TO:<success@dsn-rcpt.test> NOTIFY=SUCCESS,DELAY"},
		{"MAIL FROM:<" + dsnSender + "> RET=FULL ENVID=QQ314159", "RCPT TO:<failure@dsn-rcpt.test> NOTIFY=FAILURE ORCPT=rfc822;Failure+40Original.test"},
	} {
		c.Expect(250, "%s", tx.mail)
		c.Expect(250, "%s", tx.rcpt)
		if code, msg := c.Data("Subject: notify\r\n\r\nwhole body\r\n"); code != 250 {
			t.Fatalf("DATA: %d %s", code, msg)
		}
	}
	for _, rcpt := range []string{"never@dsn-rcpt.test", "success@dsn-rcpt.test", "failure@dsn-rcpt.test"} {
		e.relay.WaitLog(recipientIs("Bounce", rcpt), 15*time.Second)
	}
	waitQueueEmpty(t, defaultSock(e.relay))
	got := e.sinks[senderSink].Messages()
	if len(got) != 1 {
		t.Fatalf("%d DSNs, want 1 (for NOTIFY=FAILURE only)", len(got))
	}
	r := parseDSN(t, got[0].Data)
	for k, want := range map[string]string{
		"Original-Recipient": "rfc822; Failure@Original.test", "Final-Recipient": "rfc822; failure@dsn-rcpt.test",
	} {
		if v := r.recipient.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	if v := r.perMessage.Get("Original-Envelope-Id"); v != "QQ314159" {
		t.Errorf("Original-Envelope-Id %q", v)
	}
	if r.types[2] != "message/rfc822" || !strings.Contains(r.returned, "\r\n\r\nwhole body\r\n") {
		t.Errorf("RET=FULL returned %s:\n%s", r.types[2], r.returned)
	}
}

// [bounce] enabled = false: no DSN, and EHLO does not offer DSN.
func TestDSNDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dsnZone, []string{rcptSink, senderSink}, "[bounce]\nenabled = false\n")
	e.sinks[rcptSink].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Text: "no such user"})
	c := testutil.Dial(t, e.relay.SMTP)
	if ext := c.Hello("client.test"); slices.Contains(ext, "DSN") {
		t.Fatalf("EHLO offers DSN with bounces off: %q", ext)
	}
	c.Close()
	e.send(dsnSender, "bob@dsn-rcpt.test", "no dsn")
	e.relay.WaitLog(recipientIs("Bounce", "bob@dsn-rcpt.test"), 15*time.Second)
	waitQueueEmpty(t, defaultSock(e.relay))
	if n := countRecords(e, testutil.Type("Reception")); n != 1 {
		t.Fatalf("%d Reception records, want 1", n)
	}
	if n := e.sinks[senderSink].Count(); n != 0 {
		t.Fatalf("%d DSNs with bounces off", n)
	}
}

// The client's DSN parameters travel with the message to a next hop that offers DSN
// (RFC 3461 §4: a relay passes them on), decoded there exactly as the client gave them.
func TestDSNParametersRelayed(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{DSN: true}, "127.0.0.91")
	dns := testutil.StartDNS(t, "dsn-next.test. A 127.0.0.91\n")
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port))
	relay := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	c := testutil.Dial(t, relay.SMTP)
	defer c.Close()
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<a@client.test> RET=HDRS ENVID=QQ+2B314")
	c.Expect(250, "RCPT TO:<b@dsn-next.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Orig+2Btag@client.test")
	if code, msg := c.Data("Subject: relayed\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("DATA: %d %s", code, msg)
	}
	got := sinks[0].WaitCount(t, 1, 10*time.Second)[0].DSN
	if got.Ret != "HDRS" || got.EnvID != "QQ+314" || !slices.Equal(got.Notify, []string{"SUCCESS,FAILURE"}) ||
		!slices.Equal(got.ORcpt, []string{"RFC822;Orig+tag@client.test"}) {
		t.Fatalf("the next hop got %+v", got)
	}
}
