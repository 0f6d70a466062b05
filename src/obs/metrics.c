/*
 * Metrics shards and Prometheus exposition. See metrics.h.
 */
#include "obs/metrics.h"
#include "core/common.h"

#include <stdlib.h>

int arc_metrics_shard_init(struct arc_metrics_shard *m, size_t n_routes, size_t n_upstreams)
{
    memset(m, 0, sizeof(*m));
    m->n_routes = n_routes;
    m->n_upstreams = n_upstreams;
    size_t nu = n_upstreams ? n_upstreams : 1;
    m->requests = calloc((n_routes + 1) * 5, sizeof(arc_counter));
    m->up_requests = calloc(nu, sizeof(arc_counter));
    m->up_connect_errors = calloc(nu, sizeof(arc_counter));
    m->up_timeouts = calloc(nu, sizeof(arc_counter));
    m->up_pool_open = calloc(nu, sizeof(arc_counter));
    m->up_pool_idle = calloc(nu, sizeof(arc_counter));
    m->up_reused = calloc(nu, sizeof(arc_counter));
    if (!m->requests || !m->up_requests || !m->up_connect_errors || !m->up_timeouts ||
        !m->up_pool_open || !m->up_pool_idle || !m->up_reused) {
        arc_metrics_shard_dispose(m);
        return -1;
    }
    return 0;
}

void arc_metrics_shard_dispose(struct arc_metrics_shard *m)
{
    free(m->requests);
    free(m->up_requests);
    free(m->up_connect_errors);
    free(m->up_timeouts);
    free(m->up_pool_open);
    free(m->up_pool_idle);
    free(m->up_reused);
    memset(m, 0, sizeof(*m));
}

static const char *const err_names[ARC_ERR__COUNT] = {
    [ARC_ERR_BAD_REQUEST] = "bad_request",
    [ARC_ERR_URI_TOO_LONG] = "uri_too_long",
    [ARC_ERR_HEADERS_TOO_LARGE] = "headers_too_large",
    [ARC_ERR_NOT_IMPLEMENTED] = "not_implemented",
    [ARC_ERR_BAD_VERSION] = "bad_version",
    [ARC_ERR_NOT_FOUND] = "not_found",
    [ARC_ERR_METHOD_NOT_ALLOWED] = "method_not_allowed",
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
                      const char *const *upstream_names, size_t nu, const char *name,
                      const char *type, const char *help, size_t field_off)
{
    arc_sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t u = 0; u < nu; u++) {
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            arc_counter *arr = *(arc_counter **)((char *)sh[i] + field_off);
            s += arc_m_get(&arr[u]);
        }
        arc_sbuf_printf(o, "%s{upstream=\"", name);
        label(o, upstream_names[u]);
        arc_sbuf_printf(o, "\"} %llu\n", (unsigned long long)s);
    }
}

void arc_metrics_render(struct arc_sbuf *o, struct arc_metrics_shard *const *sh,
                        size_t n, const char *const *route_names,
                        const char *const *upstream_names)
{
    if (n == 0)
        return;
    size_t nr = sh[0]->n_routes, nu = sh[0]->n_upstreams;
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
            uint64_t v = SUM(m->requests[r * 5 + c]);
            /* Classes that never happened are omitted, except 2xx which
             * dashboards expect to exist for every configured route. */
            if (v == 0 && (c != 1 || r == nr))
                continue;
            arc_sbuf_printf(o, "arc_requests_total{route=\"");
            label(o, r < nr ? route_names[r] : "");
            arc_sbuf_printf(o, "\",class=\"%s\"} %llu\n", cls[c], (unsigned long long)v);
        }
    }

    arc_sbuf_printf(o, "# HELP arc_errors_total Locally generated error answers and failures, by cause.\n"
                       "# TYPE arc_errors_total counter\n");
    for (size_t e = 0; e < ARC_ERR__COUNT; e++)
        arc_sbuf_printf(o, "arc_errors_total{kind=\"%s\"} %llu\n", err_names[e],
                        (unsigned long long)SUM(m->errors[e]));

    up_series(o, sh, n, upstream_names, nu, "arc_upstream_requests_total", "counter",
              "Requests sent to the upstream.", offsetof(struct arc_metrics_shard, up_requests));
    up_series(o, sh, n, upstream_names, nu, "arc_upstream_reused_total", "counter",
              "Requests sent on a pooled keep-alive connection.", offsetof(struct arc_metrics_shard, up_reused));
    up_series(o, sh, n, upstream_names, nu, "arc_upstream_connect_errors_total", "counter",
              "Upstream connects that failed.", offsetof(struct arc_metrics_shard, up_connect_errors));
    up_series(o, sh, n, upstream_names, nu, "arc_upstream_timeouts_total", "counter",
              "Upstream connect, first-byte and read timeouts.", offsetof(struct arc_metrics_shard, up_timeouts));
    up_series(o, sh, n, upstream_names, nu, "arc_upstream_pool_open", "gauge",
              "Upstream connections open (busy and idle).", offsetof(struct arc_metrics_shard, up_pool_open));
    up_series(o, sh, n, upstream_names, nu, "arc_upstream_pool_idle", "gauge",
              "Idle upstream connections in the keep-alive pools.", offsetof(struct arc_metrics_shard, up_pool_idle));
}
