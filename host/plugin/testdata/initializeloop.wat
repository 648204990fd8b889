;; _initialize (the WASI reactor start) loops forever: the load must fail at the init timeout.
(module
  (memory (export "memory") 1)
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
