package smtpserver

import (
	"crypto/tls"
	"strings"
	"testing"
)

// RFC 4954 §4: "The AUTH command is not permitted during a mail transaction. An AUTH command
// issued during a mail transaction MUST be rejected with a 503 reply." go-smtp took it, so a
// client could name its sender before proving who it is and then relay.
func TestAuthInsideTransactionRefused(t *testing.T) {
	users := bobUsers(t)
	rec, addr := start(t, func(o *Options) {
		o.TLS, o.Auth, o.RelayHosts = selfSigned(t), users, nil // relay only after AUTH
	})
	c := dialClient(t, addr, false)
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	if code, msg := reply(t, c, "MAIL FROM:<a@client.test>"); code != 250 {
		t.Fatalf("MAIL: %d %s", code, msg)
	}
	// "\x00bob\x00b0b pw"
	if code, msg := reply(t, c, "AUTH PLAIN AGJvYgBiMGIgcHc="); code != 503 || !strings.HasPrefix(msg, "5.5.1") {
		t.Fatalf("AUTH inside a transaction: %d %s, want 503 5.5.1", code, msg)
	}
	if code, msg := reply(t, c, "RCPT TO:<b@example.com>"); code != 550 {
		t.Fatalf("RCPT without AUTH: %d %s, want 550 relaying denied", code, msg)
	}
	// After RSET the same AUTH works and the client may relay.
	if code, msg := reply(t, c, "RSET"); code != 250 {
		t.Fatalf("RSET: %d %s", code, msg)
	}
	if code, msg := reply(t, c, "AUTH PLAIN AGJvYgBiMGIgcHc="); code != 235 {
		t.Fatalf("AUTH outside a transaction: %d %s", code, msg)
	}
	if err := c.Mail("a@client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("spooled %d", len(got))
	}
}
