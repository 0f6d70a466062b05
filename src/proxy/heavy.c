/*
 * Heavy hitters (rate_limits.heavy_hitters): each worker counts every
 * request's client under the prefixes it belongs to (IPv4 /32 and /24; IPv6
 * /128, /ipv6_prefix and /48) in its own count-min sketch (limit/sketch.c:
 * bounded memory however many distinct sources there are, no sharing on
 * the hot path). Once a second it halves the sketch, so a source at a
 * steady r requests/s reads about 2r just before the halving, and publishes
 * the sources whose estimate is above a sixteenth of the threshold (a
 * source may be spread over several workers) for the control thread, which
 * sums them over the workers (GET /v1/limits/heavy_hitters) and keeps those
 * at or above threshold_qps.
 *
 * Candidates: a sketch answers "how much for this key" but cannot list its
 * keys, so sources whose estimate crosses the bar are remembered in a small
 * table (HH_CAND entries; when full, the smallest is replaced).
 *
 * Action (heavy_hitters.action: reject | limit): at its tick each worker
 * also sums every worker's last publication (the registry below; the same
 * sum as the API's) and keeps the prefixes at or above threshold_qps in a
 * small hash set (the listed prefixes); a request whose client falls in one
 * of them is, before routing, answered with `status` (reject:
 * ratelimit.c's arc_px__hh_reject) or charged to heavy_hitters.limit under
 * the widest listed prefix it is in (limit: arc_px__hh_limit; the table is
 * the snapshot's, shared by the workers like a route's). Requests of a
 * blocked source are still counted, so it stays blocked while it keeps
 * sending at the threshold and is let through again within about two
 * periods after it slows down. The set is the worker's own (no sharing on
 * the hot path); the publications it reads are seqlocked.
 */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "limit/limit.h"

#include <stdlib.h>
#include <string.h>

#define HH_CAND 256
#define HH_PUB 128
#define HH_PERIOD_MS 1000
#define HH_BAR 16               /* candidates: estimate above threshold / HH_BAR */
#define HH_BLOCK 512            /* block set slots (power of two, > 2 x HH_CAND) */
#define HH_MAX_WORKERS 1024     /* node.workers' upper bound */

struct cand {
    uint64_t key;               /* 0 = free */
    struct arc_rl_hh_item it;
};

struct arc_px_hh {
    struct arc_cms cms;
    struct arc_heavy_hitters_conf conf;
    struct cand cand[HH_CAND];
    uint64_t next_ms;
    size_t n_block;
    uint64_t block[HH_BLOCK];   /* keys of blocked prefixes (0 = free), open addressing */
};

struct arc_px_hh_pub {
    _Atomic uint32_t seq;       /* odd while being written */
    uint32_t n;
    struct arc_rl_hh_item items[HH_PUB];
};

/* Every worker's publication, by worker id (set before the worker runs,
 * cleared when it is freed, after every worker has stopped). */
static _Atomic(struct arc_px_hh_pub *) registry[HH_MAX_WORKERS];
static _Atomic size_t registry_n;

static void hh_free(struct arc_px_hh *h)
{
    if (!h)
        return;
    arc_cms_dispose(&h->cms);
    free(h);
}

int arc_px__hh_fit(struct arc_worker *w)
{
    const struct arc_heavy_hitters_conf *c = &w->snap->cfg->heavy_hitters;
    if (w->hh && c->enabled && w->hh->conf.width == c->width && w->hh->conf.depth == c->depth &&
        w->hh->conf.ipv6_prefix == c->ipv6_prefix && w->hh->conf.threshold_qps == c->threshold_qps) {
        w->hh->conf = *c;               /* same sketch: the counts carry over */
        if (c->action == ARC_HH_NONE) {
            w->hh->n_block = 0;
            memset(w->hh->block, 0, sizeof(w->hh->block));
        }
        return 0;
    }
    hh_free(w->hh);
    w->hh = NULL;
    if (!c->enabled) {
        atomic_store_explicit(&w->hh_pub->seq, w->hh_pub->seq + 1, memory_order_release);
        w->hh_pub->n = 0;
        atomic_store_explicit(&w->hh_pub->seq, w->hh_pub->seq + 1, memory_order_release);
        return 0;
    }
    struct arc_px_hh *h = calloc(1, sizeof(*h));
    if (!h || arc_cms_init(&h->cms, c->width, c->depth, 0) < 0) {
        free(h);
        return -1;
    }
    h->conf = *c;
    h->next_ms = w->now_ms + HH_PERIOD_MS;
    w->hh = h;
    return 0;
}

void arc_px__hh_dispose(struct arc_worker *w)
{
    hh_free(w->hh);
    w->hh = NULL;
}

struct arc_px_hh_pub *arc_px__hh_pub_new(unsigned id)
{
    if (id >= HH_MAX_WORKERS)
        return NULL;
    struct arc_px_hh_pub *p = calloc(1, sizeof(struct arc_px_hh_pub));
    if (!p)
        return NULL;
    atomic_store(&registry[id], p);
    size_t n = atomic_load(&registry_n);
    while (n < id + 1 && !atomic_compare_exchange_weak(&registry_n, &n, id + 1))
        ;
    return p;
}

void arc_px__hh_pub_free(unsigned id, struct arc_px_hh_pub *p)
{
    if (!p)
        return;
    if (id < HH_MAX_WORKERS && atomic_load(&registry[id]) == p)
        atomic_store(&registry[id], NULL);
    free(p);
}

static uint64_t item_key(const struct arc_rl_hh_item *it)
{
    uint8_t kb[18] = { it->family, it->prefix };
    memcpy(kb + 2, it->addr, 16);
    return arc_rl_hash(kb, sizeof(kb)) | 1;
}

static void block_add(struct arc_px_hh *h, uint64_t key)
{
    if (h->n_block >= HH_BLOCK / 2)
        return;
    for (size_t i = key & (HH_BLOCK - 1);; i = (i + 1) & (HH_BLOCK - 1)) {
        if (h->block[i] == key)
            return;
        if (!h->block[i]) {
            h->block[i] = key;
            h->n_block++;
            return;
        }
    }
}

static bool block_has(const struct arc_px_hh *h, uint64_t key)
{
    for (size_t i = key & (HH_BLOCK - 1);; i = (i + 1) & (HH_BLOCK - 1)) {
        if (h->block[i] == key)
            return true;
        if (!h->block[i])
            return false;
    }
}

static void remember(struct arc_px_hh *h, uint64_t key, const struct arc_rl_hh_item *it,
                     uint32_t est)
{
    struct cand *free_c = NULL, *min_c = NULL;
    uint32_t min_est = UINT32_MAX;
    for (size_t i = 0; i < HH_CAND; i++) {
        struct cand *c = &h->cand[i];
        if (c->key == key)
            return;
        if (!c->key) {
            if (!free_c)
                free_c = c;
            continue;
        }
        uint32_t e = arc_cms_estimate(&h->cms, c->key);
        if (e < min_est) {
            min_est = e;
            min_c = c;
        }
    }
    struct cand *c = free_c ? free_c : (min_est < est ? min_c : NULL);
    if (c) {
        c->key = key;
        c->it = *it;
    }
}

/* Counts one request under a prefix; its key if that prefix is listed,
 * else 0. */
static uint64_t count(struct arc_px_hh *h, uint8_t family, const uint8_t *addr, uint8_t plen)
{
    struct arc_rl_hh_item it = { .family = family, .prefix = plen };
    size_t full = plen / 8;
    memcpy(it.addr, addr, full);
    if (plen % 8)
        it.addr[full] = (uint8_t)(addr[full] & (0xff << (8 - plen % 8)));
    uint64_t key = item_key(&it);
    uint32_t est = arc_cms_add(&h->cms, key, 1);
    /* (estimates read about twice the rate: see the top) */
    if ((double)est >= 2.0 * h->conf.threshold_qps / HH_BAR)
        remember(h, key, &it, est);
    return h->n_block && block_has(h, key) ? key : 0;
}

/* (prefixes counted narrowest first: a later listed one is wider) */
#define WIDER(k, x) do { uint64_t k_ = (x); if (k_) (k) = k_; } while (0)

uint64_t arc_px__hh_count(struct arc_worker *w, struct arc_exchange *ex)
{
    struct arc_px_hh *h = w->hh;
    const struct sockaddr *sa = arc_px__peer_addr(ex->client);
    if (!h || !sa)
        return 0;
    uint8_t kb[ARC_RL_KEY_ADDR];
    size_t n = arc_rl_key_addr(sa, 128, kb);
    uint64_t k = 0;
    if (n == 5) {
        WIDER(k, count(h, 4, kb + 1, 32));
        WIDER(k, count(h, 4, kb + 1, 24));
    } else {
        WIDER(k, count(h, 6, kb + 1, 128));
        if (h->conf.ipv6_prefix != 128 && h->conf.ipv6_prefix != 48)
            WIDER(k, count(h, 6, kb + 1, (uint8_t)h->conf.ipv6_prefix));
        WIDER(k, count(h, 6, kb + 1, 48));
    }
    return h->conf.action == ARC_HH_NONE ? 0 : k;
}

static size_t sum_pubs(struct arc_px_hh_pub *const *pubs, size_t n_pubs, double threshold,
                       struct arc_rl_hh_item *out, size_t cap);

/* The block set from every worker's last publication. */
static void rebuild_block(struct arc_px_hh *h)
{
    h->n_block = 0;
    memset(h->block, 0, sizeof(h->block));
    if (h->conf.action == ARC_HH_NONE)
        return;
    size_t n = atomic_load(&registry_n);
    struct arc_px_hh_pub **pubs = calloc(n ? n : 1, sizeof(*pubs));
    struct arc_rl_hh_item *items = calloc(HH_BLOCK / 2, sizeof(*items));
    if (pubs && items) {
        for (size_t i = 0; i < n; i++)
            pubs[i] = atomic_load(&registry[i]);
        size_t k = sum_pubs(pubs, n, h->conf.threshold_qps, items, HH_BLOCK / 2);
        for (size_t i = 0; i < k; i++)
            block_add(h, item_key(&items[i]));
    }
    free(pubs);
    free(items);
}

void arc_px__hh_tick(struct arc_worker *w)
{
    struct arc_px_hh *h = w->hh;
    if (!h || w->now_ms < h->next_ms)
        return;
    h->next_ms = w->now_ms + HH_PERIOD_MS;
    struct arc_px_hh_pub *p = w->hh_pub;
    uint32_t seq = atomic_load_explicit(&p->seq, memory_order_relaxed);
    atomic_store_explicit(&p->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    uint32_t n = 0;
    double bar = h->conf.threshold_qps / HH_BAR;
    for (size_t i = 0; i < HH_CAND; i++) {
        struct cand *c = &h->cand[i];
        if (!c->key)
            continue;
        double qps = arc_cms_estimate(&h->cms, c->key) / 2.0;
        if (qps < bar) {
            c->key = 0;                 /* quiet again: forgotten */
            continue;
        }
        if (n < HH_PUB) {
            p->items[n] = c->it;
            p->items[n].qps = qps;
            n++;
        }
    }
    p->n = n;
    atomic_store_explicit(&p->seq, seq + 2, memory_order_release);
    arc_cms_decay(&h->cms);
    rebuild_block(h);
}

static size_t read_pub(struct arc_px_hh_pub *p, struct arc_rl_hh_item *out, size_t cap)
{
    if (!p)
        return 0;
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t s1 = atomic_load_explicit(&p->seq, memory_order_acquire);
        if (s1 & 1)
            continue;
        size_t n = p->n < cap ? p->n : cap;
        memcpy(out, p->items, n * sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&p->seq, memory_order_relaxed) == s1)
            return n;
    }
    return 0;
}

static int by_qps(const void *a, const void *b)
{
    double x = ((const struct arc_rl_hh_item *)a)->qps, y = ((const struct arc_rl_hh_item *)b)->qps;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t arc_worker_heavy_hitters(struct arc_worker *w, struct arc_rl_hh_item *out, size_t cap)
{
    return read_pub(w->hh_pub, out, cap);
}

static size_t sum_pubs(struct arc_px_hh_pub *const *pubs, size_t n_workers, double threshold,
                       struct arc_rl_hh_item *out, size_t cap)
{
    struct arc_rl_hh_item *all = calloc(n_workers * HH_PUB + 1, sizeof(*all));
    struct arc_rl_hh_item *mine = calloc(HH_PUB, sizeof(*mine));
    size_t n = 0;
    for (size_t w = 0; all && mine && w < n_workers; w++) {
        size_t k = read_pub(pubs[w], mine, HH_PUB);
        for (size_t i = 0; i < k; i++) {
            size_t j;
            for (j = 0; j < n; j++)
                if (all[j].family == mine[i].family && all[j].prefix == mine[i].prefix &&
                    memcmp(all[j].addr, mine[i].addr, 16) == 0)
                    break;
            if (j == n)
                all[n++] = mine[i];
            else
                all[j].qps += mine[i].qps;
        }
    }
    if (n)
        qsort(all, n, sizeof(*all), by_qps);
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap; i++)
        if (all[i].qps >= threshold)
            out[k++] = all[i];
    free(all);
    free(mine);
    return k;
}

size_t arc_workers_heavy_hitters(struct arc_worker *const *ws, size_t n_workers, double threshold,
                                 struct arc_rl_hh_item *out, size_t cap)
{
    struct arc_px_hh_pub **pubs = calloc(n_workers ? n_workers : 1, sizeof(*pubs));
    if (!pubs)
        return 0;
    for (size_t i = 0; i < n_workers; i++)
        pubs[i] = ws[i]->hh_pub;
    size_t k = sum_pubs(pubs, n_workers, threshold, out, cap);
    free(pubs);
    return k;
}
