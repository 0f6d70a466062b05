/**
 * Immutable, reference-counted runtime form of one configuration generation.
 *
 * arc_snapshot_build compiles a validated `struct arc_config` (routes into a
 * route table, upstreams into endpoint sets, limits into parser limits)
 * without touching anything live. The control thread publishes a snapshot
 * with arc_snapshot_publish; each worker adopts the current one at the top
 * of its loop (arc_snapshot_current) and holds one reference while it uses
 * it. Requests in flight keep the snapshot they started with, so a reload
 * only ever has to publish a new pointer.
 *
 * Lifetime: everything reachable from a snapshot lives until its last
 * reference is dropped. Thread: build/publish on the control thread;
 * ref/unref/current from any thread.
 */
#ifndef ARC_CONFIG_SNAPSHOT_H
#define ARC_CONFIG_SNAPSHOT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "http1/http1.h"
#include "router/router.h"

struct arc_endpoint_rt {
    struct sockaddr_storage ss;
    socklen_t len;
    uint16_t text_len;          /* strlen(text), at most UINT16_MAX (the access log's copy) */
    const char *text;           /* "ip:port", owned by the config */
    uint32_t weight;
    uint32_t id;                /* stable identity (config/ident.h): upstream name + address */
    /* Node-wide open connections to this endpoint, for pool.max_connections
     * (outside the snapshot: every snapshot naming the endpoint shares it).
     * Touched on connect and close only, never per request. */
    _Atomic uint32_t *open_conns;
};

struct arc_tls_server;
struct arc_tls_client;
struct arc_tls_ticket_keys;
struct arc_pl_set;

struct arc_upstream_rt {
    const struct arc_upstream_conf *conf;
    struct arc_tls_client *tls;     /* upstreams[].tls set: its client context, owned */
    uint32_t id;                    /* stable identity: worker tables and metrics rows */
    uint16_t name_len;              /* strlen(conf->name), at most UINT16_MAX (0: not set) */
    struct arc_endpoint_rt *eps;
    size_t n_eps;
};

struct arc_rl_table;

/* The registry id of heavy_hitters.limit's table (route ids are smaller). */
#define ARC_SNAPSHOT_HH_LIMIT_ID UINT32_MAX

struct arc_route_rt {
    const struct arc_route_conf *conf;
    uint32_t id;                    /* stable identity: metrics rows */
    uint16_t name_len;              /* strlen(conf->name), at most UINT16_MAX (0: not set) */
    struct arc_upstream_rt *up;     /* ACTION_UPSTREAM only */
    struct arc_upstream_rt **split; /* routes[].split: [conf->split->n_choices], owned; or NULL */
    struct arc_rt_rewrite *rewrite; /* action.rewrite compiled, or NULL; owned */
    /* rate_limit: the key table shared by every worker, and by every
     * snapshot whose limit has the same definition (limit/limit.h); one
     * reference held. NULL = not limited. */
    struct arc_rl_table *limit;
};

struct arc_snapshot {
    _Atomic uint32_t refs;
    uint64_t generation;
    struct arc_config *cfg;         /* owned */
    struct arc_rt_table *rt;
    struct arc_route_rt *routes;
    size_t n_routes;
    struct arc_upstream_rt *ups;
    size_t n_ups;
    struct arc_tls_server **listener_tls; /* [n_listeners]: https listeners' contexts, owned */
    size_t n_listeners;
    const char **route_names;       /* [n_routes], for metrics */
    const char **upstream_names;    /* [n_ups] */
    uint32_t *route_ids;            /* [n_routes] */
    uint32_t *upstream_ids;         /* [n_ups] */
    /* Identities handed out when this snapshot was built: tables indexed
     * by id and sized to these cover every id it carries. */
    uint32_t n_route_ids, n_up_ids, n_ep_ids;
    struct arc_h1_limits limits;
    struct arc_pl_set *plugins;     /* plugins.wasm compiled and instantiated, or NULL; owned */
    /* rate_limits.heavy_hitters.action: limit: the table of the listed
     * prefixes' limit (carried over reloads like a route's); or NULL. */
    struct arc_rl_table *hh_limit;
    bool counted;                   /* in arc_snapshot_live() */
};

/**
 * Compiles cfg (ownership passes to the snapshot, also on failure). Returns
 * 0 and *out with one reference, or -1 with errors appended to errs (e.g.
 * ambiguous routes, with the route's file:line:col).
 */
int arc_snapshot_build(struct arc_config *cfg, struct arc_snapshot **out,
                       struct arc_config_errors *errs);

/* The process-wide TLS session-ticket key store (created on first use; lives
 * as long as the process, outside every snapshot). Thread: any. */
struct arc_tls_ticket_keys *arc_snapshot_ticket_keys(void);

/* Snapshots built and not yet freed (the published one, and older ones
 * still held by a worker, an exchange or a connection). */
uint32_t arc_snapshot_live(void);

void arc_snapshot_ref(struct arc_snapshot *s);
void arc_snapshot_unref(struct arc_snapshot *s);

/* Makes s the published snapshot (takes its own reference). */
void arc_snapshot_publish(struct arc_snapshot *s);
/* The published pointer, for comparison only: it may be released at any
 * moment, so never dereference it; use arc_snapshot_acquire for that. */
struct arc_snapshot *arc_snapshot_current(void);
/* The published snapshot with one reference for the caller (or NULL). */
struct arc_snapshot *arc_snapshot_acquire(void);

#endif
