package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

func rules(t *testing.T, c *Client, epoch string) RuleSet {
	t.Helper()
	rs, err := c.SyncRules(context.Background(), epoch)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// Put, delete and list, across two clients; expired rules are never listed.
func TestRulesPutDeleteListExpire(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := open(t, r, "mta1"), open(t, r, "mta2")
	ctx := context.Background()
	first := rules(t, a, "")
	if !first.Fresh || len(first.Rules) != 0 || first.Epoch == "" {
		t.Fatalf("first sync of an empty Redis: %+v", first)
	}
	if err := a.PutRule(ctx, "r1", []byte(`{"id":"r1"}`), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.PutRule(ctx, "short", []byte(`{"id":"short"}`), time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := a.PutRule(ctx, "past", []byte(`{"id":"past"}`), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	got := rules(t, b, "")
	if got.Fresh || got.Epoch != first.Epoch || len(got.Rules) != 2 || string(got.Rules["r1"]) != `{"id":"r1"}` || got.Rules["short"] == nil {
		t.Fatalf("b's sync: %+v", got)
	}
	waitFor(t, "the short rule expires", 10*time.Second, func() bool { return len(rules(t, b, got.Epoch).Rules) == 1 })
	if v, _ := r.Do("ZCARD", "wasmta:prod:rules:expiry"); v != ":1" {
		t.Fatalf("expired rule left in the expiry index: %s", v)
	}
	if err := b.DeleteRule(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteRule(ctx, "r1"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if got := rules(t, a, first.Epoch); len(got.Rules) != 0 || got.Fresh {
		t.Fatalf("after delete: %+v", got)
	}
}

// A Redis that lost its data answers Fresh to a node that synced before, which seeds what it
// holds; a rule already there is not overwritten, an expired one is not seeded.
func TestRulesFreshAfterRedisRestartAndSeed(t *testing.T) {
	r := testutil.StartRedis(t)
	a := open(t, r, "mta1")
	ctx := context.Background()
	ep := rules(t, a, "").Epoch
	if rs := rules(t, a, ep); rs.Fresh {
		t.Fatal("Fresh without a change")
	}
	r.Stop()
	if _, err := a.SyncRules(ctx, ep); err == nil {
		t.Fatal("sync with Redis away succeeded")
	} else if u, ok := errors.AsType[*UnavailableError](err); !ok || !u.Unavailable() {
		t.Fatalf("error %T %v is not an UnavailableError", err, err)
	}
	if err := a.PutRule(ctx, "x", []byte("x"), time.Now().Add(time.Hour)); err == nil {
		t.Fatal("put with Redis away succeeded")
	}
	r.Start()
	rs := rules(t, a, ep)
	if !rs.Fresh || rs.Epoch == ep {
		t.Fatalf("sync after Redis lost its data: %+v", rs)
	}
	if err := a.PutRule(ctx, "kept", []byte("new"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, err := a.SeedRules(ctx, []StoredRule{
		{ID: "kept", Value: []byte("old"), Expires: time.Now().Add(time.Hour)},
		{ID: "seeded", Value: []byte("s"), Expires: time.Now().Add(time.Hour)},
		{ID: "gone", Value: []byte("g"), Expires: time.Now().Add(-time.Minute)},
	})
	if err != nil || n != 1 {
		t.Fatalf("seed: %d %v", n, err)
	}
	got := rules(t, a, rs.Epoch)
	if got.Fresh || len(got.Rules) != 2 || string(got.Rules["kept"]) != "new" || string(got.Rules["seeded"]) != "s" {
		t.Fatalf("after the seed: %+v", got)
	}
}

// Every change reaches a subscriber on another client, and a subscriber whose connection
// broke is told again once it is back.
func TestRulesChangesReachSubscribers(t *testing.T) {
	r := testutil.StartRedis(t)
	a, b := open(t, r, "mta1"), open(t, r, "mta2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kicks := make(chan struct{}, 100)
	go b.SubscribeRules(ctx, func() { kicks <- struct{}{} })
	wait := func(what string) {
		t.Helper()
		select {
		case <-kicks:
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification for %s", what)
		}
	}
	wait("the subscription")
	if err := a.PutRule(ctx, "r1", []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wait("a put")
	if err := a.DeleteRule(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	wait("a delete")
	if _, err := a.SeedRules(ctx, []StoredRule{{ID: "s", Value: []byte("v"), Expires: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	wait("a seed")
	r.Stop()
	r.Start()
	wait("the new subscription after Redis came back")
	if err := a.PutRule(ctx, "r2", []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wait("a put after the restart")
}
