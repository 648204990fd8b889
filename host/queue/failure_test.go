package queue

import (
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// failures records OnFailure calls, and whether the message was still spooled at the time (a
// DSN needs its body).
type failures struct {
	mu      sync.Mutex
	got     []Failure
	spooled []bool
}

func (f *failures) hook(h **harness) func(*message.Message, Failure) error {
	return func(m *message.Message, fl Failure) error {
		_, ok := (*h).store.get(m.ID)
		f.mu.Lock()
		f.got = append(f.got, fl)
		f.spooled = append(f.spooled, ok)
		f.mu.Unlock()
		return nil
	}
}

func (f *failures) all() ([]Failure, []bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Failure(nil), f.got...), append([]bool(nil), f.spooled...)
}

// A bounce calls OnFailure with the remote's reply and host, while the message is still in
// the spool, and before its Bounce record.
func TestOnFailureBounce(t *testing.T) {
	var h *harness
	var f failures
	h = newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) { o.OnFailure = f.hook(&h) })
	perm := message.Errorf(550, "5.1.1", "no such user")
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) { return message.Reply{}, perm }
	msg := h.submit(1)[0]
	h.waitRecords("Bounce", msg.ID, 1)
	got, spooled := f.all()
	if len(got) != 1 || got[0].Type != "Bounce" || got[0].Reply != perm.Reply || got[0].Peer == nil ||
		got[0].Peer.Name != siteHost.Name || got[0].Site != "mx.site.test" || got[0].Last != (message.Reply{}) {
		t.Fatalf("OnFailure calls %+v", got)
	}
	if !spooled[0] {
		t.Fatal("OnFailure ran after the message left the spool")
	}
}

// An expiry after a failed attempt carries that attempt's reply and host in Last; one found
// already too old at dispatch has none.
func TestOnFailureExpiry(t *testing.T) {
	var h *harness
	var f failures
	cfg := Config{RetryInterval: 40 * time.Minute, MaxAge: 30 * time.Minute}
	h = newHarness(t, cfg, func(o *Options) { o.OnFailure = f.hook(&h) })
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) { return message.Reply{}, errTemp }
	msg := h.submit(1)[0]
	h.waitRecords("Expiration", msg.ID, 1)

	old := &message.Message{ID: "00000000000000000000000000000001", Sender: "a@sender.test", Recipient: "old@site.test",
		Queue: "site.test", Created: h.clock.Now().Add(-2 * time.Hour), Due: h.clock.Now().Add(-time.Hour)}
	h.store.Update(old)
	h.m.Recover(old)
	h.waitRecords("Expiration", old.ID, 1)

	got, spooled := f.all()
	if len(got) != 2 {
		t.Fatalf("OnFailure calls %+v", got)
	}
	first := got[0]
	if first.Type != "Expiration" || first.Reply.Code != 551 || first.Reply.Enhanced != "5.4.7" ||
		first.Last != errTemp.Reply || first.Peer == nil || first.Site != "mx.site.test" {
		t.Fatalf("expiry after an attempt: %+v", first)
	}
	second := got[1]
	if second.Type != "Expiration" || second.Reply.Code != 551 || second.Last != (message.Reply{}) || second.Peer != nil {
		t.Fatalf("expiry at dispatch: %+v", second)
	}
	if !spooled[0] || !spooled[1] {
		t.Fatal("OnFailure ran after the message left the spool")
	}
}
