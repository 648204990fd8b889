// Package smtpserver receives mail over SMTP (go-smtp): relay control, limits, the replies of
// SPEC §7, the trace header, and the hand-off to the spool. A 250 is sent only after the message
// is synced to disk; any failure before that answers 451 and the client keeps the message.
package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/route"
)

// Receiver takes accepted messages: it must make them durable before returning nil.
type Receiver interface {
	Submit(msgs []*message.Message, body []byte) error
}

// Policy runs the message hooks of the configured plugins (a *plugin.Chain).
type Policy interface {
	MessageHook(ctx context.Context, hook string, m *plugin.Message) (plugin.Outcome, error)
	Active() bool // any plugin configured (reception skips the hook machinery otherwise)
}

// Options configure a Server.
type Options struct {
	Hostname       string
	Listen         []string
	RelayHosts     []netip.Prefix
	MaxMessageSize int64
	MaxRecipients  int
	MaxLineLength  int
	MaxConnections int
	IdleTimeout    time.Duration
	TLS            *tls.Config // nil: no STARTTLS
	Receiver       Receiver
	Policy         Policy // nil: no plugins
	Log            *logs.Logger
	Diag           *slog.Logger
	Now            func() time.Time
}

// Server is the SMTP listener.
type Server struct {
	opt       Options
	srv       *smtp.Server
	listeners []net.Listener
	wg        sync.WaitGroup

	drainMu  sync.Mutex
	draining bool           // Shutdown began: no new DATA is taken in
	active   sync.WaitGroup // transactions inside DATA processing (Add only under drainMu)
}

// New builds a server; Listen binds, Serve accepts.
func New(opt Options) *Server {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Diag == nil {
		opt.Diag = slog.Default()
	}
	s := &Server{opt: opt}
	srv := smtp.NewServer(s)
	srv.Domain = opt.Hostname
	srv.MaxMessageBytes = opt.MaxMessageSize
	srv.MaxRecipients = opt.MaxRecipients
	srv.MaxLineLength = opt.MaxLineLength
	srv.ReadTimeout = opt.IdleTimeout
	srv.WriteTimeout = opt.IdleTimeout
	srv.EnableSMTPUTF8 = true
	srv.TLSConfig = opt.TLS
	srv.ErrorLog = slogAdapter{opt.Diag}
	s.srv = srv
	return s
}

// Listen binds every configured address, so a bad address fails start-up, not later.
func (s *Server) Listen() error {
	for _, a := range s.opt.Listen {
		l, err := net.Listen("tcp", a)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("smtp listen %s: %w", a, err)
		}
		s.listeners = append(s.listeners, &limitListener{Listener: l, max: s.opt.MaxConnections, hostname: s.opt.Hostname})
	}
	return nil
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		l.Close()
	}
}

// Addrs are the bound addresses.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.Addr()
	}
	return out
}

// Serve accepts connections on every listener in the background.
func (s *Server) Serve() {
	for _, l := range s.listeners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				s.opt.Diag.Error("smtp serve", "addr", l.Addr().String(), "err", err)
			}
		}()
	}
}

// Shutdown stops accepting, lets transactions in DATA finish (until ctx ends), then closes
// every connection. A client cut off before its 250 keeps its message and retries.
func (s *Server) Shutdown(ctx context.Context) {
	s.drainMu.Lock()
	s.draining = true
	s.drainMu.Unlock()
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	_ = s.srv.Close()
	s.wg.Wait()
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{s: s, conn: c, helo: c.Hostname()}
	if ap, err := netip.ParseAddrPort(c.Conn().RemoteAddr().String()); err == nil {
		sess.peer = ap.Addr().Unmap()
	}
	for _, p := range s.opt.RelayHosts {
		if p.Contains(sess.peer) {
			sess.relay = true
			break
		}
	}
	return sess, nil
}

type session struct {
	s     *Server
	conn  *smtp.Conn
	helo  string
	peer  netip.Addr
	relay bool

	from    string
	rcpts   []string
	domains []string // of rcpts, parsed once at RCPT time
}

// Replies (SPEC §7). Texts are fixed: nothing internal reaches a client.
var (
	errRelayDenied  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relaying denied"}
	errSpool        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure storing the message, try again later"}
	errRead         = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "error reading message data"}
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down, try again later"}
	errPolicy       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary policy failure, try again later"}
)

func (ss *session) Reset() {
	ss.from = ""
	ss.rcpts, ss.domains = ss.rcpts[:0], ss.domains[:0]
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if from != "" { // the null reverse-path <> is valid (RFC 5321 §4.5.5)
		if _, _, err := route.ParseMailbox(from); err != nil {
			return ss.reject(&smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
				Message: "invalid sender address syntax: " + reason(err)}, from, "")
		}
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	_, domain, err := route.ParseMailbox(to)
	if err != nil {
		return ss.reject(&smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
			Message: "invalid recipient address syntax: " + reason(err)}, ss.from, to)
	}
	if !ss.relay {
		return ss.reject(errRelayDenied, ss.from, to)
	}
	ss.rcpts = append(ss.rcpts, to)
	ss.domains = append(ss.domains, domain)
	return nil
}

// reason is the safe text of a parser error.
func reason(err error) string {
	var e *message.Error
	if errors.As(err, &e) {
		return e.Text
	}
	return "malformed address"
}

func (ss *session) Data(r io.Reader) error {
	ss.s.drainMu.Lock()
	if ss.s.draining {
		ss.s.drainMu.Unlock()
		return ss.reject(errShuttingDown, ss.from, strings.Join(ss.rcpts, ","))
	}
	ss.s.active.Add(1)
	ss.s.drainMu.Unlock()
	defer ss.s.active.Done()
	now := ss.s.opt.Now()
	ids := make([]message.ID, len(ss.rcpts))
	for i := range ids {
		ids[i] = message.NewID(now)
	}
	trace := ss.received(ids[0], now)
	body := make([]byte, len(trace), len(trace)+8192)
	copy(body, trace)
	buf := bytesWriter{body}
	if _, err := io.Copy(&buf, r); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return ss.reject(se, ss.from, strings.Join(ss.rcpts, ","))
		}
		return ss.reject(errRead, ss.from, strings.Join(ss.rcpts, ","))
	}
	body = buf.b
	var meta map[string]string
	var handled []string
	if p := ss.s.opt.Policy; p != nil && p.Active() {
		pm := &plugin.Message{Sender: ss.from, Recipients: ss.rcpts, Meta: map[string]string{}, Data: body}
		o, err := p.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, pm)
		if err != nil {
			// The client keeps the message and retries; nothing is lost (SPEC §7).
			ss.s.opt.Diag.Error("message hook failed", "err", err)
			return ss.reject(errPolicy, ss.from, strings.Join(ss.rcpts, ","))
		}
		if r := o.Reject; r != nil {
			return ss.reject(&smtp.SMTPError{Code: r.Code, EnhancedCode: enhancedCode(r.Enhanced), Message: r.Text}, ss.from, strings.Join(ss.rcpts, ","))
		}
		meta, handled, body = pm.Meta, o.Handled, pm.Data
	}
	msgs := make([]*message.Message, len(ss.rcpts))
	for i, rcpt := range ss.rcpts {
		msgs[i] = &message.Message{
			ID:        ids[i],
			Sender:    ss.from,
			Recipient: rcpt,
			Meta:      meta,
			Policy:    handled,
			Queue:     route.QueueName(meta, ss.domains[i]),
			Created:   now,
			Due:       now,
			Size:      len(body),
			Protocol:  "ESMTP",
			PeerName:  ss.helo,
			PeerAddr:  ss.peer.String(),
		}
	}
	if err := ss.s.opt.Receiver.Submit(msgs, body); err != nil {
		ss.s.opt.Diag.Error("spool write failed", "err", err)
		return ss.reject(errSpool, ss.from, strings.Join(ss.rcpts, ","))
	}
	var ok strings.Builder
	ok.WriteString("OK queued as")
	for _, id := range ids {
		ok.WriteByte(' ')
		ok.WriteString(string(id))
	}
	// go-smtp sends whatever code a Data error carries; a 250 "error" is how a backend chooses
	// its own success text, which must carry the spool ids (SPEC §7).
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: ok.String()}
}

// received builds the RFC 5321 §4.4 trace header.
func (ss *session) received(id message.ID, now time.Time) string {
	proto := "ESMTP"
	if _, isTLS := ss.conn.TLSConnectionState(); isTLS {
		proto = "ESMTPS"
	}
	helo := ss.helo
	if helo == "" {
		helo = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (wasmta) with %s id %s", sanitize(helo), ss.peer, ss.s.opt.Hostname, proto, id)
	if len(ss.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sanitize(ss.rcpts[0]))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", now.Format(time.RFC1123Z))
	return b.String()
}

// sanitize keeps client-supplied text from breaking the header it is placed in.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' {
			return '_'
		}
		return r
	}, s)
}

// reject logs a Rejection record and returns the reply.
func (ss *session) reject(e *smtp.SMTPError, from, to string) error {
	ss.s.opt.Log.Log(logs.Record{
		Type:              logs.Rejection,
		Sender:            from,
		Recipient:         to,
		Response:          logs.ResponseOf(message.Reply{Code: e.Code, Enhanced: enhanced(e.EnhancedCode), Text: e.Message}),
		PeerAddress:       &logs.PeerAddress{Name: ss.helo, Addr: ss.peer.String()},
		Meta:              map[string]string{},
		ReceptionProtocol: "ESMTP",
	})
	return e
}

func enhancedCode(s string) smtp.EnhancedCode {
	var c smtp.EnhancedCode
	if _, err := fmt.Sscanf(s, "%d.%d.%d", &c[0], &c[1], &c[2]); err != nil {
		return smtp.EnhancedCodeNotSet
	}
	return c
}

func enhanced(c smtp.EnhancedCode) string {
	if c == smtp.EnhancedCodeNotSet || c == smtp.NoEnhancedCode {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

type bytesWriter struct{ b []byte }

func (w *bytesWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.l.Debug("smtp: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Println(v ...any)               { a.l.Debug("smtp: " + fmt.Sprint(v...)) }
