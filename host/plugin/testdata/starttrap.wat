;; Reload fixture: a module whose start function traps (unreachable): refused at load.
(module
  (memory (export "memory") 1)
  (func $start unreachable)
  (start $start)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
