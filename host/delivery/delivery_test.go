package delivery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/smtpserver"
	"github.com/wasmta/wasmta/host/testutil"
)

// capture is a Receiver that records what wasmta's own SMTP server accepted.
type capture struct {
	mu     sync.Mutex
	bodies []string
}

func (c *capture) SubmitBatches(batches []message.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range batches {
		c.bodies = append(c.bodies, string(b.Body))
	}
	return nil
}

func selfSigned(t *testing.T) *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.test"},
		DNSNames: []string{"mx.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// startTLSServer runs wasmta's own SMTP server with STARTTLS on 127.0.0.6.
func startTLSServer(t *testing.T) (*capture, route.Host) {
	rec := &capture{}
	s := smtpserver.New(smtpserver.Options{
		Hostname: "mx.test", Listen: []string{"127.0.0.6:0"},
		RelayHosts:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		MaxMessageSize: 1 << 20, MaxRecipients: 10, MaxLineLength: 2000, MaxConnections: 10,
		IdleTimeout: 10 * time.Second, TLS: selfSigned(t), Receiver: rec,
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	ap := netip.MustParseAddrPort(s.Addrs()[0].String())
	return rec, route.Host{Name: "mx.test", Addr: ap.Addr(), Port: ap.Port()}
}

func TestOpportunisticSTARTTLSAndReuse(t *testing.T) {
	rec, host := startTLSServer(t)
	// The server's certificate is self-signed: only the insecure mode takes it.
	c := New(Options{EHLOName: "relay.test", TLS: TLSOpportunisticInsecure})
	conn, err := c.Connect(context.Background(), []route.Host{host})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !conn.TLS() {
		t.Fatal("STARTTLS offered but not used")
	}
	for i := range 3 {
		reply, err := conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: s\r\n\r\n.leading dot\r\n"))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if reply.Code != 250 || !strings.Contains(reply.Text, "queued as") {
			t.Fatalf("reply %+v", reply)
		}
	}
	if conn.Sent() != 3 || len(rec.bodies) != 3 {
		t.Fatalf("sent %d, received %d", conn.Sent(), len(rec.bodies))
	}
	if !strings.Contains(rec.bodies[0], "with ESMTPS") || !strings.Contains(rec.bodies[0], "\r\n.leading dot\r\n") {
		t.Fatalf("body not intact or not over TLS:\n%s", rec.bodies[0])
	}
}

func TestTLSDisabledAndRequired(t *testing.T) {
	_, host := startTLSServer(t)
	conn, err := New(Options{TLS: TLSDisabled}).Connect(context.Background(), []route.Host{host})
	if err != nil {
		t.Fatal(err)
	}
	if conn.TLS() {
		t.Fatal("TLS used although disabled")
	}
	conn.Close()

	// A sink without STARTTLS cannot satisfy Required mode: transient, never plain text.
	sink := testutil.StartSink(t, "127.0.0.7:0")
	ap := netip.MustParseAddrPort(sink.Addr)
	_, err = New(Options{TLS: TLSRequired}).Connect(context.Background(), []route.Host{{Name: "sink", Addr: ap.Addr(), Port: ap.Port()}})
	if e := message.AsError(err); err == nil || !e.Temporary() {
		t.Fatalf("required TLS against a plain server: %v", err)
	}
}

func TestNextHostOnConnectionFailureAndReplyClasses(t *testing.T) {
	sink := testutil.StartSink(t, "127.0.0.8:0")
	ap := netip.MustParseAddrPort(sink.Addr)
	dead := route.Host{Name: "dead", Addr: netip.MustParseAddr("127.0.0.9"), Port: ap.Port()} // nothing listens
	live := route.Host{Name: "live", Addr: ap.Addr(), Port: ap.Port()}
	conn, err := New(Options{}).Connect(context.Background(), []route.Host{dead, live})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.Host().Name != "live" {
		t.Fatalf("connected to %s", conn.Host().Name)
	}
	sink.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT", Code: 452, Times: 1})
	_, err = conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: 1\r\n\r\n"))
	if e := message.AsError(err); err == nil || !e.Temporary() || e.Code != 452 {
		t.Fatalf("4xx: %v", err)
	}
	sink.SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "DATA", Code: 554, Times: 1})
	_, err = conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: 2\r\n\r\n"))
	if e := message.AsError(err); err == nil || e.Temporary() || e.Code != 554 {
		t.Fatalf("5xx: %v", err)
	}
	// The connection recovered (RSET) and still delivers.
	if _, err := conn.Send("a@x.test", "b@y.test", nil, []byte("Subject: 3\r\n\r\n")); err != nil {
		t.Fatalf("after failures: %v", err)
	}
	if sink.Count() != 1 {
		t.Fatalf("sink count %d", sink.Count())
	}
}

func TestAllHostsDownIsTransient(t *testing.T) {
	port := testutil.MustListenPort(t, "127.0.0.9")
	_, err := New(Options{}).Connect(context.Background(), []route.Host{{Name: "a", Addr: netip.MustParseAddr("127.0.0.9"), Port: uint16(port)}})
	e := message.AsError(err)
	if err == nil || !e.Temporary() || e.Enhanced != "4.4.1" {
		t.Fatalf("%v", err)
	}
	if strings.Contains(e.Text, "127.0.0.9:") && strings.Contains(e.Text, "refused") {
		t.Fatalf("reply text leaks transport detail: %s", e.Text)
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		code  int
		lines []string
		want  message.Reply
	}{
		{250, []string{"2.0.0 Ok: queued as X"}, message.Reply{Code: 250, Enhanced: "2.0.0", Text: "Ok: queued as X"}},
		{550, []string{"5.1.1 no such user", "second line"}, message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user second line"}},
		{550, []string{"5.1.1 no such user", "5.1.1 see the FAQ"}, message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user see the FAQ"}},
		{450, []string{"mailbox busy"}, message.Reply{Code: 450, Text: "mailbox busy"}},
		{550, []string{"4.1.1 class mismatch"}, message.Reply{Code: 550, Text: "4.1.1 class mismatch"}},
		{250, []string{""}, message.Reply{Code: 250}},
	} {
		if got := parseReply(tc.code, tc.lines); got != tc.want {
			t.Errorf("%d %q: %+v, want %+v", tc.code, tc.lines, got, tc.want)
		}
	}
}
