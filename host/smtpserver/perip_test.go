package smtpserver

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// dialRaw connects from src and returns the first line the server sends ("" when it sends
// none before closing).
func dialRaw(t *testing.T, src, addr string) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return c, line
}

// One client address could take every one of max_connections; now it gets at most
// max_connections_per_ip, the next one gets 421 4.7.0 and is closed, other addresses are still
// served, and the count goes down as connections close.
func TestMaxConnectionsPerIP(t *testing.T) {
	srv, _, addr := startServer(t, func(o *Options) { o.MaxConnections, o.MaxConnectionsPerIP = 10, 3 })
	var held []*testutil.Client
	for range 3 {
		c := testutil.DialFrom(t, "127.0.0.2", addr)
		c.Hello("client.test")
		held = append(held, c)
	}
	c, line := dialRaw(t, "127.0.0.2", addr)
	if !strings.HasPrefix(line, "421 4.7.0 ") || !strings.Contains(line, "too many connections from your address") {
		t.Fatalf("4th connection from 127.0.0.2: %q, want 421 4.7.0 too many connections from your address", line)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("refused connection left open (read %d octets)", n)
	}
	// Another address is not affected.
	other := testutil.DialFrom(t, "127.0.0.3", addr)
	other.Hello("other.test")
	// One of the three closes (QUIT answered: the server has closed its side), and the address
	// gets a connection again.
	held[0].Expect(221, "QUIT")
	again := testutil.DialFrom(t, "127.0.0.2", addr)
	again.Hello("client.test")
	// And the cap holds again at three.
	if _, line := dialRaw(t, "127.0.0.2", addr); !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Fatalf("connection over the cap after one closed and one opened: %q, want 421 4.7.0", line)
	}
	// Each refusal is counted (wasmta_smtp_refused_connections_total).
	if got := srv.Refused(); got["max_connections_per_ip"] != 2 || got["max_connections"] != 0 {
		t.Fatalf("Refused() = %v, want 2 for max_connections_per_ip", got)
	}
}

// The cap counts a client's connections on every listener together (listen and listen_tls
// alike): two listeners do not give it twice the cap.
func TestMaxConnectionsPerIPAcrossListeners(t *testing.T) {
	var addrs []string
	srv := New(Options{Hostname: "mx.test", Listen: []string{"127.0.0.1:0", "127.0.0.1:0"}, MaxConnections: 10, MaxConnectionsPerIP: 2,
		MaxMessageSize: 1000, MaxRecipients: 10, MaxLineLength: 200, IdleTimeout: 10 * time.Second, Receiver: &recorder{}})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	srv.Serve()
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	for _, a := range srv.Addrs() {
		addrs = append(addrs, a.String())
	}
	testutil.DialFrom(t, "127.0.0.2", addrs[0]).Hello("client.test")
	testutil.DialFrom(t, "127.0.0.2", addrs[1]).Hello("client.test")
	for _, a := range addrs {
		if _, line := dialRaw(t, "127.0.0.2", a); !strings.HasPrefix(line, "421 4.7.0 ") {
			t.Fatalf("third connection from 127.0.0.2 (on %s): %q, want 421 4.7.0", a, line)
		}
	}
}
