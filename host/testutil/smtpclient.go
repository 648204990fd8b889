package testutil

import (
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// Client is a minimal line-level SMTP client for tests: it shows exactly what the server
// answered to each command, which is what reception tests assert on.
type Client struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

// Dial connects to addr from the default source address and reads the banner.
func Dial(t testing.TB, addr string) *Client { return DialFrom(t, "", addr) }

// DialFrom connects from a given loopback source IP (e.g. "127.0.0.9") to test relay control.
func DialFrom(t testing.TB, src, addr string) *Client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	cl := &Client{t: t, conn: c, tp: textproto.NewConn(c)}
	t.Cleanup(func() { c.Close() })
	code, msg := cl.read()
	if code != 220 {
		t.Fatalf("banner: %d %s", code, msg)
	}
	return cl
}

func (c *Client) read() (int, string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

// Cmd sends one command line and returns the reply code and text.
func (c *Client) Cmd(format string, args ...any) (int, string) {
	c.t.Helper()
	if err := c.tp.PrintfLine(format, args...); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return c.read()
}

// Expect sends a command and fails the test unless the reply has the given code.
func (c *Client) Expect(code int, format string, args ...any) string {
	c.t.Helper()
	got, msg := c.Cmd(format, args...)
	if got != code {
		c.t.Fatalf("%s: got %d %s, want %d", fmt.Sprintf(format, args...), got, msg, code)
	}
	return msg
}

// Data sends DATA and the body (dot-stuffed) and returns the final reply.
func (c *Client) Data(body string) (int, string) {
	c.t.Helper()
	if code, msg := c.Cmd("DATA"); code != 354 {
		c.t.Fatalf("DATA: %d %s", code, msg)
	}
	w := c.tp.DotWriter()
	if _, err := w.Write([]byte(body)); err != nil {
		c.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

// Send runs a whole transaction after EHLO and returns the final reply; it fails the test on
// any reply other than 2xx/3xx before the end of data.
func (c *Client) Send(from string, to []string, body string) (int, string) {
	c.t.Helper()
	c.Expect(250, "MAIL FROM:<%s>", from)
	for _, r := range to {
		c.Expect(250, "RCPT TO:<%s>", r)
	}
	return c.Data(body)
}

// Hello sends EHLO and returns the extension lines.
func (c *Client) Hello(name string) []string {
	c.t.Helper()
	msg := c.Expect(250, "EHLO %s", name)
	return strings.Split(msg, "\n")
}

// Close sends QUIT and closes.
func (c *Client) Close() {
	_ = c.tp.PrintfLine("QUIT")
	c.conn.Close()
}

// Message builds a small RFC 5322 message.
func Message(from, to, subject, body string) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d@test>\r\n\r\n%s\r\n",
		from, to, subject, time.Now().UnixNano(), body)
}

// Write sends s exactly as given (no CRLF added, no dot-stuffing): for tests of malformed input.
func (c *Client) Write(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Reply reads the next reply; err is set when the connection ends (or 30 s pass) instead.
func (c *Client) Reply() (code int, msg string, err error) {
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	return c.tp.ReadResponse(0)
}

// ExpectReply reads the next reply and fails the test unless it has the given code; it returns
// the reply as "code text".
func (c *Client) ExpectReply(code int) string {
	c.t.Helper()
	got, msg, err := c.Reply()
	if err != nil {
		c.t.Fatalf("waiting for %d: %v", code, err)
	}
	if got != code {
		c.t.Fatalf("got %d %s, want %d", got, msg, code)
	}
	return fmt.Sprintf("%d %s", got, msg)
}

// ExpectClosed fails the test unless the server closes the connection without another reply.
func (c *Client) ExpectClosed() {
	c.t.Helper()
	if code, msg, err := c.Reply(); err == nil {
		c.t.Fatalf("got another reply %d %s, want the connection closed", code, msg)
	}
}

// WriteErr is Write for use off the test goroutine: it returns the error instead of failing.
func (c *Client) WriteErr(s string) (int, error) { return c.conn.Write([]byte(s)) }
