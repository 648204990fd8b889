package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/testutil"
)

// newHoldEnv is newAdminEnv with sinks made with opts (one shared port).
func newHoldEnv(t *testing.T, opts testutil.SinkOptions, sinkIPs []string, extra string) *adminEnv {
	t.Helper()
	e := &env{t: t, sinks: map[string]*testutil.Sink{}}
	var sinks []*testutil.Sink
	e.port, sinks = testutil.StartSinksWith(t, opts, sinkIPs...)
	for i, ip := range sinkIPs {
		e.sinks[ip] = sinks[i]
	}
	e.dns = testutil.StartDNS(t, httpZone)
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	dir := t.TempDir()
	cfg, smtpAddr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(e.dns.Addr, e.port)+
		fmt.Sprintf("[http]\nlisten = %q\ntoken = %q\n", addr, adminToken)+extra)
	e.relay = testutil.StartRelay(t, relayBin, dir, cfg, smtpAddr)
	he := &httpEnv{env: e, url: "http://" + addr}
	he.waitHTTP(addr)
	return &adminEnv{he}
}

// waitHolding waits until the sink holds n DATA replies: n attempts are under way.
func waitHolding(t *testing.T, s *testutil.Sink, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Holding() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the sink holds %d DATA replies, want %d", s.Holding(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inspected is the inspect-message answer, as far as these tests read it.
type inspected struct {
	ID      string
	Message struct {
		Recipient, Queue, Site, State string
		NumAttempts                   int `json:"num_attempts"`
	}
}

// An operator who inspects a message while a connection is delivering it sees it, in state
// "delivering" with its site (it used to get 404, as if the message were gone); so does the
// scheduled queue's listing and the summary. A rebind asked for meanwhile is applied when the
// attempt ends in a temporary failure: the message moves to the smarthost and is delivered
// there at once, with an AdminRebind record.
func TestAdminSeesMessageMidDelivery(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	e := newHoldEnv(t, testutil.SinkOptions{HoldData: hold}, []string{"127.0.0.4", "127.0.0.6"}, "[queue]\nretry_interval = \"1h\"\n")
	implicit, smarthost := e.sinks["127.0.0.4"], e.sinks["127.0.0.6"]
	implicit.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "DATA", Times: 1})
	id := spoolID(t, e.send("a@sender.test", "mid@implicit.test", "mid-delivery"))
	waitHolding(t, implicit, 1)

	var in inspected
	out := e.mustCLI("inspect", id)
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	if in.ID != id || in.Message.Recipient != "mid@implicit.test" || in.Message.State != "delivering" ||
		in.Message.Site == "" || in.Message.Queue != "implicit.test" {
		t.Fatalf("inspect of a message being delivered:\n%s", out)
	}
	code, body := e.get("/api/admin/inspect-sched-q/v1?queue_name="+url.QueryEscape("implicit.test"), adminToken)
	if code != 200 || !strings.Contains(body, `"num_scheduled":1`) || !strings.Contains(body, `"state":"delivering"`) {
		t.Fatalf("inspect-sched-q: %d %s", code, body)
	}
	s := e.waitSummary("the message being delivered", func(s queue.Summary) bool {
		q := schedQ(s, "implicit.test")
		return s.Queued == 1 && q != nil && q.Delivering == 1
	})
	if len(s.Ready) != 1 || s.Ready[0].Delivering != 1 {
		t.Fatalf("summary's ready queues: %+v", s.Ready)
	}

	code, body = e.request("POST", "/api/admin/rebind/v1", strings.NewReader(
		`{"queue_names": ["implicit.test"], "reason": "move", "data": {"routing_domain": "smarthost.test"}}`),
		"Authorization", "Bearer "+adminToken, "Content-Type", "application/json")
	var res queue.RebindResult
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Matched != 0 || res.InFlight != 1 {
		t.Fatalf("rebind during the attempt: %d %s", code, body)
	}
	hold <- struct{}{} // the attempt ends: 451 at DATA
	e.relay.WaitLog(recipientIs("TransientFailure", "mid@implicit.test"), 10*time.Second)
	waitHolding(t, smarthost, 1) // the smarthost holds its DATA reply too (same options)
	hold <- struct{}{}
	got := smarthost.WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "mid@implicit.test" {
		t.Fatalf("smarthost got %v", got[0].To)
	}
	rec := e.relay.WaitLog(recipientIs("AdminRebind", "mid@implicit.test"), 5*time.Second)
	if rec["id"] != id || !strings.Contains(fmt.Sprint(rec["response"]), "Rebound from implicit.test to implicit.test!smarthost.test: move") {
		t.Fatalf("AdminRebind record %v", rec)
	}
	e.relay.WaitLog(recipientIs("Delivery", "mid@implicit.test"), 10*time.Second)
	if n := implicit.Count(); n != 0 {
		t.Fatalf("the held attempt was recorded as delivered (%d)", n)
	}
}

// A bounce rule made while a message is being delivered says so (in_flight), and bounces it as
// soon as the attempt ends without a delivery: not an hour later at its next retry.
func TestAdminBounceMidDelivery(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	e := newHoldEnv(t, testutil.SinkOptions{HoldData: hold}, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1h\"\n")
	implicit := e.sinks["127.0.0.4"]
	implicit.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "DATA", Times: 1})
	id := spoolID(t, e.send("a@sender.test", "gone@implicit.test", "bounce me"))
	waitHolding(t, implicit, 1)

	code, body := e.request("POST", "/api/admin/bounce/v1", strings.NewReader(
		`{"domain": "implicit.test", "reason": "bad send", "duration": "10m"}`),
		"Authorization", "Bearer "+adminToken, "Content-Type", "application/json")
	var res struct {
		TotalBounced int `json:"total_bounced"`
		InFlight     int `json:"in_flight"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || res.TotalBounced != 0 || res.InFlight != 1 {
		t.Fatalf("bounce during the attempt: %d %s", code, body)
	}
	hold <- struct{}{}
	e.relay.WaitLog(recipientIs("TransientFailure", "gone@implicit.test"), 10*time.Second)
	rec := e.relay.WaitLog(recipientIs("AdminBounce", "gone@implicit.test"), 5*time.Second)
	if rec["id"] != id || testutil.Code(rec) != 551 {
		t.Fatalf("AdminBounce record %v", rec)
	}
	e.waitSummary("nothing queued", func(s queue.Summary) bool { return s.Queued == 0 })
	if code, _ := e.get("/api/admin/inspect-message/v1?id="+id, adminToken); code != 404 {
		t.Fatalf("inspect of the bounced message: %d", code)
	}
}
