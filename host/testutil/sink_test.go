package testutil

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const testMsg = "From: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n.dot line\r\n"

// send delivers one message with the go-smtp client over plain SMTP.
func send(t *testing.T, addr, from string, to ...string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return err
	}
	if err := c.SendMail(from, to, strings.NewReader(testMsg)); err != nil {
		return err
	}
	return c.Quit()
}

func smtpCode(t *testing.T, err error) (int, smtp.EnhancedCode, string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("want *smtp.SMTPError, got %T %v", err, err)
	}
	return se.Code, se.EnhancedCode, se.Message
}

func TestSinkAcceptRecords(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	if host, _, _ := net.SplitHostPort(s.Addr); host != "127.0.0.2" {
		t.Fatalf("Addr = %q, want host 127.0.0.2", s.Addr)
	}
	before := time.Now()
	if err := send(t, s.Addr, "a@example.org", "b@example.com", "c@example.com"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := s.Count(); got != 1 {
		t.Fatalf("Count = %d, want 1", got)
	}
	if got := s.Connections(); got != 1 {
		t.Fatalf("Connections = %d, want 1", got)
	}
	m := s.Messages()[0]
	if m.From != "a@example.org" {
		t.Errorf("From = %q", m.From)
	}
	if strings.Join(m.To, ",") != "b@example.com,c@example.com" {
		t.Errorf("To = %q", m.To)
	}
	if string(m.Data) != testMsg {
		t.Errorf("Data = %q, want %q", m.Data, testMsg)
	}
	if m.Helo != "client.example.org" {
		t.Errorf("Helo = %q", m.Helo)
	}
	if m.TLS {
		t.Errorf("TLS = true on a plain connection")
	}
	if m.At.Before(before) || m.At.After(time.Now()) {
		t.Errorf("At = %v out of range", m.At)
	}

	// Messages returns a copy.
	msgs := s.Messages()
	msgs[0].To[0] = "changed"
	msgs[0].Data[0] = 'X'
	if m2 := s.Messages()[0]; m2.To[0] != "b@example.com" || m2.Data[0] != 'F' {
		t.Errorf("Messages did not return a copy")
	}
}

func TestSinkTempFailTimes(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	s.SetBehavior(Behavior{Mode: TempFail, Times: 2})
	for i := range 2 {
		err := send(t, s.Addr, "a@example.org", "b@example.com")
		code, ec, _ := smtpCode(t, err)
		if code != 451 || ec != (smtp.EnhancedCode{4, 0, 0}) {
			t.Fatalf("attempt %d: got %d %v, want 451 4.0.0", i, code, ec)
		}
	}
	if s.Count() != 0 {
		t.Fatalf("failed messages were recorded")
	}
	if err := send(t, s.Addr, "a@example.org", "b@example.com"); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if s.Count() != 1 || s.Connections() != 3 {
		t.Fatalf("Count = %d, Connections = %d; want 1, 3", s.Count(), s.Connections())
	}
}

func TestSinkPermFail(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	for _, at := range []string{"MAIL", "RCPT", "data"} {
		s.SetBehavior(Behavior{Mode: PermFail, At: at})
		err := send(t, s.Addr, "a@example.org", "b@example.com")
		code, ec, msg := smtpCode(t, err)
		if code != 550 || ec != (smtp.EnhancedCode{5, 0, 0}) {
			t.Errorf("At %s: got %d %v %q, want 550 5.0.0", at, code, ec, msg)
		}
		if !strings.Contains(msg, strings.ToUpper(at)) {
			t.Errorf("At %s: default text %q does not name the command", at, msg)
		}
	}
	s.SetBehavior(Behavior{Mode: PermFail, At: "DATA", Code: 554, Text: "no thanks"})
	code, ec, msg := smtpCode(t, send(t, s.Addr, "a@example.org", "b@example.com"))
	if code != 554 || ec != (smtp.EnhancedCode{5, 0, 0}) || msg != "no thanks" {
		t.Errorf("got %d %v %q, want 554 5.0.0 \"no thanks\"", code, ec, msg)
	}
	if s.Count() != 0 {
		t.Fatalf("Count = %d, want 0", s.Count())
	}
	s.SetBehavior(Behavior{})
	if err := send(t, s.Addr, "a@example.org", "b@example.com"); err != nil {
		t.Fatalf("after reset to Accept: %v", err)
	}
}

func TestSinkRcptFailureKeepsOtherRecipients(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	s.SetBehavior(Behavior{Mode: TempFail, At: "RCPT", Code: 452, Times: 1})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := smtpCode(t, c.Rcpt("b@example.com", nil)); code != 452 {
		t.Fatalf("first RCPT code = %d, want 452", code)
	}
	if err := c.Rcpt("c@example.com", nil); err != nil {
		t.Fatalf("second RCPT: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "c@example.com" {
		t.Fatalf("messages = %+v, want one to c@example.com", msgs)
	}
}

func TestSinkHang(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	s.SetBehavior(Behavior{Mode: Hang, Times: 1})

	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read from hung sink: n=%d %q err=%v, want timeout and no banner", n, buf[:n], err)
	}

	// Times: 1, so the next connection is served normally.
	if err := send(t, s.Addr, "a@example.org", "b@example.com"); err != nil {
		t.Fatalf("send after hang: %v", err)
	}
	if got := s.Connections(); got != 2 {
		t.Fatalf("Connections = %d, want 2", got)
	}

	// Closing the sink drops the hung connection and refuses new ones.
	s.Close()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("hung connection still open after Close: read %q", buf[:n])
	} else if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("hung connection not closed by Close")
	}
	if c, err := net.Dial("tcp", s.Addr); err == nil {
		c.Close()
		t.Fatalf("dial after Close succeeded")
	}
	s.Close() // idempotent
}

func TestStartSinksSharedPort(t *testing.T) {
	port, sinks := StartSinks(t, "127.0.0.2", "127.0.0.3")
	if len(sinks) != 2 {
		t.Fatalf("got %d sinks", len(sinks))
	}
	for i, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		want := net.JoinHostPort(ip, strconv.Itoa(port))
		if sinks[i].Addr != want {
			t.Fatalf("sink %d Addr = %q, want %q", i, sinks[i].Addr, want)
		}
	}
	sinks[1].SetBehavior(Behavior{Mode: PermFail})
	if err := send(t, sinks[0].Addr, "a@example.org", "one@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := send(t, sinks[1].Addr, "a@example.org", "two@example.com"); err == nil {
		t.Fatalf("second sink accepted despite PermFail")
	}
	if sinks[0].Count() != 1 || sinks[1].Count() != 0 {
		t.Fatalf("counts = %d, %d; want 1, 0", sinks[0].Count(), sinks[1].Count())
	}
	if sinks[1].Connections() != 1 {
		t.Fatalf("second sink saw %d connections, want 1", sinks[1].Connections())
	}
}

func TestStartSinkFixedPort(t *testing.T) {
	port := MustListenPort(t, "127.0.0.3")
	if port <= 0 {
		t.Fatalf("MustListenPort = %d", port)
	}
	s := StartSink(t, net.JoinHostPort("127.0.0.3", strconv.Itoa(port)))
	if s.Addr != net.JoinHostPort("127.0.0.3", strconv.Itoa(port)) {
		t.Fatalf("Addr = %q", s.Addr)
	}
	msg := expectFatal(t, func(tb testing.TB) { StartSink(tb, s.Addr) })
	if !strings.Contains(msg, s.Addr) {
		t.Errorf("fatal message %q does not name the address", msg)
	}
}

func TestSinkWaitCount(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			c, err := smtp.Dial(s.Addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			errs <- c.SendMail("a@example.org", []string{"b@example.com"}, bytes.NewReader([]byte(testMsg)))
		})
	}
	msgs := s.WaitCount(t, 3, 5*time.Second)
	if len(msgs) != 3 {
		t.Fatalf("WaitCount returned %d messages", len(msgs))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	msg := expectFatal(t, func(tb testing.TB) { s.WaitCount(tb, 4, 20*time.Millisecond) })
	for _, want := range []string{s.Addr, "3 message(s)", "at least 4", "b@example.com"} {
		if !strings.Contains(msg, want) {
			t.Errorf("timeout message %q lacks %q", msg, want)
		}
	}
}

func TestSetBehaviorBadAt(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	defer func() {
		if recover() == nil {
			t.Fatalf("SetBehavior with At=HELO did not panic")
		}
	}()
	s.SetBehavior(Behavior{Mode: TempFail, At: "HELO"})
}

func TestSinkFloods(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want string // what the first 8 KiB look like
	}{
		{FloodLine, "220 xxxxxxxx"},
		{FloodLines, "220-sink.test flooding"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			s := StartSink(t, "127.0.0.2:0")
			s.SetBehavior(Behavior{Mode: tc.mode, Times: 1})
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 8<<10)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if !strings.HasPrefix(string(buf), tc.want) {
				t.Fatalf("flood starts %q", buf[:40])
			}
			if tc.mode == FloodLine && bytes.ContainsAny(buf, "\r\n") {
				t.Fatal("endless line has a line end")
			}
			if tc.mode == FloodLines && bytes.Count(buf, []byte("\r\n220-")) < 100 {
				t.Fatal("too few continuation lines")
			}
			// Times: 1 — the next connection is served normally.
			if err := send(t, s.Addr, "a@example.org", "b@example.com"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSinkWithoutHidesExtensions(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	c := Dial(t, s.Addr)
	exts := strings.Join(c.Hello("a.test"), " ")
	c.Close()
	if !strings.Contains(exts, "8BITMIME") || !strings.Contains(exts, "SMTPUTF8") {
		t.Fatalf("default EHLO: %s", exts)
	}
	s.SetBehavior(Behavior{Without: []string{"8bitmime", "SMTPUTF8"}})
	c = Dial(t, s.Addr)
	defer c.Close()
	exts = strings.Join(c.Hello("a.test"), " ")
	if strings.Contains(exts, "8BITMIME") || strings.Contains(exts, "SMTPUTF8") || !strings.Contains(exts, "PIPELINING") {
		t.Fatalf("EHLO without 8BITMIME and SMTPUTF8: %s", exts)
	}
	if code, _ := c.Send("a@x.test", []string{"b@y.test"}, "Subject: s\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("send: %d", code)
	}
	if m := s.Messages()[0]; m.Body != "" || m.SMTPUTF8 {
		t.Fatalf("recorded %+v", m)
	}
}

func TestSinkFloodsAtData(t *testing.T) {
	s := StartSink(t, "127.0.0.2:0")
	s.SetBehavior(Behavior{Mode: FloodLines, At: "DATA", Times: 1})
	c := Dial(t, s.Addr)
	c.Hello("a.test")
	c.Expect(250, "MAIL FROM:<a@x.test>")
	c.Expect(250, "RCPT TO:<b@y.test>")
	c.Expect(354, "DATA")
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte("Subject: s\r\n\r\nhi\r\n.\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8<<10)
	if _, err := io.ReadFull(c.conn, buf); err != nil {
		t.Fatal(err)
	}
	c.conn.Close()
	if !strings.HasPrefix(string(buf), "250-sink.test flooding") || s.Count() != 0 {
		t.Fatalf("flood starts %q, %d recorded", buf[:40], s.Count())
	}
}
