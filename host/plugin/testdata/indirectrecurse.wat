;; The hook recurses through call_indirect, and each frame loops a while before it recurses
;; again: every entry and loop head is a check, so the deadline ends it before the stack runs
;; out.
(module
  (memory (export "memory") 1)
  (type $v (func))
  (table 1 funcref)
  (elem (i32.const 0) $r)
  (func $r (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
    (call_indirect (type $v) (i32.const 0)))
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (call_indirect (type $v) (i32.const 0))
    (i32.const 0)))
