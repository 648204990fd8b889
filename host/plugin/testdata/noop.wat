;; Not a plugin: one exported function that returns 0, for BenchmarkCallFloor (what a bare
;; wazero call costs with and without WithCloseOnContextDone, and instrumented by package guard,
;; whose checks need a memory).
(module
  (memory 1)
  (func (export "f") (result i32) (i32.const 0)))
