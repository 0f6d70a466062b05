/**
 * Load balancers over one upstream's endpoints.
 *
 * One `struct arc_lb` per upstream per worker: it is mutable and owned by
 * that worker's thread (no atomics). Endpoints are addressed by index.
 *
 * - round_robin: cycles through usable endpoints, ignoring weights.
 * - weighted_round_robin: smooth weighted round robin (nginx's algorithm:
 *   each pick adds weight to every current, picks the max, subtracts total),
 *   so weights 5,1,1 give a a b a c a a, not a a a a a b c.
 * - least_requests: power of two random choices by in-flight count divided
 *   by weight (ties → the lower in-flight); all endpoints scanned when n <= 4.
 * - peak_ewma: power of two choices by cost = ewma_latency * (in_flight + 1)
 *   / weight, where the latency EWMA decays with time constant `decay_ms`
 *   and jumps up at once to a larger sample (the "peak"). An endpoint with
 *   no sample yet is charged a penalty: the highest estimate among those
 *   that have one (as if it were the slowest known), so a fresh endpoint is
 *   tried but cannot swallow a burst the way a zero cost would let it.
 * - consistent_hash: a ketama ring of `vnodes` points per endpoint of
 *   average weight (points are hashes of the endpoint's name, so every
 *   worker and every node builds the same ring and removing one endpoint
 *   moves only the keys that were on its points). A key maps to the first
 *   point at or after its hash; unusable endpoints are walked past.
 * - maglev: Google's Maglev lookup table (NSDI '16) of a fixed prime size
 *   (65537 by default; it must not depend on the endpoint count, or every
 *   key would move when one is added): each endpoint fills slots along its own permutation
 *   (offset, skip from its name's hashes) in turn, so the table is split
 *   almost exactly by weight and a removal remaps about 1/n of the keys.
 *   An unusable endpoint's slot falls through to the next slots.
 * The hash balancers pick at random when the request has no key.
 */
#ifndef ARC_UPSTREAM_LB_H
#define ARC_UPSTREAM_LB_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "config/config.h"

struct arc_lb_ep {
    uint32_t weight;            /* >= 1 */
    int64_t current;            /* private: swrr state */
    uint32_t in_flight;         /* requests started and not done */
    double ewma_us;             /* peak_ewma latency estimate, 0 = no sample */
    uint64_t ewma_stamp_ms;     /* private */
};

struct arc_lb_point {           /* a ketama ring point */
    uint64_t hash;
    uint32_t ep;
};

struct arc_lb {
    enum arc_lb_algorithm alg;
    struct arc_lb_ep *eps;      /* owned */
    size_t n;
    uint64_t decay_ms;
    uint32_t rr_next;           /* private */
    uint64_t rng;               /* private: xorshift state, never 0 */
    struct arc_lb_point *ring;  /* consistent_hash: sorted by hash, owned */
    size_t n_ring;
    uint32_t *table;            /* maglev: slot -> endpoint, owned */
    uint32_t table_size;        /* prime */
};

/* Upper bound on ring points / table slots of one balancer (the config
 * checks virtual_nodes * endpoints against it). */
#define ARC_LB_MAX_SLOTS (1u << 21)

/* Returns 0, or -ENOMEM (-EINVAL if n == 0). n >= 1. `seed` varies per
 * worker. weights may be NULL (all 1); a 0 weight is taken as 1. */
int arc_lb_init(struct arc_lb *lb, enum arc_lb_algorithm alg,
                const uint32_t *weights, size_t n, uint64_t decay_ms, uint64_t seed);
void arc_lb_dispose(struct arc_lb *lb);

/* consistent_hash / maglev: builds the ring (vnodes points per endpoint of
 * average weight) or the table (table_size slots, a prime > n) from the
 * endpoints' names (stable identities, e.g. "10.0.0.1:80") and weights.
 * Call after arc_lb_init; a no-op for the other algorithms. 0, -ENOMEM,
 * or -EINVAL (over ARC_LB_MAX_SLOTS, or a table_size that is not a prime
 * above n). */
int arc_lb_build_hash(struct arc_lb *lb, const char *const *names, uint32_t vnodes,
                      uint32_t table_size);
/* True if v is prime (for the config's table_size check). */
bool arc_lb_is_prime(uint32_t v);

/* The 64-bit hash keys and ring points use (FNV-1a, then a full mix). */
uint64_t arc_lb_hash(const void *p, size_t n);

/* arc_lb_pick with a request key: `key` is its arc_lb_hash, or NULL when the
 * request has none (hash balancers then pick at random; the others ignore
 * the key). */
int arc_lb_pick_key(struct arc_lb *lb, const bool *usable, const uint64_t *key,
                    uint64_t now_ms);

/**
 * Picks an endpoint index among those with usable[i] true (usable may be
 * NULL = all usable). Returns -1 if none is usable. Does not change
 * in_flight: call arc_lb_start when the request is really sent there.
 */
int arc_lb_pick(struct arc_lb *lb, const bool *usable, uint64_t now_ms);

void arc_lb_start(struct arc_lb *lb, size_t idx);
/* A request on idx finished (success or not) after latency_us. */
void arc_lb_done(struct arc_lb *lb, size_t idx, uint64_t latency_us, uint64_t now_ms);

#endif
