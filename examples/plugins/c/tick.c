/*
 * Ticks in C: the root context asks for proxy_on_tick every 50 ms (or the
 * period its configuration gives, in ms) in proxy_on_configure; each tick
 * increments the counter "ticks". A request with "x-tick-period: N" sets
 * the period to N ms from the request's callback (0 stops them); one with
 * "x-tick-stat: 1" gets "x-ticks: COUNT" and "x-tick-root: ROOT" (on this
 * instance).
 */
#include "pw.h"

IMPORT(proxy_set_tick_period_milliseconds) u32 proxy_set_tick_period_milliseconds(u32 ms);
IMPORT(proxy_define_metric) u32 proxy_define_metric(u32 type, const char *n, size_t nl, u32 *id);
IMPORT(proxy_increment_metric) u32 proxy_increment_metric(u32 id, long long v);

static u32 counter, ticks, tick_root;

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

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size)
{
    char *p = 0;
    size_t n = 0;
    u32 ms = 50;
    if (size && proxy_get_buffer_bytes(BUF_PLUGIN_CONFIGURATION, 0, size, &p, &n) == 0 && n)
        ms = atou(p, n);
    proxy_define_metric(0, "ticks", 5, &counter);
    return proxy_set_tick_period_milliseconds(ms) == 0;
}

EXPORT(proxy_on_tick) void proxy_on_tick(u32 root)
{
    ticks++;
    tick_root = root;
    proxy_increment_metric(counter, 1);
}

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char buf[12];
    char *p = pw_header(MAP_REQUEST, "x-tick-period", &l);
    if (p)
        proxy_set_tick_period_milliseconds(atou(p, l));
    if (pw_header(MAP_REQUEST, "x-tick-stat", &l)) {
        proxy_add_header_map_value(MAP_REQUEST, "x-ticks", 7, buf, utoa(ticks, buf));
        proxy_add_header_map_value(MAP_REQUEST, "x-tick-root", 11, buf, utoa(tick_root, buf));
    }
    return CONTINUE;
}
