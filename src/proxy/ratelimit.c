/*
 * The pipeline's rate-limit stage (between route and action): the key a
 * request is counted under, the decision from the route's shared table
 * (src/limit/), and what the client is told.
 *
 * Keys (routes[].rate_limit.key.by):
 * - client_ip: the peer's address; when the peer is one of the route's
 *   forwarded.trusted_proxies, X-Forwarded-For is walked from the right,
 *   skipping trusted hops, and the first other address is the client (an
 *   entry that is not an IP address stops the walk at the hop after it).
 *   IPv6 clients are keyed by their /ipv6_prefix (64 by default), so one
 *   host cannot escape by rotating addresses inside its prefix; IPv4 and
 *   IPv4-mapped IPv6 clients by their address.
 * - header / cookie: the value of the named field or cookie (requests
 *   without it share one key); route: one key for the route; client_cert:
 *   the verified TLS client certificate's subject (no certificate: one
 *   shared key).
 *
 * Decisions: allowed (the pipeline goes on), delayed (leaky bucket: the
 * exchange waits in EX_WAITING and continues at its turn; if its client
 * leaves first, its place is given back), rejected (answered with the
 * configured status, Retry-After and the RateLimit fields). Counted per
 * route in the worker's metrics shard.
 *
 * Response fields (draft-ietf-httpapi-ratelimit-headers, structured form):
 *   RateLimit-Policy: "<route>";q=<quota>;w=<window s>
 *   RateLimit: "<route>";r=<remaining>;t=<seconds>
 * For bucket algorithms the policy is the sustained rate (q requests per
 * w seconds, w = 1, or more for rates below 1/s), r what may pass at once
 * now; for window algorithms q is the window's limit and w its length.
 * t is the seconds until the quota is whole again, or on a rejection the
 * seconds until a request may pass (= Retry-After).
 */
#include "proxy/proxy_int.h"
#include "limit/limit.h"
#include "obs/accesslog.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct limit_note {
    struct arc_rl_decision d;
    bool rejected;
    bool blocked;               /* a heavy hitter's request (arc_px__hh_reject) */
    uint32_t hh_quota;          /* ... heavy_hitters.threshold_qps */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ keys */

static bool trusted(const void *ud, const struct sockaddr *sa)
{
    const struct arc_route_conf *rc = ud;
    for (size_t i = 0; i < rc->n_trusted_proxies; i++)
        if (arc_config_cidr_contains(&rc->trusted_proxies[i], sa))
            return true;
    return false;
}

/* The values of every field `name` (lower case), in order, into v[] (at
 * most cap); returns how many. */
static size_t values(const struct arc_req *q, const char *name, struct arc_str *v, size_t cap)
{
    size_t n = 0, nl = strlen(name);
    for (size_t i = 0; i < q->n_hdrs && n < cap; i++)
        if (arc_str_ieq(q->hdrs[i].name, name, nl))
            v[n++] = q->hdrs[i].value;
    return n;
}

/* Fields of one name looked at (more are ignored: the nearest hops of
 * X-Forwarded-For come last, and a client sends one Cookie field). */
#define MAX_FIELDS 16

static struct arc_str field(const struct arc_req *q, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < q->n_hdrs; i++)
        if (arc_str_ieq(q->hdrs[i].name, name, n))
            return q->hdrs[i].value;
    return (struct arc_str){ "", 0 };
}

static uint64_t key_hash(struct arc_exchange *ex, const struct arc_rate_limit_conf *lc)
{
    const struct arc_route_conf *rc = ex->route->conf;
    uint8_t kb[ARC_RL_KEY_ADDR];
    struct arc_str s, v[MAX_FIELDS];
    switch ((enum arc_rl_key_by)lc->key_by) {
    case ARC_RL_BY_CLIENT_IP: {
        const struct sockaddr *sa = arc_px__peer_addr(ex->client);
        if (!sa)
            return arc_rl_hash("?", 1);
        struct sockaddr_storage ss;
        if (rc->n_trusted_proxies && trusted(rc, sa)) {
            memcpy(&ss, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                     : sizeof(struct sockaddr_in6));
            /* (the last MAX_FIELDS fields: the nearest hops) */
            size_t n = 0, first = 0;
            for (size_t i = 0; i < ex->req.n_hdrs; i++)
                n += arc_str_ieq(ex->req.hdrs[i].name, "x-forwarded-for", 15);
            if (n > MAX_FIELDS)
                first = n - MAX_FIELDS;
            n = 0;
            for (size_t i = 0, k = 0; i < ex->req.n_hdrs; i++)
                if (arc_str_ieq(ex->req.hdrs[i].name, "x-forwarded-for", 15) && k++ >= first)
                    v[n++] = ex->req.hdrs[i].value;
            arc_rl_xff_client(v, n, trusted, rc, &ss);
            sa = (const struct sockaddr *)&ss;
        }
        return arc_rl_hash(kb, arc_rl_key_addr(sa, lc->ipv6_prefix, kb));
    }
    case ARC_RL_BY_HEADER:
        s = field(&ex->req, lc->key_name);
        return arc_rl_hash(s.p, s.len);
    case ARC_RL_BY_COOKIE:
        s = arc_rl_cookie(v, values(&ex->req, "cookie", v, MAX_FIELDS), lc->key_name);
        return arc_rl_hash(s.p ? s.p : "", s.len);
    case ARC_RL_BY_CLIENT_CERT: {
        const char *subj = ex->client->tls ? arc_tls_conn_peer_subject(ex->client->tls) : NULL;
        return subj ? arc_rl_hash(subj, strlen(subj)) : arc_rl_hash("", 0);
    }
    case ARC_RL_BY_ROUTE:
        break;
    }
    return arc_rl_hash("route", 5);
}

/* ------------------------------------------------------------ fields */

static uint64_t ceil_s(uint64_t ns)
{
    return (ns + 999999999ull) / 1000000000ull;
}

/* Quota and window of the RateLimit-Policy field. */
static void policy(const struct arc_rate_limit_conf *lc, uint64_t *q, uint64_t *wsec)
{
    if (lc->algorithm == ARC_RL_FIXED_WINDOW || lc->algorithm == ARC_RL_SLIDING_WINDOW) {
        *wsec = lc->window / 1000;
        *q = (uint64_t)floor(lc->qps * (double)lc->window / 1000.0 + 0.5);
        return;
    }
    *wsec = lc->qps >= 1 ? 1 : (uint64_t)ceil(1.0 / lc->qps);
    *q = (uint64_t)floor(lc->qps * (double)*wsec + 0.5);
}

static struct arc_str arena_printf(struct arc_exchange *ex, bool *ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct arc_str arena_printf(struct arc_exchange *ex, bool *ok, const char *fmt, ...)
{
    char buf[192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        *ok = false;
        return (struct arc_str){ "", 0 };
    }
    return arc_px__ex_dup(ex, (struct arc_str){ buf, (size_t)n }, ok);
}

size_t arc_px__limit_fields(struct arc_exchange *ex, struct arc_hdr *out)
{
    const struct limit_note *nt = ex->limit;
    if (!nt || nt->blocked || !ex->route || !ex->route->conf->rate_limit)
        return 0;
    const struct arc_rate_limit_conf *lc = ex->route->conf->rate_limit;
    if (lc->headers == ARC_RL_HEADERS_NONE ||
        (lc->headers == ARC_RL_HEADERS_REJECTED && !nt->rejected))
        return 0;
    uint64_t q, wsec;
    policy(lc, &q, &wsec);
    uint64_t r = nt->rejected ? 0 : nt->d.remaining;
    uint64_t t = ceil_s(nt->rejected ? nt->d.retry_ns : nt->d.reset_ns);
    if (nt->rejected && t == 0)
        t = 1;
    const char *name = ex->route->conf->name;
    bool ok = true;
    size_t n = 0;
    out[n++] = (struct arc_hdr){ ARC_STR_LIT("RateLimit-Policy"),
                                 arena_printf(ex, &ok, "\"%s\";q=%llu;w=%llu", name,
                                              (unsigned long long)q, (unsigned long long)wsec) };
    out[n++] = (struct arc_hdr){ ARC_STR_LIT("RateLimit"),
                                 arena_printf(ex, &ok, "\"%s\";r=%llu;t=%llu", name,
                                              (unsigned long long)r, (unsigned long long)t) };
    if (lc->legacy_headers) {
        out[n++] = (struct arc_hdr){ ARC_STR_LIT("X-RateLimit-Limit"),
                                     arena_printf(ex, &ok, "%llu", (unsigned long long)q) };
        out[n++] = (struct arc_hdr){ ARC_STR_LIT("X-RateLimit-Remaining"),
                                     arena_printf(ex, &ok, "%llu", (unsigned long long)r) };
        out[n++] = (struct arc_hdr){ ARC_STR_LIT("X-RateLimit-Reset"),
                                     arena_printf(ex, &ok, "%llu", (unsigned long long)t) };
    }
    return ok ? n : 0;
}

/* ------------------------------------------------------------ decisions */

static void count(struct arc_worker *w, const struct arc_exchange *ex, enum arc_m_limit what)
{
    arc_m_add(arc_m_cell(&w->metrics.limits, ex->route->id, what), 1);
}

static void reject(struct arc_worker *w, struct arc_exchange *ex, struct limit_note *nt)
{
    const struct arc_rate_limit_conf *lc = ex->route->conf->rate_limit;
    nt->rejected = true;
    struct arc_hdr h[2 + ARC_PX_LIMIT_FIELDS];
    size_t n = 0;
    bool ok = true;
    h[n++] = (struct arc_hdr){ ARC_STR_LIT("Content-Type"),
                               ARC_STR_LIT("text/plain; charset=utf-8") };
    uint64_t ra = ceil_s(nt->d.retry_ns);
    h[n++] = (struct arc_hdr){ ARC_STR_LIT("Retry-After"),
                               arena_printf(ex, &ok, "%llu", (unsigned long long)(ra ? ra : 1)) };
    n += arc_px__limit_fields(ex, h + n);
    char body[96];
    int bl = snprintf(body, sizeof(body), "%d %s\n", lc->status, arc_h1_reason(lc->status));
    arc_px__ex_respond(w, ex, lc->status, h, ok ? n : 1, body, (size_t)bl);
}

static void on_wake(struct arc_worker *w, struct arc_exchange *ex)
{
    arc_px__pipeline_action(w, ex);
}

/* The client left while its request waited: its place in the queue goes
 * back, so the next request does not wait for a ghost. */
static void on_cancel(struct arc_worker *w, struct arc_exchange *ex)
{
    (void)w;
    arc_rl_refund(ex->route->limit, ex->wait.arg, mono_ns());
}

bool arc_px__limit(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_route_rt *r = ex->route;
    const struct arc_rate_limit_conf *lc = r->conf->rate_limit;
    uint64_t h = key_hash(ex, lc);
    uint64_t now = mono_ns();
    struct limit_note *nt = arc_arena_alloc(&ex->arena, sizeof(*nt));
    struct arc_rl_decision dd, *d = nt ? &nt->d : &dd;
    arc_rl_charge(r->limit, h, now, d);
    if (nt) {
        nt->rejected = nt->blocked = false;
        ex->limit = nt;
    }
    switch (d->verdict) {
    case ARC_RL_ALLOW:
        count(w, ex, ARC_MRL_ALLOWED);
        return true;
    case ARC_RL_DELAY:
        count(w, ex, ARC_MRL_DELAYED);
        arc_px__ex_wait(w, ex, (now + d->delay_ns + 999999) / 1000000, on_wake, on_cancel, h);
        return false;
    case ARC_RL_REJECT:
        break;
    }
    count(w, ex, ARC_MRL_REJECTED);
    if (!nt) {
        arc_px__ex_error(w, ex, lc->status, ARC_ERR_BAD_REQUEST);
        return false;
    }
    reject(w, ex, nt);
    return false;
}

/* ------------------------------------------------------------ heavy hitters, access log */

void arc_px__hh_reject(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_heavy_hitters_conf *c = &ex->snap->cfg->heavy_hitters;
    struct limit_note *nt = arc_arena_alloc(&ex->arena, sizeof(*nt));
    if (nt) {
        memset(nt, 0, sizeof(*nt));
        nt->blocked = true;
        nt->rejected = true;
        nt->hh_quota = c->threshold_qps < 4e9 ? (uint32_t)c->threshold_qps : UINT32_MAX;
        ex->limit = nt;
    }
    arc_m_add(&w->metrics.hh_rejected, 1);
    if (c->close && ex->req.version < 20 && ex->client->kind == CONN_CLIENT)
        ex->client->c.keep_alive = false;
    /* (the sketch is read once a second: a second is the soonest it can change) */
    struct arc_hdr h[2] = {
        { ARC_STR_LIT("Content-Type"), ARC_STR_LIT("text/plain; charset=utf-8") },
        { ARC_STR_LIT("Retry-After"), ARC_STR_LIT("1") },
    };
    char body[96];
    int bl = snprintf(body, sizeof(body), "%d %s\n", c->status, arc_h1_reason(c->status));
    arc_px__ex_respond(w, ex, c->status, h, 2, body, (size_t)bl);
}

unsigned arc_px__limit_log(const struct arc_exchange *ex, uint32_t *quota, uint32_t *window_s)
{
    const struct limit_note *nt = ex->limit;
    *quota = *window_s = 0;
    if (!nt)
        return ARC_ALOG_RL_NONE;
    if (nt->blocked) {
        *quota = nt->hh_quota;
        *window_s = 1;
        return ARC_ALOG_RL_BLOCKED;
    }
    if (!ex->route || !ex->route->conf->rate_limit)
        return ARC_ALOG_RL_NONE;
    uint64_t q, wsec;
    policy(ex->route->conf->rate_limit, &q, &wsec);
    *quota = q < UINT32_MAX ? (uint32_t)q : UINT32_MAX;
    *window_s = wsec < UINT32_MAX ? (uint32_t)wsec : UINT32_MAX;
    switch (nt->d.verdict) {
    case ARC_RL_ALLOW:
        return ARC_ALOG_RL_ALLOWED;
    case ARC_RL_DELAY:
        return ARC_ALOG_RL_DELAYED;
    case ARC_RL_REJECT:
        break;
    }
    return ARC_ALOG_RL_REJECTED;
}
