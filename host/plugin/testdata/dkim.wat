;; dkim_sign (ABI 1.1) with the plugin's own config as the params: [plugins.config] key, domain,
;; selector, … become the JSON handed to dkim_sign. Both message hooks. Message meta steers it:
;; "dkim_times" = "N" (one digit) calls dkim_sign N times; "dkim_fail" present makes the hook
;; fail after signing (nothing staged may apply). On a negative status the hook fails with the
;; host's last_error as its reason.
(module
  (import "wasmta" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "wasmta" "get_meta" (func $get_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "dkim_sign" (func $dkim_sign (param i32 i32) (result i32)))
  (import "wasmta" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "wasmta" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "dkim_times")  ;; 10
  (data (i32.const 16) "dkim_fail")  ;; 9
  (data (i32.const 32) "asked to fail after signing") ;; 27
  (func (export "wasmta_abi_v1"))
  ;; fails with last_error as the reason
  (func $fail (result i32)
    (call $set_error (i32.const 8192) (call $last_error (i32.const 8192) (i32.const 1024)))
    (i32.const 1))
  (func $sign (result i32)
    (local $n i32) (local $times i32)
    (local.set $n (call $get_config (i32.const 1024) (i32.const 4096)))
    (local.set $times (i32.const 1))
    (if (i32.eq (call $get_meta (i32.const 0) (i32.const 10) (i32.const 64) (i32.const 1)) (i32.const 1))
      (then (local.set $times (i32.sub (i32.load8_u (i32.const 64)) (i32.const 48)))))
    (block $done
      (loop $again
        (br_if $done (i32.le_s (local.get $times) (i32.const 0)))
        (if (i32.lt_s (call $dkim_sign (i32.const 1024) (local.get $n)) (i32.const 0))
          (then (return (call $fail))))
        (local.set $times (i32.sub (local.get $times) (i32.const 1)))
        (br $again)))
    (if (i32.ge_s (call $get_meta (i32.const 16) (i32.const 9) (i32.const 64) (i32.const 0)) (i32.const 0))
      (then
        (call $set_error (i32.const 32) (i32.const 27))
        (return (i32.const 1))))
    (i32.const 0))
  (func (export "smtp_server_message_received") (result i32) (call $sign))
  (func (export "http_message_generated") (result i32) (call $sign)))
