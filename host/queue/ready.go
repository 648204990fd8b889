package queue

import (
	"errors"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// item is a message on its way through a ready queue, with the config of its scheduled queue.
type item struct {
	msg  *message.Message
	cfg  Config
	pool string // the egress pool the ready queue's source was picked from; "" for none
}

// readyQueue is the FIFO of one egress source and site. It opens connections on demand, up to
// the connection limit: a new one whenever a message arrives and no connection is idle.
type readyQueue struct {
	m      *Manager
	name   string // readyQueueName(source, site)
	site   string // the bare site, which [[egress.path]] and get_egress_path_config see
	source string // the egress source; "" for none

	mu     sync.Mutex
	items  []*item
	hosts  []route.Host
	active int // connection goroutines
	idle   int // of those, waiting for a message and not woken for one: len(idlers)
	// idlers are the connections waiting for a message, the one idle the shortest time last:
	// it is woken first (as net/http reuses its idle connections), so the ones a burst left
	// over age and close after the idle timeout instead of taking turns for ever.
	idlers   []*idler
	stopping bool
	last     string    // the last delivery attempt's response, for the admin summary
	lastAt   time.Time // when it came

	pathMu   sync.Mutex // one refreshPath fetch at a time
	path     Path       // the site's egress path (see refreshPath)
	hasPath  bool       // path was set at least once
	pathAt   time.Time  // when path was fetched
	msgRate  *bucket    // path.MaxMessageRate; nil: unlimited
	connRate *bucket    // path.MaxConnectionRate; nil: unlimited
	// permits are the connections opened under fail_open while the cluster's store did not
	// answer: at most the connection limit divided by the node count (see admit).
	permits int
	usedAt  time.Time // the last push (or creation): sweepReady drops queues idle long enough

	// pins counts dispatches between Manager.readyQueue and their push: a pinned queue is
	// never dropped, so no message is pushed onto a queue no longer listed. It is raised under
	// m.readyMu (so a sweep holding it cannot miss a new pin) and lowered without it.
	pins atomic.Int32
}

func newReadyQueue(m *Manager, site, source string) *readyQueue {
	return &readyQueue{m: m, name: readyQueueName(source, site), site: site, source: source, usedAt: m.opt.Clock.Now()}
}

// at is where an attempt of it through rq happens, for its log record.
func (rq *readyQueue) at(it *item) place { return place{rq.name, it.pool, rq.source} }

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
	rq.usedAt = rq.m.opt.Clock.Now()
	// A connection is woken for one message only: it leaves idlers at once, so that a
	// message arriving before it ran finds no idle connection and opens one of its own.
	if n := len(rq.idlers); n > 0 {
		w := rq.idlers[n-1]
		rq.idlers[n-1] = nil
		rq.idlers = rq.idlers[:n-1]
		rq.idle = len(rq.idlers)
		w.wake()
		return
	}
	if rq.active < rq.limit() && rq.m.spawn(rq.work) {
		rq.active++
	}
}

// limit is the path's connection limit. rq.mu must be held.
func (rq *readyQueue) limit() int {
	if rq.hasPath && rq.path.ConnectionLimit > 0 {
		return rq.path.ConnectionLimit
	}
	return rq.m.opt.ConnectionLimit
}

// spawnMore starts connections for waiting messages, up to the limit.
func (rq *readyQueue) spawnMore() {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	for n := len(rq.items); n > 0 && rq.idle == 0 && !rq.stopping && rq.active < rq.limit() && rq.m.spawn(rq.work); n-- {
		rq.active++
	}
}

func (rq *readyQueue) stop() {
	rq.mu.Lock()
	rq.stopping = true
	for _, w := range rq.idlers {
		w.wake()
	}
	clear(rq.idlers)
	rq.idlers, rq.idle = rq.idlers[:0], 0
	rq.mu.Unlock()
}

// leaseCheck is how often an idle connection holding a lease looks whether it was lost.
const leaseCheck = 250 * time.Millisecond

// take returns the next message, waiting up to the idle timeout for one when wait is set. On
// nil the caller's connection slot has been released (in the same critical section, so push
// never counts a leaving worker). An idle connection whose lease is lost (lease non-nil) stops
// waiting: its place may be another node's by now (Redis restarted empty or was flushed, or
// stayed away for a whole lease TTL), and an idle connection is one the destination counts.
func (rq *readyQueue) take(wait bool, lease Lease) *item {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if wait && len(rq.items) == 0 && !rq.stopping {
		idle := rq.idleTimeout()
		clock := rq.m.opt.Clock
		deadline := clock.Now().Add(idle)
		w := &idler{c: make(chan struct{}, 1)}
		t := clock.AfterFunc(idle, w.wake)
		defer t.Stop()
		for len(rq.items) == 0 && !rq.stopping && clock.Now().Before(deadline) {
			if lease != nil && lease.Lost() {
				break
			}
			rq.idlers = append(rq.idlers, w)
			rq.idle = len(rq.idlers)
			rq.mu.Unlock()
			var check Timer
			if lease != nil {
				check = clock.AfterFunc(leaseCheck, w.wake)
			}
			<-w.c
			if check != nil {
				check.Stop()
			}
			rq.mu.Lock()
			// Still listed when the idle timeout woke it (a push takes it off, stop clears all).
			if i := slices.Index(rq.idlers, w); i >= 0 {
				rq.idlers = slices.Delete(rq.idlers, i, i+1)
				rq.idle = len(rq.idlers)
			}
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

// idler is a connection waiting in take.
type idler struct{ c chan struct{} } // capacity 1: a wake-up is never lost nor blocks

func (w *idler) wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
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

// extract removes the waiting messages that match (an admin operation takes them over).
func (rq *readyQueue) extract(match func(*message.Message) bool) []*item {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	var out []*item
	keep := rq.items[:0]
	for _, it := range rq.items {
		if match(it.msg) {
			out = append(out, it)
		} else {
			keep = append(keep, it)
		}
	}
	clear(rq.items[len(keep):])
	rq.items = keep
	return out
}

// note records the response of an attempt for the admin summary.
func (rq *readyQueue) note(reply message.Reply, err error) {
	if err != nil {
		reply = message.AsError(err).Reply
	}
	now := rq.m.opt.Clock.Now()
	rq.mu.Lock()
	rq.last, rq.lastAt = reply.String(), now
	rq.mu.Unlock()
}

// worker is one connection goroutine's state.
type worker struct {
	rq       *readyQueue
	conn     Conn
	dialer   Dialer // the one conn was made with
	used     bool   // conn carried a transaction (delivered or refused): see deliver
	released bool   // the connection slot was given back (drainAndRelease)
	lease    Lease  // conn's place under a shared connection limit; nil: none
	permit   bool   // conn holds one of rq.permits
}

// A connection to a site with a shared connection limit needs a place (a lease) in the
// cluster; without a cluster the connection goroutines are the count (push, spawnMore). A
// worker gets its place before it takes a message (ready), so that while it waits it holds
// no message back from the connections this node has open.

// tryAdmit makes one try for a place under the site's connection limit. When the cluster's
// store does not answer, w takes a local share of the limit (fail_open: the limit divided by
// the node count last seen, rounded up) or gets nothing (fail_closed). On failure it says how
// long to wait before the next try.
func (w *worker) tryAdmit() (ok bool, wait time.Duration) {
	rq, m := w.rq, w.rq.m
	s := m.opt.Shared
	if s == nil || w.lease != nil || w.permit {
		return true, 0
	}
	rq.mu.Lock()
	limit := rq.limit()
	rq.mu.Unlock()
	l, err := s.Acquire(m.ctx, rq.name, limit)
	if err == nil && l != nil {
		w.lease = l
		return true, 0
	}
	if err == nil || m.ctx.Err() != nil {
		return false, spread(leaseWait)
	}
	n := s.FallbackNodes()
	if n <= 0 {
		return false, spread(unavailableWait)
	}
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if rq.permits < (limit+n-1)/n {
		rq.permits++
		w.permit = true
		return true, 0
	}
	return false, spread(leaseWait)
}

// admit waits for a place (tryAdmit); false when the queue stops first.
func (w *worker) admit() bool {
	for {
		ok, wait := w.tryAdmit()
		if ok {
			return true
		}
		if !w.rq.m.sleep(w.rq.m.ctx, wait) {
			return false
		}
	}
}

// ready waits for a place for w's next connection while messages wait for one. It reports
// false, having given up w's connection slot (as take does), when none waits any more or the
// queue stops.
func (w *worker) ready() bool {
	rq, m := w.rq, w.rq.m
	if w.conn != nil || m.opt.Shared == nil {
		return true
	}
	for {
		rq.mu.Lock()
		if len(rq.items) == 0 || rq.stopping {
			rq.active--
			rq.mu.Unlock()
			w.leave()
			return false
		}
		rq.mu.Unlock()
		ok, wait := w.tryAdmit()
		if ok {
			return true
		}
		if !m.sleep(m.ctx, wait) {
			rq.mu.Lock()
			rq.active--
			rq.mu.Unlock()
			return false
		}
	}
}

// leave gives back w's place under the connection limit (its connection closed).
func (w *worker) leave() {
	if w.lease != nil {
		w.lease.Release()
		w.lease = nil
	}
	if w.permit {
		w.permit = false
		w.rq.mu.Lock()
		w.rq.permits--
		w.rq.mu.Unlock()
	}
}

// dialer is the dialer of rq's path now.
func (rq *readyQueue) dialer() Dialer {
	rq.mu.Lock()
	d := rq.path.Dialer
	rq.mu.Unlock()
	if d == nil {
		d = rq.m.opt.Dialer
	}
	return d
}

// sameDialer compares dialers without panicking on a type that cannot be compared (such a
// dialer is never "the same": its connections are replaced at each path refresh).
func sameDialer(a, b Dialer) bool {
	if a == nil || b == nil {
		return a == b
	}
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

// work is one connection's life: take messages, deliver them, reconnect when needed. Each
// message is delivered inside a recover boundary: a panic (in the dialer, the connection, the
// spool) drops the connection, fails that message transiently so it is retried, and the
// worker goes on with the next one.
func (rq *readyQueue) work() {
	m := rq.m
	w := &worker{rq: rq}
	defer func() {
		if w.conn != nil {
			m.guard("closing a connection", nil, w.hangUp)
		}
		if w.lease != nil || w.permit {
			m.guard("releasing a connection's place", nil, w.leave)
		}
	}()
	for {
		if !w.ready() {
			return
		}
		// Without a connection a worker does not wait for messages: among the idle ones it
		// could be woken instead of one whose connection is open, and open a connection the
		// site did not need; in a cluster its place would also be kept from the other nodes.
		// The next message that finds no idle connection starts a worker again (push).
		it := rq.take(w.conn != nil, w.lease)
		if it == nil {
			return
		}
		settled, exit := false, false
		if m.guard("delivery to "+rq.name, it.msg, func() { exit = w.deliver(it, &settled) }) {
			if w.conn != nil {
				c := w.conn
				w.conn = nil
				m.track(c, false)
				m.guard("aborting a connection", nil, c.Abort)
			}
			m.guard("releasing a connection's place", nil, w.leave)
			if !settled {
				m.failSafely(it.msg, it.cfg, rq.at(it))
			}
			exit = w.released
		}
		if exit {
			return
		}
	}
}

func (w *worker) connect() error {
	rq, m := w.rq, w.rq.m
	rq.mu.Lock()
	hosts, dialer, connRate := rq.hosts, rq.path.Dialer, rq.connRate
	rq.mu.Unlock()
	if dialer == nil {
		dialer = m.opt.Dialer
	}
	// A place under a shared connection_limit, then max_connection_rate: wait for this
	// connection's turn. The worker holds one message meanwhile; the connection limit bounds
	// how many wait.
	if !w.admit() {
		return errStopping
	}
	if !m.waitSlot(m.ctx, connRate) {
		w.leave()
		return errStopping
	}
	c, err := dialer.Connect(m.ctx, hosts)
	if err != nil {
		w.leave()
		return err
	}
	w.conn, w.dialer, w.used = c, dialer, false
	m.track(c, true)
	return nil
}

// hangUp closes the connection, then gives its place back (in that order, so the peer never
// sees one connection more than the limit).
func (w *worker) hangUp() {
	c := w.conn
	w.conn = nil
	w.rq.m.track(c, false)
	c.Close()
	w.leave()
}

// deliver makes one attempt at it. settled is set just before the message's outcome is
// recorded: from then on the message belongs to the spool and the timers, and a panic must not
// schedule it a second time. exit reports that the worker gave up its slot and must end.
func (w *worker) deliver(it *item, settled *bool) (exit bool) {
	rq, m := w.rq, w.rq.m
	if m.storeFailed() { // see storeFailed: its outcome could not be recorded
		*settled = true
		m.park(it.msg)
		return false
	}
	// An admin rule added while the message waited here applies before any connection.
	if m.intercept(it.msg, rq.name) {
		*settled = true
		return false
	}
	// From here until its outcome the message is in no queue: the admin API finds it in
	// flight. Every outcome lands it first (outcomeTLS); this covers the rest. A panic before
	// the outcome leaves the flight to failSafely, which applies its rebinds.
	f := m.fly(it.msg, rq.name)
	defer func() {
		if *settled {
			m.landed(f)
		}
	}()
	if w.conn != nil && !sameDialer(w.dialer, rq.dialer()) {
		// The path's transport changed (a reload, a refresh): TLS mode, credentials, EHLO name
		// or source address of this connection are no longer the path's.
		w.hangUp()
	}
	if w.conn != nil && w.lease != nil && w.lease.Lost() {
		w.hangUp() // its place may be another node's by now (an idle connection's lease ran out)
	}
	if w.conn == nil {
		if err := w.connect(); err != nil {
			if m.ctx.Err() != nil {
				// Stopping cut the wait for a connection short: nothing was attempted, so the
				// messages stay in the spool as they are (no record, no attempt counted, no
				// retry time pushed back) for the next start.
				rq.drainAndRelease()
				w.released = true
				*settled = true
				return true
			}
			rq.note(message.Reply{}, err)
			// Every host of the site failed: that is the fate of every message waiting
			// for this site right now, not only this one.
			rest := rq.drainAndRelease()
			w.released = true
			*settled = true
			for _, o := range append([]*item{it}, rest...) {
				m.guard("recording a failed connection", o.msg, func() {
					m.outcome(o, rq.at(o), nil, message.Reply{}, err)
				})
			}
			return true
		}
	}
	body, err := m.opt.Store.Body(it.msg)
	if err != nil {
		m.opt.Diag.Error("spool read failed", "id", it.msg.ID, "err", err)
		*settled = true
		if errors.Is(err, message.ErrNotInSpool) {
			m.land(it.msg.ID) // the rebinds asked for meanwhile go with it
			// Retrying cannot bring it back: end it with a record instead of retrying
			// until max_age.
			m.bounce(it.msg, errBodyLost.Wrap(err), rq.at(it), nil)
			return false
		}
		m.outcome(it, rq.at(it), nil, message.Reply{}, message.Errorf(451, "4.3.0", "spool read failed").Wrap(err))
		return false
	}
	// Reused: it carried a transaction before, refused or not (Sent counts deliveries only).
	reused := w.used
	w.used = true
	reply, err := w.conn.Send(it.msg.Sender, it.msg.Recipient, it.msg.DSN, body)
	if e := message.AsError(err); err != nil && reused && w.conn.Broken() && e.Temporary() && e.Reply.Command != "." && m.ctx.Err() == nil {
		// A cached connection the server dropped while idle (or closed with 421) says
		// nothing about this message: try it once on a fresh connection, as Postfix does.
		// A 5xx is an answer about the message, even when the server hung up after it
		// (as many do after a spam verdict): it is not sent again. Nor is a message whose
		// content went out whole and whose final reply was lost (command "."): the server
		// may have taken it, and a retry now would be a second copy in one attempt.
		w.hangUp()
		if err = w.connect(); err == nil {
			w.used = true
			reply, err = w.conn.Send(it.msg.Sender, it.msg.Recipient, it.msg.DSN, body)
		}
	}
	var peer *route.Host
	var tls *logs.TLS
	hopDSN := true
	if w.conn != nil {
		h := w.conn.Host()
		peer, tls = &h, w.conn.TLSInfo()
		if d, ok := w.conn.(DSNOfferer); ok {
			hopDSN = d.OffersDSN()
		}
	}
	*settled = true
	rq.note(reply, err)
	m.outcomeTLS(it, rq.at(it), peer, tls, reply, err, hopDSN)
	rq.mu.Lock()
	maxSent := rq.path.MaxDeliveriesPerConnection
	rq.mu.Unlock()
	if maxSent <= 0 {
		maxSent = m.opt.MaxDeliveriesPerConnection
	}
	if w.conn != nil && (w.conn.Broken() || w.conn.Sent() >= maxSent || (w.lease != nil && w.lease.Lost())) {
		// A lost lease (it expired while the cluster's store was away) may be another
		// node's place by now: this connection ends here, the next one asks again.
		w.hangUp()
	}
	return false
}

// errStopping fails a connection attempt cut short by shutdown; the message stays spooled.
var errStopping = message.Errorf(451, "4.3.2", "shutting down")

var errBodyLost = message.Errorf(550, "5.3.0", "message body missing from the spool")

// readyIdleLimit is how long a ready queue with nothing to do (no message, no connection, no
// rate booking ahead) stays listed: long enough for the admin summary to show its last
// response, short enough that a relay which has delivered to a million sites does not keep a
// million queues.
const readyIdleLimit = 10 * time.Minute

// sweepReady drops the ready queues idle for readyIdleLimit and reports how many. A message
// for a dropped site later gets a fresh queue: nothing it held (a connection, a lease, a
// booked rate slot, a message) is lost, because an idle queue holds none.
func (m *Manager) sweepReady(now time.Time) int {
	m.readyMu.Lock()
	defer m.readyMu.Unlock()
	n := 0
	for name, rq := range m.ready {
		if rq.pins.Load() > 0 {
			continue
		}
		rq.mu.Lock()
		idle := rq.active == 0 && len(rq.items) == 0 && rq.permits == 0 && !rq.stopping &&
			now.Sub(rq.usedAt) >= readyIdleLimit
		msgRate, connRate := rq.msgRate, rq.connRate
		rq.mu.Unlock()
		if idle && msgRate.idle(now) && connRate.idle(now) {
			delete(m.ready, name)
			n++
		}
	}
	return n
}
