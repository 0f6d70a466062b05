/*
 * The rate limiter's series in the Prometheus exposition (metrics.h):
 * decisions per route, summed over the workers' shards. A route appears
 * once it has made a decision.
 */
#include "obs/metrics.h"

static uint64_t cell(const struct arc_m_table *t, size_t id, size_t col)
{
    size_t n = atomic_load_explicit(&((struct arc_m_table *)t)->n, memory_order_acquire);
    if (id >= n)
        return 0;
    arc_counter *v = atomic_load_explicit(&((struct arc_m_table *)t)->v, memory_order_acquire);
    return arc_m_get(&v[id * t->width + col]);
}

void arc_metrics_render_limits(struct arc_sbuf *o, struct arc_metrics_shard *const *sh,
                               size_t n, const struct arc_m_names *nm)
{
    static const char *const what[ARC_MRL__COUNT] = { "allowed", "rejected", "delayed" };
    arc_sbuf_printf(o, "# HELP arc_rate_limit_decisions_total Rate-limit decisions by route: "
                       "allowed, rejected (answered with the limit's status), delayed (held "
                       "by a leaky bucket, then sent on).\n"
                       "# TYPE arc_rate_limit_decisions_total counter\n");
    for (size_t r = 0; r < nm->n_routes; r++) {
        uint64_t v[ARC_MRL__COUNT] = { 0 };
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < ARC_MRL__COUNT; c++)
                v[c] += cell(&sh[i]->limits, nm->route_ids[r], c);
        if (!v[0] && !v[1] && !v[2])
            continue;
        for (size_t c = 0; c < ARC_MRL__COUNT; c++) {
            arc_sbuf_printf(o, "arc_rate_limit_decisions_total{route=\"");
            for (const char *s = nm->route_names[r]; *s; s++) {
                if (*s == '\\' || *s == '"')
                    arc_sbuf_append(o, "\\", 1);
                arc_sbuf_append(o, s, 1);
            }
            arc_sbuf_printf(o, "\",decision=\"%s\"} %llu\n", what[c],
                            (unsigned long long)v[c]);
        }
    }
}
