package main

import (
	"strings"
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

// Redis away for longer than lease_ttl while a node keeps an idle connection under a shared
// connection_limit of 1: its lease has run out, so once Redis is back the place is free for
// every node. The idle connection must close when its lease runs out (docs: a connection
// whose lease could not be renewed for a whole lease_ttl closes), not stay open until
// egress.idle_timeout (60 s here) while another node opens the destination's one allowed
// connection.
func TestClusterIdleConnectionWithALostLeaseCloses(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinks(t, "127.0.0.90")
	sink := sinks[0]
	nodes := clusterNodes(t, 2, redis, "idle.test. A 127.0.0.90\n", port,
		"[[egress.path]]\nsite = \"idle.test\"\nconnection_limit = 1\nidle_timeout = \"60s\"\n")
	a, b := nodes[0], nodes[1]
	sendTo(t, a, "a1@idle.test")
	sink.WaitCount(t, 1, 10*time.Second)
	if n := sink.Open(); n != 1 {
		t.Fatalf("%d connections open after node 1's delivery, want its idle one", n)
	}
	redis.Stop()
	stopped := time.Now()
	for sink.Open() != 0 {
		if time.Since(stopped) > 5*time.Second {
			t.Fatalf("node 1's idle connection still open %v after Redis went away (lease_ttl 1s, idle_timeout 60s)", time.Since(stopped).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("idle connection closed %v after Redis went away (lease_ttl 1s)", time.Since(stopped).Round(time.Millisecond))
	redis.Start()
	sendTo(t, b, "b1@idle.test")
	distinct(t, sink.WaitCount(t, 2, 10*time.Second), 2)
	if n := sink.MaxOpen(); n != 1 {
		t.Fatalf("%d connections open at once, want 1 (connection_limit)", n)
	}
	checkAlive(t, nodes)
}

// Redis stalled (SIGSTOP: connections accepted, commands never answered) under fail_open:
// each node notices within redis.timeout, goes on delivering under its share of the limits,
// nothing is lost, and the shared limits hold again once Redis resumes.
func TestClusterRedisStallFailOpen(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinks(t, "127.0.0.92")
	sink := sinks[0]
	nodes := clusterNodes(t, 2, redis, "slow.test. A 127.0.0.92\n", port,
		"[[egress.path]]\nsite = \"slow.test\"\nconnection_limit = 2\nmax_message_rate = \"50/s\"\n[redis]\non_unavailable = \"fail_open\"\n")
	sendRoundRobin(t, nodes, 10, "before", "slow.test")
	sink.WaitCount(t, 20, 30*time.Second)
	redis.Pause()
	paused := true
	defer func() {
		if paused {
			redis.Resume()
		}
	}()
	sendRoundRobin(t, nodes, 10, "during", "slow.test")
	distinct(t, sink.WaitCount(t, 40, 30*time.Second), 40)
	for i, n := range nodes {
		n.WaitStderr("cluster: redis unavailable", 10*time.Second)
		if c := strings.Count(n.Stderr(), "cluster: redis unavailable"); c != 1 {
			t.Errorf("node %d logged Redis away %d times, want once", i+1, c)
		}
	}
	redis.Resume()
	paused = false
	for _, n := range nodes {
		n.WaitStderr("cluster: redis is back", 10*time.Second)
	}
	sendRoundRobin(t, nodes, 5, "after", "slow.test")
	distinct(t, sink.WaitCount(t, 50, 30*time.Second), 50)
	for i, n := range nodes {
		for _, rec := range n.LogRecords() {
			if rec["type"] != "Reception" && rec["type"] != "Delivery" {
				t.Errorf("node %d: unexpected record: %v", i+1, rec)
			}
		}
	}
	checkAlive(t, nodes)
}
