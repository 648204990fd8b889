(module
  (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
