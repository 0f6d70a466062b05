/*
 * Metrics shards and Prometheus exposition. See metrics.h.
 */
#include "obs/metrics.h"
#include "core/common.h"

#include <stdlib.h>
#include <string.h>

int arc_metrics_shard_init(struct arc_metrics_shard *m)
{
    memset(m, 0, sizeof(*m));
    m->routes.width = 5;
    m->ups.width = ARC_MU__COUNT;
    return 0;
}

static int table_fit(struct arc_m_table *t, size_t n)
{
    size_t have = atomic_load_explicit(&t->n, memory_order_relaxed);
    if (n <= have)
        return 0;
    arc_counter *old = atomic_load_explicit(&t->v, memory_order_relaxed);
    arc_counter **retired = realloc(t->retired, (t->n_retired + 1) * sizeof(*retired));
    if (!retired)
        return -1;
    t->retired = retired;
    arc_counter *v = calloc(n * t->width, sizeof(arc_counter));
    if (!v)
        return -1;
    for (size_t i = 0; i < have * t->width; i++)
        atomic_init(&v[i], arc_m_get(&old[i]));
    if (old)
        t->retired[t->n_retired++] = old;
    atomic_store_explicit(&t->v, v, memory_order_release);
    atomic_store_explicit(&t->n, n, memory_order_release);
    return 0;
}

int arc_metrics_shard_fit(struct arc_metrics_shard *m, size_t n_routes, size_t n_ups)
{
    return table_fit(&m->routes, n_routes) < 0 || table_fit(&m->ups, n_ups) < 0 ? -1 : 0;
}

static void table_dispose(struct arc_m_table *t)
{
    for (size_t i = 0; i < t->n_retired; i++)
        free(t->retired[i]);
    free(t->retired);
    free(atomic_load_explicit(&t->v, memory_order_relaxed));
}

void arc_metrics_shard_dispose(struct arc_metrics_shard *m)
{
    table_dispose(&m->routes);
    table_dispose(&m->ups);
    memset(m, 0, sizeof(*m));
}

/* A reader's view of row `id`, column `col` (0 when the shard has no such
 * row yet): row count first, then the array it was published with. */
static uint64_t table_get(const struct arc_m_table *t, size_t id, size_t col)
{
    size_t n = atomic_load_explicit(&((struct arc_m_table *)t)->n, memory_order_acquire);
    if (id >= n)
        return 0;
    arc_counter *v = atomic_load_explicit(&((struct arc_m_table *)t)->v, memory_order_acquire);
    return arc_m_get(&v[id * t->width + col]);
}

static const char *const err_names[ARC_ERR__COUNT] = {
    [ARC_ERR_BAD_REQUEST] = "bad_request",
    [ARC_ERR_URI_TOO_LONG] = "uri_too_long",
    [ARC_ERR_HEADERS_TOO_LARGE] = "headers_too_large",
    [ARC_ERR_NOT_IMPLEMENTED] = "not_implemented",
    [ARC_ERR_BAD_VERSION] = "bad_version",
    [ARC_ERR_NOT_FOUND] = "not_found",
    [ARC_ERR_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [ARC_ERR_BODY_TOO_LARGE] = "body_too_large",
    [ARC_ERR_ROUTE_TIMEOUT] = "route_timeout",
    [ARC_ERR_PLUGIN_TRAP] = "plugin_trap",
    [ARC_ERR_PLUGIN_BUDGET] = "plugin_budget",
    [ARC_ERR_PLUGIN_UNAVAILABLE] = "plugin_unavailable",
    [ARC_ERR_CLIENT_TIMEOUT] = "client_timeout",
    [ARC_ERR_UPSTREAM_CONNECT] = "upstream_connect",
    [ARC_ERR_UPSTREAM_TIMEOUT] = "upstream_timeout",
    [ARC_ERR_UPSTREAM_BAD] = "upstream_bad_response",
    [ARC_ERR_UPSTREAM_RESET] = "upstream_reset",
    [ARC_ERR_NO_ENDPOINT] = "no_endpoint",
    [ARC_ERR_CLIENT_ABORT] = "client_abort",
};

/* Label values come from config names, which the schema restricts, but a
 * backslash or quote must still never break the exposition format. */
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

#define SUM(expr) ({ uint64_t _s = 0; for (size_t _i = 0; _i < n; _i++) { \
    const struct arc_metrics_shard *m = sh[_i]; _s += arc_m_get(&(expr)); } _s; })

static void up_series(struct arc_sbuf *o, struct arc_metrics_shard *const *sh, size_t n,
                      const struct arc_m_names *nm, enum arc_m_up col, const char *name,
                      const char *type, const char *help)
{
    arc_sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t u = 0; u < nm->n_ups; u++) {
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++)
            s += table_get(&sh[i]->ups, nm->up_ids[u], col);
        arc_sbuf_printf(o, "%s{upstream=\"", name);
        label(o, nm->up_names[u]);
        arc_sbuf_printf(o, "\"} %llu\n", (unsigned long long)s);
    }
}

void arc_metrics_render(struct arc_sbuf *o, struct arc_metrics_shard *const *sh,
                        size_t n, const struct arc_m_names *nm)
{
    if (n == 0)
        return;
    size_t nr = nm->n_routes;
    uint64_t acc = SUM(m->conn_accepted), closed = SUM(m->conn_closed);

    arc_sbuf_printf(o, "# HELP arc_connections_accepted_total Client connections accepted.\n"
                       "# TYPE arc_connections_accepted_total counter\n"
                       "arc_connections_accepted_total %llu\n", (unsigned long long)acc);
    arc_sbuf_printf(o, "# HELP arc_connections_closed_total Client connections closed.\n"
                       "# TYPE arc_connections_closed_total counter\n"
                       "arc_connections_closed_total %llu\n", (unsigned long long)closed);
    arc_sbuf_printf(o, "# HELP arc_connections_refused_total Client connections answered 503 "
                       "and closed because node.max_connections was reached.\n"
                       "# TYPE arc_connections_refused_total counter\n"
                       "arc_connections_refused_total %llu\n",
                    (unsigned long long)SUM(m->conn_refused));
    arc_sbuf_printf(o, "# HELP arc_connections_active Client connections open now.\n"
                       "# TYPE arc_connections_active gauge\n"
                       "arc_connections_active %llu\n",
                    (unsigned long long)(acc >= closed ? acc - closed : 0));
    arc_sbuf_printf(o, "# HELP arc_bytes_in_total Bytes received from clients.\n"
                       "# TYPE arc_bytes_in_total counter\narc_bytes_in_total %llu\n",
                    (unsigned long long)SUM(m->bytes_in));
    arc_sbuf_printf(o, "# HELP arc_bytes_out_total Bytes sent to clients.\n"
                       "# TYPE arc_bytes_out_total counter\narc_bytes_out_total %llu\n",
                    (unsigned long long)SUM(m->bytes_out));

    arc_sbuf_printf(o, "# HELP arc_requests_total Requests answered, by route and status class.\n"
                       "# TYPE arc_requests_total counter\n");
    static const char *const cls[5] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
    for (size_t r = 0; r <= nr; r++) {
        for (size_t c = 0; c < 5; c++) {
            uint64_t v = 0;
            for (size_t i = 0; i < n; i++)
                v += r < nr ? table_get(&sh[i]->routes, nm->route_ids[r], c)
                            : arc_m_get(&sh[i]->no_route[c]);
            /* Classes that never happened are omitted, except 2xx which
             * dashboards expect to exist for every configured route. */
            if (v == 0 && (c != 1 || r == nr))
                continue;
            arc_sbuf_printf(o, "arc_requests_total{route=\"");
            label(o, r < nr ? nm->route_names[r] : "");
            arc_sbuf_printf(o, "\",class=\"%s\"} %llu\n", cls[c], (unsigned long long)v);
        }
    }

    arc_sbuf_printf(o, "# HELP arc_errors_total Locally generated error answers and failures, by cause.\n"
                       "# TYPE arc_errors_total counter\n");
    for (size_t e = 0; e < ARC_ERR__COUNT; e++)
        arc_sbuf_printf(o, "arc_errors_total{kind=\"%s\"} %llu\n", err_names[e],
                        (unsigned long long)SUM(m->errors[e]));

    up_series(o, sh, n, nm, ARC_MU_REQUESTS, "arc_upstream_requests_total", "counter",
              "Requests sent to the upstream.");
    up_series(o, sh, n, nm, ARC_MU_REUSED, "arc_upstream_reused_total", "counter",
              "Requests sent on a connection already open (a pooled keep-alive "
              "connection, or a stream on an HTTP/2 connection).");
    up_series(o, sh, n, nm, ARC_MU_CONNECT_ERRORS, "arc_upstream_connect_errors_total", "counter",
              "Upstream connects that failed.");
    up_series(o, sh, n, nm, ARC_MU_TIMEOUTS, "arc_upstream_timeouts_total", "counter",
              "Upstream connect, first-byte and read timeouts.");
    up_series(o, sh, n, nm, ARC_MU_POOL_OPEN, "arc_upstream_pool_open", "gauge",
              "Upstream connections open (busy and idle).");
    up_series(o, sh, n, nm, ARC_MU_POOL_IDLE, "arc_upstream_pool_idle", "gauge",
              "Idle upstream connections in the keep-alive pools.");
}
