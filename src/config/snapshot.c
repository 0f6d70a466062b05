/*
 * Compiling a config into a snapshot, and publishing it. See snapshot.h.
 */
#include "config/snapshot.h"
#include "config/discovered.h"
#include "config/ident.h"
#include "core/common.h"
#include "core/sbuf.h"
#include "limit/limit.h"
#include "tls/tls.h"
#include "plugin/plugin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic(struct arc_snapshot *) g_current;
static _Atomic uint64_t g_generation;
static _Atomic uint32_t g_live;         /* snapshots built and not yet freed */
/* Serialises publish against acquire so a reader never takes a reference on
 * a snapshot whose last reference is being dropped. Taken only when the
 * published pointer changed, i.e. once per reload per worker. */
static pthread_mutex_t g_publish_lock = PTHREAD_MUTEX_INITIALIZER;

static void add_error(struct arc_config_errors *errs, const char *file, int line, int col,
                      const char *msg)
{
    if (errs->n == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 8;
        struct arc_config_error *v = realloc(errs->v, cap * sizeof(*v));
        ARC_ASSERT(v != NULL);
        errs->v = v;
        errs->cap = cap;
    }
    errs->v[errs->n++] = (struct arc_config_error){
        .file = strdup(file ? file : "<config>"), .line = line, .col = col, .msg = strdup(msg),
    };
}

/* The shared table of a limit (limit/limit.h): the existing one when the
 * definition, including what its keys are (`kd`), did not change. */
static struct arc_rl_table *limit_table(uint32_t id, const struct arc_rate_limit_conf *lc,
                                        uint32_t nodes, const char *kd)
{
    struct arc_rl_rule rule;
    double qps = lc->qps / (nodes ? nodes : 1);
    uint32_t burst = lc->burst / (nodes ? nodes : 1);
    arc_rl_rule_init(&rule, (enum arc_rl_algo)lc->algorithm, qps, burst ? burst : 1,
                     lc->window, lc->max_delay);
    /* What keys are is part of the definition (FNV-1a of it). */
    rule.key_def = 1469598103934665603ull;
    for (const char *k = kd; *k; k++)
        rule.key_def = (rule.key_def ^ (unsigned char)*k) * 1099511628211ull;
    return arc_rl_table_get(id, &rule, lc->max_keys);
}

static void snapshot_free(struct arc_snapshot *s)
{
    if (!s)
        return;
    if (s->counted)
        atomic_fetch_sub_explicit(&g_live, 1, memory_order_relaxed);
    arc_plugin_set_free(s->plugins);
    if (s->rt)
        arc_rt_free(s->rt);
    for (size_t i = 0; s->routes && i < s->n_routes; i++) {
        arc_rt_rewrite_free(s->routes[i].rewrite);
        free(s->routes[i].split);
        arc_rl_table_unref(s->routes[i].limit);
    }
    arc_rl_table_unref(s->hh_limit);
    free(s->routes);
    for (size_t i = 0; i < s->n_ups; i++) {
        free(s->ups[i].eps);
        arc_tls_client_free(s->ups[i].tls);
    }
    if (s->listener_tls) {
        for (size_t i = 0; i < s->n_listeners; i++)
            arc_tls_server_free(s->listener_tls[i]);
        free(s->listener_tls);
    }
    free(s->ups);
    free(s->route_names);
    free(s->upstream_names);
    free(s->route_ids);
    free(s->upstream_ids);
    if (s->cfg)
        arc_config_free(s->cfg);
    free(s);
}


/* One process-wide ticket key store: every worker's contexts, and every
 * snapshot's, seal and open tickets with the same keys, so a client resumes
 * on whichever worker the kernel hands it to, across reloads too. */
static pthread_mutex_t g_keys_lock = PTHREAD_MUTEX_INITIALIZER;
static struct arc_tls_ticket_keys *g_ticket_keys;

struct arc_tls_ticket_keys *arc_snapshot_ticket_keys(void)
{
    pthread_mutex_lock(&g_keys_lock);
    if (!g_ticket_keys)
        g_ticket_keys = arc_tls_ticket_keys_new(2);
    struct arc_tls_ticket_keys *k = g_ticket_keys;
    pthread_mutex_unlock(&g_keys_lock);
    return k;
}

/* Builds the TLS contexts (reading every certificate and key now, so a bad
 * file is a config error with its location, never a failure later). */
static size_t build_tls(struct arc_snapshot *s, struct arc_config_errors *errs)
{
    const struct arc_config *cfg = s->cfg;
    char err[512], msg[700];
    size_t n = 0;
    static const char *const alpn[] = { "h2", "http/1.1" };
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct arc_listener_conf *l = &cfg->listeners[i];
        if (l->kind != ARC_LISTENER_HTTPS || !l->tls)
            continue;
        struct arc_tls_server_opts o = { .alpn = alpn, .n_alpn = 2,
                                         .ticket_keys = arc_snapshot_ticket_keys() };
        s->listener_tls[i] = arc_tls_server_new(l->tls, &o, err, sizeof(err));
        if (!s->listener_tls[i]) {
            snprintf(msg, sizeof(msg), "listeners[%zu] '%s'.tls: %s", i, l->name, err);
            add_error(errs, cfg->source, l->tls->line, l->tls->col, msg);
            n++;
        }
    }
    for (size_t i = 0; i < s->n_ups; i++) {
        const struct arc_upstream_conf *uc = s->ups[i].conf;
        if (!uc->tls)
            continue;
        s->ups[i].tls = arc_tls_client_new(uc, err, sizeof(err));
        if (!s->ups[i].tls) {
            snprintf(msg, sizeof(msg), "upstreams[%zu] '%s'.tls: %s", i, uc->name, err);
            add_error(errs, cfg->source, uc->tls->line, uc->tls->col, msg);
            n++;
        }
    }
    return n;
}

int arc_snapshot_build(struct arc_config *cfg, struct arc_snapshot **out,
                       struct arc_config_errors *errs)
{
    *out = NULL;
    struct arc_snapshot *s = calloc(1, sizeof(*s));
    if (!s) {
        arc_config_free(cfg);
        return -1;
    }
    s->cfg = cfg;
    atomic_init(&s->refs, 1);
    s->limits = (struct arc_h1_limits){
        .max_header_bytes = cfg->limits.max_header_bytes,
        .max_headers = cfg->limits.max_headers,
        .max_uri = cfg->limits.max_uri,
    };

    s->n_ups = cfg->n_upstreams;
    s->ups = calloc(s->n_ups ? s->n_ups : 1, sizeof(*s->ups));
    s->upstream_names = calloc(s->n_ups ? s->n_ups : 1, sizeof(char *));
    s->upstream_ids = calloc(s->n_ups ? s->n_ups : 1, sizeof(uint32_t));
    s->n_routes = cfg->n_routes;
    s->route_ids = calloc(s->n_routes ? s->n_routes : 1, sizeof(uint32_t));
    s->routes = calloc(s->n_routes ? s->n_routes : 1, sizeof(*s->routes));
    s->route_names = calloc(s->n_routes ? s->n_routes : 1, sizeof(char *));
    struct arc_rt_spec *specs = calloc(s->n_routes ? s->n_routes : 1, sizeof(*specs));
    s->n_listeners = cfg->n_listeners;
    s->listener_tls = calloc(s->n_listeners ? s->n_listeners : 1, sizeof(*s->listener_tls));
    if (!s->ups || !s->upstream_names || !s->routes || !s->route_names || !specs ||
        !s->listener_tls || !s->upstream_ids || !s->route_ids)
        goto oom;
    /* dns upstreams: the addresses known now (config/discovered.h) */
    if (arc_discovered_fill(cfg) < 0)
        goto oom;

    for (size_t i = 0; i < s->n_ups; i++) {
        const struct arc_upstream_conf *uc = &cfg->upstreams[i];
        struct arc_upstream_rt *u = &s->ups[i];
        u->conf = uc;
        u->id = arc_ident_of(ARC_IDENT_UPSTREAM, uc->name, strlen(uc->name));
        u->name_len = (uint16_t)ARC_MIN(strlen(uc->name), (size_t)UINT16_MAX);
        if (u->id == ARC_IDENT_NONE)
            goto too_many;
        u->n_eps = uc->n_endpoints;
        u->eps = calloc(u->n_eps ? u->n_eps : 1, sizeof(*u->eps));
        if (!u->eps)
            goto oom;
        for (size_t e = 0; e < u->n_eps; e++) {
            u->eps[e].ss = uc->endpoints[e].address.ss;
            u->eps[e].len = uc->endpoints[e].address.len;
            u->eps[e].text = uc->endpoints[e].address.text;
            u->eps[e].text_len = (uint16_t)ARC_MIN(strlen(u->eps[e].text), (size_t)UINT16_MAX);
            u->eps[e].weight = uc->endpoints[e].weight ? uc->endpoints[e].weight : 1;
            char key[512];
            int kl = snprintf(key, sizeof(key), "%s|%s", uc->name, u->eps[e].text);
            u->eps[e].id = arc_ident_of(ARC_IDENT_ENDPOINT, key,
                                        (size_t)ARC_MIN(kl, (int)sizeof(key) - 1));
            if (u->eps[e].id == ARC_IDENT_NONE)
                goto too_many;
            u->eps[e].open_conns = arc_ident_endpoint_open(u->eps[e].id);
        }
        s->upstream_names[i] = uc->name;
        s->upstream_ids[i] = u->id;
    }

    for (size_t i = 0; i < s->n_routes; i++) {
        const struct arc_route_conf *rc = &cfg->routes[i];
        struct arc_route_rt *r = &s->routes[i];
        r->conf = rc;
        r->id = arc_ident_of(ARC_IDENT_ROUTE, rc->name, strlen(rc->name));
        r->name_len = (uint16_t)ARC_MIN(strlen(rc->name), (size_t)UINT16_MAX);
        if (r->id == ARC_IDENT_NONE)
            goto too_many;
        s->route_ids[i] = r->id;
        if (rc->action == ARC_ACTION_UPSTREAM) {
            ARC_ASSERT(rc->upstream_index < s->n_ups);
            r->up = &s->ups[rc->upstream_index];
            if (rc->split) {
                r->split = calloc(rc->split->n_choices, sizeof(*r->split));
                if (!r->split)
                    goto oom;
                for (size_t k = 0; k < rc->split->n_choices; k++) {
                    ARC_ASSERT(rc->split->choices[k].upstream_index < s->n_ups);
                    r->split[k] = &s->ups[rc->split->choices[k].upstream_index];
                }
            }
        }
        if (rc->rewrite_pattern &&
            !(r->rewrite = arc_rt_rewrite_new(rc->rewrite_pattern, rc->rewrite_replace)))
            goto oom;
        if (rc->rate_limit) {
            const struct arc_rate_limit_conf *lc = rc->rate_limit;
            /* scope: global: the local table is the fallback, at the
             * node's share of the rate (proxy/glimit.c) */
            uint32_t nodes = lc->global ? s->cfg->rl_global.nodes : 1;
            char kd[300];
            snprintf(kd, sizeof(kd), "%d|%s|%u|%d", lc->key_by,
                     lc->key_name ? lc->key_name : "", lc->ipv6_prefix, lc->global);
            r->limit = limit_table(r->id, lc, nodes, kd);
            if (!r->limit)
                goto oom;
        }
        s->route_names[i] = rc->name;
        specs[i] = (struct arc_rt_spec){
            .name = rc->name, .path = rc->path,
            .hosts = (const char *const *)rc->hosts, .n_hosts = rc->n_hosts,
            .methods = rc->methods, .priority = rc->priority, .data = r,
            .preds = rc->preds, .n_preds = rc->n_preds, .expr = rc->expr,
        };
    }

    const struct arc_heavy_hitters_conf *hh = &cfg->heavy_hitters;
    if (hh->enabled && hh->action == ARC_HH_LIMIT) {
        char kd[32];
        snprintf(kd, sizeof(kd), "hh|%u", hh->ipv6_prefix);
        if (!(s->hh_limit = limit_table(ARC_SNAPSHOT_HH_LIMIT_ID, &hh->limit, 1, kd)))
            goto oom;
    }

    /* Plugins: compiled (or found in the cache), loaded and instantiated
     * for every worker here, on the control thread, so a module that does
     * not build or configure is an error of this config, never a live one. */
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    unsigned nw = cfg->node.workers ? cfg->node.workers : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (arc_plugin_set_new(cfg, nw, &s->plugins, errs) < 0) {
        free(specs);
        snapshot_free(s);
        return -1;
    }

    if (build_tls(s, errs)) {
        free(specs);
        snapshot_free(s);
        return -1;
    }

    char err[512];
    size_t err_index = 0;
    if (arc_rt_build(specs, s->n_routes, &s->rt, err, sizeof(err), &err_index) < 0) {
        const struct arc_route_conf *rc = err_index < s->n_routes ? &cfg->routes[err_index] : NULL;
        add_error(errs, rc && rc->file ? rc->file : cfg->source, rc ? rc->line : 0,
                  rc ? rc->col : 0, err);
        free(specs);
        snapshot_free(s);
        return -1;
    }
    free(specs);
    s->n_route_ids = arc_ident_count(ARC_IDENT_ROUTE);
    s->n_up_ids = arc_ident_count(ARC_IDENT_UPSTREAM);
    s->n_ep_ids = arc_ident_count(ARC_IDENT_ENDPOINT);
    s->generation = atomic_fetch_add(&g_generation, 1) + 1;
    s->counted = true;
    atomic_fetch_add_explicit(&g_live, 1, memory_order_relaxed);
    *out = s;
    return 0;

too_many:
    /* (only after ARC_IDENT_MAX distinct names of one kind in one process,
     * reloads included, or out of memory) */
    free(specs);
    add_error(errs, cfg->source, 0, 0, "too many distinct route, upstream or endpoint names "
              "in this process's life (65536 of a kind), or out of memory: restart arc");
    snapshot_free(s);
    return -1;

oom:
    free(specs);
    add_error(errs, cfg->source, 0, 0, "out of memory compiling the configuration");
    snapshot_free(s);
    return -1;
}

uint32_t arc_snapshot_live(void)
{
    return atomic_load_explicit(&g_live, memory_order_relaxed);
}

void arc_snapshot_ref(struct arc_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void arc_snapshot_unref(struct arc_snapshot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(s);
}

void arc_snapshot_publish(struct arc_snapshot *s)
{
    arc_snapshot_ref(s);
    pthread_mutex_lock(&g_publish_lock);
    struct arc_snapshot *old = atomic_exchange_explicit(&g_current, s, memory_order_acq_rel);
    pthread_mutex_unlock(&g_publish_lock);
    if (old)
        arc_snapshot_unref(old);
}

struct arc_snapshot *arc_snapshot_current(void)
{
    return atomic_load_explicit(&g_current, memory_order_acquire);
}

struct arc_snapshot *arc_snapshot_acquire(void)
{
    pthread_mutex_lock(&g_publish_lock);
    struct arc_snapshot *s = atomic_load_explicit(&g_current, memory_order_acquire);
    if (s)
        arc_snapshot_ref(s);
    pthread_mutex_unlock(&g_publish_lock);
    return s;
}
