package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Egress sources and pools end to end: a plugin's get_queue_config names the pool "outbound"
// (host/plugin/testdata/egresspool.wat).

const poolSources = `
[egress_source.s31]
source_address = "127.0.0.31"
ehlo_domain = "s31.pool.test"
[egress_source.s32]
source_address = "127.0.0.32"
ehlo_domain = "s32.pool.test"
`

// A pool of two sources, weights 3 and 1: 40 messages reach the one sink as 30 connections'
// worth from 127.0.0.31 saying EHLO s31.pool.test and 10 from 127.0.0.32 saying s32.pool.test
// (smooth weighted round robin is exact over whole cycles), and the Delivery records name the
// pool, the source and the "source->site" ready queue.
func TestEgressPoolWeightedSources(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.30")
	r := egressEnv(t, "pool.test. A 127.0.0.30\n", port, poolSources+`
[egress_pool.outbound]
entries = [{ name = "s31", weight = 3 }, { name = "s32", weight = 1 }]
`+pluginConfig(fixture(t, "egresspool")))
	const n = 40
	var rcpts []string
	for i := range n {
		rcpts = append(rcpts, fmt.Sprintf("u%d@pool.test", i))
	}
	sendTo(t, r, rcpts...)
	got := sinks[0].WaitCount(t, n, 20*time.Second)
	count := map[string]int{}
	for _, m := range got {
		switch {
		case m.Remote == "127.0.0.31" && m.Helo == "s31.pool.test", m.Remote == "127.0.0.32" && m.Helo == "s32.pool.test":
			count[m.Remote]++
		default:
			t.Fatalf("message from %s with EHLO %q; want each source's address with its ehlo_domain", m.Remote, m.Helo)
		}
	}
	if count["127.0.0.31"] != 30 || count["127.0.0.32"] != 10 {
		t.Fatalf("messages per source address %v, want 127.0.0.31:30 127.0.0.32:10", count)
	}
	bySource := map[string]int{}
	for _, rcpt := range rcpts {
		rec := r.WaitLog(recipientIs("Delivery", rcpt), 5*time.Second)
		src, _ := rec["egress_source"].(string)
		if rec["egress_pool"] != "outbound" || !strings.HasPrefix(fmt.Sprint(rec["site"]), src+"->") {
			t.Fatalf("Delivery record pool %v source %v site %v", rec["egress_pool"], rec["egress_source"], rec["site"])
		}
		bySource[src]++
	}
	if bySource["s31"] != 30 || bySource["s32"] != 10 {
		t.Fatalf("Delivery records per source %v", bySource)
	}
}

// A queue config naming a pool the server does not have: the message stays queued, with a
// 451 4.4.4 TransientFailure naming the pool, and nothing is sent.
func TestEgressPoolUnknownStaysQueued(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.33")
	r := egressEnv(t, "nopool.test. A 127.0.0.33\n", port, poolSources+"[queue]\nretry_interval = \"1h\"\n"+
		pluginConfig(fixture(t, "egresspool")))
	sendTo(t, r, "bob@nopool.test")
	rec := r.WaitLog(recipientIs("TransientFailure", "bob@nopool.test"), 10*time.Second)
	ec, _ := rec["response"].(map[string]any)["enhanced_code"].(map[string]any)
	if testutil.Code(rec) != 451 || ec["class"] != 4.0 || ec["subject"] != 4.0 || ec["detail"] != 4.0 ||
		!strings.Contains(content(rec), `egress pool "outbound" is not configured`) || rec["egress_pool"] != "outbound" {
		t.Fatalf("TransientFailure record: %v", rec)
	}
	for _, x := range r.LogRecords() {
		if x["type"] == "Delivery" || x["type"] == "Bounce" || x["type"] == "Expiration" {
			t.Fatalf("the message ended: %v", x)
		}
	}
	if n := sinks[0].Count(); n != 0 {
		t.Fatalf("%d message(s) sent without the pool", n)
	}
}
