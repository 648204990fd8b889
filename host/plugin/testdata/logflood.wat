;; Calls log 10,000 times with a 1,000-byte line in one hook call: 10 MB of diagnostics unless
;; the host caps log output per call and per plugin.
(module
  (import "wasmta" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "flood")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $i i32)
    (loop $l
      (call $log (i32.const 0) (i32.const 0) (i32.const 1000))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
    (i32.const 0)))
