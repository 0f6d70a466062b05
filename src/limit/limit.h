/**
 * Local rate limiting: the algorithms (pure functions of a 64-bit state
 * and a clock), and the per-limit key tables that every worker of the node
 * shares.
 *
 * Algorithms (enum arc_rl_algo), each a step `state, now → state', verdict`:
 * - GCRA: the state is the theoretical arrival time (TAT, ns). A request is
 *   admitted when max(TAT, now) - now <= (burst - 1)·T, T = 1/qps; then
 *   TAT = max(TAT, now) + T.
 * - token bucket: tokens (milli-tokens) and the time of the last refill
 *   (ms); refilled at qps, capacity burst, one token per request.
 * - leaky bucket: GCRA's schedule used for shaping: a request beyond the
 *   burst is delayed until its place in the queue comes (at most
 *   max_delay), not rejected; beyond max_delay it is rejected.
 * - fixed window: a count per window of `window` ms (windows aligned on the
 *   monotonic clock, so every worker agrees where they start).
 * - sliding window: the current window's count plus the previous window's
 *   weighted by how much of it still overlaps the sliding interval.
 * Only admitted requests are counted: a client that keeps hammering is not
 * locked out longer than its own admitted traffic explains.
 *
 * Tables: one per (route, limit definition), found again by arc_rl_table_get
 * when a reload keeps the definition, so the state survives reloads. Keys
 * are 64-bit keyed hashes (SipHash-1-3, a per-process random key: a client
 * cannot aim its keys at one bucket); two keys with the same hash share a
 * limit (probability ~n²/2⁶⁵). Cells are {tag, state} pairs updated
 * together with one 16-byte compare-and-swap, so workers need no lock; a
 * key may live in one of two buckets of ARC_RL_WAYS cells (the emptier one
 * when it arrives), and a new key takes an empty cell, else one
 * whose state is at rest (the key has fully recovered: forgetting it loses
 * nothing), else the cell closest to rest (counted as an eviction).
 *
 * Thread: arc_rl_table_get on the control thread (where snapshots are
 * built); arc_rl_charge / arc_rl_refund from any worker; arc_rl_table_unref
 * from any thread.
 */
#ifndef ARC_LIMIT_LIMIT_H
#define ARC_LIMIT_LIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/common.h"

enum arc_rl_algo {
    ARC_RL_GCRA,
    ARC_RL_TOKEN_BUCKET,
    ARC_RL_LEAKY_BUCKET,
    ARC_RL_FIXED_WINDOW,
    ARC_RL_SLIDING_WINDOW,
};

/* Largest count a window may allow (the sliding window packs two counts
 * in 20 bits each), and the largest burst. */
#define ARC_RL_MAX_WINDOW_LIMIT 1048575u
#define ARC_RL_MAX_BURST 1000000u
#define ARC_RL_NS 1000000000ull

/* A compiled limit. Build with arc_rl_rule_init. */
struct arc_rl_rule {
    enum arc_rl_algo algo;
    uint64_t mqps;              /* qps in thousandths (>= 1) */
    uint32_t burst;             /* bucket algorithms (>= 1) */
    uint64_t window_ms;         /* window algorithms */
    uint64_t max_delay_ns;      /* leaky bucket */
    uint64_t key_def;           /* what keys are (opaque to this module): part of the
                                   definition, so a changed key starts a new table */
    /* derived */
    uint64_t t_ns;              /* emission interval 1/qps */
    uint32_t limit;             /* window algorithms: requests per window */
};

/* qps > 0; burst >= 1 (bucket algorithms); window_ms > 0 (windows). */
void arc_rl_rule_init(struct arc_rl_rule *r, enum arc_rl_algo algo, double qps, uint32_t burst,
                      uint64_t window_ms, uint64_t max_delay_ms);

enum arc_rl_verdict { ARC_RL_ALLOW, ARC_RL_DELAY, ARC_RL_REJECT };

struct arc_rl_decision {
    enum arc_rl_verdict verdict;
    uint64_t delay_ns;          /* DELAY: wait this long, then go */
    uint64_t retry_ns;          /* REJECT: earliest time from now a request could pass */
    uint64_t remaining;         /* requests that could pass right now after this one */
    uint64_t reset_ns;          /* time from now until the full quota is back */
};

/**
 * One request against `state` (0 = a key never seen) at `now_ns` (a
 * monotonic clock). Returns the state to store (equal to `state` when
 * nothing changes, e.g. a rejection) and fills *d. Pure.
 */
uint64_t arc_rl_step(const struct arc_rl_rule *r, uint64_t state, uint64_t now_ns,
                     struct arc_rl_decision *d);
/* Gives back a delayed request's place (the client left while it waited). */
uint64_t arc_rl_unstep(const struct arc_rl_rule *r, uint64_t state, uint64_t now_ns);
/* Time from now_ns until `state` is at rest (holds no information any
 * more: forgetting it is the same as keeping it); 0 = at rest now. */
uint64_t arc_rl_rest_in(const struct arc_rl_rule *r, uint64_t state, uint64_t now_ns);

/* ------------------------------------------------------------ tables */

#define ARC_RL_WAYS 8

struct arc_rl_cell {
    uint64_t tag;               /* key hash | 1; 0 = empty */
    uint64_t state;
} __attribute__((aligned(16)));

struct arc_rl_table {
    struct arc_rl_rule rule;
    size_t max_keys;
    size_t n_buckets;
    struct arc_rl_cell *cells;  /* [n_buckets * ARC_RL_WAYS] */
    size_t bytes;               /* memory of cells */
    _Atomic uint64_t evictions; /* keys dropped before they were at rest */
    /* registry (table.c) */
    _Atomic uint32_t refs;
    uint32_t route_id;
    struct arc_rl_table *next;
};

/**
 * The table of route `route_id` for `rule` with room for `max_keys` keys:
 * the existing one when a snapshot already uses this exact definition
 * (state carried over a reload), else a new, empty one. One reference for
 * the caller; NULL on out of memory.
 */
struct arc_rl_table *arc_rl_table_get(uint32_t route_id, const struct arc_rl_rule *rule,
                                      size_t max_keys);
void arc_rl_table_unref(struct arc_rl_table *t);
/* A table outside the registry (tests, benchmarks). */
struct arc_rl_table *arc_rl_table_new(const struct arc_rl_rule *rule, size_t max_keys);

/* Charges one request of key `h` (arc_rl_hash). Lock-free. */
void arc_rl_charge(struct arc_rl_table *t, uint64_t h, uint64_t now_ns,
                   struct arc_rl_decision *d);
/* Undoes a DELAY decision of key `h` (leaky bucket) whose client left. */
void arc_rl_refund(struct arc_rl_table *t, uint64_t h, uint64_t now_ns);
/* Keys whose state is not at rest at now_ns (a walk of the table; for
 * tests and the bench, not the hot path). */
size_t arc_rl_table_live(const struct arc_rl_table *t, uint64_t now_ns);

/* Keyed 64-bit hash of a key (SipHash-1-3 under a per-process random key). */
uint64_t arc_rl_hash(const void *p, size_t len);

/* ------------------------------------------------------------ keys (key.c) */

/* An address as key bytes: IPv4, and IPv4-mapped IPv6, by the 4 address
 * bytes; IPv6 by its first `v6_prefix` bits (one host rotating addresses
 * inside its /64 stays one key). Returns the length written (<= 17). */
#define ARC_RL_KEY_ADDR 17
size_t arc_rl_key_addr(const struct sockaddr *sa, uint32_t v6_prefix,
                       uint8_t out[ARC_RL_KEY_ADDR]);
/* One X-Forwarded-For entry ("1.2.3.4", "2001:db8::1", "[2001:db8::1]",
 * blanks around allowed) as an address; false if it is not one. */
bool arc_rl_parse_ip(const char *p, size_t n, struct sockaddr_storage *ss);
typedef bool (*arc_rl_trusted_fn)(const void *ud, const struct sockaddr *sa);
/* The client behind trusted proxies: the X-Forwarded-For field values (in
 * the order received) walked from the right, i.e. from the hop nearest to
 * us; each trusted hop is skipped, the first untrusted address is the
 * client. An entry that is not an address stops the walk: the last good
 * hop stands. *out starts as the peer and is left as the answer. */
void arc_rl_xff_client(const struct arc_str *values, size_t n, arc_rl_trusted_fn trusted,
                       const void *ud, struct sockaddr_storage *out);
/* The value of cookie `name` in Cookie field values ({NULL, 0}: absent). */
struct arc_str arc_rl_cookie(const struct arc_str *values, size_t n, const char *name);

/* ------------------------------------------------------------ count-min sketch (sketch.c) */

/* Counters of `depth` pairwise-independent rows of `width`: estimates never
 * below the truth, above it by more than ε·total with probability <= δ when
 * width >= e/ε and depth >= ln(1/δ). Single writer; not thread-safe. */
#define ARC_CMS_MAX_DEPTH 16
struct arc_cms {
    uint32_t width, depth;
    uint32_t *c;                /* [depth][width] */
    uint64_t a[ARC_CMS_MAX_DEPTH], b[ARC_CMS_MAX_DEPTH];
    uint64_t total;             /* N: everything added (halved by decay) */
};
/* seed 0: random hash parameters. -1 on bad sizes or out of memory. */
int arc_cms_init(struct arc_cms *s, uint32_t width, uint32_t depth, uint64_t seed);
void arc_cms_dispose(struct arc_cms *s);
/* Adds n to `key` (a 64-bit hash); returns its new estimate. */
uint32_t arc_cms_add(struct arc_cms *s, uint64_t key, uint32_t n);
uint32_t arc_cms_estimate(const struct arc_cms *s, uint64_t key);
/* Halves every counter (and total). */
void arc_cms_decay(struct arc_cms *s);

/* A source prefix and its estimated rate (heavy hitters, proxy/heavy.c). */
struct arc_rl_hh_item {
    uint8_t family;             /* 4 or 6 */
    uint8_t prefix;             /* bits */
    uint8_t addr[16];           /* network bytes, host bits zero */
    double qps;
};

#endif
