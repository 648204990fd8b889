package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/testutil"
)

// adminDo sends an admin request with the token and returns the status and body.
func (e *adminEnv) adminDo(method, path string, body any) (int, string) {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.request(method, path, strings.NewReader(string(b)),
		"Content-Type", "application/json", "Authorization", "Bearer "+adminToken)
}

// A rebind the admin API answered 200 for holds after the relay is killed (SIGKILL) right
// after the answer: deferred mail moved to a smarthost is found in its new queue after the
// restart, not back in the old one waiting an hour for its retry there.
func TestKillRightAfterRebindKeepsIt(t *testing.T) {
	t.Parallel()
	const n = 20
	e := newAdminEnv(t, []string{"127.0.0.2", "127.0.0.6"}, "[queue]\nretry_interval = \"1h\"\n")
	e.sinks["127.0.0.2"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	smarthost := e.sinks["127.0.0.6"]
	for i := range n {
		e.send("a@sender.test", fmt.Sprintf("r%d@example.com", i), "moved")
	}
	for i := range n {
		e.relay.WaitLog(recipientIs("TransientFailure", fmt.Sprintf("r%d@example.com", i)), 20*time.Second)
	}
	// The smarthost's queue is suspended, so the rebound mail stays put for the test to see.
	code, out := e.adminDo("POST", "/api/admin/suspend/v1", map[string]any{"routing_domain": "smarthost.test", "reason": "hold", "duration": "1h"})
	if code != 200 {
		t.Fatalf("suspend: %d %s", code, out)
	}
	var sus struct{ ID string }
	_ = json.Unmarshal([]byte(out), &sus)
	code, out = e.adminDo("POST", "/api/admin/rebind/v1", map[string]any{"domain": "example.com", "reason": "to the smarthost",
		"data": map[string]string{"routing_domain": "smarthost.test"}})
	e.relay.Kill()
	var rr queue.RebindResult
	if code != 200 || json.Unmarshal([]byte(out), &rr) != nil || rr.Moved != n {
		t.Fatalf("rebind: %d %s", code, out)
	}
	e.relay.Start()
	e.waitHTTP(strings.TrimPrefix(e.url, "http://"))
	moved := "example.com!smarthost.test"
	e.waitSummary("every rebound message in "+moved+" after the restart", func(s queue.Summary) bool {
		q := schedQ(s, moved)
		return s.Queued == n && q != nil && q.Count == n
	})
	if code, out := e.adminDo("DELETE", "/api/admin/suspend/v1", map[string]string{"id": sus.ID}); code != 200 {
		t.Fatalf("resume: %d %s", code, out)
	}
	smarthost.WaitCount(t, n, 20*time.Second)
	waitQueueEmpty(t, defaultSock(e.relay))
}
