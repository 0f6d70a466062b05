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
 * heavy_hitters.action: limit (arc_px__hh_limit): a request whose client
 * is in a listed prefix is first charged to heavy_hitters.limit in the
 * snapshot's table under that prefix (the widest listed one it is in), and
 * answered like a route's rejection when over it (policy "heavy_hitters").
 * A route limit decided afterwards replaces the note (fields, log).
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
#include "limit/redis.h"

#include <openssl/sha.h>

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct limit_note {
    struct arc_rl_decision d;
    bool rejected;
    bool blocked;               /* a heavy hitter's request (arc_px__hh_reject) */
    bool hh;                    /* d is heavy_hitters.limit's decision (arc_px__hh_limit) */
    uint8_t gl;                 /* global tier: what a waiter was told (GLW_*) */
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

/* The bytes a request is counted under (kb: room for an address). */
static struct arc_str key_bytes(struct arc_exchange *ex, const struct arc_rate_limit_conf *lc,
                                uint8_t kb[ARC_RL_KEY_ADDR])
{
    const struct arc_route_conf *rc = ex->route->conf;
    struct arc_str s, v[MAX_FIELDS];
    switch ((enum arc_rl_key_by)lc->key_by) {
    case ARC_RL_BY_CLIENT_IP: {
        const struct sockaddr *sa = arc_px__peer_addr(ex->client);
        if (!sa)
            return (struct arc_str){ "?", 1 };
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
        return (struct arc_str){ (const char *)kb, arc_rl_key_addr(sa, lc->ipv6_prefix, kb) };
    }
    case ARC_RL_BY_HEADER:
        return field(&ex->req, lc->key_name);
    case ARC_RL_BY_COOKIE:
        s = arc_rl_cookie(v, values(&ex->req, "cookie", v, MAX_FIELDS), lc->key_name);
        return s.p ? s : (struct arc_str){ "", 0 };
    case ARC_RL_BY_CLIENT_CERT: {
        const char *subj = ex->client->tls ? arc_tls_conn_peer_subject(ex->client->tls) : NULL;
        return subj ? (struct arc_str){ subj, strlen(subj) } : (struct arc_str){ "", 0 };
    }
    case ARC_RL_BY_ROUTE:
        break;
    }
    return (struct arc_str){ "route", 5 };
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

static struct arc_str arena_u64(struct arc_exchange *ex, bool *ok, uint64_t v)
{
    char buf[20];
    return arc_px__ex_dup(ex, (struct arc_str){ buf, (size_t)(arc_put_u64(buf, v) - buf) }, ok);
}

/* A structured-field item with two parameters: "NAME";A=a;B=b. */
static struct arc_str arena_item(struct arc_exchange *ex, bool *ok, const char *name,
                                 char ka, uint64_t a, char kb, uint64_t b)
{
    char buf[192];
    size_t nl = strlen(name);
    if (nl > sizeof(buf) - 2 * 22 - 2) {
        *ok = false;
        return (struct arc_str){ "", 0 };
    }
    char *w = buf;
    *w++ = '"';
    memcpy(w, name, nl);
    w += nl;
    *w++ = '"';
    *w++ = ';';
    *w++ = ka;
    *w++ = '=';
    w = arc_put_u64(w, a);
    *w++ = ';';
    *w++ = kb;
    *w++ = '=';
    w = arc_put_u64(w, b);
    return arc_px__ex_dup(ex, (struct arc_str){ buf, (size_t)(w - buf) }, ok);
}

/* The limit a note's decision is of and its policy name: the route's, or
 * heavy_hitters.limit ("heavy_hitters"); NULL: none. */
static const struct arc_rate_limit_conf *note_conf(const struct arc_exchange *ex,
                                                   const struct limit_note *nt,
                                                   const char **name)
{
    if (nt->hh) {
        *name = "heavy_hitters";
        return &ex->snap->cfg->heavy_hitters.limit;
    }
    if (nt->blocked || !ex->route || !ex->route->conf->rate_limit)
        return NULL;
    *name = ex->route->conf->name;
    return ex->route->conf->rate_limit;
}

size_t arc_px__limit_fields(struct arc_exchange *ex, struct arc_hdr *out)
{
    const struct limit_note *nt = ex->limit;
    const char *name = NULL;
    const struct arc_rate_limit_conf *lc = nt ? note_conf(ex, nt, &name) : NULL;
    if (!lc)
        return 0;
    if (lc->headers == ARC_RL_HEADERS_NONE ||
        (lc->headers == ARC_RL_HEADERS_REJECTED && !nt->rejected))
        return 0;
    uint64_t q, wsec;
    policy(lc, &q, &wsec);
    uint64_t r = nt->rejected ? 0 : nt->d.remaining;
    uint64_t t = ceil_s(nt->rejected ? nt->d.retry_ns : nt->d.reset_ns);
    if (nt->rejected && t == 0)
        t = 1;
    bool ok = true;
    size_t n = 0;
    out[n++] = (struct arc_hdr){ ARC_STR_LIT("RateLimit-Policy"),
                                 arena_item(ex, &ok, name, 'q', q, 'w', wsec) };
    out[n++] = (struct arc_hdr){ ARC_STR_LIT("RateLimit"), arena_item(ex, &ok, name, 'r', r, 't', t) };
    if (lc->legacy_headers) {
        out[n++] = (struct arc_hdr){ ARC_STR_LIT("X-RateLimit-Limit"), arena_u64(ex, &ok, q) };
        out[n++] = (struct arc_hdr){ ARC_STR_LIT("X-RateLimit-Remaining"), arena_u64(ex, &ok, r) };
        out[n++] = (struct arc_hdr){ ARC_STR_LIT("X-RateLimit-Reset"), arena_u64(ex, &ok, t) };
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
    const char *name;
    const struct arc_rate_limit_conf *lc = note_conf(ex, nt, &name);
    nt->rejected = true;
    struct arc_hdr h[2 + ARC_PX_LIMIT_FIELDS];
    size_t n = 0;
    bool ok = true;
    h[n++] = (struct arc_hdr){ ARC_STR_LIT("Content-Type"),
                               ARC_STR_LIT("text/plain; charset=utf-8") };
    uint64_t ra = ceil_s(nt->d.retry_ns);
    h[n++] = (struct arc_hdr){ ARC_STR_LIT("Retry-After"),
                               arena_u64(ex, &ok, ra ? ra : 1) };
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

static bool global_limit(struct arc_worker *w, struct arc_exchange *ex, struct limit_note *nt,
                         struct arc_str key);

bool arc_px__limit(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_route_rt *r = ex->route;
    const struct arc_rate_limit_conf *lc = r->conf->rate_limit;
    uint8_t kb[ARC_RL_KEY_ADDR];
    struct arc_str key = key_bytes(ex, lc, kb);
    uint64_t now = mono_ns();
    struct limit_note *nt = arc_arena_alloc(&ex->arena, sizeof(*nt));
    if (nt) {
        memset(nt, 0, sizeof(*nt));
        ex->limit = nt;
    }
    if (lc->global && nt && w->gl)
        return global_limit(w, ex, nt, key);
    uint64_t h = arc_rl_hash(key.p, key.len);
    struct arc_rl_decision dd, *d = nt ? &nt->d : &dd;
    arc_rl_charge(r->limit, h, now, d);
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

bool arc_px__hh_limit(struct arc_worker *w, struct arc_exchange *ex, uint64_t key)
{
    struct arc_rl_table *t = ex->snap->hh_limit;
    if (!t)
        return true;                    /* (a worker's list from before a reload) */
    const struct arc_heavy_hitters_conf *c = &ex->snap->cfg->heavy_hitters;
    struct limit_note *nt = arc_arena_alloc(&ex->arena, sizeof(*nt));
    if (nt) {
        memset(nt, 0, sizeof(*nt));
        nt->hh = true;
        ex->limit = nt;
    }
    struct arc_rl_decision dd, *d = nt ? &nt->d : &dd;
    arc_rl_charge(t, key, mono_ns(), d);
    if (d->verdict != ARC_RL_REJECT) {  /* (no leaky_bucket here: never DELAY) */
        arc_m_add(&w->metrics.hh_limited[0], 1);
        return true;
    }
    arc_m_add(&w->metrics.hh_limited[1], 1);
    if (c->close && ex->req.version < 20 && ex->client->kind == CONN_CLIENT)
        ex->client->c.keep_alive = false;
    if (!nt) {
        arc_px__ex_error(w, ex, c->status, ARC_ERR_BAD_REQUEST);
        return false;
    }
    reject(w, ex, nt);
    return false;
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
    const char *name;
    const struct arc_rate_limit_conf *lc = note_conf(ex, nt, &name);
    if (!lc)
        return ARC_ALOG_RL_NONE;
    uint64_t q, wsec;
    policy(lc, &q, &wsec);
    *quota = q < UINT32_MAX ? (uint32_t)q : UINT32_MAX;
    *window_s = wsec < UINT32_MAX ? (uint32_t)wsec : UINT32_MAX;
    if (nt->hh)
        return nt->d.verdict == ARC_RL_REJECT ? ARC_ALOG_RL_HH_REJECTED : ARC_ALOG_RL_HH_ALLOWED;
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

/* ------------------------------------------------------------ global tier (worker side)
 *
 * scope: global limits spend tokens leased from Redis (glimit.c talks to
 * it; limit/redis.h has the lease rules). Each worker keeps its leases in
 * a table of its own (GL_SLOTS entries, by route and key; an entry with no
 * refill in flight and no waiter may be replaced, the least recently used
 * first; its unspent tokens are lost to the global budget, which errs on
 * the strict side). A request that finds no token while a refill is in
 * flight waits (EX_WAITING) for the reply; the Redis thread answers every
 * call within redis.timeout, "failed" if Redis did not, and the wait's own
 * deadline is a backstop. Redis down, slow or the circuit open: the
 * fallback decides at once (fail_open; fail_closed; local_share: the
 * route's local table at qps / nodes).
 */

#define GL_SLOTS 4096
#define GL_PROBE 8

struct gl_entry {
    uint64_t h;                         /* 0 = free */
    uint32_t route, gen;
    uint32_t waiters;
    struct arc_rl_lease lease;
    uint64_t used_ns;
    uint64_t asked_ns;                  /* when the refill in flight was asked */
};

struct gl_waiter {
    struct arc_exchange *ex;
    uint32_t slot;
};

struct arc_px_gl {
    struct gl_entry e[GL_SLOTS];
    struct gl_waiter *wt;               /* in arrival order */
    size_t n_wt, cap_wt;
    uint64_t evbuf;                     /* the eventfd read's target */
    int efd;
};

/* limit_note.gl: what a waiter was told */
enum { GLW_WAITING, GLW_ALLOW, GLW_REJECT, GLW_FALLBACK };

int arc_px__gl_worker_init(struct arc_worker *w)
{
    if (!arc_px__gl_enabled() || w->gl)
        return 0;
    w->gl = calloc(1, sizeof(*w->gl));
    if (!w->gl)
        return -1;
    w->gl->efd = arc_px__gl_efd(w->id);
    return 0;
}

void arc_px__gl_worker_dispose(struct arc_worker *w)
{
    if (!w->gl)
        return;
    free(w->gl->wt);
    free(w->gl);
    w->gl = NULL;
}

void arc_px__gl_arm(struct arc_worker *w)
{
    if (!w->gl || w->gl->efd < 0)
        return;
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_read(sqe, w->gl->efd, &w->gl->evbuf, sizeof(w->gl->evbuf), 0);
    io_uring_sqe_set_data64(sqe, op_ud(OP_GLWAKE, 0, 0));
}

static struct gl_entry *gl_find(struct arc_px_gl *g, uint32_t route, uint64_t h, uint64_t now,
                                uint32_t *slot)
{
    struct gl_entry *victim = NULL;
    for (uint32_t i = 0; i < GL_PROBE; i++) {
        uint32_t k = (uint32_t)(h + i) & (GL_SLOTS - 1);
        struct gl_entry *e = &g->e[k];
        if (e->h == h && e->route == route) {
            *slot = k;
            e->used_ns = now;
            return e;
        }
        if (!e->h || (!e->lease.pending && !e->waiters &&
                      (!victim || !victim->h || (e->h && e->used_ns < victim->used_ns)))) {
            if (!victim || victim->h)
                victim = e;
        }
    }
    if (!victim)
        return NULL;                    /* every candidate busy: the fallback decides */
    uint32_t gen = victim->gen + 1;
    *victim = (struct gl_entry){ .h = h, .route = route, .gen = gen, .used_ns = now };
    *slot = (uint32_t)(victim - g->e);
    return victim;
}

/* The fallback's decision for ex; true: go on (allowed), false: answered. */
static bool gl_fallback(struct arc_worker *w, struct arc_exchange *ex, struct limit_note *nt)
{
    const struct arc_rl_global_conf *gc = arc_px__gl_conf();
    arc_m_add(&w->metrics.gl_fallback, 1);
    switch ((enum arc_rl_fallback)gc->fallback) {
    case ARC_RL_FB_FAIL_OPEN:
        nt->d = (struct arc_rl_decision){ .verdict = ARC_RL_ALLOW };
        break;
    case ARC_RL_FB_FAIL_CLOSED:
        nt->d = (struct arc_rl_decision){ .verdict = ARC_RL_REJECT, .retry_ns = ARC_RL_NS };
        break;
    case ARC_RL_FB_LOCAL_SHARE: {
        uint8_t kb[ARC_RL_KEY_ADDR];
        struct arc_str key = key_bytes(ex, ex->route->conf->rate_limit, kb);
        arc_rl_charge(ex->route->limit, arc_rl_hash(key.p, key.len), mono_ns(), &nt->d);
        break;
    }
    }
    if (nt->d.verdict == ARC_RL_ALLOW) {
        count(w, ex, ARC_MRL_ALLOWED);
        return true;
    }
    count(w, ex, ARC_MRL_REJECTED);
    reject(w, ex, nt);
    return false;
}

static void gl_allow(struct limit_note *nt, const struct gl_entry *e)
{
    nt->d = (struct arc_rl_decision){ .verdict = ARC_RL_ALLOW, .remaining = e->lease.tokens };
}

static void gl_reject_note(struct limit_note *nt, const struct gl_entry *e, uint64_t now)
{
    nt->d = (struct arc_rl_decision){
        .verdict = ARC_RL_REJECT,
        .retry_ns = e->lease.retry_at_ns > now ? e->lease.retry_at_ns - now : 1,
    };
}

static void gl_ask(struct arc_worker *w, struct arc_exchange *ex, struct gl_entry *e,
                   uint32_t slot, uint32_t want)
{
    const struct arc_rate_limit_conf *lc = ex->route->conf->rate_limit;
    struct arc_gl_req r = { .slot = slot, .gen = e->gen, .want = want, .burst = lc->burst,
                            .qps = lc->qps };
    /* the key Redis holds: "arc:rl:<route>:<key bytes in hex, or their SHA-256>" */
    uint8_t kb[ARC_RL_KEY_ADDR];
    struct arc_str key = key_bytes(ex, lc, kb);
    unsigned char md[32];
    const unsigned char *kp = (const unsigned char *)key.p;
    size_t kl = key.len;
    if (kl > 32) {
        SHA256(kp, kl, md);
        kp = md;
        kl = 32;
    }
    int n = snprintf(r.key, sizeof(r.key), "arc:rl:%.100s:", ex->route->conf->name);
    for (size_t i = 0; i < kl && n + 3 < (int)sizeof(r.key); i++)
        n += snprintf(r.key + n, sizeof(r.key) - (size_t)n, "%02x", kp[i]);
    r.klen = (uint16_t)n;
    e->asked_ns = mono_ns();
    if (!arc_px__gl_post(w->id, &r))
        arc_rl_lease_failed(&e->lease);
}

static void gl_on_cancel(struct arc_worker *w, struct arc_exchange *ex)
{
    struct arc_px_gl *g = w->gl;
    for (size_t i = 0; i < g->n_wt; i++)
        if (g->wt[i].ex == ex) {
            g->e[g->wt[i].slot].waiters--;
            memmove(&g->wt[i], &g->wt[i + 1], (g->n_wt - i - 1) * sizeof(*g->wt));
            g->n_wt--;
            return;
        }
}

static void gl_on_wake(struct arc_worker *w, struct arc_exchange *ex)
{
    struct limit_note *nt = ex->limit;
    if (ex->wait.timed_out || nt->gl == GLW_WAITING) {
        gl_on_cancel(w, ex);            /* (the backstop deadline passed first) */
        if (gl_fallback(w, ex, nt))
            arc_px__pipeline_action(w, ex);
        return;
    }
    switch (nt->gl) {
    case GLW_ALLOW:
        count(w, ex, ARC_MRL_ALLOWED);
        arc_px__pipeline_action(w, ex);
        return;
    case GLW_REJECT:
        count(w, ex, ARC_MRL_REJECTED);
        reject(w, ex, nt);
        return;
    default:
        if (gl_fallback(w, ex, nt))
            arc_px__pipeline_action(w, ex);
        return;
    }
}

static bool global_limit(struct arc_worker *w, struct arc_exchange *ex, struct limit_note *nt,
                         struct arc_str key)
{
    struct arc_px_gl *g = w->gl;
    const struct arc_rl_global_conf *gc = arc_px__gl_conf();
    uint64_t now = mono_ns();
    uint32_t slot;
    struct gl_entry *e;
    if (!arc_px__gl_ready() ||
        !(e = gl_find(g, ex->route->id, arc_rl_hash(key.p, key.len) | 1, now, &slot)))
        return gl_fallback(w, ex, nt);
    /* (a reply that never came — the thread answers every call within
     * timeout, so this is a lost one: forget it; a late one is ignored) */
    if (e->lease.pending && now - e->asked_ns > (gc->timeout + 1000) * 1000000ull) {
        arc_rl_lease_failed(&e->lease);
        e->gen++;
    }
    uint32_t ask = 0;
    enum arc_rl_lease_verdict v = arc_rl_lease_take(&e->lease, gc->lease, now, &ask);
    if (ask)
        gl_ask(w, ex, e, slot, ask);
    switch (v) {
    case ARC_LEASE_SPEND:
        gl_allow(nt, e);
        count(w, ex, ARC_MRL_ALLOWED);
        return true;
    case ARC_LEASE_REJECT:
        gl_reject_note(nt, e, now);
        count(w, ex, ARC_MRL_REJECTED);
        reject(w, ex, nt);
        return false;
    case ARC_LEASE_WAIT:
        break;
    }
    if (!e->lease.pending)                          /* (the ask could not be posted) */
        return gl_fallback(w, ex, nt);
    if (g->n_wt == g->cap_wt) {
        size_t cap = g->cap_wt ? 2 * g->cap_wt : 64;
        struct gl_waiter *wt = realloc(g->wt, cap * sizeof(*wt));
        if (!wt)
            return gl_fallback(w, ex, nt);
        g->wt = wt;
        g->cap_wt = cap;
    }
    g->wt[g->n_wt++] = (struct gl_waiter){ ex, slot };
    e->waiters++;
    nt->gl = GLW_WAITING;
    arc_m_add(&w->metrics.gl_waits, 1);
    arc_px__ex_wait(w, ex, now / 1000000 + gc->timeout + 1, gl_on_wake, gl_on_cancel, slot);
    return false;
}

/* The replies for one entry are in: its waiters, in arrival order, spend
 * the new tokens, are rejected, or keep waiting for the next refill. */
static void gl_settle(struct arc_worker *w, uint32_t slot, bool ok, uint64_t now)
{
    struct arc_px_gl *g = w->gl;
    struct gl_entry *e = &g->e[slot];
    const struct arc_rl_global_conf *gc = arc_px__gl_conf();
    /* One waiter at a time, the list searched again after each wake: a
     * wake runs the pipeline on, which may end other exchanges (and take
     * them off the list). */
    for (;;) {
        size_t i = 0;
        while (i < g->n_wt && g->wt[i].slot != slot)
            i++;
        if (i == g->n_wt)
            return;
        struct arc_exchange *ex = g->wt[i].ex;
        struct limit_note *nt = ex->limit;
        if (!ok) {
            nt->gl = GLW_FALLBACK;
        } else {
            uint32_t ask = 0;
            enum arc_rl_lease_verdict v = arc_rl_lease_take(&e->lease, gc->lease, now, &ask);
            if (ask)
                gl_ask(w, ex, e, slot, ask);
            if (v == ARC_LEASE_WAIT) {
                if (e->lease.pending)
                    return;             /* (the rest wait for the next refill, in order) */
                nt->gl = GLW_FALLBACK;
            } else if (v == ARC_LEASE_SPEND) {
                gl_allow(nt, e);
                nt->gl = GLW_ALLOW;
            } else {
                gl_reject_note(nt, e, now);
                nt->gl = GLW_REJECT;
            }
        }
        memmove(&g->wt[i], &g->wt[i + 1], (g->n_wt - i - 1) * sizeof(*g->wt));
        g->n_wt--;
        e->waiters--;
        arc_px__ex_wake(w, ex);
    }
}

void arc_px__gl_on_event(struct arc_worker *w, int res)
{
    (void)res;
    if (!w->gl)
        return;
    struct arc_gl_rep rep[128];
    size_t n;
    uint64_t now = mono_ns();
    while ((n = arc_px__gl_replies(w->id, rep, 128)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (rep[i].slot >= GL_SLOTS)
                continue;
            struct gl_entry *e = &w->gl->e[rep[i].slot];
            if (e->gen != rep[i].gen || !e->h)
                continue;               /* (the entry was replaced since) */
            if (rep[i].ok)
                arc_rl_lease_granted(&e->lease, rep[i].granted, rep[i].retry_us, now);
            else
                arc_rl_lease_failed(&e->lease);
            gl_settle(w, rep[i].slot, rep[i].ok, now);
        }
    }
    if (!w->stopping)
        arc_px__gl_arm(w);
}
