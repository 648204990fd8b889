package queue

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Smooth weighted round robin: over each cycle every entry is picked exactly its weight, the
// heavy entry's picks are spread out, and a weight of 0 is never picked.
func TestPickerSmoothWeights(t *testing.T) {
	k := newPicker(Pool{{"a", 3}, {"off", 0}, {"b", 1}})
	var got []string
	for range 8 {
		s, ok := k.pick()
		if !ok {
			t.Fatal("no pick")
		}
		got = append(got, s)
	}
	if want := []string{"a", "a", "b", "a", "a", "a", "b", "a"}; !slices.Equal(got, want) {
		t.Fatalf("picks %v, want %v", got, want)
	}
	if _, ok := newPicker(Pool{{"off", 0}}).pick(); ok {
		t.Fatal("a pool of weight 0 picked a source")
	}
}

// sourcePaths records which source and bare site each ready queue's path was asked for.
type sourcePaths struct {
	mu    sync.Mutex
	asked []string
}

func (s *sourcePaths) EgressPath(_ context.Context, routingDomain, source, site string) (Path, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, source+" "+site)
	return Path{}, nil
}

// A queue whose config names a pool of a (weight 3) and b (weight 1) sends 40 messages as
// 30 from a and 10 from b, through ready queues "a->site" and "b->site" whose paths are asked
// for the bare site; the Delivery records name the pool and the source.
func TestPoolSpreadsBySourceWeight(t *testing.T) {
	paths := &sourcePaths{}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week, EgressPool: "p"}, func(o *Options) {
		o.Pools = map[string]Pool{"p": {{"a", 3}, {"b", 1}}}
		o.Paths = paths
	})
	msgs := h.submit(40)
	for _, m := range msgs {
		h.waitRecords("Delivery", m.ID, 1)
	}
	count := map[string]int{}
	for _, r := range h.records("Delivery", "") {
		src, _ := r["egress_source"].(string)
		if r["egress_pool"] != "p" || r["site"] != src+"->mx.site.test" {
			t.Fatalf("record pool %v source %v site %v", r["egress_pool"], r["egress_source"], r["site"])
		}
		count[src]++
	}
	if count["a"] != 30 || count["b"] != 10 {
		t.Fatalf("deliveries per source %v, want a:30 b:10", count)
	}
	paths.mu.Lock()
	defer paths.mu.Unlock()
	slices.Sort(paths.asked)
	if asked := slices.Compact(paths.asked); !slices.Equal(asked, []string{"a mx.site.test", "b mx.site.test"}) {
		t.Fatalf("paths asked for %v", asked)
	}
}

// Without a pool, ready queues and records are what they always were: the bare site, no
// egress fields.
func TestNoPoolKeepsSiteNames(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week, EgressPool: "unspecified"}, nil)
	m := h.submit(1)[0]
	r := h.waitRecords("Delivery", m.ID, 1)[0]
	if r["site"] != "mx.site.test" || r["egress_pool"] != nil || r["egress_source"] != nil {
		t.Fatalf("record %v", r)
	}
}

// A queue config naming a pool the server does not have keeps the message queued, with a
// 451 4.4.4 TransientFailure that names the pool, and opens no connection.
func TestUnknownPoolIsTransient(t *testing.T) {
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: week, EgressPool: "nope"}, func(o *Options) {
		o.Pools = map[string]Pool{"p": {{"a", 1}}}
	})
	m := h.submit(1)[0]
	r := h.waitRecords("TransientFailure", m.ID, 1)[0]
	resp := r["response"].(map[string]any)
	if resp["code"] != float64(451) || !strings.Contains(resp["content"].(string), `egress pool "nope" is not configured`) || r["egress_pool"] != "nope" {
		t.Fatalf("record %v", r)
	}
	if got, ok := h.store.get(m.ID); !ok || got.Attempts != 1 {
		t.Fatalf("message in the spool: %v %+v", ok, got)
	}
	if c, _, _, _ := h.dialer.stats(); c != 0 {
		t.Fatalf("%d connections for an unknown pool", c)
	}
}
