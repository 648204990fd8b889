// Package smtpserver receives mail over SMTP (go-smtp): relay control, limits, the replies of
// design.md §7, the trace header, and the hand-off to the spool. A 250 is sent only after the message
// is synced to disk; any failure before that answers 451 and the client keeps the message.
//
// go-smtp stays in charge of the protocol; what it gets wrong is corrected around it: the
// connection it reads (listener.go: inactivity timeout, dead sessions, replies held until the
// session waits for the client), the message bytes it hands on (body.go: bare CR and LF, the
// true end of data; data.go reads them itself on plain-text connections, in runs rather than
// go-smtp's byte at a time), and a go-smtp Server per connection (serveConn: message size limit
// exactly at the configured size).
//
// AUTH PLAIN and LOGIN (auth.go) run only over TLS, after STARTTLS or on a listen_tls listener
// (implicit TLS, RFC 8314 §3.3); an authenticated client may relay from any address.
package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/auth"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// Receiver takes accepted messages: it must make them durable before returning nil.
type Receiver interface {
	// SubmitBatches spools every batch (a body and the messages sharing it) atomically: all
	// of them or, on an error, none.
	SubmitBatches(batches []message.Batch) error
}

// Policy runs the message hooks of the configured plugins (a *plugin.Chain). Its types are
// host/message's, so reception does not depend on the WebAssembly runtime.
type Policy interface {
	MessageHook(ctx context.Context, hook string, m *message.Hook) (message.HookOutcome, error)
	Active() bool // any plugin configured (reception skips the hook machinery otherwise)
}

// Signer adds the DKIM signatures plugins asked for (and config-only ones) to the final message,
// once, before it is spooled (a *dkim.Signer); an error is a *message.Error.
type Signer interface {
	Sign(sender string, reqs []abi.DKIMSign, data []byte) ([]byte, error)
}

// Space says whether the spool has room for n more octets; a non-nil error is a *message.Error
// (452 4.3.1 insufficient system storage) whose Reply is what the client gets.
type Space interface {
	Room(n int64) error
}

// Options configure a Server.
type Options struct {
	Hostname       string
	Listen         []string
	RelayHosts     []netip.Prefix
	MaxMessageSize int64
	MaxRecipients  int
	MaxLineLength  int // command and message lines, CRLF included
	MaxConnections int
	// MaxConnectionsPerIP caps the connections of one client address (an IPv4 address or an
	// IPv6 /64), counted over all listeners together; 0 = no cap.
	MaxConnectionsPerIP int
	MaxErrors           int           // commands refused with 5xx per connection, then 421 and closed; 0 = no limit
	IdleTimeout         time.Duration // inactivity: extended by every read that makes progress
	DataTimeout         time.Duration // whole DATA phase, however steady the progress; 0 = none
	TLS                 *tls.Config   // nil: no STARTTLS, no listen_tls
	ListenTLS           []string      // implicit-TLS listeners (need TLS)
	Auth                Authenticator // nil: no AUTH
	Receiver            Receiver
	Policy              Policy // nil: no plugins
	Space               Space  // nil: no disk space check
	Signer              Signer // nil: no DKIM signing
	DSN                 bool   // offer DSN (RFC 3461), keep RET, ENVID, NOTIFY, ORCPT (message.DSN); off: 504
	Log                 *logs.Logger
	Diag                *slog.Logger
	Now                 func() time.Time
}

// Server is the SMTP listener.
type Server struct {
	opt       Options
	listeners []net.Listener
	wg        sync.WaitGroup

	connsMu sync.Mutex
	conns   map[*smtp.Server]struct{} // one go-smtp Server per live connection
	closed  bool

	throttle *auth.Throttle // AUTH failure delays per client network
	done     chan struct{}  // closed by Shutdown: ends AUTH failure delays
	doneOnce sync.Once
	// ctx ends with Shutdown too: AUTH checks waiting for their turn give up.
	ctx  context.Context
	stop context.CancelFunc

	dates atomic.Pointer[traceDate] // the last Received date (date)

	refused refusals // connections turned away at accept (Refused)

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
	ctx, stop := context.WithCancel(context.Background())
	return &Server{opt: opt, conns: map[*smtp.Server]struct{}{}, throttle: auth.NewThrottle(), done: make(chan struct{}), ctx: ctx, stop: stop}
}

// goSMTP configures the go-smtp Server of one connection.
//
// Why one per connection: go-smtp reads MaxMessageBytes for the SIZE advertisement, the MAIL
// SIZE= check and BDAT, and for its DATA reader, which refuses the data once that many octets
// arrived, before it reads the end marker: a message of exactly the limit would get 552. And a
// BDAT chunk over the limit go-smtp refuses itself, with a 552 the session never sees (its Data
// only learns that the transfer ended, as after RSET), so no Rejection record would say so. So
// between RCPT and the end of the transaction (a time when go-smtp reads the field only for
// DATA and BDAT) the connection's own Server has no limit, and bodyCheck enforces the exact one
// and answers it (see session.Rcpt and session.Reset); the advertisement and MAIL SIZE= use
// max_message_size.
func (s *Server) goSMTP() *smtp.Server {
	srv := smtp.NewServer(s)
	srv.Domain = s.opt.Hostname
	srv.MaxMessageBytes = s.opt.MaxMessageSize
	srv.MaxRecipients = s.opt.MaxRecipients
	srv.MaxLineLength = s.opt.MaxLineLength
	srv.ReadTimeout = s.opt.IdleTimeout
	srv.WriteTimeout = s.opt.IdleTimeout
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = s.opt.DSN
	srv.TLSConfig = s.opt.TLS
	// The session answers AUTH in plain text itself (538, see session.Auth), and offers it
	// only over TLS (session.AuthMechanisms).
	srv.AllowInsecureAuth = true
	srv.ErrorLog = slogAdapter{s.opt.Diag}
	return srv
}

// Listen binds every configured address, so a bad address fails start-up, not later.
func (s *Server) Listen() error {
	if len(s.opt.ListenTLS) > 0 && s.opt.TLS == nil {
		return errors.New("smtp listen_tls needs a TLS certificate")
	}
	var clients *clientCounts
	if s.opt.MaxConnectionsPerIP > 0 {
		clients = newClientCounts(s.opt.MaxConnectionsPerIP)
	}
	for i, a := range append(slices.Clone(s.opt.Listen), s.opt.ListenTLS...) {
		l, err := listenConfig.Listen(context.Background(), "tcp", a)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("smtp listen %s: %w", a, err)
		}
		s.listeners = append(s.listeners, &limitListener{Listener: l, max: s.opt.MaxConnections, hostname: s.opt.Hostname, idle: s.opt.IdleTimeout,
			clients: clients, implicitTLS: i >= len(s.opt.Listen), refused: &s.refused})
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

// Refused is how many connections were turned away at accept, by the key of the limit that
// refused them (smtp.max_connections, smtp.max_connections_per_ip).
func (s *Server) Refused() map[string]int64 {
	return map[string]int64{
		"max_connections":        s.refused.maxConnections.Load(),
		"max_connections_per_ip": s.refused.perIP.Load(),
	}
}

// Sessions is the number of SMTP connections being served now.
func (s *Server) Sessions() int {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return len(s.conns)
}

// Serve accepts connections on every listener in the background.
func (s *Server) Serve() {
	for _, l := range s.listeners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var pause time.Duration
			for {
				c, err := l.Accept()
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if err != nil {
					// EMFILE, ENFILE, ENOBUFS: a client can bring them about by opening
					// connections, and they pass. Retry after a pause, as net/http does;
					// ending the loop would leave the relay up but deaf.
					pause = min(max(2*pause, 5*time.Millisecond), time.Second)
					s.opt.Diag.Error("smtp accept failed, retrying", "addr", l.Addr().String(), "err", err, "pause", pause)
					select {
					case <-time.After(pause):
					case <-s.done:
						return
					}
					continue
				}
				pause = 0
				go s.serveConn(c.(*conn))
			}
		}()
	}
}

// serveConn runs one connection on its own go-smtp Server (see goSMTP).
func (s *Server) serveConn(c *conn) {
	srv := s.goSMTP()
	s.connsMu.Lock()
	if s.closed {
		s.connsMu.Unlock()
		c.Close()
		return
	}
	s.conns[srv] = struct{}{}
	s.connsMu.Unlock()
	var nc net.Conn = c
	if c.l.implicitTLS {
		srv.TLSConfig = nil // no STARTTLS inside TLS
		if nc = s.startTLS(c); nc == nil {
			c.Close()
			s.connsMu.Lock()
			delete(s.conns, srv)
			s.connsMu.Unlock()
			return
		}
	}
	_ = srv.Serve(&oneConn{c: c, nc: nc}) // returns once the connection is closed
	s.connsMu.Lock()
	delete(s.conns, srv)
	s.connsMu.Unlock()
}

// startTLS runs the TLS handshake of a listen_tls connection (RFC 8314 §3.3: TLS first, then
// SMTP); nil when it failed. The handshake is bounded by idle_timeout like any read.
func (s *Server) startTLS(c *conn) net.Conn {
	c.greeted, c.bulk = true, true // TLS first: the conn carries only ciphertext
	if s.opt.IdleTimeout > 0 {
		// Reads get their deadline in conn.Read; the handshake's writes need one too.
		_ = c.SetWriteDeadline(time.Now().Add(s.opt.IdleTimeout))
	}
	tc := tls.Server(c, s.opt.TLS)
	if err := tc.Handshake(); err != nil {
		s.opt.Diag.Debug("smtp tls handshake failed", "peer", c.RemoteAddr().String(), "err", err)
		return nil
	}
	return &implicitTLS{Conn: tc}
}

// Shutdown stops accepting, lets transactions in DATA finish (until ctx ends), then closes
// every connection. A client cut off before its 250 keeps its message and retries.
func (s *Server) Shutdown(ctx context.Context) {
	s.drainMu.Lock()
	s.draining = true
	s.drainMu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
	s.stop()
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.connsMu.Lock()
	s.closed = true
	// All at once: closing one may take up to closeFlushTimeout (its last replies to a client
	// that does not read them), and one after the other a few such clients would hold
	// Shutdown for as many times that.
	var closing sync.WaitGroup
	for srv := range s.conns {
		closing.Go(func() { _ = srv.Close() })
	}
	s.connsMu.Unlock()
	closing.Wait()
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
	// authnID is the user the client authenticated as (AUTH); such a client may relay.
	authnID string

	utf8    bool // MAIL carried SMTPUTF8
	from    string
	mailed  bool // a MAIL was accepted and the transaction is open (from may be "", the null sender)
	errors  int  // commands refused with 5xx on this connection (reject), against MaxErrors
	rcpts   []string
	domains []string // of rcpts, parsed once at RCPT time
	// DSN parameters (RFC 3461): RET and ENVID of MAIL, NOTIFY and ORCPT of each RCPT
	// (parallel to rcpts; nil where the RCPT had none).
	ret, envID string
	rcptDSN    []*message.DSN

	// The BDAT content being read by Data in go-smtp's goroutine, and closed when that Data
	// returns (see waitBDAT).
	bdatMu   sync.Mutex
	bdat     *io.PipeReader
	bdatDone chan struct{}
}

// Replies (design.md §7). Texts are fixed: nothing internal reaches a client.
var (
	errRelayDenied  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relaying denied"}
	errSpool        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure storing the message, try again later"}
	errRead         = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "error reading message data"}
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down, try again later"}
	errPolicy       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary policy failure, try again later"}
	// RFC 5321 §2.3.8: lines end with CRLF and nothing else; a lone CR or LF is where
	// receivers disagree about line ends (SMTP smuggling), so such a message goes nowhere.
	errBareEOL = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "message refused: lines must end with CRLF (bare CR or LF found)"}
	// RFC 1870: the size the client declared, or sent, is over the advertised SIZE.
	errTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "message size exceeds fixed maximum message size"}
	// RFC 6531 §3.5: non-ASCII addresses only in a transaction that asked for SMTPUTF8.
	errNeedUTF8      = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "non-ASCII address requires the SMTPUTF8 parameter on MAIL"}
	errNoSpace       = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "insufficient system storage"}
	errTooManyErrors = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many errors, closing connection"}
	// RFC 5321 §4.1.4, 503 "bad sequence of commands" (Postfix: "nested MAIL command").
	errNestedMail = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "nested MAIL command: RSET first"}
)

// errLineTooLong is the one reply to a message line over max_line_length (RFC 5321
// §4.5.3.1.6); after it the connection closes, because go-smtp's line limit, once tripped,
// fails every later read.
func (ss *session) errLineTooLong() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: fmt.Sprintf("message line longer than %d octets, closing connection", ss.s.opt.MaxLineLength)}
}

func (ss *session) errTimeout() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: ss.s.opt.Hostname + " timeout, closing connection"}
}

func (ss *session) Reset() {
	ss.waitBDAT()
	// go-smtp resets the session for a second EHLO too, after taking its name: the trace
	// header names the latest one (RFC 5321 §4.4, §4.1.4).
	ss.helo = ss.conn.Hostname()
	ss.from, ss.utf8, ss.mailed = "", false, false
	ss.rcpts, ss.domains = ss.rcpts[:0], ss.domains[:0]
	ss.ret, ss.envID, ss.rcptDSN = "", "", ss.rcptDSN[:0]
	// Back to the advertised limit once no transaction is open (see Server.goSMTP).
	ss.conn.Server().MaxMessageBytes = ss.s.opt.MaxMessageSize
}

// waitBDAT returns once the BDAT transfer that go-smtp has just ended (its pipe is closed
// before Reset) is over: Data has returned, and go-smtp's goroutine has sent Data's result.
// That goroutine sends to the connection's result channel of the moment, after Data returns;
// when a transfer was cut short (RSET, EHLO, a chunk over the size limit) and a pipelined next
// transaction's BDAT had already made a new channel, the late result landed there: the next
// message got the aborted one's reply (451 after it was spooled, so the client sent it again),
// its own goroutine blocked for ever, and the aborted Data read the session while Reset and the
// next MAIL wrote it. go-smtp closes the pipe's reader right after that send.
func (ss *session) waitBDAT() {
	ss.bdatMu.Lock()
	r, done := ss.bdat, ss.bdatDone
	ss.bdat, ss.bdatDone = nil, nil
	ss.bdatMu.Unlock()
	if r == nil {
		return
	}
	<-done
	// The writer is closed, so Read does not block: it answers the writer's error until the
	// reader is closed too, then io.ErrClosedPipe. A bounded wait: go-smtp's two statements.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); runtime.Gosched() {
		if _, err := r.Read(nil); err == io.ErrClosedPipe {
			return
		}
	}
}

// raw is the connection under go-smtp's (nil only for a foreign net.Conn in tests).
func (ss *session) raw() *conn { return netConn(ss.conn.Conn()) }

// plain reports whether go-smtp talks to c itself (no TLS), which then hands it one line at a
// time; under TLS c only carries ciphertext, so it hands on whatever it has (bulk).
func (ss *session) plain(c *conn) bool {
	if ss.conn.Conn() == net.Conn(c) {
		return true
	}
	c.bulk = true
	return false
}

// dead reports whether a read on the connection failed: the command being handled may be a
// line cut short and must not act.
func (ss *session) dead() bool {
	c := ss.raw()
	return c != nil && c.dead()
}

// abort writes e as the session's last reply itself and closes the connection: for the cases
// where go-smtp would otherwise wait for data that never comes, or follow the reply with one
// of its own.
func (ss *session) abort(e *smtp.SMTPError) error {
	top := ss.conn.Conn()
	if c := ss.raw(); c != nil && !c.shut.Load() {
		_ = top.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = fmt.Fprintf(top, "%d %d.%d.%d %s\r\n", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message)
		c.shut.Store(true)
	}
	_ = top.Close()
	return e
}

// spaceError is the reply for a failed Room or Submit: the *message.Error's own reply, else
// fallback.
func spaceError(err error, fallback *smtp.SMTPError) *smtp.SMTPError {
	var me *message.Error
	if errors.As(err, &me) {
		return &smtp.SMTPError{Code: me.Code, EnhancedCode: enhancedCode(me.Enhanced), Message: me.Text}
	}
	return fallback
}

func nonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.dead() {
		return ss.abort(ss.errTimeout())
	}
	if c := ss.raw(); c != nil {
		ss.plain(c) // after STARTTLS: bulk from now on
	}
	if ss.mailed {
		// go-smtp would start over without dropping the recipients already given. RFC 5321
		// §4.1.4: a transaction is MAIL, RCPT..., DATA; RSET or EHLO ends one early.
		return ss.reject(errNestedMail, from, "")
	}
	if ss.s.opt.MaxMessageSize > 0 && opts.Size > ss.s.opt.MaxMessageSize {
		// go-smtp checks SIZE= too, but against the Server's field, which is one more during
		// a transaction (see Server.goSMTP).
		return ss.reject(errTooBig, from, "")
	}
	if !opts.UTF8 && nonASCII(from) {
		return ss.reject(errNeedUTF8, from, "")
	}
	if sp := ss.s.opt.Space; sp != nil {
		if err := sp.Room(opts.Size); err != nil {
			ss.s.opt.Diag.Warn("no room for a new message", "err", err)
			return ss.reject(spaceError(err, errNoSpace), from, "")
		}
	}
	if from != "" { // the null reverse-path <> is valid (RFC 5321 §4.5.5)
		if _, _, err := route.ParseMailbox(from); err != nil {
			return ss.reject(&smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
				Message: "invalid sender address syntax: " + reason(err)}, from, "")
		}
	}
	ss.from, ss.utf8, ss.mailed = from, opts.UTF8, true
	ss.ret, ss.envID = string(opts.Return), opts.EnvelopeID
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if ss.dead() {
		return ss.abort(ss.errTimeout())
	}
	if !ss.utf8 && nonASCII(to) {
		return ss.reject(errNeedUTF8, ss.from, to)
	}
	_, domain, err := route.ParseMailbox(to)
	if err != nil {
		return ss.reject(&smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
			Message: "invalid recipient address syntax: " + reason(err)}, ss.from, to)
	}
	if !ss.relay && ss.authnID == "" {
		return ss.reject(errRelayDenied, ss.from, to)
	}
	ss.rcpts = append(ss.rcpts, to)
	ss.domains = append(ss.domains, domain)
	ss.rcptDSN = append(ss.rcptDSN, rcptDSN(opts))
	ss.conn.Server().MaxMessageBytes = 0 // bodyCheck enforces max_message_size (see Server.goSMTP)
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
	if ss.dead() {
		return ss.abort(ss.errTimeout())
	}
	pr, chunked := r.(*io.PipeReader) // BDAT content comes through a pipe, DATA through go-smtp's reader
	if chunked {
		done := make(chan struct{})
		ss.bdatMu.Lock()
		ss.bdat, ss.bdatDone = pr, done
		ss.bdatMu.Unlock()
		defer close(done)
	}
	raw := ss.raw()
	if raw != nil && chunked {
		// data_timeout bounds the whole transfer, as it bounds DATA: Data runs from the first
		// chunk to the last (or until the transfer is cut short).
		raw.startTransfer(ss.s.opt.DataTimeout)
		defer raw.endTransfer()
	}
	if raw != nil && !chunked {
		raw.startPhase(ss.s.opt.DataTimeout)
		if ss.plain(raw) {
			// go-smtp's buffer is empty (conn.Read): the content is read from the conn.
			pd := newPlainData(raw, ss.s.opt.MaxLineLength)
			r = pd
			defer pd.finish()
		} else {
			raw.handBack(true)
			defer raw.handBack(false)
		}
	}
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
	chk := bodyCheck{chunked: chunked, max: ss.s.opt.MaxMessageSize}
	if chunked {
		chk.maxLine = ss.s.opt.MaxLineLength // go-smtp lifts its line limit for BDAT chunks
	}
	body, err := readBody(r, &chk, []byte(trace))
	rcpts := strings.Join(ss.rcpts, ",")
	var ne net.Error
	switch {
	case chk.ended():
		// The true end of the data, which go-smtp missed (it implies a bare CR): go-smtp
		// would wait for more, so the reply is ours, and the connection ends with it.
		ss.reject(errBareEOL, ss.from, rcpts)
		return ss.abort(errBareEOL)
	case chk.tooBig() || err == smtp.ErrDataTooLarge:
		return ss.reject(errTooBig, ss.from, rcpts)
	case errors.Is(err, smtp.ErrTooLongLine):
		e := ss.errLineTooLong()
		ss.reject(e, ss.from, rcpts)
		return ss.abort(e)
	case errors.As(err, &ne) && ne.Timeout() && !chunked:
		// idle_timeout or data_timeout: go-smtp would answer 451 and then 421.
		e := ss.errTimeout()
		ss.reject(e, ss.from, rcpts)
		return ss.abort(e)
	case chk.longLine:
		e := ss.errLineTooLong()
		e.Message = strings.TrimSuffix(e.Message, ", closing connection")
		return ss.reject(e, ss.from, rcpts)
	case chk.bare:
		return ss.reject(errBareEOL, ss.from, rcpts)
	case errors.Is(err, smtp.ErrDataReset):
		// go-smtp ended the BDAT transfer: the client sent RSET, EHLO or STARTTLS, or closed
		// the connection. It refused nothing, and nothing this returns reaches the client, so
		// no Rejection record claims a reply the client never got.
		ss.s.opt.Diag.Debug("bdat transfer abandoned", "peer", ss.peer.String(), "sender", ss.from)
		return err
	case err != nil:
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return ss.reject(se, ss.from, rcpts)
		}
		return ss.reject(errRead, ss.from, rcpts)
	}
	var meta map[string]string
	if ss.authnID != "" {
		meta = map[string]string{abi.MetaAuthnID: ss.authnID} // design.md §12
	}
	var tlsInfo *message.TLS
	if cs, ok := ss.tlsState(); ok {
		tlsInfo = tlsOf(cs)
	}
	batches := make([]message.Batch, 0, 1)
	var room int64
	for _, g := range ss.groups() {
		b, e := ss.batch(g, ids, meta, body, now, tlsInfo)
		if e != nil {
			// One batch refused is the whole transaction refused, with that batch's reply
			// (KumoMTA's BatchByDomain does the same): SMTP has one reply to DATA, and
			// nothing was spooled yet.
			return ss.reject(e, ss.from, rcpts)
		}
		if len(batches) == 0 || !sameBody(batches[len(batches)-1].Body, b.Body) {
			room += int64(len(b.Body)) // equal bodies are stored once (spool.PutBatches)
		}
		batches = append(batches, b)
	}
	if sp := ss.s.opt.Space; sp != nil {
		if err := sp.Room(room); err != nil {
			ss.s.opt.Diag.Warn("no room for the message", "err", err)
			return ss.reject(spaceError(err, errNoSpace), ss.from, rcpts)
		}
	}
	// One Submit for every batch: the spool writes them in one group-commit request, so the
	// 250 below covers all of them, and a failure leaves none of them spooled.
	if err := ss.s.opt.Receiver.SubmitBatches(batches); err != nil {
		ss.s.opt.Diag.Error("spool write failed", "err", err)
		return ss.reject(spaceError(err, errSpool), ss.from, rcpts)
	}
	var ok strings.Builder
	ok.WriteString("OK queued as")
	for _, id := range ids {
		ok.WriteByte(' ')
		ok.WriteString(string(id))
	}
	// go-smtp sends whatever code a Data error carries; a 250 "error" is how a backend chooses
	// its own success text, which must carry the spool ids (design.md §7).
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: ok.String()}
}

// groups splits the transaction's recipients (as indexes into ss.rcpts) into the batches
// that go through the message hook separately: one per recipient domain, compared without
// regard to case (RFC 5321 §2.4), in order of first appearance. Each batch gets its own meta,
// queue and body, so a plugin that routes by its first recipient routes every recipient by its
// own domain (KumoMTA's BatchByDomain). Without plugins every recipient would get the same
// meta and body, so the transaction stays one batch.
func (ss *session) groups() [][]int {
	if p := ss.s.opt.Policy; p == nil || !p.Active() {
		all := make([]int, len(ss.rcpts))
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	var out [][]int
	index := map[string]int{}
	for i, d := range ss.domains {
		d = strings.ToLower(d)
		g, ok := index[d]
		if !ok {
			g = len(out)
			index[d] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], i)
	}
	return out
}

// batch runs the message hook and DKIM signing for the recipients g of the transaction and
// builds their messages. A non-nil reply refuses the whole transaction.
func (ss *session) batch(g []int, ids []message.ID, meta map[string]string, body []byte, now time.Time, tlsInfo *message.TLS) (message.Batch, *smtp.SMTPError) {
	rcpts := make([]string, len(g))
	for j, i := range g {
		rcpts[j] = ss.rcpts[i]
	}
	var handled []string
	var sigs []abi.DKIMSign
	if p := ss.s.opt.Policy; p != nil && p.Active() {
		pm := &message.Hook{Sender: ss.from, Recipients: rcpts, Meta: map[string]string{}, Data: body, Client: ss.peer.String()}
		maps.Copy(pm.Meta, meta)
		o, err := p.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, pm)
		if err != nil {
			// The client keeps the message and retries; nothing is lost (design.md §7).
			ss.s.opt.Diag.Error("message hook failed", "err", err)
			return message.Batch{}, errPolicy
		}
		if r := o.Reject; r != nil {
			return message.Batch{}, &smtp.SMTPError{Code: r.Code, EnhancedCode: enhancedCode(r.Enhanced), Message: r.Text}
		}
		meta, handled, body, sigs = pm.Meta, o.Handled, pm.Data, pm.DKIM
	}
	if sg := ss.s.opt.Signer; sg != nil {
		var err error
		if body, err = sg.Sign(ss.from, sigs, body); err != nil {
			ss.s.opt.Diag.Error("dkim signing failed", "err", err)
			return message.Batch{}, spaceError(err, errPolicy)
		}
	}
	msgs := make([]*message.Message, len(g))
	for j, i := range g {
		msgs[j] = &message.Message{
			ID:        ids[i],
			Sender:    ss.from,
			Recipient: ss.rcpts[i],
			Meta:      meta,
			Policy:    handled,
			Queue:     route.QueueName(meta, ss.domains[i]),
			Created:   now,
			Due:       now,
			Size:      len(body),
			Protocol:  "ESMTP",
			PeerName:  ss.helo,
			PeerAddr:  ss.peer.String(),
			AuthnID:   ss.authnID,
			TLS:       tlsInfo,
			DSN:       ss.dsn(i),
		}
	}
	return message.Batch{Msgs: msgs, Body: body}, nil
}

// sameBody reports whether a and b are the same slice (a body no hook or signer changed).
func sameBody(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// rcptDSN keeps a RCPT's NOTIFY and ORCPT; nil when it had neither.
func rcptDSN(opts *smtp.RcptOptions) *message.DSN {
	if opts == nil || (len(opts.Notify) == 0 && opts.OriginalRecipient == "") {
		return nil
	}
	d := &message.DSN{ORcptType: string(opts.OriginalRecipientType), ORcpt: opts.OriginalRecipient}
	for _, n := range opts.Notify {
		d.Notify = append(d.Notify, string(n))
	}
	return d
}

// dsn is recipient i's DSN parameters: the transaction's RET and ENVID with the RCPT's NOTIFY
// and ORCPT; nil when the client gave none, so such records keep their old shape.
func (ss *session) dsn(i int) *message.DSN {
	var d message.DSN
	if r := ss.rcptDSN[i]; r != nil {
		d = *r
	}
	d.Ret, d.EnvID = ss.ret, ss.envID
	if d.Ret == "" && d.EnvID == "" && d.Notify == nil && d.ORcpt == "" {
		return nil
	}
	return &d
}

// maxTraceHelo is the most of the HELO name the trace header keeps.
const maxTraceHelo = 255

// received builds the RFC 5321 §4.4 trace header. Every line stays far below 998 octets: the
// HELO name is capped, the recipient is at most 256 octets (route.ParseMailbox), the hostname a
// domain name.
func (ss *session) received(id message.ID, now time.Time) string {
	// RFC 3848: S for TLS, A for an authenticated client.
	proto := "ESMTP"
	if _, isTLS := ss.tlsState(); isTLS {
		proto += "S"
	}
	if ss.authnID != "" {
		proto += "A"
	}
	helo := ss.helo
	if helo == "" {
		helo = "unknown"
	}
	if len(helo) > maxTraceHelo {
		// RFC 5322 §2.1.1: no header line over 998 octets. A real name is at most 255 octets
		// (RFC 1035); anything longer is cut, at a UTF-8 boundary.
		helo = strings.ToValidUTF8(helo[:maxTraceHelo], "") + "..."
	}
	// Built with appends: fmt took a few percent of reception's CPU here.
	var b strings.Builder
	b.Grow(192 + len(helo))
	for _, part := range []string{"Received: from ", sanitize(helo), " ([", ss.peer.String(), "])\r\n\tby ",
		ss.s.opt.Hostname, " (wasmta) with ", proto, " id ", string(id)} {
		b.WriteString(part)
	}
	if len(ss.rcpts) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(sanitize(ss.rcpts[0]))
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(ss.s.date(now))
	b.WriteString("\r\n")
	return b.String()
}

// traceDate is a formatted Received date and the second and zone offset it is for.
type traceDate struct {
	sec    int64
	offset int
	text   string
}

// date is now in RFC 5322 form (time.RFC1123Z), formatted once per second: the messages of a
// busy second share it, and formatting was most of the cost of the trace header.
func (s *Server) date(now time.Time) string {
	_, off := now.Zone()
	sec := now.Unix()
	if d := s.dates.Load(); d != nil && d.sec == sec && d.offset == off {
		return d.text
	}
	d := &traceDate{sec: sec, offset: off, text: now.Format(time.RFC1123Z)}
	s.dates.Store(d)
	return d.text
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
	if e.Code < 500 {
		return e // 4xx is the relay's trouble (a plugin, the spool, the disk), not the client's
	}
	ss.errors++
	if m := ss.s.opt.MaxErrors; m > 0 && ss.errors >= m {
		// Postfix's smtpd_hard_error_limit: the refusal that reaches the limit is recorded as
		// it was, and the client gets 421 instead and the connection ends.
		return ss.abort(errTooManyErrors)
	}
	return e
}

func enhancedCode(s string) smtp.EnhancedCode {
	class, subject, detail, ok := message.ParseEnhanced(s)
	if !ok {
		return smtp.EnhancedCodeNotSet
	}
	return smtp.EnhancedCode{class, subject, detail}
}

func enhanced(c smtp.EnhancedCode) string {
	if c == smtp.EnhancedCodeNotSet || c == smtp.NoEnhancedCode {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

// readBody reads the message from r after the trace header in body, following it with chk.
// Once chk finds the message unacceptable it keeps reading (DATA must be read to its end for
// the reply to be heard) but stops storing; BDAT stops at once (go-smtp discards the chunk).
func readBody(r io.Reader, chk *bodyCheck, body []byte) ([]byte, error) {
	for {
		if cap(body)-len(body) < 4096 {
			body = slices.Grow(body, max(8192, len(body)/2))
		}
		n, err := r.Read(body[len(body):cap(body)])
		if err == errYield {
			err = nil
		}
		k := chk.scan(body[len(body) : len(body)+n])
		if !chk.bare && !chk.tooBig() && !chk.longLine {
			body = body[:len(body)+k]
		} else if chk.chunked || chk.tooBig() {
			return body, nil
		}
		if chk.ended() {
			return body, nil
		}
		if err == io.EOF {
			chk.finish()
			return body, nil
		}
		if err != nil {
			return body, err
		}
	}
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.l.Debug("smtp: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Println(v ...any)               { a.l.Debug("smtp: " + fmt.Sprint(v...)) }
