/* The C SDK's version of the conformance plugin (../SPEC.md). Build: ./build.sh */
#include "wasmta.h"

WASMTA_ABI_V1();

/* MUST(op, call): an unexpected host refusal fails the hook, with the status and the host's
 * explanation as the error text (visible in the vectors). */
#define MUST(op, call) \
    do { \
        int32_t rc_ = (call); \
        if (rc_ < 0) return wasmta_fail_status_s(op, rc_); \
    } while (0)

static int32_t on_message(void) {
    wasmta_str rcpt, d, v;
    int32_t rc;

    MUST("get_recipient", wasmta_recipient(0, &rcpt));
    d = wasmta_str_after_last(rcpt, '@');

    /* 1-3: failure and rejections */
    if (wasmta_str_eq_s(d, "fail.test")) {
        wasmta_set_meta_s("tenant", "leak");
        return wasmta_fail_s("conformance failure");
    }
    if (wasmta_str_eq_s(d, "reject.test")) {
        MUST("reject", wasmta_reject_s(550, "5.7.1 rejected by conformance"));
        return 0;
    }
    if (wasmta_str_eq_s(d, "reject4.test")) {
        MUST("reject", wasmta_reject_s(451, "4.7.1 try later"));
        return 0;
    }

    /* 4: routing */
    if (wasmta_str_eq_s(d, "routing.test")) {
        MUST("set_meta", wasmta_set_meta_s("routing_domain", "my.smarthost.test"));
    } else if (wasmta_str_eq_s(d, "queue.test")) {
        MUST("set_meta", wasmta_set_meta_s("queue", "my.smarthost.test"));
    } else if (wasmta_str_eq_s(d, "v4.test")) {
        MUST("set_meta", wasmta_set_meta_s("queue", "[127.0.0.5]"));
    } else if (wasmta_str_eq_s(d, "v6.test")) {
        MUST("set_meta", wasmta_set_meta_s("routing_domain", "[IPv6:::1]"));
    } else if (wasmta_str_eq_s(d, "nc.test")) {
        MUST("set_meta", wasmta_set_meta_s("routing_domain", "[::1]"));
    } else if (wasmta_str_eq_s(d, "badliteral.test")) {
        rc = wasmta_set_meta_s("routing_domain", "[10.0.0.1");
        MUST("set_meta", wasmta_set_meta_int_s("literal_status", rc));
    }

    /* 5-9: reading */
    rc = wasmta_header_s("Subject", 0, &v);
    if (rc >= 0) {
        MUST("set_meta", wasmta_set_meta_str_s("subject", v));
    } else if (rc != WASMTA_NOT_FOUND) {
        return wasmta_fail_status_s("get_header", rc);
    }
    rc = wasmta_meta_s("in", &v);
    if (rc >= 0) {
        MUST("set_meta", wasmta_set_meta_str_s("out", v));
    } else if (rc != WASMTA_NOT_FOUND) {
        return wasmta_fail_status_s("get_meta", rc);
    }
    MUST("get_sender", wasmta_sender(&v));
    MUST("set_meta", wasmta_set_meta_str_s("sender", v));
    rc = wasmta_recipient_count();
    MUST("recipient_count", rc);
    MUST("set_meta", wasmta_set_meta_int_s("rcpts", rc));
    MUST("get_recipient", wasmta_recipient(rc - 1, &v));
    MUST("set_meta", wasmta_set_meta_str_s("last_rcpt", v));
    MUST("get_config", wasmta_config(&v));
    MUST("set_meta", wasmta_set_meta_str_s("config", v));

    /* 10-11: header edits */
    MUST("prepend_header", wasmta_prepend_header_s("X-Conformance", "1"));
    MUST("append_header", wasmta_append_header_s("X-Conformance-End", "1"));
    rc = wasmta_prepend_header_s("X-Bad", "a\r\nInjected: yes");
    MUST("set_meta", wasmta_set_meta_int_s("inject_status", rc));
    return 0;
}
WASMTA_ON_MESSAGE_RECEIVED(on_message);

static int32_t on_queue_config(void) {
    wasmta_str domain;
    if (wasmta_meta_s("domain", &domain) < 0) return 0;

    if (wasmta_str_eq_s(domain, "mx.test")) {
        /* {"retry_interval":"5s","protocol":{"smtp":{"mx_list":["smart.host.local",
         *  {"name":"mx.example.com","addr":"127.0.0.3"}]}}} */
        char buf[256];
        wasmta_json j;
        int32_t rc;
        wasmta_json_init(&j, buf, sizeof buf);
        wasmta_json_object_begin(&j);
        wasmta_json_kv_s(&j, "retry_interval", "5s");
        wasmta_json_key_s(&j, "protocol");
        wasmta_json_object_begin(&j);
        wasmta_json_key_s(&j, "smtp");
        wasmta_json_object_begin(&j);
        wasmta_json_key_s(&j, "mx_list");
        wasmta_json_array_begin(&j);
        wasmta_json_string_s(&j, "smart.host.local");
        wasmta_json_object_begin(&j);
        wasmta_json_kv_s(&j, "name", "mx.example.com");
        wasmta_json_kv_s(&j, "addr", "127.0.0.3");
        wasmta_json_object_end(&j);
        wasmta_json_array_end(&j);
        wasmta_json_object_end(&j);
        wasmta_json_object_end(&j);
        wasmta_json_object_end(&j);
        rc = wasmta_json_make_queue_config(&j);
        if (rc < 0) wasmta_fail_status_s("make_queue_config", rc);
        return rc;
    }
    if (wasmta_str_eq_s(domain, "badcfg.test")) {
        if (wasmta_make_queue_config_s("{\"mx_lsit\":[\"x\"]}") < 0)
            return wasmta_fail_s("bad config refused");
        return 0;
    }
    return 0;
}
WASMTA_ON_GET_QUEUE_CONFIG(on_queue_config);

static int32_t on_egress_path_config(void) {
    wasmta_str rd, site;
    int32_t rc;
    MUST("get_meta", wasmta_meta_s("routing_domain", &rd));

    if (wasmta_str_eq_s(rd, "smarthost.test")) {
        char buf[512];
        wasmta_json j;
        wasmta_sb ehlo;
        char eb[256];
        MUST("get_meta", wasmta_meta_s("site", &site));
        wasmta_sb_init(&ehlo, eb, sizeof eb);
        wasmta_sb_append_s(&ehlo, "out.");
        wasmta_sb_str(&ehlo, site);
        if (ehlo.status != WASMTA_OK) return wasmta_fail_s("site name too long");
        wasmta_json_init(&j, buf, sizeof buf);
        wasmta_json_object_begin(&j);
        wasmta_json_key_s(&j, "connection_limit");
        wasmta_json_int(&j, 1);
        wasmta_json_kv_s(&j, "max_message_rate", "10/s");
        wasmta_json_kv_s(&j, "enable_tls", "Required");
        wasmta_json_kv_s(&j, "smtp_auth_plain_username", "relay-user");
        wasmta_json_kv_s(&j, "smtp_auth_plain_password", "smarthost"); /* a [secrets] name */
        wasmta_json_key_s(&j, "allow_smtp_auth_plain_without_tls");
        wasmta_json_bool(&j, 0);
        wasmta_json_kv_s(&j, "source_address", "127.0.0.9");
        wasmta_json_key_s(&j, "ehlo_domain");
        wasmta_json_str(&j, wasmta_sb_view(&ehlo));
        wasmta_json_object_end(&j);
        MUST("make_egress_path_config", wasmta_json_make_egress_path_config(&j));
        return 0;
    }
    if (wasmta_str_eq_s(rd, "typo.test")) {
        /* refused: the failure text carries the host's reason, which names the field */
        rc = wasmta_make_egress_path_config_s("{\"conection_limit\":1}");
        if (rc < 0) return wasmta_fail_status_s("make_egress_path_config", rc);
        return 0;
    }
    return 0; /* no opinion */
}
WASMTA_ON_GET_EGRESS_PATH_CONFIG(on_egress_path_config);
