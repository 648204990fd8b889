;; Host calls whose guest length is the whole 16 MiB region at offset 65536, far over any limit
;; of the call. The plugin config's first byte picks the call:
;;   "1" reject(550, region), "2" prepend_header(name = region), "3" set_meta(key = region),
;;   "4" get_header(name = region filled with 0x80: not ASCII),
;;   "5" append_header("X-A", value = region ending in a CR), "6" get_meta(key = region),
;;   "7" set_meta("routing_domain", value = region), "8" get_header(name = region of "a"s).
;; The call's status goes to meta "rc" as the digit -status; last_error is then asked for its
;; size (which formats the refusal). The hook returns 0, so its instance is reused.
(module
  (import "wasmta" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "wasmta" "reject" (func $reject (param i32 i32 i32) (result i32)))
  (import "wasmta" "prepend_header" (func $prepend (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "get_header" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasmta" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "wasmta" "append_header" (func $append (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "get_meta" (func $get_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 257)
  (data (i32.const 16) "rc")
  (data (i32.const 40) "X-A")
  (data (i32.const 48) "routing_domain")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $case i32)
    (local $rc i32)
    (drop (call $get_config (i32.const 0) (i32.const 1)))
    (local.set $case (i32.load8_u (i32.const 0)))
    (if (i32.eq (local.get $case) (i32.const 0x31))
      (then (local.set $rc (call $reject (i32.const 550) (i32.const 65536) (i32.const 0x1000000)))))
    (if (i32.eq (local.get $case) (i32.const 0x32))
      (then (local.set $rc (call $prepend (i32.const 65536) (i32.const 0x1000000) (i32.const 0) (i32.const 1)))))
    (if (i32.eq (local.get $case) (i32.const 0x33))
      (then (local.set $rc (call $set_meta (i32.const 65536) (i32.const 0x1000000) (i32.const 0) (i32.const 1)))))
    (if (i32.eq (local.get $case) (i32.const 0x34))
      (then
        (if (i32.eqz (i32.load8_u (i32.const 65536))) ;; once per instance: the benchmark times the call
          (then (memory.fill (i32.const 65536) (i32.const 0x80) (i32.const 0x1000000))))
        (local.set $rc (call $get_header (i32.const 65536) (i32.const 0x1000000) (i32.const 0) (i32.const 0) (i32.const 0)))))
    (if (i32.eq (local.get $case) (i32.const 0x35))
      (then
        (i32.store8 (i32.const 0x100ffff) (i32.const 0x0d))
        (local.set $rc (call $append (i32.const 40) (i32.const 3) (i32.const 65536) (i32.const 0x1000000)))))
    (if (i32.eq (local.get $case) (i32.const 0x36))
      (then (local.set $rc (call $get_meta (i32.const 65536) (i32.const 0x1000000) (i32.const 0) (i32.const 0)))))
    (if (i32.eq (local.get $case) (i32.const 0x37))
      (then (local.set $rc (call $set_meta (i32.const 48) (i32.const 14) (i32.const 65536) (i32.const 0x1000000)))))
    (if (i32.eq (local.get $case) (i32.const 0x38))
      (then
        (if (i32.eqz (i32.load8_u (i32.const 65536))) ;; once per instance: the benchmark times the call
          (then (memory.fill (i32.const 65536) (i32.const 0x61) (i32.const 0x1000000))))
        (local.set $rc (call $get_header (i32.const 65536) (i32.const 0x1000000) (i32.const 0) (i32.const 0) (i32.const 0)))))
    (drop (call $last_error (i32.const 0) (i32.const 0)))
    (i32.store8 (i32.const 32) (i32.sub (i32.const 48) (local.get $rc)))
    (drop (call $set_meta (i32.const 16) (i32.const 2) (i32.const 32) (i32.const 1)))
    (i32.const 0)))
