package delivery

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/testutil"
)

// DataTimeout bounds the wait for the reply to the final dot: a server slower than that fails
// the message transiently, and the failure says it timed out (not merely "lost"), with the
// command it was waiting on.
func TestDataTimeoutSaysTimedOut(t *testing.T) {
	s := testutil.StartSinkWith(t, "127.0.0.12:0", testutil.SinkOptions{DataDelay: 2 * time.Second})
	ap := netip.MustParseAddrPort(s.Addr)
	c := New(Options{DataTimeout: 300 * time.Millisecond, TLS: TLSDisabled})
	conn, err := c.Connect(context.Background(), []route.Host{{Name: "slow.test", Addr: ap.Addr(), Port: ap.Port()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Send("a@sender.test", "b@slow.test", nil, []byte("Subject: x\r\n\r\nhi\r\n"))
	e := message.AsError(err)
	if err == nil || e.Code != 451 || e.Enhanced != "4.4.2" || e.Text != "connection to slow.test timed out" || e.Reply.Command != "." {
		t.Fatalf("got %v (%q, command %q); want 451 4.4.2 connection to slow.test timed out, after \".\"", err, e.Text, e.Reply.Command)
	}
	if !conn.Broken() {
		t.Fatal("a connection whose reply timed out is still used")
	}
	if strings.Contains(e.Text, "i/o") {
		t.Fatalf("internal detail in the reply text: %q", e.Text)
	}
}
