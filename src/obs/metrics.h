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
    ARC_ERR_BODY_TOO_LARGE,     /* 413: request body over the route's max_body */
    ARC_ERR_ROUTE_TIMEOUT,      /* 504 (or a cut response): the route's total timeout */
    ARC_ERR_PLUGIN_TRAP,        /* a plugin call trapped (500 if fail_closed) */
    ARC_ERR_PLUGIN_BUDGET,      /* a plugin call ran past its CPU budget (500 if fail_closed) */
    ARC_ERR_PLUGIN_UNAVAILABLE, /* no plugin instance (rebuild failing, backing off) */
    ARC_ERR__COUNT
};

typedef _Atomic uint64_t arc_counter;

/* TLS handshake results: 0 = ok, then one slot per failure reason
 * (= ARC_TLS_FAIL__COUNT, checked where they are counted). */
#define ARC_M_TLS_RESULTS 12
/* HTTP/2 flood-guard reasons (= ARC_H2_BREACH__COUNT, checked where counted). */
#define ARC_M_H2_BREACHES 8

/* Counter rows indexed by a stable identity (config/ident.h): one row per
 * route or upstream id, `width` counters each. The owning worker grows the
 * table (arc_metrics_shard_fit) while the admin thread may be reading it:
 * a grown table is a new array (the old one is kept until dispose, so a
 * reader holding it stays valid), published pointer first, row count
 * second. */
struct arc_m_table {
    _Atomic(arc_counter *) v;               /* [n * width] */
    _Atomic size_t n;                       /* rows */
    size_t width;
    arc_counter **retired;                  /* earlier arrays, freed at dispose */
    size_t n_retired;
};

/* Per-upstream counters (the columns of the upstream table). */
enum arc_m_up {
    ARC_MU_REQUESTS,                        /* requests sent to the upstream */
    ARC_MU_REUSED,                          /* ... on a connection that was already open */
    ARC_MU_CONNECT_ERRORS,
    ARC_MU_TIMEOUTS,
    ARC_MU_POOL_OPEN,                       /* gauge: connections open */
    ARC_MU_POOL_IDLE,                       /* gauge: idle in the keep-alive pool */
    ARC_MU__COUNT
};

struct arc_metrics_shard {
    arc_counter conn_accepted, conn_closed;
    arc_counter conn_refused;               /* answered 503 over node.max_connections */
    arc_counter tls_handshakes[2][ARC_M_TLS_RESULTS]; /* [downstream, upstream][result] */
    arc_counter h2_flood[ARC_M_H2_BREACHES];  /* HTTP/2 connections cut by a flood guard */
    arc_counter bytes_in, bytes_out;        /* client side, bytes received / sent */
    arc_counter errors[ARC_ERR__COUNT];
    arc_counter no_route[5];                /* requests that matched no route, by class */
    struct arc_m_table routes;              /* [route id][status class] */
    struct arc_m_table ups;                 /* [upstream id][enum arc_m_up] */
};

/* An empty shard (no rows yet): -1 on out of memory. */
int arc_metrics_shard_init(struct arc_metrics_shard *m);
/* Grows the tables to at least n_routes route rows and n_ups upstream
 * rows (never shrinks; counts are kept). Thread: the owning worker. -1 on
 * out of memory (the tables are unchanged). */
int arc_metrics_shard_fit(struct arc_metrics_shard *m, size_t n_routes, size_t n_ups);
void arc_metrics_shard_dispose(struct arc_metrics_shard *m);

/* The counter `col` of row `id` (the owner's view: the current array). */
static inline arc_counter *arc_m_cell(struct arc_m_table *t, size_t id, size_t col)
{
    return &atomic_load_explicit(&t->v, memory_order_relaxed)[id * t->width + col];
}
static inline arc_counter *arc_m_up(struct arc_metrics_shard *m, uint32_t up_id, enum arc_m_up c)
{
    return arc_m_cell(&m->ups, up_id, c);
}

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

static inline int arc_m_class(int status)
{
    int cls = status / 100;
    return cls < 1 || cls > 5 ? 5 : cls;
}

/* Counts one finished request of route `route_id` (ARC_M_NO_ROUTE: none). */
#define ARC_M_NO_ROUTE UINT32_MAX
static inline void arc_m_request(struct arc_metrics_shard *m, uint32_t route_id, int status)
{
    size_t c = (size_t)arc_m_class(status) - 1;
    arc_m_add(route_id == ARC_M_NO_ROUTE ? &m->no_route[c] : arc_m_cell(&m->routes, route_id, c), 1);
}

/* What the exposition names: the ids and names of the current config's
 * routes and upstreams (rows of ids no longer configured are not shown). */
struct arc_m_names {
    const uint32_t *route_ids;
    const char *const *route_names;
    size_t n_routes;
    const uint32_t *up_ids;
    const char *const *up_names;
    size_t n_ups;
};

/**
 * Renders every shard, summed, as Prometheus text format 0.0.4, for the
 * routes and upstreams `names` lists (a row a shard does not have yet
 * counts 0). Thread: any (reads shards that their workers write).
 */
void arc_metrics_render(struct arc_sbuf *out, struct arc_metrics_shard *const *shards,
                        size_t n_shards, const struct arc_m_names *names);

#endif
