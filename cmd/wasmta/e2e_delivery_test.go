package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// procKiB reads a "VmRSS"-style field (in KiB) from /proc/<pid>/status.
func procKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func content(rec map[string]any) string {
	resp, _ := rec["response"].(map[string]any)
	return fmt.Sprint(resp["content"])
}

// Both MX hosts answer with an endless reply (one endless line, endless continuation lines):
// the relay reads a bounded amount, records a TransientFailure that says why, keeps its memory,
// and delivers through the second host as soon as it behaves.
func TestHostileDestinationBoundedMemory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.2", "127.0.0.3"}, "")
	mx1, mx2 := e.sinks["127.0.0.2"], e.sinks["127.0.0.3"]
	mx1.SetBehavior(testutil.Behavior{Mode: testutil.FloodLine})
	mx2.SetBehavior(testutil.Behavior{Mode: testutil.FloodLines})
	pid := e.relay.Process().Pid
	base := procKiB(t, pid, "VmRSS")

	e.send("a@sender.test", "bob@example.com", "hostile")
	// Poll the record and, meanwhile, the memory: an unbounded reader grows by hundreds of
	// MiB a second, so stop it early rather than let it take the machine.
	deadline := time.Now().Add(15 * time.Second)
	var rec map[string]any
	for rec == nil {
		if rss := procKiB(t, pid, "VmRSS"); rss-base > 256<<10 {
			t.Fatalf("relay grew from %d to %d KiB reading a hostile reply", base, rss)
		}
		for _, r := range e.relay.LogRecords() {
			if recipientIs("TransientFailure", "bob@example.com")(r) {
				rec = r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TransientFailure record; stderr:\n%s", e.relay.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	hwm := procKiB(t, pid, "VmHWM")
	t.Logf("VmRSS before %d KiB, VmHWM after %d KiB", base, hwm)
	if hwm-base > 64<<10 {
		t.Fatalf("relay peaked at %d KiB (from %d) reading a hostile reply", hwm, base)
	}
	if testutil.Code(rec) != 451 || !strings.Contains(content(rec), "exceeds the limit") {
		t.Fatalf("record does not say why: %v", rec)
	}
	if strings.Contains(content(rec), "xxxx") || strings.Contains(content(rec), "flooding") {
		t.Fatalf("record carries the hostile reply: %.300s", content(rec))
	}

	// The next host of the site is tried as for any connection failure.
	mx2.SetBehavior(testutil.Behavior{})
	e.send("a@sender.test", "carol@example.com", "second host")
	mx2.WaitCount(t, 1, 10*time.Second)
	d := e.relay.WaitLog(recipientIs("Delivery", "carol@example.com"), 5*time.Second)
	if peer := d["peer_address"].(map[string]any); peer["addr"] != "127.0.0.3" {
		t.Fatalf("delivered via %v", peer)
	}
}

// 8-bit mail and UTF-8 addresses never reach a server that cannot take them: they bounce with
// a reason, and the server receives nothing.
func TestEightBitToSevenBitServerBounces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	sink := e.sinks["127.0.0.4"]
	sink.SetBehavior(testutil.Behavior{Without: []string{"8BITMIME", "SMTPUTF8"}})

	c := testutil.Dial(t, e.relay.SMTP)
	defer c.Close()
	c.Hello("client.test")
	if code, msg := c.Send("a@sender.test", []string{"eightbit@implicit.test"},
		"Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n"); code != 250 {
		t.Fatalf("8-bit message: %d %s", code, msg)
	}
	c.Expect(250, "MAIL FROM:<a@sender.test> SMTPUTF8")
	c.Expect(250, "RCPT TO:<j\xc3\xbcrgen@implicit.test>")
	if code, msg := c.Data("Subject: utf8 address\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("UTF-8 recipient: %d %s", code, msg)
	}

	rec := e.relay.WaitLog(recipientIs("Bounce", "eightbit@implicit.test"), 10*time.Second)
	if testutil.Code(rec) != 554 || !strings.Contains(content(rec), "8BITMIME") {
		t.Fatalf("8-bit bounce: %v", rec)
	}
	rec = e.relay.WaitLog(recipientIs("Bounce", "j\xc3\xbcrgen@implicit.test"), 10*time.Second)
	if testutil.Code(rec) != 553 || !strings.Contains(content(rec), "SMTPUTF8") {
		t.Fatalf("UTF-8 address bounce: %v", rec)
	}
	if n := sink.Count(); n != 0 {
		t.Fatalf("the 7-bit server received %d messages", n)
	}
}
