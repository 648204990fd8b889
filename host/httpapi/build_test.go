package httpapi

import (
	"strings"
	"testing"
	"time"
)

// Long header values: non-ASCII ones become short encoded words that fold within 78 columns;
// an ASCII word too long for any header line fails the recipient rather than being cut.
func TestBuilderLongHeaders(t *testing.T) {
	long := func(extra string) *job {
		j, err := decodeRequest(strings.NewReader(`{"envelope_sender":"a@b.test","recipients":[{"email":"x@y.test","name":"` + strings.Repeat("Ü", 60) + `"}],
	"content":{"subject":"` + strings.Repeat("Grüße ", 30) + `","text_body":"` + strings.Repeat("é", 200) + `","reply_to":{"email":"r@b.test","name":"Rëply (x) <y> \"z\""},"headers":{"X-A-Rather-Long-Header-Name-Here":"` + strings.Repeat("ü", 100) + `"` + extra + `}}}`))
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := long("")
	b, err := j.generate(&j.recipients[0], "0123", time.Now(), "relay.test", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	checkWireFormat(t, "x", b)
	p := parseMIME(t, b)
	if p.subject != strings.Repeat("Grüße ", 30) || p.to != `"`+strings.Repeat("Ü", 60)+`" <x@y.test>` || p.replyTo != `"Rëply (x) <y> \"z\"" <r@b.test>` {
		t.Errorf("decoded: subject %q to %q reply-to %q", p.subject, p.to, p.replyTo)
	}
	if v, _ := p.h.Text("X-A-Rather-Long-Header-Name-Here"); v != strings.Repeat("ü", 100) {
		t.Errorf("custom header decoded to %q", v)
	}
	if p.text != strings.Repeat("é", 200)+"\r\n" { // a single-part body gets its final CRLF
		t.Errorf("text %q", p.text)
	}
	j = long(`,"X-Token":"` + strings.Repeat("a", 990) + `"`)
	if _, err := j.generate(&j.recipients[0], "0123", time.Now(), "relay.test", 1<<20); err == nil || !strings.Contains(err.Error(), "content.headers.X-Token") {
		t.Fatalf("a 990-character word in a header: %v", err)
	}
}
