;; The hook calls a host function in a loop forever (past the host-call budget, which only makes
;; the calls return Limit): the deadline must still end it.
(module
  (import "wasmta" "recipient_count" (func $rc (result i32)))
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (loop $l (drop (call $rc)) (br $l))
    (i32.const 0)))
