/*
 * Access-log micro-benchmark: CPU ns per record for the two halves of the
 * log's cost, on one thread (no cross-core traffic: a lower bound).
 *
 *   fill    the worker's part: claim a slot of an 8192-record ring (17 MB,
 *           so slots are cold as in a real run), set the fields of a
 *           typical proxied request, commit; the writer's release is
 *           simulated so the ring never fills.
 *   legacy  the same with the old record layout (one fixed-size array per
 *           string field: every field's NUL is a store to its own cache
 *           line), for comparison.
 *   format  the writer's part: arc_alog_format of a record into a batch
 *           buffer, reset every 256 KB (no write(2)).
 *   ids     X-Request-Id (UUIDv7: clock_gettime + 10 random bytes + hex),
 *           trace id + two span ids, and the traceparent text: the same
 *           steps as proxy/obs.c (its functions are static; copied here).
 *
 * Usage: alog_bench fill|legacy|format|ids [N]   prints "<mode> <ns per op>".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sbuf.h"
#include "obs/accesslog.h"

#define RING 8192

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

struct legacy_rec {
    uint64_t ts_ns, dur_ns, connect_ns, ttfb_ns, response_ns, bytes_in, bytes_out;
    uint32_t truncated;
    uint16_t status;
    uint8_t flags[10];
    uint8_t ids[40];
    char client[28];
    char method[ARC_ALOG_METHOD], host[ARC_ALOG_HOST], path[ARC_ALOG_PATH], query[ARC_ALOG_QUERY],
        route[ARC_ALOG_NAME], upstream[ARC_ALOG_NAME], upstream_addr[ARC_ALOG_ADDR],
        request_id[ARC_ALOG_RID], tls_version[ARC_ALOG_TLSV], tls_cipher[ARC_ALOG_CIPHER],
        tls_sni[ARC_ALOG_SNI], tls_subject[ARC_ALOG_SUBJECT], user_agent[ARC_ALOG_UA],
        referer[ARC_ALOG_REFERER];
};

static void cp(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

#define S(x) x, sizeof(x) - 1
static const char RID[] = "01937a3b-5c2d-7e8f-9a0b-1c2d3e4f5a6b";

static void fill_numbers(struct arc_alog_rec *r, uint64_t i)
{
    r->ts_ns = 1796646016000000000ull + i * 1000;
    r->dur_ns = 812345 + i % 1000;
    r->connect_ns = 0;
    r->ttfb_ns = 700000;
    r->response_ns = 800000;
    r->bytes_in = 0;
    r->bytes_out = 426;
    r->status = 200;
    r->protocol = ARC_ALOG_H11;
    r->https = 0;
    r->attempt = 1;
    r->err = 0;
    r->outcome = ARC_ALOG_O_COMPLETE;
    r->tls = 0;
    r->traced = 1;
    r->trace_flags = 0;
    r->has_parent = 0;
    r->has_upstream = 1;
    memset(r->trace_id, 0xa5, 16);
    memset(r->span_id, 0x5a, 8);
    memset(r->parent_id, 0, 8);
    memset(r->server_span_id, 0x33, 8);
    r->client.in.sin_family = AF_INET;
    r->client.in.sin_addr.s_addr = htonl(0x7f000001);
    r->client.in.sin_port = htons(40000);
}

static void fill(struct arc_alog_rec *r, uint64_t i)
{
    r->truncated = 0;
    arc_alog_strs_reset(r);
    fill_numbers(r, i);
    arc_alog_put(r, ARC_ALOG_S_METHOD, S("GET"));
    arc_alog_put(r, ARC_ALOG_S_HOST, S("127.0.0.1:8080"));
    arc_alog_put(r, ARC_ALOG_S_PATH, S("/api/v1/items/12345"));
    arc_alog_put(r, ARC_ALOG_S_ROUTE, S("all"));
    arc_alog_put(r, ARC_ALOG_S_UPSTREAM, S("backend"));
    arc_alog_put(r, ARC_ALOG_S_UPSTREAM_ADDR, S("127.0.0.1:18080"));
    arc_alog_put(r, ARC_ALOG_S_REQUEST_ID, S(RID));
    arc_alog_put(r, ARC_ALOG_S_USER_AGENT, S("wrk/4.2"));
}

static void fill_legacy(struct legacy_rec *r, uint64_t i)
{
    r->ts_ns = 1796646016000000000ull + i * 1000;
    r->dur_ns = 812345 + i % 1000;
    r->connect_ns = 0;
    r->ttfb_ns = 700000;
    r->response_ns = 800000;
    r->bytes_in = 0;
    r->bytes_out = 426;
    r->status = 200;
    r->truncated = 0;
    memset(r->flags, 1, sizeof(r->flags));
    memset(r->ids, 0xa5, sizeof(r->ids));
    memset(r->client, 0, sizeof(r->client));
    cp(r->method, sizeof(r->method), S("GET"));
    cp(r->host, sizeof(r->host), S("127.0.0.1:8080"));
    cp(r->path, sizeof(r->path), S("/api/v1/items/12345"));
    cp(r->query, sizeof(r->query), S(""));
    cp(r->route, sizeof(r->route), S("all"));
    cp(r->upstream, sizeof(r->upstream), S("backend"));
    cp(r->upstream_addr, sizeof(r->upstream_addr), S("127.0.0.1:18080"));
    cp(r->request_id, sizeof(r->request_id), S(RID));
    r->user_agent[0] = r->referer[0] = '\0';
    cp(r->user_agent, sizeof(r->user_agent), S("wrk/4.2"));
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng = x;
    return x * 0x2545f4914f6cdd1dull;
}
static void rnd_bytes(uint8_t *out, size_t n)
{
    while (n) {
        uint64_t v = rnd();
        size_t k = n < 8 ? n : 8;
        memcpy(out, &v, k);
        out += k;
        n -= k;
    }
}

static volatile char sink;

static void ids(void)
{
    static const char d[] = "0123456789abcdef";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint8_t b[16], trace[16], span[8], server[8];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    rnd_bytes(b + 6, 10);
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    char rid[37], tp[56];
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            rid[k++] = '-';
        rid[k++] = d[b[i] >> 4];
        rid[k++] = d[b[i] & 15];
    }
    rid[k] = '\0';
    rnd_bytes(trace, 16);
    rnd_bytes(span, 8);
    rnd_bytes(server, 8);
    k = 0;
    tp[k++] = '0';
    tp[k++] = '0';
    tp[k++] = '-';
    for (int i = 0; i < 16; i++) {
        tp[k++] = d[trace[i] >> 4];
        tp[k++] = d[trace[i] & 15];
    }
    tp[k++] = '-';
    for (int i = 0; i < 8; i++) {
        tp[k++] = d[span[i] >> 4];
        tp[k++] = d[span[i] & 15];
    }
    tp[k++] = '-';
    tp[k++] = '0';
    tp[k++] = '0';
    tp[k] = '\0';
    sink = (char)(rid[35] ^ tp[54] ^ (char)server[0]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: alog_bench fill|legacy|format|ids [N]\n");
        return 2;
    }
    const char *mode = argv[1];
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 5000000;
    double t0 = 0, t1 = 0;
    if (strcmp(mode, "fill") == 0) {
        struct arc_alog_ring r;
        if (arc_alog_ring_init(&r, RING) < 0)
            return 1;
        for (uint64_t i = 0; i < RING; i++)     /* touch the pages first */
            memset(&r.recs[i], 0, sizeof(r.recs[i]));
        t0 = cpu_ns();
        for (uint64_t i = 0; i < n; i++) {
            struct arc_alog_rec *rec = arc_alog_ring_claim(&r);
            fill(rec, i);
            arc_alog_ring_commit(&r);
            arc_alog_ring_release(&r, 1);
        }
        t1 = cpu_ns();
        arc_alog_ring_dispose(&r);
    } else if (strcmp(mode, "legacy") == 0) {
        struct legacy_rec *v = calloc(RING, sizeof(*v));
        if (!v)
            return 1;
        t0 = cpu_ns();
        for (uint64_t i = 0; i < n; i++)
            fill_legacy(&v[i & (RING - 1)], i);
        t1 = cpu_ns();
        sink = v[n & (RING - 1)].path[0];
        free(v);
    } else if (strcmp(mode, "format") == 0) {
        static struct arc_alog_rec rec[64];
        for (int i = 0; i < 64; i++)
            fill(&rec[i], (uint64_t)i);
        struct arc_sbuf b = { 0 };
        t0 = cpu_ns();
        for (uint64_t i = 0; i < n; i++) {
            arc_alog_format(&b, &rec[i & 63]);
            if (b.len >= 256 * 1024)
                b.len = 0;
        }
        t1 = cpu_ns();
        arc_sbuf_dispose(&b);
    } else if (strcmp(mode, "ids") == 0) {
        t0 = cpu_ns();
        for (uint64_t i = 0; i < n; i++)
            ids();
        t1 = cpu_ns();
    } else {
        fprintf(stderr, "alog_bench: unknown mode '%s'\n", mode);
        return 2;
    }
    printf("%s %.1f\n", mode, (t1 - t0) / (double)n);
    return 0;
}
