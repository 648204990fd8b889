;; Message hook: routing_domain = my.smarthost.test, X-Policy header, copies Subject into meta.
(module
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "get_header" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasmta" "prepend_header" (func $prepend_header (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "append_header" (func $append_header (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "routing_domain")     ;; 14
  (data (i32.const 16) "my.smarthost.test")  ;; 17
  (data (i32.const 48) "X-Policy")           ;; 8
  (data (i32.const 64) "seen")               ;; 4
  (data (i32.const 80) "Subject")            ;; 7
  (data (i32.const 96) "subject")            ;; 7
  (data (i32.const 112) "X-Trailer")         ;; 9
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $n i32)
    (if (call $set_meta (i32.const 0) (i32.const 14) (i32.const 16) (i32.const 17))
      (then (return (i32.const 1))))
    (drop (call $prepend_header (i32.const 48) (i32.const 8) (i32.const 64) (i32.const 4)))
    (drop (call $append_header (i32.const 112) (i32.const 9) (i32.const 64) (i32.const 4)))
    ;; Subject into a 1 KiB buffer at 1024, then into meta "subject"
    (local.set $n (call $get_header (i32.const 80) (i32.const 7) (i32.const 0) (i32.const 1024) (i32.const 1024)))
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then (drop (call $set_meta (i32.const 96) (i32.const 7) (i32.const 1024) (local.get $n)))))
    (i32.const 0)))
