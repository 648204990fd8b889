package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/spool"
	"github.com/wasmta/wasmta/host/testutil"
)

// adminDo sends an admin request with the token and returns the status and body.
func (e *adminEnv) adminDo(method, path string, body any) (int, string) {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.request(method, path, strings.NewReader(string(b)),
		"Content-Type", "application/json", "Authorization", "Bearer "+adminToken)
}

// A rebind the admin API answered 200 for holds after the relay is killed (SIGKILL) right
// after the answer: deferred mail moved to a smarthost is found in its new queue after the
// restart, not back in the old one waiting an hour for its retry there.
func TestKillRightAfterRebindKeepsIt(t *testing.T) {
	t.Parallel()
	const n = 20
	e := newAdminEnv(t, []string{"127.0.0.2", "127.0.0.6"}, "[queue]\nretry_interval = \"1h\"\n")
	e.sinks["127.0.0.2"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	smarthost := e.sinks["127.0.0.6"]
	for i := range n {
		e.send("a@sender.test", fmt.Sprintf("r%d@example.com", i), "moved")
	}
	for i := range n {
		e.relay.WaitLog(recipientIs("TransientFailure", fmt.Sprintf("r%d@example.com", i)), 20*time.Second)
	}
	// The smarthost's queue is suspended, so the rebound mail stays put for the test to see.
	code, out := e.adminDo("POST", "/api/admin/suspend/v1", map[string]any{"routing_domain": "smarthost.test", "reason": "hold", "duration": "1h"})
	if code != 200 {
		t.Fatalf("suspend: %d %s", code, out)
	}
	var sus struct{ ID string }
	_ = json.Unmarshal([]byte(out), &sus)
	code, out = e.adminDo("POST", "/api/admin/rebind/v1", map[string]any{"domain": "example.com", "reason": "to the smarthost",
		"data": map[string]string{"routing_domain": "smarthost.test"}})
	e.relay.Kill()
	var rr queue.RebindResult
	if code != 200 || json.Unmarshal([]byte(out), &rr) != nil || rr.Moved != n {
		t.Fatalf("rebind: %d %s", code, out)
	}
	e.relay.Start()
	e.waitHTTP(strings.TrimPrefix(e.url, "http://"))
	moved := "example.com!smarthost.test"
	e.waitSummary("every rebound message in "+moved+" after the restart", func(s queue.Summary) bool {
		q := schedQ(s, moved)
		return s.Queued == n && q != nil && q.Count == n
	})
	if code, out := e.adminDo("DELETE", "/api/admin/suspend/v1", map[string]string{"id": sus.ID}); code != 200 {
		t.Fatalf("resume: %d %s", code, out)
	}
	smarthost.WaitCount(t, n, 20*time.Second)
	waitQueueEmpty(t, defaultSock(e.relay))
}

// A rebind that finds a message being attempted is applied when the attempt fails (the API
// counted it in in_flight); a kill right after that (once its AdminRebind record is written)
// does not undo it: after the restart the message is in its new queue.
func TestKillRightAfterInFlightRebindKeepsIt(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{HoldData: hold}, "127.0.0.2")
	sinks[0].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "DATA"})
	dns := testutil.StartDNS(t, httpZone)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	cfg, smtpAddr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+
		fmt.Sprintf("[http]\nlisten = %q\ntoken = %q\n[queue]\nretry_interval = \"1h\"\n", addr, adminToken))
	e := &adminEnv{&httpEnv{env: &env{t: t, port: port, dns: dns, sinks: map[string]*testutil.Sink{"127.0.0.2": sinks[0]},
		relay: testutil.StartRelay(t, relayBin, dir, cfg, smtpAddr)}, url: "http://" + addr}}
	e.waitHTTP(addr)
	e.send("a@sender.test", "r@example.com", "in flight")
	waitUntil(t, "the attempt held at DATA", 20*time.Second, func() bool { return sinks[0].Holding() == 1 })
	if code, out := e.adminDo("POST", "/api/admin/suspend/v1", map[string]any{"routing_domain": "smarthost.test", "reason": "hold", "duration": "1h"}); code != 200 {
		t.Fatalf("suspend: %d %s", code, out)
	}
	code, out := e.adminDo("POST", "/api/admin/rebind/v1", map[string]any{"domain": "example.com", "reason": "to the smarthost",
		"data": map[string]string{"routing_domain": "smarthost.test"}})
	if code != 200 || !strings.Contains(out, `"in_flight":1`) {
		t.Fatalf("rebind: %d %s", code, out)
	}
	hold <- struct{}{} // the sink answers 451: the attempt ends and the rebind is applied
	logFile := filepath.Join(dir, "logs", "wasmta.jsonl")
	waitUntil(t, "the AdminRebind record", 20*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), `"AdminRebind"`)
	})
	e.relay.Kill()
	e.relay.Start()
	e.waitHTTP(addr)
	e.waitSummary("the message in example.com!smarthost.test after the restart", func(s queue.Summary) bool {
		q := schedQ(s, "example.com!smarthost.test")
		return s.Queued == 1 && q != nil && q.Count == 1
	})
}

// Mail an admin bounce answered 200 for stays bounced when the relay is killed (SIGKILL)
// right after the answer: after the restart the queue does not hold it any more. (It used to
// come back, due at its old retry time, to be attempted and delivered then, after its
// AdminBounce records.)
func TestKillRightAfterAdminBounceKeepsIt(t *testing.T) {
	t.Parallel()
	const n = 20
	e := newAdminEnv(t, []string{"127.0.0.2"}, "[queue]\nretry_interval = \"1h\"\n")
	e.sinks["127.0.0.2"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	for i := range n {
		e.send("a@sender.test", fmt.Sprintf("b%d@example.com", i), "bounced")
	}
	for i := range n {
		e.relay.WaitLog(recipientIs("TransientFailure", fmt.Sprintf("b%d@example.com", i)), 20*time.Second)
	}
	e.waitSummary("every message deferred", func(s queue.Summary) bool {
		q := schedQ(s, "example.com")
		return q != nil && q.Count == n && q.Delivering == 0
	})
	code, out := e.adminDo("POST", "/api/admin/bounce/v1", map[string]any{"domain": "example.com", "reason": "purge"})
	e.relay.Kill()
	if code != 200 || !strings.Contains(out, fmt.Sprintf(`"total_bounced":%d`, n)) {
		t.Fatalf("bounce: %d %s", code, out)
	}
	e.relay.Start()
	e.waitHTTP(strings.TrimPrefix(e.url, "http://"))
	e.waitSummary("no bounced message back in the queue", func(s queue.Summary) bool { return s.Queued == 0 })
}

const chaosZone = zone + `
smarthost.test.     A  127.0.0.6
held.test.          A  127.0.0.7
moved.test.         A  127.0.0.8
rate.test.          A  127.0.0.9
purge.test.         A  127.0.0.10
`

// chaos is the state of TestChaosKillMixedTraffic: what got 250 (SMTP) or 200 (HTTP).
type chaos struct {
	*adminEnv
	mu       sync.Mutex
	accepted map[string]bool // recipient -> accepted (every recipient is unique)
	txs, req int             // SMTP transactions and HTTP requests accepted
}

func (c *chaos) accept(rcpts ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rcpts {
		c.accepted[r] = true
	}
}

// smtpTx sends one transaction to every recipient in rcpts over q (one DATA, several domains:
// the relay splits it into per-domain batches); a non-nil error means the connection broke.
func smtpTx(q *quietClient, from string, rcpts []string) (int, error) {
	if code, err := q.cmd("MAIL FROM:<" + from + ">"); err != nil || code != 250 {
		return code, err
	}
	for _, r := range rcpts {
		if code, err := q.cmd("RCPT TO:<" + r + ">"); err != nil || code != 250 {
			return code, err
		}
	}
	if code, err := q.cmd("DATA"); err != nil || code != 354 {
		return code, err
	}
	w := q.tp.DotWriter()
	if _, err := fmt.Fprintf(w, "Subject: chaos %s\r\n\r\nhi\r\n", rcpts[0]); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	code, _, err := q.tp.ReadResponse(0)
	return code, err
}

// traffic runs SMTP and HTTP injectors for round until each has sent its share or the relay
// is killed under it; it returns a function that waits for them.
func (c *chaos) traffic(round int, domains []string) (wait func()) {
	const smtpWorkers, txPerWorker, httpRequests = 3, 12, 8
	var wg sync.WaitGroup
	for w := range smtpWorkers {
		wg.Go(func() {
			q, err := dialQuiet(c.relay.SMTP)
			if err != nil {
				return
			}
			defer q.Close()
			for j := range txPerWorker {
				var rcpts []string
				for _, d := range domains {
					rcpts = append(rcpts, fmt.Sprintf("s%d-%d-%d@%s", round, w, j, d))
				}
				code, err := smtpTx(q, "s@implicit.test", rcpts)
				if err != nil {
					return // killed under us: not accepted
				}
				if code == 250 {
					c.accept(rcpts...)
					c.mu.Lock()
					c.txs++
					c.mu.Unlock()
				}
			}
		})
	}
	wg.Go(func() {
		client := &http.Client{Timeout: 10 * time.Second}
		for j := range httpRequests {
			var rcpts []string
			var list []map[string]any
			for _, d := range []string{"implicit.test", "example.com", "rate.test"} {
				r := fmt.Sprintf("h%d-%d@%s", round, j, d)
				rcpts = append(rcpts, r)
				list = append(list, map[string]any{"email": r})
			}
			b, _ := json.Marshal(map[string]any{"envelope_sender": "s@implicit.test", "recipients": list,
				"content": map[string]any{"subject": "injected", "text_body": "hi"}})
			req, _ := http.NewRequest("POST", c.url+"/api/inject/v1", strings.NewReader(string(b)))
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			var res injectResult
			err = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				return
			}
			failed := map[string]bool{}
			for _, f := range res.FailedRecipients {
				failed[f] = true
			}
			for _, r := range rcpts {
				if !failed[r] {
					c.accept(r)
				}
			}
			c.mu.Lock()
			c.req++
			c.mu.Unlock()
		}
	})
	return wg.Wait
}

// accepted counts the SMTP transactions and HTTP requests accepted so far.
func (c *chaos) acceptedTx() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txs + c.req
}

// restart starts the relay again after a kill and waits for both listeners.
func (c *chaos) restart() {
	c.t.Helper()
	c.relay.Start()
	c.waitHTTP(strings.TrimPrefix(c.url, "http://"))
}

// waitUntil polls cond (bounded) and fails the test with what when it never holds.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s (within %s)", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dsnCount counts the DSNs the sender's domain got.
func dsnCount(s *testutil.Sink) int {
	n := 0
	for _, m := range s.Messages() {
		if m.To[0] == "s@implicit.test" {
			n++
		}
	}
	return n
}

// TestChaosKillMixedTraffic kills the relay (SIGKILL) six times under a mix of traffic the
// other kill tests do not combine: multi-recipient SMTP transactions over five domains (split
// into per-domain batches), HTTP injection, recipients bounced with a DSN, a throttled site
// (max_message_rate), a suspended site, a deferred site rebound to a smarthost, a deferred
// site bounced by the admin API, and plugin reloads. The kills come during a burst, right after
// a suspension's 200, during DSN generation, right after a rebind's 200, right after a plugin
// reload and right after an admin bounce's 200. After the last
// restart every recipient that got 250 or 200 ends with its final record (Delivery; Bounce for
// the bouncing domain; AdminBounce for the purged one) and the right sink has it; bounced ones got a DSN; the suspension
// still held after its kill; rebound mail went to the smarthost; nothing stays queued; the
// duplicates a crash may cause stay within the documented bound.
func TestChaosKillMixedTraffic(t *testing.T) {
	t.Parallel()
	const connLimit = 2
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	dir := t.TempDir()
	plug := filepath.Join(dir, "policy.wasm")
	installPlugin(t, fixture(t, "queuecfg"), plug)
	extra := fmt.Sprintf("[http]\nlisten = %q\ntoken = %q\n", addr, adminToken) + `
[queue]
retry_interval = "1h"
[egress]
connection_limit = 2
[[egress.path]]
routing_domain = "rate.test"
max_message_rate = "40/s"
` + pluginConfig(plug)
	ips := []string{"127.0.0.2", "127.0.0.4", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9", "127.0.0.10"}
	port, sinks := testutil.StartSinks(t, ips...)
	e := &env{t: t, sinks: map[string]*testutil.Sink{}, port: port}
	for i, ip := range ips {
		e.sinks[ip] = sinks[i]
	}
	e.dns = testutil.StartDNS(t, chaosZone)
	cfg, smtpAddr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(e.dns.Addr, e.port)+extra)
	e.relay = testutil.StartRelay(t, relayBin, dir, cfg, smtpAddr)
	c := &chaos{adminEnv: &adminEnv{&httpEnv{env: e, url: "http://" + addr}}, accepted: map[string]bool{}}
	c.waitHTTP(addr)

	bouncer, good := e.sinks["127.0.0.2"], e.sinks["127.0.0.4"] // example.com; implicit.test (and DSNs)
	smarthost, heldSink, movedSink := e.sinks["127.0.0.6"], e.sinks["127.0.0.7"], e.sinks["127.0.0.8"]
	bouncer.SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550})
	movedSink.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	purgeSink := e.sinks["127.0.0.10"] // deferred until an admin bounce ends its mail
	purgeSink.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	all := []string{"implicit.test", "example.com", "rate.test", "held.test", "moved.test", "purge.test"}
	kills := 0
	kill := func() { c.relay.Kill(); kills++ }

	// Kill 1: during a burst, once the accepting sink has taken some of it.
	wait := c.traffic(0, all)
	before := good.Count()
	waitUntil(t, "deliveries in round 0", 30*time.Second, func() bool { return good.Count()-before >= 40 })
	kill()
	wait()
	c.restart()

	// Kill 2: right after the 200 of a suspension of held.test, traffic running.
	wait = c.traffic(1, all)
	waitUntil(t, "held.test deliveries in round 1", 30*time.Second, func() bool { return heldSink.Count() >= 10 })
	code, out := c.adminDo("POST", "/api/admin/suspend/v1", map[string]any{"domain": "held.test", "reason": "chaos", "duration": "1h"})
	kill()
	wait()
	var sus struct{ ID string }
	if code != 200 || json.Unmarshal([]byte(out), &sus) != nil || sus.ID == "" {
		t.Fatalf("suspend: %d %s", code, out)
	}
	c.restart()
	heldBefore := heldSink.Count() // nothing for held.test may arrive from here until the resume

	// Kill 3: during DSN generation for the bounced recipients.
	domains := []string{"implicit.test", "example.com", "rate.test", "held.test", "purge.test"} // moved.test no more: see kill 4
	wait = c.traffic(2, domains)
	before = dsnCount(good)
	waitUntil(t, "DSNs in round 2", 30*time.Second, func() bool { return dsnCount(good)-before >= 10 })
	kill()
	wait()
	c.restart()

	// Kill 4: right after the 200 of a rebind of the deferred moved.test mail to the smarthost.
	// First every moved.test message accepted must wait for its retry (an hour away), so that
	// the rebind finds them all.
	var moved []string
	for r := range c.accepted {
		if strings.HasSuffix(r, "@moved.test") {
			moved = append(moved, r)
		}
	}
	lastSummary, queuedMoved := "", 0
	defer func() {
		if t.Failed() {
			t.Logf("%d moved.test accepted; last summary %s", len(moved), lastSummary)
		}
	}()
	waitUntil(t, "every moved.test message deferred", 20*time.Second, func() bool {
		failed := map[string]bool{}
		for _, r := range c.relay.LogRecords() {
			if r["type"] == "TransientFailure" {
				failed[fmt.Sprint(r["recipient"])] = true
			}
		}
		for _, m := range moved {
			if !failed[m] {
				lastSummary = "no TransientFailure for " + m
				return false
			}
		}
		code, body := c.get("/api/admin/queue-summary/v1", adminToken)
		var s queue.Summary
		q := (*queue.SchedSummary)(nil)
		if code == 200 && json.Unmarshal([]byte(body), &s) == nil {
			q = schedQ(s, "moved.test")
		}
		// More than were acknowledged may wait there: a kill can come between a commit and
		// its 250 reaching the client.
		ok := q != nil && q.Count >= len(moved) && q.Delivering == 0
		if ok {
			queuedMoved = q.Count
		}
		if !ok {
			lastSummary = body
		}
		return ok
	})
	wait = c.traffic(3, domains)
	n0 := c.acceptedTx()
	waitUntil(t, "traffic in round 3", 30*time.Second, func() bool { return c.acceptedTx()-n0 >= 10 })
	code, out = c.adminDo("POST", "/api/admin/rebind/v1", map[string]any{"queue_names": []string{"moved.test"}, "reason": "chaos",
		"data": map[string]string{"routing_domain": "smarthost.test"}})
	kill()
	wait()
	var rr queue.RebindResult
	if code != 200 || json.Unmarshal([]byte(out), &rr) != nil || rr.Moved != queuedMoved {
		t.Fatalf("rebind: %d %s, want %d moved", code, out, queuedMoved)
	}
	c.restart()

	// Kill 5: right after a plugin reload (a new version of the plugin: a custom section
	// appended), SIGHUP-triggered reload before it, traffic running.
	wait = c.traffic(4, domains)
	n0 = c.acceptedTx()
	waitUntil(t, "traffic in round 4", 30*time.Second, func() bool { return c.acceptedTx()-n0 >= 10 })
	reloads := func() int {
		n := 0
		for _, r := range c.relay.LogRecords() {
			if r["type"] == "PluginReload" && r["error"] == nil {
				n++
			}
		}
		return n
	}
	b, err := os.ReadFile(plug)
	if err != nil {
		t.Fatal(err)
	}
	// A new version of the plugin each time: a custom section appended (ignored when run).
	newVersion := func(tag byte) {
		if err := os.WriteFile(plug+".new", append(slices.Clone(b), 0, 3, 1, 'x', tag), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(plug+".new", plug); err != nil {
			t.Fatal(err)
		}
	}
	// The watcher or the SIGHUP, whichever comes first, loads version 1.
	hupBefore := reloads()
	newVersion(1)
	if err := c.relay.Process().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "version 1 loaded", 10*time.Second, func() bool { return reloads() > hupBefore })
	newVersion(2)
	if out, err := runBin(dir, "plugin", "reload", "--config", c.relay.Config); err != nil || !strings.Contains(out, "policy.wasm") {
		t.Fatalf("plugin reload: %v\n%s", err, out)
	}
	kill()
	wait()
	c.restart()

	// Kill 6: right after the 200 of an admin bounce of purge.test (its rule lasts: later
	// arrivals are bounced too), traffic running.
	wait = c.traffic(5, domains)
	n0 = c.acceptedTx()
	waitUntil(t, "traffic in round 5", 30*time.Second, func() bool { return c.acceptedTx()-n0 >= 10 })
	code, out = c.adminDo("POST", "/api/admin/bounce/v1", map[string]any{"domain": "purge.test", "reason": "chaos", "duration": "1h"})
	kill()
	wait()
	if code != 200 {
		t.Fatalf("bounce: %d %s", code, out)
	}
	c.restart()

	// The suspension outlived two kills: held.test got nothing since, and it is still listed.
	if _, body := c.get("/api/admin/suspend/v1", adminToken); !strings.Contains(body, sus.ID) {
		t.Fatalf("suspension %s gone after the kills: %s", sus.ID, body)
	}
	// Every moved.test message now waits for the smarthost's queue or is delivered there: none
	// is back in moved.test.
	c.waitSummary("nothing left in moved.test", func(s queue.Summary) bool { return schedQ(s, "moved.test") == nil })
	// Everything but held.test drains; then held.test must still hold all of its mail.
	waitUntil(t, "only held.test mail queued", 30*time.Second, func() bool {
		code, body := c.get("/api/admin/queue-summary/v1", adminToken)
		var s queue.Summary
		if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
			return false
		}
		q := schedQ(s, "held.test")
		return q != nil && int64(q.Count) == s.Queued
	})
	if n := heldSink.Count(); n != heldBefore {
		t.Errorf("held.test got %d messages while suspended", n-heldBefore)
	}
	if code, out := c.adminDo("DELETE", "/api/admin/suspend/v1", map[string]string{"id": sus.ID}); code != 200 {
		t.Fatalf("resume: %d %s", code, out)
	}
	waitQueueEmpty(t, defaultSock(c.relay))

	// Invariants.
	sinkOf := map[string]*testutil.Sink{"implicit.test": good, "rate.test": e.sinks["127.0.0.9"], "held.test": heldSink, "moved.test": smarthost}
	purged := 0
	got := map[string]int{} // recipient -> times a sink got it
	for _, s := range []*testutil.Sink{good, e.sinks["127.0.0.9"], heldSink, smarthost, movedSink, purgeSink} {
		for _, m := range s.Messages() {
			for _, to := range m.To {
				got[to]++
			}
		}
	}
	final := map[string]map[string]int{} // recipient -> record type -> count
	for _, r := range c.relay.LogRecords() {
		switch typ, _ := r["type"].(string); typ {
		case "Delivery", "Bounce", "Expiration", "AdminBounce":
			rcpt := fmt.Sprint(r["recipient"])
			if final[rcpt] == nil {
				final[rcpt] = map[string]int{}
			}
			final[rcpt][typ]++
		}
	}
	dsns := map[string]int{}
	for _, m := range good.Messages() {
		if m.To[0] != "s@implicit.test" {
			continue
		}
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if r, ok := strings.CutPrefix(line, "Final-Recipient: rfc822; "); ok {
				dsns[r]++
			}
		}
	}
	recordDups, deliveryDups, dsnDups, bounced := 0, 0, 0, 0
	for rcpt := range c.accepted {
		_, domain, _ := strings.Cut(rcpt, "@")
		want := "Delivery"
		if domain == "purge.test" {
			want, purged = "AdminBounce", purged+1
			if got[rcpt] != 0 {
				t.Errorf("%s was delivered after its admin bounce", rcpt)
			}
		} else if domain == "example.com" {
			want, bounced = "Bounce", bounced+1
			switch n := dsns[rcpt]; {
			case n == 0:
				t.Errorf("%s bounced and its sender never got a DSN", rcpt)
			case n > 1:
				dsnDups += n - 1
			}
		} else {
			s := sinkOf[domain]
			n := 0
			for _, m := range s.Messages() {
				if slices.Contains(m.To, rcpt) {
					n++
				}
			}
			if n == 0 {
				t.Errorf("%s was accepted and its sink never got it (%d elsewhere)", rcpt, got[rcpt])
			}
			if n != got[rcpt] {
				t.Errorf("%s went to the wrong sink: %d of %d", rcpt, got[rcpt]-n, got[rcpt])
			}
			deliveryDups += max(n-1, 0)
		}
		recs := final[rcpt]
		if recs[want] == 0 || len(recs) != 1 {
			t.Errorf("%s ended with %v in the log, want %s", rcpt, recs, want)
		}
		recordDups += max(recs[want]-1, 0)
	}
	// Per kill: the deliveries in flight (connection_limit per site, 6 sites) plus the deletes
	// not yet committed (docs/performance.md, "Deliveries a crash can repeat").
	bound := kills * (6*connLimit + spool.DefaultMaxUnsyncedDeletes)
	t.Logf("%d recipients accepted (%d SMTP transactions, %d HTTP requests; %d bounced with a DSN, %d rebound, %d bounced by admin) over %d kills: "+
		"%d final records repeated, %d deliveries repeated, %d DSNs repeated (bound %d)",
		len(c.accepted), c.txs, c.req, bounced, len(moved), purged, kills, recordDups, deliveryDups, dsnDups, bound)
	if recordDups > bound || deliveryDups > bound || dsnDups > bound {
		t.Errorf("more duplicates than the bound %d", bound)
	}
}
