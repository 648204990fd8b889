;; Only get_queue_config, and it traps: messages are accepted but their queue has no config.
(module
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "get_queue_config") (result i32) unreachable))
