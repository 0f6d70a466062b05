/**
 * Per-worker metrics shards and their Prometheus text exposition.
 *
 * Each worker owns one shard and is its only writer, so counters are bumped
 * with a relaxed load + store (no locked instruction on the hot path). The
 * control thread reads every shard with relaxed loads when /metrics is
 * scraped and sums them; a scrape may see one worker a few increments
 * ahead of another, never a torn value.
 */
#ifndef ARC_OBS_METRICS_H
#define ARC_OBS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sbuf.h"

/* Locally generated answers and connection failures, by cause. */
enum arc_err_kind {
    ARC_ERR_BAD_REQUEST,        /* 400 */
    ARC_ERR_URI_TOO_LONG,       /* 414 */
    ARC_ERR_HEADERS_TOO_LARGE,  /* 431 */
    ARC_ERR_NOT_IMPLEMENTED,    /* 501 */
    ARC_ERR_BAD_VERSION,        /* 505 */
    ARC_ERR_NOT_FOUND,          /* 404 no route */
    ARC_ERR_METHOD_NOT_ALLOWED, /* 405 */
    ARC_ERR_CLIENT_TIMEOUT,     /* 408 or close on read timeout */
    ARC_ERR_UPSTREAM_CONNECT,   /* 502 refused/unreachable */
    ARC_ERR_UPSTREAM_TIMEOUT,   /* 504 connect/ttfb/read timeout */
    ARC_ERR_UPSTREAM_BAD,       /* 502 malformed response */
    ARC_ERR_UPSTREAM_RESET,     /* 502 upstream closed before a full response */
    ARC_ERR_NO_ENDPOINT,        /* 503 */
    ARC_ERR_CLIENT_ABORT,       /* client closed or reset the connection mid-exchange */
    ARC_ERR__COUNT
};

typedef _Atomic uint64_t arc_counter;

/* TLS handshake results: 0 = ok, then one slot per failure reason
 * (= ARC_TLS_FAIL__COUNT, checked where they are counted). */
#define ARC_M_TLS_RESULTS 12
/* HTTP/2 flood-guard reasons (= ARC_H2_BREACH__COUNT, checked where counted). */
#define ARC_M_H2_BREACHES 8

struct arc_metrics_shard {
    arc_counter conn_accepted, conn_closed;
    arc_counter conn_refused;               /* answered 503 over node.max_connections */
    arc_counter tls_handshakes[2][ARC_M_TLS_RESULTS]; /* [downstream, upstream][result] */
    arc_counter h2_flood[ARC_M_H2_BREACHES];  /* HTTP/2 connections cut by a flood guard */
    arc_counter bytes_in, bytes_out;        /* client side, bytes received / sent */
    arc_counter errors[ARC_ERR__COUNT];
    size_t n_routes, n_upstreams;
    arc_counter *requests;                  /* [(n_routes + 1) * 5]: last row = no route */
    arc_counter *up_requests;               /* [n_upstreams] */
    arc_counter *up_connect_errors;         /* [n_upstreams] */
    arc_counter *up_timeouts;               /* [n_upstreams] */
    arc_counter *up_pool_open;              /* [n_upstreams] gauge: up conns open */
    arc_counter *up_pool_idle;              /* [n_upstreams] gauge: idle in pool */
    arc_counter *up_reused;                 /* [n_upstreams] requests on a pooled conn */
};

int arc_metrics_shard_init(struct arc_metrics_shard *m, size_t n_routes, size_t n_upstreams);
void arc_metrics_shard_dispose(struct arc_metrics_shard *m);

static inline void arc_m_add(arc_counter *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}
static inline void arc_m_sub(arc_counter *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - v,
                          memory_order_relaxed);
}
static inline uint64_t arc_m_get(const arc_counter *c)
{
    return atomic_load_explicit((arc_counter *)c, memory_order_relaxed);
}

/* Counts one finished request for route `route` (n_routes = no route). */
static inline void arc_m_request(struct arc_metrics_shard *m, size_t route, int status)
{
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    arc_m_add(&m->requests[route * 5 + (size_t)(cls - 1)], 1);
}

/**
 * Renders every shard, summed, as Prometheus text format 0.0.4.
 * route_names[n_routes] and upstream_names[n_upstreams] label the series.
 */
void arc_metrics_render(struct arc_sbuf *out, struct arc_metrics_shard *const *shards,
                        size_t n_shards, const char *const *route_names,
                        const char *const *upstream_names);

#endif
