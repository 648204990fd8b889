;; Every hook traps.
(module
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32) unreachable)
  (func (export "get_queue_config") (result i32) unreachable))
