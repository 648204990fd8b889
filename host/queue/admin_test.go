package queue

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

func str(s string) *string { return &s }

func TestSelectorMatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sel   Selector
		queue string
		want  bool
	}{
		{"empty selects all", Selector{}, "c:t@example.com!r.test", true},
		{"domain", Selector{Domain: str("example.com")}, "example.com", true},
		{"domain folds case", Selector{Domain: str("Example.COM")}, "t@example.com", true},
		{"other domain", Selector{Domain: str("example.org")}, "example.com", false},
		{"tenant", Selector{Tenant: str("t1")}, "t1@example.com", true},
		{"tenant is case-sensitive", Selector{Tenant: str("T1")}, "t1@example.com", false},
		{"tenant wanted, none", Selector{Tenant: str("t1")}, "example.com", false},
		{"campaign and tenant", Selector{Campaign: str("c"), Tenant: str("t")}, "c:t@example.com", true},
		{"campaign without tenant", Selector{Campaign: str("c")}, "c:@example.com", true},
		{"campaign differs", Selector{Campaign: str("d"), Tenant: str("t")}, "c:t@example.com", false},
		{"routing domain", Selector{RoutingDomain: str("smart.test")}, "example.com!smart.test", true},
		{"routing domain wanted, none", Selector{RoutingDomain: str("smart.test")}, "example.com", false},
		{"domain, not routing domain", Selector{Domain: str("smart.test")}, "example.com!smart.test", false},
		{"queue names take precedence", Selector{Domain: str("example.org"), QueueNames: []string{"example.com"}}, "example.com", true},
		{"queue names are exact", Selector{QueueNames: []string{"example.com"}}, "t@example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := route.ParseQueueName(tc.queue)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.sel.Match(tc.queue, c); got != tc.want {
				t.Fatalf("%+v on %q: %v, want %v", tc.sel, tc.queue, got, tc.want)
			}
		})
	}
	// Empty strings (an unset CLI flag) mean "any", not "queues without that part".
	s := Selector{Tenant: str(""), QueueNames: []string{""}}
	s.normalize()
	if !s.Match("example.com", route.Components{Domain: "example.com"}) {
		t.Fatal("normalized empty selector does not match everything")
	}
}

// submitTo queues one message for rcpt in queue, due now.
func (h *harness) submitTo(queue, rcpt string) *message.Message {
	h.t.Helper()
	h.n++
	now := h.clock.Now()
	msg := &message.Message{ID: message.NewID(now.Add(time.Duration(h.n))), Sender: "a@sender.test", Recipient: rcpt,
		Queue: queue, Created: now, Due: now, Protocol: "ESMTP", Meta: map[string]string{"k": "v"}}
	if err := h.m.Submit([]*message.Message{msg}, []byte("Subject: t\r\n\r\nhi\r\n")); err != nil {
		h.t.Fatal(err)
	}
	return msg
}

// onHeap waits until msg waits on the timer heap and returns its due time.
func (h *harness) onHeap(id message.ID) time.Time {
	h.t.Helper()
	var due time.Time
	eventually(h.t, func() bool {
		q, ok := h.m.Inspect(id)
		due = q.Due
		return ok && q.State == StateWaiting
	}, "%s on the timer heap", id)
	return due
}

// A suspended queue's mail is not attempted; it waits until the suspension ends, and
// cancelling the suspension releases it at once. Other queues are not held.
func TestSuspendHoldsUntilExpiryOrCancel(t *testing.T) {
	rules := newFakeRules()
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, func(o *Options) { o.Rules = rules })
	r, err := h.m.Suspend(RuleRequest{Selector: Selector{Domain: str("site.test")}, Reason: "block", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rules.len() != 1 {
		t.Fatal("suspension not stored")
	}
	held := h.submitTo("site.test", "a@site.test")
	free := h.submitTo("other.test", "b@other.test")
	h.waitRecords("Delivery", free.ID, 1)
	if due := h.onHeap(held.ID); !due.Equal(r.Expires) {
		t.Fatalf("held until %s, want the suspension's end %s", due, r.Expires)
	}
	if c, _, _, _ := h.dialer.stats(); c != 1 {
		t.Fatalf("%d connections, want 1 (the other queue's)", c)
	}
	s := h.m.Summary()
	if len(s.Scheduled) != 1 || s.Scheduled[0].Name != "site.test" || s.Scheduled[0].Count != 1 ||
		s.Scheduled[0].SuspendedUntil == nil || !s.Scheduled[0].SuspendedUntil.Equal(r.Expires) {
		t.Fatalf("summary %+v", s.Scheduled)
	}
	if len(s.Ready) != 1 || s.Ready[0].LastResponse != "250 2.0.0 ok" {
		t.Fatalf("ready summary %+v", s.Ready)
	}

	// Expiry releases the mail.
	h.clock.AdvanceTo(r.Expires)
	h.waitRecords("Delivery", held.ID, 1)

	// Cancel releases it before the end.
	r2, err := h.m.Suspend(RuleRequest{Selector: Selector{QueueNames: []string{"site.test"}}, Reason: "again", Duration: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	held2 := h.submitTo("site.test", "c@site.test")
	h.onHeap(held2.ID)
	if got := h.m.Rules(KindSuspend); len(got) != 1 || got[0].ID != r2.ID || got[0].Reason != "again" {
		t.Fatalf("rules %+v", got)
	}
	if err := h.m.CancelRule(KindSuspend, r2.ID); err != nil {
		t.Fatal(err)
	}
	h.waitRecords("Delivery", held2.ID, 1)
	if rules.len() != 0 {
		t.Fatalf("%d rules left in the store", rules.len())
	}
	if err := h.m.CancelRule(KindSuspend, r2.ID); err != ErrNoRule {
		t.Fatalf("second cancel: %v", err)
	}
}

// Resuming does not flush mail that waits for its own retry, only what the suspension held.
func TestCancelReleasesOnlyHeldMail(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	var fail atomic.Bool
	fail.Store(true)
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		if fail.Load() {
			return message.Reply{}, errTemp
		}
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	deferred := h.submitTo("site.test", "a@site.test")
	h.waitRecords("TransientFailure", deferred.ID, 1)
	retryAt := h.onHeap(deferred.ID)
	r, err := h.m.Suspend(RuleRequest{Selector: Selector{Domain: str("site.test")}, Reason: "x", Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(false)
	if err := h.m.CancelRule(KindSuspend, r.ID); err != nil {
		t.Fatal(err)
	}
	if due := h.onHeap(deferred.ID); !due.Equal(retryAt) {
		t.Fatalf("deferred message now due %s, want its retry time %s", due, retryAt)
	}
}

// Rules come back from the store at start-up; expired ones are dropped from it.
func TestRulesSurviveRestart(t *testing.T) {
	rules := newFakeRules()
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, func(o *Options) { o.Rules = rules })
	long, err := h.m.Suspend(RuleRequest{Selector: Selector{Domain: str("site.test")}, Reason: "long", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.m.Bounce(RuleRequest{Selector: Selector{Domain: str("gone.test")}, Reason: "short", Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Minute)

	h2 := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, func(o *Options) { o.Rules = rules; o.Clock = h.clock })
	n, err := h2.m.LoadRules()
	if err != nil || n != 1 {
		t.Fatalf("loaded %d rules, %v; want the unexpired one", n, err)
	}
	if rules.len() != 1 {
		t.Fatal("expired rule left in the store")
	}
	got := h2.m.Rules(KindSuspend)
	if len(got) != 1 || got[0].ID != long.ID || !got[0].Expires.Equal(long.Expires) {
		t.Fatalf("after restart: %+v", got)
	}
	// Recovered mail obeys it.
	msg := &message.Message{ID: message.NewID(h.clock.Now()), Sender: "a@s.test", Recipient: "r@site.test", Queue: "site.test",
		Created: h.clock.Now(), Due: h.clock.Now()}
	_ = h2.store.PutBatches([]message.Batch{{Msgs: []*message.Message{msg}}}) // recovered mail is spooled mail
	h2.m.Recover(msg)
	if due := h2.onHeap(msg.ID); !due.Equal(long.Expires) {
		t.Fatalf("recovered message due %s, want %s", due, long.Expires)
	}
}

// A bounce rule bounces every matching queued message with an AdminBounce record and removes
// it from the spool, leaves other queues alone, and bounces matching arrivals while it lasts.
func TestAdminBounce(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) { return message.Reply{}, errTemp }
	a := h.submitTo("t1@site.test", "a@site.test")
	b := h.submitTo("t2@site.test", "b@site.test")
	h.waitRecords("TransientFailure", a.ID, 1)
	h.waitRecords("TransientFailure", b.ID, 1)
	h.onHeap(a.ID)
	h.onHeap(b.ID)
	r, swept, err := h.m.Bounce(RuleRequest{Selector: Selector{Tenant: str("t1")}, Reason: "bad send", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if swept.Bounced["t1@site.test"] != 1 || len(swept.Bounced) != 1 {
		t.Fatalf("swept %v", swept)
	}
	rec := h.waitRecords("AdminBounce", a.ID, 1)[0]
	resp := rec["response"].(map[string]any)
	if resp["code"] != 551.0 || resp["content"] != "Administrator bounced with reason: bad send" {
		t.Fatalf("record %v", rec)
	}
	eventually(t, func() bool { _, ok := h.store.get(a.ID); return !ok }, "the bounced message out of the spool") // deleted after its record
	if _, ok := h.store.get(b.ID); !ok || len(h.records("AdminBounce", b.ID)) != 0 {
		t.Fatal("the other tenant's message was touched")
	}
	// A new arrival for the tenant is bounced before any attempt.
	c := h.submitTo("t1@site.test", "c@site.test")
	h.waitRecords("AdminBounce", c.ID, 1)
	if len(h.records("TransientFailure", c.ID)) != 0 {
		t.Fatal("bounced arrival was attempted")
	}
	list := h.m.Rules(KindBounce)
	if len(list) != 1 || list[0].ID != r.ID || list[0].TotalBounced != 2 || list[0].Bounced["t1@site.test"] != 2 {
		t.Fatalf("bounce list %+v", list)
	}
	if s := h.m.Stats(); s.AdminBounced != 2 || s.Queued != 1 {
		t.Fatalf("stats %+v", s)
	}
	if err := h.m.CancelRule(KindBounce, r.ID); err != nil {
		t.Fatal(err)
	}
	d := h.submitTo("t1@site.test", "d@site.test")
	h.waitRecords("TransientFailure", d.ID, 1)
}

func TestRuleValidation(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	for _, req := range []RuleRequest{
		{Reason: " "},
		{Reason: "x", Duration: -time.Second},
		{Reason: "x", Expires: h.clock.Now().Add(-time.Second)},
	} {
		var bad *BadRequest
		if _, err := h.m.Suspend(req); err == nil || !asBad(err, &bad) {
			t.Errorf("%+v: %v, want a BadRequest", req, err)
		}
	}
	r, err := h.m.Suspend(RuleRequest{Reason: "default"})
	if err != nil || !r.Expires.Equal(h.clock.Now().Add(DefaultRuleDuration)) {
		t.Fatalf("default duration: %+v %v", r, err)
	}
}

func asBad(err error, target **BadRequest) bool {
	b, ok := err.(*BadRequest)
	*target = b
	return ok
}

// Rebind with always_flush retries a deferred message now (postqueue -f); with data it sets
// meta, moves the message to its new queue and records AdminRebind.
func TestRebind(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: 24 * time.Hour, MaxAge: week}, nil)
	var fail atomic.Bool
	fail.Store(true)
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) {
		if fail.Load() {
			return message.Reply{}, errTemp
		}
		return message.Reply{Code: 250, Text: "ok"}, nil
	}
	a := h.submitTo("site.test", "a@site.test")
	b := h.submitTo("other.test", "b@other.test")
	h.waitRecords("TransientFailure", a.ID, 1)
	h.waitRecords("TransientFailure", b.ID, 1)
	h.onHeap(a.ID)
	h.onHeap(b.ID)

	res, err := h.m.Rebind(RebindRequest{Selector: Selector{Domain: str("other.test")}, Reason: "moving", Data: map[string]string{"tenant": "t9"}})
	if err != nil || res != (RebindResult{Matched: 1, Moved: 1, Flushed: 1}) {
		t.Fatalf("rebind: %+v %v", res, err)
	}
	rec := h.waitRecords("AdminRebind", b.ID, 1)[0]
	if rec["queue"] != "t9@other.test" || rec["response"].(map[string]any)["content"] != "Rebound from other.test to t9@other.test: moving" {
		t.Fatalf("rebind record %v", rec)
	}
	eventually(t, func() bool { s, _ := h.store.get(b.ID); return s.Queue == "t9@other.test" && s.Meta["tenant"] == "t9" }, "rebind in the spool")
	if a.Meta["tenant"] != "" {
		t.Fatal("rebind wrote through a shared meta map")
	}
	h.waitRecords("TransientFailure", b.ID, 2) // attempted again at once

	fail.Store(false)
	res, err = h.m.Rebind(RebindRequest{Selector: Selector{Domain: str("site.test")}, Reason: "retry now", AlwaysFlush: true})
	if err != nil || res.Flushed != 1 || res.Moved != 0 {
		t.Fatalf("flush: %+v %v", res, err)
	}
	h.waitRecords("Delivery", a.ID, 1)
	if n := len(h.records("AdminRebind", a.ID)); n != 1 {
		t.Fatalf("%d AdminRebind records for the flushed message", n)
	}
	if _, err := h.m.Rebind(RebindRequest{}); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("rebind without reason: %v", err)
	}
}
