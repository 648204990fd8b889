package main

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Redis stalls (SIGSTOP: a slow disk, a long script) while a node's connection under a shared
// connection_limit of 1 finishes: the connection closes while the node counts Redis away, so
// its place is given back without reaching Redis. Once Redis answers again the place must be
// free for the whole cluster at once, not after lease_ttl (30 s here): the messages that
// waited during the stall go out within a few seconds of it. Under fail_closed nothing goes
// while Redis is stalled.
func TestClusterRedisStallFreesConnectionPlaces(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	hold := make(chan struct{})
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{HoldData: hold}, "127.0.0.87")
	sink := sinks[0]
	nodes := clusterNodes(t, 2, redis, "stall.test. A 127.0.0.87\n", port,
		"[[egress.path]]\nsite = \"stall.test\"\nconnection_limit = 1\nmax_deliveries_per_connection = 1\nmax_message_rate = \"100/s\"\n"+
			"[redis]\non_unavailable = \"fail_closed\"\nlease_ttl = \"30s\"\n")
	a, b := nodes[0], nodes[1]
	sendTo(t, a, "a1@stall.test")
	deadline := time.Now().Add(10 * time.Second)
	for sink.Holding() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("node 1 did not reach DATA within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	redis.Pause()
	paused := true
	defer func() {
		if paused {
			redis.Resume()
		}
	}()
	// Both nodes get a message meanwhile: its rate check times out, and each node counts
	// Redis away.
	sendTo(t, a, "a2@stall.test")
	sendTo(t, b, "b1@stall.test")
	a.WaitStderr("cluster: redis unavailable", 10*time.Second)
	b.WaitStderr("cluster: redis unavailable", 10*time.Second)
	// Node 1's delivery ends; its connection (one delivery each) closes and gives its place
	// back while Redis does not answer.
	hold <- struct{}{}
	a.WaitLog(recipientIs("Delivery", "a1@stall.test"), 10*time.Second)
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n := sink.Count(); n != 1 {
			t.Fatalf("%d messages delivered while Redis is stalled under fail_closed, want 1 (the one under way)", n)
		}
	}
	go func() { // the two that waited: their replies are not held
		for range 2 {
			select {
			case hold <- struct{}{}:
			case <-time.After(time.Minute):
				return
			}
		}
	}()
	redis.Resume()
	paused = false
	back := time.Now()
	deadline = back.Add(10 * time.Second)
	for sink.Count() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 messages delivered 10 s after Redis answered again (lease_ttl 30s): a place is still taken by a connection that closed during the stall", sink.Count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the messages that waited went out %v after Redis answered again", time.Since(back).Round(time.Millisecond))
	distinct(t, sink.Messages(), 3)
	if n := sink.MaxOpen(); n != 1 {
		t.Fatalf("%d connections open at once, want 1 (connection_limit)", n)
	}
	checkAlive(t, nodes)
}
