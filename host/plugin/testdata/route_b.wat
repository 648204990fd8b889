;; Reload fixture, version B: routing_domain = [127.0.0.3].
(module
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "routing_domain")  ;; 14
  (data (i32.const 16) "[127.0.0.3]")    ;; 11
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (call $set_meta (i32.const 0) (i32.const 14) (i32.const 16) (i32.const 11))))
