;; Sets meta "k0" 65 times, then the new key "new"; the hook fails (returns 1, with last_error as
;; its set_error text) if the new key is refused. Run on a message with 63 meta keys, k0 among
;; them: "new" is the 64th key, within abi.MaxMetaKeys.
(module
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "wasmta" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "k0")
  (data (i32.const 8) "new")
  (data (i32.const 16) "v")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $i i32)
    (loop $again
      (if (call $set_meta (i32.const 0) (i32.const 2) (i32.const 16) (i32.const 1))
        (then (return (i32.const 2))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 65))))
    (if (call $set_meta (i32.const 8) (i32.const 3) (i32.const 16) (i32.const 1))
      (then
        (call $set_error (i32.const 1024) (call $last_error (i32.const 1024) (i32.const 1024)))
        (return (i32.const 1))))
    (i32.const 0)))
