/*
 * The HTTP/1.1 server codec: a client connection speaking HTTP/1.x. It
 * parses request heads into exchanges, streams request bodies to the
 * exchange's upstream, writes what the pipeline answers, and decides after
 * each exchange whether the connection continues.
 *
 * Client connection states (enum cstate):
 *
 *   CS_HEAD ──head parsed──▶ CS_EXCHANGE ──exchange ended, keep-alive──▶ CS_HEAD
 *     │  ▲                     │   └──exchange ended, close (or body unread)──▶ CS_CLOSING
 *     │  └─idle timeout: close │
 *     │                        └──101 Switching Protocols──▶ CS_TUNNEL ──both closed──▶ closed
 *     ├──bad head / read_timeout on a head──▶ (exchange answers 4xx) ──▶ CS_CLOSING
 *     ├──L7 guard trip (headers_timeout, min rate, max_incomplete_per_ip)──▶ closed
 *     ├──max_incomplete_per_ip, over_incomplete: tarpit──▶ CS_LINGER (write side open)
 *     └──EOF with an answer still going out──▶ CS_CLOSING
 *   CS_CLOSING ──output sent──▶ CS_LINGER (write side shut) ──EOF / lingering_timeout──▶ closed
 *   any ──client gone, write stall──▶ closed (a running exchange ends as aborted)
 *
 * CS_LINGER: unread client bytes are read and dropped until EOF or a short
 * deadline so the client sees our last response instead of a RST (the
 * classic lingering-close problem). A connection refused by
 * max_incomplete_per_ip is held there too (the tarpit), its write side
 * left open and nothing written, until EOF or its header deadline.
 *
 * Deadlines: the header deadline runs from the first byte of a head (not
 * extended by later bytes): security.l7.slowloris.headers_timeout (a quiet
 * close) or node.read_timeout when that is shorter (408); read_timeout also
 * runs between request body bytes; it is paused while the
 * upstream is not taking the body (Arc is the one not reading then, and
 * the upstream's write_timeout blames the upstream instead); write_timeout
 * runs while our output waits on the client; idle_timeout between requests.
 */
#include "proxy/proxy_int.h"
#include "plugin/plugin.h"
#include "http2/http2.h"
#include "router/router.h"

#include <openssl/evp.h>
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

static size_t process(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len);

/* ------------------------------------------------------------ local answers */

static bool status_has_no_body(int status)
{
    return status < 200 || status == 204 || status == 304;
}

static char *put(char *o, const void *p, size_t n)
{
    if (n)                              /* (p may be NULL then) */
        memcpy(o, p, n);
    return o + n;
}

/* Serialises a complete local answer into one exact allocation (a 429
 * answered to a flood is as hot as a proxied request: no printf, no
 * growing buffer). NULL (and *len 0) when out of memory. */
static char *local_bytes(int status, const struct arc_hdr *hdrs, size_t n, const char *body,
                         size_t body_len, bool head_only, const char *conn, size_t *len)
{
    const char *reason = arc_h1_reason(status);
    size_t rl = strlen(reason), cl = strlen(conn);
    /* 1xx/204/304 carry no body and no Content-Length (RFC 9110 §8.6); a
     * HEAD answer declares the length the GET would have had. */
    bool no_body = status_has_no_body(status);
    size_t out_body = !no_body && !head_only ? body_len : 0;
    size_t need = sizeof("HTTP/1.1 ") - 1 + 20 + 1 + rl + 2 + cl + 2 + out_body;
    for (size_t i = 0; i < n; i++)
        need += hdrs[i].name.len + 2 + hdrs[i].value.len + 2;
    if (!no_body)
        need += sizeof("Content-Length: ") - 1 + 20 + 2;
    char *m = malloc(need), *o = m;
    *len = 0;
    if (!m)
        return NULL;
    o = put(o, "HTTP/1.1 ", 9);
    o = arc_put_u64(o, status > 0 ? (uint64_t)status : 0);
    *o++ = ' ';
    o = put(o, reason, rl);
    o = put(o, "\r\n", 2);
    for (size_t i = 0; i < n; i++) {
        o = put(o, hdrs[i].name.p, hdrs[i].name.len);
        o = put(o, ": ", 2);
        o = put(o, hdrs[i].value.p, hdrs[i].value.len);
        o = put(o, "\r\n", 2);
    }
    if (!no_body) {
        o = put(o, "Content-Length: ", 16);
        o = arc_put_u64(o, body_len);
        o = put(o, "\r\n", 2);
    }
    o = put(o, conn, cl);
    o = put(o, "\r\n", 2);
    o = put(o, body, out_body);
    *len = (size_t)(o - m);
    return m;
}

static const char *conn_field(const struct arc_conn *c, bool close)
{
    return close ? "Connection: close\r\n" : (c->c.minor == 0 ? "Connection: keep-alive\r\n" : "");
}

static void h1_respond(struct arc_worker *w, struct arc_exchange *ex, int status,
                       const struct arc_hdr *hdrs, size_t n, const char *body, size_t body_len)
{
    struct arc_conn *c = ex->client;
    bool close = !c->c.keep_alive || !ex->req_done;
    if (close)
        c->c.keep_alive = false;
    size_t len;
    char *m = local_bytes(status, hdrs, n, body, body_len, ex->is_head, conn_field(c, close), &len);
    if (!m)
        c->c.keep_alive = false;        /* (out of memory: closed without an answer) */
    arc_px__queue_owned(w, c, m, len);
}

static void h1_interim(struct arc_worker *w, struct arc_exchange *ex, const struct arc_resp *r)
{
    struct arc_conn *c = ex->client;
    /* HTTP/1.0 clients cannot receive 1xx (RFC 9110 §15.2). */
    if (c->c.minor == 0 || ex->n_interim >= ex->snap->cfg->node.max_interim_responses)
        return;
    ex->n_interim++;
    size_t len;
    char *m = arc_px__build_response_head(w, ex, r, false, &len);
    arc_px__queue_owned(w, c, m, len);
}

static void h1_send_head(struct arc_worker *w, struct arc_exchange *ex, const struct arc_resp *r)
{
    if (ex->pl && ex->pl->glue && arc_px__plugins_hold_head(ex, r))
        return;                         /* (sent with the body filters' first output) */
    struct arc_conn *c = ex->client;
    /* 101, or the 200 of a CONNECT tunnel: relay bytes from now on. */
    if (r->status == 101 || (r->upgrade && ex->req.mbit == ARC_M_CONNECT)) {
        size_t len;
        char *m = arc_px__build_response_head(w, ex, r, false, &len);
        arc_px__queue_owned(w, c, m, len);
        c->c.state = CS_TUNNEL;
        c->c.keep_alive = false;
        set_timer(w, c, cfg_of(w)->node.idle_timeout);
        return;
    }
    /* An HTTP/1.0 client cannot read chunked coding (RFC 9112 §6.1): it
     * gets the data alone, delimited by the close. Otherwise chunked bytes
     * are forwarded as they are (validated, never re-encoded). */
    c->c.dechunk = r->body == ARC_H1_BODY_CHUNKED && c->c.minor == 0;
    /* Bytes from an HTTP/2 upstream arrive decoded: an HTTP/1.1 client
     * gets them chunked by us (and the trailers in the last chunk). */
    c->c.rechunk = r->body == ARC_H1_BODY_CHUNKED && r->decoded && !c->c.dechunk;
    ex->resp_passthrough = !c->c.dechunk && !r->decoded;
    /* The connection cannot continue after a close-delimited body, nor
     * while its own request body is still unread. */
    bool close = !c->c.keep_alive || r->body == ARC_H1_BODY_CLOSE || !ex->req_done ||
                 w->draining || c->c.dechunk;
    if (close)
        c->c.keep_alive = false;
    size_t len;
    char *m = arc_px__build_response_head(w, ex, r, close, &len);
    arc_px__queue_owned(w, c, m, len);
}

static void h1_send_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                         const char *p, size_t len, bool framed)
{
    if (ex->pl && ex->pl->glue && arc_px__plugins_resp_body(w, ex, bid, p, len))
        return;                         /* (the filters pass it on, or hold it) */
    (void)framed;   /* framed bytes are only sent when resp_passthrough said so */
    struct arc_conn *c = ex->client;
    ex->bytes_out += len;
    if (c->c.rechunk) {
        if (len == 0)
            return;                     /* (an empty chunk would end the body) */
        char hd[24], *e = arc_put_hex(hd, len);
        *e++ = '\r';
        *e++ = '\n';
        arc_px__queue_copy(w, c, hd, (size_t)(e - hd));
        arc_px__queue_buf(w, c, bid, p, len);
        arc_px__queue_copy(w, c, "\r\n", 2);
        return;
    }
    arc_px__queue_buf(w, c, bid, p, len);
}

/* The last chunk, with the trailer fields (RFC 9112 §7.1.2), ends a body we
 * chunked ourselves; other framings have no place for trailers. */
static void last_chunk(struct arc_worker *w, struct arc_conn *c, const struct arc_hdr *t, size_t n)
{
    c->c.rechunk = false;
    arc_px__queue_copy(w, c, "0\r\n", 3);
    for (size_t i = 0; i < n; i++) {
        arc_px__queue_copy(w, c, t[i].name.p, t[i].name.len);
        arc_px__queue_copy(w, c, ": ", 2);
        arc_px__queue_copy(w, c, t[i].value.p, t[i].value.len);
        arc_px__queue_copy(w, c, "\r\n", 2);
    }
    arc_px__queue_copy(w, c, "\r\n", 2);
}

static void h1_trailers(struct arc_worker *w, struct arc_exchange *ex,
                        const struct arc_hdr *hdrs, size_t n)
{
    if (ex->pl && ex->pl->glue && arc_px__plugins_resp_trailers(w, ex, hdrs, n))
        return;
    struct arc_conn *c = ex->client;
    if (c->c.rechunk)
        last_chunk(w, c, hdrs, n);
}

static void h1_send_raw(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                        const char *p, size_t len)
{
    arc_px__queue_buf(w, ex->client, bid, p, len);
    set_timer(w, ex->client, cfg_of(w)->node.idle_timeout);
}

static bool h1_blocked(const struct arc_exchange *ex)
{
    return arc_px__outq_high(ex->client);
}

static void h1_resume(struct arc_worker *w, struct arc_exchange *ex)
{
    arc_px__client_pump(w, ex->client);
}

static void h1_ended(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome o)
{
    struct arc_conn *c = ex->client;
    c->c.paused = false;
    bool rechunk = c->c.rechunk;
    c->c.rechunk = false;
    if (c->closing)
        return;
    if (o == EXO_COMPLETE && rechunk)
        last_chunk(w, c, NULL, 0);
    switch (o) {
    case EXO_CLIENT_ABORT:
    case EXO_CLIENT_TIMEOUT:
    case EXO_TUNNEL_END:
        /* The caller closes the connection. */
        c->c.state = CS_CLOSING;
        return;
    case EXO_UPSTREAM_CUT:
        /* (Held input is dropped when CS_CLOSING turns into CS_LINGER; not
         * here, where a stash replay may be running.) */
        c->c.keep_alive = false;
        c->c.state = CS_CLOSING;
        set_timer(w, c, cfg_of(w)->node.write_timeout);
        break;
    case EXO_COMPLETE:
        if (!c->c.keep_alive || !ex->req_done || w->draining || c->eof) {
            c->c.keep_alive = false;
            c->c.state = CS_CLOSING;
            set_timer(w, c, cfg_of(w)->node.write_timeout);
        } else {
            c->c.state = CS_HEAD;
            c->c.head_started = false;
            set_timer(w, c, cfg_of(w)->node.idle_timeout);
        }
        break;
    }
    arc_px__guard_sync(w, c);
    arc_px__client_pump(w, c);
}

static void h1_teardown(struct arc_worker *w, struct arc_conn *c)
{
    if (c->c.ex)
        arc_px__ex_end(w, c->c.ex, EXO_CLIENT_ABORT);
}

/* The first bytes of a cleartext connection: true when they were taken
 * (the HTTP/2 preface, or a prefix of it kept for the next receive). */
static bool sniff_h2(struct arc_worker *w, struct arc_conn *c, const char *p, size_t len)
{
    uint8_t first[24];
    size_t have = ARC_MIN((size_t)c->hlen, sizeof(first));
    if (have)
        memcpy(first, c->hbuf, have);
    size_t add = ARC_MIN(len, sizeof(first) - have);
    memcpy(first + have, p, add);
    switch (arc_h2_sniff_preface(first, have + add)) {
    case ARC_H2_SNIFF_HTTP1:
        return false;                   /* (a kept prefix is the head reader's now) */
    case ARC_H2_SNIFF_NEED_MORE:
        if (!arc_px__hbuf_append(c, p, len, sizeof(first)))
            arc_px__conn_close(w, c);
        arc_px__client_pump(w, c);
        return true;
    case ARC_H2_SNIFF_H2:
        break;
    }
    if (!arc_px__h2_start(w, c)) {
        arc_px__conn_close(w, c);
        return true;
    }
    if (c->hlen) {
        arc_px__h2_input(w, c, c->hbuf, c->hlen);
        arc_px__hbuf_reset(c);
    }
    if (!c->closing)
        arc_px__h2_input(w, c, p, len);
    if (!c->closing)
        arc_px__client_pump(w, c);
    return true;
}

static void h1_on_input(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                        const char *p, size_t len)
{
    /* h2c with prior knowledge: the HTTP/2 connection preface as the very
     * first bytes of a cleartext connection (RFC 9113 §3.3), possibly
     * split across receives (a prefix waits in hbuf for the rest). */
    if (!arc_px__guard_input(w, c, len))
        return;                         /* below min_recv_rate_bps: answered or closed */
    if (c->c.fresh && c->c.state == CS_HEAD && c->stash_n == 0 && !c->tls && sniff_h2(w, c, p, len))
        return;
    /* Older stashed bytes go first: new ones queue behind them. */
    size_t n = c->stash_n ? 0 : process(w, c, bid, p, len);
    if (n < len && !c->closing)
        arc_px__stash(w, c, bid, p + n, len - n);
    arc_px__client_pump(w, c);
}

const struct arc_codec_vt arc_px__h1_server = {
    .name = "http/1.1",
    .on_input = h1_on_input,
    .respond = h1_respond,
    .interim = h1_interim,
    .send_head = h1_send_head,
    .send_body = h1_send_body,
    .trailers = h1_trailers,
    .send_raw = h1_send_raw,
    .ended = h1_ended,
    .blocked = h1_blocked,
    .resume = h1_resume,
    .teardown = h1_teardown,
};

/* ------------------------------------------------------------ accept */

void arc_px__client_accepted(struct arc_worker *w, int fd, uint32_t listener, bool over_limit)
{
    struct arc_conn *c = arc_px__conn_new(w, CONN_CLIENT, fd);
    if (!c) {
        close(fd);
        atomic_fetch_sub_explicit(&arc_px__node_clients, 1, memory_order_relaxed);
        return;
    }
    c->c.codec = &arc_px__h1_server;
    c->c.listener = listener;
    c->c.fresh = true;
    c->c.minor = 1;
    w->n_clients++;
    arc_m_add(arc_m_li(&w->metrics, listener, ARC_ML_ACCEPTED), 1);
    struct arc_tls_server *tls = w->snap->listener_tls[listener];
    if (!over_limit && !arc_px__guard_accept(w, c, tls != NULL)) {
        arc_px__conn_close(w, c);       /* refused: not a byte written */
        return;
    }
    if (tls) {
        /* Over the limit there is no cheap way to answer over TLS (that
         * would take a handshake): such a client is closed. */
        c->tls = calloc(1, sizeof(*c->tls));
        if (over_limit || !c->tls || arc_tls_conn_init_server(c->tls, tls) < 0) {
            if (over_limit)
                arc_m_add(arc_m_li(&w->metrics, listener, ARC_ML_REFUSED), 1);
            free(c->tls);
            c->tls = NULL;
            arc_px__conn_close(w, c);
            return;
        }
        c->tp = &arc_px__tls;
        /* The TLS context (certificates, callbacks) of the snapshot the
         * connection was accepted on: referenced for the connection, so a
         * reload can free the rest of that snapshot. */
        c->c.tls_srv = arc_tls_server_ref(tls);
    }
    c->tp->start(w, c);
    if (over_limit) {
        /* Over node.max_connections: a clear 503 and a close rather than
         * a reset, so a client (or a load balancer) knows to go elsewhere. */
        static const struct arc_hdr h[] = {
            { ARC_STR_LIT("Content-Type"), ARC_STR_LIT("text/plain; charset=utf-8") },
            { ARC_STR_LIT("Retry-After"), ARC_STR_LIT("1") },
        };
        size_t len;
        char *m = local_bytes(503, h, 2, "503 Service Unavailable\n", 24, false,
                              "Connection: close\r\n", &len);
        arc_m_add(arc_m_li(&w->metrics, listener, ARC_ML_REFUSED), 1);
        arc_px__queue_owned(w, c, m, len);
        c->c.state = CS_CLOSING;
        set_timer(w, c, cfg_of(w)->node.write_timeout);
        arc_px__client_pump(w, c);
        return;
    }
    c->c.state = CS_HEAD;
    /* A new connection must send its first head (after its TLS handshake)
     * within the header deadline. */
    set_timer(w, c, arc_px__head_deadline(w, NULL));
    arc_px__client_pump(w, c);
}

void arc_px__client_ready(struct arc_worker *w, struct arc_conn *c, const char *alpn)
{
    /* ALPN picks the codec; no ALPN means HTTP/1.1. */
    if (alpn && strcmp(alpn, "h2") == 0 && !arc_px__h2_start(w, c))
        arc_px__conn_close(w, c);
}

void arc_px__client_abort(struct arc_worker *w, struct arc_conn *c, enum ex_outcome o)
{
    if (c->c.ex)
        arc_px__ex_end(w, c->c.ex, o);
    arc_px__conn_close(w, c);
}

/* ------------------------------------------------------------ heads */

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

/* An answer that ends the connection before any request was understood
 * (bad head, header timeout): it is still an exchange, counted once. */
static void head_error(struct arc_worker *w, struct arc_conn *c, int status, enum arc_err_kind k)
{
    arc_px__hbuf_reset(c);
    c->c.minor = 1;
    c->c.keep_alive = false;
    struct arc_exchange *ex = arc_px__ex_new(w, c);
    if (!ex) {
        arc_px__conn_close(w, c);
        return;
    }
    ex->req_done = true;
    c->c.ex = ex;
    c->c.state = CS_EXCHANGE;
    arc_px__ex_error(w, ex, status, k);
}

/* base64url without padding (RFC 7540 §3.2.1) → bytes; -1 if malformed. */
static int b64url_decode(struct arc_str in, uint8_t *out, size_t cap)
{
    char tmp[1024];
    size_t n = in.len;
    if (n == 0 || n + 4 > sizeof(tmp) || (n + 3) / 4 * 3 > cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = in.p[i];
        if (ch == '-')
            ch = '+';
        else if (ch == '_')
            ch = '/';
        else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
            return -1;
        tmp[i] = ch;
    }
    size_t pad = (4 - n % 4) % 4;
    if (pad == 3)
        return -1;
    memset(tmp + n, '=', pad);
    int len = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)(n + pad));
    return len < 0 ? -1 : len - (int)pad;
}

/* "Upgrade: h2c" with HTTP2-Settings, on a cleartext connection, for a
 * request without a body: answer 101 and continue in HTTP/2 with this
 * request as stream 1. Anything else is served as plain HTTP/1.1 (the
 * upgrade is optional for the server, RFC 9110 §7.8). */
static int try_h2c_upgrade(struct arc_worker *w, struct arc_conn *c, struct arc_exchange *ex)
{
    const struct arc_req *q = &ex->req;
    if (c->tls || !ex->req_done || q->version != 11)
        return 0;
    struct arc_str up = { 0 }, settings = { 0 };
    int n_settings = 0;
    for (size_t i = 0; i < q->n_hdrs; i++) {
        if (arc_str_ieq(q->hdrs[i].name, "upgrade", 7))
            up = q->hdrs[i].value;
        else if (arc_str_ieq(q->hdrs[i].name, "http2-settings", 14)) {
            settings = q->hdrs[i].value;
            n_settings++;
        }
    }
    if (!arc_h1_list_has(up, "h2c", 3) || n_settings != 1)
        return 0;
    uint8_t raw[768];
    int len = b64url_decode(settings, raw, sizeof(raw));
    if (len < 0 || len % 6)
        return 0;
    ex->req.upgrade = false;            /* not an upgrade for the upstream */
    arc_px__queue_copy(w, c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: h2c\r\n\r\n", 71);
    if (!arc_px__h2_upgrade(w, c, ex, raw, (size_t)len)) {
        arc_px__client_abort(w, c, EXO_CLIENT_ABORT);
        return -1;
    }
    return 1;
}

/* Returns the bytes of p it consumed (always > 0 unless the conn closed). */
static size_t read_head(struct arc_worker *w, struct arc_conn *c, const char *p, size_t len)
{
    const struct arc_snapshot *s = w->snap;
    if (!c->c.head_started) {
        /* The header deadline runs from the first byte and is not extended
         * by later bytes: a slowloris client trickling one byte at a time
         * still gets cut off after read_timeout. */
        c->c.head_started = true;
        if (!arc_px__guard_head_start(w, c)) {
            /* Over max_incomplete_per_ip. A refused slowloris client
             * reconnects at once, so closing turns held connections into a
             * stream of connects and closes; the tarpit holds this one
             * unanswered, reading and dropping, until its header deadline
             * (what it wanted anyway, at the cost of an idle connection:
             * no head buffer, not counted as incomplete). */
            if (!w->snap->cfg->guard.incomplete_tarpit) {
                arc_px__conn_close(w, c);
                return len;
            }
            c->c.keep_alive = false;
            c->c.state = CS_LINGER;
            set_timer(w, c, arc_px__head_deadline(w, NULL));
            return len;
        }
        set_timer(w, c, arc_px__head_deadline(w, NULL));
        /* The receive rate of this request is judged from here, also when
         * its first bytes waited (pipelined) behind the previous one. */
        arc_guard_rate_start(&c->c.g.rate, w->now_ms);
        c->c.g.rate.bytes = len;
    }
    size_t cap = (size_t)s->limits.max_header_bytes + 1;
    struct arc_px_head h;
    if (!arc_px__head_view(c, p, len, cap, &h)) {
        arc_px__client_abort(w, c, EXO_CLIENT_ABORT);
        return len;
    }
    if (!arc_px__head_may_be_complete(c, &h) && h.len < cap) {
        if (!arc_px__head_keep(c, &h, p, len, cap))
            arc_px__client_abort(w, c, EXO_CLIENT_ABORT);
        return len;
    }
    struct arc_h1_request req;
    enum arc_h1_status rc = arc_h1_parse_request(h.buf, h.len, &s->limits, w->hdrs,
                                                 s->limits.max_headers, &req);
    if (rc == ARC_H1_INCOMPLETE) {
        if (!arc_px__head_keep(c, &h, p, len, cap))
            arc_px__client_abort(w, c, EXO_CLIENT_ABORT);
        return len;
    }
    if (rc != ARC_H1_OK) {
        int status;
        enum arc_err_kind k = err_kind(rc, &status);
        head_error(w, c, status, k);
        return len;
    }
    size_t consumed = arc_px__head_used(c, &h, req.head_len);
    struct arc_exchange *ex = arc_px__ex_new(w, c);
    if (!ex || !arc_px__ex_set_request(ex, &req)) {
        /* Out of memory for this head: refuse it like an oversized one. */
        if (ex) {
            c->c.ex = ex;
            c->c.state = CS_EXCHANGE;
            c->c.keep_alive = false;
            ex->req_done = true;
            arc_px__hbuf_reset(c);
            arc_px__ex_error(w, ex, 431, ARC_ERR_HEADERS_TOO_LARGE);
        } else {
            arc_px__client_abort(w, c, EXO_CLIENT_ABORT);
        }
        return len;
    }
    /* The exchange holds its own copy of the request now. */
    arc_px__hbuf_reset(c);
    if (c->tls)
        ex->req.scheme = ARC_STR_LIT("https");
    c->c.fresh = false;
    c->c.minor = (uint8_t)req.minor;
    c->c.keep_alive = (req.flags & ARC_H1_F_KEEP_ALIVE) && !w->draining;
    c->c.dechunk = false;
    c->c.rechunk = false;
    c->c.req_body = req.body;
    c->c.req_left = req.content_length;
    arc_h1_chunked_init(&c->c.req_chunk);
    if (req.body == ARC_H1_BODY_CHUNKED)    /* (for an HTTP/2 upstream; costs nothing without) */
        arc_h1_chunked_keep_trailers(&c->c.req_chunk, &ex->arena);
    ex->req_done = req.body == ARC_H1_BODY_NONE ||
                   (req.body == ARC_H1_BODY_LENGTH && req.content_length == 0);
    /* We answer Expect: 100-continue ourselves (and strip it upstream): the
     * client learns at once that its body is wanted, and an upstream that
     * does not implement Expect cannot stall the upload. */
    ex->req.expect_100 = ex->req.expect_100 && !ex->req_done && req.minor == 1;
    c->c.ex = ex;
    c->c.state = CS_EXCHANGE;
    /* From here the upstream's deadlines govern; the client's header
     * deadline must not cut a slow (but in-time) response. */
    if (ex->req_done)
        arc_tw_cancel(&w->tw, &c->timer);
    if (ex->req.upgrade) {
        int up = try_h2c_upgrade(w, c, ex);
        if (up < 0)
            return len;                 /* (the connection is gone) */
        if (up > 0) {
            arc_px__pipeline_start(w, ex);  /* answered on stream 1 */
            return consumed;
        }
    }
    arc_px__pipeline_start(w, ex);
    if (c->c.ex == ex && ex->req.expect_100 && !ex->resp_started && !c->closing)
        arc_px__queue_copy(w, c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return consumed;
}

/* ------------------------------------------------------------ request body */

static size_t req_body(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                       const char *p, size_t len)
{
    struct arc_exchange *ex = c->c.ex;
    /* Chunked bodies go to an HTTP/1.1 upstream verbatim: the framing was
     * validated here, and re-encoding would only cost copies. An HTTP/2
     * upstream gets the data alone. */
    bool framed = arc_px__up_framed(ex);
    size_t n = 0;
    if (c->c.req_body == ARC_H1_BODY_LENGTH) {
        n = (size_t)ARC_MIN((uint64_t)len, c->c.req_left);
        c->c.req_left -= n;
        if (c->c.req_left == 0)
            ex->req_done = true;
        ex->body_in += n;
        arc_px__up_body(w, ex, bid, p, n, false);
    } else {
        while (n < len) {
            size_t used;
            const char *data, *err;
            size_t dlen;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&c->c.req_chunk, p + n, len - n,
                                                          &used, &data, &dlen, &err);
            n += used;
            if (rc == ARC_H1_CHUNK_ERROR) {
                c->c.keep_alive = false;
                arc_px__ex_error(w, ex, 400, ARC_ERR_BAD_REQUEST);
                return len;
            }
            if (rc == ARC_H1_CHUNK_DATA)
                ex->body_in += dlen;
            if (rc == ARC_H1_CHUNK_DATA && !framed)
                arc_px__up_body(w, ex, bid, data, dlen, false);
            else if (rc == ARC_H1_CHUNK_DATA && ex->mirror)
                arc_px__mirror_body(ex, data, dlen);    /* (framed: the copy gets it decoded) */
            if (rc == ARC_H1_CHUNK_DONE) {
                ex->req_done = true;
                break;
            }
            if (rc == ARC_H1_CHUNK_AGAIN)
                break;
        }
        if (framed)
            arc_px__up_body(w, ex, bid, p, n, true);
    }
    ex->bytes_in += n;
    if (arc_px__body_over(w, ex))
        return len;                     /* answered 413 (the connection closes) */
    if (ex->req_done && !framed) {
        struct arc_hdr *t = NULL;
        size_t nt = c->c.req_body == ARC_H1_BODY_CHUNKED
                        ? arc_px__chunk_trailers(ex, &c->c.req_chunk, &t) : 0;
        arc_px__up_body_end(w, ex, t, nt);
    }
    if (ex->req_done && !ex->resp_started)
        arc_tw_cancel(&w->tw, &c->timer);
    else if (!ex->req_done && !arc_px__up_full(ex))
        set_timer(w, c, cfg_of(w)->node.read_timeout);  /* (full: the pump pauses it) */
    arc_px__up_kick(w, ex);
    return n;
}

/* ------------------------------------------------------------ input */

/* Is the exchange's upstream backed up (so the client must wait)? */
static bool upstream_full(const struct arc_conn *c)
{
    const struct arc_exchange *ex = c->c.ex;
    return ex && arc_px__up_full(ex);
}

static bool can_process(const struct arc_conn *c)
{
    switch (c->c.state) {
    case CS_HEAD:
        return !arc_px__outq_high(c);
    case CS_EXCHANGE:
        return c->c.ex && !c->c.ex->req_done && !upstream_full(c);
    case CS_TUNNEL:
        return c->c.ex && c->c.ex->up && !upstream_full(c);
    case CS_LINGER:
    case CS_H2:
        return true;
    case CS_CLOSING:
        return false;
    }
    return false;
}

/* Runs input through the state machine for as long as the state accepts
 * it; returns the bytes consumed (the caller stashes the rest, in order). */
static size_t process(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len)
{
    size_t total = 0;
    c->in_process = true;
    while (len > 0 && !c->closing && can_process(c)) {
        size_t n;
        switch (c->c.state) {
        case CS_HEAD:
            n = read_head(w, c, p, len);
            break;
        case CS_EXCHANGE:
            n = req_body(w, c, bid, p, len);
            break;
        case CS_H2:
            arc_px__h2_input(w, c, p, len);
            n = len;
            break;
        case CS_TUNNEL:
            arc_px__queue_buf(w, c->c.ex->up, bid, p, len);
            arc_px__up_pump(w, c->c.ex->up);
            set_timer(w, c, cfg_of(w)->node.idle_timeout);
            n = len;
            break;
        default: /* CS_LINGER: read and drop */
            n = len;
            break;
        }
        p += n;
        len -= n;
        total += n;
    }
    c->in_process = false;
    arc_px__guard_sync(w, c);
    return c->closing ? total + len : total;
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
    struct arc_exchange *ex = c->c.ex;
    /* (an exchange a filter holds: the client is watched for leaving;
     * what it sends meanwhile is stashed, and the receive pauses) */
    if (c->stash_n == 0 && !c->eof && !c->starved &&
        (can_process(c) ||
         (c->c.state == CS_EXCHANGE && ex && ex->req_done && arc_px__ex_held(ex))))
        arc_px__arm_recv(w, c);
    if (c->c.state == CS_EXCHANGE && ex) {
        /* Blame: while the upstream does not take the body, Arc is the one
         * not reading the client, so the client's read deadline pauses;
         * the upstream connection's write_timeout runs meanwhile. */
        bool paused = !ex->req_done && upstream_full(c);
        if (paused) {
            /* While paused only a stall of our output (the client not
             * reading a response that already started) is the client's. */
            bool was = c->c.paused;
            c->c.paused = true;
            if (arc_px__out_idle(c))
                arc_tw_cancel(&w->tw, &c->timer);
            else if (!was || !arc_timer_pending(&c->timer))
                set_timer(w, c, cfg_of(w)->node.write_timeout);
        } else if (c->c.paused) {
            c->c.paused = false;
            /* The pause was ours: the client's receive rate is judged
             * afresh from here. */
            arc_guard_rate_start(&c->c.g.rate, w->now_ms);
            if (!ex->req_done)
                set_timer(w, c, cfg_of(w)->node.read_timeout);
        }
        if (ex->req_done && !arc_timer_pending(&c->timer) && !arc_px__out_idle(c))
            set_timer(w, c, cfg_of(w)->node.write_timeout);
    }
    if (c->c.state == CS_CLOSING && arc_px__out_idle(c)) {
        /* Everything is handed to the kernel: half-close, then keep reading
         * (and dropping) what the client still sends for
         * node.lingering_timeout, so a RST does not destroy our last
         * response before the client read it. */
        arc_px__shutdown_wr(w, c);
        c->c.state = CS_LINGER;
        set_timer(w, c, cfg_of(w)->node.lingering_timeout);
        if (c->eof || cfg_of(w)->node.lingering_timeout == 0) {
            arc_px__conn_close(w, c);
            return;
        }
        arc_px__stash_drop(w, c);
        if (!c->starved)
            arc_px__arm_recv(w, c);
    }
}

void arc_px__client_sent(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_exchange *ex = c->c.ex;
    if (c->c.state == CS_H2) {
        arc_px__h2_timer(w, c);
        arc_px__h2_sent(w, c);
        arc_px__client_pump(w, c);
        return;
    }
    if (!arc_px__out_idle(c))
        set_timer(w, c, cfg_of(w)->node.write_timeout);
    else if (c->c.state == CS_TUNNEL)
        set_timer(w, c, cfg_of(w)->node.idle_timeout);  /* back from a write stall */
    else if (c->c.state == CS_HEAD && !c->c.head_started && c->c.fresh && !c->closing)
        /* A new connection (what goes out here is its TLS handshake): its
         * first head is still due by the deadline that runs from accept. */
        arc_tw_schedule(&w->tw, &c->timer, c->created_ms + arc_px__head_deadline(w, NULL));
    else if (c->c.state == CS_HEAD && !c->c.head_started)
        set_timer(w, c, cfg_of(w)->node.idle_timeout); /* keep-alive idle from the last byte out */
    else if (c->c.state == CS_EXCHANGE && ex && ex->req_done)
        arc_tw_cancel(&w->tw, &c->timer);
    else if (c->c.state == CS_TUNNEL && ex && ex->up && ex->up->eof)
        arc_px__shutdown_wr(w, c);
    if (c->c.state == CS_TUNNEL && ex) {
        arc_px__tunnel_check(w, ex);
        if (c->closing)
            return;
    }
    if (ex && ex->up)
        arc_px__up_pump(w, ex->up);
    arc_px__client_pump(w, c);
}

/* ------------------------------------------------------------ eof, timeout */

void arc_px__client_eof(struct arc_worker *w, struct arc_conn *c, int err)
{
    struct arc_exchange *ex = c->c.ex;
    if (err == 0) {
        c->eof = true;
        switch (c->c.state) {
        case CS_EXCHANGE:
            /* A client may half-close after sending its whole request
             * (HTTP/1.0 style): the response is still owed. Not while the
             * exchange waits (exchange.c) or a filter holds it: a
             * half-close cannot be told from a client that left, and a
             * held one holds a place (and its upstream) until a filter or
             * a timeout lets go. */
            if (ex && ex->req_done && !arc_px__ex_held(ex)) {
                c->c.keep_alive = false;
                return;
            }
            break;
        case CS_TUNNEL:
            if (ex && ex->up) {
                if (arc_px__out_idle(ex->up))
                    arc_px__shutdown_wr(w, ex->up);
                arc_px__tunnel_check(w, ex);
                return;
            }
            break;
        case CS_HEAD:
        case CS_CLOSING:
            if (!arc_px__out_idle(c)) {
                /* The client half-closed while our answer is still going
                 * out: finish sending it, then close. */
                c->c.keep_alive = false;
                c->c.state = CS_CLOSING;
                set_timer(w, c, cfg_of(w)->node.write_timeout);
                return;
            }
            break;
        case CS_LINGER:
        case CS_H2:
            break;
        }
    }
    arc_px__client_abort(w, c, EXO_CLIENT_ABORT);
}

void arc_px__client_slow_body(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_exchange *ex = c->c.ex;
    c->c.keep_alive = false;
    if (ex->resp_started) {
        arc_m_add(&w->metrics.errors[ARC_ERR_CLIENT_TIMEOUT], 1);
        arc_px__client_abort(w, c, EXO_CLIENT_TIMEOUT);
    } else {
        arc_px__ex_error(w, ex, 408, ARC_ERR_CLIENT_TIMEOUT);
    }
}

void arc_px__client_timeout(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_exchange *ex = c->c.ex;
    switch (c->c.state) {
    case CS_HEAD: {
        bool guard;
        arc_px__head_deadline(w, &guard);
        if (guard && (c->c.head_started || c->c.fresh)) {
            /* security.l7.slowloris.headers_timeout: a head (or a new
             * connection's first one) not complete in time is closed
             * without an answer. */
            arc_px__guard_trip(w, c, ARC_GR_HEADERS_TIMEOUT);
            arc_px__conn_close(w, c);
        } else if (c->hlen > 0 || c->stash_n > 0) {
            head_error(w, c, 408, ARC_ERR_CLIENT_TIMEOUT);
        } else {
            arc_px__conn_close(w, c);   /* idle keep-alive, or never spoke: close quietly */
        }
        return;
    }
    case CS_EXCHANGE:
        if (ex && !ex->req_done && !c->c.paused) {
            arc_px__client_slow_body(w, c);
            return;
        }
        /* The client stopped reading our response. */
        arc_m_add(&w->metrics.errors[ARC_ERR_CLIENT_TIMEOUT], 1);
        arc_px__client_abort(w, c, EXO_CLIENT_TIMEOUT);
        return;
    case CS_TUNNEL:
        arc_px__client_abort(w, c, EXO_TUNNEL_END);
        return;
    case CS_H2: {
        bool guard;
        if (arc_px__h2_head_late(w, c, &guard)) {
            /* security.l7.slowloris.headers_timeout: no complete request
             * head since accept, or a header block left open past the
             * deadline (nothing else can arrive meanwhile, so no stream
             * reset frees the connection): closed, nothing more written. */
            if (guard)
                arc_px__guard_trip(w, c, ARC_GR_HEADERS_TIMEOUT);
            else
                arc_m_add(&w->metrics.errors[ARC_ERR_CLIENT_TIMEOUT], 1);
            arc_px__conn_close(w, c);
            return;
        }
        if (arc_px__h2_head_deadline(w, c))
            return;                     /* (not yet: woken early for another reason) */
        /* Idle (no stream) or our output stalled: streams still running
         * end as aborted. */
        if (arc_px__h2_streams(c))
            arc_m_add(&w->metrics.errors[ARC_ERR_CLIENT_TIMEOUT], 1);
        arc_px__client_abort(w, c, EXO_CLIENT_TIMEOUT);
        return;
    }
    case CS_CLOSING:
    case CS_LINGER:
        arc_px__conn_close(w, c);
        return;
    }
}
