package queue

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// A connection that has carried a transaction, refused or not, and that the server dropped
// while it waited (an idle timeout, a 421 on the next command) says nothing about the next
// message: it is tried again on a fresh connection. Only a connection that had delivered a
// message counted as used, so after a refusal the next message failed transiently on the
// dropped connection and waited a whole retry interval.
func TestDroppedAfterRefusalRetriesOnFreshConnection(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, nil)
	h.dialer.send = func(c *fakeConn, rcpt string) (message.Reply, error) {
		h.dialer.mu.Lock()
		first := c == h.dialer.conns[0]
		h.dialer.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case first && !c.broken && rcpt == "refused@site.test":
			return message.Reply{}, message.Errorf(550, "5.1.1", "no such user")
		case first:
			c.broken = true // dropped by the server while idle
			return message.Reply{}, message.Errorf(451, "4.4.2", "connection lost")
		}
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	refused := h.submitTo("site.test", "refused@site.test")
	h.waitRecords("Bounce", refused.ID, 1)
	next := h.submitTo("site.test", "next@site.test")
	h.waitRecords("Delivery", next.ID, 1)
	if n := len(h.records("TransientFailure", next.ID)); n != 0 {
		t.Fatalf("%d transient failures for a message a fresh connection delivered", n)
	}
}

// A message that arrives while a connection is open and idle goes on that connection, even
// when another worker of the site has none (the server closed its connection after its last
// message). Workers without a connection once waited among the idle ones, and the longest
// waiting was woken first: the message opened a new connection beside the idle open one.
func TestIdleOpenConnectionTakesTheNextMessage(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, nil)
	gates := map[string]chan struct{}{"one@site.test": make(chan struct{}), "two@site.test": make(chan struct{})}
	h.dialer.send = func(c *fakeConn, rcpt string) (message.Reply, error) {
		if g := gates[rcpt]; g != nil {
			<-g
		}
		if rcpt == "one@site.test" {
			c.mu.Lock()
			c.broken = true // the server said 421 after it: the connection ends
			c.mu.Unlock()
		}
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	one := h.submitTo("site.test", "one@site.test")
	eventually(t, func() bool { _, _, _, s := h.dialer.stats(); return s == 1 }, "the first send")
	two := h.submitTo("site.test", "two@site.test")
	eventually(t, func() bool { _, _, _, s := h.dialer.stats(); return s == 2 }, "the second send, on a second connection")
	close(gates["one@site.test"]) // its worker is left without a connection
	h.waitRecords("Delivery", one.ID, 1)
	h.m.readyMu.Lock()
	rq := h.m.ready["mx.site.test"]
	h.m.readyMu.Unlock()
	eventually(t, func() bool { _, open, _, _ := h.dialer.stats(); return open == 1 }, "the first connection closed")
	// The first worker, without a connection, waits (or is gone) before the second is done.
	eventually(t, func() bool {
		rq.mu.Lock()
		defer rq.mu.Unlock()
		return rq.idle == 1 || rq.active == 1
	}, "the first worker done")
	close(gates["two@site.test"]) // its worker keeps its connection, idle
	h.waitRecords("Delivery", two.ID, 1)
	eventually(t, func() bool {
		rq.mu.Lock()
		defer rq.mu.Unlock()
		return rq.active == rq.idle // every worker left waits: none is still delivering
	}, "the workers waiting")
	three := h.submitTo("site.test", "three@site.test")
	h.waitRecords("Delivery", three.ID, 1)
	if c, _, _, _ := h.dialer.stats(); c != 2 {
		t.Fatalf("%d connections opened for 3 messages; the third should have gone on the idle one", c)
	}
}

// After a burst opened more connections than the traffic that follows needs, the surplus is
// closed after the idle timeout: the next message goes on the connection idle the shortest
// time, and the others age. The one idle the longest was taken first, so a trickle of a
// message every two seconds kept two connections open for ever where one was enough (and, in
// a cluster, kept a place under the shared connection limit from the other nodes).
func TestSurplusConnectionsCloseWhenIdle(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, nil)
	gate := make(chan struct{})
	h.dialer.send = func(c *fakeConn, rcpt string) (message.Reply, error) {
		if rcpt == "burst@site.test" {
			<-gate
		}
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	h.submitTo("site.test", "burst@site.test")
	eventually(t, func() bool { _, _, _, s := h.dialer.stats(); return s == 1 }, "the first send")
	h.submitTo("site.test", "burst@site.test")
	eventually(t, func() bool { _, _, _, s := h.dialer.stats(); return s == 2 }, "two sends on two connections")
	close(gate)
	h.m.readyMu.Lock()
	rq := h.m.ready["mx.site.test"]
	h.m.readyMu.Unlock()
	waiting := func() bool {
		rq.mu.Lock()
		defer rq.mu.Unlock()
		return rq.active == rq.idle
	}
	eventually(t, waiting, "both connections idle")
	for range 4 { // one message every 2 s; the idle timeout is 5 s
		h.clock.Advance(2 * time.Second)
		m := h.submitTo("site.test", "trickle@site.test")
		h.waitRecords("Delivery", m.ID, 1)
		eventually(t, waiting, "the connections idle")
	}
	eventually(t, func() bool { _, open, _, _ := h.dialer.stats(); return open == 1 },
		"one connection left open for a message every 2 s")
}
