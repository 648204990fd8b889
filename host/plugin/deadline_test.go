package plugin

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// Guest code that never ends while the plugin starts (the module's start function,
// _initialize, wasmta_init) fails the load at the init timeout, like a hook at its deadline.
func TestEndlessStartFails(t *testing.T) {
	for _, name := range []string{"startloop", "initializeloop", "initloop"} {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := load(t, name, func(s *Spec) { s.InitTimeout = 100 * time.Millisecond })
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "exceeded its 100ms init deadline") {
					t.Fatalf("got %v, want the load refused at the init deadline", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the load still runs the endless start code after 20s (init timeout 100ms)")
			}
		})
	}
}

// A hook that loops over host calls is ended at its deadline too.
func TestEndlessHostCallLoopEnds(t *testing.T) {
	p := mustLoad(t, "hostloop")
	_, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage())
	var f *Failure
	if !errors.As(err, &f) || !strings.Contains(f.Reason, "deadline") {
		t.Fatalf("got %v, want a deadline Failure", err)
	}
}

// A guest spinning in a loop must not hold up a garbage collection (whose stop-the-world pause
// waits for every goroutine, and native code cannot be preempted), nor the process with it.
func TestSpinningGuestDoesNotBlockGC(t *testing.T) {
	p, err := load(t, "loop", func(s *Spec) { s.Timeout = 10 * time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := NewChain(p).MessageHook(ctx, abi.HookSMTPServerMessageReceived, testMessage())
		done <- err
	}()
	for p.host.running.taken() == 0 { // the call took its run slot: it is about to run or running
		time.Sleep(time.Millisecond)
	}
	for range 3 {
		gc := make(chan struct{})
		go func() { runtime.GC(); close(gc) }()
		select {
		case <-gc:
		case <-time.After(20 * time.Second): // fires only if the world was not stopped for good
			t.Fatal("a garbage collection waited 20s for the spinning guest")
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the endless hook returned without error")
	}
}

// A plugin may not export a name the host reserves for its termination checks.
func TestReservedExportRefused(t *testing.T) {
	_, err := load(t, "reserved", nil)
	if err == nil || !strings.Contains(err.Error(), `exports "wasmta.stop", a name the host reserves`) {
		t.Fatalf("got %v", err)
	}
}

// An idle host's watchdog sleeps: it stops scanning (it used to tick every 2 ms for ever, about
// 3 % of a CPU on an idle relay). A call wakes it, so a hook that loops is still ended at its
// deadline, and so is one that starts after the watchdog went back to sleep.
func TestWatchdogSleepsWhenIdle(t *testing.T) {
	p, err := load(t, "loop", func(s *Spec) { s.Timeout = 50 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	h := p.host
	asleep := func() {
		t.Helper()
		limit := time.Now().Add(20 * time.Second)
		for {
			before := h.scans.Load()
			time.Sleep(300 * time.Millisecond) // 150 ticks if it were awake
			if h.scans.Load() == before {
				return
			}
			if time.Now().After(limit) {
				t.Fatalf("the watchdog still scans after 20 s without a call (%d scans)", h.scans.Load())
			}
		}
	}
	for round := range 2 {
		asleep()
		f := hookFailure(t, p, 20*time.Second, "a looping hook still runs 20 s after its 50 ms deadline: the sleeping watchdog was not woken")
		if !strings.Contains(f.Reason, "deadline") {
			t.Fatalf("round %d: got %v, want a deadline Failure", round, f)
		}
	}
}

// hookFailure runs p's message hook in the background and returns the Failure it ends with;
// the test fails when the call is still running after wait (late says what that means).
func hookFailure(t *testing.T, p *Plugin, wait time.Duration, late string) *Failure {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage())
		done <- err
	}()
	select {
	case err := <-done:
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("got %v, want a Failure", err)
		}
		return f
	case <-time.After(wait):
		t.Fatal(late)
		return nil
	}
}
