;; The hook stages meta, then fails with a reason: nothing it staged may be applied.
(module
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "tenant")   ;; 6
  (data (i32.const 16) "leaked")  ;; 6
  (data (i32.const 32) "boom")    ;; 4
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (drop (call $set_meta (i32.const 0) (i32.const 6) (i32.const 16) (i32.const 6)))
    (call $set_error (i32.const 32) (i32.const 4))
    (i32.const 7)))
