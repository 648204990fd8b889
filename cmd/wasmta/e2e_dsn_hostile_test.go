package main

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// A sender's odd DSN parameters and an original the relay accepts but a returned part cannot
// carry as it is, end to end: the DSN the sender's domain receives is read with the standard
// library's parsers (net/mail, mime/multipart), as a program there would.
func TestDSNHostileOriginal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dsnZone, []string{rcptSink, senderSink}, "")
	e.sinks[rcptSink].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Text: "no such user"})
	c := testutil.Dial(t, e.relay.SMTP)
	defer c.Close()
	c.Hello("client.test")

	// Malformed xtext (RFC 3461 §4: "+" and two upper-case hex digits) is refused.
	c.Expect(250, "MAIL FROM:<%s>", dsnSender)
	c.Expect(501, "RCPT TO:<bob@dsn-rcpt.test> ORCPT=rfc822;bob+2btag@dsn-rcpt.test")
	c.Expect(501, "RCPT TO:<bob@dsn-rcpt.test> ORCPT=rfc822;bob+4")
	c.Expect(501, "RCPT TO:<bob@dsn-rcpt.test> ORCPT=rfc822;bob+0D+0AX-Injected:+20yes@dsn-rcpt.test")
	c.Expect(250, "RSET")
	c.Expect(501, "MAIL FROM:<%s> ENVID=QQ+0A1", dsnSender)

	// Well-formed escapes, RET=FULL, and a header line (1500 octets) under smtp.max_line_length
	// but over the 998 a message/rfc822 part may carry.
	c.Expect(250, "MAIL FROM:<%s> RET=FULL ENVID=QQ+20id+3D1 BODY=8BITMIME", dsnSender)
	c.Expect(250, "RCPT TO:<bob@dsn-rcpt.test> NOTIFY=FAILURE ORCPT=rfc822;Bob+2Btag+3Dx@dsn-rcpt.test")
	long := strings.Repeat("y", 1500)
	orig := "From: Alice <" + dsnSender + ">\r\nX-Long: " + long + "\r\nSubject: long\r\n\r\ncaf\xc3\xa9 body\r\n"
	if code, msg := c.Data(orig); code != 250 {
		t.Fatalf("DATA: %d %s", code, msg)
	}

	data := e.sinks[senderSink].WaitCount(t, 1, 15*time.Second)[0].Data
	for i, l := range bytes.SplitAfter(data, []byte("\n")) {
		if len(l) > 0 && (!bytes.HasSuffix(l, []byte("\r\n")) || len(l) > 1000) {
			t.Fatalf("DSN line %d: %d octets, %.40q", i+1, len(l), l)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	if m.Header.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("Auto-Submitted %q", m.Header.Get("Auto-Submitted"))
	}
	if to, err := mail.ParseAddress(m.Header.Get("To")); err != nil || to.Address != dsnSender {
		t.Errorf("To %q: %v", m.Header.Get("To"), err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var bodies [][]byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("mime/multipart: %v", err)
		}
		var r io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		types, bodies = append(types, p.Header.Get("Content-Type")), append(bodies, b)
	}
	if len(types) != 3 || types[1] != "message/delivery-status" || types[2] != "text/rfc822-headers" {
		t.Fatalf("parts %v", types)
	}
	// The last block's fields end with CRLF and the part there (the delimiter takes the CRLF
	// after); net/textproto wants a blank line after the last block too.
	if !bytes.HasSuffix(bodies[1], []byte("\r\n")) {
		t.Fatalf("delivery-status part does not end with a field's CRLF: %q", bodies[1][max(0, len(bodies[1])-40):])
	}
	br := bufio.NewReader(bytes.NewReader(append(bodies[1], "\r\n"...)))
	perMsg, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("per-message fields: %v", err)
	}
	rcpt, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("per-recipient fields: %v", err)
	}
	if v := perMsg.Get("Original-Envelope-Id"); v != "QQ id=1" {
		t.Errorf("Original-Envelope-Id %q", v)
	}
	for k, want := range map[string]string{
		"Original-Recipient": "rfc822; Bob+tag=x@dsn-rcpt.test", "Final-Recipient": "rfc822; bob@dsn-rcpt.test",
		"Action": "failed", "Status": "5.0.0", "Diagnostic-Code": "smtp; 550 5.0.0 no such user",
	} {
		if v := rcpt.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	// The header block comes back whole (the long field intact), the text says why not the
	// whole message.
	rh, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(bodies[2], "\r\n"...)))).ReadMIMEHeader()
	if err != nil || rh.Get("X-Long") != long || rh.Get("Subject") != "long" {
		t.Errorf("returned header block does not parse back (%v):\n%.300q", err, bodies[2])
	}
	if !strings.Contains(string(bodies[0]), "lines longer than 998 octets") {
		t.Errorf("text part:\n%s", bodies[0])
	}
}
