package plugin

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// far is a wait deadline no test reaches.
func far() int64 { return mono() + int64(time.Minute) }

// pollUntil polls cond until it holds, failing the test after 20 s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("20 s without %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holders runs n goroutines that each take something with take and give it back with the
// function take returns, k times, and returns how many held one at once at most.
func holders(t *testing.T, n, k int, take func() (giveBack func(), err error)) int {
	t.Helper()
	var now, most atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			for range k {
				giveBack, err := take()
				if err != nil {
					errs <- err
					return
				}
				c := now.Add(1)
				for m := most.Load(); c > m && !most.CompareAndSwap(m, c); m = most.Load() {
				}
				runtime.Gosched() // let the others in while this one holds it
				now.Add(-1)
				giveBack()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return int(most.Load())
}

// More callers than run slots: never more than the bound hold one at once, and every caller
// gets one (the waiters are woken as slots free).
func TestRunSlotsBound(t *testing.T) {
	s := newSlots(3)
	most := holders(t, 32, 300, func() (func(), error) {
		_, err := s.acquire(context.Background(), far())
		return s.release, err
	})
	if most > 3 {
		t.Fatalf("%d held a slot at once, bound 3", most)
	}
	if s.taken() != 0 || s.waiting() != 0 {
		t.Fatalf("after all: %d taken, %d waiting", s.taken(), s.waiting())
	}
}

// A waiter gets the slot that frees, in line order; one whose deadline passes or whose context
// ends leaves the line and does not keep a slot.
func TestRunSlotsWaiters(t *testing.T) {
	s := newSlots(1)
	if waited, err := s.acquire(context.Background(), far()); err != nil || waited {
		t.Fatalf("free slot: waited %v, %v", waited, err)
	}
	if waited, err := s.acquire(context.Background(), mono()+int64(20*time.Millisecond)); !errors.Is(err, errPoolWait) || !waited {
		t.Fatalf("full, deadline passed: waited %v, %v", waited, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.acquire(ctx, far()); !errors.Is(err, context.Canceled) {
		t.Fatalf("full, context ended: %v", err)
	}
	if s.waiting() != 0 {
		t.Fatalf("%d still waiting after giving up", s.waiting())
	}

	var order []int
	var mu sync.Mutex
	done := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := s.acquire(context.Background(), far())
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			done <- err
		}()
		pollUntil(t, "the caller waiting in line", func() bool { return s.waiting() == i+1 })
	}
	for range 2 {
		s.release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if order[0] != 0 || order[1] != 1 || s.taken() != 1 || s.waiting() != 0 {
		t.Fatalf("woken in order %v; %d taken, %d waiting", order, s.taken(), s.waiting())
	}
	s.release()
	if !s.tryAcquire() {
		t.Fatal("the freed slot cannot be taken")
	}
}

// A hook call that finds every run slot taken waits, and runs as soon as one frees.
func TestHookWaitsForRunSlot(t *testing.T) {
	p, err := load(t, "meta", func(s *Spec) { s.Timeout = time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	h := p.host
	for range maxRunning() {
		if _, err := h.running.acquire(context.Background(), far()); err != nil {
			t.Fatal(err)
		}
	}
	m := testMessage()
	done := hookInBackground(p, m)
	pollUntil(t, "the hook call waiting for a run slot", func() bool { return h.running.waiting() == 1 })
	h.running.release()
	select {
	case err := <-done:
		if err != nil || m.Meta["routing_domain"] != "my.smarthost.test" {
			t.Fatalf("%v, meta %v", err, m.Meta)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the hook call was not woken when a run slot freed")
	}
}

// More callers than instances: never more instances in use than pool_size, none started
// beyond it, and never one instance for two callers.
func TestInstancePoolBound(t *testing.T) {
	p, err := load(t, "meta", func(s *Spec) { s.PoolSize = 2 })
	if err != nil {
		t.Fatal(err)
	}
	g := p.Generation()
	var mu sync.Mutex
	inUse, seen := map[*instance]bool{}, map[*instance]bool{}
	most := holders(t, 16, 200, func() (func(), error) {
		in, err := g.acquire(context.Background(), far())
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if inUse[in] {
			return nil, errors.New("one instance handed to two callers at once")
		}
		inUse[in], seen[in] = true, true
		return func() {
			mu.Lock()
			delete(inUse, in)
			mu.Unlock()
			g.release(in)
		}, nil
	})
	if most > 2 || len(seen) > 2 {
		t.Fatalf("%d instances in use at once, %d started; pool_size 2", most, len(seen))
	}
}

// A call waiting for an instance gets the one given back, or, when that one is discarded (a
// trap), starts a new one in its place.
func TestPoolWaiterWoken(t *testing.T) {
	p, err := load(t, "meta", func(s *Spec) { s.PoolSize = 1; s.Timeout = time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	g := p.Generation()
	for _, giveBack := range []func(*instance){g.release, g.discard} {
		in, err := g.acquire(context.Background(), far())
		if err != nil {
			t.Fatal(err)
		}
		m := testMessage()
		done := hookInBackground(p, m)
		pollUntil(t, "the hook call waiting for an instance", func() bool { return g.waitingCount() == 1 })
		giveBack(in)
		select {
		case err := <-done:
			if err != nil || m.Meta["routing_domain"] != "my.smarthost.test" {
				t.Fatalf("%v, meta %v", err, m.Meta)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the waiting hook call was not woken")
		}
		if n := g.Busy(); n != 1 {
			t.Fatalf("%d instances alive, pool_size 1", n)
		}
	}
}

// A reload while a call waits for an instance of the old generation sends that call to the new
// one at once; the old generation closes when its busy instance comes back.
func TestReloadWakesPoolWaiter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.wasm")
	install(t, "meta", path)
	p, err := load(t, "", func(s *Spec) { s.Path = path; s.PoolSize = 1; s.Timeout = time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	old := p.Generation()
	in, err := old.acquire(context.Background(), far())
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage()
	done := make(chan error, 1)
	var o Outcome
	go func() {
		var err error
		o, err = NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
		done <- err
	}()
	pollUntil(t, "the hook call waiting for an instance", func() bool { return old.waitingCount() == 1 })
	install(t, "setmeta", path)
	g, changed, err := p.Reload(context.Background(), Spec{Path: path, Config: []byte(`{"k":"v"}`), PoolSize: 1, Timeout: time.Minute})
	if err != nil || !changed {
		t.Fatalf("reload: changed %v, %v", changed, err)
	}
	select {
	case err := <-done:
		if err != nil || len(o.Handled) != 1 || !strings.HasSuffix(o.Handled[0], "@"+g.ID) || m.Meta["queue"] != "my.smarthost.test" {
			t.Fatalf("%v: handled by %v, meta %v; want the new generation %s", err, o.Handled, m.Meta, g.ID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting call still waits for the retired generation")
	}
	if old.Busy() != 1 {
		t.Fatalf("old generation: %d instances alive, want the busy one", old.Busy())
	}
	old.release(in)
	if old.Busy() != 0 || !old.Retired() {
		t.Fatalf("old generation after its last call: %d alive, retired %v", old.Busy(), old.Retired())
	}
}

// A hook that sets a routing value it set before allocates nothing on the host's side: its
// run state is pooled, the instance, run slot and clock reads take no memory, and the value is
// the string the host kept when it first checked it.
func TestOneCallHookAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	c := NewChain(mustLoad(t, "setmeta"))
	m := testMessage()
	meta := m.Meta
	allocs := testing.AllocsPerRun(200, func() {
		clear(meta)
		meta["tenant"] = "t1"
		if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || m.Meta["queue"] != "my.smarthost.test" {
		t.Fatalf("%v allocations per call, meta %v", allocs, m.Meta)
	}
}

// hookInBackground runs p's message hook on m in a goroutine; its error arrives on the channel.
func hookInBackground(p *Plugin, m *Message) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
		done <- err
	}()
	return done
}
