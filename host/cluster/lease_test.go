package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

func acquire(t *testing.T, c *Client, key string, limit int) *Lease {
	t.Helper()
	l, err := c.Acquire(context.Background(), key, limit)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A limit of 2 shared by two nodes: the third lease is refused, whoever asks, until one is
// released.
func TestLeaseLimitHoldsAcrossNodes(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := node(t, r, "a", Options{}), node(t, r, "b", Options{})
	la := acquire(t, a, "site", 2)
	lb := acquire(t, b, "site", 2)
	if la == nil || lb == nil {
		t.Fatal("a lease under the limit was refused")
	}
	if acquire(t, a, "site", 2) != nil || acquire(t, b, "site", 2) != nil {
		t.Fatal("a third lease under a limit of 2")
	}
	if acquire(t, a, "other", 2) == nil {
		t.Fatal("another site's limit is full")
	}
	la.Release()
	la.Release() // twice is harmless
	if acquire(t, b, "site", 2) == nil {
		t.Fatal("no lease after one was released")
	}
	if n := integer(t, r, "ZCARD", "wasmta:prod:conns:site"); n != 2 {
		t.Fatalf("%d members, want 2", n)
	}
}

// Leases live as long as their holder renews them, and a holder that stops (a node killed)
// frees its places within the TTL.
func TestLeaseOfADeadNodeExpires(t *testing.T) {
	r := testutil.StartRedis(t)
	const ttl = 600 * time.Millisecond
	a := node(t, r, "a", Options{LeaseTTL: ttl})
	b := node(t, r, "b", Options{LeaseTTL: ttl})
	if acquire(t, a, "site", 2) == nil || acquire(t, a, "site", 2) == nil {
		t.Fatal("refused under the limit")
	}
	// Three TTLs: without renewal the leases would have gone after the first.
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if acquire(t, b, "site", 2) != nil {
			t.Fatal("a renewed lease was taken over")
		}
	}
	if ms := integer(t, r, "PTTL", "wasmta:prod:conns:site"); ms <= 0 || ms > ttl.Milliseconds() {
		t.Fatalf("the set's PTTL = %d ms, want within the TTL", ms)
	}
	a.stopLeases() // the holder dies: no renewal, no release
	died := time.Now()
	for acquire(t, b, "site", 2) == nil {
		if time.Since(died) > 3*ttl {
			t.Fatalf("a dead holder's lease still counts %v after it stopped renewing (TTL %v)", time.Since(died), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("place freed %v after the holder stopped renewing (TTL %v)", time.Since(died).Round(time.Millisecond), ttl)
	// Once nobody holds anything, the set goes too.
	b.stopLeases()
	deadline := time.Now().Add(5 * time.Second)
	for integer(t, r, "EXISTS", "wasmta:prod:conns:site") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the set outlived every lease by 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A lease removed behind the holder's back (it expired while Redis was away and another node
// took the place) is reported lost at the next renewal, and never brought back.
func TestLeaseLost(t *testing.T) {
	r := testutil.StartRedis(t)
	a := node(t, r, "a", Options{LeaseTTL: 300 * time.Millisecond})
	l := acquire(t, a, "site", 1)
	if l == nil || l.Lost() {
		t.Fatal("no fresh lease")
	}
	if _, err := r.Do("DEL", "wasmta:prod:conns:site"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !l.Lost() {
		if time.Now().After(deadline) {
			t.Fatal("a removed lease is not reported lost")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := integer(t, r, "EXISTS", "wasmta:prod:conns:site"); n != 0 {
		t.Fatal("the renewal brought a lost lease back")
	}
	// Redis away: a lease nobody can confirm is lost after one TTL.
	m := acquire(t, a, "other", 1)
	r.Stop()
	deadline = time.Now().Add(5 * time.Second)
	for !m.Lost() {
		if time.Now().After(deadline) {
			t.Fatal("a lease unconfirmed for 5 s is not lost")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := a.Acquire(context.Background(), "other", 1); err == nil {
		t.Fatal("Acquire without Redis succeeded")
	}
}

// A Redis that stalls for a moment (SIGSTOP: a slow disk, a long script) must not leave
// places taken after it answers again. Two ways a place is left behind: a connection that
// closes while the breaker says Redis is away releases without reaching it, and an Acquire
// that timed out is still run by Redis when it resumes, for a lease nobody holds. Either way
// the limit stays full for a whole lease_ttl after the stall, for every node.
func TestLeasesOfAStallAreFreedWhenRedisAnswers(t *testing.T) {
	r := testutil.StartRedis(t)
	const ttl = 8 * time.Second
	opt := Options{LeaseTTL: ttl, Timeout: 200 * time.Millisecond}
	a, b, c := node(t, r, "a", opt), node(t, r, "b", opt), node(t, r, "c", opt)
	la := acquire(t, a, "site", 2)
	// b has talked to Redis before, as a running node has: its next command goes out on a
	// pooled connection (a fresh one would stall in the handshake, before the command).
	if la == nil || acquire(t, b, "other", 1) == nil {
		t.Fatal("refused under the limit")
	}
	r.Pause()
	paused := true
	defer func() {
		if paused {
			r.Resume()
		}
	}()
	// b asks while Redis is stalled: it times out, and Redis books the lease when it resumes.
	if l, err := b.Acquire(context.Background(), "site", 2); err == nil || l != nil {
		t.Fatalf("Acquire on a stalled Redis: %v, %v", l, err)
	}
	// a's connection closes meanwhile: a's breaker is open after a failed command.
	if _, err := a.Reserve(context.Background(), "x", time.Second, 1, 1); err == nil {
		t.Fatal("Reserve on a stalled Redis succeeded")
	}
	la.Release()
	r.Resume()
	paused = false
	deadline := time.Now().Add(5 * time.Second)
	for !a.Up() || !b.Up() {
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not see Redis back within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	back := time.Now()
	// Nobody holds a place: both are free for node c, within a couple of probes (not ttl).
	for {
		l1 := acquire(t, c, "site", 2)
		var l2 *Lease
		if l1 != nil {
			l2 = acquire(t, c, "site", 2)
		}
		if l1 != nil && l2 != nil {
			break
		}
		if l1 != nil {
			l1.Release()
		}
		if time.Since(back) > 3*time.Second {
			line, _ := r.Do("ZCARD", "wasmta:prod:conns:site")
			t.Fatalf("places held by no connection %v after Redis answered again (ZCARD %s; lease_ttl %v)", time.Since(back).Round(time.Millisecond), line, ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("both places free %v after Redis answered again", time.Since(back).Round(time.Millisecond))
}
