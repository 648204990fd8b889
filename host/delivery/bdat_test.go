package delivery

import (
	"bufio"
	"bytes"
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
	"github.com/wasmta/wasmta/host/testutil"
)

// sinkConn connects to a test sink that hides the given EHLO keywords.
func sinkConn(t *testing.T, ip string, without ...string) (*testutil.Sink, *Conn) {
	t.Helper()
	sink := testutil.StartSink(t, ip+":0")
	sink.SetBehavior(testutil.Behavior{Without: without})
	ap := netip.MustParseAddrPort(sink.Addr)
	conn, err := New(Options{TLS: TLSDisabled, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second}).
		Connect(context.Background(), []route.Host{{Name: "sink", Addr: ap.Addr(), Port: ap.Port()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return sink, conn
}

// Bodies that test what DATA would have changed: dot-stuffing, a lone ".", 8-bit text, one
// larger than what goes out in the envelope's write, and two that DATA repairs (BDAT must not
// carry them as they are).
var bdatBodies = []struct {
	name, body string
	chunked    bool   // sent by BDAT when the server offers CHUNKING
	want       string // what the sink must receive
}{
	{"dots", "Subject: d\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n", true, ""},
	{"8bit", "Subject: é\r\n\r\ncafé\r\n", true, ""},
	{"large", "Subject: l\r\n\r\n" + strings.Repeat(".x"+strings.Repeat("y", 75)+"\r\n", 2000), true, ""},
	{"no final CRLF", "Subject: n\r\n\r\nlast line", false, "Subject: n\r\n\r\nlast line\r\n"},
	{"bare LF", "Subject: b\n\nbody\n", false, "Subject: b\r\n\r\nbody\r\n"},
}

// TestBDATDeliversSameOctets: with CHUNKING offered the content goes as BDAT and arrives
// exactly as DATA would deliver it; without CHUNKING (with and without PIPELINING) it goes by
// DATA, unchanged from before.
func TestBDATDeliversSameOctets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		without []string
		chunks  bool
	}{
		{"chunking+pipelining", nil, true},
		{"chunking only", []string{"PIPELINING"}, true},
		{"no chunking", []string{"CHUNKING"}, false},
		{"neither", []string{"CHUNKING", "PIPELINING"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, conn := sinkConn(t, "127.0.0.10", tc.without...)
			for i, b := range bdatBodies {
				reply, err := conn.Send("a@x.test", "b@y.test", nil, []byte(b.body))
				if err != nil || reply.Code != 250 || reply.Command != "." {
					t.Fatalf("%s: %+v %v", b.name, reply, err)
				}
				got := sink.WaitCount(t, i+1, 5*time.Second)[i]
				want := b.want
				if want == "" {
					want = b.body
				}
				if string(got.Data) != want {
					t.Errorf("%s: sink got %q, want %q", b.name, got.Data, want)
				}
				if got.Chunked != (tc.chunks && b.chunked) {
					t.Errorf("%s: chunked = %v, want %v", b.name, got.Chunked, tc.chunks && b.chunked)
				}
				if b.name == "8bit" && got.Body != "8BITMIME" {
					t.Errorf("8-bit body sent with BODY=%q", got.Body)
				}
			}
		})
	}
}

// TestBDATRefusals: every refusal keeps its meaning when the content goes by BDAT — the reply
// that refused (with the command it answered), transient or permanent by its class — and the
// connection carries the next message.
func TestBDATRefusals(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		var without []string
		if !pipelining {
			without = []string{"PIPELINING"}
		}
		for _, lines := range []int{1, 1000} { // in the envelope's write, and after it
			body := []byte("Subject: r\r\n\r\n" + strings.Repeat(strings.Repeat("z", 98)+"\r\n", lines))
			sink, conn := sinkConn(t, "127.0.0.11", without...)
			for _, tc := range []struct {
				b       testutil.Behavior
				code    int
				command string
			}{
				{testutil.Behavior{Mode: testutil.PermFail, At: "MAIL", Code: 553}, 553, "MAIL FROM:<a@x.test> SIZE=" + strconv.Itoa(len(body))},
				{testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550}, 550, "RCPT TO:<b@y.test>"},
				{testutil.Behavior{Mode: testutil.TempFail, At: "RCPT", Code: 452}, 452, "RCPT TO:<b@y.test>"},
				{testutil.Behavior{Mode: testutil.PermFail, At: "DATA", Code: 554}, 554, "."},
				{testutil.Behavior{Mode: testutil.TempFail, At: "DATA", Code: 451}, 451, "."},
			} {
				tc.b.Times = 1
				sink.SetBehavior(tc.b)
				_, err := conn.Send("a@x.test", "b@y.test", nil, body)
				e := message.AsError(err)
				if err == nil || e.Code != tc.code || e.Temporary() != (tc.code/100 == 4) || e.Reply.Command != tc.command {
					t.Fatalf("pipelining %v, %d lines, %s at %s: %v (command %q)", pipelining, lines, tc.b.Mode, tc.b.At, err, e.Reply.Command)
				}
				if conn.Broken() {
					t.Fatalf("pipelining %v, %d lines, %s at %s: connection broken", pipelining, lines, tc.b.Mode, tc.b.At)
				}
				if reply, err := conn.Send("a@x.test", "b@y.test", nil, body); err != nil || reply.Code != 250 {
					t.Fatalf("pipelining %v, %d lines, after %s at %s: %+v %v", pipelining, lines, tc.b.Mode, tc.b.At, reply, err)
				}
			}
			msgs := sink.Messages()
			if len(msgs) != 5 {
				t.Fatalf("sink got %d messages, want 5", len(msgs))
			}
			for _, m := range msgs {
				if !m.Chunked || !bytes.Equal(m.Data, body) {
					t.Fatalf("chunked %v, %d octets: %.60q", m.Chunked, len(m.Data), m.Data)
				}
			}
		}
	}
}

// TestBDATServerClosesMidChunk: a next hop that offers CHUNKING and hangs up while the chunk is
// still arriving is a lost connection (transient), never a delivery.
func TestBDATServerClosesMidChunk(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.12:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second)) // a client that sends no chunk cannot hang the test
		r := bufio.NewReader(c)
		io.WriteString(c, "220 mx.test ESMTP\r\n")
		r.ReadString('\n') // EHLO
		io.WriteString(c, "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
		var cmds []string
		for len(cmds) < 3 { // MAIL, RCPT, BDAT
			l, err := r.ReadString('\n')
			if err != nil {
				break
			}
			cmds = append(cmds, strings.TrimSpace(l))
		}
		io.WriteString(c, "250 ok\r\n250 ok\r\n")
		io.ReadFull(r, make([]byte, 10)) // part of the chunk, then hang up
		got <- strings.Join(cmds, "|")
	}()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	conn, err := New(Options{TLS: TLSDisabled, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second}).
		Connect(context.Background(), []route.Host{{Name: "mx.test", Addr: ap.Addr(), Port: ap.Port()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := []byte("Subject: c\r\n\r\n" + strings.Repeat("q", 1000) + "\r\n")
	_, err = conn.Send("a@x.test", "b@y.test", nil, body)
	e := message.AsError(err)
	if err == nil || !e.Temporary() || e.Enhanced != "4.4.2" || !conn.Broken() {
		t.Fatalf("server closed mid-chunk: %v (broken %v)", err, conn.Broken())
	}
	if cmds := <-got; cmds != "MAIL FROM:<a@x.test>|RCPT TO:<b@y.test>|BDAT "+strconv.Itoa(len(body))+" LAST" {
		t.Fatalf("commands %q", cmds)
	}
}

// TestRefusedEnvelopeWithoutPipelining: without PIPELINING a refused MAIL or RCPT ends the
// transaction there — no stray "." goes out for a DATA that was never sent (a server counts it
// as a protocol error, and go-smtp hangs up after three) — so the connection carries on.
func TestRefusedEnvelopeWithoutPipelining(t *testing.T) {
	sink, conn := sinkConn(t, "127.0.0.14", "PIPELINING", "CHUNKING")
	body := []byte("Subject: p\r\n\r\nhello\r\n")
	sink.SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Times: 4})
	for i := range 4 {
		if _, err := conn.Send("a@x.test", "b@y.test", nil, body); message.AsError(err).Code != 550 {
			t.Fatalf("refusal %d: %v", i+1, err)
		}
	}
	if reply, err := conn.Send("a@x.test", "b@y.test", nil, body); err != nil || reply.Code != 250 || conn.Broken() {
		t.Fatalf("after four refusals: %+v %v (broken %v)", reply, err, conn.Broken())
	}
}
