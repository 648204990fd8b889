// Package guard makes a plugin's WebAssembly code stoppable without help from the runtime.
//
// wazero ends a running guest only when its runtime is built WithCloseOnContextDone, and then
// every call, whatever its context, starts a goroutine and makes a channel to watch it: about
// 0.5–0.7 µs per call on a 2-CPU machine, more than the rest of a small hook call together.
// Instrument puts the equivalent checks into the module itself instead, at the entry of every
// function and at the head of every loop: code that runs long either loops or recurses, so it
// passes those points again and again, and what runs between two of them is straight-line code
// and host calls, both bounded.
//
// Two mutable i32 globals are appended (no existing index moves) and exported: abi.ReservedStop,
// 0 while the guest may run, and abi.ReservedFuel, a countdown. Each check decrements the fuel;
// only when it reaches 0 does the guest take the slow path, which leaves native code for a moment
// (memory.grow 0 is carried out by Go), traps with unreachable if the stop global is set, and
// refills the fuel. To stop a call the host sets the stop global to 1 and the fuel to 0, and the
// guest traps at its next check. The trips into Go matter as much as the stop: native code cannot
// be preempted, and a guest that never left it would hold up every stop-the-world pause of the
// garbage collector, and with it the whole process (including whatever would have stopped the
// guest). wazero's own checks leave native code at every loop iteration for the same reason;
// these do it every Refill checks.
//
// A start section would run inside instantiation, before the host could stop anything, so it
// is removed and its function exported as abi.ReservedStart for the host to call under its
// deadline.
//
// Instrument does not trust its input, which is a plugin file, and does not rely on a later
// validation to catch what it gets wrong: it reads every instruction the way wazero v1.12
// reads it, refuses opcodes it does not know instead of guessing their size, and refuses any
// global.get or global.set of an index past the module's own globals — in an invalid module
// that would become, once the new globals are appended, a valid access that could clear them.
// The output is then compiled, and so validated, by wazero like any module.
package guard

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/wasmta/wasmta/abi"
)

// magic is the binary format's preamble: "\0asm" and version 1.
var magic = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

// Section ids (WebAssembly core spec §5.5.2; tag from the exception-handling proposal).
const (
	secCustom    = 0
	secImport    = 2
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secDataCount = 12
	secCode      = 10
	rankGlobal   = 7
	rankExport   = 8
	kindFunc     = 0
	kindTable    = 1
	kindMemory   = 2
	kindGlobal   = 3
	kindTag      = 4
	valI32       = 0x7f
	mutable      = 1
	opGlobalGet  = 0x23
	opGlobalSet  = 0x24
	opEnd        = 0x0b
)

// ErrLimit: the module would need more than the host allows (MaxTableEntries).
var ErrLimit = errors.New("more than the host allows")

// ErrReserved: the module exports one of abi.Reserved itself.
var ErrReserved = errors.New("a name the host reserves for itself")

// Refill is how many checks a guest passes between two trips into Go (see the package comment):
// the longest a garbage collector pause can wait for it is Refill times the longest
// straight-line stretch of its code. The slow path costs about as much as a host call, so a
// tight loop pays it once in a thousand iterations.
const Refill = 1000

// MaxTableEntries bounds the entries of all of a module's tables together. Each entry is 8
// bytes of host memory that max_memory does not count, and wazero lets a table without a
// maximum grow to 2^32 entries (32 GiB, allocated and copied at once), so tablesSection gives
// every table a maximum within it: table.grow past it returns -1, as memory.grow does past
// max_memory. 1 Mi entries (8 MiB) is many times the function count of a large Go plugin.
const MaxTableEntries = 1 << 20

// rank orders the known sections as the binary format requires them; custom sections may
// appear anywhere.
var rank = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: rankGlobal, 7: rankExport, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

type section struct {
	id   byte
	body []byte
}

// Instrument returns wasm with the stop global, its checks and the reserved exports added (see
// the package comment), or an error saying why the module cannot be instrumented. It never
// modifies wasm.
func Instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < len(magic) || !bytes.Equal(wasm[:len(magic)], magic) {
		return nil, errors.New("not a WebAssembly binary module (version 1)")
	}
	r := &reader{b: wasm, off: len(magic)}
	var secs []section
	known := map[byte][]byte{}
	last := 0
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("section %d size: %w", id, err)
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		if id != secCustom {
			n, ok := rank[id]
			if !ok {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			if n <= last {
				return nil, fmt.Errorf("section %d is out of order or repeated", id)
			}
			last = n
			known[id] = body
			// Every entry of a vector takes at least a byte. wazero sizes its tables from
			// the count before it reads the entries, so a corrupt count would otherwise make
			// it allocate gigabytes (and the process fail) before it finds the error.
			if id != secStart && id != secDataCount {
				br := &reader{b: body}
				if count, err := br.u32(); err == nil && uint64(count) > uint64(len(body)) {
					return nil, fmt.Errorf("section %d announces %d entries in %d bytes", id, count, len(body))
				}
			}
		}
		secs = append(secs, section{id, body})
	}

	imported, memories, err := imports(known[secImport])
	if err != nil {
		return nil, fmt.Errorf("import section: %w", err)
	}
	if body, ok := known[secMemory]; ok {
		n, err := memorySection(body)
		if err != nil {
			return nil, fmt.Errorf("memory section: %w", err)
		}
		memories += n
	}
	if memories == 0 {
		// The slow path's trip into Go is a memory.grow (a plugin always has a memory).
		return nil, errors.New("the module has no memory")
	}
	defined, entries, err := definedGlobals(known[secGlobal])
	if err != nil {
		return nil, fmt.Errorf("global section: %w", err)
	}
	globals := uint64(imported) + uint64(defined)
	if globals >= 1<<32-2 {
		return nil, errors.New("too many globals")
	}
	stop := uint32(globals)

	// The new globals, appended so no existing index moves: stop = 0, fuel = Refill.
	global := appendU32(nil, defined+2)
	global = append(global, entries...)
	global = append(global, valI32, mutable, 0x41, 0, opEnd)
	global = append(global, valI32, mutable, 0x41)
	global = appendS32(global, Refill)
	global = append(global, opEnd)

	var startFn *uint32
	if body, ok := known[secStart]; ok {
		sr := &reader{b: body}
		fn, err := sr.u32()
		if err != nil || !sr.done() {
			return nil, errors.New("start section: malformed")
		}
		startFn = &fn
	}
	export, err := exports(known[secExport], stop, startFn)
	if err != nil {
		return nil, fmt.Errorf("export section: %w", err)
	}

	var tables []byte
	if body, ok := known[secTable]; ok {
		if tables, err = tablesSection(body); err != nil {
			return nil, fmt.Errorf("table section: %w", err)
		}
	}

	var code []byte
	if body, ok := known[secCode]; ok {
		if code, err = instrumentCode(body, stop); err != nil {
			return nil, fmt.Errorf("code section: %w", err)
		}
	}

	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, magic...)
	var doneGlobal, doneExport bool
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	for _, s := range secs {
		if s.id != secCustom {
			if !doneGlobal && rank[s.id] > rankGlobal {
				emit(secGlobal, global)
				doneGlobal = true
			}
			if !doneExport && rank[s.id] > rankExport {
				emit(secExport, export)
				doneExport = true
			}
		}
		switch s.id {
		case secGlobal:
			emit(secGlobal, global)
			doneGlobal = true
		case secExport:
			emit(secExport, export)
			doneExport = true
		case secStart:
			// Dropped: the function is exported as abi.ReservedStart instead.
		case secTable:
			emit(secTable, tables)
		case secCode:
			emit(secCode, code)
		default:
			emit(s.id, s.body)
		}
	}
	if !doneGlobal {
		emit(secGlobal, global)
	}
	if !doneExport {
		emit(secExport, export)
	}
	if len(out) > 1<<32-1 {
		return nil, errors.New("module too large once instrumented")
	}
	return out, nil
}

// imports counts the imported globals and memories, reading every import to find them.
func imports(body []byte) (globals, memories uint32, err error) {
	if body == nil {
		return 0, 0, nil
	}
	r := &reader{b: body}
	n, err := r.u32()
	if err != nil {
		return 0, 0, err
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.name(); err != nil {
			return 0, 0, fmt.Errorf("import %d module: %w", i, err)
		}
		if _, err := r.name(); err != nil {
			return 0, 0, fmt.Errorf("import %d name: %w", i, err)
		}
		kind, err := r.byte()
		if err != nil {
			return 0, 0, err
		}
		switch kind {
		case kindFunc:
			_, err = r.u32()
		case kindTable:
			// The host provides none, and one would escape MaxTableEntries.
			err = fmt.Errorf("imports a table: %w", ErrLimit)
		case kindMemory:
			err = r.memoryType()
			memories++
		case kindGlobal:
			err = r.globalType()
			globals++
		case kindTag:
			var attr byte
			if attr, err = r.byte(); err == nil && attr != 0 {
				err = fmt.Errorf("tag attribute %#x", attr)
			}
			if err == nil {
				_, err = r.u32()
			}
		default:
			err = fmt.Errorf("unknown import kind %#x", kind)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("import %d: %w", i, err)
		}
	}
	if !r.done() {
		return 0, 0, errors.New("bytes after the last import")
	}
	return globals, memories, nil
}

// tablesSection rewrites the table section so that the tables' maxima add up to at most
// MaxTableEntries (see there): each table may grow by an equal share of what the minima leave.
// A module whose minima alone exceed it is refused.
func tablesSection(body []byte) ([]byte, error) {
	r := &reader{b: body}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	type table struct {
		ref      []byte
		min, max uint64
		hasMax   bool
	}
	ts := make([]table, 0, min(n, 64))
	var mins uint64
	for i := uint32(0); i < n; i++ {
		from := r.off
		if err := r.refType(); err != nil {
			return nil, fmt.Errorf("table %d: %w", i, err)
		}
		t := table{ref: body[from:r.off]}
		flags, err := r.byte()
		if err != nil {
			return nil, err
		}
		if flags > 1 { // shared or 64-bit: neither exists for tables in wazero
			return nil, fmt.Errorf("table %d: limits flags %#x", i, flags)
		}
		v, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("table %d: %w", i, err)
		}
		t.min = uint64(v)
		if flags == 1 {
			if v, err = r.u32(); err != nil {
				return nil, fmt.Errorf("table %d: %w", i, err)
			}
			t.max, t.hasMax = uint64(v), true
		}
		if mins += t.min; mins > MaxTableEntries {
			return nil, fmt.Errorf("the tables' minimum sizes exceed %d entries: %w", MaxTableEntries, ErrLimit)
		}
		ts = append(ts, t)
	}
	if !r.done() {
		return nil, errors.New("bytes after the last table")
	}
	out := appendU32(nil, n)
	if n == 0 {
		return out, nil
	}
	share := (MaxTableEntries - mins) / uint64(n)
	for _, t := range ts {
		max := t.min + share
		if t.hasMax && t.max < max {
			max = t.max // a maximum below the minimum stays, for wazero to refuse
		}
		out = append(out, t.ref...)
		out = append(out, 1)
		out = appendU32(out, uint32(t.min))
		out = appendU32(out, uint32(max))
	}
	return out, nil
}

// memorySection reads the memory section and returns its count.
func memorySection(body []byte) (uint32, error) {
	r := &reader{b: body}
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	for i := uint32(0); i < n; i++ {
		if err := r.memoryType(); err != nil {
			return 0, fmt.Errorf("memory %d: %w", i, err)
		}
	}
	if !r.done() {
		return 0, errors.New("bytes after the last memory")
	}
	return n, nil
}

// definedGlobals reads the global section and returns its count and its entries' bytes.
func definedGlobals(body []byte) (uint32, []byte, error) {
	if body == nil {
		return 0, nil, nil
	}
	r := &reader{b: body}
	n, err := r.u32()
	if err != nil {
		return 0, nil, err
	}
	start := r.off
	for i := uint32(0); i < n; i++ {
		if err := r.globalType(); err != nil {
			return 0, nil, fmt.Errorf("global %d: %w", i, err)
		}
		if err := r.constExpr(); err != nil {
			return 0, nil, fmt.Errorf("global %d: %w", i, err)
		}
	}
	if !r.done() {
		return 0, nil, errors.New("bytes after the last global")
	}
	if n == 1<<32-1 {
		return 0, nil, errors.New("too many globals")
	}
	return n, body[start:], nil
}

// exports rewrites the export section: the stop global and, if there was a start section, the
// start function are added under their reserved names, which the module must not use itself.
func exports(body []byte, stop uint32, start *uint32) ([]byte, error) {
	var n uint32
	var entries []byte
	if body != nil {
		r := &reader{b: body}
		var err error
		if n, err = r.u32(); err != nil {
			return nil, err
		}
		from := r.off
		for i := uint32(0); i < n; i++ {
			name, err := r.name()
			if err != nil {
				return nil, fmt.Errorf("export %d: %w", i, err)
			}
			if slices.Contains(abi.Reserved, string(name)) {
				return nil, fmt.Errorf("the module exports %q, %w", name, ErrReserved)
			}
			kind, err := r.byte()
			if err != nil {
				return nil, err
			}
			idx, err := r.u32()
			if err != nil {
				return nil, fmt.Errorf("export %q: %w", name, err)
			}
			if kind == kindGlobal && idx >= stop {
				return nil, fmt.Errorf("export %q: global %d does not exist", name, idx)
			}
		}
		if !r.done() {
			return nil, errors.New("bytes after the last export")
		}
		entries = body[from:]
	}
	add := uint32(2)
	if start != nil {
		add++
	}
	if n > 1<<32-1-add {
		return nil, errors.New("too many exports")
	}
	out := appendU32(nil, n+add)
	out = append(out, entries...)
	out = appendName(out, abi.ReservedStop)
	out = append(out, kindGlobal)
	out = appendU32(out, stop)
	out = appendName(out, abi.ReservedFuel)
	out = append(out, kindGlobal)
	out = appendU32(out, stop+1)
	if start != nil {
		out = appendName(out, abi.ReservedStart)
		out = append(out, kindFunc)
		out = appendU32(out, *start)
	}
	return out, nil
}

// instrumentCode rewrites every function body with its checks, and the sizes that change.
func instrumentCode(body []byte, stop uint32) ([]byte, error) {
	r := &reader{b: body}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	check := checkCode(stop)
	out := make([]byte, 0, len(body)+len(body)/8+16)
	out = appendU32(out, n)
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("function %d size: %w", i, err)
		}
		b, err := r.bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		w := walker{r: reader{b: b}, globals: stop, check: check, out: fn[:0]}
		if err := w.function(); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		fn = w.out
		if uint64(len(fn)) > 1<<32-1 {
			return nil, fmt.Errorf("function %d too large", i)
		}
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if !r.done() {
		return nil, errors.New("bytes after the last function")
	}
	return out, nil
}

// checkCode is the check inserted at function entries and loop heads:
//
//	global.get $fuel  i32.const 1  i32.sub  global.set $fuel
//	global.get $fuel  i32.const 0  i32.le_s
//	if
//	  i32.const 0  memory.grow 0  drop         ;; a trip into Go
//	  global.get $stop  if  unreachable  end
//	  i32.const Refill  global.set $fuel
//	end
func checkCode(stop uint32) []byte {
	fuel := stop + 1
	b := append([]byte{opGlobalGet}, appendU32(nil, fuel)...)
	b = append(b, 0x41, 1, 0x6b, opGlobalSet)
	b = appendU32(b, fuel)
	b = append(b, opGlobalGet)
	b = appendU32(b, fuel)
	b = append(b, 0x41, 0, 0x4c, 0x04, 0x40)
	b = append(b, 0x41, 0, 0x40, 0, 0x1a, opGlobalGet)
	b = appendU32(b, stop)
	b = append(b, 0x04, 0x40, 0x00, opEnd, 0x41)
	b = appendS32(b, Refill)
	b = append(b, opGlobalSet)
	b = appendU32(b, fuel)
	return append(b, opEnd)
}

// appendS32 appends v as a signed LEB128 number (i32.const).
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
