package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// idOf is the spool id in a "250 2.0.0 OK queued as <id>" reply.
func idOf(reply string) string { return strings.TrimPrefix(reply, "2.0.0 OK queued as ") }

// fileRecords parses the JSON records of one file.
func fileRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

func countID(recs []map[string]any, id string) int {
	n := 0
	for _, r := range recs {
		if r["id"] == id {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLogsSIGUSR1Reopen: logrotate's way, with the real binary: rename wasmta.jsonl, send
// SIGUSR1, and the relay writes a new wasmta.jsonl; every record is in exactly one of them.
// The Delivery record names the command its reply answered (".": the end of data).
func TestLogsSIGUSR1Reopen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	logDir := filepath.Join(e.relay.Dir, "logs")
	live, moved := filepath.Join(logDir, "wasmta.jsonl"), filepath.Join(logDir, "wasmta.jsonl.1")

	id1 := idOf(e.send("a@sender.test", "one@implicit.test", "before"))
	rec := e.relay.WaitLog(recipientIs("Delivery", "one@implicit.test"), 10*time.Second)
	if cmd := rec["response"].(map[string]any)["command"]; cmd != "." {
		t.Fatalf("Delivery response.command = %v, want \".\": %v", cmd, rec)
	}
	if err := os.Rename(live, moved); err != nil {
		t.Fatal(err)
	}
	if err := e.relay.Process().Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new wasmta.jsonl after SIGUSR1", func() bool { _, err := os.Stat(live); return err == nil })
	id2 := idOf(e.send("a@sender.test", "two@implicit.test", "after"))
	waitFor(t, "the second message's Delivery record in the new file", func() bool {
		for _, r := range fileRecords(t, live) {
			if r["id"] == id2 && r["type"] == "Delivery" {
				return true
			}
		}
		return false
	})
	old, cur := fileRecords(t, moved), fileRecords(t, live)
	if countID(old, id1) != 2 || countID(cur, id1) != 0 {
		t.Fatalf("first message: %d records in the moved file, %d in the new one; want 2 and 0", countID(old, id1), countID(cur, id1))
	}
	if countID(old, id2) != 0 || countID(cur, id2) != 2 {
		t.Fatalf("second message: %d records in the moved file, %d in the new one; want 0 and 2", countID(old, id2), countID(cur, id2))
	}
	if e.relay.Exited() != "" {
		t.Fatalf("SIGUSR1 ended the relay: %s", e.relay.Exited())
	}
}

// TestLogsStdout: with [logs] stdout = true the records are on the process's standard output
// and no log file is written.
func TestLogsStdout(t *testing.T) {
	t.Parallel()
	sinkPort, _ := testutil.StartSinks(t, "127.0.0.4")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, sinkPort))
	cfg = strings.Replace(cfg, "[logs]\n", "[logs]\nstdout = true\n", 1)
	r := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	c := testutil.Dial(t, r.SMTP)
	c.Hello("client.test")
	code, msg := c.Send("a@sender.test", []string{"out@implicit.test"}, testutil.Message("a@sender.test", "out@implicit.test", "stdout", "x"))
	c.Close()
	if code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	id := idOf(msg)
	types := func() map[string]bool {
		got := map[string]bool{}
		// The harness gives stdout and stderr one buffer: records are the JSON lines.
		sc := bufio.NewScanner(strings.NewReader(r.Stderr()))
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["id"] == id {
				got[fmt.Sprint(rec["type"])] = true
			}
		}
		return got
	}
	waitFor(t, "Reception and Delivery records on stdout", func() bool { g := types(); return g["Reception"] && g["Delivery"] })
	if files, _ := filepath.Glob(filepath.Join(dir, "logs", "*.jsonl")); len(files) != 0 {
		t.Fatalf("log files written in stdout mode: %v", files)
	}
}

// TestLogsBounceClassAndCommand: Bounce records carry bounce_classification and the command
// the refusal answered.
func TestLogsBounceClassAndCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	sink := e.sinks["127.0.0.4"]
	for _, tc := range []struct {
		rcpt, at string
		code     int
		text     string
		class    string
		command  string
	}{
		{"gone@implicit.test", "RCPT", 550, "no such user", "InvalidRecipient", "RCPT TO:<gone@implicit.test>"},
		{"full@implicit.test", "DATA", 552, "mailbox full", "QuotaIssues", "."},
		{"spam@implicit.test", "DATA", 554, "spam detected", "SpamBlock", "."},
	} {
		sink.SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: tc.at, Code: tc.code, Text: tc.text})
		e.send("a@sender.test", tc.rcpt, "bounce")
		rec := e.relay.WaitLog(recipientIs("Bounce", tc.rcpt), 10*time.Second)
		resp := rec["response"].(map[string]any)
		if rec["bounce_classification"] != tc.class || resp["command"] != tc.command {
			t.Errorf("%s: bounce_classification %v, response.command %v; want %s, %q (record %v)", tc.rcpt, rec["bounce_classification"], resp["command"], tc.class, tc.command, rec)
		}
	}
}

// hookReceiver is a webhook endpoint on loopback that deduplicates on the batch id header.
type hookReceiver struct {
	mu       sync.Mutex
	down     bool          // answer 503
	refused  int           // 503s answered
	hold     chan struct{} // non-nil: the next accepted batch waits for it after being recorded
	held     bool
	batches  map[string]string
	repeats  int
	mismatch []string
	records  map[string]int // id/type -> times seen (after deduplication)
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	if h.down {
		h.refused++
		h.mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	id := r.Header.Get("X-Wasmta-Batch-Id")
	if prev, ok := h.batches[id]; ok {
		h.repeats++
		if prev != string(body) {
			h.mismatch = append(h.mismatch, id)
		}
	} else {
		h.batches[id] = string(body)
		var recs []map[string]any
		if err := json.Unmarshal(body, &recs); err != nil {
			h.mismatch = append(h.mismatch, "not a JSON array: "+err.Error())
		}
		for _, rec := range recs {
			h.records[fmt.Sprint(rec["id"], "/", rec["type"])]++
		}
	}
	hold := h.hold
	if hold != nil {
		h.hold, h.held = nil, true
	}
	h.mu.Unlock()
	if hold != nil {
		<-hold
	}
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) state() (refused int, held bool, distinct int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused, h.held, len(h.records)
}

// TestLogsWebhookExactlyOnce: the receiver is down (503) while the first messages are
// delivered, then a batch it processed is held unanswered while the relay is killed -9; after a
// restart and more mail, the receiver has every record exactly once (deduplicating on
// X-Wasmta-Batch-Id), and the only batch it got twice is the held one, byte for byte.
func TestLogsWebhookExactlyOnce(t *testing.T) {
	t.Parallel()
	rc := &hookReceiver{down: true, batches: map[string]string{}, records: map[string]int{}}
	srv := httptest.NewServer(rc) // 127.0.0.1
	defer srv.Close()
	e := newEnv(t, zone, []string{"127.0.0.4"}, fmt.Sprintf(`[logs.webhook]
url = %q
batch_size = 3
retry_interval = "20ms"
max_retry_interval = "100ms"
bearer_token = "hook-secret"
`, srv.URL+"/hook"))
	sink := e.sinks["127.0.0.4"]
	var ids []string
	for i := 0; i < 8; i++ {
		ids = append(ids, idOf(e.send("a@sender.test", fmt.Sprintf("w%d@implicit.test", i), "hook")))
	}
	sink.WaitCount(t, 8, 20*time.Second)
	waitQueueEmpty(t, defaultSock(e.relay))
	waitFor(t, "retries against the 503 receiver", func() bool { n, _, _ := rc.state(); return n >= 3 })

	hold := make(chan struct{})
	rc.mu.Lock()
	rc.down, rc.hold = false, hold
	rc.mu.Unlock()
	waitFor(t, "a batch held at the receiver", func() bool { _, held, _ := rc.state(); return held })
	e.relay.Kill() // kill -9 with the batch in flight
	close(hold)

	e.relay.Start()
	for i := 8; i < 16; i++ {
		ids = append(ids, idOf(e.send("a@sender.test", fmt.Sprintf("w%d@implicit.test", i), "hook")))
	}
	sink.WaitCount(t, 16, 20*time.Second)
	waitFor(t, "every record at the receiver", func() bool { _, _, n := rc.state(); return n >= 2*len(ids) })
	waitQueueEmpty(t, defaultSock(e.relay))

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, id := range ids {
		for _, typ := range []string{"Reception", "Delivery"} {
			if n := rc.records[id+"/"+typ]; n != 1 {
				t.Errorf("%s %s arrived %d times", typ, id, n)
			}
		}
	}
	for k, n := range rc.records {
		if n != 1 {
			t.Errorf("%s arrived %d times", k, n)
		}
	}
	if len(rc.mismatch) > 0 {
		t.Fatalf("batch ids reused for other content: %v", rc.mismatch)
	}
	if rc.repeats != 1 {
		t.Fatalf("%d batches repeated; want exactly the one in flight at the kill", rc.repeats)
	}
	t.Logf("%d records in %d batches, %d refused tries, %d repeated batch", len(rc.records), len(rc.batches), rc.refused, rc.repeats)
}
