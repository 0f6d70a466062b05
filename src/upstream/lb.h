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
 *   and jumps up at once to a larger sample (the "peak"); endpoints with no
 *   sample yet cost 0 so they get tried.
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

struct arc_lb {
    enum arc_lb_algorithm alg;
    struct arc_lb_ep *eps;      /* owned */
    size_t n;
    uint64_t decay_ms;
    uint32_t rr_next;           /* private */
    uint64_t rng;               /* private: xorshift state, never 0 */
};

/* Returns 0, or -ENOMEM (-EINVAL if n == 0). n >= 1. `seed` varies per
 * worker. weights may be NULL (all 1); a 0 weight is taken as 1. */
int arc_lb_init(struct arc_lb *lb, enum arc_lb_algorithm alg,
                const uint32_t *weights, size_t n, uint64_t decay_ms, uint64_t seed);
void arc_lb_dispose(struct arc_lb *lb);

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
