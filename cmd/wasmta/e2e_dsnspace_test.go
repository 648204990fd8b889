package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// bounceBelowReserve starts a relay on a small tmpfs, has it accept a message from sender to
// rcpt that the sink defers (451), fills the tmpfs below spool.min_free with the returned
// ballast file, and makes the sink's next answer a 550: the message is about to bounce, with
// no room for its DSN.
func bounceBelowReserve(t *testing.T, sender, rcpt string) (*diskEnv, string) {
	t.Helper()
	e := newDiskEnv(t) // the sink answers 451 to every RCPT for now: the message stays queued
	q, err := dialQuiet(e.relay.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	code, err := q.send(sender, rcpt, testutil.Message(sender, rcpt, "will bounce", "hello\r\n"))
	q.Close()
	if err != nil || code != 250 {
		t.Fatalf("send: %d %v", code, err)
	}
	e.relay.WaitLog(func(r map[string]any) bool { return r["type"] == "TransientFailure" && r["recipient"] == rcpt }, 20*time.Second)
	ballast := testutil.Ballast(t, e.fs, "ballast", diskReserve-8<<20)
	e.relay.WaitStderr("spool free space below spool.min_free", 20*time.Second)
	e.sink.SetBehavior(testutil.Behavior{Mode: testutil.PermFail, Times: 1}) // the next attempt: 550
	return e, ballast
}

// Below spool.min_free a DSN is new mail and is refused for space. The message whose failure it
// reports must stay spooled and its DSN be retried, so that the sender learns once space is
// back; removing the message anyway lost the DSN for good. The real binary, its spool on a
// tmpfs filled below the reserve with a ballast; the failure is the sink's 550.
func TestDiskFullDSNRetriedWhenSpaceReturns(t *testing.T) {
	const sender, rcpt = "s@example.com", "gone@example.com"
	e, ballast := bounceBelowReserve(t, sender, rcpt)
	e.relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Bounce" && r["recipient"] == rcpt }, 20*time.Second)
	e.alive()
	dsns := func() int {
		n := 0
		for _, m := range e.sink.Messages() {
			if m.From == "" && len(m.To) == 1 && m.To[0] == sender {
				n++
			}
		}
		return n
	}
	if n := dsns(); n != 0 {
		t.Fatalf("%d DSNs delivered while the spool refused new mail", n)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for dsns() == 0 {
		e.alive()
		if time.Now().After(deadline) {
			t.Fatalf("the DSN never reached the sender after space returned:\n%s", tail(e.relay.Stderr(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(e.relay.Stderr(), "delivery status notification not spooled") {
		t.Fatalf("the refused DSN was not reported:\n%s", tail(e.relay.Stderr(), 4000))
	}
	var dsn string
	for _, m := range e.sink.Messages() {
		if m.From == "" {
			dsn = string(m.Data)
		}
	}
	if !strings.Contains(dsn, "Final-Recipient: rfc822; "+rcpt) || !strings.Contains(dsn, "Action: failed") {
		t.Fatalf("DSN:\n%s", dsn)
	}
	// Its one Bounce record, and the DSN once: the held message is gone once its DSN is spooled.
	e.relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Delivery" && r["sender"] == "" }, 20*time.Second)
	bounces := 0
	for _, r := range e.relay.LogRecords() {
		if r["type"] == "Bounce" && r["recipient"] == rcpt {
			bounces++
		}
	}
	if bounces != 1 || dsns() != 1 {
		t.Fatalf("%d Bounce records, %d DSNs; want 1 and 1", bounces, dsns())
	}
}

// The mark that a bounced message is held only for its DSN (its Bounce record written, the DSN
// refused for space) must survive a kill -9 right after it: lost, the message is attempted
// again after the restart (here delivered, after its Bounce record), and its sender never
// learns of the bounce. The kill comes as soon as the Bounce record is in the log,
// within the spool's lazy commit delay.
func TestDiskFullDSNHoldSurvivesKill(t *testing.T) {
	const sender, rcpt = "s@example.com", "held@example.com"
	e, ballast := bounceBelowReserve(t, sender, rcpt)
	bounced := func() bool {
		for _, r := range e.relay.LogRecords() {
			if r["type"] == "Bounce" && r["recipient"] == rcpt {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(20 * time.Second); !bounced(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no Bounce record")
		}
	}
	e.relay.Kill()
	if err := os.Remove(ballast); err != nil { // the restart needs room to open the spool
		t.Fatal(err)
	}
	e.sink.SetBehavior(testutil.Behavior{Mode: testutil.Accept}) // an attempt would be a Delivery
	e.relay.Start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := 0
		for _, m := range e.sink.Messages() {
			if m.From == "" && len(m.To) == 1 && m.To[0] == sender {
				n++
			}
		}
		if n > 0 {
			break
		}
		e.alive()
		if time.Now().After(deadline) {
			t.Fatalf("no DSN after the restart:\n%s", tail(e.relay.Stderr(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := false
	for _, r := range e.relay.LogRecords() {
		if r["recipient"] != rcpt {
			continue
		}
		if r["type"] == "Bounce" {
			after = true
		} else if after && r["type"] != "Bounce" {
			t.Fatalf("a %v record for the bounced message after its Bounce: it was attempted again", r["type"])
		}
	}
}
