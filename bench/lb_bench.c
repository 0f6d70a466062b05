/* Load-balancer micro-benchmark: ns per pick of each algorithm (the
 * balancers other than the hash ones also count start + done per pick;
 * key hashing is timed on its own),
 * with and without an ejection mask, and ns per passive-health outcome
 * (arc_health_record). Prints Markdown. Argument: picks per run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "upstream/health.h"
#include "upstream/lb.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile int sink;
static uint64_t keys[65536];            /* request keys, hashed beforehand */

static double run(enum arc_lb_algorithm alg, size_t n, const bool *mask, long iters)
{
    char names[256][32];
    const char *np[256];
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "10.0.%zu.%zu:8080", i / 200, i % 200);
        np[i] = names[i];
    }
    struct arc_lb lb;
    if (arc_lb_init(&lb, alg, NULL, n, 10000, 1) < 0 || arc_lb_build_hash(&lb, np, 160, 65537) < 0)
        abort();
    for (size_t i = 0; i < n; i++)
        arc_lb_done(&lb, i, 1000 + i, 0);
    double t0 = now_ns();
    for (long k = 0; k < iters; k++) {
        int p = arc_lb_pick_key(&lb, mask, &keys[k & 0xffff], 1);
        if (alg != ARC_LB_CONSISTENT_HASH && alg != ARC_LB_MAGLEV) {
            arc_lb_start(&lb, (size_t)p);
            arc_lb_done(&lb, (size_t)p, 1000, 1);
        }
        sink += p;
    }
    double t = (now_ns() - t0) / (double)iters;
    arc_lb_dispose(&lb);
    return t;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    static const struct { enum arc_lb_algorithm alg; const char *name; } algs[] = {
        { ARC_LB_ROUND_ROBIN, "round_robin" },
        { ARC_LB_WEIGHTED_ROUND_ROBIN, "weighted_round_robin" },
        { ARC_LB_LEAST_REQUESTS, "least_requests" },
        { ARC_LB_PEAK_EWMA, "peak_ewma" },
        { ARC_LB_CONSISTENT_HASH, "consistent_hash" },
        { ARC_LB_MAGLEV, "maglev" },
    };
    bool mask[256];
    for (size_t k = 0; k < 65536; k++) {
        char key[32];
        int kl = snprintf(key, sizeof(key), "user-%zu", k);
        keys[k] = arc_lb_hash(key, (size_t)kl);
    }
    printf("| algorithm | 8 endpoints | 64 endpoints | 64, 1/4 ejected (mask) |\n|---|---|---|---|\n");
    for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
        for (size_t i = 0; i < 64; i++)
            mask[i] = i % 4 != 0;
        printf("| %s | %.1f ns | %.1f ns | %.1f ns |\n", algs[a].name,
               run(algs[a].alg, 8, NULL, iters), run(algs[a].alg, 64, NULL, iters),
               run(algs[a].alg, 64, mask, iters));
    }
    /* hashing a key (a request's header value, ~20 bytes) */
    static const char key[] = "session-0123456789ab";
    double t0 = now_ns();
    for (long k = 0; k < iters; k++)
        sink += (int)arc_lb_hash(key, sizeof(key) - 1 - (size_t)(k & 1));
    printf("\narc_lb_hash of a 20-byte key: %.1f ns\n", (now_ns() - t0) / (double)iters);
    struct arc_passive_conf pc = {
        .enabled = true, .consecutive_failures = 5, .error_rate_threshold = 0.2,
        .window = 30000, .min_requests = 10, .ejection_time = 30000,
        .max_ejection_time = 300000, .max_ejection_percent = 50,
    };
    struct arc_hep h;
    memset(&h, 0, sizeof(h));
    t0 = now_ns();
    for (long k = 0; k < iters; k++)
        sink += (int)arc_health_record(&pc, &h, k % 50 != 0, (uint64_t)(k / 1000));
    printf("passive health, arc_health_record per attempt: %.1f ns\n",
           (now_ns() - t0) / (double)iters);
    return 0;
}
