/*
 * The upstream side of exchanges over HTTP/2 (upstreams[].protocol: http2):
 * h2c with prior knowledge, or h2 over TLS with ALPN "h2". One connection
 * carries many exchanges, each on a stream of its own. Per worker and
 * endpoint, a list of connections (struct pool .h2): a new exchange goes on
 * the first that can open another stream (below the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS, no GOAWAY either way); when none can,
 * another connection is opened; at pool_max_connections the stream waits
 * in the least busy connection (nghttp2 holds it until a slot frees).
 *
 * Connection (u->u.state; the session in u->u.h2):
 *
 *   US_CONNECTING ──connected (TLS: handshake, ALPN h2)──▶ US_H2
 *        │                                                  │
 *        └──refused, timeout, no ALPN h2──▶ closed           ├──GOAWAY, past pool_max_lifetime──▶ retiring:
 *                                                           │     no new streams; closed once it has none
 *                                                           ├──no streams for pool_idle_ttl──▶ closed
 *                                                           └──EOF, protocol error──▶ closed
 *
 * Stream (struct h2us), one per exchange attempt:
 *
 *   submitted ──response head──▶ streaming ──END_STREAM──▶ exchange complete
 *      │                            └──reset, connection lost──▶ cut (truncated for the client)
 *      ├──REFUSED_STREAM──▶ again on the same connection (up to 4 attempts)
 *      ├──connect failure, reset, connection lost, a status in retry.on, a
 *      │  write/ttfb deadline (as 504), and action.retry allows──▶ reset, backoff,
 *      │  next attempt (upstream.c: arc_px__retry_start ─▶ arc_px__h2u_retry)
 *      ├──the connection was lost with nothing received nor of the body sent
 *      │  (idempotent), action.retry not taking it──▶ retried once on another connection
 *      ├──reset, connection lost before the head──▶ 502
 *      └──deadline──▶ 504 (write, ttfb, read), 408 (the client stalled its body)
 *   the exchange ends first (client gone, answered) ──▶ RST_STREAM(CANCEL) if still open
 *
 * Flow control is tied to the client's pace both ways: response DATA is
 * acknowledged (WINDOW_UPDATE) only once the client codec took it and is not
 * blocked, and the request body waits in the stream's queue for the
 * session's pull (the upstream's windows), the client being paused while
 * that queue holds node.max_buffered_output.
 *
 * Re-entrancy (as in h2_server.c): the session calls back from inside
 * arc_h2_recv and arc_h2_output. From there, client codec calls that only
 * queue bytes or submit frames are fine, and exchanges may end (which may
 * start new exchanges: submitting is allowed in callbacks), but output is
 * never pulled (h->in_cb) and the session is never freed (h->free_pending
 * defers it). Clients waiting on a stream's queue are woken only from the
 * top-level events (input, send completion).
 */
#include "proxy/proxy_int.h"
#include "http2/http2.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct arc_hdr) == sizeof(struct arc_h2_header), "header layout");

#define H2_CANCEL 8u
#define H2_REFUSED_STREAM 7u

struct h2us {
    struct arc_exchange *ex;            /* NULL once the exchange let go */
    struct arc_h2u *h;
    int32_t sid;
    struct h2us *next, *prev;           /* the connection's streams */
    struct arc_timer timer;             /* write / ttfb / read deadline */
    struct arc_px_bytes q;              /* request body waiting for the session's pull */
    size_t unconsumed;                  /* response body handed on, not yet acknowledged */
    uint64_t pulled;                    /* request body bytes the session took */
    uint64_t armed_pulled;              /* `pulled` when the deadline was last set */
    struct arc_px_bytes sent;           /* the pulled bytes, kept for a retry while they fit
                                           node.max_buffered_output (keep_sent) */
    const struct arc_hdr *tr;           /* request trailers (in the exchange's arena) */
    size_t n_tr;
    bool with_body;                     /* the request has a body (end_body owed) */
    bool body_ended;                    /* end_body called */
    bool got_head;                      /* final response head received */
    bool remote_ended;                  /* END_STREAM received */
    bool client_waits;                  /* the client paused on this queue */
    bool keep_sent;                     /* `sent` holds every pulled byte */
    bool client_dirty;                  /* response bytes queued for the client: flush it */
};

struct arc_h2u {
    struct arc_h2_session *s;
    struct arc_conn *u;
    struct arc_worker *w;
    struct h2us *streams;
    uint32_t n_streams;
    struct arc_h2u *next, *prev;        /* the endpoint's HTTP/2 connections */
    int in_cb;                          /* inside a session call */
    bool ready;                         /* connected (TLS: handshake done, ALPN h2) */
    bool dead;                          /* closing: takes no stream */
    bool free_pending;                  /* closed inside a session call: free on return */
};

static const struct arc_upstream_conf *uconf(const struct arc_h2u *h)
{
    return h->u->u.up->conf;
}

static const struct arc_codec_vt *codec_of(const struct arc_exchange *ex)
{
    return ex->client->c.codec;
}

static struct pool *pool_of(struct arc_worker *w, const struct arc_conn *u)
{
    return &w->pools[u->u.ep_rt->id];
}

/* ------------------------------------------------------------ deadlines */

static void stream_timeout(struct arc_timer *t, uint64_t now);

/* The deadline that applies to the stream now. */
static void stream_arm(struct arc_worker *w, struct h2us *st)
{
    struct arc_exchange *ex = st->ex;
    struct arc_h2u *h = st->h;
    if (!ex || !h->ready) {
        arc_tw_cancel(&w->tw, &st->timer);   /* (connect_timeout covers connecting) */
        return;
    }
    const struct arc_upstream_conf *uc = uconf(h);
    uint64_t ms;
    if (st->got_head)
        ms = uc->read_timeout;
    else if (arc_px__bytes_len(&st->q))
        ms = uc->write_timeout;
    else if (st->with_body && !st->body_ended)
        ms = ex->snap->cfg->node.read_timeout; /* waiting for the client's body */
    else
        ms = uc->ttfb_timeout;
    st->armed_pulled = st->pulled;
    arc_tw_schedule(&w->tw, &st->timer, w->now_ms + ms);
}

/* ------------------------------------------------------------ streams */

static void stream_link(struct arc_h2u *h, struct h2us *st)
{
    st->h = h;
    st->prev = NULL;
    st->next = h->streams;
    if (h->streams)
        h->streams->prev = st;
    h->streams = st;
    h->n_streams++;
}

static void stream_free(struct arc_h2u *h, struct h2us *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    h->n_streams--;
    arc_tw_cancel(&h->w->tw, &st->timer);
    arc_px__bytes_free(&st->q);
    arc_px__bytes_free(&st->sent);
    free(st);
}

/* The exchange and its stream part (no frame is sent). */
static struct arc_exchange *unpair(struct h2us *st)
{
    struct arc_exchange *ex = st->ex;
    if (!ex)
        return NULL;
    st->ex = NULL;
    ex->ux = NULL;
    if (ex->up == st->h->u)
        ex->up = NULL;
    arc_tw_cancel(&st->h->w->tw, &st->timer);
    return ex;
}

/* ------------------------------------------------------------ connections */

static void pool_unlink(struct arc_worker *w, struct arc_h2u *h)
{
    struct pool *pl = pool_of(w, h->u);
    if (h->prev)
        h->prev->next = h->next;
    else if (pl->h2 == h)
        pl->h2 = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->next = h->prev = NULL;
}

static bool retiring(const struct arc_worker *w, const struct arc_h2u *h)
{
    return h->dead || h->u->closing || !arc_h2_can_submit(h->s) ||
           w->now_ms - h->u->created_ms >= uconf(h)->pool_max_lifetime;
}

static uint64_t clock_ms(void *ud)
{
    return ((struct arc_worker *)ud)->now_ms;
}

static const struct arc_h2_callbacks callbacks;

static struct arc_h2u *conn_open(struct arc_worker *w, struct arc_snapshot *snap,
                                 const struct arc_upstream_rt *up, int ep)
{
    struct arc_h2u *h = calloc(1, sizeof(*h));
    if (!h) {
        errno = ENOMEM;
        return NULL;
    }
    struct arc_conn *u = arc_px__up_connect(w, snap, up, ep);
    if (!u) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    const struct arc_config *cfg = w->snap->cfg;
    struct arc_h2_limits lim = {
        .max_concurrent_streams = cfg->h2.max_concurrent_streams,
        .max_header_list_size = cfg->limits.max_header_bytes,
        .max_continuations = cfg->h2.max_continuations,
        /* Services cancel streams for their own reasons (gRPC does):
         * their resets are not an attack on us. */
        .resets_per_sec = ARC_H2_UNLIMITED,
        .settings_per_sec = cfg->h2.max_settings_per_sec,
        .pings_per_sec = cfg->h2.max_ping_per_sec,
        .priority_per_sec = cfg->h2.max_priority_per_sec,
        .empty_data_per_sec = cfg->h2.max_empty_data_per_sec,
    };
    struct arc_h2_options o = { .limits = &lim, .now_ms = clock_ms, .clock_ud = w,
                                .encoder_table_size = cfg->node.http2_header_table_size };
    if (arc_h2_client_new(&callbacks, h, &o, &h->s) != ARC_H2_OK) {
        free(h);
        arc_px__conn_close(w, u);
        errno = ENOMEM;
        return NULL;
    }
    h->u = u;
    h->w = w;
    u->u.h2 = h;
    struct pool *pl = pool_of(w, u);
    h->next = pl->h2;
    if (pl->h2)
        pl->h2->prev = h;
    pl->h2 = h;
    return h;
}

/* A connection for one more stream to endpoint ep (never `not`), or NULL
 * (errno). */
static struct arc_h2u *conn_pick(struct arc_worker *w, const struct arc_exchange *ex,
                                 const struct arc_upstream_rt *up, int ep,
                                 const struct arc_h2u *not)
{
    struct arc_h2u *least = NULL, *old = NULL;
    for (struct arc_h2u *h = w->pools[up->eps[ep].id].h2; h; h = h->next) {
        /* (a TLS connection serves its own config generation only) */
        if (h == not || h->dead || h->u->closing || (h->u->tls && h->u->u.snap != ex->snap) ||
            arc_h2_goaway_received(h->s, NULL))
            continue;
        if (w->now_ms - h->u->created_ms >= uconf(h)->pool_max_lifetime) {
            if (arc_h2_can_submit(h->s))
                old = h;                /* past its lifetime: only if nothing else */
            continue;
        }
        if (arc_h2_can_submit(h->s))
            return h;
        /* At the peer's stream limit: a place to wait. */
        if (!least || h->n_streams < least->n_streams)
            least = h;
    }
    struct arc_h2u *h = conn_open(w, ex->snap, up, ep);
    if (h)
        return h;
    /* At pool_max_connections: wait for a stream slot on the least busy
     * connection, or use one past its lifetime rather than refuse. */
    if (errno == EAGAIN && (least || old))
        return least ? least : old;
    return NULL;
}

/* ------------------------------------------------------------ attempts */

/* What a retried stream takes over from the failed one: the whole request
 * body received so far, whether it ended, its trailers. */
struct carry {
    struct arc_px_bytes body;
    bool body_ended;
    const struct arc_hdr *tr;
    size_t n_tr;
};

/* Opens a stream for ex: on `on` when given, else on a connection picked
 * (never `not`). `cv` (or NULL) is what an earlier attempt carries over;
 * its body is taken. False: ex was answered with an error. */
static bool attempt(struct arc_worker *w, struct arc_exchange *ex, int ep, struct arc_h2u *on,
                    const struct arc_h2u *not, struct carry *cv)
{
    struct arc_px_bytes *body = cv ? &cv->body : NULL;
    const struct arc_upstream_rt *up = ex->target;
    struct arc_h2u *h = on ? on : conn_pick(w, ex, up, ep, not);
    if (!h) {
        int err = errno;
        if (body)
            arc_px__bytes_free(body);
        arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_CONNECT_ERRORS), 1);
        arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_CONNECT_ERRORS), 1);
        if (err != EAGAIN) {
            arc_px__ep_result(w, up, ep, false);
            if (arc_px__retry_possible(w, ex, ARC_RK_CONNECT, 502)) {
                arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_CONNECT], 1);
                arc_px__retry_start(w, ex, ep);
                return false;
            }
        }
        errno = err;
        arc_px__ex_error(w, ex, errno == EAGAIN ? 503 : 502,
                         errno == EAGAIN ? ARC_ERR_NO_ENDPOINT : ARC_ERR_UPSTREAM_CONNECT);
        return false;
    }
    struct h2us *st = calloc(1, sizeof(*st));
    struct arc_hdr *f = NULL;
    size_t nf = 0;
    if (!st || !arc_px__request_fields(ex, &f, &nf)) {
        free(st);
        if (body)
            arc_px__bytes_free(body);
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return false;
    }
    const struct arc_req *q = &ex->req;
    /* :authority: a Host set by the route, else the client's, else the
     * endpoint's address. */
    struct arc_str authority = q->authority;
    for (size_t i = 0; i < nf; i++)
        if (arc_str_ieq(f[i].name, "host", 4)) {
            authority = f[i].value;
            f[i] = f[--nf];
            break;
        }
    if (!authority.len)
        authority = (struct arc_str){ up->eps[ep].text, strlen(up->eps[ep].text) };
    struct arc_str path = q->target;
    if (q->up_target.len) {
        path = q->up_target;            /* rewritten by the route */
    } else if (q->absolute_form) {
        /* absolute-form from an HTTP/1 client: origin-form upstream. */
        struct arc_str abs = q->path.len ? q->path : ARC_STR_LIT("/");
        size_t len = abs.len + (q->query.len ? q->query.len + 1 : 0);
        char *p = arc_arena_alloc(&ex->arena, len);
        if (p) {
            memcpy(p, abs.p, abs.len);
            if (q->query.len) {
                p[abs.len] = '?';
                memcpy(p + abs.len + 1, q->query.p, q->query.len);
            }
            path = (struct arc_str){ p, len };
        }
    }
    bool has_body = q->body == ARC_H1_BODY_CHUNKED ||
                    (q->body == ARC_H1_BODY_LENGTH && q->content_length > 0);
    struct arc_h2_request rq = {
        .method = q->method,
        .scheme = up->tls ? ARC_STR_LIT("https") : ARC_STR_LIT("http"),
        .authority = authority,
        .path = path,
        .headers = (const struct arc_h2_header *)f,
        .n_headers = nf,
        .content_length = q->body == ARC_H1_BODY_LENGTH ? (int64_t)q->content_length : -1,
    };
    int32_t sid = arc_h2_submit_request(h->s, &rq, has_body, st);
    if (sid < 0) {
        free(st);
        if (body)
            arc_px__bytes_free(body);
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_CONNECT);
        return false;
    }
    arc_timer_init(&st->timer, stream_timeout);
    st->sid = sid;
    st->ex = ex;
    st->with_body = has_body;
    st->keep_sent = has_body;
    if (body) {
        st->q = *body;
        *body = (struct arc_px_bytes){ 0 };
        /* (its client may have paused on the failed stream's queue) */
        st->client_waits = arc_px__bytes_len(&st->q) > 0;
    }
    stream_link(h, st);
    if (h->n_streams == 1 && h->ready)
        arc_tw_cancel(&w->tw, &h->u->timer);   /* no longer idle */
    ex->ux = st;
    ex->up = h->u;
    ex->attempts++;
    ex->state = h->ready ? EX_UPSTREAM : EX_CONNECTING;
    ex->t_up_ns = w->now_ns;
    ex->t_conn_ns = h->ready ? ex->t_up_ns : 0;
    ex->t_head_ns = 0;
    if (h->ready)
        arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_REUSED), 1);
    if (has_body && ((cv && cv->body_ended) || ex->req_done)) {
        st->body_ended = true;
        st->tr = cv ? cv->tr : NULL;
        st->n_tr = cv ? cv->n_tr : 0;
        arc_h2_end_body(h->s, sid, (const struct arc_h2_header *)st->tr, st->n_tr);
    }
    if (arc_px__bytes_len(&st->q))
        arc_h2_resume(h->s, sid);
    stream_arm(w, st);
    if (!h->in_cb)
        arc_px__flush(w, h->u);
    return true;
}

void arc_px__h2u_start(struct arc_worker *w, struct arc_exchange *ex, int ep)
{
    const struct arc_upstream_rt *up = ex->target;
    ex->req.upgrade = false;            /* no Upgrade over HTTP/2 (RFC 9113 §8.6) */
    arc_px__ex_lb_start(w, ex, ep);
    arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_REQUESTS), 1);
    arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_REQUESTS), 1);
    attempt(w, ex, ep, NULL, NULL, NULL);  /* (may end ex: touch nothing after) */
}

void arc_px__h2u_keep_trailers(struct arc_exchange *ex, const struct arc_hdr *trailers, size_t n)
{
    struct arc_hdr *tr = n ? arc_arena_alloc(&ex->arena, n * sizeof(*tr)) : NULL;
    bool ok = true;
    for (size_t i = 0; tr && i < n; i++)
        tr[i] = (struct arc_hdr){ arc_px__ex_dup(ex, trailers[i].name, &ok),
                                  arc_px__ex_dup(ex, trailers[i].value, &ok) };
    ex->rtr = tr && ok ? tr : NULL;
    ex->n_rtr = tr && ok ? n : 0;
}

void arc_px__h2u_retry(struct arc_worker *w, struct arc_exchange *ex, int ep)
{
    const struct arc_upstream_rt *up = ex->target;
    struct carry cv = { .body_ended = ex->req_done, .tr = ex->rtr, .n_tr = ex->n_rtr };
    if (ex->rlen > ex->rhead &&
        !arc_px__bytes_put(&cv.body, ex->rbuf + ex->rhead, ex->rlen - ex->rhead)) {
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_RESET);
        return;
    }
    ex->ep = ep;
    arc_px__ex_lb_start(w, ex, ep);
    arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_REQUESTS), 1);
    arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_REQUESTS), 1);
    bool ok = attempt(w, ex, ep, NULL, NULL, &cv);
    arc_px__bytes_free(&cv.body);
    /* The client's body was held while no attempt could take it. */
    if (ok && ex->ux && !ex->req_done)
        codec_of(ex)->resume(w, ex);
}

/* The stream failed before a response head: once more when that is safe
 * (the server refused it: it did nothing with it; or the connection was
 * lost with nothing received, for an idempotent request), with the whole
 * body received so far, else an error answer. */
static void stream_failed(struct arc_worker *w, struct h2us *st, bool refused, bool conn_lost,
                          int status, enum arc_err_kind kind)
{
    struct arc_h2u *h = st->h;
    bool got_head = st->got_head;
    /* A server refuses streams over its SETTINGS_MAX_CONCURRENT_STREAMS
     * when they were sent before its SETTINGS arrived; now they have (they
     * come first), so the same connection queues the retry until a stream
     * slot frees. */
    bool have_body = st->pulled == 0 || st->keep_sent;
    bool safe = !got_head && have_body && st->ex &&
                (refused ? st->ex->attempts < 4
                         : conn_lost && h->ready && st->ex->idempotent && st->ex->attempts < 2);
    struct arc_h2u *again = refused && !h->dead && !h->u->closing &&
                            !arc_h2_goaway_received(h->s, NULL) ? h : NULL;
    struct carry cv = { .body_ended = st->body_ended, .tr = st->tr, .n_tr = st->n_tr };
    if (safe) {
        /* the bytes already sent, then those still queued */
        cv.body = st->sent;
        st->sent = (struct arc_px_bytes){ 0 };
        if (arc_px__bytes_len(&st->q) &&
            !arc_px__bytes_put(&cv.body, st->q.p + st->q.off, arc_px__bytes_len(&st->q)))
            safe = false;
    }
    struct arc_exchange *ex = unpair(st);
    if (!ex) {
        arc_px__bytes_free(&cv.body);
        return;
    }
    /* A refused stream is the server pacing us, not failing. */
    if (!refused && !got_head)
        arc_px__ep_result(w, ex->target, ex->ep, false);
    if (!(refused && safe) && !got_head) {
        /* action.retry: a connect failure (refused, timed out, no ALPN h2)
         * or a reset / lost connection */
        int rk = kind == ARC_ERR_UPSTREAM_CONNECT || kind == ARC_ERR_UPSTREAM_TIMEOUT
                 ? ARC_RK_CONNECT : ARC_RK_RESET;
        if (arc_px__retry_possible(w, ex, rk, status)) {
            arc_px__bytes_free(&cv.body);
            arc_m_add(&w->metrics.errors[kind], 1);
            arc_px__retry_start(w, ex, ex->ep);
            return;
        }
    }
    if (safe) {
        arc_m_add(arc_m_ep(&w->metrics, ex->target->eps[ex->ep].id, ARC_ME_RETRIES), 1);
        attempt(w, ex, ex->ep, again, h, &cv);
        arc_px__bytes_free(&cv.body);
        return;
    }
    arc_px__bytes_free(&cv.body);
    if (got_head || ex->resp_started) {
        arc_m_add(&w->metrics.errors[kind], 1);
        ex->err = (uint8_t)(kind + 1);
        arc_px__ex_cut(w, ex);
        return;
    }
    arc_px__ex_error(w, ex, status, kind);
}

static void h2u_free(struct arc_h2u *h);

/* Every exchange still on the connection fails (it is going away). While
 * they end, no output is pulled (in_cb), so no stream is freed under the
 * walk. True if the connection was closed meanwhile and h is gone. */
static bool fail_all(struct arc_worker *w, struct arc_h2u *h, int status, enum arc_err_kind kind)
{
    h->dead = true;
    h->in_cb++;
    for (struct h2us *st = h->streams; st; st = st->next)
        if (st->ex)
            stream_failed(w, st, false, true, status, kind);
    h->in_cb--;
    if (h->free_pending && h->in_cb == 0) {
        h2u_free(h);
        return true;
    }
    return false;
}

/* ------------------------------------------------------------ session callbacks */

static void cb_informational(void *ud, int32_t sid, void *sud, const struct arc_h2_response *r)
{
    struct arc_h2u *h = ud;
    struct h2us *st = sud;
    (void)sid;
    if (!st || !st->ex || r->status == 100)
        return;                         /* (100 Continue was ours to answer) */
    struct arc_resp resp = {
        .status = r->status,
        .hdrs = (const struct arc_h1_header *)r->headers,
        .n_hdrs = r->n_headers,
    };
    codec_of(st->ex)->interim(h->w, st->ex, &resp);
    st->client_dirty = true;
}

static void cb_response(void *ud, int32_t sid, void *sud, const struct arc_h2_response *r)
{
    struct arc_h2u *h = ud;
    struct h2us *st = sud;
    (void)sid;
    if (!st || !st->ex)
        return;
    struct arc_exchange *ex = st->ex;
    if (arc_px__retry_possible(h->w, ex, ARC_RK_STATUS, r->status)) {
        /* The upstream's answer is dropped unseen (the stream reset) and
         * the request goes again. */
        arc_px__ep_result(h->w, ex->target, ex->ep, r->status < 500);
        arc_px__h2u_detach(h->w, ex);
        arc_px__retry_start(h->w, ex, ex->ep);
        return;
    }
    struct arc_resp resp = {
        .status = r->status,
        .hdrs = (const struct arc_h1_header *)r->headers,
        .n_hdrs = r->n_headers,
    };
    if (ex->is_head || r->status == 204 || r->status == 304) {
        resp.body = ARC_H1_BODY_NONE;       /* (a HEAD answer's Content-Length is kept) */
    } else if (r->end_stream) {
        resp.body = ARC_H1_BODY_LENGTH;     /* empty: said so to an HTTP/1.1 client */
    } else if (r->content_length >= 0) {
        resp.body = ARC_H1_BODY_LENGTH;
        resp.content_length = (uint64_t)r->content_length;
    } else {
        resp.body = ARC_H1_BODY_CHUNKED;
        resp.decoded = true;
    }
    if (ex->mirror)
        arc_px__mirror_resp_head(ex, &resp);
    if (ex->pl && !arc_px__plugins_response(h->w, ex, &resp))
        return;                         /* answered locally; the stream was cancelled */
    st->got_head = true;
    arc_px__ep_result(h->w, ex->target, ex->ep, r->status < 500);
    ex->status = resp.status;
    ex->t_head_ns = h->w->now_ns;
    ex->resp_started = true;
    ex->state = EX_STREAMING;
    codec_of(ex)->send_head(h->w, ex, &resp);
    st->client_dirty = true;
    stream_arm(h->w, st);
}

static void cb_data(void *ud, int32_t sid, void *sud, const uint8_t *p, size_t len)
{
    struct arc_h2u *h = ud;
    struct h2us *st = sud;
    if (!st)
        return;
    struct arc_exchange *ex = st->ex;
    if (!ex || !st->got_head || ex->is_head) {
        arc_h2_consume(h->s, sid, len);  /* nobody takes these bytes */
        return;
    }
    if (ex->mirror)
        arc_px__mirror_resp_body(ex, (const char *)p, len);
    codec_of(ex)->send_body(h->w, ex, -1, (const char *)p, len, false);
    st->client_dirty = true;
    /* The window reopens once the client side has room. */
    if (st->ex && !arc_px__ex_down_blocked(ex))
        arc_h2_consume(h->s, sid, len);
    else
        st->unconsumed += len;
    stream_arm(h->w, st);
}

static void cb_trailers(void *ud, int32_t sid, void *sud, const struct arc_h2_header *t, size_t n)
{
    struct arc_h2u *h = ud;
    struct h2us *st = sud;
    (void)sid;
    if (st && st->ex && st->got_head && !st->ex->is_head) {
        codec_of(st->ex)->trailers(h->w, st->ex, (const struct arc_hdr *)t, n);
        st->client_dirty = true;
    }
}

static void cb_end(void *ud, int32_t sid, void *sud)
{
    struct arc_h2u *h = ud;
    struct h2us *st = sud;
    (void)sid;
    if (!st)
        return;
    st->remote_ended = true;
    if (!st->ex || !st->got_head)
        return;                         /* (END_STREAM without a final head: on_close fails it) */
    struct arc_exchange *ex = st->ex;
    ex->resp_done = true;
    /* A complete response ends the exchange even while its request body
     * is still going up (the stream is then cancelled): the server has
     * answered (RFC 9113 §8.1). */
    arc_px__ex_end(h->w, ex, EXO_COMPLETE);
}

static void cb_close(void *ud, int32_t sid, void *sud, uint32_t error_code)
{
    struct arc_h2u *h = ud;
    struct h2us *st = sud;
    (void)sid;
    if (!st)
        return;
    if (st->ex)
        stream_failed(h->w, st, error_code == H2_REFUSED_STREAM, false, 502, ARC_ERR_UPSTREAM_RESET);
    stream_free(h, st);
}

static size_t cb_read_body(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t cap)
{
    struct h2us *st = sud;
    (void)ud;
    (void)sid;
    if (!st)
        return 0;
    size_t n = arc_px__bytes_take(&st->q, buf, cap);
    st->pulled += n;
    if (st->keep_sent && n) {
        /* Kept for a retry while small (as for HTTP/1 replays); a bigger
         * body cannot be sent twice. */
        if (st->pulled > st->h->u->out_high || !arc_px__bytes_put(&st->sent, buf, n)) {
            st->keep_sent = false;
            arc_px__bytes_free(&st->sent);
        }
    }
    return n;
}

static const struct arc_h2_callbacks callbacks = {
    .on_informational = cb_informational,
    .on_response = cb_response,
    .on_data = cb_data,
    .on_trailers = cb_trailers,
    .on_end = cb_end,
    .on_close = cb_close,
    .read_body = cb_read_body,
};

/* ------------------------------------------------------------ connection life */

static void h2u_free(struct arc_h2u *h)
{
    while (h->streams)
        stream_free(h, h->streams);
    arc_h2_free(h->s);
    free(h);
}

/* After input or output: close a connection that is done, or idle. */
static void check(struct arc_worker *w, struct arc_h2u *h)
{
    struct arc_conn *u = h->u;
    if (u->closing)
        return;
    if (!arc_h2_want_read(h->s) && !arc_h2_want_write(h->s)) {
        arc_px__conn_close(w, u);       /* GOAWAY went out, or the peer is done */
        return;
    }
    if (h->n_streams || !h->ready)
        return;
    if (retiring(w, h)) {
        arc_px__conn_close(w, u);
        return;
    }
    /* Idle: closed after pool_idle_ttl, or when its lifetime ends if sooner. */
    if (!arc_timer_pending(&u->timer)) {
        uint64_t age = w->now_ms - u->created_ms, life = uconf(h)->pool_max_lifetime;
        uint64_t ttl = uconf(h)->pool_idle_ttl;
        arc_px__set_timer(w, u, life > age && life - age < ttl ? life - age : ttl);
    }
}

/* Clients paused on a stream's queue, now below the bound: resume them,
 * one at a time (resuming one may end exchanges and free streams, so the
 * walk starts over; each stream is woken once). */
static void wake_clients(struct arc_worker *w, struct arc_h2u *h)
{
    struct arc_conn *u = h->u;
    for (;;) {
        struct h2us *st = h->streams;
        while (st && !(st->client_waits && st->ex && !arc_px__h2u_full(st->ex)))
            st = st->next;
        if (!st)
            return;
        st->client_waits = false;
        codec_of(st->ex)->resume(w, st->ex);
        if (u->closing || u->u.h2 != h)
            return;
    }
}

/* One send per client for everything this input produced. No output of
 * ours is pulled during the walk (in_cb), so no stream is freed under it.
 * True if the connection was closed meanwhile and h is gone. */
static bool flush_clients(struct arc_worker *w, struct arc_h2u *h)
{
    h->in_cb++;
    for (struct h2us *st = h->streams; st; st = st->next)
        if (st->client_dirty) {
            st->client_dirty = false;
            if (st->ex)
                arc_px__flush_soon(w, st->ex->client);
        }
    h->in_cb--;
    if (h->free_pending && h->in_cb == 0) {
        h2u_free(h);
        return true;
    }
    return false;
}

void arc_px__h2u_pull(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_h2u *h = u->u.h2;
    if (!h || h->in_cb || u->closing)
        return;
    while (!arc_px__outq_high(u)) {
        const uint8_t *p;
        h->in_cb++;
        size_t n = arc_h2_output(h->s, &p);
        h->in_cb--;
        if (h->free_pending) {
            h2u_free(h);
            return;
        }
        if (u->closing || n == 0)
            break;
        arc_px__queue_copy(w, u, p, n);
        arc_h2_sent(h->s, n);
    }
}

void arc_px__h2u_connected(struct arc_worker *w, struct arc_conn *u, int res)
{
    struct arc_h2u *h = u->u.h2;
    if (res < 0) {
        arc_m_add(arc_m_up(&w->metrics, u->u.up->id, ARC_MU_CONNECT_ERRORS), 1);
        arc_m_add(arc_m_ep(&w->metrics, u->u.ep_rt->id, ARC_ME_CONNECT_ERRORS), 1);
        if (h)
            fail_all(w, h, 502, ARC_ERR_UPSTREAM_CONNECT);
        arc_px__conn_close(w, u);
        return;
    }
    u->u.connected = true;
    u->tp->start(w, u);
    if (u->closing)
        return;
    if (!u->tls)
        arc_px__h2u_ready(w, u, "h2");  /* h2c: prior knowledge */
    else
        arc_px__flush(w, u);
}

void arc_px__h2u_ready(struct arc_worker *w, struct arc_conn *u, const char *alpn)
{
    struct arc_h2u *h = u->u.h2;
    if (!h)
        return;
    if (!alpn || strcmp(alpn, "h2") != 0) {
        /* The server does not speak HTTP/2 over TLS: a failed connect. */
        arc_m_add(arc_m_up(&w->metrics, u->u.up->id, ARC_MU_CONNECT_ERRORS), 1);
        arc_m_add(arc_m_ep(&w->metrics, u->u.ep_rt->id, ARC_ME_CONNECT_ERRORS), 1);
        fail_all(w, h, 502, ARC_ERR_UPSTREAM_CONNECT);
        arc_px__conn_close(w, u);
        return;
    }
    h->ready = true;
    u->u.state = US_H2;
    arc_tw_cancel(&w->tw, &u->timer);
    for (struct h2us *st = h->streams; st; st = st->next)
        if (st->ex) {
            st->ex->state = EX_UPSTREAM;
            st->ex->t_conn_ns = w->now_ns;
            stream_arm(w, st);
        }
    arc_px__flush(w, u);
    if (!u->closing)
        arc_px__arm_recv(w, u);
    if (!u->closing)
        check(w, h);
}

void arc_px__h2u_input(struct arc_worker *w, struct arc_conn *u, const char *p, size_t len)
{
    struct arc_h2u *h = u->u.h2;
    if (!h || u->closing)
        return;
    h->in_cb++;
    int rc = arc_h2_recv(h->s, (const uint8_t *)p, len);
    h->in_cb--;
    if (h->free_pending) {
        h2u_free(h);
        return;
    }
    if (u->closing)
        return;
    if (rc < 0)
        arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_BAD], 1);
    if (flush_clients(w, h) || u->closing)
        return;
    arc_px__flush(w, u);
    if (u->closing || u->u.h2 != h)
        return;
    wake_clients(w, h);
    if (!u->closing && u->u.h2 == h)
        check(w, h);
    if (!u->closing)
        arc_px__arm_recv(w, u);
}

void arc_px__h2u_eof(struct arc_worker *w, struct arc_conn *u, int err)
{
    (void)err;
    struct arc_h2u *h = u->u.h2;
    if (h)
        fail_all(w, h, 502, ARC_ERR_UPSTREAM_RESET);
    arc_px__conn_close(w, u);           /* (h, if still there, is freed by the close) */
}

void arc_px__h2u_pump(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_h2u *h = u->u.h2;
    if (!h || u->closing)
        return;
    /* Response bytes the client side has taken since: reopen windows. */
    for (struct h2us *st = h->streams; st; st = st->next)
        if (st->unconsumed && (!st->ex || !arc_px__ex_down_blocked(st->ex))) {
            arc_h2_consume(h->s, st->sid, st->unconsumed);
            st->unconsumed = 0;
        }
    arc_px__flush(w, u);
    if (!u->closing && u->u.connected && !u->starved && u->stash_n == 0)
        arc_px__arm_recv(w, u);
}

void arc_px__h2u_sent(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_h2u *h = u->u.h2;
    if (!h || u->closing)
        return;
    arc_px__flush(w, u);
    if (u->closing || u->u.h2 != h)
        return;
    /* Deadlines move with this stream's own progress (its body bytes taken
     * by the server), never with the connection's other traffic. */
    for (struct h2us *st = h->streams; st; st = st->next)
        if (st->ex && st->pulled != st->armed_pulled)
            stream_arm(w, st);
    wake_clients(w, h);
    if (!u->closing && u->u.h2 == h) {
        check(w, h);
        arc_px__h2u_pump(w, u);
    }
}

void arc_px__h2u_timeout(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_h2u *h = u->u.h2;
    if (h && h->ready && h->n_streams)
        return;                         /* (ready: its own timer is only pool_idle_ttl) */
    if (h && !h->ready) {
        /* connect_timeout (TCP and TLS handshake) */
        arc_m_add(arc_m_up(&w->metrics, u->u.up->id, ARC_MU_TIMEOUTS), 1);
        arc_m_add(arc_m_ep(&w->metrics, u->u.ep_rt->id, ARC_ME_TIMEOUT + ARC_MT_CONNECT), 1);
        fail_all(w, h, 504, ARC_ERR_UPSTREAM_TIMEOUT);
    }
    arc_px__conn_close(w, u);
}

static void stream_timeout(struct arc_timer *t, uint64_t now)
{
    (void)now;
    struct h2us *st = (struct h2us *)((char *)t - offsetof(struct h2us, timer));
    struct arc_h2u *h = st->h;
    struct arc_worker *w = h->w;
    struct arc_exchange *ex = st->ex;
    if (!ex)
        return;
    if (!st->got_head && st->with_body && !st->body_ended && arc_px__bytes_len(&st->q) == 0) {
        /* Everything the client sent is upstream: the client is the one
         * that stalled its body (node.read_timeout). */
        arc_px__ex_error(w, ex, 408, ARC_ERR_CLIENT_TIMEOUT);
        return;
    }
    arc_m_add(arc_m_up(&w->metrics, h->u->u.up->id, ARC_MU_TIMEOUTS), 1);
    /* (the phase stream_arm chose the deadline for) */
    enum arc_m_phase ph = st->got_head ? ARC_MT_READ
                          : arc_px__bytes_len(&st->q) ? ARC_MT_WRITE : ARC_MT_TTFB;
    arc_m_add(arc_m_ep(&w->metrics, h->u->u.ep_rt->id, ARC_ME_TIMEOUT + ph), 1);
    if (!st->got_head && arc_px__retry_possible(w, ex, ARC_RK_STATUS, 504)) {
        /* a write or first-byte timeout is the 504 it would be answered with */
        arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_TIMEOUT], 1);
        arc_px__ep_result(w, ex->target, ex->ep, false);
        arc_px__h2u_detach(w, ex);
        arc_px__retry_start(w, ex, ex->ep);
        return;
    }
    arc_px__ex_error(w, ex, 504, ARC_ERR_UPSTREAM_TIMEOUT);
}

void arc_px__h2u_closed(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_h2u *h = u->u.h2;
    if (!h)
        return;
    pool_unlink(w, h);
    u->u.h2 = NULL;
    /* Freed by fail_all, or by the session call in progress when it returns. */
    h->free_pending = true;
    fail_all(w, h, 502, ARC_ERR_UPSTREAM_RESET);
}

void arc_px__h2u_dispose(struct arc_conn *u)
{
    struct arc_h2u *h = u->u.h2;
    if (!h)
        return;
    for (struct h2us *st = h->streams; st; st = st->next)
        if (st->ex) {
            st->ex->ux = NULL;
            st->ex = NULL;
        }
    u->u.h2 = NULL;
    h2u_free(h);
}

/* ------------------------------------------------------------ the exchange's side */

void arc_px__h2u_body(struct arc_worker *w, struct arc_exchange *ex, const char *p, size_t len)
{
    struct h2us *st = ex->ux;
    if (!st || !st->with_body || st->body_ended || len == 0)
        return;
    if (!arc_px__bytes_put(&st->q, p, len)) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return;
    }
    arc_h2_resume(st->h->s, st->sid);
    if (arc_px__h2u_full(ex))
        st->client_waits = true;
    stream_arm(w, st);
}

void arc_px__h2u_body_end(struct arc_worker *w, struct arc_exchange *ex,
                          const struct arc_hdr *trailers, size_t n)
{
    struct h2us *st = ex->ux;
    if (!st || !st->with_body || st->body_ended)
        return;
    st->body_ended = true;
    /* Kept (in the exchange's arena) in case the stream must be sent again. */
    arc_px__h2u_keep_trailers(ex, trailers, n);
    st->tr = ex->rtr;
    st->n_tr = ex->n_rtr;
    arc_h2_end_body(st->h->s, st->sid, (const struct arc_h2_header *)trailers, n);
    stream_arm(w, st);
}

bool arc_px__h2u_full(const struct arc_exchange *ex)
{
    const struct h2us *st = ex->ux;
    return st && arc_px__bytes_len(&st->q) >= st->h->u->out_high;
}

void arc_px__h2u_detach(struct arc_worker *w, struct arc_exchange *ex)
{
    struct h2us *st = ex->ux;
    if (!st)
        return;
    struct arc_h2u *h = st->h;
    unpair(st);
    /* Stop the stream unless both sides are done with it already. */
    bool done = st->remote_ended && (!st->with_body || (st->body_ended && !arc_px__bytes_len(&st->q)));
    if (!done)
        arc_h2_reset(h->s, st->sid, H2_CANCEL);
    if (st->unconsumed) {
        arc_h2_consume(h->s, st->sid, st->unconsumed);
        st->unconsumed = 0;
    }
    arc_px__bytes_free(&st->q);
    if (!h->in_cb && !h->u->closing)
        arc_px__flush(w, h->u);
}

/* ------------------------------------------------------------ reloads */

struct arc_h2u *arc_px__h2u_next(const struct arc_h2u *h)
{
    return h->next;
}

void arc_px__h2u_adopt(struct arc_worker *w, struct arc_h2u *h)
{
    struct arc_conn *u = h->u;
    if (h->dead || u->closing || arc_px__up_repoint(w, u, w->snap))
        return;
    h->dead = true;                     /* no new streams; closed with its last one */
    if (h->n_streams == 0 && !h->in_cb)
        arc_px__conn_close(w, u);
}
