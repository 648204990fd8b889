package plugin

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmta/wasmta/abi"
)

// wasiAllowed is what a plugin may import from WASI: what the Go, Rust and C runtimes need to
// start, read clocks and randomness and write diagnostics. The fd_* calls can only reach the
// three standard descriptors: no directory is preopened and path_open is not allowed, so no
// file can be opened; sock_* are not allowed at all.
var wasiAllowed = map[string]bool{
	"args_get": true, "args_sizes_get": true, "environ_get": true, "environ_sizes_get": true,
	"clock_time_get": true, "clock_res_get": true, "random_get": true, "sched_yield": true,
	"poll_oneoff": true, "proc_exit": true, "fd_write": true, "fd_read": true, "fd_close": true,
	"fd_fdstat_get": true, "fd_fdstat_set_flags": true, "fd_seek": true,
	"fd_prestat_get": true, "fd_prestat_dir_name": true,
}

// validate checks a compiled module against ABI v1 and reports whether it imports WASI.
func validate(cm wazero.CompiledModule) (usesWASI bool, err error) {
	exports := cm.ExportedFunctions()
	marker, ok := exports[abi.ExportMarker]
	if !ok {
		return false, fmt.Errorf("missing export %q: not a wasmta ABI v1 plugin (see abi/ABI.md)", abi.ExportMarker)
	}
	if len(marker.ParamTypes()) != 0 || len(marker.ResultTypes()) != 0 {
		return false, fmt.Errorf("export %q must have type () -> (), has %s", abi.ExportMarker, sig(marker))
	}
	if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
		return false, fmt.Errorf("missing exported memory %q", abi.ExportMemory)
	}
	i32 := []api.ValueType{api.ValueTypeI32}
	for _, name := range append([]string{abi.ExportInit}, abi.Hooks...) {
		if f, ok := exports[name]; ok {
			if len(f.ParamTypes()) != 0 || !slices.Equal(f.ResultTypes(), i32) {
				return false, fmt.Errorf("export %q must have type () -> i32, has %s", name, sig(f))
			}
		}
	}
	hooks := 0
	for _, h := range abi.Hooks {
		if _, ok := exports[h]; ok {
			hooks++
		}
	}
	if hooks == 0 {
		return false, fmt.Errorf("exports no hook (one of %s)", strings.Join(abi.Hooks, ", "))
	}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case abi.HostModule:
			hf, ok := hostTable[name]
			if !ok {
				return false, fmt.Errorf("imports %s.%s, which this host (ABI %d.%d) does not provide", mod, name, abi.Major, abi.Minor)
			}
			if !slices.Equal(f.ParamTypes(), hf.params) || !slices.Equal(f.ResultTypes(), hf.results) {
				return false, fmt.Errorf("imports %s.%s with type %s, the host's is %s", mod, name, sig(f), sigOf(hf.params, hf.results))
			}
		case abi.WASIModule:
			if !wasiAllowed[name] {
				return false, fmt.Errorf("imports WASI function %s, which plugins may not use (no filesystem or network)", name)
			}
			usesWASI = true
		default:
			return false, fmt.Errorf("imports %s.%s: only module %q (and a few WASI functions) can be imported", mod, name, abi.HostModule)
		}
	}
	return usesWASI, nil
}

func sig(f api.FunctionDefinition) string { return sigOf(f.ParamTypes(), f.ResultTypes()) }

func sigOf(params, results []api.ValueType) string {
	name := func(ts []api.ValueType) string {
		var s []string
		for _, t := range ts {
			s = append(s, api.ValueTypeName(t))
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return name(params) + " -> " + name(results)
}

// guestOutput turns a guest's stdout/stderr (Go panics print there) into diagnostics, one
// record per line, each cut at abi.MaxLogLine.
type guestOutput struct {
	mu     sync.Mutex
	diag   *slog.Logger
	plugin string
	limit  *logLimiter // the plugin's diagnostics rate, shared with the log host call
	buf    []byte
}

// outputWindow is how much of one write guestOutput reads: a write is as long as the guest
// likes (up to its whole memory, 4 GiB), the host call it comes from cannot be interrupted, and
// each pass over it (lines, the count of dropped ones) cost time in proportion. A second's worth
// of the plugin's log rate (logBytesPerSecond): only a flood meets it.
const outputWindow = logBytesPerSecond

func (o *guestOutput) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.limit.ready() {
		// Over the rate: nothing of p could be written, so none of it is read. fd_write calls
		// Write once per iovec, as many as the guest lists, each as long as it likes.
		o.limit.drop(1, len(o.buf)+n)
		o.buf = o.buf[:0]
		return n, nil
	}
	var unread []byte
	if len(p) > outputWindow {
		p, unread = p[:outputWindow], p[outputWindow:]
	}
	// p is a view of guest memory, as long as the guest likes: lines are emitted from it
	// directly, and only the unfinished line before p (buf) and after it is copied, no more of
	// either than a log line keeps (abi.MaxLogLine, one byte more to tell a long one).
	rest := p
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := rest[:i]
		if len(o.buf) > 0 {
			line = append(o.buf, line[:min(len(line), max(0, abi.MaxLogLine-len(o.buf)))]...)
			o.buf = line[:0]
		}
		rest = rest[i+1:]
		if !o.emit(line) {
			// Over the rate: count every other complete line as dropped in one pass.
			if n := bytes.Count(rest, []byte{'\n'}); n > 0 {
				o.limit.drop(n, len(rest))
			}
			rest = rest[bytes.LastIndexByte(rest, '\n')+1:]
			break
		}
	}
	line := append(o.buf, rest[:min(len(rest), max(0, abi.MaxLogLine+1-len(o.buf)))]...)
	if len(line) > abi.MaxLogLine {
		o.emit(line)
		line = line[:0]
	}
	o.buf = line
	if len(unread) > 0 {
		// Dropped without reading it, counted as one line of its length, with the unfinished
		// line before it (the rest of which it may hold).
		o.limit.drop(1, len(o.buf)+len(unread))
		o.buf = o.buf[:0]
	}
	return n, nil
}

// emit writes one line within the plugin's rate; false when it was dropped.
func (o *guestOutput) emit(line []byte) bool {
	if len(line) > abi.MaxLogLine {
		line = line[:abi.MaxLogLine]
	}
	if !o.limit.allow(len(line)) {
		return false
	}
	o.diag.Warn("plugin output", "plugin", o.plugin, "line", string(line))
	return true
}

type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) { return rand.Read(p) }
