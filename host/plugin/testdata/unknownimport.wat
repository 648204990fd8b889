(module
  (import "wasmta" "frobnicate" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
