package delivery

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/testutil"
)

// A relay passes the client's DSN parameters on to a next hop that offers DSN (RFC 3461 §4),
// encoded so they arrive as the client gave them; to one that does not, it sends none (the
// server would refuse the unknown parameters) and the message is still delivered.
func TestDSNParametersPassedOn(t *testing.T) {
	dsn := &message.DSN{Ret: "HDRS", EnvID: "env+1=x y", Notify: []string{"SUCCESS", "FAILURE"},
		ORcptType: "RFC822", ORcpt: "orig+tag@example.com"}
	send := func(ip string, offer bool) testutil.Received {
		sink := testutil.StartSinkWith(t, ip+":0", testutil.SinkOptions{DSN: offer})
		ap := netip.MustParseAddrPort(sink.Addr)
		conn, err := New(Options{}).Connect(context.Background(), []route.Host{{Name: "mx", Addr: ap.Addr(), Port: ap.Port()}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Send("a@x.test", "b@y.test", dsn, []byte("Subject: d\r\n\r\nhi\r\n")); err != nil {
			t.Fatalf("send (DSN offered: %v): %v", offer, err)
		}
		return sink.Messages()[0]
	}
	got := send("127.0.0.31", true).DSN
	if got.Ret != "HDRS" || got.EnvID != "env+1=x y" || !slices.Equal(got.Notify, []string{"SUCCESS,FAILURE"}) ||
		!slices.Equal(got.ORcpt, []string{"RFC822;orig+tag@example.com"}) {
		t.Fatalf("next hop with DSN got %+v", got)
	}
	if got := send("127.0.0.32", false).DSN; got.Ret != "" || got.EnvID != "" || got.Notify[0] != "" || got.ORcpt[0] != "" {
		t.Fatalf("next hop without DSN got %+v", got)
	}
}

func TestXtext(t *testing.T) {
	for in, want := range map[string]string{
		"plain@example.com": "plain@example.com",
		"a+b=c d":           "a+2Bb+3Dc+20d",
		"é":                 "+C3+A9",
	} {
		if got := xtext(in); got != want {
			t.Errorf("xtext(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := utf8AddrXtext(`é+\@x`), `\x{E9}\x{2B}\x{5C}@x`; got != want {
		t.Errorf("utf8AddrXtext = %q, want %q", got, want)
	}
}
