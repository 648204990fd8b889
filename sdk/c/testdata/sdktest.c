/* SDK self-test plugin (wasmta_test.go): the paths the conformance plugin does not reach. */
#include "wasmta.h"

WASMTA_ABI_V1();

#define MUST(op, call) \
    do { \
        int32_t rc_ = (call); \
        if (rc_ < 0) return wasmta_fail_status_s(op, rc_); \
    } while (0)

/* helper.c: a second translation unit sharing the arena. */
int32_t helper_join(wasmta_str a, wasmta_str b, wasmta_str *out);

static wasmta_str cfg; /* fetched in wasmta_init: must survive every hook */

static int32_t init(void) {
    if (wasmta_abi_version() < WASMTA_ABI_VERSION) return wasmta_fail_s("host too old");
    if (wasmta_features(WASMTA_FEATURE_HEADER_WRITE | WASMTA_FEATURE_BODY_READ | ((uint64_t)1 << 40)) !=
        (WASMTA_FEATURE_HEADER_WRITE | WASMTA_FEATURE_BODY_READ))
        return wasmta_fail_s("features");
    if (wasmta_config(&cfg) < 0) return wasmta_fail_s("no config");
    return 0;
}
WASMTA_ON_INIT(init);

struct big {
    char b[300];
};
static struct big g1, g2;

static int32_t on_message(void) {
    wasmta_str r, d, s, body, both, v;
    int32_t rc;
    MUST("get_recipient", wasmta_recipient(0, &r));
    d = wasmta_str_after_last(r, '@');
    if (wasmta_str_eq_s(d, "failstatus.test")) {
        rc = wasmta_set_meta_s("bad key!", "x");
        return wasmta_fail_status_s("set_meta", rc);
    }
    MUST("get_sender", wasmta_sender(&s));
    /* the body is larger than the free memory: the fetch grows memory and retries */
    MUST("get_body", wasmta_body(&body));
    MUST("set_meta", wasmta_set_meta_int_s("body_len", body.len));
    if (body.len >= 10) MUST("set_meta", wasmta_set_meta(WASMTA_S("body_tail"), body.ptr + body.len - 10, 10));
    /* earlier fetches are still valid after later ones */
    MUST("join", helper_join(s, r, &both));
    MUST("set_meta", wasmta_set_meta_str_s("both", both));
    MUST("set_meta", wasmta_set_meta_str_s("config", cfg));

    char ib[128];
    wasmta_sb sb;
    wasmta_sb_init(&sb, ib, sizeof ib);
    wasmta_sb_int(&sb, INT64_MIN);
    wasmta_sb_byte(&sb, ' ');
    wasmta_sb_int(&sb, 0);
    wasmta_sb_byte(&sb, ' ');
    wasmta_sb_int(&sb, -2);
    wasmta_sb_byte(&sb, ' ');
    wasmta_sb_int(&sb, 1234567890123);
    wasmta_sb_byte(&sb, ' ');
    wasmta_sb_int(&sb, INT64_MAX);
    MUST("set_meta", wasmta_set_meta_str_s("ints", wasmta_sb_view(&sb)));

    char jb[256];
    wasmta_json j;
    wasmta_json_init(&j, jb, sizeof jb);
    wasmta_json_object_begin(&j);
    wasmta_json_kv_s(&j, "s", "q\"b\\n\nr\rt\tc\x01\x1f\xc3\xa9/");
    wasmta_json_key_s(&j, "n");
    wasmta_json_int(&j, -42);
    wasmta_json_key_s(&j, "a");
    wasmta_json_array_begin(&j);
    wasmta_json_bool(&j, 1);
    wasmta_json_bool(&j, 0);
    wasmta_json_null(&j);
    wasmta_json_object_begin(&j);
    wasmta_json_object_end(&j);
    wasmta_json_array_begin(&j);
    wasmta_json_array_end(&j);
    wasmta_json_str(&j, s);
    wasmta_json_array_end(&j);
    wasmta_json_key_s(&j, "raw");
    wasmta_json_raw(&j, WASMTA_S("{\"x\":1}"));
    wasmta_json_object_end(&j);
    MUST("json", wasmta_json_status(&j));
    MUST("set_meta", wasmta_set_meta_str_s("json", wasmta_json_view(&j)));

    char small[8];
    wasmta_json_init(&j, small, sizeof small);
    wasmta_json_object_begin(&j);
    wasmta_json_kv_s(&j, "abc", "def");
    wasmta_json_object_end(&j);
    MUST("set_meta", wasmta_set_meta_int_s("overflow", wasmta_json_status(&j)));
    MUST("set_meta", wasmta_set_meta_int_s("overflow_len", wasmta_json_view(&j).len));

    rc = wasmta_meta_s("nope", &v);
    MUST("set_meta", wasmta_set_meta_int_s("missing", rc * 10 + (int32_t)v.len));
    MUST("get_header", wasmta_header_s("x-multi", 1, &v));
    MUST("set_meta", wasmta_set_meta_str_s("multi1", v));

    g1.b[0] = 'z';
    g1.b[299] = 'y';
    g2 = g1; /* a struct copy: clang calls memcpy */
    char two[2] = {g2.b[0], g2.b[299]};
    MUST("set_meta", wasmta_set_meta(WASMTA_S("copy"), two, 2));

    void *p = wasmta_alloc(3 << 20); /* grows memory by 48 pages */
    MUST("set_meta", wasmta_set_meta_int_s("alloc_ok", p != 0 && ((uintptr_t)p & 7) == 0));
    MUST("set_meta", wasmta_set_meta_int_s("nocase", wasmta_str_eq_nocase_s(WASMTA_STR("Routing.TEST"), "routing.test") +
                                                           2 * wasmta_str_has_suffix_s(r, ".test")));
    wasmta_log_s(WASMTA_LOG_INFO, "sdk test");
    return 0;
}
WASMTA_ON_MESSAGE_RECEIVED(on_message);

static int32_t on_queue_config(void) {
    wasmta_str domain;
    char small[16];
    wasmta_json j;
    int32_t rc;
    MUST("get_meta", wasmta_meta_s("domain", &domain));
    if (!wasmta_str_eq_s(domain, "overflow.test")) return 0;
    wasmta_json_init(&j, small, sizeof small);
    wasmta_json_object_begin(&j);
    wasmta_json_kv_s(&j, "retry_interval", "5s");
    wasmta_json_object_end(&j);
    rc = wasmta_json_make_queue_config(&j);
    return wasmta_fail_status_s("make_queue_config", rc);
}
WASMTA_ON_GET_QUEUE_CONFIG(on_queue_config);
