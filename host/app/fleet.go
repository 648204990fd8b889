package app

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wasmta/wasmta/host/cluster"
	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/httpapi"
	"github.com/wasmta/wasmta/host/queue"
)

// fleet is what a node in a cluster ([redis]) shares besides limits: the admin API's rules and
// a heartbeat carrying its queue summary (docs/cluster.md).
//
// Rules. The cluster's Redis is the authority; the spool keeps this node's copy, so that a
// node restarting while Redis is away still honours the last rules it knew. fleet is the
// queue's RuleStore: a rule made here is stored in Redis first (when Redis cannot be reached
// the request fails with 503 and nothing changes anywhere: a rule that holds on one node of a
// fleet and not on the others is worse than none), then in the spool. Changes made elsewhere
// arrive through sync, on every change announced on the rules channel and every second (a
// safety net for lost messages): a rule in Redis that this node does not hold is adopted
// (queue.Adopt: the same effect as a local rule), one this node holds that Redis no longer
// has is dropped (queue.Drop).
//
// A listing can be stale by the time it is applied (a rule made or cancelled here in the
// meantime). Two sets keep sync from undoing a local change: a rule is dropped only if an
// earlier listing (or this node's spool at start) showed it, and a rule cancelled here is
// never adopted again (tombstones, kept for a minute: far longer than a sync takes).
type fleet struct {
	c       *cluster.Client
	local   queue.RuleStore // the spool
	q       *queue.Manager  // set once the queue exists
	name    string          // cluster_name
	version string
	started time.Time
	api     func() string // the bound HTTP API address, "" without one
	diag    *slog.Logger
	// opTimeout bounds one exchange with Redis (redis.dial_timeout + redis.timeout): the
	// client may retry a failed dial several times, and an admin request must not wait on
	// a Redis that does not answer for longer than the config says.
	opTimeout time.Duration

	mu      sync.Mutex
	seen    map[string]bool      // rule ids a listing (or the spool at start) showed
	tombs   map[string]time.Time // rule ids cancelled here, and when
	expires map[string]time.Time // of every rule this node holds
	bad     map[string]bool      // rules in Redis this node cannot take (unreadable, too many), reported once
	epoch   string               // of the rule set last read (cluster.RuleSet)
	down    bool                 // the last sync failed (reported once)

	sumMu   sync.Mutex
	sum     json.RawMessage // the queue summary the heartbeat carries
	trunc   bool
	sumNext time.Time // recompute after this

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Fleet intervals: rules are re-read this often even without a change announced, and a
// tombstone outlives any listing that started before it.
const (
	ruleSyncInterval = time.Second
	tombstoneTTL     = time.Minute
	// summaryCostFactor spaces summaries so that walking the queue for the heartbeat takes at
	// most 1/summaryCostFactor of the time (a queue of a million messages is not walked every
	// second).
	summaryCostFactor = 50
)

func newFleet(c *cluster.Client, local queue.RuleStore, name, version string, opTimeout time.Duration, diag *slog.Logger) *fleet {
	return &fleet{c: c, local: local, name: name, version: version, started: time.Now(), diag: diag, opTimeout: opTimeout,
		api: func() string { return "" }, seen: map[string]bool{}, tombs: map[string]time.Time{},
		expires: map[string]time.Time{}, bad: map[string]bool{}, kick: make(chan struct{}, 1)}
}

var _ queue.RuleStore = (*fleet)(nil)

// PutRule stores a rule made on this node: in Redis (every node adopts it within a second),
// then in the spool.
func (f *fleet) PutRule(id string, v []byte) error {
	var r queue.Rule
	if err := json.Unmarshal(v, &r); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opTimeout)
	defer cancel()
	if err := f.c.PutRule(ctx, id, v, r.Expires); err != nil {
		return err
	}
	if err := f.local.PutRule(id, v); err != nil {
		// The API answers that the rule failed: it must not hold on the other nodes either.
		if derr := f.c.DeleteRule(ctx, id); derr != nil {
			f.diag.Error("a rule the spool refused stays in the cluster", "id", id, "err", derr)
		}
		return err
	}
	f.mu.Lock()
	f.expires[id] = r.Expires
	f.mu.Unlock()
	return nil
}

// DeleteRule cancels a rule on every node (Redis, then the spool), or forgets an expired one
// (the queue prunes those; Redis prunes its own).
func (f *fleet) DeleteRule(id string) error {
	f.mu.Lock()
	exp, known := f.expires[id]
	f.mu.Unlock()
	if !known || time.Now().Before(exp) {
		ctx, cancel := context.WithTimeout(context.Background(), f.opTimeout)
		err := f.c.DeleteRule(ctx, id)
		cancel()
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.tombs[id] = time.Now()
		f.mu.Unlock()
	}
	f.mu.Lock()
	delete(f.expires, id)
	delete(f.seen, id)
	f.mu.Unlock()
	return f.local.DeleteRule(id)
}

// Rules returns the spool's copy (the queue loads it at start, before Redis is asked).
func (f *fleet) Rules() (map[string][]byte, error) {
	m, err := f.local.Rules()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, v := range m {
		var r queue.Rule
		if json.Unmarshal(v, &r) == nil {
			f.seen[id], f.expires[id] = true, r.Expires
		}
	}
	return m, nil
}

// start runs the rule subscription, the rule sync and the heartbeat until stop.
func (f *fleet) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Add(3)
	go func() {
		defer f.wg.Done()
		f.c.SubscribeRules(ctx, f.poke)
	}()
	go func() {
		defer f.wg.Done()
		f.syncLoop(ctx)
	}()
	go func() {
		defer f.wg.Done()
		f.c.Heartbeat(ctx, cluster.HeartbeatInterval, cluster.NodeTTL, f.status)
	}()
}

// stop ends the loops; the heartbeat removes this node from the cluster as it ends.
func (f *fleet) stop() {
	if f.cancel != nil {
		f.cancel()
		f.wg.Wait()
	}
}

func (f *fleet) poke() {
	select {
	case f.kick <- struct{}{}:
	default: // a sync is already due
	}
}

func (f *fleet) syncLoop(ctx context.Context) {
	t := time.NewTicker(ruleSyncInterval)
	defer t.Stop()
	for {
		f.syncSafe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-t.C:
		}
	}
}

// syncSafe is one sync behind a recover: a bug in it must not stop rules from arriving.
func (f *fleet) syncSafe(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			f.diag.Error("panic in the cluster rule sync", "panic", fmt.Sprint(p))
		}
	}()
	// One sync does at most three exchanges (read, seed, read again).
	ctx, cancel := context.WithTimeout(ctx, 3*f.opTimeout)
	defer cancel()
	f.sync(ctx)
}

// held is every rule in force on this node, by id.
func (f *fleet) held() map[string]queue.Rule {
	out := map[string]queue.Rule{}
	for _, kind := range []string{queue.KindSuspend, queue.KindBounce} {
		for _, ri := range f.q.Rules(kind) {
			out[ri.ID] = ri.Rule
		}
	}
	return out
}

func (f *fleet) failed(err error) {
	f.mu.Lock()
	was := f.down
	f.down = true
	f.mu.Unlock()
	if !was {
		f.diag.Warn("cluster rules unavailable: this node keeps the rules it holds, and refuses rule changes (503) until Redis is back",
			"rules", len(f.held()), "err", err)
	}
}

// sync brings this node's rules in line with the cluster's (see fleet).
func (f *fleet) sync(ctx context.Context) {
	f.mu.Lock()
	epoch := f.epoch
	f.mu.Unlock()
	rs, err := f.c.SyncRules(ctx, epoch)
	if err != nil {
		f.failed(err)
		return
	}
	if rs.Fresh {
		// Redis lost the rules (or never had any): put back what this node holds.
		var seed []cluster.StoredRule
		for id, r := range f.held() {
			v, err := json.Marshal(r)
			if err == nil {
				seed = append(seed, cluster.StoredRule{ID: id, Value: v, Expires: r.Expires})
			}
		}
		n, err := f.c.SeedRules(ctx, seed)
		if err != nil {
			f.failed(err)
			return
		}
		if n > 0 {
			f.diag.Warn("the cluster's Redis had no admin rules: stored those this node holds", "rules", n)
		}
		if rs, err = f.c.SyncRules(ctx, rs.Epoch); err != nil {
			f.failed(err)
			return
		}
	}
	f.mu.Lock()
	if f.down {
		f.diag.Info("cluster rules available again")
	}
	f.down, f.epoch = false, rs.Epoch
	f.mu.Unlock()

	held := f.held()
	now := time.Now()
	for id, v := range rs.Rules {
		if _, ok := held[id]; ok {
			f.mu.Lock()
			f.seen[id] = true
			f.mu.Unlock()
			continue
		}
		f.mu.Lock()
		_, tomb := f.tombs[id]
		bad := f.bad[id]
		f.mu.Unlock()
		if tomb || bad {
			continue
		}
		var r queue.Rule
		if err := json.Unmarshal(v, &r); err != nil || r.ID != id {
			f.mu.Lock()
			f.bad[id] = true
			f.mu.Unlock()
			f.diag.Error("unreadable admin rule in the cluster's Redis ignored", "id", id, "err", err)
			continue
		}
		if !now.Before(r.Expires) {
			continue
		}
		// The spool first: a rule in force is a rule a restart still knows.
		if err := f.local.PutRule(id, v); err != nil {
			f.diag.Warn("storing a cluster rule in the spool failed; it holds until a restart", "id", id, "err", err)
		}
		f.mu.Lock()
		f.seen[id], f.expires[id] = true, r.Expires
		f.mu.Unlock()
		swept, err := f.q.Adopt(r)
		if err != nil {
			// Too many rules here: reported once, not every second.
			f.mu.Lock()
			f.bad[id] = true
			f.mu.Unlock()
			_ = f.local.DeleteRule(id)
			f.diag.Error("admin rule from the cluster refused", "id", id, "err", err)
			continue
		}
		total := 0
		for _, n := range swept {
			total += n
		}
		f.diag.Info("admin rule from the cluster in force", "kind", r.Kind, "id", id, "reason", r.Reason,
			"expires", r.Expires, "bounced", total)
	}
	for id, r := range held {
		f.mu.Lock()
		seen := f.seen[id]
		f.mu.Unlock()
		if _, ok := rs.Rules[id]; ok || !seen || !now.Before(r.Expires) {
			continue
		}
		if err := f.q.Drop(id); err != nil {
			continue // cancelled here meanwhile
		}
		if err := f.local.DeleteRule(id); err != nil {
			f.diag.Warn("deleting a cancelled cluster rule from the spool failed", "id", id, "err", err)
		}
		f.mu.Lock()
		delete(f.expires, id)
		delete(f.seen, id)
		f.mu.Unlock()
		f.diag.Info("admin rule cancelled in the cluster", "kind", r.Kind, "id", id, "reason", r.Reason)
	}
	// Forget what neither side holds any more (the maps stay as small as the rule sets).
	f.mu.Lock()
	for id, at := range f.tombs {
		if now.Sub(at) > tombstoneTTL {
			delete(f.tombs, id)
		}
	}
	for _, m := range []map[string]bool{f.seen, f.bad} {
		for id := range m {
			_, inRedis := rs.Rules[id]
			_, here := held[id]
			if !inRedis && !here {
				delete(m, id)
			}
		}
	}
	f.mu.Unlock()
}

// status is what the heartbeat carries; the queue summary in it is recomputed at most every
// beat, and less often when walking the queue is costly (summaryCostFactor).
func (f *fleet) status() (b []byte) {
	now := time.Now()
	f.sumMu.Lock()
	defer f.sumMu.Unlock()
	defer func() {
		// The heartbeat goroutine must outlive a bug here: beat with what was known.
		if p := recover(); p != nil {
			f.diag.Error("panic building the heartbeat", "panic", fmt.Sprint(p))
			b, _ = json.Marshal(control.NodeStatus{Node: f.c.Node(), Version: f.version, Heartbeat: now.UTC(), Summary: f.sum})
		}
	}()
	if f.sum == nil || !now.Before(f.sumNext) {
		s := f.q.Summary()
		cost := time.Since(now)
		f.trunc = cutSummary(&s, control.MaxSummaryQueues)
		f.sum, _ = json.Marshal(s)
		f.sumNext = now.Add(summaryCostFactor * cost)
	}
	st := control.NodeStatus{Node: f.c.Node(), Version: f.version, Started: f.started.UTC(), API: f.api(),
		Heartbeat: now.UTC(), Summary: f.sum, Truncated: f.trunc}
	b, _ = json.Marshal(st)
	return b
}

// cutSummary keeps the n largest scheduled and ready queues (in name order, as the summary
// lists them) and reports whether it left any out.
func cutSummary(s *queue.Summary, n int) bool {
	var cutS, cutR bool
	s.Scheduled, cutS = largest(s.Scheduled, n, func(q queue.SchedSummary) (int, string) { return q.Count, q.Name })
	s.Ready, cutR = largest(s.Ready, n, func(q queue.ReadySummary) (int, string) { return q.Count, q.Name })
	return cutS || cutR
}

// largest keeps the n entries of list with the highest count (ties by name), in name order.
func largest[T any](list []T, n int, key func(T) (count int, name string)) ([]T, bool) {
	if len(list) <= n {
		return list, false
	}
	slices.SortFunc(list, func(a, b T) int {
		ca, na := key(a)
		cb, nb := key(b)
		return cmp.Or(cmp.Compare(cb, ca), strings.Compare(na, nb))
	})
	list = list[:n]
	slices.SortFunc(list, func(a, b T) int {
		_, na := key(a)
		_, nb := key(b)
		return strings.Compare(na, nb)
	})
	return list, true
}

// Summary gathers the live nodes' heartbeats (httpapi.Fleet).
func (f *fleet) Summary(ctx context.Context) (control.ClusterSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opTimeout)
	defer cancel()
	nodes, err := f.c.Nodes(ctx)
	if err != nil {
		return control.ClusterSummary{}, err
	}
	out := control.ClusterSummary{Cluster: f.name, Now: time.Now().UTC(), Nodes: []control.NodeStatus{},
		Total: control.ClusterTotal{Scheduled: []control.QueueTotal{}}}
	totals := map[string]*control.QueueTotal{}
	for _, n := range nodes {
		var st control.NodeStatus
		if err := json.Unmarshal(n.Info, &st); err != nil {
			st = control.NodeStatus{Node: n.Name} // a node of another version: listed, not counted
		}
		st.Node = n.Name
		var s queue.Summary
		if json.Unmarshal(st.Summary, &s) == nil {
			out.Total.Queued += s.Queued
			for _, q := range s.Scheduled {
				t := totals[q.Name]
				if t == nil {
					t = &control.QueueTotal{Name: q.Name}
					totals[q.Name] = t
				}
				t.Count += q.Count
				t.Nodes++
			}
		}
		out.Nodes = append(out.Nodes, st)
	}
	out.Total.Nodes = len(out.Nodes)
	for _, t := range totals {
		out.Total.Scheduled = append(out.Total.Scheduled, *t)
	}
	slices.SortFunc(out.Total.Scheduled, func(a, b control.QueueTotal) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Name, b.Name))
	})
	return out, nil
}

// httpFleet is the HTTP API's view of the fleet: nil outside a cluster.
func (a *App) httpFleet() httpapi.Fleet {
	if a.fleet == nil {
		return nil
	}
	return a.fleet
}
