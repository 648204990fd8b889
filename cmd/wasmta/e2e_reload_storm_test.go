package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// TestReloadStormUnderTraffic: SMTP traffic flows on three connections while the plugin file
// goes through what operators and editors do to it: four broken versions (not wasm, a start
// function that traps, a memory larger than max_memory, wasmta_init failing), a good one, 50
// writes in a row (in place and by rename), a deletion, a re-creation. No message gets anything
// but 250; each broken version is refused once (one PluginReload error record, one count in
// wasmta_plugin_reloads_total{result="failed"}) while the previous generation serves; the last
// file written serves; reloads leave no goroutine behind.
func TestReloadStormUnderTraffic(t *testing.T) {
	t.Parallel()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	e := newReloadEnv(t, "route_a", "", fmt.Sprintf("[http]\nlisten = %q\n", httpAddr), "127.0.0.2", "127.0.0.3", "127.0.0.4")
	relay, plug, sock := e.relay, e.plug, e.sock
	h := &httpEnv{env: &env{t: t}, url: "http://" + httpAddr}
	h.waitHTTP(httpAddr)
	genA := status(t, sock).Plugins[0].Generation
	idle := h.scrapeMetrics().value("go_goroutines")

	var sent, refused atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var replies []string
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testutil.Dial(t, relay.SMTP)
			defer c.Close()
			c.Hello("load.test")
			for n := 0; !stop.Load(); n++ {
				code, msg := c.Send("s@sender.test", []string{fmt.Sprintf("w%d-%d@dest.example", w, n)}, "Subject: storm\r\n\r\nhi\r\n")
				if code != 250 {
					refused.Add(1)
					mu.Lock()
					replies = append(replies, fmt.Sprintf("%d %s", code, msg))
					mu.Unlock()
					continue
				}
				sent.Add(1)
			}
		}()
	}
	more := func(n int64) {
		for target := sent.Load() + n; sent.Load() < target && refused.Load() == 0; {
			time.Sleep(time.Millisecond)
		}
	}
	failures := func() int { return status(t, sock).Plugins[0].Failures }
	waitFailures := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); failures() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("reload failures: %d, want %d", failures(), n)
			}
		}
	}
	more(30)

	broken := []string{"broken", fixture(t, "starttrap"), fixture(t, "bigmemory"), fixture(t, "initfail")}
	for i, b := range broken {
		installPlugin(t, b, plug)
		waitFailures(i + 1)
		if g := status(t, sock).Plugins[0].Generation; g != genA {
			t.Fatalf("after broken version %d the generation is %s, not %s", i, g, genA)
		}
		more(20)
	}
	installPlugin(t, fixture(t, "route_c"), plug)
	genC := waitGeneration(t, sock, genA)
	more(20)

	// 50 writes in a row, half in place (truncate and write), half by rename; route_c last.
	versions := [][]byte{}
	for _, f := range []string{"route_a", "route_b"} {
		b, err := os.ReadFile(fixture(t, f))
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, b)
	}
	gens := map[int]string{} // version -> generation, as they are learnt
	storm := func() {
		t.Helper()
		// Every fifth write waits for its version to serve, so that reloads run while the
		// next writes land, not only once at the end of the burst.
		for i := range 49 {
			v := i % 2
			if i%4 < 2 {
				if err := os.WriteFile(plug, versions[v], 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				installPlugin(t, fixture(t, []string{"route_a", "route_b"}[v]), plug)
			}
			if i%5 == 4 {
				deadline := time.Now().Add(15 * time.Second)
				for {
					g := status(t, sock).Plugins[0].Generation
					if gens[v] == "" && g != gens[1-v] && g != genC {
						gens[v] = g
					}
					if g == gens[v] {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("write %d: version %d never served", i, v)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		}
		installPlugin(t, fixture(t, "route_c"), plug)
		// The last file wins: the generation serving settles on C's.
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if status(t, sock).Plugins[0].Generation == genC {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the storm the generation is %s, not route_c's %s", status(t, sock).Plugins[0].Generation, genC)
			}
		}
		more(20)
	}
	// settled is the number of goroutines once they stop changing (connections closing).
	settled := func() float64 {
		t.Helper()
		last := -1.0
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			n := h.scrapeMetrics().value("go_goroutines")
			if n == last {
				return n
			}
			last = n
		}
		return last
	}
	storm()
	reloads1 := status(t, sock).Plugins[0].Reloads
	g1 := settled()
	storm()
	reloads2 := status(t, sock).Plugins[0].Reloads
	g2 := settled()
	t.Logf("goroutines: %v idle at start, %v after %d reloads, %v after %d", idle, g1, reloads1, g2, reloads2)
	if g2 > g1+3 {
		t.Errorf("goroutines grew from %v to %v over %d reloads", g1, g2, reloads2-reloads1)
	}

	// Deleted: refused (the running version stays); recreated: serves.
	before := failures()
	if err := os.Remove(plug); err != nil {
		t.Fatal(err)
	}
	waitFailures(before + 1)
	more(20)
	installPlugin(t, fixture(t, "route_b"), plug)
	genB := waitGeneration(t, sock, genA, genC)
	more(30)
	stop.Store(true)
	wg.Wait()

	if refused.Load() != 0 {
		t.Errorf("%d messages refused during reloads: %v", refused.Load(), replies)
	}
	st := status(t, sock).Plugins[0]
	wantFailures := len(broken) + 1
	m := h.scrapeMetrics()
	var errRecords int
	for _, r := range relay.LogRecords() {
		if r["type"] == "PluginReload" && r["error"] != nil {
			errRecords++
		}
	}
	failedMetric := m.value("wasmta_plugin_reloads_total", "result", "failed")
	okMetric := m.value("wasmta_plugin_reloads_total", "result", "ok")
	t.Logf("%d messages, %d refused; reloads ok %v, failed %v; status %d reloads %d failures; %d PluginReload error records",
		sent.Load(), refused.Load(), okMetric, failedMetric, st.Reloads, st.Failures, errRecords)
	// Each broken version and the deletion is refused. A watcher may also catch a file that an
	// in-place write of the storm has truncated and not yet refilled (more so in a slow run,
	// -race): refused too, and counted the same way everywhere.
	if st.Failures < wantFailures || int(failedMetric) != st.Failures || errRecords != st.Failures {
		t.Errorf("refused versions: status %d, metric %v, error records %d; want the same, at least %d", st.Failures, failedMetric, errRecords, wantFailures)
	}
	if st.Generation != genB {
		t.Errorf("serving %s, want the recreated file's %s", st.Generation, genB)
	}
	// Every message was handled by a good generation.
	for _, r := range relay.LogRecords() {
		if r["type"] != "Reception" {
			continue
		}
		pol, _ := r["policy"].([]any)
		if len(pol) != 1 || !strings.HasPrefix(pol[0].(string), "policy.wasm@") {
			t.Fatalf("reception record %v", r)
		}
	}
}
