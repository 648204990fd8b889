;; Adds two fields whose "Name: value" line is longer than 998 bytes (RFC 5322 §2.1.1):
;;   prepend_header(76-byte name, 998-byte value of 9-letter words and spaces), which the host
;;   folds (the hook fails, returning 1, if it is refused), and
;;   append_header("X-Word", 998 "b"s), which has nowhere to fold: its status goes to meta "rc"
;;   as the digit -status.
;; The value byte i is a space when i % 10 == 9, else 'a' + (i / 10) % 26 (longheader_test.go).
(module
  (import "wasmta" "prepend_header" (func $prepend (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "append_header" (func $append (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "X-Long-nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn")
  (data (i32.const 128) "X-Word")
  (data (i32.const 200) "rc")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $i i32)
    (local $rc i32)
    (loop $fill
      (i32.store8 (i32.add (i32.const 1024) (local.get $i))
        (select
          (i32.const 0x20)
          (i32.add (i32.const 0x61) (i32.rem_u (i32.div_u (local.get $i) (i32.const 10)) (i32.const 26)))
          (i32.eq (i32.rem_u (local.get $i) (i32.const 10)) (i32.const 9))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 998))))
    (memory.fill (i32.const 4096) (i32.const 0x62) (i32.const 998))
    (if (call $prepend (i32.const 0) (i32.const 76) (i32.const 1024) (i32.const 998))
      (then (return (i32.const 1))))
    (local.set $rc (call $append (i32.const 128) (i32.const 6) (i32.const 4096) (i32.const 998)))
    (i32.store8 (i32.const 210) (i32.sub (i32.const 48) (local.get $rc)))
    (drop (call $set_meta (i32.const 200) (i32.const 2) (i32.const 210) (i32.const 1)))
    (i32.const 0)))
