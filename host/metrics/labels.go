package metrics

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MaxLabelValues is how many distinct values one label (queue, site, plugin, route) keeps; the
// rest are folded into Other. A relay delivering to the whole internet sees a queue and a site
// per recipient domain: without a cap every new domain would add series forever (Prometheus
// keeps each in memory, and every scrape carries them all). With 100, the events metrics have
// at most 101 × 5 series each and a scrape stays around 100 KB; the busy destinations an
// operator watches are among the first seen, and the long tail is still counted, as Other.
const MaxLabelValues = 100

// Other is the label value the values beyond MaxLabelValues are folded into.
const Other = "other"

// maxLabelLen bounds one label value in bytes: a site named after a long list of MX hosts
// would otherwise make every series of it that long.
const maxLabelLen = 200

// cowMap is a read-mostly map: a lookup is an atomic load and a map read, with no lock and no
// write to shared memory, so observers on many goroutines do not contend; an addition copies the
// map, which happens at most a cap's number of times.
type cowMap[K comparable, V any] struct {
	mu sync.Mutex // serializes additions
	p  atomic.Pointer[map[K]V]
}

func (c *cowMap[K, V]) get(k K) (V, bool) {
	if m := c.p.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

func (c *cowMap[K, V]) len() int {
	if m := c.p.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// add maps k to mk() unless k is already there (then it returns what k maps to) or the map
// already has max entries (then ok is false).
func (c *cowMap[K, V]) add(k K, max int, mk func() V) (v V, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := map[K]V{}
	if m := c.p.Load(); m != nil {
		old = *m
	}
	if v, ok := old[k]; ok {
		return v, true
	}
	if len(old) >= max {
		return v, false
	}
	next := make(map[K]V, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	v = mk()
	next[k] = v
	c.p.Store(&next)
	return v, true
}

// labelCap admits the first max distinct values of a counter's label and folds the later ones
// into Other. Admitted values stay for the process's life: a counter series must not vanish
// (its rate would break), so first come first served is the only fair rule for counters.
type labelCap struct {
	max int
	m   cowMap[string, string] // raw value -> label value
}

func newLabelCap(max int) *labelCap { return &labelCap{max: max} }

// label is the label value to count v under.
func (c *labelCap) label(v string) string {
	if l, ok := c.m.get(v); ok {
		return l
	}
	if c.m.len() >= c.max { // full for good: the map never shrinks
		return Other
	}
	if l, ok := c.m.add(v, c.max, func() string { return clean(v) }); ok {
		return l
	}
	return Other
}

// clean makes v a valid label value: Prometheus refuses invalid UTF-8 (client_golang panics),
// and queue names can carry any bytes a plugin put in meta. Long values are cut.
func clean(v string) string {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	if len(v) > maxLabelLen {
		cut := maxLabelLen
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut] + "…"
	}
	return v
}

// labelled is one gauge value with its label.
type labelled struct {
	label string
	n     int
}

// topN turns counts by name into at most n series: the n largest (ties by name, so a scrape is
// stable), plus Other with the sum of the rest (always present, 0 when nothing was folded, so
// that sum() over the gauge is defined even on an empty relay). Gauges may change labels from
// one scrape to the next, so they show the largest now rather than the first seen.
func topN(counts map[string]int, n int) []labelled {
	merged := make(map[string]int, len(counts))
	for k, v := range counts {
		merged[clean(k)] += v
	}
	var other int
	if c, ok := merged[Other]; ok { // a queue really named "other" joins the folded ones
		other = c
		delete(merged, Other)
	}
	all := make([]labelled, 0, len(merged))
	for k, v := range merged {
		all = append(all, labelled{k, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].label < all[j].label
	})
	if len(all) > n {
		for _, l := range all[n:] {
			other += l.n
		}
		all = all[:n]
	}
	return append(all, labelled{Other, other})
}
