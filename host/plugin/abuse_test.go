package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// diagRecords collects diagnostics records (message and attributes) for assertions.
type diagRecords struct {
	mu   sync.Mutex
	recs []diagRecord
}

type diagRecord struct {
	msg   string
	attrs map[string]string
}

func (d *diagRecords) Enabled(context.Context, slog.Level) bool { return true }
func (d *diagRecords) Handle(_ context.Context, r slog.Record) error {
	rec := diagRecord{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true })
	d.mu.Lock()
	d.recs = append(d.recs, rec)
	d.mu.Unlock()
	return nil
}
func (d *diagRecords) WithAttrs([]slog.Attr) slog.Handler { return d }
func (d *diagRecords) WithGroup(string) slog.Handler      { return d }

func (d *diagRecords) all(msg string) []diagRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []diagRecord
	for _, r := range d.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// loadDiag loads a test plugin on its own host whose diagnostics go to the returned records.
func loadDiag(t *testing.T, name string, mod func(*Spec)) (*Plugin, *diagRecords) {
	t.Helper()
	d := &diagRecords{}
	h, err := NewHost(t.TempDir(), slog.New(d))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	spec := Spec{Path: "testdata/" + name + ".wasm", Config: []byte(`{}`), Timeout: 2 * time.Second, MaxMemory: 2 << 20}
	if mod != nil {
		mod(&spec)
	}
	p, err := h.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p, d
}

// A plugin calling log in a loop writes at most the per-call budget; the rest is dropped,
// counted, and reported in one line.
func TestLogFloodIsCapped(t *testing.T) {
	p, d := loadDiag(t, "logflood", nil)
	if _, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
		t.Fatal(err)
	}
	lines := d.all("plugin log")
	bytes := 0
	for _, r := range lines {
		bytes += len(r.attrs["line"])
	}
	if len(lines) > abi.MaxLogLinesPerCall || bytes > abi.MaxLogBytesPerCall {
		t.Fatalf("one call wrote %d lines, %d bytes of diagnostics (budget %d lines, %d bytes)",
			len(lines), bytes, abi.MaxLogLinesPerCall, abi.MaxLogBytesPerCall)
	}
	var dropped []diagRecord
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if dropped = d.all("plugin log lines dropped"); len(dropped) > 0 {
			break
		}
	}
	if len(dropped) != 1 {
		t.Fatalf("%d drop reports, want one", len(dropped))
	}
	if n, _ := strconv.Atoi(dropped[0].attrs["dropped"]); n != 10000-len(lines) {
		t.Fatalf("drop report %v, want %d dropped", dropped[0].attrs, 10000-len(lines))
	}
}

// Many calls in a row: the per-plugin rate bounds the total, not only each call.
func TestLogRateIsPerPlugin(t *testing.T) {
	p, d := loadDiag(t, "logflood", nil)
	c := NewChain(p)
	start := time.Now()
	for range 20 {
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
			t.Fatal(err)
		}
	}
	secs := time.Since(start).Seconds()
	n := len(d.all("plugin log"))
	if max := logBurstLines + int(secs*logLinesPerSecond) + 1; n > max {
		t.Fatalf("20 calls in %.2fs wrote %d lines; the plugin's rate allows %d", secs, n, max)
	}
}

// ABI.md §5: a hook that returns non-zero discards its instance, so nothing it left in memory
// is seen by the next call.
func TestFailedHookDiscardsInstance(t *testing.T) {
	p, err := load(t, "stateful", func(s *Spec) { s.PoolSize = 1 })
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(p)
	for i := range 2 {
		m := testMessage()
		_, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
		if err == nil || !strings.Contains(err.Error(), "returned 1") {
			t.Fatalf("call %d: %v (meta %v): state of a failed call was visible to the next", i, err, m.Meta)
		}
	}
}

// Waiting for an instance when the pool is exhausted ends at a deadline as a plugin failure.
func TestPoolWaitHasDeadline(t *testing.T) {
	p, err := load(t, "meta", func(s *Spec) { s.PoolSize = 1; s.Timeout = 50 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	g := p.Generation()
	in, err := g.acquire(context.Background(), mono()+int64(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer g.release(in)
	if f := hookFailure(t, p, 10*time.Second, "a call waits for an instance with no deadline"); !strings.Contains(f.Reason, "no instance") {
		t.Fatalf("got %v, want a Failure for the wait", f)
	}
}

// One client that can make a plugin trap must not stop it for everyone.
func TestOneClientCannotOpenBreaker(t *testing.T) {
	p := mustLoad(t, "picky")
	c := NewChain(p)
	for i := range 3 * breakerMinCalls {
		m := testMessage()
		m.Sender, m.Client = "evil@attacker.test", "192.0.2.66"
		_, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
		if err == nil || errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("crafted call %d: %v", i, err)
		}
	}
	m := testMessage()
	m.Client = "198.51.100.7"
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatalf("another client after one client's crafted traps: %v", err)
	}
}

// A plugin that fails for many clients is still stopped.
func TestBreakerOpensForBrokenPlugin(t *testing.T) {
	c := NewChain(mustLoad(t, "trap"))
	var err error
	for i := range breakerMinCalls + 1 {
		m := testMessage()
		m.Client = fmt.Sprintf("192.0.2.%d", i%5+1)
		_, err = c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
	}
	if !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("after %d failures from 5 clients: %v", breakerMinCalls+1, err)
	}
}

// Limits the runtime cannot take are refused with an error, never a panic (config validation
// catches them first; this is the second line).
func TestBadLimitsRefused(t *testing.T) {
	for _, mem := range []int64{5 << 30, 1 << 62, 4<<30 + 1} {
		_, err := load(t, "meta", func(s *Spec) { s.MaxMemory = mem })
		if err == nil || !strings.Contains(err.Error(), "max_memory") {
			t.Errorf("max_memory %d: %v", mem, err)
		}
	}
	if _, err := load(t, "meta", func(s *Spec) { s.PoolSize = 1 << 30 }); err == nil || !strings.Contains(err.Error(), "pool_size") {
		t.Errorf("pool_size 1<<30: %v", err)
	}
	// 250 years: now + timeout would not fit in int64 nanoseconds, and no deadline would apply.
	if _, err := load(t, "meta", func(s *Spec) { s.Timeout = 250 * 365 * 24 * time.Hour }); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("timeout 250 years: %v", err)
	}
	p := mustLoad(t, "meta")
	g := p.Generation()
	if _, _, err := p.Reload(context.Background(), Spec{Path: "testdata/meta.wasm", Config: []byte(`{"k":"v"}`), MaxMemory: 5 << 30}); err == nil {
		t.Fatal("reload to 5 GiB accepted")
	}
	if p.Generation() != g {
		t.Fatal("a refused reload replaced the serving generation")
	}
	if _, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
		t.Fatal(err)
	}
}

// reject with an enhanced code of the other class is Invalid (RFC 3463: the class must match).
func TestRejectEnhancedClassMismatch(t *testing.T) {
	m := testMessage()
	o, err := NewChain(mustLoad(t, "rejectclass")).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta["status"] != "-2" || o.Reject != nil {
		t.Fatalf("reject(550, \"4.7.1 ...\"): status %q, reject %+v", m.Meta["status"], o.Reject)
	}
}

// The routing-value cache belongs to a Host and stays bounded.
func TestRoutingCacheBounded(t *testing.T) {
	h, err := NewHost("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for i := range 3 * routingCacheSize {
		if err := h.routing.check(abi.MetaRoutingDomain, fmt.Sprintf("d%d.example", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.routing.len(); n > routingCacheSize {
		t.Fatalf("%d cached values, bound %d", n, routingCacheSize)
	}
	h2, _ := NewHost("", nil)
	defer h2.Close()
	if h2.routing.len() != 0 {
		t.Fatal("two hosts share one cache")
	}
}

// A guest that recurses without end gets a trap ("stack overflow"), its instance is discarded,
// and the plugin keeps serving.
func TestStackOverflowIsATrap(t *testing.T) {
	p, err := load(t, "recurse", func(s *Spec) { s.PoolSize = 1; s.Timeout = 10 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(p)
	m := testMessage()
	m.Recipients = nil
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err == nil || !strings.Contains(err.Error(), "stack overflow") {
		t.Fatalf("got %v, want a stack overflow trap", err)
	}
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
		t.Fatal(err)
	}
}

// TestMeasureStackOverflowRSS measures the peak RSS of this process while 8 guests overflow
// their stacks at once (WASMTA_MEASURE_STACK=1; run alone: go test -run MeasureStack).
func TestMeasureStackOverflowRSS(t *testing.T) {
	if os.Getenv("WASMTA_MEASURE_STACK") == "" {
		t.Skip("set WASMTA_MEASURE_STACK=1 to measure")
	}
	par := 8
	if v, err := strconv.Atoi(os.Getenv("WASMTA_MEASURE_STACK")); err == nil && v >= 1 {
		par = v
	}
	p, err := load(t, "recurse", func(s *Spec) { s.PoolSize = par; s.Timeout = 30 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(p)
	before := peakRSS(t)
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := testMessage()
			m.Recipients = nil
			_, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
			t.Log(err)
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent overflows: peak RSS %d MiB before, %d MiB after", par, before>>20, peakRSS(t)>>20)
}

func peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// An instance that ran a deep (not overflowing) recursion does not keep the grown guest stack
// while it sits in the pool: wazero keeps it with the function, so a slow call refreshes it.
func TestDeepCallStackNotRetained(t *testing.T) {
	p, err := load(t, "recurse", func(s *Spec) { s.PoolSize = 1; s.Timeout = 30 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m := testMessage()
	m.Recipients = make([]string, 1000) // 1,000,000 frames deep: a stack of tens of MiB
	if _, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatal(err)
	}
	if p.Generation().idleCount() != 1 {
		t.Fatal("the instance did not go back to the pool")
	}
	if grown := int64(heap()) - int64(before); grown > 8<<20 {
		t.Fatalf("the idle instance keeps %d MiB after a deep call", grown>>20)
	}
}

// ABI.md §3: the host checks only the guest bytes it reads or writes. A size query (limit 0)
// with a buffer outside memory is fine; a (ptr, len) that leaves memory traps the call.
func TestOutOfBoundsPointers(t *testing.T) {
	c := NewChain(mustLoad(t, "oob"))
	m := testMessage() // sender a@sender.test: 13 bytes
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil || m.Meta["n"] != "3" {
		t.Fatalf("size query with an outside buffer: %v, meta %v", err, m.Meta)
	}
	_, err := c.MessageHook(context.Background(), abi.HookHTTPMessageGenerated, testMessage())
	if err == nil || !strings.Contains(err.Error(), "out-of-bounds") {
		t.Fatalf("key past the end of memory: %v", err)
	}
}

// ABI.md §6: 100,000 host calls per hook call, inclusive; set_error still works afterwards.
func TestHostCallBudgetIsInclusive(t *testing.T) {
	// 100,001 host calls take about 0.1 s here, more under -race on a loaded machine: the
	// deadline is set far off, since the budget, not the clock, must end the call.
	p, _ := loadDiag(t, "budget", func(s *Spec) { s.Timeout = 30 * time.Second })
	_, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage())
	if err == nil || !strings.Contains(err.Error(), "returned 1: inclusive") {
		t.Fatalf("got %v, want the guest to see call 100,000 work, call 100,001 return Limit, and set_error work", err)
	}
}

// Addresses of one IPv6 /64 (what one subscriber usually gets) count as one client: rotating
// through them does not open the breaker.
func TestBreakerCountsIPv6PrefixAsOneClient(t *testing.T) {
	c := NewChain(mustLoad(t, "picky"))
	for i := range 3 * breakerMinCalls {
		m := testMessage()
		m.Sender, m.Client = "evil@attacker.test", fmt.Sprintf("2001:db8:1:2::%x", i+1)
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("call %d from one /64: breaker opened", i)
		}
	}
}

// Output on stdout/stderr shares the plugin's log rate, and a single huge write of short lines
// is handled in one pass (it used to rescan the whole remaining buffer for each line).
func TestStdoutFloodIsCapped(t *testing.T) {
	p, d := loadDiag(t, "stdoutflood", func(s *Spec) { s.MaxMemory = 16 << 20; s.Timeout = 30 * time.Second })
	done := make(chan error, 1)
	go func() {
		_, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage())
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("an 8 MiB write of empty lines is still being processed after 20 s")
	}
	if n := len(d.all("plugin output")); n > logBurstLines {
		t.Fatalf("%d output lines written, the plugin's burst is %d", n, logBurstLines)
	}
}
