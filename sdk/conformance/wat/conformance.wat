;; wasmta conformance plugin, hand-written WAT (../SPEC.md; ABI: ../../../abi/ABI.md).
;; Build: ./build.sh  (wat2wasm conformance.wat -o conformance.wasm)
;;
;; Core Wasm 1.0 only (no multi-value, bulk memory or sign extension); imports only module "wasmta".
;;
;; Memory layout (initial 1 page = 64 KiB; the heap grows it on demand):
;;
;;   0x0000 - 0x03FF  LITERALS  read-only strings from the data segments below (896 bytes used),
;;                              each 16-byte aligned; offsets and lengths are noted beside them
;;   0x0400 - 0x040F  NUM       decimal formatting of an i32 ("1", "-2"; at most 11 bytes)
;;   0x0410 - 0x055F  LITERALS2 more read-only strings, for get_egress_path_config (337 bytes)
;;   0x0560 - 0x07FF            unused
;;   0x0800 - 0x0BFF  RCPT0     1 KiB buffer: recipient 0 (the routing domain in
;;                              get_egress_path_config), whose domain selects the behaviour
;;   0x0C00 - 0x0FFF  VAL       1 KiB buffer: a value read from the host, copied into meta next
;;   0x1000 - 0x13FF  ERR       1 KiB buffer: last_error text, passed on to set_error
;;   0x1400 - 0xFFFF            unused
;;   0x10000 -        HEAP      bump area for values longer than 1 KiB (the (buf, limit) retry):
;;                              reset at the start of each hook, memory.grow'n as needed
;;
;; Every host read goes first to a 1 KiB buffer; if the host reports a longer value (n > limit,
;; nothing written) it is asked again once with an n-byte HEAP block. The read helpers return
;; the length (or a negative status) and leave the value's address in global $val_ptr.
(module
  ;; ---- host functions (module "wasmta", signatures from ABI.md section 4)
  (import "wasmta" "set_error" (func $set_error (param i32 i32)))
  (import "wasmta" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "wasmta" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "wasmta" "get_meta" (func $get_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "set_meta" (func $set_meta (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "get_sender" (func $get_sender (param i32 i32) (result i32)))
  (import "wasmta" "recipient_count" (func $recipient_count (result i32)))
  (import "wasmta" "get_recipient" (func $get_recipient (param i32 i32 i32) (result i32)))
  (import "wasmta" "get_header" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasmta" "prepend_header" (func $prepend_header (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "append_header" (func $append_header (param i32 i32 i32 i32) (result i32)))
  (import "wasmta" "reject" (func $reject (param i32 i32 i32) (result i32)))
  (import "wasmta" "make_queue_config" (func $make_queue_config (param i32 i32) (result i32)))
  ;; ABI 1.2: importing it makes the plugin need an ABI 1.2 host
  (import "wasmta" "make_egress_path_config" (func $make_egress_path_config (param i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; ---- LITERALS (0x0000 - 0x03FF)
  ;; --- reception: domains of recipient 0
  (data (i32.const    0) "fail.test")                               ;; 0x0 len 9
  (data (i32.const   16) "reject.test")                             ;; 0x10 len 11
  (data (i32.const   32) "reject4.test")                            ;; 0x20 len 12
  (data (i32.const   48) "routing.test")                            ;; 0x30 len 12
  (data (i32.const   64) "queue.test")                              ;; 0x40 len 10
  (data (i32.const   80) "v4.test")                                 ;; 0x50 len 7
  (data (i32.const   96) "v6.test")                                 ;; 0x60 len 7
  (data (i32.const  112) "nc.test")                                 ;; 0x70 len 7
  (data (i32.const  128) "badliteral.test")                         ;; 0x80 len 15
  ;; --- meta keys
  (data (i32.const  144) "tenant")                                  ;; 0x90 len 6
  (data (i32.const  160) "routing_domain")                          ;; 0xa0 len 14
  (data (i32.const  176) "queue")                                   ;; 0xb0 len 5
  (data (i32.const  192) "literal_status")                          ;; 0xc0 len 14
  (data (i32.const  208) "subject")                                 ;; 0xd0 len 7
  (data (i32.const  224) "in")                                      ;; 0xe0 len 2
  (data (i32.const  240) "out")                                     ;; 0xf0 len 3
  (data (i32.const  256) "sender")                                  ;; 0x100 len 6
  (data (i32.const  272) "rcpts")                                   ;; 0x110 len 5
  (data (i32.const  288) "last_rcpt")                               ;; 0x120 len 9
  (data (i32.const  304) "config")                                  ;; 0x130 len 6
  (data (i32.const  320) "inject_status")                           ;; 0x140 len 13
  ;; --- meta values
  (data (i32.const  336) "leak")                                    ;; 0x150 len 4
  (data (i32.const  352) "my.smarthost.test")                       ;; 0x160 len 17
  (data (i32.const  384) "[127.0.0.5]")                             ;; 0x180 len 11
  (data (i32.const  400) "[IPv6:::1]")                              ;; 0x190 len 10
  (data (i32.const  416) "[::1]")                                   ;; 0x1a0 len 5
  (data (i32.const  432) "[10.0.0.1")                               ;; 0x1b0 len 9
  ;; --- headers
  (data (i32.const  448) "Subject")                                 ;; 0x1c0 len 7
  (data (i32.const  464) "X-Conformance")                           ;; 0x1d0 len 13
  (data (i32.const  480) "X-Conformance-End")                       ;; 0x1e0 len 17
  (data (i32.const  512) "1")                                       ;; 0x200 len 1
  (data (i32.const  528) "X-Bad")                                   ;; 0x210 len 5
  (data (i32.const  544) "a\r\nInjected: yes")                      ;; 0x220 len 16
  ;; --- reject texts
  (data (i32.const  560) "5.7.1 rejected by conformance")           ;; 0x230 len 29
  (data (i32.const  592) "4.7.1 try later")                         ;; 0x250 len 15
  ;; --- error texts
  (data (i32.const  608) "conformance failure")                     ;; 0x260 len 19
  (data (i32.const  640) "bad config refused")                      ;; 0x280 len 18
  (data (i32.const  672) "host call failed")                        ;; 0x2a0 len 16
  ;; --- queue config
  (data (i32.const  688) "domain")                                  ;; 0x2b0 len 6
  (data (i32.const  704) "mx.test")                                 ;; 0x2c0 len 7
  (data (i32.const  720) "badcfg.test")                             ;; 0x2d0 len 11
  (data (i32.const  736) "{\"mx_lsit\":[\"x\"]}")                   ;; 0x2e0 len 17
  (data (i32.const  768) "{\"retry_interval\":\"5s\",\"protocol\":{\"smtp\":{\"mx_list\":[\"smart.host.local\",{\"name\":\"mx.example.com\",\"addr\":\"127.0.0.3\"}]}}}") ;; 0x300 len 121
  ;; LITERALS2: get_egress_path_config
  (data (i32.const 1040) "site")                                    ;; 0x410 len 4
  (data (i32.const 1056) "smarthost.test")                          ;; 0x420 len 14
  (data (i32.const 1072) "typo.test")                               ;; 0x430 len 9
  (data (i32.const 1088) "{\"conection_limit\":1}")                 ;; 0x440 len 21
  ;; the egress path config up to the EHLO name, which is "out." + the site, then "\"}"
  (data (i32.const 1120) "{\"connection_limit\":1,\"max_message_rate\":\"10/s\",\"enable_tls\":\"Required\",\"smtp_auth_plain_username\":\"relay-user\",\"smtp_auth_plain_password\":\"smarthost\",\"allow_smtp_auth_plain_without_tls\":false,\"source_address\":\"127.0.0.9\",\"ehlo_domain\":\"out.") ;; 0x460 len 241

  ;; ---- state
  (global $heap_top (mut i32) (i32.const 0x10000)) ;; next free HEAP byte (reset per hook call)
  (global $val_ptr (mut i32) (i32.const 0))        ;; address of the value the last read returned
  (global $dom_ptr (mut i32) (i32.const 0))        ;; the domain this hook call dispatches on
  (global $dom_len (mut i32) (i32.const 0))

  ;; ABI v1 marker, never called.
  (func (export "wasmta_abi_v1"))

  ;; =====================================================================================
  ;; Memory and byte helpers
  ;; =====================================================================================

  ;; $alloc: $n bytes from HEAP, growing memory as needed. Traps when the memory cap refuses
  ;; to grow (as a language runtime would): a trap is a failed hook, nothing is applied.
  (func $alloc (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $pages i32)
    (local.set $p (global.get $heap_top))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (if (i32.lt_u (local.get $end) (local.get $p)) (then (unreachable))) ;; wrapped past 4 GiB
    ;; pages needed to cover [0, end): ceil(end / 64 KiB)
    (local.set $pages (i32.add (i32.shr_u (local.get $end) (i32.const 16))
                               (i32.ne (i32.and (local.get $end) (i32.const 0xFFFF)) (i32.const 0))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (unreachable)))))
    (global.set $heap_top (local.get $end))
    (local.get $p))

  ;; $bytes_eq: 1 when [a, a+alen) and [b, b+blen) hold the same bytes, else 0.
  (func $bytes_eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
    (block $done
      (loop $cmp
        (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $cmp)))
    (i32.const 1))

  ;; $after_last_at: index just after the last '@' in [p, p+n), or 0 when there is none
  ;; (so the "domain" of an address without '@' is the whole text, like Go's LastIndexByte+1).
  (func $after_last_at (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    (local.set $i (local.get $n))
    (block $done
      (loop $scan
        (br_if $done (i32.eqz (local.get $i)))
        (br_if $done (i32.eq (i32.load8_u (i32.add (local.get $p) (i32.sub (local.get $i) (i32.const 1))))
                             (i32.const 0x40))) ;; '@'
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $scan)))
    (local.get $i))

  ;; $set_domain_of_address: the dispatch domain = bytes after the last '@' of [p, p+n).
  (func $set_domain_of_address (param $p i32) (param $n i32)
    (local $i i32)
    (local.set $i (call $after_last_at (local.get $p) (local.get $n)))
    (global.set $dom_ptr (i32.add (local.get $p) (local.get $i)))
    (global.set $dom_len (i32.sub (local.get $n) (local.get $i))))

  ;; $is_domain: 1 when the dispatch domain equals the literal [lit, lit+len).
  (func $is_domain (param $lit i32) (param $len i32) (result i32)
    (call $bytes_eq (global.get $dom_ptr) (global.get $dom_len) (local.get $lit) (local.get $len)))

  ;; $fmt_i32: writes $v in decimal at NUM (0x0400), "-" first when negative; returns the length
  ;; (1 to 11). The magnitude is taken as unsigned, so -2147483648 works too.
  (func $fmt_i32 (param $v i32) (result i32)
    (local $mag i32) (local $len i32) (local $t i32) (local $i i32)
    (local.set $mag (local.get $v))
    (if (i32.lt_s (local.get $v) (i32.const 0))
      (then
        (i32.store8 (i32.const 0x0400) (i32.const 0x2D)) ;; '-'
        (local.set $len (i32.const 1))
        (local.set $mag (i32.sub (i32.const 0) (local.get $v)))))
    ;; count the digits
    (local.set $t (local.get $mag))
    (loop $count
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $count (local.get $t)))
    ;; write them right to left, ending at NUM + len
    (local.set $i (local.get $len))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (i32.const 0x0400) (local.get $i))
                  (i32.add (i32.const 0x30) (i32.rem_u (local.get $mag) (i32.const 10))))
      (local.set $mag (i32.div_u (local.get $mag) (i32.const 10)))
      (br_if $write (local.get $mag)))
    (local.get $len))

  ;; =====================================================================================
  ;; Errors
  ;; =====================================================================================

  ;; $fail: sets the hook's error to the host's last_error text (or "host call failed" when
  ;; there is none or it does not fit ERR) and returns 1, the hook's failure result.
  (func $fail (result i32)
    (local $n i32)
    (local.set $n (call $last_error (i32.const 0x1000) (i32.const 1024)))
    (if (i32.and (i32.gt_s (local.get $n) (i32.const 0)) (i32.le_s (local.get $n) (i32.const 1024)))
      (then (call $set_error (i32.const 0x1000) (local.get $n)))
      (else (call $set_error (i32.const 672) (i32.const 16)))) ;; "host call failed"
    (i32.const 1))

  ;; $failed: 0 when status $rc is OK (>= 0); otherwise sets the error ($fail) and returns 1.
  ;; Use: (if (call $failed (call $host ...)) (then (return (i32.const 1))))
  (func $failed (param $rc i32) (result i32)
    (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (call $fail))))
    (i32.const 0))

  ;; =====================================================================================
  ;; Reads with the (buf, limit) retry. Each asks into $buf with limit 1 KiB; when the host
  ;; reports n > 1 KiB (nothing written) it asks once more into an n-byte HEAP block.
  ;; Returns n (or the negative status) and leaves the value's address in $val_ptr.
  ;; =====================================================================================

  ;; $retried: the result of the second ask must fit the n bytes given; a value that grew
  ;; between the two asks cannot happen within one hook call, so it traps.
  (func $retried (param $limit i32) (param $n i32) (result i32)
    (if (i32.gt_s (local.get $n) (local.get $limit)) (then (unreachable)))
    (local.get $n))

  (func $read_sender (param $buf i32) (result i32)
    (local $n i32)
    (global.set $val_ptr (local.get $buf))
    (local.set $n (call $get_sender (local.get $buf) (i32.const 1024)))
    (if (i32.le_s (local.get $n) (i32.const 1024)) (then (return (local.get $n))))
    (global.set $val_ptr (call $alloc (local.get $n)))
    (call $retried (local.get $n) (call $get_sender (global.get $val_ptr) (local.get $n))))

  (func $read_config (param $buf i32) (result i32)
    (local $n i32)
    (global.set $val_ptr (local.get $buf))
    (local.set $n (call $get_config (local.get $buf) (i32.const 1024)))
    (if (i32.le_s (local.get $n) (i32.const 1024)) (then (return (local.get $n))))
    (global.set $val_ptr (call $alloc (local.get $n)))
    (call $retried (local.get $n) (call $get_config (global.get $val_ptr) (local.get $n))))

  (func $read_recipient (param $idx i32) (param $buf i32) (result i32)
    (local $n i32)
    (global.set $val_ptr (local.get $buf))
    (local.set $n (call $get_recipient (local.get $idx) (local.get $buf) (i32.const 1024)))
    (if (i32.le_s (local.get $n) (i32.const 1024)) (then (return (local.get $n))))
    (global.set $val_ptr (call $alloc (local.get $n)))
    (call $retried (local.get $n)
      (call $get_recipient (local.get $idx) (global.get $val_ptr) (local.get $n))))

  (func $read_meta (param $key i32) (param $klen i32) (param $buf i32) (result i32)
    (local $n i32)
    (global.set $val_ptr (local.get $buf))
    (local.set $n (call $get_meta (local.get $key) (local.get $klen) (local.get $buf) (i32.const 1024)))
    (if (i32.le_s (local.get $n) (i32.const 1024)) (then (return (local.get $n))))
    (global.set $val_ptr (call $alloc (local.get $n)))
    (call $retried (local.get $n)
      (call $get_meta (local.get $key) (local.get $klen) (global.get $val_ptr) (local.get $n))))

  (func $read_header (param $name i32) (param $nlen i32) (param $idx i32) (param $buf i32) (result i32)
    (local $n i32)
    (global.set $val_ptr (local.get $buf))
    (local.set $n (call $get_header (local.get $name) (local.get $nlen) (local.get $idx)
                                    (local.get $buf) (i32.const 1024)))
    (if (i32.le_s (local.get $n) (i32.const 1024)) (then (return (local.get $n))))
    (global.set $val_ptr (call $alloc (local.get $n)))
    (call $retried (local.get $n)
      (call $get_header (local.get $name) (local.get $nlen) (local.get $idx)
                        (global.get $val_ptr) (local.get $n))))

  ;; =====================================================================================
  ;; set_meta helpers; each returns 1 when the hook must fail (error already set), else 0.
  ;; =====================================================================================

  ;; $set_meta_lit: key and value are both literals.
  (func $set_meta_lit (param $key i32) (param $klen i32) (param $val i32) (param $vlen i32) (result i32)
    (call $failed (call $set_meta (local.get $key) (local.get $klen) (local.get $val) (local.get $vlen))))

  ;; $set_meta_i32: the value is $v in decimal ("2", "-2").
  (func $set_meta_i32 (param $key i32) (param $klen i32) (param $v i32) (result i32)
    (local $len i32)
    (local.set $len (call $fmt_i32 (local.get $v)))
    (call $failed (call $set_meta (local.get $key) (local.get $klen) (i32.const 0x0400) (local.get $len))))

  ;; $copy_required: $n is a read's result; its value (at $val_ptr) goes to meta $key.
  ;; A negative status fails the hook.
  (func $copy_required (param $n i32) (param $key i32) (param $klen i32) (result i32)
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (call $fail))))
    (call $failed (call $set_meta (local.get $key) (local.get $klen) (global.get $val_ptr) (local.get $n))))

  ;; $copy_optional: like $copy_required, but NotFound (-1) just skips the copy.
  (func $copy_optional (param $n i32) (param $key i32) (param $klen i32) (result i32)
    (if (i32.eq (local.get $n) (i32.const -1)) (then (return (i32.const 0))))
    (call $copy_required (local.get $n) (local.get $key) (local.get $klen)))

  ;; $route: when the domain is [dom, dom+dlen), set_meta(key, val). 1 = hook must fail.
  (func $route (param $dom i32) (param $dlen i32)
               (param $key i32) (param $klen i32) (param $val i32) (param $vlen i32) (result i32)
    (if (call $is_domain (local.get $dom) (local.get $dlen))
      (then (return (call $set_meta_lit (local.get $key) (local.get $klen) (local.get $val) (local.get $vlen)))))
    (i32.const 0))

  ;; =====================================================================================
  ;; Hooks (SPEC.md)
  ;; =====================================================================================

  (func (export "smtp_server_message_received") (result i32)
    (local $n i32) (local $rc i32) (local $count i32)
    (global.set $heap_top (i32.const 0x10000))

    ;; d = domain of recipient 0 ("" when there is none), read into RCPT0
    (local.set $n (call $read_recipient (i32.const 0) (i32.const 0x0800)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
    (call $set_domain_of_address (global.get $val_ptr) (local.get $n))

    ;; 1. fail.test: stage tenant=leak, then fail (the host must apply nothing)
    (if (call $is_domain (i32.const 0) (i32.const 9)) ;; "fail.test"
      (then
        (drop (call $set_meta (i32.const 144) (i32.const 6) (i32.const 336) (i32.const 4))) ;; tenant=leak
        (call $set_error (i32.const 608) (i32.const 19)) ;; "conformance failure"
        (return (i32.const 1))))

    ;; 2. reject.test: 550 5.7.1
    (if (call $is_domain (i32.const 16) (i32.const 11)) ;; "reject.test"
      (then (return (call $failed (call $reject (i32.const 550) (i32.const 560) (i32.const 29))))))

    ;; 3. reject4.test: 451 4.7.1
    (if (call $is_domain (i32.const 32) (i32.const 12)) ;; "reject4.test"
      (then (return (call $failed (call $reject (i32.const 451) (i32.const 592) (i32.const 15))))))

    ;; 4. routing by d
    ;;    routing.test -> routing_domain = my.smarthost.test
    (if (call $route (i32.const 48) (i32.const 12) (i32.const 160) (i32.const 14) (i32.const 352) (i32.const 17))
      (then (return (i32.const 1))))
    ;;    queue.test -> queue = my.smarthost.test
    (if (call $route (i32.const 64) (i32.const 10) (i32.const 176) (i32.const 5) (i32.const 352) (i32.const 17))
      (then (return (i32.const 1))))
    ;;    v4.test -> queue = [127.0.0.5]
    (if (call $route (i32.const 80) (i32.const 7) (i32.const 176) (i32.const 5) (i32.const 384) (i32.const 11))
      (then (return (i32.const 1))))
    ;;    v6.test -> routing_domain = [IPv6:::1]
    (if (call $route (i32.const 96) (i32.const 7) (i32.const 160) (i32.const 14) (i32.const 400) (i32.const 10))
      (then (return (i32.const 1))))
    ;;    nc.test -> routing_domain = [::1]
    (if (call $route (i32.const 112) (i32.const 7) (i32.const 160) (i32.const 14) (i32.const 416) (i32.const 5))
      (then (return (i32.const 1))))
    ;;    badliteral.test -> routing_domain = "[10.0.0.1" is refused (-2); record the status
    (if (call $is_domain (i32.const 128) (i32.const 15)) ;; "badliteral.test"
      (then
        (local.set $rc (call $set_meta (i32.const 160) (i32.const 14) (i32.const 432) (i32.const 9)))
        (if (call $set_meta_i32 (i32.const 192) (i32.const 14) (local.get $rc)) ;; literal_status
          (then (return (i32.const 1))))))

    ;; 5. Subject header (if any) -> meta subject
    (if (call $copy_optional
          (call $read_header (i32.const 448) (i32.const 7) (i32.const 0) (i32.const 0x0C00))
          (i32.const 208) (i32.const 7))
      (then (return (i32.const 1))))

    ;; 6. meta in (if any) -> meta out
    (if (call $copy_optional
          (call $read_meta (i32.const 224) (i32.const 2) (i32.const 0x0C00))
          (i32.const 240) (i32.const 3))
      (then (return (i32.const 1))))

    ;; 7. envelope sender -> meta sender ("" for <>)
    (if (call $copy_required (call $read_sender (i32.const 0x0C00)) (i32.const 256) (i32.const 6))
      (then (return (i32.const 1))))

    ;; 8. recipient count -> meta rcpts; the last recipient -> meta last_rcpt
    (local.set $count (call $recipient_count))
    (if (call $failed (local.get $count)) (then (return (i32.const 1))))
    (if (call $set_meta_i32 (i32.const 272) (i32.const 5) (local.get $count))
      (then (return (i32.const 1))))
    (if (call $copy_required
          (call $read_recipient (i32.sub (local.get $count) (i32.const 1)) (i32.const 0x0C00))
          (i32.const 288) (i32.const 9))
      (then (return (i32.const 1))))

    ;; 9. the plugin's config (raw JSON) -> meta config
    (if (call $copy_required (call $read_config (i32.const 0x0C00)) (i32.const 304) (i32.const 6))
      (then (return (i32.const 1))))

    ;; 10. X-Conformance: 1 at the top, X-Conformance-End: 1 at the end of the header
    (if (call $failed (call $prepend_header (i32.const 464) (i32.const 13) (i32.const 512) (i32.const 1)))
      (then (return (i32.const 1))))
    (if (call $failed (call $append_header (i32.const 480) (i32.const 17) (i32.const 512) (i32.const 1)))
      (then (return (i32.const 1))))

    ;; 11. header injection is refused (-2); record the status
    (local.set $rc (call $prepend_header (i32.const 528) (i32.const 5) (i32.const 544) (i32.const 16)))
    (if (call $set_meta_i32 (i32.const 320) (i32.const 13) (local.get $rc)) ;; inject_status
      (then (return (i32.const 1))))

    ;; 12.
    (i32.const 0))

  (func (export "get_queue_config") (result i32)
    (local $n i32) (local $rc i32)
    (global.set $heap_top (i32.const 0x10000))

    ;; the queue's domain, read into VAL; absent = no opinion
    (local.set $n (call $read_meta (i32.const 688) (i32.const 6) (i32.const 0x0C00))) ;; "domain"
    (if (i32.eq (local.get $n) (i32.const -1)) (then (return (i32.const 0))))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (call $fail))))
    (global.set $dom_ptr (global.get $val_ptr))
    (global.set $dom_len (local.get $n))

    ;; mx.test: retry 5s and an mx_list; the hook returns make_queue_config's status
    (if (call $is_domain (i32.const 704) (i32.const 7)) ;; "mx.test"
      (then
        (local.set $rc (call $make_queue_config (i32.const 768) (i32.const 121)))
        (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (drop (call $fail))))
        (return (local.get $rc))))

    ;; badcfg.test: a misspelt field must be refused; then fail with "bad config refused"
    (if (call $is_domain (i32.const 720) (i32.const 11)) ;; "badcfg.test"
      (then
        (if (i32.lt_s (call $make_queue_config (i32.const 736) (i32.const 17)) (i32.const 0))
          (then
            (call $set_error (i32.const 640) (i32.const 18))
            (return (i32.const 1))))))

    ;; anything else: no opinion
    (i32.const 0))

  ;; =====================================================================================
  ;; get_egress_path_config (ABI 1.2)
  ;; =====================================================================================

  ;; $copy: n bytes from src to dst (no bulk memory in Wasm 1.0).
  (func $copy (param $dst i32) (param $src i32) (param $n i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (i32.add (local.get $dst) (local.get $i))
                    (i32.load8_u (i32.add (local.get $src) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  (func (export "get_egress_path_config") (result i32)
    (local $n i32) (local $site i32) (local $doc i32) (local $len i32)
    (global.set $heap_top (i32.const 0x10000))

    ;; the routing domain (always present), read into RCPT0, selects the behaviour
    (local.set $n (call $read_meta (i32.const 160) (i32.const 14) (i32.const 0x0800))) ;; "routing_domain"
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (call $fail))))
    (global.set $dom_ptr (global.get $val_ptr))
    (global.set $dom_len (local.get $n))

    ;; typo.test: a misspelt field; the host refuses it and its last_error, which names the
    ;; field, becomes the hook's error
    (if (call $is_domain (i32.const 1072) (i32.const 9)) ;; "typo.test"
      (then
        (if (i32.lt_s (call $make_egress_path_config (i32.const 1088) (i32.const 21)) (i32.const 0))
          (then (return (call $fail))))
        (return (i32.const 0))))

    ;; anything but smarthost.test: no opinion
    (if (i32.eqz (call $is_domain (i32.const 1056) (i32.const 14))) ;; "smarthost.test"
      (then (return (i32.const 0))))

    ;; the site (always present), read into VAL; a host name, so it needs no JSON escaping
    (local.set $n (call $read_meta (i32.const 1040) (i32.const 4) (i32.const 0x0C00))) ;; "site"
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (call $fail))))
    (local.set $site (global.get $val_ptr))

    ;; the document in HEAP: the literal prefix, the site, "\"}"
    (local.set $len (i32.add (i32.const 241) (i32.add (local.get $n) (i32.const 2))))
    (local.set $doc (call $alloc (local.get $len)))
    (call $copy (local.get $doc) (i32.const 1120) (i32.const 241))
    (call $copy (i32.add (local.get $doc) (i32.const 241)) (local.get $site) (local.get $n))
    (i32.store8 (i32.sub (i32.add (local.get $doc) (local.get $len)) (i32.const 2)) (i32.const 0x22)) ;; '"'
    (i32.store8 (i32.sub (i32.add (local.get $doc) (local.get $len)) (i32.const 1)) (i32.const 0x7D)) ;; '}'
    (if (i32.lt_s (call $make_egress_path_config (local.get $doc) (local.get $len)) (i32.const 0))
      (then (return (call $fail))))
    (i32.const 0))
)
