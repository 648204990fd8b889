package queue

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/testutil"
)

// submitTo queues one message due now for each queue name (the recipient's domain is the name).
func (h *harness) submitQueues(names ...string) []*message.Message {
	h.t.Helper()
	var msgs []*message.Message
	for _, name := range names {
		h.n++
		now := h.clock.Now()
		msgs = append(msgs, &message.Message{
			ID: message.NewID(now.Add(time.Duration(h.n))), Sender: "a@sender.test",
			Recipient: fmt.Sprintf("r%d@%s", h.n, name), Queue: name,
			Created: now, Due: now, Protocol: "ESMTP",
		})
	}
	if err := h.m.Submit(msgs, []byte("Subject: t\r\n\r\nhi\r\n")); err != nil {
		h.t.Fatal(err)
	}
	return msgs
}

// waitAll waits until every message has a record of the type want gives it (one log read per
// poll, not one per message).
func (h *harness) waitAll(want map[message.ID]string) {
	h.t.Helper()
	missing := 0
	eventually(h.t, func() bool {
		got := map[message.ID]map[string]bool{}
		for _, r := range h.records("", "") {
			id := message.ID(r["id"].(string))
			if got[id] == nil {
				got[id] = map[string]bool{}
			}
			got[id][r["type"].(string)] = true
		}
		missing = 0
		for id, typ := range want {
			if !got[id][typ] {
				missing++
			}
		}
		return missing == 0
	}, "every message's record")
}

// A relay that sees many one-off destinations (a bounce storm to thousands of domains) does not
// keep a scheduled queue for each forever: once a queue holds no message and its cached config
// is stale, the once-a-minute sweep drops it, and the queue summary's scheduled_queues_kept is
// back where it started. Delivered, bounced and retried-then-delivered messages, and a
// message rebound to another queue, all let go of their queue.
func TestEmptySchedQueuesAreDropped(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: time.Hour}, nil)
	if n := h.m.Summary().SchedKept; n != 0 {
		t.Fatalf("scheduled_queues_kept %d before any mail", n)
	}
	var seen sync.Map
	h.dialer.send = func(_ *fakeConn, rcpt string) (message.Reply, error) {
		switch {
		case strings.Contains(rcpt, "@bounce"):
			return message.Reply{}, message.Errorf(550, "5.1.1", "no such user")
		case strings.Contains(rcpt, "@later"), strings.Contains(rcpt, "@moved"):
			if _, again := seen.LoadOrStore(rcpt, true); !again {
				return message.Reply{}, errTemp
			}
		}
		return message.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}, nil
	}
	const n = 150
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("%s%03d.test", []string{"bounce", "deliver", "later"}[i%3], i))
	}
	msgs := h.submitQueues(names...)
	moved := h.submitQueues("moved.test")[0]
	want := map[message.ID]string{moved.ID: "TransientFailure"}
	for _, msg := range msgs {
		want[msg.ID] = map[string]string{"bounce": "Bounce", "deliver": "Delivery", "later": "TransientFailure"}[msg.Queue[:len(msg.Queue)-8]]
	}
	h.waitAll(want)
	if kept := h.m.Summary().SchedKept; kept != n+1 {
		t.Fatalf("scheduled_queues_kept %d, want %d: the configs are fresh", kept, n+1)
	}
	// The rebound message leaves moved.test for elsewhere.test, due now.
	res, err := h.m.Rebind(RebindRequest{Selector: Selector{QueueNames: []string{"moved.test"}}, Reason: "test",
		Data: map[string]string{"queue": "elsewhere.test"}})
	if err != nil || res.Moved != 1 {
		t.Fatalf("rebind: %+v %v", res, err)
	}
	h.waitRecords("Delivery", moved.ID, 1)
	h.clock.Advance(2 * time.Minute) // the retries come due
	for _, msg := range msgs {
		if strings.HasPrefix(msg.Queue, "later") {
			want[msg.ID] = "Delivery"
		}
	}
	h.waitAll(want)
	eventually(t, func() bool { return h.m.Stats().Queued == 0 }, "every message to end")
	// Past the config's refresh interval the once-a-minute sweep drops the empty queues.
	for range 3 {
		h.clock.Advance(time.Minute)
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, func() bool { return h.m.Summary().SchedKept == 0 }, "scheduled_queues_kept back to 0 (%d)", h.m.Summary().SchedKept)

	// A suspension made while its queue is dropped holds a new message for it (rules are kept
	// apart and match by name); a new message for a dropped queue gets a fresh one, and is
	// delivered once the suspension is cancelled.
	rule, err := h.m.Suspend(RuleRequest{Selector: Selector{QueueNames: []string{"deliver001.test"}}, Reason: "test", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	again := h.submitQueues("deliver001.test")[0]
	eventually(t, func() bool {
		sc := h.m.Summary().Scheduled
		return len(sc) == 1 && sc[0].SuspendedUntil != nil
	}, "the new message held by the suspension")
	if err := h.m.CancelRule(KindSuspend, rule.ID); err != nil {
		t.Fatal(err)
	}
	h.waitRecords("Delivery", again.ID, 1)
}

// A message arriving for a queue the sweep is dropping lands in a live queue: the one the map
// lists, for as long as the message is held. Run with -race.
func TestSchedQueueArrivalRacesRemoval(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: time.Hour}, nil)
	far := h.clock.Now().Add(24 * time.Hour) // every config stale: empty queues go at once
	stop := make(chan struct{})
	var swept atomic.Int64
	var sweeper sync.WaitGroup
	sweeper.Add(1)
	go func() {
		defer sweeper.Done()
		for {
			select {
			case <-stop:
				return
			default:
				swept.Add(int64(h.m.sweepSched(far)))
			}
		}
	}()
	names := []string{"a.test", "b.test", "c.test"}
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				name := names[(g+i)%len(names)]
				q := h.m.hold(name)
				if v, ok := h.m.sched.Load(name); !ok || v.(*schedQueue) != q {
					wrong.Add(1)
				}
				h.m.unhold(name)
			}
		}()
	}
	// Real messages through the whole path meanwhile.
	var msgs []*message.Message
	for i := range 60 {
		msgs = append(msgs, h.submitQueues(names[i%len(names)])...)
	}
	wg.Wait()
	for _, msg := range msgs {
		h.waitRecords("Delivery", msg.ID, 1)
	}
	close(stop)
	sweeper.Wait()
	if n := wrong.Load(); n != 0 {
		t.Fatalf("%d holds landed in a queue the map no longer lists", n)
	}
	if swept.Load() == 0 {
		t.Fatal("the sweep never dropped a queue: the race was not exercised")
	}
	h.m.sweepSched(far)
	if kept := h.m.Summary().SchedKept; kept != 0 {
		t.Fatalf("scheduled_queues_kept %d after the last sweep", kept)
	}
}

// A queue whose max_message_rate is shared in a cluster and fast enough to be booked in
// batches is dropped too once its mail is gone: the slots of its last batch that no message
// used are past (the cluster counted them already), not a booking ahead that would keep the
// queue, and scheduled_queues_kept, for ever.
func TestSchedQueueWithSharedRateIsDropped(t *testing.T) {
	r := testutil.StartRedis(t)
	s := clusterNode(t, r, "a", false)
	h := sharedHarness(t, Config{RetryInterval: time.Minute, MaxAge: ever, MaxMessageRate: rate(t, "10000/s")}, s, nil)
	// Two messages book a batch of one slot, then one of two: one slot is never used.
	for _, msg := range h.submitQueues("shared.test", "shared.test") {
		h.waitRecords("Delivery", msg.ID, 1)
	}
	eventually(t, func() bool { return h.m.Stats().Queued == 0 }, "every message to end")
	far := time.Now().Add(24 * time.Hour) // the config stale, every slot long past
	h.m.sweepSched(far)
	if kept := h.m.Summary().SchedKept; kept != 0 {
		t.Fatalf("scheduled_queues_kept %d after the sweep, want 0", kept)
	}
}
