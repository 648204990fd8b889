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
