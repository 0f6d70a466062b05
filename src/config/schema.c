/*
 * Schema, part 1: the document root, node, io_uring, listeners, security and
 * observability, plus the checks that span sections. Upstreams and routes
 * live in schema_upstream.c and schema_route.c.
 *
 * Every key CONFIG.md documents is in a key table here; the ones this
 * version does not implement carry ARC_KEY_LATER and are rejected with "not
 * supported yet" at their position, so no part of a config is ever silently
 * ignored. Defaults are the ones written next to each field in config.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include "config/schema_int.h"

#define REQ ARC_KEY_REQUIRED
#define LATER ARC_KEY_LATER
#define N(a) (sizeof(a) / sizeof((a)[0]))

#define MS_S 1000ull
#define MS_H (3600ull * 1000)

static const struct arc_conf_key top_keys[] = {
    { "node", 0 }, { "io_uring", 0 }, { "listeners", REQ }, { "upstreams", 0 },
    { "routes", 0 }, { "security", 0 }, { "observability", 0 },
    { "rate_limits", 0 }, { "plugins", 0 }, { "cache", LATER },
    { "logging", 0 }, { "control_plane", 0 },
};

static const struct arc_conf_key node_keys[] = {
    { "id", 0 }, { "workers", 0 }, { "max_connections", 0 }, { "read_timeout", 0 },
    { "write_timeout", 0 }, { "idle_timeout", 0 }, { "drain_timeout", 0 },
    { "lingering_timeout", 0 }, { "max_buffered_output", 0 },
    { "max_interim_responses", 0 }, { "http2_header_table_size", 0 },
    { "dns", 0 }, { "mirror", 0 },
};

static const struct arc_conf_key node_dns_keys[] = {
    { "servers", 0 }, { "timeout", 0 }, { "attempts", 0 },
};

static const struct arc_conf_key node_mirror_keys[] = {
    { "queue", 0 }, { "max_in_flight", 0 },
};

static const struct arc_conf_key uring_keys[] = {
    { "uring_entries", 0 }, { "sqpoll", 0 }, { "sqpoll_idle_ms", 0 },
    { "buffer_size", 0 }, { "buffer_count", 0 }, { "buffers_per_connection", 0 },
};

static const struct arc_conf_key listener_keys[] = {
    { "name", REQ }, { "kind", REQ }, { "bind", REQ }, { "socket", 0 },
    { "proxy_protocol", 0 }, { "tls", 0 }, { "upstream", LATER },
};

static const struct arc_conf_key socket_keys[] = {
    { "backlog", 0 }, { "tcp_fastopen_backlog", 0 }, { "dscp", 0 },
    { "defer_accept", 0 }, { "keepalive", 0 },
};

static const struct arc_conf_key keepalive_keys[] = {
    { "idle", 0 }, { "interval", 0 }, { "count", 0 },
};

static const struct arc_conf_key security_keys[] = {
    { "limits", 0 }, { "xdp", 0 }, { "l7", 0 },
};

static const struct arc_conf_key l7_keys[] = {
    { "slowloris", 0 }, { "tls_flood", 0 }, { "h2_flood", 0 },
    { "max_connections_per_ip", 0 }, { "ipv6_prefix", 0 }, { "max_tracked_addresses", 0 },
};

static const struct arc_conf_key slowloris_keys[] = {
    { "enabled", 0 }, { "headers_timeout", 0 }, { "min_recv_rate_bps", 0 },
    { "min_recv_rate_window", 0 }, { "max_incomplete_per_ip", 0 }, { "over_incomplete", 0 },
};

static const struct arc_conf_key tls_flood_keys[] = {
    { "handshakes_per_ip_per_sec", 0 }, { "max_handshakes_per_worker", 0 },
};

static const struct arc_conf_key h2_flood_keys[] = {
    { "max_rst_per_sec", 0 }, { "max_settings_per_sec", 0 }, { "max_ping_per_sec", 0 },
    { "max_priority_per_sec", 0 }, { "max_empty_data_per_sec", 0 },
    { "max_concurrent_streams", 0 }, { "max_continuations", 0 },
};

static const struct arc_conf_key limits_keys[] = {
    { "max_header_bytes", 0 }, { "max_headers", 0 }, { "max_uri", 0 },
};

static const struct arc_conf_key control_plane_keys[] = {
    { "enabled", 0 }, { "bind", 0 }, { "auth_token", 0 }, { "node_id", 0 },
    { "config_source", 0 }, { "max_body", 0 },
};

static const struct arc_conf_key config_source_keys[] = {
    { "etcd", 0 },
};

static const struct arc_conf_key etcd_keys[] = {
    { "endpoints", REQ }, { "prefix", 0 },
};

static const struct arc_conf_key obs_keys[] = {
    { "metrics_bind", 0 }, { "metrics_enabled", 0 }, { "tracing", 0 },
    { "histograms", 0 }, { "max_status_series_per_route", 0 },
};

static const struct arc_conf_key histogram_keys[] = {
    { "enabled", 0 }, { "duration_buckets_ms", 0 }, { "size_buckets", 0 },
};

/* ------------------------------------------------------------ defaults */

static void set_defaults(struct arc_config *cfg)
{
    char host[256];
    if (gethostname(host, sizeof(host)) < 0 || !host[0])
        strcpy(host, "arc");
    host[sizeof(host) - 1] = '\0';
    cfg->node = (struct arc_node_conf){
        .id = arc_config__xstrdup(host),
        .workers = 0,
        .max_connections = 0,
        .read_timeout = 30 * MS_S,
        .write_timeout = 30 * MS_S,
        .idle_timeout = 60 * MS_S,
        .drain_timeout = 30 * MS_S,
        .lingering_timeout = 2 * MS_S,
        .max_buffered_output = 256 * 1024,
        .max_interim_responses = 8,
        .http2_header_table_size = 0,
        .dns_timeout = 1 * MS_S,
        .dns_attempts = 2,
        .mirror_queue = 1024,
        .mirror_max_in_flight = 4096,
    };
    cfg->uring = (struct arc_uring_conf){
        .uring_entries = 2048,
        .sqpoll = false,
        .sqpoll_idle_ms = 2000,
        .buffer_size = 16 * 1024,
        .buffer_count = 1024,
        .buffers_per_connection = 4,
    };
    cfg->limits = (struct arc_limits_conf){
        .max_header_bytes = 32 * 1024,
        .max_headers = 100,
        .max_uri = 8 * 1024,
    };
    cfg->h2 = (struct arc_h2_conf){
        .max_concurrent_streams = 100, .max_rst_per_sec = 100, .max_settings_per_sec = 20,
        .max_ping_per_sec = 20, .max_priority_per_sec = 100, .max_empty_data_per_sec = 100,
        .max_continuations = 8,
    };
    cfg->guard = (struct arc_guard_conf){
        .slowloris = true, .headers_timeout = 10 * MS_S, .min_recv_rate_bps = 100,
        .min_recv_rate_window = 10 * MS_S, .max_incomplete_per_ip = 64,
        .incomplete_tarpit = true,
        .max_connections_per_ip = 0, .ipv6_prefix = 64, .handshakes_per_ip_per_sec = 0,
        .max_handshakes_per_worker = 256, .max_tracked_addresses = 16384,
    };
    arc_config_parse_addr("127.0.0.1:9090", &cfg->metrics_bind);
    cfg->metrics_enabled = true;
    /* Seconds from 0.25 ms to 30 s; bytes from 64 B to 64 MiB (powers of 4). */
    static const double dur_ms[] = { 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
                                     1000, 2500, 5000, 10000, 30000 };
    struct arc_histograms_conf *h = &cfg->histograms;
    h->enabled = true;
    for (size_t i = 0; i < N(dur_ms); i++)
        h->duration_ns[h->n_duration++] = (uint64_t)(dur_ms[i] * 1e6);
    for (uint64_t b = 64; b <= 64ull << 20; b *= 4)
        h->size[h->n_size++] = b;
    cfg->status_series = 64;
    cfg->control_plane = (struct arc_control_plane_conf){ .max_body = 4u << 20 };
    arc_config_parse_addr("127.0.0.1:22100", &cfg->control_plane.bind);
    arc_config__logging_defaults(cfg);
}

/* ------------------------------------------------------------ sections */

static bool pow2_u32(struct arc_sctx *s, const struct arc_cn *m, const char *path,
                     const char *key, uint32_t min, uint32_t max, uint32_t *out);

/* node.dns: servers as "ip:port" / "[ipv6]:port" (c-ares takes them so). */
static void node_dns(struct arc_sctx *s, const struct arc_cn *m, struct arc_node_conf *n)
{
    const char *p = "node.dns";
    char kp[ARC_PATH_MAX], xp[ARC_PATH_MAX], sb[72];
    if (!arc_config__check_map(s, m, p, node_dns_keys, N(node_dns_keys)))
        return;
    arc_config__get_dur(s, m, p, "timeout", 1, 60 * MS_S, false, &n->dns_timeout);
    arc_config__get_u32(s, m, p, "attempts", 1, 10, &n->dns_attempts);
    const struct arc_cn *v = arc_config__val(m, "servers");
    arc_config__path(kp, p, "servers");
    if (!v || !arc_config__want(s, v, kp, ARC_CN_SEQ))
        return;
    if (v->n == 0 || v->n > 16) {
        arc_config__err(s, v, "%s: expected 1 to 16 servers, got %zu", kp, v->n);
        return;
    }
    n->dns_servers = arc_config__xcalloc(v->n, sizeof(*n->dns_servers));
    size_t i = 0;
    for (const struct arc_cn *it = v->first; it; it = it->next, i++) {
        arc_config__path_index(xp, kp, i);
        if (!arc_config__want(s, it, xp, ARC_CN_STR))
            continue;
        struct arc_addr a;
        if (memchr(it->v.s.p, '\0', it->v.s.len) || arc_config_parse_addr(it->v.s.p, &a) < 0) {
            arc_config__err(s, it, "%s: '%s' is not an address; expected \"ip:port\" or "
                            "\"[ipv6]:port\" (host names are not accepted)", xp,
                            arc_config__show(sb, it->v.s.p, it->v.s.len));
            continue;
        }
        uint16_t port = a.ss.ss_family == AF_INET
                            ? ((const struct sockaddr_in *)(const void *)&a.ss)->sin_port
                            : ((const struct sockaddr_in6 *)(const void *)&a.ss)->sin6_port;
        if (port == 0) {
            arc_config__err(s, it, "%s: port 0 is not valid here", xp);
            continue;
        }
        n->dns_servers[n->n_dns_servers++] = a;
    }
}

static void node_section(struct arc_sctx *s, const struct arc_cn *m)
{
    struct arc_node_conf *n = &s->cfg->node;
    const char *p = "node";
    if (!arc_config__check_map(s, m, p, node_keys, N(node_keys)))
        return;
    arc_config__get_str(s, m, p, "id", ARC_STR_NONEMPTY | ARC_STR_NO_CTL, &n->id);
    arc_config__get_u32(s, m, p, "workers", 0, 1024, &n->workers);
    arc_config__get_u32(s, m, p, "max_connections", 0, UINT32_MAX, &n->max_connections);
    arc_config__get_dur(s, m, p, "read_timeout", 1, 24 * MS_H, false, &n->read_timeout);
    arc_config__get_dur(s, m, p, "write_timeout", 1, 24 * MS_H, false, &n->write_timeout);
    arc_config__get_dur(s, m, p, "idle_timeout", 1, 24 * MS_H, false, &n->idle_timeout);
    arc_config__get_dur(s, m, p, "drain_timeout", 0, 24 * MS_H, false, &n->drain_timeout);
    arc_config__get_dur(s, m, p, "lingering_timeout", 0, 5 * 60 * MS_S, false, &n->lingering_timeout);
    uint64_t mb = n->max_buffered_output;
    if (arc_config__get_size(s, m, p, "max_buffered_output", 4096, 64u << 20, false, &mb))
        n->max_buffered_output = (uint32_t)mb;
    arc_config__get_u32(s, m, p, "max_interim_responses", 0, 100, &n->max_interim_responses);
    arc_config__get_u32(s, m, p, "http2_header_table_size", 0, 65536, &n->http2_header_table_size);
    const struct arc_cn *v;
    if ((v = arc_config__val(m, "dns")))
        node_dns(s, v, n);
    if ((v = arc_config__val(m, "mirror")) &&
        arc_config__check_map(s, v, "node.mirror", node_mirror_keys, N(node_mirror_keys))) {
        pow2_u32(s, v, "node.mirror", "queue", 1, 1u << 20, &n->mirror_queue);
        arc_config__get_u32(s, v, "node.mirror", "max_in_flight", 1, 1u << 20,
                            &n->mirror_max_in_flight);
    }
}

static bool pow2_u32(struct arc_sctx *s, const struct arc_cn *m, const char *path,
                     const char *key, uint32_t min, uint32_t max, uint32_t *out)
{
    uint32_t v = *out;
    if (!arc_config__get_u32(s, m, path, key, min, max, &v))
        return false;
    if (v & (v - 1)) {
        char pb[ARC_PATH_MAX];
        arc_config__err(s, arc_config__val(m, key), "%s: must be a power of two, got %u",
                        arc_config__path(pb, path, key), v);
        return false;
    }
    *out = v;
    return true;
}

static void uring_section(struct arc_sctx *s, const struct arc_cn *m)
{
    struct arc_uring_conf *u = &s->cfg->uring;
    const char *p = "io_uring";
    if (!arc_config__check_map(s, m, p, uring_keys, N(uring_keys)))
        return;
    /* 32768 is the kernel's IORING_MAX_ENTRIES. */
    pow2_u32(s, m, p, "uring_entries", 1, 32768, &u->uring_entries);
    arc_config__get_bool(s, m, p, "sqpoll", &u->sqpoll);
    arc_config__get_u32(s, m, p, "sqpoll_idle_ms", 0, 3600000, &u->sqpoll_idle_ms);
    if (!u->sqpoll && arc_config__val(m, "sqpoll_idle_ms"))
        arc_config__err(s, arc_config__val(m, "sqpoll_idle_ms"),
                        "io_uring.sqpoll_idle_ms: only applies with sqpoll: true");
    uint64_t bs = u->buffer_size;
    if (arc_config__get_size(s, m, p, "buffer_size", 4096, 1u << 20, true, &bs))
        u->buffer_size = (uint32_t)bs;
    pow2_u32(s, m, p, "buffer_count", 1, 32768, &u->buffer_count);
    arc_config__get_u32(s, m, p, "buffers_per_connection", 0, 64, &u->buffers_per_connection);
}

static void socket_section(struct arc_sctx *s, const struct arc_cn *m, const char *lpath,
                           struct arc_listener_conf *l)
{
    char p[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    arc_config__path(p, lpath, "socket");
    if (!arc_config__check_map(s, m, p, socket_keys, N(socket_keys)))
        return;
    arc_config__get_u32(s, m, p, "backlog", 1, 1u << 20, &l->backlog);
    arc_config__get_u32(s, m, p, "tcp_fastopen_backlog", 0, 1u << 20, &l->tcp_fastopen_backlog);
    int64_t dscp = l->dscp;
    if (arc_config__get_int(s, m, p, "dscp", 0, 63, &dscp))
        l->dscp = (int)dscp;
    arc_config__get_dur(s, m, p, "defer_accept", 0, MS_H, true, &l->defer_accept);
    const struct arc_cn *ka = arc_config__val(m, "keepalive");
    if (ka) {
        arc_config__path(kp, p, "keepalive");
        if (arc_config__check_map(s, ka, kp, keepalive_keys, N(keepalive_keys))) {
            /* Kernel limits: TCP_KEEPIDLE/TCP_KEEPINTVL <= 32767 s,
             * TCP_KEEPCNT <= 127, all in whole seconds. */
            l->keepalive_enabled = true;
            arc_config__get_dur(s, ka, kp, "idle", MS_S, 32767 * MS_S, true, &l->keepalive_idle);
            arc_config__get_dur(s, ka, kp, "interval", MS_S, 32767 * MS_S, true,
                                &l->keepalive_interval);
            arc_config__get_u32(s, ka, kp, "count", 1, 127, &l->keepalive_count);
        }
    }
}

static void listener(struct arc_sctx *s, const struct arc_cn *m, const char *p,
                     struct arc_listener_conf *l)
{
    /* Same order as enum arc_listener_kind. */
    static const char *const kinds[] = { "http", "https" };
    static const char *const later_kinds[] = { "h3", "tcp", "udp" };
    l->kind = ARC_LISTENER_HTTP;
    l->backlog = 4096;
    l->dscp = -1;
    /* Used only when socket.keepalive is given without some of its keys. */
    l->keepalive_idle = 60 * MS_S;
    l->keepalive_interval = 10 * MS_S;
    l->keepalive_count = 6;
    if (!arc_config__check_map(s, m, p, listener_keys, N(listener_keys)))
        return;
    arc_config__get_str(s, m, p, "name", ARC_STR_NAME, &l->name);
    int kind = -1;
    if (arc_config__get_enum(s, m, p, "kind", kinds, N(kinds), later_kinds, N(later_kinds), &kind) &&
        kind >= 0)
        l->kind = (enum arc_listener_kind)kind;
    char pb[ARC_PATH_MAX];
    const struct arc_cn *tls = arc_config__get(m, "tls");
    if (tls && tls->kind != ARC_CN_NULL) {
        if (kind == ARC_LISTENER_HTTP)
            arc_config__err_key(s, tls, "%s: only applies to kind https (this listener is "
                                "kind http)", arc_config__path(pb, p, "tls"));
        else    /* https, or a kind already reported: still check the section */
            arc_config__listener_tls(s, tls, p, l);
    } else if (kind == ARC_LISTENER_HTTPS) {
        arc_config__err(s, arc_config__val(m, "kind"), "%s: kind https needs a 'tls' section "
                        "with at least one certificate", arc_config__path(pb, p, "tls"));
    }
    arc_config__get_addr(s, m, p, "bind", true, &l->bind);
    const struct arc_cn *sock = arc_config__val(m, "socket");
    if (sock)
        socket_section(s, sock, p, l);
    bool pp = false;
    if (arc_config__get_bool(s, m, p, "proxy_protocol", &pp) && pp)
        arc_config__err(s, arc_config__val(m, "proxy_protocol"),
                        "%s: proxy_protocol: true is not supported yet in this version",
                        arc_config__path(pb, p, "proxy_protocol"));
}

static uint16_t addr_port(const struct arc_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)&a->ss)->sin_port;
    if (a->ss.ss_family == AF_INET6)
        return ((const struct sockaddr_in6 *)(const void *)&a->ss)->sin6_port;
    return 0;
}

static void listeners_section(struct arc_sctx *s, const struct arc_cn *seq)
{
    struct arc_config *cfg = s->cfg;
    if (!arc_config__want(s, seq, "listeners", ARC_CN_SEQ))
        return;
    if (seq->n == 0) {
        arc_config__err(s, seq, "listeners: at least one listener is required");
        return;
    }
    cfg->listeners = arc_config__xcalloc(seq->n, sizeof(*cfg->listeners));
    cfg->n_listeners = seq->n;
    size_t i = 0;
    char p[ARC_PATH_MAX];
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++)
        listener(s, it, arc_config__path_index(p, "listeners", i), &cfg->listeners[i]);

    /* Names are unique; two listeners on one ip:port cannot both bind
     * (port 0 is exempt: each gets its own kernel-assigned port). */
    i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        const struct arc_listener_conf *l = &cfg->listeners[i];
        size_t j = 0;
        for (const struct arc_cn *jt = seq->first; jt != it; jt = jt->next, j++) {
            const struct arc_listener_conf *o = &cfg->listeners[j];
            if (l->name && o->name && strcmp(l->name, o->name) == 0) {
                const struct arc_cn *nv = arc_config__val(it, "name");
                arc_config__err(s, nv, "listeners[%zu].name: duplicate listener name '%s' "
                                "(first used at line %d)", i, l->name,
                                arc_config__val(jt, "name")->line);
                break;
            }
        }
        j = 0;
        for (const struct arc_cn *jt = seq->first; jt != it; jt = jt->next, j++) {
            const struct arc_listener_conf *o = &cfg->listeners[j];
            if (l->bind.len && o->bind.len && addr_port(&l->bind) != 0 &&
                strcmp(l->bind.text, o->bind.text) == 0) {
                arc_config__err(s, arc_config__val(it, "bind"),
                                "listeners[%zu].bind: %s is already used by listener '%s'",
                                i, l->bind.text, o->name ? o->name : "?");
                break;
            }
        }
    }
}

static void l7_section(struct arc_sctx *s, const struct arc_cn *m)
{
    if (!arc_config__check_map(s, m, "security.l7", l7_keys, N(l7_keys)))
        return;
    struct arc_guard_conf *g = &s->cfg->guard;
    arc_config__get_u32(s, m, "security.l7", "max_connections_per_ip", 0, 10000000,
                        &g->max_connections_per_ip);
    arc_config__get_u32(s, m, "security.l7", "ipv6_prefix", 1, 128, &g->ipv6_prefix);
    if (arc_config__get_u32(s, m, "security.l7", "max_tracked_addresses", 1, 65536,
                            &g->max_tracked_addresses))
        for (uint32_t n = 1;; n <<= 1)     /* (rounded up to a power of two) */
            if (n >= g->max_tracked_addresses) {
                g->max_tracked_addresses = n;
                break;
            }
    const struct arc_cn *sl = arc_config__val(m, "slowloris");
    const char *sp = "security.l7.slowloris";
    if (sl && arc_config__check_map(s, sl, sp, slowloris_keys, N(slowloris_keys))) {
        arc_config__get_bool(s, sl, sp, "enabled", &g->slowloris);
        arc_config__get_dur(s, sl, sp, "headers_timeout", 1, 24 * MS_H, false,
                            &g->headers_timeout);
        arc_config__get_u32(s, sl, sp, "min_recv_rate_bps", 0, 1u << 30, &g->min_recv_rate_bps);
        arc_config__get_dur(s, sl, sp, "min_recv_rate_window", 100, MS_H, false,
                            &g->min_recv_rate_window);
        arc_config__get_u32(s, sl, sp, "max_incomplete_per_ip", 0, 10000000,
                            &g->max_incomplete_per_ip);
        static const char *const over[] = { "close", "tarpit" };
        int k = g->incomplete_tarpit;
        if (arc_config__get_enum(s, sl, sp, "over_incomplete", over, N(over), NULL, 0, &k))
            g->incomplete_tarpit = k == 1;
    }
    const struct arc_cn *tf = arc_config__val(m, "tls_flood");
    const char *tp = "security.l7.tls_flood";
    if (tf && arc_config__check_map(s, tf, tp, tls_flood_keys, N(tls_flood_keys))) {
        arc_config__get_u32(s, tf, tp, "handshakes_per_ip_per_sec", 0, 10000000,
                            &g->handshakes_per_ip_per_sec);
        arc_config__get_u32(s, tf, tp, "max_handshakes_per_worker", 0, 10000000,
                            &g->max_handshakes_per_worker);
    }
    const struct arc_cn *f = arc_config__val(m, "h2_flood");
    const char *p = "security.l7.h2_flood";
    if (!f || !arc_config__check_map(s, f, p, h2_flood_keys, N(h2_flood_keys)))
        return;
    struct arc_h2_conf *h = &s->cfg->h2;
    arc_config__get_u32(s, f, p, "max_rst_per_sec", 1, 1000000, &h->max_rst_per_sec);
    arc_config__get_u32(s, f, p, "max_settings_per_sec", 1, 1000000, &h->max_settings_per_sec);
    arc_config__get_u32(s, f, p, "max_ping_per_sec", 1, 1000000, &h->max_ping_per_sec);
    arc_config__get_u32(s, f, p, "max_priority_per_sec", 1, 1000000, &h->max_priority_per_sec);
    arc_config__get_u32(s, f, p, "max_empty_data_per_sec", 1, 1000000, &h->max_empty_data_per_sec);
    arc_config__get_u32(s, f, p, "max_concurrent_streams", 1, 10000, &h->max_concurrent_streams);
    arc_config__get_u32(s, f, p, "max_continuations", 1, 1000, &h->max_continuations);
}

static void security_section(struct arc_sctx *s, const struct arc_cn *m)
{
    if (!arc_config__check_map(s, m, "security", security_keys, N(security_keys)))
        return;
    const struct arc_cn *xdp = arc_config__val(m, "xdp");
    if (xdp)
        arc_config__xdp(s, xdp);
    const struct arc_cn *l7 = arc_config__val(m, "l7");
    if (l7)
        l7_section(s, l7);
    const struct arc_cn *lm = arc_config__val(m, "limits");
    const char *p = "security.limits";
    if (!lm || !arc_config__check_map(s, lm, p, limits_keys, N(limits_keys)))
        return;
    struct arc_limits_conf *l = &s->cfg->limits;
    uint64_t v = l->max_header_bytes;
    if (arc_config__get_size(s, lm, p, "max_header_bytes", 1024, 1u << 20, false, &v))
        l->max_header_bytes = (uint32_t)v;
    arc_config__get_u32(s, lm, p, "max_headers", 1, 10000, &l->max_headers);
    v = l->max_uri;
    if (arc_config__get_size(s, lm, p, "max_uri", 256, 1u << 20, false, &v))
        l->max_uri = (uint32_t)v;
}

/* A list of histogram bucket upper bounds: 1 to ARC_HIST_MAX_BUCKETS
 * values, strictly ascending. Durations are milliseconds (fractions
 * allowed, kept in ns); sizes are bytes or "64kb"-style strings. The list
 * replaces the default only when every item is valid. */
static void bucket_list(struct arc_sctx *s, const struct arc_cn *m, const char *path,
                        const char *key, bool dur, uint64_t *out, uint32_t *n_out)
{
    char pb[ARC_PATH_MAX], ib[ARC_PATH_MAX], sb[72];
    const struct arc_cn *seq = arc_config__val(m, key);
    const char *p = arc_config__path(pb, path, key);
    if (!seq || !arc_config__want(s, seq, p, ARC_CN_SEQ))
        return;
    if (seq->n == 0 || seq->n > ARC_HIST_MAX_BUCKETS) {
        arc_config__err(s, seq, "%s: expected 1 to %d bucket bounds, got %zu", p,
                        ARC_HIST_MAX_BUCKETS, seq->n);
        return;
    }
    uint64_t v[ARC_HIST_MAX_BUCKETS];
    size_t i = 0;
    bool ok = true;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        const char *what = arc_config__path_index(ib, p, i);
        uint64_t x = 0;
        if (dur) {
            if (it->kind != ARC_CN_INT && it->kind != ARC_CN_FLOAT) {
                arc_config__err(s, it, "%s: expected a number of milliseconds, got %s", what,
                                arc_config__kind_name(it->kind));
                ok = false;
                continue;
            }
            double ms = it->kind == ARC_CN_INT ? (double)it->v.i : it->v.f;
            if (!(ms >= 0.001 && ms <= 3600000.0)) {
                arc_config__err(s, it, "%s: a bucket bound in milliseconds must be between "
                                "0.001 and 3600000", what);
                ok = false;
                continue;
            }
            x = (uint64_t)(ms * 1e6 + 0.5);
        } else if (it->kind == ARC_CN_STR) {
            if (memchr(it->v.s.p, '\0', it->v.s.len) || arc_config_parse_size(it->v.s.p, &x) < 0 ||
                x == 0) {
                arc_config__err(s, it, "%s: invalid size '%s' (expected bytes or a number with "
                                "kb, mb or gb, e.g. \"64kb\")", what,
                                arc_config__show(sb, it->v.s.p, it->v.s.len));
                ok = false;
                continue;
            }
        } else {
            int64_t b;
            if (!arc_config__int_value(s, it, what, 1, INT64_MAX, &b)) {
                ok = false;
                continue;
            }
            x = (uint64_t)b;
        }
        if (i > 0 && ok && x <= v[i - 1]) {
            arc_config__err(s, it, "%s: bucket bounds must be strictly ascending", what);
            ok = false;
        }
        v[i] = x;
    }
    if (!ok)
        return;
    memcpy(out, v, seq->n * sizeof(v[0]));
    *n_out = (uint32_t)seq->n;
}

static void histograms_section(struct arc_sctx *s, const struct arc_cn *m)
{
    const char *p = "observability.histograms";
    if (!arc_config__check_map(s, m, p, histogram_keys, N(histogram_keys)))
        return;
    struct arc_histograms_conf *h = &s->cfg->histograms;
    arc_config__get_bool(s, m, p, "enabled", &h->enabled);
    bucket_list(s, m, p, "duration_buckets_ms", true, h->duration_ns, &h->n_duration);
    bucket_list(s, m, p, "size_buckets", false, h->size, &h->n_size);
}

static void observability_section(struct arc_sctx *s, const struct arc_cn *m)
{
    const char *p = "observability";
    if (!arc_config__check_map(s, m, p, obs_keys, N(obs_keys)))
        return;
    arc_config__get_addr(s, m, p, "metrics_bind", true, &s->cfg->metrics_bind);
    arc_config__get_bool(s, m, p, "metrics_enabled", &s->cfg->metrics_enabled);
    const struct arc_cn *t = arc_config__val(m, "tracing");
    if (t)
        arc_config__tracing(s, t);
    arc_config__get_u32(s, m, p, "max_status_series_per_route", 1, 1000,
                        &s->cfg->status_series);
    const struct arc_cn *h = arc_config__val(m, "histograms");
    if (h)
        histograms_section(s, h);
}

/* A bearer token travels in an Authorization header: RFC 6750's b64token
 * characters only, so it never needs quoting or escaping, and long enough
 * that guessing it is hopeless. */
#define CP_TOKEN_MIN 16

static bool b64token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

static void control_plane_token(struct arc_sctx *s, const struct arc_cn *m, const char *p)
{
    struct arc_control_plane_conf *cp = &s->cfg->control_plane;
    const struct arc_cn *v = arc_config__val(m, "auth_token");
    char pb[ARC_PATH_MAX];
    const char *what = arc_config__path(pb, p, "auth_token");
    if (!v || !arc_config__want(s, v, what, ARC_CN_STR))
        return;
    size_t n = v->v.s.len;
    bool ok = n >= CP_TOKEN_MIN && n <= ARC_CP_TOKEN_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = b64token_char(v->v.s.p[i]);
    /* The value is a secret: never quote it in an error. */
    if (!ok) {
        arc_config__err(s, v, "%s: expected %d to %d characters of A-Z a-z 0-9 - . _ ~ + / = "
                        "(a bearer token, RFC 6750), got %zu characters%s", what, CP_TOKEN_MIN,
                        ARC_CP_TOKEN_MAX, n, n >= CP_TOKEN_MIN && n <= ARC_CP_TOKEN_MAX
                        ? " with others among them" : "");
        return;
    }
    memcpy(cp->auth_token, v->v.s.p, n);
    cp->auth_token[n] = '\0';
    cp->has_token = true;
}

/* config_source.etcd: endpoints are "http://ip:port" (etcd's JSON gateway;
 * TLS to etcd is not supported), the prefix a key prefix. */
static void etcd_source(struct arc_sctx *s, const struct arc_cn *m, const char *sp)
{
    struct arc_control_plane_conf *cp = &s->cfg->control_plane;
    char p[ARC_PATH_MAX], ip[ARC_PATH_MAX];
    arc_config__path(p, sp, "etcd");
    if (!arc_config__check_map(s, m, p, etcd_keys, N(etcd_keys)))
        return;
    const struct arc_cn *eps = arc_config__val(m, "endpoints");
    const char *epp = arc_config__path(ip, p, "endpoints");
    if (eps && arc_config__want(s, eps, epp, ARC_CN_SEQ)) {
        if (eps->n == 0 || eps->n > ARC_CP_ETCD_MAX)
            arc_config__err(s, eps, "%s: expected 1 to %d endpoints, got %zu", epp,
                            ARC_CP_ETCD_MAX, eps->n);
        size_t i = 0;
        for (const struct arc_cn *it = eps->first; it && i < ARC_CP_ETCD_MAX; it = it->next, i++) {
            char what[ARC_PATH_MAX];
            snprintf(what, sizeof(what), "%s[%zu]", epp, i);
            if (!arc_config__want(s, it, what, ARC_CN_STR))
                continue;
            const char *u = it->v.s.p;
            if (strncmp(u, "https://", 8) == 0) {
                arc_config__err(s, it, "%s: https endpoints are not supported yet (use "
                                "http:// on a trusted network or loopback)", what);
                continue;
            }
            if (strncmp(u, "http://", 7) != 0 ||
                arc_config_parse_addr(u + 7, &cp->etcd[cp->n_etcd]) < 0) {
                arc_config__err(s, it, "%s: '%s' is not an endpoint (expected http://ip:port, "
                                "an IP literal)", what, u);
                continue;
            }
            cp->n_etcd++;
        }
    }
    const struct arc_cn *pre = arc_config__val(m, "prefix");
    const char *pp = arc_config__path(ip, p, "prefix");
    snprintf(cp->etcd_prefix, sizeof(cp->etcd_prefix), "/arc/");
    if (pre && arc_config__str_value(s, pre, pp, ARC_STR_NONEMPTY | ARC_STR_NO_CTL)) {
        if (pre->v.s.len > ARC_CP_ETCD_PREFIX_MAX)
            arc_config__err(s, pre, "%s: longer than %d bytes", pp, ARC_CP_ETCD_PREFIX_MAX);
        else
            memcpy(cp->etcd_prefix, pre->v.s.p, pre->v.s.len + 1);
    }
}

static void control_plane_section(struct arc_sctx *s, const struct arc_cn *m)
{
    struct arc_control_plane_conf *cp = &s->cfg->control_plane;
    const char *p = "control_plane";
    if (!arc_config__check_map(s, m, p, control_plane_keys, N(control_plane_keys)))
        return;
    char pb[ARC_PATH_MAX];
    arc_config__get_bool(s, m, p, "enabled", &cp->enabled);
    arc_config__get_addr(s, m, p, "bind", true, &cp->bind);
    control_plane_token(s, m, p);
    char *id = NULL;
    if (arc_config__get_str(s, m, p, "node_id", ARC_STR_NAME, &id) && id) {
        snprintf(cp->node_id, sizeof(cp->node_id), "%s", id);
        free(id);
    }
    uint64_t mb = cp->max_body;
    if (arc_config__get_size(s, m, p, "max_body", 1024, ARC_CONF_MAX_BYTES, false, &mb))
        cp->max_body = (uint32_t)mb;
    /* `file` (the default) is the file given to `arc run`; `etcd
     * {endpoints, prefix}` a key in etcd, watched (admin/etcd.c). */
    const struct arc_cn *src = arc_config__val(m, "config_source");
    const char *sp = arc_config__path(pb, p, "config_source");
    if (src && src->kind == ARC_CN_MAP) {
        if (arc_config__check_map(s, src, sp, config_source_keys, N(config_source_keys)) &&
            src->n == 0)
            arc_config__err(s, src, "%s: expected file or etcd", sp);
        const struct arc_cn *e = arc_config__val(src, "etcd");
        if (e)
            etcd_source(s, e, sp);
    } else if (src && src->kind == ARC_CN_STR && strcmp(src->v.s.p, "etcd") == 0) {
        arc_config__err(s, src, "%s: etcd needs its settings: {etcd: {endpoints: "
                        "[\"http://ip:port\"], prefix: \"/arc/\"}}", sp);
    } else if (src) {
        static const char *const kinds[] = { "file" };
        int k = 0;
        arc_config__get_enum(s, m, p, "config_source", kinds, N(kinds), NULL, 0, &k);
    }
}

/* The metrics listener cannot share an ip:port with a proxy listener. The
 * error points at metrics_bind if it was written, else at the listener. */
static void check_metrics_bind(struct arc_sctx *s, const struct arc_cn *root)
{
    const struct arc_config *cfg = s->cfg;
    if (!cfg->metrics_enabled || addr_port(&cfg->metrics_bind) == 0)
        return;
    const struct arc_cn *mb = arc_config__val(arc_config__val(root, "observability"),
                                              "metrics_bind");
    const struct arc_cn *seq = arc_config__val(root, "listeners");
    const struct arc_cn *it = seq && seq->kind == ARC_CN_SEQ ? seq->first : NULL;
    for (size_t i = 0; i < cfg->n_listeners && it; i++, it = it->next) {
        const struct arc_listener_conf *l = &cfg->listeners[i];
        if (!l->bind.len || strcmp(l->bind.text, cfg->metrics_bind.text) != 0)
            continue;
        if (mb)
            arc_config__err(s, mb, "observability.metrics_bind: %s is already used by "
                            "listener '%s'", cfg->metrics_bind.text, l->name ? l->name : "?");
        else
            arc_config__err(s, arc_config__val(it, "bind"),
                            "listeners[%zu].bind: %s is the default observability.metrics_bind;"
                            " set metrics_bind to another address", i, l->bind.text);
        return;
    }
}

/* The control-plane listener cannot share an ip:port with a proxy
 * listener or the metrics listener (port 0 is exempt: its own port). */
static void check_control_bind(struct arc_sctx *s, const struct arc_cn *root)
{
    const struct arc_config *cfg = s->cfg;
    const struct arc_control_plane_conf *cp = &cfg->control_plane;
    if (!cp->enabled || addr_port(&cp->bind) == 0)
        return;
    const struct arc_cn *cm = arc_config__val(root, "control_plane");
    const struct arc_cn *at = arc_config__val(cm, "bind");
    if (!at)
        at = arc_config__val(cm, "enabled");
    const char *by = NULL;
    for (size_t i = 0; i < cfg->n_listeners && !by; i++)
        if (cfg->listeners[i].bind.len && strcmp(cfg->listeners[i].bind.text, cp->bind.text) == 0)
            by = cfg->listeners[i].name ? cfg->listeners[i].name : "?";
    if (by)
        arc_config__err(s, at, "control_plane.bind: %s is already used by listener '%s'",
                        cp->bind.text, by);
    else if (cfg->metrics_enabled && strcmp(cfg->metrics_bind.text, cp->bind.text) == 0)
        arc_config__err(s, at, "control_plane.bind: %s is already used by "
                        "observability.metrics_bind", cp->bind.text);
}

int arc_config__build(const struct arc_cn *root, struct arc_config *cfg,
                      struct arc_conf_diag *d)
{
    struct arc_sctx s = { .d = d, .cfg = cfg };
    size_t before = arc_config__error_count(d);
    set_defaults(cfg);
    if (!root) {
        arc_config__error(d, 0, 0, "configuration is empty (expected a mapping with at least "
                          "'listeners')");
        return -1;
    }
    if (!arc_config__check_map(&s, root, "", top_keys, N(top_keys)))
        return -1;
    const struct arc_cn *v;
    if ((v = arc_config__val(root, "node")))
        node_section(&s, v);
    if ((v = arc_config__val(root, "io_uring")))
        uring_section(&s, v);
    if ((v = arc_config__val(root, "listeners")))
        listeners_section(&s, v);
    if ((v = arc_config__val(root, "upstreams")))
        arc_config__upstreams(&s, v);
    arc_config__plugin_defaults(cfg);
    arc_config__xdp_defaults(cfg);
    if ((v = arc_config__val(root, "plugins")))
        arc_config__plugins(&s, v);     /* before routes: they name plugins */
    if ((v = arc_config__val(root, "rate_limits")))
        arc_config__rate_limits(&s, v); /* before routes: scope: global needs its section */
    if ((v = arc_config__val(root, "routes")))
        arc_config__routes(&s, v);
    if ((v = arc_config__val(root, "security")))
        security_section(&s, v);
    if ((v = arc_config__val(root, "observability")))
        observability_section(&s, v);
    if ((v = arc_config__val(root, "control_plane")))
        control_plane_section(&s, v);
    if ((v = arc_config__val(root, "logging")))
        arc_config__logging(&s, v);
    check_metrics_bind(&s, root);
    check_control_bind(&s, root);
    return arc_config__error_count(d) > before ? -1 : 0;
}
