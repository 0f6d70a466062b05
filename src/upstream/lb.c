/*
 * Endpoint selection for one upstream, per worker (see lb.h for the six
 * algorithms). Everything here runs on the owning worker's thread, so state
 * is plain fields; picks are O(n) at worst in a bool scan and never allocate.
 */
#include "upstream/lb.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* Small endpoint sets are scanned in full: with <= 4 candidates a scan
 * costs about what two random draws do and always finds the best. */
#define LB_SCAN_MAX 4

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rng_next(struct arc_lb *lb)
{
    /* xorshift64*: the state must never be 0 (arc_lb_init guarantees it) */
    uint64_t x = lb->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    lb->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n) without modulo bias worth caring about (Lemire). */
static size_t rng_below(struct arc_lb *lb, size_t n)
{
    return (size_t)(((unsigned __int128)rng_next(lb) * n) >> 64);
}

int arc_lb_init(struct arc_lb *lb, enum arc_lb_algorithm alg, const uint32_t *weights, size_t n,
                uint64_t decay_ms, uint64_t seed)
{
    memset(lb, 0, sizeof(*lb));
    if (n == 0)
        return -EINVAL;
    lb->eps = calloc(n, sizeof(*lb->eps));
    if (!lb->eps)
        return -ENOMEM;
    lb->alg = alg;
    lb->n = n;
    lb->decay_ms = decay_ms ? decay_ms : 1;
    for (size_t i = 0; i < n; i++)
        lb->eps[i].weight = weights && weights[i] ? weights[i] : 1;
    lb->rng = splitmix64(seed);
    if (!lb->rng)
        lb->rng = 0x9e3779b97f4a7c15ull;
    /* Workers seeded differently start round robin at different endpoints,
     * so N workers' first requests do not all land on endpoint 0. */
    lb->rr_next = (uint32_t)rng_below(lb, n);
    return 0;
}

void arc_lb_dispose(struct arc_lb *lb)
{
    free(lb->eps);
    free(lb->ring);
    free(lb->table);
    lb->eps = NULL;
    lb->ring = NULL;
    lb->table = NULL;
    lb->n = lb->n_ring = 0;
    lb->table_size = 0;
}

/* ------------------------------------------------------------ hashing */

uint64_t arc_lb_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    /* FNV alone leaves nearby inputs ("a-1", "a-2") close in the high
     * bits; the finaliser spreads them over the whole ring. */
    return splitmix64(h);
}

static uint64_t hash2(const char *name, uint64_t salt)
{
    return splitmix64(arc_lb_hash(name, strlen(name)) ^ splitmix64(salt));
}

static int point_cmp(const void *a, const void *b)
{
    const struct arc_lb_point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->ep < y->ep ? -1 : x->ep > y->ep;     /* ties: a stable order */
}

/* Points of endpoint i: its share of n * vnodes by weight, at least one. */
static size_t share(const struct arc_lb *lb, size_t i, uint64_t wsum, uint32_t vnodes)
{
    uint64_t v = ((uint64_t)vnodes * lb->n * lb->eps[i].weight + wsum / 2) / wsum;
    return v ? (size_t)v : 1;
}

static int build_ring(struct arc_lb *lb, const char *const *names, uint32_t vnodes, uint64_t wsum)
{
    size_t total = 0;
    for (size_t i = 0; i < lb->n; i++)
        total += share(lb, i, wsum, vnodes);
    if (total > ARC_LB_MAX_SLOTS + lb->n)
        return -EINVAL;
    lb->ring = malloc(total * sizeof(*lb->ring));
    if (!lb->ring)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < lb->n; i++)
        for (size_t j = 0, m = share(lb, i, wsum, vnodes); j < m; j++)
            lb->ring[k++] = (struct arc_lb_point){ hash2(names[i], j), (uint32_t)i };
    qsort(lb->ring, total, sizeof(*lb->ring), point_cmp);
    lb->n_ring = total;
    return 0;
}

bool arc_lb_is_prime(uint32_t v)
{
    if (v < 2)
        return false;
    for (uint32_t d = 2; (uint64_t)d * d <= v; d++)
        if (v % d == 0)
            return false;
    return true;
}

static int build_maglev(struct arc_lb *lb, const char *const *names, uint32_t m)
{
    if (m > ARC_LB_MAX_SLOTS || m <= lb->n || !arc_lb_is_prime(m))
        return -EINVAL;
    size_t n = lb->n;
    uint32_t *table = malloc((size_t)m * sizeof(*table));
    uint64_t *offset = malloc(n * sizeof(*offset)), *skip = malloc(n * sizeof(*skip));
    uint64_t *next = calloc(n, sizeof(*next)), *count = calloc(n, sizeof(*count));
    int rc = -ENOMEM;
    if (!table || !offset || !skip || !next || !count)
        goto out;
    uint32_t wmax = 1;
    for (size_t i = 0; i < n; i++) {
        offset[i] = hash2(names[i], 0x6d61676c) % m;
        skip[i] = hash2(names[i], 0x65762121) % (m - 1) + 1;
        if (lb->eps[i].weight > wmax)
            wmax = lb->eps[i].weight;
    }
    memset(table, 0xff, (size_t)m * sizeof(*table));
    /* Round r lets endpoint i hold up to r * weight_i / wmax slots, so
     * slots are handed out in proportion to weight (Envoy's weighted
     * Maglev does the same); each takes the next free slot of its own
     * permutation (offset + j * skip) mod m, which visits every slot. */
    uint32_t filled = 0;
    for (uint64_t r = 1; filled < m; r++) {
        for (size_t i = 0; i < n && filled < m; i++) {
            if ((count[i] + 1) * wmax > r * lb->eps[i].weight)
                continue;
            uint64_t c;
            do
                c = (offset[i] + next[i]++ * skip[i]) % m;
            while (table[c] != UINT32_MAX);
            table[c] = (uint32_t)i;
            count[i]++;
            filled++;
        }
    }
    lb->table = table;
    lb->table_size = m;
    table = NULL;
    rc = 0;
out:
    free(table);
    free(offset);
    free(skip);
    free(next);
    free(count);
    return rc;
}

int arc_lb_build_hash(struct arc_lb *lb, const char *const *names, uint32_t vnodes,
                      uint32_t table_size)
{
    if (lb->alg != ARC_LB_CONSISTENT_HASH && lb->alg != ARC_LB_MAGLEV)
        return 0;
    if (vnodes == 0)
        vnodes = 1;
    uint64_t wsum = 0;
    for (size_t i = 0; i < lb->n; i++)
        wsum += lb->eps[i].weight;
    return lb->alg == ARC_LB_MAGLEV ? build_maglev(lb, names, table_size)
                                    : build_ring(lb, names, vnodes, wsum);
}

static inline bool ok(const bool *usable, size_t i)
{
    return !usable || usable[i];
}

static int pick_rr(struct arc_lb *lb, const bool *usable)
{
    size_t n = lb->n, start = lb->rr_next % n;
    for (size_t k = 0; k < n; k++) {
        size_t i = start + k < n ? start + k : start + k - n;
        if (ok(usable, i)) {
            lb->rr_next = (uint32_t)(i + 1 < n ? i + 1 : 0);
            return (int)i;
        }
    }
    return -1;
}

/* nginx's smooth weighted round robin: unusable endpoints neither gain nor
 * lose credit, so a recovered endpoint is not flooded to "catch up". */
static int pick_swrr(struct arc_lb *lb, const bool *usable)
{
    int64_t total = 0;
    struct arc_lb_ep *best = NULL;
    for (size_t i = 0; i < lb->n; i++) {
        struct arc_lb_ep *e = &lb->eps[i];
        if (!ok(usable, i))
            continue;
        e->current += e->weight;
        total += e->weight;
        if (!best || e->current > best->current)
            best = e;
    }
    if (!best)
        return -1;
    best->current -= total;
    return (int)(best - lb->eps);
}

/* EWMA decayed to `now`: with no fresh samples an endpoint's estimate drifts
 * to 0 so a once-slow endpoint is eventually retried (Finagle's peak EWMA). */
static double ewma_now(const struct arc_lb *lb, const struct arc_lb_ep *e, uint64_t now_ms)
{
    if (e->ewma_us == 0 || now_ms <= e->ewma_stamp_ms)
        return e->ewma_us;
    return e->ewma_us * exp(-(double)(now_ms - e->ewma_stamp_ms) / (double)lb->decay_ms);
}

/* What an endpoint without a latency sample is charged: the highest
 * estimate of those with one (all endpoints are tried, but a new one is
 * not free while the others have a price; with no sample anywhere, all
 * cost the same and in-flight counts decide). */
static double penalty(const struct arc_lb *lb, uint64_t now_ms)
{
    double worst = 0;
    for (size_t i = 0; i < lb->n; i++) {
        double v = ewma_now(lb, &lb->eps[i], now_ms);
        if (v > worst)
            worst = v;
    }
    return worst > 0 ? worst : 1.0;
}

static double cost(const struct arc_lb *lb, size_t i, uint64_t now_ms)
{
    const struct arc_lb_ep *e = &lb->eps[i];
    if (lb->alg == ARC_LB_PEAK_EWMA) {
        double est = e->ewma_us == 0 ? penalty(lb, now_ms) : ewma_now(lb, e, now_ms);
        return est * ((double)e->in_flight + 1.0) / (double)e->weight;
    }
    return (double)e->in_flight / (double)e->weight;
}

/* Is endpoint a a better choice than b? Lower cost, then lower in_flight. */
static bool less_loaded(const struct arc_lb *lb, size_t a, size_t b, uint64_t now_ms)
{
    if (lb->alg == ARC_LB_LEAST_REQUESTS) {
        /* exact integer form of in_flight/weight, no rounding */
        uint64_t ca = (uint64_t)lb->eps[a].in_flight * lb->eps[b].weight;
        uint64_t cb = (uint64_t)lb->eps[b].in_flight * lb->eps[a].weight;
        if (ca != cb)
            return ca < cb;
    } else {
        double ca = cost(lb, a, now_ms), cb = cost(lb, b, now_ms);
        if (ca != cb)
            return ca < cb;
    }
    return lb->eps[a].in_flight < lb->eps[b].in_flight;
}

/* Index of the k-th usable endpoint (0-based). */
static size_t nth_usable(const struct arc_lb *lb, const bool *usable, size_t k)
{
    if (!usable)
        return k;
    for (size_t i = 0;; i++)
        if (usable[i] && k-- == 0)
            return i;
}

static int pick_p2c(struct arc_lb *lb, const bool *usable, uint64_t now_ms)
{
    size_t n = lb->n, u = n;
    if (usable) {
        u = 0;
        for (size_t i = 0; i < n; i++)
            u += usable[i];
    }
    if (u == 0)
        return -1;
    if (u == 1)
        return (int)nth_usable(lb, usable, 0);
    if (n <= LB_SCAN_MAX || u <= 2) {
        /* Start at a random endpoint so exact ties (all idle) spread out
         * instead of always going to the lowest index. */
        size_t start = rng_below(lb, n);
        int best = -1;
        for (size_t k = 0; k < n; k++) {
            size_t i = start + k < n ? start + k : start + k - n;
            if (ok(usable, i) && (best < 0 || less_loaded(lb, i, (size_t)best, now_ms)))
                best = (int)i;
        }
        return best;
    }
    size_t r1 = rng_below(lb, u), r2 = rng_below(lb, u - 1);
    if (r2 >= r1)
        r2++;                   /* two distinct candidates */
    size_t a = nth_usable(lb, usable, r1), b = nth_usable(lb, usable, r2);
    return (int)(less_loaded(lb, b, a, now_ms) ? b : a);
}

/* First usable endpoint at or after ring position `at` (wrapping). */
static int ring_walk(const struct arc_lb *lb, const bool *usable, size_t at)
{
    for (size_t k = 0; k < lb->n_ring; k++) {
        size_t i = at + k < lb->n_ring ? at + k : at + k - lb->n_ring;
        if (ok(usable, lb->ring[i].ep))
            return (int)lb->ring[i].ep;
    }
    return -1;
}

static int pick_ring(const struct arc_lb *lb, const bool *usable, uint64_t h)
{
    if (!lb->n_ring)
        return -1;
    size_t lo = 0, hi = lb->n_ring;     /* first point with hash >= h */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lb->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return ring_walk(lb, usable, lo == lb->n_ring ? 0 : lo);
}

static int pick_maglev(const struct arc_lb *lb, const bool *usable, uint64_t h)
{
    uint32_t m = lb->table_size;
    if (!m)
        return -1;
    size_t at = (size_t)(h % m);
    for (size_t k = 0; k < m; k++) {
        size_t i = at + k < m ? at + k : at + k - m;
        if (ok(usable, lb->table[i]))
            return (int)lb->table[i];
    }
    return -1;
}

int arc_lb_pick_key(struct arc_lb *lb, const bool *usable, const uint64_t *key, uint64_t now_ms)
{
    if (!lb->n)
        return -1;
    if (lb->alg == ARC_LB_CONSISTENT_HASH || lb->alg == ARC_LB_MAGLEV) {
        uint64_t h = key ? *key : rng_next(lb);
        return lb->alg == ARC_LB_MAGLEV ? pick_maglev(lb, usable, h) : pick_ring(lb, usable, h);
    }
    return arc_lb_pick(lb, usable, now_ms);
}

int arc_lb_pick(struct arc_lb *lb, const bool *usable, uint64_t now_ms)
{
    if (!lb->n)
        return -1;
    switch (lb->alg) {
    case ARC_LB_CONSISTENT_HASH:
    case ARC_LB_MAGLEV:
        return arc_lb_pick_key(lb, usable, NULL, now_ms);
    case ARC_LB_ROUND_ROBIN:
        return pick_rr(lb, usable);
    case ARC_LB_WEIGHTED_ROUND_ROBIN:
        return pick_swrr(lb, usable);
    case ARC_LB_LEAST_REQUESTS:
    case ARC_LB_PEAK_EWMA:
        return pick_p2c(lb, usable, now_ms);
    }
    return -1;
}

void arc_lb_start(struct arc_lb *lb, size_t idx)
{
    ARC_ASSERT(idx < lb->n);
    lb->eps[idx].in_flight++;
}

void arc_lb_done(struct arc_lb *lb, size_t idx, uint64_t latency_us, uint64_t now_ms)
{
    ARC_ASSERT(idx < lb->n);
    struct arc_lb_ep *e = &lb->eps[idx];
    if (e->in_flight)
        e->in_flight--;
    /* The estimate is maintained for every algorithm (it is cheap and
     * useful to observe); only peak_ewma picks by it. A sample above the
     * current estimate replaces it at once, so a slowing endpoint is shed
     * immediately; lower samples pull it down with weight 1 - e^(-dt/decay),
     * so recovery is trusted only as time passes. */
    double s = (double)latency_us;
    if (s <= 0)
        s = 1;                  /* keep "has a sample" distinct from 0 = none */
    if (e->ewma_us == 0 || s >= e->ewma_us) {
        e->ewma_us = s;
    } else {
        double dt = now_ms > e->ewma_stamp_ms ? (double)(now_ms - e->ewma_stamp_ms) : 0.0;
        double w = exp(-dt / (double)lb->decay_ms);
        e->ewma_us = e->ewma_us * w + s * (1.0 - w);
    }
    e->ewma_stamp_ms = now_ms;
}
