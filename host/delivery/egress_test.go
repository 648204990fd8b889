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

// hostOf is the route.Host of a sink, named name (the name TLS verifies).
func hostOf(s *testutil.Sink, name string) route.Host {
	ap := netip.MustParseAddrPort(s.Addr)
	return route.Host{Name: name, Addr: ap.Addr(), Port: ap.Port()}
}

// Each of the five TLS modes against a sink whose certificate comes from a CA made here: the
// verifying modes take it only when told to trust that CA, the insecure ones always, and a
// certificate that fails verification is never retried in plain text.
func TestTLSModes(t *testing.T) {
	ca := testutil.NewTestCA(t)
	sink := testutil.StartSinkWith(t, "127.0.0.13:0", testutil.SinkOptions{TLS: ca.ServerTLS(t, "mx.test")})
	host := hostOf(sink, "mx.test")
	for _, tc := range []struct {
		mode     string
		trust    bool // verify against the test CA (else the system roots, which lack it)
		tls      bool // delivered over TLS
		verified bool
		fail     string // enhanced code of the failure; "" delivers
	}{
		{TLSOpportunistic, true, true, true, ""},
		{TLSOpportunistic, false, false, false, "4.7.5"},
		{TLSOpportunisticInsecure, false, true, false, ""},
		{TLSRequired, true, true, true, ""},
		{TLSRequired, false, false, false, "4.7.5"},
		{TLSRequiredInsecure, false, true, false, ""},
		{TLSDisabled, true, false, false, ""},
	} {
		name := tc.mode
		if tc.trust {
			name += "/trusted"
		}
		t.Run(name, func(t *testing.T) {
			opt := Options{TLS: tc.mode, CommandTimeout: 5 * time.Second}
			if tc.trust {
				opt.RootCAs = ca.Pool()
			}
			before, count := sink.Connections(), sink.Count()
			conn, err := New(opt).Connect(context.Background(), []route.Host{host})
			if tc.fail != "" {
				e := message.AsError(err)
				if err == nil || !e.Temporary() || !strings.Contains(e.Text, "did not verify") {
					t.Fatalf("want a transient failure naming the certificate, got %v", err)
				}
				if n := sink.Connections() - before; n != 1 {
					t.Fatalf("%d connections: a certificate that fails must not be retried in plain text", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: tls\r\n\r\nhi\r\n")); err != nil {
				t.Fatal(err)
			}
			got := sink.WaitCount(t, count+1, 5*time.Second)[count]
			info := conn.TLSInfo()
			if got.TLS != tc.tls || (info != nil) != tc.tls {
				t.Fatalf("sink saw TLS %v, connection reports %+v; want TLS %v", got.TLS, info, tc.tls)
			}
			if info != nil && (info.Verified == nil || *info.Verified != tc.verified || !strings.HasPrefix(info.Version, "TLS1.") || info.Cipher == "") {
				t.Fatalf("TLS info %+v, want verified %v", info, tc.verified)
			}
		})
	}

	// Required against a server without STARTTLS: transient, never plain text.
	plain := testutil.StartSink(t, "127.0.0.13:0")
	_, err := New(Options{TLS: TLSRequiredInsecure}).Connect(context.Background(), []route.Host{hostOf(plain, "plain.test")})
	if e := message.AsError(err); err == nil || !e.Temporary() || !strings.Contains(e.Text, "does not offer STARTTLS") {
		t.Fatalf("RequiredInsecure against a plain server: %v", err)
	}
	if plain.Count() != 0 {
		t.Fatal("a message went out in plain text")
	}
}

// A name mismatch is a verification failure too: the certificate is for another host.
func TestOpportunisticWrongName(t *testing.T) {
	ca := testutil.NewTestCA(t)
	sink := testutil.StartSinkWith(t, "127.0.0.13:0", testutil.SinkOptions{TLS: ca.ServerTLS(t, "other.test")})
	_, err := New(Options{RootCAs: ca.Pool()}).Connect(context.Background(), []route.Host{hostOf(sink, "mx.test")})
	if e := message.AsError(err); err == nil || e.Enhanced != "4.7.5" {
		t.Fatalf("certificate for another name: %v", err)
	}
}

const secret = "s3cret-Pa55"

// AUTH to a smarthost: PLAIN when offered, LOGIN when only that is, never before TLS unless
// allowed; a refused password is a transient failure that does not carry the password.
func TestSmarthostAuth(t *testing.T) {
	ca := testutil.NewTestCA(t)
	users := map[string]string{"relay-user": secret}
	for _, tc := range []struct {
		name  string
		sink  testutil.SinkOptions
		opt   Options
		mech  string // the mechanism the sink saw; "" when the connection must fail
		fail  string // enhanced code
		tried bool   // the sink saw an AUTH attempt that failed
	}{
		{name: "plain over TLS", sink: testutil.SinkOptions{TLS: ca.ServerTLS(t, "mx.test"), Users: users},
			opt: Options{AuthPassword: secret}, mech: "PLAIN"},
		{name: "login only", sink: testutil.SinkOptions{TLS: ca.ServerTLS(t, "mx.test"), Users: users, AuthMechs: []string{"LOGIN"}},
			opt: Options{AuthPassword: secret}, mech: "LOGIN"},
		{name: "wrong password", sink: testutil.SinkOptions{TLS: ca.ServerTLS(t, "mx.test"), Users: users},
			opt: Options{AuthPassword: "wrong-" + secret}, fail: "4.7.8", tried: true},
		{name: "no TLS", sink: testutil.SinkOptions{Users: users},
			opt: Options{AuthPassword: secret}, fail: "4.7.10"},
		{name: "no TLS, allowed", sink: testutil.SinkOptions{Users: users},
			opt: Options{AuthPassword: secret, AllowAuthWithoutTLS: true}, mech: "PLAIN"},
		{name: "no mechanism we know", sink: testutil.SinkOptions{TLS: ca.ServerTLS(t, "mx.test"), Users: users, AuthMechs: []string{"CRAM-MD5"}},
			opt: Options{AuthPassword: secret}, fail: "4.7.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := testutil.StartSinkWith(t, "127.0.0.14:0", tc.sink)
			opt := tc.opt
			opt.AuthUsername, opt.RootCAs, opt.TLS = "relay-user", ca.Pool(), TLSOpportunistic
			conn, err := New(opt).Connect(context.Background(), []route.Host{hostOf(sink, "mx.test")})
			if tc.fail != "" {
				e := message.AsError(err)
				if err == nil || !e.Temporary() || !strings.Contains(e.Text, tc.fail) && e.Enhanced != tc.fail {
					t.Fatalf("want a transient %s, got %v", tc.fail, err)
				}
				for _, text := range []string{e.Text, e.Error(), e.Reply.String()} {
					if strings.Contains(text, secret) || strings.Contains(text, "czNjcmV0") {
						t.Fatalf("the failure carries the password: %s", text)
					}
				}
				if got := sink.AuthFailures() > 0; got != tc.tried {
					t.Fatalf("sink saw a failed AUTH: %v, want %v", got, tc.tried)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: auth\r\n\r\nhi\r\n")); err != nil {
				t.Fatal(err)
			}
			got := sink.WaitCount(t, 1, 5*time.Second)[0]
			if got.AuthUser != "relay-user" || got.AuthMech != tc.mech {
				t.Fatalf("sink saw user %q by %q, want relay-user by %s", got.AuthUser, got.AuthMech, tc.mech)
			}
		})
	}
}

// Connections leave from the configured source address.
func TestSourceAddress(t *testing.T) {
	sink := testutil.StartSink(t, "127.0.0.15:0")
	src := netip.MustParseAddr("127.0.0.16")
	conn, err := New(Options{SourceAddr: src}).Connect(context.Background(), []route.Host{hostOf(sink, "mx.test")})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: src\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := sink.WaitCount(t, 1, 5*time.Second)[0]; got.Remote != src.String() {
		t.Fatalf("connection came from %s, want %s", got.Remote, src)
	}
}
