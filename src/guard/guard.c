/*
 * The L7 guards' shared pieces: the node-wide per-address table, the
 * receive-rate window and the trip log. Where each guard is checked (accept,
 * a head's first byte, each receive, the header deadline) is in
 * src/proxy/guard_hooks.c; see guard.h for the table's layout and why it
 * needs neither a lock nor a locked instruction per accept.
 */
#include "guard/guard.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct cell {
    _Atomic uint32_t conns, incomplete;
    _Atomic uint32_t hs_sec, hs_n;      /* handshakes counted in second hs_sec */
};

/* A worker's block: ARC_GUARD_HASHES rows of g_slots cells, row-major. */
struct rows {
    uint32_t slots;
    struct cell c[];
};

static struct rows *_Atomic g_rows[ARC_GUARD_MAX_WORKERS];
static _Atomic unsigned g_n_rows;      /* 1 + highest attached id */
static uint64_t g_seed[2];
/* Cells per row (a power of two), fixed by the first attach: every block
 * has the same layout, so one key's cells are at the same place in each. */
static uint32_t g_slots;

static inline struct cell *cell_at(struct rows *r, int h, uint16_t slot)
{
    return &r->c[(size_t)h * g_slots + slot];
}

uint32_t arc_guard_slots_for(uint32_t want)
{
    uint32_t n = 1;
    while (n < want && n < ARC_GUARD_MAX_SLOTS)
        n <<= 1;
    return n;
}

static const char *const names[ARC_GR__COUNT] = {
    [ARC_GR_HEADERS_TIMEOUT] = "headers_timeout",
    [ARC_GR_MIN_RATE_HEAD] = "min_recv_rate_head",
    [ARC_GR_MIN_RATE_BODY] = "min_recv_rate_body",
    [ARC_GR_MAX_INCOMPLETE_PER_IP] = "max_incomplete_per_ip",
    [ARC_GR_MAX_CONNECTIONS_PER_IP] = "max_connections_per_ip",
    [ARC_GR_TLS_HANDSHAKE_RATE] = "tls_handshake_rate",
    [ARC_GR_TLS_HANDSHAKE_BUDGET] = "tls_handshake_budget",
};

const char *arc_guard_reason_name(enum arc_guard_reason r)
{
    return (unsigned)r < ARC_GR__COUNT ? names[r] : "unknown";
}

int arc_guard_attach(unsigned id, uint32_t slots)
{
    if (id >= ARC_GUARD_MAX_WORKERS)
        return -1;
    slots = arc_guard_slots_for(slots ? slots : ARC_GUARD_SLOTS);
    if (!g_slots)
        g_slots = slots;
    else if (g_slots != slots)
        return -1;                      /* (restart-only: never on a running node) */
    if (!g_seed[0] && !g_seed[1]) {
        if (getrandom(g_seed, sizeof(g_seed), 0) != (ssize_t)sizeof(g_seed)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            g_seed[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull;
            g_seed[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
        }
        g_seed[0] |= 1;
    }
    if (atomic_load_explicit(&g_rows[id], memory_order_acquire))
        return 0;
    /* calloc: a block this size is fresh zeroed pages, so only the cells
     * in use cost memory. */
    struct rows *r =
        calloc(1, sizeof(*r) + (size_t)ARC_GUARD_HASHES * g_slots * sizeof(struct cell));
    if (!r)
        return -1;
    r->slots = g_slots;
    atomic_store_explicit(&g_rows[id], r, memory_order_release);
    unsigned n = atomic_load(&g_n_rows);
    while (n < id + 1 && !atomic_compare_exchange_weak(&g_n_rows, &n, id + 1))
        ;
    return 0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

void arc_guard_key_of(const struct sockaddr *sa, unsigned v6_prefix, struct arc_guard_key *key)
{
    uint64_t hi = 0, lo = 0;
    memset(key, 0, sizeof(*key));
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        uint32_t a;
        memcpy(&a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        lo = 0xffff00000000ull | ntohl(a);
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(b, mapped, 12) == 0) {
            lo = 0xffff00000000ull | ((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                                      (uint32_t)b[14] << 8 | b[15]);
        } else {
            for (int i = 0; i < 8; i++)
                hi = hi << 8 | b[i];
            for (int i = 8; i < 16; i++)
                lo = lo << 8 | b[i];
            unsigned p = v6_prefix > 128 ? 128 : v6_prefix;
            if (p <= 64) {
                lo = 0;
                hi = p == 0 ? 0 : hi & (~0ull << (64 - p));
            } else if (p < 128) {
                lo &= ~0ull << (128 - p);
            }
            hi ^= 0x8000000000000001ull;  /* (IPv6 keys never equal IPv4 ones) */
        }
    } else {
        return;
    }
    uint64_t h1 = mix(hi ^ mix(lo ^ g_seed[0]));
    uint64_t h2 = mix(lo ^ mix(hi ^ g_seed[1]));
    uint32_t mask = (g_slots ? g_slots : ARC_GUARD_SLOTS) - 1;
    key->slot[0] = (uint16_t)(h1 & mask);
    key->slot[1] = (uint16_t)(h2 & mask);
    key->valid = true;
}

static _Atomic uint32_t *col_of(struct cell *c, enum arc_guard_col col)
{
    return col == ARC_GC_CONNS ? &c->conns : &c->incomplete;
}

uint32_t arc_guard_count(const struct arc_guard_key *key, enum arc_guard_col col)
{
    if (!key->valid)
        return 0;
    unsigned n = atomic_load_explicit(&g_n_rows, memory_order_acquire);
    uint32_t best = UINT32_MAX;
    for (int h = 0; h < ARC_GUARD_HASHES; h++) {
        uint32_t sum = 0;
        for (unsigned w = 0; w < n; w++) {
            struct rows *r = atomic_load_explicit(&g_rows[w], memory_order_acquire);
            if (r)
                sum += atomic_load_explicit(col_of(cell_at(r, h, key->slot[h]), col),
                                            memory_order_relaxed);
        }
        if (sum < best)
            best = sum;
    }
    return best;
}

static void add(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col, uint32_t d)
{
    struct rows *r = id < ARC_GUARD_MAX_WORKERS
                         ? atomic_load_explicit(&g_rows[id], memory_order_relaxed) : NULL;
    if (!key->valid || !r)
        return;
    for (int h = 0; h < ARC_GUARD_HASHES; h++) {
        _Atomic uint32_t *v = col_of(cell_at(r, h, key->slot[h]), col);
        /* Single writer: a load and a store, no read-modify-write. */
        atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + d,
                              memory_order_relaxed);
    }
}

void arc_guard_inc(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col)
{
    add(id, key, col, 1);
}

void arc_guard_dec(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col)
{
    add(id, key, col, (uint32_t)-1);
}

bool arc_guard_admit(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col,
                     uint32_t cap)
{
    if (!key->valid)
        return true;
    /* Count this one first, then read the node-wide sum: of two workers
     * admitting at the same instant, at least one reads the other's store
     * (the fence orders each one's store before its loads), so the sum a
     * cap is checked against is never short. Checking first and counting
     * after let both pass (each read the other's old count): a cap could
     * be exceeded by one per other worker. Now the race can only refuse
     * early, which is the side a guard should err on. */
    add(id, key, col, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (arc_guard_count(key, col) <= cap)
        return true;
    add(id, key, col, (uint32_t)-1);
    return false;
}

void arc_guard_add(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col, int32_t d)
{
    add(id, key, col, (uint32_t)d);     /* (modular: a negative d subtracts) */
}

uint32_t arc_guard_hs_count(const struct arc_guard_key *key, uint32_t sec)
{
    if (!key->valid)
        return 0;
    unsigned n = atomic_load_explicit(&g_n_rows, memory_order_acquire);
    uint32_t best = UINT32_MAX;
    for (int h = 0; h < ARC_GUARD_HASHES; h++) {
        uint32_t sum = 0;
        for (unsigned w = 0; w < n; w++) {
            struct rows *r = atomic_load_explicit(&g_rows[w], memory_order_acquire);
            if (!r)
                continue;
            struct cell *c = cell_at(r, h, key->slot[h]);
            /* (a writer may be between its two stores: at worst one
             * handshake is missed or counted against the old second) */
            if (atomic_load_explicit(&c->hs_sec, memory_order_relaxed) == sec)
                sum += atomic_load_explicit(&c->hs_n, memory_order_relaxed);
        }
        if (sum < best)
            best = sum;
    }
    return best;
}

void arc_guard_hs_add(unsigned id, const struct arc_guard_key *key, uint32_t sec)
{
    struct rows *r = id < ARC_GUARD_MAX_WORKERS
                         ? atomic_load_explicit(&g_rows[id], memory_order_relaxed) : NULL;
    if (!key->valid || !r)
        return;
    for (int h = 0; h < ARC_GUARD_HASHES; h++) {
        struct cell *c = cell_at(r, h, key->slot[h]);
        if (atomic_load_explicit(&c->hs_sec, memory_order_relaxed) != sec) {
            atomic_store_explicit(&c->hs_n, 0, memory_order_relaxed);
            atomic_store_explicit(&c->hs_sec, sec, memory_order_relaxed);
        }
        atomic_store_explicit(&c->hs_n, atomic_load_explicit(&c->hs_n, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
}

void arc_guard_rate_start(struct arc_guard_rate *g, uint64_t now_ms)
{
    g->start_ms = now_ms;
    g->bytes = 0;
}

bool arc_guard_rate_feed(struct arc_guard_rate *g, uint64_t bytes, uint64_t now_ms,
                         uint32_t min_bps, uint64_t window_ms)
{
    g->bytes += bytes;
    if (min_bps == 0 || now_ms < g->start_ms + window_ms)
        return true;
    uint64_t elapsed = now_ms - g->start_ms;
    /* bytes / (elapsed / 1000) < min_bps, without dividing */
    if (g->bytes * 1000 < (uint64_t)min_bps * elapsed)
        return false;
    arc_guard_rate_start(g, now_ms);
    return true;
}

void arc_guard_reset(void)
{
    for (unsigned i = 0; i < ARC_GUARD_MAX_WORKERS; i++)
        free(atomic_exchange(&g_rows[i], NULL));
    atomic_store(&g_n_rows, 0);
    g_slots = 0;
}

#define LOG_EVERY_MS 10000

void arc_guard_log_trip(struct arc_guard_log *l, unsigned worker, enum arc_guard_reason r,
                        const struct sockaddr *peer, uint64_t now_ms)
{
    if ((unsigned)r >= ARC_GR__COUNT)
        return;
    l->held[r]++;
    if (l->last_ms[r] && now_ms < l->last_ms[r] + LOG_EVERY_MS)
        return;
    char ip[INET6_ADDRSTRLEN] = "unknown";
    if (peer && peer->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, ip, sizeof(ip));
    else if (peer && peer->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, ip, sizeof(ip));
    arc_log(ARC_LOG_WARN, "worker %u: guard %s tripped %llu time%s%s (last client %s)", worker,
            names[r], (unsigned long long)l->held[r], l->held[r] == 1 ? "" : "s",
            l->last_ms[r] ? " in the last 10s" : "", ip);
    l->held[r] = 0;
    l->last_ms[r] = now_ms ? now_ms : 1;
}
