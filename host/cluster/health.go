package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ProbeInterval is how often a node whose Redis is away lets one command through to see
// whether it is back. Between probes, shared limits fail at once (and follow the policy)
// instead of each message paying the command timeout.
const ProbeInterval = time.Second

// ErrUnavailable is returned, without any I/O, while Redis is marked away and no probe is due.
var ErrUnavailable = errors.New("cluster: redis unavailable")

// health is a circuit breaker over Redis: one failed command marks it away; while away, at
// most one command per ProbeInterval goes out (the probe), the others fail with ErrUnavailable;
// the first command that succeeds marks it back. One Warn when it goes away, one Info when it
// is back, so a dead Redis does not flood the diagnostics.
type health struct {
	mu        sync.Mutex // orders the transitions and their log lines
	down      atomic.Bool
	nextProbe atomic.Int64 // unix ns before which no probe goes out
	since     time.Time    // when it went away (under mu)
	errors    atomic.Int64 // failed commands
	fallbacks atomic.Int64 // limit checks answered by the policy instead of Redis
}

// Stats are the cluster client's counters, for the metrics.
type Stats struct {
	Up bool // Redis answered the last command (true before the first one)
	// Errors counts commands that failed (timeouts, refused connections, Redis errors).
	Errors int64
	// Fallbacks counts limit checks (rate reservations, lease acquisitions) that Redis did not
	// answer, so the on_unavailable policy decided.
	Fallbacks int64
	// Policy is "fail_open" or "fail_closed".
	Policy string
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	p := "fail_open"
	if c.opt.FailClosed {
		p = "fail_closed"
	}
	return Stats{Up: !c.health.down.Load(), Errors: c.health.errors.Load(), Fallbacks: c.health.fallbacks.Load(), Policy: p}
}

// Up reports whether Redis answered the last command.
func (c *Client) Up() bool { return !c.health.down.Load() }

// FallbackNodes says what a shared limit does while Redis does not answer: 0 under
// fail_closed (defer), else the node count last seen (enforce the limit divided by it).
func (c *Client) FallbackNodes() int {
	if c.opt.FailClosed {
		return 0
	}
	return c.NodeCount()
}

// do runs f against Redis through the breaker. A limit check passes limit = true: its failure
// is also counted as a fallback. An error from ctx (shutdown) says nothing about Redis.
func (c *Client) do(ctx context.Context, limit bool, f func(ctx context.Context) error) error {
	h := &c.health
	if h.down.Load() {
		now := time.Now().UnixNano()
		next := h.nextProbe.Load()
		if now < next || !h.nextProbe.CompareAndSwap(next, now+int64(ProbeInterval)) {
			if limit {
				h.fallbacks.Add(1)
			}
			return ErrUnavailable
		}
	}
	err := f(ctx)
	if err == nil {
		if h.down.Load() {
			c.markUp()
		}
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	h.errors.Add(1)
	if limit {
		h.fallbacks.Add(1)
	}
	c.markDown(err)
	return err
}

func (c *Client) markDown(err error) {
	h := &c.health
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextProbe.Store(time.Now().Add(ProbeInterval).UnixNano())
	if h.down.Swap(true) {
		return
	}
	h.since = time.Now()
	go c.probeUntilUp()
	policy := "local limits divided by the node count last seen"
	if c.opt.FailClosed {
		policy = "deliveries deferred"
	}
	c.opt.Diag.Warn("cluster: redis unavailable; shared limits follow on_unavailable until it is back",
		"policy", c.Stats().Policy, "effect", policy, "nodes", c.NodeCount(), "err", err)
}

func (c *Client) markUp() {
	h := &c.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down.Swap(false) {
		return
	}
	go c.dropOrphans() // places left taken by the outage (lease.go)
	c.opt.Diag.Info("cluster: redis is back; shared limits hold again", "away", time.Since(h.since).Round(time.Millisecond))
}

// probeUntilUp pings Redis once per ProbeInterval while it is away, so that "back" (the log
// line, the redis_up gauge, shared limits) does not wait for the next limit check: a node
// with no traffic at that moment would otherwise go on believing Redis is away.
func (c *Client) probeUntilUp() {
	t := time.NewTicker(ProbeInterval)
	defer t.Stop()
	for c.health.down.Load() {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		d := c.opt.DialTimeout + c.opt.Timeout
		if d <= 0 {
			d = 5 * time.Second // go-redis's own defaults
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_ = c.do(ctx, false, func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() })
		cancel()
	}
}
