package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"

	"github.com/wasmta/wasmta/host/testutil"
)

// End-to-end tests of the HTTP injection API (KumoMTA's POST /api/inject/v1) against the real
// binary: what a KumoMTA injector sends arrives at the sink as MIME that parses.

const httpZone = zone + `
smarthost.test.     A  127.0.0.6
`

// httpEnv is an env whose relay also serves HTTP on a free loopback port.
type httpEnv struct {
	*env
	url string
}

// newHTTPEnv starts an env with [http] listen on a free port plus httpKeys (more [http] keys)
// and extra (other tables), and waits until the HTTP port answers.
func newHTTPEnv(t *testing.T, sinkIPs []string, httpKeys, extra string) *httpEnv {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	e := &httpEnv{env: newEnv(t, httpZone, sinkIPs, fmt.Sprintf("[http]\nlisten = %q\n%s", addr, httpKeys)+extra), url: "http://" + addr}
	e.waitHTTP(addr)
	return e
}

// waitHTTP polls until the HTTP listener accepts (it opens just after SMTP's).
func (e *httpEnv) waitHTTP(addr string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("HTTP %s not listening: %v\n%s", addr, err, e.relay.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *httpEnv) post(body string, hdr ...string) (int, string) {
	e.t.Helper()
	return e.request("POST", "/api/inject/v1", strings.NewReader(body), append([]string{"Content-Type", "application/json"}, hdr...)...)
}

func (e *httpEnv) get(path string, hdr ...string) (int, string) {
	e.t.Helper()
	return e.request("GET", path, nil, hdr...)
}

// request sends one request with the header name/value pairs in hdr and returns the status and
// the body.
func (e *httpEnv) request(method, path string, body io.Reader, hdr ...string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// injectResult is KumoMTA's response shape.
type injectResult struct {
	SuccessCount     int      `json:"success_count"`
	FailCount        int      `json:"fail_count"`
	FailedRecipients []string `json:"failed_recipients"`
	Errors           []string `json:"errors"`
}

func (e *httpEnv) inject(req any, hdr ...string) injectResult {
	e.t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		e.t.Fatal(err)
	}
	code, out := e.post(string(b), hdr...)
	if code != 200 {
		e.t.Fatalf("inject: %d %s", code, out)
	}
	var r injectResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Fatalf("response %q: %v", out, err)
	}
	return r
}

// mimeTree is the MIME structure of e, e.g. "multipart/mixed[text/plain image/png]".
func mimeTree(t *testing.T, e *gomessage.Entity) string {
	t.Helper()
	ct, _, _ := e.Header.ContentType()
	mr := e.MultipartReader()
	if mr == nil {
		return ct
	}
	var kids []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return ct + "[" + strings.Join(kids, " ") + "]"
		}
		if err != nil {
			t.Fatalf("%s: %v", ct, err)
		}
		kids = append(kids, mimeTree(t, p))
	}
}

func httpFixture(t *testing.T, name string) string {
	p, err := filepath.Abs(filepath.Join("..", "..", "host", "httpapi", "testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A three-recipient builder injection (per-recipient substitutions, a non-ASCII subject, an
// HTML alternative, an attachment) through two http_message_generated plugins: http.wasm sets
// campaign=http, httproute.wasm routes through smarthost.test and refuses "reject*"
// recipients. The refused one fails alone; the three others reach the smarthost's sink as MIME
// that parses to each recipient's values.
func TestHTTPInjectBuilder(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, []string{"127.0.0.6"}, "", pluginConfig(fixture(t, "http"))+pluginConfig(httpFixture(t, "httproute")))
	pdf := bytes.Repeat([]byte("%PDF-1.4\x00\x01\xfe\xff binary "), 50)
	r := e.inject(map[string]any{
		"envelope_sender": "bounces@sender.test",
		"substitutions":   map[string]any{"product": "Wïdget", "price": 10},
		"recipients": []any{
			map[string]any{"email": "anna@example.com", "name": "Anna Ström", "substitutions": map[string]any{"price": 8}},
			map[string]any{"email": "reject-me@example.com", "name": "Nobody"},
			map[string]any{"email": "bert@example.com", "name": "Bert", "substitutions": map[string]any{"product": "Gadget"}},
			map[string]any{"email": "cleo@implicit.test", "name": "Cléo"},
		},
		"content": map[string]any{
			"subject":     "Ihre Bestellung: {{ product }} für {{ name }}",
			"text_body":   "Hallo {{ name }}, {{ product }} kostet {{ price }} €.\n",
			"html_body":   "<p>Hallo <b>{{ name }}</b>, {{ product }} kostet {{ price }} &euro;.</p>\n",
			"from":        map[string]any{"email": "shop@sender.test", "name": "Der Läden"},
			"attachments": []any{map[string]any{"data": base64.StdEncoding.EncodeToString(pdf), "base64": true, "content_type": "application/pdf", "file_name": "rechnung.pdf"}},
		},
	})
	if r.SuccessCount != 3 || r.FailCount != 1 || len(r.FailedRecipients) != 1 || r.FailedRecipients[0] != "reject-me@example.com" ||
		len(r.Errors) != 1 || r.Errors[0] != "reject-me@example.com: 550 5.7.1 recipient refused by policy" {
		t.Fatalf("response %+v", r)
	}
	want := map[string]struct{ name, product, price string }{
		"anna@example.com":   {"Anna Ström", "Wïdget", "8"},
		"bert@example.com":   {"Bert", "Gadget", "10"},
		"cleo@implicit.test": {"Cléo", "Wïdget", "10"},
	}
	got := e.sinks["127.0.0.6"].WaitCount(t, 3, 20*time.Second)
	for _, m := range got {
		rcpt := m.To[0]
		w, ok := want[rcpt]
		if !ok {
			t.Fatalf("unexpected delivery to %s", rcpt)
		}
		delete(want, rcpt)
		if m.From != "bounces@sender.test" || len(m.To) != 1 {
			t.Errorf("%s envelope: from %s to %v", rcpt, m.From, m.To)
		}
		mr, err := gomail.CreateReader(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatalf("%s: not MIME: %v\n%s", rcpt, err, m.Data)
		}
		subject, _ := mr.Header.Subject()
		to, _ := mr.Header.AddressList("To")
		from, _ := mr.Header.AddressList("From")
		if subject != "Ihre Bestellung: "+w.product+" für "+w.name || len(to) != 1 || to[0].Name != w.name || to[0].Address != rcpt ||
			len(from) != 1 || from[0].Name != "Der Läden" {
			t.Errorf("%s header: subject %q to %v from %v", rcpt, subject, to, from)
		}
		if id, _ := mr.Header.MessageID(); !strings.HasSuffix(id, "@relay.test") {
			t.Errorf("%s Message-ID %q", rcpt, id)
		}
		var text, html string
		var att []byte
		var attName string
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s part: %v", rcpt, err)
			}
			b, _ := io.ReadAll(p.Body)
			switch h := p.Header.(type) {
			case *gomail.InlineHeader:
				ct, _, _ := h.ContentType()
				if ct == "text/plain" {
					text = string(b)
				} else if ct == "text/html" {
					html = string(b)
				}
			case *gomail.AttachmentHeader:
				att = b
				attName, _ = h.Filename()
			}
		}
		if text != "Hallo "+w.name+", "+w.product+" kostet "+w.price+" €.\r\n" {
			t.Errorf("%s text %q", rcpt, text)
		}
		if html != "<p>Hallo <b>"+w.name+"</b>, "+w.product+" kostet "+w.price+" &euro;.</p>\r\n" {
			t.Errorf("%s html %q", rcpt, html)
		}
		if !bytes.Equal(att, pdf) || attName != "rechnung.pdf" {
			t.Errorf("%s attachment %q: %d bytes", rcpt, attName, len(att))
		}
		// The structure as the builder promises.
		ent, err := gomessage.Read(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if tree := mimeTree(t, ent); tree != "multipart/mixed[multipart/alternative[text/plain text/html] application/pdf]" {
			t.Errorf("%s structure %s", rcpt, tree)
		}
		rec := e.relay.WaitLog(recipientIs("Delivery", rcpt), 5*time.Second)
		domain := strings.SplitN(rcpt, "@", 2)[1]
		if rec["queue"] != "http:@"+domain+"!smarthost.test" {
			t.Errorf("%s queue %v", rcpt, rec["queue"])
		}
		recv := e.relay.WaitLog(recipientIs("Reception", rcpt), time.Second)
		if recv["reception_protocol"] != "HTTP" || recv["peer_address"].(map[string]any)["addr"] != "127.0.0.1" {
			t.Errorf("%s reception record %v", rcpt, recv)
		}
	}
	rej := e.relay.WaitLog(recipientIs("Rejection", "reject-me@example.com"), time.Second)
	if testutil.Code(rej) != 550 || rej["reception_protocol"] != "HTTP" {
		t.Errorf("rejection record %v", rej)
	}
	for _, rec := range e.relay.LogRecords() {
		if rec["recipient"] == "reject-me@example.com" && rec["type"] != "Rejection" {
			t.Errorf("the refused recipient got a %v record", rec["type"])
		}
	}
}

// kill -9 right after a 200: every recipient of the injection is on disk and is delivered
// after the restart. The sink is down until then, so nothing leaves before the kill.
func TestHTTPInjectSurvivesKill9(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, []string{"127.0.0.4"}, "", "[queue]\nretry_interval = \"1s\"\n")
	sink := e.sinks["127.0.0.4"]
	sink.Close()
	const n = 50
	var rcpts []any
	for i := 0; i < n; i++ {
		rcpts = append(rcpts, map[string]any{"email": fmt.Sprintf("k%d@implicit.test", i), "substitutions": map[string]any{"i": i}})
	}
	r := e.inject(map[string]any{"envelope_sender": "a@sender.test", "recipients": rcpts,
		"content": map[string]any{"subject": "n{{ i }}", "text_body": "message {{ i }}"}})
	if r.SuccessCount != n {
		t.Fatalf("%+v", r)
	}
	e.relay.Kill()

	sink = testutil.StartSink(t, fmt.Sprintf("127.0.0.4:%d", e.port))
	e.relay.Start()
	sink.WaitCount(t, n, 30*time.Second)
	waitQueueEmpty(t, defaultSock(e.relay))
	seen := map[string]string{}
	for _, m := range sink.Messages() {
		mr, err := gomail.CreateReader(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := mr.Header.Subject()
		seen[m.To[0]] = s
	}
	for i := 0; i < n; i++ {
		if rc := fmt.Sprintf("k%d@implicit.test", i); seen[rc] != fmt.Sprintf("n%d", i) {
			t.Errorf("%s: subject %q", rc, seen[rc])
		}
	}
	if len(sink.Messages()) != n {
		t.Errorf("sink got %d messages, want %d", len(sink.Messages()), n)
	}
}

// With [http] token set: 401 without it or with another; the request body limit answers 413;
// a bad field answers 400 naming it; none of them spools anything.
func TestHTTPAuthAndLimits(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, []string{"127.0.0.4"}, "token = \"s3cret\"\nmax_request_size = \"2KiB\"\n", "")
	ok := `{"envelope_sender":"a@sender.test","recipients":[{"email":"z@implicit.test"}],"content":"Subject: hi\n\nhello"}`
	if code, out := e.post(ok); code != 401 || !strings.Contains(out, "bearer token") {
		t.Errorf("no token: %d %s", code, out)
	}
	if code, _ := e.post(ok, "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	big := `{"envelope_sender":"a@sender.test","recipients":[{"email":"z@implicit.test"}],"content":"Subject: hi\n\n` + strings.Repeat("x", 3000) + `"}`
	if code, out := e.post(big, "Authorization", "Bearer s3cret"); code != 413 || !strings.Contains(out, "max_request_size") {
		t.Errorf("over the limit: %d %s", code, out)
	}
	bad := `{"envelope_sender":"a@sender.test","recipients":[{"email":"z@implicit.test"},{"email":"not an address"}],"content":"Subject: hi\n\nhello"}`
	if code, out := e.post(bad, "Authorization", "Bearer s3cret"); code != 400 || !strings.Contains(out, "recipients[1].email") {
		t.Errorf("bad address: %d %s", code, out)
	}
	if code, out := e.post(ok, "Authorization", "Bearer s3cret"); code != 200 || !strings.Contains(out, `"success_count":1`) {
		t.Fatalf("with the token: %d %s", code, out)
	}
	got := e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
	waitQueueEmpty(t, defaultSock(e.relay))
	if n := len(e.sinks["127.0.0.4"].Messages()); n != 1 || got[0].To[0] != "z@implicit.test" {
		t.Fatalf("sink got %d messages, want only the authorized one", n)
	}
	if err := e.relay.Stop(); err != nil { // SIGTERM stops the HTTP server too, cleanly
		t.Fatal(err)
	}
}
