package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docs/cluster.md's walk-through is a newcomer's first cluster: every `sh` block in it runs,
// in order, as one script, with the real binary and a real redis-server. Its fixed ports stay
// as written because the script runs in a network namespace of its own (unshare -n, loopback
// only), so nothing else on the machine can hold them, and it reaches nothing but itself. What it prints is checked against what
// the text says the reader will see.
func TestClusterWalkthroughInDocs(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("ip link set lo up\n") // no set -e: one step is meant to fail (503)
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		script.WriteString(m[1])
	}
	script.WriteString("kill $(cat n1.pid sink.pid) 2>/dev/null || true\n")
	dir := t.TempDir()
	// A pid namespace too, with bash as its init: whatever the script leaves running (after a
	// failure half-way) dies with it.
	cmd := exec.Command("unshare", "--net", "--pid", "--fork", "--kill-child", "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(relayBin)+":"+os.Getenv("PATH"))
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the walk-through did not finish in 3 minutes:\n%s", out)
	}
	text := string(out)
	if err != nil {
		t.Fatalf("the walk-through failed: %v\n%s", err, text)
	}
	for _, want := range []string{
		"PONG", "== node n1", "== node n2", "10 accepted, 0 failed",
		"1 message(s) held", // node 2 holds the message of the suspension made on node 1
		"the cluster's Redis cannot be reached: nothing was changed on any node",
		"kept through the outage", // node 2 still lists the rule while Redis is away
		"cluster demo: 1 node(s)", // after kill -9 of node 2
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the walk-through's output lacks %q", want)
		}
	}
	// The receiver's count, printed once a second while the two nodes share max_message_rate
	// = "1/s": it rises by about one a second (two a second if each node had its own limit).
	var counts []int
	for _, l := range strings.Split(text, "\n") {
		if n, err := strconv.Atoi(strings.TrimSpace(l)); err == nil {
			counts = append(counts, n)
		}
	}
	if len(counts) < 8 {
		t.Fatalf("%d counts printed, want the 8 of the shared-limit step:\n%s", len(counts), text)
	}
	if rise := counts[7] - counts[0]; rise < 4 || rise > 10 {
		t.Errorf("the receiver's count rose by %d in 7 s under a shared 1/s (counts %v)", rise, counts[:8])
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
}
