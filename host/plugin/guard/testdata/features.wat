;; One of nearly every kind of instruction wazero v1.12 accepts (SIMD, threads, tail calls, bulk
;; memory, reference types, multi-value, saturating truncation, sign extension), so that the
;; guard's walker meets each kind of immediate: instrumented, this must still compile and
;; compute the same results. Built with: wat2wasm --enable-all features.wat
(module
  (type $ii (func (param i32) (result i32)))
  (type $pair (func (param i32) (result i32 i32)))
  (import "env" "g" (global $imported i32))
  (memory (export "memory") 1 2 shared)
  (table $t 4 funcref)
  (table $ext 1 externref)
  (global $mine (mut i64) (i64.const -5))
  (elem $e func $inc $double)
  (data $d "0123456789abcdef")
  (func $inc (type $ii) (i32.add (local.get 0) (i32.const 1)))
  (func $double (type $ii) (i32.shl (local.get 0) (i32.const 1)))
  ;; Sums a few results of every kind into one i32.
  (func (export "run") (param $n i32) (result i32)
    (local $acc i32) (local $v v128) (local $f f64) (local $r funcref)
    ;; loops, br_table, block with a type index (multi-value)
    (block $out
      (loop $l
        (br_if $out (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (block $a (block $b (br_table $a $b $l (i32.and (local.get $n) (i32.const 3)))))
        (br $l)))
    local.get $acc
    block (type $pair) (param i32) (result i32 i32)
      i32.const 2
    end
    i32.add
    local.set $acc
    ;; bulk memory, data and element segments, tables
    (memory.init $d (i32.const 0) (i32.const 0) (i32.const 16))
    (data.drop $d)
    (memory.copy (i32.const 32) (i32.const 0) (i32.const 16))
    (memory.fill (i32.const 64) (i32.const 7) (i32.const 4))
    (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 2))
    (elem.drop $e)
    (table.copy $t $t (i32.const 2) (i32.const 0) (i32.const 2))
    (drop (table.grow $t (ref.null func) (i32.const 1)))
    (table.fill $t (i32.const 4) (ref.null func) (i32.const 1))
    (local.set $acc (i32.add (local.get $acc) (table.size $t)))
    (local.set $r (table.get $t (i32.const 1)))
    (table.set $t (i32.const 3) (local.get $r))
    (table.set $ext (i32.const 0) (ref.null extern))
    (local.set $acc (i32.add (local.get $acc) (ref.is_null (ref.func $inc))))
    (local.set $acc (i32.add (local.get $acc) (call_indirect $t (type $ii) (i32.const 10) (i32.const 3))))
    (local.set $acc (select (result i32) (local.get $acc) (i32.const 0) (i32.const 1)))
    ;; SIMD: const, shuffle, lanes, memory forms, an opcode past 0x7f (two-byte encoding)
    (local.set $v (v128.const i32x4 1 2 3 4))
    (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))
    (local.set $v (i32x4.replace_lane 1 (local.get $v) (i32.const 9)))
    (local.set $v (v128.load32_lane 2 (i32.const 0) (local.get $v)))
    (v128.store64_lane offset=128 0 (i32.const 0) (local.get $v))
    (local.set $v (i64x2.abs (v128.load offset=32 align=8 (i32.const 0))))
    (local.set $v (v128.load32_zero (i32.const 4)))
    (local.set $acc (i32.add (local.get $acc) (i32x4.extract_lane 0 (local.get $v))))
    ;; threads
    (atomic.fence)
    (drop (i32.atomic.rmw.add (i32.const 8) (i32.const 1)))
    (drop (i64.atomic.rmw.cmpxchg offset=16 (i32.const 0) (i64.const 0) (i64.const 1)))
    (drop (memory.atomic.notify (i32.const 0) (i32.const 0)))
    ;; numbers: constants, saturating truncation, sign extension, memory.size/grow
    (local.set $f (f64.const 3.75))
    (local.set $acc (i32.add (local.get $acc) (i32.trunc_sat_f64_s (local.get $f))))
    (local.set $acc (i32.add (local.get $acc) (i32.extend8_s (i32.const 0x7f))))
    (local.set $acc (i32.add (local.get $acc) (i32.trunc_f32_u (f32.const 2.5))))
    (global.set $mine (i64.add (global.get $mine) (i64.const 0x7fffffffffff)))
    (local.set $acc (i32.add (local.get $acc) (i32.wrap_i64 (global.get $mine))))
    (local.set $acc (i32.add (local.get $acc) (global.get $imported)))
    (local.set $acc (i32.add (local.get $acc) (memory.size)))
    (drop (memory.grow (i32.const 0)))
    (return_call $tail (local.get $acc)))
  (func $tail (param i32) (result i32)
    (return_call_indirect $t (type $ii) (local.get 0) (i32.const 0))))
