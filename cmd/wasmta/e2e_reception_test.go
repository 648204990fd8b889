package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Reception edge cases end to end: the real binary, a real spool, a sink as the next hop. Each
// refused message must reach neither the spool (no Reception record) nor the sink, and a
// message sent after it on a new connection must arrive (the server is up, the sink reachable).

// noReception fails the test if any Reception record names rcpt.
func noReception(t *testing.T, e *env, rcpt string) {
	t.Helper()
	for _, r := range e.relay.LogRecords() {
		if r["type"] == "Reception" && r["recipient"] == rcpt {
			t.Fatalf("Reception record for %s: %v", rcpt, r)
		}
	}
}

func TestBareCRNeverForwarded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	sink := e.sinks["127.0.0.4"]
	for _, data := range []string{
		"Subject: smuggle\r\n\r\nline1\r.\rMAIL FROM:<x@evil.test>\rRCPT TO:<v@implicit.test>\r\n.\r\n",
		"Subject: smuggle\r\n\r\nline1\n.\nMAIL FROM:<x@evil.test>\r\n.\r\n",
		"Subject: crcr\r\n\r\nabc\r\r\n.\r\n", // go-smtp alone would miss this end
	} {
		c := testutil.Dial(t, e.relay.SMTP)
		c.Hello("client.test")
		c.Expect(250, "MAIL FROM:<a@sender.test>")
		c.Expect(250, "RCPT TO:<bare@implicit.test>")
		c.Expect(354, "DATA")
		c.Write(data)
		if r := c.ExpectReply(550); !strings.Contains(r, "5.6.0") {
			t.Fatalf("reply %q", r)
		}
		c.Close()
	}
	// A clean message afterwards: once it is delivered, anything queued before it would have
	// been too (same destination, same queue).
	e.send("a@sender.test", "clean@implicit.test", "clean")
	got := sink.WaitCount(t, 1, 10*time.Second)
	for _, m := range sink.Messages() {
		if m.To[0] != "clean@implicit.test" {
			t.Fatalf("sink got %v", m.To)
		}
	}
	if len(got) != 1 {
		t.Fatalf("sink got %d", len(got))
	}
	noReception(t, e, "bare@implicit.test")
}

// A command cut off by the idle timeout (no CRLF) must not run.
func TestPartialRcptAtIdleTimeoutNotQueued(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	e.relay.Kill()
	setSMTP(t, e, `idle_timeout = "500ms"`)
	for _, partial := range []string{"RCPT TO:<user@implicit.test>", "RCPT TO:user@implicit.test", "RCPT TO:<user@implicit.te"} {
		c := testutil.Dial(t, e.relay.SMTP)
		c.Hello("client.test")
		c.Expect(250, "MAIL FROM:<a@sender.test>")
		c.Write(partial) // stalls mid-line past the timeout
		// go-smtp refuses the last one's syntax itself (501) before the 421; none may run.
		var replies []string
		for {
			code, msg, err := c.Reply()
			if err != nil {
				break
			}
			replies = append(replies, fmt.Sprint(code, " ", msg))
			c.WriteErr(">\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\n") // the rest, too late
		}
		if len(replies) == 0 || !strings.HasPrefix(replies[len(replies)-1], "421 4.4.2") {
			t.Fatalf("%s: replies %q, want the last to be 421 4.4.2", partial, replies)
		}
		for _, r := range replies {
			if r[0] == '2' || r[0] == '3' {
				t.Fatalf("%s: replies %q", partial, replies)
			}
		}
	}
	e.send("a@sender.test", "clean@implicit.test", "clean")
	e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
	noReception(t, e, "user@implicit.te")
	noReception(t, e, "user@implicit.test")
	if n := e.sinks["127.0.0.4"].Count(); n != 1 {
		t.Fatalf("sink got %d messages", n)
	}
}

// setSMTP adds lines to the [smtp] table of the relay's config and restarts it.
func setSMTP(t *testing.T, e *env, lines string) {
	t.Helper()
	b, err := os.ReadFile(e.relay.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.relay.Config, []byte(strings.Replace(string(b), "[smtp]\n", "[smtp]\n"+lines+"\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.relay.Start()
}

func TestLongHeloCappedInForwardedTrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	c := testutil.Dial(t, e.relay.SMTP)
	c.Hello(strings.Repeat("h", 1990))
	c.Expect(250, "MAIL FROM:<a@sender.test>")
	c.Expect(250, "RCPT TO:<r@implicit.test>")
	if code, msg := c.Data("Subject: helo\r\n\r\nx\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	m := e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)[0]
	for _, l := range strings.Split(string(m.Data), "\r\n") {
		if len(l) > 998 {
			t.Fatalf("forwarded header line of %d octets", len(l))
		}
	}
	if !strings.Contains(string(m.Data), "Received: from "+strings.Repeat("h", 255)+"...") {
		t.Fatalf("trace: %.300q", m.Data)
	}
}

// Exactly max_message_size is accepted and forwarded; one octet more is refused.
func TestExactSizeLimitEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	e.relay.Kill()
	setSMTP(t, e, `max_message_size = "1KiB"`)
	body := func(n int) string {
		h := "Subject: size\r\n\r\n"
		return h + strings.Repeat("y", n-len(h)-2) + "\r\n"
	}
	c := testutil.Dial(t, e.relay.SMTP)
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<a@sender.test> SIZE=1024")
	c.Expect(250, "RCPT TO:<exact@implicit.test>")
	if code, msg := c.Data(body(1024)); code != 250 {
		t.Fatalf("exactly 1 KiB: %d %s", code, msg)
	}
	c.Expect(552, "MAIL FROM:<a@sender.test> SIZE=1025")
	c.Expect(250, "MAIL FROM:<a@sender.test>")
	c.Expect(250, "RCPT TO:<over@implicit.test>")
	if code, msg := c.Data(body(1025)); code != 552 || !strings.HasPrefix(msg, "5.3.4") {
		t.Fatalf("1 KiB + 1: %d %s", code, msg)
	}
	m := e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)[0]
	if m.To[0] != "exact@implicit.test" {
		t.Fatalf("forwarded %v", m.To)
	}
	noReception(t, e, "over@implicit.test")
}
