package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

func open(t *testing.T, r *testutil.Redis, node string) *Client {
	t.Helper()
	c, err := Open(Options{URL: r.URL(), Cluster: "prod", Node: node, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond (bounded), for what other goroutines or Redis's clock do.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func names(t *testing.T, c *Client) string {
	t.Helper()
	ns, err := c.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range ns {
		out = append(out, n.Name+"="+string(n.Info))
	}
	return strings.Join(out, ",")
}

// Beats register nodes with their info and count them; a node that stops beating drops out
// once its TTL passes, one that leaves drops out at once.
func TestHeartbeatRegistersCountsAndExpires(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := open(t, r, "mta1"), open(t, r, "mta2")
	ctx := context.Background()
	if a.NodeCount() != 1 {
		t.Fatalf("NodeCount before any beat = %d", a.NodeCount())
	}
	if n, prev, err := a.Beat(ctx, "ia", []byte(`{"v":1}`), time.Minute); err != nil || n != 1 || prev != "" {
		t.Fatalf("first beat: %d %q %v", n, prev, err)
	}
	// b beats with a short TTL and then stops beating, as a node killed with -9 does.
	if n, _, err := b.Beat(ctx, "ib", []byte(`{"v":2}`), 300*time.Millisecond); err != nil || n != 2 {
		t.Fatalf("second node: %d %v", n, err)
	}
	if got := names(t, a); got != `mta1={"v":1},mta2={"v":2}` {
		t.Fatalf("Nodes = %s", got)
	}
	if n, prev, err := a.Beat(ctx, "ia", []byte(`{"v":3}`), time.Minute); err != nil || n != 2 || prev != "ia" || a.NodeCount() != 2 {
		t.Fatalf("beat with two live: %d %q %v, NodeCount %d", n, prev, err, a.NodeCount())
	}
	waitFor(t, "mta2 expires", 10*time.Second, func() bool { return names(t, a) == `mta1={"v":3}` })
	if n, _, _ := a.Beat(ctx, "ia", []byte(`{}`), time.Minute); n != 1 || a.NodeCount() != 1 {
		t.Fatalf("count after expiry: %d, NodeCount %d", n, a.NodeCount())
	}
	if v, _ := r.Do("EXISTS", "wasmta:prod:node:mta2"); v != ":0" {
		t.Fatalf("expired node's key: %s", v)
	}

	// Leave removes only the caller's own instance: a stale process must not unregister the
	// one that replaced it.
	if err := a.Leave(ctx, "someone-else"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, a); got != `mta1={}` {
		t.Fatalf("after a stranger's leave: %s", got)
	}
	if err := a.Leave(ctx, "ia"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, b); got != "" {
		t.Fatalf("after leave: %s", got)
	}
}

// Heartbeat beats until its context ends and then leaves; with Redis away it keeps going and
// the node count stays at what it last saw (fail_open divides limits by it).
func TestHeartbeatLoopSurvivesRedisRestart(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := open(t, r, "mta1"), open(t, r, "mta2")
	var mu sync.Mutex
	var logs strings.Builder
	a.opt.Diag = slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, b: &logs}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		a.Heartbeat(ctx, 50*time.Millisecond, time.Second, func() []byte { return []byte("a") })
		close(done)
	}()
	if _, _, err := b.Beat(context.Background(), "ib", []byte("b"), time.Minute); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a sees two nodes", 5*time.Second, func() bool { return a.NodeCount() == 2 })
	r.Stop()
	waitFor(t, "the failure is reported", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "cluster heartbeat failed")
	})
	if a.NodeCount() != 2 {
		t.Fatalf("NodeCount with Redis away = %d, want the last seen (2)", a.NodeCount())
	}
	r.Start() // empty: no persistence
	waitFor(t, "a registers again", 10*time.Second, func() bool { return names(t, b) == "mta1=a" })
	waitFor(t, "count follows", 5*time.Second, func() bool { return a.NodeCount() == 1 })
	cancel()
	<-done
	if got := names(t, b); got != "" {
		t.Fatalf("after the loop ended: %s", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "cluster heartbeat back") || strings.Contains(logs.String(), "another process") {
		t.Fatalf("diagnostics:\n%s", logs.String())
	}
}

// Two processes beating under one name are reported.
func TestHeartbeatReportsADuplicateName(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := open(t, r, "mta1"), open(t, r, "mta1")
	var mu sync.Mutex
	var logs strings.Builder
	a.opt.Diag = slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, b: &logs}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Heartbeat(ctx, 20*time.Millisecond, time.Second, func() []byte { return []byte("a") })
	go b.Heartbeat(ctx, 20*time.Millisecond, time.Second, func() []byte { return []byte("b") })
	waitFor(t, "the duplicate is reported", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "redis.node_name must be unique")
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
