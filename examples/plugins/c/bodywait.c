/*
 * Waiting in body and trailer callbacks, and trailers added to a message
 * that has none, against the ABI directly. Request fields pick what it does
 * (the configuration names the upstream its calls go to):
 *
 *   x-body-wait: V         proxy_on_request_body buffers the body
 *                          (StopIterationAndBuffer) and, at end_of_stream,
 *   x-resp-wait: V         (proxy_on_response_body, the same for the response)
 *                          appends "[waited N]" (N = the whole body's size)
 *                          and pauses (returns StopIterationAndBuffer again):
 *       /PATH              after calling GET PATH on the configured upstream
 *                          (proxy_http_call); on a 200 answer it appends
 *                          "[checked]" to the held body and continues
 *                          (proxy_continue_stream), on another status it
 *                          answers 403, when the call fails 503
 *       stall              never continues (pause_timeout decides)
 *       self               calls proxy_continue_stream in the callback itself
 *                          (its StopIteration is then a Continue)
 *   x-trailer-wait: V      proxy_on_request_trailers / proxy_on_response_
 *   x-resp-trailer-wait: V trailers add "x-trailer-wait: 1" and pause, with
 *                          the same values; on a 200 answer "x-checked: 200"
 *                          is added to the held trailers before continuing
 *   x-add-trailer: V       the request body's last call adds the request
 *                          trailer "x-added: V" (map 1), whether or not the
 *                          request has trailers
 *   x-resp-add-trailer: V  the response body's last call adds the response
 *                          trailer "x-resp-added: V" (map 3)
 *   x-wait-stream: 1       the body's pieces before its end pass on at once
 *                          (Continue); only its end waits
 *   x-call-body: V         the calls above are POST with the body V; a 200
 *                          answer's body is appended to the held body too
 *                          (before "[checked]")
 *
 * The gauge "waiting" counts the exchanges it holds.
 */
#include "pw.h"

IMPORT(proxy_http_call) u32 proxy_http_call(const char *up, size_t ul, const char *h, size_t hl,
                                            const char *b, size_t bl, const char *t, size_t tl,
                                            u32 timeout, u32 *token);
IMPORT(proxy_continue_stream) u32 proxy_continue_stream(u32 type);
IMPORT(proxy_set_buffer_bytes) u32 proxy_set_buffer_bytes(u32 type, u32 start, u32 len,
                                                          const char *p, size_t n);
IMPORT(proxy_define_metric) u32 proxy_define_metric(u32 type, const char *n, size_t nl, u32 *id);
IMPORT(proxy_increment_metric) u32 proxy_increment_metric(u32 id, long long v);

enum { MAP_REQUEST_TRAILERS = 1, MAP_RESPONSE_TRAILERS = 3, MAP_CALL_RESPONSE = 6 };
enum { BUF_REQUEST_BODY = 0, BUF_RESPONSE_BODY = 1, BUF_CALL_RESPONSE_BODY = 4 };
enum { W_NONE, W_CALL, W_STALL, W_SELF };
/* what a context waits for: 1 + 2 * direction + stage (0 body, 1 trailers) */

static char upstream[64];
static size_t upstream_len;
static u32 waiting;

#define SLOTS 256
#define PATH_MAX_LEN 120
struct slot {
    u32 mode[4];                        /* [2 * dir + stage] */
    char path[4][PATH_MAX_LEN];
    u32 path_len[4];
    char add[2][64];                    /* trailer values to add, per direction */
    u32 add_len[2];
    char cbody[64];                     /* the calls' request body */
    u32 cbody_len;
    u32 stream;                         /* x-wait-stream: pieces pass before the end */
    u32 pending;                        /* 1 + 2 * dir + stage, 0: none */
};
static struct slot slots[SLOTS];

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size)
{
    char *p = 0;
    size_t n = 0;
    if (root == 1 && size && proxy_get_buffer_bytes(BUF_PLUGIN_CONFIGURATION, 0, size, &p, &n) == 0)
        for (upstream_len = 0; upstream_len < n && upstream_len < sizeof(upstream); upstream_len++)
            upstream[upstream_len] = p[upstream_len];
    proxy_define_metric(1, "waiting", 7, &waiting);
    return 1;
}

static void pick(struct slot *s, u32 k, const char *name)
{
    size_t l;
    char *v = pw_header(MAP_REQUEST, name, &l);
    s->mode[k] = W_NONE;
    if (!v)
        return;
    if (pw_eq(v, l, "stall")) {
        s->mode[k] = W_STALL;
    } else if (pw_eq(v, l, "self")) {
        s->mode[k] = W_SELF;
    } else if (l && v[0] == '/' && l < PATH_MAX_LEN) {
        s->mode[k] = W_CALL;
        for (size_t i = 0; i < l; i++)
            s->path[k][i] = v[i];
        s->path_len[k] = (u32)l;
    }
}

static void pick_add(struct slot *s, u32 d, const char *name)
{
    size_t l;
    char *v = pw_header(MAP_REQUEST, name, &l);
    s->add_len[d] = 0;
    if (v && l < sizeof(s->add[d])) {
        for (size_t i = 0; i < l; i++)
            s->add[d][i] = v[i];
        s->add_len[d] = (u32)l;
    }
}

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 nf, u32 eos)
{
    size_t n;
    struct slot *s = &slots[id % SLOTS];
    pick(s, 0, "x-body-wait");
    pick(s, 1, "x-trailer-wait");
    pick(s, 2, "x-resp-wait");
    pick(s, 3, "x-resp-trailer-wait");
    pick_add(s, 0, "x-add-trailer");
    pick_add(s, 1, "x-resp-add-trailer");
    s->stream = pw_header(MAP_REQUEST, "x-wait-stream", &n) != 0;
    char *v = pw_header(MAP_REQUEST, "x-call-body", &n);
    s->cbody_len = 0;
    if (v && n < sizeof(s->cbody)) {
        for (size_t i = 0; i < n; i++)
            s->cbody[i] = v[i];
        s->cbody_len = (u32)n;
    }
    s->pending = 0;
    return CONTINUE;
}

static void put32(char *p, u32 v)
{
    p[0] = (char)v, p[1] = (char)(v >> 8), p[2] = (char)(v >> 16), p[3] = (char)(v >> 24);
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

/* GET path (POST with body b, if any) on the configured upstream; 0 = started. */
static u32 call(const char *path, size_t pl, const char *b, size_t bl)
{
    static const char *const names[3] = { ":method", ":path", ":authority" };
    const char *vals[3] = { bl ? "POST" : "GET", path, "check" };
    size_t vl[3] = { bl ? 4 : 3, pl, 5 };
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
    u32 token;
    return proxy_http_call(upstream, upstream_len, buf, off, bl ? b : "", bl, "", 0, 10000,
                           &token);
}

/* Pauses in stage k (2 * dir + stage) as the mode says; the action. */
static u32 wait(u32 id, u32 k)
{
    struct slot *s = &slots[id % SLOTS];
    switch (s->mode[k]) {
    case W_STALL:
        proxy_increment_metric(waiting, 1);
        s->pending = 1 + k;
        return PAUSE;
    case W_SELF:
        proxy_continue_stream(k / 2);
        return PAUSE;                   /* (a Continue: continued in the callback) */
    case W_CALL:
        if (call(s->path[k], s->path_len[k], s->cbody, s->cbody_len) != 0) {
            static const char msg[] = "check refused\n";
            proxy_send_local_response(503, "check", 5, msg, sizeof(msg) - 1, "", 0, -1);
            return PAUSE;
        }
        proxy_increment_metric(waiting, 1);
        s->pending = 1 + k;
        return PAUSE;
    default:
        return CONTINUE;
    }
}

static u32 body(u32 d, u32 id, u32 size, u32 eos)
{
    struct slot *s = &slots[id % SLOTS];
    u32 type = d ? BUF_RESPONSE_BODY : BUF_REQUEST_BODY;
    if (eos && s->add_len[d]) {
        if (d)
            proxy_add_header_map_value(MAP_RESPONSE_TRAILERS, "x-resp-added", 12, s->add[d],
                                       s->add_len[d]);
        else
            proxy_add_header_map_value(MAP_REQUEST_TRAILERS, "x-added", 7, s->add[d],
                                       s->add_len[d]);
    }
    if (s->mode[2 * d] == W_NONE)
        return CONTINUE;
    if (!eos)
        return s->stream ? CONTINUE : PAUSE;    /* StopIterationAndBuffer: the whole body */
    char t[32] = "[waited ";
    size_t n = 8;
    n += utoa(size, t + n);
    t[n++] = ']';
    proxy_set_buffer_bytes(type, size, 0, t, n);
    return wait(id, 2 * d);
}

EXPORT(proxy_on_request_body) u32 proxy_on_request_body(u32 id, u32 size, u32 eos)
{
    return body(0, id, size, eos);
}

EXPORT(proxy_on_response_body) u32 proxy_on_response_body(u32 id, u32 size, u32 eos)
{
    return body(1, id, size, eos);
}

static u32 trailers(u32 d, u32 id)
{
    struct slot *s = &slots[id % SLOTS];
    if (s->mode[2 * d + 1] == W_NONE)
        return CONTINUE;
    proxy_add_header_map_value(d ? MAP_RESPONSE_TRAILERS : MAP_REQUEST_TRAILERS,
                               "x-trailer-wait", 14, "1", 1);
    return wait(id, 2 * d + 1);
}

EXPORT(proxy_on_request_trailers) u32 proxy_on_request_trailers(u32 id, u32 n)
{
    return trailers(0, id);
}

EXPORT(proxy_on_response_trailers) u32 proxy_on_response_trailers(u32 id, u32 n)
{
    return trailers(1, id);
}

EXPORT(proxy_on_http_call_response) void proxy_on_http_call_response(u32 id, u32 token, u32 nh,
                                                                     u32 body_size, u32 nt)
{
    struct slot *s = &slots[id % SLOTS];
    u32 k = s->pending;
    if (!k)
        return;
    k--;
    s->pending = 0;
    proxy_increment_metric(waiting, -1);
    size_t l;
    if (nh == 0) {
        static const char msg[] = "check unavailable\n";
        proxy_send_local_response(503, "check", 5, msg, sizeof(msg) - 1, "", 0, -1);
        return;
    }
    char *st = pw_header(MAP_CALL_RESPONSE, ":status", &l);
    if (!st || !pw_eq(st, l, "200")) {
        static const char msg[] = "denied by the check\n";
        proxy_send_local_response(403, "check", 5, msg, sizeof(msg) - 1, "", 0, -1);
        return;
    }
    u32 d = k / 2;
    if (k % 2 == 0 && s->cbody_len && body_size) {
        char *p = 0;
        size_t bl = 0;
        if (proxy_get_buffer_bytes(BUF_CALL_RESPONSE_BODY, 0, body_size, &p, &bl) == 0)
            proxy_set_buffer_bytes(d ? BUF_RESPONSE_BODY : BUF_REQUEST_BODY, 0xffffff, 0, p, bl);
    }
    if (k % 2 == 0)                     /* the held body, still readable and writable */
        proxy_set_buffer_bytes(d ? BUF_RESPONSE_BODY : BUF_REQUEST_BODY, 0xffffff, 0,
                               "[checked]", 9);
    else
        proxy_add_header_map_value(d ? MAP_RESPONSE_TRAILERS : MAP_REQUEST_TRAILERS,
                                   "x-checked", 9, st, l);
    proxy_continue_stream(d);
}

EXPORT(proxy_on_done) u32 proxy_on_done(u32 id)
{
    struct slot *s = &slots[id % SLOTS];
    if (s->pending)
        proxy_increment_metric(waiting, -1);
    s->pending = 0;
    return 1;
}
