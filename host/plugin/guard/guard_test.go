package guard

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmta/wasmta/abi"
)

// committed lists every .wasm file of the repository (fuzz corpora aside).
func committed(t testing.TB) []string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "target") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".wasm") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("found only %d .wasm files under %s", len(files), root)
	}
	return files
}

// newRuntime is built as the host builds it: the compiler, no WithCloseOnContextDone.
func newRuntime(ctx context.Context) wazero.Runtime {
	return wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
}

// Every committed module instruments, and compiles after if it compiled before.
func TestCommittedModules(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(ctx)
	defer rt.Close(ctx)
	for _, f := range committed(t) {
		code, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Instrument(code)
		if errors.Is(err, ErrReserved) && filepath.Base(f) == "reserved.wasm" {
			continue // the plugin test of that refusal
		}
		if errors.Is(err, ErrLimit) && filepath.Base(f) == "bigtable.wasm" {
			continue // the plugin test of that refusal
		}
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := checked(out); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		_, before := rt.CompileModule(ctx, code)
		_, after := rt.CompileModule(ctx, out)
		if (before == nil) != (after == nil) {
			t.Errorf("%s: compiles before: %v; after: %v", f, before, after)
		}
	}
}

// A loop that never ends traps once the stop global is set, with no help from the runtime;
// the start function is not run by instantiation but exported, and the module's own global
// keeps its index.
func TestStopEndsALoop(t *testing.T) {
	ctx := context.Background()
	code, err := os.ReadFile("testdata/spin.wasm")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Instrument(code)
	if err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig())
	if err != nil {
		t.Fatal(err)
	}
	g := mod.ExportedFunction("g")
	if r, err := g.Call(ctx); err != nil || r[0] != 7 {
		t.Fatalf("before wasmta.start: g() = %v, %v; want 7 (instantiation ran the start function)", r, err)
	}
	if _, err := mod.ExportedFunction(abi.ReservedStart).Call(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := g.Call(ctx); err != nil || r[0] != 8 {
		t.Fatalf("after wasmta.start: g() = %v, %v; want 8", r, err)
	}
	stop, ok := mod.ExportedGlobal(abi.ReservedStop).(api.MutableGlobal)
	if !ok || stop.Type() != api.ValueTypeI32 || stop.Get() != 0 {
		t.Fatalf("stop global: %v", mod.ExportedGlobal(abi.ReservedStop))
	}
	done := spinning(t, ctx, mod)
	// A collection stops the world: it must not wait for the spinning guest forever.
	gc := make(chan struct{})
	go func() { runtime.GC(); close(gc) }()
	select {
	case <-gc:
	case <-time.After(10 * time.Second): // only fires if the world was not stopped for good
		t.Fatal("a garbage collection waited for the spinning guest")
	}
	stopGuest(mod)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("got %v, want an unreachable trap", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop kept running after the stop global was set")
	}
}

// Small hand-made modules for the refusals: the binary format's pieces.
func sec(id byte, body ...byte) []byte {
	return append(appendU32([]byte{id}, uint32(len(body))), body...)
}

func mod(secs ...[]byte) []byte {
	out := append([]byte{}, magic...)
	for _, s := range secs {
		out = append(out, s...)
	}
	return out
}

var (
	typeVoid = sec(1, 1, 0x60, 0, 0) // one type: () -> ()
	oneFunc  = sec(3, 1, 0)          // one function of type 0
	memory   = sec(5, 1, 0, 1)       // one memory of one page
)

// code returns a code section with one function of the given body (no locals, end added).
func code(body ...byte) []byte {
	fn := append([]byte{0}, body...)
	fn = append(fn, opEnd)
	return sec(10, append(appendU32([]byte{1}, uint32(len(fn))), fn...)...)
}

func TestRefusals(t *testing.T) {
	exportFunc := func(name string) []byte {
		return sec(7, append(appendName([]byte{1}, name), kindFunc, 0)...)
	}
	mutGlobal := sec(6, 1, valI32, mutable, 0x41, 0, opEnd)
	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		// With no globals, index 0 is the one the stop global would take.
		{"global.get of the stop index", mod(typeVoid, oneFunc, memory, code(opGlobalGet, 0, 0x1a)), "global 0 does not exist"},
		{"global.set of the stop index", mod(typeVoid, oneFunc, memory, mutGlobal, code(0x41, 0, 0x24, 1)), "global 1 does not exist"},
		{"global.set of the fuel index", mod(typeVoid, oneFunc, memory, mutGlobal, code(0x41, 0, 0x24, 2)), "global 2 does not exist"},
		{"exports wasmta.fuel", mod(typeVoid, oneFunc, memory, exportFunc(abi.ReservedFuel), code()), `exports "wasmta.fuel"`},
		{"no memory", mod(typeVoid, oneFunc, code()), "no memory"},
		{"64-bit memory", mod(typeVoid, oneFunc, sec(5, 1, 4, 1), code()), "64-bit memory"},
		{"global.get past the stop index", mod(typeVoid, oneFunc, memory, mutGlobal, code(opGlobalGet, 5, 0x1a)), "global 5 does not exist"},
		{"export of the stop index", mod(typeVoid, oneFunc, memory, sec(7, append(appendName([]byte{1}, "g"), kindGlobal, 0)...), code()), `export "g": global 0 does not exist`},
		{"exports wasmta.stop", mod(typeVoid, oneFunc, memory, exportFunc(abi.ReservedStop), code()), `exports "wasmta.stop", a name the host reserves`},
		{"exports wasmta.start", mod(typeVoid, oneFunc, memory, exportFunc(abi.ReservedStart), code()), `exports "wasmta.start"`},
		{"legacy try", mod(typeVoid, oneFunc, memory, code(0x06, 0x40, opEnd)), "unknown opcode 0x6"},
		{"unassigned SIMD opcode", mod(typeVoid, oneFunc, memory, code(0xfd, 0x9a)), "unknown opcode 0xfd 0x9a"},
		{"unknown 0xfc opcode", mod(typeVoid, oneFunc, memory, code(0xfc, 18)), "unknown opcode 0xfc 18"},
		{"missing end", mod(typeVoid, oneFunc, memory, sec(10, 1, 3, 0, 0x02, 0x40)), "missing end"},
		{"bytes after end", mod(typeVoid, oneFunc, memory, sec(10, 1, 3, 0, opEnd, 0x01)), "after the function's final end"},
		{"section out of order", mod(oneFunc, typeVoid), "out of order"},
		{"repeated section", mod(typeVoid, typeVoid), "out of order or repeated"},
		{"garbage", []byte("this is not WebAssembly at all"), "not a WebAssembly binary module"},
		{"empty", nil, "not a WebAssembly binary module"},
		{"section past the end", append(mod(typeVoid), 10, 50, 1), "unexpected end"},
		{"count past the section's size", mod(sec(1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x60)), "section 1 announces 4294967295 entries in 6 bytes"},
		{"more functions than bodies", mod(typeVoid, oneFunc, memory, sec(10, 2, 2, 0, opEnd)), "function 1 size: unexpected end"},
		{"overlong LEB", append(mod(), 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), "section 1 size: LEB128 number longer than 5 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Instrument(tc.wasm)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (%d bytes), want an error containing %q", err, len(out), tc.want)
			}
		})
	}
}

// Every cut of a real plugin inside its code section is refused with an error, never a panic.
func TestTruncated(t *testing.T) {
	code, err := os.ReadFile("../testdata/meta.wasm")
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for n := range len(code) {
		if _, err := Instrument(code[:n]); err != nil {
			refused++
		}
	}
	// A cut at a section boundary is a shorter, well-formed module; every other cut fails.
	if refused < len(code)-12 {
		t.Fatalf("%d of %d truncations refused", refused, len(code))
	}
}

// The checks land where they should: after the locals and after each loop's block type,
// nowhere else; a module with no global section gets one, in order, and the exports.
func TestOutputShape(t *testing.T) {
	// (func (local i32) (loop (br 0))) with no globals: the stop global is index 0, fuel 1.
	in := mod(typeVoid, oneFunc, memory, sec(10, 1, 9, 1, 1, valI32, 0x03, 0x40, 0x0c, 0, opEnd, opEnd))
	out, err := Instrument(in)
	if err != nil {
		t.Fatal(err)
	}
	check := []byte{
		opGlobalGet, 1, 0x41, 1, 0x6b, opGlobalSet, 1, // fuel--
		opGlobalGet, 1, 0x41, 0, 0x4c, 0x04, 0x40, // if fuel <= 0
		0x41, 0, 0x40, 0, 0x1a, // memory.grow 0, drop
		opGlobalGet, 0, 0x04, 0x40, 0x00, opEnd, // if stop: unreachable
		0x41, 0xe8, 0x07, opGlobalSet, 1, // fuel = 1000
		opEnd,
	}
	body := append([]byte{1, 1, valI32}, check...)
	body = append(body, 0x03, 0x40)
	body = append(body, check...)
	body = append(body, 0x0c, 0, opEnd, opEnd)
	exports := appendName([]byte{2}, abi.ReservedStop)
	exports = append(exports, kindGlobal, 0)
	exports = appendName(exports, abi.ReservedFuel)
	exports = append(exports, kindGlobal, 1)
	want := mod(typeVoid, oneFunc, memory,
		sec(6, 2, valI32, mutable, 0x41, 0, opEnd, valI32, mutable, 0x41, 0xe8, 0x07, opEnd),
		sec(7, exports...),
		sec(10, append(appendU32([]byte{1}, uint32(len(body))), body...)...))
	if string(out) != string(want) {
		t.Fatalf("got  % x\nwant % x", out, want)
	}
}

// spinning calls m's "spin" export in the background and returns once its loop runs (the
// counter at memory offset 0 passed 1000), so the check that fires next is the loop's. The
// channel gets the call's error.
func spinning(t *testing.T, ctx context.Context, m api.Module) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := m.ExportedFunction("spin").Call(ctx)
		done <- err
	}()
	for n, deadline := uint32(0), time.Now().Add(10*time.Second); n < 1000; n, _ = m.Memory().ReadUint32Le(0) {
		if time.Now().After(deadline) {
			t.Fatal("the loop did not start")
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

// stopGuest does what the host's watchdog does to an overdue call.
func stopGuest(m api.Module) {
	m.ExportedGlobal(abi.ReservedStop).(api.MutableGlobal).Set(1)
	m.ExportedGlobal(abi.ReservedFuel).(api.MutableGlobal).Set(0)
}
