package cluster

import (
	"context"
	"strings"
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

// rediss:// with a private CA and a password from the config: the client verifies the server
// against the CA it is given (not the system's roots) and authenticates.
func TestTLSAndPassword(t *testing.T) {
	ca := testutil.NewTestCA(t)
	r := testutil.StartRedisWith(t, testutil.RedisOptions{TLS: ca, Password: "s3cret"})
	ctx := context.Background()
	open := func(opt Options) *Client {
		opt.URL, opt.Cluster, opt.Node = r.URL(), "prod", "mta1"
		c, err := Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if err := open(Options{Password: "s3cret", RootCAs: ca.Pool()}).Redis().Ping(ctx).Err(); err != nil {
		t.Fatalf("rediss:// with the CA and the password: %v", err)
	}
	if err := open(Options{Password: "s3cret"}).Redis().Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server whose CA the client was not given: %v, want a certificate error", err)
	}
	if err := open(Options{Password: "wrong", RootCAs: ca.Pool()}).Redis().Ping(ctx).Err(); err == nil {
		t.Fatal("a wrong password was accepted")
	}
}
