package queue

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestSparesTakeTheNextWorkAndEndWithStop: a goroutine that finished its work takes the next
// spawn instead of a new one starting, at most maxSpare wait, and Stop ends them all (it waits
// for every goroutine spawn started, so a leak would hang it).
func TestSparesTakeTheNextWorkAndEndWithStop(t *testing.T) {
	m := New(Options{})
	const n = maxSpare + 8
	var wg sync.WaitGroup
	release := make(chan struct{})
	wg.Add(n)
	for range n {
		if !m.spawn(func() { defer wg.Done(); <-release }) {
			t.Fatal("spawn refused before Stop")
		}
	}
	close(release)
	wg.Wait()
	waitFor(t, func() bool { return len(m.spare.n) == maxSpare }, "maxSpare goroutines waiting")

	// The next spawns go to the waiting goroutines rather than new ones. (A goroutine counts
	// itself as waiting just before it waits, so a spawn at that instant may still start one.)
	before := runtime.NumGoroutine()
	hold := make(chan struct{})
	wg.Add(maxSpare)
	for range maxSpare {
		m.spawn(func() { defer wg.Done(); <-hold })
	}
	if grown := runtime.NumGoroutine() - before; grown > maxSpare/4 {
		t.Fatalf("%d spawns onto %d waiting goroutines started %d new ones", maxSpare, maxSpare, grown)
	}
	close(hold)
	wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { m.Stop(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return: waiting goroutines did not end")
	}
	if m.spawn(func() {}) {
		t.Fatal("spawn accepted work after Stop")
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for: %s", what)
}
