/*
 * The upstream side of an exchange, speaking HTTP/1.1 to the service:
 * picking an endpoint, taking a pooled keep-alive connection or connecting,
 * reading the response head and streaming the body back through the client
 * codec, replaying a request that died on a stale pooled connection,
 * Upgrade tunnels, and returning connections to the per-worker pool.
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
 */
#include "proxy/proxy_int.h"
#include "net/net.h"

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

void arc_px__up_start(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_upstream_rt *up = ex->route->up;
    struct wup *wu = &w->ups[up->id];
    int ep = arc_lb_pick(&wu->lb, NULL, w->now_ms);
    if (ep < 0) {
        arc_px__ex_error(w, ex, 503, ARC_ERR_NO_ENDPOINT);
        return;
    }
    ex->ep = ep;
    ex->t_up_ns = arc_now_ns();
    ex->t_conn_ns = ex->t_head_ns = 0;
    if (up->conf->protocol == ARC_UP_HTTP2) {
        arc_px__h2u_start(w, ex, ep);
        return;
    }
    size_t head_len;
    char *head = arc_px__build_request_head(w, ex, &head_len);
    if (!head) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return;
    }
    struct arc_conn *u = pool_take(w, ex, up, ep);
    bool reused = u != NULL;
    if (!u) {
        u = arc_px__up_connect(w, ex->snap, up, ep);
        if (!u) {
            free(head);
            arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_CONNECT_ERRORS), 1);
            if (errno == EAGAIN)
                arc_px__ex_error(w, ex, 503, ARC_ERR_NO_ENDPOINT);
            else
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
    attach(ex, u);
    /* A request without a body sent on a reused connection may meet a close
     * the upstream sent just before our bytes arrived; keep its head so it
     * can be replayed once on a fresh connection (RFC 9112 §9.3.1). */
    if (reused && ex->req.body == ARC_H1_BODY_NONE && !ex->req.upgrade && ex->idempotent) {
        ex->replay = malloc(head_len);
        if (ex->replay) {
            memcpy(ex->replay, head, head_len);
            ex->replay_len = head_len;
        }
    }
    arc_px__queue_owned(w, u, head, head_len);
    arc_lb_start(&wu->lb, (size_t)ep);
    ex->lb_open = true;
    ex->lb_gen = wu->gen;
    arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_REQUESTS), 1);
    arc_px__up_pump(w, u);
}

/* Replays the request on a fresh connection; false if that is impossible. */
static bool retry(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_exchange *ex = u->u.ex;
    if (!ex->replay || ex->attempts > 1 || u->u.got_bytes || !u->u.reused)
        return false;
    const struct arc_upstream_rt *up = ex->route->up;
    int ep = ex->ep;
    detach(ex, u);
    arc_px__conn_close(w, u);
    struct arc_conn *nu = arc_px__up_connect(w, ex->snap, up, ep);
    if (!nu) {
        arc_m_add(arc_m_up(&w->metrics, up->id, ARC_MU_CONNECT_ERRORS), 1);
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_CONNECT);
        return true;
    }
    ex->state = EX_CONNECTING;
    ex->t_up_ns = arc_now_ns();
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
        detach(ex, u);
        arc_px__conn_close(w, u);
        if (ex)
            arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_CONNECT);
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
    ex->t_conn_ns = arc_now_ns();
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

static void fail_response(struct arc_worker *w, struct arc_conn *u, int status, enum arc_err_kind k)
{
    struct arc_exchange *ex = u->u.ex;
    detach(ex, u);
    arc_px__conn_close(w, u);
    arc_px__ex_error(w, ex, status, k);
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
        ex->t_head_ns = arc_now_ns();
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
    ex->status = r.status;
    ex->t_head_ns = arc_now_ns();
    u->u.head_done = true;
    u->u.resp_body = r.body;
    u->u.resp_left = r.content_length;
    u->u.keep_alive = (r.flags & ARC_H1_F_KEEP_ALIVE) != 0;
    arc_h1_chunked_init(&u->u.resp_chunk);
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
                if (ex->resp_passthrough)
                    cv->send_body(w, ex, bid, p, n - used, true);  /* the valid prefix */
                arc_px__ex_cut(w, ex);
                return len;
            }
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
        arc_px__flush(w, u->u.ex->client);
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
        fail_response(w, u, 502, ARC_ERR_UPSTREAM_RESET);
        return;
    }
    arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_RESET], 1);
    arc_px__ex_cut(w, ex);
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
    if (u->u.state == US_TUNNEL) {
        arc_px__client_abort(w, ex->client, EXO_TUNNEL_END);
        return;
    }
    if (!ex->resp_started) {
        fail_response(w, u, 504, ARC_ERR_UPSTREAM_TIMEOUT);
        return;
    }
    arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_TIMEOUT], 1);
    arc_px__ex_cut(w, ex);
}

void arc_px__up_ready(struct arc_worker *w, struct arc_conn *u, const char *alpn)
{
    if (u->u.h2)
        arc_px__h2u_ready(w, u, alpn);
}

/* ------------------------------------------------------------ request body */

bool arc_px__up_framed(const struct arc_exchange *ex)
{
    return !ex->route || ex->route->up->conf->protocol != ARC_UP_HTTP2;
}

void arc_px__up_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                     const char *p, size_t len, bool framed)
{
    if (ex->ux) {
        arc_px__h2u_body(w, ex, p, len);
        return;
    }
    struct arc_conn *u = ex->up;
    if (!u || len == 0)
        return;
    if (framed || ex->req.body != ARC_H1_BODY_CHUNKED) {
        arc_px__queue_buf(w, u, bid, p, len);
        return;
    }
    /* Decoded bytes of a body the HTTP/1.1 upstream gets chunked. */
    char hd[24];
    int n = snprintf(hd, sizeof(hd), "%zx\r\n", len);
    arc_px__queue_copy(w, u, hd, (size_t)n);
    arc_px__queue_buf(w, u, bid, p, len);
    arc_px__queue_copy(w, u, "\r\n", 2);
}

void arc_px__up_body_end(struct arc_worker *w, struct arc_exchange *ex,
                         const struct arc_hdr *trailers, size_t n)
{
    if (ex->ux) {
        arc_px__h2u_body_end(w, ex, trailers, n);
        return;
    }
    struct arc_conn *u = ex->up;
    if (!u || ex->req.body != ARC_H1_BODY_CHUNKED)
        return;         /* (a Content-Length body cannot carry trailers in HTTP/1.1) */
    arc_px__queue_copy(w, u, "0\r\n", 3);
    for (size_t i = 0; i < n; i++) {
        arc_px__queue_copy(w, u, trailers[i].name.p, trailers[i].name.len);
        arc_px__queue_copy(w, u, ": ", 2);
        arc_px__queue_copy(w, u, trailers[i].value.p, trailers[i].value.len);
        arc_px__queue_copy(w, u, "\r\n", 2);
    }
    arc_px__queue_copy(w, u, "\r\n", 2);
}

bool arc_px__up_full(const struct arc_exchange *ex)
{
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
