package guard

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/wasmta/wasmta/abi"
)

// checked walks an instrumented module with the package's own walker and reports the first
// function body that does not start with the check, or loop not immediately followed by it.
// It cannot find a loop the walker does not see (TestBlockTypeCannotHideALoop is about
// that), but it does find a check put anywhere else than where the walker means it to be.
func checked(out []byte) error {
	r := &reader{b: out, off: len(magic)}
	var exports, code []byte
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return err
		}
		switch id {
		case secExport:
			exports = body
		case secCode:
			code = body
		}
	}
	stop, found := uint32(0), false
	er := &reader{b: exports}
	n, err := er.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		name, _ := er.name()
		kind, _ := er.byte()
		idx, err := er.u32()
		if err != nil {
			return err
		}
		if kind == kindGlobal && string(name) == abi.ReservedStop {
			stop, found = idx, true
		}
	}
	if !found {
		return errors.New("no stop global exported")
	}
	check := checkCode(stop)
	if code == nil {
		return nil
	}
	cr := &reader{b: code}
	if n, err = cr.u32(); err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		size, _ := cr.u32()
		b, err := cr.bytes(int(size))
		if err != nil {
			return err
		}
		w := walker{r: reader{b: b}, globals: stop + 2}
		fr := &w.r
		locals, _ := fr.u32()
		for j := uint32(0); j < locals; j++ {
			fr.u32()
			if err := fr.valType(); err != nil {
				return err
			}
		}
		if !bytes.HasPrefix(b[fr.off:], check) {
			return fmt.Errorf("function %d does not start with the check", i)
		}
		for depth := 1; depth > 0; {
			at := fr.off
			op, err := fr.byte()
			if err != nil {
				return fmt.Errorf("function %d: %w", i, err)
			}
			d, err := w.instruction(op)
			if err != nil {
				return fmt.Errorf("function %d at %d: %w", i, at, err)
			}
			if op == 0x03 && !bytes.HasPrefix(b[fr.off:], check) {
				return fmt.Errorf("function %d: the loop at byte %d is not followed by the check", i, at)
			}
			depth += d
		}
	}
	return nil
}
