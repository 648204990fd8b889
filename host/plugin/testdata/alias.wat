;; Stages meta and header edits from a buffer, gets one call refused, then overwrites the
;; buffer and the header name it passed and sets more meta (enough to fill several arena
;; chunks). What the host keeps must be its own: the message gets the original texts. Before
;; staging it checks that nothing of an earlier message shows: last_error is empty and
;; get_meta "probe" (staged by the earlier run) is NotFound. An instance serves many messages, so it
;; first restores the name and the buffer (at 16 and 32) from their copies at 128 and 160.
(module
  (import "wasmta" "get_meta" (func $get_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "wasmta" "prepend_header" (func $prepend (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "append_header" (func $append (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "k1")                 ;; 2
  (data (i32.const 16) "X-Probe")           ;; 7
  (data (i32.const 32) "original-value")    ;; 14
  (data (i32.const 64) "probe")             ;; 5
  (data (i32.const 80) "bad\r\n")           ;; 5
  (data (i32.const 96) "a?")                ;; 2: the second byte varies
  (data (i32.const 128) "X-Probe")
  (data (i32.const 160) "original-value")
  (data (i32.const 512) "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv") ;; 40
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $i i32)
    (loop $restore
      (i32.store8 (i32.add (i32.const 16) (local.get $i)) (i32.load8_u (i32.add (i32.const 128) (local.get $i))))
      (i32.store8 (i32.add (i32.const 32) (local.get $i)) (i32.load8_u (i32.add (i32.const 160) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $restore (i32.lt_u (local.get $i) (i32.const 16))))
    (local.set $i (i32.const 0))
    (if (call $last_error (i32.const 256) (i32.const 64)) (then (return (i32.const 6))))
    (if (i32.ne (call $get_meta (i32.const 64) (i32.const 5) (i32.const 256) (i32.const 64)) (i32.const -1))
      (then (return (i32.const 5))))
    (if (call $set_meta (i32.const 0) (i32.const 2) (i32.const 32) (i32.const 14)) (then (return (i32.const 1))))
    (if (call $prepend (i32.const 16) (i32.const 7) (i32.const 32) (i32.const 14)) (then (return (i32.const 2))))
    (if (call $append (i32.const 16) (i32.const 7) (i32.const 32) (i32.const 14)) (then (return (i32.const 3))))
    (if (call $set_meta (i32.const 64) (i32.const 5) (i32.const 32) (i32.const 14)) (then (return (i32.const 4))))
    (if (i32.ne (call $prepend (i32.const 16) (i32.const 7) (i32.const 80) (i32.const 5)) (i32.const -2))
      (then (return (i32.const 7))))
    ;; "#" over the name and the value passed
    (i64.store (i32.const 16) (i64.const 0x2323232323232323))
    (i64.store (i32.const 32) (i64.const 0x2323232323232323))
    (i64.store (i32.const 40) (i64.const 0x2323232323232323))
    (loop $more
      (i32.store8 (i32.const 97) (i32.add (i32.const 65) (local.get $i)))
      (if (call $set_meta (i32.const 96) (i32.const 2) (i32.const 512) (i32.const 40)) (then (return (i32.const 8))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 24))))
    (i32.const 0)))
