/*
 * The upstream side of an exchange, speaking HTTP/1.1 to the service
 * (the endpoint is picked in pick.c): the circuit-breaking limits and the wait queue for a connection, taking a
 * pooled keep-alive connection or connecting, reading the response head and
 * streaming the body back through the client codec, replaying a request
 * that died on a stale pooled connection, action.retry (backoff, another
 * endpoint, the request replayed byte-exact), Upgrade tunnels, and
 * returning connections to the per-worker pool.
 *
 * An upstream connection pairs with an exchange (u->u.ex, ex->up), never
 * with a client connection: everything it tells the client goes through
 * the exchange's codec.
 *
 * Upstream connection states (enum ustate):
 *
 *   US_CONNECTING ──connected──▶ US_BUSY ──response done, reusable──▶ US_IDLE (pool)
 *        │                         │  └──response done, not reusable / error──▶ closed
 *        └──refused, timeout──▶ closed   └──101──▶ US_TUNNEL ──both sides closed──▶ closed
 *   US_IDLE ──checked out──▶ US_BUSY;  US_IDLE ──EOF, stray bytes, idle_ttl──▶ closed
 *
 * Deadlines: connect_timeout while connecting, write_timeout while request
 * bytes wait on the upstream, ttfb_timeout from the last request byte to
 * the response head, read_timeout between response bytes, pool idle_ttl.
 *
 * Between attempts an exchange has no upstream connection (ex->retry_wait):
 *
 *   failed attempt ──retry allowed──▶ backoff (ex->up_timer) ──fires──▶ next attempt
 *   over a connection limit ──queue has room──▶ waiting (cb_wait, up_timer =
 *        pending_timeout) ──a connection given back or closed: woken──▶ attempt
 *        (still blocked: back to the front) ──pending_timeout──▶ 503
 */
#include "core/log.h"
#include "proxy/proxy_int.h"
#include "plugin/plugin.h"
#include "net/net.h"
#include "upstream/active.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct arc_upstream_conf *uconf(const struct arc_conn *u)
{
    return u->u.up->conf;
}

static const struct arc_codec_vt *codec_of(const struct arc_exchange *ex)
{
    return ex->client->c.codec;
}

#define set_timer arc_px__set_timer

/* How an attempt failed, for action.retry.on. */
enum rkind { RK_CONNECT, RK_RESET, RK_STATUS };

static bool retry_possible(struct arc_worker *w, struct arc_exchange *ex, enum rkind rk,
                           int status);
static void start_retry(struct arc_worker *w, struct arc_exchange *ex, int failed_ep);
static void retry_setup(struct arc_worker *w, struct arc_exchange *ex, const char *head,
                        size_t len);
static void keep(struct arc_exchange *ex, const void *p, size_t len);
static void fail_attempt(struct arc_worker *w, struct arc_conn *u, int status,
                         enum arc_err_kind k, enum rkind rk);
static void wake(struct arc_worker *w, uint32_t up_id);

/* ------------------------------------------------------------ pairing */

static void attach(struct arc_exchange *ex, struct arc_conn *u)
{
    ex->up = u;
    u->u.ex = ex;
    u->u.got_bytes = false;
    u->u.head_done = false;
    u->u.keep_alive = false;
    u->u.extra = false;
    ex->attempts++;
}

static void detach(struct arc_exchange *ex, struct arc_conn *u)
{
    if (ex && ex->up == u)
        ex->up = NULL;
    u->u.ex = NULL;
}

void arc_px__tunnel_check(struct arc_worker *w, struct arc_exchange *ex)
{
    struct arc_conn *c = ex->client, *u = ex->up;
    if (!u || !c->eof || !u->eof)
        return;
    if (!arc_px__out_idle(c) || !arc_px__out_idle(u))
        return;
    arc_px__client_abort(w, c, EXO_TUNNEL_END);
}

/* ------------------------------------------------------------ pool */

void arc_px__pool_remove(struct arc_worker *w, struct arc_conn *u)
{
    struct pool *pl = &w->pools[u->u.ep_rt->id];
    if (u->u.pool_prev)
        u->u.pool_prev->u.pool_next = u->u.pool_next;
    else
        pl->head = u->u.pool_next;
    if (u->u.pool_next)
        u->u.pool_next->u.pool_prev = u->u.pool_prev;
    u->u.pool_next = u->u.pool_prev = NULL;
    u->u.in_pool = false;
    pl->n_idle--;
    arc_m_sub(arc_m_up(&w->metrics, u->u.up->id, ARC_MU_POOL_IDLE), 1);
}

static struct arc_conn *pool_take(struct arc_worker *w, const struct arc_exchange *ex,
                                  const struct arc_upstream_rt *up, int ep)
{
    struct pool *pl = &w->pools[up->eps[ep].id];
    while (pl->head) {
        struct arc_conn *u = pl->head;
        /* A TLS connection made for another config generation may have
         * verified the server differently: only its own generation's
         * exchanges use it. */
        if (u->tls && u->u.snap != ex->snap)
            return NULL;
        arc_px__pool_remove(w, u);
        /* An idle connection keeps a receive armed, so an upstream close is
         * seen (and the connection dropped) before we would pick it. A
         * connection past its lifetime is retired here rather than reused. */
        if (u->eof || u->stash_n || w->now_ms - u->created_ms >= uconf(u)->pool_max_lifetime) {
            arc_px__conn_close(w, u);
            continue;
        }
        return u;
    }
    return NULL;
}

static void up_release(struct arc_worker *w, struct arc_conn *u, bool reusable)
{
    u->u.ex = NULL;
    /* Pools hold connections of the current config only. */
    if (reusable && !arc_px__up_repoint(w, u, w->snap))
        reusable = false;
    const struct arc_upstream_conf *uc = uconf(u);
    struct pool *pl = &w->pools[u->u.ep_rt->id];
    if (!reusable || u->eof || !arc_px__out_idle(u) || u->stash_n || u->hlen ||
        pl->n_idle >= uc->pool_max_idle ||
        w->now_ms - u->created_ms >= uc->pool_max_lifetime) {
        arc_px__conn_close(w, u);
        return;
    }
    u->u.state = US_IDLE;
    u->u.in_pool = true;
    u->u.reused = true;
    u->u.pool_prev = NULL;
    u->u.pool_next = pl->head;
    if (pl->head)
        pl->head->u.pool_prev = u;
    pl->head = u;
    pl->n_idle++;
    arc_m_add(arc_m_up(&w->metrics, u->u.up->id, ARC_MU_POOL_IDLE), 1);
    set_timer(w, u, uc->pool_idle_ttl);
    arc_px__arm_recv(w, u);
    wake(w, u->u.up->id);
}

/* ------------------------------------------------------------ connect */

struct arc_conn *arc_px__up_connect(struct arc_worker *w, struct arc_snapshot *snap,
                                    const struct arc_upstream_rt *up, int ep)
{
    struct arc_endpoint_rt *e = &up->eps[ep];
    uint32_t maxc = up->conf->pool_max_connections;
    if (maxc && atomic_fetch_add_explicit(e->open_conns, 1, memory_order_relaxed) >= maxc) {
        atomic_fetch_sub_explicit(e->open_conns, 1, memory_order_relaxed);
        errno = EAGAIN;
        return NULL;
    }
    int fd = arc_net_upstream_socket((const struct sockaddr *)&e->ss);
    if (fd < 0) {
        if (maxc)
            atomic_fetch_sub_explicit(e->open_conns, 1, memory_order_relaxed);
        errno = -fd;
        return NULL;
    }
    struct arc_conn *u = arc_px__conn_new(w, CONN_UPSTREAM, fd);
    if (!u) {
        close(fd);
        if (maxc)
            atomic_fetch_sub_explicit(e->open_conns, 1, memory_order_relaxed);
        errno = ENOMEM;
        return NULL;
    }
    u->u.state = US_CONNECTING;
    u->u.snap = arc_px__snap_pin(w, snap);
    u->u.up = up;
    u->u.ep_rt = e;
    u->u.ep = (uint32_t)ep;
    u->u.counted_open = maxc != 0;
    u->u.cb_counted = true;
    w->ups[up->id].n_conns++;
    w->pools[e->id].n_conns++;
    arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_POOL_OPEN), 1);
    if (up->tls) {
        /* Sessions are cached per endpoint and offered on the next
         * connection to it (resumption on pooled reconnects). */
        char key[160];
        snprintf(key, sizeof(key), "%s|%s", up->conf->name, e->text);
        u->tls = calloc(1, sizeof(*u->tls));
        if (!u->tls || arc_tls_conn_init_client(u->tls, up->tls, key) < 0) {
            free(u->tls);
            u->tls = NULL;
            arc_px__conn_close(w, u);
            errno = ENOMEM;
            return NULL;
        }
        u->tp = &arc_px__tls;
    }
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&e->ss, e->len);
    io_uring_sqe_set_data64(sqe, op_ud(OP_CONNECT, u->idx, u->gen));
    u->ops++;
    set_timer(w, u, up->conf->connect_timeout);
    return u;
}

/* ------------------------------------------------------------ circuit breaking */

/*
 * upstreams[].circuit_breaker, per worker: requests in flight per upstream
 * and per endpoint (from the pick to the exchange's end), connections per
 * upstream and per endpoint, and a bounded FIFO of requests waiting for a
 * connection (per upstream, at most max_pending, each for at most
 * pending_timeout). A connection given back to the pool or closed wakes the
 * first waiter on the next timer tick; it takes a pooled connection or
 * connects, or waits on at the front of the queue.
 */

static bool cb_requests_ok(struct arc_worker *w, const struct arc_upstream_rt *up, int ep)
{
    const struct arc_circuit_conf *cc = &up->conf->circuit;
    return !(cc->max_requests && w->ups[up->id].n_reqs >= cc->max_requests) &&
           !(cc->ep_max_requests && w->pools[up->eps[ep].id].n_reqs >= cc->ep_max_requests);
}

static void cb_req_take(struct arc_worker *w, struct arc_exchange *ex,
                        const struct arc_upstream_rt *up, int ep)
{
    ex->cb_req = true;
    ex->cb_up = up->id;
    ex->cb_ep = up->eps[ep].id;
    w->ups[ex->cb_up].n_reqs++;
    w->pools[ex->cb_ep].n_reqs++;
}

static void cb_req_release(struct arc_worker *w, struct arc_exchange *ex)
{
    if (!ex->cb_req)
        return;
    ex->cb_req = false;
    w->ups[ex->cb_up].n_reqs--;
    w->pools[ex->cb_ep].n_reqs--;
}

static bool cb_conn_room(struct arc_worker *w, const struct arc_upstream_rt *up, int ep)
{
    const struct arc_circuit_conf *cc = &up->conf->circuit;
    return !(cc->max_connections && w->ups[up->id].n_conns >= cc->max_connections) &&
           !(cc->ep_max_connections &&
             w->pools[up->eps[ep].id].n_conns >= cc->ep_max_connections);
}

static void overflow(struct arc_worker *w, struct arc_exchange *ex)
{
    arc_m_add(arc_m_up(&w->metrics, ex->target->id, ARC_MU_OVERFLOW), 1);
    arc_px__ex_error(w, ex, 503, ARC_ERR_NO_ENDPOINT);
}

static void wait_unlink(struct arc_worker *w, struct arc_exchange *ex)
{
    struct wup *wu = &w->ups[ex->cb_up];
    if (ex->wait_prev)
        ex->wait_prev->wait_next = ex->wait_next;
    else
        wu->wait_head = ex->wait_next;
    if (ex->wait_next)
        ex->wait_next->wait_prev = ex->wait_prev;
    else
        wu->wait_tail = ex->wait_prev;
    ex->wait_next = ex->wait_prev = NULL;
    wu->n_pending--;
    w->pools[ex->cb_ep].n_pending--;
    ex->cb_wait = false;
    ex->retry_wait = false;
}

static void attempt(struct arc_worker *w, struct arc_exchange *ex, int ep, char *head,
                    size_t head_len);

static void on_wait_timer(struct arc_timer *t, uint64_t now)
{
    struct arc_exchange *ex = arc_container_of(t, struct arc_exchange, up_timer);
    struct arc_worker *w = arc_px__worker();
    wait_unlink(w, ex);
    if (now >= ex->wait_deadline || ex->hold_failed) {
        arc_m_add(arc_m_up(&w->metrics, ex->target->id, ARC_MU_PENDING_TIMEOUTS), 1);
        overflow(w, ex);
        return;
    }
    ex->cb_requeue = true;              /* still blocked: back to the front */
    attempt(w, ex, ex->ep, NULL, 0);
}

/* Over a connection limit: wait in the upstream's queue when it has room
 * (the request's bytes so far move into ex->rbuf; head is taken). False:
 * no room, head untouched. */
static bool enqueue(struct arc_worker *w, struct arc_exchange *ex, int ep, char *head,
                    size_t head_len)
{
    const struct arc_upstream_rt *up = ex->target;
    const struct arc_circuit_conf *cc = &up->conf->circuit;
    struct wup *wu = &w->ups[up->id];
    struct pool *pl = &w->pools[up->eps[ep].id];
    bool again = ex->cb_requeue;
    ex->cb_requeue = false;
    if (!again && (!cc->max_pending || wu->n_pending >= cc->max_pending ||
                   (cc->ep_max_pending && pl->n_pending >= cc->ep_max_pending)))
        return false;
    if (head) {
        if (!ex->rbuf_on) {
            if (ex->rcap < head_len) {
                char *b = realloc(ex->rbuf, head_len);
                if (!b)
                    return false;
                ex->rbuf = b;
                ex->rcap = head_len;
            }
            memcpy(ex->rbuf, head, head_len);
            ex->rlen = ex->rhead = head_len;
        }
        free(head);
    }
    ex->cb_wait = ex->retry_wait = true;
    ex->state = EX_CONNECTING;
    ex->cb_up = up->id;                 /* (the same as its request count's) */
    ex->cb_ep = up->eps[ep].id;
    if (again) {
        ex->wait_next = wu->wait_head;
        if (wu->wait_head)
            wu->wait_head->wait_prev = ex;
        else
            wu->wait_tail = ex;
        wu->wait_head = ex;
    } else {
        ex->wait_deadline = w->now_ms + cc->pending_timeout;
        ex->wait_prev = wu->wait_tail;
        if (wu->wait_tail)
            wu->wait_tail->wait_next = ex;
        else
            wu->wait_head = ex;
        wu->wait_tail = ex;
    }
    wu->n_pending++;
    pl->n_pending++;
    ex->cb_woken = false;
    arc_timer_init(&ex->up_timer, on_wait_timer);
    arc_tw_schedule(&w->tw, &ex->up_timer, ex->wait_deadline);
    return true;
}

/* A connection of upstream `up_id` was given back or closed: the first
 * waiter tries again (on the next tick: never inside the caller). */
static void wake(struct arc_worker *w, uint32_t up_id)
{
    if (up_id >= w->n_ups)
        return;
    struct arc_exchange *ex = w->ups[up_id].wait_head;
    if (!ex || ex->cb_woken)
        return;
    ex->cb_woken = true;
    arc_tw_schedule(&w->tw, &ex->up_timer, w->now_ms);
}

void arc_px__up_conn_gone(struct arc_worker *w, struct arc_conn *u)
{
    if (u->u.cb_counted) {
        u->u.cb_counted = false;
        w->ups[u->u.up->id].n_conns--;
        w->pools[u->u.ep_rt->id].n_conns--;
    }
    wake(w, u->u.up->id);
}

void arc_px__up_ex_end(struct arc_worker *w, struct arc_exchange *ex)
{
    arc_tw_cancel(&w->tw, &ex->up_timer);   /* (a no-op when not armed) */
    if (ex->cb_wait)
        wait_unlink(w, ex);
    ex->retry_wait = false;
    cb_req_release(w, ex);
}

/* ------------------------------------------------------------ attempts */

/* Sends ex's request to endpoint ep: `head` (owned) on the first attempt,
 * else the bytes kept in ex->rbuf. May end ex. */
static void attempt(struct arc_worker *w, struct arc_exchange *ex, int ep, char *head,
                    size_t head_len)
{
    const struct arc_upstream_rt *up = ex->target;
    ex->ep = ep;
    ex->t_up_ns = w->now_ns;
    ex->t_conn_ns = ex->t_head_ns = 0;
    struct arc_conn *u = pool_take(w, ex, up, ep);
    bool reused = u != NULL;
    if (!u) {
        int err = EAGAIN;
        if (cb_conn_room(w, up, ep)) {
            u = arc_px__up_connect(w, ex->snap, up, ep);
            err = u ? 0 : errno;
        }
        if (!u && err == EAGAIN) {
            /* a connection limit: wait for a connection, or fail fast */
            if (enqueue(w, ex, ep, head, head_len))
                return;
            free(head);
            overflow(w, ex);
            return;
        }
        if (!u) {
            free(head);
            arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_CONNECT_ERRORS), 1);
            arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_CONNECT_ERRORS), 1);
            arc_px__ep_result(w, up, ep, false);
            if (retry_possible(w, ex, RK_CONNECT, 502)) {
                arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_CONNECT], 1);
                start_retry(w, ex, ep);
                return;
            }
            arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_CONNECT);
            return;
        }
        ex->state = EX_CONNECTING;
    } else {
        u->u.state = US_BUSY;
        ex->state = EX_UPSTREAM;
        ex->t_conn_ns = ex->t_up_ns;
        arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_REUSED), 1);
        set_timer(w, u, uconf(u)->write_timeout);
    }
    ex->cb_requeue = false;
    attach(ex, u);
    if (head) {
        /* A request without a body sent on a reused connection may meet a
         * close the upstream sent just before our bytes arrived; keep its
         * head so it can be replayed once on a fresh connection (RFC 9112
         * §9.3.1). */
        if (reused && ex->req.body == ARC_H1_BODY_NONE && !ex->req.upgrade && ex->idempotent) {
            ex->replay = malloc(head_len);
            if (ex->replay) {
                memcpy(ex->replay, head, head_len);
                ex->replay_len = head_len;
            }
        }
        arc_px__queue_owned(w, u, head, head_len);
    } else {
        arc_px__queue_copy(w, u, ex->rbuf, ex->rlen);
    }
    arc_px__ex_lb_start(w, ex, ep);
    arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_REQUESTS), 1);
    arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_REQUESTS), 1);
    arc_px__up_pump(w, u);
    /* The client's body was held while no attempt could take it. */
    if (!head && !ex->req_done && ex->up == u)
        codec_of(ex)->resume(w, ex);
}

/* ------------------------------------------------------------ CONNECT */

/* CONNECT (a route that lists it in match.methods): the tunnel goes to the
 * route's upstream endpoint, over a connection of its own (never pooled,
 * never reused), whatever authority the client named; the client gets its
 * 200 once that connection is up (TLS upstreams: after the handshake), then
 * bytes are relayed both ways like after a 101. No request head is sent,
 * and a failed connect is a 502 (a tunnel is not retried). */
static void connect_start(struct arc_worker *w, struct arc_exchange *ex, int ep)
{
    const struct arc_upstream_rt *up = ex->target;
    if (up->conf->protocol == ARC_UP_HTTP2) {
        /* (a tunnel is a TCP stream; an HTTP/2 upstream would need an
         * extended CONNECT of its own) */
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_CONNECT);
        return;
    }
    ex->t_up_ns = w->now_ns;
    struct arc_conn *u = cb_conn_room(w, up, ep) ? arc_px__up_connect(w, ex->snap, up, ep) : NULL;
    if (!u) {
        arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_CONNECT_ERRORS), 1);
        arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_CONNECT_ERRORS), 1);
        arc_px__ex_error(w, ex, errno == EAGAIN ? 503 : 502,
                         errno == EAGAIN ? ARC_ERR_NO_ENDPOINT : ARC_ERR_UPSTREAM_CONNECT);
        return;
    }
    ex->state = EX_CONNECTING;
    attach(ex, u);
    arc_px__ex_lb_start(w, ex, ep);
    arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_REQUESTS), 1);
}

/* The tunnel's upstream connection is usable: answer 200, relay. */
static void connect_established(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_exchange *ex = u->u.ex;
    if (!ex->t_conn_ns)
        ex->t_conn_ns = w->now_ns;
    ex->t_head_ns = ex->t_conn_ns;
    ex->status = 200;
    arc_tw_cancel(&w->tw, &ex->deadline);   /* a tunnel lives as long as its peers */
    arc_px__ex_lb_end(w, ex);
    arc_px__ep_result(w, u->u.up, (int)u->u.ep, true);
    ex->resp_started = true;
    ex->req_done = true;
    ex->state = EX_TUNNEL;
    u->u.state = US_TUNNEL;
    u->u.head_done = true;
    arc_tw_cancel(&w->tw, &u->timer);
    const struct arc_resp resp = { .status = 200, .body = ARC_H1_BODY_NONE, .upgrade = true };
    codec_of(ex)->send_head(w, ex, &resp);
    codec_of(ex)->resume(w, ex);
    arc_px__up_pump(w, u);
}

void arc_px__up_start(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_upstream_rt *up = ex->target;
    int ep = arc_px__pick(w, ex);
    if (ep < 0) {
        arc_px__ex_error(w, ex, 503, ARC_ERR_NO_ENDPOINT);
        return;
    }
    ex->ep = ep;
    if (!cb_requests_ok(w, up, ep)) {
        overflow(w, ex);
        return;
    }
    cb_req_take(w, ex, up, ep);
    if (ex->req.mbit == ARC_M_CONNECT) {
        connect_start(w, ex, ep);
        return;
    }
    if (up->conf->protocol == ARC_UP_HTTP2) {
        retry_setup(w, ex, "", 0);      /* (rbuf keeps the body alone) */
        arc_px__h2u_start(w, ex, ep);
        return;
    }
    size_t head_len;
    char *head = arc_px__build_request_head(w, ex, &head_len);
    if (!head) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return;
    }
    retry_setup(w, ex, head, head_len);
    attempt(w, ex, ep, head, head_len);
}

/* Replays the request on a fresh connection; false if that is impossible. */
static bool retry(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_exchange *ex = u->u.ex;
    if (!ex->replay || ex->attempts > 1 || u->u.got_bytes || !u->u.reused)
        return false;
    const struct arc_upstream_rt *up = ex->target;
    int ep = ex->ep;
    detach(ex, u);
    arc_px__conn_close(w, u);
    arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_RETRIES), 1);
    struct arc_conn *nu = arc_px__up_connect(w, ex->snap, up, ep);
    if (!nu) {
        arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_CONNECT_ERRORS), 1);
        arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_CONNECT_ERRORS), 1);
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_CONNECT);
        return true;
    }
    ex->state = EX_CONNECTING;
    ex->t_up_ns = w->now_ns;
    ex->t_conn_ns = 0;
    attach(ex, nu);
    char *head = ex->replay;
    ex->replay = NULL;
    arc_px__queue_owned(w, nu, head, ex->replay_len);
    arc_px__up_pump(w, nu);
    return true;
}

void arc_px__up_connected(struct arc_worker *w, struct arc_conn *u, int res)
{
    if (u->u.h2) {
        arc_px__h2u_connected(w, u, res);
        return;
    }
    struct arc_exchange *ex = u->u.ex;
    if (res < 0) {
        arc_m_add(arc_m_up(&w->metrics, u->u.up->id, ARC_MU_CONNECT_ERRORS), 1);
        arc_m_add(arc_m_ep(&w->metrics, u->u.ep_rt->id, ARC_ME_CONNECT_ERRORS), 1);
        if (ex) {
            fail_attempt(w, u, 502, ARC_ERR_UPSTREAM_CONNECT, RK_CONNECT);
            return;
        }
        arc_px__ep_result(w, u->u.up, (int)u->u.ep, false);
        arc_px__conn_close(w, u);
        return;
    }
    u->u.connected = true;
    u->u.state = US_BUSY;
    u->tp->start(w, u);
    if (!ex) {
        arc_px__conn_close(w, u);
        return;
    }
    ex->state = EX_UPSTREAM;
    if (!u->tls)
        ex->t_conn_ns = w->now_ns;   /* (TLS: once the handshake is done, up_ready) */
    if (ex->req.mbit == ARC_M_CONNECT && !u->tls) {
        connect_established(w, u);
        return;
    }
    set_timer(w, u, uconf(u)->write_timeout);
    arc_px__up_pump(w, u);
}

/* ------------------------------------------------------------ response */

static void finish(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_exchange *ex = u->u.ex;
    ex->resp_done = true;
    bool reusable = u->u.keep_alive && u->u.resp_body != ARC_H1_BODY_CLOSE &&
                    ex->req_done && !u->u.extra && arc_px__out_idle(u);
    detach(ex, u);
    up_release(w, u, reusable);
    arc_px__ex_end(w, ex, EXO_COMPLETE);
}

/* The attempt on u failed before a response reached the client: retried
 * when action.retry allows (status and rk say how it failed), else the
 * error answer. */
static void fail_attempt(struct arc_worker *w, struct arc_conn *u, int status,
                         enum arc_err_kind k, enum rkind rk)
{
    struct arc_exchange *ex = u->u.ex;
    int ep = (int)u->u.ep;
    arc_px__ep_result(w, u->u.up, ep, false);
    detach(ex, u);
    arc_px__conn_close(w, u);
    if (retry_possible(w, ex, rk, status)) {
        arc_m_add(&w->metrics.errors[k], 1);
        start_retry(w, ex, ep);
        return;
    }
    arc_px__ex_error(w, ex, status, k);
}

static void fail_response(struct arc_worker *w, struct arc_conn *u, int status, enum arc_err_kind k)
{
    fail_attempt(w, u, status, k, RK_STATUS);
}

static size_t read_resp_head(struct arc_worker *w, struct arc_conn *u, const char *p, size_t len)
{
    struct arc_exchange *ex = u->u.ex;
    const struct arc_snapshot *s = w->snap;
    size_t cap = (size_t)s->limits.max_header_bytes + 1;
    struct arc_px_head h;
    if (!arc_px__head_view(u, p, len, cap, &h)) {
        fail_response(w, u, 502, ARC_ERR_UPSTREAM_BAD);
        return len;
    }
    struct arc_h1_response r;
    enum arc_h1_status rc = ARC_H1_INCOMPLETE;
    if (arc_px__head_may_be_complete(u, &h) || h.len >= cap)
        rc = arc_h1_parse_response(h.buf, h.len, &s->limits, ex->is_head, false,
                                   w->hdrs, s->limits.max_headers, &r);
    if (rc == ARC_H1_INCOMPLETE) {
        if (!arc_px__head_keep(u, &h, p, len, cap))
            fail_response(w, u, 502, ARC_ERR_UPSTREAM_BAD);
        return len;
    }
    if (rc != ARC_H1_OK) {
        /* Never relay what we cannot frame unambiguously. */
        arc_px__hbuf_reset(u);
        fail_response(w, u, 502, ARC_ERR_UPSTREAM_BAD);
        return len;
    }
    size_t consumed = arc_px__head_used(u, &h, r.head_len);
    struct arc_resp resp = {
        .status = r.status, .reason = r.reason, .hdrs = r.headers, .n_hdrs = r.n_headers,
        .body = r.body, .content_length = r.content_length,
        .upgrade = (r.flags & ARC_H1_F_UPGRADE) != 0,
    };

    if (r.status < 200 && r.status != 101) {
        /* Interim responses: 100 Continue is ours to answer (we did, and
         * stripped Expect); others (103 Early Hints) go to the client. */
        if (r.status != 100)
            codec_of(ex)->interim(w, ex, &resp);
        arc_px__hbuf_reset(u);
        return consumed;
    }
    if (r.status == 101) {
        if (!ex->req.upgrade || !resp.upgrade) {
            arc_px__hbuf_reset(u);
            fail_response(w, u, 502, ARC_ERR_UPSTREAM_BAD);
            return len;
        }
        ex->status = 101;
        ex->t_head_ns = w->now_ns;
        arc_tw_cancel(&w->tw, &ex->deadline);   /* a tunnel lives as long as its peers */
        arc_px__ex_lb_end(w, ex);
        ex->resp_started = true;
        ex->req_done = true;
        ex->state = EX_TUNNEL;
        u->u.state = US_TUNNEL;
        u->u.head_done = true;
        codec_of(ex)->send_head(w, ex, &resp);
        arc_px__hbuf_reset(u);
        arc_tw_cancel(&w->tw, &u->timer);
        codec_of(ex)->resume(w, ex);
        return consumed;
    }
    arc_px__ep_result(w, u->u.up, (int)u->u.ep, r.status < 500);
    if (retry_possible(w, ex, RK_STATUS, r.status)) {
        /* The upstream's answer is dropped unseen (its body unread, so the
         * connection cannot be reused) and the request goes again. */
        int ep = (int)u->u.ep;
        arc_px__hbuf_reset(u);
        detach(ex, u);
        arc_px__conn_close(w, u);
        start_retry(w, ex, ep);
        return len;
    }
    ex->status = r.status;
    ex->t_head_ns = w->now_ns;
    u->u.head_done = true;
    u->u.resp_body = r.body;
    u->u.resp_left = r.content_length;
    u->u.keep_alive = (r.flags & ARC_H1_F_KEEP_ALIVE) != 0;
    arc_h1_chunked_init(&u->u.resp_chunk);
    if (ex->mirror)
        arc_px__mirror_resp_head(ex, &resp);
    if (ex->pl && !arc_px__plugins_response(w, ex, &resp)) {
        arc_px__hbuf_reset(u);          /* answered locally; u was dropped */
        return len;
    }
    codec_of(ex)->send_head(w, ex, &resp);
    /* A client codec that takes the data alone (HTTP/2) gets the trailers
     * as fields (the HTTP/1.1 pass-through carries them in the bytes). */
    if (r.body == ARC_H1_BODY_CHUNKED && !ex->resp_passthrough)
        arc_h1_chunked_keep_trailers(&u->u.resp_chunk, &ex->arena);
    arc_px__hbuf_reset(u);
    ex->resp_started = true;
    ex->state = EX_STREAMING;
    if (r.body == ARC_H1_BODY_NONE || (r.body == ARC_H1_BODY_LENGTH && r.content_length == 0))
        ex->resp_done = true;
    return consumed;
}

static size_t resp_body(struct arc_worker *w, struct arc_conn *u, int32_t bid, const char *p, size_t len)
{
    struct arc_exchange *ex = u->u.ex;
    const struct arc_codec_vt *cv = codec_of(ex);
    size_t n = 0;
    switch (u->u.resp_body) {
    case ARC_H1_BODY_LENGTH:
        n = (size_t)ARC_MIN((uint64_t)len, u->u.resp_left);
        u->u.resp_left -= n;
        if (u->u.resp_left == 0)
            ex->resp_done = true;
        if (ex->mirror)
            arc_px__mirror_resp_body(ex, p, n);
        cv->send_body(w, ex, bid, p, n, false);
        return n;
    case ARC_H1_BODY_CHUNKED:
        while (n < len) {
            size_t used, dlen;
            const char *data, *err;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&u->u.resp_chunk, p + n, len - n,
                                                          &used, &data, &dlen, &err);
            n += used;
            if (rc == ARC_H1_CHUNK_ERROR) {
                arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_BAD], 1);
                ex->err = ARC_ERR_UPSTREAM_BAD + 1;
                if (ex->resp_passthrough)
                    cv->send_body(w, ex, bid, p, n - used, true);  /* the valid prefix */
                arc_px__ex_cut(w, ex);
                return len;
            }
            if (rc == ARC_H1_CHUNK_DATA && ex->mirror)
                arc_px__mirror_resp_body(ex, data, dlen);
            if (!ex->resp_passthrough) {
                if (rc == ARC_H1_CHUNK_DATA)
                    cv->send_body(w, ex, bid, data, dlen, false);
                if (rc == ARC_H1_CHUNK_DONE) {
                    struct arc_hdr *t;
                    size_t nt = arc_px__chunk_trailers(ex, &u->u.resp_chunk, &t);
                    if (nt)
                        cv->trailers(w, ex, t, nt);
                    ex->resp_done = true;
                }
                if (rc != ARC_H1_CHUNK_DATA)
                    break;
                continue;
            }
            if (rc == ARC_H1_CHUNK_DONE) {
                ex->resp_done = true;
                break;
            }
            if (rc == ARC_H1_CHUNK_AGAIN)
                break;
        }
        if (ex->resp_passthrough)
            cv->send_body(w, ex, bid, p, n, true);
        return n;
    default: /* close-delimited */
        if (ex->mirror)
            arc_px__mirror_resp_body(ex, p, len);
        cv->send_body(w, ex, bid, p, len, false);
        return len;
    }
}

/* Runs upstream input through the response state machine while the client
 * can take more; returns the bytes consumed (all of them if u was closed),
 * the caller stashes the rest in order. */
static size_t up_process(struct arc_worker *w, struct arc_conn *u, int32_t bid, const char *p, size_t len)
{
    size_t total = 0;
    u->in_process = true;
    while (len > 0 && !u->closing) {
        struct arc_exchange *ex = u->u.ex;
        if (!ex) {
            /* Bytes on an idle pooled connection, or after the response
             * ended: the connection is out of sync and cannot be reused. */
            arc_px__conn_close(w, u);
            break;
        }
        if (arc_px__ex_down_blocked(ex))
            break;
        size_t n;
        if (u->u.state == US_TUNNEL) {
            codec_of(ex)->send_raw(w, ex, bid, p, len);
            n = len;
        } else if (!u->u.head_done) {
            n = read_resp_head(w, u, p, len);
        } else {
            n = resp_body(w, u, bid, p, len);
            set_timer(w, u, uconf(u)->read_timeout);   /* no-op if resp_body closed u */
        }
        p += n;
        len -= n;
        total += n;
        if (!u->closing && u->u.ex == ex && u->u.state == US_BUSY && ex->resp_done) {
            u->u.extra = len > 0;
            u->in_process = false;
            finish(w, u);   /* the exchange's end pumps (and so flushes) the client */
            return total + len;
        }
        if (u->u.ex != ex)
            break;
    }
    u->in_process = false;
    /* One send for everything this receive produced (head + body). */
    if (u->u.ex && !u->closing)
        arc_px__flush_soon(w, u->u.ex->client);
    return u->closing ? total + len : total;
}

static bool up_can_process(const struct arc_conn *u)
{
    return u->u.ex && !arc_px__ex_down_blocked(u->u.ex);
}

void arc_px__up_data(struct arc_worker *w, struct arc_conn *u, int32_t bid, const char *p, size_t len)
{
    if (u->u.h2) {
        arc_px__h2u_input(w, u, p, len);
        return;
    }
    if (u->u.ex)
        u->u.got_bytes = true;
    size_t n = u->stash_n ? 0 : up_process(w, u, bid, p, len);
    if (n < len && !u->closing)
        arc_px__stash(w, u, bid, p + n, len - n);
    arc_px__up_pump(w, u);
}

void arc_px__up_pump(struct arc_worker *w, struct arc_conn *u)
{
    if (u->closing || u->in_process)
        return;
    if (u->u.h2) {
        arc_px__h2u_pump(w, u);
        return;
    }
    arc_px__stash_replay(w, u, up_can_process, up_process);
    if (u->closing)
        return;
    if (u->eof_pending && u->stash_n == 0) {
        u->eof_pending = false;
        arc_px__up_eof(w, u, 0);
        return;
    }
    struct arc_exchange *ex = u->u.ex;
    arc_px__flush(w, u);
    bool want = false;
    switch (u->u.state) {
    case US_IDLE:
        want = true;
        break;
    case US_BUSY:
        want = u->u.connected && ex && !ex->resp_done && !arc_px__ex_down_blocked(ex);
        break;
    case US_TUNNEL:
        want = ex && !arc_px__ex_down_blocked(ex);
        break;
    case US_CONNECTING:
    case US_H2:
        break;
    }
    if (want && !u->starved && u->stash_n == 0)
        arc_px__arm_recv(w, u);
}

void arc_px__up_sent(struct arc_worker *w, struct arc_conn *u)
{
    if (u->u.h2) {
        arc_px__h2u_sent(w, u);
        return;
    }
    struct arc_exchange *ex = u->u.ex;
    if (u->u.state == US_BUSY && ex) {
        if (!arc_px__out_idle(u))
            set_timer(w, u, uconf(u)->write_timeout);
        else if (ex->req_done && !u->u.head_done)
            set_timer(w, u, uconf(u)->ttfb_timeout);
        else if (!ex->req_done)
            /* Waiting for the client's next body bytes: for HTTP/2 no
             * per-connection deadline covers one stream's body. */
            set_timer(w, u, ex->snap->cfg->node.read_timeout);
        /* The client may have paused its body on our backlog. */
        codec_of(ex)->resume(w, ex);
    } else if (u->u.state == US_TUNNEL && ex) {
        struct arc_conn *c = ex->client;
        if (arc_px__out_idle(u) && c->eof)
            arc_px__shutdown_wr(w, u);
        arc_px__tunnel_check(w, ex);
        if (!c->closing)
            codec_of(ex)->resume(w, ex);
    }
    if (!u->closing)
        arc_px__up_pump(w, u);
}

/* ------------------------------------------------------------ eof, timeout */

void arc_px__up_eof(struct arc_worker *w, struct arc_conn *u, int err)
{
    if (u->u.h2) {
        arc_px__h2u_eof(w, u, err);
        return;
    }
    struct arc_exchange *ex = u->u.ex;
    if (!ex || u->u.state == US_IDLE) {
        arc_px__conn_close(w, u);
        return;
    }
    if (u->u.state == US_TUNNEL) {
        if (err == 0) {
            u->eof = true;
            struct arc_conn *c = ex->client;
            if (arc_px__out_idle(c))
                arc_px__shutdown_wr(w, c);
            arc_px__tunnel_check(w, ex);
            return;
        }
        arc_px__client_abort(w, ex->client, EXO_TUNNEL_END);
        return;
    }
    if (err == 0 && u->u.head_done && u->u.resp_body == ARC_H1_BODY_CLOSE && u->stash_n == 0) {
        /* Close-delimited body: EOF is its end. */
        finish(w, u);
        return;
    }
    if (retry(w, u))
        return;
    if (!ex->resp_started) {
        fail_attempt(w, u, 502, ARC_ERR_UPSTREAM_RESET, RK_RESET);
        return;
    }
    arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_RESET], 1);
    ex->err = ARC_ERR_UPSTREAM_RESET + 1;
    arc_px__ex_cut(w, ex);
}

/* Which deadline fired (the one up_sent / up_process armed last). */
static enum arc_m_phase timeout_phase(const struct arc_conn *u)
{
    /* (a TLS handshake still running is part of connecting) */
    if (!u->u.connected || u->u.state == US_CONNECTING || (u->u.ex && !u->u.ex->t_conn_ns))
        return ARC_MT_CONNECT;
    if (u->u.head_done || u->u.state == US_TUNNEL)
        return ARC_MT_READ;
    return arc_px__out_idle(u) ? ARC_MT_TTFB : ARC_MT_WRITE;
}

void arc_px__up_timeout(struct arc_worker *w, struct arc_conn *u)
{
    if (u->u.h2) {
        arc_px__h2u_timeout(w, u);
        return;
    }
    struct arc_exchange *ex = u->u.ex;
    if (!ex || u->u.state == US_IDLE) {
        arc_px__conn_close(w, u);
        return;
    }
    if (u->u.state == US_BUSY && u->u.connected && !ex->req_done && arc_px__out_idle(u)) {
        /* Everything the client sent is upstream: the client is the one
         * that stalled its body (node.read_timeout). */
        detach(ex, u);
        arc_px__conn_close(w, u);
        arc_px__ex_error(w, ex, 408, ARC_ERR_CLIENT_TIMEOUT);
        return;
    }
    arc_m_add(arc_m_up(&w->metrics, u->u.up->id, ARC_MU_TIMEOUTS), 1);
    arc_m_add(arc_m_ep(&w->metrics, u->u.ep_rt->id, ARC_ME_TIMEOUT + timeout_phase(u)), 1);
    if (u->u.state == US_TUNNEL) {
        arc_px__client_abort(w, ex->client, EXO_TUNNEL_END);
        return;
    }
    if (!ex->resp_started) {
        /* A connect that timed out is a connect failure; a first-byte (or
         * write) timeout is the 504 it would be answered with. */
        fail_attempt(w, u, 504, ARC_ERR_UPSTREAM_TIMEOUT,
                     u->u.state == US_CONNECTING ? RK_CONNECT : RK_STATUS);
        return;
    }
    arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_TIMEOUT], 1);
    ex->err = ARC_ERR_UPSTREAM_TIMEOUT + 1;
    arc_px__ex_cut(w, ex);
}

void arc_px__up_ready(struct arc_worker *w, struct arc_conn *u, const char *alpn)
{
    if (u->u.h2)
        arc_px__h2u_ready(w, u, alpn);
    else if (u->u.ex && !u->u.ex->t_conn_ns)
        u->u.ex->t_conn_ns = w->now_ns;
    if (!u->u.h2 && u->u.ex && u->u.ex->req.mbit == ARC_M_CONNECT &&
        u->u.ex->state != EX_TUNNEL)
        connect_established(w, u);
}

/* ------------------------------------------------------------ retries */

/*
 * action.retry: an attempt that failed before anything of a response
 * reached the client (connect failure, reset, a first-byte timeout as 504,
 * or a response status in `on`) is made again after a jittered backoff on
 * the timer wheel, preferably on an endpoint not tried yet, with the
 * request bytes exactly as they were sent (head and body kept in ex->rbuf;
 * a body over max_body is not kept, and its request is not retried).
 * Retries of a route are capped per worker by its budget: at most
 * `budget` percent of its requests over budget_window (plus budget_min),
 * so a failing upstream does not get its load multiplied.
 * HTTP/2 upstreams (h2_upstream.c) follow the same policy: ex->rbuf keeps
 * the request body alone (fields are rebuilt for each stream) and the
 * trailers are kept on the exchange; a failed stream is reset and
 * arc_px__h2u_retry opens the next one. Their own retries (REFUSED_STREAM
 * on the same connection, a lost connection for an idempotent request)
 * stay as they were when the policy does not take the failure.
 */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The route's budget window on this worker, rolled forward to now. */
static struct arc_rbudget *rbudget(struct arc_worker *w, const struct arc_exchange *ex)
{
    uint64_t win = ex->route->conf->retry.budget_window;
    struct arc_rbudget *b = &w->budgets[ex->route->id];
    if (w->now_ms >= b->start + win) {
        if (w->now_ms < b->start + 2 * win) {
            b->prev_req = b->req;
            b->prev_ret = b->ret;
            b->start += win;
        } else {
            b->prev_req = b->prev_ret = 0;
            b->start = w->now_ms;
        }
        b->req = b->ret = 0;
    }
    return b;
}

static bool budget_allows(struct arc_worker *w, const struct arc_exchange *ex)
{
    const struct arc_retry_conf *rc = &ex->route->conf->retry;
    struct arc_rbudget *b = rbudget(w, ex);
    /* sliding window: the previous one weighted by its overlap */
    double keep_prev = 1.0 - (double)(w->now_ms - b->start) / (double)rc->budget_window;
    if (keep_prev < 0)
        keep_prev = 0;
    double req = b->req + keep_prev * b->prev_req, ret = b->ret + keep_prev * b->prev_ret;
    double cap = req * rc->budget / 100.0;
    if (cap < rc->budget_min)
        cap = rc->budget_min;
    return ret + 1 <= cap;
}

static void retry_setup(struct arc_worker *w, struct arc_exchange *ex, const char *head,
                        size_t len)
{
    const struct arc_retry_conf *rc = &ex->route->conf->retry;
    if (!rc->enabled)
        return;
    rbudget(w, ex)->req++;
    if (rc->max_retries == 0 || (rc->idempotent_only && !ex->idempotent) || ex->req.upgrade ||
        (ex->req.body == ARC_H1_BODY_LENGTH && ex->req.content_length > rc->max_body))
        return;
    size_t want = len + 256;
    if (ex->rcap < want) {
        char *b = realloc(ex->rbuf, want);
        if (!b)
            return;
        ex->rbuf = b;
        ex->rcap = want;
    }
    memcpy(ex->rbuf, head, len);
    ex->rlen = ex->rhead = len;
    ex->rbuf_on = true;
}

/* Request bytes as they went (or would go) to the upstream, for a replay. */
static void keep(struct arc_exchange *ex, const void *p, size_t len)
{
    /* While the request waits for a connection (circuit_breaker queue) the
     * bytes are held whatever their size: they have nowhere else to go (an
     * HTTP/1 client is paused; an HTTP/2 one only sends its window). */
    bool hold = ex->cb_wait;
    if (!ex->rbuf_on && !hold)
        return;
    const struct arc_retry_conf *rc = &ex->route->conf->retry;
    if (ex->rbuf_on && ex->rlen + len > ex->rhead + rc->max_body) {
        ex->rbuf_on = false;            /* too big to replay: no more retries */
        if (!hold)
            return;
    }
    if (ex->rlen + len > ex->rcap) {
        size_t cap = ex->rcap * 2;
        if (cap < ex->rlen + len)
            cap = ex->rlen + len;
        char *b = realloc(ex->rbuf, cap);
        if (!b) {
            ex->rbuf_on = false;
            ex->hold_failed = hold;
            return;
        }
        ex->rbuf = b;
        ex->rcap = cap;
    }
    memcpy(ex->rbuf + ex->rlen, p, len);
    ex->rlen += len;
}

/* Queues bytes to u (when attached) and keeps them for a replay. */
static void send_both(struct arc_worker *w, struct arc_conn *u, struct arc_exchange *ex,
                      const void *p, size_t len)
{
    keep(ex, p, len);
    if (u)
        arc_px__queue_copy(w, u, p, len);
}

static bool retry_possible(struct arc_worker *w, struct arc_exchange *ex, enum rkind rk,
                           int status)
{
    if (!ex || !ex->route || !ex->rbuf_on || ex->resp_started || ex->n_interim)
        return false;
    const struct arc_retry_conf *rc = &ex->route->conf->retry;
    if (ex->retries >= rc->max_retries)
        return false;
    bool on = false;
    switch (rk) {
    case RK_CONNECT:
        on = rc->on_connect_failure;
        break;
    case RK_RESET:
        on = rc->on_reset;
        break;
    case RK_STATUS:
        for (size_t i = 0; i < rc->n_statuses; i++)
            on = on || rc->statuses[i] == status;
        break;
    }
    if (!on)
        return false;
    if (!budget_allows(w, ex)) {
        arc_m_add(arc_m_up(&w->metrics, ex->target->id, ARC_MU_RETRY_BUDGET_EXHAUSTED), 1);
        return false;
    }
    return true;
}

static void next_attempt(struct arc_worker *w, struct arc_exchange *ex);

static void on_retry_timer(struct arc_timer *t, uint64_t now)
{
    struct arc_exchange *ex = arc_container_of(t, struct arc_exchange, up_timer);
    (void)now;
    ex->retry_wait = false;
    next_attempt(arc_px__worker(), ex);
}

static void start_retry(struct arc_worker *w, struct arc_exchange *ex, int failed_ep)
{
    const struct arc_retry_conf *rc = &ex->route->conf->retry;
    ex->retries++;
    rbudget(w, ex)->ret++;
    arc_px__ex_lb_end(w, ex);           /* the failed attempt, to the balancer */
    if (failed_ep >= 0 && failed_ep < 64)
        ex->tried |= 1ull << failed_ep;
    /* Exponential, with jitter over [half, full] so that requests failed
     * together do not come back together. */
    unsigned shift = ex->retries - 1u < 10u ? ex->retries - 1u : 10u;
    uint64_t base = rc->backoff << shift, delay = 0;
    if (base)
        delay = base / 2 + mix64(w->now_ms ^ (uintptr_t)ex ^ ex->tried) % (base - base / 2 + 1);
    ex->retry_wait = true;
    ex->state = EX_CONNECTING;
    /* Always through the wheel (even with no backoff): the failure is
     * being handled deep in a completion, and the next attempt starts
     * from a clean stack. */
    arc_timer_init(&ex->up_timer, on_retry_timer);
    arc_tw_schedule(&w->tw, &ex->up_timer, w->now_ms + delay);
}

static void next_attempt(struct arc_worker *w, struct arc_exchange *ex)
{
    if (!ex->rbuf_on) {
        /* (the client's body outgrew max_body meanwhile) */
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_RESET);
        return;
    }
    const struct arc_upstream_rt *up = ex->target;
    int ep = arc_px__pick(w, ex);
    if (ep < 0) {
        arc_px__ex_error(w, ex, 503, ARC_ERR_NO_ENDPOINT);
        return;
    }
    cb_req_release(w, ex);              /* the request moves to its new endpoint */
    if (!cb_requests_ok(w, up, ep)) {
        overflow(w, ex);
        return;
    }
    cb_req_take(w, ex, up, ep);
    arc_m_add(arc_m_ep(&w->metrics, up->eps[ep].id, ARC_ME_RETRIES), 1);
    if (up->conf->protocol == ARC_UP_HTTP2) {
        arc_px__h2u_retry(w, ex, ep);
        return;
    }
    attempt(w, ex, ep, NULL, 0);
}

bool arc_px__retry_possible(struct arc_worker *w, struct arc_exchange *ex, int kind, int status)
{
    return retry_possible(w, ex, kind == ARC_RK_CONNECT ? RK_CONNECT
                                 : kind == ARC_RK_RESET ? RK_RESET : RK_STATUS, status);
}

void arc_px__retry_start(struct arc_worker *w, struct arc_exchange *ex, int failed_ep)
{
    start_retry(w, ex, failed_ep);
}

/* ------------------------------------------------------------ request body */

/* The exchange's upstream speaks HTTP/2 (it gets the decoded body). */
static bool to_h2(const struct arc_exchange *ex)
{
    return ex->target && ex->target->conf->protocol == ARC_UP_HTTP2;
}

bool arc_px__up_framed(const struct arc_exchange *ex)
{
    /* (filters that see the request body or trailers get it decoded) */
    return !to_h2(ex) && !(ex->pl && (ex->pl->body_mask & ARC_PL_HAS_REQ));
}

void arc_px__up_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                     const char *p, size_t len, bool framed)
{
    if (ex->pl && (ex->pl->body_mask & ARC_PL_HAS_REQ_BODY) && !framed) {
        arc_px__plugins_req_body(w, ex, bid, p, len);   /* (it calls arc_px__up_body_raw) */
        return;
    }
    arc_px__up_body_raw(w, ex, bid, p, len, framed);
}

void arc_px__up_body_raw(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                         const char *p, size_t len, bool framed)
{
    if (ex->mirror && !framed)
        arc_px__mirror_body(ex, p, len);    /* (what the filters passed on, if any) */
    if (to_h2(ex)) {
        /* HTTP/2 upstream: the decoded body, kept for a retry (also while
         * one waits: it has nowhere else to go) */
        if (len)
            keep(ex, p, len);
        if (ex->ux)
            arc_px__h2u_body(w, ex, p, len);
        return;
    }
    struct arc_conn *u = ex->up;
    if ((!u && !ex->retry_wait) || len == 0)
        return;
    if (framed || ex->req.body != ARC_H1_BODY_CHUNKED) {
        keep(ex, p, len);
        if (u)
            arc_px__queue_buf(w, u, bid, p, len);
        return;
    }
    /* Decoded bytes of a body the HTTP/1.1 upstream gets chunked. */
    char hd[24], *e = arc_put_hex(hd, len);
    *e++ = '\r';
    *e++ = '\n';
    size_t n = (size_t)(e - hd);
    keep(ex, hd, n);
    keep(ex, p, len);
    keep(ex, "\r\n", 2);
    if (!u)
        return;
    arc_px__queue_copy(w, u, hd, n);
    arc_px__queue_buf(w, u, bid, p, len);
    arc_px__queue_copy(w, u, "\r\n", 2);
}

void arc_px__up_body_end(struct arc_worker *w, struct arc_exchange *ex,
                         const struct arc_hdr *trailers, size_t n)
{
    if (ex->pl && (ex->pl->body_mask & ARC_PL_HAS_REQ)) {
        arc_px__plugins_req_end(w, ex, trailers, n);    /* (it calls arc_px__up_body_end_raw) */
        return;
    }
    arc_px__up_body_end_raw(w, ex, trailers, n);
}

void arc_px__up_body_end_raw(struct arc_worker *w, struct arc_exchange *ex,
                             const struct arc_hdr *trailers, size_t n)
{
    if (ex->ux) {
        arc_px__h2u_body_end(w, ex, trailers, n);
        return;
    }
    if (to_h2(ex)) {
        if (ex->retry_wait)             /* (for the next attempt) */
            arc_px__h2u_keep_trailers(ex, trailers, n);
        return;
    }
    struct arc_conn *u = ex->up;
    if ((!u && !ex->retry_wait) || ex->req.body != ARC_H1_BODY_CHUNKED)
        return;         /* (a Content-Length body cannot carry trailers in HTTP/1.1) */
    send_both(w, u, ex, "0\r\n", 3);
    for (size_t i = 0; i < n; i++) {
        send_both(w, u, ex, trailers[i].name.p, trailers[i].name.len);
        send_both(w, u, ex, ": ", 2);
        send_both(w, u, ex, trailers[i].value.p, trailers[i].value.len);
        send_both(w, u, ex, "\r\n", 2);
    }
    send_both(w, u, ex, "\r\n", 2);
}

bool arc_px__up_full(const struct arc_exchange *ex)
{
    if (ex->retry_wait)
        return true;            /* the client waits for the next attempt */
    if (ex->state == EX_WAITING)
        return true;                    /* nothing takes the body until it continues */
    if (ex->ux)
        return arc_px__h2u_full(ex);
    return ex->up && arc_px__outq_high(ex->up);
}

void arc_px__up_kick(struct arc_worker *w, struct arc_exchange *ex)
{
    if (ex->up)
        arc_px__up_pump(w, ex->up);
}

/* ------------------------------------------------------------ reloads */

bool arc_px__up_repoint(struct arc_worker *w, struct arc_conn *u, struct arc_snapshot *s)
{
    if (u->u.snap == s)
        return true;
    /* A TLS connection keeps the client context (trust, identity, session
     * cache) of the config it was made under: never carried over. */
    if (u->tls)
        return false;
    const struct arc_upstream_rt *nu = NULL;
    for (size_t i = 0; i < s->n_ups && !nu; i++)
        if (s->ups[i].id == u->u.up->id)
            nu = &s->ups[i];
    if (!nu || nu->tls || nu->conf->protocol != u->u.up->conf->protocol)
        return false;
    for (size_t k = 0; k < nu->n_eps; k++) {
        if (nu->eps[k].id != u->u.ep_rt->id)
            continue;
        u->u.up = nu;
        u->u.ep_rt = &nu->eps[k];
        u->u.ep = (uint32_t)k;
        arc_px__snap_pin(w, s);
        arc_px__snap_unpin(w, u->u.snap);
        u->u.snap = s;
        return true;
    }
    return false;
}

void arc_px__pools_adopt(struct arc_worker *w)
{
    for (size_t i = 0; i < w->n_pools; i++) {
        struct pool *pl = &w->pools[i];
        struct arc_conn *u = pl->head;
        while (u) {
            struct arc_conn *next = u->u.pool_next;
            if (!arc_px__up_repoint(w, u, w->snap))
                arc_px__conn_close(w, u);       /* (leaves the pool) */
            u = next;
        }
        for (struct arc_h2u *h = pl->h2; h; ) {
            struct arc_h2u *next = arc_px__h2u_next(h);
            arc_px__h2u_adopt(w, h);
            h = next;
        }
    }
}
