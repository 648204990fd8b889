package plugin

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmta/wasmta/abi"
)

type call struct {
	plugin, hook string
	failed       bool
}

type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) HookCall(plugin, hook string, d time.Duration, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d <= 0 {
		panic("hook call without a duration")
	}
	r.calls = append(r.calls, call{plugin, hook, failed})
}

// The chain's observer sees each plugin's call with its outcome: a reject is an answer, not a
// failure; a trap is a failure; a plugin without the hook is not called, so not observed.
func TestChainObserver(t *testing.T) {
	var r recorder
	c := NewChain(mustLoad(t, "qcfg_a"), mustLoad(t, "meta"), mustLoad(t, "reject"))
	c.Observe(&r)
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
		t.Fatal(err)
	}
	trap := NewChain(mustLoad(t, "trap"))
	trap.Observe(&r)
	if _, err := trap.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err == nil {
		t.Fatal("trap did not fail")
	}
	if _, _, err := trap.QueueConfig(context.Background(), QueueInput{Name: "example.com", Domain: "example.com"}); err == nil {
		t.Fatal("trap did not fail")
	}
	want := []call{
		{"meta.wasm", abi.HookSMTPServerMessageReceived, false},
		{"reject.wasm", abi.HookSMTPServerMessageReceived, false},
		{"trap.wasm", abi.HookSMTPServerMessageReceived, true},
		{"trap.wasm", abi.HookGetQueueConfig, true},
	}
	if len(r.calls) != len(want) {
		t.Fatalf("observed %v, want %v", r.calls, want)
	}
	for i := range want {
		if r.calls[i] != want[i] {
			t.Errorf("call %d: %v, want %v", i, r.calls[i], want[i])
		}
	}
}

// histObserver does what the relay's metrics do per call: one histogram observation.
type histObserver struct{ h prometheus.Histogram }

func (o histObserver) HookCall(plugin, hook string, d time.Duration, failed bool) {
	o.h.Observe(d.Seconds())
}

// BenchmarkMessageHookObserved is BenchmarkMessageHook/wat with an observer on the chain: the
// difference is what metrics cost a hook call.
func BenchmarkMessageHookObserved(b *testing.B) {
	c := NewChain(mustLoad(b, "meta"))
	c.Observe(histObserver{prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Buckets: prometheus.DefBuckets})})
	m := testMessage()
	data := m.Data
	b.ReportAllocs()
	for b.Loop() {
		m.Data, m.Meta = data, map[string]string{"tenant": "t1"}
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
			b.Fatal(err)
		}
	}
}
