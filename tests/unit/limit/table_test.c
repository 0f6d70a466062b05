/*
 * Shared key tables: exact admission under two threads racing on one key
 * (the 16-byte CAS never loses or duplicates a charge), keys kept apart,
 * idle keys' cells reused without evicting live ones, the registry handing
 * the same table to an unchanged definition, and the memory a million keys
 * cost (printed: docs/rate-limiting.md quotes it).
 */
#include "limit/limit.h"
#include "test.h"

#include <pthread.h>
#include <stdio.h>

#define MS 1000000ull
#define SEC 1000000000ull
#define T0 (1000ull * SEC)

struct racer {
    struct arc_rl_table *t;
    uint64_t key, now;
    int n, allowed;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < r->n; i++) {
        struct arc_rl_decision d;
        arc_rl_charge(r->t, r->key, r->now, &d);
        r->allowed += d.verdict == ARC_RL_ALLOW;
    }
    return NULL;
}

/* Two threads, one key, a frozen clock: exactly `burst` requests pass. */
static void test_two_threads_one_key_exact(void)
{
    enum arc_rl_algo algos[] = { ARC_RL_GCRA, ARC_RL_TOKEN_BUCKET, ARC_RL_FIXED_WINDOW,
                                 ARC_RL_SLIDING_WINDOW };
    for (size_t a = 0; a < 4; a++) {
        struct arc_rl_rule rule;
        arc_rl_rule_init(&rule, algos[a], 5000, 5000, 1000, 0);
        struct arc_rl_table *t = arc_rl_table_new(&rule, 1000);
        CHECK(t != NULL);
        uint64_t key = arc_rl_hash("route", 5);
        struct racer r[2] = { { t, key, T0 + 10 * MS, 200000, 0 }, { t, key, T0 + 10 * MS, 200000, 0 } };
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, race, &r[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        CHECK_INT(r[0].allowed + r[1].allowed, 5000);
        arc_rl_table_unref(t);
    }
}

struct racer_keys {
    struct arc_rl_table *t;
    uint32_t n;
    int allowed;
};

static void *race_new_keys(void *arg)
{
    struct racer_keys *r = arg;
    for (uint32_t i = 0; i < r->n; i++) {
        struct arc_rl_decision d;
        arc_rl_charge(r->t, arc_rl_hash(&i, sizeof(i)), T0, &d);
        r->allowed += d.verdict == ARC_RL_ALLOW;
    }
    return NULL;
}

/* Two threads meet every key when it is new (burst 1, frozen clock): each
 * key passes exactly once in total. Two threads claiming two cells for one
 * new key at the same moment must not both pass (regression: the insert
 * once stored its charge in its own cell, and a duplicate claim lost it). */
static void test_two_threads_new_keys_exact(void)
{
    for (int round = 0; round < 20; round++) {
        struct arc_rl_rule rule;
        arc_rl_rule_init(&rule, ARC_RL_GCRA, 1, 1, 0, 0);
        struct arc_rl_table *t = arc_rl_table_new(&rule, 40000);
        struct racer_keys r[2] = { { t, 20000, 0 }, { t, 20000, 0 } };
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, race_new_keys, &r[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        CHECK_INT(r[0].allowed + r[1].allowed, 20000);
        arc_rl_table_unref(t);
    }
}

static void test_keys_apart(void)
{
    struct arc_rl_rule rule;
    arc_rl_rule_init(&rule, ARC_RL_GCRA, 1, 2, 0, 0);
    struct arc_rl_table *t = arc_rl_table_new(&rule, 100);
    struct arc_rl_decision d;
    uint64_t a = arc_rl_hash("10.0.0.1", 8), b = arc_rl_hash("10.0.0.2", 8);
    CHECK(a != b);
    arc_rl_charge(t, a, T0, &d);
    arc_rl_charge(t, a, T0, &d);
    CHECK_INT(d.verdict, ARC_RL_ALLOW);
    arc_rl_charge(t, a, T0, &d);
    CHECK_INT(d.verdict, ARC_RL_REJECT);
    arc_rl_charge(t, b, T0, &d);
    CHECK_INT(d.verdict, ARC_RL_ALLOW);
    CHECK_INT(arc_rl_table_live(t, T0), 2);
    CHECK_INT(arc_rl_table_live(t, T0 + 10 * SEC), 0);
    arc_rl_table_unref(t);
}

/* A table for 1,000 keys serves 100,000 keys over time when each is idle
 * before many new ones arrive: cells at rest are reused, nothing live is
 * evicted. */
static void test_idle_keys_reused(void)
{
    struct arc_rl_rule rule;
    arc_rl_rule_init(&rule, ARC_RL_GCRA, 10, 1, 0, 0);
    struct arc_rl_table *t = arc_rl_table_new(&rule, 1000);
    uint64_t now = T0;
    for (uint32_t i = 0; i < 100000; i++) {
        if (i % 500 == 0)
            now += 200 * MS;            /* 500 keys per 200 ms; each rests after 100 ms */
        struct arc_rl_decision d;
        arc_rl_charge(t, arc_rl_hash(&i, sizeof(i)), now, &d);
        CHECK(d.verdict == ARC_RL_ALLOW);
    }
    CHECK_INT(atomic_load(&t->evictions), 0);
    arc_rl_table_unref(t);
}

/* Same definition → same table (state carried over a reload). */
static void test_registry(void)
{
    struct arc_rl_rule r1, r2;
    arc_rl_rule_init(&r1, ARC_RL_GCRA, 10, 5, 0, 0);
    arc_rl_rule_init(&r2, ARC_RL_GCRA, 11, 5, 0, 0);
    struct arc_rl_table *a = arc_rl_table_get(7, &r1, 100);
    struct arc_rl_table *b = arc_rl_table_get(7, &r1, 100);
    struct arc_rl_table *c = arc_rl_table_get(7, &r2, 100);
    struct arc_rl_table *e = arc_rl_table_get(8, &r1, 100);
    struct arc_rl_table *f = arc_rl_table_get(7, &r1, 200);
    struct arc_rl_rule r3 = r1;
    r3.key_def = 42;                    /* same numbers, other keys */
    struct arc_rl_table *k = arc_rl_table_get(7, &r3, 100);
    CHECK(a == b);
    CHECK(a != c && a != e && a != f && a != k);
    arc_rl_table_unref(k);
    arc_rl_table_unref(a);
    arc_rl_table_unref(c);
    arc_rl_table_unref(e);
    arc_rl_table_unref(f);
    struct arc_rl_table *g = arc_rl_table_get(7, &r1, 100);
    CHECK(g == b);                      /* b still held it */
    arc_rl_table_unref(b);
    arc_rl_table_unref(g);
}

/* A million live keys in a table sized for them: the memory they cost and
 * how many were pushed out because their bucket was full. */
static void test_million_keys(void)
{
    struct arc_rl_rule rule;
    arc_rl_rule_init(&rule, ARC_RL_GCRA, 1, 10, 0, 0);
    size_t n = 1000000;
    struct arc_rl_table *t = arc_rl_table_new(&rule, n);
    for (uint32_t i = 0; i < n; i++) {
        struct arc_rl_decision d;
        uint8_t ip[4] = { 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };
        arc_rl_charge(t, arc_rl_hash(ip, 4) ^ ((uint64_t)i << 40), T0, &d);
    }
    uint64_t ev = atomic_load(&t->evictions);
    size_t live = arc_rl_table_live(t, T0);
    printf("million keys: %zu bytes of cells (%.1f bytes per key), %zu live, %llu evicted "
           "(%.3f%%)\n", t->bytes, (double)t->bytes / (double)n, live, (unsigned long long)ev,
           100.0 * (double)ev / (double)n);
    CHECK(t->bytes <= 21 * n);
    CHECK(ev < n / 100);                /* < 1% pushed out at exactly max_keys */
    CHECK_INT(live + ev, n);
    arc_rl_table_unref(t);
}

int main(void)
{
    RUN(test_two_threads_one_key_exact);
    RUN(test_two_threads_new_keys_exact);
    RUN(test_keys_apart);
    RUN(test_idle_keys_reused);
    RUN(test_registry);
    RUN(test_million_keys);
    return TEST_REPORT();
}
