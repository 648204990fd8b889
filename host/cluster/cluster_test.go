package cluster

import (
	"context"
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
)

func TestOpenDoesNoIOAndNamespacesKeys(t *testing.T) {
	// Nothing listens on port 1: Open must still succeed (a node starts while Redis is down).
	c, err := Open(Options{URL: "redis://127.0.0.1:1/0", Cluster: "prod", Node: "mta1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Key("rate", "site"); got != "wasmta:prod:rate:site" {
		t.Fatalf("Key = %q", got)
	}
	if err := c.Redis().Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING to a closed port succeeded")
	}
}

func TestTalksToARealRedis(t *testing.T) {
	r := testutil.StartRedis(t)
	c, err := Open(Options{URL: r.URL(), Cluster: "prod", Node: "mta1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Redis().Set(ctx, c.Key("k"), "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Do("GET", "wasmta:prod:k"); err != nil || got != "$1" {
		t.Fatalf("GET from another client = %q, %v", got, err)
	}
	r.Stop()
	if err := c.Redis().Get(ctx, c.Key("k")).Err(); err == nil {
		t.Fatal("GET after the server stopped succeeded")
	}
	r.Start()
	if err := c.Redis().Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after a restart: %v", err)
	}
}
