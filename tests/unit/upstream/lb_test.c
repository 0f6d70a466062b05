/* Proves each load balancer picks the way lb.h promises: round robin cycles,
 * smooth WRR interleaves (5,1,1 → a a b a c a a), least_requests and
 * peak_ewma prefer the less loaded / faster endpoint, the EWMA jumps to
 * peaks and decays with time, and the usable mask is always honoured. */
#include "test.h"
#include "core/common.h"
#include "upstream/lb.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void test_round_robin_cycles(void)
{
    struct arc_lb lb;
    CHECK_INT(arc_lb_init(&lb, ARC_LB_ROUND_ROBIN, (const uint32_t[]){ 1, 7, 1 }, 3, 0, 42), 0);
    int first = arc_lb_pick(&lb, NULL, 0);
    CHECK(first >= 0 && first < 3);
    for (int i = 1; i < 30; i++)
        CHECK_INT(arc_lb_pick(&lb, NULL, 0), (first + i) % 3);    /* weights ignored */

    const bool mask[3] = { true, false, true };
    int prev = arc_lb_pick(&lb, mask, 0);
    CHECK(prev == 0 || prev == 2);
    for (int i = 0; i < 10; i++) {
        int p = arc_lb_pick(&lb, mask, 0);
        CHECK_INT(p, prev == 0 ? 2 : 0);
        prev = p;
    }
    arc_lb_dispose(&lb);

    /* different seeds start at different endpoints, so workers spread */
    bool seen[8] = { false };
    for (uint64_t seed = 1; seed <= 64; seed++) {
        CHECK_INT(arc_lb_init(&lb, ARC_LB_ROUND_ROBIN, NULL, 8, 0, seed), 0);
        seen[arc_lb_pick(&lb, NULL, 0)] = true;
        arc_lb_dispose(&lb);
    }
    int distinct = 0;
    for (int i = 0; i < 8; i++)
        distinct += seen[i];
    CHECK(distinct >= 4);
}

static void test_swrr_sequence(void)
{
    struct arc_lb lb;
    CHECK_INT(arc_lb_init(&lb, ARC_LB_WEIGHTED_ROUND_ROBIN, (const uint32_t[]){ 5, 1, 1 }, 3, 0, 7), 0);
    const int want[] = { 0, 0, 1, 0, 2, 0, 0 };          /* a a b a c a a */
    for (int round = 0; round < 5; round++)
        for (size_t i = 0; i < ARC_ARRAY_LEN(want); i++)
            CHECK_INT(arc_lb_pick(&lb, NULL, 0), want[i]);

    /* a unusable: b and c alternate; then a is back and the cycle resumes */
    const bool no_a[3] = { false, true, true };
    for (int i = 0; i < 6; i++)
        CHECK_INT(arc_lb_pick(&lb, no_a, 0), 1 + i % 2);
    int counts[3] = { 0 };
    for (int i = 0; i < 700; i++)
        counts[arc_lb_pick(&lb, NULL, 0)]++;
    CHECK(abs(counts[0] - 500) <= 2 && abs(counts[1] - 100) <= 2 && abs(counts[2] - 100) <= 2);
    arc_lb_dispose(&lb);
}

static void test_none_usable(void)
{
    const enum arc_lb_algorithm algs[] = { ARC_LB_ROUND_ROBIN, ARC_LB_WEIGHTED_ROUND_ROBIN,
                                           ARC_LB_LEAST_REQUESTS, ARC_LB_PEAK_EWMA };
    const bool none[6] = { false };
    const bool only4[6] = { false, false, false, false, true, false };
    const bool two[6] = { false, true, false, false, false, true };
    for (size_t a = 0; a < ARC_ARRAY_LEN(algs); a++) {
        for (size_t n = 1; n <= 6; n += 5) {
            struct arc_lb lb;
            CHECK_INT(arc_lb_init(&lb, algs[a], NULL, n, 10000, a + 1), 0);
            CHECK_INT(arc_lb_pick(&lb, none, 0), -1);
            if (n == 6) {
                for (int i = 0; i < 50; i++)
                    CHECK_INT(arc_lb_pick(&lb, only4, 0), 4);
                bool seen1 = false, seen5 = false;
                for (int i = 0; i < 200; i++) {
                    int p = arc_lb_pick(&lb, two, (uint64_t)i);
                    CHECK(p == 1 || p == 5);
                    seen1 |= p == 1;
                    seen5 |= p == 5;
                }
                CHECK(seen1 && seen5);
            } else {
                CHECK_INT(arc_lb_pick(&lb, NULL, 0), 0);
            }
            arc_lb_dispose(&lb);
        }
    }
    struct arc_lb lb;
    CHECK_INT(arc_lb_init(&lb, ARC_LB_ROUND_ROBIN, NULL, 0, 0, 1), -EINVAL);
}

static void test_least_requests(void)
{
    struct arc_lb lb;
    /* n <= 4: full scan, the least loaded always wins */
    CHECK_INT(arc_lb_init(&lb, ARC_LB_LEAST_REQUESTS, NULL, 3, 0, 3), 0);
    lb.eps[0].in_flight = 5;
    lb.eps[1].in_flight = 1;
    lb.eps[2].in_flight = 3;
    for (int i = 0; i < 50; i++)
        CHECK_INT(arc_lb_pick(&lb, NULL, 0), 1);
    /* in_flight is divided by weight; equal ratios go to the lower in_flight */
    lb.eps[0].weight = 4;
    lb.eps[0].in_flight = 4;        /* 1.0 */
    lb.eps[1].in_flight = 2;        /* 2.0 */
    lb.eps[2].in_flight = 3;        /* 3.0 */
    CHECK_INT(arc_lb_pick(&lb, NULL, 0), 0);
    lb.eps[1].in_flight = 1;        /* 1.0, fewer requests */
    CHECK_INT(arc_lb_pick(&lb, NULL, 0), 1);
    arc_lb_dispose(&lb);

    /* idle endpoints: ties spread instead of all going to endpoint 0 */
    CHECK_INT(arc_lb_init(&lb, ARC_LB_LEAST_REQUESTS, NULL, 3, 0, 5), 0);
    int counts[3] = { 0 };
    for (int i = 0; i < 300; i++)
        counts[arc_lb_pick(&lb, NULL, 0)]++;
    CHECK(counts[0] > 50 && counts[1] > 50 && counts[2] > 50);
    /* start/done keep in_flight, and the loads stay level */
    for (int i = 0; i < 400; i++) {
        int p = arc_lb_pick(&lb, NULL, 0);
        arc_lb_start(&lb, (size_t)p);
        uint32_t lo = UINT32_MAX, hi = 0;
        for (int k = 0; k < 3; k++) {
            lo = ARC_MIN(lo, lb.eps[k].in_flight);
            hi = ARC_MAX(hi, lb.eps[k].in_flight);
        }
        CHECK(hi - lo <= 1);
    }
    CHECK_INT(lb.eps[0].in_flight + lb.eps[1].in_flight + lb.eps[2].in_flight, 400);
    arc_lb_done(&lb, 0, 1000, 0);
    CHECK_INT(lb.eps[0].in_flight + lb.eps[1].in_flight + lb.eps[2].in_flight, 399);
    arc_lb_dispose(&lb);

    /* n > 4: power of two choices never picks the most loaded endpoint and
     * favours the least loaded */
    enum { N = 10 };
    CHECK_INT(arc_lb_init(&lb, ARC_LB_LEAST_REQUESTS, NULL, N, 0, 9), 0);
    for (int i = 0; i < N; i++)
        lb.eps[i].in_flight = (uint32_t)(10 * i);
    int hist[N] = { 0 };
    for (int i = 0; i < 20000; i++)
        hist[arc_lb_pick(&lb, NULL, 0)]++;
    CHECK_INT(hist[N - 1], 0);
    for (int i = 1; i < N - 1; i++)
        CHECK(hist[i - 1] > hist[i]);
    /* expected share of endpoint 0 is 2/N */
    CHECK(hist[0] > 20000 * 2 / N * 8 / 10 && hist[0] < 20000 * 2 / N * 12 / 10);
    arc_lb_dispose(&lb);
}

static void test_peak_ewma(void)
{
    struct arc_lb lb;
    const uint64_t decay = 100;
    CHECK_INT(arc_lb_init(&lb, ARC_LB_PEAK_EWMA, NULL, 2, decay, 11), 0);
    /* no sample yet costs 0, so a new endpoint is tried */
    arc_lb_done(&lb, 0, 1000, 0);
    CHECK_INT(arc_lb_pick(&lb, NULL, 0), 1);
    /* lower latency preferred */
    arc_lb_done(&lb, 1, 500, 0);
    for (int i = 0; i < 20; i++)
        CHECK_INT(arc_lb_pick(&lb, NULL, 0), 1);
    /* cost grows with in-flight requests: 500 * 3 > 1000 * 1 */
    lb.eps[1].in_flight = 2;
    CHECK_INT(arc_lb_pick(&lb, NULL, 0), 0);
    lb.eps[1].in_flight = 0;
    /* a peak replaces the estimate at once */
    arc_lb_done(&lb, 1, 5000, 0);
    CHECK(lb.eps[1].ewma_us == 5000.0);
    CHECK_INT(arc_lb_pick(&lb, NULL, 0), 0);
    /* a stale estimate decays toward 0: after 10 time constants the slow
     * endpoint (5000 * e^-10 ≈ 0.2) is retried against a fresh 1000 */
    arc_lb_done(&lb, 0, 1000, 10 * decay);
    CHECK_INT(arc_lb_pick(&lb, NULL, 10 * decay), 1);
    arc_lb_dispose(&lb);

    /* the EWMA itself: lower samples pull it down with weight 1 - e^-dt/decay */
    CHECK_INT(arc_lb_init(&lb, ARC_LB_PEAK_EWMA, NULL, 1, decay, 1), 0);
    arc_lb_done(&lb, 0, 10000, 1000);
    arc_lb_done(&lb, 0, 100, 1000 + decay);
    double want = 10000 * exp(-1.0) + 100 * (1 - exp(-1.0));
    CHECK(fabs(lb.eps[0].ewma_us - want) < 1e-6);
    arc_lb_done(&lb, 0, 100, 1000 + decay);        /* no time passed: no change */
    CHECK(fabs(lb.eps[0].ewma_us - want) < 1e-6);
    for (uint64_t t = 1; t <= 20; t++)
        arc_lb_done(&lb, 0, 100, 1000 + decay + t * decay);
    CHECK(lb.eps[0].ewma_us < 101.0 && lb.eps[0].ewma_us >= 100.0);
    arc_lb_dispose(&lb);

    /* with many endpoints (P2C), the slow one is rarely picked */
    enum { N = 8 };
    CHECK_INT(arc_lb_init(&lb, ARC_LB_PEAK_EWMA, NULL, N, 10000, 3), 0);
    for (int i = 0; i < N; i++)
        arc_lb_done(&lb, (size_t)i, i == 0 ? 50000 : 1000, 0);
    int slow = 0;
    for (int i = 0; i < 10000; i++)
        slow += arc_lb_pick(&lb, NULL, 1) == 0;
    CHECK_INT(slow, 0);
    arc_lb_dispose(&lb);
}

/* A fresh endpoint (no latency sample) is charged the slowest known
 * estimate, not zero: a burst of picks without completions spreads over
 * both endpoints instead of all landing on the new one. */
static void test_peak_ewma_new_endpoint_penalty(void)
{
    struct arc_lb lb;
    CHECK_INT(arc_lb_init(&lb, ARC_LB_PEAK_EWMA, NULL, 2, 10000, 5), 0);
    arc_lb_done(&lb, 0, 2000, 0);          /* endpoint 0 has a 2 ms estimate */
    int fresh = 0;
    for (int i = 0; i < 100; i++) {
        int p = arc_lb_pick(&lb, NULL, 0);
        arc_lb_start(&lb, (size_t)p);      /* the burst: nothing completes */
        fresh += p == 1;
    }
    /* zero cost would give all 100 to endpoint 1; the penalty makes it an
     * equal (the slowest known) */
    CHECK(fresh >= 45 && fresh <= 55);
    arc_lb_dispose(&lb);

    /* with no sample anywhere, in-flight counts alone decide */
    CHECK_INT(arc_lb_init(&lb, ARC_LB_PEAK_EWMA, NULL, 3, 10000, 6), 0);
    int got[3] = { 0 };
    for (int i = 0; i < 30; i++) {
        int p = arc_lb_pick(&lb, NULL, 0);
        arc_lb_start(&lb, (size_t)p);
        got[p]++;
    }
    CHECK(got[0] == 10 && got[1] == 10 && got[2] == 10);
    arc_lb_dispose(&lb);
}

enum { KEYS = 100000 };

static void names_of(char buf[][32], const char **names, size_t n, size_t first)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(buf[i], 32, "10.0.%zu.%zu:8080", (first + i) / 200, (first + i) % 200);
        names[i] = buf[i];
    }
}

static uint64_t key_hash(uint32_t k)
{
    char s[24];
    int n = snprintf(s, sizeof(s), "user-%u", k);
    return arc_lb_hash(s, (size_t)n);
}

/* max/mean of the keys per endpoint over 100k keys. */
static double imbalance(struct arc_lb *lb)
{
    size_t cnt[64] = { 0 };
    for (uint32_t k = 0; k < KEYS; k++) {
        uint64_t h = key_hash(k);
        int p = arc_lb_pick_key(lb, NULL, &h, 0);
        CHECK(p >= 0 && (size_t)p < lb->n);
        if (p >= 0)
            cnt[p]++;
    }
    size_t mx = 0;
    for (size_t i = 0; i < lb->n; i++)
        mx = cnt[i] > mx ? cnt[i] : mx;
    return (double)mx / ((double)KEYS / (double)lb->n);
}

/* Removing one of N endpoints: the share of keys that move. Keys of the
 * removed endpoint must move; others should stay. */
static double remapped(enum arc_lb_algorithm alg, size_t n, uint32_t vnodes)
{
    char buf[64][32];
    const char *names[64];
    names_of(buf, names, n, 0);
    struct arc_lb a, b;
    CHECK_INT(arc_lb_init(&a, alg, NULL, n, 0, 1), 0);
    CHECK_INT(arc_lb_build_hash(&a, names, vnodes, 65537), 0);
    /* b: the same endpoints without the 4th (names keep identities) */
    const char *fewer[64];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (i != 3)
            fewer[m++] = names[i];
    CHECK_INT(arc_lb_init(&b, alg, NULL, m, 0, 2), 0);
    CHECK_INT(arc_lb_build_hash(&b, fewer, vnodes, 65537), 0);
    size_t moved = 0;
    for (uint32_t k = 0; k < KEYS; k++) {
        uint64_t h = key_hash(k);
        int pa = arc_lb_pick_key(&a, NULL, &h, 0), pb = arc_lb_pick_key(&b, NULL, &h, 0);
        CHECK(pa >= 0 && pb >= 0);
        if (pa >= 0 && pb >= 0 && strcmp(names[pa], fewer[pb]) != 0)
            moved++;
        if (pa == 3)
            CHECK(strcmp(fewer[pb], names[3]) != 0);
    }
    arc_lb_dispose(&a);
    arc_lb_dispose(&b);
    return (double)moved / KEYS;
}

/* Bounds: ketama with 160 points per endpoint keeps the busiest of 2..32
 * endpoints within 1.35x the mean over 100k keys (a point share varies by
 * about 1/sqrt(160) = 8%); Maglev (65537 slots) splits its table almost
 * exactly, so within 1.1x. Removing one of 10 moves about 1/10 of
 * the keys: at most 0.15 for both (Maglev moves slightly more than 1/N by
 * design, ketama exactly the removed endpoint's keys). */
static void test_hash_fairness_and_remap(void)
{
    static const enum arc_lb_algorithm algs[] = { ARC_LB_CONSISTENT_HASH, ARC_LB_MAGLEV };
    static const double bound[] = { 1.35, 1.1 };
    for (size_t a = 0; a < 2; a++) {
        for (size_t n = 2; n <= 32; n *= 2) {
            char buf[64][32];
            const char *names[64];
            names_of(buf, names, n, 0);
            struct arc_lb lb;
            CHECK_INT(arc_lb_init(&lb, algs[a], NULL, n, 0, 7), 0);
            CHECK_INT(arc_lb_build_hash(&lb, names, 160, 65537), 0);
            double imb = imbalance(&lb);
            if (imb > bound[a])
                fprintf(stderr, "alg %d n %zu: max/mean %.3f\n", (int)algs[a], n, imb);
            CHECK(imb <= bound[a]);
            arc_lb_dispose(&lb);
        }
        double mv = remapped(algs[a], 10, 160);
        if (mv < 0.08 || mv > 0.15)
            fprintf(stderr, "alg %d: %.3f of keys moved\n", (int)algs[a], mv);
        CHECK(mv >= 0.08 && mv <= 0.15);
    }
}

/* Same key, same endpoint; an unusable endpoint's keys go elsewhere and
 * only those; weights skew the split; a missing key picks at random. */
static void test_hash_keys_and_mask(void)
{
    static const enum arc_lb_algorithm algs[] = { ARC_LB_CONSISTENT_HASH, ARC_LB_MAGLEV };
    for (size_t a = 0; a < 2; a++) {
        char buf[64][32];
        const char *names[64];
        names_of(buf, names, 4, 0);
        struct arc_lb lb, lb2;
        CHECK_INT(arc_lb_init(&lb, algs[a], NULL, 4, 0, 7), 0);
        CHECK_INT(arc_lb_build_hash(&lb, names, 160, 65537), 0);
        /* another worker (another seed) maps keys identically */
        CHECK_INT(arc_lb_init(&lb2, algs[a], NULL, 4, 0, 99), 0);
        CHECK_INT(arc_lb_build_hash(&lb2, names, 160, 65537), 0);
        const bool mask[4] = { true, false, true, true };
        int moved_other = 0, moved_off = 0;
        for (uint32_t k = 0; k < 10000; k++) {
            uint64_t h = key_hash(k);
            int p = arc_lb_pick_key(&lb, NULL, &h, 0);
            CHECK_INT(arc_lb_pick_key(&lb, NULL, &h, 0), p);
            CHECK_INT(arc_lb_pick_key(&lb2, NULL, &h, 0), p);
            int q = arc_lb_pick_key(&lb, mask, &h, 0);
            CHECK(q != 1 && q >= 0);
            moved_off += p == 1;
            moved_other += p != 1 && q != p;
        }
        CHECK(moved_off > 1500);
        CHECK_INT(moved_other, 0);
        const bool none[4] = { false, false, false, false };
        uint64_t h = 5;
        CHECK_INT(arc_lb_pick_key(&lb, none, &h, 0), -1);
        int seen[4] = { 0 };
        for (int i = 0; i < 400; i++)
            seen[arc_lb_pick_key(&lb, NULL, NULL, 0)]++;
        for (int i = 0; i < 4; i++)
            CHECK(seen[i] > 40);
        arc_lb_dispose(&lb);
        arc_lb_dispose(&lb2);

        /* weight 3 vs 1: about 3/4 of the keys */
        CHECK_INT(arc_lb_init(&lb, algs[a], (const uint32_t[]){ 3, 1 }, 2, 0, 7), 0);
        CHECK_INT(arc_lb_build_hash(&lb, names, 160, 65537), 0);
        int heavy = 0;
        for (uint32_t k = 0; k < KEYS; k++) {
            uint64_t kh = key_hash(k);
            heavy += arc_lb_pick_key(&lb, NULL, &kh, 0) == 0;
        }
        CHECK(heavy > KEYS * 0.70 && heavy < KEYS * 0.80);
        arc_lb_dispose(&lb);
    }
    /* the table size is the prime given, above the endpoint count */
    struct arc_lb lb;
    char buf[64][32];
    const char *names[64];
    names_of(buf, names, 3, 0);
    CHECK_INT(arc_lb_init(&lb, ARC_LB_MAGLEV, NULL, 3, 0, 1), 0);
    CHECK_INT(arc_lb_build_hash(&lb, names, 160, 307), 0);
    CHECK_INT(lb.table_size, 307);
    arc_lb_dispose(&lb);
    CHECK_INT(arc_lb_init(&lb, ARC_LB_MAGLEV, NULL, 3, 0, 1), 0);
    CHECK_INT(arc_lb_build_hash(&lb, names, 160, 308), -EINVAL);
    CHECK_INT(arc_lb_build_hash(&lb, names, 160, 3), -EINVAL);
    arc_lb_dispose(&lb);
}

int main(void)
{
    RUN(test_round_robin_cycles);
    RUN(test_swrr_sequence);
    RUN(test_none_usable);
    RUN(test_least_requests);
    RUN(test_peak_ewma);
    RUN(test_peak_ewma_new_endpoint_penalty);
    RUN(test_hash_fairness_and_remap);
    RUN(test_hash_keys_and_mask);
    return TEST_REPORT();
}
