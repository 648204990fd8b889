package queue

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// briefEntry reports whether id waits on the timer heap, and whether it is held in brief
// (without its record).
func (h *harness) briefEntry(id message.ID) (waiting, brief bool) {
	h.m.timers.each(func(e *entry) {
		if e.id() == id {
			waiting, brief = true, e.msg == nil
		}
	})
	return waiting, brief
}

// rcpts records the recipients the fake connections were asked to send to, in order.
type rcpts struct {
	mu  sync.Mutex
	got []string
}

func (r *rcpts) add(rcpt string) {
	r.mu.Lock()
	r.got = append(r.got, rcpt)
	r.mu.Unlock()
}

func (r *rcpts) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// A message rescheduled after a failed attempt is attempted next with its record as the spool
// holds it then, not as it was at the first attempt: the queue keeps only the scheduling part
// of a waiting message and reads the rest again (a change made to the spooled record between
// attempts is seen).
func TestRetryReadsRecordAgain(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	var sent rcpts
	h.dialer.send = func(_ *fakeConn, rcpt string) (message.Reply, error) {
		sent.add(rcpt)
		if len(sent.list()) == 1 {
			return message.Reply{}, errTemp
		}
		return message.Reply{Code: 250}, nil
	}
	msg := h.submitTo("site.test", "first@site.test")
	h.waitRecords("TransientFailure", msg.ID, 1)
	due := h.onHeap(msg.ID)

	rec, ok := h.store.get(msg.ID)
	if !ok || rec.Attempts != 1 {
		t.Fatalf("spooled record %+v, %v", rec, ok)
	}
	rec.Recipient = "changed@site.test"
	if err := h.store.Update(&rec); err != nil {
		t.Fatal(err)
	}
	h.clock.AdvanceTo(due)
	h.waitRecords("Delivery", msg.ID, 1)
	if got := sent.list(); len(got) != 2 || got[0] != "first@site.test" || got[1] != "changed@site.test" {
		t.Fatalf("attempts went to %v, want first@site.test then changed@site.test", got)
	}
}

// A rescheduled message waits in brief, without its record; one not attempted yet keeps it.
func TestRescheduledMessageHeldInBrief(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	h.dialer.send = func(*fakeConn, string) (message.Reply, error) { return message.Reply{}, errTemp }
	msg := h.submitTo("site.test", "r@site.test")
	h.waitRecords("TransientFailure", msg.ID, 1)
	h.onHeap(msg.ID)
	if waiting, brief := h.briefEntry(msg.ID); !waiting || !brief {
		t.Fatalf("rescheduled message: waiting %v, in brief %v; want both", waiting, brief)
	}

	later := &message.Message{ID: message.NewID(h.clock.Now()), Sender: "a@sender.test", Recipient: "l@site.test",
		Queue: "site.test", Created: h.clock.Now(), Due: h.clock.Now().Add(time.Minute), Protocol: "ESMTP"}
	if err := h.m.Submit([]*message.Message{later}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if waiting, brief := h.briefEntry(later.ID); !waiting || brief {
		t.Fatalf("message not attempted yet: waiting %v, in brief %v; want it waiting with its record", waiting, brief)
	}
}

// Recovery from the scheduling part of each record: the messages wait in brief, the admin
// API shows each one whole (read from the spool) with the recovered due time and attempts,
// and the attempt uses the spooled envelope.
func TestRecoverSched(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	var sent rcpts
	h.dialer.send = func(_ *fakeConn, rcpt string) (message.Reply, error) {
		sent.add(rcpt)
		return message.Reply{Code: 250}, nil
	}
	now := h.clock.Now()
	msg := &message.Message{ID: message.NewID(now), Sender: "a@sender.test", Recipient: "r@site.test", Queue: "t1@site.test",
		Created: now.Add(-time.Hour), Due: now.Add(time.Hour), Attempts: 2, Protocol: "ESMTP", Meta: map[string]string{"tenant": "t1"}}
	if err := h.store.PutBatches([]message.Batch{{Msgs: []*message.Message{msg}, Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	h.m.RecoverSched(message.Sched{ID: msg.ID, Queue: msg.Queue, Created: msg.Created, Due: msg.Due, Attempts: 2})
	if waiting, brief := h.briefEntry(msg.ID); !waiting || !brief {
		t.Fatalf("recovered message: waiting %v, in brief %v; want both", waiting, brief)
	}
	if st := h.m.Stats(); st.Queued != 1 {
		t.Fatalf("queued %d, want 1", st.Queued)
	}

	q, ok := h.m.Inspect(msg.ID)
	if !ok || q.Sender != msg.Sender || q.Recipient != msg.Recipient || q.Meta["tenant"] != "t1" || q.Attempts != 2 ||
		!q.Due.Equal(msg.Due) || !q.Created.Equal(msg.Created) || q.Site != "" {
		t.Fatalf("inspect: %+v, %v", q, ok)
	}
	list, n := h.m.Messages("t1@site.test", 10)
	if n != 1 || len(list) != 1 || list[0].Recipient != msg.Recipient {
		t.Fatalf("messages of the queue: %d, %+v", n, list)
	}
	s := h.m.Summary()
	if len(s.Scheduled) != 1 || s.Scheduled[0].Name != "t1@site.test" || s.Scheduled[0].Count != 1 ||
		!s.Scheduled[0].Oldest.Equal(msg.Created) || s.Scheduled[0].NextDue == nil || !s.Scheduled[0].NextDue.Equal(msg.Due) {
		t.Fatalf("summary %+v", s.Scheduled)
	}
	if d := h.m.Depths(); d.Scheduled["t1@site.test"] != 1 {
		t.Fatalf("depths %+v", d)
	}

	h.clock.AdvanceTo(msg.Due)
	rec := h.waitRecords("Delivery", msg.ID, 1)[0]
	if got := sent.list(); len(got) != 1 || got[0] != "r@site.test" {
		t.Fatalf("delivered to %v", got)
	}
	if rec["sender"] != msg.Sender || rec["num_attempts"] != 2.0 { // the attempts before this one, as recovered
		t.Fatalf("delivery record %v", rec)
	}
	eventually(t, func() bool { _, ok := h.store.get(msg.ID); return !ok }, "the delivered message out of the spool") // deleted after its record
}

// A bounce rule ends messages held in brief too: their records are read for the AdminBounce
// record and removed from the spool.
func TestAdminBounceOfBriefMessage(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	now := h.clock.Now()
	msg := &message.Message{ID: message.NewID(now), Sender: "a@sender.test", Recipient: "r@site.test", Queue: "t1@site.test",
		Created: now, Due: now.Add(time.Hour), Attempts: 1, Protocol: "ESMTP"}
	if err := h.store.PutBatches([]message.Batch{{Msgs: []*message.Message{msg}, Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	h.m.RecoverSched(message.Sched{ID: msg.ID, Queue: msg.Queue, Created: msg.Created, Due: msg.Due, Attempts: 1})
	_, swept, err := h.m.Bounce(RuleRequest{Selector: Selector{Tenant: str("t1")}, Reason: "gone", Duration: time.Hour})
	if err != nil || swept.Bounced["t1@site.test"] != 1 {
		t.Fatalf("swept %v, %v", swept, err)
	}
	rec := h.waitRecords("AdminBounce", msg.ID, 1)[0]
	if rec["recipient"] != "r@site.test" {
		t.Fatalf("record %v", rec)
	}
	eventually(t, func() bool { _, ok := h.store.get(msg.ID); return !ok }, "the bounced message out of the spool") // deleted after its record
	if st := h.m.Stats(); st.Queued != 0 {
		t.Fatalf("queued %d after the bounce", st.Queued)
	}
}

// A message held in brief whose record is gone from the spool when it comes due is dropped,
// with a diagnostic, and no longer counted as queued.
func TestBriefMessageMissingFromSpool(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, nil)
	now := h.clock.Now()
	id := message.NewID(now)
	h.m.RecoverSched(message.Sched{ID: id, Queue: "site.test", Created: now, Due: now.Add(time.Minute)})
	h.clock.Advance(time.Minute)
	eventually(t, func() bool { return h.m.Stats().Queued == 0 }, "missing message counted out")
	if !strings.Contains(h.diag.String(), "missing from the spool") {
		t.Fatalf("diagnostics: %s", h.diag.String())
	}
}
