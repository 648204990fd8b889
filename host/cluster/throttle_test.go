package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// node opens a client of cluster "prod" named name on r.
func node(t *testing.T, r *testutil.Redis, name string, opt Options) *Client {
	t.Helper()
	opt.URL, opt.Node = r.URL(), name
	if opt.Cluster == "" {
		opt.Cluster = "prod"
	}
	if opt.Timeout == 0 {
		opt.Timeout = 500 * time.Millisecond
	}
	c, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// integer reads an integer reply (":n") of a raw command.
func integer(t *testing.T, r *testutil.Redis, args ...string) int64 {
	t.Helper()
	line, err := r.Do(args...)
	if err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("%v: %q, %v", args, line, err)
	}
	n, _ := strconv.ParseInt(line[1:], 10, 64)
	return n
}

// Two nodes booking one shared limit of 1/s alternately get consecutive slots one second
// apart: the limit holds for the pair, not for each.
func TestReserveSpacesEventsAcrossNodes(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := node(t, r, "a", Options{}), node(t, r, "b", Options{})
	ctx := context.Background()
	start := time.Now()
	for i := range 6 {
		c := a
		if i%2 == 1 {
			c = b
		}
		d, err := c.Reserve(ctx, "msg:site", time.Second, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		// Slot i is i seconds after the first booking, which was at most the time elapsed ago.
		want, slack := time.Duration(i)*time.Second, time.Since(start)+10*time.Millisecond
		if d > want || d < want-slack {
			t.Fatalf("booking %d waits %v, want %v (less at most %v elapsed)", i, d, want, slack)
		}
	}
	// A limit under another key, or the same key in another cluster, is another limit.
	if d, _ := a.Reserve(ctx, "msg:other", time.Second, 1, 1); d != 0 {
		t.Fatalf("another key waits %v", d)
	}
	if d, _ := node(t, r, "c", Options{Cluster: "test"}).Reserve(ctx, "msg:site", time.Second, 1, 1); d != 0 {
		t.Fatalf("another cluster waits %v", d)
	}
}

// max_burst = 5 at 1/m: five events go at once, the sixth waits for the first token to come back.
func TestReserveBurst(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := node(t, r, "a", Options{}), node(t, r, "b", Options{})
	ctx := context.Background()
	for i := range 5 {
		c := []*Client{a, b}[i%2]
		if d, err := c.Reserve(ctx, "conn:site", time.Minute, 5, 1); err != nil || d != 0 {
			t.Fatalf("burst event %d waits %v, %v", i, d, err)
		}
	}
	d, err := a.Reserve(ctx, "conn:site", time.Minute, 5, 1)
	if err != nil || d < 59*time.Second || d > time.Minute {
		t.Fatalf("sixth event waits %v, %v; want about a minute", d, err)
	}
}

// A batch of n events books n slots at once: the next booking, by another node, comes after
// all of them.
func TestReserveBatch(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := node(t, r, "a", Options{}), node(t, r, "b", Options{})
	ctx := context.Background()
	if d, err := a.Reserve(ctx, "k", time.Second, 1, 5); err != nil || d != 0 {
		t.Fatalf("a batch of 5 waits %v, %v", d, err)
	}
	d, err := b.Reserve(ctx, "k", time.Second, 1, 1)
	if err != nil || d < 4500*time.Millisecond || d > 5*time.Second {
		t.Fatalf("the event after a batch of 5 at 1/s waits %v, %v; want about 5 s", d, err)
	}
}

// The key lives just past the theoretical arrival time, then goes: nothing leaks.
func TestReserveKeyExpires(t *testing.T) {
	r := testutil.StartRedis(t)
	a := node(t, r, "a", Options{})
	ctx := context.Background()
	for range 3 {
		if _, err := a.Reserve(ctx, "q", time.Second, 1, 1); err != nil {
			t.Fatal(err)
		}
	}
	if ms := integer(t, r, "PTTL", "wasmta:prod:rate:q"); ms < 2500 || ms > 3001 {
		t.Fatalf("PTTL after three bookings at 1/s = %d ms, want just under 3000", ms)
	}
	if _, err := a.Reserve(ctx, "fast", 20*time.Millisecond, 1, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for integer(t, r, "EXISTS", "wasmta:prod:rate:fast") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the key of a 20 ms booking still exists after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockedLog is a diagnostics log tests read.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// Redis going away: the first check pays for finding out, the next ones fail at once without
// I/O until a probe is due; one Warn, one Info when it is back, and the counters say so.
func TestBreaker(t *testing.T) {
	r := testutil.StartRedis(t)
	log := &lockedLog{}
	a := node(t, r, "a", Options{FailClosed: true, Diag: slog.New(slog.NewTextHandler(log, nil))})
	ctx := context.Background()
	if _, err := a.Reserve(ctx, "k", time.Millisecond, 1, 1); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if _, err := a.Reserve(ctx, "k", time.Millisecond, 1, 1); err == nil {
		t.Fatal("a check against a stopped Redis succeeded")
	}
	for range 100 {
		if _, err := a.Reserve(ctx, "k", time.Millisecond, 1, 1); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("a check while Redis is marked away: %v, want ErrUnavailable without a try", err)
		}
	}
	if st := a.Stats(); st.Up || st.Errors != 1 || st.Fallbacks != 101 || st.Policy != "fail_closed" {
		t.Fatalf("stats while away: %+v", st)
	}
	if a.FallbackNodes() != 0 {
		t.Fatal("fail_closed falls back to local limits")
	}
	r.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := a.Reserve(ctx, "k", time.Millisecond, 1, 1); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Redis back for 5 s and checks still fail")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !a.Stats().Up {
		t.Fatal("not up after a check succeeded")
	}
	if w, i := log.count("level=WARN msg=\"cluster: redis unavailable"), log.count("level=INFO msg=\"cluster: redis is back"); w != 1 || i != 1 {
		t.Fatalf("%d Warn and %d Info lines, want one each:\n%s", w, i, log.buf.String())
	}
	// fail_open scales by the node count, at least this node.
	if n := node(t, r, "b", Options{}).FallbackNodes(); n != 1 {
		t.Fatalf("fail_open FallbackNodes = %d", n)
	}
}

// A node with no traffic when Redis comes back still learns it (the Info line, redis_up):
// the breaker probes on its own while Redis is away.
func TestBreakerNoticesRedisBackWithoutTraffic(t *testing.T) {
	r := testutil.StartRedis(t)
	log := &lockedLog{}
	a := node(t, r, "a", Options{Diag: slog.New(slog.NewTextHandler(log, nil))})
	r.Stop()
	if _, err := a.Reserve(context.Background(), "k", time.Millisecond, 1, 1); err == nil {
		t.Fatal("a check against a stopped Redis succeeded")
	}
	r.Start()
	for deadline := time.Now().Add(5 * time.Second); !a.Up(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Redis back for 5 s, no check made, and the node still counts it away")
		}
	}
	if n := log.count("redis is back"); n != 1 {
		t.Fatalf("%d 'back' lines, want 1", n)
	}
}
