package queue

import (
	"testing"
	"time"
)

// A path's idle_timeout, not the queue-wide one, decides how long an idle connection to its
// site stays open.
func TestPathIdleTimeout(t *testing.T) {
	d := &fakeDialer{}
	paths := &staticPaths{path: Path{Dialer: d, IdleTimeout: 10 * time.Second}}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.Paths = paths
		o.IdleTimeout = time.Hour
	})
	h.submit(1)
	eventually(t, func() bool { return h.deliveredCount() == 1 }, "the delivery")
	at := h.clock.Now().Add(10 * time.Second)
	eventually(t, func() bool { return h.clock.pending(at) }, "the idle connection to wait for the path's 10s idle_timeout")
	if _, open, _, _ := d.stats(); open != 1 {
		t.Fatalf("%d connections open while idle, want 1", open)
	}
	h.clock.Advance(10 * time.Second)
	eventually(t, func() bool { _, open, _, _ := d.stats(); return open == 0 }, "the idle connection to close after 10s")
}
