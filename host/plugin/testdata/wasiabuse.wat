;; WASI calls whose cost the guest chooses. The plugin config's first byte picks the call:
;;   "1" fd_write(stderr) with 1025 iovecs, "2" fd_read(stdin) with 1025 iovecs,
;;   "3" fd_write(stderr) with 1024 (empty) iovecs, "4" random_get of 64 MiB,
;;   "5" poll_oneoff with 1025 subscriptions, "6" poll_oneoff with 1024: a read of stdin (fd 0)
;;   first, then relative clocks (the rest of a zeroed region), answered into 65536;
;;   "7" poll_oneoff with 500,000 subscriptions (reads of stdin) for the benchmark.
;; The call's errno goes to meta "rc" as two decimal digits; the hook returns 0.
(module
  (import "wasmta" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1025)
  (data (i32.const 24) "rc")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $case i32)
    (local $rc i32)
    (local $i i32)
    (drop (call $get_config (i32.const 0) (i32.const 1)))
    (local.set $case (i32.load8_u (i32.const 0)))
    ;; iovecs from 1024 on: all zero, {buf = 0, len = 0}
    (if (i32.eq (local.get $case) (i32.const 0x31))
      (then (local.set $rc (call $fd_write (i32.const 2) (i32.const 1024) (i32.const 1025) (i32.const 16)))))
    (if (i32.eq (local.get $case) (i32.const 0x32))
      (then (local.set $rc (call $fd_read (i32.const 0) (i32.const 1024) (i32.const 1025) (i32.const 16)))))
    (if (i32.eq (local.get $case) (i32.const 0x33))
      (then (local.set $rc (call $fd_write (i32.const 2) (i32.const 1024) (i32.const 1024) (i32.const 16)))))
    (if (i32.eq (local.get $case) (i32.const 0x34))
      (then (local.set $rc (call $random_get (i32.const 65536) (i32.const 0x4000000)))))
    ;; subscriptions at 0x1000000: the first (userdata 7) reads fd 0
    (i64.store (i32.const 0x1000000) (i64.const 7))
    (i32.store8 (i32.const 0x1000008) (i32.const 1))
    (if (i32.eq (local.get $case) (i32.const 0x35))
      (then (local.set $rc (call $poll_oneoff (i32.const 0x1000000) (i32.const 65536) (i32.const 1025) (i32.const 20)))))
    (if (i32.eq (local.get $case) (i32.const 0x36))
      (then (local.set $rc (call $poll_oneoff (i32.const 0x1000000) (i32.const 65536) (i32.const 1024) (i32.const 20)))))
    (if (i32.eq (local.get $case) (i32.const 0x37))
      (then
        (memory.fill (i32.const 0x1000000) (i32.const 0) (i32.const 24000000))
        (local.set $i (i32.const 0))
        (loop $subs
          (i32.store8 (i32.add (i32.const 0x1000008) (i32.mul (local.get $i) (i32.const 48))) (i32.const 1))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $subs (i32.lt_u (local.get $i) (i32.const 500000))))
        (local.set $rc (call $poll_oneoff (i32.const 0x1000000) (i32.const 0x2A00000) (i32.const 500000) (i32.const 20)))))
    (i32.store8 (i32.const 32) (i32.add (i32.const 48) (i32.div_u (local.get $rc) (i32.const 10))))
    (i32.store8 (i32.const 33) (i32.add (i32.const 48) (i32.rem_u (local.get $rc) (i32.const 10))))
    (drop (call $set_meta (i32.const 24) (i32.const 2) (i32.const 32) (i32.const 2)))
    (i32.const 0)))
