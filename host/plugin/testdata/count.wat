;; Not a plugin: a tight loop of n iterations, for BenchmarkLoop (what the termination checks
;; cost per loop iteration: wazero's own, package guard's, none).
(module
  (memory 1)
  (func (export "count") (param $n i32) (result i32)
    (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (local.get $n)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $acc)))
