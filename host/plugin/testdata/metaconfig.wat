;; Message hook that sets the meta key and value its plugin config names, written "key=value"
;; (the config's bytes as they are, not JSON), and records set_meta's status in meta "rc" as the
;; digit -status. It returns 0 whatever the status.
(module
  (import "wasmta" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "rc")
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (local $n i32)
    (local $eq i32)
    (local $rc i32)
    ;; the config at 1024 (at most 1024 bytes)
    (local.set $n (call $get_config (i32.const 1024) (i32.const 1024)))
    (if (i32.gt_u (local.get $n) (i32.const 1024)) (then (return (i32.const 1))))
    ;; find '='
    (block $found
      (loop $scan
        (br_if $found (i32.ge_u (local.get $eq) (local.get $n)))
        (br_if $found (i32.eq (i32.load8_u (i32.add (i32.const 1024) (local.get $eq))) (i32.const 61)))
        (local.set $eq (i32.add (local.get $eq) (i32.const 1)))
        (br $scan)))
    (if (i32.ge_u (local.get $eq) (local.get $n)) (then (return (i32.const 2))))
    (local.set $rc (call $set_meta
      (i32.const 1024) (local.get $eq)
      (i32.add (i32.const 1025) (local.get $eq)) (i32.sub (local.get $n) (i32.add (local.get $eq) (i32.const 1)))))
    (i32.store8 (i32.const 32) (i32.sub (i32.const 48) (local.get $rc)))
    (drop (call $set_meta (i32.const 16) (i32.const 2) (i32.const 32) (i32.const 1)))
    (i32.const 0)))
