;; The host-call budget is inclusive: 99,999 abi_version calls, then the 100,000th call
;; (recipient_count) still works and the 100,001st returns Limit (-4). set_error still works
;; after that, so the failure says which case happened.
(module
  (import "wasmta" "abi_version" (func $abi_version (result i32)))
  (import "wasmta" "recipient_count" (func $rcpt_count (result i32)))
  (import "wasmta" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "inclusive")  ;; 9
  (data (i32.const 16) "wrong")     ;; 5
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $i i32) (local $a i32) (local $b i32)
    (loop $l
      (drop (call $abi_version))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 99999))))
    (local.set $a (call $rcpt_count))
    (local.set $b (call $rcpt_count))
    (if (i32.and (i32.eq (local.get $a) (i32.const 1)) (i32.eq (local.get $b) (i32.const -4)))
      (then (call $set_error (i32.const 0) (i32.const 9)) (return (i32.const 1))))
    (call $set_error (i32.const 16) (i32.const 5))
    (i32.const 2)))
