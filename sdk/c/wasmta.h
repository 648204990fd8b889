/*
 * wasmta.h: the C SDK for wasmta policy plugins (ABI v1, abi/ABI.md). One header, no libc.
 *
 *   clang-14 --target=wasm32 -mcpu=mvp -O2 -nostdlib -Wl,--no-entry -I sdk/c \
 *       -o myplugin.wasm myplugin.c
 *
 *   #include "wasmta.h"
 *   WASMTA_ABI_V1();
 *   static int32_t on_message(void) {
 *       if (wasmta_set_meta_s("routing_domain", "my.smarthost.com") < 0)
 *           return wasmta_fail_s("set_meta routing_domain refused");
 *       return 0;
 *   }
 *   WASMTA_ON_MESSAGE_RECEIVED(on_message);
 *
 * Contents:
 *   1. constants (ABI version, status codes, log levels, feature bits, limits)
 *   2. the host functions of module "wasmta", declared as imports (raw ABI, (ptr, len) pairs)
 *   3. export macros: the wasmta_abi_v1 marker, wasmta_init and the hooks
 *   4. freestanding memcpy/memmove/memset/memcmp (clang may emit calls to them)
 *   5. wasmta_str, string helpers, literal helpers (*_s macros)
 *   6. the arena and the fetch helpers: (buf, limit) calls with the retry done for you
 *   7. decimal formatting, a string builder, failure helpers
 *   8. a tiny JSON writer for make_queue_config, dkim_sign and make_egress_path_config
 *
 * Memory: results fetched by the helpers of section 6 live in an arena that starts at
 * __heap_base and grows linear memory on demand. It is rewound when a hook starts, so a value
 * fetched in a hook stays valid until that hook returns; what wasmta_init fetches stays valid
 * for the life of the instance. One instance runs one call at a time: no locking is needed.
 * Do not combine the arena with a libc malloc (both would claim the memory after __heap_base).
 *
 * The header may be included by several .c files of one plugin: shared state is a weak symbol.
 */
#ifndef WASMTA_H
#define WASMTA_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__wasm32__)
#error "wasmta.h targets wasm32: build with clang --target=wasm32 (see sdk/c/README.md)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- 1. constants */

#define WASMTA_ABI_MAJOR 1
#define WASMTA_ABI_MINOR 2 /* 1.1: dkim_sign; 1.2: get_egress_path_config, make_egress_path_config */
#define WASMTA_ABI_VERSION ((WASMTA_ABI_MAJOR << 16) | WASMTA_ABI_MINOR) /* 0x00010002 */

/* Status codes: host results < 0. Non-negative results are lengths or counts. */
#define WASMTA_OK 0
#define WASMTA_NOT_FOUND (-1)     /* no such meta key, recipient index or header */
#define WASMTA_INVALID (-2)       /* malformed argument (bad key, CR/LF in a header, bad JSON...) */
#define WASMTA_NOT_ALLOWED (-3)   /* call outside the hook it belongs to, feature not granted */
#define WASMTA_LIMIT (-4)         /* a size or count limit */
#define WASMTA_UNIMPLEMENTED (-5) /* known to the host but not implemented */

/* Log levels for wasmta_log. */
#define WASMTA_LOG_DEBUG (-1)
#define WASMTA_LOG_INFO 0
#define WASMTA_LOG_WARN 1
#define WASMTA_LOG_ERROR 2

/* Feature bits for wasmta_features: the host answers want & granted. */
#define WASMTA_FEATURE_HEADER_WRITE ((uint64_t)1 << 0) /* prepend_header / append_header */
#define WASMTA_FEATURE_BODY_READ ((uint64_t)1 << 1)    /* get_body */

/* Limits enforced by the host (ABI.md section 6). */
#define WASMTA_MAX_META_KEY 64
#define WASMTA_MAX_META_VALUE 1024
#define WASMTA_MAX_META_KEYS 64
#define WASMTA_MAX_HEADER_NAME 76
#define WASMTA_MAX_HEADER_VALUE 998
#define WASMTA_MAX_HEADER_EDITS 32
#define WASMTA_MAX_QUEUE_CONFIG (64 * 1024)
#define WASMTA_MAX_EGRESS_PATH_CONFIG (16 * 1024) /* bytes of make_egress_path_config JSON */
#define WASMTA_MAX_DKIM_PARAMS (4 * 1024)   /* bytes of dkim_sign JSON */
#define WASMTA_MAX_DKIM_SIGNATURES 8        /* dkim_sign requests per message, all plugins */
#define WASMTA_MAX_DKIM_HEADERS 64          /* header names per request */
#define WASMTA_MAX_LOG_LINE (4 * 1024)
#define WASMTA_MAX_REJECT_TEXT 512
#define WASMTA_MAX_ERROR_TEXT 1024
#define WASMTA_MAX_HOST_CALLS 100000

/* ---------------------------------------------------------------- 2. host functions */

/* Every string is (ptr, len): UTF-8 bytes, not NUL-terminated. Every getter takes
 * (buf, limit), returns the full length n >= 0 and writes the bytes only if n <= limit;
 * a negative result is a status code, explained by wasmta_last_error. The helpers of
 * section 6 do the retry for you. */
#define WASMTA_IMPORT(name) __attribute__((import_module("wasmta"), import_name(name)))

/* anywhere */
WASMTA_IMPORT("abi_version") int32_t wasmta_abi_version(void);
WASMTA_IMPORT("features") uint64_t wasmta_features(uint64_t want);
WASMTA_IMPORT("log") void wasmta_log(int32_t level, const char *ptr, uint32_t len);
WASMTA_IMPORT("get_config") int32_t wasmta_get_config(char *buf, uint32_t limit);
WASMTA_IMPORT("set_error") void wasmta_set_error(const char *ptr, uint32_t len);
WASMTA_IMPORT("last_error") int32_t wasmta_last_error(char *buf, uint32_t limit);
/* message hooks; get_meta also in get_queue_config (queue, domain, tenant, campaign,
 * routing_domain, read-only) and in get_egress_path_config (routing_domain, site, read-only) */
WASMTA_IMPORT("get_meta")
int32_t wasmta_get_meta(const char *key, uint32_t key_len, char *buf, uint32_t limit);
WASMTA_IMPORT("set_meta")
int32_t wasmta_set_meta(const char *key, uint32_t key_len, const char *val, uint32_t val_len);
WASMTA_IMPORT("get_sender") int32_t wasmta_get_sender(char *buf, uint32_t limit);
WASMTA_IMPORT("recipient_count") int32_t wasmta_recipient_count(void);
WASMTA_IMPORT("get_recipient") int32_t wasmta_get_recipient(int32_t idx, char *buf, uint32_t limit);
WASMTA_IMPORT("get_header")
int32_t wasmta_get_header(const char *name, uint32_t name_len, int32_t idx, char *buf,
                          uint32_t limit);
WASMTA_IMPORT("prepend_header")
int32_t wasmta_prepend_header(const char *name, uint32_t name_len, const char *val,
                              uint32_t val_len);
WASMTA_IMPORT("append_header")
int32_t wasmta_append_header(const char *name, uint32_t name_len, const char *val,
                             uint32_t val_len);
WASMTA_IMPORT("get_body") int32_t wasmta_get_body(char *buf, uint32_t limit);
WASMTA_IMPORT("reject") int32_t wasmta_reject(int32_t code, const char *text, uint32_t text_len);
/* ABI 1.1, message hooks: stage a DKIM signature with a [[dkim]] key named in the JSON params
 * {"key", "domain", "selector", "headers", "header_canonicalization", "body_canonicalization",
 * "expiration"} (ABI.md, dkim_sign). The host signs after the whole plugin chain ran. Importing
 * it makes the plugin need an ABI 1.1 host; an unused declaration imports nothing. */
WASMTA_IMPORT("dkim_sign") int32_t wasmta_dkim_sign(const char *json, uint32_t json_len);
/* get_queue_config */
WASMTA_IMPORT("make_queue_config") int32_t wasmta_make_queue_config(const char *json, uint32_t json_len);
/* ABI 1.2, get_egress_path_config: the egress path config of the site asked about, a JSON object
 * with the [egress] key names (ABI.md, make_egress_path_config). wasm-ld imports only functions
 * that are called, so a plugin that never calls it (nor wasmta_json_make_egress_path_config)
 * does not import it and still loads on an ABI 1.1 host. */
WASMTA_IMPORT("make_egress_path_config")
int32_t wasmta_make_egress_path_config(const char *json, uint32_t json_len);

/* ---------------------------------------------------------------- 3. exports */

#define WASMTA_EXPORT(name) __attribute__((export_name(name)))

/* WASMTA_ABI_V1(); at file scope, once per plugin: exports the marker wasmta_abi_v1. */
#define WASMTA_ABI_V1() \
    WASMTA_EXPORT("wasmta_abi_v1") void wasmta__abi_v1_marker(void) {} \
    typedef int wasmta__abi_v1_semicolon

/* Hook registration, at file scope, with a function int32_t fn(void): 0 = success (the staged
 * effects apply), anything else = failure (nothing applies; the wasmta_set_error text is
 * logged). Export only the hooks you implement.
 *
 *   WASMTA_ON_INIT(fn)                   wasmta_init, once per instance; non-zero refuses the plugin
 *   WASMTA_ON_MESSAGE_RECEIVED(fn)       smtp_server_message_received
 *   WASMTA_ON_HTTP_MESSAGE_GENERATED(fn) http_message_generated
 *   WASMTA_ON_GET_QUEUE_CONFIG(fn)       get_queue_config
 *   WASMTA_ON_GET_EGRESS_PATH_CONFIG(fn) get_egress_path_config (ABI 1.2): read routing_domain
 *                                        and site with wasmta_meta_s, answer with
 *                                        wasmta_json_make_egress_path_config, or return 0
 *                                        without it for "no opinion"
 */
#define WASMTA__HOOK(export, sym, fn) \
    WASMTA_EXPORT(export) int32_t sym(void) { \
        wasmta__arena_rewind(); \
        return (fn)(); \
    } \
    typedef int sym##__semicolon

#define WASMTA_ON_INIT(fn) \
    WASMTA_EXPORT("wasmta_init") int32_t wasmta__export_init(void) { \
        wasmta__arena_rewind(); \
        int32_t wasmta__rc = (fn)(); \
        wasmta__arena_keep(); \
        return wasmta__rc; \
    } \
    typedef int wasmta__export_init__semicolon
#define WASMTA_ON_MESSAGE_RECEIVED(fn) \
    WASMTA__HOOK("smtp_server_message_received", wasmta__export_smtp_server_message_received, fn)
#define WASMTA_ON_HTTP_MESSAGE_GENERATED(fn) \
    WASMTA__HOOK("http_message_generated", wasmta__export_http_message_generated, fn)
#define WASMTA_ON_GET_QUEUE_CONFIG(fn) \
    WASMTA__HOOK("get_queue_config", wasmta__export_get_queue_config, fn)
#define WASMTA_ON_GET_EGRESS_PATH_CONFIG(fn) \
    WASMTA__HOOK("get_egress_path_config", wasmta__export_get_egress_path_config, fn)

/* ---------------------------------------------------------------- 4. freestanding libc bits */

/* clang lowers struct copies and some loops to memcpy/memset calls even without libc. Weak
 * definitions satisfy them (a real libc, if linked, wins); unused ones are dropped by the linker.
 * LLVM never turns the loop of a function named memcpy/memset into a call to itself. */
#define WASMTA__WEAK __attribute__((weak, visibility("hidden")))
/* Helpers that would bloat every call site are kept out of line (one copy per .c file). */
#define WASMTA__OUTLINE static inline __attribute__((noinline))

WASMTA__WEAK void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (n--) *d++ = *s++;
    return dst;
}
WASMTA__WEAK void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}
WASMTA__WEAK void *memset(void *dst, int c, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
WASMTA__WEAK int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}
/* clang turns memcmp(...) == 0 into bcmp. */
WASMTA__WEAK int bcmp(const void *a, const void *b, size_t n) { return memcmp(a, b, n); }

/* ---------------------------------------------------------------- 5. strings */

/* A byte string view (not NUL-terminated). */
typedef struct {
    const char *ptr;
    uint32_t len;
} wasmta_str;

/* WASMTA_S("lit") expands to the (ptr, len) pair of a string literal, for any raw call:
 *   wasmta_set_meta(WASMTA_S("tenant"), v.ptr, v.len); */
#define WASMTA_S(lit) ("" lit ""), ((uint32_t)(sizeof("" lit "") - 1))
/* WASMTA_STR("lit") is a wasmta_str of a string literal. */
#define WASMTA_STR(lit) ((wasmta_str){"" lit "", (uint32_t)(sizeof("" lit "") - 1)})

static inline uint32_t wasmta_strlen(const char *s) {
    uint32_t n = 0;
    while (s[n]) n++;
    return n;
}
/* A view of a NUL-terminated string. */
static inline wasmta_str wasmta_cstr(const char *s) {
    wasmta_str r = {s, wasmta_strlen(s)};
    return r;
}
static inline wasmta_str wasmta_str_of(const char *p, uint32_t n) {
    wasmta_str r = {p, n};
    return r;
}
WASMTA__OUTLINE int wasmta_str_eq(wasmta_str a, const char *b, uint32_t blen) {
    if (a.len != blen) return 0;
    for (uint32_t i = 0; i < blen; i++)
        if (a.ptr[i] != b[i]) return 0;
    return 1;
}
#define wasmta_str_eq_s(a, lit) wasmta_str_eq((a), WASMTA_S(lit))
static inline char wasmta__lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }
/* ASCII case-insensitive equality (domains, header names). */
WASMTA__OUTLINE int wasmta_str_eq_nocase(wasmta_str a, const char *b, uint32_t blen) {
    if (a.len != blen) return 0;
    for (uint32_t i = 0; i < blen; i++)
        if (wasmta__lower(a.ptr[i]) != wasmta__lower(b[i])) return 0;
    return 1;
}
#define wasmta_str_eq_nocase_s(a, lit) wasmta_str_eq_nocase((a), WASMTA_S(lit))
static inline int wasmta_str_has_suffix(wasmta_str a, const char *suf, uint32_t n) {
    return a.len >= n && wasmta_str_eq(wasmta_str_of(a.ptr + a.len - n, n), suf, n);
}
#define wasmta_str_has_suffix_s(a, lit) wasmta_str_has_suffix((a), WASMTA_S(lit))
/* The index of the last byte c in a, or -1. */
static inline int32_t wasmta_str_last_index(wasmta_str a, char c) {
    for (uint32_t i = a.len; i > 0; i--)
        if (a.ptr[i - 1] == c) return (int32_t)(i - 1);
    return -1;
}
/* What follows the last byte c (all of a when there is none): the domain of "user@domain". */
static inline wasmta_str wasmta_str_after_last(wasmta_str a, char c) {
    uint32_t i = (uint32_t)(wasmta_str_last_index(a, c) + 1);
    return wasmta_str_of(a.ptr + i, a.len - i);
}

/* Literal forms of the raw calls. Arguments must be string literals. */
#define wasmta_log_s(level, lit) wasmta_log((level), WASMTA_S(lit))
#define wasmta_set_error_s(lit) wasmta_set_error(WASMTA_S(lit))
#define wasmta_set_meta_s(key, val) wasmta_set_meta(WASMTA_S(key), WASMTA_S(val))
#define wasmta_prepend_header_s(name, val) wasmta_prepend_header(WASMTA_S(name), WASMTA_S(val))
#define wasmta_append_header_s(name, val) wasmta_append_header(WASMTA_S(name), WASMTA_S(val))
#define wasmta_reject_s(code, text) wasmta_reject((code), WASMTA_S(text))
#define wasmta_make_queue_config_s(json) wasmta_make_queue_config(WASMTA_S(json))
#define wasmta_dkim_sign_s(json) wasmta_dkim_sign(WASMTA_S(json))
#define wasmta_make_egress_path_config_s(json) wasmta_make_egress_path_config(WASMTA_S(json))

/* wasmta_str forms. */
static inline void wasmta_log_str(int32_t level, wasmta_str s) { wasmta_log(level, s.ptr, s.len); }
static inline int32_t wasmta_set_meta_str(const char *key, uint32_t key_len, wasmta_str v) {
    return wasmta_set_meta(key, key_len, v.ptr, v.len);
}
#define wasmta_set_meta_str_s(key, v) wasmta_set_meta_str(WASMTA_S(key), (v))

/* ---------------------------------------------------------------- 6. arena and fetch helpers */

extern unsigned char __heap_base; /* defined by wasm-ld: the first byte after data and stack */

WASMTA__WEAK uint32_t wasmta__arena_top;  /* next free byte; 0 until first use */
WASMTA__WEAK uint32_t wasmta__arena_mark; /* where each hook starts (after wasmta_init's data) */

static inline uint32_t wasmta__arena_base(void) {
    return wasmta__arena_mark ? wasmta__arena_mark : (uint32_t)(uintptr_t)&__heap_base;
}
static inline void wasmta__arena_rewind(void) { wasmta__arena_top = wasmta__arena_base(); }
static inline void wasmta__arena_keep(void) { wasmta__arena_mark = wasmta__arena_top; }
/* The hook macros rewind the arena for you. A hook exported by hand
 * (WASMTA_EXPORT("get_queue_config") int32_t f(void) {...}) should call wasmta_arena_reset()
 * first, or every call keeps what the previous ones fetched. */
static inline void wasmta_arena_reset(void) { wasmta__arena_rewind(); }
static inline uint32_t wasmta__arena_cur(void) {
    if (!wasmta__arena_top) wasmta__arena_rewind();
    return wasmta__arena_top;
}
static inline uint64_t wasmta__memory_bytes(void) {
    return (uint64_t)__builtin_wasm_memory_size(0) << 16;
}
/* Makes [top, top+n) addressable, growing memory if needed. 0 when the host refuses to grow. */
static inline int wasmta__arena_reserve(uint32_t n) {
    uint64_t end = (uint64_t)wasmta__arena_cur() + n, have = wasmta__memory_bytes();
    if (end <= have) return 1;
    size_t pages = (size_t)((end - have + 65535) >> 16);
    return __builtin_wasm_memory_grow(0, pages) != (size_t)-1;
}

/* wasmta_alloc returns n bytes (8-aligned) from the arena, or 0 when memory cannot grow. */
static inline void *wasmta_alloc(uint32_t n) {
    uint32_t p = (wasmta__arena_cur() + 7u) & ~7u;
    wasmta__arena_top = p;
    if (!wasmta__arena_reserve(n)) return 0;
    wasmta__arena_top = p + n;
    return (void *)(uintptr_t)p;
}

enum {
    WASMTA__OP_CONFIG,
    WASMTA__OP_LAST_ERROR,
    WASMTA__OP_META,
    WASMTA__OP_SENDER,
    WASMTA__OP_RECIPIENT,
    WASMTA__OP_HEADER,
    WASMTA__OP_BODY
};

static inline int32_t wasmta__call(int op, const char *a, uint32_t alen, int32_t idx, char *buf,
                                   uint32_t limit) {
    switch (op) {
    case WASMTA__OP_CONFIG: return wasmta_get_config(buf, limit);
    case WASMTA__OP_LAST_ERROR: return wasmta_last_error(buf, limit);
    case WASMTA__OP_META: return wasmta_get_meta(a, alen, buf, limit);
    case WASMTA__OP_SENDER: return wasmta_get_sender(buf, limit);
    case WASMTA__OP_RECIPIENT: return wasmta_get_recipient(idx, buf, limit);
    case WASMTA__OP_HEADER: return wasmta_get_header(a, alen, idx, buf, limit);
    default: return wasmta_get_body(buf, limit);
    }
}

/* The free memory after the arena's top: *buf and the room there (capped at 2 GiB). */
WASMTA__OUTLINE uint32_t wasmta__free(char **buf) {
    uint32_t top = wasmta__arena_cur();
    uint64_t room = wasmta__memory_bytes() - top;
    *buf = (char *)(uintptr_t)top;
    return room > 0x7fffffffu ? 0x7fffffffu : (uint32_t)room;
}
/* After the call: grows memory to the announced size if the first call did not fit (0 means
 * "done, n is final"; 1 means "call again with limit n"; n becomes WASMTA_LIMIT when memory
 * cannot grow). */
WASMTA__OUTLINE int wasmta__need_retry(int32_t *n, uint32_t room) {
    if (*n <= 0 || (uint32_t)*n <= room) return 0;
    if (wasmta__arena_reserve((uint32_t)*n)) return 1;
    *n = WASMTA_LIMIT; /* memory.grow refused: [[plugins]] max_memory */
    return 0;
}
/* Commits n fetched bytes at buf to the arena and fills *out (empty on failure). */
WASMTA__OUTLINE int32_t wasmta__commit(int32_t n, uint32_t limit, char *buf, wasmta_str *out) {
    if (n > 0 && (uint32_t)n > limit) n = WASMTA_LIMIT; /* changed between the two calls */
    out->ptr = buf;
    out->len = 0;
    if (n < 0) return n;
    wasmta__arena_top = (uint32_t)(uintptr_t)buf + (uint32_t)n;
    out->len = (uint32_t)n;
    return n;
}

/* The (buf, limit) protocol against the arena: the first call offers all the free memory, so it
 * nearly always fits; otherwise memory grows to the announced size and the call is made once
 * more. On success *out views the bytes (valid until the hook returns) and the result is the
 * length; on failure *out is empty and the result is the status. */
static inline int32_t wasmta__fetch(int op, const char *a, uint32_t alen, int32_t idx,
                                    wasmta_str *out) {
    char *buf;
    uint32_t limit = wasmta__free(&buf);
    int32_t n = wasmta__call(op, a, alen, idx, buf, limit);
    if (wasmta__need_retry(&n, limit)) {
        limit = (uint32_t)n;
        n = wasmta__call(op, a, alen, idx, buf, limit);
    }
    return wasmta__commit(n, limit, buf, out);
}

/* Getters: result = length (>= 0) or status (< 0); *out holds the value. */
static inline int32_t wasmta_config(wasmta_str *out) {
    return wasmta__fetch(WASMTA__OP_CONFIG, 0, 0, 0, out);
}
/* The host's explanation of the last negative status in this call ("" when none). */
static inline wasmta_str wasmta_last_error_str(void) {
    wasmta_str s;
    wasmta__fetch(WASMTA__OP_LAST_ERROR, 0, 0, 0, &s);
    return s;
}
static inline int32_t wasmta_meta(const char *key, uint32_t key_len, wasmta_str *out) {
    return wasmta__fetch(WASMTA__OP_META, key, key_len, 0, out);
}
#define wasmta_meta_s(key, out) wasmta_meta(WASMTA_S(key), (out))
static inline int32_t wasmta_sender(wasmta_str *out) {
    return wasmta__fetch(WASMTA__OP_SENDER, 0, 0, 0, out);
}
static inline int32_t wasmta_recipient(int32_t idx, wasmta_str *out) {
    return wasmta__fetch(WASMTA__OP_RECIPIENT, 0, 0, idx, out);
}
/* The idx-th (0-based) header field called name (case-insensitive). */
static inline int32_t wasmta_header(const char *name, uint32_t name_len, int32_t idx,
                                    wasmta_str *out) {
    return wasmta__fetch(WASMTA__OP_HEADER, name, name_len, idx, out);
}
#define wasmta_header_s(name, idx, out) wasmta_header(WASMTA_S(name), (idx), (out))
static inline int32_t wasmta_body(wasmta_str *out) {
    return wasmta__fetch(WASMTA__OP_BODY, 0, 0, 0, out);
}

/* ---------------------------------------------------------------- 7. formatting, failures */

#define WASMTA_FMT_INT_SIZE 20 /* bytes wasmta_fmt_i64 may write: "-9223372036854775808" */

/* Writes v in decimal to out (at least WASMTA_FMT_INT_SIZE bytes) and returns the length. */
WASMTA__OUTLINE uint32_t wasmta_fmt_i64(char *out, int64_t v) {
    char tmp[WASMTA_FMT_INT_SIZE];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint32_t n = 0, len = 0;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = tmp[--n];
    return len;
}

/* Sets a meta value to the decimal form of v. */
static inline int32_t wasmta_set_meta_int(const char *key, uint32_t key_len, int64_t v) {
    char buf[WASMTA_FMT_INT_SIZE];
    return wasmta_set_meta(key, key_len, buf, wasmta_fmt_i64(buf, v));
}
#define wasmta_set_meta_int_s(key, v) wasmta_set_meta_int(WASMTA_S(key), (v))

/* A string builder over a caller's buffer. What does not fit is dropped and status becomes
 * WASMTA_LIMIT; len never exceeds cap. */
typedef struct {
    char *buf;
    uint32_t cap, len;
    int32_t status; /* WASMTA_OK, or WASMTA_LIMIT once something did not fit */
} wasmta_sb;

static inline void wasmta_sb_init(wasmta_sb *b, char *buf, uint32_t cap) {
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->status = WASMTA_OK;
}
WASMTA__OUTLINE void wasmta_sb_byte(wasmta_sb *b, char c) {
    if (b->len < b->cap) b->buf[b->len++] = c;
    else b->status = WASMTA_LIMIT;
}
WASMTA__OUTLINE void wasmta_sb_append(wasmta_sb *b, const char *p, uint32_t n) {
    if (n > b->cap - b->len) {
        n = b->cap - b->len;
        b->status = WASMTA_LIMIT;
    }
    for (uint32_t i = 0; i < n; i++) b->buf[b->len + i] = p[i];
    b->len += n;
}
#define wasmta_sb_append_s(b, lit) wasmta_sb_append((b), WASMTA_S(lit))
static inline void wasmta_sb_str(wasmta_sb *b, wasmta_str s) { wasmta_sb_append(b, s.ptr, s.len); }
static inline void wasmta_sb_int(wasmta_sb *b, int64_t v) {
    char tmp[WASMTA_FMT_INT_SIZE];
    wasmta_sb_append(b, tmp, wasmta_fmt_i64(tmp, v));
}
static inline wasmta_str wasmta_sb_view(const wasmta_sb *b) { return wasmta_str_of(b->buf, b->len); }

/* The name of a status code ("not found", "invalid argument", ...). */
static inline wasmta_str wasmta_status_text(int32_t status) {
    switch (status) {
    case WASMTA_OK: return WASMTA_STR("ok");
    case WASMTA_NOT_FOUND: return WASMTA_STR("not found");
    case WASMTA_INVALID: return WASMTA_STR("invalid argument");
    case WASMTA_NOT_ALLOWED: return WASMTA_STR("not allowed here");
    case WASMTA_LIMIT: return WASMTA_STR("limit exceeded");
    case WASMTA_UNIMPLEMENTED: return WASMTA_STR("not implemented by this host");
    default: return WASMTA_STR("unknown status");
    }
}

/* return wasmta_fail_s("text"); sets the failure text and returns 1 (a failed hook). */
static inline int32_t wasmta_fail(const char *text, uint32_t len) {
    wasmta_set_error(text, len);
    return 1;
}
#define wasmta_fail_s(lit) wasmta_fail(WASMTA_S(lit))

/* return wasmta_fail_status_s("set_meta", rc); sets "wasmta: set_meta: invalid argument: <the
 * host's last_error>" as the failure text and returns 1. Call it right after the failed call. */
WASMTA__OUTLINE int32_t wasmta_fail_status(const char *op, uint32_t op_len, int32_t status) {
    char buf[WASMTA_MAX_ERROR_TEXT];
    wasmta_sb b;
    wasmta_str why = wasmta_last_error_str();
    wasmta_sb_init(&b, buf, sizeof buf);
    wasmta_sb_append_s(&b, "wasmta: ");
    wasmta_sb_append(&b, op, op_len);
    wasmta_sb_append_s(&b, ": ");
    wasmta_sb_str(&b, wasmta_status_text(status));
    if (status < WASMTA_UNIMPLEMENTED || status > WASMTA_OK) {
        wasmta_sb_byte(&b, ' ');
        wasmta_sb_int(&b, status);
    }
    if (why.len) {
        wasmta_sb_append_s(&b, ": ");
        wasmta_sb_str(&b, why);
    }
    return wasmta_fail(b.buf, b.len);
}
#define wasmta_fail_status_s(op, status) wasmta_fail_status(WASMTA_S(op), (status))

/* ---------------------------------------------------------------- 8. JSON writer */

/* Builds one JSON document into a caller's buffer; commas are inserted for you.
 *
 *   char buf[512]; wasmta_json j; wasmta_json_init(&j, buf, sizeof buf);
 *   wasmta_json_object_begin(&j);
 *     wasmta_json_kv_s(&j, "retry_interval", "5m");
 *     wasmta_json_key_s(&j, "max_age"); wasmta_json_int(&j, 86400);
 *   wasmta_json_object_end(&j);
 *   return wasmta_json_make_queue_config(&j); // WASMTA_LIMIT if buf was too small
 *
 * Strings are escaped (quote, backslash, control characters); other bytes, UTF-8 included, are
 * copied as they are. Nesting is not checked: balance your begin/end calls. */
typedef struct {
    wasmta_sb out;
    char prev; /* last structural byte written, to place commas */
} wasmta_json;

static inline void wasmta_json_init(wasmta_json *j, char *buf, uint32_t cap) {
    wasmta_sb_init(&j->out, buf, cap);
    j->prev = 0;
}
WASMTA__OUTLINE void wasmta__json_sep(wasmta_json *j) {
    if (j->prev && j->prev != '{' && j->prev != '[' && j->prev != ':') wasmta_sb_byte(&j->out, ',');
}
static inline void wasmta__json_put(wasmta_json *j, char c) {
    wasmta_sb_byte(&j->out, c);
    j->prev = c;
}
static inline void wasmta_json_object_begin(wasmta_json *j) {
    wasmta__json_sep(j);
    wasmta__json_put(j, '{');
}
static inline void wasmta_json_object_end(wasmta_json *j) { wasmta__json_put(j, '}'); }
static inline void wasmta_json_array_begin(wasmta_json *j) {
    wasmta__json_sep(j);
    wasmta__json_put(j, '[');
}
static inline void wasmta_json_array_end(wasmta_json *j) { wasmta__json_put(j, ']'); }

WASMTA__OUTLINE void wasmta__json_quoted(wasmta_json *j, const char *s, uint32_t n) {
    static const char hex[] = "0123456789abcdef";
    wasmta_sb *o = &j->out;
    wasmta_sb_byte(o, '"');
    for (uint32_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': wasmta_sb_append_s(o, "\\\""); break;
        case '\\': wasmta_sb_append_s(o, "\\\\"); break;
        case '\n': wasmta_sb_append_s(o, "\\n"); break;
        case '\r': wasmta_sb_append_s(o, "\\r"); break;
        case '\t': wasmta_sb_append_s(o, "\\t"); break;
        case '\b': wasmta_sb_append_s(o, "\\b"); break;
        case '\f': wasmta_sb_append_s(o, "\\f"); break;
        default:
            if (c < 0x20) {
                wasmta_sb_append_s(o, "\\u00");
                wasmta_sb_byte(o, hex[c >> 4]);
                wasmta_sb_byte(o, hex[c & 15]);
            } else {
                wasmta_sb_byte(o, (char)c);
            }
        }
    }
    wasmta_sb_byte(o, '"');
    j->prev = '"';
}
/* An object member's name; follow it with exactly one value. */
WASMTA__OUTLINE void wasmta_json_key(wasmta_json *j, const char *s, uint32_t n) {
    wasmta__json_sep(j);
    wasmta__json_quoted(j, s, n);
    wasmta__json_put(j, ':');
}
WASMTA__OUTLINE void wasmta_json_string(wasmta_json *j, const char *s, uint32_t n) {
    wasmta__json_sep(j);
    wasmta__json_quoted(j, s, n);
}
static inline void wasmta_json_int(wasmta_json *j, int64_t v) {
    wasmta__json_sep(j);
    wasmta_sb_int(&j->out, v);
    j->prev = '0';
}
static inline void wasmta_json_bool(wasmta_json *j, int v) {
    wasmta__json_sep(j);
    if (v) wasmta_sb_append_s(&j->out, "true");
    else wasmta_sb_append_s(&j->out, "false");
    j->prev = 'e';
}
static inline void wasmta_json_null(wasmta_json *j) {
    wasmta__json_sep(j);
    wasmta_sb_append_s(&j->out, "null");
    j->prev = 'l';
}
/* A ready-made JSON value, copied verbatim. */
static inline void wasmta_json_raw(wasmta_json *j, const char *s, uint32_t n) {
    wasmta__json_sep(j);
    wasmta_sb_append(&j->out, s, n);
    j->prev = 'r';
}
/* key + string value. */
static inline void wasmta_json_kv(wasmta_json *j, const char *k, uint32_t kn, const char *v,
                                  uint32_t vn) {
    wasmta_json_key(j, k, kn);
    wasmta_json_string(j, v, vn);
}
#define wasmta_json_key_s(j, lit) wasmta_json_key((j), WASMTA_S(lit))
#define wasmta_json_string_s(j, lit) wasmta_json_string((j), WASMTA_S(lit))
#define wasmta_json_kv_s(j, k, v) wasmta_json_kv((j), WASMTA_S(k), WASMTA_S(v))
static inline void wasmta_json_str(wasmta_json *j, wasmta_str s) { wasmta_json_string(j, s.ptr, s.len); }

/* The document so far, and WASMTA_OK or WASMTA_LIMIT (the buffer was too small). */
static inline wasmta_str wasmta_json_view(const wasmta_json *j) { return wasmta_sb_view(&j->out); }
static inline int32_t wasmta_json_status(const wasmta_json *j) { return j->out.status; }

/* Hands the document to make_queue_config (get_queue_config only): its status, or
 * WASMTA_LIMIT without calling the host when the buffer overflowed. */
static inline int32_t wasmta_json_make_queue_config(const wasmta_json *j) {
    if (j->out.status != WASMTA_OK) return j->out.status;
    return wasmta_make_queue_config(j->out.buf, j->out.len);
}

/* Hands the document to dkim_sign (message hooks, ABI 1.1): its status, or WASMTA_LIMIT without
 * calling the host when the buffer overflowed. */
static inline int32_t wasmta_json_dkim_sign(const wasmta_json *j) {
    if (j->out.status != WASMTA_OK) return j->out.status;
    return wasmta_dkim_sign(j->out.buf, j->out.len);
}

/* Hands the document to make_egress_path_config (get_egress_path_config, ABI 1.2): its status,
 * or WASMTA_LIMIT without calling the host when the buffer overflowed. WASMTA_INVALID, with
 * wasmta_last_error_str() saying why, for an unknown field (`egress path config: json: unknown
 * field "conection_limit"`), a bad value, or a smtp_auth_plain_password that names no secret. */
static inline int32_t wasmta_json_make_egress_path_config(const wasmta_json *j) {
    if (j->out.status != WASMTA_OK) return j->out.status;
    return wasmta_make_egress_path_config(j->out.buf, j->out.len);
}

#ifdef __cplusplus
}
#endif
#endif /* WASMTA_H */
