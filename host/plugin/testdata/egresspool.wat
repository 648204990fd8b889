;; get_queue_config: every queue sends from the egress pool "outbound" (the server's
;; [egress_pool.outbound], or a 451 4.4.4 at each attempt when it has none).
(module
  (import "wasmta" "make_queue_config" (func $mqc (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"egress_pool\":\"outbound\"}")  ;; 26
  (func (export "wasmta_abi_v1"))
  (func (export "get_queue_config") (result i32)
    (call $mqc (i32.const 0) (i32.const 26))))
