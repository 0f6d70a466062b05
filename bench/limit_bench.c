/*
 * Rate-limiter micro-benchmark: ns per request decision for the design Arc
 * uses (one table per limit shared by every worker, cells updated with a
 * 16-byte compare-and-swap) against the floor any design pays (the keyed
 * hash and the algorithm step on a private word, as a per-worker table
 * would), with one thread, and with two threads hitting one key (the worst
 * case: a route-wide limit) or distinct keys (per-client limits).
 * Prints Markdown. Argument: decisions per thread per run (default 5M).
 */
#include "limit/limit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct job {
    struct arc_rl_table *t;
    const struct arc_rl_rule *rule;
    int mode;                   /* 0 shared table, 1 private word (floor) */
    uint32_t key_base, n_keys;
    long n;
    double ns;
    long allowed;
    uint64_t sink;
};

static void *run(void *arg)
{
    struct job *j = arg;
    uint64_t priv[1024] = { 0 };
    uint64_t t0 = now_ns();
    for (long i = 0; i < j->n; i++) {
        uint32_t k = j->key_base + (uint32_t)(i % j->n_keys);
        uint8_t ip[5] = { 4, 10, (uint8_t)(k >> 16), (uint8_t)(k >> 8), (uint8_t)k };
        uint64_t h = arc_rl_hash(ip, sizeof(ip));
        struct arc_rl_decision d;
        uint64_t now = now_ns();        /* (what the proxy does per request) */
        if (j->mode == 0) {
            arc_rl_charge(j->t, h, now, &d);
        } else {
            uint64_t *w = &priv[h & 1023];
            *w = arc_rl_step(j->rule, *w, now, &d);
        }
        j->allowed += d.verdict == ARC_RL_ALLOW;
        j->sink += h;
    }
    j->ns = (double)(now_ns() - t0) / (double)j->n;
    return NULL;
}

static double measure(int threads, int mode, uint32_t n_keys, bool same_keys, long n,
                      const struct arc_rl_rule *rule)
{
    struct arc_rl_table *t = arc_rl_table_new(rule, n_keys * 2 + 1024);
    struct job j[2];
    pthread_t th[2];
    for (int i = 0; i < threads; i++) {
        j[i] = (struct job){ .t = t, .rule = rule, .mode = mode, .n = n, .n_keys = n_keys,
                             .key_base = same_keys ? 0 : (uint32_t)i * n_keys };
        pthread_create(&th[i], NULL, run, &j[i]);
    }
    double sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        sum += j[i].ns;
    }
    arc_rl_table_unref(t);
    return sum / threads;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    struct arc_rl_rule rule;
    arc_rl_rule_init(&rule, ARC_RL_GCRA, 1e6, 1000000, 0, 0);   /* never rejects: every decision writes */
    printf("| case | shared table, 16-byte CAS (ns/decision) | private word, no atomics (ns/decision) |\n");
    printf("|---|---|---|\n");
    struct { const char *name; int threads; uint32_t keys; bool same; } cases[] = {
        { "1 thread, 1 key (route-wide)", 1, 1, true },
        { "1 thread, 100,000 keys", 1, 100000, true },
        { "2 threads, the same key (contended)", 2, 1, true },
        { "2 threads, 100,000 keys each, disjoint", 2, 100000, false },
        { "2 threads, the same 1,000 keys", 2, 1000, true },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double best[2] = { 1e9, 1e9 };
        for (int round = 0; round < 3; round++)
            for (int mode = 0; mode < 2; mode++) {
                double v = measure(cases[c].threads, mode, cases[c].keys, cases[c].same, n, &rule);
                if (v < best[mode])
                    best[mode] = v;
            }
        printf("| %s | %.1f | %.1f |\n", cases[c].name, best[0], best[1]);
    }
    return 0;
}
