;; Every hook loops forever.
(module
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "smtp_server_message_received") (result i32)
    (loop $l (br $l)) (i32.const 0)))
