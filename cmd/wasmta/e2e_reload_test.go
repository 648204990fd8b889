package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/testutil"
)

// installPlugin replaces dst the way operators do: write a temporary file, then mv it over.
func installPlugin(t *testing.T, fixture, dst string) {
	t.Helper()
	var b []byte
	if fixture == "broken" {
		b = []byte("\x00asm\x01\x00\x00\x00 this is not a module")
	} else {
		var err error
		if b, err = os.ReadFile(fixture); err != nil {
			t.Fatal(err)
		}
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// reloadEnv is a relay serving one plugin from dir/policy.wasm (first installed from fixture
// first), with a control socket, DNS on loopback and sinks on ips.
type reloadEnv struct {
	relay      *testutil.Relay
	sinks      []*testutil.Sink
	plug, sock string
}

// newReloadEnv starts it; top is extra top-level config, extra extra tables.
func newReloadEnv(t *testing.T, first, top, extra string, ips ...string) *reloadEnv {
	t.Helper()
	port, sinks := testutil.StartSinks(t, ips...)
	dns := testutil.StartDNS(t, "")
	dir := t.TempDir()
	e := &reloadEnv{sinks: sinks, plug: filepath.Join(dir, "policy.wasm"), sock: filepath.Join(dir, "ctl.sock")}
	installPlugin(t, fixture(t, first), e.plug)
	cfg, addr := testutil.RelayConfig(t, dir, top+fmt.Sprintf("control_socket = %q\n", e.sock)+
		testutil.DeliveryConfig(dns.Addr, port)+extra+pluginConfig(e.plug))
	e.relay = testutil.StartRelay(t, relayBin, dir, cfg, addr)
	return e
}

func status(t *testing.T, sock string) *control.Response {
	t.Helper()
	r, err := control.Send(sock, "status")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitGeneration waits until the server serves a generation other than those in old.
func waitGeneration(t *testing.T, sock string, old ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		g := status(t, sock).Plugins[0].Generation
		fresh := true
		for _, o := range old {
			fresh = fresh && g != o
		}
		if fresh {
			return g
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no new generation after 10s (old: %v)", old)
	return ""
}

// TestHotReloadUnderLoad: messages flow over several connections while the plugin file is
// replaced A → B → broken → C. Every message gets 250, every message reaches exactly one sink
// exactly once, each is routed by the generation its Reception record names (the one active
// when it was received), and the broken version never handles anything.
func TestHotReloadUnderLoad(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t, "route_a", "", "", "127.0.0.2", "127.0.0.3", "127.0.0.4")
	relay, sinks, plug, sock := e.relay, e.sinks, e.plug, e.sock
	genA := status(t, sock).Plugins[0].Generation

	var sent atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testutil.Dial(t, relay.SMTP)
			c.Hello("load.test")
			for n := 0; !stop.Load(); n++ {
				rcpt := fmt.Sprintf("w%d-%d@dest.example", w, n)
				c.Expect(250, "MAIL FROM:<s@sender.test>")
				c.Expect(250, "RCPT TO:<%s>", rcpt)
				if code, msg := c.Data("Subject: reload\r\n\r\nhi\r\n"); code != 250 {
					errs <- fmt.Sprintf("%s: %d %s", rcpt, code, msg)
					return
				}
				sent.Add(1)
			}
			c.Close()
		}()
	}
	more := func(n int64) {
		target := sent.Load() + n
		for sent.Load() < target && len(errs) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	more(100)
	installPlugin(t, fixture(t, "route_b"), plug)
	genB := waitGeneration(t, sock, genA)
	more(100)
	installPlugin(t, "broken", plug)
	relay.WaitLog(func(r map[string]any) bool { return r["type"] == "PluginReload" && r["error"] != nil }, 10*time.Second)
	if st := status(t, sock).Plugins[0]; st.Generation != genB || st.LastError == "" || st.Failures != 1 {
		t.Fatalf("after the broken file: %+v", st)
	}
	more(100)
	installPlugin(t, fixture(t, "route_c"), plug)
	genC := waitGeneration(t, sock, genA, genB)
	more(100)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	total := int(sent.Load())
	sinkOf := map[string]string{genA: "127.0.0.2", genB: "127.0.0.3", genC: "127.0.0.4"}
	received := map[string]string{} // recipient -> sink IP
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		for _, s := range sinks {
			n += s.Count()
		}
		if n >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitQueueEmpty(t, sock) // nothing left that could arrive twice
	for _, s := range sinks {
		ip := strings.Split(s.Addr, ":")[0]
		for _, m := range s.Messages() {
			if prev, dup := received[m.To[0]]; dup {
				t.Errorf("%s delivered twice (%s and %s)", m.To[0], prev, ip)
			}
			received[m.To[0]] = ip
		}
	}
	if len(received) != total {
		t.Fatalf("sinks received %d distinct messages, %d got 250", len(received), total)
	}
	byGen := map[string]int{}
	for _, r := range relay.LogRecords() {
		if r["type"] != "Reception" {
			continue
		}
		pol, _ := r["policy"].([]any)
		if len(pol) != 1 {
			t.Fatalf("reception record without exactly one generation: %v", r)
		}
		gen := strings.TrimPrefix(pol[0].(string), "policy.wasm@")
		want, ok := sinkOf[gen]
		if !ok {
			t.Fatalf("message %v handled by unknown generation %s (A=%s B=%s C=%s)", r["recipient"], gen, genA, genB, genC)
		}
		if got := received[r["recipient"].(string)]; got != want {
			t.Errorf("%v: received by generation %s, which routes to %s, but delivered to %s", r["recipient"], gen, want, got)
		}
		byGen[gen]++
	}
	if byGen[genA] == 0 || byGen[genB] == 0 || byGen[genC] == 0 {
		t.Fatalf("messages per generation: %v", byGen)
	}
	t.Logf("%d messages: A %d, B %d, C %d", total, byGen[genA], byGen[genB], byGen[genC])
}

// With the watcher off, reloads come from `wasmta plugin reload` (exit status says whether the
// new version was refused) and SIGHUP; a [plugins.config] change reloads the plugin too.
func TestReloadCommandAndSIGHUP(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t, "route_a", "watch = false\n", "", "127.0.0.2")
	relay, plug, sock, dir := e.relay, e.plug, e.sock, filepath.Dir(e.plug)
	genA := status(t, sock).Plugins[0].Generation

	installPlugin(t, fixture(t, "route_b"), plug)
	time.Sleep(100 * time.Millisecond) // longer than the watcher's debounce: it must stay off
	if g := status(t, sock).Plugins[0].Generation; g != genA {
		t.Fatal("reloaded without being asked although watch = false")
	}
	out, err := runBin(dir, "plugin", "reload", "--config", relay.Config)
	if err != nil || !strings.Contains(out, "policy.wasm: reloaded "+genA+" -> ") {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	genB := status(t, sock).Plugins[0].Generation

	installPlugin(t, "broken", plug)
	out, err = runBin(dir, "plugin", "reload", "--config", relay.Config)
	if err == nil || !strings.Contains(out, "REFUSED, still serving "+genB) {
		t.Fatalf("broken reload: err=%v\n%s", err, out)
	}
	out, _ = runBin(dir, "plugin", "status", "--config", relay.Config)
	if !strings.Contains(out, "generation "+genB) || !strings.Contains(out, "last error") {
		t.Fatalf("status:\n%s", out)
	}

	installPlugin(t, fixture(t, "route_c"), plug)
	relayProcess(t, relay).Signal(syscall.SIGHUP)
	genC := waitGeneration(t, sock, genA, genB)

	// Only the plugin's config changes: a new generation of the same code.
	b, _ := os.ReadFile(relay.Config)
	os.WriteFile(relay.Config, []byte(string(b)+"[plugins.config]\nnote = \"v2\"\n"), 0o600)
	relayProcess(t, relay).Signal(syscall.SIGHUP)
	waitGeneration(t, sock, genA, genB, genC)
}

func relayProcess(t *testing.T, r *testutil.Relay) *os.Process {
	p := r.Process()
	if p == nil {
		t.Fatal("relay not running")
	}
	return p
}

// Queued mail follows the new policy: a message waiting for a retry under version A's
// get_queue_config (mx_list [127.0.0.2], which tempfails) is delivered by version B's
// (mx_list [127.0.0.3]) at its next attempt, because reload drops cached queue configs.
func TestQueuedMailFollowsReloadedPolicy(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t, "qcfg_a", "", "[queue]\nrefresh_interval = \"1h\"\n", "127.0.0.2", "127.0.0.3")
	relay, sinks, plug, sock := e.relay, e.sinks, e.plug, e.sock
	sinks[0].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	c := testutil.Dial(t, relay.SMTP)
	c.Hello("client.test")
	if code, msg := c.Send("s@sender.test", []string{"r@dest.example"}, "Subject: x\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	relay.WaitLog(func(r map[string]any) bool {
		return r["type"] == "TransientFailure" && r["site"] == "mx_list:[127.0.0.2]"
	}, 10*time.Second)
	genA := status(t, sock).Plugins[0].Generation
	installPlugin(t, fixture(t, "qcfg_b"), plug)
	waitGeneration(t, sock, genA)
	sinks[1].WaitCount(t, 1, 15*time.Second)
	rec := relay.WaitLog(func(r map[string]any) bool { return r["type"] == "Delivery" }, 5*time.Second)
	if rec["site"] != "mx_list:[127.0.0.3]" {
		t.Fatalf("delivered via %v", rec["site"])
	}
}

// With the watcher on, editing the plugin's [plugins.config] table in the config file is enough.
func TestConfigEditReloadsPlugin(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t, "route_a", "", "", "127.0.0.2")
	relay, sock := e.relay, e.sock
	before := status(t, sock).Plugins[0].Generation
	b, _ := os.ReadFile(relay.Config)
	tmp := relay.Config + ".new"
	os.WriteFile(tmp, []byte(string(b)+"[plugins.config]\nnote = \"edited\"\n"), 0o600)
	os.Rename(tmp, relay.Config) // as editors save
	after := waitGeneration(t, sock, before)
	rec := relay.WaitLog(func(r map[string]any) bool { return r["type"] == "PluginReload" && r["generation"] == after }, 5*time.Second)
	if rec["previous"] != before || rec["reason"] != "file change" {
		t.Fatalf("reload record %v", rec)
	}
}
