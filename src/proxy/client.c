/*
 * The client side of an HTTP/1.1 connection: reading request heads,
 * dispatching them through the pipeline (route → action → upstream or local
 * answer), streaming request bodies upstream, and deciding after each
 * exchange whether the connection continues. States: see proxy_int.h.
 */
#include "proxy/proxy_int.h"
#include "net/net.h"
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


static const struct arc_config *cfg_of(struct arc_worker *w)
{
    return w->snap->cfg;
}

#define set_timer arc_px__set_timer

static size_t route_row(struct arc_worker *w, const struct stream *st)
{
    return st->route ? st->route->index : w->snap->n_routes;
}

/* ------------------------------------------------------------ accept */

void arc_px__client_accepted(struct arc_worker *w, int fd, uint32_t listener)
{
    struct arc_conn *c = arc_px__conn_new(w, CONN_CLIENT, fd);
    if (!c) {
        close(fd);
        return;
    }
    c->state = C_HEAD;
    c->fresh = true;
    c->c.listener = listener;
    w->n_clients++;
    arc_m_add(&w->metrics.conn_accepted, 1);
    /* A new connection must send its first head within read_timeout. */
    set_timer(w, c, cfg_of(w)->node.read_timeout);
    arc_px__client_pump(w, c);
}

/* Ends the pairing with the upstream connection, which is closed: it is
 * mid-exchange, so it cannot go back to a pool. */
static void drop_upstream(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_conn *u = c->peer;
    if (!u)
        return;
    c->peer = NULL;
    u->peer = NULL;
    arc_px__conn_close(w, u);
}

/* ------------------------------------------------------------ local answers */

static void queue_local(struct arc_worker *w, struct arc_conn *c, int status,
                        const char *extra_headers, const char *body, size_t body_len, bool close)
{
    struct stream *st = &c->c.st;
    char head[512];
    bool no_body = st->is_head || status < 200 || status == 204 || status == 304;
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s", status, arc_h1_reason(status),
                     extra_headers ? extra_headers : "",
                     close ? "Connection: close\r\n"
                           : (st->client_minor == 0 ? "Connection: keep-alive\r\n" : ""));
    ARC_ASSERT(n > 0 && (size_t)n < sizeof(head));
    size_t total = (size_t)n + 2 + (no_body ? 0 : body_len);
    char *m = malloc(total);
    ARC_ASSERT(m != NULL);
    memcpy(m, head, (size_t)n);
    memcpy(m + n, "\r\n", 2);
    if (!no_body && body_len)
        memcpy(m + n + 2, body, body_len);
    arc_px__queue_owned(w, c, m, total);
    st->status = status;
    st->resp_started = true;
    st->resp_done = true;
    if (close)
        st->client_keep_alive = false;
}

void arc_px__local_error(struct arc_worker *w, struct arc_conn *c, int status,
                         enum arc_err_kind kind, bool close)
{
    struct stream *st = &c->c.st;
    arc_m_add(&w->metrics.errors[kind], 1);
    if (st->resp_started) {
        /* Part of a response already went out: the only honest signal left
         * is to cut the connection. */
        arc_px__client_abort(w, c);
        return;
    }
    drop_upstream(w, c);
    char body[96], hdrs[96];
    int bl = snprintf(body, sizeof(body), "%d %s\n", status, arc_h1_reason(status));
    snprintf(hdrs, sizeof(hdrs), "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n", bl);
    queue_local(w, c, status, hdrs, body, (size_t)bl, close || !st->req_done);
    arc_px__exchange_done(w, c);
}

/* Drops the connection without another byte (response already started, or
 * the peer is gone). Pairs are always torn down together. */
void arc_px__client_abort(struct arc_worker *w, struct arc_conn *c)
{
    if (c->kind == CONN_CLIENT)
        arc_px__lb_end(w, c);
    drop_upstream(w, c);
    arc_px__conn_close(w, c);
}

/* The response broke after it started (bad chunk framing, upstream reset or
 * timeout mid-body): deliver the bytes already validated and queued, then
 * close. The client sees a truncated body (no final chunk, or fewer bytes
 * than Content-Length), the protocol's only way to say "incomplete". */
void arc_px__client_cut(struct arc_worker *w, struct arc_conn *c)
{
    arc_px__lb_end(w, c);
    drop_upstream(w, c);
    arc_m_request(&w->metrics, route_row(w, &c->c.st), c->c.st.status ? c->c.st.status : 502);
    c->c.st.client_keep_alive = false;
    c->state = C_LOCAL;
    c->close_after = true;
    arc_px__stash_drop(w, c);
    set_timer(w, c, cfg_of(w)->node.write_timeout);
    arc_px__client_pump(w, c);
}

/* ------------------------------------------------------------ exchange end */

void arc_px__exchange_done(struct arc_worker *w, struct arc_conn *c)
{
    struct stream *st = &c->c.st;
    arc_px__lb_end(w, c);
    arc_m_request(&w->metrics, route_row(w, st), st->status ? st->status : 502);
    free(st->replay);
    st->replay = NULL;
    if (!st->client_keep_alive || !st->req_done || w->draining || c->eof) {
        c->state = C_LOCAL;
        c->close_after = true;
        set_timer(w, c, cfg_of(w)->node.write_timeout);
    } else {
        c->state = C_HEAD;
        c->head_started = false;
        set_timer(w, c, cfg_of(w)->node.idle_timeout);
    }
    arc_px__client_pump(w, c);
}

/* ------------------------------------------------------------ dispatch */

static void answer_redirect(struct arc_worker *w, struct arc_conn *c, const struct arc_route_rt *r,
                            const struct arc_h1_request *req, const struct arc_rt_captures *caps)
{
    size_t len;
    char *m = arc_px__build_redirect(r, req, caps, !c->c.st.client_keep_alive || !c->c.st.req_done, &len);
    struct stream *st = &c->c.st;
    if (!st->req_done)
        st->client_keep_alive = false;
    arc_px__queue_owned(w, c, m, len);
    st->status = r->conf->redirect_status;
    st->resp_started = st->resp_done = true;
    arc_px__exchange_done(w, c);
}

static void answer_respond(struct arc_worker *w, struct arc_conn *c, const struct arc_route_rt *r)
{
    struct stream *st = &c->c.st;
    bool close = !st->client_keep_alive || !st->req_done;
    const char *conn = close ? "Connection: close\r\n"
                             : (st->client_minor == 0 ? "Connection: keep-alive\r\n" : "");
    int status = r->conf->respond_status;
    bool no_body = st->is_head || status < 200 || status == 204 || status == 304;
    size_t blen = no_body ? 0 : strlen(r->conf->respond_body ? r->conf->respond_body : "");
    size_t clen = strlen(conn);
    size_t total = r->respond_head_len + clen + 2 + blen;
    char *m = malloc(total);
    ARC_ASSERT(m != NULL);
    memcpy(m, r->respond_head, r->respond_head_len);
    memcpy(m + r->respond_head_len, conn, clen);
    memcpy(m + r->respond_head_len + clen, "\r\n", 2);
    if (blen)
        memcpy(m + r->respond_head_len + clen + 2, r->conf->respond_body, blen);
    arc_px__queue_owned(w, c, m, total);
    if (close)
        st->client_keep_alive = false;
    st->status = status;
    st->resp_started = st->resp_done = true;
    arc_px__exchange_done(w, c);
}

static void dispatch(struct arc_worker *w, struct arc_conn *c, const struct arc_h1_request *req)
{
    struct stream *st = &c->c.st;
    free(st->replay);
    memset(st, 0, sizeof(*st));
    st->started_ms = w->now_ms;
    st->ep = -1;
    st->client_minor = req->minor;
    st->is_head = arc_str_eq(req->method, "HEAD", 4);
    st->client_keep_alive = (req->flags & ARC_H1_F_KEEP_ALIVE) && !w->draining;
    st->req_body = req->body;
    st->req_left = req->content_length;
    arc_h1_chunked_init(&st->req_chunk);
    st->req_done = req->body == ARC_H1_BODY_NONE ||
                   (req->body == ARC_H1_BODY_LENGTH && req->content_length == 0);
    st->upgrade = (req->flags & ARC_H1_F_UPGRADE) != 0;
    uint32_t mbit = arc_rt_method_bit(req->method);
    st->idempotent = (mbit & (ARC_M_GET | ARC_M_HEAD | ARC_M_OPTIONS | ARC_M_TRACE |
                              ARC_M_PUT | ARC_M_DELETE)) != 0;
    c->fresh = false;

    struct arc_rt_captures caps;
    uint32_t allowed = 0;
    const struct arc_route_rt *r = arc_rt_match(w->snap->rt, req->host, mbit,
                                                req->path, &caps, &allowed);
    if (!r) {
        if (allowed) {
            static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "DELETE",
                                                 "CONNECT", "OPTIONS", "TRACE", "PATCH" };
            char hdrs[256] = "Allow: ";
            size_t off = strlen(hdrs);
            for (size_t i = 0; i < ARC_ARRAY_LEN(names); i++)
                if (allowed & (1u << i))
                    off += (size_t)snprintf(hdrs + off, sizeof(hdrs) - off, "%s%s",
                                            off > 7 ? ", " : "", names[i]);
            snprintf(hdrs + off, sizeof(hdrs) - off,
                     "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\n");
            arc_m_add(&w->metrics.errors[ARC_ERR_METHOD_NOT_ALLOWED], 1);
            queue_local(w, c, 405, hdrs, "405 Method Not Allowed\n", 23, !st->req_done);
            arc_px__exchange_done(w, c);
        } else {
            arc_px__local_error(w, c, 404, ARC_ERR_NOT_FOUND, false);
        }
        return;
    }
    st->route = r;
    switch (r->conf->action) {
    case ARC_ACTION_RESPOND:
        answer_respond(w, c, r);
        return;
    case ARC_ACTION_REDIRECT:
        answer_redirect(w, c, r, req, &caps);
        return;
    case ARC_ACTION_UPSTREAM:
        break;
    }
    /* We answer Expect: 100-continue ourselves (and strip it upstream): the
     * client learns at once that its body is wanted, and an upstream that
     * does not implement Expect cannot stall the upload. */
    st->expect_100 = (req->flags & ARC_H1_F_EXPECT_100) && !st->req_done && req->minor == 1;
    size_t hlen;
    char *head = arc_px__build_request_head(w, c, req, &hlen);
    c->state = C_PROXY;
    /* From here the upstream's deadlines govern; the client's header
     * deadline must not cut a slow (but in-time) response. */
    if (st->req_done)
        arc_tw_cancel(&w->tw, &c->timer);
    if (arc_px__up_start(w, c, head, hlen) < 0)
        return;
    if (st->expect_100 && c->state == C_PROXY && !st->resp_started)
        arc_px__queue_copy(w, c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

/* ------------------------------------------------------------ input */

static enum arc_err_kind err_kind(enum arc_h1_status rc, int *status)
{
    switch (rc) {
    case ARC_H1_URI_TOO_LONG: *status = 414; return ARC_ERR_URI_TOO_LONG;
    case ARC_H1_HEADERS_TOO_LARGE: *status = 431; return ARC_ERR_HEADERS_TOO_LARGE;
    case ARC_H1_NOT_IMPLEMENTED: *status = 501; return ARC_ERR_NOT_IMPLEMENTED;
    case ARC_H1_BAD_VERSION: *status = 505; return ARC_ERR_BAD_VERSION;
    default: *status = 400; return ARC_ERR_BAD_REQUEST;
    }
}

/* Returns the bytes of p it consumed (always > 0 unless the conn closed). */
static size_t read_head(struct arc_worker *w, struct arc_conn *c, const char *p, size_t len)
{
    const struct arc_snapshot *s = w->snap;
    if (!c->head_started) {
        /* The header deadline runs from the first byte and is not extended
         * by later bytes: a slowloris client trickling one byte at a time
         * still gets cut off after read_timeout. */
        c->head_started = true;
        set_timer(w, c, cfg_of(w)->node.read_timeout);
    }
    size_t cap = (size_t)s->limits.max_header_bytes + 1;
    struct arc_px_head h;
    if (!arc_px__head_view(c, p, len, cap, &h)) {
        arc_px__client_abort(w, c);
        return len;
    }
    struct arc_h1_request req;
    enum arc_h1_status rc = arc_h1_parse_request(h.buf, h.len, &s->limits, w->hdrs,
                                                 s->limits.max_headers, &req);
    if (rc == ARC_H1_INCOMPLETE) {
        if (!arc_px__head_keep(c, &h, p, len, cap))
            arc_px__client_abort(w, c);
        return len;
    }
    if (rc != ARC_H1_OK) {
        int status;
        enum arc_err_kind k = err_kind(rc, &status);
        memset(&c->c.st, 0, sizeof(c->c.st));
        c->c.st.client_minor = 1;
        arc_px__hbuf_reset(c);
        arc_px__local_error(w, c, status, k, true);
        return len;
    }
    size_t consumed = arc_px__head_used(c, &h, req.head_len);
    dispatch(w, c, &req);
    arc_px__hbuf_reset(c);
    return consumed;
}

static size_t req_body(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                       const char *p, size_t len)
{
    struct stream *st = &c->c.st;
    struct arc_conn *u = c->peer;
    size_t n = 0;
    if (st->req_body == ARC_H1_BODY_LENGTH) {
        n = (size_t)ARC_MIN((uint64_t)len, st->req_left);
        st->req_left -= n;
        if (st->req_left == 0)
            st->req_done = true;
    } else {
        while (n < len) {
            size_t used;
            const char *data, *err;
            size_t dlen;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&st->req_chunk, p + n, len - n,
                                                          &used, &data, &dlen, &err);
            n += used;
            if (rc == ARC_H1_CHUNK_ERROR) {
                arc_px__local_error(w, c, 400, ARC_ERR_BAD_REQUEST, true);
                return len;
            }
            if (rc == ARC_H1_CHUNK_DONE) {
                st->req_done = true;
                break;
            }
            if (rc == ARC_H1_CHUNK_AGAIN)
                break;
        }
    }
    /* Chunked bodies are forwarded verbatim: the framing was validated
     * above, and re-encoding would only cost copies. */
    if (u)
        arc_px__queue_buf(w, u, bid, p, n);
    set_timer(w, c, cfg_of(w)->node.read_timeout);
    if (st->req_done && c->state == C_PROXY) {
        if (st->resp_done)
            ; /* response already finished (early answer): exchange_done ran */
        else if (!st->resp_started)
            arc_tw_cancel(&w->tw, &c->timer);
    }
    if (u)
        arc_px__up_pump(w, u);
    return n;
}

static bool can_process(const struct arc_conn *c)
{
    switch (c->state) {
    case C_HEAD:
        return !arc_px__outq_high(c);
    case C_PROXY:
        return !c->c.st.req_done && !(c->peer && arc_px__outq_high(c->peer));
    case C_TUNNEL:
        return !(c->peer && arc_px__outq_high(c->peer));
    case C_LINGER:
        return true;
    default:
        return false;
    }
}

/* Runs input through the state machine for as long as the state accepts
 * it; returns the bytes consumed (the caller stashes the rest, in order). */
static size_t process(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len)
{
    size_t total = 0;
    c->in_process = true;
    while (len > 0 && !c->closing && can_process(c)) {
        size_t n;
        switch (c->state) {
        case C_HEAD:
            n = read_head(w, c, p, len);
            break;
        case C_PROXY:
            n = req_body(w, c, bid, p, len);
            break;
        case C_TUNNEL:
            arc_px__queue_buf(w, c->peer, bid, p, len);
            arc_px__up_pump(w, c->peer);
            set_timer(w, c, cfg_of(w)->node.idle_timeout);
            n = len;
            break;
        default: /* C_LINGER: read and drop */
            n = len;
            break;
        }
        p += n;
        len -= n;
        total += n;
    }
    c->in_process = false;
    return c->closing ? total + len : total;
}

void arc_px__client_data(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len)
{
    /* Older stashed bytes go first: new ones queue behind them. */
    size_t n = c->stash_n ? 0 : process(w, c, bid, p, len);
    if (n < len && !c->closing)
        arc_px__stash(w, c, bid, p + n, len - n);
    arc_px__client_pump(w, c);
}

/* ------------------------------------------------------------ pump */

void arc_px__client_pump(struct arc_worker *w, struct arc_conn *c)
{
    if (c->closing)
        return;
    if (c->in_process) {
        /* Called from inside process() (an exchange ended mid-buffer):
         * only push output out; the outer caller re-pumps afterwards. */
        arc_px__flush(w, c);
        return;
    }
    /* Input held back earlier (pipelined request, paused body) goes first,
     * in order, before anything new is read. */
    arc_px__stash_replay(w, c, can_process, process);
    if (c->closing)
        return;
    if (c->eof_pending && c->stash_n == 0) {
        c->eof_pending = false;
        arc_px__client_eof(w, c, 0);
        return;
    }
    arc_px__flush(w, c);
    if (c->stash_n == 0 && !c->eof && !c->starved && can_process(c))
        arc_px__arm_recv(w, c);
    if (c->state == C_PROXY && c->c.st.req_done && !arc_timer_pending(&c->timer) && c->out.n)
        set_timer(w, c, cfg_of(w)->node.write_timeout);
    if (c->state == C_LOCAL && c->out.n == 0 && !c->send_armed && c->close_after) {
        /* Everything is handed to the kernel: half-close and linger. */
        /* Keep reading (and dropping) what the client still sends for
         * node.lingering_timeout, so a RST does not destroy our last
         * response before the client read it. */
        arc_px__shutdown_wr(w, c);
        c->state = C_LINGER;
        set_timer(w, c, cfg_of(w)->node.lingering_timeout);
        if (c->eof || cfg_of(w)->node.lingering_timeout == 0) {
            arc_px__conn_close(w, c);
            return;
        }
        if (!c->starved)
            arc_px__arm_recv(w, c);
    }
}

void arc_px__client_sent(struct arc_worker *w, struct arc_conn *c)
{
    if (c->out.n)
        set_timer(w, c, cfg_of(w)->node.write_timeout);
    else if (c->state == C_HEAD && !c->head_started)
        set_timer(w, c, cfg_of(w)->node.idle_timeout); /* keep-alive idle from the last byte out */
    else if (c->state == C_PROXY && c->c.st.req_done)
        arc_tw_cancel(&w->tw, &c->timer);
    else if (c->state == C_TUNNEL && c->peer && c->peer->eof)
        arc_px__shutdown_wr(w, c);
    if (c->state == C_TUNNEL) {
        arc_px__tunnel_check(w, c);
        if (c->closing)
            return;
    }
    if (c->peer)
        arc_px__up_pump(w, c->peer);
    arc_px__client_pump(w, c);
}

/* ------------------------------------------------------------ eof, timeout */

void arc_px__client_eof(struct arc_worker *w, struct arc_conn *c, int err)
{
    struct stream *st = &c->c.st;
    if (err == 0) {
        c->eof = true;
        /* A client may half-close after sending its whole request (HTTP/1.0
         * style): the response is still owed. */
        if (c->state == C_PROXY && st->req_done) {
            st->client_keep_alive = false;
            return;
        }
        if (c->state == C_TUNNEL && c->peer) {
            if (c->peer->out.n == 0 && !c->peer->send_armed)
                arc_px__shutdown_wr(w, c->peer);
            arc_px__tunnel_check(w, c);
            return;
        }
        if ((c->state == C_HEAD || c->state == C_LOCAL) && (c->out.n || c->send_armed)) {
            /* The client half-closed while our answer is still going out:
             * finish sending it, then close. */
            c->c.st.client_keep_alive = false;
            c->state = C_LOCAL;
            c->close_after = true;
            set_timer(w, c, cfg_of(w)->node.write_timeout);
            return;
        }
    }
    arc_px__client_abort(w, c);
}

void arc_px__client_timeout(struct arc_worker *w, struct arc_conn *c)
{
    struct stream *st = &c->c.st;
    switch (c->state) {
    case C_HEAD:
        if (c->hlen > 0 || c->stash_n > 0) {
            memset(st, 0, sizeof(*st));
            st->client_minor = 1;
            arc_px__hbuf_reset(c);
            arc_px__local_error(w, c, 408, ARC_ERR_CLIENT_TIMEOUT, true);
        } else {
            /* Idle keep-alive or a connection that never spoke: close quietly. */
            arc_px__conn_close(w, c);
        }
        return;
    case C_PROXY:
        if (!st->req_done) {
            arc_px__local_error(w, c, 408, ARC_ERR_CLIENT_TIMEOUT, true);
            return;
        }
        /* The client stopped reading our response. */
        arc_m_add(&w->metrics.errors[ARC_ERR_CLIENT_TIMEOUT], 1);
        arc_px__client_abort(w, c);
        return;
    default:
        arc_px__client_abort(w, c);
        return;
    }
}
