package smtpserver

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// writeCounter counts the writes to the TCP connections of a listener: one write is one
// send(2), which on loopback arrives as one segment.
type writeCounter struct {
	net.Listener
	mu     sync.Mutex
	writes []string // what each write carried, in order
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, l: l}, nil
}

func (l *writeCounter) log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.writes...)
}

type countedConn struct {
	net.Conn
	l *writeCounter
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes = append(c.l.writes, string(p))
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

// counted starts a server whose connections' writes are counted.
func counted(t *testing.T) (*recorder, string, *writeCounter) {
	t.Helper()
	rec := &recorder{}
	s := New(Options{
		Hostname: "mx.test", Listen: []string{"127.0.0.1:0"},
		RelayHosts:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		MaxMessageSize: 1000, MaxRecipients: 10, MaxLineLength: 200, MaxConnections: 10,
		IdleTimeout: 10 * time.Second, DataTimeout: time.Minute, Receiver: rec,
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ll := s.listeners[0].(*limitListener)
	wc := &writeCounter{Listener: ll.Listener}
	ll.Listener = wc
	s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return rec, s.Addrs()[0].String(), wc
}

// RFC 2920: the replies to a pipelined group come back complete and in order, and (go-smtp
// flushing each reply line on its own notwithstanding) in one write once the group is answered;
// a multi-line EHLO reply is one write too.
func TestPipelinedRepliesInOrderInOneWrite(t *testing.T) {
	rec, addr, wc := counted(t)
	c := testutil.Dial(t, addr)
	if n := len(wc.log()); n != 1 {
		t.Fatalf("banner took %d writes", n)
	}
	if lines := c.Hello("client.test"); len(lines) < 3 {
		t.Fatalf("EHLO reply %q", lines)
	}
	if w := wc.log(); len(w) != 2 || strings.Count(w[1], "\r\n") < 3 {
		t.Fatalf("EHLO reply in %d writes: %q", len(w)-1, w[1:])
	}
	c.Write("MAIL FROM:<a@client.test>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<bad address>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
	for _, code := range []int{250, 250, 501, 250, 354} {
		c.ExpectReply(code)
	}
	if w := wc.log(); len(w) != 3 {
		t.Fatalf("pipelined group answered in %d writes: %q", len(w)-2, w[2:])
	}
	c.Write(hdr + "body\r\n.\r\nQUIT\r\n")
	c.ExpectReply(250)
	c.ExpectReply(221) // sent as the connection closes
	c.ExpectClosed()
	if got := rec.got(); len(got) != 1 {
		t.Fatalf("spooled %d messages", len(got))
	}
}

// A reply the session writes itself before closing (abort) and go-smtp's 221 still reach the
// client when replies are held back until the next read.
func TestLastRepliesSentOnClose(t *testing.T) {
	_, addr, _ := counted(t)
	c := open(t, addr)
	c.Expect(354, "DATA")
	c.Write(hdr + "x\r\r\n.\r\n") // the true end go-smtp misses: the session answers and closes
	if r := c.ExpectReply(550); !strings.Contains(r, "5.6.0") {
		t.Fatalf("reply %q", r)
	}
	c.ExpectClosed()

	c = testutil.Dial(t, addr)
	c.Write("QUIT\r\n")
	c.ExpectReply(221)
	c.ExpectClosed()
}

// Accepted connections send small replies at once (TCP_NODELAY, which Go sets on every TCP
// connection) and carry no keep-alive probes (the idle timeout drops a silent client first).
func TestAcceptedConnectionOptions(t *testing.T) {
	s := New(Options{Hostname: "mx.test", Listen: []string{"127.0.0.1:0"}})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	defer s.closeListeners()
	go func() {
		if c, err := net.Dial("tcp", s.Addrs()[0].String()); err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1)) // until the test closes its side
		}
	}()
	nc, err := s.listeners[0].Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	raw, err := nc.(*conn).Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var nodelay, keepalive int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		if nodelay, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY); gerr != nil {
			return
		}
		keepalive, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if nodelay == 0 || keepalive != 0 {
		t.Fatalf("TCP_NODELAY %d SO_KEEPALIVE %d, want on and off", nodelay, keepalive)
	}
}

// TestRenewedKeepsOnlyNearlyEqualDeadlines: a renewal is skipped only when the deadline in
// force is at most the slack earlier; later by more, earlier, or cleared, it is set.
func TestRenewedKeepsOnlyNearlyEqualDeadlines(t *testing.T) {
	var cur atomic.Int64
	base := time.Unix(1000, 0)
	steps := []struct {
		t    time.Time
		kept bool
	}{
		{base, false},                             // nothing set yet
		{base.Add(500 * time.Millisecond), true},  // within the slack: the earlier one serves
		{base.Add(time.Second), false},            // a full slack later: renewed
		{base.Add(900 * time.Millisecond), false}, // earlier (a phase's cap): always set
		{time.Time{}, false},                      // cleared
		{time.Time{}, false},                      // nothing set: set again (harmless)
		{base.Add(2 * time.Second), false},        // after clearing
		{base.Add(2*time.Second + time.Nanosecond), true},
	}
	for i, s := range steps {
		if got := renewed(&cur, s.t, time.Second); got != s.kept {
			t.Fatalf("step %d (%v): renewed = %v, want %v", i, s.t, got, s.kept)
		}
	}
	if renewSlack(5*time.Minute) != time.Second || renewSlack(3200*time.Millisecond) != 100*time.Millisecond {
		t.Fatalf("renewSlack: %v, %v", renewSlack(5*time.Minute), renewSlack(3200*time.Millisecond))
	}
}
