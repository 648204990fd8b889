package queue

import (
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// A rule adopted from another node has the effect of the same rule made here (a suspension
// holds, a bounce rule sweeps queued mail and bounces new arrivals), is not written to the
// rule store (the cluster keeps it), and dropping it releases what it held.
func TestAdoptAndDropActLikeLocalRules(t *testing.T) {
	store := newFakeRules()
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, func(o *Options) { o.Rules = store })
	h.dialer.send = func(_ *fakeConn, rcpt string) (message.Reply, error) {
		if strings.HasSuffix(rcpt, "@bounce.test") {
			return message.Reply{}, errTemp
		}
		return message.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}, nil
	}
	now := h.clock.Now()
	susp := Rule{ID: "s1", Kind: KindSuspend, Selector: Selector{Domain: str("held.test")}, Reason: "r",
		Created: now, Expires: now.Add(time.Hour)}
	if _, err := h.m.Adopt(susp); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Adopt(susp); err != nil {
		t.Fatalf("adopting twice: %v", err)
	}
	if store.len() != 0 {
		t.Fatal("an adopted rule was written to the store")
	}
	if rs := h.m.Rules(KindSuspend); len(rs) != 1 || rs[0].ID != "s1" {
		t.Fatalf("rules %+v", rs)
	}
	held := h.submitTo("held.test", "a@held.test")
	if due := h.onHeap(held.ID); !due.Equal(susp.Expires) {
		t.Fatalf("held until %s, want %s", due, susp.Expires)
	}
	if err := h.m.Drop("s1"); err != nil {
		t.Fatal(err)
	}
	h.waitRecords("Delivery", held.ID, 1)
	if err := h.m.Drop("s1"); err != ErrNoRule {
		t.Fatalf("dropping twice: %v", err)
	}

	// A bounce rule from elsewhere sweeps what is queued and bounces what arrives.
	queued := h.submitTo("bounce.test", "b@bounce.test")
	h.waitRecords("TransientFailure", queued.ID, 1)
	h.onHeap(queued.ID)
	swept, err := h.m.Adopt(Rule{ID: "b1", Kind: KindBounce, Selector: Selector{Domain: str("bounce.test")}, Reason: "bad",
		Created: now, Expires: now.Add(time.Hour)})
	if err != nil || swept["bounce.test"] != 1 {
		t.Fatalf("sweep %v %v", swept, err)
	}
	h.waitRecords("AdminBounce", queued.ID, 1)
	late := h.submitTo("bounce.test", "c@bounce.test")
	h.waitRecords("AdminBounce", late.ID, 1)

	// Expired or malformed rules are not adopted.
	if _, err := h.m.Adopt(Rule{ID: "old", Kind: KindSuspend, Expires: now.Add(-time.Second)}); err != nil || len(h.m.Rules(KindSuspend)) != 0 {
		t.Fatalf("expired rule: %v %+v", err, h.m.Rules(KindSuspend))
	}
	if _, err := h.m.Adopt(Rule{ID: "x", Kind: "rebind", Expires: now.Add(time.Hour)}); err == nil {
		t.Fatal("a rule of an unknown kind was adopted")
	}
}
