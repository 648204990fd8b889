;; http_message_generated fixture that traps: the recipient must fail with a safe text.
(module
  (memory (export "memory") 1)
  (func (export "wasmta_abi_v1"))
  (func (export "http_message_generated") (result i32)
    unreachable))
