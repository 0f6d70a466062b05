/*
 * Exchanges: one request/response, independent of the wire protocol.
 *
 *   (head parsed) ─arc_px__ex_new─▶ EX_ROUTING ──local answer (respond,
 *        │                            │          redirect, 404/405, error, 429)──▶ end
 *        │                            ├─a stage waits (arc_px__ex_wait)──▶ EX_WAITING
 *        │                            │     ──deadline or arc_px__ex_wake──▶ back to EX_ROUTING,
 *        │                            │       the stage's on_wake continues the pipeline
 *        │                            └─upstream─▶ EX_CONNECTING ──connected──▶ EX_UPSTREAM
 *        │                                             │  (pooled connection: straight to EX_UPSTREAM)
 *        │                                             └─connect failed──▶ 502/503 ──▶ end
 *        │   EX_UPSTREAM ──final response head──▶ EX_STREAMING ──response complete──▶ end
 *        │        │  └─stale pooled connection, nothing received──▶ replay (EX_CONNECTING)
 *        │   EX_CONNECTING / EX_UPSTREAM ──connect failure, reset, timeout or a retry status,
 *        │        nothing sent to the client, action.retry allows──▶ EX_CONNECTING with
 *        │        retry_wait (backoff timer) ──fires──▶ next attempt (upstream.c)
 *        │        └─upstream error/timeout before the head──▶ 502/504 ──▶ end
 *        │   EX_STREAMING ──upstream broke──▶ cut (truncated) ──▶ end
 *        │   EX_UPSTREAM ──101──▶ EX_TUNNEL ──both sides closed──▶ end
 *        └── any state ──client gone / client timeout──▶ end (aborted)
 *
 * EX_WAITING is generic: a pipeline stage (the rate limiter's leaky-bucket
 * delay today; plugins and the Redis tier later) suspends the exchange with
 * a deadline on the worker's timer wheel and a continuation. While it
 * waits, client input is held (HTTP/1: stashed and no longer read once
 * bytes pile up; HTTP/2: body bytes kept unacknowledged on the stream) and
 * fed upstream after it continues. If the exchange ends while waiting (the
 * client reset or closed it: an HTTP/1 EOF counts as leaving, since a
 * half-close cannot be told from a close; an HTTP/2 RST_STREAM or the
 * connection going away; worker stop), arc_px__ex_end cancels the timer
 * and calls the stage's on_cancel. A reload meanwhile changes nothing for
 * it: it continues on the snapshot it pinned.
 *
 * A plugin may also hold an exchange after its upstream finished (a
 * response head paused by a filter: EX_STREAMING ─arc_px__ex_end, deferred
 * by arc_px__plugins_finish─▶ EX_WAITING, detached from the upstream ─the
 * filter continues or answers─▶ arc_px__ex_end again), and the request-body
 * gate waits in EX_WAITING for one turn before the action (plugins.c).
 * While a filter holds an exchange (arc_px__ex_held), its client is watched
 * and an HTTP/1 EOF counts as leaving, as for a waiting one.
 *
 * "end" is arc_px__ex_end, the only place an exchange finishes: it reports
 * the load balancer outcome, counts the request (every exchange exactly
 * once, aborted ones included, as 499 when no status was sent), unpins the
 * snapshot, tells the client codec, and recycles the exchange. The access
 * log's record is made there too (obs.c), from the same status.
 *
 * Lifetime: an exchange is owned by its client connection (c->c.ex) and
 * referenced by the upstream connection of its current attempt (u->u.ex /
 * ex->up). Its request view lives in its arena and dies with it.
 */
#include "proxy/proxy_int.h"
#include "plugin/plugin.h"
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Recycled exchanges kept per worker (their arenas keep one block). */
#define EX_FREE_MAX 256
/* A recycled exchange keeps a retry buffer (action.retry) up to this size. */
#define EX_RBUF_KEEP 16384

/* ------------------------------------------------------------ snapshots */

struct arc_snapshot *arc_px__snap_pin(struct arc_worker *w, struct arc_snapshot *s)
{
    for (size_t i = 0; i < HELD_SNAPS; i++)
        if (w->held[i].snap == s) {
            w->held[i].pins++;
            return s;
        }
    for (size_t i = 0; i < HELD_SNAPS; i++)
        if (!w->held[i].snap) {
            arc_snapshot_ref(s);
            w->held[i] = (struct held_snap){ .snap = s, .pins = 1 };
            return s;
        }
    /* More generations in flight than slots: fall back to a shared
     * reference for this one pin (rare: only across many reloads). */
    arc_snapshot_ref(s);
    return s;
}

void arc_px__snap_unpin(struct arc_worker *w, struct arc_snapshot *s)
{
    for (size_t i = 0; i < HELD_SNAPS; i++)
        if (w->held[i].snap == s) {
            if (--w->held[i].pins == 0) {
                w->held[i].snap = NULL;
                arc_snapshot_unref(s);
            }
            return;
        }
    arc_snapshot_unref(s);
}

/* ------------------------------------------------------------ lifecycle */

struct arc_exchange *arc_px__ex_new(struct arc_worker *w, struct arc_conn *client)
{
    struct arc_exchange *ex = w->ex_free;
    if (ex) {
        w->ex_free = ex->next_free;
        w->n_ex_free--;
        struct arc_arena keep = ex->arena;
        char *rbuf = ex->rbuf;          /* (a retry buffer is kept too, like the arena) */
        size_t rcap = ex->rcap;
        memset(ex, 0, sizeof(*ex));
        ex->arena = keep;
        ex->rbuf = rbuf;
        ex->rcap = rcap;
    } else {
        ex = calloc(1, sizeof(*ex));
        if (!ex)
            return NULL;
        arc_arena_init(&ex->arena, 1024);
    }
    ex->state = EX_ROUTING;
    ex->client = client;
    ex->snap = arc_px__snap_pin(w, w->snap);
    ex->ep = -1;
    ex->started_ms = w->now_ms;
    ex->t_start_ns = w->now_ns;
    arc_timer_init(&ex->deadline, arc_px__ex_on_deadline);
    w->n_exchanges++;
    return ex;
}

struct arc_str arc_px__ex_dup(struct arc_exchange *ex, struct arc_str s, bool *ok)
{
    if (s.len == 0)
        return (struct arc_str){ "", 0 };
    char *d = arc_arena_dup(&ex->arena, s.p, s.len);
    if (!d) {
        *ok = false;
        return (struct arc_str){ "", 0 };
    }
    return (struct arc_str){ d, s.len };
}

bool arc_px__ex_take_fields(struct arc_exchange *ex, const struct arc_hdr *f, size_t n)
{
    struct arc_req *q = &ex->req;
    bool ok = true;
    q->n_hdrs = n;
    q->hdrs = arc_arena_alloc(&ex->arena, (n ? n : 1) * sizeof(*q->hdrs));
    if (!q->hdrs)
        return false;
    for (size_t i = 0; i < n; i++) {
        q->hdrs[i].name = arc_px__ex_dup(ex, f[i].name, &ok);
        q->hdrs[i].value = arc_px__ex_dup(ex, f[i].value, &ok);
    }
    q->mbit = arc_rt_method_bit(q->method);
    ex->is_head = arc_str_eq(q->method, "HEAD", 4);
    ex->idempotent = (q->mbit & (ARC_M_GET | ARC_M_HEAD | ARC_M_OPTIONS | ARC_M_TRACE |
                                 ARC_M_PUT | ARC_M_DELETE)) != 0;
    return ok;
}

/* struct arc_h1_header is the same pair of views as struct arc_hdr. */
_Static_assert(sizeof(struct arc_h1_header) == sizeof(struct arc_hdr), "header layout");

bool arc_px__ex_set_request(struct arc_exchange *ex, const struct arc_h1_request *r)
{
    struct arc_req *q = &ex->req;
    bool ok = true;
    q->method = arc_px__ex_dup(ex, r->method, &ok);
    q->target = arc_px__ex_dup(ex, r->target, &ok);
    q->path = arc_px__ex_dup(ex, r->path, &ok);
    q->query = arc_px__ex_dup(ex, r->query, &ok);
    q->authority = arc_px__ex_dup(ex, r->host, &ok);
    q->scheme = ARC_STR_LIT("http");
    q->absolute_form = !(r->target.len && r->target.p[0] == '/');
    q->version = (uint8_t)(10 + r->minor);
    q->body = r->body;
    q->content_length = r->content_length;
    q->expect_100 = (r->flags & ARC_H1_F_EXPECT_100) != 0;
    q->upgrade = (r->flags & ARC_H1_F_UPGRADE) != 0;
    q->keep_alive = (r->flags & ARC_H1_F_KEEP_ALIVE) != 0;
    return arc_px__ex_take_fields(ex, (const struct arc_hdr *)r->headers, r->n_headers) && ok;
}

void arc_px__ex_lb_start(struct arc_worker *w, struct arc_exchange *ex, int ep)
{
    const struct arc_upstream_rt *up = ex->target;
    struct wup *wu = &w->ups[up->id];
    int li = -1;
    if (wu->rt == up || !wu->rt) {
        li = ep;                        /* (no current definition: the balancer as built) */
    } else if (wu->live) {
        for (size_t i = 0; i < wu->rt->n_eps; i++)
            if (wu->rt->eps[i].id == up->eps[ep].id) {
                li = (int)i;
                break;
            }
    }
    if (li < 0 || (size_t)li >= wu->lb.n)
        return;
    arc_lb_start(&wu->lb, (size_t)li);
    ex->lb_open = true;
    ex->lb_ep = li;
    ex->lb_gen = wu->gen;
}

void arc_px__ex_lb_end(struct arc_worker *w, struct arc_exchange *ex)
{
    if (!ex->lb_open)
        return;
    ex->lb_open = false;
    struct wup *wu = &w->ups[ex->target->id];
    if (wu->gen != ex->lb_gen)
        return;                         /* the balancer was rebuilt by a reload since */
    arc_lb_done(&wu->lb, (size_t)ex->lb_ep,
                (w->now_ms - ex->started_ms) * 1000u, w->now_ms);
}

void arc_px__ex_drop_upstream(struct arc_worker *w, struct arc_exchange *ex)
{
    if (ex->ux) {
        arc_px__h2u_detach(w, ex);      /* its stream is cancelled; the connection stays */
        return;
    }
    struct arc_conn *u = ex->up;
    if (!u)
        return;
    ex->up = NULL;
    u->u.ex = NULL;
    arc_px__conn_close(w, u);
}

static void ex_free(struct arc_worker *w, struct arc_exchange *ex)
{
    free(ex->replay);
    ex->replay = NULL;
    if (ex->rcap > EX_RBUF_KEEP) {
        free(ex->rbuf);
        ex->rbuf = NULL;
        ex->rcap = 0;
    }
    arc_arena_reset(&ex->arena);
    w->n_exchanges--;
    if (w->n_ex_free < EX_FREE_MAX) {
        ex->next_free = w->ex_free;
        w->ex_free = ex;
        w->n_ex_free++;
        return;
    }
    free(ex->rbuf);
    arc_arena_dispose(&ex->arena);
    free(ex);
}

/* The exchange's metrics: its request series, the histograms of its route
 * and upstream, the error that ended it on its endpoint. */
static void ex_count(struct arc_worker *w, const struct arc_exchange *ex, int status)
{
    const struct arc_upstream_rt *up = ex->target;
    bool att = up && ex->t_up_ns;
    struct arc_m_exchange x = {
        .route_id = ex->route ? ex->route->id : ARC_M_NO_ROUTE,
        /* (an exchange the balancer had no endpoint for counts on its
         * upstream too) */
        .up_id = up && (att || ex->err == ARC_ERR_NO_ENDPOINT + 1) ? up->id : ARC_M_NONE,
        .ep_id = up && ex->ep >= 0 && (size_t)ex->ep < up->n_eps ? up->eps[ex->ep].id : ARC_M_NONE,
        .status = status,
        .method = arc_m_method(ex->req.mbit),
        .proto = ex->client->c.codec == &arc_px__h2_server ? ARC_MP_H2 : ARC_MP_H1,
        .err = ex->err,
        .dur_ns = ex->t_end_ns - ex->t_start_ns,
        /* A pooled connection (t_conn = t_up) made no connect to time. */
        .connect_ns = att && ex->t_conn_ns > ex->t_up_ns ? ex->t_conn_ns - ex->t_up_ns
                                                         : ARC_M_NOT_TIMED,
        .ttfb_ns = att && ex->t_head_ns ? ex->t_head_ns - ex->t_up_ns : ARC_M_NOT_TIMED,
        .upstream_ns = att && ex->t_head_ns ? ex->t_end_ns - ex->t_up_ns : ARC_M_NOT_TIMED,
        .req_bytes = ex->bytes_in,
        .resp_bytes = ex->bytes_out,
    };
    arc_m_exchange(&w->metrics, &x);
}

void arc_px__ex_end(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome o)
{
    struct arc_conn *c = ex->client;
    ex->t_end_ns = w->now_ns;
    if (ex->pl && ex->pl->glue && !arc_px__plugins_finish(w, ex, &o))
        return;                         /* (ends later, from plugins.c) */
    arc_px__plugins_end(ex);
    arc_tw_cancel(&w->tw, &ex->deadline);
    if (ex->state == EX_WAITING) {
        arc_tw_cancel(&w->tw, &ex->wait.timer);
        ex->state = ex->wait.prev;
        if (ex->wait.on_cancel)
            ex->wait.on_cancel(w, ex);
    }
    arc_px__ex_lb_end(w, ex);
    arc_px__up_ex_end(w, ex);
    if (ex->mirror)
        arc_px__mirror_end(w, ex, o == EXO_COMPLETE && ex->resp_done);
    /* An upstream still attached mid-exchange cannot be reused. */
    arc_px__ex_drop_upstream(w, ex);
    int status = ex->status;
    switch (o) {
    case EXO_CLIENT_ABORT:
    case EXO_CLIENT_TIMEOUT:
        /* 499 (nginx's "client closed request") when nothing was answered. */
        status = status ? status : 499;
        arc_m_add(&w->metrics.errors[ARC_ERR_CLIENT_ABORT], o == EXO_CLIENT_ABORT);
        break;
    case EXO_TUNNEL_END:                /* counted as its 101, once the tunnel closed */
    case EXO_UPSTREAM_CUT:
    case EXO_COMPLETE:
        status = status ? status : 502;
        break;
    }
    if (!ex->internal) {                /* (a plugin's callout is not a client request) */
        arc_px__obs_log(w, ex, o);
        ex_count(w, ex, status);
    }
    if (c->c.ex == ex)
        c->c.ex = NULL;
    arc_px__snap_unpin(w, ex->snap);
    ex->snap = NULL;
    c->c.codec->ended(w, ex, o);
    ex->ended = true;
    if (ex->holds == 0)
        ex_free(w, ex);
}

/* ------------------------------------------------------------ waiting */

static void wake(struct arc_worker *w, struct arc_exchange *ex, bool timed_out)
{
    if (ex->state != EX_WAITING)
        return;
    arc_tw_cancel(&w->tw, &ex->wait.timer);
    ex->state = ex->wait.prev;
    ex->wait.timed_out = timed_out;
    /* Held while the stage continues it, so that input held during the
     * wait can be fed on afterwards if it is still running. */
    ex->holds++;
    ex->wait.on_wake(w, ex);
    if (!ex->ended)
        ex->client->c.codec->resume(w, ex);
    if (--ex->holds == 0 && ex->ended)
        ex_free(w, ex);
}

static void on_wait_timer(struct arc_timer *t, uint64_t now)
{
    (void)now;
    struct arc_exchange *ex = arc_container_of(t, struct arc_exchange, wait.timer);
    wake(ex->wait.w, ex, true);
}

void arc_px__ex_wait(struct arc_worker *w, struct arc_exchange *ex, uint64_t deadline_ms,
                     arc_px_wait_fn on_wake, arc_px_wait_fn on_cancel, uint64_t arg)
{
    ARC_ASSERT(ex->state != EX_WAITING && on_wake);
    ex->wait = (struct arc_px_wait){ .w = w, .on_wake = on_wake, .on_cancel = on_cancel,
                                     .arg = arg, .prev = ex->state };
    arc_timer_init(&ex->wait.timer, on_wait_timer);
    ex->state = EX_WAITING;
    arc_tw_schedule(&w->tw, &ex->wait.timer, deadline_ms);
}

void arc_px__ex_wake(struct arc_worker *w, struct arc_exchange *ex)
{
    wake(w, ex, false);
}

void arc_px__ex_pool_shrink(struct arc_worker *w, size_t keep)
{
    while (w->n_ex_free > keep) {
        struct arc_exchange *ex = w->ex_free;
        w->ex_free = ex->next_free;
        w->n_ex_free--;
        free(ex->rbuf);
        arc_arena_dispose(&ex->arena);
        free(ex);
    }
}

void arc_px__ex_pool_dispose(struct arc_worker *w)
{
    arc_px__ex_pool_shrink(w, 0);
    for (size_t i = 0; i < HELD_SNAPS; i++)
        if (w->held[i].snap) {
            arc_snapshot_unref(w->held[i].snap);
            w->held[i].snap = NULL;
        }
}

/* ------------------------------------------------------------ answers */

void arc_px__ex_respond(struct arc_worker *w, struct arc_exchange *ex, int status,
                        const struct arc_hdr *hdrs, size_t n, const char *body, size_t body_len)
{
    arc_px__ex_drop_upstream(w, ex);
    ex->status = status;
    ex->resp_started = ex->resp_done = true;
    if (!ex->is_head)
        ex->bytes_out += body_len;      /* body bytes to the client, as for proxied ones */
    struct arc_hdr *with_id = ex->rid_len ? arc_arena_alloc(&ex->arena, (n + 1) * sizeof(*with_id))
                                          : NULL;
    if (with_id) {                      /* the request id goes back with local answers too */
        if (n)
            memcpy(with_id, hdrs, n * sizeof(*hdrs));
        with_id[n++] = (struct arc_hdr){ ARC_STR_LIT("X-Request-Id"), { ex->rid, ex->rid_len } };
        hdrs = with_id;
    }
    ex->client->c.codec->respond(w, ex, status, hdrs, n, body, body_len);
    arc_px__ex_end(w, ex, EXO_COMPLETE);
}

void arc_px__ex_error(struct arc_worker *w, struct arc_exchange *ex, int status,
                      enum arc_err_kind kind)
{
    arc_m_add(&w->metrics.errors[kind], 1);
    ex->err = (uint8_t)(kind + 1);
    if (ex->resp_started) {
        /* Part of a response already went out: the only honest signal left
         * is to cut the connection. */
        arc_px__ex_cut(w, ex);
        return;
    }
    /* "404 Not Found\n" (reasons are short literals) */
    char body[96];
    const char *reason = arc_h1_reason(status);
    size_t rl = strnlen(reason, sizeof(body) - 24);
    char *o = arc_put_u64(body, status > 0 ? (uint64_t)status : 0);
    *o++ = ' ';
    memcpy(o, reason, rl);
    o += rl;
    *o++ = '\n';
    static const struct arc_hdr ct = { ARC_STR_LIT("Content-Type"),
                                       ARC_STR_LIT("text/plain; charset=utf-8") };
    arc_px__ex_respond(w, ex, status, &ct, 1, body, (size_t)(o - body));
}

void arc_px__ex_deadline(struct arc_worker *w, struct arc_exchange *ex)
{
    if (ex->state == EX_TUNNEL)
        return;                         /* (disarmed at the 101; a tunnel has no deadline) */
    if (ex->pl && ex->pl->glue)
        arc_px__plugins_unsent(ex);     /* (a head a filter held never went out) */
    arc_px__ex_error(w, ex, 504, ARC_ERR_ROUTE_TIMEOUT);
}

/* The response broke after it started (bad chunk framing, upstream reset or
 * timeout mid-body): deliver the bytes already validated and queued, then
 * close. The client sees a truncated body (no final chunk, or fewer bytes
 * than Content-Length), the protocol's only way to say "incomplete". */
void arc_px__ex_cut(struct arc_worker *w, struct arc_exchange *ex)
{
    arc_px__ex_end(w, ex, EXO_UPSTREAM_CUT);
}
