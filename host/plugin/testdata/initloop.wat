;; wasmta_init loops forever: the load must fail at the init timeout.
(module
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "wasmta_init") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
