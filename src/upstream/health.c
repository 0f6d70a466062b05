/*
 * Passive outlier ejection (see health.h). Per endpoint:
 *
 *   HEALTHY ──consecutive_failures, or error rate over the window──▶ EJECTED
 *   EJECTED ──ejection_time x ejections in a row (capped) elapsed──▶ HEALTHY
 *
 * The caller (src/proxy/upstream.c) decides whether an ejection may happen
 * (max_ejection_percent) and keeps the balancers' usable masks in step.
 */
#include "upstream/health.h"

#include <stdlib.h>
#include <string.h>

#include "config/snapshot.h"
#include "core/sbuf.h"
#include "upstream/active.h"

const char *const arc_health_reason_names[ARC_HR__COUNT] = {
    [ARC_HR_NONE] = "none",
    [ARC_HR_CONSECUTIVE] = "consecutive_failures",
    [ARC_HR_ERROR_RATE] = "error_rate",
};

int arc_htable_fit(struct arc_htable *t, size_t n)
{
    size_t have = atomic_load_explicit(&t->n, memory_order_relaxed);
    if (n <= have)
        return 0;
    struct arc_hep *old = atomic_load_explicit(&t->v, memory_order_relaxed);
    struct arc_hep *v = calloc(n, sizeof(*v));
    if (!v)
        return -1;
    struct arc_hep **r = NULL;
    if (old) {
        r = realloc(t->retired, (t->n_retired + 1) * sizeof(*r));
        if (!r) {
            free(v);
            return -1;
        }
        t->retired = r;
        /* (only this thread writes the rows: a plain copy is a snapshot) */
        memcpy(v, old, have * sizeof(*v));
        t->retired[t->n_retired++] = old;
    }
    /* Array first, row count second: a reader that sees n rows sees an
     * array at least that long. */
    atomic_store_explicit(&t->v, v, memory_order_release);
    atomic_store_explicit(&t->n, n, memory_order_release);
    return 0;
}

void arc_htable_dispose(struct arc_htable *t)
{
    free(atomic_load_explicit(&t->v, memory_order_relaxed));
    for (size_t i = 0; i < t->n_retired; i++)
        free(t->retired[i]);
    free(t->retired);
    memset(t, 0, sizeof(*t));
}

bool arc_health_get(const struct arc_htable *t, size_t id, struct arc_health_view *out)
{
    struct arc_htable *tt = (struct arc_htable *)t;
    size_t n = atomic_load_explicit(&tt->n, memory_order_acquire);
    if (id >= n)
        return false;
    struct arc_hep *h = &atomic_load_explicit(&tt->v, memory_order_acquire)[id];
    out->state = (enum arc_hstate)atomic_load_explicit(&h->state, memory_order_relaxed);
    out->reason = (enum arc_hreason)atomic_load_explicit(&h->reason, memory_order_relaxed);
    for (size_t r = 0; r < ARC_HR__COUNT; r++)
        out->ejections[r] = atomic_load_explicit(&h->ejections[r], memory_order_relaxed);
    return true;
}

/* Moves the fixed windows forward to now. */
static void roll(const struct arc_passive_conf *pc, struct arc_hep *h, uint64_t now)
{
    uint64_t win = pc->window ? pc->window : 1;
    if (now < h->win_start + win)
        return;
    if (now < h->win_start + 2 * win) {
        h->prev_n = h->cur_n;
        h->prev_fail = h->cur_fail;
        h->win_start += win;
    } else {
        h->prev_n = h->prev_fail = 0;
        h->win_start = now;
    }
    h->cur_n = h->cur_fail = 0;
}

enum arc_hreason arc_health_record(const struct arc_passive_conf *pc, struct arc_hep *h,
                                   bool ok, uint64_t now_ms)
{
    if (atomic_load_explicit(&h->state, memory_order_relaxed) == ARC_HS_EJECTED)
        return ARC_HR_NONE;
    roll(pc, h, now_ms);
    h->cur_n++;
    if (ok) {
        h->consec = 0;
        return ARC_HR_NONE;
    }
    h->cur_fail++;
    h->consec++;
    if (pc->consecutive_failures && h->consec >= pc->consecutive_failures)
        return ARC_HR_CONSECUTIVE;
    if (pc->error_rate_threshold > 0) {
        /* The previous window counts by the share of it still inside the
         * sliding window that ends now. */
        uint64_t win = pc->window ? pc->window : 1;
        double keep = 1.0 - (double)(now_ms - h->win_start) / (double)win;
        if (keep < 0)
            keep = 0;
        double n = h->cur_n + keep * h->prev_n, f = h->cur_fail + keep * h->prev_fail;
        if (n >= pc->min_requests && n > 0 && f / n >= pc->error_rate_threshold)
            return ARC_HR_ERROR_RATE;
    }
    return ARC_HR_NONE;
}

uint64_t arc_health_eject(const struct arc_passive_conf *pc, struct arc_hep *h,
                          enum arc_hreason r, uint64_t now_ms)
{
    /* Back in service for as long as the last ejection lasted: the next
     * ejection starts the series again. */
    if (h->mult && now_ms - h->readmitted >= h->last_len)
        h->mult = 0;
    if (h->mult < 1000)
        h->mult++;
    uint64_t len = pc->ejection_time * h->mult;
    if (len > pc->max_ejection_time)
        len = pc->max_ejection_time;
    h->last_len = len;
    h->until = now_ms + len;
    h->consec = 0;
    h->cur_n = h->cur_fail = h->prev_n = h->prev_fail = 0;
    h->win_start = now_ms;
    atomic_store_explicit(&h->reason, (uint8_t)r, memory_order_relaxed);
    atomic_store_explicit(&h->ejections[r],
                          atomic_load_explicit(&h->ejections[r], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->state, ARC_HS_EJECTED, memory_order_relaxed);
    return h->until;
}

bool arc_health_readmit(struct arc_hep *h, uint64_t now_ms)
{
    if (atomic_load_explicit(&h->state, memory_order_relaxed) != ARC_HS_EJECTED ||
        now_ms < h->until)
        return false;
    h->readmitted = now_ms;
    h->consec = 0;
    h->win_start = now_ms;
    atomic_store_explicit(&h->state, ARC_HS_HEALTHY, memory_order_relaxed);
    return true;
}

/* Label values: upstream names are restricted by the schema and endpoint
 * texts are addresses, but a quote or backslash must never break the
 * format. */
static void label(struct arc_sbuf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            arc_sbuf_append(o, "\\", 1);
        if (*s == '\n') {
            arc_sbuf_append(o, "\\n", 2);
            continue;
        }
        arc_sbuf_append(o, s, 1);
    }
}

static void series(struct arc_sbuf *o, const char *name, const struct arc_upstream_rt *u,
                   size_t e)
{
    arc_sbuf_printf(o, "%s{upstream=\"", name);
    label(o, u->conf->name);
    arc_sbuf_printf(o, "\",endpoint=\"");
    label(o, u->eps[e].text);
    arc_sbuf_printf(o, "\"");
}

void arc_health_render(struct arc_sbuf *o, const struct arc_htable *const *tabs, size_t n,
                       const struct arc_snapshot *s)
{
    arc_sbuf_printf(o, "# HELP arc_upstream_endpoint_ejected Workers that have the endpoint "
                       "ejected by passive health now (each worker judges by its own "
                       "traffic).\n# TYPE arc_upstream_endpoint_ejected gauge\n");
    for (size_t i = 0; i < s->n_ups; i++) {
        const struct arc_upstream_rt *u = &s->ups[i];
        if (!u->conf->passive.enabled)
            continue;
        for (size_t e = 0; e < u->n_eps; e++) {
            uint64_t k = 0;
            struct arc_health_view v;
            for (size_t t = 0; t < n; t++)
                k += arc_health_get(tabs[t], u->eps[e].id, &v) && v.state == ARC_HS_EJECTED;
            series(o, "arc_upstream_endpoint_ejected", u, e);
            arc_sbuf_printf(o, "} %llu\n", (unsigned long long)k);
        }
    }
    arc_sbuf_printf(o, "# HELP arc_upstream_endpoint_active_down Endpoint down by its active "
                       "health checks (1) or up (0).\n# TYPE arc_upstream_endpoint_active_down "
                       "gauge\n");
    for (size_t i = 0; i < s->n_ups; i++) {
        const struct arc_upstream_rt *u = &s->ups[i];
        if (!u->conf->active.enabled)
            continue;
        for (size_t e = 0; e < u->n_eps; e++) {
            series(o, "arc_upstream_endpoint_active_down", u, e);
            arc_sbuf_printf(o, "} %d\n", arc_active_down(u->eps[e].id) ? 1 : 0);
        }
    }
    arc_sbuf_printf(o, "# HELP arc_upstream_endpoint_ejections_total Passive-health "
                       "ejections, by rule.\n# TYPE arc_upstream_endpoint_ejections_total "
                       "counter\n");
    for (size_t i = 0; i < s->n_ups; i++) {
        const struct arc_upstream_rt *u = &s->ups[i];
        if (!u->conf->passive.enabled)
            continue;
        for (size_t e = 0; e < u->n_eps; e++) {
            uint64_t k[ARC_HR__COUNT] = { 0 };
            struct arc_health_view v;
            for (size_t t = 0; t < n; t++)
                if (arc_health_get(tabs[t], u->eps[e].id, &v))
                    for (size_t r = 1; r < ARC_HR__COUNT; r++)
                        k[r] += v.ejections[r];
            for (size_t r = 1; r < ARC_HR__COUNT; r++) {
                series(o, "arc_upstream_endpoint_ejections_total", u, e);
                arc_sbuf_printf(o, ",reason=\"%s\"} %llu\n", arc_health_reason_names[r],
                                (unsigned long long)k[r]);
            }
        }
    }
}
