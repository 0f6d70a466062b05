/*
 * Fuzz target for the HTTP/2 server session: feeds the input as a client's
 * byte stream (split where the first byte says, so frame boundaries land
 * anywhere), while an owner answers every request with a small body, gives
 * back every received byte, and drains the output after each piece. Aborts
 * when an invariant breaks: the session's open-stream count differs from
 * requests taken minus on_close calls, a stream closes twice or without
 * having been taken, a callback names a stream the owner never took, a
 * failed session stops reporting its failure, or output views misbehave.
 * Sanitizers catch memory errors and leaks.
 *
 * Built two ways (Makefile): with clang -fsanitize=fuzzer for exploration,
 * and with tests/fuzz/replay_main.c under gcc ASan to replay the corpus.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http2/http2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c) do { if (!(c)) { \
    fprintf(stderr, "h2 fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

#define SLOTS 256

struct ex {
    int32_t sid;                /* 0: free */
    bool ended;
    size_t sent;
};

struct fz {
    struct arc_h2_session *s;
    struct ex ex[SLOTS];
    uint32_t taken, closed;
};

static struct ex *find(struct fz *f, int32_t sid)
{
    for (int i = 0; i < SLOTS; i++)
        if (f->ex[i].sid == sid)
            return &f->ex[i];
    return NULL;
}

static int on_request(void *ud, int32_t sid, const struct arc_h2_request *r, void **sud)
{
    struct fz *f = ud;
    struct ex *e = find(f, 0);

    REQUIRE(sid > 0 && (sid & 1));
    REQUIRE(find(f, sid) == NULL);
    REQUIRE(r->method.len > 0);
    for (size_t i = 0; i < r->n_headers; i++)
        REQUIRE(r->headers[i].name.len > 0 && r->headers[i].name.p[0] != ':');
    if (!e)
        return 1;               /* refuse: REFUSED_STREAM */
    e->sid = sid;
    *sud = e;
    f->taken++;
    /* Answer at once; the body is pulled through read_body. */
    static const struct arc_h2_header h[] = { { ARC_STR_LIT("content-type"), ARC_STR_LIT("text/plain") } };
    REQUIRE(arc_h2_submit_response(f->s, sid, 200, h, 1, true) == 0);
    REQUIRE(arc_h2_end_body(f->s, sid, (sid % 4 == 1) ? h : NULL, (sid % 4 == 1) ? 1 : 0) == 0);
    return 0;
}

static void on_data(void *ud, int32_t sid, void *sud, const uint8_t *p, size_t n)
{
    struct fz *f = ud;
    REQUIRE(sud == find(f, sid) && sud != NULL);
    REQUIRE(!((struct ex *)sud)->ended);
    (void)arc_h2_consume(f->s, sid, n);
}

static void on_trailers(void *ud, int32_t sid, void *sud, const struct arc_h2_header *h, size_t n)
{
    struct fz *f = ud;
    REQUIRE(sud == find(f, sid) && sud != NULL);
}

static void on_end(void *ud, int32_t sid, void *sud)
{
    struct fz *f = ud;
    struct ex *e = sud;
    REQUIRE(e == find(f, sid) && e != NULL);
    REQUIRE(!e->ended);
    e->ended = true;
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code)
{
    struct fz *f = ud;
    struct ex *e = sud;
    REQUIRE(e == find(f, sid) && e != NULL);
    memset(e, 0, sizeof(*e));
    f->closed++;
}

static size_t read_body(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t cap)
{
    static const char body[] = "fuzzed response body\n";
    struct ex *e = sud;
    REQUIRE(e != NULL && e->sid == sid);
    size_t n = ARC_MIN(cap, sizeof(body) - 1 - ARC_MIN(e->sent, sizeof(body) - 1));
    memcpy(buf, body + e->sent, n);
    e->sent += n;
    return n;
}

static const struct arc_h2_callbacks CBS = {
    .on_request = on_request, .on_data = on_data, .on_trailers = on_trailers,
    .on_end = on_end, .on_close = on_close, .read_body = read_body,
};

static uint64_t clock_ms(void *ud)
{
    return *(uint64_t *)ud;
}

static void drain(struct fz *f)
{
    const uint8_t *p, *again;
    size_t n;
    for (int i = 0; i < 100000 && (n = arc_h2_output(f->s, &p)) > 0; i++) {
        REQUIRE(arc_h2_output(f->s, &again) == n && again == p);   /* stable until sent */
        arc_h2_sent(f->s, n > 3 ? n - 3 : n);                      /* partial sends too */
        if (n > 3)
            arc_h2_sent(f->s, 3);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fz f;
    uint64_t now = 1000;
    /* Small limits so the guards are reachable with fuzzer-sized inputs. */
    struct arc_h2_limits lim = { .max_concurrent_streams = 8, .max_header_list_size = 1024,
                                 .max_continuations = 3, .resets_per_sec = 16,
                                 .settings_per_sec = 8, .pings_per_sec = 8,
                                 .priority_per_sec = 16, .empty_data_per_sec = 8,
                                 .stream_window = 1024, .conn_window = 4096 };
    struct arc_h2_options opt = { .limits = &lim, .now_ms = clock_ms, .clock_ud = &now,
                                  .allow_connect = size & 1 };
    size_t step, off = 0;
    int failed = 0;

    if (size == 0)
        return 0;
    memset(&f, 0, sizeof(f));
    step = 1 + data[0] % 64;
    REQUIRE(arc_h2_server_new(&CBS, &f, &opt, &f.s) == 0);
    drain(&f);
    for (off = 1; off < size; off += step) {
        size_t n = ARC_MIN(step, size - off);
        int rv = arc_h2_recv(f.s, data + off, n);
        if (failed)
            REQUIRE(rv == failed);
        else if (rv != 0)
            failed = rv;
        REQUIRE(rv == 0 || rv == ARC_H2_E_PROTOCOL || rv == ARC_H2_E_FLOOD);
        REQUIRE((rv == ARC_H2_E_FLOOD) == (arc_h2_breach(f.s) != ARC_H2_BREACH_NONE) || rv == 0 ||
                rv == ARC_H2_E_PROTOCOL);
        drain(&f);
        REQUIRE(arc_h2_open_streams(f.s) == f.taken - f.closed);
        now += 7;
    }
    arc_h2_free(f.s);
    return 0;
}
