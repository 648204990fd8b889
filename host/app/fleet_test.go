package app

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/cluster"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/testutil"
)

func holds(a *App, id string) bool {
	for _, kind := range []string{queue.KindSuspend, queue.KindBounce} {
		for _, r := range a.queue.Rules(kind) {
			if r.ID == id {
				return true
			}
		}
	}
	return false
}

func spooled(t *testing.T, a *App, id string) bool {
	t.Helper()
	m, err := a.spool.Rules()
	if err != nil {
		t.Fatal(err)
	}
	_, ok := m[id]
	return ok
}

// A listing of the cluster's rules may be stale by the time a sync applies it: a rule made
// here after it was read must not be dropped, a rule cancelled here must not come back. Rules
// made or cancelled on another node are adopted or dropped, spool copy included. The sync is
// driven by hand (the node is built, not started), and stale listings are played by editing
// Redis behind the node's back.
func TestFleetSyncKeepsLocalChanges(t *testing.T) {
	r := testutil.StartRedis(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, "127.0.0.1:1", 25, fmt.Sprintf("[redis]\nurl = %q\ncluster_name = \"t\"\nnode_name = \"n1\"\n", r.URL()))
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if _, err := a.queue.LoadRules(); err != nil {
		t.Fatal(err)
	}
	other, err := cluster.Open(cluster.Options{URL: r.URL(), Cluster: "t", Node: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	f := a.fleet
	f.sync(ctx)
	dom := "held.test"
	req := queue.RuleRequest{Selector: queue.Selector{Domain: &dom}, Reason: "r", Duration: time.Hour}

	// Made here after the listing was read: kept.
	made, err := a.queue.Suspend(req)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(made)
	if _, err := r.Do("HDEL", "wasmta:t:rules", made.ID); err != nil {
		t.Fatal(err)
	}
	f.sync(ctx)
	if !holds(a, made.ID) || !spooled(t, a, made.ID) {
		t.Fatal("a sync dropped a rule made here after its listing was read")
	}
	// Listed, then cancelled on another node: dropped here, spool copy included.
	if err := other.PutRule(ctx, made.ID, v, made.Expires); err != nil {
		t.Fatal(err)
	}
	f.sync(ctx)
	if err := other.DeleteRule(ctx, made.ID); err != nil {
		t.Fatal(err)
	}
	f.sync(ctx)
	if holds(a, made.ID) || spooled(t, a, made.ID) {
		t.Fatal("a rule cancelled on another node still holds here")
	}

	// Cancelled here, then a listing read before the cancel: not adopted again.
	gone, err := a.queue.Suspend(req)
	if err != nil {
		t.Fatal(err)
	}
	f.sync(ctx)
	if err := a.queue.CancelRule(queue.KindSuspend, gone.ID); err != nil {
		t.Fatal(err)
	}
	v, _ = json.Marshal(gone)
	if err := other.PutRule(ctx, gone.ID, v, gone.Expires); err != nil {
		t.Fatal(err)
	}
	f.sync(ctx)
	if holds(a, gone.ID) {
		t.Fatal("a stale listing brought back a rule cancelled here")
	}

	// Made on another node: adopted, and kept in the spool for a restart without Redis.
	now := time.Now()
	b := queue.Rule{ID: "b-1", Kind: queue.KindBounce, Selector: queue.Selector{Domain: &dom}, Reason: "x",
		Created: now, Expires: now.Add(time.Hour)}
	v, _ = json.Marshal(b)
	if err := other.PutRule(ctx, b.ID, v, b.Expires); err != nil {
		t.Fatal(err)
	}
	f.sync(ctx)
	if !holds(a, b.ID) || !spooled(t, a, b.ID) {
		t.Fatal("a rule made on another node was not adopted")
	}
}

// The heartbeat carries a node's largest queues only, in the summary's name order.
func TestCutSummaryKeepsTheLargestQueues(t *testing.T) {
	s := queue.Summary{Queued: 1000}
	for i := range 150 {
		s.Scheduled = append(s.Scheduled, queue.SchedSummary{Name: fmt.Sprintf("q%03d.test", i), Count: i + 1})
		s.Ready = append(s.Ready, queue.ReadySummary{Name: fmt.Sprintf("site%03d", i), Count: 150 - i})
	}
	if !cutSummary(&s, 100) || len(s.Scheduled) != 100 || len(s.Ready) != 100 || s.Queued != 1000 {
		t.Fatalf("cut to %d scheduled, %d ready", len(s.Scheduled), len(s.Ready))
	}
	if s.Scheduled[0].Name != "q050.test" || s.Scheduled[99].Name != "q149.test" || s.Ready[0].Name != "site000" || s.Ready[99].Name != "site099" {
		t.Fatalf("kept %s..%s and %s..%s", s.Scheduled[0].Name, s.Scheduled[99].Name, s.Ready[0].Name, s.Ready[99].Name)
	}
	small := queue.Summary{Scheduled: []queue.SchedSummary{{Name: "a"}}}
	if cutSummary(&small, 100) || len(small.Scheduled) != 1 {
		t.Fatal("a small summary was cut")
	}
}
