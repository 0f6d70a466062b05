/*
 * Metrics micro-benchmark: nanoseconds of CPU per arc_m_exchange (what
 * arc_px__ex_end adds for one exchange: its request series, its route's
 * and upstream's histograms, its endpoint's error) with histograms on or
 * off, the layout fixed for the process as `arc run` fixes it. Run through
 * bench/metrics_bench.sh, which alternates the two modes.
 *
 *   metrics_bench on|off [exchanges]
 *
 * The exchange mix: 16 routes, 4 upstreams of 2 endpoints, 90 % 200s and
 * the rest spread over 8 other codes, 4 methods, h1 and h2, durations from
 * 0.1 ms to 2 s and bodies from 0 to 1 MB (so the bucket searches vary),
 * one in 20 without an upstream, one in 50 with an upstream error: a
 * table of 4,096 precomputed exchanges walked round-robin. Time is this
 * thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/metrics.h"

#define NX 4096

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "on") && strcmp(argv[1], "off"))) {
        fprintf(stderr, "usage: metrics_bench on|off [exchanges]\n");
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 20000000;
    struct arc_m_conf c;
    arc_metrics_conf_default(&c);
    c.histograms = strcmp(argv[1], "on") == 0;
    if (arc_metrics_setup(&c) < 0)
        return 1;
    struct arc_metrics_shard m;
    if (arc_metrics_shard_init(&m) < 0 || arc_metrics_shard_fit(&m, 16, 4, 8, 1) < 0)
        return 1;
    static struct arc_m_exchange xs[NX];
    static const int other[] = { 201, 204, 301, 304, 404, 499, 502, 503 };
    srand(42);
    for (int i = 0; i < NX; i++) {
        struct arc_m_exchange *x = &xs[i];
        bool up = rand() % 20 != 0;
        uint64_t d = 100000ull + (uint64_t)(rand() % 1000) * (uint64_t)(rand() % 2000);
        *x = (struct arc_m_exchange){
            .route_id = (uint32_t)(rand() % 16),
            .up_id = up ? (uint32_t)(rand() % 4) : ARC_M_NONE,
            .status = rand() % 10 ? 200 : other[rand() % 8],
            .method = (unsigned)(rand() % 4),
            .proto = rand() % 2 ? ARC_MP_H2 : ARC_MP_H1,
            .dur_ns = d,
            .connect_ns = up && rand() % 10 == 0 ? d / 10 : ARC_M_NOT_TIMED,
            .ttfb_ns = up ? d / 2 : ARC_M_NOT_TIMED,
            .upstream_ns = up ? d - d / 10 : ARC_M_NOT_TIMED,
            .req_bytes = rand() % 4 ? 0 : (uint64_t)(rand() % 100000),
            .resp_bytes = (uint64_t)(rand() % 1000) * (uint64_t)(rand() % 1000),
        };
        x->ep_id = up ? x->up_id * 2 + (uint32_t)(rand() % 2) : ARC_M_NONE;
        if (up && rand() % 50 == 0)
            x->err = 1 + ARC_ERR_UPSTREAM_TIMEOUT;
    }
    for (long i = 0; i < NX * 16; i++)          /* warm the caches and the series keys */
        arc_m_exchange(&m, &xs[i % NX]);
    uint64_t t0 = cpu_ns();
    for (long i = 0; i < n; i++)
        arc_m_exchange(&m, &xs[i & (NX - 1)]);
    uint64_t t1 = cpu_ns();
    printf("%s %.1f\n", argv[1], (double)(t1 - t0) / (double)n);
    arc_metrics_shard_dispose(&m);
    return 0;
}
