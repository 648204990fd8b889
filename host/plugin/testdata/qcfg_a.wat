;; Reload fixture: get_queue_config gives every queue mx_list [127.0.0.2], retry 1s.
(module
  (import "wasmta" "make_queue_config" (func $mqc (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"retry_interval\":\"1s\",\"protocol\":{\"smtp\":{\"mx_list\":[\"[127.0.0.2]\"]}}}")
  (func (export "wasmta_abi_v1"))
  (func (export "get_queue_config") (result i32)
    (call $mqc (i32.const 0) (i32.const 71))))
