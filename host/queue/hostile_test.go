package queue

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

	"github.com/wasmta/wasmta/host/delivery"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/spool"
)

// realDialer is the delivery client behind the queue's Dialer, as the relay wires it.
type realDialer struct{ c *delivery.Client }

func (d realDialer) Connect(ctx context.Context, hosts []route.Host) (Conn, error) {
	c, err := d.c.Connect(ctx, hosts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// siteOf resolves every destination to one site of the given hosts.
type siteOf []route.Host

func (s siteOf) Resolve(context.Context, string, []route.MXEntry) (route.Site, error) {
	return route.Site{Name: "mx.hostile.test", Hosts: s}, nil
}

// picky is a next hop on loopback whose answers depend on the recipient's local part:
//
//	ok        250 to RCPT and to the content
//	rcpt450   450 to RCPT            rcpt550   550 to RCPT
//	octets    550 to RCPT, with NUL, 8-bit and escape octets in its text
//	dot451    250 to RCPT, 451 to the content
//	dot554    250 to RCPT, 554 to the content
//	drop      250 to RCPT, 354 to DATA, then hangs up without answering the content
//
// It counts the contents it answered 250, by local part.
type picky struct {
	ln       net.Listener
	mu       sync.Mutex
	accepted map[string]int
	conns    []net.Conn
}

func startPicky(t *testing.T, ip string) *picky {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := &picky{ln: ln, accepted: map[string]int{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
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
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				p.serve(c)
			}()
		}
	}()
	return p
}

func (p *picky) serve(c net.Conn) {
	r := bufio.NewReader(c)
	io.WriteString(c, "220 picky.test ESMTP\r\n")
	local := ""
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(l, "\r\n")
		reply := "250 2.0.0 ok\r\n"
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			reply = "250-picky.test\r\n250 PIPELINING\r\n"
		case strings.HasPrefix(cmd, "RCPT TO:<"):
			local, _, _ = strings.Cut(strings.TrimPrefix(cmd, "RCPT TO:<"), "@")
			switch local {
			case "rcpt450":
				reply = "450 4.2.1 mailbox busy\r\n"
			case "rcpt550":
				reply = "550 5.1.1 no such user\r\n"
			case "octets":
				reply = "550 5.1.1 n\x00o \xff\xfe user\x1b[2J\r\n"
			}
		case cmd == "DATA":
			if local == "rcpt450" || local == "rcpt550" || local == "octets" {
				reply = "554 5.5.1 no valid recipients\r\n"
				break
			}
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
			switch local {
			case "drop":
				return
			case "dot451":
				reply = "451 4.3.0 try later\r\n"
			case "dot554":
				reply = "554 5.7.1 content refused\r\n"
			default:
				p.mu.Lock()
				p.accepted[local]++
				p.mu.Unlock()
			}
		case cmd == "QUIT":
			io.WriteString(c, "221 bye\r\n")
			return
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

func (p *picky) host() route.Host {
	ap := netip.MustParseAddrPort(p.ln.Addr().String())
	return route.Host{Name: "picky.test", Addr: ap.Addr(), Port: ap.Port()}
}

// TestPerRecipientOutcomesFromAHostileHop: a message for seven recipients (spooled once per
// recipient, in a real spool) goes over real connections to a next hop that answers each
// recipient differently, and hangs up on one after its content. Each recipient gets its own
// outcome and record: delivered only on a 250 to its content, retried after a 4xx or a lost
// connection, bounced on a 5xx to its RCPT or content; the retried ones stay in the spool.
func TestPerRecipientOutcomesFromAHostileHop(t *testing.T) {
	hop := startPicky(t, "127.0.0.20")
	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	client := delivery.New(delivery.Options{TLS: delivery.TLSDisabled, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second})
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.Store = sp
		o.Dialer = realDialer{client}
		o.Resolver = siteOf{hop.host()}
	})
	want := map[string]struct {
		typ  string
		code int
	}{
		"ok":      {"Delivery", 250},
		"rcpt450": {"TransientFailure", 450},
		"rcpt550": {"Bounce", 550},
		"dot451":  {"TransientFailure", 451},
		"dot554":  {"Bounce", 554},
		"drop":    {"TransientFailure", 451},
		"octets":  {"Bounce", 550},
	}
	now := h.clock.Now()
	var msgs []*message.Message
	for _, local := range []string{"ok", "rcpt450", "drop", "rcpt550", "dot451", "dot554", "octets"} {
		msgs = append(msgs, &message.Message{
			ID: message.NewID(now.Add(time.Duration(len(msgs)))), Sender: "a@sender.test",
			Recipient: local + "@site.test", Queue: "site.test", Created: now, Due: now, Protocol: "ESMTP",
		})
	}
	body := []byte("Subject: t\r\n\r\nhi\r\n")
	if err := h.m.Submit(msgs, body); err != nil {
		t.Fatal(err)
	}
	for _, msg := range msgs {
		local, _, _ := strings.Cut(msg.Recipient, "@")
		w := want[local]
		recs := h.waitRecords(w.typ, msg.ID, 1)
		resp, _ := recs[0]["response"].(map[string]any)
		if code, _ := resp["code"].(float64); int(code) != w.code {
			t.Errorf("%s: %s record with response %v, want code %d", local, w.typ, resp, w.code)
		}
		for _, other := range []string{"Delivery", "TransientFailure", "Bounce"} {
			if other != w.typ && len(h.records(other, msg.ID)) != 0 {
				t.Errorf("%s: a %s record too", local, other)
			}
		}
		if w.typ == "TransientFailure" {
			if _, err := sp.Get(msg.ID); err != nil {
				t.Errorf("%s: not in the spool after its TransientFailure: %v", local, err)
			}
		} else {
			// The spool delete follows the record.
			eventually(t, func() bool { _, err := sp.Get(msg.ID); return err == message.ErrNotInSpool },
				"%s out of the spool after its %s", local, w.typ)
		}
	}
	hop.mu.Lock()
	defer hop.mu.Unlock()
	if len(hop.accepted) != 1 || hop.accepted["ok"] != 1 {
		t.Fatalf("the hop accepted %v; want ok once", hop.accepted)
	}
}

// TestStopCutsAHandshakeShort: a next hop that accepts the connection and never greets holds
// the connection's worker in the handshake for up to command_timeout. Stop must not wait for
// that (the connection is not yet one it can abort): the message stays in the spool as it was,
// with no record, for the next start.
func TestStopCutsAHandshakeShort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.20:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, silent
		}
	}()
	defer func() {
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	}()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	client := delivery.New(delivery.Options{TLS: delivery.TLSDisabled, CommandTimeout: time.Minute})
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.Store = sp
		o.Dialer = realDialer{client}
		o.Resolver = siteOf{{Name: "silent.test", Addr: ap.Addr(), Port: ap.Port()}}
	})
	msg := h.submit(1)[0]
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the queue never connected")
	}
	stopped := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		h.m.Stop(ctx)
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second): // a hang detector: command_timeout is a minute
		t.Fatal("Stop waited for a hop that never greets")
	}
	if _, err := sp.Get(msg.ID); err != nil {
		t.Fatalf("the message left the spool: %v", err)
	}
	if recs := h.records("", msg.ID); len(recs) != 1 || recs[0]["type"] != "Reception" {
		t.Fatalf("records %v, want the Reception only", recs)
	}
}

// cachedHop is a next hop on loopback that delivers every recipient but one: for "spam" it
// answers RCPT with 550 and hangs up; for "lost" it takes the content and hangs up without
// its final reply. It counts RCPT commands and contents taken, by local part.
type cachedHop struct {
	addr     netip.AddrPort
	mu       sync.Mutex
	rcpts    map[string]int
	contents map[string]int
}

func startCachedHop(t *testing.T) *cachedHop {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.20:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &cachedHop{addr: netip.MustParseAddrPort(ln.Addr().String()), rcpts: map[string]int{}, contents: map[string]int{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				h.serve(c)
			}()
		}
	}()
	return h
}

func (h *cachedHop) serve(c net.Conn) {
	r := bufio.NewReader(c)
	io.WriteString(c, "220 cached.test\r\n")
	local := ""
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(cmd, "RCPT TO:<"):
			local, _, _ = strings.Cut(strings.TrimPrefix(cmd, "RCPT TO:<"), "@")
			h.mu.Lock()
			h.rcpts[local]++
			h.mu.Unlock()
			if local == "spam" {
				io.WriteString(c, "550 5.7.1 refused, goodbye\r\n")
				return // no reply to RSET
			}
		case cmd == "DATA":
			io.WriteString(c, "354 go\r\n")
			for {
				if l, err := r.ReadString('\n'); err != nil {
					return
				} else if l == ".\r\n" {
					break
				}
			}
			h.mu.Lock()
			h.contents[local]++
			h.mu.Unlock()
			if local == "lost" {
				return // the content taken, its reply never sent
			}
		case cmd == "QUIT":
			io.WriteString(c, "221 bye\r\n")
			return
		}
		io.WriteString(c, "250 ok\r\n")
	}
}

// sendTwo queues "first" then local through hop on one connection (the second message reuses
// it) and returns the two messages.
func sendTwo(t *testing.T, hop *cachedHop, local string) (*harness, []*message.Message) {
	client := delivery.New(delivery.Options{TLS: delivery.TLSDisabled, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second})
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.Dialer = realDialer{client}
		o.Resolver = siteOf{{Name: "cached.test", Addr: hop.addr.Addr(), Port: hop.addr.Port()}}
		o.ConnectionLimit = 1 // one connection, so the second message reuses it
	})
	now := h.clock.Now()
	var msgs []*message.Message
	for i, l := range []string{"first", local} {
		msgs = append(msgs, &message.Message{
			ID: message.NewID(now.Add(time.Duration(i))), Sender: "a@sender.test",
			Recipient: l + "@site.test", Queue: "site.test", Created: now, Due: now, Protocol: "ESMTP",
		})
	}
	if err := h.m.Submit(msgs, []byte("Subject: t\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	h.waitRecords("Delivery", msgs[0].ID, 1)
	return h, msgs
}

// TestRefusalOnACachedConnectionIsNotRetried: a next hop that refuses a message with 5xx and
// then hangs up (as many do after a spam verdict) broke a reused connection, but its refusal
// is an answer about the message: it bounces, and is not sent again on a fresh connection.
// Only a failure before the message's content was sent says nothing about the message.
func TestRefusalOnACachedConnectionIsNotRetried(t *testing.T) {
	hop := startCachedHop(t)
	h, msgs := sendTwo(t, hop, "spam")
	h.waitRecords("Bounce", msgs[1].ID, 1)
	hop.mu.Lock()
	defer hop.mu.Unlock()
	if n := hop.rcpts["spam"]; n != 1 {
		t.Fatalf("the refused message was sent %d times, want once", n)
	}
}

// TestLostFinalReplyOnACachedConnectionIsNotResent: a next hop that took a message's content
// on a reused connection and hung up before its final reply may have accepted it: the
// message is a transient failure (retried later: at most one duplicate per attempt), not sent
// again at once on a fresh connection.
func TestLostFinalReplyOnACachedConnectionIsNotResent(t *testing.T) {
	hop := startCachedHop(t)
	h, msgs := sendTwo(t, hop, "lost")
	recs := h.waitRecords("TransientFailure", msgs[1].ID, 1)
	if resp, _ := recs[0]["response"].(map[string]any); resp["command"] != "." {
		t.Errorf("response %v, want the failure answering \".\"", resp)
	}
	if n := len(h.records("Delivery", msgs[1].ID)); n != 0 {
		t.Fatal("a message without a final reply was recorded delivered")
	}
	hop.mu.Lock()
	defer hop.mu.Unlock()
	if n := hop.contents["lost"]; n != 1 {
		t.Fatalf("the content went %d times in one attempt, want once", n)
	}
}
