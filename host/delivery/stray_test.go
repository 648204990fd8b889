package delivery

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// scriptedHop is a next hop on ip that greets, answers EHLO with ext, and then, for each
// command line it reads, writes what answer returns for it (after reading a BDAT chunk, or a
// DATA body up to its "."). It hangs up when answer returns "".
func scriptedHop(t *testing.T, ip string, ext []string, answer func(cmd string) string) *Conn {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		io.WriteString(c, "220 mx.test ESMTP\r\n")
		r.ReadString('\n') // EHLO
		hello := "250-mx.test\r\n"
		for _, e := range ext {
			hello += "250-" + e + "\r\n"
		}
		io.WriteString(c, hello+"250 8BITMIME\r\n")
		inData := false
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.TrimRight(l, "\r\n")
			if inData {
				if cmd != "." {
					continue
				}
				inData = false
			}
			if f := strings.Fields(cmd); len(f) >= 2 && f[0] == "BDAT" {
				n, _ := strconv.Atoi(f[1])
				if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
					return
				}
			}
			a := answer(cmd)
			if a == "" {
				return
			}
			if strings.HasPrefix(a, "354") {
				inData = true
			}
			io.WriteString(c, a)
		}
	}()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	conn, err := New(Options{TLS: TLSDisabled, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second}).
		Connect(context.Background(), []route.Host{{Name: "mx.test", Addr: ap.Addr(), Port: ap.Port()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// TestStrayReplyIsNotADelivery: a next hop that sends a reply nobody asked for (here a "250"
// before the content arrives, then its real answer, a refusal) is out of step: the stray reply
// must not be taken for the one to the content, and the connection is not reused (every later
// reply would answer the wrong command). The message is a transient failure, never delivered.
func TestStrayReplyIsNotADelivery(t *testing.T) {
	body := []byte("Subject: s\r\n\r\nhello\r\n")
	for _, tc := range []struct {
		name string
		ext  []string
		// answer: the replies the hop writes, in one write, after each command
		answer func(cmd string) string
	}{
		{"BDAT without PIPELINING: 250 before the chunk", []string{"CHUNKING"}, func(cmd string) string {
			switch {
			case strings.HasPrefix(cmd, "RCPT"):
				return "250 ok\r\n250 2.0.0 early\r\n"
			case strings.HasPrefix(cmd, "BDAT"):
				return "554 5.6.0 refused\r\n"
			}
			return "250 ok\r\n"
		}},
		{"BDAT with PIPELINING: one reply too many", []string{"CHUNKING", "PIPELINING"}, func(cmd string) string {
			switch {
			case strings.HasPrefix(cmd, "BDAT"):
				return "250 2.0.0 early\r\n554 5.6.0 refused\r\n"
			}
			return "250 ok\r\n"
		}},
		{"DATA: 250 with the 354", []string{"PIPELINING"}, func(cmd string) string {
			switch cmd {
			case "DATA":
				return "354 go\r\n250 2.0.0 early\r\n"
			case ".":
				return "554 5.6.0 refused\r\n"
			}
			return "250 ok\r\n"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := scriptedHop(t, "127.0.0.15", tc.ext, tc.answer)
			reply, err := conn.Send("a@x.test", "b@y.test", nil, body)
			if err == nil {
				t.Fatalf("reported delivered (%+v) on a reply out of step", reply)
			}
			if e := message.AsError(err); !e.Temporary() {
				t.Errorf("out of step: %v, want a transient failure", err)
			}
			if !conn.Broken() {
				t.Error("the connection would be reused out of step")
			}
		})
	}
}

// TestBDATServerClosesAfterEnvelope: a next hop that accepts the envelope and hangs up without
// answering the chunk is a lost connection (transient), never a delivery.
func TestBDATServerClosesAfterEnvelope(t *testing.T) {
	for _, ext := range [][]string{{"CHUNKING", "PIPELINING"}, {"CHUNKING"}} {
		conn := scriptedHop(t, "127.0.0.15", ext, func(cmd string) string {
			if strings.HasPrefix(cmd, "BDAT") {
				return ""
			}
			return "250 ok\r\n"
		})
		_, err := conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: c\r\n\r\nhi\r\n"))
		if e := message.AsError(err); err == nil || !e.Temporary() || !conn.Broken() {
			t.Fatalf("%v: hop hung up after the envelope: %v (broken %v)", ext, err, conn.Broken())
		}
	}
}
