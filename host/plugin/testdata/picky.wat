;; Traps when the envelope sender starts with "e" (a message one client can craft), succeeds
;; otherwise: a plugin bug one client can trigger at will.
(module
  (import "wasmta" "get_sender" (func $get_sender (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (if (i32.gt_s (call $get_sender (i32.const 0) (i32.const 256)) (i32.const 0))
      (then (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 101)) (then unreachable))))
    (i32.const 0)))
