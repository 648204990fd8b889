;; Message hook: rejects the message when its first recipient is in y.test, as a plugin that
;; reads only recipient 0 would. With batching by recipient domain it sees every domain.
(module
  (import "wasmta" "get_recipient" (func $get_recipient (param i32 i32 i32) (result i32)))
  (import "wasmta" "reject" (func $reject (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "5.7.1 y.test refused")  ;; 20
  (data (i32.const 32) "@y.test")               ;; 7
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $n i32) (local $i i32)
    (local.set $n (call $get_recipient (i32.const 0) (i32.const 64) (i32.const 512)))
    (if (i32.lt_s (local.get $n) (i32.const 7)) (then (return (i32.const 0))))
    ;; compare the last 7 bytes with "@y.test"
    (local.set $i (i32.const 0))
    (block $no
      (loop $cmp
        (br_if $no (i32.ne
          (i32.load8_u (i32.add (i32.const 64) (i32.add (i32.sub (local.get $n) (i32.const 7)) (local.get $i))))
          (i32.load8_u (i32.add (i32.const 32) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $cmp (i32.lt_u (local.get $i) (i32.const 7))))
      (drop (call $reject (i32.const 550) (i32.const 0) (i32.const 20))))
    (i32.const 0)))
