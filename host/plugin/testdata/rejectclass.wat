;; reject(550, "4.7.1 ...") mixes classes; records the status it got in meta "status" ("-2"...),
;; then rejects properly so the hook still has an effect to check.
(module
  (import "wasmta" "reject" (func $reject (param i32 i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "4.7.1 wrong class")  ;; 17
  (data (i32.const 48) "status")            ;; 6
  (data (i32.const 64) "-0")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $rc i32)
    (local.set $rc (call $reject (i32.const 550) (i32.const 0) (i32.const 17)))
    (i32.store8 (i32.const 65) (i32.add (i32.const 48) (i32.sub (i32.const 0) (local.get $rc))))
    (drop (call $set_meta (i32.const 48) (i32.const 6) (i32.const 64) (i32.const 2)))
    (i32.const 0)))
