/* The guards' table counts an address node-wide over every worker's row
 * block, keys IPv6 by prefix and IPv4-mapped IPv6 as IPv4, gives back what
 * it took, counts handshakes per whole second; the receive-rate window
 * judges only after its length and restarts after a pass. */
#include "test.h"
#include "guard/guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static struct sockaddr_in v4(const char *a)
{
    struct sockaddr_in s = { .sin_family = AF_INET };
    inet_pton(AF_INET, a, &s.sin_addr);
    return s;
}

static struct sockaddr_in6 v6(const char *a)
{
    struct sockaddr_in6 s = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, a, &s.sin6_addr);
    return s;
}

static bool same(const struct arc_guard_key *a, const struct arc_guard_key *b)
{
    return a->valid && b->valid && a->slot[0] == b->slot[0] && a->slot[1] == b->slot[1];
}

static void test_keys(void)
{
    struct arc_guard_key a, b;
    struct sockaddr_in x = v4("10.1.2.3"), y = v4("10.1.2.4");
    arc_guard_key_of((struct sockaddr *)&x, 64, &a);
    arc_guard_key_of((struct sockaddr *)&y, 64, &b);
    CHECK(a.valid && b.valid);
    struct sockaddr_in6 m = v6("::ffff:10.1.2.3");
    arc_guard_key_of((struct sockaddr *)&m, 64, &b);
    CHECK(same(&a, &b));                                        /* mapped = IPv4 */
    struct sockaddr_in6 p = v6("2001:db8:1:2::1"), q = v6("2001:db8:1:2:ffff::9");
    struct sockaddr_in6 r = v6("2001:db8:1:3::1");
    arc_guard_key_of((struct sockaddr *)&p, 64, &a);
    arc_guard_key_of((struct sockaddr *)&q, 64, &b);
    CHECK(same(&a, &b));                                        /* one /64 */
    arc_guard_key_of((struct sockaddr *)&r, 64, &b);
    CHECK(!same(&a, &b));
    arc_guard_key_of((struct sockaddr *)&r, 48, &b);
    arc_guard_key_of((struct sockaddr *)&p, 48, &a);
    CHECK(same(&a, &b));                                        /* one /48 */
    arc_guard_key_of((struct sockaddr *)&q, 128, &b);
    arc_guard_key_of((struct sockaddr *)&p, 128, &a);
    CHECK(!same(&a, &b));
    arc_guard_key_of(NULL, 64, &a);
    CHECK(!a.valid);
    CHECK_INT(arc_guard_count(&a, ARC_GC_CONNS), 0);
}

static void test_node_wide_counts(void)
{
    CHECK_INT(arc_guard_attach(0, 0), 0);
    CHECK_INT(arc_guard_attach(1, 0), 0);
    CHECK_INT(arc_guard_attach(1, 0), 0);                          /* idempotent */
    CHECK(arc_guard_attach(ARC_GUARD_MAX_WORKERS, 0) < 0);
    struct arc_guard_key k, o;
    struct sockaddr_in x = v4("192.0.2.7"), y = v4("192.0.2.8");
    arc_guard_key_of((struct sockaddr *)&x, 64, &k);
    arc_guard_key_of((struct sockaddr *)&y, 64, &o);
    for (int i = 0; i < 3; i++)
        arc_guard_inc(0, &k, ARC_GC_CONNS);
    arc_guard_inc(1, &k, ARC_GC_CONNS);
    arc_guard_inc(1, &k, ARC_GC_INCOMPLETE);
    CHECK_INT(arc_guard_count(&k, ARC_GC_CONNS), 4);            /* both workers */
    CHECK_INT(arc_guard_count(&k, ARC_GC_INCOMPLETE), 1);
    if (!(o.slot[0] == k.slot[0] && o.slot[1] == k.slot[1]))
        CHECK_INT(arc_guard_count(&o, ARC_GC_CONNS), 0);
    for (int i = 0; i < 3; i++)
        arc_guard_dec(0, &k, ARC_GC_CONNS);
    arc_guard_dec(1, &k, ARC_GC_CONNS);
    arc_guard_dec(1, &k, ARC_GC_INCOMPLETE);
    CHECK_INT(arc_guard_count(&k, ARC_GC_CONNS), 0);
    CHECK_INT(arc_guard_count(&k, ARC_GC_INCOMPLETE), 0);
    /* Deltas (an HTTP/2 connection's incomplete requests), both ways. */
    arc_guard_add(0, &k, ARC_GC_INCOMPLETE, 5);
    arc_guard_add(1, &k, ARC_GC_INCOMPLETE, 2);
    CHECK_INT(arc_guard_count(&k, ARC_GC_INCOMPLETE), 7);
    arc_guard_add(0, &k, ARC_GC_INCOMPLETE, -3);
    CHECK_INT(arc_guard_count(&k, ARC_GC_INCOMPLETE), 4);
    arc_guard_add(0, &k, ARC_GC_INCOMPLETE, -2);
    arc_guard_add(1, &k, ARC_GC_INCOMPLETE, -2);
    CHECK_INT(arc_guard_count(&k, ARC_GC_INCOMPLETE), 0);
    CHECK_INT(arc_guard_count(&k, ARC_GC_CONNS), 0);
}

static void test_handshake_seconds(void)
{
    struct arc_guard_key k;
    struct sockaddr_in x = v4("198.51.100.1");
    arc_guard_key_of((struct sockaddr *)&x, 64, &k);
    arc_guard_hs_add(0, &k, 100);
    arc_guard_hs_add(1, &k, 100);
    arc_guard_hs_add(1, &k, 100);
    CHECK_INT(arc_guard_hs_count(&k, 100), 3);
    CHECK_INT(arc_guard_hs_count(&k, 101), 0);
    arc_guard_hs_add(0, &k, 101);
    CHECK_INT(arc_guard_hs_count(&k, 101), 1);                  /* worker 1's second 100 is stale */
}

static void test_rate_window(void)
{
    struct arc_guard_rate g = { 0 };
    arc_guard_rate_start(&g, 1000);
    /* 100 B/s over 1s windows: nothing is judged before the window ends */
    CHECK(arc_guard_rate_feed(&g, 1, 1500, 100, 1000));
    CHECK(!arc_guard_rate_feed(&g, 1, 2100, 100, 1000));        /* 2 bytes in 1.1s */
    arc_guard_rate_start(&g, 1000);
    CHECK(arc_guard_rate_feed(&g, 150, 2000, 100, 1000));       /* passed: next window */
    CHECK_INT(g.start_ms, 2000);
    CHECK_INT(g.bytes, 0);
    CHECK(arc_guard_rate_feed(&g, 10, 2500, 100, 1000));
    CHECK(!arc_guard_rate_feed(&g, 10, 3200, 100, 1000));       /* 20 bytes in 1.2s */
    arc_guard_rate_start(&g, 0);
    CHECK(arc_guard_rate_feed(&g, 0, 999999, 0, 1000));         /* 0 = off */
}

/* security.l7.max_tracked_addresses: a small table (here 1 and 16 cells
 * per row) with more addresses than cells. Collisions only add: no address
 * ever reads below its own count (so a cap is never passed), and once
 * every connection is gone every count is back to 0 (nothing leaks). */
static void test_tiny_table_full(void)
{
    CHECK_INT(arc_guard_slots_for(1), 1);
    CHECK_INT(arc_guard_slots_for(3), 4);
    CHECK_INT(arc_guard_slots_for(16384), 16384);
    CHECK_INT(arc_guard_slots_for(1000000), ARC_GUARD_MAX_SLOTS);
    static const uint32_t sizes[] = { 1, 16 };
    for (size_t z = 0; z < 2; z++) {
        arc_guard_reset();
        CHECK_INT(arc_guard_attach(0, sizes[z]), 0);
        CHECK_INT(arc_guard_attach(1, sizes[z]), 0);
        CHECK(arc_guard_attach(2, sizes[z] * 2) < 0);          /* the layout is fixed */
        enum { N_ADDR = 200 };
        struct arc_guard_key k[N_ADDR];
        for (int i = 0; i < N_ADDR; i++) {
            char ip[32];
            snprintf(ip, sizeof(ip), "198.51.%d.%d", i / 100, i % 100 + 1);
            struct sockaddr_in a = v4(ip);
            arc_guard_key_of((struct sockaddr *)&a, 64, &k[i]);
            CHECK(k[i].valid && k[i].slot[0] < sizes[z] && k[i].slot[1] < sizes[z]);
            for (int j = 0; j <= i % 3; j++)                   /* 1..3 connections each */
                arc_guard_inc((unsigned)(i & 1), &k[i], ARC_GC_CONNS);
        }
        int exact = 0;
        for (int i = 0; i < N_ADDR; i++) {
            uint32_t n = arc_guard_count(&k[i], ARC_GC_CONNS);
            CHECK(n >= (uint32_t)(i % 3 + 1));                 /* never under */
            exact += n == (uint32_t)(i % 3 + 1);
        }
        if (sizes[z] == 1)
            CHECK_INT(arc_guard_count(&k[0], ARC_GC_CONNS), 399); /* one cell: everyone */
        CHECK(exact < N_ADDR);                                 /* (the table is full) */
        for (int i = 0; i < N_ADDR; i++)
            for (int j = 0; j <= i % 3; j++)
                arc_guard_dec((unsigned)(i & 1), &k[i], ARC_GC_CONNS);
        for (int i = 0; i < N_ADDR; i++)
            CHECK_INT(arc_guard_count(&k[i], ARC_GC_CONNS), 0);
    }
    arc_guard_reset();
}

static void test_names(void)
{
    CHECK_STR(arc_guard_reason_name(ARC_GR_HEADERS_TIMEOUT), "headers_timeout");
    CHECK_STR(arc_guard_reason_name(ARC_GR_TLS_HANDSHAKE_BUDGET), "tls_handshake_budget");
    CHECK_STR(arc_guard_reason_name(ARC_GR__COUNT), "unknown");
    for (int r = 0; r < ARC_GR__COUNT; r++)
        CHECK(strcmp(arc_guard_reason_name((enum arc_guard_reason)r), "unknown") != 0);
}

/* Two workers admitting one address under cap 1 at the same instants,
 * over and over: "holders" counts who is admitted right now, and must
 * never exceed the cap. (Checking the sum first and counting after let
 * both pass whenever each read the other's old count: this failed within
 * a few thousand rounds on two cores.) */
static struct arc_guard_key race_key;
static _Atomic int holders, over, admitted[2];
static _Atomic bool race_go;

static void *racer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&race_go))
        ;
    /* until both have been admitted often (they ran side by side), or 3 s */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0;; i++) {
        if ((i & 1023) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((atomic_load(&admitted[0]) >= 100000 && atomic_load(&admitted[1]) >= 100000) ||
                t.tv_sec - t0.tv_sec >= 3)
                break;
        }
        if (!arc_guard_admit(id, &race_key, ARC_GC_INCOMPLETE, 1))
            continue;
        if (atomic_fetch_add(&holders, 1) + 1 > 1)
            atomic_fetch_add(&over, 1);
        atomic_fetch_add(&admitted[id], 1);
        atomic_fetch_sub(&holders, 1);
        arc_guard_dec(id, &race_key, ARC_GC_INCOMPLETE);
    }
    return NULL;
}

static void test_admit_race(void)
{
    CHECK_INT(arc_guard_attach(0, 0), 0);
    CHECK_INT(arc_guard_attach(1, 0), 0);
    struct sockaddr_in x = v4("192.0.2.99");
    arc_guard_key_of((struct sockaddr *)&x, 64, &race_key);
    /* single-threaded: the cap is exact, a refusal counts nothing */
    CHECK(arc_guard_admit(0, &race_key, ARC_GC_INCOMPLETE, 2));
    CHECK(arc_guard_admit(1, &race_key, ARC_GC_INCOMPLETE, 2));
    CHECK(!arc_guard_admit(0, &race_key, ARC_GC_INCOMPLETE, 2));
    CHECK_INT(arc_guard_count(&race_key, ARC_GC_INCOMPLETE), 2);
    arc_guard_dec(0, &race_key, ARC_GC_INCOMPLETE);
    arc_guard_dec(1, &race_key, ARC_GC_INCOMPLETE);
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        CHECK_INT(pthread_create(&t[i], NULL, racer, (void *)i), 0);
    atomic_store(&race_go, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(atomic_load(&over), 0);
    CHECK_INT(atomic_load(&admitted[0]) > 0, 1);
    CHECK_INT(atomic_load(&admitted[1]) > 0, 1);
    CHECK_INT(arc_guard_count(&race_key, ARC_GC_INCOMPLETE), 0);   /* all given back */
}

int main(void)
{
    RUN(test_keys);
    RUN(test_node_wide_counts);
    RUN(test_handshake_seconds);
    RUN(test_rate_window);
    RUN(test_names);
    RUN(test_tiny_table_full);
    RUN(test_admit_race);
    return TEST_REPORT();
}
