package queue

import (
	"errors"
	"sync"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/spool"
)

// item is a message on its way through a ready queue, with the config of its scheduled queue.
type item struct {
	msg *message.Message
	cfg Config
}

// readyQueue is the FIFO of one site. It opens connections on demand, up to the connection
// limit: a new one whenever a message arrives and no connection is idle.
type readyQueue struct {
	m    *Manager
	name string

	mu       sync.Mutex
	cond     *sync.Cond
	items    []*item
	hosts    []route.Host
	active   int // connection goroutines
	idle     int // of those, waiting for a message
	stopping bool
}

func newReadyQueue(m *Manager, name string) *readyQueue {
	rq := &readyQueue{m: m, name: name}
	rq.cond = sync.NewCond(&rq.mu)
	return rq
}

func (rq *readyQueue) setHosts(h []route.Host) {
	rq.mu.Lock()
	rq.hosts = h
	rq.mu.Unlock()
}

func (rq *readyQueue) push(it *item) {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if rq.stopping {
		return // shutting down: the message stays in the spool for the next start
	}
	rq.items = append(rq.items, it)
	if rq.idle > 0 {
		rq.cond.Signal()
		return
	}
	if rq.active < rq.m.opt.ConnectionLimit && rq.m.spawn(rq.work) {
		rq.active++
	}
}

func (rq *readyQueue) stop() {
	rq.mu.Lock()
	rq.stopping = true
	rq.cond.Broadcast()
	rq.mu.Unlock()
}

// take returns the next message, waiting up to idle for one. On nil the caller's connection
// slot has been released (in the same critical section, so push never counts a leaving worker).
func (rq *readyQueue) take(idle time.Duration) *item {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if len(rq.items) == 0 && !rq.stopping {
		deadline := time.Now().Add(idle)
		t := time.AfterFunc(idle, func() {
			rq.mu.Lock()
			rq.cond.Broadcast()
			rq.mu.Unlock()
		})
		defer t.Stop()
		for len(rq.items) == 0 && !rq.stopping && time.Now().Before(deadline) {
			rq.idle++
			rq.cond.Wait()
			rq.idle--
		}
	}
	if len(rq.items) == 0 || rq.stopping {
		rq.active--
		return nil
	}
	it := rq.items[0]
	rq.items[0] = nil
	rq.items = rq.items[1:]
	return it
}

// drainAndRelease removes every waiting message (after a connection failure that concerns
// them all) and gives up the caller's connection slot, in one critical section: a push in
// between would see the slot taken, start no worker, and strand its message.
func (rq *readyQueue) drainAndRelease() []*item {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	out := rq.items
	rq.items = nil
	rq.active--
	return out
}

// work is one connection's life: take messages, deliver them, reconnect when needed.
func (rq *readyQueue) work() {
	m := rq.m
	var conn Conn
	connect := func() error {
		rq.mu.Lock()
		hosts := rq.hosts
		rq.mu.Unlock()
		c, err := m.opt.Dialer.Connect(m.ctx, hosts)
		if err == nil {
			conn = c
			m.track(c, true)
		}
		return err
	}
	hangUp := func() {
		m.track(conn, false)
		conn.Close()
		conn = nil
	}
	defer func() {
		if conn != nil {
			hangUp()
		}
	}()
	for {
		it := rq.take(m.opt.IdleTimeout)
		if it == nil {
			return
		}
		if conn == nil {
			if err := connect(); err != nil {
				// Every host of the site failed: that is the fate of every message waiting
				// for this site right now, not only this one.
				rest := rq.drainAndRelease()
				m.outcome(it, rq.name, nil, message.Reply{}, err)
				for _, o := range rest {
					m.outcome(o, rq.name, nil, message.Reply{}, err)
				}
				return
			}
		}
		body, err := m.opt.Store.Body(it.msg)
		if err != nil {
			m.opt.Diag.Error("spool read failed", "id", it.msg.ID, "err", err)
			if errors.Is(err, spool.ErrNotFound) {
				// Retrying cannot bring it back: end it with a record instead of retrying
				// until max_age.
				m.bounce(it.msg, errBodyLost.Wrap(err), rq.name, nil)
				continue
			}
			m.outcome(it, rq.name, nil, message.Reply{}, message.Errorf(451, "4.3.0", "spool read failed").Wrap(err))
			continue
		}
		reused := conn.Sent() > 0
		reply, err := conn.Send(it.msg.Sender, it.msg.Recipient, body)
		if err != nil && reused && conn.Broken() && m.ctx.Err() == nil {
			// A cached connection the server dropped while idle (or closed with 421) says
			// nothing about this message: try it once on a fresh connection, as Postfix does.
			hangUp()
			if err = connect(); err == nil {
				reply, err = conn.Send(it.msg.Sender, it.msg.Recipient, body)
			}
		}
		var peer *route.Host
		if conn != nil {
			h := conn.Host()
			peer = &h
		}
		m.outcome(it, rq.name, peer, reply, err)
		if conn != nil && (conn.Broken() || conn.Sent() >= m.opt.MaxDeliveriesPerConnection) {
			hangUp()
		}
	}
}

var errBodyLost = message.Errorf(550, "5.3.0", "message body missing from the spool")
