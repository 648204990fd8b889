package smtpserver

import (
	"context"
	"crypto/tls"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/auth"
)

// AUTH edge cases over real TCP; the whole path (relay after AUTH, records, plugins, reload) is
// tested end to end in cmd/wasmta/e2e_auth_test.go.

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	c, err := SelfSignedTLS("mx.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reply sends one raw command line and returns the reply.
func reply(t *testing.T, c *smtp.Client, line string) (int, string) {
	t.Helper()
	id, err := c.Text.Cmd("%s", line)
	if err != nil {
		t.Fatal(err)
	}
	c.Text.StartResponse(id)
	defer c.Text.EndResponse(id)
	code, msg, _ := c.Text.ReadResponse(0)
	return code, msg
}

func dialClient(t *testing.T, addr string, implicit bool) *smtp.Client {
	t.Helper()
	var conn net.Conn
	var err error
	if implicit {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// Without a users file AUTH is never offered, and asking for it gets 502 5.7.0 in plain text
// and under TLS alike; STARTTLS works with the generated certificate.
func TestAuthNotConfigured(t *testing.T) {
	_, addr := start(t, func(o *Options) { o.TLS = selfSigned(t) })
	c := dialClient(t, addr, false)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered without a users file")
	}
	if code, msg := reply(t, c, "AUTH PLAIN AGFsaWNlAHB3"); code != 502 || msg != "5.7.0 Authentication not supported" {
		t.Fatalf("plain-text AUTH without users: %d %s", code, msg)
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered under TLS without a users file")
	}
	if code, _ := reply(t, c, "AUTH PLAIN AGFsaWNlAHB3"); code != 502 {
		t.Fatalf("AUTH under TLS without users: %d, want 502", code)
	}
}

// On listen_tls: an unknown mechanism gets 504, "*" cancels LOGIN (501, RFC 4954 §4), and the
// session goes on; net/smtp's PLAIN client then logs in.
func TestAuthMechanisms(t *testing.T) {
	users := bobUsers(t)
	var opt Options
	start(t, func(o *Options) {
		o.TLS, o.Auth, o.ListenTLS = selfSigned(t), users, []string{"127.0.0.1:0"}
		opt = *o
	})
	// start returns the plain address only: a server of the same options for the TLS one.
	s := New(opt)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	tlsAddr := s.Addrs()[1].String()

	c := dialClient(t, tlsAddr, true)
	if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
		t.Fatalf("AUTH on listen_tls: %v %q, want PLAIN LOGIN", ok, mechs)
	}
	if code, msg := reply(t, c, "AUTH CRAM-MD5"); code != 504 {
		t.Fatalf("unknown mechanism: %d %s, want 504", code, msg)
	}
	if code, _ := reply(t, c, "AUTH LOGIN"); code != 334 {
		t.Fatalf("AUTH LOGIN: %d, want 334", code)
	}
	if code, _ := reply(t, c, "*"); code != 501 {
		t.Fatalf("cancelled LOGIN: %d, want 501", code)
	}
	if err := c.Auth(smtp.PlainAuth("", "bob", "b0b pw", "mx.test")); err != nil {
		t.Fatalf("PLAIN after a cancelled LOGIN: %v", err)
	}
	if code, _ := reply(t, c, "AUTH PLAIN AGJvYgBiMGIgcHc="); code != 503 {
		t.Fatalf("second AUTH: %d, want 503", code)
	}
}

// bobUsers is a users file with one user, bob, password "b0b pw".
func bobUsers(t *testing.T) *auth.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	// htpasswd -nbB -C 4 bob 'b0b pw'
	if err := os.WriteFile(path, []byte("bob:$2y$04$vRzmCe9KPBN8V2tm0sZ8s.O39HoN80PSySmh0HqzMGuR3cQ12evOe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return users
}
