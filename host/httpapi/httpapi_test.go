package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/spool"
	"github.com/wasmta/wasmta/host/testutil"
)

// spoolReceiver puts messages in a real Badger spool, as queue.Manager does first.
type spoolReceiver struct {
	sp   *spool.Spool
	mu   sync.Mutex
	fail map[string]bool // recipients whose Submit fails
}

func (r *spoolReceiver) Submit(msgs []*message.Message, body []byte) error {
	r.mu.Lock()
	failing := r.fail[msgs[0].Recipient]
	r.mu.Unlock()
	if failing {
		return errors.New("disk on fire")
	}
	return r.sp.Put(msgs, body)
}

type testServer struct {
	t      testing.TB
	srv    *Server
	url    string
	sp     *spool.Spool
	rcv    *spoolReceiver
	logDir string
}

func startServer(t testing.TB, mod func(*Options)) *testServer {
	t.Helper()
	dir := t.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	lg, err := logs.Open(filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	ts := &testServer{t: t, sp: sp, rcv: &spoolReceiver{sp: sp, fail: map[string]bool{}}, logDir: filepath.Join(dir, "logs")}
	opt := Options{Listen: "127.0.0.1:0", Hostname: "relay.test", Receiver: ts.rcv, Log: lg, MaxRequestSize: 64 << 10}
	if mod != nil {
		mod(&opt)
	}
	ts.srv = New(opt)
	if err := ts.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ts.srv.Serve()
	t.Cleanup(func() { ts.srv.Shutdown(context.Background()) })
	ts.url = "http://" + ts.srv.Addr().String()
	return ts
}

// post sends body to path with headers (name, value pairs) and returns status and body.
func (ts *testServer) post(path, body string, hdr ...string) (int, string) {
	ts.t.Helper()
	req, err := http.NewRequest("POST", ts.url+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return ts.do(req)
}

func (ts *testServer) do(req *http.Request) (int, string) {
	ts.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ts *testServer) inject(body string, hdr ...string) injectResponse {
	ts.t.Helper()
	code, out := ts.post(InjectPath, body, hdr...)
	if code != 200 {
		ts.t.Fatalf("inject: %d %s", code, out)
	}
	var r injectResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		ts.t.Fatalf("response %q: %v", out, err)
	}
	return r
}

// spooled returns every spooled message with its body, by recipient.
func (ts *testServer) spooled() map[string]spooledMsg {
	ts.t.Helper()
	out := map[string]spooledMsg{}
	err := ts.sp.Scan(func(m *message.Message) error {
		b, err := ts.sp.Body(m)
		if err != nil {
			return err
		}
		out[m.Recipient] = spooledMsg{m, b}
		return nil
	}, func(key []byte, err error) { ts.t.Errorf("bad record %s: %v", key, err) })
	if err != nil {
		ts.t.Fatal(err)
	}
	return out
}

// count is the number of spooled messages.
func (ts *testServer) count() int {
	ts.t.Helper()
	n := 0
	if err := ts.sp.Scan(func(*message.Message) error { n++; return nil }, nil); err != nil {
		ts.t.Fatal(err)
	}
	return n
}

type spooledMsg struct {
	m    *message.Message
	body []byte
}

func (ts *testServer) records() []map[string]any { return testutil.ReadLogRecords(ts.t, ts.logDir) }

// The builder with everything at once: three recipients with their own substitutions over
// global ones, a non-ASCII subject and display name, text + html alternatives, an inline image
// and an attachment. Each spooled message is MIME that go-message parses back to the values.
func TestInjectBuilder(t *testing.T) {
	ts := startServer(t, nil)
	gif := []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff,")
	pdf := bytes.Repeat([]byte("%PDF-1.4 binary \x00\x01\x02\xfe\xff "), 40)
	req := map[string]any{
		"envelope_sender": "bounce@sender.test",
		"substitutions":   map[string]any{"greeting": "Hello", "plan": "basic", "n": 41},
		"recipients": []any{
			map[string]any{"email": "ann@example.com", "name": "Ann Äpfel", "substitutions": map[string]any{"plan": "gold"}},
			map[string]any{"email": "bob@example.com", "substitutions": map[string]any{"greeting": "Hi"}},
			map[string]any{"email": "cy@example.org", "name": "Cy <Admin>", "metadata": map[string]any{"order": 7}},
		},
		"content": map[string]any{
			"subject":   "Grüße, {{ name | default(email) }} — {{ plan }}",
			"text_body": "{{ greeting }} {{ name }}, your plan is {{ plan }} ({{ n + 1 }}).\n" + strings.Repeat("long line ", 20) + "\n",
			"html_body": "<p>{{ greeting }} <b>{{ name }}</b></p><img src=\"cid:logo@sender.test\">",
			"from":      map[string]any{"email": "news@sender.test", "name": "Nëws Désk"},
			"reply_to":  map[string]any{"email": "help@sender.test"},
			"headers":   map[string]any{"X-Plan": "{{ plan }}", "X-Ünicode-Value": "x", "List-Unsubscribe": "<mailto:u@sender.test?subject={{ email }}>"},
			"attachments": []any{
				map[string]any{"data": b64(gif), "base64": true, "content_type": "image/gif", "content_id": "logo@sender.test"},
				map[string]any{"data": b64(pdf), "base64": true, "content_type": "application/pdf", "file_name": "Rechnung März.pdf"},
			},
		},
	}
	// X-Ünicode-Value is not a valid header name: the whole request is refused first.
	code, out := ts.post(InjectPath, mustJSON(t, req))
	if code != 400 || !strings.Contains(out, "content.headers") {
		t.Fatalf("bad header name: %d %s", code, out)
	}
	delete(req["content"].(map[string]any)["headers"].(map[string]any), "X-Ünicode-Value")
	r := ts.inject(mustJSON(t, req))
	if r.SuccessCount != 3 || r.FailCount != 0 || len(r.FailedRecipients) != 0 || len(r.Errors) != 0 {
		t.Fatalf("response %+v", r)
	}
	got := ts.spooled()
	want := map[string]struct{ subject, to, text, html, plan string }{
		"ann@example.com": {"Grüße, Ann Äpfel — gold", `"Ann Äpfel" <ann@example.com>`, "Hello Ann Äpfel, your plan is gold (42).", "<p>Hello <b>Ann Äpfel</b></p>", "gold"},
		"bob@example.com": {"Grüße, bob@example.com — basic", "<bob@example.com>", "Hi , your plan is basic (42).", "<p>Hi <b></b></p>", "basic"},
		"cy@example.org":  {"Grüße, Cy <Admin> — basic", `"Cy <Admin>" <cy@example.org>`, "Hello Cy <Admin>, your plan is basic (42).", "<p>Hello <b>Cy &lt;Admin&gt;</b></p>", "basic"},
	}
	if len(got) != 3 {
		t.Fatalf("spooled %d messages", len(got))
	}
	for rcpt, w := range want {
		s, ok := got[rcpt]
		if !ok {
			t.Fatalf("%s not spooled", rcpt)
		}
		if s.m.Sender != "bounce@sender.test" || s.m.Protocol != "HTTP" || s.m.PeerAddr != "127.0.0.1" || s.m.Size != len(s.body) {
			t.Errorf("%s envelope: %+v", rcpt, s.m)
		}
		if s.m.Queue != strings.SplitN(rcpt, "@", 2)[1] || s.m.Meta["reception_protocol"] != "HTTP" {
			t.Errorf("%s queue %q meta %v", rcpt, s.m.Queue, s.m.Meta)
		}
		checkWireFormat(t, rcpt, s.body)
		p := parseMIME(t, s.body)
		if p.subject != w.subject || p.to != w.to || p.from != `"Nëws Désk" <news@sender.test>` || p.replyTo != "<help@sender.test>" {
			t.Errorf("%s header: subject %q to %q from %q reply-to %q", rcpt, p.subject, p.to, p.from, p.replyTo)
		}
		if p.header("X-Plan") != w.plan || p.header("List-Unsubscribe") != "<mailto:u@sender.test?subject="+rcpt+">" {
			t.Errorf("%s custom headers: %q %q", rcpt, p.header("X-Plan"), p.header("List-Unsubscribe"))
		}
		if p.messageID != string(s.m.ID)+"@relay.test" || p.date.IsZero() {
			t.Errorf("%s Message-ID %q (id %s), Date %v", rcpt, p.messageID, s.m.ID, p.date)
		}
		if !strings.HasPrefix(p.text, w.text+"\r\n") || !strings.Contains(p.text, strings.Repeat("long line ", 20)) {
			t.Errorf("%s text %q", rcpt, p.text)
		}
		if !strings.HasPrefix(p.html, w.html) {
			t.Errorf("%s html %q", rcpt, p.html)
		}
		wantTree := "multipart/mixed[multipart/related[multipart/alternative[text/plain text/html] image/gif] application/pdf]"
		if p.tree != wantTree {
			t.Errorf("%s structure %s, want %s", rcpt, p.tree, wantTree)
		}
		if !bytes.Equal(p.parts["image/gif"], gif) || p.cid["image/gif"] != "<logo@sender.test>" || p.disp["image/gif"] != "inline" {
			t.Errorf("%s inline image: %q cid %q disp %q", rcpt, p.parts["image/gif"], p.cid["image/gif"], p.disp["image/gif"])
		}
		if !bytes.Equal(p.parts["application/pdf"], pdf) || p.filename["application/pdf"] != "Rechnung März.pdf" || p.disp["application/pdf"] != "attachment" {
			t.Errorf("%s attachment: %d bytes, file name %q disp %q", rcpt, len(p.parts["application/pdf"]), p.filename["application/pdf"], p.disp["application/pdf"])
		}
	}
	if got["cy@example.org"].m.Meta["extra"] != `{"order":7}` || got["ann@example.com"].m.Meta["extra"] != "" {
		t.Errorf("metadata: %v / %v", got["cy@example.org"].m.Meta, got["ann@example.com"].m.Meta)
	}
}

// checkWireFormat: CRLF line ends only, no line over 78 characters (RFC 5322 §2.1.1 SHOULD),
// 7-bit only (every non-ASCII character was encoded).
func checkWireFormat(t *testing.T, who string, b []byte) {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Errorf("%s: message does not end with CRLF", who)
	}
	for i, line := range bytes.Split(b, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("%s: bare CR or LF in line %d: %q", who, i, line)
		}
		if len(line) > 78 {
			t.Errorf("%s: line %d has %d characters: %q", who, i, len(line), line)
		}
		for _, c := range line {
			if c >= 0x80 {
				t.Errorf("%s: 8-bit byte in line %d: %q", who, i, line)
				break
			}
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A full RFC 5322 message as content: a template too; bare LF and bare CR become CRLF; the
// recipient's substitutions override the global ones; nothing is added to the client's header.
func TestInjectRFC5322(t *testing.T) {
	ts := startServer(t, nil)
	r := ts.inject(mustJSON(t, map[string]any{
		"envelope_sender": "",
		"substitutions":   map[string]any{"who": "world", "code": "G"},
		"recipients": []any{
			map[string]any{"email": "a@example.com", "name": "A", "substitutions": map[string]any{"code": "R1"}},
			map[string]any{"email": "b@EXAMPLE.com"},
		},
		"content": "From: x@sender.test\nTo: {{ to_header }}\nSubject: hi {{ who }}\n\nline1 {{ code }}\rline2\r\n",
	}))
	if r.SuccessCount != 2 {
		t.Fatalf("%+v", r)
	}
	got := ts.spooled()
	a, b := got["a@example.com"], got["b@EXAMPLE.com"]
	if string(a.body) != "From: x@sender.test\r\nTo: \"A\" <a@example.com>\r\nSubject: hi world\r\n\r\nline1 R1\r\nline2\r\n" {
		t.Errorf("a: %q", a.body)
	}
	if !strings.Contains(string(b.body), "To: <b@EXAMPLE.com>\r\n") || !strings.Contains(string(b.body), "line1 G\r\n") {
		t.Errorf("b: %q", b.body)
	}
	if a.m.Sender != "" || b.m.Queue != "example.com" {
		t.Errorf("null sender %q, queue %q (domain lower-cased)", a.m.Sender, b.m.Queue)
	}
}

// Whole-request errors: 400 (422 for a template that does not parse) with a message naming
// the field, and nothing spooled.
func TestInjectBadRequests(t *testing.T) {
	ts := startServer(t, nil)
	ok := `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x"}}`
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"not JSON", `{"envelope_sender":`, 400, "invalid JSON"},
		{"empty body", ``, 400, "empty"},
		{"two objects", ok + ok, 400, "after the request"},
		{"missing sender", `{"recipients":[{"email":"r@example.com"}],"content":"x"}`, 400, "envelope_sender: required"},
		{"bad sender", `{"envelope_sender":"no at sign","recipients":[{"email":"r@example.com"}],"content":"x"}`, 400, "envelope_sender:"},
		{"missing recipients", `{"envelope_sender":"s@sender.test","content":"x"}`, 400, "recipients: required"},
		{"empty recipients", `{"envelope_sender":"s@sender.test","recipients":[],"content":"x"}`, 400, "recipients: must not be empty"},
		{"missing email", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"},{"name":"x"}],"content":"x"}`, 400, "recipients[1].email: required"},
		{"bad email", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"},{"email":"a@b@c"}],"content":"x"}`, 400, "recipients[1].email:"},
		{"email wrong type", `{"envelope_sender":"s@sender.test","recipients":[{"email":5}],"content":"x"}`, 400, "recipients.email: must be a string"},
		{"missing content", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}]}`, 400, "content: required"},
		{"content number", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":5}`, 400, "content: must be a string"},
		{"unknown field", `{"envelope_sender":"s@sender.test","recipient":[],"recipients":[{"email":"r@example.com"}],"content":"x"}`, 400, `unknown field "recipient"`},
		{"unknown builder field", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x","subjekt":"y"}}`, 400, `content: unknown field "subjekt"`},
		{"no body", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"subject":"x"}}`, 400, "text_body and html_body"},
		{"bad from", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x","from":{"email":"bad"}}}`, 400, "content.from.email:"},
		{"no from with null sender", `{"envelope_sender":"","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x"}}`, 400, "content.from: required"},
		{"owned header", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x","headers":{"content-type":"text/evil"}}}`, 400, "content.headers.content-type"},
		{"bad base64", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x","attachments":[{"data":"@@@","base64":true,"content_type":"image/gif"}]}}`, 400, "content.attachments[0].data: not valid base64"},
		{"no content_type", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x","attachments":[{"data":"x"}]}}`, 400, "content.attachments[0].content_type: required"},
		{"multipart attachment", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x","attachments":[{"data":"x","content_type":"multipart/mixed"}]}}`, 400, "content.attachments[0].content_type"},
		{"bad content id", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x","attachments":[{"data":"x","content_type":"image/gif","content_id":"a b"}]}}`, 400, "content.attachments[0].content_id"},
		{"name with newline", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com","name":"x\nBcc: v@x"}],"content":"x"}`, 400, "recipients[0].name"},
		{"handlebars", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":"x","template_dialect":"Handlebars"}`, 400, "template_dialect"},
		{"deferred spool", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":"x","deferred_spool":true}`, 400, "deferred_spool"},
		{"template syntax", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"text_body":"x","subject":"{% if %}"}}`, 422, "content.subject: syntax error"},
		{"include refused", `{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":"{% include '/etc/passwd' %}"}`, 422, "content:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := ts.post(InjectPath, tc.body)
			var e errorBody
			if code != tc.code || json.Unmarshal([]byte(out), &e) != nil || !strings.Contains(e.Error, tc.want) {
				t.Fatalf("%d %s, want %d naming %q", code, out, tc.code, tc.want)
			}
		})
	}
	if n := len(ts.spooled()); n != 0 {
		t.Fatalf("%d messages spooled by refused requests", n)
	}
}

// A template that fails for one recipient fails that recipient only (200, KumoMTA's shape);
// so does a header value that renders a line break (header injection).
func TestInjectPerRecipientFailures(t *testing.T) {
	ts := startServer(t, nil)
	r := ts.inject(mustJSON(t, map[string]any{
		"envelope_sender": "s@sender.test",
		"recipients": []any{
			map[string]any{"email": "ok@example.com", "substitutions": map[string]any{"acct": map[string]any{"id": 1}}},
			map[string]any{"email": "missing@example.com"},
			map[string]any{"email": "inject@example.com", "substitutions": map[string]any{"acct": map[string]any{"id": "1\r\nBcc: victim@example.net"}}},
		},
		"content": map[string]any{"text_body": "id {{ acct.id.x }}{{ acct.id }}", "headers": map[string]any{"X-Acct": "{{ acct.id }}"}},
	}))
	if r.SuccessCount != 1 || r.FailCount != 2 || strings.Join(r.FailedRecipients, ",") != "missing@example.com,inject@example.com" {
		t.Fatalf("%+v", r)
	}
	if !strings.HasPrefix(r.Errors[0], "missing@example.com: content.text_body: ") || !strings.HasPrefix(r.Errors[1], "inject@example.com: content.headers.X-Acct: the rendered value contains a line break") {
		t.Fatalf("errors %q", r.Errors)
	}
	got := ts.spooled()
	if _, ok := got["ok@example.com"]; !ok || len(got) != 1 {
		t.Fatalf("spooled %v", got)
	}
	n := 0
	for _, rec := range ts.records() {
		if rec["type"] == "Rejection" && rec["reception_protocol"] == "HTTP" && testutil.Code(rec) == 554 {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d Rejection records, want 2: %v", n, ts.records())
	}
}

func loadPlugin(t *testing.T, path string) *plugin.Plugin {
	t.Helper()
	h, err := plugin.NewHost(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	p, err := h.Load(context.Background(), plugin.Spec{Path: path, Config: []byte("{}"), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// http_message_generated runs once per recipient: its meta picks the queue, its reject fails
// exactly that recipient (with the plugin's text, and a Rejection record), a trap fails the
// recipient with a safe text; SMTP's hook does not run.
func TestInjectPluginHook(t *testing.T) {
	chain := plugin.NewChain(loadPlugin(t, "../plugin/testdata/http.wasm"), loadPlugin(t, "testdata/httproute.wasm"))
	ts := startServer(t, func(o *Options) { o.Policy = chain })
	r := ts.inject(`{"envelope_sender":"s@sender.test","recipients":[{"email":"a@example.com"},{"email":"reject-me@example.com"},{"email":"c@example.org"}],"content":{"text_body":"hi {{ email }}"}}`)
	if r.SuccessCount != 2 || r.FailCount != 1 || r.FailedRecipients[0] != "reject-me@example.com" || r.Errors[0] != "reject-me@example.com: 550 5.7.1 recipient refused by policy" {
		t.Fatalf("%+v", r)
	}
	got := ts.spooled()
	for rcpt, q := range map[string]string{"a@example.com": "http:@example.com!smarthost.test", "c@example.org": "http:@example.org!smarthost.test"} {
		s := got[rcpt]
		if s.m == nil || s.m.Queue != q || s.m.Meta["campaign"] != "http" || s.m.Meta["routing_domain"] != "smarthost.test" || len(s.m.Policy) != 2 {
			t.Errorf("%s: %+v", rcpt, s.m)
		}
	}
	var rej map[string]any
	for _, rec := range ts.records() {
		if rec["type"] == "Rejection" {
			rej = rec
		}
	}
	if rej == nil || rej["recipient"] != "reject-me@example.com" || testutil.Code(rej) != 550 {
		t.Fatalf("rejection record %v", rej)
	}

	trap := plugin.NewChain(loadPlugin(t, "testdata/httptrap.wasm"))
	ts = startServer(t, func(o *Options) { o.Policy = trap })
	r = ts.inject(`{"envelope_sender":"s@sender.test","recipients":[{"email":"a@example.com"}],"content":"Subject: x\n\nbody"}`)
	if r.FailCount != 1 || r.Errors[0] != "a@example.com: 451 4.3.0 policy check failed; try again later" || len(ts.spooled()) != 0 {
		t.Fatalf("trap: %+v", r)
	}
}

type fullDisk struct{ asked int64 }

func (d *fullDisk) Room(n int64) error { d.asked = n; return errors.New("only 3% free") }

// A disk-space refusal is 503 like KumoMTA's "disk is too full", and nothing is spooled. A
// spool write failure fails the recipients it hit and says so.
func TestInjectDiskFullAndSpoolFailure(t *testing.T) {
	guard := &fullDisk{}
	ts := startServer(t, func(o *Options) { o.Guard = guard })
	code, out := ts.post(InjectPath, `{"envelope_sender":"s@sender.test","recipients":[{"email":"a@example.com"},{"email":"b@example.com"}],"content":"Subject: x\n\n0123456789"}`)
	if code != 503 || !strings.Contains(out, "disk is too full") || guard.asked != 2*int64(len("Subject: x\r\n\r\n0123456789\r\n")) {
		t.Fatalf("%d %s (asked for %d bytes)", code, out, guard.asked)
	}
	if len(ts.spooled()) != 0 {
		t.Fatal("spooled despite the guard")
	}

	ts = startServer(t, nil)
	ts.rcv.fail["b@example.com"] = true
	r := ts.inject(`{"envelope_sender":"s@sender.test","recipients":[{"email":"a@example.com"},{"email":"b@example.com"}],"content":"Subject: x\n\nbody"}`)
	if r.SuccessCount != 1 || r.FailedRecipients[0] != "b@example.com" || !strings.Contains(r.Errors[0], "451 4.3.0") || strings.Contains(r.Errors[0], "fire") {
		t.Fatalf("%+v", r)
	}
}

// Tokens: with [http] token set, a request without it (or with another) is 401 with
// WWW-Authenticate; inject_token opens the inject route only.
func TestAuth(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.Token = "admin-secret"; o.InjectToken = "inject-secret" })
	ts.srv.Handle("GET /api/admin/test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("admin")) }))
	body := `{"envelope_sender":"s@sender.test","recipients":[{"email":"a@example.com"}],"content":"Subject: x\n\nbody"}`
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", 401}, {"Bearer wrong", 401}, {"Basic YTpi", 401}, {"Bearer", 401}, {"Bearer admin-secret2", 401},
		{"Bearer admin-secret", 200}, {"bearer inject-secret", 200},
	} {
		if code, out := ts.post(InjectPath, body, "Authorization", tc.auth); code != tc.want {
			t.Errorf("inject with %q: %d %s, want %d", tc.auth, code, out, tc.want)
		}
	}
	get := func(auth string) int {
		req, _ := http.NewRequest("GET", ts.url+"/api/admin/test", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		code, _ := ts.do(req)
		return code
	}
	if c := get("Bearer inject-secret"); c != 401 {
		t.Errorf("admin route with the inject token: %d", c)
	}
	if c := get("Bearer admin-secret"); c != 200 {
		t.Errorf("admin route with the admin token: %d", c)
	}
	req, _ := http.NewRequest("GET", ts.url+InjectPath, nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	if code, _ := ts.do(req); code != 405 {
		t.Errorf("GET inject: %d, want 405", code)
	}
	if n := ts.count(); n != 2 {
		t.Errorf("%d spooled, want the 2 authorized", n)
	}

	// inject_token alone guards injection; other routes stay open (loopback).
	only := startServer(t, func(o *Options) { o.InjectToken = "inject-secret" })
	only.srv.Handle("GET /api/admin/test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("admin")) }))
	if code, _ := only.post(InjectPath, body); code != 401 {
		t.Errorf("inject_token only, none sent: %d", code)
	}
	if code, _ := only.post(InjectPath, body, "Authorization", "Bearer inject-secret"); code != 200 {
		t.Errorf("inject_token only, sent: %d", code)
	}
	req, _ = http.NewRequest("GET", only.url+"/api/admin/test", nil)
	if code, _ := only.do(req); code != 200 {
		t.Errorf("inject_token only, admin route: %d", code)
	}

	open := startServer(t, nil) // loopback without a token: open
	if code, out := open.post(InjectPath, body); code != 200 {
		t.Errorf("no token configured: %d %s", code, out)
	}
}

// The body limit: 413 from Content-Length, from a chunked body, and from a gzip body that
// inflates past it; a gzip body under it is accepted.
func TestBodyLimit(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxRequestSize = 4096 })
	big := `{"envelope_sender":"s@sender.test","recipients":[{"email":"a@example.com"}],"content":"Subject: x\n\n` + strings.Repeat("x", 5000) + `"}`
	if code, out := ts.post(InjectPath, big); code != 413 || !strings.Contains(out, "max_request_size") {
		t.Errorf("Content-Length over: %d %s", code, out)
	}
	req, _ := http.NewRequest("POST", ts.url+InjectPath, io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1 // chunked
	if code, out := ts.do(req); code != 413 {
		t.Errorf("chunked over: %d %s", code, out)
	}
	gz := func(s string) *bytes.Buffer {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return &b
	}
	req, _ = http.NewRequest("POST", ts.url+InjectPath, gz(big))
	req.Header.Set("Content-Encoding", "gzip")
	if code, out := ts.do(req); code != 413 {
		t.Errorf("gzip inflating over: %d %s", code, out)
	}
	small := `{"envelope_sender":"s@sender.test","recipients":[{"email":"a@example.com"}],"content":"Subject: x\n\nsmall"}`
	req, _ = http.NewRequest("POST", ts.url+InjectPath, gz(small))
	req.Header.Set("Content-Encoding", "gzip")
	if code, out := ts.do(req); code != 200 {
		t.Errorf("gzip small: %d %s", code, out)
	}
	req, _ = http.NewRequest("POST", ts.url+InjectPath, strings.NewReader(small))
	req.Header.Set("Content-Encoding", "br")
	if code, out := ts.do(req); code != 415 {
		t.Errorf("brotli: %d %s", code, out)
	}
	if n := len(ts.spooled()); n != 1 {
		t.Errorf("%d spooled, want 1", n)
	}
}

// Concurrent injections share the template engine's environment: each message still gets its
// own values (run under -race in CI).
func TestInjectConcurrent(t *testing.T) {
	ts := startServer(t, nil)
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				rc := fmt.Sprintf("c%d-%d@example.com", c, i)
				body := mustJSON(t, map[string]any{"envelope_sender": "s@sender.test",
					"recipients": []any{map[string]any{"email": rc, "substitutions": map[string]any{"items": []any{c, i}}}},
					"content":    "Subject: {% set n = items | length %}{{ n }}\n\n{% for x in items %}{{ '<' ~ x ~ '>' }}{% endfor %} {{ email }}"})
				code, out := ts.post(InjectPath, body)
				if code != 200 || !strings.Contains(out, `"success_count":1`) {
					t.Errorf("%s: %d %s", rc, code, out)
				}
			}
		}()
	}
	wg.Wait()
	got := ts.spooled()
	for c := 0; c < 8; c++ {
		for i := 0; i < 5; i++ {
			rc := fmt.Sprintf("c%d-%d@example.com", c, i)
			if want := fmt.Sprintf("Subject: 2\r\n\r\n<%d><%d> %s\r\n", c, i, rc); string(got[rc].body) != want {
				t.Errorf("%s: %q, want %q", rc, got[rc].body, want)
			}
		}
	}
}
