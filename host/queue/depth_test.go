package queue

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// Depths sees messages where they wait: in the retry timer by queue, in a ready queue by site,
// and the open connections.
func TestDepths(t *testing.T) {
	release := make(chan struct{})
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: time.Hour}, func(o *Options) { o.ConnectionLimit = 1 })
	sending := make(chan struct{}, 1)
	h.dialer.send = func(c *fakeConn, rcpt string) (message.Reply, error) {
		select {
		case sending <- struct{}{}:
		default:
		}
		<-release
		return message.Reply{Code: 250}, nil
	}
	now := h.clock.Now()
	var later []*message.Message
	for i := range 2 {
		later = append(later, &message.Message{ID: message.NewID(now.Add(time.Duration(i + 100))), Sender: "a@sender.test",
			Recipient: "x@later.test", Queue: "later.test", Created: now, Due: now.Add(10 * time.Minute)})
	}
	if err := h.m.Submit(later, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	h.submit(3) // one goes on the only connection and hangs there, two wait in the ready queue
	<-sending
	eventually(t, func() bool { items, _ := h.readyState(); return items == 2 }, "2 messages in the ready queue")
	d := h.m.Depths()
	if d.Scheduled["later.test"] != 2 || len(d.Scheduled) != 1 {
		t.Errorf("scheduled %v, want later.test: 2", d.Scheduled)
	}
	if d.Ready["mx.site.test"] != 2 || len(d.Ready) != 1 {
		t.Errorf("ready %v, want mx.site.test: 2", d.Ready)
	}
	if d.Connections != 1 {
		t.Errorf("%d connections, want 1", d.Connections)
	}
	close(release)
	h.waitRecords("Delivery", "", 3)
	eventually(t, func() bool { d = h.m.Depths(); return len(d.Ready) == 0 }, "an empty ready queue")
	if d.Scheduled["later.test"] != 2 {
		t.Errorf("scheduled %v after the deliveries, want later.test: 2 still", d.Scheduled)
	}
}
