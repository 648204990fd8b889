package queue

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// gatedPaths answers with the path it held when asked, but only once the test opens the gate:
// a get_egress_path_config still running when a reload swaps the plugin.
type gatedPaths struct {
	staticPaths
	asked chan struct{} // capacity 1: the first question is reported whether or not the test waits yet
	gate  chan struct{}
	once  atomic.Bool
}

func (g *gatedPaths) EgressPath(ctx context.Context, routingDomain, source, site string) (Path, error) {
	p, err := g.staticPaths.EgressPath(ctx, routingDomain, source, site)
	if g.once.CompareAndSwap(false, true) { // only the first question is held
		g.asked <- struct{}{}
		<-g.gate
	}
	return p, err
}

// A path fetched by the old plugin whose answer arrived after a reload dropped the cached paths
// was cached anyway, for refresh_interval: the reload's "messages follow the new policy at their
// next attempt" did not hold for that site. Such an answer now serves the attempt that asked
// but is not kept.
func TestPathFetchedAcrossReloadNotKept(t *testing.T) {
	old, fresh := &fakeDialer{}, &fakeDialer{}
	paths := &gatedPaths{staticPaths: staticPaths{path: Path{Dialer: old, MaxDeliveriesPerConnection: 1}},
		asked: make(chan struct{}, 1), gate: make(chan struct{})}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week}, func(o *Options) {
		o.Paths = paths
		o.IdleTimeout = time.Hour
	})
	h.submit(1)
	select { // the old plugin is answering
	case <-paths.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("get_egress_path_config was never asked")
	}
	paths.mu.Lock()
	paths.path.Dialer = fresh // the reload: the new plugin answers with another path
	paths.mu.Unlock()
	h.m.InvalidateConfigs()
	close(paths.gate) // the old answer arrives after the reload
	eventually(t, func() bool { return h.deliveredCount() == 1 }, "the first delivery")
	h.submit(1)
	eventually(t, func() bool { return h.deliveredCount() == 2 }, "the second delivery")
	if c, _, _, _ := fresh.stats(); c != 1 {
		t.Fatalf("the new path's dialer made %d connections, want 1: the path fetched before the reload was kept", c)
	}
}
