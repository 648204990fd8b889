package main

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
)

// TestLogsKill9KeepsEveryRecord: records are written in group commits (several records per
// write(2)), yet every message that got 250 has exactly one Reception record in the log file
// when the relay is killed with SIGKILL right after the last 250 (docs/logs.md: a record is
// logged before the reply it goes with, and a logged record survives a killed process), and
// every Delivery record written is whole and names a message the sink got.
func TestLogsKill9KeepsEveryRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	sink := e.sinks["127.0.0.4"]
	const conns, perConn = 8, 15
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testutil.Dial(t, e.relay.SMTP)
			c.Hello("burst.test")
			for j := 0; j < perConn; j++ {
				rcpt := fmt.Sprintf("k%d-%d@implicit.test", i, j)
				code, msg := c.Send("a@sender.test", []string{rcpt}, testutil.Message("a@sender.test", rcpt, "kill", "x"))
				if code != 250 {
					t.Errorf("%s: %d %s", rcpt, code, msg)
					return
				}
				mu.Lock()
				ids = append(ids, idOf(msg))
				mu.Unlock()
			}
			c.Close()
		}()
	}
	wg.Wait()
	e.relay.Kill() // SIGKILL right after the last 250
	delivered := map[string]bool{}
	for _, m := range sink.Messages() {
		delivered[m.To[0]] = true
	}

	recs := fileRecords(t, filepath.Join(e.relay.Dir, "logs", "wasmta.jsonl"))
	byType := map[string]map[string]int{}
	for _, r := range recs {
		typ, _ := r["type"].(string)
		if byType[typ] == nil {
			byType[typ] = map[string]int{}
		}
		byType[typ][fmt.Sprint(r["id"])]++
		if typ == "Delivery" && !delivered[fmt.Sprint(r["recipient"])] {
			t.Errorf("Delivery record for %v, which the sink never got", r["recipient"])
		}
	}
	for _, id := range ids {
		if n := byType["Reception"][id]; n != 1 {
			t.Errorf("message %s got 250 and has %d Reception records", id, n)
		}
	}
	if len(ids) != conns*perConn {
		t.Fatalf("%d messages accepted, want %d", len(ids), conns*perConn)
	}
	t.Logf("%d accepted, %d delivered before the kill, %d Delivery records", len(ids), len(delivered), len(byType["Delivery"]))
}
