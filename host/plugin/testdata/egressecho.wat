;; get_egress_path_config (ABI 1.2) reading its inputs with get_meta: answers
;; {"ehlo_domain":"<site>","smtp_auth_plain_username":"<routing_domain>"}, and fails (4) if a
;; key other than site and routing_domain is found. Its message hook calls
;; make_egress_path_config, which is not allowed there, and records the status in meta "status".
(module
  (import "wasmta" "get_meta" (func $get_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "make_egress_path_config" (func $mepc (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "site")                                ;; 4
  (data (i32.const 8) "routing_domain")                      ;; 14
  (data (i32.const 32) "queue")                              ;; 5
  (data (i32.const 48) "status")                             ;; 6
  (data (i32.const 64) "{\"ehlo_domain\":\"")                ;; 16
  (data (i32.const 96) "\",\"smtp_auth_plain_username\":\"") ;; 30
  (data (i32.const 128) "\"}")                               ;; 2
  (func (export "wasmta_abi_v1"))
  ;; copy n bytes from src to dst (plain WebAssembly 1.0: no bulk memory)
  (func $copy (param $dst i32) (param $src i32) (param $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next))))
  (func (export "get_egress_path_config") (result i32)
    (local $pos i32) (local $n i32)
    (if (i32.ne (call $get_meta (i32.const 32) (i32.const 5) (i32.const 0) (i32.const 0)) (i32.const -1))
      (then (return (i32.const 4))))
    (local.set $pos (i32.const 1024))
    (call $copy (local.get $pos) (i32.const 64) (i32.const 16))
    (local.set $pos (i32.add (local.get $pos) (i32.const 16)))
    (local.set $n (call $get_meta (i32.const 0) (i32.const 4) (local.get $pos) (i32.const 256)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 2))))
    (local.set $pos (i32.add (local.get $pos) (local.get $n)))
    (call $copy (local.get $pos) (i32.const 96) (i32.const 30))
    (local.set $pos (i32.add (local.get $pos) (i32.const 30)))
    (local.set $n (call $get_meta (i32.const 8) (i32.const 14) (local.get $pos) (i32.const 256)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 3))))
    (local.set $pos (i32.add (local.get $pos) (local.get $n)))
    (call $copy (local.get $pos) (i32.const 128) (i32.const 2))
    (local.set $pos (i32.add (local.get $pos) (i32.const 2)))
    (call $mepc (i32.const 1024) (i32.sub (local.get $pos) (i32.const 1024))))
  (func (export "smtp_server_message_received") (result i32)
    (local $rc i32)
    (local.set $rc (call $mepc (i32.const 64) (i32.const 2)))
    (i32.store8 (i32.const 900) (i32.const 45)) ;; '-'
    (i32.store8 (i32.const 901) (i32.sub (i32.const 48) (local.get $rc)))
    (drop (call $set_meta (i32.const 48) (i32.const 6) (i32.const 900) (i32.const 2)))
    (i32.const 0)))
