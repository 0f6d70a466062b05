/*
 * Connections (conn.c): proves that an idle keep-alive connection holds no
 * output memory (its output block goes back to the worker's pool once the
 * response is sent, never while a send is in flight, and is reused by the
 * next response) and no head buffer, and that the client's address, kept compact, is
 * formatted exactly as inet_ntop would.
 */
#include "test.h"
#include "proxy/proxy_int.h"
#include "config/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static const char CONFIG[] =
    "listeners:\n"
    "  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"
    "routes:\n"
    "  - name: ping\n"
    "    match: {path: /ping}\n"
    "    action: {respond: {status: 200, body: pong}}\n";

static struct arc_worker W;
static struct arc_conn *pending;        /* the connection with a fake send in flight */

/* ------------------------------------------------------------ fake transport */

static void fk_start(struct arc_worker *w, struct arc_conn *c) { (void)w; (void)c; }

static void fk_on_recv(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                       const char *p, size_t len)
{
    arc_px__conn_input(w, c, bid, p, len);
}

/* Like plain_flush, without the SQE: the send "points at" the block. */
static void fk_flush(struct arc_worker *w, struct arc_conn *c)
{
    if (c->out.n == 0 || c->shut_wr)
        return;
    struct outblk *b = arc_px__outblk(w, c);
    CHECK(b == c->out.blk);
    c->send_armed = true;
    c->out.inflight = ARC_MIN(c->out.n, (uint32_t)OUTQ_IOV);
    c->ops++;
    pending = c;
}

static void fk_on_sent(struct arc_worker *w, struct arc_conn *c, size_t res)
{
    arc_px__plain.on_sent(w, c, res);
}

static void fk_shutdown(struct arc_worker *w, struct arc_conn *c) { (void)w; (void)c; }
static void fk_dispose(struct arc_worker *w, struct arc_conn *c) { (void)w; (void)c; }

static const struct arc_transport_vt fake = {
    .name = "fake", .start = fk_start, .on_recv = fk_on_recv, .on_sent = fk_on_sent,
    .flush = fk_flush, .shutdown = fk_shutdown, .dispose = fk_dispose,
};

static void complete_send(void)
{
    struct arc_conn *c = pending;
    pending = NULL;
    size_t total = 0;
    for (uint32_t i = 0; i < c->out.inflight; i++)
        total += c->out.seg[(c->out.head + i) % c->out.cap].len;
    c->ops--;
    arc_px__on_send(&W, c, (int)total);
}

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
    struct arc_ring_opts ro = { .entries = 64 };
    ARC_ASSERT(arc_ring_init(&W.ring, &ro) == 0);
    W.now_ms = 1000;
    arc_tw_init(&W.tw, W.now_ms, 20);
    ARC_ASSERT(arc_metrics_shard_init(&W.metrics) == 0);
    ARC_ASSERT(arc_metrics_shard_fit(&W.metrics, W.snap->n_route_ids, W.snap->n_up_ids,
                                     W.snap->n_ep_ids, W.snap->cfg->n_listeners) == 0);
    W.hdrs = calloc(W.snap->limits.max_headers + 1, sizeof(*W.hdrs));
}

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
    return c;
}

static void send_request(struct arc_conn *c)
{
    static const char req[] = "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n";
    char piece[sizeof(req)];
    memcpy(piece, req, sizeof(req));
    c->tp->on_recv(&W, c, -1, piece, sizeof(req) - 1);
}

/* ------------------------------------------------------------ tests */

static void test_idle_connection_holds_no_output_memory(void)
{
    struct arc_conn *c = client();
    CHECK(c->out.blk == NULL && c->out.seg == NULL);
    send_request(c);
    /* The answer is queued and its send is in flight: the block (with the
     * iovec the send points at) must stay. */
    CHECK(pending == c && c->send_armed);
    struct outblk *b = c->out.blk;
    CHECK(b != NULL && c->out.seg == b->seg);
    complete_send();
    CHECK(!c->closing && c->c.state == CS_HEAD);
    CHECK(c->out.blk == NULL && c->out.seg == NULL && c->out.cap == 0);
    CHECK(c->stash == NULL);
    CHECK(W.outblk_free == b);
    /* The next response takes the same block from the pool (no malloc). */
    size_t free_before = W.n_outblk_free;
    send_request(c);
    CHECK(c->out.blk == b);
    CHECK_INT(W.n_outblk_free, free_before - 1);
    complete_send();
    CHECK(c->out.blk == NULL);
    CHECK_INT(W.n_outblk_free, free_before);
    arc_px__conn_close(&W, c);
}

static void test_head_buffer_given_back_once_idle(void)
{
    struct arc_conn *c = client();
    char a[] = "GET /ping HTTP/1.1\r\nHo", b[] = "st: t\r\n\r\n";
    c->tp->on_recv(&W, c, -1, a, sizeof(a) - 1);
    CHECK(c->hbuf != NULL && c->hlen == sizeof(a) - 1);      /* head pending */
    c->tp->on_recv(&W, c, -1, b, sizeof(b) - 1);
    CHECK(pending == c && c->hlen == 0);
    complete_send();
    CHECK(c->c.state == CS_HEAD && c->hbuf == NULL && c->hcap == 0);
    arc_px__conn_close(&W, c);
}

static void test_close_with_send_in_flight_keeps_block_until_completion(void)
{
    struct arc_conn *c = client();
    send_request(c);
    CHECK(pending == c && c->out.blk != NULL);
    arc_px__conn_close(&W, c);
    /* Closing: nothing more goes out, but the in-flight send still points
     * at the block's iovec. */
    CHECK(c->out.blk != NULL);
    pending = NULL;
    c->ops--;
    c->send_armed = false;              /* what dispatch does for a closing connection */
    arc_px__conn_on_closed(&W, c);
    CHECK(c->out.blk == NULL);
}

static void test_peer_text_matches_inet_ntop(void)
{
    struct arc_conn c;
    memset(&c, 0, sizeof(c));
    c.kind = CONN_CLIENT;
    c.fd = -1;
    c.c.peer_known = true;
    char buf[ARC_PX_PEER_TEXT], want[INET6_ADDRSTRLEN];
    c.c.peer.in.sin_family = AF_INET;
    static const uint8_t octets[] = { 0, 1, 9, 10, 42, 99, 100, 101, 199, 200, 255 };
    for (size_t i = 0; i < sizeof(octets); i++)
        for (size_t j = 0; j < sizeof(octets); j++) {
            uint8_t a[4] = { octets[i], octets[j], octets[(i + j) % sizeof(octets)], octets[j] };
            memcpy(&c.c.peer.in.sin_addr, a, 4);
            inet_ntop(AF_INET, a, want, sizeof(want));
            CHECK_STR(arc_px__peer_text(&c, buf), want);
        }
    CHECK(arc_px__peer_addr(&c) == &c.c.peer.sa);
    memset(&c.c.peer, 0, sizeof(c.c.peer));
    c.c.peer.in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::ffff:1:2", &c.c.peer.in6.sin6_addr);
    CHECK_STR(arc_px__peer_text(&c, buf), "2001:db8::ffff:1:2");
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &c.c.peer.in6.sin6_addr);
    CHECK_STR(arc_px__peer_text(&c, buf), "::ffff:192.0.2.7");
    c.c.peer.sa.sa_family = AF_UNSPEC;  /* looked up, none to be had */
    CHECK(arc_px__peer_addr(&c) == NULL);
    CHECK_STR(arc_px__peer_text(&c, buf), "unknown");
}

static void test_peer_looked_up_once_from_the_socket(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    ARC_ASSERT(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 1) == 0);
    ARC_ASSERT(getsockname(l, (struct sockaddr *)&sa, &len) == 0);
    int cl = socket(AF_INET, SOCK_STREAM, 0);
    ARC_ASSERT(connect(cl, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    int s = accept(l, NULL, NULL);
    ARC_ASSERT(s >= 0);
    struct arc_conn c;
    memset(&c, 0, sizeof(c));
    c.kind = CONN_CLIENT;
    c.fd = s;
    char buf[ARC_PX_PEER_TEXT];
    CHECK_STR(arc_px__peer_text(&c, buf), "127.0.0.1");
    CHECK(c.c.peer_known && c.c.peer.sa.sa_family == AF_INET);
    close(s);
    /* Kept: the descriptor is not asked again. */
    CHECK_STR(arc_px__peer_text(&c, buf), "127.0.0.1");
    /* A socket without an IP peer is "unknown", as before. */
    int sv[2];
    ARC_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    memset(&c, 0, sizeof(c));
    c.kind = CONN_CLIENT;
    c.fd = sv[0];
    CHECK(arc_px__peer_addr(&c) == NULL);
    CHECK_STR(arc_px__peer_text(&c, buf), "unknown");
    close(sv[0]);
    close(sv[1]);
    close(cl);
    close(l);
}

int main(void)
{
    setup();
    RUN(test_idle_connection_holds_no_output_memory);
    RUN(test_head_buffer_given_back_once_idle);
    RUN(test_close_with_send_in_flight_keeps_block_until_completion);
    RUN(test_peer_text_matches_inet_ntop);
    RUN(test_peer_looked_up_once_from_the_socket);
    return TEST_REPORT();
}
