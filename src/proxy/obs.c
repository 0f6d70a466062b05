/*
 * What the exchange tells the outside about itself: its request id, its
 * W3C trace context, and its access-log record.
 *
 * - X-Request-Id: kept when a route's forwarded.trusted_proxies peer sent
 *   one (1 to 64 visible ASCII characters), else a new UUIDv7 (RFC 9562:
 *   48-bit Unix ms time, then random bits), so ids sort by time.
 * - traceparent (W3C Trace Context level 1): a valid one from the client is
 *   continued (its trace id and sampled flag kept, its span id becomes the
 *   parent), otherwise a new trace starts, sampled with probability
 *   observability.tracing.sample. Either way Arc makes a new span id for the
 *   upstream hop and forwards it. tracestate is forwarded only with a valid
 *   traceparent (the spec's rule).
 * - The access-log record is filled straight into a slot of the worker's
 *   ring (no copy, no allocation). Redaction happens here, so a redacted
 *   value never reaches the ring.
 *
 * Ids and sampling draw from a per-worker xorshift generator seeded from
 * getrandom: unpredictable enough for ids, not a cryptographic secret.
 */
#include "proxy/proxy_int.h"
#include "obs/accesslog.h"
#include "obs/otlp.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t rnd(struct arc_worker *w)
{
    if (!w->rng) {
        if (getrandom(&w->rng, sizeof(w->rng), GRND_NONBLOCK) != sizeof(w->rng) || !w->rng)
            w->rng = arc_now_ns() ^ 0x9e3779b97f4a7c15ull ^ ((uint64_t)w->id << 48);
        if (!w->rng)
            w->rng = 1;
    }
    /* xorshift64* */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t arc_px__rand(struct arc_worker *w)
{
    return rnd(w);
}

static void rnd_bytes(struct arc_worker *w, uint8_t *out, size_t n)
{
    while (n) {
        uint64_t v = rnd(w);
        size_t k = n < 8 ? n : 8;
        memcpy(out, &v, k);
        out += k;
        n -= k;
    }
}

/* [0, 1) */
static double rnd01(struct arc_worker *w)
{
    return (double)(rnd(w) >> 11) * (1.0 / 9007199254740992.0);
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;                          /* upper case is invalid (W3C §3.2.2) */
}

static bool unhex(const char *p, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int a = hexval(p[2 * i]), b = hexval(p[2 * i + 1]);
        if (a < 0 || b < 0)
            return false;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return true;
}

/* version "-" trace-id "-" parent-id "-" flags; a version above 00 may
 * append fields after a '-' (W3C §3.3: parse what this version knows). */
static bool parse_traceparent(struct arc_str v, struct arc_exchange *ex)
{
    uint8_t ver, flags;
    if (v.len < 55 || (v.len > 55 && v.p[55] != '-'))
        return false;
    if (v.p[2] != '-' || v.p[35] != '-' || v.p[52] != '-')
        return false;
    if (!unhex(v.p, &ver, 1) || ver == 0xff || (ver == 0 && v.len != 55))
        return false;
    if (!unhex(v.p + 3, ex->trace_id, 16) || !unhex(v.p + 36, ex->parent_id, 8) ||
        !unhex(v.p + 53, &flags, 1))
        return false;
    if (all_zero(ex->trace_id, 16) || all_zero(ex->parent_id, 8))
        return false;
    ex->trace_flags = flags & 1;        /* only "sampled" is defined */
    return true;
}

static bool peer_trusted(struct arc_conn *c, const struct arc_route_rt *r)
{
    if (!r || r->conf->n_trusted_proxies == 0)
        return false;
    const struct sockaddr *peer = arc_px__peer_addr(c);
    if (!peer)
        return false;
    for (size_t i = 0; i < r->conf->n_trusted_proxies; i++)
        if (arc_config_cidr_contains(&r->conf->trusted_proxies[i], peer))
            return true;
    return false;
}

static bool rid_ok(struct arc_str v)
{
    if (v.len == 0 || v.len > ARC_PX_RID_MAX)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.p[i] <= 0x20 || (unsigned char)v.p[i] >= 0x7f)
            return false;
    return true;
}

/* The wall clock (CLOCK_REALTIME ns) at monotonic time `mono`, from the
 * offset between the two clocks, read at most once a second of the loop's
 * time: no clock read per request. A step of the wall clock shows within a
 * second; NTP's slewing (at most 500 ppm) moves it by at most 0.5 ms
 * meanwhile. */
static uint64_t wall_ns(struct arc_worker *w, uint64_t mono)
{
    if (!w->real_off_ms || w->now_ms - w->real_off_ms >= 1000) {
        struct timespec rt, mt;
        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &mt);
        w->real_off_ns = ((int64_t)rt.tv_sec - (int64_t)mt.tv_sec) * 1000000000ll +
                         ((int64_t)rt.tv_nsec - (int64_t)mt.tv_nsec);
        w->real_off_ms = w->now_ms ? w->now_ms : 1;
    }
    return (uint64_t)((int64_t)mono + w->real_off_ns);
}

static void uuid7(struct arc_worker *w, char out[37])
{
    /* The loop's time is enough for a millisecond timestamp. */
    uint64_t ms = wall_ns(w, w->now_ms * 1000000ull) / 1000000;
    uint8_t b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    rnd_bytes(w, b + 6, 10);
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));    /* version 7 */
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));    /* variant 10 */
    static const char d[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = d[b[i] >> 4];
        out[k++] = d[b[i] & 15];
    }
    out[k] = '\0';
}

void arc_px__obs_ids(struct arc_worker *w, struct arc_exchange *ex, const struct arc_route_rt *r)
{
    const struct arc_req *q = &ex->req;
    struct arc_str rid = { NULL, 0 }, tp = { NULL, 0 };
    int n_tp = 0;
    for (size_t i = 0; i < q->n_hdrs; i++) {
        struct arc_str nm = q->hdrs[i].name;
        if (arc_str_ieq(nm, "x-request-id", 12))
            rid = q->hdrs[i].value;
        else if (arc_str_ieq(nm, "traceparent", 11)) {
            tp = q->hdrs[i].value;
            n_tp++;
        }
    }
    if (rid.len && rid_ok(rid) && peer_trusted(ex->client, r)) {
        memcpy(ex->rid, rid.p, rid.len);
        ex->rid[rid.len] = '\0';
        ex->rid_len = (uint8_t)rid.len;
    } else {
        uuid7(w, ex->rid);
        ex->rid_len = 36;
    }
    /* Several traceparent fields are invalid (W3C §3.2): start afresh. */
    ex->has_parent = n_tp == 1 && parse_traceparent(tp, ex);
    if (!ex->has_parent) {
        do
            rnd_bytes(w, ex->trace_id, 16);
        while (all_zero(ex->trace_id, 16));
        double s = ex->snap->cfg->tracing_sample;
        ex->trace_flags = s > 0 && rnd01(w) < s ? 1 : 0;
    }
    do
        rnd_bytes(w, ex->span_id, 8);
    while (all_zero(ex->span_id, 8));
    do
        rnd_bytes(w, ex->server_span, 8);
    while (all_zero(ex->server_span, 8));
    ex->traced = true;
}

void arc_px__obs_traceparent(const struct arc_exchange *ex, char out[56])
{
    static const char d[] = "0123456789abcdef";
    size_t k = 0;
    out[k++] = '0';
    out[k++] = '0';
    out[k++] = '-';
    for (int i = 0; i < 16; i++) {
        out[k++] = d[ex->trace_id[i] >> 4];
        out[k++] = d[ex->trace_id[i] & 15];
    }
    out[k++] = '-';
    for (int i = 0; i < 8; i++) {
        out[k++] = d[ex->span_id[i] >> 4];
        out[k++] = d[ex->span_id[i] & 15];
    }
    out[k++] = '-';
    out[k++] = '0';
    out[k++] = d[ex->trace_flags & 1];
    out[k] = '\0';
}

/* ------------------------------------------------------------ access log */

/* Copies at most cap - 1 bytes and a NUL; sets `bit` in *trunc when cut. */
static void cp(char *dst, size_t cap, const char *src, size_t len, unsigned bit, uint32_t *trunc)
{
    if (len >= cap) {
        len = cap - 1;
        *trunc |= 1u << bit;
    }
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

/* A C string (NULL: absent) into field f. */
static void puts_f(struct arc_alog_rec *r, unsigned f, const char *s)
{
    if (s)
        arc_alog_put(r, f, s, strlen(s));
    else
        r->off[f] = 0;
}

/* A name from the snapshot with its length (0: not known, measured). */
static void put_name(struct arc_alog_rec *r, unsigned f, const char *s, size_t n)
{
    if (s)
        arc_alog_put(r, f, s, n ? n : strlen(s));
}

#define REDACTED "REDACTED"

static bool redacted_header(const struct arc_logging_conf *lc, const char *lname)
{
    for (size_t i = 0; i < lc->n_redact_headers; i++)
        if (strcmp(lc->redact_headers[i], lname) == 0)
            return true;
    return false;
}

/* The query with the values of redact.query_params replaced, written into
 * the record's field (the original values are never copied). */
static size_t query_copy(char *dst, size_t cap, struct arc_str q, const struct arc_logging_conf *lc,
                         uint32_t *trunc)
{
    if (lc->n_redact_query == 0) {
        cp(dst, cap, q.p, q.len, ARC_ALOG_T_QUERY, trunc);
        return q.len < cap ? q.len : cap - 1;
    }
    size_t k = 0, i = 0;
    bool cut = false;
#define PUT(s, n) do { size_t _n = (n); if (k + _n >= cap) { _n = cap - 1 - k; cut = true; } \
                       memcpy(dst + k, (s), _n); k += _n; } while (0)
    while (i < q.len && !cut) {
        size_t end = i;
        while (end < q.len && q.p[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && q.p[eq] != '=')
            eq++;
        bool red = false;
        for (size_t j = 0; j < lc->n_redact_query && !red; j++) {
            size_t nl = strlen(lc->redact_query[j]);
            red = nl == eq - i && memcmp(lc->redact_query[j], q.p + i, nl) == 0;
        }
        if (i)
            PUT("&", 1);
        if (red && eq < end) {
            PUT(q.p + i, eq - i + 1);
            PUT(REDACTED, sizeof(REDACTED) - 1);
        } else {
            PUT(q.p + i, end - i);
        }
        i = end + 1;
    }
#undef PUT
    dst[k] = '\0';
    if (cut)
        *trunc |= 1u << ARC_ALOG_T_QUERY;
    return k;
}

void arc_px__obs_log(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome o)
{
    struct arc_alog_ring *ring = arc_alog_ring(w->id);
    /* Sampled traces also go to the OTLP exporter's queue (otlp.c). */
    struct arc_alog_ring *spans = ex->traced && (ex->trace_flags & 1) ? arc_otlp_ring(w->id) : NULL;
    if (!ring && !spans)
        return;
    const struct arc_logging_conf *lc = &ex->snap->cfg->logging;
    bool aborted = o == EXO_CLIENT_ABORT || o == EXO_CLIENT_TIMEOUT;
    /* The status metrics count: 499 for an exchange cut before any
     * status, 502 for one that ended without a response otherwise. */
    int status = ex->status ? ex->status : aborted ? 499 : 502;
    uint64_t dur = ex->t_end_ns > ex->t_start_ns ? ex->t_end_ns - ex->t_start_ns : 0;
    bool forced = arc_logging_forced_status(lc, status) ||
                  (lc->force_on_slow && dur >= lc->force_on_slow * 1000000ull);
    if (ring && !forced && lc->sample < 1.0 && !(lc->sample > 0 && rnd01(w) < lc->sample))
        ring = NULL;
    struct arc_alog_rec *r = ring ? arc_alog_ring_claim(ring) : NULL;
    struct arc_alog_rec *sr = spans ? arc_alog_ring_claim(spans) : NULL;
    if (!r && !sr)
        return;                         /* sampled out, or counted as dropped */
    if (!r)
        r = sr;
    struct arc_conn *c = ex->client;
    const struct arc_req *q = &ex->req;
    uint32_t tr = 0;
    r->truncated = 0;
    arc_alog_strs_reset(r);
    r->ts_ns = wall_ns(w, ex->t_end_ns) - dur;
    r->dur_ns = dur;
    r->connect_ns = ex->t_conn_ns && ex->t_up_ns ? ex->t_conn_ns - ex->t_up_ns : ARC_ALOG_NONE;
    r->ttfb_ns = ex->t_head_ns && ex->t_up_ns ? ex->t_head_ns - ex->t_up_ns : ARC_ALOG_NONE;
    r->response_ns = ex->t_up_ns && ex->t_end_ns > ex->t_up_ns ? ex->t_end_ns - ex->t_up_ns
                                                               : ARC_ALOG_NONE;
    r->bytes_in = ex->bytes_in;
    r->bytes_out = ex->bytes_out;
    r->status = (uint16_t)status;
    r->protocol = c->c.codec == &arc_px__h2_server ? ARC_ALOG_H2
                  : q->version == 10 ? ARC_ALOG_H10 : ARC_ALOG_H11;
    r->https = arc_str_eq(q->scheme, "https", 5) || (c->tls != NULL && q->scheme.len == 0);
    r->attempt = ex->attempts;
    r->err = ex->err;
    switch (o) {
    case EXO_COMPLETE: r->outcome = ARC_ALOG_O_COMPLETE; break;
    case EXO_CLIENT_ABORT: r->outcome = ARC_ALOG_O_CLIENT_ABORT; break;
    case EXO_CLIENT_TIMEOUT: r->outcome = ARC_ALOG_O_CLIENT_TIMEOUT; break;
    case EXO_UPSTREAM_CUT: r->outcome = ARC_ALOG_O_UPSTREAM_CUT; break;
    case EXO_TUNNEL_END: r->outcome = ARC_ALOG_O_TUNNEL_END; break;
    }
    r->traced = ex->traced;
    r->trace_flags = ex->trace_flags;
    r->has_parent = ex->has_parent;
    memcpy(r->trace_id, ex->trace_id, 16);
    memcpy(r->span_id, ex->span_id, 8);
    memcpy(r->parent_id, ex->parent_id, 8);
    memcpy(r->server_span_id, ex->server_span, 8);
    const struct sockaddr *peer = arc_px__peer_addr(c);
    r->client.sa.sa_family = 0;
    if (peer && peer->sa_family == AF_INET)
        memcpy(&r->client.in, peer, sizeof(r->client.in));
    else if (peer && peer->sa_family == AF_INET6)
        memcpy(&r->client.in6, peer, sizeof(r->client.in6));
    arc_alog_put(r, ARC_ALOG_S_METHOD, q->method.p, q->method.len);
    if (redacted_header(lc, "host"))
        puts_f(r, ARC_ALOG_S_HOST, REDACTED);
    else
        arc_alog_put(r, ARC_ALOG_S_HOST, q->authority.p, q->authority.len);
    arc_alog_put(r, ARC_ALOG_S_PATH, q->path.p, q->path.len);
    if (q->query.len) {
        size_t room = ARC_ALOG_STR_BYTES - r->used;
        size_t qn = query_copy(r->strs + r->used, ARC_MIN((size_t)ARC_ALOG_QUERY, room), q->query,
                               lc, &tr);
        r->off[ARC_ALOG_S_QUERY] = qn ? r->used : 0;
        r->len[ARC_ALOG_S_QUERY] = (uint16_t)qn;
        if (qn)
            r->used = (uint16_t)(r->used + qn + 1);
    }
    if (ex->route)      /* (lengths kept in the snapshot: no strlen per request) */
        put_name(r, ARC_ALOG_S_ROUTE, ex->route->conf->name, ex->route->name_len);
    const struct arc_upstream_rt *up = ex->target;
    r->has_upstream = up != NULL;
    r->rl = (uint8_t)arc_px__limit_log(ex, &r->rl_quota, &r->rl_window);
    if (up) {
        put_name(r, ARC_ALOG_S_UPSTREAM, up->conf->name, up->name_len);
        if (ex->ep >= 0 && (size_t)ex->ep < up->n_eps)
            put_name(r, ARC_ALOG_S_UPSTREAM_ADDR, up->eps[ex->ep].text, up->eps[ex->ep].text_len);
    }
    arc_alog_put(r, ARC_ALOG_S_REQUEST_ID, ex->rid, ex->rid_len);
    r->tls = c->tls != NULL;
    if (c->tls) {
        puts_f(r, ARC_ALOG_S_TLS_VERSION, arc_tls_conn_version(c->tls));
        puts_f(r, ARC_ALOG_S_TLS_CIPHER, arc_tls_conn_cipher(c->tls));
        puts_f(r, ARC_ALOG_S_TLS_SNI, arc_tls_conn_sni(c->tls));
        puts_f(r, ARC_ALOG_S_TLS_SUBJECT, arc_tls_conn_peer_subject(c->tls));
    }
    for (size_t i = 0; i < q->n_hdrs; i++) {
        struct arc_str nm = q->hdrs[i].name, v = q->hdrs[i].value;
        if (nm.len != 10 && nm.len != 7)
            continue;                   /* neither name: skip the comparisons */
        if (arc_str_ieq(nm, "user-agent", 10)) {
            if (redacted_header(lc, "user-agent"))
                v = ARC_STR_LIT(REDACTED);
            arc_alog_put(r, ARC_ALOG_S_USER_AGENT, v.p, v.len);
        } else if (arc_str_ieq(nm, "referer", 7)) {
            if (redacted_header(lc, "referer"))
                v = ARC_STR_LIT(REDACTED);
            arc_alog_put(r, ARC_ALOG_S_REFERER, v.p, v.len);
        }
    }
    r->truncated |= tr;
    if (sr && sr != r)
        memcpy(sr, r, arc_alog_rec_size(r));    /* offsets: the copy is whole */
    if (r != sr)
        arc_alog_ring_commit(ring);
    if (sr)
        arc_alog_ring_commit(spans);
}
