package bounce

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

	"github.com/wasmta/wasmta/host/message"
)

// stdParse reads a DSN with the standard library's parsers (net/mail, mime/multipart), as a
// program on the sender's side would, and returns the parts' headers and decoded bodies.
func stdParse(t *testing.T, b []byte) (*mail.Message, []textproto.MIMEHeader, [][]byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" {
		t.Fatalf("Content-Type %q %v %v", mt, params, err)
	}
	var hs []textproto.MIMEHeader
	var bodies [][]byte
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("mime/multipart: %v", err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			if body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err != nil {
				t.Fatalf("quoted-printable: %v", err)
			}
		}
		hs, bodies = append(hs, p.Header), append(bodies, body)
	}
	if len(hs) < 2 {
		t.Fatalf("%d parts", len(hs))
	}
	// RFC 6522 §3: report-type is the subtype of the second part.
	if st, _, _ := mime.ParseMediaType(hs[1].Get("Content-Type")); "message/"+params["report-type"] != st {
		t.Fatalf("report-type=%s with a %s part", params["report-type"], st)
	}
	return m, hs, bodies
}

// A DSN in the RFC 6533 forms reports in message/global-delivery-status, so its report-type
// is global-delivery-status (RFC 6522 §3: the second part's subtype): a program that picks
// reports by report-type must not take it for an ASCII one.
func TestGlobalReportType(t *testing.T) {
	f := Failure{Msg: msg("jörg@example.com", nil),
		Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, RemoteMTA: "mx1.example.com"}
	b, err := Build(opt, f, []byte(original), dsnID, now)
	if err != nil {
		t.Fatal(err)
	}
	_, hs, bodies := stdParse(t, b)
	if ct := hs[1].Get("Content-Type"); ct != "message/global-delivery-status" ||
		!strings.Contains(string(bodies[1]), "Final-Recipient: utf-8; jörg@example.com\r\n") {
		t.Fatalf("%s:\n%s", ct, bodies[1])
	}
}

// noBlankFolds fails when a line of the DSN's header sections (the top one and the report's
// field blocks) is made of white space only: RFC 5322 §3.2.2 forbids generating one, and a
// receiver may take it for the blank line that ends the header section.
func noBlankFolds(t *testing.T, b []byte) {
	t.Helper()
	for i, l := range bytes.Split(b, []byte("\r\n")) {
		if len(l) > 0 && len(bytes.Trim(l, " \t")) == 0 {
			t.Fatalf("line %d is white space only (%d octets)", i+1, len(l))
		}
	}
}

// The relay takes message lines up to smtp.max_line_length (2000 by default), longer than the
// 998 octets a returned part may carry as 7bit or 8bit. Such a line must come back intact, not
// cut in two by a line break the sender never wrote (which splits a header field into a line
// no parser accepts, and loses the fields after it).
func TestLongLinesReturnedIntact(t *testing.T) {
	long := "X-Long: " + strings.Repeat("y", 1500)
	orig := "From: Alice <alice@sender.test>\r\n" + long + "\r\nSubject: lunch\r\n\r\nbody " + strings.Repeat("z", 1200) + "\r\n"
	hdrs := orig[:strings.Index(orig, "\r\n\r\n")+2]
	for _, ret := range []string{"HDRS", "FULL"} {
		t.Run(ret, func(t *testing.T) {
			f := Failure{Msg: msg("bob@example.com", &message.DSN{Ret: ret}),
				Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, RemoteMTA: "mx1.example.com"}
			b, err := Build(opt, f, []byte(orig), dsnID, now)
			if err != nil {
				t.Fatal(err)
			}
			checkLines(t, b)
			_, hs, bodies := stdParse(t, b)
			if len(bodies) != 3 {
				t.Fatalf("%d parts", len(bodies))
			}
			got := bodies[2]
			if string(got) != hdrs && string(got) != orig {
				t.Fatalf("returned part (%s, %s) differs from the original:\n%.300q",
					hs[2].Get("Content-Type"), hs[2].Get("Content-Transfer-Encoding"), got)
			}
			if ret == "FULL" && string(got) == hdrs && !strings.Contains(string(bodies[0]), "lines longer than 998 octets") {
				t.Fatalf("headers returned for RET=FULL and the text does not say why:\n%s", bodies[0])
			}
			rh, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(append([]byte{}, got...), "\r\n"...)))).ReadMIMEHeader()
			if err != nil || rh.Get("Subject") != "lunch" || len(rh.Get("X-Long")) != 1500 {
				t.Fatalf("returned header block does not parse: %v", err)
			}
		})
	}
}

// A peer's value with runs of spaces (a reply text, an ENVID of "+20"s) must not fold into
// lines of white space only.
func TestNoBlankFoldedLines(t *testing.T) {
	f := Failure{Msg: msg("bob@example.com", &message.DSN{EnvID: strings.Repeat(" ", 200) + "x"}),
		Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no" + strings.Repeat(" ", 300) + "such user"}, RemoteMTA: "mx1.example.com"}
	b, err := Build(opt, f, []byte(original), dsnID, now)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, b)
	noBlankFolds(t, b)
	r := parse(t, b)
	if d := r.Recipient.Get("Diagnostic-Code"); !strings.HasPrefix(d, "smtp; 550 5.1.1 no") || !strings.HasSuffix(d, "such user") {
		t.Fatalf("Diagnostic-Code %q", d)
	}
}

// A message sent without a header section (its first line is text, no blank line after the
// relay's Received field) has no header block beyond the fields: the returned
// text/rfc822-headers part must hold only those, parse as a header section, and not carry the
// text the sender did not ask back (RET=HDRS).
func TestHeaderBlockEndsAtFirstNonField(t *testing.T) {
	orig := "Received: from client.test ([127.0.0.1])\r\n\tby relay.test (wasmta); Sun, 01 Mar 2026 09:30:00 +0000\r\n" +
		"Hello Bob, this is the text: no header section before it.\r\nSee you.\r\n"
	f := Failure{Msg: msg("bob@example.com", &message.DSN{Ret: "HDRS"}),
		Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, RemoteMTA: "mx1.example.com"}
	b, err := Build(opt, f, []byte(orig), dsnID, now)
	if err != nil {
		t.Fatal(err)
	}
	_, hs, bodies := stdParse(t, b)
	if len(bodies) != 3 || hs[2].Get("Content-Type") != "text/rfc822-headers" {
		t.Fatalf("%d parts", len(bodies))
	}
	got := string(bodies[2])
	if _, err := textproto.NewReader(bufio.NewReader(strings.NewReader(got + "\r\n"))).ReadMIMEHeader(); err != nil ||
		strings.Contains(got, "Hello Bob") {
		t.Fatalf("returned header block (%v):\n%s", err, got)
	}
}

// A DSN that carries 8-bit octets in a part (a returned message with 8-bit text, a report in
// the RFC 6533 form) says so at the top: the multipart's Content-Transfer-Encoding is the
// domain of everything in it (RFC 2045 §6.2, §6.4), and left out it means 7bit.
func TestTopLevelEncodingCovers8bitParts(t *testing.T) {
	orig8 := strings.Replace(original, "Shall we?", "Caf\xc3\xa9?", 1)
	for _, c := range []struct {
		name string
		f    Failure
		orig string
		want string
	}{
		{"ascii", Failure{Msg: msg("bob@example.com", &message.DSN{Ret: "FULL"}), Reply: message.Reply{Code: 550, Text: "no"}}, original, ""},
		{"8bit body", Failure{Msg: msg("bob@example.com", &message.DSN{Ret: "FULL"}), Reply: message.Reply{Code: 550, Text: "no"}}, orig8, "8bit"},
		{"utf8 recipient", Failure{Msg: msg("jörg@example.com", nil), Reply: message.Reply{Code: 550, Text: "no"}}, original, "8bit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := Build(opt, c.f, []byte(c.orig), dsnID, now)
			if err != nil {
				t.Fatal(err)
			}
			m, _, _ := stdParse(t, b)
			if got := m.Header.Get("Content-Transfer-Encoding"); got != c.want {
				t.Fatalf("top-level Content-Transfer-Encoding %q, want %q", got, c.want)
			}
			noBlankFolds(t, b)
		})
	}
}

// bounce.max_returned_size = 0 means the whole message is never returned: the text says
// that, not that the message was "larger than 0 octets".
func TestNeverReturnedWording(t *testing.T) {
	f := Failure{Msg: msg("bob@example.com", &message.DSN{Ret: "FULL"}), Reply: message.Reply{Code: 550, Text: "no"}}
	b, err := Build(Options{Hostname: "relay.test"}, f, []byte(original), dsnID, now)
	if err != nil {
		t.Fatal(err)
	}
	_, _, bodies := stdParse(t, b)
	if text := string(bodies[0]); strings.Contains(text, "larger than 0 octets") || !strings.Contains(text, "does not return whole messages") {
		t.Fatalf("text part:\n%s", text)
	}
}

// At the limit: lines of 997 and 998 octets (CRLF excluded) are allowed in a 7bit or 8bit part,
// and come back whole and untouched under RET=FULL.
func TestLineAtLimitReturnedWhole(t *testing.T) {
	for _, n := range []int{997, 998} {
		orig := "From: Alice <alice@sender.test>\r\nX-Edge: " + strings.Repeat("e", n-len("X-Edge: ")) + "\r\nSubject: edge\r\n\r\n" + strings.Repeat("b", n) + "\r\n"
		f := Failure{Msg: msg("bob@example.com", &message.DSN{Ret: "FULL"}), Reply: message.Reply{Code: 550, Text: "no"}}
		b, err := Build(opt, f, []byte(orig), dsnID, now)
		if err != nil {
			t.Fatal(err)
		}
		checkLines(t, b)
		_, hs, bodies := stdParse(t, b)
		if hs[2].Get("Content-Type") != "message/rfc822" || string(bodies[2]) != orig {
			t.Fatalf("%d octets: returned %s, %d octets", n, hs[2].Get("Content-Type"), len(bodies[2]))
		}
	}
}

// The DSN's To is the envelope sender as a mail reader parses it, quoted local parts and UTF-8
// (RFC 6532) included.
func TestToParses(t *testing.T) {
	for sender, want := range map[string]string{
		`"john  doe"@sender.test`: "john  doe@sender.test",
		`"a\"b"@sender.test`:      `a"b@sender.test`,
		"jörg@sender.test":        "jörg@sender.test",
		"x@[127.0.0.1]":           "x@[127.0.0.1]",
		`"` + strings.Repeat("long ", 40) + `"@sender.test`: strings.Repeat("long ", 40) + "@sender.test",
	} {
		m := msg("bob@example.com", nil)
		m.Sender = sender
		b, err := Build(opt, Failure{Msg: m, Reply: message.Reply{Code: 550, Text: "no"}}, []byte(original), dsnID, now)
		if err != nil {
			t.Fatal(err)
		}
		checkLines(t, b)
		noBlankFolds(t, b)
		hdr, _, _ := stdParse(t, b)
		a, err := mail.ParseAddress(hdr.Header.Get("To"))
		if err != nil || a.Address != want {
			t.Errorf("sender %s: To %q parses as %v, %v", sender, hdr.Header.Get("To"), a, err)
		}
	}
}
