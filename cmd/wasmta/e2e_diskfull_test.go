package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Disk-full tests: the spool lives on a tmpfs of its own, filled with a ballast file. Badger
// writes through memory maps, so a write the filesystem cannot hold is a SIGBUS, not an error;
// these tests run the real binary and fail if it ever dies.

const (
	// diskTmpfs holds Badger's default 64 MiB memtable several times over, the reserve and
	// the ballast.
	diskTmpfs = 320 << 20
	// diskReserve is the test's spool.min_free: small enough to leave room for ballast and mail
	// on diskTmpfs, large enough for everything Badger writes in these tests on its own.
	diskReserve = 64 << 20
	// diskBody is one test message's body: above the spool's value threshold, so it goes to
	// Badger's value log, the memory map that grows fastest.
	diskBody = 256 << 10
)

type diskEnv struct {
	t     *testing.T
	fs    string // the tmpfs mount point; the spool is fs/spool
	sink  *testutil.Sink
	relay *testutil.Relay
	http  string // base URL of the relay's HTTP API
	body  string
}

// newDiskEnv starts a relay whose spool is on its own tmpfs, with a sink that answers 451 to
// every RCPT (mail stays spooled and is retried every second, so the queue keeps updating the
// spool while the disk is full) until the test lets it accept.
func newDiskEnv(t *testing.T) *diskEnv {
	t.Helper()
	port, sinks := testutil.StartSinks(t, "127.0.0.2")
	sinks[0].SetBehavior(testutil.Behavior{Mode: testutil.TempFail})
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	fs := filepath.Join(dir, "fs")
	testutil.MountTmpfs(t, fs, diskTmpfs)
	if err := os.Mkdir(filepath.Join(fs, "spool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(fs, "spool"), filepath.Join(dir, "spool")); err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+`
[queue]
retry_interval = "1s"
max_retry_interval = "1s"
[http]
listen = "`+httpAddr+`"
`)
	cfg = strings.Replace(cfg, "min_free = \"32MiB\"\n", fmt.Sprintf("min_free = %d\n", diskReserve), 1)
	e := &diskEnv{t: t, fs: fs, sink: sinks[0], http: "http://" + httpAddr, body: strings.Repeat(strings.Repeat("x", 78)+"\r\n", diskBody/80)}
	e.relay = testutil.StartRelay(t, relayBin, dir, cfg, addr)
	return e
}

// send runs one transaction to rcpt on a fresh connection and returns the final reply code;
// the test fails if the relay is gone.
func (e *diskEnv) send(rcpt string) int {
	e.t.Helper()
	e.alive()
	q, err := dialQuiet(e.relay.SMTP)
	if err != nil {
		e.alive()
		e.t.Fatalf("connect: %v", err)
	}
	defer q.Close()
	code, err := q.send("s@sender.test", rcpt, testutil.Message("s@sender.test", rcpt, "disk", e.body))
	if err != nil {
		e.alive()
		e.t.Fatalf("session to %s broke: %v\n%s", rcpt, err, e.relay.Stderr())
	}
	return code
}

// alive fails the test if the relay process has exited.
func (e *diskEnv) alive() {
	e.t.Helper()
	if how := e.relay.Exited(); how != "" {
		e.t.Fatalf("wasmta died (%s):\n%s", how, tail(e.relay.Stderr(), 4000))
	}
}

// fillUntilRefused sends messages until one is refused and returns the recipients that got a
// 250 and the refused one. The filesystem has only a few MiB above the reserve by then.
func (e *diskEnv) fillUntilRefused(prefix string) (accepted []string, refused string) {
	e.t.Helper()
	for i := range 400 {
		rcpt := fmt.Sprintf("%s%d@example.com", prefix, i)
		switch code := e.send(rcpt); {
		case code == 250:
			accepted = append(accepted, rcpt)
		case code == 452: // 452 4.3.1 insufficient system storage (RFC 3463)
			return accepted, rcpt
		default:
			e.t.Fatalf("%s: reply %d, want 250 or 452 4.3.1", rcpt, code)
		}
	}
	e.t.Fatalf("400 messages of %d KiB accepted with %d bytes free: the reserve is not enforced", diskBody>>10, testutil.FreeBytes(e.t, e.fs))
	return nil, ""
}

// acceptsAgain checks that, with space back, a message gets 250 and `wasmta plugin status` says
// the relay accepts mail; it returns that message's recipient.
func (e *diskEnv) acceptsAgain() string {
	e.t.Helper()
	const rcpt = "after@example.com"
	if code := e.send(rcpt); code != 250 {
		e.t.Fatalf("after space returned: reply %d", code)
	}
	if out, err := runBin(e.relay.Dir, "plugin", "status", "--config", e.relay.Config); err != nil || !strings.Contains(out, ", accepting mail, ") {
		e.t.Fatalf("status after space returned: %v\n%s", err, out)
	}
	return rcpt
}

// deliveredAll lets the sink accept and waits until every recipient in want arrived.
func (e *diskEnv) deliveredAll(want []string) {
	e.t.Helper()
	e.sink.SetBehavior(testutil.Behavior{})
	got := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, m := range e.sink.Messages() {
			for _, to := range m.To {
				got[to] = true
			}
		}
		var missing []string
		for _, r := range want {
			if !got[r] {
				missing = append(missing, r)
			}
		}
		if len(missing) == 0 {
			return
		}
		e.alive()
		if time.Now().After(deadline) {
			e.t.Fatalf("%d of %d accepted messages never delivered: %v\n%s", len(missing), len(want), missing, tail(e.relay.Stderr(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A relay whose spool disk fills up refuses new mail with a transient reply and stays up;
// deliveries go on meanwhile; once space returns it accepts again without a restart, and every
// message that got a 250 is delivered.
func TestDiskFullRefusesAndRecovers(t *testing.T) {
	e := newDiskEnv(t)
	accepted := []string{"first@example.com"}
	if code := e.send(accepted[0]); code != 250 {
		t.Fatalf("first message: %d", code)
	}
	// Leave 3 MiB above the reserve: about a dozen more messages fit.
	ballast := testutil.Ballast(t, e.fs, "ballast", diskReserve+3<<20)
	more, refused := e.fillUntilRefused("full")
	accepted = append(accepted, more...)
	if len(more) == 0 {
		t.Fatalf("nothing accepted with 3 MiB above the reserve")
	}
	e.relay.WaitStderr("spool free space below spool.min_free", 10*time.Second)
	// The refusal is logged as a Rejection, and the refused message never got a Reception.
	e.relay.WaitLog(recipientIs("Rejection", refused), 10*time.Second)
	for _, r := range e.relay.LogRecords() {
		if r["type"] == "Reception" && r["recipient"] == refused {
			t.Fatalf("refused message has a Reception record: %v", r)
		}
	}
	// Deliveries go on below the reserve: the queue keeps retrying (and updating the spool).
	before := len(transients(e.relay.LogRecords()))
	deadline := time.Now().Add(20 * time.Second)
	for len(transients(e.relay.LogRecords())) < before+3 {
		e.alive()
		if time.Now().After(deadline) {
			t.Fatalf("no delivery attempts below the reserve")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := e.send("still-full@example.com"); code != 452 {
		t.Fatalf("still full: reply %d, want 452", code)
	}
	// Already below the reserve: refused at MAIL, before the client sends any data.
	c := testutil.Dial(t, e.relay.SMTP)
	c.Hello("client.test")
	if code, msg := c.Cmd("MAIL FROM:<a@sender.test>"); code != 452 || !strings.HasPrefix(msg, "4.3.1") {
		t.Fatalf("MAIL below the reserve: %d %s, want 452 4.3.1", code, msg)
	}
	c.Close()
	// HTTP injection is refused the same way (KumoMTA's 503 "disk is too full").
	resp, err := http.Post(e.http+"/api/inject/v1", "application/json", strings.NewReader(
		`{"envelope_sender":"a@sender.test","recipients":[{"email":"h@example.com"}],"content":"Subject: x\r\n\r\nx\r\n"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "disk is too full") {
		t.Fatalf("HTTP inject below the reserve: %d %s, want 503 disk is too full", resp.StatusCode, b)
	}
	// Operators see it: `wasmta plugin status` reports the refusals.
	out, err := runBin(e.relay.Dir, "plugin", "status", "--config", e.relay.Config)
	if err != nil || !strings.Contains(out, "REFUSING new mail (452 4.3.1)") {
		t.Fatalf("status while full: %v\n%s", err, out)
	}

	// Space returns: reception accepts again without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	e.relay.WaitStderr("spool free space back above spool.min_free", 10*time.Second)
	accepted = append(accepted, e.acceptsAgain())
	e.deliveredAll(accepted)
}

// Killed with SIGKILL and restarted while its spool disk is completely full, the relay neither
// crashes nor listens: it waits for space, logging why, then starts and delivers everything it
// had accepted.
func TestDiskFullRestartWaitsForSpace(t *testing.T) {
	e := newDiskEnv(t)
	var accepted []string
	for i := range 5 {
		rcpt := fmt.Sprintf("before%d@example.com", i)
		if code := e.send(rcpt); code != 250 {
			t.Fatalf("%s: %d", rcpt, code)
		}
		accepted = append(accepted, rcpt)
	}
	e.relay.Kill()
	ballast := testutil.Ballast(t, e.fs, "ballast", 0)
	if free := testutil.FreeBytes(t, e.fs); free != 0 {
		t.Fatalf("ballast left %d bytes free", free)
	}
	e.relay.StartNoWait()
	e.relay.WaitStderr("spool: waiting for free space", 20*time.Second)
	e.alive()
	if c, err := net.DialTimeout("tcp", e.relay.SMTP, time.Second); err == nil {
		c.Close()
		t.Fatalf("relay listens although its spool cannot be opened")
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	e.relay.WaitListening(30 * time.Second)
	accepted = append(accepted, e.acceptsAgain())
	e.deliveredAll(accepted)
}

func transients(recs []map[string]any) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["type"] == "TransientFailure" {
			out = append(out, r)
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
