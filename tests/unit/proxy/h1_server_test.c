/*
 * Drives the HTTP/1 server codec through the exchange layer with a fake
 * transport (no sockets read or written: input is handed to the codec byte
 * by byte, output is captured when the fake "send" completes). Proves that
 * local answers come out in order and byte-identical however the input is
 * split, that every exchange is counted exactly once, that errors close the
 * connection, and that an exchange's request view lives in its own arena
 * (it outlives the bytes it was parsed from).
 */
#include "test.h"
#include "proxy/proxy_int.h"
#include "config/config.h"

#include <sys/socket.h>
#include <unistd.h>

static const char CONFIG[] =
    "listeners:\n"
    "  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"
    "upstreams:\n"
    "  - name: app\n"
    "    discovery: {type: static, endpoints: [{address: \"127.0.0.1:9\"}]}\n"
    "routes:\n"
    "  - name: ping\n"
    "    match: {path: /ping, methods: [GET, HEAD]}\n"
    "    action: {respond: {status: 200, body: pong}}\n"
    "  - name: old\n"
    "    match: {path: \"/old/{*rest}\"}\n"
    "    action: {redirect: {status: 301, location: \"/new/{rest}\"}}\n"
    "  - name: api\n"
    "    match: {path: \"/api/{*rest}\"}\n"
    "    action: {upstream: app}\n";

static struct arc_worker W;
static char out[1 << 16];
static size_t out_len;
static struct arc_conn *pending;        /* the connection with a fake send in flight */
static bool shut;

/* ------------------------------------------------------------ fake transport */

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
    pending = c;
}

static void fk_on_sent(struct arc_worker *w, struct arc_conn *c, size_t res)
{
    arc_px__plain.on_sent(w, c, res);   /* the same queue accounting */
}

static void fk_shutdown(struct arc_worker *w, struct arc_conn *c) { (void)w; (void)c; shut = true; }
static void fk_dispose(struct arc_worker *w, struct arc_conn *c) { (void)w; (void)c; }

static const struct arc_transport_vt fake = {
    .name = "fake", .start = fk_start, .on_recv = fk_on_recv, .on_sent = fk_on_sent,
    .flush = fk_flush, .shutdown = fk_shutdown, .dispose = fk_dispose,
};

/* Completes fake sends (capturing their bytes) until nothing is pending. */
static void complete_sends(void)
{
    while (pending) {
        struct arc_conn *c = pending;
        pending = NULL;
        size_t total = 0;
        for (uint32_t i = 0; i < c->out.inflight; i++) {
            struct seg *s = &c->out.seg[(c->out.head + i) % c->out.cap];
            ARC_ASSERT(out_len + s->len <= sizeof(out));
            memcpy(out + out_len, s->p, s->len);
            out_len += s->len;
            total += s->len;
        }
        c->ops--;
        arc_px__on_send(&W, c, (int)total);
    }
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

/* A fresh client connection on the fake transport. */
static struct arc_conn *client(void)
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
    out_len = 0;
    shut = false;
    return c;
}

/* Feeds `in` in pieces of `step` bytes (0 = all at once), completing sends
 * after every piece; returns the output as a string. */
static const char *feed(struct arc_conn *c, const char *in, size_t step)
{
    size_t n = strlen(in);
    if (step == 0)
        step = n;
    for (size_t off = 0; off < n && !c->closing; off += step) {
        size_t k = ARC_MIN(step, n - off);
        char piece[4096];
        memcpy(piece, in + off, k);
        c->tp->on_recv(&W, c, -1, piece, k);
        memset(piece, 'Z', k);          /* the input is gone after the call */
        complete_sends();
    }
    out[out_len] = '\0';
    /* Arc's X-Request-Id is random per request (checked end to end in
     * test_access_log.py): cut out so outputs compare exactly. */
    char *id;
    while ((id = strstr(out, "\r\nX-Request-Id: "))) {
        char *eol = strstr(id + 2, "\r\n");
        if (!eol)
            break;
        memmove(id, eol, strlen(eol) + 1);
        out_len -= (size_t)(eol - id);
    }
    return out;
}

static uint64_t requests_counted(void)
{
    uint64_t n = 0, cls[5];
    struct arc_metrics_shard *sh[] = { &W.metrics };
    for (size_t r = 0; r <= W.snap->n_routes; r++) {
        arc_m_route_classes(sh, 1, r < W.snap->n_routes ? W.snap->routes[r].id : ARC_M_NO_ROUTE,
                            cls);
        for (size_t c = 0; c < 5; c++)
            n += cls[c];
    }
    return n;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* ------------------------------------------------------------ tests */

static const char PONG[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n\r\npong";

static void test_local_answer_byte_by_byte(void)
{
    struct arc_conn *c = client();
    uint64_t before = requests_counted();
    CHECK_STR(feed(c, "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n", 1), PONG);
    CHECK_INT(requests_counted() - before, 1);
    CHECK(!c->closing && c->c.state == CS_HEAD && c->c.ex == NULL);
    arc_px__conn_close(&W, c);
}

static void test_pipelined_split_everywhere(void)
{
    const char *in = "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n"
                     "HEAD /ping HTTP/1.1\r\nHost: t\r\n\r\n"
                     "GET /old/a/b?q=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                     "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n";
    struct arc_conn *c = client();
    char whole[4096];
    snprintf(whole, sizeof(whole), "%s", feed(c, in, 0));
    arc_px__conn_close(&W, c);
    CHECK_INT(count(whole, "HTTP/1.1 "), 4);
    CHECK(strstr(whole, "Location: /new/a/b\r\n") != NULL);
    CHECK(strstr(whole, "HTTP/1.1 404 Not Found") != NULL);
    /* HEAD: the length the GET would have, no body */
    CHECK(strstr(whole, "Content-Length: 4\r\n\r\nHTTP/1.1 301") != NULL);
    size_t n = strlen(in);
    for (size_t split = 1; split < n; split++) {
        for (size_t step = 1; step <= 7; step += 6) {
            c = client();
            uint64_t before = requests_counted();
            char first[1024];
            memcpy(first, in, split);
            first[split] = '\0';
            feed(c, first, step);
            feed(c, in + split, step);
            t_checks++;
            if (strcmp(out, whole) != 0) {
                t_failures++;
                fprintf(stderr, "split at %zu (step %zu) differs:\n%s\n", split, step, out);
                split = n;
            }
            CHECK_INT(requests_counted() - before, 4);
            arc_px__conn_close(&W, c);
        }
    }
}

static void test_method_not_allowed_lists_allow(void)
{
    struct arc_conn *c = client();
    const char *o = feed(c, "POST /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 3);
    CHECK(strncmp(o, "HTTP/1.1 405 ", 13) == 0);
    CHECK(strstr(o, "Allow: GET, HEAD\r\n") != NULL);
    CHECK(!c->closing);
    arc_px__conn_close(&W, c);
}

static void test_bad_request_answers_400_and_closes(void)
{
    struct arc_conn *c = client();
    uint64_t before = requests_counted();
    const char *o = feed(c, "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n", 2);
    CHECK(strncmp(o, "HTTP/1.1 400 ", 13) == 0);
    CHECK(strstr(o, "Connection: close\r\n") != NULL);
    CHECK_INT(requests_counted() - before, 1);
    CHECK(shut);                        /* write side shut: lingering close */
    CHECK(c->c.state == CS_LINGER || c->closing);
    arc_px__conn_close(&W, c);
}

static void test_http10_gets_close_unless_keep_alive(void)
{
    struct arc_conn *c = client();
    const char *o = feed(c, "GET /ping HTTP/1.0\r\n\r\n", 0);
    CHECK(strstr(o, "Connection: close\r\n") != NULL);
    CHECK(shut);
    arc_px__conn_close(&W, c);
    c = client();
    o = feed(c, "GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0);
    CHECK(strstr(o, "Connection: keep-alive\r\n") != NULL);
    CHECK(!shut && c->c.state == CS_HEAD);
    arc_px__conn_close(&W, c);
}

static void test_request_view_outlives_its_input(void)
{
    /* An upstream route: the exchange waits for its connect (never
     * completed here) after the input buffer was overwritten. */
    struct arc_conn *c = client();
    uint64_t before = requests_counted();
    /* In one piece: parsed in place from the (then overwritten) input. */
    feed(c, "GET /api/users?id=7 HTTP/1.1\r\nHost: example.test\r\nX-Trace: abc\r\n\r\n", 0);
    struct arc_exchange *ex = c->c.ex;
    CHECK(ex != NULL);
    if (ex) {
        CHECK(ex->state == EX_CONNECTING);
        CHECK(ex->snap == W.snap);
        CHECK_VIEW(ex->req.path.p, ex->req.path.len, "/api/users");
        CHECK_VIEW(ex->req.query.p, ex->req.query.len, "id=7");
        CHECK_VIEW(ex->req.authority.p, ex->req.authority.len, "example.test");
        CHECK_INT(ex->req.n_hdrs, 2);
        CHECK_VIEW(ex->req.hdrs[1].value.p, ex->req.hdrs[1].value.len, "abc");
        CHECK(ex->up != NULL && ex->up->u.ex == ex);
    }
    /* The client goes away: the exchange ends once, as aborted (499). */
    arc_px__client_eof(&W, c, -ECONNRESET);
    CHECK_INT(requests_counted() - before, 1);
    uint64_t cls[5];
    struct arc_metrics_shard *sh[] = { &W.metrics };
    arc_m_route_classes(sh, 1, W.snap->routes[2].id, cls);
    CHECK_INT(cls[3], 1);                                   /* "api", 4xx */
    CHECK_INT(arc_m_get(&W.metrics.errors[ARC_ERR_CLIENT_ABORT]), 1);
    CHECK_INT(W.n_exchanges, 0);
}

int main(void)
{
    setup();
    RUN(test_local_answer_byte_by_byte);
    RUN(test_pipelined_split_everywhere);
    RUN(test_method_not_allowed_lists_allow);
    RUN(test_bad_request_answers_400_and_closes);
    RUN(test_http10_gets_close_unless_keep_alive);
    RUN(test_request_view_outlives_its_input);
    return TEST_REPORT();
}
