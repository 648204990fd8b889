;; Leaves a mark in its memory and fails. A later call that finds the mark (an instance reused
;; after a failure, which ABI.md section 5 forbids) sets meta leaked=yes and succeeds.
(module
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "leaked")  ;; 6
  (data (i32.const 32) "yes")     ;; 3
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (if (i32.load (i32.const 0))
      (then
        (drop (call $set_meta (i32.const 16) (i32.const 6) (i32.const 32) (i32.const 3)))
        (return (i32.const 0))))
    (i32.store (i32.const 0) (i32.const 1))
    (i32.const 1)))
