package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	"net/textproto"
)

// The builder turns the content object of an injection into one RFC 5322 / MIME message per
// recipient (RFC 2045-2049), with go-message doing the encoding: header fields folded at 76
// columns, non-ASCII display names and unstructured values as RFC 2047 encoded words, file
// names as RFC 2231 parameters, text parts quoted-printable and binary parts base64 (lines of
// at most 76 characters either way), CRLF everywhere.
//
// Structure, outermost first (a level with one child collapses into that child):
//
//	multipart/mixed        the alternatives (or related), then each attachment
//	  multipart/related    the alternatives, then each inline part (content_id set), RFC 2387
//	    multipart/alternative  text/plain, text/x-amp-html, text/html (RFC 2046 §5.1.4:
//	                           the last is the richest; AMP sits before html as AMP requires)

// fields is a header under construction, in the order it will be written. go-message writes
// a Header's fields last-added first, so header() adds them in reverse.
type fields [][2]string

func (f *fields) set(k, v string) {
	k = textproto.CanonicalMIMEHeaderKey(k)
	for i := range *f {
		if (*f)[i][0] == k {
			(*f)[i][1] = v
			return
		}
	}
	*f = append(*f, [2]string{k, v})
}

func (f fields) has(k string) bool {
	k = textproto.CanonicalMIMEHeaderKey(k)
	for _, kv := range f {
		if kv[0] == k {
			return true
		}
	}
	return false
}

func (f fields) header() gomessage.Header {
	var h gomessage.Header
	for i := len(f) - 1; i >= 0; i-- {
		h.Add(f[i][0], f[i][1])
	}
	return h
}

// part is one node of the MIME tree: a leaf with a body, or a multipart with children.
type part struct {
	header fields
	body   []byte
	kids   []*part
}

func leaf(contentType string, params map[string]string, encoding string, body []byte) *part {
	p := &part{body: body}
	p.header.set("Content-Type", mime.FormatMediaType(contentType, params))
	p.header.set("Content-Transfer-Encoding", encoding)
	return p
}

// multipart wraps kids in a multipart of subtype sub; one child is returned as it is.
func multipart(sub string, kids []*part) *part {
	if len(kids) == 1 {
		return kids[0]
	}
	p := &part{kids: kids}
	// The boundary is set here, not by go-message, so that the header keeps its order.
	var b [24]byte
	_, _ = rand.Read(b[:])
	params := map[string]string{"boundary": hex.EncodeToString(b[:])}
	if sub == "related" {
		// RFC 2387 §3.1: type names the root part's media type.
		mt, _, _ := mime.ParseMediaType(kids[0].header[0][1])
		params["type"] = mt
	}
	p.header.set("Content-Type", mime.FormatMediaType("multipart/"+sub, params))
	return p
}

func textPart(subtype, text string) *part {
	return leaf("text/"+subtype, map[string]string{"charset": "utf-8"}, "quoted-printable", []byte(text))
}

// attachmentPart is a prepared attachment: its header is ready, data decoded.
type attachmentPart struct {
	inline bool
	p      *part
}

func newAttachment(a *attachment, data []byte) attachmentPart {
	mt, params, _ := mime.ParseMediaType(*a.ContentType) // checked at validation
	p := leaf(mt, params, "base64", data)
	disp := "attachment"
	inline := a.ContentID != nil && *a.ContentID != ""
	var dp map[string]string
	if a.FileName != nil && *a.FileName != "" {
		// RFC 2183 with RFC 2231 encoding for a non-ASCII name.
		dp = map[string]string{"filename": *a.FileName}
	}
	if inline {
		disp = "inline"
	}
	p.header.set("Content-Disposition", mime.FormatMediaType(disp, dp))
	if inline {
		p.header.set("Content-Id", "<"+strings.Trim(*a.ContentID, "<>")+">")
	}
	return attachmentPart{inline: inline, p: p}
}

// rendered is one recipient's expanded builder fields.
type rendered struct {
	subject, text, html, amp *string
	headers                  [][2]string // name, value in request order (sorted by name)
}

// dateLayout is RFC 5322 §3.3's date-time.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// encodeText makes an unstructured value 7-bit: RFC 2047 encoded words when it is not ASCII.
// An ASCII value is the client's and stays as it is (it may be structured: encoded words
// are allowed in unstructured text and phrases only, RFC 2047 §5).
// name is the field the value goes in: the first word must fit on the line after it.
func encodeText(name, v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= 0x80 || (c < ' ' && c != '\t') || c == 0x7f {
			return encodeWords(v, min(maxWord, max(24, 76-len(name)-2)))
		}
	}
	return v
}

// maxWord bounds one encoded word (RFC 2047 §2 allows 75) so that go-message, which folds at
// spaces within 76 columns, can always fold between words; the first word is sized to fit
// after the field name.
const maxWord = 60

// encodeWords writes s as RFC 2047 "Q" encoded words separated by spaces, split between
// characters (§5: a word holds whole characters). Only letters, digits and "!*+-/" stay
// literal, the set that is safe in a phrase too (§5 (3)), so the same encoding serves display
// names; space is "_".
func encodeWords(s string, first int) string {
	const prefix, suffix, hexDigits = "=?utf-8?q?", "?=", "0123456789ABCDEF"
	var out strings.Builder
	var word, enc []byte
	flush := func() {
		if len(word) == 0 {
			return
		}
		if out.Len() > 0 {
			out.WriteByte(' ')
		}
		out.WriteString(prefix)
		out.Write(word)
		out.WriteString(suffix)
		word = word[:0]
	}
	var rb [utf8.UTFMax]byte
	for _, r := range s {
		enc = enc[:0]
		for _, b := range rb[:utf8.EncodeRune(rb[:], r)] {
			switch {
			case b == ' ':
				enc = append(enc, '_')
			case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', strings.IndexByte("!*+-/", b) >= 0:
				enc = append(enc, b)
			default:
				enc = append(enc, '=', hexDigits[b>>4], hexDigits[b&15])
			}
		}
		limit := maxWord
		if out.Len() == 0 {
			limit = first
		}
		if len(prefix)+len(word)+len(enc)+len(suffix) > limit {
			flush()
		}
		word = append(word, enc...)
	}
	flush()
	return out.String()
}

// buildMessage writes the whole message. top holds From, Reply-To and To; rendered custom
// headers override them, the subject field overrides a "Subject" header (as KumoMTA does), and
// Date and Message-ID are added when no header gave them.
func buildMessage(top fields, r *rendered, atts []attachmentPart, msgID string, now time.Time) ([]byte, error) {
	h := slices.Clone(top)
	for _, kv := range r.headers {
		h.set(kv[0], encodeText(kv[0], kv[1]))
	}
	if r.subject != nil {
		h.set("Subject", encodeText("Subject", *r.subject))
	}
	if !h.has("Date") {
		h.set("Date", now.Format(dateLayout))
	}
	if !h.has("Message-Id") {
		h.set("Message-Id", "<"+msgID+">")
	}
	h.set("MIME-Version", "1.0")
	var alt []*part
	if r.text != nil {
		alt = append(alt, textPart("plain", *r.text))
	}
	if r.amp != nil {
		alt = append(alt, textPart("x-amp-html", *r.amp))
	}
	if r.html != nil {
		alt = append(alt, textPart("html", *r.html))
	}
	related := []*part{multipart("alternative", alt)}
	var mixed []*part
	for _, a := range atts {
		if a.inline {
			related = append(related, a.p)
		} else {
			mixed = append(mixed, a.p)
		}
	}
	root := multipart("mixed", append([]*part{multipart("related", related)}, mixed...))
	// The root part's own fields (Content-Type, Content-Transfer-Encoding) join the message
	// header.
	for _, kv := range root.header {
		h.set(kv[0], kv[1])
	}
	var buf bytes.Buffer
	w, err := gomessage.CreateWriter(&buf, h.header())
	if err != nil {
		return nil, err
	}
	if err := writeBody(w, root); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\r\n")) {
		buf.WriteString("\r\n") // a single-part body ends where its text ends
	}
	return buf.Bytes(), nil
}

func writeBody(w *gomessage.Writer, p *part) error {
	if p.kids == nil {
		if _, err := w.Write(p.body); err != nil {
			return err
		}
		return w.Close()
	}
	for _, k := range p.kids {
		kw, err := w.CreatePart(k.header.header())
		if err != nil {
			return err
		}
		if err := writeBody(kw, k); err != nil {
			return err
		}
	}
	return w.Close()
}

// formatAddress is a mailbox for the address header field: "Name" <email>, a non-ASCII name
// as encoded words, <email> alone without a name.
func formatAddress(field, email string, name *string) string {
	if name == nil || *name == "" {
		return "<" + email + ">"
	}
	if enc := encodeText(field, *name); enc != *name {
		return enc + " <" + email + ">"
	}
	return (&mail.Address{Name: *name, Address: email}).String()
}

// normalizeCRLF turns bare LF and bare CR into CRLF: SMTP (RFC 5321 §2.3.8) carries only CRLF
// line ends, and a bare LF confuses receivers (and enables smuggling).
func normalizeCRLF(s string) []byte {
	out := make([]byte, 0, len(s)+len(s)/32+2)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// headerName reports whether s may name a header field: RFC 5322 §3.6.8 ftext, printable
// ASCII except colon.
func headerName(s string) error {
	if s == "" {
		return fmt.Errorf("empty header name")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return fmt.Errorf("%q is not a valid header name", s)
		}
	}
	return nil
}
