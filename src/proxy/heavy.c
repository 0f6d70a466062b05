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

struct cand {
    uint64_t key;               /* 0 = free */
    struct arc_rl_hh_item it;
};

struct arc_px_hh {
    struct arc_cms cms;
    struct arc_heavy_hitters_conf conf;
    struct cand cand[HH_CAND];
    uint64_t next_ms;
};

struct arc_px_hh_pub {
    _Atomic uint32_t seq;       /* odd while being written */
    uint32_t n;
    struct arc_rl_hh_item items[HH_PUB];
};

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
    if (w->hh && c->enabled && memcmp(&w->hh->conf, c, sizeof(*c)) == 0)
        return 0;                       /* unchanged: the counts carry over */
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

struct arc_px_hh_pub *arc_px__hh_pub_new(void)
{
    return calloc(1, sizeof(struct arc_px_hh_pub));
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

static void count(struct arc_px_hh *h, uint8_t family, const uint8_t *addr, uint8_t plen)
{
    struct arc_rl_hh_item it = { .family = family, .prefix = plen };
    size_t full = plen / 8;
    memcpy(it.addr, addr, full);
    if (plen % 8)
        it.addr[full] = (uint8_t)(addr[full] & (0xff << (8 - plen % 8)));
    uint8_t kb[18] = { family, plen };
    memcpy(kb + 2, it.addr, 16);
    uint64_t key = arc_rl_hash(kb, sizeof(kb)) | 1;
    uint32_t est = arc_cms_add(&h->cms, key, 1);
    /* (estimates read about twice the rate: see the top) */
    if ((double)est >= 2.0 * h->conf.threshold_qps / HH_BAR)
        remember(h, key, &it, est);
}

void arc_px__hh_count(struct arc_worker *w, struct arc_exchange *ex)
{
    struct arc_px_hh *h = w->hh;
    const struct sockaddr *sa = arc_px__peer_addr(ex->client);
    if (!h || !sa)
        return;
    uint8_t kb[ARC_RL_KEY_ADDR];
    size_t n = arc_rl_key_addr(sa, 128, kb);
    if (n == 5) {
        count(h, 4, kb + 1, 32);
        count(h, 4, kb + 1, 24);
    } else {
        count(h, 6, kb + 1, 128);
        if (h->conf.ipv6_prefix != 128 && h->conf.ipv6_prefix != 48)
            count(h, 6, kb + 1, (uint8_t)h->conf.ipv6_prefix);
        count(h, 6, kb + 1, 48);
    }
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
}

size_t arc_worker_heavy_hitters(struct arc_worker *w, struct arc_rl_hh_item *out, size_t cap)
{
    struct arc_px_hh_pub *p = w->hh_pub;
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

size_t arc_workers_heavy_hitters(struct arc_worker *const *ws, size_t n_workers, double threshold,
                                 struct arc_rl_hh_item *out, size_t cap)
{
    struct arc_rl_hh_item *all = calloc(n_workers * HH_PUB + 1, sizeof(*all));
    struct arc_rl_hh_item *mine = calloc(HH_PUB, sizeof(*mine));
    size_t n = 0;
    for (size_t w = 0; all && mine && w < n_workers; w++) {
        size_t k = arc_worker_heavy_hitters(ws[w], mine, HH_PUB);
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
