;; http_message_generated only: sets campaign = http.
(module
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "campaign")  ;; 8
  (data (i32.const 16) "http")     ;; 4
  (func (export "wasmta_abi_v1"))
  (func (export "http_message_generated") (result i32)
    (call $set_meta (i32.const 0) (i32.const 8) (i32.const 16) (i32.const 4))))
