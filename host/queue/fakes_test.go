package queue

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/testutil"
)

// Fakes of the queue's own small interfaces (Clock, Store, Resolver, Dialer, Conn): the queue's
// scheduling is tested here in milliseconds; the real spool, DNS and SMTP are exercised by the
// end-to-end tests of cmd/wasmta.

// fakeClock is a Clock that moves only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	if d <= 0 {
		go f()
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock and runs, each in its own goroutine, the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		go t.f()
	}
}

// AdvanceTo moves the clock to at (never back).
func (c *fakeClock) AdvanceTo(at time.Time) { c.Advance(at.Sub(c.Now())) }

// pending reports whether a timer is armed for exactly at.
func (c *fakeClock) pending(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.at.Equal(at) {
			return true
		}
	}
	return false
}

// fakeStore is an in-memory Store.
type fakeStore struct {
	mu        sync.Mutex
	msgs      map[message.ID]message.Message // copies, as a spool would hold them
	body      []byte
	deleteErr error
	// bodyErrs, while not empty, fail the next Body reads in turn (a disk that hiccups).
	bodyErrs []error
}

func (s *fakeStore) PutBatches(batches []message.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range batches {
		for _, m := range b.Msgs {
			s.msgs[m.ID] = *m
		}
		s.body = b.Body
	}
	return nil
}

func (s *fakeStore) Update(m *message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs[m.ID] = *m
	return nil
}

func (s *fakeStore) Delete(m *message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleteErr != nil {
		return s.deleteErr
	}
	delete(s.msgs, m.ID)
	return nil
}

func (s *fakeStore) Body(*message.Message) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bodyErrs) > 0 {
		err := s.bodyErrs[0]
		s.bodyErrs = s.bodyErrs[1:]
		return nil, err
	}
	return s.body, nil
}

func (s *fakeStore) Get(id message.ID) (*message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	if !ok {
		return nil, message.ErrNotInSpool
	}
	m.Meta = maps.Clone(m.Meta) // a spool decodes a fresh map
	return &m, nil
}

func (s *fakeStore) get(id message.ID) (message.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	return m, ok
}

func (s *fakeStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// oneSite resolves every destination to one site with one host.
type oneSite struct{}

var siteHost = route.Host{Name: "mx.site.test", Addr: netip.MustParseAddr("192.0.2.1"), Port: 25}

func (oneSite) Resolve(context.Context, string, []route.MXEntry) (route.Site, error) {
	return route.Site{Name: "mx.site.test", Hosts: []route.Host{siteHost}}, nil
}

// fakeDialer opens fakeConns and keeps count. connect and send, when set, decide outcomes.
type fakeDialer struct {
	connect func(n int) error                                     // n: 1-based connect number
	send    func(c *fakeConn, rcpt string) (message.Reply, error) // default: 250

	mu       sync.Mutex
	connects int
	open     int
	maxOpen  int
	sending  int
	conns    []*fakeConn
}

func (d *fakeDialer) Connect(ctx context.Context, hosts []route.Host) (Conn, error) {
	d.mu.Lock()
	d.connects++
	n := d.connects
	d.mu.Unlock()
	if d.connect != nil {
		if err := d.connect(n); err != nil {
			return nil, err
		}
	}
	c := &fakeConn{d: d, host: hosts[0], aborted: make(chan struct{})}
	d.mu.Lock()
	d.open++
	d.maxOpen = max(d.maxOpen, d.open)
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

func (d *fakeDialer) stats() (connects, open, maxOpen, sending int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connects, d.open, d.maxOpen, d.sending
}

type fakeConn struct {
	d         *fakeDialer
	host      route.Host
	aborted   chan struct{}
	abortOnce sync.Once

	mu     sync.Mutex
	sent   int
	closed bool
	broken bool
}

func (c *fakeConn) Send(sender, rcpt string, _ *message.DSN, body []byte) (message.Reply, error) {
	c.d.mu.Lock()
	c.d.sending++
	c.d.mu.Unlock()
	defer func() {
		c.d.mu.Lock()
		c.d.sending--
		c.d.mu.Unlock()
	}()
	reply, err := message.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}, error(nil)
	if c.d.send != nil {
		reply, err = c.d.send(c, rcpt)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.sent++
	}
	return reply, err
}

func (c *fakeConn) Host() route.Host { return c.host }
func (c *fakeConn) Broken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}
func (c *fakeConn) Sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
}
func (c *fakeConn) Close() { c.end() }
func (c *fakeConn) Abort() {
	c.abortOnce.Do(func() { close(c.aborted) })
	c.mu.Lock()
	c.broken = true
	c.mu.Unlock()
	c.end()
}

func (c *fakeConn) end() {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if !was {
		c.d.mu.Lock()
		c.d.open--
		c.d.mu.Unlock()
	}
}

// harness is a Manager wired to fakes, a real log file and a diagnostics buffer.
type harness struct {
	t      *testing.T
	m      *Manager
	clock  *fakeClock
	store  *fakeStore
	dialer *fakeDialer
	logDir string
	diag   *syncBuffer
	n      int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t *testing.T, cfg Config, tweak func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), store: &fakeStore{msgs: map[message.ID]message.Message{}},
		dialer: &fakeDialer{}, logDir: t.TempDir(), diag: &syncBuffer{}}
	lg, err := logs.Open(h.logDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	opt := Options{
		Store: h.store, Resolver: oneSite{}, Dialer: h.dialer, Configs: Static(cfg), Defaults: cfg,
		Log: lg, Diag: slog.New(slog.NewTextHandler(h.diag, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock: h.clock,
	}
	if tweak != nil {
		tweak(&opt)
	}
	h.m = New(opt)
	h.m.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.m.Stop(ctx)
	})
	return h
}

// submit queues n messages to distinct recipients of site.test, due now.
func (h *harness) submit(n int) []*message.Message {
	h.t.Helper()
	var msgs []*message.Message
	for range n {
		h.n++
		now := h.clock.Now()
		msgs = append(msgs, &message.Message{
			ID: message.NewID(now.Add(time.Duration(h.n))), Sender: "a@sender.test",
			Recipient: "r" + string(rune('a'+h.n%26)) + "@site.test", Queue: "site.test",
			Created: now, Due: now, Protocol: "ESMTP",
		})
	}
	if err := h.m.Submit(msgs, []byte("Subject: t\r\n\r\nhi\r\n")); err != nil {
		h.t.Fatal(err)
	}
	return msgs
}

// records returns the log records of type typ (all types when empty) for id (all when empty).
func (h *harness) records(typ string, id message.ID) []map[string]any {
	var out []map[string]any
	for _, r := range testutil.ReadLogRecords(h.t, h.logDir) {
		if (typ == "" || r["type"] == typ) && (id == "" || r["id"] == string(id)) {
			out = append(out, r)
		}
	}
	return out
}

// waitRecords waits until there are n records of type typ for id and returns them.
func (h *harness) waitRecords(typ string, id message.ID, n int) []map[string]any {
	h.t.Helper()
	var got []map[string]any
	eventually(h.t, func() bool { got = h.records(typ, id); return len(got) >= n }, "%d %s record(s) for %q", n, typ, id)
	return got
}

// eventually polls cond (bounded: 5 s) until it holds.
func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(time.Millisecond)
	}
}

// readyItems is the number of messages waiting in the site's ready queue, and its workers.
func (h *harness) readyState() (items, active int) {
	h.m.readyMu.Lock()
	rq := h.m.ready["mx.site.test"]
	h.m.readyMu.Unlock()
	if rq == nil {
		return 0, 0
	}
	rq.mu.Lock()
	defer rq.mu.Unlock()
	return len(rq.items), rq.active
}

var errTemp = message.Errorf(451, "4.7.1", "try later")

// fakeRules is an in-memory RuleStore.
type fakeRules struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newFakeRules() *fakeRules { return &fakeRules{m: map[string][]byte{}} }

func (f *fakeRules) PutRule(id string, v []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[id] = append([]byte(nil), v...)
	return nil
}

func (f *fakeRules) DeleteRule(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, id)
	return nil
}

func (f *fakeRules) Rules() (map[string][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range f.m {
		out[k] = v
	}
	return out, nil
}

func (f *fakeRules) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

func (c *fakeConn) TLSInfo() *logs.TLS { return nil }
