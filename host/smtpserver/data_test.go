package smtpserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// dataExchange sends one transaction whose DATA content is payload (raw, written at once or an
// octet at a time), then NOOP, and returns every reply up to NOOP's or the end of the
// connection, with spool ids masked.
func dataExchange(t *testing.T, nc net.Conn, payload string, trickle bool) []string {
	t.Helper()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	tp := textproto.NewConn(nc)
	var out []string
	next := func() bool {
		code, msg, err := tp.ReadResponse(0)
		if err != nil {
			out = append(out, "closed")
			return false
		}
		out = append(out, fmt.Sprintf("%d %s", code, queuedAs.ReplaceAllString(msg, "queued as ID")))
		return !strings.Contains(msg, "done nothing")
	}
	next() // banner
	tp.PrintfLine("EHLO client.test")
	next()
	tp.PrintfLine("MAIL FROM:<a@client.test>")
	next()
	tp.PrintfLine("RCPT TO:<b@example.com>")
	next()
	tp.PrintfLine("DATA")
	if !next() {
		return out
	}
	if trickle {
		for i := 0; i < len(payload); i++ {
			nc.Write([]byte{payload[i]})
		}
	} else {
		nc.Write([]byte(payload))
	}
	nc.Write([]byte("NOOP\r\n"))
	for next() {
	}
	return out
}

var queuedAs = regexp.MustCompile(`queued as [^ ]+( [^ ]+)*`)

// withoutTrace drops the Received header the session prepends (its id, time and protocol differ
// per connection).
func withoutTrace(body string) string {
	i := strings.Index(body, ";\r\n\t")
	if i < 0 {
		return body
	}
	j := strings.Index(body[i+4:], "\r\n")
	return body[i+4+j+2:]
}

// On a plain-text connection the session reads DATA content itself (plainData); under TLS
// go-smtp's data reader does. Both must end the data at the same place, store the same
// content and give the same replies, whatever the client sends.
func TestPlainDataReadsLikeGoSMTP(t *testing.T) {
	rec := &recorder{}
	s := New(Options{
		Hostname: "mx.test", Listen: []string{"127.0.0.1:0"}, ListenTLS: []string{"127.0.0.1:0"},
		TLS:        selfSigned(t),
		RelayHosts: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MaxMessageSize: 6000,
		MaxRecipients: 10, MaxLineLength: 200, MaxConnections: 10, IdleTimeout: 10 * time.Second,
		DataTimeout: time.Minute, Receiver: rec,
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Serve()
	defer s.Shutdown(context.Background())
	plainAddr, tlsAddr := s.Addrs()[0].String(), s.Addrs()[1].String()
	long := strings.Repeat("0123456789", 19)
	var big strings.Builder
	for big.Len() < 5000 {
		fmt.Fprintf(&big, "%s line %d\r\n", long[:60], big.Len())
	}
	for _, tc := range []struct {
		name, payload string
	}{
		{"simple", hdr + "body\r\n.\r\n"},
		{"empty", ".\r\n"},
		{"empty line", "\r\n.\r\n"},
		{"dot stuffing", hdr + "..dot\r\n.x\r\n...\r\n.\r\n"},
		{"dot CR at line start", hdr + ".\rX\r\n.\r\n"},
		{"dot then LF", hdr + ".\nx\r\n.\r\n"},
		{"CR CR LF end missed", hdr + "abc\r\r\n.\r\n"},
		{"CR CR LF then stuffed dot", hdr + "abc\r\r\n..x\r\n.\r\n"},
		{"bare LF", hdr + "line1\nline2\r\n.\r\n"},
		{"bare CR", hdr + "line1\rline2\r\n.\r\n"},
		{"line at the limit", hdr + long + "12345678\r\n.\r\n"},
		{"line over the limit", hdr + long + "123456789\r\n.\r\n"},
		{"long line", hdr + strings.Repeat("x", 500) + "\r\n.\r\n"},
		{"commands after the end", hdr + "x\r\n.\r\nRSET\r\nMAIL FROM:<c@client.test>\r\n"},
		{"several buffers", hdr + big.String() + ".\r\n"},
		{"too big", hdr + big.String() + big.String() + ".\r\n"},
		{"data ends without CRLF before dot", hdr + "x.\r\n.\r\n"},
	} {
		for _, trickle := range []bool{false, true} {
			if trickle && len(tc.payload) > 600 {
				continue
			}
			t.Run(fmt.Sprintf("%s/trickle=%v", tc.name, trickle), func(t *testing.T) {
				n0 := len(rec.got())
				pc, err := net.DialTimeout("tcp", plainAddr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				plain := dataExchange(t, pc, tc.payload, trickle)
				n1 := len(rec.got())
				tc2, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					t.Fatal(err)
				}
				defer tc2.Close()
				overTLS := dataExchange(t, tc2, tc.payload, trickle)
				got := rec.got()
				if strings.Join(plain[2:], "\n") != strings.Join(overTLS[2:], "\n") { // EHLO: STARTTLS offered in plain text only
					t.Fatalf("replies differ:\nplain %q\nTLS   %q", plain, overTLS)
				}
				if n1-n0 != len(got)-n1 {
					t.Fatalf("stored %d messages in plain text, %d under TLS", n1-n0, len(got)-n1)
				}
				for i := 0; i < n1-n0; i++ {
					if a, b := withoutTrace(got[n0+i]), withoutTrace(got[n1+i]); a != b {
						t.Fatalf("stored content differs:\nplain %q\nTLS   %q", a, b)
					}
				}
			})
		}
	}
}

// The trace header, field by field (RFC 5321 §4.4; RFC 3848 protocol names), as stored.
func TestReceivedHeader(t *testing.T) {
	rec, addr := start(t, nil)
	c := testutil.Dial(t, addr)
	c.Hello("client(x).test")
	if code, msg := c.Send("a@client.test", []string{"b@example.com"}, hdr+"x\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	if code, msg := c.Send("a@client.test", []string{"b@example.com", "c@example.com"}, hdr+"x\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	date := `[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}`
	for i, want := range []string{
		`^Received: from client_x_\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.test \(wasmta\) with ESMTP id [0-9A-Za-z]+\r\n\tfor <b@example\.com>;\r\n\t` + date + "\r\nFrom: ",
		`^Received: from client_x_\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.test \(wasmta\) with ESMTP id [0-9A-Za-z]+;\r\n\t` + date + "\r\nFrom: ",
	} {
		if got := rec.got()[i]; !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("message %d stored as %q", i, got)
		}
	}
}

// The trace date is the message's time (RFC 5322 §3.3), also when it is formatted once per
// second: a new second or another zone gets its own.
func TestTraceDate(t *testing.T) {
	s := New(Options{Hostname: "mx.test"})
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	east := time.FixedZone("", 3600)
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{t0, "Mon, 30 Nov 2026 08:00:00 +0000"},
		{t0.Add(999 * time.Millisecond), "Mon, 30 Nov 2026 08:00:00 +0000"},
		{t0.Add(time.Second), "Mon, 30 Nov 2026 08:00:01 +0000"},
		{t0.Add(time.Second).In(east), "Mon, 30 Nov 2026 09:00:01 +0100"},
		{t0.Add(time.Second), "Mon, 30 Nov 2026 08:00:01 +0000"},
	} {
		if got := s.date(tc.at); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.at, got, tc.want)
		}
	}
}
