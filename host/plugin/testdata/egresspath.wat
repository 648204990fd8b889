;; get_egress_path_config (ABI 1.2) answering with the plugin's own config: [plugins.config] is
;; the egress path config, handed as is to make_egress_path_config, so one fixture serves every
;; case (a good config, an unknown field, a secret that does not exist). An empty config ({})
;; means no opinion: the hook returns 0 without making one. A refused config fails the hook with
;; the host's status, so the failure carries last_error.
(module
  (import "wasmta" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "wasmta" "make_egress_path_config" (func $mepc (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "get_egress_path_config") (result i32)
    (local $n i32)
    (local.set $n (call $get_config (i32.const 4096) (i32.const 32768)))
    (if (i32.gt_u (local.get $n) (i32.const 32768)) (then (return (i32.const 1))))
    (if (i32.le_u (local.get $n) (i32.const 2)) (then (return (i32.const 0))))
    (call $mepc (i32.const 4096) (local.get $n))))
