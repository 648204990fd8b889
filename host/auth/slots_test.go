package auth_test

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/netip"
	"net/smtp"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/auth"
	"github.com/wasmta/wasmta/host/smtpserver"
)

// The password checks of every client share a few slots (max(2, GOMAXPROCS)), and the failure
// delay comes only after a check: one client address with a handful of connections sending bad
// AUTHs held every slot, and every other user's AUTH waited behind them. Now one client network
// holds at most one slot at a time; its other checks wait for that one, not for the others'.
// Over real TCP, from two loopback addresses; the test hook holds the guesser's checks inside
// their slots and says when they are there.
func TestAuthSlotsShareOfOneAddress(t *testing.T) {
	arrived := make(chan struct{}, 64)
	entered := make(chan struct{}, 64)
	release := make(chan struct{})
	t.Cleanup(auth.SetTestHook(func(stage, user string) {
		if user != "mallory" {
			return
		}
		switch stage {
		case auth.HookArrive:
			arrived <- struct{}{}
		case auth.HookVerify:
			entered <- struct{}{}
			<-release
		}
	}))
	path := filepath.Join(t.TempDir(), "users")
	// htpasswd -nbB -C 4 bob 'b0b pw'
	if err := os.WriteFile(path, []byte("bob:$2y$04$vRzmCe9KPBN8V2tm0sZ8s.O39HoN80PSySmh0HqzMGuR3cQ12evOe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := smtpserver.SelfSignedTLS("mx.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := smtpserver.New(smtpserver.Options{
		Hostname: "mx.test", Listen: []string{"127.0.0.1:0"},
		MaxMessageSize: 1000, MaxRecipients: 10, MaxLineLength: 200, MaxConnections: 100,
		IdleTimeout: time.Minute, TLS: cert, Auth: users,
	})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	srv.Serve()
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	t.Cleanup(func() { close(release) }) // runs first: the held checks end before shutdown
	addr := srv.Addrs()[0].String()

	bob := tlsClient(t, "127.0.0.3", addr)
	// More bad AUTHs from one address than there are slots in all.
	guesses := max(2, runtime.GOMAXPROCS(0)) + 1
	for range guesses {
		c := tlsClient(t, "127.0.0.2", addr)
		go func() {
			id, err := c.Text.Cmd("AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00mallory\x00guess")))
			if err != nil {
				return
			}
			c.Text.StartResponse(id)
			defer c.Text.EndResponse(id)
			_, _, _ = c.Text.ReadResponse(0)
		}()
	}
	for i := range guesses {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d guesses reached the password check", i, guesses)
		}
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no guess is being checked")
	}
	// Every guess is in, one (or, before, every slot's worth) being checked and held there.
	// Bob's AUTH from another address is answered while they are.
	bob.Text.W.WriteString("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00bob\x00b0b pw")) + "\r\n")
	if err := bob.Text.W.Flush(); err != nil {
		t.Fatal(err)
	}
	code, msg, err := bob.Text.ReadResponse(0)
	if err != nil || code != 235 {
		t.Fatalf("bob's AUTH while 127.0.0.2's guesses are being checked: %d %s %v, want 235", code, msg, err)
	}
	if n := 1 + len(entered); n > 1 {
		t.Fatalf("127.0.0.2 holds %d password-check slots at once, want 1", n)
	}
}

// tlsClient connects from src, says EHLO and starts TLS; replies must come within 20 s.
func tlsClient(t *testing.T, src, addr string) *smtp.Client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0))}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c, err := smtp.NewClient(conn, "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	return c
}
