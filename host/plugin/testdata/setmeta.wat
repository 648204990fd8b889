;; Message hook that only sets one meta value (queue = my.smarthost.test): the smallest useful hook.
(module
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "queue")               ;; 5
  (data (i32.const 16) "my.smarthost.test")  ;; 17
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (call $set_meta (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 17))))
