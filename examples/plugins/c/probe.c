/*
 * ABI probe for the unit tests (tests/unit/plugin/abi_test.c): the request
 * header "x-probe" picks one host call made with good or hostile
 * arguments; its WasmResult is added as "x-rc" (and a value it read, if
 * any, as "x-val").
 */
#include "pw.h"

IMPORT(proxy_get_header_map_pairs) u32 proxy_get_header_map_pairs(u32 map, char **ret, size_t *n);
IMPORT(proxy_set_header_map_pairs) u32 proxy_set_header_map_pairs(u32 map, const char *p, size_t n);
IMPORT(proxy_get_shared_data) u32 proxy_get_shared_data(const char *k, size_t kl, char **v,
                                                        size_t *vl, u32 *cas);
IMPORT(proxy_set_shared_data) u32 proxy_set_shared_data(const char *k, size_t kl, const char *v,
                                                        size_t vl, u32 cas);
IMPORT(proxy_define_metric) u32 proxy_define_metric(u32 type, const char *n, size_t nl, u32 *id);
IMPORT(proxy_increment_metric) u32 proxy_increment_metric(u32 id, long long off);
IMPORT(proxy_record_metric) u32 proxy_record_metric(u32 id, u64 v);
IMPORT(proxy_get_metric) u32 proxy_get_metric(u32 id, u64 *v);
IMPORT(proxy_close_stream) u32 proxy_close_stream(u32 type);

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size) { return 1; }

static void put_rc(u32 rc)
{
    char d[2] = { (char)('0' + rc / 10), (char)('0' + rc % 10) };
    proxy_add_header_map_value(MAP_REQUEST, "x-rc", 4, d, 2);
}

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *p = pw_header(MAP_REQUEST, "x-probe", &l);
    if (!p)
        return CONTINUE;
    char *v = 0;
    size_t vl = 0;
    u32 rc = 99;
    if (pw_eq(p, l, "oob-key"))
        rc = proxy_add_header_map_value(MAP_REQUEST, (const char *)0xfffffff0u, 32, "v", 1);
    else if (pw_eq(p, l, "oob-len"))
        rc = proxy_get_header_map_value(MAP_REQUEST, "x-probe", 0x7fffffff, &v, &vl);
    else if (pw_eq(p, l, "oob-ret"))
        rc = proxy_get_header_map_value(MAP_REQUEST, "x-probe", 7, (char **)0xfffffffcu, &vl);
    else if (pw_eq(p, l, "bad-name"))
        rc = proxy_add_header_map_value(MAP_REQUEST, "a\r\nb", 4, "v", 1);
    else if (pw_eq(p, l, "bad-value"))
        rc = proxy_add_header_map_value(MAP_REQUEST, "x-a", 3, "v\r\nx: y", 7);
    else if (pw_eq(p, l, "bad-map"))
        rc = proxy_add_header_map_value(5, "x-a", 3, "v", 1);
    else if (pw_eq(p, l, "remove-absent"))
        rc = proxy_remove_header_map_value(MAP_REQUEST, "x-absent", 8);
    else if (pw_eq(p, l, "replace")) {
        rc = proxy_replace_header_map_value(MAP_REQUEST, "x-dup", 5, "one", 3);
    } else if (pw_eq(p, l, "path")) {
        rc = proxy_replace_header_map_value(MAP_REQUEST, ":path", 5, "/new?q=1", 8);
    } else if (pw_eq(p, l, "prop")) {
        rc = proxy_get_property("request\0path", 12, &v, &vl);
    } else if (pw_eq(p, l, "prop-src")) {
        rc = proxy_get_property("source\0address", 14, &v, &vl);
    } else if (pw_eq(p, l, "prop-root")) {
        rc = proxy_get_property("plugin_root_id", 14, &v, &vl);
    } else if (pw_eq(p, l, "prop-missing")) {
        rc = proxy_get_property("no\0such", 7, &v, &vl);
    } else if (pw_eq(p, l, "pairs")) {
        rc = proxy_get_header_map_pairs(MAP_REQUEST, &v, &vl);
        if (rc == 0)
            rc = proxy_set_header_map_pairs(MAP_REQUEST, v, vl);
        /* the pairs' count is the first word */
        if (rc == 0 && vl >= 4) {
            u32 cnt = *(u32 *)v;
            v = 0;
            rc = cnt > 4 ? 0 : 98;
        }
    } else if (pw_eq(p, l, "bad-pairs")) {
        static const u32 bad[3] = { 1000000, 5, 5 };
        rc = proxy_set_header_map_pairs(MAP_REQUEST, (const char *)bad, sizeof(bad));
    } else if (pw_eq(p, l, "local-bad-status")) {
        rc = proxy_send_local_response(42, "", 0, "", 0, "", 0, -1);
    } else if (pw_eq(p, l, "local-bad-pairs")) {
        static const u32 bad[3] = { 1, 0x7fffffff, 1 };
        rc = proxy_send_local_response(403, "", 0, "", 0, (const char *)bad, sizeof(bad), -1);
    } else if (pw_eq(p, l, "unimplemented")) {
        rc = proxy_close_stream(0);
    } else if (pw_eq(p, l, "flood")) {
        for (u32 i = 0; i < 5000 && (rc = proxy_add_header_map_value(MAP_REQUEST, "x-f", 3, "v", 1)) == 0; i++)
            ;
    } else if (pw_eq(p, l, "big-body")) {
        u32 old = (u32)__builtin_wasm_memory_grow(0, 40);     /* 2.5 MiB more, in bounds */
        rc = proxy_send_local_response(200, "", 0, (const char *)(old * 65536u), 2u << 20, "", 0, -1);
    } else if (pw_eq(p, l, "grow-300")) {
        /* 300 pages (18.75 MiB): rc 0 if memory.grow refused it */
        rc = __builtin_wasm_memory_grow(0, 300) == (size_t)-1 ? 0 : 1;
    } else if (pw_eq(p, l, "shared-set")) {
        size_t xl;
        char *x = pw_header(MAP_REQUEST, "x-v", &xl);
        rc = proxy_set_shared_data("k", 1, x, xl, 0);
    } else if (pw_eq(p, l, "shared-get")) {
        u32 cas;
        rc = proxy_get_shared_data("k", 1, &v, &vl, &cas);
    } else if (pw_eq(p, l, "shared-cas")) {
        /* a stale cas is refused (8), the current one accepted (0) */
        u32 cas = 0;
        rc = proxy_get_shared_data("k", 1, &v, &vl, &cas);
        v = 0;
        if (rc == 0 && proxy_set_shared_data("k", 1, "new", 3, cas + 1) != 8)
            rc = 97;
        if (rc == 0)
            rc = proxy_set_shared_data("k", 1, "new", 3, cas);
    } else if (pw_eq(p, l, "metrics")) {
        /* counter "requests" +1, gauge "last" = 42, histogram "sizes" 7;
         * x-val: the counter's value over all workers (one digit) */
        u32 c, g, h;
        u64 val = 0;
        rc = proxy_define_metric(0, "requests", 8, &c);
        if (!rc) rc = proxy_define_metric(1, "last", 4, &g);
        if (!rc) rc = proxy_define_metric(2, "sizes", 5, &h);
        if (!rc) rc = proxy_increment_metric(c, 1);
        if (!rc) rc = proxy_record_metric(g, 42);
        if (!rc) rc = proxy_record_metric(h, 7);
        if (!rc && proxy_increment_metric(c, -1) != 2)  /* counters only go up */
            rc = 96;
        if (!rc && proxy_define_metric(1, "requests", 8, &g) != 2)  /* one type per name */
            rc = 95;
        if (!rc && proxy_define_metric(0, "bad name", 8, &g) != 2)
            rc = 94;
        if (!rc) rc = proxy_get_metric(c, &val);
        static char d[2];
        d[0] = (char)('0' + val % 10);
        v = d;
        vl = 1;
    } else if (pw_eq(p, l, "config")) {
        rc = proxy_get_buffer_bytes(BUF_PLUGIN_CONFIGURATION, 0, 100, &v, &vl);
    }
    put_rc(rc);
    if (v && vl)
        proxy_add_header_map_value(MAP_REQUEST, "x-val", 5, v, vl);
    return CONTINUE;
}
