package delivery

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// refusingTLSHop is a next hop on ip that offers STARTTLS in its EHLO reply but answers the
// STARTTLS command with refusal, and otherwise takes mail in plain text. It serves any number
// of connections; delivered counts the messages it accepted.
type refusingTLSHop struct {
	host route.Host
	mu   sync.Mutex
	n    int
}

func (h *refusingTLSHop) delivered() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func startRefusingTLSHop(t *testing.T, ip, refusal string) *refusingTLSHop {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ap := netip.MustParseAddrPort(ln.Addr().String())
	h := &refusingTLSHop{host: route.Host{Name: "mx.test", Addr: ap.Addr(), Port: ap.Port()}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h.serve(c, refusal)
		}
	}()
	return h
}

func (h *refusingTLSHop) serve(c net.Conn, refusal string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	io.WriteString(c, "220 mx.test ESMTP\r\n")
	inData := false
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(l, "\r\n")
		if inData {
			if cmd == "." {
				inData = false
				h.mu.Lock()
				h.n++
				h.mu.Unlock()
				io.WriteString(c, "250 2.0.0 queued\r\n")
			}
			continue
		}
		switch verb := strings.ToUpper(strings.Fields(cmd + " x")[0]); verb {
		case "EHLO":
			io.WriteString(c, "250-mx.test\r\n250 STARTTLS\r\n")
		case "STARTTLS":
			io.WriteString(c, refusal)
		case "DATA":
			inData = true
			io.WriteString(c, "354 go\r\n")
		case "QUIT":
			io.WriteString(c, "221 bye\r\n")
			return
		default:
			io.WriteString(c, "250 ok\r\n")
		}
	}
}

// A server that offers STARTTLS and then refuses the command (RFC 3207 §4: 454 "TLS not
// available due to temporary reason", or a 5xx) has not refused the mail. In the opportunistic
// modes the message goes in plain text, as it would to a server without STARTTLS (Postfix
// continues the same way); in the Required modes the host fails with a transient TLS failure,
// as for a server that does not offer STARTTLS: never a 5xx that would bounce every message
// waiting for the site.
func TestSTARTTLSRefused(t *testing.T) {
	body := []byte("Subject: s\r\n\r\nhello\r\n")
	for _, refusal := range []string{"454 4.7.0 TLS not available due to temporary reason\r\n", "554 5.7.0 TLS not available\r\n", "502 5.5.1 command not implemented\r\n"} {
		code := refusal[:3]
		for _, mode := range []string{TLSOpportunistic, TLSOpportunisticInsecure} {
			t.Run(code+"/"+mode, func(t *testing.T) {
				hop := startRefusingTLSHop(t, "127.0.0.16", refusal)
				conn, err := New(Options{TLS: mode, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second}).
					Connect(context.Background(), []route.Host{hop.host})
				if err != nil {
					t.Fatalf("Connect: %v; want the message to go in plain text", err)
				}
				defer conn.Close()
				if conn.TLS() {
					t.Fatal("reports TLS on a connection whose STARTTLS was refused")
				}
				if _, err := conn.Send("a@x.test", "b@y.test", nil, body); err != nil {
					t.Fatalf("Send: %v", err)
				}
				if hop.delivered() != 1 {
					t.Fatalf("the hop accepted %d messages, want 1", hop.delivered())
				}
			})
		}
		for _, mode := range []string{TLSRequired, TLSRequiredInsecure} {
			t.Run(code+"/"+mode, func(t *testing.T) {
				hop := startRefusingTLSHop(t, "127.0.0.16", refusal)
				_, err := New(Options{TLS: mode, CommandTimeout: 5 * time.Second}).
					Connect(context.Background(), []route.Host{hop.host})
				e := message.AsError(err)
				if err == nil || !e.Temporary() || !strings.HasPrefix(e.Enhanced, "4.7.") {
					t.Fatalf("Connect: %v; want a transient 4.7.x TLS failure", err)
				}
				if hop.delivered() != 0 {
					t.Fatal("a message went out in plain text under a Required mode")
				}
			})
		}
	}
}
