/*
 * Fuzz target for the HTTP/2 client session (the upstream side): the input
 * is what a hostile or broken upstream sends back to three requests (one
 * with a body and trailers), split where the first byte says. Aborts when an
 * invariant breaks: a callback for a stream never submitted or already
 * closed, a second final response, interim after final, trailers or body
 * before the final response, events after on_end, a close count that
 * disagrees with arc_h2_open_streams, or a failed session that stops
 * reporting its failure. Sanitizers catch memory errors and leaks.
 *
 * Built like h2_server_fuzz (Makefile): libFuzzer with clang, and a corpus
 * replay under gcc ASan.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http2/http2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c) do { if (!(c)) { \
    fprintf(stderr, "h2 client fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

struct ex {
    int32_t sid;
    bool open, final, ended;
    size_t sent;
};

struct fz {
    struct arc_h2_session *s;
    struct ex ex[3];
    uint32_t submitted, closed;
};

static struct ex *live(struct fz *f, int32_t sid, void *sud)
{
    struct ex *e = sud;
    REQUIRE(e >= f->ex && e < f->ex + 3 && e->sid == sid && e->open);
    return e;
}

static void on_info(void *ud, int32_t sid, void *sud, const struct arc_h2_response *r)
{
    struct ex *e = live(ud, sid, sud);
    REQUIRE(!e->final && !e->ended);
    REQUIRE(r->status >= 100 && r->status < 200);
}

static void on_response(void *ud, int32_t sid, void *sud, const struct arc_h2_response *r)
{
    struct ex *e = live(ud, sid, sud);
    REQUIRE(!e->final && !e->ended);
    REQUIRE(r->status >= 200 && r->status <= 999);
    for (size_t i = 0; i < r->n_headers; i++)
        REQUIRE(r->headers[i].name.len > 0 && r->headers[i].name.p[0] != ':');
    e->final = true;
}

static void on_data(void *ud, int32_t sid, void *sud, const uint8_t *p, size_t n)
{
    struct fz *f = ud;
    struct ex *e = live(f, sid, sud);
    REQUIRE(e->final && !e->ended);
    (void)arc_h2_consume(f->s, sid, n);
}

static void on_trailers(void *ud, int32_t sid, void *sud, const struct arc_h2_header *h, size_t n)
{
    struct ex *e = live(ud, sid, sud);
    REQUIRE(e->final && !e->ended);
}

static void on_end(void *ud, int32_t sid, void *sud)
{
    struct ex *e = live(ud, sid, sud);
    REQUIRE(!e->ended);
    e->ended = true;
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code)
{
    struct fz *f = ud;
    struct ex *e = live(f, sid, sud);
    e->open = false;
    f->closed++;
}

static size_t read_body(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t cap)
{
    struct ex *e = live(ud, sid, sud);
    size_t n = ARC_MIN(cap, 5000 - ARC_MIN(e->sent, 5000));
    memset(buf, 'b', n);
    e->sent += n;
    return n;
}

static const struct arc_h2_callbacks CBS = {
    .on_informational = on_info, .on_response = on_response, .on_data = on_data,
    .on_trailers = on_trailers, .on_end = on_end, .on_close = on_close, .read_body = read_body,
};

static uint64_t clock_ms(void *ud)
{
    return *(uint64_t *)ud;
}

static void drain(struct fz *f)
{
    const uint8_t *p;
    size_t n;
    for (int i = 0; i < 100000 && (n = arc_h2_output(f->s, &p)) > 0; i++)
        arc_h2_sent(f->s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fz f;
    static const struct arc_h2_header h[] = { { ARC_STR_LIT("accept"), ARC_STR_LIT("*/*") } };
    static const struct arc_h2_header tr[] = { { ARC_STR_LIT("x-sum"), ARC_STR_LIT("1") } };
    uint64_t now = 1000;
    struct arc_h2_limits lim = { .max_header_list_size = 1024, .max_continuations = 3,
                                 .settings_per_sec = 8, .pings_per_sec = 8,
                                 .stream_window = 1024, .conn_window = 4096 };
    struct arc_h2_options opt = { .limits = &lim, .now_ms = clock_ms, .clock_ud = &now };
    int failed = 0;

    if (size == 0)
        return 0;
    memset(&f, 0, sizeof(f));
    size_t step = 1 + data[0] % 64;
    REQUIRE(arc_h2_client_new(&CBS, &f, &opt, &f.s) == 0);
    for (int i = 0; i < 3; i++) {
        struct arc_h2_request r = { .method = i == 1 ? ARC_STR_LIT("POST") : i == 2 ? ARC_STR_LIT("HEAD") : ARC_STR_LIT("GET"),
                                    .scheme = ARC_STR_LIT("https"), .authority = ARC_STR_LIT("up.example"),
                                    .path = ARC_STR_LIT("/"), .headers = h, .n_headers = 1 };
        int32_t sid = arc_h2_submit_request(f.s, &r, i == 1, &f.ex[i]);
        REQUIRE(sid == 2 * i + 1);
        f.ex[i] = (struct ex){ .sid = sid, .open = true };
        f.submitted++;
        if (i == 1)
            REQUIRE(arc_h2_end_body(f.s, sid, tr, 1) == 0);
    }
    drain(&f);
    for (size_t off = 1; off < size; off += step) {
        size_t n = ARC_MIN(step, size - off);
        int rv = arc_h2_recv(f.s, data + off, n);
        if (failed)
            REQUIRE(rv == failed);
        else if (rv != 0)
            failed = rv;
        REQUIRE(rv == 0 || rv == ARC_H2_E_PROTOCOL || rv == ARC_H2_E_FLOOD);
        drain(&f);
        REQUIRE(arc_h2_open_streams(f.s) == f.submitted - f.closed);
        if (arc_h2_can_submit(f.s))
            REQUIRE(!failed && !arc_h2_goaway_received(f.s, NULL));
        now += 5;
    }
    arc_h2_free(f.s);
    return 0;
}
