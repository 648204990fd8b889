;; Message hook: rejects with a custom code and enhanced code.
(module
  (import "wasmta" "reject" (func $reject (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "5.7.1 no thanks")  ;; 15
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (drop (call $reject (i32.const 550) (i32.const 0) (i32.const 15)))
    (i32.const 0)))
