/*
 * Count-min sketch (Cormode & Muthukrishnan 2005): `depth` rows of `width`
 * counters; an item adds to one counter per row, chosen by a hash from a
 * pairwise-independent family, and its estimate is the smallest of its
 * counters. It never underestimates, and with width = ceil(e/ε) and
 * depth = ceil(ln(1/δ)) it overestimates by more than ε·N (N = total added)
 * with probability at most δ.
 *
 * Hashes: h_i(x) = ((a_i·x + b_i) mod p) mod width with p = 2^61 - 1 and
 * a_i, b_i drawn at random (a_i != 0): the classic Carter–Wegman family,
 * pairwise independent over keys below p (keys are 64-bit hashes reduced
 * mod p first).
 *
 * Decay: arc_cms_decay halves every counter (and N), so a source's count
 * follows its recent rate: at a steady r per decay period it converges to
 * 2r.
 */
#include "limit/limit.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define P61 ((1ull << 61) - 1)

typedef unsigned __int128 u128;

static inline uint64_t mod_p(u128 x)
{
    uint64_t lo = (uint64_t)(x & P61), hi = (uint64_t)(x >> 61);
    uint64_t r = lo + hi;
    while (r >= P61)
        r -= P61;
    return r;
}

static inline uint64_t h(const struct arc_cms *s, uint32_t row, uint64_t x)
{
    return mod_p((u128)s->a[row] * x + s->b[row]) % s->width;
}

int arc_cms_init(struct arc_cms *s, uint32_t width, uint32_t depth, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    if (width == 0 || depth == 0 || depth > ARC_CMS_MAX_DEPTH)
        return -1;
    s->width = width;
    s->depth = depth;
    s->c = calloc((size_t)width * depth, sizeof(*s->c));
    if (!s->c)
        return -1;
    uint64_t x = seed;
    if (!x && getrandom(&x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x))
        x = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < depth; i++) {
        /* splitmix64 for the parameters */
        uint64_t z;
        do {
            z = (x += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            z ^= z >> 31;
        } while ((z & P61) == 0 || (z & P61) == P61);
        s->a[i] = z & P61;
        z = (x += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        s->b[i] = (z ^ (z >> 31)) % P61;
    }
    return 0;
}

void arc_cms_dispose(struct arc_cms *s)
{
    free(s->c);
    s->c = NULL;
}

uint32_t arc_cms_add(struct arc_cms *s, uint64_t key, uint32_t n)
{
    uint64_t x = key % P61;
    uint32_t est = UINT32_MAX;
    for (uint32_t i = 0; i < s->depth; i++) {
        uint32_t *c = &s->c[(size_t)i * s->width + h(s, i, x)];
        *c = *c > UINT32_MAX - n ? UINT32_MAX : *c + n;
        if (*c < est)
            est = *c;
    }
    s->total += n;
    return est;
}

uint32_t arc_cms_estimate(const struct arc_cms *s, uint64_t key)
{
    uint64_t x = key % P61;
    uint32_t est = UINT32_MAX;
    for (uint32_t i = 0; i < s->depth; i++) {
        uint32_t c = s->c[(size_t)i * s->width + h(s, i, x)];
        if (c < est)
            est = c;
    }
    return est;
}

void arc_cms_decay(struct arc_cms *s)
{
    size_t n = (size_t)s->width * s->depth;
    for (size_t i = 0; i < n; i++)
        s->c[i] >>= 1;
    s->total >>= 1;
}
