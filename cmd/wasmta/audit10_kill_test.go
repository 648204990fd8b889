package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
)

// The relay is killed (SIGKILL) again and again while it delivers some messages and bounces
// others (with a DSN to their sender), then restarted: every message that got 250 ends with
// the record of its end in the log (Delivery or Bounce; a crash may write it twice, never zero
// times), and the sender of every bounced one gets its DSN at least once.
func TestAudit10KillEveryAcceptedMessageEndsWithARecord(t *testing.T) {
	t.Parallel()
	const (
		rounds    = 3
		perRound  = 160
		killAfter = 40 // messages at the accepting sink in a round before the kill
	)
	e := newEnv(t, zone, []string{"127.0.0.4", "127.0.0.2"}, "")
	good := e.sinks["127.0.0.4"] // implicit.test: accepts; it is also the sender's domain (DSNs)
	e.sinks["127.0.0.2"].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550})
	// The Subject is the recipient: accepted maps recipients.
	accepted := killDuringBursts(t, e.relay, good, rounds, perRound, 4, killAfter, func(round, i int) (string, string, string) {
		domain := "implicit.test"
		if i%2 == 1 {
			domain = "example.com"
		}
		rcpt := fmt.Sprintf("k%d-%d@%s", round, i, domain)
		return "s@implicit.test", rcpt, rcpt
	})
	waitQueueEmpty(t, defaultSock(e.relay))
	final := map[string]string{} // recipient -> type of its last final record
	for _, r := range fileRecords(t, filepath.Join(e.relay.Dir, "logs", "wasmta.jsonl")) {
		switch typ, _ := r["type"].(string); typ {
		case "Delivery", "Bounce", "Expiration", "AdminBounce":
			if rcpt, _ := r["recipient"].(string); rcpt != "s@implicit.test" { // not a DSN
				final[rcpt] = typ
			}
		}
	}
	dsns := map[string]int{}
	for _, m := range good.Messages() {
		if m.To[0] != "s@implicit.test" {
			continue
		}
		for rcpt := range accepted {
			if strings.Contains(string(m.Data), "rfc822; "+rcpt) {
				dsns[rcpt]++
			}
		}
	}
	bounced := 0
	for rcpt := range accepted {
		want := "Delivery"
		if strings.HasSuffix(rcpt, "@example.com") {
			want = "Bounce"
			bounced++
			if dsns[rcpt] == 0 {
				t.Errorf("%s bounced and its sender never got a DSN", rcpt)
			}
		}
		if final[rcpt] != want {
			t.Errorf("%s was accepted and ended with %q in the log, want %s", rcpt, final[rcpt], want)
		}
	}
	t.Logf("%d accepted (%d bounced) over %d kills", len(accepted), bounced, rounds)
}
