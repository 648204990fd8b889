;; Writes 8 MiB of newlines to stderr with one fd_write: 8 million empty lines for the host to
;; turn into diagnostics.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 130)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    ;; 8 MiB of '\n' at 64 KiB
    (memory.fill (i32.const 65536) (i32.const 10) (i32.const 8388608))
    ;; one iovec at 0: {buf = 65536, len = 8 MiB}
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 8388608))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.const 0)))
