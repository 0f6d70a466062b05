/*
 * Header filter in C: on the request, adds "x-c-filter: <config>", removes
 * "x-remove-me", and answers 403 (with "x-denied-by: c-filter") when the
 * request has "x-deny: yes"; on the response, adds "x-c-response: 1" and
 * removes "server", or answers 451 instead when the upstream's response
 * has "x-deny-response: yes".
 */
#include "pw.h"

/* One configuration per root context (the plugin's, and each route's). */
static char config[8][256];
static size_t config_len[8];

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size)
{
    char *p = 0;
    size_t n = 0, k = root % 8;
    config_len[k] = 0;
    if (size && proxy_get_buffer_bytes(BUF_PLUGIN_CONFIGURATION, 0, size, &p, &n) == 0)
        for (; config_len[k] < n && config_len[k] < sizeof(config[k]); config_len[k]++)
            config[k][config_len[k]] = p[config_len[k]];
    return 1;
}

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *deny = pw_header(MAP_REQUEST, "x-deny", &l);
    if (deny && pw_eq(deny, l, "yes")) {
        /* serialized pairs: count, (name len, value len), "x-denied-by\0c-filter\0" */
        static const struct { u32 n, kl, vl; char d[21]; } h = { 1, 11, 8, "x-denied-by\0c-filter" };
        static const char body[] = "denied by the c filter\n";
        proxy_send_local_response(403, "denied", 6, body, sizeof(body) - 1, (const char *)&h,
                                  sizeof(h), -1);
        return PAUSE;
    }
    u32 root = pw_ctx_root[id % 256] % 8;
    proxy_add_header_map_value(MAP_REQUEST, "x-c-filter", 10, config[root], config_len[root]);
    proxy_remove_header_map_value(MAP_REQUEST, "x-remove-me", 11);
    return CONTINUE;
}

EXPORT(proxy_on_response_headers) u32 proxy_on_response_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *deny = pw_header(MAP_RESPONSE, "x-deny-response", &l);
    if (deny && pw_eq(deny, l, "yes")) {
        static const char body[] = "replaced by the c filter\n";
        proxy_send_local_response(451, "replaced", 8, body, sizeof(body) - 1, "", 0, -1);
        return PAUSE;
    }
    proxy_add_header_map_value(MAP_RESPONSE, "x-c-response", 12, "1", 1);
    proxy_remove_header_map_value(MAP_RESPONSE, "server", 6);
    return CONTINUE;
}
