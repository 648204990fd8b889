;; Reload fixture: a module whose memory starts at 160 pages (10 MiB), more than a max_memory
;; of 4MiB allows: refused at load.
(module
  (memory (export "memory") 160)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
