/*
 * Per-limit key tables shared by the workers of a node (limit.h), and the
 * registry that hands the same table to every snapshot whose limit has the
 * same definition.
 *
 * Concurrency: a cell is {tag, state}, 16 bytes, changed only by a 16-byte
 * compare-and-swap (cmpxchg16b), so a worker can never apply key A's
 * update to a cell another worker just gave to key B. Reads are two plain
 * 8-byte loads that may tear; a torn read only makes the CAS fail, and the
 * CAS hands back the real value to retry with. A new key is first claimed
 * (its cell set to {tag, 0}), then charged through the same path as a key
 * that was found, so two workers meeting a new key at once charge one cell
 * (see arc_rl_charge). A second cell for one key could only appear if
 * another key came to rest between the two workers' looks at the bucket
 * (their clocks differ by nanoseconds); lookups then use the first.
 */
#include "limit/limit.h"
#include "core/common.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

typedef unsigned __int128 u128;

/* ------------------------------------------------------------ hash */

static uint64_t g_k0, g_k1;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void key_init(void)
{
    uint64_t k[2] = { 0x736f6d6570736575ull, 0x646f72616e646f6dull };
    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        /* (no entropy yet: still a valid hash, only predictable) */
    }
    g_k0 = k[0];
    g_k1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); } while (0)

/* SipHash-1-3 (one compression round, three finalisation rounds). */
uint64_t arc_rl_hash(const void *data, size_t len)
{
    pthread_once(&g_key_once, key_init);
    const uint8_t *p = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ g_k0, v1 = 0x646f72616e646f6dull ^ g_k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ g_k0, v3 = 0x7465646279746573ull ^ g_k1;
    size_t n = len & ~(size_t)7;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[n + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ------------------------------------------------------------ cells */

static inline u128 pack(uint64_t tag, uint64_t state)
{
    return ((u128)state << 64) | tag;
}

static inline bool cas(struct arc_rl_cell *c, uint64_t tag, uint64_t state, uint64_t ntag,
                       uint64_t nstate, uint64_t *cur_tag, uint64_t *cur_state)
{
    u128 old = pack(tag, state);
    u128 got = __sync_val_compare_and_swap((u128 *)c, old, pack(ntag, nstate));
    *cur_tag = (uint64_t)got;
    *cur_state = (uint64_t)(got >> 64);
    return got == old;
}

static inline void load(const struct arc_rl_cell *c, uint64_t *tag, uint64_t *state)
{
    *tag = __atomic_load_n(&c->tag, __ATOMIC_RELAXED);
    *state = __atomic_load_n(&c->state, __ATOMIC_RELAXED);
}

/* A key may live in either of two buckets (the power of two choices: a new
 * key goes to the emptier one), so buckets overflow only at far higher
 * loads than with one choice. Both come from the hash: its high half, and
 * its low half remixed. */
static inline struct arc_rl_cell *bucket(const struct arc_rl_table *t, uint64_t h, int which)
{
    uint64_t x = which ? (uint32_t)((h & 0xffffffffu) * 0x9e3779b97f4a7c15ull >> 32) : h >> 32;
    size_t b = (size_t)(((u128)x * t->n_buckets) >> 32);
    return &t->cells[b * ARC_RL_WAYS];
}

struct arc_rl_table *arc_rl_table_new(const struct arc_rl_rule *rule, size_t max_keys)
{
    struct arc_rl_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->rule = *rule;
    t->max_keys = max_keys ? max_keys : 1;
    /* A quarter more cells than keys: with 8-way buckets, max_keys live
     * keys then fit with almost no bucket overflowing (bench/limit_keys). */
    size_t cells = t->max_keys + t->max_keys / 4 + ARC_RL_WAYS;
    t->n_buckets = cells / ARC_RL_WAYS;
    t->bytes = t->n_buckets * ARC_RL_WAYS * sizeof(struct arc_rl_cell);
    /* calloc: a large table is fresh zeroed pages from the kernel, so it
     * costs memory only where keys landed (malloc's 16-byte alignment is
     * what cmpxchg16b needs). */
    t->cells = calloc(t->n_buckets * ARC_RL_WAYS, sizeof(struct arc_rl_cell));
    if (!t->cells) {
        free(t);
        return NULL;
    }
    ARC_ASSERT(((uintptr_t)t->cells & 15) == 0);
    atomic_init(&t->refs, 1);
    return t;
}

static void table_free(struct arc_rl_table *t)
{
    free(t->cells);
    free(t);
}

/* Cell of key `tag` in its two buckets, or NULL. */
static struct arc_rl_cell *find(struct arc_rl_cell *const b[2], uint64_t tag, uint64_t *state)
{
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < ARC_RL_WAYS; i++) {
            uint64_t tg, st;
            load(&b[k][i], &tg, &st);
            if (tg == tag) {
                *state = st;
                return &b[k][i];
            }
        }
    return NULL;
}

/* Where a new key goes: the bucket with more free cells (empty or at
 * rest), its first free cell; with none free, the cell closest to rest. */
static struct arc_rl_cell *victim(const struct arc_rl_table *t, struct arc_rl_cell *const b[2],
                                  uint64_t tag, uint64_t now, uint64_t *vtag, uint64_t *vst,
                                  uint64_t *rest)
{
    struct arc_rl_cell *best[2] = { NULL, NULL };
    uint64_t btag[2] = { 0, 0 }, bst[2] = { 0, 0 }, brest[2] = { UINT64_MAX, UINT64_MAX };
    int nfree[2] = { 0, 0 };
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < ARC_RL_WAYS; i++) {
            uint64_t tg, st;
            load(&b[k][i], &tg, &st);
            if (tg == tag)
                return NULL;            /* claimed meanwhile: charge it */
            uint64_t r = tg ? arc_rl_rest_in(&t->rule, st, now) : 0;
            nfree[k] += r == 0;
            if (r < brest[k]) {
                brest[k] = r;
                best[k] = &b[k][i];
                btag[k] = tg;
                bst[k] = st;
            }
        }
    int k = nfree[1] > nfree[0] || (nfree[0] == 0 && brest[1] < brest[0]);
    *vtag = btag[k];
    *vst = bst[k];
    *rest = brest[k];
    return best[k];
}

/* Bounded retries. A CAS fails only when another worker's succeeded in
 * between, so running out takes thousands of other decisions on this very
 * cell during one of ours; then the request is refused (never admitted
 * without being recorded: a limit must not be exceeded). */
#define MAX_TRIES 4096

void arc_rl_charge(struct arc_rl_table *t, uint64_t h, uint64_t now, struct arc_rl_decision *d)
{
    uint64_t tag = h | 1;
    struct arc_rl_cell *const b[2] = { bucket(t, h, 0), bucket(t, h, 1) };
    for (int tries = 0; tries < MAX_TRIES; tries++) {
        uint64_t st;
        struct arc_rl_cell *c = find(b, tag, &st);
        if (c) {
            for (; tries < MAX_TRIES; tries++) {
                uint64_t ns = arc_rl_step(&t->rule, st, now, d), ctag, cst;
                if (ns == st)
                    return;             /* nothing to store (a rejection) */
                if (cas(c, tag, st, tag, ns, &ctag, &cst))
                    return;
                if (ctag != tag)
                    break;              /* the cell went to another key: look again */
                st = cst;
            }
            continue;
        }
        /* A new key: an empty cell, else one at rest, else the one closest
         * to rest (its key loses its state: counted). */
        /* The key is claimed with a fresh state ({tag, 0}, which counts as
         * at rest) and then charged like any found key. Two workers
         * claiming it at once choose the same cell (the choice depends only
         * on what they see, and a fresh claim looks like the free cell it
         * was), so one CAS fails and that worker finds the key; a worker
         * that sees the key already claimed charges it. */
        uint64_t vtag, vst, best, ctag, cst;
        struct arc_rl_cell *v = victim(t, b, tag, now, &vtag, &vst, &best);
        if (!v || !cas(v, vtag, vst, tag, 0, &ctag, &cst))
            continue;
        if (best)
            atomic_fetch_add_explicit(&t->evictions, 1, memory_order_relaxed);
        /* A worker whose look at the buckets straddled our claim (and other
         * changes) may have claimed another cell for the key at the same
         * time: the later claim sees the earlier and gives its cell back. */
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < ARC_RL_WAYS; i++) {
                uint64_t tg, s2;
                load(&b[k][i], &tg, &s2);
                if (tg == tag && &b[k][i] != v) {
                    cas(v, tag, 0, 0, 0, &ctag, &cst);
                    k = 2;
                    break;
                }
            }
    }
    *d = (struct arc_rl_decision){ .verdict = ARC_RL_REJECT, .retry_ns = t->rule.t_ns,
                                   .reset_ns = t->rule.t_ns };
}

void arc_rl_refund(struct arc_rl_table *t, uint64_t h, uint64_t now)
{
    uint64_t tag = h | 1;
    struct arc_rl_cell *const b[2] = { bucket(t, h, 0), bucket(t, h, 1) };
    uint64_t st;
    struct arc_rl_cell *c = find(b, tag, &st);
    for (int tries = 0; c && tries < MAX_TRIES; tries++) {
        uint64_t ns = arc_rl_unstep(&t->rule, st, now), ctag, cst;
        if (ns == st || cas(c, tag, st, tag, ns, &ctag, &cst) || ctag != tag)
            return;
        st = cst;
    }
}

size_t arc_rl_table_live(const struct arc_rl_table *t, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_buckets * ARC_RL_WAYS; i++) {
        uint64_t tg, st;
        load(&t->cells[i], &tg, &st);
        if (tg && arc_rl_rest_in(&t->rule, st, now))
            n++;
    }
    return n;
}

/* ------------------------------------------------------------ registry */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct arc_rl_table *g_tables;

static bool same_rule(const struct arc_rl_rule *a, const struct arc_rl_rule *b)
{
    return a->algo == b->algo && a->mqps == b->mqps && a->burst == b->burst &&
           a->window_ms == b->window_ms && a->max_delay_ns == b->max_delay_ns &&
           a->key_def == b->key_def;
}

struct arc_rl_table *arc_rl_table_get(uint32_t route_id, const struct arc_rl_rule *rule,
                                      size_t max_keys)
{
    pthread_mutex_lock(&g_lock);
    struct arc_rl_table *t;
    for (t = g_tables; t; t = t->next)
        if (t->route_id == route_id && t->max_keys == max_keys && same_rule(&t->rule, rule)) {
            atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
            break;
        }
    if (!t && (t = arc_rl_table_new(rule, max_keys))) {
        t->route_id = route_id;
        t->next = g_tables;
        g_tables = t;
    }
    pthread_mutex_unlock(&g_lock);
    return t;
}

void arc_rl_table_unref(struct arc_rl_table *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&g_lock);
    bool last = atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1;
    if (last) {
        for (struct arc_rl_table **pp = &g_tables; *pp; pp = &(*pp)->next)
            if (*pp == t) {
                *pp = t->next;
                break;
            }
    }
    pthread_mutex_unlock(&g_lock);
    if (last)
        table_free(t);
}
