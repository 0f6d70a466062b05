/* Proves each load balancer picks the way lb.h promises: round robin cycles,
 * smooth WRR interleaves (5,1,1 → a a b a c a a), least_requests and
 * peak_ewma prefer the less loaded / faster endpoint, the EWMA jumps to
 * peaks and decays with time, and the usable mask is always honoured. */
#include "test.h"
#include "core/common.h"
#include "upstream/lb.h"

#include <errno.h>
#include <math.h>

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

int main(void)
{
    RUN(test_round_robin_cycles);
    RUN(test_swrr_sequence);
    RUN(test_none_usable);
    RUN(test_least_requests);
    RUN(test_peak_ewma);
    return TEST_REPORT();
}
