;; Reads last_error after refused host calls and records each text in meta (err0: before any,
;; err1: a header injection, after the guest overwrote the name it passed, err2: a bad meta key,
;; err3: a reject code outside 4xx/5xx, err4-err6: get_meta, get_header and get_recipient
;; answering NotFound). last_error must give the exact text the host had when it refused the
;; call, and after a NotFound the reason for that NotFound, never an earlier call's text.
(module
  (import "wasmta" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "prepend_header" (func $prepend (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "reject" (func $reject (param i32 i32 i32) (result i32)))
  (import "wasmta" "get_meta" (func $get_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "get_header" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasmta" "get_recipient" (func $get_recipient (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "X-Bad")                  ;; 5
  (data (i32.const 16) "a\r\nInjected: yes")    ;; 16
  (data (i32.const 48) "err0")                  ;; 4
  (data (i32.const 64) "err1")
  (data (i32.const 80) "err2")
  (data (i32.const 96) "err3")
  (data (i32.const 112) "bad key!")             ;; 8
  (data (i32.const 128) "v")                    ;; 1
  (data (i32.const 144) "err4")
  (data (i32.const 160) "err5")
  (data (i32.const 176) "err6")
  (data (i32.const 192) "no-such-key")          ;; 11
  (data (i32.const 208) "X-None")               ;; 6
  (func (export "wasmta_abi_v1"))
  ;; $record: meta key (4 bytes at $key) = the current last_error text
  (func $record (param $key i32) (result i32)
    (call $set_meta (local.get $key) (i32.const 4) (i32.const 256)
      (call $last_error (i32.const 256) (i32.const 1024))))
  (func (export "smtp_server_message_received") (result i32)
    (if (call $record (i32.const 48)) (then (return (i32.const 1))))
    (if (i32.ne (call $prepend (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 16)) (i32.const -2))
      (then (return (i32.const 2))))
    (i32.store (i32.const 0) (i32.const 0x5a5a5a5a)) ;; "ZZZZ" over the name passed
    (if (call $record (i32.const 64)) (then (return (i32.const 1))))
    (if (i32.ne (call $set_meta (i32.const 112) (i32.const 8) (i32.const 128) (i32.const 1)) (i32.const -2))
      (then (return (i32.const 3))))
    (if (call $record (i32.const 80)) (then (return (i32.const 1))))
    (if (i32.ne (call $reject (i32.const 200) (i32.const 128) (i32.const 1)) (i32.const -2))
      (then (return (i32.const 4))))
    (if (call $record (i32.const 96)) (then (return (i32.const 1))))
    (if (i32.ne (call $get_meta (i32.const 192) (i32.const 11) (i32.const 2048) (i32.const 64)) (i32.const -1))
      (then (return (i32.const 5))))
    (if (call $record (i32.const 144)) (then (return (i32.const 1))))
    (if (i32.ne (call $get_header (i32.const 208) (i32.const 6) (i32.const 0) (i32.const 2048) (i32.const 64)) (i32.const -1))
      (then (return (i32.const 6))))
    (if (call $record (i32.const 160)) (then (return (i32.const 1))))
    (if (i32.ne (call $get_recipient (i32.const 99) (i32.const 2048) (i32.const 64)) (i32.const -1))
      (then (return (i32.const 7))))
    (if (call $record (i32.const 176)) (then (return (i32.const 1))))
    (i32.const 0)))
