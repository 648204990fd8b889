package httpapi

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/route"
)

// injectResponse is KumoMTA's answer, field for field: 200 even when some recipients failed.
type injectResponse struct {
	SuccessCount     int      `json:"success_count"`
	FailCount        int      `json:"fail_count"`
	FailedRecipients []string `json:"failed_recipients"`
	Errors           []string `json:"errors"`
}

// spoolWorkers is how many messages of one request are handed to the spool at once. Each
// Submit waits for its fsync; submitting in parallel lets the spool's group commit put many of
// them under one fsync.
const spoolWorkers = 64

// spoolWindow bounds the octets of generated messages a request holds at once (plus one
// message): they are spooled, and the disk space check made, a window at a time.
const spoolWindow = 16 << 20

// Replies recorded in Rejection log records for recipients that failed.
var (
	replyPolicy  = message.Reply{Code: 451, Enhanced: "4.3.0", Text: "policy check failed; try again later"}
	replySpool   = message.Reply{Code: 451, Enhanced: "4.3.0", Text: "could not write the message to disk; try again later"}
	replyNoSpace = message.Reply{Code: 452, Enhanced: "4.3.1", Text: "insufficient system storage"}
	replyContent = func(text string) message.Reply { return message.Reply{Code: 554, Enhanced: "5.6.0", Text: text} }
)

// outcome of one recipient.
type outcome struct {
	msg   *message.Message
	body  []byte
	fail  *message.Reply // nil: to spool
	error string         // for the response's errors list
}

func (s *Server) inject(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			writeError(w, re.status, re.msg)
			return
		}
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return
	}
	j, err := decodeRequest(bytes.NewReader(body))
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			writeError(w, re.status, re.msg)
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	peer := r.RemoteAddr
	if h, _, err := net.SplitHostPort(peer); err == nil {
		peer = h
	}
	// The request is answered only after every message is on disk; a client that hangs up
	// midway must not leave the hooks and the spool half done.
	ctx := context.WithoutCancel(r.Context())
	now := s.opt.Now()
	outs := make([]outcome, len(j.recipients))
	// Generated and spooled a window at a time: holding every recipient's message until the
	// last was generated let one request within max_request_size hold its content times its
	// recipients (1 MiB of content and 50,000 addresses are 50 GiB).
	first := 0
	var held int64
	for i := range j.recipients {
		outs[i] = s.generate(ctx, j, &j.recipients[i], peer, now)
		held += int64(len(outs[i].body))
		if held < spoolWindow && i < len(outs)-1 {
			continue
		}
		if g := s.opt.Guard; g != nil {
			if err := g.Room(held); err != nil {
				s.opt.Diag.Warn("http inject refused: spool short of space", "bytes", held, "err", err)
				if first == 0 {
					writeError(w, http.StatusServiceUnavailable, "disk is too full")
					return
				}
				// Part of the request is on disk: the rest fails, and the client retries it.
				for k := first; k < len(outs); k++ {
					if outs[k].fail == nil {
						rep := replyNoSpace
						outs[k] = outcome{fail: &rep, error: rep.String()}
					}
				}
				break
			}
		}
		s.spool(outs[first : i+1])
		for k := first; k <= i; k++ {
			outs[k].body = nil
		}
		first, held = i+1, 0
	}
	resp := injectResponse{FailedRecipients: []string{}, Errors: []string{}}
	for i, o := range outs {
		if o.fail == nil {
			resp.SuccessCount++
			continue
		}
		rc := j.recipients[i].email
		resp.FailCount++
		resp.FailedRecipients = append(resp.FailedRecipients, rc)
		resp.Errors = append(resp.Errors, rc+": "+o.error)
		s.opt.Log.Log(logs.Record{
			Type:              logs.Rejection,
			Sender:            j.sender,
			Recipient:         rc,
			Response:          logs.ResponseOf(*o.fail),
			PeerAddress:       &logs.PeerAddress{Addr: peer},
			Meta:              map[string]string{},
			ReceptionProtocol: "HTTP",
		})
	}
	writeJSON(w, http.StatusOK, resp)
}

// readBody reads the whole body within MaxRequestSize, before and after a gzip or deflate
// Content-Encoding (KumoMTA accepts both).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	max := s.opt.MaxRequestSize
	tooLarge := &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes ([http] max_request_size)", max)}
	if r.ContentLength > max {
		return nil, tooLarge
	}
	var rd io.Reader = http.MaxBytesReader(w, r.Body, max)
	readErr := "the connection failed while reading the body"
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, badRequest("the gzip request body is corrupt")
		}
		rd, readErr = zr, "the gzip request body is corrupt"
	case "deflate":
		zr, err := zlib.NewReader(rd)
		if err != nil {
			return nil, badRequest("the deflate request body is corrupt")
		}
		rd, readErr = zr, "the deflate request body is corrupt"
	default:
		return nil, &requestError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("Content-Encoding %q is not supported (gzip, deflate)", enc)}
	}
	b, err := io.ReadAll(io.LimitReader(rd, max+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), int64(len(b)) > max:
		return nil, tooLarge
	case err != nil:
		return nil, badRequest("%s", readErr)
	}
	return b, nil
}

// Signer adds the DKIM signatures plugins asked for (and config-only ones) to the final message,
// once, before it is spooled (a *dkim.Signer); an error is a *message.Error.
type Signer interface {
	Sign(sender string, reqs []abi.DKIMSign, data []byte) ([]byte, error)
}

// generate builds one recipient's message and runs the http_message_generated hook on it.
func (s *Server) generate(ctx context.Context, j *job, rc *job1, peer string, now time.Time) outcome {
	id := message.NewID(now)
	body, err := j.generate(rc, id, now, s.opt.Hostname, s.opt.MaxMessageSize)
	if err != nil {
		rep := replyContent(err.Error())
		return outcome{fail: &rep, error: err.Error()}
	}
	meta := map[string]string{"reception_protocol": "HTTP", "received_from": peer}
	if rc.extra != "" {
		meta["extra"] = rc.extra
	}
	var handled []string
	var sigs []abi.DKIMSign
	if p := s.opt.Policy; p != nil && p.Active() {
		pm := &plugin.Message{Sender: j.sender, Recipients: []string{rc.email}, Meta: meta, Data: body}
		o, err := p.MessageHook(ctx, abi.HookHTTPMessageGenerated, pm)
		if err != nil {
			s.opt.Diag.Error("http_message_generated hook failed", "recipient", rc.email, "err", err)
			rep := replyPolicy
			return outcome{fail: &rep, error: rep.String()}
		}
		if rj := o.Reject; rj != nil {
			return outcome{fail: rj, error: rj.String()}
		}
		meta, handled, body, sigs = pm.Meta, o.Handled, pm.Data, pm.DKIM
	}
	if sg := s.opt.Signer; sg != nil {
		if body, err = sg.Sign(j.sender, sigs, body); err != nil {
			s.opt.Diag.Error("dkim signing failed", "recipient", rc.email, "err", err)
			rep := message.AsError(err).Reply
			return outcome{fail: &rep, error: rep.String()}
		}
	}
	return outcome{
		body: body,
		msg: &message.Message{
			ID:        id,
			Sender:    j.sender,
			Recipient: rc.email,
			Meta:      meta,
			Policy:    handled,
			Queue:     route.QueueName(meta, rc.domain),
			Created:   now,
			Due:       now,
			Size:      len(body),
			Protocol:  "HTTP",
			PeerAddr:  peer,
		},
	}
}

// spool hands every generated message to the receiver, spoolWorkers at a time, and returns
// when all are on disk or failed.
func (s *Server) spool(outs []outcome) {
	sem := make(chan struct{}, spoolWorkers)
	var wg sync.WaitGroup
	for i := range outs {
		if outs[i].fail != nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(o *outcome) {
			defer func() { <-sem; wg.Done() }()
			if err := s.opt.Receiver.Submit([]*message.Message{o.msg}, o.body); err != nil {
				s.opt.Diag.Error("spool write failed", "id", o.msg.ID, "err", err)
				rep := replySpool
				o.fail, o.error = &rep, rep.String()
			}
		}(&outs[i])
	}
	wg.Wait()
}

// generate renders the message of one recipient. Per-recipient variables override the
// global ones; email, name and to_header are predefined, as in KumoMTA.
func (j *job) generate(rc *job1, id message.ID, now time.Time, hostname string, limit int64) ([]byte, error) {
	vars := make(map[string]any, len(j.globals)+len(rc.subs)+3)
	maps.Copy(vars, j.globals)
	vars["email"] = rc.email
	if rc.name != nil {
		vars["name"] = *rc.name
	}
	vars["to_header"] = formatAddress("To", rc.email, rc.name)
	maps.Copy(vars, rc.subs)
	if j.raw != nil {
		s, err := j.raw.render(vars, limit)
		if err != nil {
			return nil, fmt.Errorf("content: %w", err)
		}
		out := normalizeCRLF(s)
		if len(out) == 0 {
			return nil, errors.New("content: the message is empty")
		}
		if int64(len(out)) > limit {
			return nil, errTooLarge
		}
		return out, nil
	}
	b := j.b
	var rd rendered
	var err error
	opt := func(field string, t *template) *string {
		if t == nil || err != nil {
			return nil
		}
		v, e := t.render(vars, limit)
		if e != nil {
			err = fmt.Errorf("%s: %w", field, e)
			return nil
		}
		return &v
	}
	rd.subject = opt("content.subject", b.subject)
	rd.text = opt("content.text_body", b.text)
	rd.html = opt("content.html_body", b.html)
	rd.amp = opt("content.amp_html_body", b.amp)
	for _, h := range b.headers {
		v := opt("content.headers."+h.name, h.t)
		if err != nil {
			break
		}
		if strings.ContainsAny(*v, "\r\n") {
			return nil, fmt.Errorf("content.headers.%s: the rendered value contains a line break", h.name)
		}
		if unfoldable(h.name, *v) {
			return nil, fmt.Errorf("content.headers.%s: a word of the value is too long for a header line (998 characters, RFC 5322 §2.1.1)", h.name)
		}
		rd.headers = append(rd.headers, [2]string{h.name, *v})
	}
	if err != nil {
		return nil, err
	}
	if rd.subject != nil && strings.ContainsAny(*rd.subject, "\r\n") {
		return nil, errors.New("content.subject: the rendered value contains a line break")
	}
	if rd.subject != nil && unfoldable("Subject", *rd.subject) {
		return nil, errors.New("content.subject: a word of the value is too long for a header line (998 characters, RFC 5322 §2.1.1)")
	}
	top := slices.Clone(b.top)
	top.set("To", formatAddress("To", rc.email, rc.name))
	out, err := buildMessage(top, &rd, b.atts, string(id)+"@"+hostname, now)
	if err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	if int64(len(out)) > limit {
		return nil, errTooLarge
	}
	return out, nil
}

// unfoldable reports whether the field name: value cannot be written in lines of at most 998
// characters: an ASCII value is written as it is, folded only at its spaces. (A non-ASCII value
// becomes short encoded words, which always fold.)
func unfoldable(name, v string) bool {
	if encodeText(name, v) != v {
		return false
	}
	first := true
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' }) {
		n := len(w)
		if first {
			n += len(name) + 2
			first = false
		}
		if n > 998 {
			return true
		}
	}
	return false
}
