package bounce

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/wasmta/wasmta/host/message"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	arrived = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	failed  = time.Date(2026, 3, 1, 9, 31, 5, 0, time.UTC)
	now     = time.Date(2026, 3, 1, 9, 31, 6, 0, time.UTC)
)

const dsnID = message.ID("000000000000000100000000000000aa")

const original = "Received: from client.test ([127.0.0.1])\r\n" +
	"\tby relay.test (wasmta) with ESMTP id 00000000000000020000000000000001;\r\n" +
	"\tSun, 01 Mar 2026 09:30:00 +0000\r\n" +
	"From: Alice <alice@sender.test>\r\n" +
	"To: <bob@example.com>\r\n" +
	"Subject: lunch\r\n" +
	"Message-ID: <1234@sender.test>\r\n" +
	"\r\n" +
	"Shall we?\r\n"

func msg(rcpt string, dsn *message.DSN) *message.Message {
	return &message.Message{
		ID: "00000000000000020000000000000001", Sender: "alice@sender.test", Recipient: rcpt,
		Queue: "example.com", Created: arrived, PeerName: "client.test", Protocol: "ESMTP", DSN: dsn,
	}
}

var opt = Options{Hostname: "relay.test", MaxReturnedSize: DefaultMaxReturnedSize}

func TestGolden(t *testing.T) {
	utf8Orig := strings.Replace(original, "To: <bob@example.com>", "To: <jörg@example.com>", 1)
	cases := []struct {
		name string
		opt  Options
		f    Failure
		orig []byte
	}{
		{"bounce", opt, Failure{Msg: msg("bob@example.com", nil),
			Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, RemoteMTA: "mx1.example.com", LastAttempt: failed},
			[]byte(original)},
		{"bounce-local", opt, Failure{Msg: msg("dave@nullmx.test", nil),
			Reply: message.Reply{Code: 556, Enhanced: "5.1.10", Text: "domain accepts no mail (null MX)"}, LastAttempt: failed},
			[]byte(original)},
		{"full-envid-orcpt", opt, Failure{
			Msg: msg("bob@example.com", &message.DSN{Ret: "FULL", EnvID: "QQ314159", Notify: []string{"FAILURE"},
				ORcptType: "RFC822", ORcpt: "Bob@Example.COM"}),
			Reply: message.Reply{Code: 550, Enhanced: "5.7.1", Text: "rejected by policy"}, RemoteMTA: "mx1.example.com", LastAttempt: failed},
			[]byte(original)},
		{"full-too-big", Options{Hostname: "relay.test", MaxReturnedSize: 100},
			Failure{Msg: msg("bob@example.com", &message.DSN{Ret: "FULL"}),
				Reply: message.Reply{Code: 554, Text: "no enhanced code here"}, RemoteMTA: "mx1.example.com", LastAttempt: failed},
			[]byte(original)},
		{"expired", opt, Failure{Msg: msg("slow@example.com", nil), Expired: true,
			Reply: message.Reply{Code: 451, Enhanced: "4.3.0", Text: "try again later"}, RemoteMTA: "mx2.example.com", LastAttempt: failed},
			[]byte(original)},
		{"expired-unknown", opt, Failure{Msg: msg("slow@example.com", nil), Expired: true}, []byte(original)},
		{"body-lost", opt, Failure{Msg: msg("bob@example.com", nil),
			Reply: message.Reply{Code: 550, Enhanced: "5.3.0", Text: "message body missing from the spool"}, LastAttempt: failed}, nil},
		// RET=FULL, but nothing failed: the headers only (RFC 3461 §4.3).
		{"relayed", opt, Failure{Msg: msg("bob@example.com", &message.DSN{Ret: "FULL", EnvID: "QQ314159", Notify: []string{"SUCCESS"}}),
			Relayed: true, Reply: message.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok queued as 42"}, RemoteMTA: "mx1.example.com", LastAttempt: failed},
			[]byte(original)},
		{"utf8", opt, Failure{Msg: msg("jörg@example.com", nil),
			Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "unknown\r\nuser \x00"}, RemoteMTA: "mx1.example.com", LastAttempt: failed},
			[]byte(utf8Orig)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Build(c.opt, c.f, c.orig, dsnID, now)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", c.name+".eml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("DSN differs from %s (run with -update to rewrite it):\n%s", path, got)
			}
			checkLines(t, got)
			parse(t, got) // every golden DSN is well-formed MIME with the three RFC 3464 parts
		})
	}
}

// checkLines: CRLF line ends only, no line over 998 octets (RFC 5322 §2.1.1).
func checkLines(t *testing.T, b []byte) {
	t.Helper()
	for i, l := range bytes.SplitAfter(b, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		if !bytes.HasSuffix(l, []byte("\r\n")) || bytes.Count(l, []byte("\r")) != 1 {
			t.Fatalf("line %d is not CRLF-terminated: %q", i+1, l)
		}
		if len(l) > 1000 {
			t.Fatalf("line %d longer than 998 octets", i+1)
		}
	}
}

// Report is a parsed DSN.
type Report struct {
	Header     gomessage.Header
	Types      []string           // content types of the parts
	Text       string             // first part, decoded
	PerMessage textproto.Header   // delivery-status, first block
	Recipient  textproto.Header   // delivery-status, second block
	Returned   []byte             // third part, if any
	Params     map[string]string  // top-level Content-Type parameters
	PartHeader []gomessage.Header // each part's header
}

// parse reads a DSN with go-message the way a receiving program would.
func parse(t *testing.T, b []byte) Report {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	r.Header = e.Header
	mt, params, err := e.Header.ContentType()
	if err != nil || mt != "multipart/report" || (params["report-type"] != "delivery-status" && params["report-type"] != "global-delivery-status") {
		t.Fatalf("Content-Type %q %v %v", mt, params, err)
	}
	r.Params = params
	mr := e.MultipartReader()
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := p.Header.ContentType()
		r.Types = append(r.Types, ct)
		r.PartHeader = append(r.PartHeader, p.Header)
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			r.Text = string(body)
		case 1:
			br := bufio.NewReader(bytes.NewReader(body))
			if r.PerMessage, err = textproto.ReadHeader(br); err != nil {
				t.Fatalf("per-message fields: %v", err)
			}
			if r.Recipient, err = textproto.ReadHeader(br); err != nil {
				t.Fatalf("per-recipient fields: %v", err)
			}
		case 2:
			r.Returned = body
		}
	}
	if len(r.Types) < 2 || r.Types[0] != "text/plain" || !strings.HasSuffix(r.Types[1], "delivery-status") {
		t.Fatalf("parts %v", r.Types)
	}
	return r
}

func TestFields(t *testing.T) {
	f := Failure{Msg: msg("bob@example.com", &message.DSN{EnvID: "QQ314159", ORcptType: "RFC822", ORcpt: "Bob@Example.COM"}),
		Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, RemoteMTA: "mx1.example.com", LastAttempt: failed}
	b, err := Build(opt, f, []byte(original), dsnID, now)
	if err != nil {
		t.Fatal(err)
	}
	r := parse(t, b)
	for k, want := range map[string]string{
		"From": "Mail Delivery System <MAILER-DAEMON@relay.test>", "To": "<alice@sender.test>",
		"Auto-Submitted": "auto-replied", "In-Reply-To": "<1234@sender.test>",
		"Message-Id": "<" + string(dsnID) + "@relay.test>", "Date": "Sun, 01 Mar 2026 09:31:06 +0000",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	for k, want := range map[string]string{
		"Reporting-MTA": "dns; relay.test", "Original-Envelope-Id": "QQ314159",
		"Arrival-Date": "Sun, 01 Mar 2026 09:30:00 +0000", "Received-From-MTA": "dns; client.test",
	} {
		if got := r.PerMessage.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	for k, want := range map[string]string{
		"Original-Recipient": "rfc822; Bob@Example.COM", "Final-Recipient": "rfc822; bob@example.com",
		"Action": "failed", "Status": "5.1.1", "Remote-MTA": "dns; mx1.example.com",
		"Diagnostic-Code": "smtp; 550 5.1.1 no such user", "Last-Attempt-Date": "Sun, 01 Mar 2026 09:31:05 +0000",
		"Final-Log-ID": "00000000000000020000000000000001",
	} {
		if got := r.Recipient.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if len(r.Types) != 3 || r.Types[2] != "text/rfc822-headers" {
		t.Fatalf("parts %v", r.Types)
	}
	if want := original[:strings.Index(original, "\r\n\r\n")+2]; string(r.Returned) != want {
		t.Fatalf("returned headers:\n%q\nwant\n%q", r.Returned, want)
	}
	if !strings.Contains(r.Text, "<bob@example.com>:\r\nhost mx1.example.com said:\r\n    550 5.1.1 no such user") {
		t.Fatalf("text part:\n%s", r.Text)
	}
}

func TestReturnFull(t *testing.T) {
	f := Failure{Msg: msg("bob@example.com", &message.DSN{Ret: "FULL"}), Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no"}}
	b, err := Build(opt, f, []byte(original), dsnID, now)
	if err != nil {
		t.Fatal(err)
	}
	r := parse(t, b)
	if r.Types[2] != "message/rfc822" || string(r.Returned) != original {
		t.Fatalf("RET=FULL returned %s:\n%q", r.Types[2], r.Returned)
	}
	// Over the size limit the headers come back instead, and the text says why.
	small := Options{Hostname: "relay.test", MaxReturnedSize: len(original) - 1}
	b, err = Build(small, f, []byte(original), dsnID, now)
	if err != nil {
		t.Fatal(err)
	}
	r = parse(t, b)
	if r.Types[2] != "text/rfc822-headers" || strings.Contains(string(r.Returned), "Shall we?") ||
		!strings.Contains(r.Text, "larger than") {
		t.Fatalf("over the limit: %s %q\n%s", r.Types[2], r.Returned, r.Text)
	}
}

func TestStatus(t *testing.T) {
	for _, c := range []struct {
		f    Failure
		want string
	}{
		{Failure{Reply: message.Reply{Code: 550, Enhanced: "5.1.1"}}, "5.1.1"},
		{Failure{Reply: message.Reply{Code: 550}}, "5.0.0"},
		{Failure{Reply: message.Reply{Code: 550, Enhanced: "4.1.1"}}, "5.0.0"}, // class must match
		{Failure{Reply: message.Reply{Code: 550, Enhanced: "5.1"}}, "5.0.0"},
		{Failure{Expired: true, Reply: message.Reply{Code: 451, Enhanced: "4.4.1"}}, "4.4.7"},
		{Failure{Expired: true}, "4.4.7"},
	} {
		if got := status(c.f); got != c.want {
			t.Errorf("status(%+v) = %s, want %s", c.f.Reply, got, c.want)
		}
	}
}

func TestHeaderBlock(t *testing.T) {
	if got := headerBlock([]byte("A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore")); string(got) != "A: 1\r\nB: 2\r\n" {
		t.Fatalf("%q", got)
	}
	if got := headerBlock([]byte("A: 1\r\nB: 2\r\n")); string(got) != "A: 1\r\nB: 2\r\n" {
		t.Fatalf("no body: %q", got)
	}
	if got := headerBlock([]byte("\r\nbody")); len(got) != 0 {
		t.Fatalf("no headers: %q", got)
	}
	// A header section over the cap is cut at a field boundary, never inside a folded field.
	long := "X-Long: " + strings.Repeat("a", 100) + "\r\n"
	var big strings.Builder
	for big.Len() < MaxHeaderBlock {
		big.WriteString(long)
		big.WriteString("X-Folded: first\r\n\tsecond\r\n")
	}
	big.WriteString("\r\nbody")
	got := headerBlock([]byte(big.String()))
	if len(got) > MaxHeaderBlock || len(got) < MaxHeaderBlock-200 || !bytes.HasSuffix(got, []byte("\r\n")) {
		t.Fatalf("cut to %d octets", len(got))
	}
	if bytes.HasSuffix(got, []byte("X-Folded: first\r\n")) {
		t.Fatal("cut inside a folded field")
	}
}

func TestMessageID(t *testing.T) {
	for in, want := range map[string]string{
		"Message-ID: <a@b>\r\n":           "<a@b>",
		"message-id:   <a@b>  \r\n":       "<a@b>",
		"Message-ID: <a@b> <c@d>\r\n":     "",
		"Message-ID: junk\r\n":            "",
		"Message-ID: <a\x01@b>\r\n":       "",
		"Subject: x\r\nMessage-Id: <x@y>": "<x@y>",
		"Subject: x\r\n":                  "",
	} {
		if got := messageID([]byte(in)); got != want {
			t.Errorf("messageID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNew(t *testing.T) {
	m := msg("bob@example.com", nil)
	m.Sender = "alice@Sender.TEST"
	o := opt
	o.Tenant = "bounces"
	d, body, err := New(o, Failure{Msg: m, Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no"}}, []byte(original), now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Sender != "" || d.Recipient != "alice@Sender.TEST" || d.Queue != "bounces@sender.test" ||
		d.Meta[MetaBounceType] != TypeDSN || d.Meta[MetaBounceOf] != string(m.ID) || d.Size != len(body) ||
		d.Protocol != Protocol || !d.Created.Equal(now) || !d.Due.Equal(now) {
		t.Fatalf("DSN record %+v", d)
	}
	parse(t, body)
	m.Sender = ""
	if _, _, err := New(opt, Failure{Msg: m}, nil, now); err == nil {
		t.Fatal("a DSN for a message from the null sender")
	}
}

// A peer controls the reply text, the EHLO name, ENVID and ORCPT: however long or odd, they
// must not break a line limit or a field.
func TestHostileValues(t *testing.T) {
	long := strings.Repeat("x", 70000)
	m := msg("bob@example.com", &message.DSN{EnvID: long, ORcptType: "RFC822", ORcpt: long})
	m.PeerName = long + "\r\nX-Injected: yes"
	f := Failure{Msg: m, Reply: message.Reply{Code: 550, Text: strings.Repeat("word ", 13000) + long + "\r\nX-Injected: yes"},
		RemoteMTA: "mx1.example.com", LastAttempt: failed}
	b, err := Build(opt, f, []byte(original), dsnID, now)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, b)
	r := parse(t, b)
	if r.Recipient.Get("X-Injected") != "" || r.PerMessage.Get("X-Injected") != "" || r.Header.Get("X-Injected") != "" {
		t.Fatal("a CR LF in a peer's value started a field")
	}
	if d := r.Recipient.Get("Diagnostic-Code"); !strings.HasPrefix(d, "smtp; 550 word word") || len(d) > 1000 {
		t.Fatalf("Diagnostic-Code of %d octets: %.80q", len(d), d)
	}
}
