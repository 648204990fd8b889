package httpapi

import (
	"bytes"
	"io"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
)

// FuzzInject feeds arbitrary bytes to the request decoder and, when they decode, generates
// every recipient's message: nothing may panic, every generated message uses CRLF line ends
// only, and a builder message parses back as MIME. The corpus is in testdata/fuzz/FuzzInject.
func FuzzInject(f *testing.F) {
	for _, s := range []string{
		`{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":"Subject: {{ x }}\n\nhi"}`,
		`{"envelope_sender":"","recipients":[{"email":"r@example.com","name":"Ä","substitutions":{"n":1.5}}],"content":{"from":{"email":"f@x.test"},"subject":"{% for i in range(3) %}{{ i }}{% endfor %}","text_body":"t","html_body":"<b>{{ name }}</b>","amp_html_body":"amp","headers":{"X-A":"{{ email }}"},"attachments":[{"data":"aGk=","base64":true,"content_type":"text/plain","file_name":"ä.txt"},{"data":"x","content_type":"image/png","content_id":"c@x"}]}}`,
		`{"envelope_sender":"s@sender.test","recipients":[{"email":"r@[127.0.0.1]","metadata":{"k":[1,2]}}],"content":{"text_body":"{{ a.b }}"},"substitutions":{"a":{"b":"\u0000"}}}`,
		`{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":{"html_body":"{{ '<' ~ x }}","reply_to":{"email":"r@x.test","name":"\"q\""}},"template_dialect":"Static"}`,
		`{"envelope_sender":"s@sender.test","recipients":[{"email":"r@example.com"}],"content":"{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}{% set x = [1,2] %}{{ x | join(',') }}\r\r\n"}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := decodeRequest(bytes.NewReader(data))
		if err != nil {
			if _, ok := err.(*requestError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for i := range j.recipients {
			if i == 3 {
				break
			}
			b, err := j.generate(&j.recipients[i], "0123456789abcdef0123456789abcdef", now, "relay.test", 1<<20)
			if err != nil {
				continue
			}
			if !bytes.HasSuffix(b, []byte("\r\n")) || bytes.Count(b, []byte("\n")) != bytes.Count(b, []byte("\r\n")) || bytes.Count(b, []byte("\r")) != bytes.Count(b, []byte("\r\n")) {
				t.Fatalf("line ends not CRLF: %q", b)
			}
			if j.b == nil {
				continue
			}
			e, err := gomessage.Read(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("generated message does not parse: %v\n%s", err, b)
			}
			if err := walkAll(e); err != nil {
				t.Fatalf("generated MIME does not parse: %v\n%s", err, b)
			}
		}
	})
}

func walkAll(e *gomessage.Entity) error {
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := walkAll(p); err != nil {
				return err
			}
		}
	}
	_, err := io.Copy(io.Discard, e.Body)
	return err
}
