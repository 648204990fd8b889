package delivery

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/testutil"
)

// hostile is a next hop on a loopback address that speaks broken SMTP: serve runs on every
// connection it accepts, with a reader over it, until it returns (the connection is then
// closed) or the test ends (every connection is closed, so no serve outlives it).
type hostile struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	n     int // connections accepted
}

func startHostile(t *testing.T, ip string, serve func(c net.Conn, r *bufio.Reader)) *hostile {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.n++
			h.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return h
}

func (h *hostile) host(name string) route.Host {
	ap := netip.MustParseAddrPort(h.ln.Addr().String())
	return route.Host{Name: name, Addr: ap.Addr(), Port: ap.Port()}
}

func (h *hostile) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// smtpSession is a plain, well-behaved session after the greeting: EHLO answered with ext,
// DATA and BDAT content read, every other command answered by answer (default "250 ok"); it
// returns when answer returns "" (the hop hangs up) or the client leaves. write sends each
// reply (the test decides how: at once, in tiny segments, ...).
type smtpSession struct {
	ext    []string
	answer func(cmd string) string
	write  func(c net.Conn, s string)
}

func (s smtpSession) run(c net.Conn, r *bufio.Reader) {
	write := s.write
	if write == nil {
		write = func(c net.Conn, s string) { io.WriteString(c, s) }
	}
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
		if strings.HasPrefix(strings.ToUpper(cmd), "EHLO") {
			hello := "250-mx.test\r\n"
			for _, e := range s.ext {
				hello += "250-" + e + "\r\n"
			}
			write(c, hello+"250 8BITMIME\r\n")
			continue
		}
		if f := strings.Fields(cmd); len(f) >= 2 && f[0] == "BDAT" {
			n, _ := strconv.Atoi(f[1])
			if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
				return
			}
		}
		a := "250 ok\r\n"
		if s.answer != nil {
			a = s.answer(cmd)
		}
		if a == "" {
			return
		}
		switch {
		case cmd == "DATA" && strings.HasPrefix(a, "354"):
			inData = true
		case cmd == "QUIT":
			write(c, "221 bye\r\n")
			return
		}
		write(c, a)
	}
}

// greeted writes the banner, then runs the session.
func (s smtpSession) greeted(c net.Conn, r *bufio.Reader) {
	io.WriteString(c, "220 mx.test ESMTP\r\n")
	s.run(c, r)
}

// noReturn fails the test when f has not returned within limit: a wait bounded by the
// timeouts must end, however the hop behaves. The limit is a hang detector, many times the
// timeouts in play, not a measure of speed.
func noReturn(t *testing.T, limit time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s did not return within %v: a hop holds the worker", what, limit)
	}
}

var (
	hostileBody = []byte("Subject: hostile\r\n\r\nhello\r\n")
	// bigBody is more than the kernel's socket buffers on loopback hold.
	bigBody = []byte("Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 32<<10))
)

// TestHostileHostIsSkipped: a first host that breaks SMTP in one of many ways fails that
// host only: the next host of the site is tried and the message goes there. Each breakage is
// bounded by the limits or the timeouts, whatever the hop does.
func TestHostileHostIsSkipped(t *testing.T) {
	trickle := func(c net.Conn, s string) {
		for {
			for i := 0; i < len(s); i++ {
				if _, err := c.Write([]byte{s[i]}); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn, r *bufio.Reader)
	}{
		{"silent after connect", func(c net.Conn, r *bufio.Reader) { io.Copy(io.Discard, r) }},
		{"silent after EHLO", func(c net.Conn, r *bufio.Reader) {
			io.WriteString(c, "220 mx.test\r\n")
			io.Copy(io.Discard, r)
		}},
		{"banner trickled a byte at a time, never ending", func(c net.Conn, r *bufio.Reader) {
			go io.Copy(io.Discard, r)
			trickle(c, "220-mx.test slowly\r\n")
		}},
		{"EHLO reply trickled, never ending", func(c net.Conn, r *bufio.Reader) {
			io.WriteString(c, "220 mx.test\r\n")
			r.ReadString('\n')
			go io.Copy(io.Discard, r)
			trickle(c, "250-X\r\n")
		}},
		{"multi-line reply flooded, never ending", func(c net.Conn, r *bufio.Reader) {
			go io.Copy(io.Discard, r)
			for {
				if _, err := io.WriteString(c, strings.Repeat("220-flood\r\n", 100)); err != nil {
					return
				}
			}
		}},
		{"huge greeting", func(c net.Conn, r *bufio.Reader) {
			io.WriteString(c, "220-"+strings.Repeat("x", 10<<20)+"\r\n220 ok\r\n")
		}},
		{"250 continuation then 554 final", func(c net.Conn, r *bufio.Reader) {
			io.WriteString(c, "220 mx.test\r\n")
			r.ReadString('\n')
			io.WriteString(c, "250-mx.test\r\n554 5.7.1 go away\r\n")
			io.Copy(io.Discard, r)
		}},
		{"NUL and 8-bit in the banner code", func(c net.Conn, r *bufio.Reader) {
			io.WriteString(c, "2\x0020 \xff\xfe\r\n")
			io.Copy(io.Discard, r)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := startHostile(t, "127.0.0.16", tc.serve)
			sink := testutil.StartSink(t, "127.0.0.16:0")
			good := hostOf(sink, "good.test")
			// Required: a host without TLS fails too, so only the bad host's own failure is
			// seen; the good sink is reached in plain text only in the opportunistic modes.
			c := New(Options{TLS: TLSOpportunisticInsecure, ConnectTimeout: time.Second, CommandTimeout: 300 * time.Millisecond, DataTimeout: 300 * time.Millisecond})
			var conn *Conn
			var err error
			noReturn(t, 20*time.Second, "Connect", func() {
				conn, err = c.Connect(context.Background(), []route.Host{bad.host("bad.test"), good})
			})
			if err != nil {
				t.Fatalf("the next host was not reached: %v", err)
			}
			defer conn.Close()
			if conn.Host().Name != "good.test" {
				t.Fatalf("connected to %s", conn.Host().Name)
			}
			if _, err := conn.Send("a@x.test", "b@y.test", nil, hostileBody); err != nil {
				t.Fatal(err)
			}
			sink.WaitCount(t, 1, 5*time.Second)
		})
	}
}

// oneOctetAtATime writes s in one-octet TCP segments (Go sets TCP_NODELAY).
func oneOctetAtATime(c net.Conn, s string) {
	for i := 0; i < len(s); i++ {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
	}
}

// TestHostileTransaction: a next hop that misbehaves during the transaction. The rules: a
// message is delivered only on a 2xx that answers its content; trouble after the content was
// sent and before its reply is transient (retried: at most a duplicate, never a loss); only a
// 5xx that answers a command of this message bounces it; every wait ends within the timeouts.
func TestHostileTransaction(t *testing.T) {
	const (
		delivered = "delivered"
		transient = "transient"
		permanent = "permanent"
	)
	trickleForever := func(c net.Conn, s string) {
		for {
			for i := 0; i < len(s); i++ {
				if _, err := c.Write([]byte{s[i]}); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		banner string // "" for the usual one
		ext    []string
		write  func(c net.Conn, s string)
		answer func(c net.Conn, cmd string) string
		want   string
		code   int
		body   []byte // hostileBody when nil
	}{
		{name: "every reply in one-octet segments", ext: []string{"PIPELINING"}, write: oneOctetAtATime, want: delivered},
		{name: "every reply in one-octet segments, BDAT", ext: []string{"PIPELINING", "CHUNKING"}, write: oneOctetAtATime, want: delivered},
		{name: "DATA accepted, hangs up before the final reply", answer: func(c net.Conn, cmd string) string {
			if cmd == "." {
				return ""
			}
			return map[bool]string{true: "354 go\r\n", false: "250 ok\r\n"}[cmd == "DATA"]
		}, want: transient},
		{name: "final reply half written, then hangs up", answer: func(c net.Conn, cmd string) string {
			switch cmd {
			case "DATA":
				return "354 go\r\n"
			case ".":
				io.WriteString(c, "250-2.0.0 queued\r\n")
				return ""
			}
			return "250 ok\r\n"
		}, want: transient},
		{name: "final reply trickled one octet at a time for ever", answer: func(c net.Conn, cmd string) string {
			switch cmd {
			case "DATA":
				return "354 go\r\n"
			case ".":
				trickleForever(c, "250-still going\r\n")
				return ""
			}
			return "250 ok\r\n"
		}, want: transient, code: 451},
		{name: "silent after MAIL", answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "MAIL") {
				io.Copy(io.Discard, c)
				return ""
			}
			return "250 ok\r\n"
		}, want: transient, code: 451},
		{name: "250 continuation then 550 final to RCPT", answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				return "250-ok\r\n550 5.1.1 no\r\n"
			}
			return "250 ok\r\n"
		}, want: transient, code: 451},
		{name: "NUL and 8-bit octets in a 550 to RCPT", answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				return "550 5.1.1 n\x00o \xff\xfe user\r\n"
			}
			return "250 ok\r\n"
		}, want: permanent, code: 550},
		{name: "BDAT: MAIL and RCPT answered, the chunk never", ext: []string{"PIPELINING", "CHUNKING"}, answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "BDAT") {
				io.Copy(io.Discard, c)
				return ""
			}
			return "250 ok\r\n"
		}, want: transient, code: 451},
		{name: "BDAT: 554 to the chunk after 250 to RCPT", ext: []string{"PIPELINING", "CHUNKING"}, answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "BDAT") {
				return "554 5.6.0 content refused\r\n"
			}
			return "250 ok\r\n"
		}, want: permanent, code: 554},
		{name: "BDAT: 450 to RCPT, 250 to the chunk", ext: []string{"PIPELINING", "CHUNKING"}, answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				return "450 4.2.1 later\r\n"
			}
			return "250 ok\r\n"
		}, want: transient, code: 450},
		{name: "250 to the dot, then a reset", answer: func(c net.Conn, cmd string) string {
			switch cmd {
			case "DATA":
				return "354 go\r\n"
			case ".":
				io.WriteString(c, "250 2.0.0 queued\r\n")
				c.(*net.TCPConn).SetLinger(0)
				return ""
			}
			return "250 ok\r\n"
		}, want: "delivered or transient"},
		{name: "reads nothing of the body after 354", body: bigBody, answer: func(c net.Conn, cmd string) string {
			if cmd == "DATA" {
				c.(*net.TCPConn).SetReadBuffer(4096)
				io.WriteString(c, "354 go\r\n")
				time.Sleep(time.Second) // longer than data_timeout, without reading
				return ""
			}
			return "250 ok\r\n"
		}, want: transient, code: 451},
		{name: "reads the body one octet at a time", body: bigBody, answer: func(c net.Conn, cmd string) string {
			if cmd == "DATA" {
				c.(*net.TCPConn).SetReadBuffer(4096)
				io.WriteString(c, "354 go\r\n")
				var b [1]byte
				for {
					if _, err := c.Read(b[:]); err != nil {
						return ""
					}
					time.Sleep(time.Millisecond)
				}
			}
			return "250 ok\r\n"
		}, want: transient, code: 451},
		{name: "BDAT: reads nothing of a large chunk", ext: []string{"PIPELINING", "CHUNKING"}, body: bigBody, answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				c.(*net.TCPConn).SetReadBuffer(4096)
				io.WriteString(c, "250 ok\r\n")
				time.Sleep(time.Second) // longer than data_timeout, without reading
				return ""
			}
			return "250 ok\r\n"
		}, want: transient, code: 451},
		{name: "pre-greeting reply", banner: "220 mx.test\r\n250 2.0.0 stray\r\n", ext: []string{"PIPELINING", "CHUNKING"}, answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "BDAT") {
				time.Sleep(100 * time.Millisecond) // the refusal comes in a later segment
				return "554 5.6.0 refused\r\n"
			}
			return "250 ok\r\n"
		}, want: transient},
		{name: "a reply before its command: stray 250 after the EHLO reply", ext: []string{"PIPELINING", "CHUNKING", "SIZE 1000000\r\n250 2.0.0 stray"}, answer: func(c net.Conn, cmd string) string {
			if strings.HasPrefix(cmd, "BDAT") {
				time.Sleep(100 * time.Millisecond) // the refusal comes in a later segment
				return "554 5.6.0 refused\r\n"
			}
			return "250 ok\r\n"
		}, want: transient},
		{name: "a reply before its command: stray 250 after the EHLO reply, DATA", ext: []string{"PIPELINING", "SIZE 1000000\r\n250 2.0.0 stray"}, answer: func(c net.Conn, cmd string) string {
			switch cmd {
			case "DATA":
				return "354 go\r\n"
			case ".":
				time.Sleep(100 * time.Millisecond)
				return "554 5.6.0 refused\r\n"
			}
			return "250 ok\r\n"
		}, want: transient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var mu sync.Mutex
			hop := startHostile(t, "127.0.0.17", func(c net.Conn, r *bufio.Reader) {
				banner := tc.banner
				if banner == "" {
					banner = "220 mx.test ESMTP\r\n"
				}
				io.WriteString(c, banner)
				s := smtpSession{ext: tc.ext, write: tc.write}
				s.answer = func(cmd string) string {
					mu.Lock()
					got = append(got, cmd)
					mu.Unlock()
					if tc.answer == nil {
						if cmd == "DATA" {
							return "354 go\r\n"
						}
						return "250 ok\r\n"
					}
					return tc.answer(c, cmd)
				}
				s.run(c, r)
			})
			c := New(Options{TLS: TLSDisabled, CommandTimeout: 300 * time.Millisecond, DataTimeout: 300 * time.Millisecond})
			var reply message.Reply
			var err error
			noReturn(t, 20*time.Second, "Connect and Send", func() {
				var conn *Conn
				conn, err = c.Connect(context.Background(), []route.Host{hop.host("mx.test")})
				if err != nil {
					return
				}
				defer conn.Close()
				body := tc.body
				if body == nil {
					body = hostileBody
				}
				reply, err = conn.Send("a@x.test", "b@y.test", nil, body)
				if tc.want == "delivered or transient" && err == nil {
					// The connection is gone: the next message on it must not pass for
					// delivered.
					if r, err := conn.Send("a@x.test", "c@y.test", nil, body); err == nil || !message.AsError(err).Temporary() {
						t.Errorf("next message on a reset connection: %v, %v", r, err)
					}
				}
			})
			if tc.want == "delivered or transient" {
				if err != nil && !message.AsError(err).Temporary() {
					t.Fatalf("%v: want delivered or transient", err)
				}
				return
			}
			e := message.AsError(err)
			switch {
			case tc.want == delivered && err != nil:
				t.Fatalf("not delivered: %v", err)
			case tc.want != delivered && err == nil:
				t.Fatalf("reported delivered (%v); want %s", reply, tc.want)
			case tc.want == transient && err != nil && !e.Temporary():
				t.Fatalf("%v: want a transient failure", err)
			case tc.want == permanent && err != nil && e.Temporary():
				t.Fatalf("%v: want a permanent failure", err)
			case tc.code != 0 && e.Code != tc.code:
				t.Fatalf("%v: want code %d", err, tc.code)
			}
		})
	}
}

// TestSiteFailureKinds: when every host of a site fails, the site's failure is what every
// message waiting for it gets (design.md §6), so it must not depend on which host happened to
// be tried last. A refusal with 5xx at greeting or EHLO bounces only when every host refused
// so; a host that timed out, was down or broke the protocol may take the mail later.
func TestSiteFailureKinds(t *testing.T) {
	refuse := func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "554 5.7.1 no service for you\r\n")
		r.ReadString('\n')
		io.WriteString(c, "503 5.5.1 bad sequence\r\n")
		r.ReadString('\n')
		io.WriteString(c, "503 5.5.1 bad sequence\r\n")
		io.Copy(io.Discard, r)
	}
	refuseEHLO := func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "220 mx.test\r\n")
		r.ReadString('\n')
		io.WriteString(c, "550 5.7.1 blocked\r\n")
		r.ReadString('\n')
		io.WriteString(c, "550 5.7.1 blocked\r\n")
		io.Copy(io.Discard, r)
	}
	silent := func(c net.Conn, r *bufio.Reader) { io.Copy(io.Discard, r) }
	tempfail := func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "421 4.3.2 busy\r\n")
	}
	malformed := func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "hello there\r\n")
		io.Copy(io.Discard, r)
	}
	dead := route.Host{Name: "dead.test", Addr: netip.MustParseAddr("127.0.0.18"), Port: uint16(testutil.MustListenPort(t, "127.0.0.18"))}
	for _, tc := range []struct {
		name      string
		hosts     []func(c net.Conn, r *bufio.Reader) // nil: a host nothing listens on
		permanent bool
	}{
		{"554 greeting, then a host down", []func(net.Conn, *bufio.Reader){refuse, nil}, false},
		{"a host down, then 554 greeting", []func(net.Conn, *bufio.Reader){nil, refuse}, false},
		{"a silent host, then 554 greeting", []func(net.Conn, *bufio.Reader){silent, refuse}, false},
		{"421 greeting, then 550 to EHLO and HELO", []func(net.Conn, *bufio.Reader){tempfail, refuseEHLO}, false},
		{"a malformed greeting, then 554 greeting", []func(net.Conn, *bufio.Reader){malformed, refuse}, false},
		{"every host refuses with 5xx", []func(net.Conn, *bufio.Reader){refuse, refuseEHLO}, true},
		{"the only host refuses with 554", []func(net.Conn, *bufio.Reader){refuse}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hosts []route.Host
			for i, serve := range tc.hosts {
				if serve == nil {
					hosts = append(hosts, dead)
					continue
				}
				hosts = append(hosts, startHostile(t, "127.0.0.18", serve).host("mx"+strconv.Itoa(i)+".test"))
			}
			c := New(Options{TLS: TLSDisabled, ConnectTimeout: time.Second, CommandTimeout: 300 * time.Millisecond})
			var err error
			noReturn(t, 20*time.Second, "Connect", func() {
				var conn *Conn
				if conn, err = c.Connect(context.Background(), hosts); err == nil {
					conn.Close()
				}
			})
			e := message.AsError(err)
			if err == nil || e.Temporary() == tc.permanent {
				t.Fatalf("%v: want permanent %v", err, tc.permanent)
			}
		})
	}
}

// expiredSelfSigned is a certificate for names that expired an hour ago, signed by itself and
// added to pool: a pool holding it trusts it as a root, so only its dates fail verification.
func expiredSelfSigned(t *testing.T, pool *x509.CertPool, names ...string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-48 * time.Hour),
		NotAfter:     time.Now().Add(-time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestHostileSTARTTLS: a hop that offers STARTTLS and then fails the handshake (garbage,
// silence), presents a certificate that is expired or for another name, or sends plain-text
// replies after its 220 (they are discarded, RFC 3207 §4.2), under each
// egress.enable_tls mode (docs/configuration.md). The opportunistic modes go on in plain text
// after a broken handshake (on a new connection), never after a certificate that does not
// verify (Opportunistic) and always accept any certificate (OpportunisticInsecure); the
// Required modes never deliver in plain text; every failure is transient and bounded by
// command_timeout.
func TestHostileSTARTTLS(t *testing.T) {
	ca := testutil.NewTestCA(t)
	wrongName, good := ca.ServerTLS(t, "other.test"), ca.ServerTLS(t, "mx.test")
	roots := ca.Pool()
	expired := expiredSelfSigned(t, roots, "mx.test")
	type result struct{ tls bool }
	serve := func(behavior string, delivered chan<- result) func(c net.Conn, r *bufio.Reader) {
		return func(c net.Conn, r *bufio.Reader) {
			io.WriteString(c, "220 mx.test ESMTP\r\n")
			inTLS := false
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				switch cmd := strings.TrimRight(l, "\r\n"); {
				case strings.HasPrefix(cmd, "EHLO"):
					if inTLS {
						io.WriteString(c, "250 mx.test\r\n")
					} else {
						io.WriteString(c, "250-mx.test\r\n250 STARTTLS\r\n")
					}
				case cmd == "STARTTLS":
					if behavior == "injection" {
						// Plain-text replies sent with the 220, before TLS (CVE-2011-0411's
						// pattern): they must be discarded, never read as replies under TLS.
						io.WriteString(c, "220 2.0.0 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n550 5.0.0 injected\r\n")
					} else {
						io.WriteString(c, "220 2.0.0 go ahead\r\n")
					}
					switch behavior {
					case "garbage":
						io.WriteString(c, strings.Repeat("this is not TLS\r\n", 64))
						io.Copy(io.Discard, r)
						return
					case "stall":
						io.Copy(io.Discard, r)
						return
					}
					cfg := wrongName
					switch behavior {
					case "expired":
						cfg = expired
					case "injection":
						cfg = good
					}
					tc := tls.Server(c, cfg)
					if tc.Handshake() != nil {
						return
					}
					c, r, inTLS = tc, bufio.NewReader(tc), true
				case cmd == "DATA":
					io.WriteString(c, "354 go\r\n")
					for {
						l, err := r.ReadString('\n')
						if err != nil {
							return
						}
						if l == ".\r\n" {
							break
						}
					}
					delivered <- result{inTLS}
					io.WriteString(c, "250 2.0.0 queued\r\n")
				case cmd == "QUIT":
					io.WriteString(c, "221 bye\r\n")
					return
				default:
					io.WriteString(c, "250 ok\r\n")
				}
			}
		}
	}
	const (
		plain   = "delivered in plain text"
		overTLS = "delivered over TLS"
		fails   = "fails, 451 4.7.5"
	)
	for _, mode := range TLSModes {
		for _, behavior := range []string{"garbage", "stall", "expired", "wrong name", "injection"} {
			want := map[string]map[string]string{
				TLSOpportunistic:         {"garbage": plain, "stall": plain, "expired": fails, "wrong name": fails, "injection": overTLS},
				TLSOpportunisticInsecure: {"garbage": plain, "stall": plain, "expired": overTLS, "wrong name": overTLS, "injection": overTLS},
				TLSRequired:              {"garbage": fails, "stall": fails, "expired": fails, "wrong name": fails, "injection": overTLS},
				TLSRequiredInsecure:      {"garbage": fails, "stall": fails, "expired": overTLS, "wrong name": overTLS, "injection": overTLS},
				TLSDisabled:              {"garbage": plain, "stall": plain, "expired": plain, "wrong name": plain, "injection": plain},
			}[mode][behavior]
			t.Run(mode+"/"+behavior+": "+want, func(t *testing.T) {
				delivered := make(chan result, 4)
				hop := startHostile(t, "127.0.0.19", serve(behavior, delivered))
				c := New(Options{TLS: mode, RootCAs: roots, CommandTimeout: 300 * time.Millisecond, DataTimeout: 300 * time.Millisecond})
				var err error
				noReturn(t, 20*time.Second, "Connect and Send", func() {
					var conn *Conn
					if conn, err = c.Connect(context.Background(), []route.Host{hop.host("mx.test")}); err == nil {
						defer conn.Close()
						_, err = conn.Send("a@x.test", "b@y.test", nil, hostileBody)
					}
				})
				if want == fails {
					e := message.AsError(err)
					if err == nil || !e.Temporary() || e.Enhanced != "4.7.5" {
						t.Fatalf("%v: want 451 4.7.5", err)
					}
					if len(delivered) != 0 {
						t.Fatal("delivered anyway")
					}
					if behavior == "expired" || behavior == "wrong name" {
						if n := hop.accepted(); n != 1 {
							t.Fatalf("%d connections: a certificate that did not verify was retried in plain text", n)
						}
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := <-delivered; got.tls != (want == overTLS) {
					t.Fatalf("delivered with TLS %v", got.tls)
				}
			})
		}
	}
}
