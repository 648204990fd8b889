package queue

import (
	"testing"
	"time"
)

// A path whose transport changed (a reload: another EHLO name, other credentials) is not
// served by a connection made for the old one, even while that connection is open and idle.
func TestChangedPathDialerReplacesIdleConnection(t *testing.T) {
	old, fresh := &fakeDialer{}, &fakeDialer{}
	paths := &staticPaths{path: Path{Dialer: old}}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.Paths = paths
		o.IdleTimeout = time.Hour // the fake clock does not move: the connection stays idle
	})
	h.submit(1)
	eventually(t, func() bool { return h.deliveredCount() == 1 }, "the first delivery")
	paths.mu.Lock()
	paths.path.Dialer = fresh
	paths.mu.Unlock()
	h.m.InvalidateConfigs()
	h.submit(1)
	eventually(t, func() bool { return h.deliveredCount() == 2 }, "the second delivery")
	if c, _, _, _ := fresh.stats(); c != 1 {
		t.Fatalf("the new path's dialer made %d connections, want 1 (the old connection was reused)", c)
	}
	if c, open, _, _ := old.stats(); c != 1 || open != 0 {
		t.Fatalf("old dialer: %d connections, %d still open; want 1 and 0", c, open)
	}
}
