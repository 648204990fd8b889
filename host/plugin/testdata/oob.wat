;; Guest pointers outside memory (1 page = 65536 bytes).
;; smtp_server_message_received: asks for the sender's size with a buffer far outside memory
;; and limit 0 (nothing is written, so no trap), stores the length in meta "n" as one digit.
;; http_message_generated: passes a key that ends past the end of memory: the host traps.
(module
  (import "wasmta" "get_sender" (func $get_sender (param i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "n")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $n i32)
    (local.set $n (call $get_sender (i32.const 0x7fff0000) (i32.const 0)))
    (i32.store8 (i32.const 16) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
    (drop (call $set_meta (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 1)))
    (i32.const 0))
  (func (export "http_message_generated") (result i32)
    (drop (call $set_meta (i32.const 65535) (i32.const 2) (i32.const 0) (i32.const 1)))
    (i32.const 0)))
