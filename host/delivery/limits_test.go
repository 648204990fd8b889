package delivery

import (
	"context"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/testutil"
)

func sinkHost(t *testing.T, name, addr string) (*testutil.Sink, route.Host) {
	s := testutil.StartSink(t, addr)
	ap := netip.MustParseAddrPort(s.Addr)
	return s, route.Host{Name: name, Addr: ap.Addr(), Port: ap.Port()}
}

// A destination that answers with an endless reply must not make the relay read it all: the
// host fails transiently, the next host of the site is tried, and memory stays bounded.
func TestHostileReplyIsBoundedAndNextHostTried(t *testing.T) {
	for _, mode := range []testutil.Mode{testutil.FloodLine, testutil.FloodLines} {
		t.Run(mode.String(), func(t *testing.T) {
			flood, hostile := sinkHost(t, "hostile", "127.0.0.10:0")
			flood.SetBehavior(testutil.Behavior{Mode: mode})
			live, good := sinkHost(t, "good", "127.0.0.11:0")
			// A short command timeout keeps the old, unbounded reader from eating the machine
			// before the read deadline stops it; the bounded reader never needs it.
			c := New(Options{CommandTimeout: time.Second})

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.Connect(context.Background(), []route.Host{hostile})
			runtime.ReadMemStats(&after)
			// The flood writes 32 KiB chunks; a bounded reader allocates a few of its own.
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 8<<20 {
				t.Fatalf("reading the hostile reply allocated %d MiB", grown>>20)
			}
			e := message.AsError(err)
			if err == nil || !e.Temporary() {
				t.Fatalf("hostile host alone: %v", err)
			}
			if !strings.Contains(e.Text, "hostile") || !strings.Contains(e.Text, "reply") || !strings.Contains(e.Text, "limit") {
				t.Fatalf("failure text does not say why: %q", e.Text)
			}
			if strings.Contains(e.Text, "xxxx") || strings.Contains(e.Text, "flooding") {
				t.Fatalf("failure text carries the hostile reply: %.200q", e.Text)
			}

			conn, err := c.Connect(context.Background(), []route.Host{hostile, good})
			if err != nil {
				t.Fatalf("next host not tried: %v", err)
			}
			defer conn.Close()
			if conn.Host().Name != "good" {
				t.Fatalf("connected to %s", conn.Host().Name)
			}
			if _, err := conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: s\r\n\r\nhi\r\n")); err != nil {
				t.Fatal(err)
			}
			live.WaitCount(t, 1, 5*time.Second)
		})
	}
}

func TestEightBitNeedsAnExtension(t *testing.T) {
	body8 := []byte("Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n")
	body7 := []byte("Subject: plain\r\n\r\nhi\r\n")
	for _, tc := range []struct {
		name     string
		without  []string
		rcpt     string
		body     []byte
		code     int    // 0: delivered
		enhanced string // of the refusal
		wantBody string // BODY= the sink saw
		wantUTF8 bool
	}{
		{"8bit to 8BITMIME", []string{"SMTPUTF8"}, "b@y.test", body8, 0, "", "8BITMIME", false},
		{"8bit to SMTPUTF8 only", []string{"8BITMIME"}, "b@y.test", body8, 0, "", "", false},
		{"8bit to neither", []string{"8BITMIME", "SMTPUTF8"}, "b@y.test", body8, 554, "5.6.3", "", false},
		{"7bit to neither", []string{"8BITMIME", "SMTPUTF8"}, "b@y.test", body7, 0, "", "", false},
		{"UTF-8 address to SMTPUTF8", nil, "j\xc3\xbcrgen@y.test", body8, 0, "", "8BITMIME", true},
		{"UTF-8 address without SMTPUTF8", []string{"SMTPUTF8"}, "j\xc3\xbcrgen@y.test", body7, 553, "5.6.7", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, h := sinkHost(t, "mx", "127.0.0.12:0")
			sink.SetBehavior(testutil.Behavior{Without: tc.without})
			conn, err := New(Options{}).Connect(context.Background(), []route.Host{h})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = conn.Send("a@x.test", tc.rcpt, nil, tc.body)
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				got := sink.WaitCount(t, 1, 5*time.Second)[0]
				if got.Body != tc.wantBody || got.SMTPUTF8 != tc.wantUTF8 || string(got.Data) != string(tc.body) {
					t.Fatalf("sink got BODY=%q SMTPUTF8=%v %q", got.Body, got.SMTPUTF8, got.Data)
				}
				return
			}
			e := message.AsError(err)
			if err == nil || e.Code != tc.code || e.Enhanced != tc.enhanced || e.Temporary() {
				t.Fatalf("got %v, want %d %s", err, tc.code, tc.enhanced)
			}
			if !strings.Contains(e.Text, "mx") {
				t.Fatalf("refusal does not name the host: %q", e.Text)
			}
			// Nothing was sent and the connection still carries mail.
			if _, err := conn.Send("a@x.test", "c@y.test", nil, body7); err != nil {
				t.Fatalf("connection unusable after the refusal: %v", err)
			}
			got := sink.WaitCount(t, 1, 5*time.Second)
			if len(got) != 1 || got[0].To[0] != "c@y.test" {
				t.Fatalf("sink received %+v", got)
			}
		})
	}
}

// The same limits hold for a reply in the middle of a session (here: to the end of data): the
// message fails transiently and the connection is not used again.
func TestHostileReplyMidSession(t *testing.T) {
	for _, mode := range []testutil.Mode{testutil.FloodLine, testutil.FloodLines} {
		t.Run(mode.String(), func(t *testing.T) {
			sink, h := sinkHost(t, "hostile", "127.0.0.10:0")
			sink.SetBehavior(testutil.Behavior{Mode: mode, At: "DATA"})
			conn, err := New(Options{CommandTimeout: time.Second, DataTimeout: time.Second}).Connect(context.Background(), []route.Host{h})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: s\r\n\r\nhi\r\n"))
			runtime.ReadMemStats(&after)
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 8<<20 {
				t.Fatalf("reading the hostile reply allocated %d MiB", grown>>20)
			}
			e := message.AsError(err)
			if err == nil || !e.Temporary() || !strings.Contains(e.Text, "exceeds the limit") {
				t.Fatalf("got %v", err)
			}
			if !conn.Broken() {
				t.Fatal("connection still considered usable")
			}
		})
	}
}
