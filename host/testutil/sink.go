package testutil

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// remoteIP is the IP of a connection's peer.
func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// Mode selects how a Sink treats incoming mail.
type Mode int

const (
	// Accept accepts every command and records every message.
	Accept Mode = iota
	// TempFail answers the command named by Behavior.At with a 4xx reply.
	TempFail
	// PermFail answers the command named by Behavior.At with a 5xx reply.
	PermFail
	// Hang accepts the TCP connection and then never writes anything (not
	// even the banner) until the sink is closed.
	Hang
	// FloodLine answers with a reply code followed by an endless line (no
	// line end, ever), as a hostile server would, until the client hangs
	// up: in place of the greeting when Behavior.At is empty, else in place
	// of the reply to the command named by At.
	FloodLine
	// FloodLines answers like FloodLine, but with endless continuation
	// lines ("220-...", "250-..."), each of normal length.
	FloodLines
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case Accept:
		return "Accept"
	case TempFail:
		return "TempFail"
	case PermFail:
		return "PermFail"
	case Hang:
		return "Hang"
	case FloodLine:
		return "FloodLine"
	case FloodLines:
		return "FloodLines"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Behavior tells a Sink how to misbehave. The zero value accepts everything.
type Behavior struct {
	Mode Mode
	// At names the command that gets the failure: "MAIL", "RCPT" or "DATA"
	// (case-insensitive; default "RCPT", except for the Flood modes, where
	// empty means the greeting). A DATA failure is the reply to the end of
	// the message, after the sink has read it. Ignored for Accept and Hang.
	At string
	// Code is the reply code; default 451 for TempFail, 550 for PermFail.
	// The enhanced status code is Code/100 followed by ".0.0".
	Code int
	// Text is the reply text; a default naming the sink is used when empty.
	Text string
	// Times is how many failures (or, for Hang and the Flood modes, hostile
	// connections) happen before the sink goes back to accepting; 0 means
	// forever.
	Times int
	// Without names EHLO keywords ("8BITMIME", "SMTPUTF8", "PIPELINING",
	// "CHUNKING", case-insensitive) the sink stops offering on connections accepted
	// afterwards, whatever the mode. The sink offers SMTPUTF8 by default.
	Without []string
}

// Received is a message accepted by a Sink (its DATA got a 250 reply).
type Received struct {
	From string   // reverse path from MAIL FROM, without angle brackets
	To   []string // accepted recipients, in RCPT order
	Data []byte   // message as transmitted, dot-unstuffed, CRLF line ends
	Helo string   // argument of the last HELO/EHLO
	TLS  bool     // whether the session was under TLS
	At   time.Time
	// Body is MAIL FROM's BODY= parameter ("8BITMIME", "7BIT" or "" when absent).
	Body string
	// SMTPUTF8 reports whether MAIL FROM carried the SMTPUTF8 parameter (RFC 6531).
	SMTPUTF8 bool
	// AuthUser is the user name the client authenticated as ("" without AUTH).
	AuthUser string
	// AuthMech is the SASL mechanism it used ("PLAIN", "LOGIN").
	AuthMech string
	// Remote is the client's IP address.
	Remote string
	// DSN holds the RFC 3461 parameters the client sent (the sink offers DSN only with
	// SinkOptions.DSN): RET and ENVID of MAIL, NOTIFY and ORCPT of each RCPT, decoded.
	DSN SinkDSN
	// Chunked reports whether the content came in BDAT chunks (RFC 3030) rather than by DATA.
	// The sink offers CHUNKING unless Behavior.Without names it.
	Chunked bool
}

// SinkOptions make a sink look like a smarthost: STARTTLS with a certificate, and AUTH.
// SinkDSN is what a client passed of RFC 3461's parameters; Notify and ORcpt are per
// recipient, in RCPT order ("" for a recipient without the parameter).
type SinkDSN struct {
	Ret, EnvID string
	Notify     []string // comma-separated NOTIFY values
	ORcpt      []string // "type;address"
}

type SinkOptions struct {
	// TLS, when set, makes the sink offer STARTTLS with this config (see NewTestCA).
	TLS *tls.Config
	// Users, when set, are the user names and passwords AUTH accepts; the sink then refuses
	// MAIL without AUTH (530 5.7.0), as a smarthost does.
	Users map[string]string
	// AuthMechs are the mechanisms offered; default PLAIN and LOGIN.
	AuthMechs []string
	// AuthWithoutTLS offers AUTH before STARTTLS too; otherwise AUTH is offered only under
	// TLS when TLS is set, and always when it is not.
	AuthWithoutTLS bool
	// DataDelay holds every reply to the end of DATA this long, as a slow server does, so
	// that a client's concurrent connections overlap.
	DataDelay time.Duration
	// DSN offers the DSN extension (RFC 3461) and records its parameters (Received.DSN).
	DSN bool
	// HoldData, when set, holds the reply to the end of each DATA until a value is received
	// from it (or the sink closes), so that a test can look at a relay while its attempt is
	// under way; Sink.Holding counts the replies held now. The reply then follows Behavior
	// (a failure At "DATA" is held too).
	HoldData chan struct{}
}

// Sink is a real SMTP server (github.com/emersion/go-smtp) listening on a
// loopback address. It records the messages it accepts and fails or hangs on
// demand (see Behavior). It is safe for concurrent use.
type Sink struct {
	// Addr is the listening address, e.g. "127.0.0.2:2525".
	Addr string

	srv       *smtp.Server
	ln        *sinkListener
	closed    chan struct{}
	closeOnce sync.Once
	serveDone chan struct{}
	held      sync.WaitGroup // goroutines holding hung connections

	mu       sync.Mutex
	behavior Behavior
	failed   int // failures produced under the current behavior
	msgs     []Received
	changed  chan struct{} // closed and replaced when a message is recorded
	conns    int
	open     int // connections open now
	maxOpen  int // most connections open at once
	authFail int // failed AUTH attempts
	holding  int // DATA replies held now (SinkOptions.HoldData)

	opts SinkOptions
}

// StartSink starts a sink listening on addr, e.g. "127.0.0.2:0" (any free
// port) or "127.0.0.3:31337". The listener is bound when it returns; the sink
// is closed when the test ends.
func StartSink(t testing.TB, addr string) *Sink {
	t.Helper()
	return StartSinkWith(t, addr, SinkOptions{})
}

// StartSinkWith is StartSink with options (STARTTLS, AUTH).
func StartSinkWith(t testing.TB, addr string, opts SinkOptions) *Sink {
	t.Helper()
	s, err := newSink(addr, opts)
	if err != nil {
		t.Fatalf("testutil: StartSink(%q): %v", addr, err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartSinks starts one sink per IP address, all on one shared port, and
// returns that port with the sinks in the order of ips. The first sink gets a
// free port from the kernel; if the same port cannot be bound on every other
// IP, all sinks are closed and it tries again (up to 20 times).
func StartSinks(t testing.TB, ips ...string) (port int, sinks []*Sink) {
	t.Helper()
	return StartSinksWith(t, SinkOptions{}, ips...)
}

// StartSinksWith is StartSinks with options (STARTTLS, AUTH) for every sink.
func StartSinksWith(t testing.TB, opts SinkOptions, ips ...string) (port int, sinks []*Sink) {
	t.Helper()
	if len(ips) == 0 {
		t.Fatalf("testutil: StartSinks: no IP addresses given")
	}
	const attempts = 20
	var lastErr error
	for range attempts {
		first, err := newSink(net.JoinHostPort(ips[0], "0"), opts)
		if err != nil {
			t.Fatalf("testutil: StartSinks: %v", err)
		}
		port = first.ln.Addr().(*net.TCPAddr).Port
		sinks = []*Sink{first}
		for _, ip := range ips[1:] {
			s, err := newSink(net.JoinHostPort(ip, strconv.Itoa(port)), opts)
			if err != nil {
				lastErr = err
				break
			}
			sinks = append(sinks, s)
		}
		if len(sinks) == len(ips) {
			for _, s := range sinks {
				t.Cleanup(s.Close)
			}
			return port, sinks
		}
		for _, s := range sinks {
			s.Close()
		}
	}
	t.Fatalf("testutil: StartSinks(%q): no common free port after %d attempts: %v", ips, attempts, lastErr)
	return 0, nil
}

func newSink(addr string, opts SinkOptions) (*Sink, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{
		Addr:      l.Addr().String(),
		closed:    make(chan struct{}),
		serveDone: make(chan struct{}),
		changed:   make(chan struct{}),
		opts:      opts,
	}
	if len(s.opts.AuthMechs) == 0 {
		s.opts.AuthMechs = []string{sasl.Plain, sasl.Login}
	}
	s.ln = &sinkListener{Listener: l, s: s}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = opts.TLS == nil || opts.AuthWithoutTLS
	srv.TLSConfig = opts.TLS
	srv.MaxMessageBytes = 50 << 20
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = opts.DSN
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv

	go func() {
		defer close(s.serveDone)
		_ = srv.Serve(s.ln)
	}()
	return s, nil
}

// Close stops the sink: the listener is closed (later connections are
// refused) and open connections, hung ones included, are dropped. It is
// idempotent and also runs when the test ends.
func (s *Sink) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		_ = s.srv.Close()
		_ = s.ln.Close() // in case Serve has not registered it yet
		<-s.serveDone
		s.held.Wait()
	})
}

// SetBehavior changes how the sink treats commands and connections from now
// on, and restarts the Times count. Hang only affects connections accepted
// afterwards. It panics if b.At is not "", "MAIL", "RCPT" or "DATA".
func (s *Sink) SetBehavior(b Behavior) {
	b.At = strings.ToUpper(b.At)
	switch b.At {
	case "":
		if b.Mode != FloodLine && b.Mode != FloodLines {
			b.At = "RCPT"
		}
	case "MAIL", "RCPT", "DATA":
	default:
		panic(fmt.Sprintf("testutil: Sink.SetBehavior: At = %q, want MAIL, RCPT or DATA", b.At))
	}
	if b.Code == 0 {
		switch b.Mode {
		case TempFail:
			b.Code = 451
		case PermFail:
			b.Code = 550
		}
	}
	s.mu.Lock()
	s.behavior = b
	s.failed = 0
	s.mu.Unlock()
}

// Messages returns a copy of the accepted messages, in arrival order.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyMessages()
}

func (s *Sink) copyMessages() []Received {
	out := make([]Received, len(s.msgs))
	for i, m := range s.msgs {
		m.To = append([]string(nil), m.To...)
		m.Data = bytes.Clone(m.Data)
		out[i] = m
	}
	return out
}

// Count returns the number of accepted messages.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// MaxOpen returns the most connections that were open at once (served ones:
// hung and flooded connections are not counted).
func (s *Sink) MaxOpen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen
}

// Open returns the number of connections open now (served ones, as MaxOpen).
func (s *Sink) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// AuthFailures returns the number of AUTH attempts the sink refused.
func (s *Sink) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFail
}

// Holding is the number of DATA replies held now (SinkOptions.HoldData): attempts under way.
func (s *Sink) Holding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holding
}

// Connections returns the number of TCP connections accepted so far,
// including hung ones.
func (s *Sink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// WaitCount waits until the sink has accepted at least n messages and
// returns a copy of them. It fails the test if that takes longer than
// timeout.
func (s *Sink) WaitCount(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := s.copyMessages()
			s.mu.Unlock()
			return msgs
		}
		changed := s.changed
		s.mu.Unlock()

		select {
		case <-changed:
		case <-timer.C:
			s.mu.Lock()
			got, conns, b := len(s.msgs), s.conns, s.behavior
			var summary strings.Builder
			for i, m := range s.msgs {
				fmt.Fprintf(&summary, "\n  #%d from <%s> to %v (%d bytes, helo %q)", i+1, m.From, m.To, len(m.Data), m.Helo)
			}
			s.mu.Unlock()
			t.Fatalf("testutil: sink %s: %d message(s) after %v, want at least %d; %d connection(s) accepted; behavior %+v%s",
				s.Addr, got, timeout, n, conns, b, summary.String())
			return nil
		}
	}
}

// takeFailure reports whether the current behavior still has a failure to
// give out and, if so, counts it. s.mu must be held.
func (s *Sink) takeFailure() bool {
	if s.behavior.Times > 0 && s.failed >= s.behavior.Times {
		return false
	}
	s.failed++
	return true
}

// floodAt reports whether the reply to cmd must be a flood, and which.
func (s *Sink) floodAt(cmd string) (Mode, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.behavior
	if (b.Mode != FloodLine && b.Mode != FloodLines) || b.At != cmd || !s.takeFailure() {
		return 0, false
	}
	return b.Mode, true
}

// fail returns the error to answer cmd with, or nil to accept it. A flood
// is written straight to the connection and returns only when the client
// has hung up.
func (ss *session) fail(cmd string) error {
	if mode, ok := ss.sink.floodAt(cmd); ok {
		flood(ss.conn.Conn(), mode, 250)
		return errors.New("flooded")
	}
	return ss.sink.fail(cmd)
}

// fail returns the error to answer cmd with, or nil to accept it.
func (s *Sink) fail(cmd string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.behavior
	if b.Mode != TempFail && b.Mode != PermFail {
		return nil
	}
	at := b.At
	if at == "" {
		at = "RCPT"
	}
	if cmd != at || !s.takeFailure() {
		return nil
	}
	text := b.Text
	if text == "" {
		text = fmt.Sprintf("%v at %s (testutil sink %s)", b.Mode, cmd, s.Addr)
	}
	return &smtp.SMTPError{
		Code:         b.Code,
		EnhancedCode: smtp.EnhancedCode{b.Code / 100, 0, 0},
		Message:      text,
	}
}

// accepted counts a new connection and returns the mode it gets (Accept when
// go-smtp is to serve it) and the EHLO keywords to hide from it.
func (s *Sink) accepted() (Mode, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns++
	switch m := s.behavior.Mode; m {
	case Hang:
		if s.takeFailure() {
			return m, nil
		}
	case FloodLine, FloodLines:
		if s.behavior.At == "" && s.takeFailure() {
			return m, nil
		}
	}
	return Accept, s.behavior.Without
}

func (s *Sink) record(m Received) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// sinkListener counts connections and holds on to those that must hang
// instead of handing them to go-smtp.
type sinkListener struct {
	net.Listener
	s *Sink
}

func (l *sinkListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		mode, without := l.s.accepted()
		switch mode {
		case Accept:
			if len(without) > 0 {
				c = &hidingConn{Conn: c, hide: without}
			}
			l.s.mu.Lock()
			l.s.open++
			l.s.maxOpen = max(l.s.maxOpen, l.s.open)
			l.s.mu.Unlock()
			return &countedConn{Conn: c, s: l.s}, nil
		case Hang:
			l.s.held.Add(1)
			go func() {
				defer l.s.held.Done()
				<-l.s.closed
				c.Close()
			}()
		default:
			l.s.held.Add(1)
			go func() {
				defer l.s.held.Done()
				done := make(chan struct{})
				go func() {
					select {
					case <-l.s.closed:
					case <-done:
					}
					c.Close()
				}()
				flood(c, mode, 220)
				close(done)
			}()
		}
	}
}

// countedConn counts itself out of the open connections when closed.
type countedConn struct {
	net.Conn
	s    *Sink
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.open--
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// flood writes an endless reply with code until the peer hangs up (a write
// fails).
func flood(c net.Conn, mode Mode, code int) {
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	if mode == FloodLines {
		line := []byte(strconv.Itoa(code) + "-sink.test flooding with continuation lines\r\n")
		chunk = bytes.Repeat(line, (32<<10)/len(line))
	} else if _, err := c.Write([]byte(strconv.Itoa(code) + " ")); err != nil {
		return
	}
	for {
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

// hidingConn drops EHLO reply lines that offer a hidden keyword. go-smtp
// writes and flushes each reply line separately (textproto PrintfLine), and
// always ends its EHLO reply with SIZE, so a dropped line is never the last.
type hidingConn struct {
	net.Conn
	hide []string
}

func (h *hidingConn) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\r\n")
	if len(line) > 4 && strings.HasPrefix(line, "250-") {
		kw, _, _ := strings.Cut(line[4:], " ")
		for _, w := range h.hide {
			if strings.EqualFold(kw, w) {
				return len(p), nil
			}
		}
	}
	return h.Conn.Write(p)
}

func (s *Sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{sink: s, conn: c}, nil
}

// session is one go-smtp session (created at each HELO/EHLO).
type session struct {
	sink *Sink
	conn *smtp.Conn
	from string
	to   []string
	body string
	utf8 bool
	dsn  SinkDSN
	user string // authenticated user
	mech string
}

// AuthMechanisms implements smtp.AuthSession: AUTH is offered only when the sink has users.
func (ss *session) AuthMechanisms() []string {
	if ss.sink.opts.Users == nil {
		return nil
	}
	return ss.sink.opts.AuthMechs
}

// Auth implements smtp.AuthSession.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if want, ok := ss.sink.opts.Users[user]; !ok || want != pass {
			ss.sink.mu.Lock()
			ss.sink.authFail++
			ss.sink.mu.Unlock()
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication credentials invalid"}
		}
		ss.user, ss.mech = user, mech
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return errors.New("identity differs from user name")
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// loginServer is the server side of the LOGIN mechanism (draft-murchison-sasl-login): it
// asks for the user name, then the password, with base64 prompts go-smtp encodes.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step++; l.step {
	case 1:
		if len(resp) > 0 { // an initial response carries the user name
			l.user = string(resp)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, false, errors.New("unexpected LOGIN step")
}

func (ss *session) Reset() {
	ss.from, ss.to, ss.dsn = "", nil, SinkDSN{}
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, opt *smtp.MailOptions) error {
	if ss.sink.opts.Users != nil && ss.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	if err := ss.fail("MAIL"); err != nil {
		return err
	}
	ss.from, ss.to = from, nil
	ss.body, ss.utf8, ss.dsn = "", false, SinkDSN{}
	if opt != nil {
		ss.body, ss.utf8 = string(opt.Body), opt.UTF8
		ss.dsn.Ret, ss.dsn.EnvID = string(opt.Return), opt.EnvelopeID
	}
	return nil
}

func (ss *session) Rcpt(to string, opt *smtp.RcptOptions) error {
	if err := ss.fail("RCPT"); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	var notify, orcpt string
	if opt != nil {
		for i, n := range opt.Notify {
			if i > 0 {
				notify += ","
			}
			notify += string(n)
		}
		if opt.OriginalRecipientType != "" {
			orcpt = string(opt.OriginalRecipientType) + ";" + opt.OriginalRecipient
		}
	}
	ss.dsn.Notify = append(ss.dsn.Notify, notify)
	ss.dsn.ORcpt = append(ss.dsn.ORcpt, orcpt)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	// go-smtp hands BDAT content over through a pipe, DATA content through its dot reader.
	_, chunked := r.(*io.PipeReader)
	data, err := io.ReadAll(r)
	if err != nil {
		return err // e.g. smtp.ErrDataTooLarge
	}
	if hold := ss.sink.opts.HoldData; hold != nil {
		ss.sink.mu.Lock()
		ss.sink.holding++
		ss.sink.mu.Unlock()
		select {
		case <-hold:
		case <-ss.sink.closed:
		}
		ss.sink.mu.Lock()
		ss.sink.holding--
		ss.sink.mu.Unlock()
	}
	if err := ss.fail("DATA"); err != nil {
		return err
	}
	if d := ss.sink.opts.DataDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-ss.sink.closed:
		}
	}
	_, tls := ss.conn.TLSConnectionState()
	ss.sink.record(Received{
		From:     ss.from,
		To:       append([]string(nil), ss.to...),
		Data:     data,
		Helo:     ss.conn.Hostname(),
		TLS:      tls,
		At:       time.Now(),
		Body:     ss.body,
		SMTPUTF8: ss.utf8,
		AuthUser: ss.user,
		AuthMech: ss.mech,
		Remote:   remoteIP(ss.conn.Conn()),
		Chunked:  chunked,
		DSN: SinkDSN{Ret: ss.dsn.Ret, EnvID: ss.dsn.EnvID,
			Notify: append([]string(nil), ss.dsn.Notify...), ORcpt: append([]string(nil), ss.dsn.ORcpt...)},
	})
	return nil
}
