;; get_queue_config calls dkim_sign, which belongs to message hooks: it fails with the host's
;; last_error as its reason.
(module
  (import "wasmta" "dkim_sign" (func $dkim_sign (param i32 i32) (result i32)))
  (import "wasmta" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "wasmta" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"key\":\"main\",\"domain\":\"example.com\",\"selector\":\"s\"}")  ;; 52
  (func (export "wasmta_abi_v1"))
  (func (export "get_queue_config") (result i32)
    (if (i32.lt_s (call $dkim_sign (i32.const 0) (i32.const 52)) (i32.const 0))
      (then
        (call $set_error (i32.const 1024) (call $last_error (i32.const 1024) (i32.const 1024)))
        (return (i32.const 1))))
    (i32.const 0)))
