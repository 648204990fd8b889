package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Cluster limits end to end: one real redis-server, two or three real wasmta nodes on loopback
// (each with its own spool and log), one sink standing for the destination. The limits are
// the egress path's, shared through Redis (SPEC §13): the sink sees the cluster's limit, not
// each node's.

// clusterNodes starts n nodes of cluster "e2e" on redis, delivering through one DNS server
// (zone) to port; extra (egress paths, [redis] keys) is added to each config, with $NODE
// replaced by the node's name. lease_ttl is 1s unless extra sets it.
func clusterNodes(t *testing.T, n int, redis *testutil.Redis, zone string, port int, extra string) []*testutil.Relay {
	t.Helper()
	dns := testutil.StartDNS(t, zone)
	var nodes []*testutil.Relay
	for i := range n {
		name := fmt.Sprintf("node%d", i+1)
		dir := t.TempDir()
		x := strings.ReplaceAll(extra, "$NODE", name)
		if !strings.Contains(x, "[redis]") {
			x += "\n[redis]\n"
		}
		ttl := "lease_ttl = \"1s\"\n"
		if strings.Contains(x, "lease_ttl") {
			ttl = "" // the test's own
		}
		x = strings.Replace(x, "[redis]\n", fmt.Sprintf(`[redis]
url = %q
cluster_name = "e2e"
node_name = %q
%stimeout = "200ms"
dial_timeout = "200ms"
`, redis.URL(), name, ttl), 1)
		cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+x)
		nodes = append(nodes, testutil.StartRelay(t, relayBin, dir, cfg, addr))
	}
	return nodes
}

// sendRoundRobin sends per messages to each node, one node after the other, over one SMTP
// connection per node; every message must get 250. Recipients are prefix<node>-<i>@domain.
func sendRoundRobin(t *testing.T, nodes []*testutil.Relay, per int, prefix, domain string) {
	t.Helper()
	var conns []*testutil.Client
	for _, n := range nodes {
		c := testutil.Dial(t, n.SMTP)
		defer c.Close()
		c.Hello("client.test")
		conns = append(conns, c)
	}
	for i := range per {
		for k, c := range conns {
			to := fmt.Sprintf("%s%d-%d@%s", prefix, k, i, domain)
			if code, msg := c.Send("a@sender.test", []string{to}, testutil.Message("a@sender.test", to, "cluster", "hello")); code != 250 {
				t.Fatalf("node %d, DATA for %s: %d %s", k+1, to, code, msg)
			}
		}
	}
}

// checkAlive fails the test if a node has exited.
func checkAlive(t *testing.T, nodes []*testutil.Relay) {
	t.Helper()
	for i, n := range nodes {
		if st := n.Exited(); st != "" {
			t.Fatalf("node %d exited (%s):\n%s", i+1, st, n.Stderr())
		}
	}
}

// distinct checks that the sink received every one of want recipients exactly once.
func distinct(t *testing.T, got []testutil.Received, want int) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range got {
		for _, to := range m.To {
			seen[to]++
		}
	}
	for to, n := range seen {
		if n != 1 {
			t.Errorf("%s received %d times", to, n)
		}
	}
	if len(seen) != want {
		t.Fatalf("%d distinct recipients received, want %d", len(seen), want)
	}
}

// max_message_rate = "20/s" shared by three nodes: the sink sees 20 a second in total over
// about ten seconds, where each node on its own would send 20 (60 together).
func TestClusterSharedMessageRate(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinks(t, "127.0.0.81")
	nodes := clusterNodes(t, 3, redis, "rate.test. A 127.0.0.81\n", port,
		"[[egress.path]]\nrouting_domain = \"rate.test\"\nmax_message_rate = \"20/s\"\n")
	const per = 70 // 210 messages: 10.5 s at 20/s
	sendRoundRobin(t, nodes, per, "r", "rate.test")
	got := sinks[0].WaitCount(t, 3*per, 60*time.Second)
	distinct(t, got, 3*per)
	at := make([]time.Time, len(got))
	for i, m := range got {
		at[i] = m.At
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	span := at[len(at)-1].Sub(at[0])
	rate := float64(len(at)-1) / span.Seconds()
	t.Logf("%d messages from 3 nodes over %v: %.2f/s", len(at), span.Round(time.Millisecond), rate)
	if rate > 22 || rate < 18 {
		t.Fatalf("%.2f messages a second from the cluster, want 20 ± 10%%", rate)
	}
	// No two seconds hold more than the rate allows (two more: a window that straddles slots,
	// and a delivery a loaded machine paused that arrives beside the next one on time).
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < 2*time.Second; j++ {
			n++
		}
		if n > 42 {
			t.Fatalf("%d messages within two seconds from %v", n, at[i])
		}
	}
	checkAlive(t, nodes)
}

// connection_limit = 2 shared by three nodes: a slow sink never sees a third connection,
// and every node delivers.
func TestClusterSharedConnectionLimit(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{DataDelay: 200 * time.Millisecond}, "127.0.0.82")
	nodes := clusterNodes(t, 3, redis, "limit.test. A 127.0.0.82\n", port,
		"[[egress.path]]\nsite = \"limit.test\"\nconnection_limit = 2\n")
	const per = 8
	sendRoundRobin(t, nodes, per, "c", "limit.test")
	got := sinks[0].WaitCount(t, 3*per, 60*time.Second)
	distinct(t, got, 3*per)
	if n := sinks[0].MaxOpen(); n != 2 {
		t.Fatalf("%d connections open at once from the cluster, want 2 (the shared limit, reached)", n)
	}
	for i, n := range nodes {
		if len(n.LogRecords()) == 0 {
			t.Fatalf("node %d wrote no record", i+1)
		}
		n.WaitLog(testutil.Type("Delivery"), 10*time.Second)
	}
	checkAlive(t, nodes)
}

// A node killed with kill -9 while it holds both places of a shared connection_limit frees
// them within the lease TTL: the other node, which waited meanwhile, then delivers.
func TestClusterKilledNodeFreesLeases(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{DataDelay: 4 * time.Second}, "127.0.0.83")
	sink := sinks[0]
	nodes := clusterNodes(t, 2, redis, "kill.test. A 127.0.0.83\n", port,
		"[[egress.path]]\nsite = \"kill.test\"\nconnection_limit = 2\n")
	a, b := nodes[0], nodes[1]
	sendTo(t, a, "a1@kill.test", "a2@kill.test", "a3@kill.test")
	deadline := time.Now().Add(10 * time.Second)
	for sink.Connections() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("node 1 opened %d connections in 10 s, want 2", sink.Connections())
		}
		time.Sleep(10 * time.Millisecond)
	}
	sendTo(t, b, "b1@kill.test")
	// Both places are node 1's: node 2 waits (half a second is plenty for a connection that
	// would be allowed to show up).
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if n := sink.Connections(); n != 2 {
			t.Fatalf("%d connections while node 1 holds both places", n)
		}
	}
	a.Kill()
	killed := time.Now()
	for sink.Connections() < 3 {
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("node 2 did not connect within 5 s of node 1's death (lease_ttl 1s):\n%s", b.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("node 2 connected %v after node 1 was killed (lease_ttl 1s)", time.Since(killed).Round(time.Millisecond))
	b.WaitLog(recipientIs("Delivery", "b1@kill.test"), 15*time.Second)
	checkAlive(t, nodes[1:])
}

// Redis stopped mid-run under fail_open: delivery goes on under local limits, reception
// answers 250, no message is lost, every node stays up; the node says so once, and once more
// when Redis is back.
func TestClusterRedisAwayFailOpen(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinks(t, "127.0.0.84")
	nodes := clusterNodes(t, 2, redis, "open.test. A 127.0.0.84\n", port,
		"[[egress.path]]\nsite = \"open.test\"\nconnection_limit = 2\nmax_message_rate = \"50/s\"\n[redis]\non_unavailable = \"fail_open\"\n")
	sink := sinks[0]
	sendRoundRobin(t, nodes, 10, "before", "open.test")
	sink.WaitCount(t, 20, 30*time.Second)
	redis.Stop()
	sendRoundRobin(t, nodes, 10, "during", "open.test")
	got := sink.WaitCount(t, 40, 30*time.Second)
	distinct(t, got, 40)
	for i, n := range nodes {
		n.WaitStderr("cluster: redis unavailable", 10*time.Second)
		if c := strings.Count(n.Stderr(), "cluster: redis unavailable"); c != 1 {
			t.Errorf("node %d logged Redis away %d times, want once", i+1, c)
		}
	}
	redis.Start()
	sendRoundRobin(t, nodes, 5, "after", "open.test")
	distinct(t, sink.WaitCount(t, 50, 30*time.Second), 50)
	for _, n := range nodes {
		n.WaitStderr("cluster: redis is back", 10*time.Second)
		for _, rec := range n.LogRecords() {
			if rec["type"] != "Reception" && rec["type"] != "Delivery" {
				t.Errorf("unexpected record: %v", rec)
			}
		}
	}
	checkAlive(t, nodes)
}

// Redis stopped mid-run under fail_closed: reception still answers 250, deliveries wait (no
// failure, no bounce), and resume when Redis is back; nothing is lost and every node stays up.
func TestClusterRedisAwayFailClosed(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinks(t, "127.0.0.85")
	nodes := clusterNodes(t, 2, redis, "closed.test. A 127.0.0.85\n", port,
		"[[egress.path]]\nsite = \"closed.test\"\nconnection_limit = 2\nmax_message_rate = \"50/s\"\n[redis]\non_unavailable = \"fail_closed\"\n")
	sink := sinks[0]
	sendRoundRobin(t, nodes, 10, "before", "closed.test")
	sink.WaitCount(t, 20, 30*time.Second)
	redis.Stop()
	sendRoundRobin(t, nodes, 10, "during", "closed.test")
	// Nothing goes while Redis is away: three seconds is three probes.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n := sink.Count(); n != 20 {
			t.Fatalf("%d messages delivered with Redis away under fail_closed, want the 20 from before", n)
		}
	}
	checkAlive(t, nodes)
	redis.Start()
	distinct(t, sink.WaitCount(t, 40, 30*time.Second), 40)
	for i, n := range nodes {
		n.WaitStderr("cluster: redis is back", 10*time.Second)
		for _, rec := range n.LogRecords() {
			if rec["type"] != "Reception" && rec["type"] != "Delivery" {
				t.Errorf("node %d: unexpected record: %v", i+1, rec)
			}
			if rec["type"] == "Delivery" && rec["num_attempts"] != 0.0 {
				t.Errorf("node %d: waiting for Redis counted as an attempt: %v", i+1, rec)
			}
		}
	}
	checkAlive(t, nodes)
}

// BenchmarkClusterLimits measures, in one run, two relays delivering to one sink through an
// egress path with limits that do not bind (max_message_rate 100000/s, max_connection_rate
// 10000/s, connection_limit 32): "local" keeps them on the node, "shared" holds them in a
// redis-server on loopback ([redis] set). Each message is received over 10 SMTP sessions and
// counted when the sink has it: msgs/s end to end, and the relay's CPU per message (read from
// /proc), which covers reception, spooling, the limit checks and delivery.
//
//	go test -run=^$ -bench=ClusterLimits -benchtime=3000x -count=3 ./cmd/wasmta/
func BenchmarkClusterLimits(b *testing.B) {
	redis := testutil.StartRedis(b)
	port, sinks := testutil.StartSinks(b, "127.0.0.86")
	dns := testutil.StartDNS(b, "bench.test. A 127.0.0.86\n")
	path := "[[egress.path]]\nsite = \"bench.test\"\nconnection_limit = 32\nmax_message_rate = \"100000/s\"\nmax_connection_rate = \"10000/s\"\n"
	start := func(shared bool) *testutil.Relay {
		dir := b.TempDir()
		extra := path
		if shared {
			extra += fmt.Sprintf("[redis]\nurl = %q\ncluster_name = \"bench\"\nnode_name = \"n1\"\n", redis.URL())
		}
		cfg, addr := testutil.RelayConfig(b, dir, testutil.DeliveryConfig(dns.Addr, port)+extra)
		return testutil.StartRelay(b, relayBin, dir, cfg, addr)
	}
	relays := map[string]*testutil.Relay{"local": start(false), "shared": start(true)}
	body := testutil.Message("a@sender.test", "r@bench.test", "bench", strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1024/78))
	const clients = 10
	for _, name := range []string{"local", "shared"} {
		b.Run(name, func(b *testing.B) {
			relay := relays[name]
			conns := make([]*testutil.Client, clients)
			for i := range conns {
				conns[i] = testutil.Dial(b, relay.SMTP)
				conns[i].Hello("bench.test")
			}
			before := sinks[0].Count()
			b.ResetTimer()
			t0, cpu := time.Now(), relay.CPUTime()
			run(b.N, clients, func(i, _ int) {
				if code, msg := conns[i].Send("a@sender.test", []string{"r@bench.test"}, body); code != 250 {
					b.Errorf("%d %s", code, msg)
				}
			})
			sinks[0].WaitCount(b, before+b.N, 5*time.Minute)
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
			b.StopTimer()
			b.ReportMetric(float64((relay.CPUTime()-cpu).Microseconds())/float64(b.N), "relay-µs/msg")
			for _, c := range conns {
				c.Close()
			}
		})
	}
}
