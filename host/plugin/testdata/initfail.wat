(module
  (import "wasmta" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "config missing")  ;; 14
  (func (export "wasmta_abi_v1"))
  (func (export "wasmta_init") (result i32)
    (call $set_error (i32.const 0) (i32.const 14))
    (i32.const 3))
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
