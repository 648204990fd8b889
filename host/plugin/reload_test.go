package plugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// install copies a fixture over path the way operators replace files: write a temp file, rename.
func install(t testing.TB, fixture, path string) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + fixture + ".wasm")
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloadSwapsUnderLoadAndRefusesBrokenVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "route.wasm")
	install(t, "route_a", path)
	// The deadline is not under test: a call paused by a loaded CI machine while a reload
	// compiles must not count as a failed swap.
	const deadline = 10 * time.Second
	p, err := load(t, "", func(s *Spec) { s.Path = path; s.Timeout = deadline })
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(p)
	genA := p.Generation()

	// Calls run continuously while versions change.
	var stop atomic.Bool
	var calls, failures atomic.Int64
	var mu sync.Mutex
	seen := map[string]string{} // generation -> routing_domain it produced
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				m := testMessage()
				o, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
				calls.Add(1)
				if err != nil {
					t.Log(err)
					failures.Add(1)
					continue
				}
				gen := strings.TrimPrefix(o.Handled[0], "route.wasm@")
				mu.Lock()
				if prev, ok := seen[gen]; ok && prev != m.Meta["routing_domain"] {
					t.Errorf("generation %s produced %s and %s", gen, prev, m.Meta["routing_domain"])
				}
				seen[gen] = m.Meta["routing_domain"]
				mu.Unlock()
			}
		}()
	}
	waitCalls := func(n int64) {
		target := calls.Load() + n
		for calls.Load() < target {
			time.Sleep(time.Millisecond)
		}
	}
	waitCalls(200)

	install(t, "route_b", path)
	genB, changed, err := p.Reload(context.Background(), Spec{Path: path, Config: []byte(`{"k":"v"}`), Timeout: deadline, MaxMemory: 2 << 20})
	if err != nil || !changed || genB.ID == genA.ID {
		t.Fatalf("reload to B: %v changed=%v", err, changed)
	}
	waitCalls(200)

	// Unchanged file: nothing happens.
	if g, changed, err := p.Reload(context.Background(), Spec{Path: path, Config: []byte(`{"k":"v"}`), Timeout: deadline, MaxMemory: 2 << 20}); err != nil || changed || g != genB {
		t.Fatalf("no-op reload: %v %v", changed, err)
	}

	// A broken version: refused, B keeps serving, the error is remembered.
	if err := os.WriteFile(path, []byte("\x00asm garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := p.Reload(context.Background(), Spec{Path: path, Config: []byte(`{"k":"v"}`), Timeout: deadline, MaxMemory: 2 << 20}); err == nil || changed {
		t.Fatal("a broken module was accepted")
	}
	if p.Generation() != genB {
		t.Fatal("the broken version replaced B")
	}
	if st := p.Status(); st.Failures != 1 || !strings.Contains(st.LastError, "not a valid WebAssembly module") || st.Reloads != 1 {
		t.Fatalf("status %+v", st)
	}
	waitCalls(200)

	install(t, "route_c", path)
	genC, changed, err := p.Reload(context.Background(), Spec{Path: path, Config: []byte(`{"k":"v"}`), Timeout: deadline, MaxMemory: 2 << 20})
	if err != nil || !changed {
		t.Fatalf("reload to C: %v", err)
	}
	waitCalls(200)
	stop.Store(true)
	wg.Wait()

	if failures.Load() != 0 {
		t.Fatalf("%d of %d calls failed during reloads", failures.Load(), calls.Load())
	}
	want := map[string]string{genA.ID: "[127.0.0.2]", genB.ID: "[127.0.0.3]", genC.ID: "[127.0.0.4]"}
	for gen, rd := range want {
		if seen[gen] != rd {
			t.Errorf("generation %s: routed to %q, want %q", gen, seen[gen], rd)
		}
	}
	if len(seen) != 3 {
		t.Errorf("generations seen: %v", seen)
	}
	// Old generations drained and closed.
	for _, g := range []*Generation{genA, genB} {
		if !g.Retired() || g.Busy() != 0 {
			t.Errorf("generation %s: retired=%v busy=%d", g.ID, g.Retired(), g.Busy())
		}
	}
}

// A config change alone makes a new generation (wasmta_init sees the new config).
func TestReloadOnConfigChange(t *testing.T) {
	p := mustLoad(t, "meta")
	before := p.Generation().ID
	g, changed, err := p.Reload(context.Background(), Spec{Path: "testdata/meta.wasm", Config: []byte(`{"k":"other"}`), Timeout: 200 * time.Millisecond, MaxMemory: 2 << 20})
	if err != nil || !changed || g.ID == before {
		t.Fatalf("%v %v %s", err, changed, g.ID)
	}
}

// A plugin closed (removed on reload) while a chain still holds it fails fast instead of
// spinning; a reload that drops a hook makes the chain skip the plugin for that hook.
func TestClosedPluginAndRemovedHook(t *testing.T) {
	p := mustLoad(t, "meta")
	p.Close(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage())
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("call on a closed plugin: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call on a closed plugin hangs")
	}

	path := filepath.Join(t.TempDir(), "x.wasm")
	install(t, "meta", path)
	q, err := load(t, "", func(s *Spec) { s.Path = path })
	if err != nil {
		t.Fatal(err)
	}
	install(t, "queuecfg", path) // exports get_queue_config only
	if _, _, err := q.Reload(context.Background(), Spec{Path: path}); err != nil {
		t.Fatal(err)
	}
	o, err := NewChain(q).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage())
	if err != nil || len(o.Handled) != 0 {
		t.Fatalf("hook removed by reload: %v %v", o, err)
	}
}

// A reload that shrinks pool_size below the instances alive now must not wait for room that
// never comes.
func TestReloadShrinksPool(t *testing.T) {
	p, err := load(t, "meta", func(s *Spec) { s.PoolSize = 4 })
	if err != nil {
		t.Fatal(err)
	}
	g := p.Generation()
	var ins []*instance
	for range 4 {
		in, err := g.acquire(context.Background(), mono()+int64(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	for _, in := range ins {
		g.release(in)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := p.Reload(context.Background(), Spec{Path: "testdata/meta.wasm", Config: []byte(`{"k":"v"}`), PoolSize: 1})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reload hangs when the pool shrinks")
	}
}
