;; http_message_generated fixture: a recipient whose address starts with "reject" is refused
;; (550 5.7.1); every other message is routed through routing_domain = smarthost.test.
(module
  (import "wasmta" "get_recipient" (func $get_recipient (param i32 i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "reject" (func $reject (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "routing_domain")                      ;; 14
  (data (i32.const 16) "smarthost.test")                     ;; 14
  (data (i32.const 32) "reject")                             ;; 6
  (data (i32.const 48) "5.7.1 recipient refused by policy")  ;; 33
  (func (export "wasmta_abi_v1"))
  (func (export "http_message_generated") (result i32)
    ;; the recipient into a 256-byte buffer at 1024
    (if (i32.ge_s (call $get_recipient (i32.const 0) (i32.const 1024) (i32.const 256)) (i32.const 6))
      (then
        (if (i32.and
              (i32.eq (i32.load (i32.const 1024)) (i32.load (i32.const 32)))
              (i32.eq (i32.load16_u (i32.const 1028)) (i32.load16_u (i32.const 36))))
          (then
            (drop (call $reject (i32.const 550) (i32.const 48) (i32.const 33)))
            (return (i32.const 0))))))
    (call $set_meta (i32.const 0) (i32.const 14) (i32.const 16) (i32.const 14))))
