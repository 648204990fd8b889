;; Message hook: reads meta authn_id (set by reception for a client that authenticated with
;; AUTH) and prepends "X-Authn-Id: <it>", so a test sees at the sink what the plugin read.
;; Without the meta it adds nothing.
(module
  (import "wasmta" "get_meta" (func $get_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "prepend_header" (func $prepend_header (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "authn_id")     ;; 8
  (data (i32.const 16) "X-Authn-Id")  ;; 10
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $n i32)
    ;; value into a 1 KiB buffer at 1024 (meta values are at most 1 KiB)
    (local.set $n (call $get_meta (i32.const 0) (i32.const 8) (i32.const 1024) (i32.const 1024)))
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then (drop (call $prepend_header (i32.const 16) (i32.const 10) (i32.const 1024) (local.get $n)))))
    (i32.const 0)))
