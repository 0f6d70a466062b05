/*
 * An auth callout in C (proxy_http_call + Pause): a request with
 * "x-auth: PATH" is paused while the filter asks the upstream named by its
 * configuration (GET PATH, 5 s timeout); proxy_on_http_call_response then
 * continues it with "x-auth-status" (the callout's status),
 * "x-auth-upstream" (the callout's x-upstream field) and "x-auth-body"
 * (its body's length) added when the callout answered 200, answers 403
 * for another status, and 503 when the callout failed (no answer,
 * timeout, unknown upstream). Requests without x-auth pass.
 */
#include "pw.h"

IMPORT(proxy_http_call) u32 proxy_http_call(const char *up, size_t ul, const char *h, size_t hl,
                                            const char *b, size_t bl, const char *t, size_t tl,
                                            u32 timeout, u32 *token);
IMPORT(proxy_continue_stream) u32 proxy_continue_stream(u32 type);
IMPORT(proxy_get_buffer_status) u32 proxy_get_buffer_status(u32 type, size_t *len, u32 *flags);

enum { MAP_CALL_RESPONSE = 6, BUF_CALL_RESPONSE_BODY = 4 };

static char upstream[64];
static size_t upstream_len;

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size)
{
    char *p = 0;
    size_t n = 0;
    if (root == 1 && size && proxy_get_buffer_bytes(BUF_PLUGIN_CONFIGURATION, 0, size, &p, &n) == 0)
        for (upstream_len = 0; upstream_len < n && upstream_len < sizeof(upstream); upstream_len++)
            upstream[upstream_len] = p[upstream_len];
    return 1;
}

static size_t utoa(u32 v, char *out)
{
    char t[12];
    size_t n = 0, k = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n)
        out[k++] = t[--n];
    return k;
}

static void put32(char *p, u32 v)
{
    p[0] = (char)v, p[1] = (char)(v >> 8), p[2] = (char)(v >> 16), p[3] = (char)(v >> 24);
}

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t pl;
    char *path = pw_header(MAP_REQUEST, "x-auth", &pl);
    if (!path)
        return CONTINUE;
    /* :method GET, :path PATH, :authority auth (the ABI's serialised pairs) */
    static const char *const names[3] = { ":method", ":path", ":authority" };
    const char *vals[3] = { "GET", path, "auth" };
    size_t vl[3] = { 3, pl, 4 };
    static char buf[1024];
    size_t off = 4 + 3 * 8;
    if (pl > 512)
        return CONTINUE;
    put32(buf, 3);
    for (int i = 0; i < 3; i++) {
        size_t nl = pw_strlen(names[i]);
        put32(buf + 4 + 8 * i, (u32)nl);
        put32(buf + 8 + 8 * i, (u32)vl[i]);
        for (size_t k = 0; k < nl; k++)
            buf[off++] = names[i][k];
        buf[off++] = 0;
        for (size_t k = 0; k < vl[i]; k++)
            buf[off++] = vals[i][k];
        buf[off++] = 0;
    }
    u32 token;
    if (proxy_http_call(upstream, upstream_len, buf, off, "", 0, "", 0, 5000, &token) != 0) {
        static const char body[] = "auth callout refused\n";
        proxy_send_local_response(503, "auth", 4, body, sizeof(body) - 1, "", 0, -1);
    }
    return PAUSE;
}

EXPORT(proxy_on_http_call_response) void proxy_on_http_call_response(u32 id, u32 token, u32 nh,
                                                                     u32 body, u32 nt)
{
    size_t l;
    if (nh == 0) {
        static const char msg[] = "auth unavailable\n";
        proxy_send_local_response(503, "auth", 4, msg, sizeof(msg) - 1, "", 0, -1);
        return;
    }
    char *st = pw_header(MAP_CALL_RESPONSE, ":status", &l);
    if (!st || !pw_eq(st, l, "200")) {
        static const char msg[] = "denied by the auth callout\n";
        proxy_send_local_response(403, "auth", 4, msg, sizeof(msg) - 1, "", 0, -1);
        return;
    }
    proxy_add_header_map_value(MAP_REQUEST, "x-auth-status", 13, st, l);
    char *up = pw_header(MAP_CALL_RESPONSE, "x-upstream", &l);
    if (up)
        proxy_add_header_map_value(MAP_REQUEST, "x-auth-upstream", 15, up, l);
    size_t blen = 0;
    u32 flags;
    char num[12];
    if (proxy_get_buffer_status(BUF_CALL_RESPONSE_BODY, &blen, &flags) == 0 && blen == body)
        proxy_add_header_map_value(MAP_REQUEST, "x-auth-body", 11, num, utoa((u32)blen, num));
    proxy_continue_stream(0);
}
