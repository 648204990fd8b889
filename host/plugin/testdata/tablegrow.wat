;; A table is memory the plugin can grow outside max_memory: each entry is 8 bytes of host
;; memory. The hook grows a table without a declared maximum by 4 Mi entries (32 MiB, with
;; max_memory at 2 MiB) and fails (returns 1) if the host let it.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (i32.ne (table.grow $t (ref.null func) (i32.const 0x400000)) (i32.const -1))))
