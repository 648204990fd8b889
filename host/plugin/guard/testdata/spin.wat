;; Counts loop iterations into memory[0] without end: the guard test waits until the count moves,
;; then sets the stop global and expects the call to trap.
(module
  (memory (export "memory") 1)
  (func (export "spin")
    (loop $l
      (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
      (br $l)))
  ;; A module with its own global and a start function: the new global goes after it, the
  ;; start function becomes an export.
  (global $g (mut i32) (i32.const 7))
  (func $start (global.set $g (i32.const 8)))
  (start $start)
  (func (export "g") (result i32) (global.get $g)))
