package queue

import (
	"maps"
	"sync"

	"github.com/wasmta/wasmta/host/message"
)

// Messages being attempted. Between a connection taking a message from its ready queue and the
// attempt's outcome, the message is in neither the timer heap nor a ready queue; the admin API
// still has to see it (inspect shows it "delivering") and act on it predictably: a rebind asked
// for meanwhile is applied when the attempt ends, unless the attempt delivered or bounced it,
// and a bounce rule in force then bounces it at once. The registry costs one short lock when an
// attempt begins and one when it ends.

// flight is a message being attempted.
type flight struct {
	id   message.ID
	msg  *message.Message // read-only while in flight: the connection reads it, nothing writes it
	site string           // the ready queue whose connection attempts it
	// rebinds are rebinds asked for during the attempt, applied in order when it ends
	// (landed), if the message is still queued then.
	rebinds []RebindRequest
}

// flights is the registry of messages being attempted, by id.
type flights struct {
	mu sync.Mutex
	m  map[message.ID]*flight
}

// fly registers msg as being attempted by a connection of site. Nothing may write msg until
// land: admin readers copy it under the registry's lock.
func (m *Manager) fly(msg *message.Message, site string) *flight {
	f := &flight{id: msg.ID, msg: msg, site: site}
	m.flying.mu.Lock()
	if m.flying.m == nil {
		m.flying.m = map[message.ID]*flight{}
	}
	m.flying.m[msg.ID] = f
	m.flying.mu.Unlock()
	return f
}

// landed ends f if it is still in flight (an outcome that did not go through land: a panic,
// a path that requeued the message without a record). It never ends a later flight of the
// same message: once landed, the message may be requeued and attempted again at once.
func (m *Manager) landed(f *flight) {
	m.flying.mu.Lock()
	if m.flying.m[f.id] == f {
		delete(m.flying.m, f.id)
	}
	m.flying.mu.Unlock()
}

// land ends msg's flight (the attempt is over; from now on its owner may change it) and returns
// the rebinds asked for meanwhile. Landing a message not in flight returns nothing.
func (m *Manager) land(id message.ID) []RebindRequest {
	m.flying.mu.Lock()
	defer m.flying.mu.Unlock()
	f, ok := m.flying.m[id]
	if !ok {
		return nil
	}
	delete(m.flying.m, id)
	return f.rebinds
}

// eachFlight calls f for every message in flight, under the registry's lock: f must not keep
// the message, and may write only the flight's rebinds.
func (m *Manager) eachFlight(f func(*flight)) {
	m.flying.mu.Lock()
	defer m.flying.mu.Unlock()
	for _, fl := range m.flying.m {
		f(fl)
	}
}

// copyOf is a copy of msg an admin caller may keep (its meta map is its own).
func copyOf(msg *message.Message) message.Message {
	c := *msg
	c.Meta = maps.Clone(msg.Meta)
	return c
}
