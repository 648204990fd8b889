;; Reload fixture: a message hook that sets meta second = yes, and a wasmta_init that counts to
;; 50 million first (tens of milliseconds): a version slow to start, which widens the time
;; a reload spends building it.
(module
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "second")  ;; 6
  (data (i32.const 16) "yes")    ;; 3
  (func (export "wasmta_abi_v1"))
  (func (export "wasmta_init") (result i32)
    (local $n i32)
    (local.set $n (i32.const 50000000))
    (loop $l
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (i32.const 0))
  (func (export "smtp_server_message_received") (result i32)
    (call $set_meta (i32.const 0) (i32.const 6) (i32.const 16) (i32.const 3))))
