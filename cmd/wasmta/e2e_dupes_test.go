package main

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/spool"
)

var subjectRE = regexp.MustCompile(`(?m)^Subject: (dup-\d+-\d+)\r$`)

// Bursts of deliveries, the relay killed (SIGKILL) right after the sink acknowledged some of
// them, then restarted: no accepted message is lost, and the messages delivered twice are at
// most what the design allows to be in doubt at the kill: one delivery in flight per
// connection (the sink said 250, the relay had not recorded it) plus the deletes still waiting
// for their sync (spool.DefaultMaxUnsyncedDeletes).
func TestCrashAfterDeliveryDuplicatesBounded(t *testing.T) {
	t.Parallel()
	const (
		connLimit = 4
		rounds    = 3
		perRound  = 300
		killAfter = 120 // sink acknowledgements in a round before the kill
	)
	bound := connLimit + spool.DefaultMaxUnsyncedDeletes
	e := newEnv(t, zone, []string{"127.0.0.4"}, fmt.Sprintf("\n[egress]\nconnection_limit = %d\n", connLimit))
	sink := e.sinks["127.0.0.4"]
	// 6 client connections inject each round's burst.
	accepted := killDuringBursts(t, e.relay, sink, rounds, perRound, 6, killAfter, func(round, i int) (string, string, string) {
		return "s@sender.test", "r@implicit.test", fmt.Sprintf("dup-%d-%d", round, i)
	})
	// Everything accepted arrives; once the queue is empty nothing else can.
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := map[string]int{}
		for _, m := range sink.Messages() {
			if s := subjectRE.FindSubmatch(m.Data); s != nil {
				got[string(s[1])]++
			}
		}
		missing := 0
		for s := range accepted {
			if got[s] == 0 {
				missing++
			}
		}
		n := len(accepted)
		if missing == 0 {
			waitQueueEmpty(t, defaultSock(e.relay))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted messages never arrived", missing, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := map[string]int{}
	for _, m := range sink.Messages() {
		if s := subjectRE.FindSubmatch(m.Data); s != nil {
			got[string(s[1])]++
		}
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("%d accepted, %d distinct delivered, %d delivered twice over %d kills (bound %d per kill)",
		len(accepted), len(got), dups, rounds, bound)
	if dups > rounds*bound {
		t.Fatalf("%d duplicates over %d kills, more than %d per kill", dups, rounds, bound)
	}
}
