/* Proves the client session (upstream side) against a real nghttp2 server
 * peer: requests multiplex on one connection, bodies go out under
 * backpressure with trailers, interim 1xx, final head and trailers (gRPC's
 * grpc-status) arrive as separate callbacks, response bodies are held to the
 * window until consumed, and the pool's facts (peer MAX_CONCURRENT_STREAMS,
 * open streams, GOAWAY and its last stream id) are visible and honoured. */
#include "h2_test.h"

static struct owner O;
static struct peer P;

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0 }
#define H(n, v) { ARC_STR_LIT(n), ARC_STR_LIT(v) }

static void setup_full(const nghttp2_settings_entry *iv, size_t n, const struct arc_h2_options *opt)
{
    owner_dispose(&O);
    memset(&O, 0, sizeof(O));
    peer_init(&P, true);
    CHECK_INT(arc_h2_client_new(&owner_cbs, &O, opt, &O.s), 0);
    peer_settings(&P, iv, n);
}

static void setup_iv(const nghttp2_settings_entry *iv, size_t n)
{
    setup_full(iv, n, NULL);
}

static void setup(void)
{
    setup_iv(NULL, 0);
}

static void teardown(void)
{
    arc_h2_free(O.s);
    O.s = NULL;
    nghttp2_session_del(P.ng);
}

static int32_t get(const char *path, void *sud)
{
    const struct arc_h2_header h[] = { H("Accept", "*/*"), H("Connection", "keep-alive"),
                                       H("Host", "ignored.example") };
    struct arc_h2_request r = { .method = ARC_STR_LIT("GET"), .scheme = ARC_STR_LIT("https"),
                                .authority = ARC_STR_LIT("api.internal"),
                                .path = arc_str_make(path, strlen(path)),
                                .headers = h, .n_headers = 3 };
    return arc_h2_submit_request(O.s, &r, false, sud);
}

static void respond(int32_t sid, const char *status, bool end)
{
    nghttp2_nv nv[] = { { (uint8_t *)":status", (uint8_t *)status, 7, strlen(status), 0 },
                        NV("server", "peer") };
    CHECK_INT(nghttp2_submit_headers(P.ng, end ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE,
                                     sid, NULL, nv, 2, NULL), 0);
}

static void test_multiplexed_requests(void)
{
    static uint8_t body[1000];
    memset(body, 'b', sizeof(body));
    setup();
    int32_t a = get("/a", qs(&O, 1)), b = get("/b?q=1", qs(&O, 3));
    CHECK_INT(a, 1);
    CHECK_INT(b, 3);
    CHECK_INT(arc_h2_open_streams(O.s), 2);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 1 :method: GET\nphdr 1 :scheme: https\nphdr 1 :authority: api.internal\n"
                      "phdr 1 :path: /a\nphdr 1 accept: */*\npheaders 1 end=1\n");
    CHECK_LOG(&P.log, "phdr 3 :path: /b?q=1\n");
    CHECK_NOLOG(&P.log, "connection");
    CHECK_NOLOG(&P.log, "host");
    /* Answer in the opposite order, one with a body. */
    P.src = body;
    P.src_len = sizeof(body);
    const nghttp2_nv rb[] = { NV(":status", "200"), NV("content-length", "1000") };
    CHECK_INT(nghttp2_submit_response(P.ng, b, rb, 2, &peer_provider), 0);
    respond(a, "404", true);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "resp 3 200 cl=1000 end=0\nhdr 3 content-length: 1000\n");
    CHECK_LOG(&O.log, "resp 1 404 cl=-1 end=1\nhdr 1 server: peer\nend 1 bytes=0\nclose 1 0\n");
    CHECK_LOG(&O.log, "end 3 bytes=1000\n");
    CHECK_LOG(&O.log, "close 3 0\n");
    CHECK_INT(arc_h2_open_streams(O.s), 0);
    CHECK(arc_h2_can_submit(O.s));
    teardown();
}

static void test_grpc_trailers_and_interim(void)
{
    setup();
    int32_t sid = get("/pkg.Service/Method", qs(&O, 1));
    CHECK_INT(shuttle(O.s, &P), 0);
    respond(sid, "100", false);
    respond(sid, "103", false);
    const nghttp2_nv rh[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
    P.src = (const uint8_t *)"\0\0\0\0\x02hi";
    P.src_len = 7;
    P.src_trailers = false;
    CHECK_INT(nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, sid, NULL, rh, 2, NULL), 0);
    CHECK_INT(nghttp2_submit_data(P.ng, NGHTTP2_FLAG_END_STREAM, sid, &peer_provider), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    /* Interim heads, then the final one, then a body that simply ends. */
    CHECK_LOG(&O.log, "info 1 100\ninfo 1 103\nresp 1 200 cl=-1 end=0\nhdr 1 content-type: application/grpc\n");
    CHECK_LOG(&O.log, "end 1 bytes=7\nclose 1 0\n");
    CHECK_NOLOG(&O.log, "trailer 1");

    int32_t s2 = get("/pkg.Service/Other", qs(&O, 3));
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, s2, NULL, rh, 2, NULL), 0);
    const nghttp2_nv tr[] = { NV("grpc-status", "7"), NV("grpc-message", "denied") };
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(nghttp2_submit_trailer(P.ng, s2, tr, 2), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "resp 3 200 cl=-1 end=0\n");
    CHECK_LOG(&O.log, "trailer 3 grpc-status: 7\ntrailer 3 grpc-message: denied\nend 3 bytes=0\nclose 3 0\n");
    CHECK_NOLOG(&O.log, "hdr 3 grpc-status");  /* not mixed into the head */

    /* Trailers-only (gRPC error without body): one HEADERS with END_STREAM
     * is the response head, not trailers. */
    int32_t s3 = get("/pkg.Service/Fail", qs(&O, 5));
    CHECK_INT(shuttle(O.s, &P), 0);
    const nghttp2_nv only[] = { NV(":status", "200"), NV("grpc-status", "13") };
    CHECK_INT(nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_END_STREAM, s3, NULL, only, 2, NULL), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "resp 5 200 cl=-1 end=1\nhdr 5 grpc-status: 13\nend 5 bytes=0\n");
    teardown();
}

static void test_request_body_backpressure_and_trailers(void)
{
    setup();
    const struct arc_h2_header h[] = { H("Content-Type", "application/grpc"), H("TE", "trailers"),
                                       H("HOST", "from-host.example") };
    struct arc_h2_request r = { .method = ARC_STR_LIT("POST"), .scheme = ARC_STR_LIT("http"),
                                .path = ARC_STR_LIT("/up"), .headers = h, .n_headers = 2 };
    /* Neither :authority nor Host: refused before anything is queued. */
    CHECK_INT(arc_h2_submit_request(O.s, &r, true, NULL), ARC_H2_E_INVAL);
    CHECK_INT(arc_h2_open_streams(O.s), 0);
    /* Host stands in for an empty authority. */
    r.n_headers = 3;
    int32_t sid = arc_h2_submit_request(O.s, &r, true, qs(&O, 1));
    CHECK_INT(sid, 1);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 1 :authority: from-host.example\nphdr 1 :path: /up\n");
    CHECK_LOG(&P.log, "phdr 1 te: trailers\npheaders 1 end=0\n");
    CHECK_NOLOG(&P.log, "pdata");
    owner_queue(&O, sid, "chunk-one;", 10);
    CHECK_INT(arc_h2_resume(O.s, sid), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "pdata 1 chunk-one;\n");
    owner_queue(&O, sid, "chunk-two", 9);
    const struct arc_h2_header tr[] = { H("x-sum", "42") };
    CHECK_INT(arc_h2_end_body(O.s, sid, tr, 1), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "pdata 1 chunk-two\nphdr 1 x-sum: 42\npheaders 1 end=1\n");
    CHECK_INT(P.recv_bytes, 19);
    respond(sid, "200", true);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "close 1 0\n");

    struct arc_h2_request bad = { .method = ARC_STR_LIT("GET"), .scheme = ARC_STR_LIT("http") };
    CHECK_INT(arc_h2_submit_request(O.s, &bad, false, NULL), ARC_H2_E_INVAL);
    teardown();
}

static void test_response_flow_control(void)
{
    static uint8_t body[200000];
    memset(body, 'r', sizeof(body));
    setup();
    int32_t sid = get("/big", qs(&O, 1));
    CHECK_INT(shuttle(O.s, &P), 0);
    P.src = body;
    P.src_len = sizeof(body);
    const nghttp2_nv rh[] = { NV(":status", "200") };
    CHECK_INT(nghttp2_submit_response(P.ng, sid, rh, 1, &peer_provider), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    struct qstream *q = qs(&O, sid);
    CHECK_INT(q->in_bytes, ARC_H2_DEFAULT_STREAM_WINDOW);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(q->in_bytes, ARC_H2_DEFAULT_STREAM_WINDOW);
    while (q->in_bytes < sizeof(body)) {
        size_t before = q->in_bytes;
        CHECK_INT(arc_h2_consume(O.s, sid, ARC_H2_DEFAULT_STREAM_WINDOW), 0);
        CHECK_INT(shuttle(O.s, &P), 0);
        CHECK(q->in_bytes > before && q->in_bytes - before <= ARC_H2_DEFAULT_STREAM_WINDOW);
        if (q->in_bytes == before)
            break;
    }
    CHECK_LOG(&O.log, "end 1 bytes=200000\n");
    teardown();
}

static void test_max_concurrent_and_goaway(void)
{
    const nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 2 } };
    int32_t last = -1;
    setup_iv(iv, 1);
    /* Until the peer's SETTINGS arrive nghttp2 assumes 100. */
    CHECK_INT(arc_h2_peer_max_concurrent_streams(O.s), 100);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(arc_h2_peer_max_concurrent_streams(O.s), 2);
    CHECK(arc_h2_can_submit(O.s));
    CHECK_INT(get("/1", qs(&O, 1)), 1);
    CHECK(arc_h2_can_submit(O.s));
    CHECK_INT(get("/2", qs(&O, 3)), 3);
    CHECK(!arc_h2_can_submit(O.s));
    CHECK_INT(arc_h2_open_streams(O.s), 2);
    CHECK_INT(shuttle(O.s, &P), 0);
    respond(1, "204", true);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(arc_h2_open_streams(O.s), 1);
    CHECK(arc_h2_can_submit(O.s));
    CHECK(!arc_h2_goaway_received(O.s, &last));

    /* The peer goes away having processed stream 1 only... and stream 3,
     * in flight, is refused: safe to retry elsewhere. */
    CHECK_INT(get("/3", qs(&O, 5)), 5);
    CHECK_INT(nghttp2_submit_goaway(P.ng, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, NULL, 0), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK(arc_h2_goaway_received(O.s, &last));
    CHECK_INT(last, 1);
    CHECK(!arc_h2_can_submit(O.s));
    CHECK_INT(get("/4", NULL), ARC_H2_E_REFUSED);
    CHECK_LOG(&O.log, "close 3 7\n");
    CHECK_LOG(&O.log, "close 5 7\n");
    CHECK_INT(arc_h2_open_streams(O.s), 0);
    teardown();
}

/* Requests queued but not yet on the wire when GOAWAY lands never open a
 * stream in nghttp2; the owner must still get its on_close. */
static void test_queued_request_refused_by_goaway(void)
{
    setup();
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(get("/q", qs(&O, 1)), 1);
    CHECK_INT(nghttp2_submit_goaway(P.ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0), 0);
    const uint8_t *d;
    ssize_t m;
    while ((m = nghttp2_session_mem_send(P.ng, &d)) > 0)
        CHECK_INT(arc_h2_recv(O.s, d, (size_t)m), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "close 1 7\n");
    CHECK_NOLOG(&P.log, "phdr 1");
    CHECK_INT(arc_h2_open_streams(O.s), 0);
    teardown();
}

/* A :status nghttp2 lets through but HTTP/2 cannot carry ("000", 101)
 * must not pass for an interim response. */
static void test_bad_status_codes(void)
{
    setup();
    int32_t a = get("/a", qs(&O, 1)), b = get("/b", qs(&O, 3));
    CHECK_INT(shuttle(O.s, &P), 0);
    respond(a, "000", true);
    respond(b, "101", false);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_NOLOG(&O.log, "info");
    CHECK_NOLOG(&O.log, "resp");
    CHECK_LOG(&O.log, "close 1 1\n");
    CHECK_LOG(&O.log, "close 3 1\n");
    teardown();
}

static void test_owner_reset(void)
{
    setup();
    int32_t sid = get("/r", qs(&O, 1));
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(arc_h2_reset(O.s, sid, NGHTTP2_CANCEL), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "prst 1 8\n");
    CHECK_LOG(&O.log, "close 1 8\n");
    /* Server-only calls are refused on a client session. */
    CHECK_INT(arc_h2_submit_response(O.s, sid, 200, NULL, 0, false), ARC_H2_E_STREAM);
    teardown();
}

/* An upstream head over our header-list limit is not delivered: the stream
 * is reset and the owner sees on_close(INTERNAL_ERROR) (its cue for 502). */
static void test_response_head_too_large(void)
{
    static char big[2000];
    struct arc_h2_limits lim = { .max_header_list_size = 1024 };
    struct arc_h2_options opt = { .limits = &lim };
    memset(big, 'v', sizeof(big));
    setup_full(NULL, 0, &opt);
    int32_t sid = get("/", qs(&O, 1));
    CHECK_INT(shuttle(O.s, &P), 0);
    const nghttp2_nv rh[] = { NV(":status", "200"),
                              { (uint8_t *)"x-big", (uint8_t *)big, 5, sizeof(big), 0 } };
    CHECK_INT(nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_END_STREAM, sid, NULL, rh, 2, NULL), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_NOLOG(&O.log, "resp");
    CHECK_LOG(&O.log, "close 1 2\n");
    CHECK(arc_h2_can_submit(O.s));          /* the connection itself is fine */
    teardown();
}

int main(void)
{
    RUN(test_multiplexed_requests);
    RUN(test_grpc_trailers_and_interim);
    RUN(test_request_body_backpressure_and_trailers);
    RUN(test_response_flow_control);
    RUN(test_max_concurrent_and_goaway);
    RUN(test_queued_request_refused_by_goaway);
    RUN(test_bad_status_codes);
    RUN(test_owner_reset);
    RUN(test_response_head_too_large);
    owner_dispose(&O);
    return TEST_REPORT();
}
