/*
 * proxy_http_call from a root context, in C: the root context calls an
 * upstream on every tick (a filter fetching keys periodically) and keeps
 * the answer in shared data; an HTTP filter shows it on responses.
 *
 * Configuration: "UPSTREAM PATH PERIOD_MS TIMEOUT_MS [BURST]". Every
 * PERIOD_MS, when no call of its own is outstanding, proxy_on_tick makes
 * BURST (default 1) calls GET PATH to UPSTREAM with TIMEOUT_MS; a call the
 * host refuses is counted ("refused", its status in "rc").
 * proxy_on_http_call_response(root, token, headers, body, trailers) stores
 * in shared data: "status" (the answer's :status, or "failed" when it came
 * with 0 headers: no answer, timeout, failing upstream), "body" (the
 * answer's body, buffer type 4), "upstream" (its x-upstream field, map type
 * 6), "answers" and "failures" (counts), "root" (the root context id it
 * was called with), "tokens" ("ok" while every answer's token was one it
 * was given). A response to a request with "x-root-stat: 1" gets them as
 * "x-root-<key>" fields, and "x-root-maxpending" (most calls outstanding
 * at once).
 *
 * Calls from other root callbacks: a request with "x-root-call: 1" makes
 * one from its HTTP callback after proxy_set_effective_context(1) (the
 * answer goes to root context 1, not to the request); "x-root-chain: N"
 * makes the next N answers each call again from the root's
 * proxy_on_http_call_response. "x-root-trap: 1" traps (unreachable) in
 * the request's callback: the instance is discarded with its calls.
 */
#include "pw.h"

IMPORT(proxy_http_call) u32 proxy_http_call(const char *up, size_t ul, const char *h, size_t hl,
                                            const char *b, size_t bl, const char *t, size_t tl,
                                            u32 timeout, u32 *token);
IMPORT(proxy_set_effective_context) u32 proxy_set_effective_context(u32 id);
IMPORT(proxy_set_tick_period_milliseconds) u32 proxy_set_tick_period_milliseconds(u32 ms);
IMPORT(proxy_get_shared_data) u32 proxy_get_shared_data(const char *k, size_t kl, char **v,
                                                        size_t *vl, u32 *cas);
IMPORT(proxy_set_shared_data) u32 proxy_set_shared_data(const char *k, size_t kl, const char *v,
                                                        size_t vl, u32 cas);

enum { MAP_CALL_RESPONSE = 6, BUF_CALL_RESPONSE_BODY = 4 };

static char upstream[64], path[256];
static size_t upstream_len, path_len;
static u32 timeout_ms = 1000, burst = 1;
static u32 pending, max_pending, answers, failures, refused, tokens_bad;
static u32 given[64];
static u32 n_given;
static u32 chain;

static u32 atou(const char *p, size_t n)
{
    u32 v = 0;
    for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++)
        v = v * 10 + (u32)(p[i] - '0');
    return v;
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

/* The next space-separated word of p[*at..n) (its length; 0 at the end). */
static size_t word(const char *p, size_t n, size_t *at, const char **w)
{
    while (*at < n && p[*at] == ' ')
        (*at)++;
    *w = p + *at;
    size_t s = *at;
    while (*at < n && p[*at] != ' ')
        (*at)++;
    return *at - s;
}

static void copy(char *dst, size_t cap, size_t *len, const char *src, size_t n)
{
    for (*len = 0; *len < n && *len < cap; (*len)++)
        dst[*len] = src[*len];
}

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size)
{
    char *p = 0;
    size_t n = 0, at = 0, l;
    const char *w;
    if (root != 1 || !size || proxy_get_buffer_bytes(BUF_PLUGIN_CONFIGURATION, 0, size, &p, &n))
        return 1;
    l = word(p, n, &at, &w);
    copy(upstream, sizeof(upstream), &upstream_len, w, l);
    l = word(p, n, &at, &w);
    copy(path, sizeof(path), &path_len, w, l);
    u32 period = (l = word(p, n, &at, &w)) ? atou(w, l) : 100;
    if ((l = word(p, n, &at, &w)))
        timeout_ms = atou(w, l);
    if ((l = word(p, n, &at, &w)))
        burst = atou(w, l);
    return proxy_set_tick_period_milliseconds(period) == 0;
}

static void store(const char *key, const char *v, size_t vl)
{
    proxy_set_shared_data(key, pw_strlen(key), v, vl, 0);
}

static void store_u(const char *key, u32 v)
{
    char b[12];
    store(key, b, utoa(v, b));
}

/* n calls GET PATH from the effective (root) context. */
static void call_some(u32 n)
{
    /* :method GET, :path PATH, :authority keys (the ABI's serialised pairs) */
    static const char *const names[3] = { ":method", ":path", ":authority" };
    const char *vals[3] = { "GET", path, "keys" };
    size_t vl[3] = { 3, path_len, 4 };
    static char buf[512];
    size_t off = 4 + 3 * 8;
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
    for (u32 i = 0; i < n; i++) {
        u32 token = 0;
        u32 rc = proxy_http_call(upstream, upstream_len, buf, off, "", 0, "", 0, timeout_ms,
                                 &token);
        if (rc != 0) {
            refused++;
            store_u("refused", refused);
            store_u("rc", rc);
            continue;
        }
        given[n_given++ % 64] = token;
        if (++pending > max_pending)
            max_pending = pending;
    }
    store_u("maxpending", max_pending);
}

EXPORT(proxy_on_tick) void proxy_on_tick(u32 root)
{
    if (!pending)
        call_some(burst);
}

EXPORT(proxy_on_http_call_response) void proxy_on_http_call_response(u32 root, u32 token, u32 nh,
                                                                     u32 body, u32 nt)
{
    size_t l;
    int known = 0;
    for (u32 i = 0; i < 64; i++)
        if (given[i] == token && token)
            known = 1;
    if (!known)
        tokens_bad++;
    store("tokens", tokens_bad ? "bad" : "ok", 2 + (tokens_bad != 0));
    if (pending)
        pending--;
    store_u("answers", ++answers);
    store_u("root", root);
    if (chain) {
        chain--;
        call_some(1);                   /* (from the root's own answer) */
    }
    if (nh == 0) {
        store_u("failures", ++failures);
        store("status", "failed", 6);
        return;
    }
    char *st = pw_header(MAP_CALL_RESPONSE, ":status", &l);
    store("status", st ? st : "", st ? l : 0);
    char *up = pw_header(MAP_CALL_RESPONSE, "x-upstream", &l);
    store("upstream", up ? up : "", up ? l : 0);
    char *b = 0;
    size_t bl = 0;
    if (body && proxy_get_buffer_bytes(BUF_CALL_RESPONSE_BODY, 0, body > 200 ? 200 : body, &b,
                                       &bl) == 0)
        store("body", b, bl);
    else
        store("body", "", 0);
}

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    if (pw_header(MAP_REQUEST, "x-root-trap", &l))
        __builtin_trap();
    char *v = pw_header(MAP_REQUEST, "x-root-chain", &l);
    if (v)
        chain = atou(v, l);
    if (pw_header(MAP_REQUEST, "x-root-call", &l) && proxy_set_effective_context(1) == 0) {
        call_some(1);
        proxy_set_effective_context(id);
    }
    return CONTINUE;
}

EXPORT(proxy_on_response_headers) u32 proxy_on_response_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    if (!pw_header(MAP_REQUEST, "x-root-stat", &l))
        return CONTINUE;
    static const char *const keys[] = { "status", "body", "upstream", "answers", "failures",
                                        "root", "tokens", "refused", "rc", "maxpending" };
    for (u32 i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *v = 0;
        size_t vl = 0;
        u32 cas;
        if (proxy_get_shared_data(keys[i], pw_strlen(keys[i]), &v, &vl, &cas) != 0)
            continue;
        char name[32] = "x-root-";
        size_t k = 7, kl = pw_strlen(keys[i]);
        for (size_t j = 0; j < kl; j++)
            name[k++] = keys[i][j];
        /* (a value with a CR or LF would be refused: bodies here are short text) */
        proxy_add_header_map_value(MAP_RESPONSE, name, k, v, vl);
    }
    return CONTINUE;
}
