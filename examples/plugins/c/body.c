/*
 * Bodies in chunks and trailers, against the ABI directly. The request
 * field "x-body" picks what proxy_on_request_body does, "x-resp-body"
 * what proxy_on_response_body does:
 *
 *   upper   uppercases each chunk as it passes (Continue: nothing is
 *           buffered), rewriting it with proxy_set_buffer_bytes: the
 *           uppercased bytes are appended, then the original prefix is
 *           dropped (start 0, length = its size, no data)
 *   count   passes chunks unchanged
 *   hold    buffers the whole body (StopIterationAndBuffer until
 *           end_of_stream), then appends "[held N]" (N = the size it saw)
 *   trap    traps on the second chunk (on the first if it is the end)
 *   loop    loops forever on the second chunk (the plugin's budget stops it)
 *   local   answers 418 from the first body call
 *   rc-*    ABI probes for the unit tests: the body becomes "rc=NN", the
 *           status of one host call with hostile arguments
 *
 * Every body call counts in the counter "req_chunks" / "resp_chunks" and
 * the largest body_size it saw in the gauge "req_max_chunk" /
 * "resp_max_chunk": with "upper" or "count", a body of several MiB passes
 * in many calls, none near its size (nothing is buffered).
 *
 * Trailers: proxy_on_request_trailers adds "x-trailer-filter: N" (N = the
 * trailers it saw) to the request trailers (map 1); proxy_on_response_
 * trailers adds "x-resp-trailer-filter: N" to the response trailers (map 3).
 */
#include "pw.h"

IMPORT(proxy_set_buffer_bytes) u32 proxy_set_buffer_bytes(u32 type, u32 start, u32 len,
                                                          const char *p, size_t n);
IMPORT(proxy_define_metric) u32 proxy_define_metric(u32 type, const char *n, size_t nl, u32 *id);
IMPORT(proxy_increment_metric) u32 proxy_increment_metric(u32 id, long long v);
IMPORT(proxy_record_metric) u32 proxy_record_metric(u32 id, u64 v);
IMPORT(proxy_get_metric) u32 proxy_get_metric(u32 id, u64 *v);
IMPORT(proxy_get_buffer_status) u32 proxy_get_buffer_status(u32 type, size_t *len, u32 *flags);

enum { MAP_REQUEST_TRAILERS = 1, MAP_RESPONSE_TRAILERS = 3 };
enum { BUF_REQUEST_BODY = 0, BUF_RESPONSE_BODY = 1 };
enum { M_NONE, M_UPPER, M_COUNT, M_HOLD, M_TRAP, M_LOOP, M_LOCAL, M_RC_OOB_PTR, M_RC_OOB_DATA, M_RC_MID,
       M_RC_OTHER, M_RC_OVERFLOW, M_RC_GROW, M_RC_EDGES, M_RC_STATUS, M_RC_STATUS_OOB };

static u32 chunks[2], maxc[2];
static u32 mode[2][256], seen[2][256];

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size)
{
    proxy_define_metric(0, "req_chunks", 10, &chunks[0]);
    proxy_define_metric(1, "req_max_chunk", 13, &maxc[0]);
    proxy_define_metric(0, "resp_chunks", 11, &chunks[1]);
    proxy_define_metric(1, "resp_max_chunk", 14, &maxc[1]);
    return 1;
}

static u32 mode_of(const char *v, size_t l)
{
    if (!v)
        return M_NONE;
    static const char *const names[] = { "", "upper", "count", "hold", "trap", "loop", "local",
                                         "rc-oob-ptr", "rc-oob-data", "rc-mid", "rc-other",
                                         "rc-overflow", "rc-grow", "rc-edges", "rc-status",
                                         "rc-status-oob" };
    for (u32 i = 1; i < sizeof(names) / sizeof(names[0]); i++)
        if (pw_eq(v, l, names[i]))
            return i;
    return M_NONE;
}

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *v = pw_header(MAP_REQUEST, "x-body", &l);
    mode[0][id % 256] = mode_of(v, l);
    v = pw_header(MAP_REQUEST, "x-resp-body", &l);
    mode[1][id % 256] = mode_of(v, l);
    seen[0][id % 256] = seen[1][id % 256] = 0;
    return CONTINUE;
}

static void put_rc(u32 type, u32 size, u32 rc)
{
    char t[5] = { 'r', 'c', '=', (char)('0' + rc / 10), (char)('0' + rc % 10) };
    proxy_set_buffer_bytes(type, 0, size, t, 5);
}

/* Uppercases the body in place by slices (the bump allocator is small). */
static void upper(u32 type, u32 size)
{
    for (u32 off = 0; off < size; off += 8192) {
        char *p = 0;
        size_t l = 0;
        u32 want = size - off < 8192 ? size - off : 8192;   /* (the buffer grows behind) */
        if (proxy_get_buffer_bytes(type, off, want, &p, &l) != 0)
            return;
        for (size_t i = 0; i < l; i++)
            if (p[i] >= 'a' && p[i] <= 'z')
                p[i] = (char)(p[i] - 32);
        proxy_set_buffer_bytes(type, size + off, 0, p, l);  /* start past the end: appended */
    }
    proxy_set_buffer_bytes(type, 0, size, 0, 0);            /* the original bytes dropped */
}

static u32 body(u32 d, u32 id, u32 size, u32 eos)
{
    u32 type = d ? BUF_RESPONSE_BODY : BUF_REQUEST_BODY;
    proxy_increment_metric(chunks[d], 1);
    u64 m = 0;
    proxy_get_metric(maxc[d], &m);
    if (size > m)
        proxy_record_metric(maxc[d], size);
    u32 k = seen[d][id % 256]++;
    char *p = 0;
    size_t l = 0;
    switch (mode[d][id % 256]) {
    case M_UPPER:
        upper(type, size);
        return CONTINUE;
    case M_HOLD: {
        if (!eos)
            return 1;                   /* StopIterationAndBuffer */
        char t[32] = "[held ";
        size_t n = 6, digits = 0;
        char rev[12];
        u32 s = size;
        do {
            rev[digits++] = (char)('0' + s % 10);
            s /= 10;
        } while (s);
        while (digits)
            t[n++] = rev[--digits];
        t[n++] = ']';
        proxy_set_buffer_bytes(type, size, 0, t, n);
        return CONTINUE;
    }
    case M_TRAP:
        if (k >= 1 || eos)
            __builtin_trap();
        return CONTINUE;
    case M_LOOP:
        if (k >= 1 || eos)
            for (volatile u32 spin = 0;; spin++)
                ;
        return CONTINUE;
    case M_LOCAL:
        proxy_send_local_response(418, "", 0, "teapot from body\n", 17, 0, 0, 0);
        return 1;
    case M_RC_OOB_PTR:
        put_rc(type, size, proxy_get_buffer_bytes(type, 0, 4, (char **)0xfffffff0u, &l));
        return CONTINUE;
    case M_RC_OOB_DATA:
        put_rc(type, size, proxy_set_buffer_bytes(type, 0, size, (const char *)0xfffffff0u, 64));
        return CONTINUE;
    case M_RC_MID:
        put_rc(type, size, size > 2 ? proxy_set_buffer_bytes(type, 1, 1, "x", 1) : 99);
        return CONTINUE;
    case M_RC_OTHER:                    /* the other direction's body: not offered now */
        put_rc(type, size, proxy_get_buffer_bytes(type ^ 1, 0, 4, &p, &l));
        return CONTINUE;
    case M_RC_OVERFLOW:
        put_rc(type, size, proxy_get_buffer_bytes(type, 0xffffff00u, 0x1000, &p, &l));
        return CONTINUE;
    case M_RC_GROW: {                   /* past the plugin's max_body_buffer */
        static char big[200000];
        put_rc(type, size, proxy_set_buffer_bytes(type, size, 0, big, sizeof(big)));
        return CONTINUE;
    }
    case M_RC_EDGES: {
        /* start 0, length 0: prepends; start past the end: appends; start 0,
         * length 1: replaces the first byte; a read past the end is empty. */
        u32 a = proxy_set_buffer_bytes(type, 0, 0, "<", 1);
        u32 b = proxy_set_buffer_bytes(type, 1000000, 0, ">", 1);
        u32 c = proxy_set_buffer_bytes(type, 0, 1, "{", 1);
        u32 e = proxy_get_buffer_bytes(type, 1000000, 10, &p, &l);
        if (a | b | c | e | (u32)l)
            put_rc(type, size + 2, 98);
        return CONTINUE;
    }
    case M_RC_STATUS: {                 /* the size offered, as the status reports it */
        size_t n = 0;
        u32 f = 0;
        u32 rc = proxy_get_buffer_status(type, &n, &f);
        put_rc(type, size, rc ? rc : n == size ? 0 : 97);
        return CONTINUE;
    }
    case M_RC_STATUS_OOB:
        put_rc(type, size, proxy_get_buffer_status(type, (size_t *)0xfffffffcu, 0));
        return CONTINUE;
    default:
        return CONTINUE;
    }
}

EXPORT(proxy_on_request_body) u32 proxy_on_request_body(u32 id, u32 size, u32 eos)
{
    return body(0, id, size, eos);
}

EXPORT(proxy_on_response_body) u32 proxy_on_response_body(u32 id, u32 size, u32 eos)
{
    return body(1, id, size, eos);
}

static u32 trailers(u32 map, const char *name, u32 n)
{
    char d[2] = { (char)('0' + n / 10 % 10), (char)('0' + n % 10) };
    proxy_add_header_map_value(map, name, pw_strlen(name), d, 2);
    return CONTINUE;
}

EXPORT(proxy_on_request_trailers) u32 proxy_on_request_trailers(u32 id, u32 n)
{
    return trailers(MAP_REQUEST_TRAILERS, "x-trailer-filter", n);
}

EXPORT(proxy_on_response_trailers) u32 proxy_on_response_trailers(u32 id, u32 n)
{
    return trailers(MAP_RESPONSE_TRAILERS, "x-resp-trailer-filter", n);
}
