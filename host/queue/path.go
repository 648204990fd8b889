package queue

import (
	"context"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
)

// Path is the egress path of one ready queue (KumoMTA's make_egress_path): the limits on the
// traffic to one site, and the dialer that carries the path's transport settings (TLS mode,
// AUTH credentials, source address), which the queue does not look into.
type Path struct {
	ConnectionLimit            int      // connections open at once; <= 0: Options.ConnectionLimit
	MaxDeliveriesPerConnection int      // then the connection is closed; <= 0: the Options value
	MaxMessageRate             abi.Rate // messages handed to connections; zero: unlimited
	MaxConnectionRate          abi.Rate // connections opened; zero: unlimited
	Dialer                     Dialer   // nil: Options.Dialer
	// IdleTimeout is how long a connection with nothing to send waits for the next message
	// before it is closed; <= 0: Options.IdleTimeout.
	IdleTimeout time.Duration
}

// idleTimeout is how long rq's idle connections wait; rq.mu is held.
func (rq *readyQueue) idleTimeout() time.Duration {
	if rq.hasPath && rq.path.IdleTimeout > 0 {
		return rq.path.IdleTimeout
	}
	return rq.m.opt.IdleTimeout
}

// PathSource yields the egress path of a source and site: [egress] defaults, the egress
// source's settings, [[egress.path]] overrides and the get_egress_path_config hook, wired by the
// app. routingDomain is the destination of the message that first reached the ready queue (its
// routing_domain, else its domain): like KumoMTA, a ready queue's path is one for every
// scheduled queue that feeds it. source is "" for the built-in pool; site is the bare site
// name. An error leaves the message queued and retried.
type PathSource interface {
	EgressPath(ctx context.Context, routingDomain, source, site string) (Path, error)
}

var errPath = message.Errorf(451, "4.3.0", "egress path configuration unavailable")

// defaultPath is the path of every site when Options.Paths is nil.
func (m *Manager) defaultPath() Path {
	return Path{ConnectionLimit: m.opt.ConnectionLimit, MaxDeliveriesPerConnection: m.opt.MaxDeliveriesPerConnection, Dialer: m.opt.Dialer}
}

func (m *Manager) fillPath(p Path) Path {
	if p.ConnectionLimit <= 0 {
		p.ConnectionLimit = m.opt.ConnectionLimit
	}
	if p.MaxDeliveriesPerConnection <= 0 {
		p.MaxDeliveriesPerConnection = m.opt.MaxDeliveriesPerConnection
	}
	if p.Dialer == nil {
		p.Dialer = m.opt.Dialer
	}
	return p
}

// refreshPath gives rq its path, asking the source when rq has none yet or after
// RefreshInterval. A failed refresh keeps the path rq had (logged); only a ready queue that
// never had one fails the message.
func (m *Manager) refreshPath(rq *readyQueue, destination string) error {
	fresh := func() (fresh, had bool) {
		now := m.opt.Clock.Now()
		rq.mu.Lock()
		defer rq.mu.Unlock()
		return rq.hasPath && now.Sub(rq.pathAt) < m.opt.RefreshInterval, rq.hasPath
	}
	if ok, _ := fresh(); ok {
		return nil
	}
	// One fetch at a time per ready queue: the first messages for a new site arrive together,
	// and each would otherwise run get_egress_path_config for the same answer.
	rq.pathMu.Lock()
	defer rq.pathMu.Unlock()
	ok, had := fresh()
	if ok {
		return nil
	}
	now := m.opt.Clock.Now()
	// An answer fetched across InvalidateConfigs (a reload) serves this attempt but is not kept:
	// it may come from the old plugin.
	inv := m.invalidations.Load()
	keep := func() time.Time {
		if m.invalidations.Load() != inv {
			return time.Time{}
		}
		return now
	}
	p := m.defaultPath()
	if m.opt.Paths != nil {
		ctx, cancel := context.WithTimeout(m.ctx, m.opt.ResolveTimeout)
		var err error
		p, err = m.opt.Paths.EgressPath(ctx, destination, rq.source, rq.site)
		cancel()
		if err != nil {
			m.opt.Diag.Warn("egress path config failed", "site", rq.name, "routing_domain", destination, "err", err)
			if had {
				rq.mu.Lock()
				rq.pathAt = keep() // ask again after RefreshInterval, not on every message
				rq.mu.Unlock()
				return nil
			}
			return errPath.Wrap(err)
		}
		p = m.fillPath(p)
	}
	rq.mu.Lock()
	rq.path, rq.hasPath, rq.pathAt = p, true, keep()
	rq.msgRate = m.limiter(rq.msgRate, p.MaxMessageRate, "msg:"+rq.name)
	rq.connRate = m.limiter(rq.connRate, p.MaxConnectionRate, "conn:"+rq.name)
	more := len(rq.items) > 0 && rq.idle == 0
	rq.mu.Unlock()
	if more {
		rq.spawnMore() // a raised connection_limit applies to what already waits
	}
	return nil
}
