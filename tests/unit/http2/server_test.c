/* Proves the server session against a real nghttp2 client peer, bytes
 * shuttled in memory: request heads reach the owner in the neutral view
 * (Host/:authority per RFC 9113 §8.3.1, cookies re-joined), bodies and
 * trailers flow both ways, request bodies are held to the window until the
 * owner consumes, response bodies wait for the owner (deferred/resumed),
 * connection-specific fields never reach the wire, CONNECT is refused,
 * oversized heads get 431, and the h2c upgrade path serves stream 1. */
#include "h2_test.h"

static struct owner O;
static struct peer P;

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0 }
#define H(n, v) { ARC_STR_LIT(n), ARC_STR_LIT(v) }

static void setup_opt(const struct arc_h2_options *opt)
{
    owner_dispose(&O);
    memset(&O, 0, sizeof(O));
    peer_init(&P, false);
    CHECK_INT(arc_h2_server_new(&owner_cbs, &O, opt, &O.s), 0);
    peer_settings(&P, NULL, 0);
}

static void setup(void)
{
    setup_opt(NULL);
}

static void teardown(void)
{
    arc_h2_free(O.s);
    O.s = NULL;
    nghttp2_session_del(P.ng);
}

static int32_t peer_get(const nghttp2_nv *nv, size_t n)
{
    int32_t sid = nghttp2_submit_request(P.ng, NULL, nv, n, NULL, NULL);
    CHECK(sid > 0);
    return sid;
}

static void test_get_and_response_filtering(void)
{
    setup();
    const nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/a/b?x=1&y=2"),
                               NV("user-agent", "t/1"), NV("cookie", "a=1"), NV("accept", "*/*"),
                               NV("cookie", "b=2") };
    int32_t sid = peer_get(req, ARC_ARRAY_LEN(req));
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "req 1 GET https example.com /a/b?x=1&y=2 cl=-1 end=1\n");
    CHECK_LOG(&O.log, "hdr 1 user-agent: t/1\nhdr 1 cookie: a=1; b=2\nhdr 1 accept: */*\nend 1 bytes=0\n");
    CHECK_INT(arc_h2_open_streams(O.s), 1);

    const struct arc_h2_header resp[] = {
        H("Content-Type", "text/plain"), H("Connection", "close, X-Hop"), H("Keep-Alive", "timeout=5"),
        H("Transfer-Encoding", "chunked"), H("Upgrade", "h2c"), H("TE", "gzip"), H("X-Hop", "1"),
        H("Proxy-Connection", "keep-alive"), H("Host", "x"), H(":status", "500"),
        H("X-Bad", "a\r\nb"), H("Server", "Arc"),
    };
    CHECK_INT(arc_h2_submit_response(O.s, sid, 200, resp, ARC_ARRAY_LEN(resp), true), 0);
    owner_queue(&O, sid, "hello", 5);
    CHECK_INT(arc_h2_end_body(O.s, sid, NULL, 0), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 1 :status: 200\nphdr 1 content-type: text/plain\nphdr 1 server: Arc\npheaders 1 end=0\n");
    CHECK_NOLOG(&P.log, "connection");
    CHECK_NOLOG(&P.log, "keep-alive");
    CHECK_NOLOG(&P.log, "transfer-encoding");
    CHECK_NOLOG(&P.log, "upgrade");
    CHECK_NOLOG(&P.log, "te:");
    CHECK_NOLOG(&P.log, "x-hop");
    CHECK_NOLOG(&P.log, "host");
    CHECK_NOLOG(&P.log, "x-bad");
    CHECK_NOLOG(&P.log, "500");
    CHECK_LOG(&P.log, "pdata 1 hello\npend 1\npclose 1 0\n");
    CHECK_LOG(&O.log, "close 1 0\n");
    CHECK_INT(arc_h2_open_streams(O.s), 0);
    CHECK(arc_h2_want_read(O.s));
    CHECK(!arc_h2_want_write(O.s));
    teardown();
}

static void test_te_trailers_kept(void)
{
    setup();
    const nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "http"),
                               NV(":authority", "h"), NV(":path", "/"), NV("te", "trailers") };
    int32_t sid = peer_get(req, ARC_ARRAY_LEN(req));
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "hdr 1 te: trailers\n");
    const struct arc_h2_header resp[] = { H("TE", " Trailers ") };
    CHECK_INT(arc_h2_submit_response(O.s, sid, 204, resp, 1, false), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 1 te: Trailers\n");
    CHECK_LOG(&P.log, "pheaders 1 end=1\n");
    teardown();
}

static void test_post_with_trailers_both_ways(void)
{
    static uint8_t body[40000];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)('a' + i % 26);
    setup();
    const nghttp2_nv req[] = { NV(":method", "POST"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/upload"),
                               NV("content-type", "application/grpc"), NV("te", "trailers") };
    P.src = body;
    P.src_len = sizeof(body);
    P.src_trailers = true;
    int32_t sid = nghttp2_submit_request(P.ng, NULL, req, ARC_ARRAY_LEN(req), &peer_provider, NULL);
    CHECK_INT(sid, 1);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "req 1 POST https example.com /upload cl=-1 end=0\n");
    CHECK_LOG(&O.log, "trailer 1 x-checksum: abc\nend 1 bytes=40000\n");
    CHECK_INT(qs(&O, sid)->in_bytes, sizeof(body));
    CHECK(memcmp(qs(&O, sid)->in, body, sizeof(body)) == 0);
    CHECK_INT(arc_h2_consume(O.s, sid, sizeof(body)), 0);

    const struct arc_h2_header resp[] = { H("content-type", "application/grpc") };
    const struct arc_h2_header tr[] = { H("grpc-status", "0"), H("grpc-message", "OK") };
    CHECK_INT(arc_h2_submit_response(O.s, sid, 200, resp, 1, true), 0);
    owner_queue(&O, sid, "\0\0\0\0\x03" "abc", 8);
    CHECK_INT(arc_h2_end_body(O.s, sid, tr, 2), 0);
    CHECK_INT(arc_h2_end_body(O.s, sid, tr, 2), ARC_H2_E_STREAM);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "pheaders 1 end=0\npdata 1 ");
    CHECK_LOG(&P.log, "phdr 1 grpc-status: 0\nphdr 1 grpc-message: OK\npheaders 1 end=1\npclose 1 0\n");
    CHECK_INT(P.recv_bytes, 8);
    CHECK_LOG(&O.log, "close 1 0\n");
    teardown();
}

/* A body far larger than the window: the owner sees exactly one stream
 * window until it consumes, then one more window per consume. */
static void test_flow_control_tied_to_consume(void)
{
    static uint8_t body[300000];
    memset(body, 'z', sizeof(body));
    setup();
    const nghttp2_nv req[] = { NV(":method", "PUT"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/big") };
    P.src = body;
    P.src_len = sizeof(body);
    int32_t sid = nghttp2_submit_request(P.ng, NULL, req, ARC_ARRAY_LEN(req), &peer_provider, NULL);
    CHECK_INT(shuttle(O.s, &P), 0);
    struct qstream *q = qs(&O, sid);
    CHECK_INT(q->in_bytes, ARC_H2_DEFAULT_STREAM_WINDOW);
    /* Without consume, nothing more arrives however long we pump. */
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(q->in_bytes, ARC_H2_DEFAULT_STREAM_WINDOW);
    /* Consuming a little (below nghttp2's half-window threshold) is not yet
     * worth a WINDOW_UPDATE; the rest is. */
    CHECK_INT(arc_h2_consume(O.s, sid, 1000), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(q->in_bytes, ARC_H2_DEFAULT_STREAM_WINDOW);
    CHECK_INT(arc_h2_consume(O.s, sid, ARC_H2_DEFAULT_STREAM_WINDOW - 1000), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(q->in_bytes, 2 * ARC_H2_DEFAULT_STREAM_WINDOW);
    /* Consuming more than received is clamped, not a window inflation. */
    CHECK_INT(arc_h2_consume(O.s, sid, 10 * ARC_H2_DEFAULT_STREAM_WINDOW), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(q->in_bytes, 3 * ARC_H2_DEFAULT_STREAM_WINDOW);
    for (int i = 0; i < 10 && q->in_bytes < sizeof(body); i++) {
        CHECK_INT(arc_h2_consume(O.s, sid, ARC_H2_DEFAULT_STREAM_WINDOW), 0);
        CHECK_INT(shuttle(O.s, &P), 0);
    }
    CHECK_INT(q->in_bytes, sizeof(body));
    CHECK_LOG(&O.log, "end 1 bytes=300000\n");
    teardown();
}

/* A stream whose owner does not pass its bytes on holds back only itself:
 * the connection window reopens as bytes arrive, so a sibling stream gets
 * its whole window even when the first one's bytes exceed what is left of
 * the connection's, and keeps flowing while the first stays stuck. */
static void test_slow_stream_does_not_hold_the_connection(void)
{
    static uint8_t body[200000];
    struct arc_h2_limits lim = { .stream_window = 60000, .conn_window = 100000 };
    struct arc_h2_options opt = { .limits = &lim };
    memset(body, 'q', sizeof(body));
    setup_opt(&opt);
    const nghttp2_nv req[] = { NV(":method", "POST"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/") };
    P.src = body;
    P.src_len = sizeof(body);
    int32_t s1 = nghttp2_submit_request(P.ng, NULL, req, 4, &peer_provider, NULL);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(qs(&O, s1)->in_bytes, 60000);             /* its window, never consumed */
    P.src_off = 0;
    int32_t s2 = nghttp2_submit_request(P.ng, NULL, req, 4, &peer_provider, NULL);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(qs(&O, s2)->in_bytes, 60000);             /* not 40000: s1 holds nothing back */
    for (int i = 0; i < 10 && qs(&O, s2)->in_bytes < sizeof(body); i++) {
        CHECK_INT(arc_h2_consume(O.s, s2, 60000), 0);
        CHECK_INT(shuttle(O.s, &P), 0);
    }
    CHECK_INT(qs(&O, s2)->in_bytes, sizeof(body));
    CHECK_INT(qs(&O, s1)->in_bytes, 60000);             /* still stuck, on its own */
    CHECK_INT(nghttp2_submit_rst_stream(P.ng, NGHTTP2_FLAG_NONE, s1, NGHTTP2_CANCEL), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "close 1 8\n");
    CHECK_INT(arc_h2_consume(O.s, s1, 60000), 0);   /* closed: a no-op */
    teardown();
}

static void test_deferred_response_body(void)
{
    setup();
    const nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/slow") };
    int32_t sid = peer_get(req, 4);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(arc_h2_submit_informational(O.s, sid, 103, (const struct arc_h2_header[]){
                  H("link", "</a.css>; rel=preload") }, 1), 0);
    CHECK_INT(arc_h2_submit_informational(O.s, sid, 200, NULL, 0), ARC_H2_E_INVAL);
    CHECK_INT(arc_h2_submit_response(O.s, sid, 200, NULL, 0, true), 0);
    CHECK_INT(arc_h2_submit_response(O.s, sid, 200, NULL, 0, true), ARC_H2_E_STREAM);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 1 :status: 103\nphdr 1 link: </a.css>; rel=preload\n");
    CHECK_LOG(&P.log, "phdr 1 :status: 200\npheaders 1 end=0\n");
    CHECK_NOLOG(&P.log, "pdata");
    CHECK(!arc_h2_want_write(O.s));
    owner_queue(&O, sid, "part1", 5);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_NOLOG(&P.log, "pdata");           /* not resumed yet */
    CHECK_INT(arc_h2_resume(O.s, sid), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "pdata 1 part1\n");
    CHECK_NOLOG(&P.log, "pend");
    owner_queue(&O, sid, "part2", 5);
    CHECK_INT(arc_h2_end_body(O.s, sid, NULL, 0), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "pdata 1 part2\npend 1\npclose 1 0\n");
    CHECK_INT(arc_h2_resume(O.s, sid), ARC_H2_E_STREAM);  /* closed */
    teardown();
}

/* Large body sent in 7-byte writes: partial sends, coalesced and direct
 * output views all keep byte order. */
static void test_partial_sends(void)
{
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + i / 251);
    setup();
    const nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/p") };
    int32_t a = peer_get(req, 4), b = peer_get(req, 4);
    P.quiet = true;
    CHECK_INT(shuttle_chunked(O.s, &P, 7), 0);
    CHECK_INT(arc_h2_submit_response(O.s, a, 200, NULL, 0, true), 0);
    CHECK_INT(arc_h2_submit_response(O.s, b, 200, NULL, 0, true), 0);
    owner_queue(&O, a, big, sizeof(big));
    owner_queue(&O, b, "tiny", 4);
    CHECK_INT(arc_h2_end_body(O.s, a, NULL, 0), 0);
    CHECK_INT(arc_h2_end_body(O.s, b, NULL, 0), 0);
    CHECK_INT(shuttle_chunked(O.s, &P, 7), 0);
    CHECK_INT(P.recv_bytes, sizeof(big) + 4);
    CHECK_LOG(&P.log, "pclose 1 0\n");
    CHECK_LOG(&P.log, "pclose 3 0\n");
    CHECK_INT(O.n_close, 2);
    teardown();
}

static void test_host_and_authority(void)
{
    setup();
    const nghttp2_nv both[] = { NV(":method", "GET"), NV(":scheme", "https"),
                                NV(":authority", "example.com"), NV(":path", "/1"),
                                NV("host", "EXAMPLE.com") };
    const nghttp2_nv host_only[] = { NV(":method", "GET"), NV(":scheme", "https"),
                                     NV(":path", "/2"), NV("host", "other.org:8443") };
    const nghttp2_nv neither[] = { NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/3") };
    const nghttp2_nv mismatch[] = { NV(":method", "GET"), NV(":scheme", "https"),
                                    NV(":authority", "example.com"), NV(":path", "/4"),
                                    NV("host", "evil.com") };
    const nghttp2_nv two_hosts[] = { NV(":method", "GET"), NV(":scheme", "https"),
                                     NV(":path", "/5"), NV("host", "a.com"), NV("host", "b.com") };
    peer_get(both, ARC_ARRAY_LEN(both));
    peer_get(host_only, ARC_ARRAY_LEN(host_only));
    peer_get(neither, ARC_ARRAY_LEN(neither));
    peer_get(mismatch, ARC_ARRAY_LEN(mismatch));
    peer_get(two_hosts, ARC_ARRAY_LEN(two_hosts));
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "req 1 GET https example.com /1 ");
    CHECK_LOG(&O.log, "req 3 GET https other.org:8443 /2 ");
    /* Neither :authority nor Host, or Host twice: nghttp2 already treats
     * these as malformed (stream error PROTOCOL_ERROR). */
    CHECK_NOLOG(&O.log, "req 5");
    CHECK_LOG(&P.log, "prst 5 1\n");
    CHECK_NOLOG(&O.log, "req 7");
    CHECK_NOLOG(&O.log, "req 9");
    CHECK_LOG(&P.log, "prst 9 1\n");
    CHECK_NOLOG(&O.log, "host");            /* never in the header list */
    CHECK_LOG(&P.log, "phdr 7 :status: 400\n");
    CHECK_LOG(&P.log, "pclose 7 0\n");
    CHECK_INT(arc_h2_open_streams(O.s), 2);
    teardown();
}

/* Connection-specific fields in a received request make it malformed
 * (RFC 9113 §8.2.2); nghttp2 enforces this, the owner never sees them. */
static void test_connection_specific_request_fields(void)
{
    setup();
    const nghttp2_nv conn[] = { NV(":method", "GET"), NV(":scheme", "https"),
                                NV(":authority", "h"), NV(":path", "/"), NV("connection", "close") };
    const nghttp2_nv te[] = { NV(":method", "GET"), NV(":scheme", "https"),
                              NV(":authority", "h"), NV(":path", "/"), NV("te", "gzip") };
    const nghttp2_nv tenc[] = { NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "h"),
                                NV(":path", "/"), NV("transfer-encoding", "chunked") };
    peer_get(conn, 5);
    peer_get(te, 5);
    peer_get(tenc, 5);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_NOLOG(&O.log, "req");
    CHECK_LOG(&P.log, "prst 1 1\n");
    CHECK_LOG(&P.log, "prst 3 1\n");
    CHECK_LOG(&P.log, "prst 5 1\n");
    teardown();
}

static void test_connect_refused_unless_allowed(void)
{
    const nghttp2_nv connect[] = { NV(":method", "CONNECT"), NV(":authority", "db.internal:5432") };
    const nghttp2_nv ext[] = { NV(":method", "CONNECT"), NV(":protocol", "websocket"),
                               NV(":scheme", "https"), NV(":authority", "example.com"),
                               NV(":path", "/chat") };
    setup();
    /* CONNECT streams stay open for data: the request has not ended. */
    int32_t sid = nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, -1, NULL, connect, 2, NULL);
    CHECK_INT(sid, 1);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_NOLOG(&O.log, "req");
    CHECK_LOG(&P.log, "phdr 1 :status: 405\nphdr 1 allow: ");
    CHECK_LOG(&P.log, "pheaders 1 end=1\n");
    CHECK_LOG(&P.log, "prst 1 0\n");
    /* Extended CONNECT without our SETTINGS_ENABLE_CONNECT_PROTOCOL:
     * nghttp2 resets it as malformed. */
    CHECK_INT(nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, -1, NULL, ext, 5, NULL), 3);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_NOLOG(&O.log, "req");
    CHECK_LOG(&P.log, "prst 3 1\n");
    teardown();

    struct arc_h2_options opt = { .allow_connect = true, .allow_extended_connect = true };
    setup_opt(&opt);
    CHECK_INT(nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, -1, NULL, connect, 2, NULL), 1);
    CHECK_INT(nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, -1, NULL, ext, 5, NULL), 3);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "req 1 CONNECT  db.internal:5432  cl=-1 end=0\n");
    CHECK_LOG(&O.log, "req 3 CONNECT https example.com /chat cl=-1 end=0 proto=websocket\n");
    teardown();
}

static void test_header_list_too_large(void)
{
    static char big[3000];
    struct arc_h2_limits lim = { .max_header_list_size = 2048 };
    struct arc_h2_options opt = { .limits = &lim };
    memset(big, 'v', sizeof(big));
    setup_opt(&opt);
    nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "https"),
                         NV(":authority", "example.com"), NV(":path", "/"),
                         { (uint8_t *)"x-big", (uint8_t *)big, 5, sizeof(big), 0 } };
    peer_get(req, 5);
    req[4].valuelen = 1500;                 /* fits: 1500 + 5 + 32 + pseudo fields */
    peer_get(req, 5);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 1 :status: 431\n");
    CHECK_NOLOG(&O.log, "req 1 ");
    CHECK_LOG(&O.log, "req 3 GET");
    teardown();
}

/* The owner may answer from inside on_request (local answers, cache hits). */
static void test_answer_inside_on_request(void)
{
    setup();
    O.answer_now = true;
    const nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/") };
    int32_t sid = peer_get(req, 4);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 1 :status: 200\npheaders 1 end=0\npdata 1 now\npend 1\npclose 1 0\n");
    CHECK_LOG(&O.log, "close 1 0\n");
    teardown();

    /* Once the final response is out, neither another one nor an interim
     * one may follow. */
    setup();
    sid = peer_get(req, 4);
    CHECK_INT(nghttp2_submit_rst_stream(P.ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_NO_ERROR), 0);
    sid = nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, -1, NULL, req, 4, NULL);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(arc_h2_submit_response(O.s, sid, 200, NULL, 0, true), 0);
    CHECK_INT(arc_h2_submit_response(O.s, sid, 200, NULL, 0, false), ARC_H2_E_STREAM);
    CHECK_INT(arc_h2_submit_informational(O.s, sid, 100, NULL, 0), ARC_H2_E_STREAM);
    CHECK_INT(arc_h2_end_body(O.s, sid, NULL, 0), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 3 :status: 200\n");
    /* Data arriving after the owner reset the stream (its RST not yet
     * sent) is not delivered; on_close still comes. */
    CHECK_INT(arc_h2_reset(O.s, sid, NGHTTP2_CANCEL), 0);
    P.src = (const uint8_t *)"late";
    P.src_len = 4;
    CHECK_INT(nghttp2_submit_data(P.ng, NGHTTP2_FLAG_END_STREAM, sid, &peer_provider), 0);
    const uint8_t *d;
    ssize_t m;
    while ((m = nghttp2_session_mem_send(P.ng, &d)) > 0)
        CHECK_INT(arc_h2_recv(O.s, d, (size_t)m), 0);
    CHECK_INT(P.src_off, 4);                /* the DATA did go out */
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(qs(&O, sid)->in_bytes, 0);
    CHECK_NOLOG(&O.log, "end 3");
    CHECK_LOG(&O.log, "close 3 8\n");
    teardown();
}

static void test_refused_and_peer_reset(void)
{
    setup();
    const nghttp2_nv req[] = { NV(":method", "POST"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/") };
    O.refuse = 1;
    int32_t a = nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, -1, NULL, req, 4, NULL);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "prst 1 7\n");
    CHECK_INT(O.n_close, 0);                /* never taken: no on_close owed */
    O.refuse = 0;
    int32_t b = nghttp2_submit_headers(P.ng, NGHTTP2_FLAG_NONE, -1, NULL, req, 4, NULL);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "req 3 POST");
    CHECK_INT(nghttp2_submit_rst_stream(P.ng, NGHTTP2_FLAG_NONE, b, NGHTTP2_CANCEL), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "close 3 8\n");
    CHECK_INT(arc_h2_submit_response(O.s, b, 200, NULL, 0, false), ARC_H2_E_STREAM);
    CHECK_INT(arc_h2_reset(O.s, a, NGHTTP2_CANCEL), ARC_H2_E_STREAM);
    teardown();
}

static void test_owner_reset_and_shutdown(void)
{
    setup();
    const nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/") };
    int32_t a = peer_get(req, 4);
    peer_get(req, 4);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_INT(arc_h2_reset(O.s, a, NGHTTP2_INTERNAL_ERROR), 0);
    CHECK_INT(arc_h2_shutdown(O.s), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "prst 1 2\n");
    CHECK_LOG(&O.log, "close 1 2\n");
    CHECK_LOG(&P.log, "pgoaway 3 0\n");
    /* Stream 3 still finishes after the graceful GOAWAY. */
    CHECK_INT(arc_h2_submit_response(O.s, 3, 204, NULL, 0, false), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 3 :status: 204\n");
    CHECK_LOG(&O.log, "close 3 0\n");
    CHECK_INT(arc_h2_breach(O.s), ARC_H2_BREACH_NONE);
    teardown();
}

static void test_h2c_upgrade(void)
{
    uint8_t payload[64];
    const nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 50 },
                                          { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 } };
    ssize_t plen = nghttp2_pack_settings_payload(payload, sizeof(payload), iv, 2);
    CHECK(plen > 0);

    owner_dispose(&O);
    memset(&O, 0, sizeof(O));
    /* A malformed HTTP2-Settings payload (not a multiple of 6 bytes). */
    CHECK_INT(arc_h2_server_new_upgrade(&owner_cbs, &O, NULL, payload, 5, ARC_STR_LIT("GET"),
                                        NULL, &O.s), ARC_H2_E_INVAL);
    CHECK(O.s == NULL);
    CHECK_INT(arc_h2_server_new_upgrade(&owner_cbs, &O, NULL, payload, (size_t)plen,
                                        ARC_STR_LIT("GET"), qs(&O, 1), &O.s), 0);
    CHECK_INT(arc_h2_open_streams(O.s), 1);
    peer_init(&P, false);
    CHECK_INT(nghttp2_session_upgrade2(P.ng, payload, (size_t)plen, 0, NULL), 0);
    peer_settings(&P, iv, 2);
    /* The 101 went out over HTTP/1 (not this module's job); stream 1 answers. */
    CHECK_INT(arc_h2_submit_response(O.s, 1, 200, (const struct arc_h2_header[]){
                  H("content-type", "text/plain") }, 1, true), 0);
    owner_queue(&O, 1, "upgraded", 8);
    CHECK_INT(arc_h2_end_body(O.s, 1, NULL, 0), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "phdr 1 :status: 200\n");
    CHECK_LOG(&P.log, "pdata 1 upgraded\npend 1\npclose 1 0\n");
    CHECK_LOG(&O.log, "close 1 0\n");
    /* The connection goes on as plain HTTP/2. */
    const nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "http"),
                               NV(":authority", "h"), NV(":path", "/next") };
    CHECK_INT(peer_get(req, 4), 3);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&O.log, "req 3 GET http h /next");
    teardown();
}

static void test_sniff_preface(void)
{
    static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    static const char h1[] = "PRIX / HTTP/1.1\r\n";
    CHECK_INT(arc_h2_sniff_preface((const uint8_t *)magic, 24), ARC_H2_SNIFF_H2);
    CHECK_INT(arc_h2_sniff_preface((const uint8_t *)magic, 0), ARC_H2_SNIFF_NEED_MORE);
    CHECK_INT(arc_h2_sniff_preface((const uint8_t *)magic, 3), ARC_H2_SNIFF_NEED_MORE);
    CHECK_INT(arc_h2_sniff_preface((const uint8_t *)magic, 23), ARC_H2_SNIFF_NEED_MORE);
    CHECK_INT(arc_h2_sniff_preface((const uint8_t *)h1, 4), ARC_H2_SNIFF_HTTP1);
    CHECK_INT(arc_h2_sniff_preface((const uint8_t *)"GET / HTTP/1.1", 14), ARC_H2_SNIFF_HTTP1);
}

static void test_bad_preface(void)
{
    setup();
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_INT(arc_h2_recv(O.s, (const uint8_t *)junk, sizeof(junk) - 1), ARC_H2_E_PROTOCOL);
    CHECK_INT(arc_h2_recv(O.s, (const uint8_t *)junk, 1), ARC_H2_E_PROTOCOL);
    CHECK(!arc_h2_want_read(O.s));
    teardown();

    /* A connection error nghttp2 handles itself (DATA on stream 0): recv
     * says 0, the GOAWAY goes out, then the session reports the failure. */
    setup();
    CHECK_INT(shuttle(O.s, &P), 0);
    static const uint8_t data0[9] = { 0, 0, 0, NGHTTP2_DATA, 0, 0, 0, 0, 0 };
    CHECK_INT(arc_h2_recv(O.s, data0, sizeof(data0)), 0);
    CHECK_INT(shuttle(O.s, &P), 0);
    CHECK_LOG(&P.log, "pgoaway 0 1\n");
    CHECK(!arc_h2_want_read(O.s));
    CHECK(!arc_h2_want_write(O.s));
    CHECK_INT(arc_h2_recv(O.s, data0, sizeof(data0)), ARC_H2_E_PROTOCOL);
    teardown();
}

/* The HEADERS payload lengths in server output, in order. */
static size_t headers_lengths(const uint8_t *b, size_t len, size_t *out, size_t cap)
{
    size_t off = 0, n = 0;
    while (off + 9 <= len) {
        size_t flen = ((size_t)b[off] << 16) | ((size_t)b[off + 1] << 8) | b[off + 2];
        if (off + 9 + flen > len)
            break;
        if (b[off + 3] == NGHTTP2_HEADERS && n < cap)
            out[n++] = flen;
        off += 9 + flen;
    }
    return n;
}

/* Two identical responses: without an encoder table (the default) the
 * second header block is as long as the first but for the one-byte table
 * size update (RFC 7541 §6.3) that opens the first: nothing was indexed.
 * With a table, the second refers to the entries the first added. */
static void encoder_table_case(uint32_t table, bool second_shorter)
{
    struct arc_h2_options opt = { .encoder_table_size = table };
    setup_opt(&opt);
    const nghttp2_nv req[] = { NV(":method", "GET"), NV(":scheme", "https"),
                               NV(":authority", "example.com"), NV(":path", "/") };
    int32_t a = peer_get(req, ARC_ARRAY_LEN(req));
    int32_t b = peer_get(req, ARC_ARRAY_LEN(req));
    CHECK_INT(shuttle(O.s, &P), 0);
    uint8_t out[4096];
    drain(O.s, out, sizeof(out));               /* SETTINGS, ACKs */
    const struct arc_h2_header resp[] = {
        H("Content-Type", "application/json; charset=utf-8"),
        H("Server", "backend-service/1.0"), H("X-Request-Id", "0190d7a4-9b4c-7e1a"),
    };
    CHECK_INT(arc_h2_submit_response(O.s, a, 200, resp, ARC_ARRAY_LEN(resp), false), 0);
    CHECK_INT(arc_h2_submit_response(O.s, b, 200, resp, ARC_ARRAY_LEN(resp), false), 0);
    size_t n = drain(O.s, out, sizeof(out));
    CHECK(n <= sizeof(out));
    size_t len[2];
    CHECK_INT(headers_lengths(out, n, len, 2), 2);
    if (second_shorter)
        CHECK(len[1] + 20 < len[0]);
    else
        CHECK(len[1] <= len[0] && len[0] - len[1] <= 1);
    teardown();
}

static void test_encoder_table(void)
{
    encoder_table_case(0, false);
    encoder_table_case(4096, true);
}

int main(void)
{
    RUN(test_get_and_response_filtering);
    RUN(test_te_trailers_kept);
    RUN(test_post_with_trailers_both_ways);
    RUN(test_flow_control_tied_to_consume);
    RUN(test_slow_stream_does_not_hold_the_connection);
    RUN(test_deferred_response_body);
    RUN(test_partial_sends);
    RUN(test_host_and_authority);
    RUN(test_connection_specific_request_fields);
    RUN(test_connect_refused_unless_allowed);
    RUN(test_header_list_too_large);
    RUN(test_answer_inside_on_request);
    RUN(test_refused_and_peer_reset);
    RUN(test_owner_reset_and_shutdown);
    RUN(test_h2c_upgrade);
    RUN(test_sniff_preface);
    RUN(test_bad_preface);
    RUN(test_encoder_table);
    owner_dispose(&O);
    return TEST_REPORT();
}
