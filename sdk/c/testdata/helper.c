/* A second translation unit: the header's weak state is shared, not duplicated. */
#include "wasmta.h"

int32_t helper_join(wasmta_str a, wasmta_str b, wasmta_str *out) {
    char *p = (char *)wasmta_alloc(a.len + 1 + b.len);
    if (!p) return WASMTA_LIMIT;
    wasmta_sb sb;
    wasmta_sb_init(&sb, p, a.len + 1 + b.len);
    wasmta_sb_str(&sb, a);
    wasmta_sb_byte(&sb, '|');
    wasmta_sb_str(&sb, b);
    *out = wasmta_sb_view(&sb);
    return sb.status;
}
