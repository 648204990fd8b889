package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/testutil"
)

// End-to-end tests of the queue admin API and `wasmta queue`, against the real binary: a
// relay with [http] on loopback and a token, real sinks that keep mail deferred on demand.

const adminToken = "admin-s3cret"

type adminEnv struct{ *httpEnv }

func newAdminEnv(t *testing.T, sinkIPs []string, extra string) *adminEnv {
	t.Helper()
	return &adminEnv{newHTTPEnv(t, sinkIPs, fmt.Sprintf("token = %q\ninject_token = \"inject-only\"\n", adminToken), extra)}
}

// cli runs `wasmta queue args...` against the relay, with the admin token.
func (e *adminEnv) cli(args ...string) (string, error) {
	return runBin(e.relay.Dir, append(append([]string{"queue"}, args...), "--api", e.url, "--token", adminToken)...)
}

func (e *adminEnv) mustCLI(args ...string) string {
	e.t.Helper()
	out, err := e.cli(args...)
	if err != nil {
		e.t.Fatalf("wasmta queue %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *adminEnv) get(path, token string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitSummary polls the summary until cond holds (bounded: 10 s).
func (e *adminEnv) waitSummary(what string, cond func(queue.Summary) bool) queue.Summary {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := e.get("/api/admin/queue-summary/v1", adminToken)
		var s queue.Summary
		if code == 200 && json.Unmarshal([]byte(body), &s) == nil && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("summary never showed %s: %d %s", what, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func schedQ(s queue.Summary, name string) *queue.SchedSummary {
	for i := range s.Scheduled {
		if s.Scheduled[i].Name == name {
			return &s.Scheduled[i]
		}
	}
	return nil
}

// held: one message of the queue waits on the timer heap until the suspension ends.
func held(name string) func(queue.Summary) bool {
	return func(s queue.Summary) bool {
		q := schedQ(s, name)
		return q != nil && q.Count == 1 && q.SuspendedUntil != nil && q.NextDue != nil && q.NextDue.Equal(*q.SuspendedUntil)
	}
}

func spoolID(t *testing.T, reply string) string {
	t.Helper()
	id, ok := strings.CutPrefix(reply, "2.0.0 OK queued as ")
	if !ok {
		t.Fatalf("reply %q", reply)
	}
	return id
}

// A suspension holds mail (not attempted), survives a restart, and `queue resume` releases it.
func TestAdminSuspendAcrossRestart(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1s\"\n")
	sink := e.sinks["127.0.0.4"]
	id := strings.TrimSpace(e.mustCLI("suspend", "--domain", "implicit.test", "--reason", "maintenance", "--duration", "1h"))
	e.send("a@sender.test", "held@implicit.test", "held")
	e.waitSummary("the message held", held("implicit.test"))
	if list := e.mustCLI("suspend", "--list"); !strings.Contains(list, id) || !strings.Contains(list, "domain=implicit.test") || !strings.Contains(list, "maintenance") {
		t.Fatalf("suspend --list:\n%s", list)
	}

	if err := e.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	e.relay.Start()
	e.waitHTTP(strings.TrimPrefix(e.url, "http://"))
	e.waitSummary("the message held after the restart", held("implicit.test"))
	if n := sink.Count(); n != 0 {
		t.Fatalf("suspended mail delivered (%d)", n)
	}
	if out := e.mustCLI("resume", id); !strings.Contains(out, "resumed") {
		t.Fatalf("resume: %s", out)
	}
	got := sink.WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "held@implicit.test" {
		t.Fatalf("delivered %v", got[0].To)
	}
	if out, err := e.cli("resume", id); err == nil || !strings.Contains(out, "404") {
		t.Fatalf("resuming twice: %v %s", err, out)
	}
}

// inspect, summary, retry-now and bounce on deferred mail, through the CLI.
func TestAdminInspectRetryBounce(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, []string{"127.0.0.2", "127.0.0.4"}, "[queue]\nretry_interval = \"1h\"\n")
	implicit, mx1 := e.sinks["127.0.0.4"], e.sinks["127.0.0.2"]
	implicit.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	mx1.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT", Times: 1})
	a := spoolID(t, e.send("a@sender.test", "a@implicit.test", "inspect me"))
	b := spoolID(t, e.send("a@sender.test", "b@example.com", "retry me"))
	e.relay.WaitLog(recipientIs("TransientFailure", "a@implicit.test"), 10*time.Second)
	e.relay.WaitLog(recipientIs("TransientFailure", "b@example.com"), 10*time.Second)

	var in struct {
		ID      string
		Message struct {
			Sender, Recipient, Queue string
			Data                     *string
			NumAttempts              int `json:"num_attempts"`
			Due                      time.Time
			Meta                     map[string]string
		}
	}
	out := e.mustCLI("inspect", a, "--body")
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	m := in.Message
	if in.ID != a || m.Sender != "a@sender.test" || m.Recipient != "a@implicit.test" || m.Queue != "implicit.test" ||
		m.NumAttempts != 1 || m.Data == nil || !strings.Contains(*m.Data, "Subject: inspect me") || time.Until(m.Due) < 50*time.Minute {
		t.Fatalf("inspect:\n%s", out)
	}

	table := e.mustCLI("summary")
	for _, want := range []string{"2 message(s) held", "implicit.test", "example.com", "451"} {
		if !strings.Contains(table, want) {
			t.Errorf("summary lacks %q:\n%s", want, table)
		}
	}
	var s queue.Summary
	if err := json.Unmarshal([]byte(e.mustCLI("summary", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	if q := schedQ(s, "implicit.test"); q == nil || q.Count != 1 || q.SuspendedUntil != nil {
		t.Fatalf("summary --json: %+v", s)
	}

	// Retry now: the next attempt was an hour away.
	if out := e.mustCLI("retry", "--domain", "example.com"); !strings.Contains(out, "1 message(s) due now") {
		t.Fatalf("retry: %s", out)
	}
	if got := mx1.WaitCount(t, 1, 10*time.Second); got[0].To[0] != "b@example.com" {
		t.Fatalf("retried delivery %v", got[0].To)
	}
	rec := e.relay.WaitLog(recipientIs("AdminRebind", "b@example.com"), 5*time.Second)
	if rec["id"] != b || !strings.Contains(fmt.Sprint(rec["response"]), "Rebound from example.com to example.com") {
		t.Fatalf("rebind record %v", rec)
	}

	// Another deferred message in another queue is left alone by the bounce.
	mx1.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	e.send("a@sender.test", "c@example.com", "stays")
	e.relay.WaitLog(recipientIs("TransientFailure", "c@example.com"), 10*time.Second)
	out = e.mustCLI("bounce", "--domain", "implicit.test", "--reason", "bad send", "--duration", "10m")
	if !strings.Contains(out, "bounced 1 message(s)") {
		t.Fatalf("bounce: %s", out)
	}
	rec = e.relay.WaitLog(recipientIs("AdminBounce", "a@implicit.test"), 5*time.Second)
	resp := rec["response"].(map[string]any)
	if rec["id"] != a || testutil.Code(rec) != 551 || resp["content"] != "Administrator bounced with reason: bad send" ||
		resp["enhanced_code"].(map[string]any)["subject"] != 7.0 {
		t.Fatalf("AdminBounce record %v", rec)
	}
	// A new arrival matching the rule is bounced without an attempt.
	e.send("a@sender.test", "d@implicit.test", "late")
	e.relay.WaitLog(recipientIs("AdminBounce", "d@implicit.test"), 5*time.Second)
	for _, r := range e.relay.LogRecords() {
		if recipientIs("TransientFailure", "d@implicit.test")(r) {
			t.Fatal("mail for a bounced queue was attempted")
		}
	}
	s = e.waitSummary("only c left", func(s queue.Summary) bool {
		return s.Queued == 1 && schedQ(s, "example.com") != nil && schedQ(s, "implicit.test") == nil
	})
	list := e.mustCLI("bounce", "--list")
	if !strings.Contains(list, "domain=implicit.test") || !strings.Contains(list, "bad send") {
		t.Fatalf("bounce --list:\n%s", list)
	}
	var rules []map[string]any
	_, body := e.get("/api/admin/bounce/v1", adminToken)
	if json.Unmarshal([]byte(body), &rules) != nil || len(rules) != 1 || rules[0]["total_bounced"] != 2.0 {
		t.Fatalf("bounce list %s", body)
	}
	e.mustCLI("bounce", "--cancel", rules[0]["id"].(string))
	if _, body := e.get("/api/admin/bounce/v1", adminToken); strings.TrimSpace(body) != "[]" {
		t.Fatalf("after cancel: %s", body)
	}
	// Bounced mail is gone from the spool: a restart recovers only c.
	if err := e.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	e.relay.Start()
	e.waitHTTP(strings.TrimPrefix(e.url, "http://"))
	e.waitSummary("c alone after the restart", func(s queue.Summary) bool {
		q := schedQ(s, "example.com")
		return s.Queued == 1 && q != nil && q.Count == 1
	})
}

// With [http] token set, the admin API wants it: none, a wrong one and the inject-only token
// get 401, and the CLI exits non-zero with the server's error. The probes need no token; plugin
// status and reload answer over HTTP as on the control socket.
func TestAdminAuthAndProbes(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, []string{"127.0.0.4"}, "")
	for _, tok := range []string{"", "wrong", "inject-only"} {
		if code, body := e.get("/api/admin/queue-summary/v1", tok); code != 401 {
			t.Errorf("summary with token %q: %d %s", tok, code, body)
		}
	}
	out, err := runBin(e.relay.Dir, "queue", "summary", "--api", e.url)
	if err == nil || !strings.Contains(out, "401") || !strings.Contains(out, "bearer token") {
		t.Fatalf("CLI without token: %v %s", err, out)
	}
	out, err = runBin(e.relay.Dir, "queue", "suspend", "--domain", "x.test", "--reason", "r", "--api", e.url, "--token", "inject-only")
	if err == nil || !strings.Contains(out, "401") {
		t.Fatalf("CLI with the inject token: %v %s", err, out)
	}
	if out, err := e.cli("suspend", "--reason", "no selector"); err == nil || !strings.Contains(out, "--everything") {
		t.Fatalf("suspend without selector: %v %s", err, out)
	}
	if out, err := e.cli("inspect", "0123456789abcdef0123456789abcdef"); err == nil || !strings.Contains(out, "404") {
		t.Fatalf("inspect unknown: %v %s", err, out)
	}
	for _, p := range []string{"/api/check-liveness/v1", "/api/check-readiness/v1"} {
		if code, body := e.get(p, ""); code != 200 || body != "OK\n" {
			t.Fatalf("%s: %d %q", p, code, body)
		}
	}
	code, body := e.get("/api/admin/plugin/status/v1", adminToken)
	var st struct {
		OK    bool
		Queue struct{ Received int64 }
	}
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || !st.OK {
		t.Fatalf("plugin status: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", e.url+"/api/admin/plugin/reload/v1", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("plugin reload: %d", resp.StatusCode)
	}
}
