/*
 * proxy_http_call: a filter's request to a configured upstream, run as an
 * internal exchange on the worker's loop through the data plane's own
 * upstream path (load balancing, pools, HTTP/1 and HTTP/2 client codecs,
 * timeouts), with a client side of its own (this file's codec) that
 * collects the answer instead of sending it anywhere.
 *
 *   arc_px__callout (from inside a guest call) ─▶ internal exchange,
 *       deadline = the call's timeout ─▶ arc_px__up_start
 *   head / body / trailers ─▶ copied into the callout (body bounded)
 *   the exchange ends (complete, or an error answered through `respond`:
 *       no endpoint, connect failure, timeout…) ─▶ timer at 0
 *   timer (the worker's next turn, outside any guest call) ─▶
 *       arc_pl_http_call_done (proxy_on_http_call_response) ─▶ freed
 *
 * A call from a root context (arc_px__callout_root: proxy_on_tick,
 * proxy_on_queue_ready…) has no calling exchange: it runs on the snapshot
 * the worker gave the plugin set in arc_plugin_ticks_start, and its answer
 * goes to the root context (plugin/calls.c drops it if the instance was
 * rebuilt or the worker took another snapshot meanwhile).
 *
 * The internal exchange pins the caller's snapshot (the plugin instance
 * and the upstream live in it); the callout keeps its own pin until the
 * answer is delivered, so the instance it answers is never freed before.
 * It is neither logged nor counted as a client request; upstream and
 * endpoint metrics count it as usual. At
 * worker exit, calls not yet delivered are ended and freed
 * (arc_px__callouts_dispose).
 */
#include "proxy/proxy_int.h"
#include "plugin/plugin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>


struct callout {
    struct arc_conn fake;               /* ex->client: this file's codec */
    struct arc_route_conf rconf;        /* an empty route: no headers added, no retries */
    struct arc_route_rt route;
    struct arc_snapshot *snap;          /* pinned until delivered */
    struct arc_exchange *ex;            /* NULL once ended */
    struct arc_pl_caller who;
    struct arc_arena arena;             /* the answer's maps */
    struct arc_pl_hmap hdrs, trailers;
    char *body;
    size_t body_len, body_cap;
    uint64_t body_max;                  /* a longer answer body fails the call */
    bool got_head, failed;
    struct arc_timer timer;
    struct callout *next, *prev;        /* the worker's callouts not yet delivered */
};

/* Per worker thread: what arc_px__callouts_dispose frees at exit. */
static __thread struct callout *t_live;

static void unlink_co(struct callout *co)
{
    if (co->prev)
        co->prev->next = co->next;
    else
        t_live = co->next;
    if (co->next)
        co->next->prev = co->prev;
}

static void co_free(struct arc_worker *w, struct callout *co)
{
    unlink_co(co);
    arc_px__snap_unpin(w, co->snap);
    free(co->body);
    arc_arena_dispose(&co->arena);
    free(co);
}

static struct callout *of(const struct arc_exchange *ex)
{
    return arc_container_of(ex->client, struct callout, fake);
}

static void deliver(struct arc_timer *t, uint64_t now)
{
    (void)now;
    struct callout *co = arc_container_of(t, struct callout, timer);
    struct arc_worker *w = arc_px__worker();
    bool ok = co->got_head && !co->failed;
    const struct arc_pl_call_resp resp = {
        .ok = ok, .hdrs = ok ? &co->hdrs : NULL,
        .body = { co->body ? co->body : "", ok ? co->body_len : 0 },
        .trailers = ok && co->trailers.n ? &co->trailers : NULL,
    };
    arc_pl_http_call_done(&co->who, &resp);
    co_free(w, co);
}

void arc_px__callouts_dispose(struct arc_worker *w)
{
    /* Worker exit: calls still running are abandoned (not answered). */
    while (t_live) {
        struct callout *co = t_live;
        if (co->ex)
            arc_px__ex_end(w, co->ex, EXO_CLIENT_ABORT);    /* (co_ended arms the timer) */
        arc_tw_cancel(&w->tw, &co->timer);
        co_free(w, co);
    }
}

/* ------------------------------------------------------------ the codec */

static void co_input(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p,
                     size_t len)
{
    (void)w, (void)c, (void)bid, (void)p, (void)len;
}

/* Arc answered the call itself: an error (no endpoint, connect failure,
 * upstream timeout, the call's timeout). */
static void co_respond(struct arc_worker *w, struct arc_exchange *ex, int status,
                       const struct arc_hdr *hdrs, size_t n, const char *body, size_t body_len)
{
    (void)w, (void)status, (void)hdrs, (void)n, (void)body, (void)body_len;
    of(ex)->failed = true;
}

static void co_interim(struct arc_worker *w, struct arc_exchange *ex, const struct arc_resp *r)
{
    (void)w, (void)ex, (void)r;
}

static void co_head(struct arc_worker *w, struct arc_exchange *ex, const struct arc_resp *r)
{
    (void)w;
    struct callout *co = of(ex);
    ex->resp_passthrough = false;       /* bodies arrive decoded */
    ex->resp_started = true;
    ex->status = r->status;
    char st[4] = { (char)('0' + r->status / 100 % 10), (char)('0' + r->status / 10 % 10),
                   (char)('0' + r->status % 10), 0 };
    bool ok = r->status >= 200 && r->status <= 599 && r->status != 101 &&
              arc_pl_hmap_add(&co->hdrs, ARC_STR_LIT(":status"), (struct arc_str){ st, 3 });
    for (size_t i = 0; ok && i < r->n_hdrs; i++)
        ok = arc_pl_hmap_add(&co->hdrs, r->hdrs[i].name, r->hdrs[i].value);
    if (!ok)
        co->failed = true;
    co->got_head = true;
}

static void co_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid, const char *p,
                    size_t len, bool framed)
{
    (void)bid, (void)framed;
    struct callout *co = of(ex);
    if (co->failed || len == 0)
        return;
    if (co->body_len + len > co->body_max) {
        co->failed = true;
        arc_px__ex_cut(w, ex);          /* no use reading the rest */
        return;
    }
    if (co->body_len + len > co->body_cap) {
        size_t cap = co->body_cap ? co->body_cap : 4096;
        while (cap < co->body_len + len)
            cap *= 2;
        char *nb = realloc(co->body, cap);
        if (!nb) {
            co->failed = true;
            return;
        }
        co->body = nb;
        co->body_cap = cap;
    }
    memcpy(co->body + co->body_len, p, len);
    co->body_len += len;
}

static void co_trailers(struct arc_worker *w, struct arc_exchange *ex, const struct arc_hdr *h,
                        size_t n)
{
    (void)w;
    struct callout *co = of(ex);
    for (size_t i = 0; i < n; i++)
        if (!arc_pl_hmap_add(&co->trailers, h[i].name, h[i].value))
            co->failed = true;
}

static void co_raw(struct arc_worker *w, struct arc_exchange *ex, int32_t bid, const char *p,
                   size_t len)
{
    (void)w, (void)bid, (void)p, (void)len;
    of(ex)->failed = true;
}

static void co_ended(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome o)
{
    struct callout *co = of(ex);
    if (o != EXO_COMPLETE)
        co->failed = true;
    co->ex = NULL;
    /* Delivered on the worker's next turn: never from inside the upstream
     * code that ended the exchange, nor inside a guest call. */
    arc_tw_schedule(&w->tw, &co->timer, 0);
}

static bool co_blocked(const struct arc_exchange *ex)
{
    (void)ex;
    return false;
}

static void co_resume(struct arc_worker *w, struct arc_exchange *ex)
{
    (void)w, (void)ex;
}

static void co_teardown(struct arc_worker *w, struct arc_conn *c)
{
    (void)w, (void)c;
}

static const struct arc_codec_vt callout_codec = {
    .name = "callout", .on_input = co_input, .respond = co_respond, .interim = co_interim,
    .send_head = co_head, .send_body = co_body, .trailers = co_trailers, .send_raw = co_raw,
    .ended = co_ended, .blocked = co_blocked, .resume = co_resume, .teardown = co_teardown,
};

/* The client side has no socket: nothing to flush or shut. */
static void tp_nop(struct arc_worker *w, struct arc_conn *c)
{
    (void)w, (void)c;
}

static const struct arc_transport_vt callout_tp = {
    .name = "callout", .flush = tp_nop, .shutdown = tp_nop, .dispose = tp_nop, .start = tp_nop,
};

/* ------------------------------------------------------------ dispatch */

static const struct arc_upstream_rt *upstream_named(const struct arc_snapshot *s,
                                                    struct arc_str name)
{
    for (size_t i = 0; i < s->n_ups; i++) {
        const char *n = s->ups[i].conf->name;
        if (strlen(n) == name.len && memcmp(n, name.p, name.len) == 0)
            return &s->ups[i];
    }
    return NULL;
}

enum { WR_OK = 0, WR_NOT_FOUND = 1, WR_BAD_ARGUMENT = 2, WR_INTERNAL = 10 };

/* A call on snapshot `snap` (the caller's: its upstream, its plugin set). */
static uint32_t callout_start(struct arc_snapshot *snap, uint32_t route_id,
                              const struct arc_pl_call_req *req, const struct arc_pl_caller *who)
{
    struct arc_worker *w = arc_px__worker();
    const struct arc_upstream_rt *up = upstream_named(snap, req->upstream);
    if (!up)
        return WR_NOT_FOUND;
    struct callout *co = calloc(1, sizeof(*co));
    if (!co)
        return WR_INTERNAL;
    arc_arena_init(&co->arena, 1024);
    co->hdrs = (struct arc_pl_hmap){ .arena = &co->arena };
    co->trailers = (struct arc_pl_hmap){ .arena = &co->arena };
    co->who = *who;
    co->body_max = req->max_body;
    arc_timer_init(&co->timer, deliver);
    co->fake.kind = CONN_CLIENT;
    co->fake.fd = -1;
    co->fake.tp = &callout_tp;
    co->fake.c.codec = &callout_codec;
    co->fake.c.peer_known = true;       /* (no peer: AF_UNSPEC) */
    co->fake.c.peer.sa.sa_family = AF_UNSPEC;
    co->rconf.name = "proxy_http_call";
    co->route = (struct arc_route_rt){ .conf = &co->rconf, .id = route_id,
                                       .up = (struct arc_upstream_rt *)up };
    co->snap = arc_px__snap_pin(w, snap);
    co->next = t_live;
    if (t_live)
        t_live->prev = co;
    t_live = co;
    struct arc_exchange *ex = arc_px__ex_new(w, &co->fake);
    if (!ex) {
        co_free(w, co);
        return WR_INTERNAL;
    }
    /* The caller's snapshot: the upstream named is its own. */
    arc_px__snap_unpin(w, ex->snap);
    ex->snap = arc_px__snap_pin(w, snap);
    ex->internal = true;
    ex->route = &co->route;
    ex->target = co->route.up;
    co->ex = ex;
    co->fake.c.ex = ex;
    struct arc_req *q = &ex->req;
    bool ok = true;
    const struct arc_pl_hmap *h = req->hdrs;
    size_t nf = 0;
    struct arc_hdr *f = arc_arena_alloc(&ex->arena, (h->n ? h->n : 1) * sizeof(*f));
    if (!f)
        ok = false;
    for (size_t i = 0; ok && i < h->n; i++) {
        struct arc_str n = h->v[i].name, v = arc_px__ex_dup(ex, h->v[i].value, &ok);
        if (arc_str_eq(n, ":method", 7))
            q->method = v;
        else if (arc_str_eq(n, ":path", 5))
            q->target = v;
        else if (arc_str_eq(n, ":authority", 10))
            q->authority = v;
        else if (arc_str_eq(n, ":scheme", 7))
            q->scheme = v;
        else if (n.len && n.p[0] != ':')
            f[nf++] = (struct arc_hdr){ arc_px__ex_dup(ex, n, &ok), v };
    }
    if (!q->scheme.len)
        q->scheme = ARC_STR_LIT("http");
    const char *qm = memchr(q->target.p, '?', q->target.len);
    size_t plen = qm ? (size_t)(qm - q->target.p) : q->target.len;
    q->path = (struct arc_str){ q->target.p, plen };
    q->query = qm ? (struct arc_str){ qm + 1, q->target.len - plen - 1 } : (struct arc_str){ "", 0 };
    q->version = 11;
    q->keep_alive = true;
    /* A body (copied as it is queued): its Content-Length on HTTP/1, DATA
     * frames on HTTP/2. */
    q->body = req->body.len ? ARC_H1_BODY_LENGTH : ARC_H1_BODY_NONE;
    q->content_length = req->body.len;
    ex->req_done = !req->body.len;
    if (!ok || !q->target.len || q->target.p[0] != '/' || !arc_px__ex_take_fields(ex, f, nf)) {
        /* (answered through co_respond: the filter hears of the failure) */
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return WR_OK;
    }
    if (req->timeout_ms)
        arc_tw_schedule(&w->tw, &ex->deadline, w->now_ms + req->timeout_ms);
    arc_px__up_start(w, ex);
    if (req->body.len && co->ex == ex) {
        /* (the attempt started as for a body still to come: an HTTP/2
         * stream would otherwise end at once) */
        arc_px__up_body_raw(w, ex, -1, req->body.p, req->body.len, false);
        arc_px__up_body_end_raw(w, ex, NULL, 0);
        ex->req_done = true;
        arc_px__up_kick(w, ex);
    }
    return WR_OK;
}

uint32_t arc_px__callout(void *owner, const struct arc_pl_call_req *req,
                         const struct arc_pl_caller *who)
{
    struct arc_exchange *parent = owner;
    return callout_start(parent->snap, parent->route->id, req, who);
}

uint32_t arc_px__callout_root(void *snap, const struct arc_pl_call_req *req,
                              const struct arc_pl_caller *who)
{
    return callout_start(snap, ARC_M_NO_ROUTE, req, who);
}
