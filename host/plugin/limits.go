package plugin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/route"
)

// This file holds the guards against a plugin (or a client steering one) that misbehaves
// without crashing: diagnostics floods, a failure breaker that one client cannot trip for
// everyone, and the bounded routing-value cache.

// Per-plugin log rate: a token bucket for lines and one for bytes, shared by the log host call
// and by the guest's stdout/stderr, and kept across reloads (a new generation does not reset
// it). Per call, abi.MaxLogLinesPerCall and abi.MaxLogBytesPerCall apply first.
const (
	logLinesPerSecond = 50
	logBurstLines     = 100
	logBytesPerSecond = 64 << 10
	logBurstBytes     = 128 << 10
	// logReportEvery spaces the "plugin log lines dropped" lines: at most one per plugin per
	// interval, written one interval after the first drop, with the count since the last one.
	logReportEvery = time.Second
)

var logLimits = fmt.Sprintf("%d lines or %d bytes per call, %d lines or %d bytes per second per plugin",
	abi.MaxLogLinesPerCall, abi.MaxLogBytesPerCall, logLinesPerSecond, logBytesPerSecond)

// logLimiter rate-limits one plugin's diagnostics and counts what it drops.
type logLimiter struct {
	diag   *slog.Logger
	plugin string

	mu           sync.Mutex
	lines, bytes float64 // tokens left
	last         time.Time
	dropped      int
	droppedBytes int
	pending      bool // a report is scheduled
}

func newLogLimiter(diag *slog.Logger, plugin string) *logLimiter {
	return &logLimiter{diag: diag, plugin: plugin, lines: logBurstLines, bytes: logBurstBytes, last: time.Now()}
}

// allow takes one line of n bytes from the buckets, or counts it as dropped.
func (l *logLimiter) allow(n int) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	if l.lines >= 1 && l.bytes >= float64(n) {
		l.lines--
		l.bytes -= float64(n)
		return true
	}
	l.dropLocked(1, n)
	return false
}

// ready reports whether a line could be written now (allow would not refuse it for its count).
func (l *logLimiter) ready() bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	return l.lines >= 1
}

// refill adds the tokens earned since the last call; l.mu is held.
func (l *logLimiter) refill(now time.Time) {
	el := now.Sub(l.last).Seconds()
	l.last = now
	l.lines = min(logBurstLines, l.lines+el*logLinesPerSecond)
	l.bytes = min(logBurstBytes, l.bytes+el*logBytesPerSecond)
}

// drop counts lines dropped by a per-call budget.
func (l *logLimiter) drop(lines, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLocked(lines, bytes)
}

func (l *logLimiter) dropLocked(lines, bytes int) {
	l.dropped += lines
	l.droppedBytes += bytes
	if !l.pending {
		l.pending = true
		time.AfterFunc(logReportEvery, l.report)
	}
}

func (l *logLimiter) report() {
	l.mu.Lock()
	n, b := l.dropped, l.droppedBytes
	l.dropped, l.droppedBytes, l.pending = 0, 0, false
	l.mu.Unlock()
	if n > 0 {
		l.diag.Warn("plugin log lines dropped", "plugin", l.plugin, "dropped", n, "bytes", b, "limits", logLimits)
	}
}

// ErrBreakerOpen is returned while a plugin that kept failing is not called.
var ErrBreakerOpen = errors.New("plugin disabled for a while after repeated failures")

// The breaker stops calling a generation that fails for everyone (a crash loop after a bad
// deploy), not one that a single client can make fail: it opens for breakerOpenFor when, over
// the last minute, at least breakerMinCalls calls were made, at least half of them failed, and
// the failures came from at least breakerMinClients distinct clients (a failed call without a
// client, such as get_queue_config, counts as a client of its own). One client sending crafted
// messages that trap therefore only ever gets its own 451s.
const (
	breakerMinCalls   = 50
	breakerMinClients = 3
	breakerOpenFor    = time.Minute
	breakerBuckets    = 6 // of 10 s: the window is one minute
	breakerBucketSecs = 10
)

type breaker struct {
	openUntil atomic.Int64 // mono
	mu        sync.Mutex
	buckets   [breakerBuckets]breakerBucket
}

type breakerBucket struct {
	epoch     atomic.Int64 // the mono period (of breakerBucketSecs) this bucket counts for
	calls     atomic.Int64
	failures  int      // under mu
	clients   []string // under mu: distinct failing clients, at most breakerMinClients
	anonymous int      // under mu: failures without a client
}

// allow reports whether a call may run at now (mono).
func (b *breaker) allow(now int64) bool {
	return now >= b.openUntil.Load()
}

// bucket returns the bucket for now, reset when it last counted an older period. A call
// counted by another goroutine during the reset may be lost; the rule is a rate, not a tally.
func (b *breaker) bucket(now int64) *breakerBucket {
	e := now / (breakerBucketSecs * int64(time.Second))
	k := &b.buckets[e%breakerBuckets]
	if k.epoch.Load() != e {
		b.mu.Lock()
		if k.epoch.Load() != e {
			k.calls.Store(0)
			k.failures, k.clients, k.anonymous = 0, k.clients[:0], 0
			k.epoch.Store(e)
		}
		b.mu.Unlock()
	}
	return k
}

// success counts a call that did not fail: one atomic add on the hot path.
func (b *breaker) success(now int64) { b.bucket(now).calls.Add(1) }

// fail counts a failed call from client ("" when unknown) and reports whether it opened the
// breaker.
func (b *breaker) fail(now int64, client string) (opened bool) {
	k := b.bucket(now)
	k.calls.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	k.failures++
	client = clientKey(client)
	if client == "" {
		k.anonymous++
	} else if len(k.clients) < breakerMinClients && !slices.Contains(k.clients, client) {
		k.clients = append(k.clients, client)
	}
	var calls int64
	failures, anonymous := 0, 0
	var clients []string
	oldest := now/(breakerBucketSecs*int64(time.Second)) - breakerBuckets + 1
	for i := range b.buckets {
		x := &b.buckets[i]
		if x.epoch.Load() < oldest {
			continue
		}
		calls += x.calls.Load()
		failures += x.failures
		anonymous += x.anonymous
		for _, c := range x.clients {
			if !slices.Contains(clients, c) {
				clients = append(clients, c)
			}
		}
	}
	if calls < breakerMinCalls || int64(2*failures) < calls || len(clients)+anonymous < breakerMinClients {
		return false
	}
	b.openUntil.Store(now + int64(breakerOpenFor))
	for i := range b.buckets {
		x := &b.buckets[i]
		x.calls.Store(0)
		x.failures, x.clients, x.anonymous = 0, x.clients[:0], 0
	}
	return true
}

// clientKey is what makes two clients distinct for the breaker: the IP address, with IPv6
// cut to its /64 (one subscriber's usual allocation, which one attacker can rotate through).
// Anything that is not an IP (or IP:port) is used as it is.
func clientKey(c string) string {
	a, err := netip.ParseAddr(c)
	if err != nil {
		ap, err := netip.ParseAddrPort(c)
		if err != nil {
			return c
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// routingCache remembers routing values already found valid: plugins set the same few routing
// domains on every message, and parsing them each time was a fifth of a hook call. It belongs
// to a Host and holds at most routingCacheSize values; when full it is emptied and refilled,
// so values a plugin sets from message data cannot grow it. It keeps each value as a string,
// which set_meta then uses instead of copying the guest's bytes again: a hook that sets a known
// routing value allocates nothing.
const routingCacheSize = 4096

type routingCache struct {
	mu sync.RWMutex
	// queue and domain map each value found valid for abi.MetaQueue and abi.MetaRoutingDomain
	// to itself.
	queue, domain map[string]string
}

func (c *routingCache) of(key string) map[string]string {
	if key == abi.MetaQueue {
		return c.queue
	}
	return c.domain
}

// lookup returns val as the string kept for it if it was found valid for key before.
func (c *routingCache) lookup(key string, val []byte) (string, bool) {
	c.mu.RLock()
	v, ok := c.of(key)[string(val)] // an index by string(val) does not copy val
	c.mu.RUnlock()
	return v, ok
}

// check checks val for key with route.CheckMeta, unless it was found valid before.
func (c *routingCache) check(key, val string) error {
	c.mu.RLock()
	_, ok := c.of(key)[val]
	c.mu.RUnlock()
	if ok {
		return nil
	}
	if err := route.CheckMeta(key, val); err != nil {
		return err
	}
	c.mu.Lock()
	if c.queue == nil || len(c.queue)+len(c.domain) >= routingCacheSize {
		c.queue, c.domain = make(map[string]string, 32), make(map[string]string, 32)
	}
	c.of(key)[val] = val
	c.mu.Unlock()
	return nil
}

func (c *routingCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.queue) + len(c.domain)
}
