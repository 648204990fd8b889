package guard

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmta/wasmta/abi"
)

// FuzzInstrument: for any module wazero compiles (as the host builds its runtime), Instrument
// either refuses it for a reason of its own (no memory, a reserved export name) or returns a
// module that compiles too and, instantiated, exports the stop and fuel globals at their initial
// values. Any other refusal of a module wazero accepts is a walker that disagrees with wazero.
func FuzzInstrument(f *testing.F) {
	for _, p := range committed(f) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithMemoryLimitPages(16))
	f.Cleanup(func() { rt.Close(ctx) })
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if implausible(wasm) {
			// wazero sizes its tables from the counts before it reads the entries: such
			// inputs make it allocate gigabytes, so only Instrument sees them (it must not
			// panic; sections it does not read, it leaves for wazero to refuse).
			_, _ = Instrument(wasm)
			return
		}
		cm, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			out, err := Instrument(wasm) // must not panic; whatever it returns, wazero refuses
			// Only a start function of the wrong type may become valid: it is an export now,
			// and the host checks its type before it calls it.
			if err == nil && !bytes.Contains(out, []byte(abi.ReservedStart)) {
				if cm, err := rt.CompileModule(ctx, out); err == nil {
					cm.Close(ctx)
					t.Fatal("instrumenting a module wazero refuses made one it accepts")
				}
			}
			return
		}
		cm.Close(ctx)
		out, err := Instrument(wasm)
		if err != nil {
			if errors.Is(err, ErrReserved) || errors.Is(err, ErrLimit) || strings.Contains(err.Error(), "no memory") {
				return
			}
			t.Fatalf("wazero compiles the module, Instrument refuses it: %v", err)
		}
		cm, err = rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("the instrumented module does not compile: %v", err)
		}
		if err := checked(out); err != nil {
			t.Fatalf("a check is missing: %v", err)
		}
		defer cm.Close(ctx)
		if len(cm.ImportedFunctions()) > 0 || len(cm.ImportedMemories()) > 0 {
			return // nothing to instantiate it with
		}
		m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			return // e.g. a data segment out of bounds, or an imported global or table
		}
		defer m.Close(ctx)
		stop, ok1 := m.ExportedGlobal(abi.ReservedStop).(api.MutableGlobal)
		fuel, ok2 := m.ExportedGlobal(abi.ReservedFuel).(api.MutableGlobal)
		if !ok1 || !ok2 || stop.Type() != api.ValueTypeI32 || stop.Get() != 0 || fuel.Get() != Refill {
			t.Fatalf("stop %v, fuel %v", m.ExportedGlobal(abi.ReservedStop), m.ExportedGlobal(abi.ReservedFuel))
		}
	})
}

// implausible reports whether a section of wasm announces more entries than it has bytes (every
// vector section but start and data count, whose first number is not a count of entries),
// including a last section cut short.
func implausible(wasm []byte) bool {
	if len(wasm) < len(magic) {
		return false
	}
	r := &reader{b: wasm, off: len(magic)}
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return false
		}
		size, err := r.u32()
		if err != nil {
			return false
		}
		body, err := r.bytes(int(size))
		if err != nil { // a section cut short: wazero reads its count all the same
			body, r.off = r.b[r.off:], len(r.b)
		}
		if id == secCustom || id == secStart || id == 12 {
			continue
		}
		br := &reader{b: body}
		if n, err := br.u32(); err == nil && uint64(n) > uint64(len(body)) {
			return true
		}
	}
	return false
}
