package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// The request of POST /api/inject/v1, field for field KumoMTA's, so an injector written for
// KumoMTA works unchanged. Pointers tell an absent field from an empty one. Unknown fields are
// refused (400 naming the field) so a typo never silently changes a message.
type injectRequest struct {
	EnvelopeSender     *string         `json:"envelope_sender"`
	Recipients         []recipient     `json:"recipients"`
	Content            json.RawMessage `json:"content"`
	Substitutions      map[string]any  `json:"substitutions"`
	TemplateDialect    *string         `json:"template_dialect"`
	DeferredGeneration bool            `json:"deferred_generation"`
	DeferredSpool      bool            `json:"deferred_spool"`
}

type recipient struct {
	Email         *string        `json:"email"`
	Name          *string        `json:"name"`
	Substitutions map[string]any `json:"substitutions"`
	Metadata      map[string]any `json:"metadata"`
}

// builder is the content object: the server builds the MIME message from it.
type builder struct {
	Subject     *string           `json:"subject"`
	TextBody    *string           `json:"text_body"`
	HTMLBody    *string           `json:"html_body"`
	AMPHTMLBody *string           `json:"amp_html_body"`
	From        *mailbox          `json:"from"`
	ReplyTo     *mailbox          `json:"reply_to"`
	Headers     map[string]string `json:"headers"`
	Attachments []attachment      `json:"attachments"`
}

type mailbox struct {
	Email *string `json:"email"`
	Name  *string `json:"name"`
}

type attachment struct {
	Data        *string `json:"data"`
	Base64      bool    `json:"base64"`
	ContentType *string `json:"content_type"`
	FileName    *string `json:"file_name"`
	ContentID   *string `json:"content_id"`
}

// requestError is a whole-request failure: nothing is spooled and the client gets status
// with the message (which names the field at fault).
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: 400, msg: fmt.Sprintf(format, args...)}
}

// headers the builder owns: a client value would break the MIME structure it writes.
var builderOwned = []string{"Mime-Version", "Content-Type", "Content-Transfer-Encoding"}

// job is a validated request, templates compiled, ready to generate one message per recipient.
type job struct {
	sender     string
	recipients []job1
	globals    map[string]any
	raw        *template // content as an RFC 5322 string
	b          *compiledBuilder
}

type job1 struct {
	email, domain string
	name          *string
	subs          map[string]any
	extra         string // metadata as JSON, "" when none
}

type compiledBuilder struct {
	top                      fields
	subject, text, html, amp *template
	headers                  []namedTemplate
	atts                     []attachmentPart
}

type namedTemplate struct {
	name string
	t    *template
}

// decodeRequest parses and validates body. Every check that can fail for the request as a
// whole runs here, before any message is generated, so a 4xx never leaves anything spooled.
func decodeRequest(body io.Reader) (*job, error) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req injectRequest
	if err := dec.Decode(&req); err != nil {
		return nil, jsonErr(err, "")
	}
	if dec.More() {
		return nil, badRequest("invalid JSON: data after the request object")
	}
	return compileRequest(&req)
}

// jsonErr names what encoding/json found wrong, field path included; prefix is the path of
// the object that was decoded.
func jsonErr(err error, prefix string) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := prefix + te.Field
		if te.Field == "" {
			field = strings.TrimSuffix(prefix, ".")
		}
		if field == "" {
			return badRequest("the request must be a JSON object, not %s", te.Value)
		}
		return badRequest("%s: must be %s, not %s", field, jsonType(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return badRequest("invalid JSON at offset %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON: the request body is empty or cut short")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if prefix == "" {
			return badRequest("unknown field %s", field)
		}
		return badRequest("%s: unknown field %s", strings.TrimSuffix(prefix, "."), field)
	}
	return badRequest("invalid JSON: %v", err)
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return kind
}

func compileRequest(req *injectRequest) (*job, error) {
	static := false
	if d := req.TemplateDialect; d != nil {
		switch *d {
		case "Jinja":
		case "Static":
			static = true
		default:
			return nil, badRequest("template_dialect: %q is not supported (Jinja or Static)", *d)
		}
	}
	if req.DeferredGeneration {
		return nil, badRequest("deferred_generation: not supported; messages are generated during the request")
	}
	if req.DeferredSpool {
		return nil, badRequest("deferred_spool: not supported; every message is on disk before the response")
	}
	if req.EnvelopeSender == nil {
		return nil, badRequest("envelope_sender: required")
	}
	j := &job{sender: *req.EnvelopeSender}
	// "" is the null reverse-path (RFC 5321 §4.5.5), for bounces and notifications.
	if j.sender != "" {
		if _, _, err := route.ParseMailbox(j.sender); err != nil {
			return nil, badRequest("envelope_sender: %s", addrText(err))
		}
	}
	if req.Recipients == nil {
		return nil, badRequest("recipients: required")
	}
	if len(req.Recipients) == 0 {
		return nil, badRequest("recipients: must not be empty")
	}
	for i := range req.Recipients {
		r := &req.Recipients[i]
		if r.Email == nil {
			return nil, badRequest("recipients[%d].email: required", i)
		}
		_, domain, err := route.ParseMailbox(*r.Email)
		if err != nil {
			return nil, badRequest("recipients[%d].email: %s", i, addrText(err))
		}
		if r.Name != nil && strings.ContainsAny(*r.Name, "\r\n") {
			return nil, badRequest("recipients[%d].name: must not contain a line break", i)
		}
		one := job1{email: *r.Email, domain: domain, name: r.Name, subs: jsonMap(r.Substitutions)}
		if len(r.Metadata) > 0 {
			b, err := json.Marshal(r.Metadata)
			if err != nil {
				return nil, badRequest("recipients[%d].metadata: %v", i, err)
			}
			if len(b) > abi.MaxMetaValue {
				return nil, badRequest("recipients[%d].metadata: %d bytes as JSON, more than %d", i, len(b), abi.MaxMetaValue)
			}
			one.extra = string(b)
		}
		j.recipients = append(j.recipients, one)
	}
	j.globals = jsonMap(req.Substitutions)
	content := bytes.TrimSpace(req.Content)
	switch {
	case len(content) == 0 || string(content) == "null":
		return nil, badRequest("content: required")
	case content[0] == '"':
		var s string
		if err := json.Unmarshal(content, &s); err != nil {
			return nil, badRequest("content: %v", err)
		}
		t, err := compileField("content", s, false, static)
		if err != nil {
			return nil, err
		}
		j.raw = t
	case content[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(content))
		dec.DisallowUnknownFields()
		var b builder
		if err := dec.Decode(&b); err != nil {
			return nil, jsonErr(err, "content.")
		}
		cb, err := compileBuilder(&b, j.sender, static)
		if err != nil {
			return nil, err
		}
		j.b = cb
	default:
		return nil, badRequest("content: must be a string (an RFC 5322 message) or an object (the builder)")
	}
	return j, nil
}

// addrText is the reason route.ParseMailbox gave, without its SMTP code.
func addrText(err error) string {
	var e *message.Error
	if errors.As(err, &e) {
		return e.Text
	}
	return "malformed address"
}

func jsonMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = jsonValue(v)
	}
	return out
}

// compileField compiles one template field; a syntax error is 422 naming the field (KumoMTA
// answers 422 for content it cannot parse).
func compileField(field, src string, html, static bool) (*template, error) {
	t, err := compileTemplate(src, html, static)
	if err != nil {
		return nil, &requestError{status: 422, msg: field + ": " + err.Error()}
	}
	return t, nil
}

func compileBuilder(b *builder, sender string, static bool) (*compiledBuilder, error) {
	if b.TextBody == nil && b.HTMLBody == nil {
		return nil, badRequest("content: at least one of text_body and html_body is required")
	}
	cb := &compiledBuilder{}
	var err error
	opt := func(field string, src *string, html bool) *template {
		if src == nil || err != nil {
			return nil
		}
		var t *template
		t, err = compileField(field, *src, html, static)
		return t
	}
	cb.subject = opt("content.subject", b.Subject, false)
	cb.text = opt("content.text_body", b.TextBody, false)
	cb.html = opt("content.html_body", b.HTMLBody, true)
	cb.amp = opt("content.amp_html_body", b.AMPHTMLBody, true)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(b.Headers))
	for n := range b.Headers {
		names = append(names, n)
	}
	slices.Sort(names) // KumoMTA keeps headers in a sorted map: same order here
	for _, n := range names {
		if err := headerName(n); err != nil {
			return nil, badRequest("content.headers: %v", err)
		}
		for _, owned := range builderOwned {
			if strings.EqualFold(n, owned) {
				return nil, badRequest("content.headers.%s: set by the builder from the content fields", n)
			}
		}
		t, err := compileField("content.headers."+n, b.Headers[n], false, static)
		if err != nil {
			return nil, err
		}
		cb.headers = append(cb.headers, namedTemplate{n, t})
	}
	from, err := headerMailbox("content.from", b.From)
	if err != nil {
		return nil, err
	}
	if from == nil {
		// RFC 5322 §3.6 requires From; the envelope sender is the natural author.
		if sender == "" {
			return nil, badRequest("content.from: required when envelope_sender is empty")
		}
		from = &mailbox{Email: &sender}
	}
	cb.top.set("From", formatAddress("From", *from.Email, from.Name))
	replyTo, err := headerMailbox("content.reply_to", b.ReplyTo)
	if err != nil {
		return nil, err
	}
	if replyTo != nil {
		cb.top.set("Reply-To", formatAddress("Reply-To", *replyTo.Email, replyTo.Name))
	}
	for i := range b.Attachments {
		a := &b.Attachments[i]
		field := fmt.Sprintf("content.attachments[%d]", i)
		if a.Data == nil {
			return nil, badRequest("%s.data: required", field)
		}
		if a.ContentType == nil {
			return nil, badRequest("%s.content_type: required", field)
		}
		mt, _, err := mime.ParseMediaType(*a.ContentType)
		if err != nil {
			return nil, badRequest("%s.content_type: %q is not a media type", field, *a.ContentType)
		}
		if strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
			// RFC 2046 §5: these may not be base64-encoded; send them as application/octet-stream.
			return nil, badRequest("%s.content_type: %s cannot be attached as a leaf part", field, mt)
		}
		for _, f := range []struct {
			name string
			v    *string
		}{{"file_name", a.FileName}, {"content_id", a.ContentID}} {
			if f.v != nil && strings.ContainsFunc(*f.v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return nil, badRequest("%s.%s: must not contain control characters", field, f.name)
			}
		}
		if a.ContentID != nil && !validContentID(*a.ContentID) {
			return nil, badRequest("%s.content_id: %q is not a valid content id", field, *a.ContentID)
		}
		data := []byte(*a.Data)
		if a.Base64 {
			d, err := base64.StdEncoding.DecodeString(stripSpace(*a.Data))
			if err != nil {
				return nil, badRequest("%s.data: not valid base64: %v", field, err)
			}
			data = d
		}
		cb.atts = append(cb.atts, newAttachment(a, data))
	}
	return cb, nil
}

// validContentID accepts what fits between the angle brackets of a Content-ID (RFC 2045 §7,
// RFC 2392): visible ASCII, no brackets or spaces; the brackets themselves are optional.
func validContentID(s string) bool {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

func headerMailbox(field string, m *mailbox) (*mailbox, error) {
	if m == nil {
		return nil, nil
	}
	if m.Email == nil {
		return nil, badRequest("%s.email: required", field)
	}
	if _, _, err := route.ParseMailbox(*m.Email); err != nil {
		return nil, badRequest("%s.email: %s", field, addrText(err))
	}
	if m.Name != nil && strings.ContainsAny(*m.Name, "\r\n") {
		return nil, badRequest("%s.name: must not contain a line break", field)
	}
	return m, nil
}
