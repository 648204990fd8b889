package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/testutil"
)

// End-to-end tests of a cluster: one real redis-server and two real wasmta processes on
// loopback, each with its own spool, sharing the admin API's rules and their heartbeats.

const clusterZone = zone + `
defer.test.         A  127.0.0.5
`

// fleetEnv is a Redis, a DNS server, sinks, and the nodes of one cluster.
type fleetEnv struct {
	t     *testing.T
	redis *testutil.Redis
	dns   *testutil.DNSServer
	port  int
	sinks map[string]*testutil.Sink
	nodes []*fleetNode
}

// fleetNode is one wasmta process of the cluster, with its HTTP admin API.
type fleetNode struct {
	*adminEnv
	name string
}

func newFleetEnv(t *testing.T, sinkIPs []string, nodes ...string) *fleetEnv {
	t.Helper()
	f := &fleetEnv{t: t, redis: testutil.StartRedis(t), dns: testutil.StartDNS(t, clusterZone), sinks: map[string]*testutil.Sink{}}
	var sinks []*testutil.Sink
	f.port, sinks = testutil.StartSinks(t, sinkIPs...)
	for i, ip := range sinkIPs {
		f.sinks[ip] = sinks[i]
	}
	for _, name := range nodes {
		f.nodes = append(f.nodes, f.startNode(name))
	}
	return f
}

func (f *fleetEnv) startNode(name string) *fleetNode {
	f.t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(f.t, "127.0.0.1"))
	extra := testutil.DeliveryConfig(f.dns.Addr, f.port) + fmt.Sprintf(`
[queue]
retry_interval = "1h"
[http]
listen = %q
token = %q
[redis]
url = %q
cluster_name = "e2e"
node_name = %q
`, addr, adminToken, f.redis.URL(), name)
	dir := f.t.TempDir()
	cfg, smtpAddr := testutil.RelayConfig(f.t, dir, extra)
	e := &httpEnv{env: &env{t: f.t, dns: f.dns, port: f.port, sinks: f.sinks,
		relay: testutil.StartRelay(f.t, relayBin, dir, cfg, smtpAddr)}, url: "http://" + addr}
	e.waitHTTP(addr)
	return &fleetNode{adminEnv: &adminEnv{e}, name: name}
}

// rules lists a node's rules of a kind (GET /api/admin/{suspend,bounce}/v1).
func (n *fleetNode) rules(kind string) string {
	n.t.Helper()
	code, body := n.get("/api/admin/"+kind+"/v1", adminToken)
	if code != 200 {
		n.t.Fatalf("%s list on %s: %d %s", kind, n.name, code, body)
	}
	return body
}

// waitRule waits until the node holds (or, with want false, no longer holds) rule id.
func (n *fleetNode) waitRule(kind, id string, want bool) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(n.rules(kind), id) != want {
		if time.Now().After(deadline) {
			n.t.Fatalf("%s rule %s on %s: want held=%v; it holds %s", kind, id, n.name, want, n.rules(kind))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterSummary polls `queue summary --cluster --json` on n until cond holds.
func (n *fleetNode) clusterSummary(what string, cond func(control.ClusterSummary) bool) control.ClusterSummary {
	n.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := n.cli("summary", "--cluster", "--json")
		var cs control.ClusterSummary
		if err == nil && json.Unmarshal([]byte(out), &cs) == nil && cond(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("queue summary --cluster on %s never showed %s: %v\n%s", n.name, what, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nodeNames(cs control.ClusterSummary) string {
	var out []string
	for _, n := range cs.Nodes {
		out = append(out, n.Node)
	}
	return strings.Join(out, ",")
}

// nodeQueue is a scheduled queue as node name's heartbeat lists it.
func nodeQueue(cs control.ClusterSummary, node, name string) *queue.SchedSummary {
	for _, n := range cs.Nodes {
		var s queue.Summary
		if n.Node == node && json.Unmarshal(n.Summary, &s) == nil {
			return schedQ(s, name)
		}
	}
	return nil
}

// A suspension made on node 1 holds node 2's mail until a resume made on node 1; a bounce
// rule made on node 2 bounces node 1's queued mail; `queue summary --cluster` lists both
// nodes and their queues, and forgets a node killed with -9 once its heartbeat expires.
func TestClusterAdminRulesAndSummary(t *testing.T) {
	t.Parallel()
	f := newFleetEnv(t, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}, "n1", "n2")
	n1, n2 := f.nodes[0], f.nodes[1]
	implicit := f.sinks["127.0.0.4"]
	f.sinks["127.0.0.2"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	f.sinks["127.0.0.3"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	f.sinks["127.0.0.5"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	n1.clusterSummary("both nodes", func(cs control.ClusterSummary) bool { return nodeNames(cs) == "n1,n2" })

	// Suspend on node 1; node 2 holds its mail for that domain.
	id := strings.TrimSpace(n1.mustCLI("suspend", "--domain", "implicit.test", "--reason", "maintenance", "--duration", "1h"))
	n2.waitRule("suspend", id, true)
	n2.send("a@sender.test", "held@implicit.test", "held on node 2")
	n2.waitSummary("node 2 holding the message", held("implicit.test"))
	if n := implicit.Count(); n != 0 {
		t.Fatalf("suspended mail delivered (%d)", n)
	}
	if list := n2.mustCLI("suspend", "--list"); !strings.Contains(list, id) || !strings.Contains(list, "maintenance") {
		t.Fatalf("node 2's suspend --list:\n%s", list)
	}

	// Both nodes' queues in one summary: node 1 defers example.com, node 2 defer.test.
	n1.send("a@sender.test", "b@example.com", "deferred on node 1")
	n1.relay.WaitLog(recipientIs("TransientFailure", "b@example.com"), 10*time.Second)
	n2.send("a@sender.test", "c@defer.test", "deferred on node 2")
	n2.relay.WaitLog(recipientIs("TransientFailure", "c@defer.test"), 10*time.Second)
	cs := n2.clusterSummary("both nodes' queues", func(cs control.ClusterSummary) bool {
		return nodeQueue(cs, "n1", "example.com") != nil && nodeQueue(cs, "n2", "defer.test") != nil &&
			nodeQueue(cs, "n2", "implicit.test") != nil && cs.Total.Queued == 3
	})
	if cs.Cluster != "e2e" || cs.Total.Nodes != 2 || nodeQueue(cs, "n2", "implicit.test").SuspendedUntil == nil ||
		nodeQueue(cs, "n1", "defer.test") != nil || cs.Nodes[1].API != strings.TrimPrefix(n2.url, "http://") || cs.Nodes[0].Version == "" {
		t.Fatalf("cluster summary %+v", cs)
	}
	table := n1.mustCLI("summary", "--cluster")
	for _, want := range []string{"cluster e2e: 2 node(s), 3 message(s) held", "== node n1", "== node n2", "== total", "example.com", "defer.test", "implicit.test"} {
		if !strings.Contains(table, want) {
			t.Errorf("summary --cluster lacks %q:\n%s", want, table)
		}
	}

	// Resume on node 1: node 2 delivers.
	if out := n1.mustCLI("resume", id); !strings.Contains(out, "resumed") {
		t.Fatalf("resume: %s", out)
	}
	if got := implicit.WaitCount(t, 1, 10*time.Second); got[0].To[0] != "held@implicit.test" {
		t.Fatalf("delivered %v", got[0].To)
	}
	n2.waitRule("suspend", id, false)

	// A bounce rule made on node 2 bounces node 1's queued mail, and what node 1 receives next.
	if out := n2.mustCLI("bounce", "--domain", "example.com", "--reason", "bad send", "--duration", "10m"); !strings.Contains(out, "bounced 0 message(s)") {
		t.Fatalf("bounce on node 2: %s", out)
	}
	rec := n1.relay.WaitLog(recipientIs("AdminBounce", "b@example.com"), 10*time.Second)
	if testutil.Code(rec) != 551 || !strings.Contains(fmt.Sprint(rec["response"]), "Administrator bounced with reason: bad send") {
		t.Fatalf("node 1's AdminBounce record %v", rec)
	}
	n1.send("a@sender.test", "late@example.com", "arrives during the bounce")
	n1.relay.WaitLog(recipientIs("AdminBounce", "late@example.com"), 10*time.Second)
	for _, r := range n1.relay.LogRecords() {
		if recipientIs("TransientFailure", "late@example.com")(r) {
			t.Fatal("node 1 attempted mail a cluster bounce rule matches")
		}
	}

	// Node 2 killed: it leaves the summary once its heartbeat expires.
	n2.relay.Kill()
	start := time.Now()
	n1.clusterSummary("node 2 gone", func(cs control.ClusterSummary) bool { return nodeNames(cs) == "n1" })
	t.Logf("a node killed with -9 left the cluster summary after %s", time.Since(start).Round(100*time.Millisecond))
}

// Without [redis], --cluster says so.
func TestClusterSummaryWithoutRedis(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, []string{"127.0.0.4"}, "")
	out, err := e.cli("summary", "--cluster")
	if err == nil || !strings.Contains(out, "404") || !strings.Contains(out, "not part of a cluster") {
		t.Fatalf("summary --cluster without [redis]: %v\n%s", err, out)
	}
}

// Redis stopped mid-run: both nodes keep taking mail and keep the rules they knew (across a
// restart, from their spool), rule changes are refused with 503 rather than made on one node
// only; once Redis is back (empty) the nodes store their rules again and a resume reaches all.
func TestClusterRulesOutliveRedisOutage(t *testing.T) {
	t.Parallel()
	f := newFleetEnv(t, []string{"127.0.0.4"}, "n1", "n2")
	n1, n2 := f.nodes[0], f.nodes[1]
	implicit := f.sinks["127.0.0.4"]
	id := strings.TrimSpace(n1.mustCLI("suspend", "--domain", "implicit.test", "--reason", "maintenance", "--duration", "1h"))
	n2.waitRule("suspend", id, true)

	f.redis.Stop()
	n1.send("a@sender.test", "one@implicit.test", "to node 1 without Redis")
	n2.send("a@sender.test", "two@implicit.test", "to node 2 without Redis")
	n1.waitSummary("node 1 holding", held("implicit.test"))
	n2.waitSummary("node 2 holding", held("implicit.test"))
	out, err := n1.cli("suspend", "--domain", "example.com", "--reason", "r")
	if err == nil || !strings.Contains(out, "503") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("suspend without Redis: %v %s", err, out)
	}
	if out, err := n1.cli("resume", id); err == nil || !strings.Contains(out, "503") {
		t.Fatalf("resume without Redis: %v %s", err, out)
	}
	if list := n1.rules("suspend"); !strings.Contains(list, id) || strings.Contains(list, "example.com") {
		t.Fatalf("node 1's rules after refused changes: %s", list)
	}
	if out, _ := n1.cli("summary", "--cluster"); !strings.Contains(out, "503") || !strings.Contains(out, "heartbeats cannot be read") {
		t.Fatalf("summary --cluster without Redis: %s", out)
	}

	// Node 2 restarts while Redis is away: its spool still knows the suspension.
	if err := n2.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	n2.relay.Start()
	n2.waitHTTP(strings.TrimPrefix(n2.url, "http://"))
	n2.waitSummary("node 2 holding after its restart", held("implicit.test"))
	if n1.relay.Exited() != "" || implicit.Count() != 0 {
		t.Fatalf("node 1 exited (%q) or suspended mail went out (%d)", n1.relay.Exited(), implicit.Count())
	}

	// Redis comes back empty: the nodes store the rule again, and a resume reaches both.
	f.redis.Start()
	deadline := time.Now().Add(10 * time.Second)
	for v, _ := f.redis.Do("HLEN", "wasmta:e2e:rules"); v != ":1"; v, _ = f.redis.Do("HLEN", "wasmta:e2e:rules") {
		if time.Now().After(deadline) {
			t.Fatalf("rules in the restarted Redis: %s", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n1.mustCLI("resume", id)
	got := implicit.WaitCount(t, 2, 10*time.Second)
	if to := got[0].To[0] + " " + got[1].To[0]; !strings.Contains(to, "one@implicit.test") || !strings.Contains(to, "two@implicit.test") {
		t.Fatalf("delivered %s", to)
	}
}
