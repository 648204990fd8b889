;; A table whose declared minimum alone (100 Mi entries, 800 MiB of host memory per instance)
;; is far past any memory cap: the plugin must be refused at load.
(module
  (memory (export "memory") 1)
  (table 100000000 funcref)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
