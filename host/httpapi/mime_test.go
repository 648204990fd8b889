package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
)

// parsed is a message read back with go-message: decoded header values, the MIME tree as a
// string, and each leaf's decoded body by content type.
type parsed struct {
	h                                     gomail.Header
	subject, to, from, replyTo, messageID string
	date                                  time.Time
	text, html                            string
	tree                                  string
	parts                                 map[string][]byte
	cid, disp, filename                   map[string]string
}

func (p *parsed) header(k string) string { return p.h.Get(k) }

func parseMIME(t *testing.T, b []byte) *parsed {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	p := &parsed{h: gomail.Header{Header: e.Header}, parts: map[string][]byte{}, cid: map[string]string{}, disp: map[string]string{}, filename: map[string]string{}}
	p.subject, _ = p.h.Subject()
	p.to = addrs(t, p.h, "To")
	p.from = addrs(t, p.h, "From")
	p.replyTo = addrs(t, p.h, "Reply-To")
	p.messageID, _ = p.h.MessageID()
	p.date, _ = p.h.Date()
	p.tree = p.walk(t, e)
	p.text, p.html = string(p.parts["text/plain"]), string(p.parts["text/html"])
	return p
}

func addrs(t *testing.T, h gomail.Header, key string) string {
	l, err := h.AddressList(key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	var out []string
	for _, a := range l {
		if a.Name != "" {
			out = append(out, fmt.Sprintf("%q <%s>", a.Name, a.Address))
		} else {
			out = append(out, "<"+a.Address+">")
		}
	}
	return strings.Join(out, ", ")
}

func (p *parsed) walk(t *testing.T, e *gomessage.Entity) string {
	t.Helper()
	mt, _, err := e.Header.ContentType()
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	if mr := e.MultipartReader(); mr != nil {
		var kids []string
		for {
			k, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("next part: %v", err)
			}
			kids = append(kids, p.walk(t, k))
		}
		return mt + "[" + strings.Join(kids, " ") + "]"
	}
	body, err := io.ReadAll(e.Body)
	if err != nil {
		t.Fatalf("%s body: %v", mt, err)
	}
	p.parts[mt] = body
	p.cid[mt] = e.Header.Get("Content-Id")
	disp, params, _ := e.Header.ContentDisposition()
	p.disp[mt], p.filename[mt] = disp, params["filename"]
	return mt
}
