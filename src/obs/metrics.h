/**
 * Per-worker metrics shards and their Prometheus text exposition.
 *
 * Each worker owns one shard and is its only writer, so counters and
 * histogram buckets are bumped with a relaxed load + store (no locked
 * instruction on the hot path). The control thread reads every shard with
 * relaxed loads when /metrics is scraped and sums them; a scrape may see one
 * worker a few increments ahead of another, never a torn value.
 *
 * Shards are cache-line aligned (struct arc_metrics_shard is _Alignas(64),
 * and every row array is allocated on a 64-byte boundary and rounded up to
 * whole lines), so two workers never write the same cache line.
 *
 * Label sets are bounded by construction: routes, upstreams, endpoints and
 * listeners are config names (endpoint: its configured address); methods are
 * the nine RFC methods plus OTHER; protocols h1/h2; status codes are a
 * node-wide table of the (code, method, protocol) series each route has seen,
 * at most `status_series` per route, later ones counted under code="other".
 * Hosts, paths and client addresses never become labels.
 */
#ifndef ARC_OBS_METRICS_H
#define ARC_OBS_METRICS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
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
    ARC_ERR_PLUGIN_TIMEOUT,     /* a paused request not continued in time (504 if fail_closed) */
    ARC_ERR__COUNT
};
/* "bad_request", ... (label values of arc_errors_total{kind}). */
const char *arc_m_err_name(enum arc_err_kind k);

typedef _Atomic uint64_t arc_counter;

/* TLS handshake results: 0 = ok, then one slot per failure reason
 * (= ARC_TLS_FAIL__COUNT, checked where they are counted). */
#define ARC_M_TLS_RESULTS 12
/* HTTP/2 flood-guard reasons (= ARC_H2_BREACH__COUNT, checked where counted). */
#define ARC_M_H2_BREACHES 8
/* L7 guard trip reasons (= ARC_GR__COUNT of guard/guard.h, checked where counted). */
#define ARC_M_GUARD_REASONS 7

/* ------------------------------------------------------------ layout */

/* Request methods as a bounded label: the ARC_M_* bits of config.h in bit
 * order (GET = bit 0 ... PATCH = bit 8), then OTHER. */
enum { ARC_MM__KNOWN = 9, ARC_MM_OTHER = 9, ARC_MM__COUNT = 10 };
enum arc_m_proto { ARC_MP_H1, ARC_MP_H2, ARC_MP__COUNT };

/* Histograms, kept per route and per upstream. */
enum arc_m_hist {
    ARC_MH_DURATION,            /* whole exchange: head parsed .. ended */
    ARC_MH_CONNECT,             /* upstream connect (new connections only) */
    ARC_MH_TTFB,                /* upstream attempt began .. response head */
    ARC_MH_UPSTREAM,            /* upstream attempt began .. exchange ended */
    ARC_MH_REQ_SIZE,            /* request body bytes */
    ARC_MH_RESP_SIZE,           /* response body bytes */
    ARC_MH__COUNT
};
#define ARC_M_MAX_BUCKETS 32

/* Node-wide metric layout, fixed for the life of the process (the config
 * keys behind it are restart-only): set once by arc_metrics_setup before
 * the first shard is made; defaults otherwise. */
struct arc_m_conf {
    bool histograms;                        /* observability.histograms.enabled */
    uint32_t n_dur, n_size;                 /* bucket upper bounds (ascending) */
    uint64_t dur_ns[ARC_M_MAX_BUCKETS];
    uint64_t size[ARC_M_MAX_BUCKETS];
    uint32_t status_series;                 /* per route, before code="other" */
};
/* The defaults (documented in docs/configuration.md). */
void arc_metrics_conf_default(struct arc_m_conf *c);
/* Fixes the layout; -1 if a shard already exists with another one. */
int arc_metrics_setup(const struct arc_m_conf *c);
const struct arc_m_conf *arc_metrics_conf(void);

/* Counter rows indexed by a stable identity (config/ident.h): one row per
 * route, upstream, endpoint or listener, `width` counters each. The owning
 * worker grows the table (arc_metrics_shard_fit) while the admin thread may
 * be reading it: a grown table is a new array (the old one is kept until
 * dispose, so a reader holding it stays valid), published pointer first,
 * row count second. */
struct arc_m_table {
    _Atomic(arc_counter *) v;               /* [n * width], 64-byte aligned */
    _Atomic size_t n;                       /* rows */
    size_t width;
    arc_counter **retired;                  /* earlier arrays, freed at dispose */
    size_t n_retired;
};

/* Per-upstream counters (the first columns of the upstream table; the
 * histograms follow). */
enum arc_m_up {
    ARC_MU_REQUESTS,                        /* requests sent to the upstream */
    ARC_MU_REUSED,                          /* ... on a connection that was already open */
    ARC_MU_CONNECT_ERRORS,
    ARC_MU_TIMEOUTS,
    ARC_MU_POOL_OPEN,                       /* gauge: connections open */
    ARC_MU_POOL_IDLE,                       /* gauge: idle in the keep-alive pool */
    ARC_MU_RETRY_BUDGET_EXHAUSTED,          /* retries refused by the route's budget */
    ARC_MU_OVERFLOW,                        /* answered 503 by a circuit_breaker limit */
    ARC_MU_PENDING_TIMEOUTS,                /* ... of which waited pending_timeout in vain */
    ARC_MU_NO_ENDPOINT,                     /* 503: no endpoint could be picked */
    ARC_MU__COUNT
};

/* Upstream timeouts by the phase the attempt was in. */
enum arc_m_phase { ARC_MT_CONNECT, ARC_MT_WRITE, ARC_MT_TTFB, ARC_MT_READ, ARC_MT__COUNT };

/* Per-endpoint counters (rows by endpoint id). */
enum arc_m_ep {
    ARC_ME_REQUESTS,                        /* attempts sent to the endpoint (retries too) */
    ARC_ME_CONNECT_ERRORS,
    ARC_ME_RETRIES,                         /* attempts that were a retry of a failed one */
    ARC_ME_TIMEOUT,                         /* + enum arc_m_phase */
    ARC_ME_ERROR = ARC_ME_TIMEOUT + ARC_MT__COUNT, /* + enum arc_err_kind: the error that
                                               ended an exchange after this endpoint */
    ARC_ME__COUNT = ARC_ME_ERROR + ARC_ERR__COUNT
};

/* Per-listener counters. */
enum arc_m_li {
    ARC_ML_ACCEPTED, ARC_ML_CLOSED,
    ARC_ML_REFUSED,                         /* answered 503 over node.max_connections */
    ARC_ML_BYTES_IN, ARC_ML_BYTES_OUT,      /* client side, bytes received / sent */
    ARC_ML__COUNT
};

/* io_uring health, per worker. */
enum arc_m_ring {
    ARC_MR_SQ_FULL,                         /* an SQE was wanted with the SQ full (submitted early) */
    ARC_MR_CQ_OVERFLOW,                     /* loop turns that found the CQ overflowed */
    ARC_MR_CQ_DROPPED,                      /* gauge: the kernel's count of dropped CQEs */
    ARC_MR_BUF_EXHAUSTED,                   /* receives that found no provided buffer */
    ARC_MR_STARVED,                         /* connections that had to wait for one */
    ARC_MR_BUF_FREE,                        /* gauge: provided buffers in the kernel */
    ARC_MR_BUF_TOTAL,                       /* gauge: provided buffers */
    ARC_MR__COUNT
};

/* Rate-limit decisions per route (columns of the limits table). */
enum arc_m_limit { ARC_MRL_ALLOWED, ARC_MRL_REJECTED, ARC_MRL_DELAYED, ARC_MRL__COUNT };

struct arc_metrics_shard {
    alignas(64) arc_counter tls_handshakes[2][ARC_M_TLS_RESULTS]; /* [downstream, upstream][result] */
    arc_counter h2_flood[ARC_M_H2_BREACHES];  /* HTTP/2 connections cut by a flood guard */
    arc_counter guard[ARC_M_GUARD_REASONS];   /* L7 guard trips, by reason */
    arc_counter errors[ARC_ERR__COUNT];
    arc_counter ring[ARC_MR__COUNT];
    arc_counter exchanges;                  /* gauge: exchanges running */
    arc_counter hh_rejected;                /* requests of heavy hitters rejected */
    arc_counter hh_limited[2];              /* ... charged to heavy_hitters.limit: [allowed, rejected] */
    arc_counter gl_fallback;                /* global-tier decisions made by the fallback */
    arc_counter gl_waits;                   /* ... requests that waited for a refill */
    struct arc_m_table listeners;           /* [listener index][enum arc_m_li] */
    struct arc_m_table routes;              /* [1 + route id][series, histograms]; row 0: no route */
    struct arc_m_table ups;                 /* [upstream id][enum arc_m_up, histograms] */
    struct arc_m_table eps;                 /* [endpoint id][enum arc_m_ep] */
    struct arc_m_table limits;              /* [route id][enum arc_m_limit] */
};

/* An empty shard (no rows yet): -1 on out of memory. */
int arc_metrics_shard_init(struct arc_metrics_shard *m);
/* Grows the tables to at least n_routes route, n_ups upstream, n_eps
 * endpoint and n_listeners listener rows (never shrinks; counts are kept).
 * Thread: the owning worker. -1 on out of memory (tables unchanged). */
int arc_metrics_shard_fit(struct arc_metrics_shard *m, size_t n_routes, size_t n_ups,
                          size_t n_eps, size_t n_listeners);
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
static inline arc_counter *arc_m_ep(struct arc_metrics_shard *m, uint32_t ep_id, size_t c)
{
    return arc_m_cell(&m->eps, ep_id, c);
}
static inline arc_counter *arc_m_li(struct arc_metrics_shard *m, uint32_t li, enum arc_m_li c)
{
    return arc_m_cell(&m->listeners, li, c);
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
static inline void arc_m_set(arc_counter *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
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

/* Method label index of an ARC_M_* bit mask (one bit, or 0 = other). */
static inline unsigned arc_m_method(uint32_t mbit)
{
    return mbit && !(mbit & (mbit - 1)) && mbit < (1u << ARC_MM__KNOWN)
               ? (unsigned)__builtin_ctz(mbit) : ARC_MM_OTHER;
}

#define ARC_M_NO_ROUTE UINT32_MAX
#define ARC_M_NONE UINT32_MAX
#define ARC_M_NOT_TIMED UINT64_MAX

/* One finished exchange, as arc_px__ex_end describes it. Durations in ns,
 * ARC_M_NOT_TIMED where the step did not happen. */
struct arc_m_exchange {
    uint32_t route_id;                      /* ARC_M_NO_ROUTE: none matched */
    uint32_t up_id, ep_id;                  /* ARC_M_NONE: no upstream attempt */
    int status;
    unsigned method;                        /* arc_m_method */
    enum arc_m_proto proto;
    uint8_t err;                            /* 1 + enum arc_err_kind, 0 = none */
    uint64_t dur_ns, connect_ns, ttfb_ns, upstream_ns;
    uint64_t req_bytes, resp_bytes;
};

/* Counts one finished exchange: its request series, its histograms (route
 * and upstream), and the error that ended it on its endpoint. Exactly once
 * per exchange. Thread: the owning worker. */
void arc_m_exchange(struct arc_metrics_shard *m, const struct arc_m_exchange *x);

/* What the exposition names: the ids and names of the current config's
 * routes, upstreams, endpoints and listeners (rows of ids no longer
 * configured are not shown). */
struct arc_m_names {
    const uint32_t *route_ids;
    const char *const *route_names;
    size_t n_routes;
    const uint32_t *up_ids;
    const char *const *up_names;
    size_t n_ups;
    const uint32_t *ep_ids;                 /* [n_eps] */
    const uint32_t *ep_up;                  /* [n_eps]: index into up_ids/up_names */
    const char *const *ep_names;            /* [n_eps]: configured address */
    size_t n_eps;
    const char *const *listener_names;      /* [n_listeners], by listener index */
    size_t n_listeners;
};

/**
 * Renders every shard, summed, as Prometheus text format 0.0.4, for the
 * routes, upstreams, endpoints and listeners `names` lists (a row a shard
 * does not have yet counts 0). Thread: any (reads shards that their workers
 * write).
 */
void arc_metrics_render(struct arc_sbuf *out, struct arc_metrics_shard *const *shards,
                        size_t n_shards, const struct arc_m_names *names);
/* The rate-limit series (metrics_limit.c; called by arc_metrics_render). */
void arc_metrics_render_limits(struct arc_sbuf *out, struct arc_metrics_shard *const *shards,
                               size_t n_shards, const struct arc_m_names *names);

/* ------------------------------------------------------------ readers */

/* A histogram summed over shards: non-cumulative counts per bucket
 * (n_bounds + 1, the last one +Inf), their total and the sum of the
 * observed values (ns or bytes). */
struct arc_m_hsum {
    uint64_t buckets[ARC_M_MAX_BUCKETS + 1];
    uint64_t count, sum;
    size_t n_bounds;
    const uint64_t *bounds;
};
/* Histogram `h` of route `route_id` (ARC_M_NO_ROUTE for no route) or, with
 * `upstream`, of upstream `id`, summed over the shards. */
void arc_m_hist_read(struct arc_metrics_shard *const *sh, size_t n, bool upstream,
                     uint32_t id, enum arc_m_hist h, struct arc_m_hsum *out);
/* Requests of route `route_id` (ARC_M_NO_ROUTE: none matched), summed over
 * shards, by status class (out[0] = 1xx .. out[4] = 5xx; 499 is 4xx). */
void arc_m_route_classes(struct arc_metrics_shard *const *sh, size_t n, uint32_t route_id,
                         uint64_t out[5]);
/* Column `col` of row `id` of one of a shard's tables, summed over shards
 * (0 for rows a shard does not have yet). */
enum arc_m_tab { ARC_MTAB_LISTENERS, ARC_MTAB_ROUTES, ARC_MTAB_UPS, ARC_MTAB_EPS };
uint64_t arc_m_read(struct arc_metrics_shard *const *sh, size_t n, enum arc_m_tab t,
                    size_t id, size_t col);
/* The quantile q (0..1) of a summed histogram, linear within the bucket as
 * Prometheus' histogram_quantile does; NaN without observations. */
double arc_m_quantile(const struct arc_m_hsum *h, double q);

/* Process and kernel metrics read from /proc at scrape time (process_*
 * families as Prometheus client libraries name them, and arc_kernel_tcp_*
 * from /proc/net/netstat and /proc/net/snmp). Thread: any. */
void arc_metrics_render_process(struct arc_sbuf *out);

#endif
