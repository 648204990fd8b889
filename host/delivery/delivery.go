// Package delivery is the relay's SMTP client: it connects to a site's hosts in order, upgrades
// with STARTTLS, and sends messages over one connection many times, pipelining MAIL, RCPT and
// DATA when the server offers PIPELINING (RFC 2920), which saves two round trips per message.
// When the server offers CHUNKING (RFC 3030) the content goes as one BDAT chunk instead of
// DATA: with PIPELINING the envelope, the command and the content of a message up to 64 KiB
// leave in one write and their three replies come back together, one round trip per message.
//
// Every outcome is a *message.Error (or nil): 2xx delivered, 4xx / 3xx-where-2xx-expected /
// transport trouble transient, other 5xx permanent (design.md §6). Reply text from the remote server
// is kept for logs; our own texts never carry internal detail.
package delivery

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// TLS modes (design.md §6), with KumoMTA's names and meanings (its make_egress_path enable_tls):
//
//   - Opportunistic: STARTTLS when the server offers it, and the certificate must verify (chain
//     and host name). A certificate that does not verify fails that host, which is not retried
//     in plain text: a peer that offers TLS and shows a bad certificate may be an attacker
//     stripping it. A handshake that fails for any other reason (no common cipher, a broken TLS
//     stack), or a STARTTLS the server refuses, is retried in plain text on a new connection,
//     as Postfix does (KumoMTA's opportunistic_tls_reconnect_on_failed_handshake).
//   - OpportunisticInsecure: STARTTLS when offered, any certificate accepted; handshake
//     failures fall back to plain text as above. RFC 7435 opportunistic security: it defeats
//     passive listeners only.
//   - Required: STARTTLS must be offered and accepted and the certificate must verify, else
//     the host fails (transient).
//   - RequiredInsecure: STARTTLS must be offered; any certificate is accepted.
//   - Disabled: never STARTTLS.
const (
	TLSOpportunistic         = "Opportunistic"
	TLSOpportunisticInsecure = "OpportunisticInsecure"
	TLSRequired              = "Required"
	TLSRequiredInsecure      = "RequiredInsecure"
	TLSDisabled              = "Disabled"
)

// TLSModes lists the modes, for validation and messages.
var TLSModes = []string{TLSOpportunistic, TLSOpportunisticInsecure, TLSRequired, TLSRequiredInsecure, TLSDisabled}

// Options configure a Client.
type Options struct {
	EHLOName       string
	TLS            string // one of TLSModes; TLSOpportunistic when empty
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	DataTimeout    time.Duration
	// Dialer is the I/O seam for outgoing connections; a net.Dialer (bound to SourceAddr when
	// set) when nil.
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
	// SourceAddr, when valid, is the local address connections leave from.
	SourceAddr netip.Addr
	// RootCAs verifies server certificates in the verifying modes; the system pool when nil.
	RootCAs *x509.CertPool

	// AuthUsername, when set, makes every connection authenticate (RFC 4954) with AUTH PLAIN,
	// or LOGIN when the server offers only that, after TLS unless AllowAuthWithoutTLS.
	AuthUsername        string
	AuthPassword        string // the secret's value: never logged, never in an error
	AllowAuthWithoutTLS bool
}

// Client opens connections to sites.
type Client struct{ opt Options }

// New returns a Client with defaults filled in.
func New(opt Options) *Client {
	if opt.EHLOName == "" {
		opt.EHLOName = "localhost"
	}
	if opt.TLS == "" {
		opt.TLS = TLSOpportunistic
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = time.Minute
	}
	if opt.CommandTimeout <= 0 {
		opt.CommandTimeout = 5 * time.Minute
	}
	if opt.DataTimeout <= 0 {
		opt.DataTimeout = 5 * time.Minute
	}
	if opt.Dialer == nil {
		d := &net.Dialer{Timeout: opt.ConnectTimeout}
		if opt.SourceAddr.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: opt.SourceAddr.AsSlice(), Zone: opt.SourceAddr.Zone()}
		}
		opt.Dialer = d
	}
	return &Client{opt: opt}
}

// opportunistic reports whether the mode may deliver in plain text.
func (o *Options) opportunistic() bool {
	return o.TLS == TLSOpportunistic || o.TLS == TLSOpportunisticInsecure
}

// verify reports whether the mode verifies certificates.
func (o *Options) verify() bool { return o.TLS == TLSOpportunistic || o.TLS == TLSRequired }

var errNoHosts = message.Errorf(451, "4.4.4", "no hosts to deliver to")

// Connect tries hosts in order and returns the first connection that greets and accepts EHLO.
// When all fail the error is transient (451 4.4.1) and names the last failure.
func (c *Client) Connect(ctx context.Context, hosts []route.Host) (*Conn, error) {
	if len(hosts) == 0 {
		return nil, errNoHosts
	}
	var last error
	refused := true // every host tried refused with 5xx
	for _, h := range hosts {
		conn, err := c.connect(ctx, h, c.opt.TLS != TLSDisabled)
		var tlsErr *tlsFailure
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &tlsErr) && c.opt.opportunistic() && !errors.As(err, &certErr) {
			// A broken TLS stack on the peer must not block mail in opportunistic mode:
			// reconnect in plain text, as Postfix does. A certificate that fails
			// verification is not a broken stack: see the TLS modes.
			conn, err = c.connect(ctx, h, false)
		}
		if err == nil {
			return conn, nil
		}
		last = err
		if message.AsError(err).Code/100 != 5 {
			refused = false
		}
		if ctx.Err() != nil {
			break
		}
	}
	e := message.AsError(last)
	if refused {
		// Every host refused us with 5xx at greeting or EHLO (and HELO): the site refuses
		// the message. When some host failed otherwise (down, silent, 4xx, broken) it may
		// take the message later, so the failure is transient, whichever host came last:
		// the site's failure is the fate of every message waiting for it.
		return nil, e
	}
	if strings.HasPrefix(e.Enhanced, "4.7.") {
		// The hosts answered, but TLS or AUTH did not come about (X.7: security, RFC 3463):
		// say that, not "no answer".
		return nil, e
	}
	return nil, message.Errorf(451, "4.4.1", "no answer from any host of the site (last: %s)", hostText(last)).Wrap(last)
}

// hostText gives the remote part of an error that is safe to log and show: remote replies as
// they were, transport failures by kind only.
func hostText(err error) string {
	var e *message.Error
	if errors.As(err, &e) {
		return e.Reply.String()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + " failed"
	}
	return "connection failed"
}

// tlsFailure is a failed TLS handshake; it is also a *message.Error (451 4.7.5, RFC 3463's
// "cryptographic failure") so that the site's failure names it.
type tlsFailure struct {
	err   error
	reply *message.Error
}

func (t *tlsFailure) Error() string { return "TLS handshake: " + t.err.Error() }
func (t *tlsFailure) Unwrap() error { return t.reply }

// Conn is one SMTP connection to one host.
type Conn struct {
	opt    *Options
	nc     net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	host   route.Host
	ext    map[string]string
	tls    bool
	state  tls.ConnectionState // when tls
	broken bool
	sent   int
}

func (c *Client) connect(ctx context.Context, h route.Host, tryTLS bool) (*Conn, error) {
	addr := netip.AddrPortFrom(h.Addr, h.Port).String()
	dctx, cancel := context.WithTimeout(ctx, c.opt.ConnectTimeout)
	nc, err := c.opt.Dialer.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, message.Errorf(451, "4.4.1", "connect to %s failed", addr).Wrap(err)
	}
	conn := &Conn{opt: &c.opt, nc: nc, host: h}
	conn.setConn(nc)
	// Until Connect returns, the caller has no Conn to Abort: a canceled ctx (the relay
	// stopping) closes the socket, so that a hop that never greets or answers cannot hold
	// the caller for command_timeout. Its error is then the cancellation's.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	err = conn.handshake(ctx, tryTLS)
	if !stop() && err == nil {
		err = ctx.Err() // closed just after the handshake ended
	}
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, message.Errorf(451, "4.4.2", "connection to %s canceled", h.Name).Wrap(ctx.Err())
		}
		return nil, err
	}
	return conn, nil
}

func (c *Conn) setConn(nc net.Conn) {
	c.nc = nc
	c.r = bufio.NewReaderSize(nc, readBufferSize)
	c.w = bufio.NewWriterSize(nc, 32<<10)
}

func (c *Conn) handshake(ctx context.Context, tryTLS bool) error {
	if _, err := c.expect(c.opt.CommandTimeout, 2); err != nil { // banner
		return err
	}
	if c.outOfStep() {
		// Something after the banner before EHLO was sent (pre-greeting traffic): it would be
		// read as the reply to EHLO, and every later reply would answer the wrong command.
		return errOutOfStep(c.host.Name)
	}
	if err := c.ehlo(); err != nil {
		return err
	}
	_, offered := c.ext["STARTTLS"]
	if tryTLS && offered {
		if err := c.cmd("STARTTLS"); err != nil {
			return err
		}
		if _, err := c.expect(c.opt.CommandTimeout, 2); err != nil {
			var e *message.Error
			if errors.As(err, &e) && !c.broken {
				// A refusal (RFC 3207 §4: 454, or a 5xx) is about TLS, not about the mail: a
				// failure like a broken handshake, so the opportunistic modes go on in plain
				// text and the Required ones fail the host transiently, never with a 5xx
				// that would bounce every message waiting for the site.
				return &tlsFailure{err: err, reply: message.Errorf(451, "4.7.0", "%s refused STARTTLS: %s", c.host.Name, e.Reply).Wrap(err)}
			}
			return err
		}
		// ServerName is the MX (or mx_list) name: SNI, and the name the certificate must
		// carry in the verifying modes (RFC 3207 §4.1 leaves the policy to the client).
		serverName := c.host.Name
		if strings.HasPrefix(serverName, "[") {
			if t, err := route.ParseTarget(serverName); err == nil && t.IsLiteral() {
				// A domain literal's host is its address: the certificate must carry that
				// IP (and no SNI is sent for it, RFC 6066 §3), not route's "[IPv6:…]" text.
				serverName = t.IP.String()
			}
		}
		cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12, RootCAs: c.opt.RootCAs}
		if !c.opt.verify() {
			// RFC 7435 opportunistic security: encrypt against passive listeners without
			// requiring a certificate that MX hosts often lack for their name.
			cfg.InsecureSkipVerify = true
		}
		tc := tls.Client(c.nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, c.opt.CommandTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			var certErr *tls.CertificateVerificationError
			what := "TLS handshake with %s failed"
			if errors.As(err, &certErr) {
				what = "TLS certificate of %s did not verify"
			}
			return &tlsFailure{err: err, reply: message.Errorf(451, "4.7.5", what, c.host.Name).Wrap(err)}
		}
		c.setConn(tc)
		c.tls, c.state = true, tc.ConnectionState()
		if err := c.ehlo(); err != nil {
			return err
		}
	}
	if (c.opt.TLS == TLSRequired || c.opt.TLS == TLSRequiredInsecure) && !c.tls {
		return message.Errorf(451, "4.7.10", "TLS required but %s does not offer STARTTLS", c.host.Name)
	}
	if c.opt.AuthUsername != "" {
		return c.auth()
	}
	return nil
}

func (c *Conn) ehlo() error {
	if err := c.cmd("EHLO " + c.opt.EHLOName); err != nil {
		return err
	}
	lines, err := c.expect(c.opt.CommandTimeout, 2)
	if err != nil {
		var e *message.Error
		if errors.As(err, &e) && e.Code/100 == 5 {
			// RFC 5321 §3.2: fall back to HELO for servers without ESMTP.
			if err := c.cmd("HELO " + c.opt.EHLOName); err != nil {
				return err
			}
			_, err = c.expect(c.opt.CommandTimeout, 2)
			c.ext = map[string]string{}
			if err == nil && c.outOfStep() {
				err = errOutOfStep(c.host.Name)
			}
		}
		return err
	}
	if c.outOfStep() {
		// A reply after the EHLO reply, before any command (a "250" sent ahead): with
		// PIPELINING it would be taken for the reply to MAIL, and the replies of a message
		// shifted by one, so that the reply to RCPT would pass for the reply to its content.
		return errOutOfStep(c.host.Name)
	}
	c.ext = make(map[string]string)
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	return nil
}

// Host is the host this connection talks to.
func (c *Conn) Host() route.Host { return c.host }

// TLS reports whether the connection is encrypted.
func (c *Conn) TLS() bool { return c.tls }

// TLSInfo describes the TLS session for log records (design.md §6 and §12); nil in plain text.
func (c *Conn) TLSInfo() *logs.TLS {
	if !c.tls {
		return nil
	}
	verified := c.opt.verify()
	return &logs.TLS{
		// "TLS 1.3" in Go's spelling, "TLS1.3" in the log record's.
		Version:  strings.ReplaceAll(tls.VersionName(c.state.Version), " ", ""),
		Cipher:   tls.CipherSuiteName(c.state.CipherSuite),
		Verified: &verified,
	}
}

// Broken reports whether the connection can no longer be used.
func (c *Conn) Broken() bool { return c.broken }

// Sent is how many messages this connection delivered.
func (c *Conn) Sent() int { return c.sent }

// Send delivers one message to one recipient. On success it returns the server's reply. After a
// refusal the transaction is reset so the connection can carry the next message. dsn, when
// not nil, is what the client that sent the message asked of delivery status notifications: it
// is passed on to a server that offers DSN (RFC 3461 §4: a relay passes the parameters on).
func (c *Conn) Send(sender, rcpt string, dsn *message.DSN, body []byte) (message.Reply, error) {
	if c.broken {
		return message.Reply{}, message.Errorf(451, "4.4.2", "connection lost")
	}
	_, offers8bit := c.ext["8BITMIME"]
	_, offersUTF8 := c.ext["SMTPUTF8"]
	utf8Envelope := has8bit(sender) || has8bit(rcpt)
	if utf8Envelope && !offersUTF8 {
		// RFC 6531 §3.2: a non-ASCII address cannot be sent to a server without SMTPUTF8, and
		// the relay does not downgrade addresses. 553 5.6.7 is the reply RFC 6531 §3.5 gives.
		return message.Reply{}, message.Errorf(553, "5.6.7", "non-ASCII address and %s does not offer SMTPUTF8", c.host.Name)
	}
	body8bit := bodyHas8bit(body)
	if body8bit && !offers8bit && !offersUTF8 {
		// RFC 6152 §3: 8-bit data must not go to a server without 8BITMIME (SMTPUTF8 implies
		// it, RFC 6531 §3.1). The relay does not convert to 7 bits (that would break DKIM
		// signatures), so the message is returned: 5.6.3 "conversion required but not
		// supported" (RFC 3463), with 554 "transaction failed".
		return message.Reply{}, message.Errorf(554, "5.6.3", "message has 8-bit content and %s offers neither 8BITMIME nor SMTPUTF8 (conversion not supported)", c.host.Name)
	}
	mail := "MAIL FROM:<" + sender + ">"
	if _, ok := c.ext["SIZE"]; ok {
		mail += " SIZE=" + strconv.Itoa(len(body))
	}
	if offers8bit && body8bit {
		mail += " BODY=8BITMIME"
	}
	if offersUTF8 && utf8Envelope {
		mail += " SMTPUTF8"
	}
	rcptCmd := "RCPT TO:<" + rcpt + ">"
	if _, ok := c.ext["DSN"]; ok && dsn != nil {
		mail, rcptCmd = mail+dsnMailParams(dsn), rcptCmd+dsnRcptParams(dsn)
	}
	// BDAT (RFC 3030) when the server offers CHUNKING: no 354 round trip, no dot-stuffing, and
	// with PIPELINING the envelope and a small body go out in one write, their replies come back
	// in one read. Only a body that DATA would carry unchanged goes this way (CRLF line ends,
	// ending in CRLF; reception refuses anything else, RFC 5321 §2.3.8), so the next hop gets
	// the same octets either way; any other body takes DATA, which repairs line ends as it
	// always has.
	_, chunking := c.ext["CHUNKING"]
	chunked := chunking && chunkable(body)
	_, pipelining := c.ext["PIPELINING"]
	var mailErr, rcptErr, dataErr, endErr error
	var code int
	var lines []string
	bodySent := false
	switch {
	case pipelining && chunked && len(body) <= maxPipelinedChunk:
		// The deadline is set first: a body larger than the buffer is written while buffered.
		c.nc.SetWriteDeadline(time.Now().Add(c.opt.DataTimeout))
		c.w.WriteString(mail + "\r\n" + rcptCmd + "\r\n")
		writeChunk(c.w, body)
		if err := c.w.Flush(); err != nil {
			return message.Reply{}, c.lost(err)
		}
		bodySent = true
		_, mailErr = c.expect(c.opt.CommandTimeout, 2)
		_, rcptErr = c.expect(c.opt.CommandTimeout, 2)
		// A server that refused the envelope still reads the chunk and answers BDAT (RFC
		// 3030 §2), so its reply is read to keep the replies in step.
		code, lines, endErr = c.read(c.opt.DataTimeout, 2)
	case pipelining:
		c.w.WriteString(mail + "\r\n" + rcptCmd + "\r\n")
		if !chunked {
			c.w.WriteString("DATA\r\n")
		}
		if err := c.flush(); err != nil {
			return message.Reply{}, err
		}
		_, mailErr = c.expect(c.opt.CommandTimeout, 2)
		_, rcptErr = c.expect(c.opt.CommandTimeout, 2)
		if !chunked {
			_, dataErr = c.expect(c.opt.CommandTimeout, 3)
		}
	default:
		if mailErr = c.roundTrip(mail, 2); mailErr == nil {
			if rcptErr = c.roundTrip(rcptCmd, 2); rcptErr == nil && !chunked {
				dataErr = c.roundTrip("DATA", 3)
			}
		}
	}
	// The reply to the end of the content is logged as answering ".", as KumoMTA names it,
	// whether the content went by DATA or as BDAT's last chunk.
	mailErr, rcptErr, dataErr, endErr = answered(mailErr, mail), answered(rcptErr, rcptCmd), answered(dataErr, "DATA"), answered(endErr, ".")
	if c.broken {
		return message.Reply{}, firstErr(mailErr, rcptErr, dataErr, endErr)
	}
	if mailErr != nil || rcptErr != nil {
		if pipelining && !chunked && dataErr == nil {
			// The server said 354 to the pipelined DATA although the envelope failed: end
			// the empty message. (Without PIPELINING no DATA was sent, and a "." would be a
			// stray command.)
			c.w.WriteString(".\r\n")
			if c.flush() == nil {
				_, _ = c.expect(c.opt.DataTimeout, 2)
			}
		}
		c.reset()
		return message.Reply{}, firstErr(mailErr, rcptErr)
	}
	if dataErr != nil {
		c.reset()
		return message.Reply{}, dataErr
	}
	if !bodySent {
		if c.outOfStep() {
			// A reply came before the content it would answer was sent (an early "250"):
			// it must not be taken for the reply to the content.
			return message.Reply{}, errOutOfStep(c.host.Name)
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.opt.DataTimeout))
		var err error
		if chunked {
			writeChunk(c.w, body)
			err = c.w.Flush()
		} else {
			err = writeData(c.w, body)
		}
		if err != nil {
			return message.Reply{}, c.lost(err)
		}
		code, lines, endErr = c.read(c.opt.DataTimeout, 2)
		endErr = answered(endErr, ".")
	}
	if endErr != nil {
		c.reset()
		return message.Reply{}, endErr
	}
	if c.outOfStep() {
		// More replies than commands: which of them answers the content is not known, so
		// the message is not reported delivered (a retry may duplicate it, never lose it).
		return message.Reply{}, errOutOfStep(c.host.Name)
	}
	c.sent++
	r := parseReply(code, lines)
	r.Command = "." // the end of data, as KumoMTA names it in log records
	return r, nil
}

// answered records in a failure which command its reply answered (log records show it as
// response.command).
func answered(err error, command string) error {
	var e *message.Error
	if errors.As(err, &e) && e.Reply.Command == "" {
		e.Reply.Command = command
	}
	return err
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// Close ends the session politely (QUIT) when the connection is healthy.
func (c *Conn) Close() {
	if !c.broken {
		c.nc.SetDeadline(time.Now().Add(5 * time.Second))
		if c.cmd("QUIT") == nil {
			_, _, _ = readReply(c.r)
		}
	}
	c.broken = true
	c.nc.Close()
}

// Abort closes the network connection without QUIT. Unlike every other method it may be
// called while another goroutine is in Send, which then fails as a lost connection.
func (c *Conn) Abort() { c.nc.Close() }

func (c *Conn) reset() {
	if c.broken || c.outOfStep() {
		return
	}
	if err := c.roundTrip("RSET", 2); err != nil {
		c.broken = true
	}
	c.outOfStep()
}

// outOfStep reports whether the server sent more than the replies it was asked for (they are
// already read, waiting in the buffer, when every expected reply has been read): every later
// reply would be taken for the answer to the wrong command (RFC 5321 §4.2: exactly one reply
// per command), so the connection is closed and never reused. Only what already arrived is
// seen: a stray reply in a later packet than the expected one goes unnoticed.
func (c *Conn) outOfStep() bool {
	if c.broken || c.r.Buffered() == 0 {
		return false
	}
	c.broken = true
	c.nc.Close()
	return true
}

func errOutOfStep(host string) error {
	return message.Errorf(451, "4.5.0", "%s sent a reply out of step", host)
}

func (c *Conn) roundTrip(line string, class int) error {
	if err := c.cmd(line); err != nil {
		return err
	}
	_, err := c.expect(c.opt.CommandTimeout, class)
	return err
}

func (c *Conn) cmd(line string) error {
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	return c.flush()
}

func (c *Conn) flush() error {
	c.nc.SetWriteDeadline(time.Now().Add(c.opt.CommandTimeout))
	if err := c.w.Flush(); err != nil {
		return c.lost(err)
	}
	return nil
}

func (c *Conn) lost(err error) error {
	c.broken = true
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// A read or write deadline (command_timeout, data_timeout): say so, since "lost"
		// would send the operator looking for a network fault rather than a slow server.
		return message.Errorf(451, "4.4.2", "connection to %s timed out", c.host.Name).Wrap(err)
	}
	return message.Errorf(451, "4.4.2", "connection to %s lost", c.host.Name).Wrap(err)
}

// expect reads one reply and checks its class; see read.
func (c *Conn) expect(timeout time.Duration, class int) ([]string, error) {
	_, lines, err := c.read(timeout, class)
	return lines, err
}

// read reads one reply and checks its class. A reply of another class is an *message.Error
// with the remote code and text; a 421 also marks the connection broken (RFC 5321 §3.8). A
// reply over the limits (reply.go) or malformed breaks the connection: the server is not
// speaking SMTP as we know it, so nothing more it says can be trusted.
func (c *Conn) read(timeout time.Duration, class int) (int, []string, error) {
	code, lines, err := c.readAny(timeout)
	if err != nil {
		return 0, nil, err
	}
	if code/100 == class {
		return code, lines, nil
	}
	if code == 421 {
		c.broken = true
	}
	r := parseReply(code, lines)
	if r.Class() != 5 && r.Class() != 4 {
		// 3xx where 2xx was expected, or the reverse: a protocol surprise, transient.
		return 0, nil, &message.Error{Reply: message.Reply{Code: 451, Enhanced: "4.5.0", Text: fmt.Sprintf("unexpected reply %s", r)}}
	}
	return 0, nil, &message.Error{Reply: r}
}

// readAny reads one reply of any class; only transport trouble and replies over the limits or
// malformed are errors, and they break the connection.
func (c *Conn) readAny(timeout time.Duration) (int, []string, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	code, lines, err := readReply(c.r)
	var re *replyError
	if errors.As(err, &re) {
		c.broken = true
		c.nc.Close()
		if re.limit {
			return 0, nil, message.Errorf(451, "4.5.0", "reply from %s exceeds the limit: %s", c.host.Name, re.reason).Wrap(err)
		}
		return 0, nil, message.Errorf(451, "4.5.0", "%s sent a malformed reply", c.host.Name).Wrap(err)
	}
	if err != nil {
		return 0, nil, c.lost(err)
	}
	return code, lines, nil
}

func has8bit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// bodyHas8bit reports whether body has an octet above 127. It runs on every message delivered,
// so it tests 32 octets at a time: a byte-at-a-time loop over a 4 KiB body was 1 % of the
// relay's CPU.
func bodyHas8bit(body []byte) bool {
	const high = 0x8080808080808080
	i := 0
	for ; len(body)-i >= 32; i += 32 {
		w := body[i : i+32 : i+32]
		if (binary.LittleEndian.Uint64(w)|binary.LittleEndian.Uint64(w[8:])|
			binary.LittleEndian.Uint64(w[16:])|binary.LittleEndian.Uint64(w[24:]))&high != 0 {
			return true
		}
	}
	for ; len(body)-i >= 8; i += 8 {
		if binary.LittleEndian.Uint64(body[i:])&high != 0 {
			return true
		}
	}
	for ; i < len(body); i++ {
		if body[i] >= 0x80 {
			return true
		}
	}
	return false
}
