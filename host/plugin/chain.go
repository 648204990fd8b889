package plugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
)

// Failure is a plugin call that did not complete: a trap, the deadline, a non-zero result, the
// breaker. Its text is for operators' logs, never for SMTP replies.
type Failure struct {
	Plugin, Generation, Hook string
	Reason                   string
	Err                      error
}

func (f *Failure) Error() string {
	return fmt.Sprintf("plugin %s (%s) %s: %s", f.Plugin, f.Generation, f.Hook, f.Reason)
}

func (f *Failure) Unwrap() error { return f.Err }

// ErrClosed is returned for calls to a plugin that was closed (removed from the config).
var ErrClosed = errors.New("plugin closed")

// errNoHook: the generation serving now does not export the hook (a reload removed it).
var errNoHook = errors.New("hook not exported")

// call runs one hook on the plugin's current generation, which it returns. A generation
// retired between loading it and taking an instance is loaded again; if the same generation
// answers retired twice, the plugin was closed, not reloaded: a Failure, or errNoHook (skip it)
// if a reload removed it.
func (p *Plugin) call(ctx context.Context, st *callState) (*Generation, error) {
	var prev *Generation
	for {
		g := p.gen.Load()
		if g == prev {
			if p.removed.Load() { // by a reload: the new config has no such plugin
				return g, errNoHook
			}
			return g, &Failure{Plugin: p.name, Generation: g.ID, Hook: st.hook, Reason: ErrClosed.Error(), Err: ErrClosed}
		}
		err := g.call(ctx, st)
		if errors.Is(err, errRetired) {
			prev = g
			continue
		}
		return g, err
	}
}

// call runs one hook on one instance of g with st as its state. Waiting for an instance and
// for a run slot (Host.running) ends at the call's timeout; the call itself then has its own.
func (g *Generation) call(ctx context.Context, st *callState) error {
	p := g.plugin
	client := ""
	if st.msg != nil {
		client = st.msg.Client
	}
	now := st.start
	if now == 0 {
		now = mono()
	}
	fail := func(reason string, err error) error {
		end := mono()
		st.took = time.Duration(end - now)
		if g.breaker.fail(end, client) {
			p.host.diag.Error("plugin breaker opened: not called for a minute", "plugin", p.name, "generation", g.ID)
		}
		return &Failure{Plugin: p.name, Generation: g.ID, Hook: st.hook, Reason: reason, Err: err}
	}
	hook := hookIndex(st.hook)
	if !g.has(hook) {
		return errNoHook
	}
	if !g.breaker.allow(now) {
		return &Failure{Plugin: p.name, Generation: g.ID, Hook: st.hook, Reason: ErrBreakerOpen.Error(), Err: ErrBreakerOpen}
	}
	waitUntil := now + int64(g.spec.Timeout)
	in, waitedIn, err := g.acquireWait(ctx, waitUntil)
	if errors.Is(err, errRetired) {
		return err
	}
	if err != nil {
		return fail("no instance: "+err.Error(), err)
	}
	waitedRun, err := p.host.running.acquire(ctx, waitUntil)
	if err != nil {
		g.release(in)
		return fail("no instance: "+err.Error(), err)
	}
	st.gen = g
	start := now // the call's own deadline starts when it gets to run
	if waitedIn || waitedRun {
		start = mono()
	}
	// Host functions find st in the context (stateOf). It hides the caller's context unless
	// that can end (see instance.ctx), as before; either way nothing is allocated.
	st.ctx = callCtx{Context: in.ctx, st: st}
	if ctx.Done() != nil {
		st.ctx.Context = ctx
	}
	in.st, st.in = st, in
	why, err := p.host.guardedCall(ctx, &st.ctx, in, in.fns[hook], start+int64(g.spec.Timeout))
	st.ctx = callCtx{}
	in.st, st.in = nil, nil
	p.host.running.release()
	// A stopped call's instance is never reused, even when the call itself managed to return:
	// its stop global is set.
	if err != nil || why != 0 {
		g.discard(in)
		if why == stoppedDeadline || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fail(fmt.Sprintf("exceeded its %s deadline", g.spec.Timeout), err)
		}
		if why == stoppedCaller {
			return fail("stopped: "+context.Cause(ctx).Error(), context.Cause(ctx))
		}
		return fail("trapped: "+err.Error(), err)
	}
	end := mono()
	st.took = time.Duration(end - now)
	if time.Duration(end-start) > refreshAfter {
		// A long call may have grown the guest stack, which wazero keeps with the function
		// for the instance's life (up to about 84 MiB); a fresh function starts at 10 KiB.
		in.fns[hook] = in.mod.ExportedFunction(st.hook)
	}
	rc := int32(in.stack[0])
	if rc != 0 {
		// ABI.md §5: a failed hook's instance is discarded like a trapped one; whatever the
		// guest left in its memory must not reach the next call.
		g.discard(in)
		return fail(fmt.Sprintf("returned %d%s", rc, st.errSuffix()), nil)
	}
	g.release(in)
	g.breaker.success(now)
	return nil
}

// refreshAfter: a call longer than this gets its instance a fresh function (see call). Growing
// a guest stack to a few MiB takes longer (doublings from 10 KiB, each copying the stack), so
// this bounds what an idle instance keeps, at a cost only slow calls pay (about 3 µs, 12 KiB).
const refreshAfter = time.Millisecond

// Chain runs plugins in configured order. The list and the plugins' generations can be
// replaced while calls run (Update), and each run of the chain (one message's hook, one
// get_queue_config) sees one configuration: the generations of one reload, never the new
// version of one plugin with the old version of another.
type Chain struct {
	list atomic.Pointer[[]*Plugin]
	obs  CallObserver

	// epoch counts Update's changes: odd while one is being made. A run that saw it change
	// may have mixed two configurations; it is undone and run again (see consistently).
	epoch atomic.Uint64
	// swapMu: Update holds it to write; a run that had to start over optimisticRuns times
	// holds it to read, so that it cannot be overtaken again (reloads in a tight loop).
	swapMu sync.RWMutex
}

// optimisticRuns is how many times a chain run may be overtaken by a reload before the next
// one holds Update off for its duration. A reload builds its generations before it swaps
// them, so swaps are at least milliseconds apart and one more run almost always suffices.
const optimisticRuns = 2

// consistently runs f until it ran within one configuration of the chain; undo is called
// before a run is repeated (it must reset whatever f changed).
func (c *Chain) consistently(f, undo func()) {
	for attempt := 0; ; attempt++ {
		if attempt >= optimisticRuns {
			c.swapMu.RLock()
			defer c.swapMu.RUnlock()
			f()
			return
		}
		e := c.epoch.Load()
		f()
		if e&1 == 0 && c.epoch.Load() == e {
			return
		}
		undo()
	}
}

// Update makes list the chain's plugins and next[i], when not nil, the serving generation of
// list[i] (built by Prepare), at once: a run of the chain that began before sees none of it,
// or is run again. The generations replaced are retired afterwards.
func (c *Chain) Update(list []*Plugin, next []*Generation) { c.UpdateWith(list, next, nil) }

// UpdateWith is Update that also runs also (when not nil) within the swap: for settings that
// hooks depend on, such as the DKIM keys dkim_sign accepts, so that a run that met the new
// settings with the old plugins (or the reverse) is run again too.
func (c *Chain) UpdateWith(list []*Plugin, next []*Generation, also func()) {
	var old []*Generation
	c.swapMu.Lock()
	c.epoch.Add(1)
	if also != nil {
		also()
	}
	for i, g := range next {
		if g != nil {
			old = append(old, list[i].commit(g))
		}
	}
	c.list.Store(&list)
	c.epoch.Add(1)
	c.swapMu.Unlock()
	for _, g := range old {
		g.retire()
	}
}

// CallObserver is told about every hook call a chain makes: the plugin, the hook, how long the
// call took (waiting for an instance included) and whether it failed (a Failure: trap,
// deadline, non-zero result, breaker open). A plugin's reject is not a failure. It runs on the
// caller's goroutine and must be quick.
type CallObserver interface {
	HookCall(plugin, hook string, d time.Duration, failed bool)
}

// Observe makes o see every hook call of the chain; nil (the default) costs one comparison per
// call. Call it before the chain serves.
func (c *Chain) Observe(o CallObserver) { c.obs = o }

// call runs one hook on p and tells the observer.
func (c *Chain) call(ctx context.Context, p *Plugin, st *callState) (*Generation, error) {
	st.start = mono()
	g, err := p.call(ctx, st)
	if c.obs != nil && !errors.Is(err, errNoHook) {
		c.obs.HookCall(p.name, st.hook, st.took, err != nil)
	}
	return g, err
}

// NewChain returns a chain of ps, in order.
func NewChain(ps ...*Plugin) *Chain {
	c := &Chain{}
	c.Set(ps)
	return c
}

// Plugins is the current list.
func (c *Chain) Plugins() []*Plugin {
	if l := c.list.Load(); l != nil {
		return *l
	}
	return nil
}

// Active reports whether the chain has any plugin.
func (c *Chain) Active() bool { return len(c.Plugins()) > 0 }

// Set replaces the list (plugins added or removed on reload).
func (c *Chain) Set(ps []*Plugin) { c.Update(ps, nil) }

// Outcome of a message hook chain (see message.HookOutcome).
type Outcome = message.HookOutcome

// MessageHook runs hook (smtp_server_message_received or http_message_generated) on every
// plugin that exports it. Each plugin sees the meta and headers the ones before it set; a
// reject stops the chain. On a Failure nothing of the failing plugin is applied and the
// caller must not accept the message (451 4.3.0: the client keeps it).
func (c *Chain) MessageHook(ctx context.Context, hook string, m *Message) (o Outcome, err error) {
	// The message's state and the first plugin's call state come from a pool: most chains have
	// one plugin, and allocating them (about 400 bytes with pointers) was a fifth of a one-call
	// hook. Nothing keeps a pointer into them after MessageHook returns: commit copies what it
	// applies, a Reply is allocated apart, and the instance forgets st when its call returns.
	run := runPool.Get().(*messageRun)
	defer putRun(run)
	run.ms.Message = m
	// What a run overtaken by a reload must put back before it starts over: commit replaces
	// Data and appends to DKIM (so their old values stay intact), and sets Meta in place (each
	// key it sets is logged with its old value first: a copy of the whole map per message cost
	// about a quarter of a one-call hook).
	data, dkim, hadMeta := m.Data, len(m.DKIM), m.Meta != nil
	run.undo = run.undo[:0]
	c.consistently(func() {
		o, err = c.messageHook(ctx, hook, run)
	}, func() {
		m.Data, m.DKIM = data, m.DKIM[:dkim]
		for i := len(run.undo) - 1; i >= 0; i-- {
			if u := run.undo[i]; u.had {
				m.Meta[u.k] = u.v
			} else {
				delete(m.Meta, u.k)
			}
		}
		if !hadMeta {
			m.Meta = nil
		}
		run.undo = run.undo[:0]
		run.ms.indexed = false
		run.resetCall()
	})
	return o, err
}

// messageHook is one run of MessageHook's chain.
func (c *Chain) messageHook(ctx context.Context, hook string, run *messageRun) (Outcome, error) {
	var o Outcome
	ms := &run.ms
	first, hookIdx := true, hookIndex(hook)
	for _, p := range c.Plugins() {
		if !p.gen.Load().has(hookIdx) {
			continue
		}
		st := &run.st
		if !first {
			st = &callState{}
		}
		first = false
		st.hook, st.msg = hook, ms
		g, err := c.call(ctx, p, st)
		if errors.Is(err, errNoHook) {
			continue
		}
		if err != nil {
			return o, err
		}
		for _, p := range st.meta {
			v, had := ms.Meta[p.k]
			run.undo = append(run.undo, metaUndo{k: p.k, v: v, had: had})
		}
		st.commit()
		if o.Handled == nil {
			o.Handled = g.handledOnly // most chains have one plugin: no allocation
		} else {
			o.Handled = append(o.Handled, g.Label)
		}
		if st.reject != nil {
			o.Reject = st.reject
			return o, nil
		}
	}
	return o, nil
}

// messageRun is what MessageHook needs for one message besides the message itself.
type messageRun struct {
	ms msgState
	st callState
	// undo logs the meta keys the run's commits set, with what they held before, in order: a
	// run overtaken by a reload puts them back.
	undo []metaUndo
}

// metaUndo is a meta key a commit set and its value before (had: it existed).
type metaUndo struct {
	k, v string
	had  bool
}

// resetCall empties the first plugin's call state for another run, keeping its storage.
func (run *messageRun) resetCall() {
	meta, pre, app := run.st.meta, run.st.prepend, run.st.append
	run.st = callState{}
	run.st.meta = reuse(meta, abi.MaxMetaKeys)
	run.st.prepend = reuse(pre, 8)
	run.st.append = reuse(app, 8)
}

var runPool = sync.Pool{New: func() any { return new(messageRun) }}

// putRun clears run, so that nothing of a message outlives it in the pool, and returns it. The
// slices a hook fills (header index, staged meta and header edits) keep their storage, emptied,
// up to a size most messages stay within: growing them was a sixth of a hook's allocations.
func putRun(run *messageRun) {
	hdr, meta, pre, app, undo := run.ms.hdr, run.st.meta, run.st.prepend, run.st.append, run.undo
	*run = messageRun{}
	run.ms.hdr = reuse(hdr, 64)
	run.st.meta = reuse(meta, abi.MaxMetaKeys)
	run.st.prepend = reuse(pre, 8)
	run.st.append = reuse(app, 8)
	if cap(undo) <= abi.MaxMetaKeys {
		clear(undo[:cap(undo)]) // no strings kept alive from message to message
		run.undo = undo[:0]
	}
	runPool.Put(run)
}

// reuse is s emptied and cleared (no pointers kept), or nil if its capacity exceeds limit.
func reuse[T any](s []T, limit int) []T {
	if cap(s) > limit {
		return nil
	}
	clear(s[:cap(s)])
	return s[:0]
}

// QueueConfig runs get_queue_config on each plugin exporting it until one makes a config
// (KumoMTA's "Multiple" event). nil, nil means no plugin had an opinion: use the defaults.
func (c *Chain) QueueConfig(ctx context.Context, in QueueInput) (qc *abi.QueueConfig, by string, err error) {
	c.consistently(func() { qc, by, err = c.queueConfig(ctx, in) }, func() {})
	return qc, by, err
}

func (c *Chain) queueConfig(ctx context.Context, in QueueInput) (*abi.QueueConfig, string, error) {
	for _, p := range c.Plugins() {
		if !p.gen.Load().Has(abi.HookGetQueueConfig) {
			continue
		}
		st := &callState{hook: abi.HookGetQueueConfig, queue: &in}
		g, err := c.call(ctx, p, st)
		if errors.Is(err, errNoHook) {
			continue
		}
		if err != nil {
			return nil, "", withLastError(err, st)
		}
		if st.queueConfig != nil {
			return st.queueConfig, g.Label, nil
		}
	}
	return nil, "", nil
}

// EgressPathConfig runs get_egress_path_config on each plugin exporting it until one makes a
// config, like QueueConfig: the first answer wins. nil, nil means no plugin had an opinion.
func (c *Chain) EgressPathConfig(ctx context.Context, in EgressPathInput) (ec *abi.EgressPathConfig, by string, err error) {
	c.consistently(func() { ec, by, err = c.egressPathConfig(ctx, in) }, func() {})
	return ec, by, err
}

func (c *Chain) egressPathConfig(ctx context.Context, in EgressPathInput) (*abi.EgressPathConfig, string, error) {
	for _, p := range c.Plugins() {
		if !p.gen.Load().Has(abi.HookGetEgressPathConfig) {
			continue
		}
		st := &callState{hook: abi.HookGetEgressPathConfig, egress: &in}
		g, err := c.call(ctx, p, st)
		if errors.Is(err, errNoHook) {
			continue
		}
		if err != nil {
			return nil, "", withLastError(err, st)
		}
		if st.egressPath != nil {
			return st.egressPath, g.Label, nil
		}
	}
	return nil, "", nil
}

// withLastError adds the host's last explanation to a Failure: a hook that returns the status
// of a refused call (`return make_queue_config(...)`) is then reported with the reason.
func withLastError(err error, st *callState) error {
	var f *Failure
	if text := st.lastError(); text != "" && errors.As(err, &f) {
		f.Reason += " (last host error: " + text + ")"
	}
	return err
}

// Close closes every plugin.
func (c *Chain) Close(ctx context.Context) {
	for _, p := range c.Plugins() {
		p.Close(ctx)
	}
}
