;; get_queue_config: for domain "smart.example", an mx_list; otherwise no opinion.
(module
  (import "wasmta" "get_meta" (func $get_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "make_queue_config" (func $mqc (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "domain")          ;; 6
  (data (i32.const 16) "smart.example")  ;; 13
  (data (i32.const 64) "{\"retry_interval\":\"5s\",\"protocol\":{\"smtp\":{\"mx_list\":[\"smart.host.local\",{\"name\":\"mx.example.com\",\"addr\":\"127.0.0.3\"}]}}}")
  (func (export "wasmta_abi_v1"))
  (func $is_smart (param $n i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $n) (i32.const 13)) (then (return (i32.const 0))))
    (block $out
      (loop $cmp
        (br_if $out (i32.ge_u (local.get $i) (i32.const 13)))
        (if (i32.ne (i32.load8_u (i32.add (i32.const 512) (local.get $i)))
                    (i32.load8_u (i32.add (i32.const 16) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $cmp)))
    (i32.const 1))
  (func (export "get_queue_config") (result i32)
    (if (call $is_smart (call $get_meta (i32.const 0) (i32.const 6) (i32.const 512) (i32.const 256)))
      (then (return (call $mqc (i32.const 64) (i32.const 121)))))
    (i32.const 0)))
