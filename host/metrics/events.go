package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmta/wasmta/host/logs"
)

// event is a delivery outcome, as counted by queue and by site.
type event int

const (
	delivered event = iota
	transientFailure
	bounced
	expired
	adminBounced
	numEvents
)

var eventNames = [numEvents]string{"delivered", "transient_failure", "bounced", "expired", "admin_bounced"}

// eventOf maps a log record type to the event it counts.
func eventOf(typ string) (event, bool) {
	switch typ {
	case logs.Delivery:
		return delivered, true
	case logs.TransientFailure:
		return transientFailure, true
	case logs.Bounce:
		return bounced, true
	case logs.Expiration:
		return expired, true
	case logs.AdminBounce:
		return adminBounced, true
	}
	return 0, false
}

// eventCounters counts events by one capped label (queue or site). The counters of a label
// value are looked up once, when the value is first seen, with all its events at 0 (so a rate
// over any of them is defined from the start); after that an event costs a lock-free map read
// and an atomic add.
type eventCounters struct {
	vec   *prometheus.CounterVec // labels: the capped one, then "event"
	max   int
	m     cowMap[string, *[numEvents]prometheus.Counter]
	other *[numEvents]prometheus.Counter
}

func newEventCounters(vec *prometheus.CounterVec, max int) *eventCounters {
	e := &eventCounters{vec: vec, max: max}
	e.other = e.children(Other)
	return e
}

func (e *eventCounters) children(label string) *[numEvents]prometheus.Counter {
	var c [numEvents]prometheus.Counter
	for i := range c {
		c[i] = e.vec.WithLabelValues(label, eventNames[i])
	}
	return &c
}

func (e *eventCounters) inc(v string, ev event) {
	c, ok := e.m.get(v)
	if !ok {
		c = e.other
		if e.m.len() < e.max {
			if a, ok := e.m.add(v, e.max, func() *[numEvents]prometheus.Counter { return e.children(clean(v)) }); ok {
				c = a
			}
		}
	}
	c[ev].Inc()
}
