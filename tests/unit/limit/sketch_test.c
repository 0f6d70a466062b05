/*
 * Count-min sketch: the property that makes it usable for heavy hitters.
 * On synthetic Zipf traffic (1,000,000 items over 200,000 keys, s = 1.1),
 * with width = ceil(e/ε) and depth = ceil(ln(1/δ)): no estimate is below
 * the truth, and the share of keys overestimated by more than ε·N is at
 * most δ (checked for several ε, δ and seeds; each key's overshoot is a
 * Bernoulli trial with p <= δ, so the bound allows three standard
 * deviations on top). The heaviest keys are estimated within ε·N. Decay
 * halves estimates.
 */
#include "limit/limit.h"
#include "test.h"

#include <math.h>

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define KEYS 200000
#define ITEMS 1000000

static double cdf[KEYS];
static uint32_t truth[KEYS];

static void zipf_init(double s)
{
    double sum = 0;
    for (int i = 0; i < KEYS; i++) {
        sum += 1.0 / pow(i + 1, s);
        cdf[i] = sum;
    }
    for (int i = 0; i < KEYS; i++)
        cdf[i] /= sum;
}

static int zipf_draw(void)
{
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    int lo = 0, hi = KEYS - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint64_t key_of(int i)
{
    uint32_t k = (uint32_t)i;
    return arc_rl_hash(&k, sizeof(k));
}

static void bound(double eps, double delta, uint64_t seed)
{
    uint32_t width = (uint32_t)ceil(M_E / eps), depth = (uint32_t)ceil(log(1 / delta));
    struct arc_cms s;
    CHECK_INT(arc_cms_init(&s, width, depth, seed), 0);
    rng_state = seed * 7919;
    memset(truth, 0, sizeof(truth));
    for (int n = 0; n < ITEMS; n++) {
        int i = zipf_draw();
        truth[i]++;
        arc_cms_add(&s, key_of(i), 1);
    }
    CHECK_INT(s.total, ITEMS);
    double limit = eps * (double)ITEMS;
    int under = 0, over = 0, seen = 0, heavy_bad = 0;
    double err = 0;
    for (int i = 0; i < KEYS; i++) {
        if (!truth[i])
            continue;
        seen++;
        uint32_t e = arc_cms_estimate(&s, key_of(i));
        under += e < truth[i];
        err += (double)e - (double)truth[i];
        over += (double)e - (double)truth[i] > limit;
        if (i < 100)
            heavy_bad += (double)e - (double)truth[i] > limit;
    }
    double allowed = delta * seen + 3 * sqrt(delta * (1 - delta) * seen);
    /* One row alone overestimates a key by (N - its count)/width on average;
     * the minimum over independent rows must do clearly better (a sketch
     * taking one row, or rows that hash alike, would not). */
    double one_row = (double)ITEMS / width, mean = err / seen;
    printf("  eps %.4f delta %.3f (w %u, d %u): %d keys seen, %d over eps*N (allowed %.0f), "
           "%d under, mean overestimate %.2f (one row: %.2f)\n", eps, delta, width, depth, seen,
           over, allowed, under, mean, one_row);
    CHECK(mean < 0.6 * one_row);
    CHECK_INT(under, 0);
    CHECK(over <= allowed);
    CHECK(heavy_bad <= 1);
    arc_cms_dispose(&s);
}

static void test_overestimate_bound_zipf(void)
{
    zipf_init(1.1);
    bound(0.001, 0.01, 1);
    bound(0.001, 0.01, 2);
    bound(0.0005, 0.05, 3);
    bound(0.005, 0.1, 4);
    bound(0.0002, 0.001, 5);
}

static void test_decay(void)
{
    struct arc_cms s;
    CHECK_INT(arc_cms_init(&s, 1000, 4, 9), 0);
    for (int i = 0; i < 100; i++)
        arc_cms_add(&s, 42, 1);
    CHECK_INT(arc_cms_estimate(&s, 42), 100);
    arc_cms_decay(&s);
    CHECK_INT(arc_cms_estimate(&s, 42), 50);
    CHECK_INT(s.total, 50);
    /* steady rate r per period converges to 2r */
    for (int p = 0; p < 20; p++) {
        arc_cms_add(&s, 42, 10);
        arc_cms_decay(&s);
    }
    uint32_t e = arc_cms_estimate(&s, 42) + 10;
    CHECK(e >= 19 && e <= 20);
    arc_cms_dispose(&s);
    CHECK_INT(arc_cms_init(&s, 0, 4, 1), -1);
    CHECK_INT(arc_cms_init(&s, 10, 17, 1), -1);
}

int main(void)
{
    RUN(test_overestimate_bound_zipf);
    RUN(test_decay);
    return TEST_REPORT();
}
