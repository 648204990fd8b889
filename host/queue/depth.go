package queue

// Depths is a snapshot of what waits where, for metrics.
type Depths struct {
	// Scheduled counts, by queue name, the messages waiting for their next attempt (the retry
	// timer). Messages being dispatched, in a ready queue or on a connection are not in it.
	Scheduled map[string]int
	// Ready counts, by site name, the messages waiting for a connection of that site.
	Ready map[string]int
	// Connections is the number of open outgoing connections.
	Connections int
}

// Depths walks the retry timer and the ready queues. It costs time in the number of waiting
// messages (a million take tens of milliseconds, during which retries wait to be scheduled), so
// it is meant for a scrape every few seconds, never for the delivery path.
func (m *Manager) Depths() Depths {
	d := Depths{Scheduled: map[string]int{}, Ready: map[string]int{}}
	m.timers.mu.Lock()
	for i := range m.timers.h {
		d.Scheduled[m.timers.h[i].q.name]++
	}
	m.timers.mu.Unlock()
	m.readyMu.Lock()
	for name, rq := range m.ready {
		rq.mu.Lock()
		if n := len(rq.items); n > 0 {
			d.Ready[name] = n
		}
		rq.mu.Unlock()
	}
	m.readyMu.Unlock()
	m.stopMu.Lock()
	d.Connections = len(m.conns)
	m.stopMu.Unlock()
	return d
}
