;; get_queue_config hands over a config with a misspelt field and fails with the host's status.
(module
  (import "wasmta" "make_queue_config" (func $mqc (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"protocol\":{\"smtp\":{\"mx_lsit\":[\"a.test\"]}}}")  ;; 44
  (func (export "wasmta_abi_v1"))
  (func (export "get_queue_config") (result i32)
    (call $mqc (i32.const 0) (i32.const 44))))
