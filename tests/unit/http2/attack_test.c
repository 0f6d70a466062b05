/* Proves the flood guards inside a real server session, with frames crafted
 * by hand (RFC 9113 §10.5): rapid reset (open + RST_STREAM, CVE-2023-44487),
 * streams the server is made to refuse, CONTINUATION floods (CVE-2024-27316
 * family) on accepted and on ignored header blocks, and SETTINGS, PING,
 * PRIORITY and empty-DATA floods each end in GOAWAY(ENHANCE_YOUR_CALM) with
 * the right reason, while the same frames at an allowed pace (fake clock)
 * or just under a count limit do not. */
#include "h2_test.h"

static struct owner O;
static struct raw R;
static uint8_t OUT[1 << 20];

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0 }

/* A server session on the fake clock, our SETTINGS already "sent", and the
 * raw client preface in R, with the ACK of our SETTINGS unless `no_ack`
 * (nghttp2 refuses excess streams with REFUSED_STREAM before the ACK and
 * treats them as a connection error after it). */
static void setup_ack(const struct arc_h2_limits *lim, bool no_ack)
{
    struct arc_h2_options opt = { .limits = lim, .now_ms = fake_now };
    owner_dispose(&O);
    memset(&O, 0, sizeof(O));
    R.len = 0;
    fake_ms = 1000000;
    CHECK_INT(arc_h2_server_new(&owner_cbs, &O, &opt, &O.s), 0);
    drain(O.s, OUT, sizeof(OUT));
    raw_preface(&R);
    if (!no_ack)
        raw_frame(&R, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, NULL, 0);
}

static void setup(const struct arc_h2_limits *lim)
{
    setup_ack(lim, false);
}

static void teardown(void)
{
    arc_h2_free(O.s);
    O.s = NULL;
}

/* Feeds R to the session and returns arc_h2_recv's result. */
static int feed(void)
{
    int rv = arc_h2_recv(O.s, R.b, R.len);
    R.len = 0;
    return rv;
}

/* The session's GOAWAY must be ENHANCE_YOUR_CALM for `why`, and the
 * connection done reading. */
static void check_calm(enum arc_h2_breach why)
{
    int32_t last = -1;
    uint32_t code = 0;
    size_t n = drain(O.s, OUT, sizeof(OUT));
    CHECK_INT(arc_h2_breach(O.s), why);
    CHECK(find_goaway(OUT, n, &last, &code));
    CHECK_INT(code, NGHTTP2_ENHANCE_YOUR_CALM);
    CHECK(!arc_h2_want_read(O.s));
    CHECK(!arc_h2_want_write(O.s));
    /* Sticky: nothing more is processed. */
    uint8_t ping[17] = { 0, 0, 8, NGHTTP2_PING };
    CHECK_INT(arc_h2_recv(O.s, ping, sizeof(ping)), ARC_H2_E_FLOOD);
}

static void add_get(nghttp2_hd_deflater *d, int32_t sid, uint8_t flags)
{
    uint8_t blk[256];
    size_t n = raw_get_block(d, "/", blk, sizeof(blk), NULL, 0);
    raw_frame(&R, NGHTTP2_HEADERS, (uint8_t)(NGHTTP2_FLAG_END_HEADERS | flags), sid, blk, n);
}

static void add_rst(int32_t sid)
{
    static const uint8_t cancel[4] = { 0, 0, 0, NGHTTP2_CANCEL };
    raw_frame(&R, NGHTTP2_RST_STREAM, 0, sid, cancel, 4);
}

static void test_rapid_reset(void)
{
    nghttp2_hd_deflater *d;
    setup(NULL);
    nghttp2_hd_deflate_new(&d, 4096);
    for (int32_t i = 0; i < 1000; i++) {
        add_get(d, 2 * i + 1, NGHTTP2_FLAG_END_STREAM);
        add_rst(2 * i + 1);
    }
    CHECK_INT(feed(), ARC_H2_E_FLOOD);
    check_calm(ARC_H2_BREACH_RAPID_RESET);
    /* The guard tripped at the budget, not at nghttp2's own (1000 burst). */
    CHECK_INT(O.n_close, ARC_H2_DEFAULT_RESETS_PER_SEC);
    nghttp2_hd_deflate_del(d);
    teardown();
}

static void test_resets_at_allowed_pace(void)
{
    nghttp2_hd_deflater *d;
    setup(NULL);
    nghttp2_hd_deflate_new(&d, 4096);
    CHECK_INT(feed(), 0);
    /* 50 cancels per second for 20 seconds: a browser tab being closed a lot. */
    for (int32_t i = 0; i < 1000; i++) {
        add_get(d, 2 * i + 1, NGHTTP2_FLAG_END_STREAM);
        add_rst(2 * i + 1);
        CHECK_INT(feed(), 0);
        drain(O.s, OUT, sizeof(OUT));
        fake_ms += 20;
    }
    CHECK_INT(arc_h2_breach(O.s), ARC_H2_BREACH_NONE);
    CHECK_INT(O.n_close, 1000);
    CHECK(arc_h2_want_read(O.s));
    nghttp2_hd_deflate_del(d);
    teardown();
}

/* The server's own resets count: streams over MAX_CONCURRENT_STREAMS that
 * nghttp2 refuses with RST_STREAM are charged (detected while sending). */
static void test_refused_streams_charged(void)
{
    struct arc_h2_limits lim = { .max_concurrent_streams = 2, .resets_per_sec = 50 };
    nghttp2_hd_deflater *d;
    setup_ack(&lim, true);
    nghttp2_hd_deflate_new(&d, 4096);
    for (int32_t i = 0; i < 200; i++)
        add_get(d, 2 * i + 1, 0);           /* no END_STREAM: they stay open */
    CHECK_INT(feed(), 0);
    CHECK_LOG(&O.log, "req 3 ");
    CHECK_NOLOG(&O.log, "req 5 ");
    check_calm(ARC_H2_BREACH_RAPID_RESET);
    nghttp2_hd_deflate_del(d);
    teardown();
}

/* ...and so are malformed requests nghttp2 resets with PROTOCOL_ERROR (the
 * 2025 "made you reset" shape: the server does the resetting). */
static void test_malformed_streams_charged(void)
{
    static const nghttp2_nv upper[] = { NV("X-Upper", "1") };
    struct arc_h2_limits lim = { .resets_per_sec = 50 };
    nghttp2_hd_deflater *d;
    uint8_t blk[256];
    int32_t i, rv = 0;
    setup(&lim);
    nghttp2_hd_deflate_new(&d, 4096);
    /* One at a time, letting each RST_STREAM go out (all at once would
     * trip nghttp2's concurrency check first: unsent resets keep streams
     * open). The breach is found while sending, reported by the next recv. */
    bool calm = false;
    for (i = 0; i < 200 && rv == 0; i++) {
        size_t n = raw_get_block(d, "/", blk, sizeof(blk), upper, 1);
        int32_t last;
        uint32_t code = 0;
        raw_frame(&R, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM,
                  2 * i + 1, blk, n);
        rv = feed();
        n = drain(O.s, OUT, sizeof(OUT));
        if (find_goaway(OUT, n, &last, &code))
            calm = code == NGHTTP2_ENHANCE_YOUR_CALM;
    }
    CHECK(calm);
    CHECK_INT(rv, ARC_H2_E_FLOOD);
    CHECK_INT(i, 52);                       /* 50 charged fine, the 51st trips, the 52nd is told */
    CHECK_INT(arc_h2_breach(O.s), ARC_H2_BREACH_RAPID_RESET);
    CHECK_NOLOG(&O.log, "req");
    CHECK(!arc_h2_want_read(O.s));
    nghttp2_hd_deflate_del(d);
    teardown();
}

/* A header block cut into `frames` pieces: HEADERS + (frames-1) CONTINUATION,
 * the last with END_HEADERS unless `unterminated`. */
static void add_split_get(nghttp2_hd_deflater *d, int32_t sid, int frames, bool unterminated)
{
    static char pad[200];
    uint8_t blk[8192];
    memset(pad, 'p', sizeof(pad));
    nghttp2_nv extra[8];
    for (int i = 0; i < 8; i++)
        extra[i] = (nghttp2_nv){ (uint8_t *)"x-pad", (uint8_t *)pad, 5, 100 + (size_t)i, 0 };
    size_t n = raw_get_block(d, "/split", blk, sizeof(blk), extra, 8);
    size_t per = n / (size_t)frames, off = 0;
    CHECK(per > 0);
    for (int f = 0; f < frames; f++) {
        size_t len = f == frames - 1 ? n - off : per;
        uint8_t flags = f == frames - 1 && !unterminated ? NGHTTP2_FLAG_END_HEADERS : 0;
        if (f == 0)
            flags |= NGHTTP2_FLAG_END_STREAM;
        raw_frame(&R, f == 0 ? NGHTTP2_HEADERS : NGHTTP2_CONTINUATION, flags, sid, blk + off, len);
        off += len;
    }
}

static void test_continuation_limit_boundary(void)
{
    nghttp2_hd_deflater *d;
    setup(NULL);
    nghttp2_hd_deflate_new(&d, 4096);
    /* HEADERS + 8 CONTINUATION (the default limit) is a legal request. */
    add_split_get(d, 1, 1 + ARC_H2_DEFAULT_MAX_CONTINUATIONS, false);
    CHECK_INT(feed(), 0);
    CHECK_LOG(&O.log, "req 1 GET https example.com /split cl=-1 end=1\n");
    CHECK_INT(arc_h2_breach(O.s), ARC_H2_BREACH_NONE);
    nghttp2_hd_deflate_del(d);
    teardown();
}

static void test_continuation_flood(void)
{
    nghttp2_hd_deflater *d;
    setup(NULL);
    nghttp2_hd_deflate_new(&d, 4096);
    /* The 2024 shape: CONTINUATION after CONTINUATION, END_HEADERS never. */
    add_split_get(d, 1, 200, true);
    CHECK_INT(feed(), ARC_H2_E_FLOOD);
    check_calm(ARC_H2_BREACH_CONTINUATION_FLOOD);
    CHECK_NOLOG(&O.log, "req");
    nghttp2_hd_deflate_del(d);
    teardown();
}

/* On a header block nghttp2 ignores (refused stream) our callback never
 * sees the CONTINUATION frames; nghttp2's own count stops it and the
 * session still reports the reason and sends ENHANCE_YOUR_CALM. */
static void test_continuation_flood_on_ignored_block(void)
{
    struct arc_h2_limits lim = { .max_concurrent_streams = 1 };
    nghttp2_hd_deflater *d;
    setup_ack(&lim, true);
    nghttp2_hd_deflate_new(&d, 4096);
    add_get(d, 1, 0);
    add_split_get(d, 3, 200, true);
    CHECK_INT(feed(), ARC_H2_E_FLOOD);
    check_calm(ARC_H2_BREACH_CONTINUATION_FLOOD);
    CHECK_LOG(&O.log, "req 1 ");
    nghttp2_hd_deflate_del(d);
    teardown();
}

static void test_settings_flood(void)
{
    setup(NULL);
    for (int i = 0; i < 100; i++)
        raw_frame(&R, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    CHECK_INT(feed(), ARC_H2_E_FLOOD);
    check_calm(ARC_H2_BREACH_SETTINGS_FLOOD);
    teardown();

    /* Ten per second for a minute is fine (and ACKs are never charged). */
    setup(NULL);
    CHECK_INT(feed(), 0);
    for (int i = 0; i < 600; i++) {
        raw_frame(&R, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
        CHECK_INT(feed(), 0);
        drain(O.s, OUT, sizeof(OUT));
        fake_ms += 100;
    }
    CHECK_INT(arc_h2_breach(O.s), ARC_H2_BREACH_NONE);
    teardown();
}

static void test_ping_flood(void)
{
    static const uint8_t opaque[8] = "12345678";
    setup(NULL);
    for (int i = 0; i < 100; i++)
        raw_frame(&R, NGHTTP2_PING, 0, 0, opaque, 8);
    CHECK_INT(feed(), ARC_H2_E_FLOOD);
    check_calm(ARC_H2_BREACH_PING_FLOOD);
    teardown();

    struct arc_h2_limits lim = { .pings_per_sec = ARC_H2_UNLIMITED };
    setup(&lim);
    for (int i = 0; i < 100; i++)
        raw_frame(&R, NGHTTP2_PING, 0, 0, opaque, 8);
    CHECK_INT(feed(), 0);
    CHECK_INT(arc_h2_breach(O.s), ARC_H2_BREACH_NONE);
    teardown();
}

static void test_priority_and_empty_data_floods(void)
{
    static const uint8_t prio[5] = { 0, 0, 0, 0, 16 };
    nghttp2_hd_deflater *d;
    setup(NULL);
    for (int i = 0; i < 500; i++)
        raw_frame(&R, NGHTTP2_PRIORITY, 0, 2 * i + 1, prio, 5);
    CHECK_INT(feed(), ARC_H2_E_FLOOD);
    check_calm(ARC_H2_BREACH_PRIORITY_FLOOD);
    teardown();

    setup(NULL);
    nghttp2_hd_deflate_new(&d, 4096);
    add_get(d, 1, 0);
    for (int i = 0; i < 500; i++)
        raw_frame(&R, NGHTTP2_DATA, 0, 1, NULL, 0);
    CHECK_INT(feed(), ARC_H2_E_FLOOD);
    check_calm(ARC_H2_BREACH_EMPTY_DATA_FLOOD);
    nghttp2_hd_deflate_del(d);
    teardown();
}

/* Feeds R cut at the given offsets (ascending), the fake clock moving
 * 10 ms per receive. (Not a byte at a time: nghttp2 1.52 as patched in
 * Debian trips its own CONTINUATION count when a CONTINUATION payload
 * arrives in one-byte receives; two-byte ones pass.) */
static void feed_cut(const size_t *cuts, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t end = i < n ? cuts[i] : R.len;
        CHECK_INT(arc_h2_recv(O.s, R.b + off, end - off), 0);
        off = end;
        fake_ms += 10;
    }
    R.len = 0;
}

/* The header block the client is in the middle of, followed beside
 * nghttp2: open from the first byte of its HEADERS frame (its time) to the
 * last byte of the frame with END_HEADERS, also when every frame arrives a
 * byte at a time; a request head the owner took is `taken`, trailers are
 * not. */
static void test_open_header_block(void)
{
    nghttp2_hd_deflater *d;
    uint64_t since = 1;
    bool taken = true;
    setup(NULL);
    nghttp2_hd_deflate_new(&d, 4096);
    CHECK_INT(feed(), 0);
    CHECK_INT(arc_h2_open_header_block(O.s, &since, &taken), 0);
    CHECK_INT(since, 0);
    CHECK(!taken);
    add_split_get(d, 1, 3, true);               /* HEADERS + 2 CONTINUATION, no END_HEADERS */
    uint64_t t0 = fake_ms;
    size_t hl = 9 + (((size_t)R.b[0] << 16) | ((size_t)R.b[1] << 8) | R.b[2]);
    /* Frame headers split too: HEADERS's after 4 bytes, the next one's after 5. */
    const size_t cuts[] = { 4, 9, hl, hl + 5, hl + 9 };
    feed_cut(cuts, 5);
    CHECK_INT(arc_h2_open_header_block(O.s, &since, &taken), 1);
    CHECK_INT(since, t0);
    CHECK(taken);
    CHECK_LOG(&O.log, "begin 1\n");
    CHECK_NOLOG(&O.log, "req 1");
    /* The last CONTINUATION: open until its very last byte. */
    static const uint8_t tail[4] = { 0x00, 0x01, 'z', 0x00 };   /* "z:" literal, not indexed */
    raw_frame(&R, NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, 1, tail, 4);
    size_t n = R.len;
    CHECK_INT(arc_h2_recv(O.s, R.b, n - 1), 0);
    CHECK_INT(arc_h2_open_header_block(O.s, NULL, NULL), 1);
    CHECK_INT(arc_h2_recv(O.s, R.b + n - 1, 1), 0);
    R.len = 0;
    CHECK_INT(arc_h2_open_header_block(O.s, &since, &taken), 0);
    CHECK(!taken);
    CHECK_LOG(&O.log, "req 1 GET https example.com /split");
    /* A whole HEADERS frame, a byte at a time: open only while it lasts. */
    add_get(d, 3, 0);
    n = R.len;
    CHECK_INT(arc_h2_recv(O.s, R.b, 9), 0);
    CHECK_INT(arc_h2_open_header_block(O.s, NULL, &taken), 3);
    CHECK(taken);
    CHECK_INT(arc_h2_recv(O.s, R.b + 9, n - 9), 0);
    R.len = 0;
    CHECK_INT(arc_h2_open_header_block(O.s, NULL, NULL), 0);
    CHECK_LOG(&O.log, "req 3 ");
    /* Trailers of stream 3 left open: a block, not a taken head. */
    uint8_t blk[64];
    static const nghttp2_nv tr[] = { NV("x-sum", "1") };
    ssize_t bl = nghttp2_hd_deflate_hd(d, blk, sizeof(blk), tr, 1);
    CHECK(bl > 0);
    raw_frame(&R, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 3, blk, (size_t)bl);
    CHECK_INT(feed(), 0);
    CHECK_INT(arc_h2_open_header_block(O.s, NULL, &taken), 3);
    CHECK(!taken);
    raw_frame(&R, NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, 3, NULL, 0);
    CHECK_INT(feed(), 0);
    CHECK_INT(arc_h2_open_header_block(O.s, NULL, NULL), 0);
    CHECK_LOG(&O.log, "trailer 3 x-sum: 1\n");
    CHECK(arc_h2_want_read(O.s));
    nghttp2_hd_deflate_del(d);
    teardown();
}

/* on_request_begin refusing: RST_STREAM(REFUSED_STREAM), the head is
 * decoded (later heads still decode: HPACK state kept) but never delivered
 * and no on_close comes; the block is open but not taken; such refusals
 * are charged to the reset budget like nghttp2's own. */
static void test_request_begin_refused(void)
{
    nghttp2_hd_deflater *d;
    bool taken = true;
    setup(NULL);
    nghttp2_hd_deflate_new(&d, 4096);
    O.refuse_begin = 1;
    add_split_get(d, 1, 2, true);
    CHECK_INT(feed(), 0);
    CHECK_INT(arc_h2_open_header_block(O.s, NULL, &taken), 1);
    CHECK(!taken);
    raw_frame(&R, NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, 1, NULL, 0);
    CHECK_INT(feed(), 0);
    size_t n = drain(O.s, OUT, sizeof(OUT));
    bool rst = false;
    for (size_t off = 0; off + 9 <= n;) {
        size_t flen = ((size_t)OUT[off] << 16) | ((size_t)OUT[off + 1] << 8) | OUT[off + 2];
        if (OUT[off + 3] == NGHTTP2_RST_STREAM && OUT[off + 8] == 1 && flen == 4 &&
            OUT[off + 12] == NGHTTP2_REFUSED_STREAM)
            rst = true;
        off += 9 + flen;
    }
    CHECK(rst);
    CHECK_LOG(&O.log, "begin 1\n");
    CHECK_NOLOG(&O.log, "req 1");
    CHECK_INT(O.n_close, 0);
    /* The next stream is taken, and its head (same HPACK context) decodes. */
    O.refuse_begin = 0;
    add_get(d, 3, NGHTTP2_FLAG_END_STREAM);
    CHECK_INT(feed(), 0);
    CHECK_LOG(&O.log, "req 3 GET https example.com / cl=-1 end=1\n");
    nghttp2_hd_deflate_del(d);
    teardown();

    struct arc_h2_limits lim = { .resets_per_sec = 20 };
    setup(&lim);
    nghttp2_hd_deflate_new(&d, 4096);
    O.refuse_begin = 1;
    int rv = 0;
    for (int32_t i = 0; i < 40 && rv == 0; i++) {
        add_get(d, 2 * i + 1, NGHTTP2_FLAG_END_STREAM);
        rv = feed();
        drain(O.s, OUT, sizeof(OUT));
    }
    CHECK_INT(rv, ARC_H2_E_FLOOD);
    CHECK_INT(arc_h2_breach(O.s), ARC_H2_BREACH_RAPID_RESET);
    CHECK_NOLOG(&O.log, "req");
    nghttp2_hd_deflate_del(d);
    teardown();
}

int main(void)
{
    RUN(test_open_header_block);
    RUN(test_request_begin_refused);
    RUN(test_rapid_reset);
    RUN(test_resets_at_allowed_pace);
    RUN(test_refused_streams_charged);
    RUN(test_malformed_streams_charged);
    RUN(test_continuation_limit_boundary);
    RUN(test_continuation_flood);
    RUN(test_continuation_flood_on_ignored_block);
    RUN(test_settings_flood);
    RUN(test_ping_flood);
    RUN(test_priority_and_empty_data_floods);
    owner_dispose(&O);
    return TEST_REPORT();
}
