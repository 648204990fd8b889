package main

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Per-path transport settings end to end: smtp_port and the delivery timeouts set in an
// [[egress.path]] entry apply to its destinations only.

// A path's smtp_port: its destination is delivered to the second sink's port, the other
// destination, on the same address, to the default port of [delivery].
func TestEgressPathSMTPPort(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.35")
	alt := testutil.StartSink(t, "127.0.0.35:0")
	altPort := netip.MustParseAddrPort(alt.Addr).Port()
	r := egressEnv(t, "main.test. A 127.0.0.35\nalt.test. A 127.0.0.35\n", port, fmt.Sprintf(`
[[egress.path]]
routing_domain = "alt.test"
smtp_port = %d
`, altPort))
	sendTo(t, r, "a@alt.test", "b@main.test")
	got := alt.WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "a@alt.test" {
		t.Fatalf("the smtp_port sink received %v", got[0].To)
	}
	if got := sinks[0].WaitCount(t, 1, 10*time.Second); got[0].To[0] != "b@main.test" {
		t.Fatalf("the default port's sink received %v", got[0].To)
	}
	if alt.Count() != 1 || sinks[0].Count() != 1 {
		t.Fatalf("smtp_port sink has %d messages, default sink %d; want 1 and 1", alt.Count(), sinks[0].Count())
	}
}

// A path with a short data_timeout against a server that answers the end of DATA after 3 s
// fails transiently with a record that says it timed out waiting for the reply to "."; the
// default path (data_timeout 5 s) to the same server waits and delivers.
func TestEgressPathDataTimeout(t *testing.T) {
	t.Parallel()
	port, _ := testutil.StartSinksWith(t, testutil.SinkOptions{DataDelay: 3 * time.Second}, "127.0.0.36")
	r := egressEnv(t, "hasty.test. A 127.0.0.36\npatient.test. A 127.0.0.36\n", port, `
[queue]
retry_interval = "1h"
[[egress.path]]
site = "hasty.test"
data_timeout = "1s"
`)
	sendTo(t, r, "a@hasty.test", "b@patient.test")
	f := r.WaitLog(recipientIs("TransientFailure", "a@hasty.test"), 15*time.Second)
	resp, _ := f["response"].(map[string]any)
	if testutil.Code(f) != 451 || content(f) != "connection to hasty.test timed out" || resp["command"] != "." {
		t.Fatalf("TransientFailure record: %v", f)
	}
	d := r.WaitLog(recipientIs("Delivery", "b@patient.test"), 15*time.Second)
	if testutil.Code(d) != 250 {
		t.Fatalf("Delivery record: %v", d)
	}
	for _, rec := range r.LogRecords() {
		if rec["recipient"] == "a@hasty.test" && rec["type"] == "Delivery" || rec["recipient"] == "b@patient.test" && rec["type"] == "TransientFailure" {
			t.Fatalf("unexpected record %v", rec)
		}
	}
}
