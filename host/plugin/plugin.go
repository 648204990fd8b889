// Package plugin hosts WebAssembly policy plugins on wazero (ABI v1, abi/ABI.md).
//
// A Plugin is a file plus its config; what runs is its current Generation: one wazero Runtime
// (so the memory cap is per plugin), one compiled module, and a bounded pool of instances.
// Loading checks everything before any message can meet the plugin — marker export, hook
// signatures, imports against the host table, WASI only from an allowlist, one eager instance
// whose wasmta_init must return 0 — so a broken plugin fails at start or reload with a precise
// message, never mid-session.
//
// Every call is bounded: a deadline, a memory cap (WithMemoryLimitPages), a host-call budget.
// The deadline is enforced by checks that package guard adds to the plugin's code when it is
// loaded (at every function entry and loop head), not by wazero's WithCloseOnContextDone,
// which costs a goroutine and a channel per call: a watchdog sets an overdue call's stop global
// and the guest traps at its next check. An instance is never shared by two calls, and any call
// error (trap, deadline, host panic) discards it. Effects are staged and applied only
// when the hook returns 0. A crash-loop breaker stops calling a plugin that keeps failing for
// many clients (one client that can make it trap only gets its own failures).
package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/plugin/guard"
)

// Spec says what to load and with which limits.
type Spec struct {
	Path        string
	Config      []byte        // the plugin's own config (JSON), served by get_config
	MaxMemory   int64         // bytes per instance, at most abi.MaxMemory; default 64 MiB
	Timeout     time.Duration // per hook call; default 100ms
	InitTimeout time.Duration // _initialize + wasmta_init; default 5s
	PoolSize    int           // instances at most, at most abi.MaxPoolSize; default 2 × GOMAXPROCS
}

// check refuses limits the runtime cannot take (config validation refuses them first, naming
// the key; this keeps a bad Spec from panicking inside wazero, at start or on a reload).
func (s *Spec) check() error {
	if s.MaxMemory > abi.MaxMemory {
		return fmt.Errorf("max_memory %d bytes is more than 4GiB (%d pages of 64KiB), all a WebAssembly memory can address", s.MaxMemory, abi.MaxMemory/abi.PageSize)
	}
	if s.PoolSize > abi.MaxPoolSize {
		return fmt.Errorf("pool_size %d is more than %d", s.PoolSize, abi.MaxPoolSize)
	}
	if s.Timeout > abi.MaxTimeoutSeconds*time.Second {
		return fmt.Errorf("timeout %s is more than %ds", s.Timeout, abi.MaxTimeoutSeconds)
	}
	return nil
}

func (s *Spec) defaults() {
	if s.MaxMemory <= 0 {
		s.MaxMemory = abi.DefaultMaxMemory
	}
	if s.Timeout <= 0 {
		s.Timeout = 100 * time.Millisecond
	}
	if s.InitTimeout <= 0 {
		s.InitTimeout = 5 * time.Second
	}
	if s.PoolSize <= 0 {
		s.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
}

// Host compiles plugins, sharing one on-disk compilation cache, and runs the watchdog that
// enforces call deadlines.
type Host struct {
	cache   wazero.CompilationCache
	diag    *slog.Logger
	routing routingCache
	// running bounds the hook calls executing guest code at once across every plugin of this
	// host. Each can hold a guest stack of up to about 84 MiB (wazero's fixed ceiling, see
	// abi/ABI.md §6), so this, not the number of plugins or their pool sizes,
	// bounds the memory deep recursion can take.
	running *slots

	dkimKeys atomic.Value // of DKIMKeys: the names dkim_sign accepts (SetDKIMKeys)

	mu        sync.Mutex
	instances map[*instance]struct{} // every live instance, for the watchdog
	stop      chan struct{}
	// wake (capacity 1) is a call's "watch me" to a watchdog that is going to sleep for lack
	// of calls (sleeping); scans counts the watchdog's scans (tests: none while asleep).
	wake     chan struct{}
	sleeping atomic.Bool
	scans    atomic.Int64
}

// maxRunning is how many hook calls run guest code at once per host: as many as the default
// pool of one plugin, two per CPU. Guest code never waits on I/O, so more would not add
// throughput, only memory.
func maxRunning() int { return 2 * runtime.GOMAXPROCS(0) }

// monoEpoch anchors mono.
var monoEpoch = time.Now()

// mono is the monotonic clock in nanoseconds since the package started: deadlines, call
// durations and the breaker's windows use it. Reading it (time.Since of a time with a monotonic
// reading) reads one clock; time.Now reads the wall clock as well, which costs about half as
// much again, and a hook call reads the clock twice.
func mono() int64 { return int64(time.Since(monoEpoch)) }

// watchdogTick bounds how late a deadline is enforced.
const watchdogTick = 2 * time.Millisecond

// NewHost returns a Host caching compiled code in cacheDir ("" = in memory only).
func NewHost(cacheDir string, diag *slog.Logger) (*Host, error) {
	if diag == nil {
		diag = slog.Default()
	}
	var cache wazero.CompilationCache
	if cacheDir != "" {
		if err := os.MkdirAll(cacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("plugin cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("plugin cache: %w", err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	h := &Host{cache: cache, diag: diag, instances: map[*instance]struct{}{}, stop: make(chan struct{}),
		running: newSlots(maxRunning()), wake: make(chan struct{}, 1)}
	go h.watchdog()
	return h, nil
}

// DKIMKeys tells which [[dkim]] key names exist (a *dkim.Signer).
type DKIMKeys interface {
	HasKey(name string) bool
}

// SetDKIMKeys gives dkim_sign the server's keys; without it every key name is unknown.
func (h *Host) SetDKIMKeys(k DKIMKeys) { h.dkimKeys.Store(&k) }

func (h *Host) hasDKIMKey(name string) bool {
	k, _ := h.dkimKeys.Load().(*DKIMKeys)
	return k != nil && *k != nil && (*k).HasKey(name)
}

// Close stops the watchdog and releases the compilation cache.
func (h *Host) Close() error {
	close(h.stop)
	return h.cache.Close(context.Background())
}

// watchdog ends calls that overran their deadline through their instance's stop global (see
// stopCall). One goroutine for all calls is cheaper than a context with a timer per call, which
// cost about 0.5 µs of every hook call (measured: BenchmarkMessageHookWAT).
//
// It sleeps when no call ran for watchdogIdleScans ticks: ticking every 2 ms cost an idle relay
// about 3 % of a CPU. A call wakes it (watch) before its guest code runs.
func (h *Host) watchdog() {
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			if h.scan(mono()) {
				idle = 0
				continue
			}
			if idle++; idle < watchdogIdleScans {
				continue
			}
			// Say so, then look once more. A call stores its deadline, then reads sleeping (both
			// atomic, so sequentially consistent): either this scan sees the deadline, or the
			// call sees sleeping and sends a token, which the wait below then finds.
			h.sleeping.Store(true)
			select { // a token from before this
			case <-h.wake:
			default:
			}
			if h.scan(mono()) {
				h.sleeping.Store(false)
				idle = 0
				continue
			}
			select { // the ticker's timer is not armed while nothing waits on it
			case <-h.stop:
				return
			case <-h.wake:
			}
			h.sleeping.Store(false)
			idle = 0
		}
	}
}

// watchdogIdleScans: the watchdog sleeps after this many ticks without a call (100 ms), so a
// relay under any steady load never pays for waking it.
const watchdogIdleScans = 50

// scan stops the calls past their deadline at now (mono) and reports whether any call was
// running.
func (h *Host) scan(n int64) (running bool) {
	h.scans.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	for in := range h.instances {
		d := in.deadline.Load()
		if d > 0 {
			running = true
			if n > d {
				stopCall(in, d, stoppedDeadline)
			}
		}
	}
	return running
}

// watch makes sure the watchdog is awake for a call whose deadline is stored (see watchdog).
// While it is awake this is one atomic load.
func (h *Host) watch() {
	if h.sleeping.Load() {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// Why a call was stopped: the values instance.deadline is swapped to when it is claimed.
const (
	stoppedDeadline = -1 // by the watchdog
	stoppedCaller   = -2 // because the caller's context ended
)

// stopCall ends the call on in whose deadline is d, if it still runs. It first claims the call
// (deadline -> why), so that neither a call that ends right now nor the next call on the
// instance is mistaken for it, then sets the stop global and empties the fuel (package guard):
// the guest traps at its next check, and the caller, seeing the claim, discards the instance.
// The stop global goes first: a guest that refilled its fuel without seeing it would run on
// for another guard.Refill checks.
func stopCall(in *instance, d, why int64) {
	if in.deadline.CompareAndSwap(d, why) {
		in.stop.Set(1)
		in.fuel.Set(0)
	}
}

// guardedCall runs f on in until deadline (mono), or until ctx ends if it can.
// It returns why the call was stopped (stoppedDeadline, stoppedCaller; 0 if it was not) and
// the call's error. in.stack holds the arguments and results.
func (h *Host) guardedCall(ctx, cctx context.Context, in *instance, f api.Function, deadline int64) (int64, error) {
	in.deadline.Store(deadline)
	h.watch()
	var unwatch func() bool
	if ctx.Done() != nil { // rare: most callers' contexts never end (see instance.ctx)
		unwatch = context.AfterFunc(ctx, func() { stopCall(in, deadline, stoppedCaller) })
	}
	err := f.CallWithStack(cctx, in.stack)
	if unwatch != nil {
		unwatch()
	}
	why := in.deadline.Swap(0)
	if why > 0 {
		why = 0
	}
	return why, err
}

// Plugin is one configured plugin; its code can be swapped (Reload) while it serves. Each call
// loads the current generation once, so one call never mixes two versions.
type Plugin struct {
	host *Host
	name string
	gen  atomic.Pointer[Generation]
	logs *logLimiter // diagnostics budget, kept across reloads
	// removed: retired by a reload that dropped it from the config (Remove), not closed.
	removed atomic.Bool

	mu          sync.Mutex // serializes reloads and guards the fields below
	reloads     int
	failures    int
	lastErr     string
	lastErrAt   time.Time
	lastChecked time.Time
}

// Name is the plugin's file name, used in logs.
func (p *Plugin) Name() string { return p.name }

// Generation is the code currently serving.
func (p *Plugin) Generation() *Generation { return p.gen.Load() }

// Load compiles, validates and starts a plugin.
func (h *Host) Load(ctx context.Context, spec Spec) (*Plugin, error) {
	spec.defaults()
	p := &Plugin{host: h, name: filepath.Base(spec.Path)}
	p.logs = newLogLimiter(h.diag, p.name)
	g, err := h.newGeneration(ctx, p, spec)
	if err != nil {
		return nil, err
	}
	p.gen.Store(g)
	return p, nil
}

// Reload re-reads the plugin's file and, if its code, config or limits changed, builds a new
// generation — compiled, validated, one instance started, wasmta_init passed — and only then
// swaps it in. Calls in flight finish on the old generation, which closes once drained. A broken
// new version never serves: the old one stays and the error is returned and remembered (Status).
// changed is false when there was nothing new. Plugins of a chain are reloaded together with
// Prepare and Chain.Update instead, so that no message meets two versions of the policy.
func (p *Plugin) Reload(ctx context.Context, spec Spec) (g *Generation, changed bool, err error) {
	g, changed, err = p.Prepare(ctx, spec)
	if changed {
		p.commit(g).retire()
	}
	return g, changed, err
}

// Prepare is the first half of Reload: it builds the new generation, if there is anything new,
// without letting it serve (changed); Chain.Update then swaps it in. On an error, or when
// nothing changed, g is the generation serving now.
func (p *Plugin) Prepare(ctx context.Context, spec Spec) (g *Generation, changed bool, err error) {
	spec.defaults()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastChecked = time.Now()
	cur := p.gen.Load()
	code, err := os.ReadFile(spec.Path)
	if err == nil && generationID(code, spec) == cur.ID && sameLimits(spec, cur.spec) {
		return cur, false, nil
	}
	if err == nil {
		g, err = p.host.newGenerationFrom(ctx, p, spec, code)
	} else {
		err = fmt.Errorf("plugin %s: %w", p.name, err)
	}
	if err != nil {
		p.failures++
		p.lastErr, p.lastErrAt = err.Error(), time.Now()
		return cur, false, err
	}
	// Warm as many instances as the old generation had, so the swap does not make the next
	// calls under load each start one (a Go guest takes milliseconds to start).
	for n := min(cur.Busy(), g.spec.PoolSize) - g.Busy(); n > 0; n-- {
		if g.grow(ctx) != nil {
			break
		}
	}
	return g, true, nil
}

// commit makes g (built by Prepare) serve and returns the generation it replaces, for the
// caller to retire once nothing can start a call on it.
func (p *Plugin) commit(g *Generation) *Generation {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reloads++
	return p.gen.Swap(g)
}

// Status describes a plugin for operators (wasmta plugin status).
type Status struct {
	Name        string    `json:"name"`
	Path        string    `json:"path"`
	Generation  string    `json:"generation"`
	LoadedAt    time.Time `json:"loaded_at"`
	Hooks       []string  `json:"hooks"`
	Reloads     int       `json:"reloads"`
	Failures    int       `json:"reload_failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Status reports the serving generation and the reload history.
func (p *Plugin) Status() Status {
	g := p.gen.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	return Status{Name: p.name, Path: g.spec.Path, Generation: g.ID, LoadedAt: g.LoadedAt, Hooks: g.Hooks(),
		Reloads: p.reloads, Failures: p.failures, LastError: p.lastErr, LastErrorAt: p.lastErrAt}
}

// Remove retires the plugin because a reload dropped it from the config. A call that still
// reaches it (its chain's list was read before the reload) skips it, as the new config says,
// where a call on a closed plugin fails: a reload must not make a client see a 451.
func (p *Plugin) Remove(ctx context.Context) {
	p.removed.Store(true)
	p.Close(ctx)
}

// Close retires the serving generation (it closes once its calls are done).
func (p *Plugin) Close(ctx context.Context) {
	if g := p.gen.Load(); g != nil {
		g.retire()
	}
}

func sameLimits(a, b Spec) bool {
	return a.Path == b.Path && a.MaxMemory == b.MaxMemory && a.Timeout == b.Timeout &&
		a.InitTimeout == b.InitTimeout && a.PoolSize == b.PoolSize
}

// generationID names a version: code and config (first 12 hex digits of their sha256).
func generationID(code []byte, spec Spec) string {
	sum := sha256.New()
	sum.Write(code)
	sum.Write([]byte{0})
	sum.Write(spec.Config)
	return hex.EncodeToString(sum.Sum(nil))[:12]
}

// Generation is one loaded version of a plugin's code and config.
type Generation struct {
	plugin *Plugin
	spec   Spec
	ID     string // sha256 of code and config, first 12 hex digits
	Label  string // "name@ID", as log records and outcomes name it
	// handledOnly is Outcome.Handled when this generation is the only plugin that handled a
	// message; its capacity is 1, so an append by a second plugin copies it.
	handledOnly []string
	LoadedAt    time.Time
	hooks       uint32 // bit i: exports abi.Hooks[i]
	rt          wazero.Runtime
	cm          wazero.CompiledModule
	modCfg      wazero.ModuleConfig

	// The instance pool. A mutex and a slice, not channels: taking an idle instance and giving
	// it back is then a lock each, uncontended in the usual case, where a channel operation
	// took a runtime lock and more.
	mu   sync.Mutex
	live int         // instances alive (idle, busy, or starting): at most spec.PoolSize
	idle []*instance // ready for a call; the last one returned is taken first (warm caches)
	line []*poolWaiter

	breaker breaker
	// closed: retired, no new calls; the runtime closes when the last busy instance returns.
	// Set under mu, so that a release that holds mu either sees it or came before the drain.
	closed atomic.Bool
	rtOnce sync.Once
}

// poolWaiter is a call waiting for an instance. When ready is closed, exactly one of these
// says what it got: an instance, leave to start one (a slot in live is already counted for
// it), or errRetired.
type poolWaiter struct {
	ready chan struct{}
	in    *instance
	start bool
	err   error
}

// Hooks lists the hooks this generation exports.
func (g *Generation) Hooks() []string {
	var out []string
	for _, h := range abi.Hooks {
		if g.Has(h) {
			out = append(out, h)
		}
	}
	return out
}

// Has reports whether the generation exports hook.
func (g *Generation) Has(hook string) bool { return g.has(hookIndex(hook)) }

// has reports whether the generation exports the hook abi.Hooks[i] (i may be -1).
func (g *Generation) has(i int) bool { return i >= 0 && g.hooks&(1<<i) != 0 }

// hookIndex is hook's place in abi.Hooks, -1 if it is none: hooks are found by index on every
// call, not in a map (looking a name up in a map three times was a tenth of a one-call hook).
func hookIndex(hook string) int {
	for i, h := range abi.Hooks {
		if h == hook {
			return i
		}
	}
	return -1
}

// Plugin is the plugin this generation belongs to.
func (g *Generation) Plugin() *Plugin { return g.plugin }

type instance struct {
	mod        api.Module
	fns        []api.Function // by hook index (abi.Hooks)
	stack      []uint64
	calls      int
	stop, fuel api.MutableGlobal // the guard's globals (abi.ReservedStop, abi.ReservedFuel)
	// deadline is a mono time while a call runs, 0 when idle, and stoppedDeadline or
	// stoppedCaller once stopCall claimed the call.
	deadline atomic.Int64

	// ctx carries the instance itself under stateKey, made once: a call whose caller's context
	// can never be cancelled runs under it, with st set for the call (see stateOf), instead of
	// allocating a context per call. Only the calling goroutine reads st.
	ctx context.Context
	st  *callState

	// routed is the last queue (0) and routing_domain (1) value set_meta found valid on this
	// instance: a plugin sets the same one on most messages, and comparing is cheaper than the
	// host's cache (a lock and a hash). Only the calling goroutine uses it.
	routed [2]string
}

func (h *Host) newGeneration(ctx context.Context, p *Plugin, spec Spec) (*Generation, error) {
	code, err := os.ReadFile(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", p.name, err)
	}
	return h.newGenerationFrom(ctx, p, spec, code)
}

func (h *Host) newGenerationFrom(ctx context.Context, p *Plugin, spec Spec, code []byte) (*Generation, error) {
	if err := spec.check(); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", p.name, err)
	}
	pages := uint32((spec.MaxMemory + abi.PageSize - 1) / abi.PageSize)
	// No WithCloseOnContextDone: the guard's checks end overdue calls (see the package comment).
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(h.cache).
		WithMemoryLimitPages(pages)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	id := generationID(code, spec) // a hash of the whole module: once
	label := p.name + "@" + id
	g := &Generation{
		plugin:      p,
		spec:        spec,
		ID:          id,
		Label:       label,
		handledOnly: []string{label}[:1:1],
		LoadedAt:    time.Now(),
		rt:          rt,
	}
	fail := func(err error) (*Generation, error) {
		g.closeRuntime()
		return nil, fmt.Errorf("plugin %s: %w", p.name, err)
	}
	// The instrumented code is what is compiled, and what the compilation cache keys on; the
	// generation ID stays that of the operator's file.
	wasm, err := guard.Instrument(code)
	if errors.Is(err, guard.ErrReserved) {
		return fail(err)
	}
	if err != nil {
		return fail(fmt.Errorf("not a valid WebAssembly module: %w", err))
	}
	// Compile on every core: a Go plugin compiles in about 1 s on one (reload latency).
	cm, err := rt.CompileModule(experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0)), wasm)
	if err != nil {
		return fail(fmt.Errorf("not a valid WebAssembly module: %w", err))
	}
	g.cm = cm
	usesWASI, err := validate(cm)
	if err != nil {
		return fail(err)
	}
	for i, name := range abi.Hooks {
		if _, ok := cm.ExportedFunctions()[name]; ok {
			g.hooks |= 1 << i
		}
	}
	out := &guestOutput{diag: h.diag, plugin: p.name, limit: p.logs}
	if usesWASI {
		if err := instantiateWASI(ctx, rt, out); err != nil {
			return fail(err)
		}
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		return fail(err)
	}
	g.modCfg = wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		// None: newInstance runs them, under the init deadline (instantiation cannot be stopped).
		WithStartFunctions().
		WithSysWalltime().WithSysNanotime().
		WithRandSource(cryptoRand{}).
		WithStdout(out).WithStderr(out)
	// One eager instance: a plugin whose start or wasmta_init fails is refused now.
	if err := g.grow(ctx); err != nil {
		return fail(err)
	}
	return g, nil
}

// grow starts one more instance and puts it in the pool, if the pool has room.
func (g *Generation) grow(ctx context.Context) error {
	if !g.reserve() {
		return errPoolWait
	}
	in, err := g.newInstance(ctx)
	if err != nil {
		g.free()
		return err
	}
	g.release(in)
	return nil
}

// reserve counts one more live instance, if the pool has room and g serves.
func (g *Generation) reserve() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() || g.live >= g.spec.PoolSize {
		return false
	}
	g.live++
	return true
}

// startFunctions are run, in this order, on every new instance under the init deadline: the
// module's start function (moved out of instantiation by package guard), the WASI reactor
// start, and the plugin's own init.
var startFunctions = []string{abi.ReservedStart, abi.ExportInitialize, abi.ExportInit}

// newInstance instantiates the module and runs its start functions. The caller counted it in
// live (reserve).
func (g *Generation) newInstance(ctx context.Context) (*instance, error) {
	st := &callState{gen: g}
	ictx := context.WithValue(ctx, stateKey{}, st)
	mod, err := g.rt.InstantiateModule(ictx, g.cm, g.modCfg)
	if err != nil {
		return nil, fmt.Errorf("start failed: %w", err)
	}
	in := &instance{mod: mod, fns: make([]api.Function, len(abi.Hooks)), stack: make([]uint64, 1)}
	in.stop, _ = mod.ExportedGlobal(abi.ReservedStop).(api.MutableGlobal)
	in.fuel, _ = mod.ExportedGlobal(abi.ReservedFuel).(api.MutableGlobal)
	if in.stop == nil || in.fuel == nil { // guard.Instrument adds them: cannot happen
		mod.Close(context.Background())
		return nil, errors.New("start failed: the module lacks the host's termination checks")
	}
	in.ctx = context.WithValue(context.Background(), stateKey{}, in)
	st.in = in // for the start functions' host calls that look at the deadline (stopIfOverdue)
	g.plugin.host.mu.Lock()
	g.plugin.host.instances[in] = struct{}{}
	g.plugin.host.mu.Unlock()
	for i, h := range abi.Hooks {
		if g.has(i) {
			in.fns[i] = mod.ExportedFunction(h)
		}
	}
	deadline := mono() + int64(g.spec.InitTimeout)
	for _, name := range startFunctions {
		f := mod.ExportedFunction(name)
		if f == nil {
			continue
		}
		// wasmta_init's type was checked at load; a start section's function, now an export,
		// was not: wazero checks that only for a start section.
		if d := f.Definition(); name != abi.ExportInit && (len(d.ParamTypes()) != 0 || len(d.ResultTypes()) != 0) {
			g.closeInstance(in)
			return nil, fmt.Errorf("%s must have type () -> (), has %s", name, sig(d))
		}
		why, err := g.plugin.host.guardedCall(ctx, ictx, in, f, deadline)
		switch {
		case why == stoppedDeadline:
			err = fmt.Errorf("%s exceeded its %s init deadline", name, g.spec.InitTimeout)
		case why == stoppedCaller:
			err = fmt.Errorf("%s stopped: %w", name, context.Cause(ctx))
		case err != nil:
			err = fmt.Errorf("%s failed: %w", name, err)
		case name == abi.ExportInit && int32(in.stack[0]) != 0:
			err = fmt.Errorf("%s returned %d%s", abi.ExportInit, int32(in.stack[0]), st.errSuffix())
		}
		if err != nil {
			g.closeInstance(in)
			return nil, err
		}
	}
	return in, nil
}

// errRetired tells a caller that loaded a generation just before a reload to load it again.
var errRetired = errors.New("plugin generation retired")

// errPoolWait: no instance became free before the call's wait deadline.
var errPoolWait = errors.New("every instance busy until the wait deadline")

// acquire takes an idle instance or starts one while the pool has room, else waits for one
// until deadline (mono; then errPoolWait: the caller fails like any plugin failure, 451 at
// reception).
func (g *Generation) acquire(ctx context.Context, deadline int64) (*instance, error) {
	in, _, err := g.acquireWait(ctx, deadline)
	return in, err
}

// acquireWait is acquire, also saying whether it had to wait or start an instance.
func (g *Generation) acquireWait(ctx context.Context, deadline int64) (_ *instance, waited bool, _ error) {
	if g.closed.Load() {
		return nil, false, errRetired
	}
	g.mu.Lock()
	if g.closed.Load() {
		g.mu.Unlock()
		return nil, false, errRetired
	}
	if n := len(g.idle); n > 0 {
		in := g.idle[n-1]
		g.idle[n-1] = nil
		g.idle = g.idle[:n-1]
		g.mu.Unlock()
		return in, false, nil
	}
	if g.live < g.spec.PoolSize {
		g.live++
		g.mu.Unlock()
		in, err := g.start()
		return in, true, err
	}
	w := &poolWaiter{ready: make(chan struct{})}
	g.line = append(g.line, w)
	g.mu.Unlock()

	t := time.NewTimer(time.Duration(deadline - mono()))
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errPoolWait
	}
	if err != nil {
		g.mu.Lock()
		i := slices.Index(g.line, w)
		if i >= 0 {
			g.line = slices.Delete(g.line, i, i+1)
		}
		g.mu.Unlock()
		if i >= 0 {
			return nil, true, err
		}
		// Served just as the wait ended: w says with what (written under mu, read after it).
	}
	switch {
	case w.err != nil:
		return nil, true, w.err
	case w.start:
		in, err := g.start()
		return in, true, err
	}
	return w.in, true, nil
}

// start starts an instance already counted in live.
func (g *Generation) start() (*instance, error) {
	in, err := g.newInstance(context.Background())
	if err != nil {
		g.free()
		if g.closed.Load() {
			return nil, errRetired
		}
		return nil, err
	}
	return in, nil
}

// recycleAfter bounds an instance's life: linear memory never shrinks, and long-lived guest
// heaps fragment.
const recycleAfter = 100_000

// release gives an instance that finished a call back: to the first call waiting for one, or
// to the idle pool; an instance of a retired generation closes.
func (g *Generation) release(in *instance) {
	in.calls++
	if in.calls >= recycleAfter {
		g.discard(in)
		return
	}
	g.mu.Lock()
	if g.closed.Load() { // retired while this call ran
		g.mu.Unlock()
		g.discard(in)
		return
	}
	if len(g.line) > 0 {
		w := g.nextWaiter()
		w.in = in
		g.mu.Unlock()
		close(w.ready)
		return
	}
	g.idle = append(g.idle, in)
	g.mu.Unlock()
}

// nextWaiter takes the first call in line; the caller holds mu and knows there is one.
func (g *Generation) nextWaiter() *poolWaiter {
	w := g.line[0]
	g.line[0] = nil
	g.line = g.line[1:]
	return w
}

func (g *Generation) discard(in *instance) {
	g.closeInstance(in)
	g.free()
}

// free gives up the place of an instance that closed (or failed to start): the first call
// waiting may start one in its place. The runtime of a retired generation closes with the
// last instance.
func (g *Generation) free() {
	g.mu.Lock()
	if len(g.line) > 0 { // only while serving: retire empties the line
		w := g.nextWaiter()
		w.start = true
		g.mu.Unlock()
		close(w.ready)
		return
	}
	g.live--
	last := g.closed.Load() && g.live == 0
	g.mu.Unlock()
	if last {
		g.closeRuntime()
	}
}

// closeRuntime frees what g holds in wazero, once: its runtime (instances, memories) and its
// compiled code. The code must be closed apart: every runtime of a host shares one compilation
// cache, hence one engine, and the engine keeps a compiled module until it is closed, not when
// its runtime closes; without this, each version a reload compiled stayed mapped for the life
// of the process.
func (g *Generation) closeRuntime() {
	g.rtOnce.Do(func() {
		g.rt.Close(context.Background())
		if g.cm != nil {
			g.cm.Close(context.Background())
		}
	})
}

func (g *Generation) closeInstance(in *instance) {
	h := g.plugin.host
	h.mu.Lock()
	delete(h.instances, in)
	h.mu.Unlock()
	in.mod.Close(context.Background())
}

// retire stops new calls on g; idle instances close now, busy ones when their call returns, and
// the runtime with the last of them. Calls waiting for an instance get errRetired, and so go to
// the generation that serves now.
func (g *Generation) retire() {
	g.mu.Lock()
	g.closed.Store(true)
	idle, line := g.idle, g.line
	g.idle, g.line = nil, nil
	for _, w := range line {
		w.err = errRetired // under mu: a waiter whose wait ended meanwhile reads it under mu
	}
	last := g.live == 0
	g.mu.Unlock()
	for _, w := range line {
		close(w.ready)
	}
	for _, in := range idle {
		g.discard(in)
	}
	if last {
		g.closeRuntime()
	}
}

// waitingCount is how many calls wait for an instance (tests).
func (g *Generation) waitingCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.line)
}

// idleCount is how many instances are idle (tests).
func (g *Generation) idleCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.idle)
}

// BreakerOpen reports whether g's failure breaker is open now (calls fail without running).
func (g *Generation) BreakerOpen() bool { return !g.breaker.allow(mono()) }

// Retired reports whether g was replaced or closed.
func (g *Generation) Retired() bool { return g.closed.Load() }

// Busy is the number of live instances (in a retired generation: calls still running).
func (g *Generation) Busy() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.live
}

// ImportsHostFunction reports whether the module in the file at path imports the host
// function fn (abi.HostModule). It only compiles the module: SDK tests use it to show that a
// plugin which does not use a newer host function still loads on an older host.
func ImportsHostFunction(ctx context.Context, path, fn string) (bool, error) {
	code, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, code)
	if err != nil {
		return false, err
	}
	for _, f := range cm.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod == abi.HostModule && name == fn {
			return true, nil
		}
	}
	return false, nil
}

// Check loads a plugin file the way the server would (all load-time checks, one instance,
// wasmta_init with config) and closes it again. It is `wasmta plugin check`.
func Check(ctx context.Context, path string, config []byte) (*Report, error) {
	h, err := NewHost("", nil)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if config == nil {
		config = []byte("{}")
	}
	p, err := h.Load(ctx, Spec{Path: path, Config: config})
	if err != nil {
		return nil, err
	}
	defer p.Close(ctx)
	g := p.Generation()
	r := &Report{Name: p.name, Generation: g.ID, Hooks: g.Hooks()}
	for _, f := range g.cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		r.Imports = append(r.Imports, mod+"."+name)
	}
	r.ABI = fmt.Sprintf("%d.%d", abi.Major, abi.Minor)
	return r, nil
}

// Report describes a checked plugin.
type Report struct {
	Name, Generation, ABI string
	Hooks, Imports        []string
}

// StartInstanceForBenchmark starts one more instance (start + wasmta_init) and closes it: the
// cost the pool pays to grow, measured by the per-language benchmarks.
func (g *Generation) StartInstanceForBenchmark() error {
	if !g.reserve() {
		return errors.New("the pool is full")
	}
	in, err := g.newInstance(context.Background())
	if err != nil {
		g.free()
		return err
	}
	g.discard(in)
	return nil
}
