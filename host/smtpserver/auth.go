package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/wasmta/wasmta/host/message"
)

// Authenticator checks AUTH credentials (a *auth.Store) of a client at client. identity is the
// SASL authorization identity, "" when the client sent none. It may wait for a turn (the
// client's network's share of the password checks); err is ctx's when ctx ended first.
type Authenticator interface {
	Authenticate(ctx context.Context, client netip.Addr, identity, user, password string) (bool, error)
}

// AUTH replies (RFC 4954 §6).
var (
	// Credentials never travel in plain text: AUTH is not advertised there, and a client that
	// tries anyway gets this before any mechanism runs.
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"}
	errAuthInvalid        = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	// A check that could not run (the server is shutting down while it waited for its turn).
	errAuthTemporary = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	// RFC 4954 §4: AUTH during a mail transaction MUST get 503 (go-smtp takes it).
	errAuthInTransaction = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "AUTH not permitted during a mail transaction"}
)

// tlsState is the session's TLS, after STARTTLS (go-smtp's *tls.Conn) or on a listen_tls
// listener (implicitTLS).
func (ss *session) tlsState() (tls.ConnectionState, bool) {
	if cs, ok := ss.conn.TLSConnectionState(); ok {
		return cs, true
	}
	if t, ok := ss.conn.Conn().(*implicitTLS); ok {
		return t.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

func (ss *session) tls() bool {
	_, ok := ss.tlsState()
	return ok
}

// AuthMechanisms implements smtp.AuthSession: EHLO lists AUTH only over TLS and only when a
// users file is configured.
func (ss *session) AuthMechanisms() []string {
	if ss.s.opt.Auth == nil || !ss.tls() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession. go-smtp is told to allow AUTH in plain text
// (AllowInsecureAuth) so that this method, not go-smtp's 523, answers it: with 538 (RFC 4954
// §6), before a mechanism reads any credentials.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.dead() {
		return nil, ss.abort(ss.errTimeout())
	}
	if ss.s.opt.Auth == nil {
		return nil, smtp.ErrAuthUnsupported
	}
	if ss.mailed {
		return nil, errAuthInTransaction
	}
	if !ss.tls() {
		return nil, errEncryptionRequired
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(ss.authenticate), nil
	case sasl.Login:
		return &loginServer{check: ss.authenticate}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authenticate checks one set of credentials. A failure is answered only after the client's
// network has waited its failure delay (auth.Throttle); the wait ends early at shutdown.
func (ss *session) authenticate(identity, user, password string) error {
	ok, err := ss.s.opt.Auth.Authenticate(ss.s.ctx, ss.peer, identity, user, password)
	if err != nil {
		return ss.reject(errAuthTemporary, "", "")
	}
	if ok {
		ss.authnID = user
		ss.s.opt.Diag.Info("smtp auth", "peer", ss.peer.String(), "user", user)
		return nil
	}
	d := ss.s.throttle.Fail(ss.peer)
	ss.s.opt.Diag.Info("smtp auth failed", "peer", ss.peer.String(), "user", user, "delay", d)
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ss.s.done:
			t.Stop()
		}
	}
	return ss.reject(errAuthInvalid, "", "")
}

// loginServer is the server side of the LOGIN mechanism (draft-murchison-sasl-login): the
// "Username:" and "Password:" prompts, each answer base64 (go-smtp decodes it). go-sasl has
// only its client. A client may send the user name with the AUTH command.
type loginServer struct {
	check func(identity, user, password string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if resp == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check("", l.user, string(resp))
	}
	return nil, false, errors.New("unexpected response")
}

// tlsOf describes a TLS session for the Reception record (design.md §12): "TLS1.3" and the IANA
// cipher suite name.
func tlsOf(cs tls.ConnectionState) *message.TLS {
	return &message.TLS{
		Version: strings.ReplaceAll(tls.VersionName(cs.Version), " ", ""),
		Cipher:  tls.CipherSuiteName(cs.CipherSuite),
	}
}
