/*
 * The rate-limiting algorithms against reference models driven by a fake
 * clock: bursts, steady rates, window edges (the fixed window's boundary
 * burst, the sliding window's weighted estimate), the leaky bucket's delays
 * and its queue bound, Retry-After being exact, and stale clocks.
 */
#include "limit/limit.h"
#include "test.h"

#include <math.h>

#define MS 1000000ull
#define SEC 1000000000ull
/* (fake clocks start far from 0, like a monotonic clock after boot) */
#define T0 (1000ull * SEC)

/* xorshift: reproducible arrival patterns */
static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Reference: a continuous token bucket (capacity burst, refill qps) with
 * debt for shaping: the textbook definition, in doubles. */
struct ref_tb {
    double tokens, qps, burst, max_delay;
    double last;
};

static enum arc_rl_verdict ref_tb(struct ref_tb *r, double t, bool shape, double *delay)
{
    r->tokens = fmin(r->burst, r->tokens + (t - r->last) * r->qps);
    r->last = t;
    *delay = 0;
    if (r->tokens >= 1 - 1e-9) {
        r->tokens -= 1;
        return ARC_RL_ALLOW;
    }
    if (shape) {
        double wait = (1 - r->tokens) / r->qps;
        if (wait <= r->max_delay + 1e-9) {
            r->tokens -= 1;
            *delay = wait;
            return ARC_RL_DELAY;
        }
    }
    return ARC_RL_REJECT;
}

/* Random arrivals (whole ms), every decision compared with the reference. */
static void against_tb(enum arc_rl_algo algo, double qps, uint32_t burst, uint64_t max_delay_ms,
                       int n, uint64_t max_gap_ms)
{
    struct arc_rl_rule r;
    arc_rl_rule_init(&r, algo, qps, burst, 0, max_delay_ms);
    struct ref_tb ref = { .tokens = burst, .qps = qps, .burst = burst,
                          .max_delay = max_delay_ms / 1000.0, .last = T0 / 1e9 };
    uint64_t st = 0, now = T0;
    int mismatches = 0, allowed = 0, delayed = 0, rejected = 0;
    for (int i = 0; i < n; i++) {
        now += (rnd() % (max_gap_ms + 1)) * MS;
        struct arc_rl_decision d;
        st = arc_rl_step(&r, st, now, &d);
        double delay;
        enum arc_rl_verdict want = ref_tb(&ref, now / 1e9, algo == ARC_RL_LEAKY_BUCKET, &delay);
        if (d.verdict != want) {
            if (mismatches++ < 5)
                fprintf(stderr, "  step %d at %.3f s: verdict %d, reference %d\n", i,
                        (now - T0) / 1e9, d.verdict, want);
        }
        if (want == ARC_RL_DELAY && d.verdict == ARC_RL_DELAY)
            CHECK(fabs(d.delay_ns / 1e9 - delay) < 1e-6);
        allowed += d.verdict == ARC_RL_ALLOW;
        delayed += d.verdict == ARC_RL_DELAY;
        rejected += d.verdict == ARC_RL_REJECT;
    }
    CHECK_INT(mismatches, 0);
    CHECK(allowed > 0);
    CHECK(rejected > 0);
    if (algo == ARC_RL_LEAKY_BUCKET)
        CHECK(delayed > 0);
}

static void test_gcra_matches_token_model(void)
{
    against_tb(ARC_RL_GCRA, 10, 5, 0, 20000, 150);
    against_tb(ARC_RL_GCRA, 100, 1, 0, 20000, 25);
    against_tb(ARC_RL_GCRA, 1000, 50, 0, 20000, 1);
    against_tb(ARC_RL_GCRA, 0.5, 3, 0, 5000, 2500);
}

static void test_token_bucket_matches_token_model(void)
{
    against_tb(ARC_RL_TOKEN_BUCKET, 10, 5, 0, 20000, 150);
    against_tb(ARC_RL_TOKEN_BUCKET, 100, 1, 0, 20000, 25);
    against_tb(ARC_RL_TOKEN_BUCKET, 1000, 50, 0, 20000, 1);
    against_tb(ARC_RL_TOKEN_BUCKET, 0.5, 3, 0, 5000, 2500);
}

static void test_leaky_bucket_matches_debt_model(void)
{
    against_tb(ARC_RL_LEAKY_BUCKET, 10, 1, 500, 20000, 150);
    against_tb(ARC_RL_LEAKY_BUCKET, 100, 5, 100, 20000, 15);
    against_tb(ARC_RL_LEAKY_BUCKET, 2, 2, 3000, 5000, 900);
}

/* A burst of `burst` passes at once, the next is refused, and after it
 * requests pass at exactly qps. */
static void burst_then_rate(enum arc_rl_algo algo)
{
    struct arc_rl_rule r;
    arc_rl_rule_init(&r, algo, 100, 20, 0, 0);
    uint64_t st = 0, now = T0;
    struct arc_rl_decision d;
    for (int i = 0; i < 20; i++) {
        st = arc_rl_step(&r, st, now, &d);
        CHECK_INT(d.verdict, ARC_RL_ALLOW);
        CHECK_INT(d.remaining, 19 - i);
    }
    st = arc_rl_step(&r, st, now, &d);
    CHECK_INT(d.verdict, ARC_RL_REJECT);
    CHECK_INT(d.retry_ns, 10 * MS);
    /* one request every ms for 10 s: 100/s pass */
    int ok = 0;
    for (int i = 1; i <= 10000; i++) {
        st = arc_rl_step(&r, st, now + (uint64_t)i * MS, &d);
        ok += d.verdict == ARC_RL_ALLOW;
    }
    CHECK_INT(ok, 1000);
}

static void test_burst_then_steady_rate(void)
{
    burst_then_rate(ARC_RL_GCRA);
    burst_then_rate(ARC_RL_TOKEN_BUCKET);
}

/* Retry-After is exact: refused just before it, admitted at it. */
static void test_retry_is_exact(void)
{
    enum arc_rl_algo algos[] = { ARC_RL_GCRA, ARC_RL_TOKEN_BUCKET, ARC_RL_FIXED_WINDOW,
                                 ARC_RL_SLIDING_WINDOW };
    for (size_t a = 0; a < 4; a++) {
        struct arc_rl_rule r;
        arc_rl_rule_init(&r, algos[a], 7, 3, 2000, 0);
        uint64_t st = 0, now = T0 + 123 * MS;
        struct arc_rl_decision d;
        int guard = 0;
        do {
            st = arc_rl_step(&r, st, now, &d);
        } while (d.verdict == ARC_RL_ALLOW && ++guard < 1000);
        CHECK_INT(d.verdict, ARC_RL_REJECT);
        uint64_t retry = d.retry_ns;
        CHECK(retry > 0);
        struct arc_rl_decision d2;
        if (retry >= MS) {
            arc_rl_step(&r, st, now + retry - MS, &d2);
            CHECK_INT(d2.verdict, ARC_RL_REJECT);
        }
        arc_rl_step(&r, st, now + retry, &d2);
        if (d2.verdict != ARC_RL_ALLOW)
            fprintf(stderr, "  algo %d: retry %llu ns not enough\n", (int)algos[a],
                    (unsigned long long)retry);
        CHECK_INT(d2.verdict, ARC_RL_ALLOW);
    }
}

/* The fixed window's known weakness, kept as documented behaviour: 2·limit
 * requests pass within 2 ms across a boundary. The sliding window does
 * not let the second half through. */
static void test_fixed_window_boundary_burst(void)
{
    struct arc_rl_rule fw, sw;
    arc_rl_rule_init(&fw, ARC_RL_FIXED_WINDOW, 10, 1, 1000, 0);
    arc_rl_rule_init(&sw, ARC_RL_SLIDING_WINDOW, 10, 1, 1000, 0);
    CHECK_INT(fw.limit, 10);
    uint64_t base = (T0 / SEC + 1) * SEC;       /* a window boundary */
    uint64_t sf = 0, ss = 0;
    int okf = 0, oks = 0;
    struct arc_rl_decision d;
    for (int i = 0; i < 10; i++) {
        sf = arc_rl_step(&fw, sf, base - 1 * MS, &d);
        okf += d.verdict == ARC_RL_ALLOW;
        ss = arc_rl_step(&sw, ss, base - 1 * MS, &d);
        oks += d.verdict == ARC_RL_ALLOW;
    }
    CHECK_INT(okf, 10);
    CHECK_INT(oks, 10);
    for (int i = 0; i < 10; i++) {
        sf = arc_rl_step(&fw, sf, base + 1 * MS, &d);
        okf += d.verdict == ARC_RL_ALLOW;
        ss = arc_rl_step(&sw, ss, base + 1 * MS, &d);
        oks += d.verdict == ARC_RL_ALLOW;
    }
    CHECK_INT(okf, 20);                         /* 20 in 2 ms */
    CHECK_INT(oks, 10);                         /* prev weighs 0.999·10 */
    /* halfway through the next window the previous one weighs half */
    ss = arc_rl_step(&sw, ss, base + 500 * MS, &d);
    CHECK_INT(d.verdict, ARC_RL_ALLOW);         /* 10·0.5 + 0 + 1 <= 10 */
}

/* Reference for windows: counts per window in doubles. */
static void test_windows_against_reference(void)
{
    for (int algo = ARC_RL_FIXED_WINDOW; algo <= ARC_RL_SLIDING_WINDOW; algo++) {
        struct arc_rl_rule r;
        arc_rl_rule_init(&r, (enum arc_rl_algo)algo, 20, 1, 3000, 0);
        CHECK_INT(r.limit, 60);
        uint64_t st = 0, now = T0;
        uint64_t win = 0;
        double prev = 0, cur = 0;
        int mismatches = 0;
        for (int i = 0; i < 50000; i++) {
            now += (rnd() % 40) * MS;
            uint64_t w = now / MS / 3000;
            if (w != win) {
                prev = (w == win + 1) ? cur : 0;
                cur = 0;
                win = w;
            }
            double e = (double)(now / MS - w * 3000) / 3000.0;
            bool want = algo == ARC_RL_FIXED_WINDOW ? cur < 60
                                                    : prev * (1 - e) + cur + 1 <= 60 + 1e-9;
            if (want)
                cur++;
            struct arc_rl_decision d;
            st = arc_rl_step(&r, st, now, &d);
            if ((d.verdict == ARC_RL_ALLOW) != want && mismatches++ < 5)
                fprintf(stderr, "  algo %d step %d: %d vs %d\n", algo, i, d.verdict, want);
        }
        CHECK_INT(mismatches, 0);
    }
}

/* Leaky bucket: delays grow by 1/qps per queued request, up to max_delay;
 * then refusals; the queue empties at qps. A refund gives a place back. */
static void test_leaky_bucket_queue(void)
{
    struct arc_rl_rule r;
    arc_rl_rule_init(&r, ARC_RL_LEAKY_BUCKET, 10, 1, 0, 350);
    uint64_t st = 0, now = T0;
    struct arc_rl_decision d;
    st = arc_rl_step(&r, st, now, &d);
    CHECK_INT(d.verdict, ARC_RL_ALLOW);
    for (int i = 1; i <= 3; i++) {
        st = arc_rl_step(&r, st, now, &d);
        CHECK_INT(d.verdict, ARC_RL_DELAY);
        CHECK_INT(d.delay_ns, (uint64_t)i * 100 * MS);
    }
    uint64_t kept = st;
    st = arc_rl_step(&r, st, now, &d);          /* would wait 400 ms > 350 */
    CHECK_INT(d.verdict, ARC_RL_REJECT);
    CHECK_INT(d.retry_ns, 50 * MS);
    CHECK(st == kept);
    st = arc_rl_unstep(&r, st, now);            /* the third one left */
    st = arc_rl_step(&r, st, now, &d);
    CHECK_INT(d.verdict, ARC_RL_DELAY);
    CHECK_INT(d.delay_ns, 300 * MS);
    /* 1 s later the queue has drained */
    st = arc_rl_step(&r, st, now + SEC, &d);
    CHECK_INT(d.verdict, ARC_RL_ALLOW);
}

/* A worker acting on a clock reading older than the one stored by
 * another worker is treated as "now", never as a wrap or a reset. */
static void test_stale_clock(void)
{
    enum arc_rl_algo algos[] = { ARC_RL_GCRA, ARC_RL_TOKEN_BUCKET, ARC_RL_FIXED_WINDOW,
                                 ARC_RL_SLIDING_WINDOW };
    for (size_t a = 0; a < 4; a++) {
        struct arc_rl_rule r;
        arc_rl_rule_init(&r, algos[a], 5, 5, 1000, 0);
        uint64_t st = 0, now = T0 + 999 * MS;
        struct arc_rl_decision d;
        int ok = 0;
        for (int i = 0; i < 5; i++) {
            st = arc_rl_step(&r, st, now + 2 * MS, &d);     /* the fresher worker */
            ok += d.verdict == ARC_RL_ALLOW;
        }
        for (int i = 0; i < 5; i++) {
            st = arc_rl_step(&r, st, now, &d);              /* 2 ms behind, previous window */
            ok += d.verdict == ARC_RL_ALLOW;
        }
        if (ok != 5)
            fprintf(stderr, "  algo %d admitted %d\n", (int)algos[a], ok);
        CHECK_INT(ok, 5);
    }
}

/* Rest: a state at rest carries nothing (the table may reuse its cell). */
static void test_rest(void)
{
    struct arc_rl_rule r;
    arc_rl_rule_init(&r, ARC_RL_GCRA, 10, 5, 0, 0);
    struct arc_rl_decision d;
    uint64_t st = arc_rl_step(&r, 0, T0, &d);
    CHECK_INT(arc_rl_rest_in(&r, st, T0), 100 * MS);
    CHECK_INT(arc_rl_rest_in(&r, st, T0 + 100 * MS), 0);
    arc_rl_rule_init(&r, ARC_RL_TOKEN_BUCKET, 10, 5, 0, 0);
    st = arc_rl_step(&r, 0, T0, &d);
    CHECK_INT(arc_rl_rest_in(&r, st, T0), 100 * MS);
    CHECK_INT(arc_rl_rest_in(&r, st, T0 + 100 * MS), 0);
    arc_rl_rule_init(&r, ARC_RL_FIXED_WINDOW, 10, 1, 1000, 0);
    st = arc_rl_step(&r, 0, T0 + 250 * MS, &d);
    CHECK_INT(arc_rl_rest_in(&r, st, T0 + 250 * MS), 750 * MS);
    CHECK_INT(arc_rl_rest_in(&r, st, T0 + SEC), 0);
    arc_rl_rule_init(&r, ARC_RL_SLIDING_WINDOW, 10, 1, 1000, 0);
    st = arc_rl_step(&r, 0, T0 + 250 * MS, &d);
    CHECK_INT(arc_rl_rest_in(&r, st, T0 + 250 * MS), 1750 * MS);
    CHECK(arc_rl_rest_in(&r, st, T0 + SEC) > 0);
    CHECK_INT(arc_rl_rest_in(&r, st, T0 + 2 * SEC), 0);
}

int main(void)
{
    RUN(test_gcra_matches_token_model);
    RUN(test_token_bucket_matches_token_model);
    RUN(test_leaky_bucket_matches_debt_model);
    RUN(test_burst_then_steady_rate);
    RUN(test_retry_is_exact);
    RUN(test_fixed_window_boundary_burst);
    RUN(test_windows_against_reference);
    RUN(test_leaky_bucket_queue);
    RUN(test_stale_clock);
    RUN(test_rest);
    return TEST_REPORT();
}
