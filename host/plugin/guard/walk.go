package guard

import (
	"errors"
	"fmt"
)

// errEOF: a length, count or immediate runs past the end of its section or function.
var errEOF = errors.New("unexpected end of input")

// reader reads the binary format's primitives, bounds-checked: malformed input is an error,
// never a panic.
type reader struct {
	b   []byte
	off int
}

func (r *reader) done() bool { return r.off >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errEOF
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, errEOF
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b, nil
}

// leb reads a LEB128 number of at most max bytes and returns its low 64 bits. The length is
// what matters for skipping an immediate; wazero reads the same number of bytes for any
// encoding it accepts, and refuses the module for the ones it does not.
func (r *reader) leb(max int) (uint64, error) {
	var v uint64
	for i := 0; i < max; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i < 10 {
			v |= uint64(c&0x7f) << (7 * i)
		}
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("LEB128 number longer than %d bytes", max)
}

func (r *reader) u32() (uint32, error) {
	start := r.off
	v, err := r.leb(5)
	if err != nil {
		return 0, err
	}
	if r.off-start == 5 && r.b[r.off-1] > 0x0f {
		return 0, errors.New("u32 out of range")
	}
	return uint32(v), nil
}

// s33 reads a signed 33-bit number (block types, heap types) as a signed value, the value
// wazero's leb128.DecodeInt33AsInt64 gives: of a five-byte number only the low 33 of its 35
// bits count, the top one ignored. Reading all 35 made E3 FF FF FF 3F a large type index where
// wazero reads -29 (ref null, a heap type follows): the walker then took the heap type's bytes
// for instructions and could be made to swallow a loop opcode (TestBlockTypeCannotHideALoop).
func (r *reader) s33() (int64, error) {
	start := r.off
	v, err := r.leb(5)
	if err != nil {
		return 0, err
	}
	n := 7 * (r.off - start)
	if n < 33 && r.b[r.off-1]&0x40 != 0 {
		v |= ^uint64(0) << n // sign-extend
	}
	v &= 1<<33 - 1
	if v&(1<<32) != 0 {
		return int64(v) - 1<<33, nil
	}
	return int64(v), nil
}

func (r *reader) name() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	return r.bytes(int(n))
}

// Value type bytes, and the prefixes of a (ref null? heaptype) type (function references).
const (
	refNull    = 0x63
	refNonNull = 0x64
)

func knownValType(b byte) bool {
	switch b {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69: // i32 i64 f32 f64 v128 funcref externref exnref
		return true
	}
	return false
}

// valType reads a value type: one byte, or a ref prefix and a heap type.
func (r *reader) valType() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	if b == refNull || b == refNonNull {
		_, err = r.s33()
		return err
	}
	if !knownValType(b) {
		return fmt.Errorf("unknown value type %#x", b)
	}
	return nil
}

func (r *reader) refType() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	switch b {
	case refNull, refNonNull:
		_, err = r.s33()
		return err
	case 0x70, 0x6f, 0x69:
		return nil
	}
	return fmt.Errorf("unknown reference type %#x", b)
}

// limits reads a table or memory type's limits: flags (bit 0: a maximum follows; bit 1:
// shared; bit 2: 64-bit, so u64 bounds), minimum, maximum. It returns the flags.
func (r *reader) limits() (byte, error) {
	flags, err := r.byte()
	if err != nil {
		return 0, err
	}
	if flags > 7 {
		return 0, fmt.Errorf("unknown limits flags %#x", flags)
	}
	max := 5
	if flags&4 != 0 {
		max = 10
	}
	if _, err := r.leb(max); err != nil {
		return 0, err
	}
	if flags&1 != 0 {
		_, err = r.leb(max)
	}
	return flags, err
}

// memoryType reads a memory's limits; a 64-bit memory is refused (wazero has none, and the
// checks' memory.grow takes an i32).
func (r *reader) memoryType() error {
	flags, err := r.limits()
	if err == nil && flags&4 != 0 {
		err = errors.New("64-bit memory")
	}
	return err
}

func (r *reader) globalType() error {
	if err := r.valType(); err != nil {
		return err
	}
	m, err := r.byte()
	if err != nil {
		return err
	}
	if m > 1 {
		return fmt.Errorf("unknown global mutability %#x", m)
	}
	return nil
}

// constExpr skips a constant expression (a global's initialiser) up to its end.
func (r *reader) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case opEnd:
			return nil
		case 0x41: // i32.const
			_, err = r.leb(5)
		case 0x42: // i64.const
			_, err = r.leb(10)
		case 0x43:
			_, err = r.bytes(4)
		case 0x44:
			_, err = r.bytes(8)
		case opGlobalGet, 0xd2: // global.get, ref.func
			_, err = r.u32()
		case 0xd0: // ref.null heaptype
			_, err = r.s33()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const i32/i64 add, sub, mul
		case 0xfd: // v128.const
			var sub byte
			if sub, err = r.byte(); err == nil && sub != 0x0c {
				err = fmt.Errorf("opcode 0xfd %#x in a constant expression", sub)
			}
			if err == nil {
				_, err = r.bytes(16)
			}
		default:
			err = fmt.Errorf("opcode %#x in a constant expression", op)
		}
		if err != nil {
			return err
		}
	}
}

// walker copies one function body into out, inserting check after the locals and after each
// loop's block type.
type walker struct {
	r       reader
	globals uint32 // the module's own global count: the stop global's index
	check   []byte
	out     []byte
	copied  int // r.b[:copied] is in out already
}

func (w *walker) insert() {
	w.out = append(w.out, w.r.b[w.copied:w.r.off]...)
	w.out = append(w.out, w.check...)
	w.copied = w.r.off
}

func (w *walker) function() error {
	r := &w.r
	n, err := r.u32()
	if err != nil {
		return fmt.Errorf("locals: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.u32(); err != nil {
			return fmt.Errorf("locals: %w", err)
		}
		if err := r.valType(); err != nil {
			return fmt.Errorf("locals: %w", err)
		}
	}
	w.insert()
	for depth := 1; depth > 0; {
		if r.done() {
			return errors.New("body ends inside a block (missing end)")
		}
		at := r.off
		op, _ := r.byte()
		d, err := w.instruction(op)
		if err != nil {
			return fmt.Errorf("at byte %d of the body: %w", at, err)
		}
		depth += d
	}
	if !r.done() {
		return errors.New("bytes after the function's final end")
	}
	w.out = append(w.out, r.b[w.copied:]...)
	return nil
}

// instruction reads op's immediates and returns how it changes the block depth. The immediates
// follow wazero v1.12's validator (internal/wasm/func_validation.go), including where it reads
// a single byte that the specification encodes as LEB128 (SIMD and atomic sub-opcodes), so
// both see the same instruction boundaries.
func (w *walker) instruction(op byte) (int, error) {
	r := &w.r
	var err error
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0a || op == 0x0f || op == 0x1a || op == 0x1b ||
		(op >= 0x45 && op <= 0xc4) || op == 0xd1 || op == 0xd4:
		// unreachable nop else throw_ref return drop select, numeric, ref.is_null, ref.as_non_null
		return 0, nil
	case op == 0x02 || op == 0x04: // block, if
		return 1, w.blockType()
	case op == 0x03: // loop: the check runs on every iteration
		if err := w.blockType(); err != nil {
			return 0, err
		}
		w.insert()
		return 1, nil
	case op == 0x1f: // try_table blocktype vec(catch)
		if err := w.blockType(); err != nil {
			return 0, err
		}
		n, err := r.u32()
		if err != nil {
			return 0, err
		}
		for i := uint32(0); i < n; i++ {
			kind, err := r.byte()
			if err != nil {
				return 0, err
			}
			switch kind {
			case 0, 1: // catch, catch_ref: tag, label
				if _, err = r.u32(); err == nil {
					_, err = r.u32()
				}
			case 2, 3: // catch_all, catch_all_ref: label
				_, err = r.u32()
			default:
				err = fmt.Errorf("unknown catch kind %#x", kind)
			}
			if err != nil {
				return 0, err
			}
		}
		return 1, nil
	case op == opEnd:
		return -1, nil
	case op == 0x08 || op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0x14 || op == 0x15 ||
		(op >= 0x20 && op <= 0x22) || op == 0x25 || op == 0x26 || op == 0xd2 || op == 0xd5 || op == 0xd6:
		// throw, br, br_if, call, return_call, call_ref, return_call_ref, local.*, table.get/set,
		// ref.func, br_on_null, br_on_non_null: one index
		_, err = r.u32()
	case op == 0x0e: // br_table vec(label) label
		var n uint32
		if n, err = r.u32(); err != nil {
			return 0, err
		}
		for i := uint64(0); i <= uint64(n) && err == nil; i++ {
			_, err = r.u32()
		}
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect: type, table
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	case op == 0x1c: // select t*: wazero takes exactly one type, its count read as a byte
		var n byte
		if n, err = r.byte(); err == nil && n != 1 {
			err = fmt.Errorf("select with %d types", n)
		}
		if err == nil {
			err = r.valType()
		}
	case op == opGlobalGet || op == opGlobalSet:
		var idx uint32
		if idx, err = r.u32(); err == nil && idx >= w.globals {
			err = fmt.Errorf("global %d does not exist (the module has %d)", idx, w.globals)
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		err = r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		_, err = r.u32()
	case op == 0x41:
		_, err = r.leb(5)
	case op == 0x42:
		_, err = r.leb(10)
	case op == 0x43:
		_, err = r.bytes(4)
	case op == 0x44:
		_, err = r.bytes(8)
	case op == 0xd0: // ref.null heaptype
		_, err = r.s33()
	case op == 0xfc:
		err = w.misc()
	case op == 0xfd:
		err = w.simd()
	case op == 0xfe:
		err = w.atomic()
	default:
		return 0, fmt.Errorf("unknown opcode %#x", op)
	}
	return 0, err
}

// blockType reads a block type: 0x40, a value type or a type index (s33), as wazero's
// DecodeBlockType does.
func (w *walker) blockType() error {
	v, err := w.r.s33()
	if err != nil {
		return err
	}
	if v == refNull-0x80 || v == refNonNull-0x80 { // the one-byte s33 of 0x63, 0x64
		_, err = w.r.s33()
	}
	return err
}

// memarg reads align (bit 6: a memory index follows) and offset.
func (r *reader) memarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	_, err = r.leb(10)
	return err
}

// misc: the 0xfc prefix, sub-opcode as LEB128 u32 (wazero requires it to fit a byte).
func (w *walker) misc() error {
	r := &w.r
	sub, err := r.u32()
	if err != nil {
		return err
	}
	n := 0 // index immediates
	switch {
	case sub <= 7: // saturating truncations
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17):
		n = 1 // data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
	case sub == 8 || sub == 10 || sub == 12 || sub == 14:
		n = 2 // memory.init, memory.copy, table.init, table.copy
	default:
		return fmt.Errorf("unknown opcode 0xfc %d", sub)
	}
	for ; n > 0; n-- {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// simdUnassigned are the opcodes below 0x100 that the SIMD proposal leaves free; wazero reads
// the SIMD sub-opcode as one byte (a two-byte LEB128 opcode's second byte, 0x01, then reads as
// a nop), and so does this walker.
var simdUnassigned = map[byte]bool{0x9a: true, 0xa2: true, 0xa5: true, 0xa6: true, 0xaf: true, 0xb0: true,
	0xb2: true, 0xb3: true, 0xb4: true, 0xbb: true, 0xc2: true, 0xc5: true, 0xc6: true, 0xcf: true,
	0xd0: true, 0xd2: true, 0xd3: true, 0xd4: true, 0xe2: true, 0xee: true}

func (w *walker) simd() error {
	r := &w.r
	sub, err := r.byte()
	if err != nil {
		return err
	}
	switch {
	case simdUnassigned[sub]:
		return fmt.Errorf("unknown opcode 0xfd %#x", sub)
	case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // loads, store, load_zero
		return r.memarg()
	case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle
		_, err = r.bytes(16)
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		_, err = r.byte()
	case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane
		if err = r.memarg(); err == nil {
			_, err = r.byte()
		}
	}
	return err
}

// atomic: the 0xfe prefix (threads), sub-opcode read as one byte as wazero does.
func (w *walker) atomic() error {
	r := &w.r
	sub, err := r.byte()
	if err != nil {
		return err
	}
	switch {
	case sub == 0x03: // atomic.fence
		_, err = r.byte()
		return err
	case sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e):
		return r.memarg()
	}
	return fmt.Errorf("unknown opcode 0xfe %#x", sub)
}
