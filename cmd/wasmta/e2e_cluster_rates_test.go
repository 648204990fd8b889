package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// sendBulk gives each node per messages in DATA transactions of up to 100 recipients (one
// spooled message each), so that the backlog is there before the limit lets much through.
// Recipients are prefix<node>-<i>@domain.
func sendBulk(t *testing.T, nodes []*testutil.Relay, per int, prefix, domain string) {
	t.Helper()
	for k, n := range nodes {
		c := testutil.Dial(t, n.SMTP)
		c.Hello("client.test")
		for i := 0; i < per; i += 100 {
			var to []string
			for j := i; j < min(per, i+100); j++ {
				to = append(to, fmt.Sprintf("%s%d-%d@%s", prefix, k, j, domain))
			}
			if code, msg := c.Send("a@sender.test", to, testutil.Message("a@sender.test", to[0], "cluster", "hello")); code != 250 {
				t.Fatalf("node %d: DATA for %d recipients: %d %s", k+1, len(to), code, msg)
			}
		}
		c.Close()
	}
}

// arrivals are the sink's receipt times of the recipients whose name starts with prefix,
// sorted.
func arrivals(got []testutil.Received, prefix string) []time.Time {
	var at []time.Time
	for _, m := range got {
		for _, to := range m.To {
			if strings.HasPrefix(to, prefix) {
				at = append(at, m.At)
			}
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	return at
}

// mostWithin is the largest number of arrivals within any window of length w.
func mostWithin(at []time.Time, w time.Duration) int {
	most, j := 0, 0
	for i := range at {
		for at[i].Sub(at[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// A fast shared rate (200/s: booked in batches of up to 10 ms of the limit, two slots here)
// across two nodes with a backlog each: the sink sees 200 a second from the pair, over a
// window long enough to count in, within the documented give-or-take (10 ms of the limit per
// node, plus a delivery a loaded machine delays).
func TestClusterFastSharedRateHoldsAcrossNodes(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinks(t, "127.0.0.88")
	nodes := clusterNodes(t, 2, redis, "fast.test. A 127.0.0.88\n", port,
		"[[egress.path]]\nrouting_domain = \"fast.test\"\nmax_message_rate = \"200/s\"\n")
	const per = 400 // 800 messages: 4 s at 200/s
	sendBulk(t, nodes, per, "f", "fast.test")
	got := sinks[0].WaitCount(t, 2*per, 60*time.Second)
	distinct(t, got, 2*per)
	at := arrivals(got, "f")
	span := at[len(at)-1].Sub(at[0])
	rate := float64(len(at)-1) / span.Seconds()
	most := mostWithin(at, time.Second)
	t.Logf("%d messages from 2 nodes over %v: %.1f/s; at most %d within one second (node 1 %.1f/s, node 2 %.1f/s)",
		len(at), span.Round(time.Millisecond), rate, most, perSecond(arrivals(got, "f0-")), perSecond(arrivals(got, "f1-")))
	if rate > 210 {
		t.Fatalf("%.1f messages a second from the cluster, limit 200/s", rate)
	}
	// One second holds 200 slots; each node may shift its batch (2 slots) and a loaded
	// machine may bunch a few deliveries at a second's edge.
	if most > 200+2*2+6 {
		t.Fatalf("%d messages within one second, limit 200/s", most)
	}
	checkAlive(t, nodes)
}

func perSecond(at []time.Time) float64 {
	if len(at) < 2 {
		return 0
	}
	return float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Seconds()
}

// Two nodes whose configs give one path different rates (a change rolling out: "10/s" on
// node 1, "100/s" on node 2) share its key and each enforces its own numbers against it
// (docs/configuration.md): node 1 never sends faster than 10 a second, and the pair never
// faster than 100.
func TestClusterDifferentRatesForOnePath(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedis(t)
	port, sinks := testutil.StartSinks(t, "127.0.0.89")
	dns := testutil.StartDNS(t, "mixed.test. A 127.0.0.89\n")
	var nodes []*testutil.Relay
	for i, rate := range []string{"10/s", "100/s"} {
		dir := t.TempDir()
		cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+fmt.Sprintf(`[[egress.path]]
routing_domain = "mixed.test"
max_message_rate = %q
[redis]
url = %q
cluster_name = "e2e"
node_name = "node%d"
timeout = "200ms"
`, rate, redis.URL(), i+1))
		nodes = append(nodes, testutil.StartRelay(t, relayBin, dir, cfg, addr))
	}
	const per = 40
	sendBulk(t, nodes, per, "m", "mixed.test")
	got := sinks[0].WaitCount(t, 2*per, 60*time.Second)
	distinct(t, got, 2*per)
	slow, fast, all := arrivals(got, "m0-"), arrivals(got, "m1-"), arrivals(got, "m")
	t.Logf("node 1 (10/s): %.1f/s, at most %d in a second; node 2 (100/s): %.1f/s; together %.1f/s, at most %d in a second",
		perSecond(slow), mostWithin(slow, time.Second), perSecond(fast), perSecond(all), mostWithin(all, time.Second))
	if n := mostWithin(slow, 2*time.Second); n > 20+2 {
		t.Fatalf("node 1 (10/s) delivered %d within two seconds", n)
	}
	if n := mostWithin(all, time.Second); n > 100+2 {
		t.Fatalf("%d within one second from the pair", n)
	}
	checkAlive(t, nodes)
}
