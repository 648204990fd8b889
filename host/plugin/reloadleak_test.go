package plugin

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// withCustomSection is code with a custom section holding v appended: another module to the
// compiler (another hash), the same plugin to the host. It stands for an operator's new build.
func withCustomSection(code []byte, v int) []byte {
	payload := fmt.Appendf(nil, "\x07version%08d", v) // name "version" (7 bytes), then the value
	out := append([]byte(nil), code...)
	out = append(out, 0, byte(len(payload))) // custom section id, size (< 128)
	return append(out, payload...)
}

// executableBytes is the size of the anonymous executable mappings of this process: where
// wazero keeps compiled plugin code.
func executableBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps:", err)
	}
	defer f.Close()
	var n int64
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) != 5 || !strings.HasPrefix(fields[1], "r-x") { // 5 fields: no path
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil {
			n += int64(b - a)
		}
	}
	return n
}

// Every version a reload compiled stayed in memory for the life of the process: the host
// shares one compilation cache, hence one wazero engine, between runtimes, and the engine keeps
// a compiled module until CompiledModule.Close, which nothing called (closing the runtime does
// not). A relay whose policy is redeployed many times, or whose watcher sees many writes, grew
// by the machine code of each version, broken ones that compiled included.
func TestReloadReleasesCompiledCode(t *testing.T) {
	code, err := os.ReadFile("testdata/meta.wasm")
	if err != nil {
		t.Fatal(err)
	}
	broken, err := os.ReadFile("testdata/badsig.wasm") // compiles, then fails a load-time check
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "meta.wasm")
	if err := os.WriteFile(path, withCustomSection(code, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := load(t, "", func(s *Spec) { s.Path = path })
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(p)
	spec := Spec{Path: path, Config: []byte(`{"k":"v"}`), Timeout: 200 * time.Millisecond, MaxMemory: 2 << 20}
	settle := func() { runtime.GC(); runtime.GC() } // the engine unmaps code in a finalizer
	settle()
	base := executableBytes(t)
	const reloads = 200
	for v := 1; v <= reloads; v++ {
		if err := os.WriteFile(path, withCustomSection(code, v), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, changed, err := p.Reload(context.Background(), spec); err != nil || !changed {
			t.Fatalf("reload %d: changed=%v %v", v, changed, err)
		}
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
			t.Fatal(err)
		}
		// A broken build in between: refused, and its code must not stay either.
		if err := os.WriteFile(path, withCustomSection(broken, v), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, changed, err := p.Reload(context.Background(), spec); err == nil || changed {
			t.Fatalf("broken version %d accepted", v)
		}
	}
	// Bounded poll: finalizers run on their own goroutine after a GC.
	grown := int64(0)
	for range 50 {
		settle()
		if grown = executableBytes(t) - base; grown < reloads/4*int64(os.Getpagesize()) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("executable memory after %d reloads: %+d bytes", reloads, grown)
	if grown >= reloads/4*int64(os.Getpagesize()) {
		t.Fatalf("%d reloads (and as many refused) left %d bytes of compiled code mapped (a page or more per retired version)", reloads, grown)
	}
}

// A plugin a reload removes from the config while a message waits for one of its instances
// (every instance busy: traffic) failed that message's hook with ErrClosed, and reception
// answered 451: a client saw a temporary failure only because of the reload. The new config has
// no such plugin, so the call skips it, as a call that read the chain after the reload does.
func TestRemovedPluginSkippedByWaitingCalls(t *testing.T) {
	keep := mustLoad(t, "setmeta")
	gone, err := load(t, "meta", func(s *Spec) { s.PoolSize = 1; s.Timeout = 10 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(keep, gone)
	g := gone.Generation()
	busy, err := g.acquire(context.Background(), mono()+int64(time.Second)) // the one instance
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		o   Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage())
		done <- result{o, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); g.waitingCount() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call never waited for an instance")
		}
	}
	// What App.Reload does when the entry is gone from [[plugins]].
	c.Set([]*Plugin{keep})
	gone.Remove(context.Background())
	g.release(busy)
	r := <-done
	if r.err != nil {
		t.Fatalf("a message in flight during the reload that removed a plugin failed: %v", r.err)
	}
	for _, h := range r.o.Handled {
		if strings.HasPrefix(h, "meta.wasm@") {
			t.Fatalf("handled by the removed plugin: %v", r.o.Handled)
		}
	}
	// Closed for good (shutdown) is still a failure: no message passes without its policy.
	keep.Close(context.Background())
	if _, err := NewChain(keep).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err == nil {
		t.Fatal("a closed plugin was skipped")
	}
}

// A message whose hook run straddles a reload (the first plugin ran on the old configuration,
// the second is reached after the swap) is run again on the new one: its outcome names the
// new generations only, and what the old first plugin set is gone.
func TestChainRunOvertakenByUpdateRunsAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "route.wasm")
	install(t, "route_a", path) // routing_domain [127.0.0.2]
	first, err := load(t, "", func(s *Spec) { s.Path = path; s.Timeout = 10 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	second, err := load(t, "setmeta", func(s *Spec) { s.PoolSize = 1; s.Timeout = 10 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(first, second)
	g2 := second.Generation()
	busy, err := g2.acquire(context.Background(), mono()+int64(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage()
	type result struct {
		o   Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
		done <- result{o, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); g2.waitingCount() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second call never waited for an instance")
		}
	}
	// The first plugin ran (route_a); now a reload changes both.
	install(t, "route_b", path) // routing_domain [127.0.0.3]
	n1, ch1, err1 := first.Prepare(context.Background(), Spec{Path: path, Config: []byte(`{"k":"v"}`), Timeout: 10 * time.Second, MaxMemory: 2 << 20})
	n2, ch2, err2 := second.Prepare(context.Background(), Spec{Path: "testdata/setmeta.wasm", Config: []byte(`{"k":"w"}`), PoolSize: 1, Timeout: 10 * time.Second, MaxMemory: 2 << 20})
	if err1 != nil || err2 != nil || !ch1 || !ch2 {
		t.Fatalf("prepare: %v %v %v %v", err1, err2, ch1, ch2)
	}
	c.Update([]*Plugin{first, second}, []*Generation{n1, n2})
	g2.release(busy)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := []string{n1.Label, n2.Label}; !slices.Equal(r.o.Handled, want) {
		t.Fatalf("handled by %v, want the new configuration %v", r.o.Handled, want)
	}
	if got := m.Meta["routing_domain"]; got != "[127.0.0.3]" {
		t.Fatalf("routing_domain %q, want the new first plugin's [127.0.0.3]", got)
	}
}
