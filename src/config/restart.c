/*
 * Fields a running Arc cannot change without a restart (a reload that
 * changes them is refused, naming each): the listener set and every
 * socket-level setting of a listener, the worker count, io_uring sizing,
 * the Redis tier (rate_limits.global: its connection is made once), the
 * L7 guards' table size (security.l7.max_tracked_addresses),
 * the admin listener and the control plane (CONFIG.md makes the whole
 * section restart-only: its listener is bound once, and a token that the
 * API itself could replace would let one caller lock the others out).
 * Everything else is adopted by a reload. While the control plane is
 * disabled on both sides its other keys do nothing and are not compared.
 */
#include "config/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct diff {
    char *out;
    size_t len, used;
    size_t n;
};

static void changed(struct diff *d, const char *fmt, ...)
{
    d->n++;
    if (!d->out || d->used + 1 >= d->len)
        return;
    if (d->used) {
        int k = snprintf(d->out + d->used, d->len - d->used, ", ");
        d->used += (size_t)k < d->len - d->used ? (size_t)k : d->len - d->used - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(d->out + d->used, d->len - d->used, fmt, ap);
    va_end(ap);
    if (k > 0)
        d->used += (size_t)k < d->len - d->used ? (size_t)k : d->len - d->used - 1;
}

static bool addr_eq(const struct arc_addr *a, const struct arc_addr *b)
{
    return strcmp(a->text, b->text) == 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void listener_diff(struct diff *d, size_t i, const struct arc_listener_conf *a,
                          const struct arc_listener_conf *b)
{
#define LF(field, cond) do { if (cond) changed(d, "listeners[%zu].%s", i, field); } while (0)
    LF("name", !str_eq(a->name, b->name));
    LF("kind", a->kind != b->kind);
    LF("bind", !addr_eq(&a->bind, &b->bind));
    LF("socket.backlog", a->backlog != b->backlog);
    LF("socket.tcp_fastopen_backlog", a->tcp_fastopen_backlog != b->tcp_fastopen_backlog);
    LF("socket.dscp", a->dscp != b->dscp);
    LF("socket.defer_accept", a->defer_accept != b->defer_accept);
    LF("socket.keepalive", a->keepalive_enabled != b->keepalive_enabled ||
                           a->keepalive_idle != b->keepalive_idle ||
                           a->keepalive_interval != b->keepalive_interval ||
                           a->keepalive_count != b->keepalive_count);
#undef LF
}

size_t arc_config_restart_diff(const struct arc_config *old, const struct arc_config *new,
                               char *out, size_t len)
{
    struct diff d = { out, len, 0, 0 };
    if (out && len)
        out[0] = '\0';
    if (old->n_listeners != new->n_listeners)
        changed(&d, "listeners (%zu -> %zu)", old->n_listeners, new->n_listeners);
    size_t nl = old->n_listeners < new->n_listeners ? old->n_listeners : new->n_listeners;
    for (size_t i = 0; i < nl; i++)
        listener_diff(&d, i, &old->listeners[i], &new->listeners[i]);
    if (old->node.workers != new->node.workers)
        changed(&d, "node.workers");
    /* (the resolver and the mirror thread are set up once, at start) */
    const struct arc_node_conf *na = &old->node, *nb = &new->node;
    bool dns_same = na->n_dns_servers == nb->n_dns_servers && na->dns_timeout == nb->dns_timeout &&
                    na->dns_attempts == nb->dns_attempts;
    for (size_t i = 0; dns_same && i < na->n_dns_servers; i++)
        dns_same = addr_eq(&na->dns_servers[i], &nb->dns_servers[i]);
    if (!dns_same)
        changed(&d, "node.dns");
    if (na->mirror_queue != nb->mirror_queue || na->mirror_max_in_flight != nb->mirror_max_in_flight)
        changed(&d, "node.mirror");
    /* (the Redis tier's connection is made once, at start) */
    const struct arc_rl_global_conf *ga = &old->rl_global, *gb = &new->rl_global;
    if (ga->enabled != gb->enabled ||
        (ga->enabled && (!addr_eq(&ga->address, &gb->address) ||
                         strcmp(ga->password, gb->password) != 0 || ga->db != gb->db ||
                         ga->timeout != gb->timeout || ga->lease != gb->lease ||
                         ga->circuit_open != gb->circuit_open || ga->fallback != gb->fallback ||
                         ga->nodes != gb->nodes)))
        changed(&d, "rate_limits.global");
    /* (the guard's per-address table is laid out when the workers start) */
    if (old->guard.max_tracked_addresses != new->guard.max_tracked_addresses)
        changed(&d, "security.l7.max_tracked_addresses");
    const struct arc_uring_conf *ua = &old->uring, *ub = &new->uring;
#define UF(field, name) do { if (ua->field != ub->field) changed(&d, "io_uring.%s", name); } while (0)
    UF(uring_entries, "uring_entries");
    UF(sqpoll, "sqpoll");
    UF(sqpoll_idle_ms, "sqpoll_idle_ms");
    UF(buffer_size, "buffer_size");
    UF(buffer_count, "buffer_count");
#undef UF
    if (old->metrics_enabled != new->metrics_enabled)
        changed(&d, "observability.metrics_enabled");
    if (old->metrics_enabled && new->metrics_enabled &&
        !addr_eq(&old->metrics_bind, &new->metrics_bind))
        changed(&d, "observability.metrics_bind");
    const struct arc_histograms_conf *ha = &old->histograms, *hb = &new->histograms;
    if (ha->enabled != hb->enabled || ha->n_duration != hb->n_duration ||
        ha->n_size != hb->n_size ||
        memcmp(ha->duration_ns, hb->duration_ns, ha->n_duration * sizeof(uint64_t)) != 0 ||
        memcmp(ha->size, hb->size, ha->n_size * sizeof(uint64_t)) != 0)
        changed(&d, "observability.histograms");
    if (old->status_series != new->status_series)
        changed(&d, "observability.max_status_series_per_route");
    const struct arc_control_plane_conf *ca = &old->control_plane, *cb = &new->control_plane;
    if (ca->enabled != cb->enabled)
        changed(&d, "control_plane.enabled");
    if (ca->enabled && cb->enabled) {
        if (!addr_eq(&ca->bind, &cb->bind))
            changed(&d, "control_plane.bind");
        if (ca->has_token != cb->has_token || strcmp(ca->auth_token, cb->auth_token) != 0)
            changed(&d, "control_plane.auth_token");
        if (strcmp(ca->node_id, cb->node_id) != 0)
            changed(&d, "control_plane.node_id");
        if (ca->max_body != cb->max_body)
            changed(&d, "control_plane.max_body");
    }
    bool etcd_same = ca->n_etcd == cb->n_etcd && strcmp(ca->etcd_prefix, cb->etcd_prefix) == 0;
    for (size_t i = 0; etcd_same && i < ca->n_etcd; i++)
        etcd_same = addr_eq(&ca->etcd[i], &cb->etcd[i]);
    if (!etcd_same)
        changed(&d, "control_plane.config_source");
    /* Logging: the writer thread, its output and the workers' rings are
     * set up at start; sampling and redaction follow reloads. */
    const struct arc_logging_conf *la = &old->logging, *lb = &new->logging;
    if (la->enabled != lb->enabled)
        changed(&d, "logging.output (logging turned %s)", lb->enabled ? "on" : "off");
    if (la->enabled && lb->enabled) {
        if (!str_eq(la->file, lb->file))
            changed(&d, "logging.output.file");
        if (la->to_stdout != lb->to_stdout)
            changed(&d, "logging.output.stdout");
        if (la->max_size != lb->max_size)
            changed(&d, "logging.output.rotation.max_size");
        if (la->max_files != lb->max_files)
            changed(&d, "logging.output.rotation.max_files");
        if (la->compress != lb->compress)
            changed(&d, "logging.output.rotation.compress");
        if (la->ring_capacity != lb->ring_capacity)
            changed(&d, "logging.writer.ring_capacity");
        if (la->batch_bytes != lb->batch_bytes)
            changed(&d, "logging.writer.batch_bytes");
        if (la->flush_interval != lb->flush_interval)
            changed(&d, "logging.writer.flush_interval");
        if (la->drop_behind != lb->drop_behind)
            changed(&d, "logging.writer.drop_behind");
    }
    /* security.xdp: what is attached where; the lists and rates reload. */
    const struct arc_xdp_conf *xa = &old->xdp, *xb = &new->xdp;
    if (xa->enabled != xb->enabled)
        changed(&d, "security.xdp.enabled");
    if (xa->enabled && xb->enabled) {
        if (!str_eq(xa->interface, xb->interface))
            changed(&d, "security.xdp.interface");
        if (xa->mode != xb->mode)
            changed(&d, "security.xdp.mode");
        if (xa->max_sources != xb->max_sources)
            changed(&d, "security.xdp.max_sources");
        if (xa->required != xb->required)
            changed(&d, "security.xdp.required");
        if (!str_eq(xa->pin_path, xb->pin_path))
            changed(&d, "security.xdp.pin_path");
    }
    const struct arc_tracing_conf *ta = &old->tracing, *tb = &new->tracing;
    if (ta->export != tb->export || strcmp(ta->endpoint, tb->endpoint) != 0)
        changed(&d, "observability.tracing.endpoint");
    if (ta->export && tb->export) {
        if (ta->queue_capacity != tb->queue_capacity)
            changed(&d, "observability.tracing.queue_capacity");
        if (ta->flush_interval != tb->flush_interval)
            changed(&d, "observability.tracing.flush_interval");
        if (ta->timeout != tb->timeout)
            changed(&d, "observability.tracing.timeout");
    }
    return d.n;
}
