package guard

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// hiddenLoop is a module whose loop the walker would not see if it read a block type's s33
// differently from wazero. wazero reads a five-byte s33 as 33 bits, ignoring the top bit of
// the last byte, so E3 FF FF FF 3F is -29, "ref null" followed by a heap type, here type 1276
// spelled FC 09. Read as 35 bits that block type is a large type index; the heap type then
// reads as data.drop (0xfc 9) whose index swallows the loop opcode, and the loop's own block
// type (type 2) reads as a block opener: the depths still balance and the loop gets no check.
//
// spin: block (result (ref null 1276))
//
//	  loop (type 2)  nop  call $tick  (mem[0]++)  br_if 0 (mem[4] == 0)  end
//	  unreachable
//	end drop
//
// tick is a host function, so a loop that is not stopped still lets the collector run, and
// mem[4] = 1 lets the test end it.
func hiddenLoop() []byte {
	const types = 1277
	ts := appendU32(nil, types)
	for i := 0; i < types; i++ {
		ts = append(ts, 0x60, 0, 0)
	}
	imp := append(appendName(appendName([]byte{1}, "env"), "tick"), kindFunc, 0)
	exp := append(appendName([]byte{2}, "spin"), kindFunc, 1)
	exp = append(appendName(exp, "memory"), kindMemory, 0)
	body := []byte{0, // no locals
		0x02, 0xe3, 0xff, 0xff, 0xff, 0x3f, 0xfc, 0x09, // block (result (ref null 1276))
		0x03, 0x02, // loop (type 2)
		0x01,       // nop
		0x10, 0x00, // call $tick
		0x41, 0, 0x41, 0, 0x28, 2, 0, 0x41, 1, 0x6a, 0x36, 2, 0, // mem[0]++
		0x41, 4, 0x28, 2, 0, 0x45, 0x0d, 0, // br_if 0 (mem[4] == 0)
		opEnd, 0x00, opEnd, 0x1a, opEnd}
	cs := append(appendU32([]byte{1}, uint32(len(body))), body...)
	return mod(sec(1, ts...), sec(2, imp...), sec(3, 1, 0), sec(5, 1, 0, 1), sec(7, exp...), sec(10, cs...))
}

func TestBlockTypeCannotHideALoop(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().WithFunc(func() {}).Export("tick").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	wasm := hiddenLoop()
	if _, err := rt.CompileModule(ctx, wasm); err != nil {
		t.Fatalf("wazero refuses the module (the attack needs it valid): %v", err)
	}
	out, err := Instrument(wasm)
	if err != nil {
		return // refused: as good as instrumented
	}
	m, err := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	done := spinning(t, ctx, m)
	stopGuest(m)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("got %v, want an unreachable trap", err)
		}
	case <-time.After(5 * time.Second):
		m.Memory().WriteUint32Le(4, 1) // let it end
		<-done
		t.Fatal("the loop kept running after the stop global was set: it has no check")
	}
}
