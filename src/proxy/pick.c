/*
 * Picking an upstream endpoint for an exchange's attempt: the worker's
 * balancer for the upstream (keyed for consistent_hash and maglev), the
 * endpoints passive health ejected and active checks marked down left out
 * (unless too few remain: panic), endpoints already tried left out on a
 * retry, and an exchange of an older config translated by endpoint
 * identity. Passive health is fed from here too (arc_px__ep_result).
 */
#include "core/log.h"
#include "proxy/proxy_int.h"
#include "upstream/active.h"

#include <stdlib.h>

int arc_px__health_sync(struct arc_worker *w, struct wup *wu)
{
    const struct arc_upstream_rt *up = wu->rt;
    if (!up)
        return 0;
    if (wu->cap < up->n_eps) {
        bool *a = calloc(up->n_eps, sizeof(*a)), *b = calloc(up->n_eps, sizeof(*b));
        if (!a || !b) {
            free(a);
            free(b);
            return -1;
        }
        free(wu->usable);
        free(wu->scratch);
        wu->usable = a;
        wu->scratch = b;
        wu->cap = up->n_eps;
    }
    wu->n_ejected = wu->n_down = 0;
    wu->next_readmit = UINT64_MAX;
    wu->active_gen = arc_active_gen();
    bool active = up->conf->active.enabled;
    for (size_t i = 0; i < up->n_eps; i++) {
        struct arc_hep *h = arc_htable_row(&w->health, up->eps[i].id);
        arc_health_readmit(h, w->now_ms);
        bool out = atomic_load_explicit(&h->state, memory_order_relaxed) == ARC_HS_EJECTED;
        bool down = active && arc_active_down(up->eps[i].id);
        wu->usable[i] = !out && !down;
        wu->n_down += down && !out;
        if (out) {
            wu->n_ejected++;
            if (h->until < wu->next_readmit)
                wu->next_readmit = h->until;
        }
    }
    return 0;
}

void arc_px__ep_result(struct arc_worker *w, const struct arc_upstream_rt *up, int ep, bool ok)
{
    const struct arc_passive_conf *pc = &up->conf->passive;
    if (!pc->enabled || ep < 0 || (size_t)ep >= up->n_eps)
        return;
    struct arc_hep *h = arc_htable_row(&w->health, up->eps[ep].id);
    enum arc_hreason r = arc_health_record(pc, h, ok, w->now_ms);
    struct wup *wu = &w->ups[up->id];
    const struct arc_upstream_rt *cur = wu->rt;
    /* Ejection is judged on the upstream as configured now (an exchange of
     * an older generation may report an endpoint it no longer has). */
    if (r == ARC_HR_NONE || !cur || !cur->conf->passive.enabled)
        return;
    if (!arc_health_may_eject(&cur->conf->passive, wu->n_ejected, cur->n_eps))
        return;
    for (size_t i = 0; i < cur->n_eps; i++) {
        if (cur->eps[i].id != up->eps[ep].id)
            continue;
        uint64_t until = arc_health_eject(&cur->conf->passive, h, r, w->now_ms);
        wu->usable[i] = false;
        wu->n_ejected++;
        if (until < wu->next_readmit)
            wu->next_readmit = until;
        arc_log(ARC_LOG_WARN, "worker %u: upstream %s: endpoint %s ejected (%s) for %llums",
                w->id, cur->conf->name, cur->eps[i].text, arc_health_reason_names[r],
                (unsigned long long)(until - w->now_ms));
        return;
    }
}

/* The endpoints a pick may choose (NULL: all): ejected ones are left out
 * unless too few remain (panic: then all are candidates again). */
static const bool *usable_mask(struct arc_worker *w, struct wup *wu)
{
    if (!wu->rt)
        return NULL;
    /* (one relaxed load per pick: active checks changed something) */
    if (wu->rt->conf->active.enabled && arc_active_gen() != wu->active_gen &&
        arc_px__health_sync(w, wu) < 0)
        return NULL;
    if (!wu->n_ejected && !wu->n_down)
        return NULL;
    if (w->now_ms >= wu->next_readmit && arc_px__health_sync(w, wu) < 0)
        return NULL;
    size_t n = wu->rt->n_eps, out = wu->n_ejected + wu->n_down;
    if (!out || arc_health_panic(wu->rt->conf->panic_threshold, n - out, n))
        return NULL;
    return wu->usable;
}

/* The hash of the request's balancing key (lb.key) for consistent_hash and
 * maglev; false when the request has none (the balancer picks at random). */
static bool lb_key(struct arc_exchange *ex, const struct arc_upstream_conf *uc, uint64_t *h)
{
    if (uc->lb != ARC_LB_CONSISTENT_HASH && uc->lb != ARC_LB_MAGLEV)
        return false;
    return arc_px__req_key(ex, uc->lb_key_by, uc->lb_key_name, h);
}

/* An endpoint for ex's next attempt: among the usable ones (passive
 * health) those not tried yet, when there are any. -1: none. */
int arc_px__pick(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_upstream_rt *up = ex->target;
    struct wup *wu = &w->ups[up->id];
    if (!wu->live)
        return -1;                      /* no endpoints (discovery: dns, no answer yet) */
    uint64_t key;
    bool has_key = lb_key(ex, up->conf, &key);
    const bool *mask = usable_mask(w, wu);
    if (ex->tried && wu->rt == up) {
        bool any = false;
        for (size_t i = 0; i < up->n_eps; i++) {
            wu->scratch[i] = (!mask || mask[i]) && !(i < 64 && (ex->tried >> i & 1));
            any = any || wu->scratch[i];
        }
        if (any)
            mask = wu->scratch;
    }
    int ep = arc_lb_pick_key(&wu->lb, mask, has_key ? &key : NULL, w->now_ms);
    if (ep < 0 || !wu->rt || wu->rt == up)
        return ep >= 0 && (size_t)ep < up->n_eps ? ep : -1;
    /* An exchange of an older config: the balancer is built for the
     * current endpoint list, so its index is translated by the endpoint's
     * identity (a reload or a DNS answer may reorder the list). An endpoint
     * the older list lacks: its index if in range (any of that list). */
    uint32_t id = (size_t)ep < wu->rt->n_eps ? wu->rt->eps[ep].id : UINT32_MAX;
    for (size_t i = 0; i < up->n_eps; i++)
        if (up->eps[i].id == id)
            return (int)i;
    return (size_t)ep < up->n_eps ? ep : -1;
}
