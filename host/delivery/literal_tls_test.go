package delivery

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/testutil"
)

// A domain literal destination ("[192.0.2.1]", "[IPv6:2001:db8::1]") names its host by address:
// the certificate to verify is one for that IP address (an IP SAN), in IPv6 as in IPv4. The
// host's name as route writes it, brackets and "IPv6:" tag included, is not a name any
// certificate can carry.
func TestLiteralDestinationVerifiesIPCertificate(t *testing.T) {
	ca := testutil.NewTestCA(t)
	for _, tc := range []struct{ listen, ip string }{{"127.0.0.17:0", "127.0.0.17"}, {"[::1]:0", "::1"}} {
		t.Run(tc.ip, func(t *testing.T) {
			sink := testutil.StartSinkWith(t, tc.listen, testutil.SinkOptions{TLS: ca.ServerTLS(t, tc.ip)})
			ap := netip.MustParseAddrPort(sink.Addr)
			h := route.Host{Name: route.Target{IP: ap.Addr()}.String(), Addr: ap.Addr(), Port: ap.Port()}
			conn, err := New(Options{TLS: TLSRequired, RootCAs: ca.Pool(), CommandTimeout: 5 * time.Second}).
				Connect(context.Background(), []route.Host{h})
			if err != nil {
				t.Fatalf("Connect to %s: %v", h.Name, err)
			}
			defer conn.Close()
			if _, err := conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: s\r\n\r\nhi\r\n")); err != nil {
				t.Fatal(err)
			}
			if got := sink.WaitCount(t, 1, 5*time.Second)[0]; !got.TLS {
				t.Fatal("delivered without TLS")
			}
		})
	}
}
