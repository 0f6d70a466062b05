/*
 * Drives the HTTP/2 server codec through the exchange layer with a fake
 * transport and a real nghttp2 client in the test (no sockets read or
 * written: the client's bytes are handed to the codec whole, frame by frame
 * or byte by byte, and what the codec sends is captured when the fake send
 * completes and fed back to the client). Upstream connections are never
 * connected for real: the test completes their connect and their sends
 * itself, or holds them to play an upstream that does not read. Proves that
 * local answers reach the client and every exchange is counted exactly once
 * however the input is split, that a stream the client resets ends its
 * exchange as aborted and leaves its siblings alone, that request body bytes
 * are acknowledged (WINDOW_UPDATE) only once the upstream took them, that
 * an exchange's request view lives in its own arena, and that hostile input
 * ends in RST_STREAM or GOAWAY, never in an assertion, with every exchange
 * ended once.
 */
#include "http2/h2_test.h"
#include "proxy/proxy_int.h"
#include "config/config.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static const char CONFIG[] =
    "listeners:\n"
    "  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"
    "node: {max_buffered_output: 4096}\n"
    "upstreams:\n"
    "  - name: app\n"
    "    discovery: {type: static, endpoints: [{address: \"127.0.0.1:9\"}]}\n"
    "routes:\n"
    "  - name: ping\n"
    "    match: {path: /ping, methods: [GET, HEAD]}\n"
    "    action: {respond: {status: 200, body: pong}}\n"
    "  - name: api\n"
    "    match: {path: \"/api/{*rest}\"}\n"
    "    action: {upstream: app}\n";

/* How the client's bytes are handed to the codec. */
enum mode { WHOLE, FRAMES, BYTES };
static const char *const MODE[] = { "whole", "frame by frame", "byte by byte" };

static struct arc_worker W;
static struct peer P;                   /* the nghttp2 client (P.ng NULL: raw bytes) */
static uint8_t raw_out[1 << 16];        /* what the codec sent, when there is no client session */
static size_t raw_len;
static char up_out[1 << 18];            /* what upstream connections sent */
static size_t up_len;
static bool hold_up;                    /* upstream sends stay in flight (it is not reading) */

/* ------------------------------------------------------------ fake transport */

#define MAX_PENDING 16
static struct arc_conn *pending[MAX_PENDING];  /* connections with a fake send in flight */
static size_t n_pending;

static void fk_start(struct arc_worker *w, struct arc_conn *c) { (void)w; (void)c; }

static void fk_on_recv(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                       const char *p, size_t len)
{
    arc_px__conn_input(w, c, bid, p, len);
}

static void fk_flush(struct arc_worker *w, struct arc_conn *c)
{
    (void)w;
    if (c->out.n == 0 || c->shut_wr)
        return;
    c->send_armed = true;
    c->out.inflight = ARC_MIN(c->out.n, (uint32_t)OUTQ_IOV);
    c->ops++;
    ARC_ASSERT(n_pending < MAX_PENDING);
    pending[n_pending++] = c;
}

static void fk_on_sent(struct arc_worker *w, struct arc_conn *c, size_t res)
{
    arc_px__plain.on_sent(w, c, res);   /* the same queue accounting */
}

static void fk_shutdown(struct arc_worker *w, struct arc_conn *c) { (void)w; (void)c; }
static void fk_dispose(struct arc_worker *w, struct arc_conn *c) { (void)w; (void)c; }

static const struct arc_transport_vt fake = {
    .name = "fake", .start = fk_start, .on_recv = fk_on_recv, .on_sent = fk_on_sent,
    .flush = fk_flush, .shutdown = fk_shutdown, .dispose = fk_dispose,
};

/* Bytes that left connection c. */
static void deliver(struct arc_conn *c, const char *p, size_t n)
{
    if (c->kind == CONN_UPSTREAM) {
        ARC_ASSERT(up_len + n <= sizeof(up_out));
        memcpy(up_out + up_len, p, n);
        up_len += n;
    } else if (P.ng) {
        ssize_t rv = nghttp2_session_mem_recv(P.ng, (const uint8_t *)p, n);
        CHECK_INT(rv, (ssize_t)n);
    } else {
        ARC_ASSERT(raw_len + n <= sizeof(raw_out));
        memcpy(raw_out + raw_len, p, n);
        raw_len += n;
    }
}

/* Completes fake sends (delivering their bytes) until none is pending,
 * except upstream ones while hold_up is set. Like the worker's completion
 * handler, a send completing on a closing connection is not reported to
 * the connection (its bytes were on their way all the same). */
static void complete_sends(void)
{
    for (;;) {
        size_t i = 0;
        while (i < n_pending && hold_up && pending[i]->kind == CONN_UPSTREAM)
            i++;
        if (i == n_pending)
            return;
        struct arc_conn *c = pending[i];
        memmove(&pending[i], &pending[i + 1], (n_pending - i - 1) * sizeof(*pending));
        n_pending--;
        size_t total = 0;
        for (uint32_t k = 0; k < c->out.inflight; k++) {
            struct seg *s = &c->out.seg[(c->out.head + k) % c->out.cap];
            deliver(c, s->p, s->len);
            total += s->len;
        }
        c->ops--;
        if (c->closing) {
            c->send_armed = false;
            arc_px__conn_on_closed(&W, c);
        } else {
            arc_px__on_send(&W, c, (int)total);
        }
    }
}

/* ------------------------------------------------------------ client peer */

static int pc_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct peer *p = ud;
    if (f->hd.type == NGHTTP2_WINDOW_UPDATE)
        tlog_add(&p->log, "pwindow %d %d\n", f->hd.stream_id,
                 f->window_update.window_size_increment);
    return p_on_frame_recv(ng, f, ud);
}

/* Request bodies come from P.src; held back (deferred) until body_go. */
static bool body_go;
static ssize_t pc_read(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    if (!body_go)
        return NGHTTP2_ERR_DEFERRED;
    return p_read(ng, sid, buf, len, flags, src, ud);
}
static const nghttp2_data_provider body_provider = { .read_callback = pc_read };

static void peer_client_new(void)
{
    nghttp2_session_callbacks *cb;
    memset(&P, 0, sizeof(P));
    ARC_ASSERT(nghttp2_session_callbacks_new(&cb) == 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, p_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, pc_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, p_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, p_on_close);
    ARC_ASSERT(nghttp2_session_client_new(&P.ng, cb, &P) == 0);
    nghttp2_session_callbacks_del(cb);
    peer_settings(&P, NULL, 0);
}

#define NVS(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

/* The client submits a request (sent with the next exchange_bytes) with
 * the fields flagged `flags` (NGHTTP2_NV_FLAG_NO_INDEX: kept out of the
 * HPACK table, so the codec's decoded copy dies right after the head). */
static int32_t request_flags(const char *method, const char *path, const nghttp2_nv *extra,
                             size_t n, const nghttp2_data_provider *body, uint8_t flags)
{
    nghttp2_nv nv[16] = { NVS(":method", method), NVS(":scheme", "http"),
                          NVS(":authority", "example.test"), NVS(":path", path) };
    ARC_ASSERT(n <= 12);
    for (size_t i = 0; i < n; i++)
        nv[4 + i] = extra[i];
    for (size_t i = 0; i < 4 + n; i++)
        nv[i].flags |= flags;
    int32_t sid = nghttp2_submit_request(P.ng, NULL, nv, 4 + n, body, NULL);
    CHECK(sid > 0);
    return sid;
}

static int32_t request(const char *method, const char *path, const nghttp2_nv *extra, size_t n,
                       const nghttp2_data_provider *body)
{
    return request_flags(method, path, extra, n, body, NGHTTP2_NV_FLAG_NONE);
}

/* ------------------------------------------------------------ feeding */

/* How many bytes at b form the next piece in FRAMES mode: the connection
 * preface, or one frame (header and payload). */
static size_t frame_piece(const uint8_t *b, size_t n)
{
    if (n >= NGHTTP2_CLIENT_MAGIC_LEN && memcmp(b, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN) == 0)
        return NGHTTP2_CLIENT_MAGIC_LEN;
    if (n < 9)
        return n;
    size_t flen = ((size_t)b[0] << 16) | ((size_t)b[1] << 8) | b[2];
    return ARC_MIN(9 + flen, n);
}

/* Hands b[0..n) to the codec in pieces, each in a buffer of its own that is
 * overwritten and freed right after the call (the receive buffer is gone),
 * completing sends after every piece. */
static void feed(struct arc_conn *c, const uint8_t *b, size_t n, enum mode m)
{
    for (size_t off = 0; off < n && !c->closing;) {
        size_t k = m == WHOLE ? n - off : m == BYTES ? 1 : frame_piece(b + off, n - off);
        char *piece = malloc(k);
        ARC_ASSERT(piece != NULL);
        memcpy(piece, b + off, k);
        c->tp->on_recv(&W, c, -1, piece, k);
        memset(piece, 'Z', k);
        free(piece);
        complete_sends();
        off += k;
    }
}

/* Moves bytes both ways between the client session and the codec until
 * neither has anything to say. */
static void exchange_bytes(struct arc_conn *c, enum mode m)
{
    for (int round = 0; round < 1000; round++) {
        complete_sends();
        uint8_t *buf = NULL;
        size_t len = 0;
        const uint8_t *d;
        ssize_t k;
        while (P.ng && (k = nghttp2_session_mem_send(P.ng, &d)) > 0) {
            buf = realloc(buf, len + (size_t)k);
            ARC_ASSERT(buf != NULL);
            memcpy(buf + len, d, (size_t)k);
            len += (size_t)k;
        }
        if (len == 0) {
            free(buf);
            return;
        }
        feed(c, buf, len, m);
        free(buf);
    }
    CHECK(!"the client and the codec did not settle");
}

/* ------------------------------------------------------------ harness */

static void setup(void)
{
    struct arc_config *cfg = NULL;
    struct arc_config_errors e = { 0 };
    int rc = arc_config_load_string(CONFIG, strlen(CONFIG), "t.yaml", "yaml", &cfg, &e);
    if (rc != 0)
        arc_config_errors_print(&e, stderr);
    ARC_ASSERT(rc == 0);
    rc = arc_snapshot_build(cfg, &W.snap, &e);
    ARC_ASSERT(rc == 0);
    arc_config_errors_dispose(&e);
    struct arc_ring_opts ro = { .entries = 256 };
    ARC_ASSERT(arc_ring_init(&W.ring, &ro) == 0);
    W.now_ms = 1000;
    arc_tw_init(&W.tw, W.now_ms, 20);
    ARC_ASSERT(arc_metrics_shard_init(&W.metrics) == 0);
    ARC_ASSERT(arc_metrics_shard_fit(&W.metrics, W.snap->n_route_ids, W.snap->n_up_ids,
                                     W.snap->n_ep_ids, W.snap->cfg->n_listeners) == 0);
    W.hdrs = calloc(W.snap->limits.max_headers + 1, sizeof(*W.hdrs));
    W.n_ups = W.snap->n_up_ids;
    W.ups = calloc(W.n_ups, sizeof(*W.ups));
    W.n_pools = W.snap->n_ep_ids;
    W.pools = calloc(W.n_pools, sizeof(*W.pools));
    for (size_t i = 0; i < W.snap->n_ups; i++) {
        uint32_t weight = 1;
        struct wup *wu = &W.ups[W.snap->ups[i].id];
        ARC_ASSERT(arc_lb_init(&wu->lb, W.snap->ups[i].conf->lb, &weight, 1, 10000, 1) == 0);
        wu->live = true;
    }
}

/* A fresh client connection on the fake transport, still speaking HTTP/1
 * (the codec it starts with on a cleartext listener). */
static struct arc_conn *client_h1(void)
{
    int sv[2];
    ARC_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    close(sv[1]);
    uint32_t idx = W.slab.n_free ? W.slab.free_idx[W.slab.n_free - 1]
                                 : (uint32_t)(W.slab.n_chunks * SLAB_CHUNK);
    atomic_fetch_add(&arc_px__node_clients, 1);
    arc_px__client_accepted(&W, sv[0], 0, false);
    struct arc_conn *c = arc_px__conn_get(&W, idx);
    ARC_ASSERT(c && c->kind == CONN_CLIENT);
    c->tp = &fake;
    raw_len = 0;
    up_len = 0;
    return c;
}

/* A client connection switched to HTTP/2 (as after ALPN h2), with an
 * nghttp2 client session (raw: none, the test writes frames itself). */
static struct arc_conn *client_h2(bool raw)
{
    struct arc_conn *c = client_h1();
    CHECK(arc_px__h2_start(&W, c));
    CHECK(c->c.state == CS_H2 && c->c.codec == &arc_px__h2_server);
    if (!raw)
        peer_client_new();
    complete_sends();                   /* our SETTINGS */
    return c;
}

/* The client goes away (if it has not already been closed). */
static void client_done(struct arc_conn *c)
{
    if (!c->closing)
        arc_px__client_eof(&W, c, -ECONNRESET);
    hold_up = false;
    complete_sends();
    if (P.ng)
        nghttp2_session_del(P.ng);
    P.ng = NULL;
}

/* Closes the upstream connections still open (pooled ones included), so
 * that every test starts with none. */
static void upstreams_done(void)
{
    for (size_t ch = 0; ch < W.slab.n_chunks; ch++)
        for (size_t i = 0; i < SLAB_CHUNK; i++) {
            struct arc_conn *u = &W.slab.chunks[ch][i];
            if (u->kind == CONN_UPSTREAM && !u->closing)
                arc_px__conn_close(&W, u);
        }
    complete_sends();
}

/* The exchange of client c whose request-target is `target`, found through
 * the upstream connection it is paired with. */
static struct arc_exchange *ex_for(const struct arc_conn *c, const char *target)
{
    for (size_t ch = 0; ch < W.slab.n_chunks; ch++)
        for (size_t i = 0; i < SLAB_CHUNK; i++) {
            struct arc_conn *u = &W.slab.chunks[ch][i];
            struct arc_exchange *ex = u->kind == CONN_UPSTREAM && !u->closing ? u->u.ex : NULL;
            if (ex && ex->client == c && arc_str_eq(ex->req.target, target, strlen(target)))
                return ex;
        }
    return NULL;
}

/* The upstream connection completes its connect (on the fake transport). */
static void up_connect(struct arc_conn *u)
{
    u->tp = &fake;
    u->ops--;                           /* the connect SQE, never submitted */
    arc_px__up_connected(&W, u, 0);
    complete_sends();
}

/* The upstream sends `s`. */
static void up_says(struct arc_conn *u, const char *s)
{
    u->tp->on_recv(&W, u, -1, s, strlen(s));
    complete_sends();
}

/* What is queued on connection u, as a string. */
static const char *queued(const struct arc_conn *u)
{
    static char buf[1 << 16];
    size_t n = 0;
    for (uint32_t i = 0; i < u->out.n; i++) {
        const struct seg *s = &u->out.seg[(u->out.head + i) % u->out.cap];
        size_t k = ARC_MIN((size_t)s->len, sizeof(buf) - 1 - n);
        memcpy(buf + n, s->p, k);
        n += k;
    }
    buf[n] = '\0';
    return buf;
}

static const struct arc_route_rt *route(const char *name)
{
    for (size_t r = 0; r < W.snap->n_routes; r++)
        if (strcmp(W.snap->routes[r].conf->name, name) == 0)
            return &W.snap->routes[r];
    ARC_ASSERT(!"no such route");
    return NULL;
}

/* Requests of route `name` counted with a status of class cls (2 = 2xx). */
static uint64_t counted_id(uint32_t id, int cls)
{
    uint64_t v[5];
    struct arc_metrics_shard *sh[] = { &W.metrics };
    arc_m_route_classes(sh, 1, id, v);
    return v[cls - 1];
}

static uint64_t counted(const char *name, int cls)
{
    return counted_id(route(name)->id, cls);
}

static uint64_t counted_all(void)
{
    uint64_t n = 0;
    for (int c = 1; c <= 5; c++) {
        n += counted_id(ARC_M_NO_ROUTE, c);
        for (size_t r = 0; r < W.snap->n_routes; r++)
            n += counted_id(W.snap->routes[r].id, c);
    }
    return n;
}

static uint64_t aborts(void)
{
    return arc_m_get(&W.metrics.errors[ARC_ERR_CLIENT_ABORT]);
}

/* ------------------------------------------------------------ raw frames */

struct frame {
    uint8_t type, flags;
    int32_t sid;
    const uint8_t *p;
    size_t len;
};

/* The n-th frame of the codec's raw output of `type` on `sid` (sid < 0:
 * any), or false. */
static bool raw_find(uint8_t type, int32_t sid, int nth, struct frame *f)
{
    for (size_t off = 0; off + 9 <= raw_len;) {
        const uint8_t *b = raw_out + off;
        size_t flen = ((size_t)b[0] << 16) | ((size_t)b[1] << 8) | b[2];
        if (off + 9 + flen > raw_len)
            break;
        *f = (struct frame){ b[3], b[4],
                             (int32_t)((((uint32_t)b[5] & 0x7f) << 24) | ((uint32_t)b[6] << 16) |
                                       ((uint32_t)b[7] << 8) | b[8]),
                             b + 9, flen };
        if (f->type == type && (sid < 0 || f->sid == sid) && nth-- == 0)
            return true;
        off += 9 + flen;
    }
    return false;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* A HEADERS frame (END_HEADERS | END_STREAM) for a GET of `path` (NULL: no
 * :path at all). */
static void raw_get(struct raw *r, nghttp2_hd_deflater *d, int32_t sid, const char *path)
{
    nghttp2_nv nv[4] = { NVS(":method", "GET"), NVS(":scheme", "http"),
                         NVS(":authority", "example.test"), NVS(":path", path ? path : "") };
    uint8_t block[256];
    ssize_t n = nghttp2_hd_deflate_hd(d, block, sizeof(block), nv, path ? 4 : 3);
    ARC_ASSERT(n > 0);
    raw_frame(r, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, sid,
              block, (size_t)n);
}

/* ------------------------------------------------------------ tests */

static void test_local_answer(void)
{
    for (enum mode m = WHOLE; m <= BYTES; m++) {
        int before = t_failures;
        struct arc_conn *c = client_h2(false);
        uint64_t all = counted_all(), ping = counted("ping", 2), none = counted_id(ARC_M_NO_ROUTE, 4);
        int32_t sid = request("GET", "/ping", NULL, 0, NULL);
        exchange_bytes(c, m);
        CHECK_LOG(&P.log, "phdr 1 :status: 200\n");
        CHECK_LOG(&P.log, "phdr 1 content-length: 4\n");
        CHECK_LOG(&P.log, "pheaders 1 end=0\npdata 1 pong\npend 1\npclose 1 0\n");
        CHECK_INT(sid, 1);
        CHECK_INT(counted_all() - all, 1);
        CHECK_INT(counted("ping", 2) - ping, 1);
        CHECK_INT(W.n_exchanges, 0);
        CHECK(!c->closing && c->c.state == CS_H2);
        CHECK_INT(arc_px__h2_streams(c), 0);

        /* More on the same connection: HEAD (the GET's length, no body),
         * and a path no route matches (404). */
        request("HEAD", "/ping", NULL, 0, NULL);
        request("GET", "/nothing", NULL, 0, NULL);
        exchange_bytes(c, m);
        CHECK_LOG(&P.log, "phdr 3 content-length: 4\npheaders 3 end=1\n");
        CHECK_NOLOG(&P.log, "pdata 3");
        CHECK_LOG(&P.log, "phdr 5 :status: 404\n");
        CHECK_LOG(&P.log, "pclose 5 0\n");
        CHECK_INT(counted_all() - all, 3);
        CHECK_INT(counted("ping", 2) - ping, 2);
        CHECK_INT(counted_id(ARC_M_NO_ROUTE, 4) - none, 1);
        CHECK_INT(W.n_exchanges, 0);
        CHECK(!c->closing && c->c.state == CS_H2);
        client_done(c);
        CHECK_INT(counted_all() - all, 3);     /* nothing was running: no abort */
        if (t_failures != before)
            fprintf(stderr, "(fed %s)\n", MODE[m]);
    }
}

static void test_reset_stream_aborts_its_exchange_only(void)
{
    for (enum mode m = FRAMES; m <= BYTES; m++) {
        int before = t_failures;
        struct arc_conn *c = client_h2(false);
        uint64_t all = counted_all(), a4 = counted("api", 4), a2 = counted("api", 2), ab = aborts();
        int32_t a = request("GET", "/api/a", NULL, 0, NULL);
        int32_t b = request("GET", "/api/b?x=1", NULL, 0, NULL);
        exchange_bytes(c, m);
        struct arc_exchange *ea = ex_for(c, "/api/a"), *eb = ex_for(c, "/api/b?x=1");
        CHECK(ea != NULL && eb != NULL && ea != eb);
        if (!ea || !eb) {
            client_done(c);
            upstreams_done();
            continue;
        }
        /* Each stream is an exchange waiting for its own upstream
         * connection, its request head queued there. */
        struct arc_conn *ua = ea->up, *ub = eb->up;
        CHECK(ua != NULL && ub != NULL && ua != ub);
        CHECK(ea->state == EX_CONNECTING && ua->u.ex == ea && ea->req_done);
        CHECK(eb->state == EX_CONNECTING && ub->u.ex == eb && eb->req_done);
        CHECK(strncmp(queued(ua), "GET /api/a HTTP/1.1\r\n", 21) == 0);
        CHECK(strstr(queued(ua), "\r\nHost: example.test\r\n") != NULL);
        CHECK(strncmp(queued(ub), "GET /api/b?x=1 HTTP/1.1\r\n", 25) == 0);
        CHECK_INT(W.n_exchanges, 2);
        CHECK_INT(arc_px__h2_streams(c), 2);
        CHECK_NOLOG(&P.log, "pheaders");

        /* The client cancels the first stream. */
        tlog_reset(&P.log);
        CHECK_INT(nghttp2_submit_rst_stream(P.ng, NGHTTP2_FLAG_NONE, a, NGHTTP2_CANCEL), 0);
        exchange_bytes(c, m);
        CHECK_INT(counted_all() - all, 1);
        CHECK_INT(counted("api", 4) - a4, 1);  /* 499 */
        CHECK_INT(aborts() - ab, 1);
        CHECK_INT(W.n_exchanges, 1);
        CHECK(ua->closing);                     /* mid-request: not reusable */
        CHECK(ex_for(c, "/api/b?x=1") == eb && eb->up == ub && !ub->closing);
        CHECK_INT(arc_px__h2_streams(c), 1);
        CHECK(!c->closing && c->c.state == CS_H2);
        CHECK_NOLOG(&P.log, "prst 1");        /* no RST in answer to a RST (RFC 9113 §5.4.2) */

        /* The sibling carries on: its upstream connects and answers. */
        up_connect(ub);
        CHECK(strncmp(up_out, "GET /api/b?x=1 HTTP/1.1\r\n", 25) == 0);
        up_says(ub, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        exchange_bytes(c, m);
        CHECK_LOG(&P.log, "phdr 3 :status: 200\n");
        CHECK_LOG(&P.log, "pdata 3 hello\npend 3\n");
        CHECK_LOG(&P.log, "pclose 3 0\n");
        CHECK_INT(b, 3);
        CHECK_INT(counted("api", 2) - a2, 1);
        CHECK_INT(counted_all() - all, 2);
        CHECK_INT(aborts() - ab, 1);
        CHECK_INT(W.n_exchanges, 0);
        client_done(c);
        upstreams_done();
        CHECK_INT(counted_all() - all, 2);
        if (t_failures != before)
            fprintf(stderr, "(fed %s)\n", MODE[m]);
    }
}

/* Request body bytes for an exchange whose upstream is backed up stay
 * unacknowledged (the client's window stays closed) until the upstream took
 * them: first while the upstream connection is still connecting, then on a
 * connected (pooled) one that stops reading; a control run on an upstream
 * that keeps reading gets its window reopened as the bytes flow. */
static uint8_t BODY[40000];

static int32_t post_body(void)
{
    P.src = BODY;
    P.src_len = sizeof(BODY);
    P.src_off = 0;
    const nghttp2_nv cl[] = { NVS("content-length", "40000") };
    return request("POST", "/api/upload", cl, 1, &body_provider);
}

static int32_t stream_window(int32_t sid)
{
    return nghttp2_session_get_stream_remote_window_size(P.ng, sid);
}

static bool up_got_body(void)
{
    const char *end = memmem(up_out, up_len, "\r\n\r\n", 4);
    return end && up_len - (size_t)(end + 4 - up_out) == sizeof(BODY) &&
           memcmp(end + 4, BODY, sizeof(BODY)) == 0;
}

static void test_request_body_waits_for_upstream(void)
{
    for (size_t i = 0; i < sizeof(BODY); i++)
        BODY[i] = (uint8_t)('a' + i % 26);
    const int32_t win = (int32_t)ARC_H2_DEFAULT_STREAM_WINDOW;
    for (enum mode m = FRAMES; m <= BYTES; m++) {
        int before = t_failures;
        struct arc_conn *c = client_h2(false);
        uint64_t a2 = counted("api", 2);

        /* 1. The head alone: the exchange waits for its upstream connection. */
        body_go = false;
        int32_t sid = post_body();
        exchange_bytes(c, m);
        struct arc_exchange *ex = ex_for(c, "/api/upload");
        CHECK(ex != NULL);
        if (!ex) {
            client_done(c);
            upstreams_done();
            continue;
        }
        struct arc_conn *u = ex->up;
        CHECK(ex->state == EX_CONNECTING && !ex->req_done);

        /* 2. The body arrives while the upstream cannot take it. */
        tlog_reset(&P.log);
        body_go = true;
        CHECK_INT(nghttp2_session_resume_data(P.ng, sid), 0);
        exchange_bytes(c, m);
        CHECK(ex_for(c, "/api/upload") == ex && ex->req_done);
        CHECK_INT(ex->bytes_in, sizeof(BODY));
        CHECK(arc_px__up_full(ex));
        CHECK_NOLOG(&P.log, "pwindow");
        CHECK_INT(stream_window(sid), win - (int32_t)sizeof(BODY));
        CHECK_INT(nghttp2_session_get_remote_window_size(P.ng),
                  (int32_t)ARC_H2_DEFAULT_CONN_WINDOW - (int32_t)sizeof(BODY));

        /* 3. The upstream connects and takes the bytes: acknowledged now. */
        up_len = 0;
        up_connect(u);
        exchange_bytes(c, m);
        CHECK(up_got_body());
        CHECK(!arc_px__up_full(ex));
        CHECK_LOG(&P.log, "pwindow 1 ");
        CHECK_INT(stream_window(sid), win);
        up_says(u, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
        exchange_bytes(c, m);
        CHECK_LOG(&P.log, "phdr 1 :status: 201\n");
        CHECK_LOG(&P.log, "pdata 1 ok\npend 1\n");
        CHECK_INT(W.n_exchanges, 0);
        CHECK(!u->closing && u->u.state == US_IDLE);   /* pooled for the next one */

        /* 4. The same (pooled, connected) upstream stops reading. */
        tlog_reset(&P.log);
        up_len = 0;
        hold_up = true;
        sid = post_body();
        exchange_bytes(c, m);
        ex = ex_for(c, "/api/upload");
        CHECK(ex != NULL && ex->up == u && ex->state == EX_UPSTREAM && ex->req_done);
        CHECK(ex && arc_px__up_full(ex));
        CHECK_NOLOG(&P.log, "pwindow");
        CHECK_INT(stream_window(sid), win - (int32_t)sizeof(BODY));
        hold_up = false;
        complete_sends();
        exchange_bytes(c, m);
        CHECK(up_got_body());
        CHECK_LOG(&P.log, "pwindow 3 ");
        CHECK_INT(stream_window(sid), win);
        up_says(u, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
        exchange_bytes(c, m);
        CHECK_LOG(&P.log, "pend 3\n");

        /* 5. Control: an upstream that keeps reading. The window reopens
         * while the body flows (nghttp2 sends WINDOW_UPDATE once half the
         * window was consumed, so the tail of the body may stay counted). */
        tlog_reset(&P.log);
        up_len = 0;
        sid = post_body();
        exchange_bytes(c, m);
        CHECK(up_got_body());
        CHECK_LOG(&P.log, "pwindow 5 ");
        CHECK(stream_window(sid) >= win - (int32_t)sizeof(BODY) + win / 2);
        up_says(u, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
        exchange_bytes(c, m);
        CHECK_LOG(&P.log, "pend 5\n");

        CHECK_INT(counted("api", 2) - a2, 3);
        CHECK_INT(W.n_exchanges, 0);
        client_done(c);
        upstreams_done();
        if (t_failures != before)
            fprintf(stderr, "(fed %s)\n", MODE[m]);
    }
}

/* A body without content-length reaches an HTTP/1.1 upstream chunked, the
 * request's trailers in its last chunk. */
static void test_chunked_body_and_trailers_upstream(void)
{
    for (enum mode m = FRAMES; m <= BYTES; m++) {
        int before = t_failures;
        struct arc_conn *c = client_h2(false);
        uint64_t a2 = counted("api", 2);
        body_go = true;
        P.src = (const uint8_t *)"hello world";
        P.src_len = 11;
        P.src_off = 0;
        P.src_trailers = true;          /* x-checksum: abc */
        request("PUT", "/api/doc", NULL, 0, &body_provider);
        exchange_bytes(c, m);
        P.src_trailers = false;
        struct arc_exchange *ex = ex_for(c, "/api/doc");
        CHECK(ex != NULL && ex->req_done && ex->req.body == ARC_H1_BODY_CHUNKED);
        if (!ex) {
            client_done(c);
            upstreams_done();
            continue;
        }
        struct arc_conn *u = ex->up;
        up_connect(u);
        up_out[up_len] = '\0';
        CHECK(strncmp(up_out, "PUT /api/doc HTTP/1.1\r\n", 23) == 0);
        CHECK(strstr(up_out, "\r\nTransfer-Encoding: chunked\r\n") != NULL);
        const char *body = strstr(up_out, "\r\n\r\n");
        CHECK(body != NULL);
        if (body) {
            /* (byte by byte the data comes in as many one-byte chunks) */
            char dechunked[64] = "";
            const char *p = body + 4;
            size_t n = 0;
            for (;;) {
                char *end;
                unsigned long len = strtoul(p, &end, 16);
                if (end == p || strncmp(end, "\r\n", 2) != 0 || n + len >= sizeof(dechunked))
                    break;
                p = end + 2;
                if (len == 0)
                    break;
                memcpy(dechunked + n, p, len);
                n += len;
                p += len + 2;
            }
            dechunked[n] = '\0';
            CHECK_STR(dechunked, "hello world");
            CHECK_STR(p, "x-checksum: abc\r\n\r\n");
        }
        up_says(u, "HTTP/1.1 204 No Content\r\n\r\n");
        exchange_bytes(c, m);
        CHECK_LOG(&P.log, "phdr 1 :status: 204\npheaders 1 end=1\n");
        CHECK_INT(counted("api", 2) - a2, 1);
        CHECK_INT(W.n_exchanges, 0);
        client_done(c);
        upstreams_done();
        if (t_failures != before)
            fprintf(stderr, "(fed %s)\n", MODE[m]);
    }
}

static void test_request_view_outlives_its_input(void)
{
    for (enum mode m = FRAMES; m <= BYTES; m++) {
        int before = t_failures;
        struct arc_conn *c = client_h2(false);
        uint64_t all = counted_all(), a4 = counted("api", 4);
        const nghttp2_nv h1[] = { NVS("x-trace", "abc"), NVS("cookie", "a=1"), NVS("cookie", "b=2"),
                                  NVS("accept", "*/*") };
        request_flags("GET", "/api/users?id=7", h1, 4, NULL, NGHTTP2_NV_FLAG_NO_INDEX);
        exchange_bytes(c, m);
        /* A second request reuses what the first was decoded into (the
         * session's field and cookie scratch); the first one's fields were
         * not indexed, so their decoded buffers are already freed. */
        const nghttp2_nv h2[] = { NVS("x-trace", "zzz"), NVS("cookie", "c=3"), NVS("cookie", "d=4"),
                                  NVS("accept", "text/html") };
        request("GET", "/api/other?q=2", h2, 4, NULL);
        exchange_bytes(c, m);
        struct arc_exchange *ex = ex_for(c, "/api/users?id=7");
        CHECK(ex != NULL);
        if (ex) {
            const struct arc_req *q = &ex->req;
            CHECK(ex->snap == W.snap);
            CHECK_VIEW(q->method.p, q->method.len, "GET");
            CHECK_VIEW(q->scheme.p, q->scheme.len, "http");
            CHECK_VIEW(q->authority.p, q->authority.len, "example.test");
            CHECK_VIEW(q->path.p, q->path.len, "/api/users");
            CHECK_VIEW(q->query.p, q->query.len, "id=7");
            CHECK_INT(q->version, 20);
            CHECK(q->body == ARC_H1_BODY_NONE && ex->req_done && ex->idempotent);
            CHECK_INT(q->n_hdrs, 3);
            if (q->n_hdrs == 3) {
                CHECK_VIEW(q->hdrs[0].name.p, q->hdrs[0].name.len, "x-trace");
                CHECK_VIEW(q->hdrs[0].value.p, q->hdrs[0].value.len, "abc");
                CHECK_VIEW(q->hdrs[1].name.p, q->hdrs[1].name.len, "cookie");
                CHECK_VIEW(q->hdrs[1].value.p, q->hdrs[1].value.len, "a=1; b=2");
                CHECK_VIEW(q->hdrs[2].value.p, q->hdrs[2].value.len, "*/*");
            }
            const char *head = queued(ex->up);
            CHECK(strncmp(head, "GET /api/users?id=7 HTTP/1.1\r\n", 30) == 0);
            CHECK(strstr(head, "\r\nx-trace: abc\r\ncookie: a=1; b=2\r\naccept: */*\r\n") != NULL);
            CHECK(strstr(head, "\r\nHost: example.test\r\n") != NULL);
        }
        struct arc_exchange *ex2 = ex_for(c, "/api/other?q=2");
        CHECK(ex2 != NULL && ex2 != ex);
        if (ex2)
            CHECK_VIEW(ex2->req.hdrs[1].value.p, ex2->req.hdrs[1].value.len, "c=3; d=4");
        /* The client goes away: both end once, as aborted. */
        uint64_t ab = aborts();
        client_done(c);
        CHECK_INT(counted_all() - all, 2);
        CHECK_INT(counted("api", 4) - a4, 2);
        CHECK_INT(aborts() - ab, 2);
        CHECK_INT(W.n_exchanges, 0);
        upstreams_done();
        if (t_failures != before)
            fprintf(stderr, "(fed %s)\n", MODE[m]);
    }
}

/* HEADERS without :path is malformed (RFC 9113 §8.3.1): a stream error.
 * The stream is reset, no exchange is made of it, the connection goes on. */
static void test_request_without_path_is_reset(void)
{
    for (enum mode m = WHOLE; m <= BYTES; m++) {
        int before = t_failures;
        struct arc_conn *c = client_h2(true);
        uint64_t all = counted_all();
        nghttp2_hd_deflater *d;
        ARC_ASSERT(nghttp2_hd_deflate_new(&d, 4096) == 0);
        static struct raw r;
        r.len = 0;
        raw_preface(&r);
        raw_get(&r, d, 1, NULL);
        raw_get(&r, d, 3, "/ping");
        feed(c, r.b, r.len, m);
        struct frame f = { 0 };
        CHECK(raw_find(NGHTTP2_RST_STREAM, 1, 0, &f) && f.len == 4 &&
              be32(f.p) == NGHTTP2_PROTOCOL_ERROR);
        CHECK(!raw_find(NGHTTP2_HEADERS, 1, 0, &f));
        CHECK(raw_find(NGHTTP2_HEADERS, 3, 0, &f));
        CHECK(raw_find(NGHTTP2_DATA, 3, 0, &f) && f.len == 4 && memcmp(f.p, "pong", 4) == 0);
        CHECK(!raw_find(NGHTTP2_GOAWAY, 0, 0, &f));
        CHECK_INT(counted_all() - all, 1);
        CHECK_INT(W.n_exchanges, 0);
        CHECK(!c->closing && c->c.state == CS_H2);
        nghttp2_hd_deflate_del(d);
        client_done(c);
        if (t_failures != before)
            fprintf(stderr, "(fed %s)\n", MODE[m]);
    }
}

/* Connection errors: each hostile piece follows a request that is waiting
 * on its upstream and a local answer, and precedes a request that must be
 * ignored. */
struct hostile {
    const char *what;
    uint32_t code;                      /* GOAWAY error code expected */
    int32_t last;                       /* ... and its last stream id */
    void (*add)(struct raw *r, nghttp2_hd_deflater *d);
};

static void h_ping_len7(struct raw *r, nghttp2_hd_deflater *d)
{
    (void)d;
    raw_frame(r, NGHTTP2_PING, 0, 0, "1234567", 7);
}

static void h_settings_len5(struct raw *r, nghttp2_hd_deflater *d)
{
    (void)d;
    raw_frame(r, NGHTTP2_SETTINGS, 0, 0, "\0\x04\0\0\x01", 5);
}

static void h_data_too_long(struct raw *r, nghttp2_hd_deflater *d)
{
    (void)d;
    static uint8_t big[16385];
    memset(big, 'x', sizeof(big));      /* over SETTINGS_MAX_FRAME_SIZE (16384) */
    raw_frame(r, NGHTTP2_DATA, 0, 1, big, sizeof(big));
}

static void h_bad_hpack(struct raw *r, nghttp2_hd_deflater *d)
{
    (void)d;
    raw_frame(r, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 5,
              "\xff\xff\xff\xff\xff\x0f", 6);   /* an index far past any table */
}

static void h_window_update_zero(struct raw *r, nghttp2_hd_deflater *d)
{
    (void)d;
    raw_frame(r, NGHTTP2_WINDOW_UPDATE, 0, 0, "\0\0\0\0", 4);
}

static void h_even_stream(struct raw *r, nghttp2_hd_deflater *d)
{
    raw_get(r, d, 4, "/ping");
}

static void h_continuation_alone(struct raw *r, nghttp2_hd_deflater *d)
{
    (void)d;
    raw_frame(r, NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, 5, "\x82", 1);
}

static const struct hostile HOSTILE[] = {
    { "PING with length 7", NGHTTP2_FRAME_SIZE_ERROR, 3, h_ping_len7 },
    { "SETTINGS with length 5", NGHTTP2_FRAME_SIZE_ERROR, 3, h_settings_len5 },
    { "DATA over the maximum frame size", NGHTTP2_FRAME_SIZE_ERROR, 3, h_data_too_long },
    /* (stream 5 was opened by the HEADERS before its block failed to decode) */
    { "HEADERS with an undecodable block", NGHTTP2_COMPRESSION_ERROR, 5, h_bad_hpack },
    { "WINDOW_UPDATE of 0 on the connection", NGHTTP2_PROTOCOL_ERROR, 3, h_window_update_zero },
    { "HEADERS on an even stream", NGHTTP2_PROTOCOL_ERROR, 3, h_even_stream },
    { "CONTINUATION without HEADERS", NGHTTP2_PROTOCOL_ERROR, 3, h_continuation_alone },
};

static void test_connection_errors_end_in_goaway(void)
{
    for (size_t h = 0; h < ARC_ARRAY_LEN(HOSTILE); h++)
        for (enum mode m = FRAMES; m <= BYTES; m++) {
            int before = t_failures;
            struct arc_conn *c = client_h2(true);
            uint64_t all = counted_all(), a4 = counted("api", 4), ping = counted("ping", 2),
                     ab = aborts();
            nghttp2_hd_deflater *d;
            ARC_ASSERT(nghttp2_hd_deflate_new(&d, 4096) == 0);
            static struct raw r;
            r.len = 0;
            raw_preface(&r);
            raw_get(&r, d, 1, "/api/a");
            raw_get(&r, d, 3, "/ping");
            HOSTILE[h].add(&r, d);
            raw_get(&r, d, 7, "/api/late");
            feed(c, r.b, r.len, m);
            struct frame f = { 0 };
            CHECK(raw_find(NGHTTP2_GOAWAY, 0, 0, &f) && f.len >= 8);
            if (f.type == NGHTTP2_GOAWAY && f.len >= 8) {
                CHECK_INT(be32(f.p) & 0x7fffffffu, HOSTILE[h].last);
                CHECK_INT(be32(f.p + 4), HOSTILE[h].code);
            }
            CHECK(!raw_find(NGHTTP2_GOAWAY, 0, 1, &f));     /* just one */
            CHECK(raw_find(NGHTTP2_DATA, 3, 0, &f) && f.len == 4);
            CHECK(!raw_find(NGHTTP2_HEADERS, 7, 0, &f));
            CHECK(c->closing || c->c.state != CS_H2);        /* the connection is over */
            CHECK(ex_for(c, "/api/late") == NULL);
            CHECK_INT(counted("ping", 2) - ping, 1);
            /* The exchange waiting on its upstream ends, once, as aborted
             * (at the latest when the connection closes). */
            client_done(c);
            CHECK_INT(counted_all() - all, 2);
            CHECK_INT(counted("api", 4) - a4, 1);
            CHECK_INT(aborts() - ab, 1);
            CHECK_INT(W.n_exchanges, 0);
            nghttp2_hd_deflate_del(d);
            upstreams_done();
            if (t_failures != before)
                fprintf(stderr, "(%s, fed %s)\n", HOSTILE[h].what, MODE[m]);
        }
}

/* A bad connection preface: GOAWAY, no exchange. */
static void test_bad_preface(void)
{
    for (enum mode m = WHOLE; m <= BYTES; m++) {
        int before = t_failures;
        struct arc_conn *c = client_h2(true);
        uint64_t all = counted_all();
        static const char bad[] = "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" "\0\0\0\x04\0\0\0\0\0";
        feed(c, (const uint8_t *)bad, sizeof(bad) - 1, m);
        struct frame f = { 0 };
        CHECK(raw_find(NGHTTP2_GOAWAY, 0, 0, &f));
        CHECK(c->closing || c->c.state != CS_H2);
        client_done(c);
        CHECK_INT(counted_all() - all, 0);
        CHECK_INT(W.n_exchanges, 0);
        if (t_failures != before)
            fprintf(stderr, "(fed %s)\n", MODE[m]);
    }
}

/* h2c with prior knowledge on a cleartext listener: the HTTP/1 codec sees
 * the preface as the first bytes and hands the connection over. */
static void test_prior_knowledge_switches_codec(void)
{
    struct arc_conn *c = client_h1();
    peer_client_new();
    uint64_t all = counted_all();
    request("GET", "/ping", NULL, 0, NULL);
    exchange_bytes(c, WHOLE);
    CHECK(c->c.codec == &arc_px__h2_server && c->c.state == CS_H2);
    CHECK_LOG(&P.log, "pdata 1 pong\npend 1\n");
    CHECK_INT(counted_all() - all, 1);
    CHECK_INT(W.n_exchanges, 0);
    client_done(c);
}

int main(void)
{
    setup();
    RUN(test_local_answer);
    RUN(test_reset_stream_aborts_its_exchange_only);
    RUN(test_request_body_waits_for_upstream);
    RUN(test_chunked_body_and_trailers_upstream);
    RUN(test_request_view_outlives_its_input);
    RUN(test_request_without_path_is_reset);
    RUN(test_connection_errors_end_in_goaway);
    RUN(test_bad_preface);
    RUN(test_prior_knowledge_switches_codec);
    return TEST_REPORT();
}
