/*
 * Pause and continue in C: a request with "x-pause: hold" is paused
 * (Pause from proxy_on_request_headers) until a later request with
 * "x-release: continue" continues every held one (switching to its context
 * with proxy_set_effective_context, adding "x-released-by: <releaser's
 * context id>" to its request and calling proxy_continue_stream), or
 * "x-release: deny", which answers each held one 409 with
 * proxy_send_local_response. "x-pause: self" continues its own request
 * before returning Pause (so it goes on at once). The gauge "held" says how
 * many requests wait. A held request whose exchange ends (client gone,
 * pause_timeout) is forgotten in proxy_on_delete.
 *
 * Responses the same way: a request with "x-pause-response: hold" has its
 * response head paused (Pause from proxy_on_response_headers) until a
 * request with "x-release-response: continue" continues it (adding
 * "x-released-by: <id>" to the held response, proxy_continue_stream(1)) or
 * "x-release-response: deny" answers it 409; "x-pause-response: self"
 * continues its own response at once. Gauge "held_responses".
 */
#include "pw.h"

IMPORT(proxy_set_effective_context) u32 proxy_set_effective_context(u32 id);
IMPORT(proxy_continue_stream) u32 proxy_continue_stream(u32 type);
IMPORT(proxy_define_metric) u32 proxy_define_metric(u32 type, const char *n, size_t nl, u32 *id);
IMPORT(proxy_record_metric) u32 proxy_record_metric(u32 id, u64 v);

static u32 held[64], held_resp[64];
static u32 n_held, n_held_resp;
static u32 gauge, gauge_resp;

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size)
{
    proxy_define_metric(1, "held", 4, &gauge);
    proxy_define_metric(1, "held_responses", 14, &gauge_resp);
    return 1;
}

static void publish(void)
{
    proxy_record_metric(gauge, n_held);
    proxy_record_metric(gauge_resp, n_held_resp);
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

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *p = pw_header(MAP_REQUEST, "x-pause", &l);
    if (p && pw_eq(p, l, "hold") && n_held < 64) {
        held[n_held++] = id;
        publish();
        return PAUSE;
    }
    if (p && pw_eq(p, l, "self")) {
        proxy_add_header_map_value(MAP_REQUEST, "x-self-continued", 16, "1", 1);
        proxy_continue_stream(0);
        return PAUSE;
    }
    char *r = pw_header(MAP_REQUEST, "x-release", &l);
    if (r && (pw_eq(r, l, "continue") || pw_eq(r, l, "deny"))) {
        int deny = pw_eq(r, l, "deny");
        char me[12];
        size_t ml = utoa(id, me);
        u32 k = n_held;
        while (k--) {
            if (proxy_set_effective_context(held[k]) != 0)
                continue;
            if (deny) {
                static const char body[] = "released with an answer\n";
                proxy_send_local_response(409, "released", 8, body, sizeof(body) - 1, "", 0, -1);
            } else {
                proxy_replace_header_map_value(MAP_REQUEST, "x-released-by", 13, me, ml);
                proxy_continue_stream(0);
            }
        }
        proxy_set_effective_context(id);
        char cnt[12];
        size_t cl = utoa(n_held, cnt);
        proxy_add_header_map_value(MAP_REQUEST, "x-released", 10, cnt, cl);
        n_held = 0;
        publish();
    }
    r = pw_header(MAP_REQUEST, "x-release-response", &l);
    if (r && (pw_eq(r, l, "continue") || pw_eq(r, l, "deny"))) {
        int deny = pw_eq(r, l, "deny");
        char me[12];
        size_t ml = utoa(id, me);
        u32 k = n_held_resp;
        while (k--) {
            if (proxy_set_effective_context(held_resp[k]) != 0)
                continue;
            if (deny) {
                static const char body[] = "response released with an answer\n";
                proxy_send_local_response(409, "released", 8, body, sizeof(body) - 1, "", 0, -1);
            } else {
                proxy_replace_header_map_value(MAP_RESPONSE, "x-released-by", 13, me, ml);
                proxy_continue_stream(1);
            }
        }
        proxy_set_effective_context(id);
        char cnt[12];
        size_t cl = utoa(n_held_resp, cnt);
        proxy_add_header_map_value(MAP_REQUEST, "x-released-responses", 20, cnt, cl);
        n_held_resp = 0;
        publish();
    }
    return CONTINUE;
}

EXPORT(proxy_on_response_headers) u32 proxy_on_response_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *p = pw_header(MAP_REQUEST, "x-pause-response", &l);
    if (p && pw_eq(p, l, "hold") && n_held_resp < 64) {
        held_resp[n_held_resp++] = id;
        publish();
        return PAUSE;
    }
    if (p && pw_eq(p, l, "self")) {
        proxy_add_header_map_value(MAP_RESPONSE, "x-self-continued", 16, "1", 1);
        proxy_continue_stream(1);
        return PAUSE;
    }
    return CONTINUE;
}

EXPORT(proxy_on_delete) void proxy_on_delete(u32 id)
{
    for (u32 i = 0; i < n_held; i++)
        if (held[i] == id) {
            held[i] = held[--n_held];
            publish();
            return;
        }
    for (u32 i = 0; i < n_held_resp; i++)
        if (held_resp[i] == id) {
            held_resp[i] = held_resp[--n_held_resp];
            publish();
            return;
        }
}
