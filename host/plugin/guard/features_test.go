package guard

import (
	"context"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// Features wazero has beyond WebAssembly 2.0, behind flags the host does not set; the walker
// reads their instructions all the same.
const extraFeatures = experimental.CoreFeaturesThreads | experimental.CoreFeaturesTailCall |
	experimental.CoreFeaturesExceptionHandling

// testdata/features.wasm computes the same before and after instrumentation.
func TestFeaturesSameResult(t *testing.T) {
	ctx := context.Background()
	code, err := os.ReadFile("testdata/features.wasm")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Instrument(code)
	if err != nil {
		t.Fatal(err)
	}
	// "env" exports the i32 global g = 5 that features.wasm imports.
	env := mod(sec(6, 1, valI32, 0, 0x41, 5, opEnd), sec(7, append(appendName([]byte{1}, "g"), kindGlobal, 0)...))
	run := func(wasm []byte) uint64 {
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2|extraFeatures))
		defer rt.Close(ctx)
		if _, err := rt.InstantiateWithConfig(ctx, env, wazero.NewModuleConfig().WithName("env")); err != nil {
			t.Fatal(err)
		}
		m, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("features"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := m.ExportedFunction("run").Call(ctx, 9)
		if err != nil {
			t.Fatal(err)
		}
		return r[0]
	}
	if before, after := run(code), run(out); before != after {
		t.Fatalf("run(9) = %d before instrumentation, %d after", before, after)
	}
}

// Exception handling (try_table, throw) as wazero reads it: wabt cannot write it yet, so the
// function is spelled out in bytes.
func TestExceptionHandling(t *testing.T) {
	ctx := context.Background()
	body := []byte{
		0x02, 0x40, // block
		0x1f, 0x40, 1, 2, 0, // try_table (catch_all 0)
		0x03, 0x40, 0x08, 0, opEnd, // loop: throw 0
		opEnd, // end try_table
		opEnd, // end block
	}
	in := mod(typeVoid, oneFunc, memory, sec(13, 1, 0, 0), // one tag of type 0
		sec(7, append(appendName([]byte{1}, "f"), kindFunc, 0)...), code(body...))
	out, err := Instrument(in)
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2|extraFeatures))
	defer rt.Close(ctx)
	for _, wasm := range [][]byte{in, out} {
		m, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.ExportedFunction("f").Call(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
