// Package queue moves spooled messages to delivery: scheduled queues (one per queue name, with
// their config, retry and expiry rules) feed ready queues (one per site), whose connections
// deliver. A message is owned by exactly one place at a time — the timer heap, a dispatching
// goroutine, a ready queue or a connection — so its scheduling state needs no lock. On the
// timer heap a message waiting for a retry is held in brief, its record left to the spool
// until it comes due (timers.go), so that a large queue costs little memory.
//
// Outcomes follow design.md §1 and §5: 2xx Delivery (removed), 5xx Bounce (removed), 4xx or
// transport trouble TransientFailure (rescheduled with exponential backoff and jitter), and
// Expiration (551 5.4.7) when the next attempt would fall after max_age.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// Config is a scheduled queue's configuration (design.md §5).
type Config struct {
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration // 0: no cap
	MaxAge           time.Duration
	MXList           []route.MXEntry
	// MaxMessageRate throttles the queue's messages on their way to a ready queue (KumoMTA's
	// queue max_message_rate); zero: unlimited.
	MaxMessageRate abi.Rate
	// EgressPool names the pool (Options.Pools) whose sources the messages leave from;
	// "" or "unspecified": the built-in pool, no source.
	EgressPool string
}

// ConfigSource yields a scheduled queue's config; the plugin layer's get_queue_config
// implements it. An error leaves the message queued and retried.
type ConfigSource interface {
	QueueConfig(ctx context.Context, name string, c route.Components) (Config, error)
}

// Static is a ConfigSource that gives every queue the same config.
type Static Config

func (s Static) QueueConfig(context.Context, string, route.Components) (Config, error) {
	return Config(s), nil
}

// Resolver turns a destination (routing domain or domain) or an mx_list into a site.
type Resolver interface {
	Resolve(ctx context.Context, destination string, mxList []route.MXEntry) (route.Site, error)
}

// Conn is one outgoing SMTP connection.
type Conn interface {
	// Send delivers one message; dsn (nil: none) is passed on to a server that offers DSN.
	Send(sender, rcpt string, dsn *message.DSN, body []byte) (message.Reply, error)
	Host() route.Host
	Broken() bool
	Sent() int
	Close()
	// Abort closes the connection at once; safe while another goroutine is in Send.
	Abort()
	// TLSInfo describes the connection's TLS session for log records; nil in plain text.
	TLSInfo() *logs.TLS
}

// Dialer opens a connection to the first reachable host.
type Dialer interface {
	Connect(ctx context.Context, hosts []route.Host) (Conn, error)
}

// Store is the durable spool.
type Store interface {
	// PutBatches stores every batch (each one body and the messages sharing it) atomically:
	// all or none, synced before it returns.
	PutBatches(batches []message.Batch) error
	Update(m *message.Message) error
	Delete(m *message.Message) error
	Body(m *message.Message) ([]byte, error)
	// Get reads a message's record (message.ErrNotInSpool when there is none). It must see
	// every Update sent before it: a message waiting for its retry is held in brief (see
	// entry) and read again when it comes due.
	Get(id message.ID) (*message.Message, error)
}

// Failer is what a Store may also be: one that can fail for good (a write whose outcome on
// disk is uncertain) and then refuses every write until a restart. Failed is nil until then;
// it must be cheap, as it is asked before every attempt.
type Failer interface {
	Failed() error
}

// Options wire a Manager.
type Options struct {
	Store    Store
	Resolver Resolver
	Dialer   Dialer
	Configs  ConfigSource
	// Paths gives each site its egress path; nil: every site gets ConnectionLimit,
	// MaxDeliveriesPerConnection and Dialer, unthrottled.
	Paths PathSource
	// Defaults is the server-wide queue config, used when Configs fails.
	Defaults Config
	Log      *logs.Logger
	Diag     *slog.Logger

	ConnectionLimit            int           // per site, default 32
	MaxDeliveriesPerConnection int           // default 1024
	IdleTimeout                time.Duration // idle connection kept this long, default 5s
	RefreshInterval            time.Duration // queue config re-read after this, default 1m
	ResolveTimeout             time.Duration // default 30s

	// Clock is the source of time (retry timers, idle connections, expiry); real time when nil.
	Clock Clock

	// Pools are the egress pools a queue config may name, besides the built-in
	// "unspecified"; each source is picked by smooth weighted round robin, per attempt.
	Pools map[string]Pool

	// Shared makes the rate and connection limits hold for a whole cluster (rate.go); nil:
	// every limit is this node's.
	Shared SharedLimits

	// Rules keeps the admin API's suspensions and bounce rules across restarts; nil keeps
	// them in memory only.
	Rules RuleStore

	// OnFailure, when set, is called as a message bounces or expires, before its spool entry
	// is removed (so its body can still be read), on the goroutine that ended it; delivery
	// status notifications hang here. Admin bounces do not call it. An error says the
	// notification could not be spooled (no spool space): the message then stays spooled,
	// marked failed (message.Failed), is not attempted again, and OnFailure is called again
	// after a retry's wait, with the usual backoff, until it returns nil (see holdForNotice).
	OnFailure func(msg *message.Message, f Failure) error

	// OnRelayed, when set, is called as a message whose client asked for NOTIFY=SUCCESS is
	// delivered to a next hop that does not offer DSN (its Conn says so, see DSNOfferer):
	// that hop will not report the delivery, so the relay must send the sender a "relayed" DSN
	// (RFC 3461 §5.2.2). It runs before the message's spool entry is removed, on the goroutine
	// that delivered it.
	OnRelayed func(msg *message.Message, r Relayed)
}

// Relayed is a delivery to a next hop without DSN, for Options.OnRelayed.
type Relayed struct {
	Reply message.Reply // the next hop's reply to the end of data
	Site  string
	Peer  *route.Host // the host that gave Reply
}

// DSNOfferer is what a Conn may also be: one that tells whether its server offers the DSN
// extension (RFC 3461). A Conn that is not one is taken to offer it (no relayed DSN is sent).
type DSNOfferer interface {
	OffersDSN() bool
}

// wantsSuccessDSN reports whether the client that sent msg asked to hear of its delivery:
// NOTIFY with SUCCESS (RFC 3461 §4.1), and a sender to tell.
func wantsSuccessDSN(msg *message.Message) bool {
	if msg.Sender == "" || msg.DSN == nil {
		return false
	}
	for _, n := range msg.DSN.Notify {
		if n == message.NotifySuccess {
			return true
		}
	}
	return false
}

// Failure is how a message ended without delivery, for Options.OnFailure.
type Failure struct {
	Type  string        // logs.Bounce or logs.Expiration
	Reply message.Reply // the Bounce or Expiration record's reply
	// Last is the reply of the attempt after which the message expired; zero when it expired
	// before an attempt (at dispatch) or for a bounce.
	Last message.Reply
	Site string
	Peer *route.Host // the host that gave Reply (bounce) or Last (expiry); nil when none
}

// Stats are counters since start.
type Stats struct {
	Queued, Received, Delivered, Transient, Bounced, Expired int64
	// DeleteFailures counts finished messages (delivered, bounced, expired) whose spool entry
	// could not be removed: they come back at the next start and may be delivered twice.
	DeleteFailures int64
	// Panics counts panics caught in delivery and queue goroutines.
	Panics int64
	// AdminBounced counts messages ended by an operator's bounce rule.
	AdminBounced int64
	// Throttled counts the times a message waited for a max_message_rate slot.
	Throttled int64
	// SchedKept counts the scheduled queues the relay keeps state for (Summary.SchedKept):
	// counted when asked, by a walk of the map, so Stats is for scrapes, not hot paths.
	SchedKept int
}

// Manager owns every queued message.
type Manager struct {
	opt Options
	// invalidations counts InvalidateConfigs calls: a path fetched across one is not cached.
	invalidations atomic.Uint64

	sched   sync.Map // queue name -> *schedQueue
	readyMu sync.Mutex
	ready   map[string]*readyQueue

	timers timerHeap

	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup // connection goroutines and dispatches

	stopMu  sync.Mutex
	stopped bool              // no new goroutines once set (so WaitGroup.Add never races Wait)
	conns   map[Conn]struct{} // open connections, closed by a Stop that runs out of time

	queued, received, delivered, transient, bounced, expired atomic.Int64
	deleteFailures, panics, adminBounced, throttled          atomic.Int64

	slotsMu sync.Mutex
	slots   map[message.Key]uint8 // throttle slots held by messages on the timer heap (rate.go)

	rulesMu sync.Mutex            // serialises rule changes
	rules   atomic.Pointer[rules] // admin rules, read lock-free on the delivery path

	pickers map[string]*picker // per pool in Options.Pools; read-only after New

	spare       spares     // goroutines waiting for the next spawn (spare.go)
	flying      flights    // messages being attempted (flight.go)
	dispatching dispatches // messages being dispatched (dispatching.go)

	failer Failer      // the Store, when it is one; nil: it never fails for good
	halted atomic.Bool // the store failed: nothing more is attempted (halt)
}

// New returns a Manager; call Start to run it.
func New(opt Options) *Manager {
	if opt.ConnectionLimit <= 0 {
		opt.ConnectionLimit = 32
	}
	if opt.MaxDeliveriesPerConnection <= 0 {
		opt.MaxDeliveriesPerConnection = 1024
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 5 * time.Second
	}
	if opt.RefreshInterval <= 0 {
		opt.RefreshInterval = time.Minute
	}
	if opt.ResolveTimeout <= 0 {
		opt.ResolveTimeout = 30 * time.Second
	}
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.Diag == nil {
		opt.Diag = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{opt: opt, ready: map[string]*readyQueue{}, ctx: ctx, cancel: cancel, conns: map[Conn]struct{}{}, slots: map[message.Key]uint8{}, spare: newSpares()}
	m.pickers = make(map[string]*picker, len(opt.Pools))
	for name, p := range opt.Pools {
		m.pickers[name] = newPicker(p)
	}
	m.timers.init(m.goDispatchEntry, opt.Clock)
	m.failer, _ = opt.Store.(Failer)
	return m
}

// storeFailed reports whether the store has failed for good, halting deliveries the first time
// it sees it. A failed spool refuses every delete until a restart, so each message delivered
// from then on would come back after the restart and be delivered again: more duplicates than
// the spool's bound on unsynced deletes allows. Attempting nothing keeps every message queued
// as it was, for the restart, with nothing to write.
func (m *Manager) storeFailed() bool {
	if m.halted.Load() {
		return true
	}
	if m.failer == nil {
		return false
	}
	err := m.failer.Failed()
	if err == nil {
		return false
	}
	if m.halted.CompareAndSwap(false, true) {
		m.timers.halt()
		m.opt.Diag.Warn("deliveries stopped until a restart: the spool failed and cannot record their outcome; queued messages stay spooled",
			"queued", m.queued.Load(), "err", err)
	}
	return true
}

// park puts a message the manager took for an attempt back on the timer heap, as it was: no
// attempt counted, nothing logged or written. After halt the heap fires nothing more.
func (m *Manager) park(msg *message.Message) { m.waitFull(msg) }

// Start runs the retry timer. A panic in it is logged and the timer runs again: the heap
// survives, so no waiting message is lost.
func (m *Manager) Start() {
	go func() {
		for m.ctx.Err() == nil {
			m.guard("retry timer", nil, func() { m.timers.run(m.ctx) })
		}
	}()
	m.scheduleSweep()
}

// scheduleSweep drops idle ready queues (sweepReady) and empty scheduled queues (sweepSched)
// once a minute until Stop.
func (m *Manager) scheduleSweep() {
	m.opt.Clock.AfterFunc(time.Minute, func() {
		if m.ctx.Err() != nil {
			return
		}
		m.guard("ready queue sweep", nil, func() {
			if n := m.sweepReady(m.opt.Clock.Now()); n > 0 {
				m.opt.Diag.Debug("idle ready queues dropped", "count", n)
			}
		})
		m.guard("scheduled queue sweep", nil, func() {
			if n := m.sweepSched(m.opt.Clock.Now()); n > 0 {
				m.opt.Diag.Debug("empty scheduled queues dropped", "count", n)
			}
		})
		m.scheduleSweep()
	})
}

// guard runs f and turns a panic into a diagnostic with the stack, so that one bad message
// or plugin cannot take the process down. It reports whether f panicked.
func (m *Manager) guard(what string, msg *message.Message, f func()) (panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			m.panics.Add(1)
			args := []any{"panic", fmt.Sprint(p), "stack", string(debug.Stack())}
			if msg != nil {
				args = append(args, "id", msg.ID)
			}
			m.opt.Diag.Error("panic in "+what, args...)
		}
	}()
	f()
	return false
}

var errInternal = message.Errorf(451, "4.3.0", "internal error during delivery")

// failSafely records a transient failure for a message whose attempt ended in a panic, so that
// it is retried, with the rebinds asked for during the attempt (see flight); if even that
// panics, the message is left to the spool and the next start.
func (m *Manager) failSafely(msg *message.Message, cfg Config, at place) {
	m.guard("recording a failed attempt", msg, func() { m.retryWith(msg, cfg, errInternal, at, nil, m.land(msg.ID)) })
}

// Stop stops dispatching and lets each connection finish the message it is sending. When ctx
// ends first, the open connections are closed (those messages become transient failures,
// recorded in the spool) and Stop still waits for every goroutine: when it returns, nothing
// touches the spool any more, so a delivery can never be lost or repeated by a late write.
// Queued messages stay in the spool for the next start.
func (m *Manager) Stop(ctx context.Context) {
	m.stopMu.Lock()
	m.stopped = true
	m.stopMu.Unlock()
	m.cancel()
	m.readyMu.Lock()
	for _, rq := range m.ready {
		rq.stop()
	}
	m.readyMu.Unlock()
	done := make(chan struct{})
	go func() { m.workers.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	m.stopMu.Lock()
	for c := range m.conns {
		c.Abort()
	}
	m.stopMu.Unlock()
	<-done
}

// goDispatch dispatches msg in a goroutine. A panic before the message found its next owner
// (a ready queue, or a record that ends or reschedules it) fails the attempt transiently.
func (m *Manager) goDispatch(msg *message.Message) {
	k := m.beginDispatch(msg.ID, msg.Queue, msg.Created)
	if !m.spawn(func() {
		defer m.endDispatch(k)
		settled := false
		if m.guard("dispatch", msg, func() { m.dispatch(msg, &settled) }) && !settled {
			m.failSafely(msg, m.opt.Defaults, place{})
		}
	}) {
		m.endDispatch(k)
	}
}

// goDispatchEntry dispatches a message from the timer heap, reading its record from the spool
// first when the heap held it in brief.
func (m *Manager) goDispatchEntry(e entry) {
	if e.msg != nil {
		m.goDispatch(e.msg)
		return
	}
	k := m.beginDispatch(e.key.ID(), e.q.name, e.createdTime())
	if !m.spawn(func() {
		defer m.endDispatch(k)
		var msg *message.Message
		m.guard("reading a message from the spool", nil, func() { msg = m.load(e) })
		if msg == nil {
			return
		}
		settled := false
		if m.guard("dispatch", msg, func() { m.dispatch(msg, &settled) }) && !settled {
			m.failSafely(msg, m.opt.Defaults, place{})
		}
	}) {
		m.endDispatch(k)
	}
}

// reloadDelay is how long a message whose record could not be read waits before the next try.
const reloadDelay = time.Minute

// load reads the record of a message the timer heap held in brief. The entry's due time and
// attempts are the queue's own (a record read before its Update landed would be older). It
// returns nil when there is nothing to attempt: the record is gone (counted out of the queue)
// or unreadable for now (the entry goes back on the heap for reloadDelay), or the manager is
// stopping (the message stays in the spool for the next start).
func (m *Manager) load(e entry) *message.Message {
	if m.ctx.Err() != nil {
		return nil
	}
	msg, err := m.read(e)
	if errors.Is(err, message.ErrNotInSpool) {
		m.removed(e.q.name)
		m.forgetSlots(e.key.ID())
		m.opt.Diag.Error("queued message missing from the spool; dropped", "id", e.key.ID())
		return nil
	}
	var u unreadable
	if errors.As(err, &u) && u.Unreadable() {
		m.setAside(e.key.ID(), err)
		m.removed(e.q.name) // after the report, as a message is counted out after its record
		m.forgetSlots(e.key.ID())
		return nil
	}
	if err != nil {
		m.opt.Diag.Error("spool read failed; trying again later", "id", e.key.ID(), "err", err)
		if m.ctx.Err() == nil {
			e.due = nanos(m.opt.Clock.Now().Add(reloadDelay))
			m.timers.push(e)
		}
		return nil
	}
	return msg
}

// unreadable is what a Store's read error may also be: one that says whether the record is
// damaged, so that reading it again cannot succeed (as opposed to a read that failed for now).
type unreadable interface{ Unreadable() bool }

// Quarantiner is what a Store may also be: one that can set aside a record it cannot read, out
// of every later scan, keeping it for an operator.
type Quarantiner interface {
	Quarantine(id message.ID) error
}

// setAside ends the scheduling of a message whose record cannot be read: retrying the read
// every minute would only log the same error for ever, and with no record the message can
// neither be attempted nor expire. It is reported once, at error level, naming its id; a Store
// that can (Quarantiner) moves the record aside so that the next start does not schedule it
// again.
func (m *Manager) setAside(id message.ID, cause error) {
	what := "unreadable spool record set aside; the message is not attempted (kept under q/<id> for an operator)"
	args := []any{"id", id, "err", cause}
	if q, ok := m.opt.Store.(Quarantiner); !ok {
		what = "unreadable spool record dropped from scheduling until the next start; the message is not attempted"
	} else if err := q.Quarantine(id); err != nil && !errors.Is(err, message.ErrNotInSpool) {
		what = "unreadable spool record dropped from scheduling until the next start (setting it aside failed); the message is not attempted"
		args = append(args, "quarantine_err", err)
	}
	m.opt.Diag.Error(what, args...)
}

// read reads the record of a message held in brief, with the entry's due time and attempts.
func (m *Manager) read(e entry) (*message.Message, error) {
	msg, err := m.opt.Store.Get(e.key.ID())
	if err != nil {
		return nil, err
	}
	if due := e.dueTime(); !msg.Due.Equal(due) {
		msg.Due = due
	}
	msg.Attempts = int(e.attempts)
	return msg, nil
}

// wait puts msg on the timer heap, due at msg.Due, held in brief: the spool has its record (an
// Update of any change was sent before, and Store.Get sees it). A message whose id has no
// binary form (not a spool id) keeps its record.
func (m *Manager) wait(msg *message.Message) {
	e := entry{due: nanos(msg.Due), created: nanos(msg.Created), q: m.schedQueue(msg.Queue), attempts: int32(msg.Attempts)}
	var ok bool
	if e.key, ok = msg.ID.Key(); !ok {
		e.msg = msg
	}
	m.timers.push(e)
}

// waitFull puts msg on the timer heap with its full record (a message not attempted yet).
func (m *Manager) waitFull(msg *message.Message) {
	m.timers.push(entry{due: nanos(msg.Due), created: nanos(msg.Created), q: m.schedQueue(msg.Queue),
		attempts: int32(msg.Attempts), msg: msg})
}

func (m *Manager) track(c Conn, open bool) {
	m.stopMu.Lock()
	defer m.stopMu.Unlock()
	if open {
		m.conns[c] = struct{}{}
	} else {
		delete(m.conns, c)
	}
}

// Stats returns counters since start.
func (m *Manager) Stats() Stats {
	return Stats{
		Queued: m.queued.Load(), Received: m.received.Load(), Delivered: m.delivered.Load(),
		Transient: m.transient.Load(), Bounced: m.bounced.Load(), Expired: m.expired.Load(),
		DeleteFailures: m.deleteFailures.Load(), Panics: m.panics.Load(), AdminBounced: m.adminBounced.Load(),
		Throttled: m.throttled.Load(), SchedKept: m.schedKept(),
	}
}

// Submit spools messages (synced before it returns), writes their Reception records and queues
// them for an immediate first attempt. All of msgs share body.
func (m *Manager) Submit(msgs []*message.Message, body []byte) error {
	return m.SubmitBatches([]message.Batch{{Msgs: msgs, Body: body}})
}

// SubmitBatches is Submit for several batches (one SMTP transaction split by recipient
// domain): all of them are spooled in one write, or none is, and only then queued.
func (m *Manager) SubmitBatches(batches []message.Batch) error {
	if err := m.opt.Store.PutBatches(batches); err != nil {
		return err
	}
	for _, b := range batches {
		for _, msg := range b.Msgs {
			rec := logs.For(logs.Reception, msg, message.Reply{Code: 250})
			if msg.PeerAddr != "" || msg.PeerName != "" {
				rec.PeerAddress = &logs.PeerAddress{Name: msg.PeerName, Addr: msg.PeerAddr}
			}
			m.opt.Log.Log(rec)
			m.received.Add(1)
			m.insert(msg)
		}
	}
	return nil
}

// Recover queues a message found in the spool at start-up, keeping its due time and attempts.
func (m *Manager) Recover(msg *message.Message) { m.insert(msg) }

// RecoverSched queues a message found in the spool at start-up from the part of its record
// that scheduling needs (spool.ScanSched): it waits in brief, and its record is read when it
// comes due. A message whose id is not a spool id is read whole at once. Unlike Recover it
// never attempts a message at once, even one already due: that waits for the timer, which
// Start runs, so a caller can recover a whole spool before anything is delivered or deleted.
func (m *Manager) RecoverSched(s message.Sched) {
	k, ok := s.ID.Key()
	if !ok {
		msg, err := m.opt.Store.Get(s.ID)
		var u unreadable
		if errors.As(err, &u) && u.Unreadable() {
			m.setAside(s.ID, err)
			return
		}
		if err != nil {
			m.opt.Diag.Error("spool read failed; the message stays spooled until the next start", "id", s.ID, "err", err)
			return
		}
		m.admit(msg.Queue)
		m.waitFull(msg)
		return
	}
	q := m.admit(s.Queue)
	m.timers.push(entry{key: k, due: nanos(s.Due), created: nanos(s.Created), q: q, attempts: int32(s.Attempts)})
}

func (m *Manager) insert(msg *message.Message) {
	m.admit(msg.Queue)
	if !msg.Due.After(m.opt.Clock.Now()) {
		m.goDispatch(msg)
		return
	}
	m.waitFull(msg)
}

// admit counts a message the manager takes on, in the queued total and in its scheduled queue.
func (m *Manager) admit(queue string) *schedQueue {
	m.queued.Add(1)
	return m.hold(queue)
}

// removed counts out a message the manager no longer holds (delivered, bounced, expired, gone
// from the spool).
func (m *Manager) removed(queue string) {
	m.queued.Add(-1)
	m.unhold(queue)
}

// schedQueue is a scheduled queue: its name's parts, its cached config and its rate limit.
// Waiting messages point at it from the timer heap (entry.q), so it must stay listed in
// Manager.sched while any message of its name is held: held counts them (hold, unhold), and
// sweepSched drops a queue only when held is zero, under holdMu, marking it dead so that an
// arrival that found it just before finds a fresh one instead (hold).
type schedQueue struct {
	name    string
	comps   route.Components
	compErr error

	mu      sync.Mutex
	cfg     Config
	cfgErr  error
	fetched time.Time
	rate    *bucket // cfg.MaxMessageRate; nil: unlimited

	holdMu sync.Mutex
	held   int  // messages of the queue the manager holds: waiting, due, being attempted
	dead   bool // dropped from Manager.sched; never used again
}

// schedQueue returns the listed queue of that name, listing a new one when there is none. For
// the name of a message held (hold) it is that message's queue.
func (m *Manager) schedQueue(name string) *schedQueue {
	if q, ok := m.sched.Load(name); ok {
		return q.(*schedQueue)
	}
	q := &schedQueue{name: name}
	q.comps, q.compErr = route.ParseQueueName(name)
	actual, _ := m.sched.LoadOrStore(name, q)
	return actual.(*schedQueue)
}

// hold counts one more message in the queue of that name and returns the queue, which stays
// listed until the matching unhold. A queue the sweep dropped meanwhile is never returned.
func (m *Manager) hold(name string) *schedQueue {
	for {
		q := m.schedQueue(name)
		q.holdMu.Lock()
		if !q.dead {
			q.held++
			q.holdMu.Unlock()
			return q
		}
		q.holdMu.Unlock()
		m.sched.CompareAndDelete(name, q) // the sweep did it already; this only makes sure
	}
}

// unhold ends what hold began: the message left the queue (delivered, bounced, expired,
// dropped, or moved to another queue).
func (m *Manager) unhold(name string) {
	v, ok := m.sched.Load(name)
	if !ok {
		m.opt.Diag.Error("released a message of a queue no longer listed", "queue", name)
		return
	}
	q := v.(*schedQueue)
	q.holdMu.Lock()
	if q.held > 0 {
		q.held--
	}
	q.holdMu.Unlock()
}

// sweepSched drops the scheduled queues that hold no message, whose cached config is stale (it
// would be asked for again anyway) and whose rate limit has nothing booked ahead (a fresh
// bucket could let a message through early), and reports how many. A message for a dropped
// queue later gets a fresh one.
func (m *Manager) sweepSched(now time.Time) int {
	n := 0
	m.sched.Range(func(k, v any) bool {
		q := v.(*schedQueue)
		q.holdMu.Lock()
		defer q.holdMu.Unlock()
		if q.held > 0 || q.dead {
			return true
		}
		// No message holds q, and none can join while holdMu is held: nothing fetches its
		// config or books its rate meanwhile.
		q.mu.Lock()
		stale := q.fetched.IsZero() || now.Sub(q.fetched) >= m.opt.RefreshInterval
		rate := q.rate
		q.mu.Unlock()
		if stale && rate.idle(now) {
			q.dead = true
			m.sched.CompareAndDelete(k, q)
			n++
		}
		return true
	})
	return n
}

// schedKept is the number of scheduled queues listed.
func (m *Manager) schedKept() int {
	n := 0
	m.sched.Range(func(_, _ any) bool { n++; return true })
	return n
}

// config returns the queue's config, asking the source once and again after RefreshInterval.
func (m *Manager) config(q *schedQueue) (Config, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := m.opt.Clock.Now()
	if !q.fetched.IsZero() && now.Sub(q.fetched) < m.opt.RefreshInterval {
		return q.cfg, q.cfgErr
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.opt.ResolveTimeout)
	defer cancel()
	q.cfg, q.cfgErr = m.opt.Configs.QueueConfig(ctx, q.name, q.comps)
	q.fetched = now
	if q.cfgErr == nil {
		q.rate = m.limiter(q.rate, q.cfg.MaxMessageRate, "queue:"+q.name)
	}
	return q.cfg, q.cfgErr
}

func (q *schedQueue) bucket() *bucket {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.rate
}

// InvalidateConfigs drops every cached queue config (used when policy is reloaded) so the next
// attempt of every queued message asks again.
func (m *Manager) InvalidateConfigs() {
	m.invalidations.Add(1) // before the paths are dropped: see refreshPath
	m.sched.Range(func(_, v any) bool {
		q := v.(*schedQueue)
		q.mu.Lock()
		q.fetched = time.Time{}
		q.mu.Unlock()
		return true
	})
	for _, rq := range m.readyQueues() {
		rq.mu.Lock()
		rq.pathAt = time.Time{}
		rq.mu.Unlock()
	}
}

var (
	errBadQueue = message.Errorf(551, "5.1.3", "invalid queue name")
	errConfig   = message.Errorf(451, "4.3.0", "queue configuration unavailable")
)

// dispatch runs when a message is due: config, expiry, resolution, then its site's ready queue.
// settled is set once the message has been handed on, so that a panic after it does not
// schedule the message twice.
func (m *Manager) dispatch(msg *message.Message, settled *bool) {
	if m.ctx.Err() != nil {
		return // shutting down: the message stays in the spool
	}
	if m.storeFailed() {
		*settled = true
		m.park(msg)
		return
	}
	if msg.Failed != nil {
		*settled = true
		m.renotify(msg) // it ended already; only its notification is due
		return
	}
	q := m.schedQueue(msg.Queue)
	if q.compErr != nil {
		*settled = true
		m.bounce(msg, errBadQueue.Wrap(q.compErr), place{}, nil)
		return
	}
	if m.intercept(msg, "") {
		*settled = true // bounced or held by an admin rule
		return
	}
	cfg, err := m.config(q)
	if err != nil && m.ctx.Err() != nil {
		*settled = true // the stop cut the fetch short: the message stays spooled as it is
		return
	}
	if err != nil {
		m.opt.Diag.Warn("queue config failed", "queue", q.name, "err", err)
		*settled = true
		m.retry(msg, m.opt.Defaults, errConfig.Wrap(err), place{}, nil)
		return
	}
	if now := m.opt.Clock.Now(); now.Sub(msg.Created) >= cfg.MaxAge {
		*settled = true
		m.forgetSlots(msg.ID)
		m.expire(msg, cfg, now.Sub(msg.Created), Failure{})
		return
	}
	if _, known := m.pickers[cfg.EgressPool]; !known && cfg.EgressPool != "" && cfg.EgressPool != abi.DefaultEgressPool {
		*settled = true
		_, e := m.source(cfg.EgressPool)
		m.retry(msg, cfg, e, place{pool: cfg.EgressPool}, nil)
		return
	}
	qrate := q.bucket()
	if m.throttle(msg, qrate, heldQueueSlot) {
		*settled = true // back on the timer heap, due at its slot
		return
	}
	// The source is picked per attempt (KumoMTA's pools do the same), after the queue's
	// throttle so that a message held for a slot does not use up a pick.
	source, perr := m.source(cfg.EgressPool)
	if perr != nil {
		*settled = true
		m.forgetSlots(msg.ID)
		m.retry(msg, cfg, perr, place{pool: cfg.EgressPool}, nil)
		return
	}
	pool := cfg.EgressPool
	if source == "" {
		pool = ""
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.opt.ResolveTimeout)
	site, err := m.opt.Resolver.Resolve(ctx, q.comps.Destination(), cfg.MXList)
	cancel()
	if err != nil && m.ctx.Err() != nil {
		*settled = true // the stop cut the lookup short, not DNS: the message stays spooled as it is
		return
	}
	if err != nil {
		*settled = true
		m.forgetSlots(msg.ID) // its next attempt books again, as after a path failure
		e := message.AsError(err)
		if e.Temporary() {
			m.retry(msg, cfg, e, place{}, nil)
		} else {
			m.bounce(msg, e, place{}, nil)
		}
		return
	}
	rq := m.readyQueue(site, source)
	defer m.unpin(rq)
	if err := m.refreshPath(rq, q.comps.Destination()); err != nil {
		*settled = true
		if m.ctx.Err() != nil {
			return // the stop cut the fetch short: the message stays spooled as it is
		}
		m.forgetSlots(msg.ID)
		m.retry(msg, cfg, message.AsError(err), place{rq.name, pool, source}, nil)
		return
	}
	rq.mu.Lock()
	rate := rq.msgRate
	rq.mu.Unlock()
	if m.throttle(msg, rate, heldPathSlot) {
		*settled = true
		return
	}
	if qrate != nil || rate != nil {
		m.forgetSlots(msg.ID) // used: both stages passed
	}
	*settled = true
	rq.push(&item{msg: msg, cfg: cfg, pool: pool})
}

// readyQueue is the ready queue of a source (KumoMTA's egress source; "" for none) and a site,
// pinned until the caller's unpin (see sweepReady).
func (m *Manager) readyQueue(site route.Site, source string) *readyQueue {
	name := readyQueueName(source, site.Name)
	m.readyMu.Lock()
	defer m.readyMu.Unlock()
	rq := m.ready[name]
	if rq == nil {
		rq = newReadyQueue(m, site.Name, source)
		if m.ctx.Err() != nil {
			rq.stopping = true // created after Stop's sweep: never starts a worker
		}
		m.ready[name] = rq
	}
	rq.pins.Add(1)
	rq.setHosts(site.Hosts)
	return rq
}

// unpin ends what readyQueue began: rq may be swept again once idle.
func (m *Manager) unpin(rq *readyQueue) { rq.pins.Add(-1) }

// outcome handles the result of one delivery attempt.
func (m *Manager) outcome(it *item, at place, peer *route.Host, reply message.Reply, err error) {
	m.outcomeTLS(it, at, peer, nil, reply, err, true)
}

// outcomeTLS is outcome with the TLS session of the connection, which the Delivery record
// carries (design.md §6 and §12), and whether the next hop offered DSN (hopDSN; see
// Options.OnRelayed).
func (m *Manager) outcomeTLS(it *item, at place, peer *route.Host, tls *logs.TLS, reply message.Reply, err error, hopDSN bool) {
	rebinds := m.land(it.msg.ID) // the attempt is over: its message may change again
	if err == nil {
		if !hopDSN && m.opt.OnRelayed != nil && wantsSuccessDSN(it.msg) {
			m.opt.OnRelayed(it.msg, Relayed{Reply: reply, Site: at.site, Peer: peer})
		}
		m.delivered.Add(1)
		// The record first: a crash between the two then logs and delivers it again after the
		// restart (a duplicate, bounded by the spool's unsynced deletes), where the other order
		// could leave its delete synced (a concurrent Put's group commit) and no record at all.
		rec := m.record(logs.Delivery, it.msg, reply, at, peer)
		rec.TLS = tls
		m.opt.Log.Log(rec)
		// Counted out only once its end is recorded: whoever sees the queue empty (an
		// operator, a script, a test) finds every record written.
		m.removed(it.msg.Queue)
		m.delete(it.msg)
		return
	}
	e := message.AsError(err)
	if e.Temporary() {
		m.retryWith(it.msg, it.cfg, e, at, peer, rebinds)
	} else {
		m.bounce(it.msg, e, at, peer)
	}
}

// delete removes a finished message from the spool. A failure cannot be undone here (the
// outcome already happened), but it must not pass silently: the message would come back at the
// next start and be delivered or bounced again.
func (m *Manager) delete(msg *message.Message) {
	if err := m.opt.Store.Delete(msg); err != nil {
		m.deleteFailures.Add(1)
		m.opt.Diag.Error("spool delete failed; the message will be attempted again after a restart", "id", msg.ID, "err", err)
	}
}

func (m *Manager) record(typ string, msg *message.Message, r message.Reply, at place, peer *route.Host) logs.Record {
	rec := logs.For(typ, msg, r)
	rec.Site, rec.EgressPool, rec.EgressSource = at.site, at.pool, at.source
	if peer != nil {
		rec.PeerAddress = &logs.PeerAddress{Name: peer.Name, Addr: peer.Addr.String()}
		rec.DeliveryProtocol = "ESMTP"
	}
	return rec
}

func (m *Manager) bounce(msg *message.Message, e *message.Error, at place, peer *route.Host) {
	m.bounced.Add(1)
	if e.Cause != nil {
		m.opt.Diag.Info("bounce", "id", msg.ID, "reply", e.Reply.String(), "cause", e.Cause)
	}
	f := Failure{Type: logs.Bounce, Reply: e.Reply, Site: at.site, Peer: peer}
	err := m.notify(msg, f)
	rec := m.record(logs.Bounce, msg, e.Reply, at, peer)
	if err != nil {
		m.holdForNotice(msg, f, err, &rec)
		return
	}
	m.opt.Log.Log(rec) // before the delete: see outcomeTLS
	// Counted out after its DSN is queued and its record written (see outcomeTLS).
	m.removed(msg.Queue)
	m.delete(msg)
}

// notify calls OnFailure, when set.
func (m *Manager) notify(msg *message.Message, f Failure) error {
	if m.opt.OnFailure == nil {
		return nil
	}
	return m.opt.OnFailure(msg, f)
}

// holdForNotice keeps a message that ended without delivery in the spool because its sender's
// notification could not be spooled (OnFailure's err: no spool space). Removing it anyway
// would lose the notification for good; as Postfix does, the message stays, marked failed
// (message.Failed, so that a restart too knows it is not to be attempted), and the
// notification is retried with the backoff of a failed attempt (Options.Defaults). rec, the
// record of its end (nil on a retry), is logged once the mark is on disk: logged before, a
// crash in between left a Bounce record for a message the restart attempted again (and
// could deliver), its sender never told. A crash after the mark and before the record leaves
// Failed.Logged unset, and renotify writes the record then (it may repeat one).
func (m *Manager) holdForNotice(msg *message.Message, f Failure, err error, rec *logs.Record) {
	if msg.Failed == nil {
		msg.Failed = &message.Failed{Type: f.Type, Reply: f.Reply, Last: f.Last, Site: f.Site}
		if f.Peer != nil {
			msg.Failed.PeerName = f.Peer.Name
			if f.Peer.Addr.IsValid() {
				msg.Failed.PeerAddr = f.Peer.Addr.String()
			}
		}
	}
	msg.Failed.Notices++
	cfg := m.opt.Defaults
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Minute
	}
	delay := Delay(cfg, msg.Failed.Notices) + jitter(cfg)
	msg.Due = m.opt.Clock.Now().Add(delay)
	if msg.Failed.Notices == 1 {
		m.opt.Diag.Warn("delivery status notification not spooled; the failed message stays spooled and it is retried",
			"id", msg.ID, "retry_in", delay.Round(time.Second), "err", err)
	} else {
		m.opt.Diag.Debug("delivery status notification not spooled again", "id", msg.ID,
			"notices", msg.Failed.Notices, "retry_in", delay.Round(time.Second), "err", err)
	}
	if err := m.opt.Store.Update(msg); err != nil && !errors.Is(err, context.Canceled) {
		m.opt.Diag.Warn("spool update failed", "id", msg.ID, "err", err)
	}
	if rec != nil {
		// The mark goes to disk now, not with the spool's lazy commit, before the record.
		if err := m.flush(); err != nil && !errors.Is(err, context.Canceled) {
			m.opt.Diag.Warn("spool flush failed", "id", msg.ID, "err", err)
		}
		m.opt.Log.Log(*rec)
		msg.Failed.Logged = true
		if err := m.opt.Store.Update(msg); err != nil && !errors.Is(err, context.Canceled) {
			m.opt.Diag.Warn("spool update failed", "id", msg.ID, "err", err)
		}
	}
	if m.ctx.Err() != nil {
		return
	}
	m.wait(msg)
}

// renotify retries the notification of a message held by holdForNotice; once it is spooled,
// the message leaves the spool as it would have when it ended.
func (m *Manager) renotify(msg *message.Message) {
	fd := msg.Failed
	f := Failure{Type: fd.Type, Reply: fd.Reply, Last: fd.Last, Site: fd.Site}
	if fd.PeerName != "" || fd.PeerAddr != "" {
		f.Peer = &route.Host{Name: fd.PeerName}
		f.Peer.Addr, _ = netip.ParseAddr(fd.PeerAddr)
	}
	if !fd.Logged {
		// A crash came between its mark and its record (see holdForNotice): write it now.
		at := place{site: fd.Site}
		var peer *route.Host
		if fd.Type == logs.Bounce {
			peer = f.Peer
		}
		m.opt.Log.Log(m.record(fd.Type, msg, fd.Reply, at, peer))
		fd.Logged = true
	}
	if err := m.notify(msg, f); err != nil {
		m.holdForNotice(msg, f, err, nil)
		return
	}
	m.removed(msg.Queue)
	m.delete(msg)
}

// Delay returns the wait before retry number attempts (1-based: the wait after the first failed
// attempt is retry_interval), doubling each time and capped by max_retry_interval (design.md §5).
func Delay(cfg Config, attempts int) time.Duration {
	d := cfg.RetryInterval
	for i := 1; i < attempts; i++ {
		if cfg.MaxRetryInterval > 0 && d >= cfg.MaxRetryInterval {
			break
		}
		if d > time.Duration(1<<62)/2 {
			break
		}
		d *= 2
	}
	if cfg.MaxRetryInterval > 0 && d > cfg.MaxRetryInterval {
		d = cfg.MaxRetryInterval
	}
	return d
}

// jitter spreads retries by ±min(retry_interval/20, 60s)/2, as KumoMTA does, so a burst of
// failures does not come back as a burst.
func jitter(cfg Config) time.Duration {
	j := min(cfg.RetryInterval/20, time.Minute)
	if j <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(j))) - j/2
}

func (m *Manager) retry(msg *message.Message, cfg Config, e *message.Error, at place, peer *route.Host) {
	m.retryWith(msg, cfg, e, at, peer, nil)
}

// retryWith is retry for an attempt during which an operator asked for rebinds: they are
// applied once the failure is recorded, and a bounce rule in force ends the message at once
// (not at its next attempt, when the rule may be gone).
func (m *Manager) retryWith(msg *message.Message, cfg Config, e *message.Error, at place, peer *route.Host, rebinds []RebindRequest) {
	msg.Attempts++
	delay := Delay(cfg, msg.Attempts) + jitter(cfg)
	now := m.opt.Clock.Now()
	next := now.Add(delay)
	if next.Sub(msg.Created) > cfg.MaxAge {
		// Log the failure that ended it, then the expiry.
		m.opt.Log.Log(m.record(logs.TransientFailure, msg, e.Reply, at, peer))
		m.expire(msg, cfg, next.Sub(msg.Created), Failure{Last: e.Reply, Site: at.site, Peer: peer})
		return
	}
	m.transient.Add(1)
	if e.Cause != nil {
		m.opt.Diag.Debug("transient failure", "id", msg.ID, "reply", e.Reply.String(), "cause", e.Cause)
	}
	msg.Due = next
	m.opt.Log.Log(m.record(logs.TransientFailure, msg, e.Reply, at, peer))
	for _, req := range rebinds {
		m.rebindOne(msg, req, now)
	}
	if err := m.opt.Store.Update(msg); err != nil && !errors.Is(err, context.Canceled) {
		m.opt.Diag.Warn("spool update failed", "id", msg.ID, "err", err)
	} else if len(rebinds) > 0 {
		// The rebind API promised this message its rebind when the attempt ended: commit it,
		// as Rebind does for the messages it moved at once (rare: only rebinds made during an
		// attempt get here).
		if err := m.flush(); err != nil {
			m.opt.Diag.Warn("spool flush after a rebind failed", "id", msg.ID, "err", err)
		}
	}
	if m.ctx.Err() != nil {
		return
	}
	if m.bounceRuled(msg, at.site) {
		return
	}
	if len(rebinds) > 0 {
		m.requeue(msg) // due now when a rebind moved or flushed it
		return
	}
	m.wait(msg) // in brief until it comes due again: the Update above holds its record
}

func (m *Manager) expire(msg *message.Message, cfg Config, age time.Duration, f Failure) {
	m.forgetSlots(msg.ID) // one that waited for a rate slot may end before it reached a connection
	m.expired.Add(1)
	r := message.Reply{Code: 551, Enhanced: "5.4.7", Text: fmt.Sprintf(
		"Next delivery time would be %s after creation, which exceeds max_age=%s", age.Round(time.Second), cfg.MaxAge)}
	f.Type, f.Reply = logs.Expiration, r
	err := m.notify(msg, f)
	rec := m.record(logs.Expiration, msg, r, place{}, nil)
	if err != nil {
		m.holdForNotice(msg, f, err, &rec)
		return
	}
	m.opt.Log.Log(rec)   // before the delete: see outcomeTLS
	m.removed(msg.Queue) // see bounce
	m.delete(msg)
}
