;; The hook grows memory by 1 MiB steps until refused, then traps, as a language runtime does
;; when it runs out of memory.
(module
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (loop $grow
      (if (i32.ne (memory.grow (i32.const 16)) (i32.const -1))
        (then (br $grow))))
    unreachable))
