(module
  (memory (export "memory") 1)
  (func (export "smtp_server_message_received") (result i32) (i32.const 0)))
