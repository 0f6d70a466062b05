/*
 * The upstream side of an exchange: picking an endpoint, taking a pooled
 * keep-alive connection or connecting, reading the response head and
 * streaming the body back, retrying a request that died on a stale pooled
 * connection, WebSocket/Upgrade tunnels, and returning connections to the
 * per-worker pool. States: see proxy_int.h.
 */
#include "proxy/proxy_int.h"
#include "net/net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct arc_upstream_conf *uconf(const struct arc_conn *u)
{
    return u->u.up->conf;
}

#define set_timer arc_px__set_timer

/* ------------------------------------------------------------ exchange */

void arc_px__lb_end(struct arc_worker *w, struct arc_conn *c)
{
    struct stream *st = &c->c.st;
    if (!st->lb_open)
        return;
    st->lb_open = false;
    arc_lb_done(&w->ups[st->route->up->index].lb, (size_t)st->ep,
                (w->now_ms - st->started_ms) * 1000u, w->now_ms);
}

void arc_px__tunnel_check(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_conn *u = c->peer;
    if (!u || !c->eof || !u->eof)
        return;
    if (c->out.n || c->send_armed || u->out.n || u->send_armed)
        return;
    arc_px__client_abort(w, c);
}

/* ------------------------------------------------------------ pool */

void arc_px__pool_remove(struct arc_worker *w, struct arc_conn *u)
{
    struct pool *pl = &w->ups[u->u.up->index].pools[u->u.ep];
    if (u->u.pool_prev)
        u->u.pool_prev->u.pool_next = u->u.pool_next;
    else
        pl->head = u->u.pool_next;
    if (u->u.pool_next)
        u->u.pool_next->u.pool_prev = u->u.pool_prev;
    u->u.pool_next = u->u.pool_prev = NULL;
    u->u.in_pool = false;
    pl->n_idle--;
    arc_m_sub(&w->metrics.up_pool_idle[u->u.up->index], 1);
}

static struct arc_conn *pool_take(struct arc_worker *w, const struct arc_upstream_rt *up, int ep)
{
    struct pool *pl = &w->ups[up->index].pools[ep];
    while (pl->head) {
        struct arc_conn *u = pl->head;
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

void arc_px__up_release(struct arc_worker *w, struct arc_conn *u, bool reusable)
{
    const struct arc_upstream_conf *uc = uconf(u);
    struct pool *pl = &w->ups[u->u.up->index].pools[u->u.ep];
    u->peer = NULL;
    if (!reusable || u->eof || u->out.n || u->stash_n || u->hlen ||
        pl->n_idle >= uc->pool_max_idle ||
        w->now_ms - u->created_ms >= uc->pool_max_lifetime) {
        arc_px__conn_close(w, u);
        return;
    }
    u->state = U_IDLE;
    u->u.in_pool = true;
    u->u.reused = true;
    u->u.pool_prev = NULL;
    u->u.pool_next = pl->head;
    if (pl->head)
        pl->head->u.pool_prev = u;
    pl->head = u;
    pl->n_idle++;
    arc_m_add(&w->metrics.up_pool_idle[u->u.up->index], 1);
    set_timer(w, u, uc->pool_idle_ttl);
    arc_px__arm_recv(w, u);
}

/* ------------------------------------------------------------ connect */

static struct arc_conn *up_connect(struct arc_worker *w, const struct arc_upstream_rt *up, int ep)
{
    struct arc_endpoint_rt *e = &up->eps[ep];
    uint32_t maxc = up->conf->pool_max_connections;
    if (maxc && atomic_fetch_add_explicit(&e->open_conns, 1, memory_order_relaxed) >= maxc) {
        atomic_fetch_sub_explicit(&e->open_conns, 1, memory_order_relaxed);
        errno = EAGAIN;
        return NULL;
    }
    int fd = arc_net_upstream_socket((const struct sockaddr *)&e->ss);
    if (fd < 0) {
        if (maxc)
            atomic_fetch_sub_explicit(&e->open_conns, 1, memory_order_relaxed);
        errno = -fd;
        return NULL;
    }
    struct arc_conn *u = arc_px__conn_new(w, CONN_UPSTREAM, fd);
    if (!u) {
        close(fd);
        if (maxc)
            atomic_fetch_sub_explicit(&e->open_conns, 1, memory_order_relaxed);
        errno = ENOMEM;
        return NULL;
    }
    u->state = U_CONNECTING;
    u->u.up = up;
    u->u.ep_rt = e;
    u->u.ep = (uint32_t)ep;
    u->u.counted_open = maxc != 0;
    arc_m_add(&w->metrics.up_pool_open[up->index], 1);
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&e->ss, e->len);
    io_uring_sqe_set_data64(sqe, op_ud(OP_CONNECT, u->idx, u->gen));
    u->ops++;
    set_timer(w, u, up->conf->connect_timeout);
    return u;
}

static void pair(struct arc_conn *c, struct arc_conn *u)
{
    c->peer = u;
    u->peer = c;
    u->u.got_bytes = false;
}

int arc_px__up_start(struct arc_worker *w, struct arc_conn *c, char *head, size_t head_len)
{
    struct stream *st = &c->c.st;
    const struct arc_upstream_rt *up = st->route->up;
    struct wup *wu = &w->ups[up->index];
    int ep = arc_lb_pick(&wu->lb, NULL, w->now_ms);
    if (ep < 0) {
        free(head);
        arc_px__local_error(w, c, 503, ARC_ERR_NO_ENDPOINT, false);
        return -1;
    }
    st->ep = ep;
    struct arc_conn *u = pool_take(w, up, ep);
    bool reused = u != NULL;
    if (!u) {
        u = up_connect(w, up, ep);
        if (!u) {
            free(head);
            arc_m_add(&w->metrics.up_connect_errors[up->index], 1);
            if (errno == EAGAIN)
                arc_px__local_error(w, c, 503, ARC_ERR_NO_ENDPOINT, false);
            else
                arc_px__local_error(w, c, 502, ARC_ERR_UPSTREAM_CONNECT, false);
            return -1;
        }
    } else {
        u->state = U_ACTIVE;
        arc_m_add(&w->metrics.up_reused[up->index], 1);
        set_timer(w, u, uconf(u)->write_timeout);
    }
    pair(c, u);
    /* A request without a body sent on a reused connection may meet a close
     * the upstream sent just before our bytes arrived; keep its head so it
     * can be replayed once on a fresh connection (RFC 9112 §9.3.1). */
    if (reused && st->req_body == ARC_H1_BODY_NONE && !st->upgrade && st->idempotent) {
        st->replay = malloc(head_len);
        if (st->replay) {
            memcpy(st->replay, head, head_len);
            st->replay_len = head_len;
        }
    }
    arc_px__queue_owned(w, u, head, head_len);
    arc_lb_start(&wu->lb, (size_t)ep);
    st->lb_open = true;
    arc_m_add(&w->metrics.up_requests[up->index], 1);
    arc_px__up_pump(w, u);
    return 0;
}

/* Replays the request on a fresh connection; false if that is impossible. */
static bool retry(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_conn *c = u->peer;
    struct stream *st = &c->c.st;
    if (!st->replay || st->retried || u->u.got_bytes || !u->u.reused)
        return false;
    const struct arc_upstream_rt *up = u->u.up;
    int ep = (int)u->u.ep;
    c->peer = NULL;
    u->peer = NULL;
    arc_px__conn_close(w, u);
    st->retried = true;
    struct arc_conn *nu = up_connect(w, up, ep);
    if (!nu) {
        arc_m_add(&w->metrics.up_connect_errors[up->index], 1);
        arc_px__local_error(w, c, 502, ARC_ERR_UPSTREAM_CONNECT, false);
        return true;
    }
    pair(c, nu);
    char *head = st->replay;
    st->replay = NULL;
    arc_px__queue_owned(w, nu, head, st->replay_len);
    arc_px__up_pump(w, nu);
    return true;
}

void arc_px__up_connected(struct arc_worker *w, struct arc_conn *u, int res)
{
    struct arc_conn *c = u->peer;
    if (res < 0) {
        arc_m_add(&w->metrics.up_connect_errors[u->u.up->index], 1);
        u->peer = NULL;
        arc_px__conn_close(w, u);
        if (c) {
            c->peer = NULL;
            arc_px__local_error(w, c, 502, ARC_ERR_UPSTREAM_CONNECT, false);
        }
        return;
    }
    u->u.connected = true;
    u->state = U_ACTIVE;
    if (!c) {
        /* The client left while we were connecting: keep the connection. */
        arc_px__up_release(w, u, true);
        return;
    }
    set_timer(w, u, uconf(u)->write_timeout);
    arc_px__up_pump(w, u);
}

/* ------------------------------------------------------------ response */

static void finish(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_conn *c = u->peer;
    struct stream *st = &c->c.st;
    st->resp_done = true;
    bool reusable = st->resp_keep_alive && st->resp_body != ARC_H1_BODY_CLOSE &&
                    st->req_done && !st->extra && u->out.n == 0;
    c->peer = NULL;
    arc_px__up_release(w, u, reusable);
    arc_px__exchange_done(w, c);
}

static void fail_response(struct arc_worker *w, struct arc_conn *u, int status, enum arc_err_kind k)
{
    struct arc_conn *c = u->peer;
    c->peer = NULL;
    u->peer = NULL;
    arc_px__conn_close(w, u);
    arc_px__local_error(w, c, status, k, false);
}

static size_t read_resp_head(struct arc_worker *w, struct arc_conn *u, const char *p, size_t len)
{
    struct arc_conn *c = u->peer;
    struct stream *st = &c->c.st;
    const struct arc_snapshot *s = w->snap;
    size_t cap = (size_t)s->limits.max_header_bytes + 1;
    struct arc_px_head h;
    if (!arc_px__head_view(u, p, len, cap, &h)) {
        fail_response(w, u, 502, ARC_ERR_UPSTREAM_BAD);
        return len;
    }
    struct arc_h1_response resp;
    enum arc_h1_status rc = arc_h1_parse_response(h.buf, h.len, &s->limits, st->is_head, false,
                                                  w->hdrs, s->limits.max_headers, &resp);
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
    size_t consumed = arc_px__head_used(u, &h, resp.head_len);

    if (resp.status < 200 && resp.status != 101) {
        /* Interim responses (100, 103): we answered Expect ourselves, and
         * forwarding others is optional (RFC 9110 §15.2); drop them. */
        arc_px__hbuf_reset(u);
        return consumed;
    }
    if (resp.status == 101) {
        if (!st->upgrade || !(resp.flags & ARC_H1_F_UPGRADE)) {
            arc_px__hbuf_reset(u);
            fail_response(w, u, 502, ARC_ERR_UPSTREAM_BAD);
            return len;
        }
        size_t hl;
        char *head = arc_px__build_response_head(w, c, &resp, false, &hl);
        arc_px__hbuf_reset(u);
        arc_px__queue_owned(w, c, head, hl);
        st->status = 101;
        arc_px__lb_end(w, c);
        st->resp_started = st->resp_head_done = true;
        st->req_done = true;
        c->state = C_TUNNEL;
        u->state = U_TUNNEL;
        arc_m_request(&w->metrics, st->route->index, 101);
        arc_tw_cancel(&w->tw, &u->timer);
        set_timer(w, c, w->snap->cfg->node.idle_timeout);
        arc_px__client_pump(w, c);
        return consumed;
    }
    st->status = resp.status;
    st->resp_head_done = true;
    st->resp_body = resp.body;
    st->resp_left = resp.content_length;
    st->resp_keep_alive = (resp.flags & ARC_H1_F_KEEP_ALIVE) != 0;
    arc_h1_chunked_init(&st->resp_chunk);
    /* An HTTP/1.0 client cannot read chunked coding (RFC 9112 §6.1): it
     * gets the data alone, delimited by the close. */
    st->dechunk = resp.body == ARC_H1_BODY_CHUNKED && st->client_minor == 0;
    /* The client connection cannot continue after a close-delimited body,
     * nor while its own request body is still unread. */
    bool close = !st->client_keep_alive || resp.body == ARC_H1_BODY_CLOSE || !st->req_done ||
                 w->draining || st->dechunk;
    if (close)
        st->client_keep_alive = false;
    size_t hl;
    char *head = arc_px__build_response_head(w, c, &resp, close, &hl);
    arc_px__hbuf_reset(u);
    arc_px__queue_owned(w, c, head, hl);
    st->resp_started = true;
    if (resp.body == ARC_H1_BODY_NONE ||
        (resp.body == ARC_H1_BODY_LENGTH && resp.content_length == 0))
        st->resp_done = true;
    return consumed;
}

static size_t resp_body(struct arc_worker *w, struct arc_conn *u, int32_t bid, const char *p, size_t len)
{
    struct arc_conn *c = u->peer;
    struct stream *st = &c->c.st;
    size_t n = 0;
    switch (st->resp_body) {
    case ARC_H1_BODY_LENGTH:
        n = (size_t)ARC_MIN((uint64_t)len, st->resp_left);
        st->resp_left -= n;
        if (st->resp_left == 0)
            st->resp_done = true;
        break;
    case ARC_H1_BODY_CHUNKED:
        while (n < len) {
            size_t used, dlen;
            const char *data, *err;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&st->resp_chunk, p + n, len - n,
                                                          &used, &data, &dlen, &err);
            n += used;
            if (rc == ARC_H1_CHUNK_ERROR) {
                arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_BAD], 1);
                if (!st->dechunk)
                    arc_px__queue_buf(w, c, bid, p, n - used);  /* the valid prefix */
                arc_px__client_cut(w, c);
                return len;
            }
            if (st->dechunk) {
                if (rc == ARC_H1_CHUNK_DATA)
                    arc_px__queue_buf(w, c, bid, data, dlen);
                if (rc == ARC_H1_CHUNK_DONE)
                    st->resp_done = true;
                if (rc != ARC_H1_CHUNK_DATA)
                    break;
                continue;
            }
            if (rc == ARC_H1_CHUNK_DONE) {
                st->resp_done = true;
                break;
            }
            if (rc == ARC_H1_CHUNK_AGAIN)
                break;
        }
        break;
    default: /* close-delimited */
        n = len;
        break;
    }
    if (!st->dechunk)
        arc_px__queue_buf(w, c, bid, p, n);
    return n;
}

/* Runs upstream input through the response state machine while the client
 * can take more; returns the bytes consumed (all of them if u was closed),
 * the caller stashes the rest in order. */
static size_t up_process(struct arc_worker *w, struct arc_conn *u, int32_t bid, const char *p, size_t len)
{
    size_t total = 0;
    u->in_process = true;
    while (len > 0 && !u->closing) {
        struct arc_conn *c = u->peer;
        if (!c) {
            /* Bytes on an idle pooled connection, or after the response
             * ended: the connection is out of sync and cannot be reused. */
            arc_px__conn_close(w, u);
            break;
        }
        if (arc_px__outq_high(c))
            break;
        struct stream *st = &c->c.st;
        size_t n;
        if (u->state == U_TUNNEL) {
            arc_px__queue_buf(w, c, bid, p, len);
            set_timer(w, c, w->snap->cfg->node.idle_timeout);
            n = len;
        } else if (!st->resp_head_done) {
            n = read_resp_head(w, u, p, len);
        } else {
            n = resp_body(w, u, bid, p, len);
            set_timer(w, u, uconf(u)->read_timeout);   /* no-op if resp_body closed u */
        }
        p += n;
        len -= n;
        total += n;
        if (!u->closing && u->peer && u->state == U_ACTIVE && st->resp_done) {
            st->extra = len > 0;
            u->in_process = false;
            finish(w, u);   /* exchange_done pumps (and so flushes) the client */
            return total + len;
        }
        if (c->closing)
            break;
    }
    u->in_process = false;
    /* One send for everything this receive produced (head + body). */
    if (u->peer && !u->closing)
        arc_px__flush(w, u->peer);
    return u->closing ? total + len : total;
}

static bool up_can_process(const struct arc_conn *u)
{
    return u->peer && !arc_px__outq_high(u->peer);
}

void arc_px__up_data(struct arc_worker *w, struct arc_conn *u, int32_t bid, const char *p, size_t len)
{
    if (u->peer)
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
    arc_px__stash_replay(w, u, up_can_process, up_process);
    if (u->closing)
        return;
    if (u->eof_pending && u->stash_n == 0) {
        u->eof_pending = false;
        arc_px__up_eof(w, u, 0);
        return;
    }
    struct arc_conn *c = u->peer;
    arc_px__flush(w, u);
    bool want;
    switch (u->state) {
    case U_IDLE:
        want = true;
        break;
    case U_ACTIVE:
        want = u->u.connected && c && !c->c.st.resp_done && !arc_px__outq_high(c);
        break;
    case U_TUNNEL:
        want = c && !arc_px__outq_high(c);
        break;
    default:
        want = false;
    }
    if (want && !u->starved && u->stash_n == 0)
        arc_px__arm_recv(w, u);
}

void arc_px__up_sent(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_conn *c = u->peer;
    if (u->state == U_ACTIVE && c) {
        struct stream *st = &c->c.st;
        if (u->out.n)
            set_timer(w, u, uconf(u)->write_timeout);
        else if (st->req_done && !st->resp_head_done)
            set_timer(w, u, uconf(u)->ttfb_timeout);
        /* The client may have paused its body on our backlog. */
        arc_px__client_pump(w, c);
    } else if (u->state == U_TUNNEL && c) {
        if (u->out.n == 0 && c->eof)
            arc_px__shutdown_wr(w, u);
        arc_px__tunnel_check(w, c);
        if (!c->closing)
            arc_px__client_pump(w, c);
    }
    arc_px__up_pump(w, u);
}

/* ------------------------------------------------------------ eof, timeout */

void arc_px__up_eof(struct arc_worker *w, struct arc_conn *u, int err)
{
    struct arc_conn *c = u->peer;
    if (!c || u->state == U_IDLE) {
        arc_px__conn_close(w, u);
        return;
    }
    struct stream *st = &c->c.st;
    if (u->state == U_TUNNEL) {
        if (err == 0) {
            u->eof = true;
            if (c->out.n == 0 && !c->send_armed)
                arc_px__shutdown_wr(w, c);
            arc_px__tunnel_check(w, c);
            return;
        }
        arc_px__client_abort(w, c);
        return;
    }
    if (err == 0 && st->resp_head_done && st->resp_body == ARC_H1_BODY_CLOSE) {
        /* Close-delimited body: EOF is its end (but first flush any bytes
         * the pump held back, which cannot happen while stash is empty). */
        if (u->stash_n == 0) {
            finish(w, u);
            return;
        }
    }
    if (retry(w, u))
        return;
    if (!st->resp_started) {
        fail_response(w, u, 502, ARC_ERR_UPSTREAM_RESET);
        return;
    }
    arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_RESET], 1);
    arc_px__client_cut(w, c);
}

void arc_px__up_timeout(struct arc_worker *w, struct arc_conn *u)
{
    struct arc_conn *c = u->peer;
    if (!c || u->state == U_IDLE) {
        arc_px__conn_close(w, u);
        return;
    }
    arc_m_add(&w->metrics.up_timeouts[u->u.up->index], 1);
    if (u->state == U_TUNNEL) {
        arc_px__client_abort(w, c);
        return;
    }
    if (!c->c.st.resp_started) {
        fail_response(w, u, 504, ARC_ERR_UPSTREAM_TIMEOUT);
        return;
    }
    arc_m_add(&w->metrics.errors[ARC_ERR_UPSTREAM_TIMEOUT], 1);
    arc_px__client_cut(w, c);
}
