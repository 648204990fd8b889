;; Tries to inject a header line; records the status it got in meta "status" (as "-2" etc.).
(module
  (import "wasmta" "prepend_header" (func $prepend (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "X-Ok")                   ;; 4
  (data (i32.const 16) "fine\r\nBcc: victim@x")  ;; 19
  (data (i32.const 48) "status")                 ;; 6
  (data (i32.const 64) "-")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $rc i32)
    (local.set $rc (call $prepend (i32.const 0) (i32.const 4) (i32.const 16) (i32.const 19)))
    ;; write "-N" for a negative single-digit status
    (i32.store8 (i32.const 65) (i32.add (i32.const 48) (i32.sub (i32.const 0) (local.get $rc))))
    (drop (call $set_meta (i32.const 48) (i32.const 6) (i32.const 64) (i32.const 2)))
    (i32.const 0)))
