/*
 * Schema, part 2: upstreams[] (static discovery, load balancing, pool and
 * timeouts). Defaults are those in config.h's struct arc_upstream_conf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema_int.h"
#include "upstream/lb.h"

#define REQ ARC_KEY_REQUIRED
#define LATER ARC_KEY_LATER
#define N(a) (sizeof(a) / sizeof((a)[0]))

#define MS_S 1000ull
#define MS_H (3600ull * 1000)

static const struct arc_conf_key upstream_keys[] = {
    { "name", REQ }, { "discovery", REQ }, { "lb", 0 }, { "pool", 0 }, { "timeouts", 0 },
    { "protocol", 0 }, { "health", 0 }, { "tls", 0 },
    { "circuit_breaker", 0 },
};

static const struct arc_conf_key circuit_keys[] = {
    { "max_connections", 0 }, { "max_pending", 0 }, { "max_requests", 0 },
    { "pending_timeout", 0 }, { "per_endpoint", 0 },
};

static const struct arc_conf_key circuit_ep_keys[] = {
    { "max_connections", 0 }, { "max_pending", 0 }, { "max_requests", 0 },
};

static const struct arc_conf_key health_keys[] = {
    { "active", 0 }, { "passive", 0 }, { "panic_threshold", 0 },
};

static const struct arc_conf_key active_keys[] = {
    { "interval", 0 }, { "timeout", 0 }, { "path", 0 }, { "expect_status", 0 },
    { "fail_after", 0 }, { "pass_after", 0 },
};

static const struct arc_conf_key passive_keys[] = {
    { "consecutive_failures", 0 }, { "error_rate_threshold", 0 }, { "window", 0 },
    { "min_requests", 0 }, { "ejection_time", 0 }, { "max_ejection_time", 0 },
    { "max_ejection_percent", 0 },
};

static const struct arc_conf_key discovery_keys[] = {
    { "type", REQ }, { "endpoints", 0 }, { "hostname", 0 }, { "port", 0 },
    { "respect_ttl", 0 }, { "fallback_poll", 0 },
};

static const struct arc_conf_key endpoint_keys[] = {
    { "address", REQ }, { "weight", 0 },
};

static const struct arc_conf_key lb_keys[] = {
    { "algorithm", 0 }, { "decay", 0 }, { "key", 0 }, { "virtual_nodes", 0 },
    { "table_size", 0 },
};

static const struct arc_conf_key lb_key_keys[] = {
    { "by", REQ }, { "name", 0 },
};

static const struct arc_conf_key pool_keys[] = {
    { "max_idle", 0 }, { "idle_ttl", 0 }, { "max_lifetime", 0 }, { "max_connections", 0 },
};

static const struct arc_conf_key timeout_keys[] = {
    { "connect", 0 }, { "write", 0 }, { "ttfb", 0 }, { "read", 0 },
};

/* Same order as enum arc_lb_algorithm. */
static const char *const lb_names[] = {
    "round_robin", "weighted_round_robin", "least_requests", "peak_ewma", "consistent_hash",
    "maglev",
};

static void endpoints(struct arc_sctx *s, const struct arc_cn *seq, const char *dpath,
                      struct arc_upstream_conf *u)
{
    char p[ARC_PATH_MAX], ip[ARC_PATH_MAX];
    arc_config__path(p, dpath, "endpoints");
    if (!arc_config__want(s, seq, p, ARC_CN_SEQ))
        return;
    if (seq->n == 0) {
        arc_config__err(s, seq, "%s: at least one endpoint is required", p);
        return;
    }
    u->endpoints = arc_config__xcalloc(seq->n, sizeof(*u->endpoints));
    u->n_endpoints = seq->n;
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        struct arc_endpoint_conf *e = &u->endpoints[i];
        e->weight = 1;
        arc_config__path_index(ip, p, i);
        if (!arc_config__check_map(s, it, ip, endpoint_keys, N(endpoint_keys)))
            continue;
        /* Port 0 is "any port" for bind, meaningless for connect. */
        arc_config__get_addr(s, it, ip, "address", false, &e->address);
        arc_config__get_u32(s, it, ip, "weight", 1, 10000, &e->weight);
        size_t j = 0;
        for (const struct arc_cn *jt = seq->first; jt != it; jt = jt->next, j++) {
            if (e->address.len && u->endpoints[j].address.len &&
                strcmp(e->address.text, u->endpoints[j].address.text) == 0) {
                arc_config__err(s, arc_config__val(it, "address"),
                                "%s.address: duplicate endpoint %s (also %s[%zu])", ip,
                                e->address.text, p, j);
                break;
            }
        }
    }
}

/* A DNS name: dot-separated labels of letters, digits, '-' and '_', each
 * 1..63 bytes, at most 253 in all (one trailing dot allowed). */
static bool dns_name_ok(const char *h)
{
    size_t n = strlen(h), label = 0;
    if (n == 0 || n > 254 || (n == 254 && h[253] != '.') || h[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || ++label > 63)
            return false;
    }
    return true;
}

static void discovery(struct arc_sctx *s, const struct arc_cn *m, const char *upath,
                      struct arc_upstream_conf *u)
{
    static const char *const types[] = { "static", "dns" };
    static const char *const dns_keys[] = { "hostname", "port", "respect_ttl", "fallback_poll" };
    char p[ARC_PATH_MAX];
    arc_config__path(p, upath, "discovery");
    if (!arc_config__check_map(s, m, p, discovery_keys, N(discovery_keys)))
        return;
    int type = -1;
    arc_config__get_enum(s, m, p, "type", types, N(types), NULL, 0, &type);
    const struct arc_cn *eps = arc_config__val(m, "endpoints"), *v;
    if (type == 1) {
        if (eps)
            arc_config__err(s, eps, "%s.endpoints: not used with type: dns (the endpoints "
                            "are the addresses 'hostname' resolves to)", p);
        u->dns.respect_ttl = true;
        u->dns.fallback_poll = 10 * MS_S;
        if (!arc_config__val(m, "hostname"))
            arc_config__err(s, m, "missing required key 'hostname' in %s (type: dns)", p);
        else if (arc_config__get_str(s, m, p, "hostname", ARC_STR_NONEMPTY, &u->dns.hostname) &&
                 !dns_name_ok(u->dns.hostname))
            arc_config__err(s, arc_config__val(m, "hostname"), "%s.hostname: '%s' is not a "
                            "DNS name (labels of letters, digits, '-', '_', 1 to 63 bytes each)",
                            p, u->dns.hostname);
        uint32_t port = 0;
        if (!arc_config__val(m, "port"))
            arc_config__err(s, m, "missing required key 'port' in %s (type: dns)", p);
        else if (arc_config__get_u32(s, m, p, "port", 1, 65535, &port))
            u->dns.port = (uint16_t)port;
        arc_config__get_bool(s, m, p, "respect_ttl", &u->dns.respect_ttl);
        arc_config__get_dur(s, m, p, "fallback_poll", 100, 24 * MS_H, false,
                            &u->dns.fallback_poll);
        return;
    }
    for (size_t i = 0; type == 0 && i < N(dns_keys); i++)
        if ((v = arc_config__val(m, dns_keys[i])))
            arc_config__err(s, v, "%s.%s: only used with type: dns", p, dns_keys[i]);
    if (eps)
        endpoints(s, eps, p, u);
    else if (type == 0)
        arc_config__err(s, m, "missing required key 'endpoints' in %s (type: static)", p);
}

static bool is_prime(uint32_t v)
{
    for (uint32_t d = 2; (uint64_t)d * d <= v; d++)
        if (v % d == 0)
            return false;
    return v >= 2;
}

static void lb(struct arc_sctx *s, const struct arc_cn *m, const char *upath,
               struct arc_upstream_conf *u)
{
    char p[ARC_PATH_MAX];
    arc_config__path(p, upath, "lb");
    if (!arc_config__check_map(s, m, p, lb_keys, N(lb_keys)))
        return;
    int alg = (int)u->lb;
    bool alg_ok = arc_config__get_enum(s, m, p, "algorithm", lb_names, N(lb_names), NULL, 0,
                                       &alg);
    if (alg_ok)
        u->lb = (enum arc_lb_algorithm)alg;
    bool hashed = u->lb == ARC_LB_CONSISTENT_HASH || u->lb == ARC_LB_MAGLEV;
    /* A knob that does nothing is a mistake worth reporting. */
    const struct arc_cn *v;
    if (alg_ok && !hashed && (v = arc_config__val(m, "key")))
        arc_config__err(s, v, "%s.key: only applies to algorithms consistent_hash and maglev", p);
    if (alg_ok && u->lb != ARC_LB_CONSISTENT_HASH && (v = arc_config__val(m, "virtual_nodes")))
        arc_config__err(s, v, "%s.virtual_nodes: only applies to algorithm consistent_hash", p);
    if (alg_ok && u->lb != ARC_LB_MAGLEV && (v = arc_config__val(m, "table_size")))
        arc_config__err(s, v, "%s.table_size: only applies to algorithm maglev", p);
    if (alg_ok && u->lb == ARC_LB_CONSISTENT_HASH &&
        arc_config__get_u32(s, m, p, "virtual_nodes", 1, 10000, &u->lb_virtual_nodes)) {
        uint64_t slots = (uint64_t)u->lb_virtual_nodes * (u->n_endpoints ? u->n_endpoints : 1);
        const struct arc_cn *vn = arc_config__val(m, "virtual_nodes");
        if (slots > ARC_LB_MAX_SLOTS)
            arc_config__err(s, vn ? vn : m, "%s.virtual_nodes: %u per endpoint x %zu endpoints "
                            "is over the limit of %u ring points", p, u->lb_virtual_nodes,
                            u->n_endpoints, (unsigned)ARC_LB_MAX_SLOTS);
    }
    if (alg_ok && u->lb == ARC_LB_MAGLEV &&
        arc_config__get_u32(s, m, p, "table_size", 3, ARC_LB_MAX_SLOTS, &u->lb_table_size)) {
        const struct arc_cn *ts = arc_config__val(m, "table_size");
        if (!is_prime(u->lb_table_size))
            arc_config__err(s, ts ? ts : m, "%s.table_size: %u is not a prime", p,
                            u->lb_table_size);
        else if (u->lb_table_size <= u->n_endpoints)
            arc_config__err(s, ts ? ts : m, "%s.table_size: %u must be larger than the number "
                            "of endpoints (%zu)", p, u->lb_table_size, u->n_endpoints);
    }
    if (alg_ok && hashed) {
        const struct arc_cn *k = arc_config__val(m, "key");
        char kp[ARC_PATH_MAX];
        arc_config__path(kp, p, "key");
        if (k && arc_config__check_map(s, k, kp, lb_key_keys, N(lb_key_keys))) {
            /* Same order as enum arc_lb_key_by. */
            static const char *const bys[] = { "client_ip", "header", "cookie" };
            int by = (int)u->lb_key_by;
            if (arc_config__get_enum(s, k, kp, "by", bys, N(bys), NULL, 0, &by))
                u->lb_key_by = (enum arc_lb_key_by)by;
            const struct arc_cn *nm = arc_config__val(k, "name");
            if (u->lb_key_by == ARC_LB_KEY_CLIENT_IP && nm)
                arc_config__err(s, nm, "%s.name: not used with by: client_ip", kp);
            else if (u->lb_key_by != ARC_LB_KEY_CLIENT_IP && !nm)
                arc_config__err(s, k, "%s: by: %s needs a name", kp, bys[u->lb_key_by]);
            else if (nm && arc_config__get_str(s, k, kp, "name", ARC_STR_NONEMPTY, &u->lb_key_name) &&
                     u->lb_key_by == ARC_LB_KEY_HEADER &&
                     !arc_config__is_token(u->lb_key_name, strlen(u->lb_key_name)))
                arc_config__err(s, nm, "%s.name: '%s' is not a valid header name", kp,
                                u->lb_key_name);
        }
    }
    const struct arc_cn *decay = arc_config__val(m, "decay");
    if (!decay)
        return;
    if (alg_ok && u->lb != ARC_LB_PEAK_EWMA) {
        /* A knob that does nothing is a mistake worth reporting. */
        arc_config__err(s, decay, "%s.decay: only applies to algorithm peak_ewma", p);
        return;
    }
    arc_config__get_dur(s, m, p, "decay", 1, MS_H, false, &u->peak_ewma_decay);
}

/* A number in [0, 1] (0 and 1 may be written as integers). */
static void get_fraction(struct arc_sctx *s, const struct arc_cn *m, const char *path,
                         const char *key, double *out)
{
    const struct arc_cn *v = arc_config__val(m, key);
    if (!v)
        return;
    double f;
    if (v->kind == ARC_CN_INT)
        f = (double)v->v.i;
    else if (v->kind == ARC_CN_FLOAT)
        f = v->v.f;
    else {
        arc_config__err(s, v, "%s.%s: expected a number between 0 and 1", path, key);
        return;
    }
    if (f < 0 || f > 1) {
        arc_config__err(s, v, "%s.%s: must be between 0 and 1, got %g", path, key, f);
        return;
    }
    *out = f;
}

/* One expect_status item: 204 or "200-399". */
static bool status_range(struct arc_sctx *s, const struct arc_cn *it, const char *ip,
                         uint16_t *lo, uint16_t *hi)
{
    if (it->kind == ARC_CN_INT) {
        int64_t v;
        if (!arc_config__int_value(s, it, ip, 100, 599, &v))
            return false;
        *lo = *hi = (uint16_t)v;
        return true;
    }
    unsigned a, b;
    char tail;
    if (it->kind != ARC_CN_STR || sscanf(it->v.s.p, "%u-%u%c", &a, &b, &tail) != 2 ||
        a < 100 || b > 599 || a > b) {
        arc_config__err(s, it, "%s: expected a status (100-599) or a range like \"200-399\"",
                        ip);
        return false;
    }
    *lo = (uint16_t)a;
    *hi = (uint16_t)b;
    return true;
}

static void active(struct arc_sctx *s, const struct arc_cn *m, const char *hpath,
                   struct arc_upstream_conf *u)
{
    char p[ARC_PATH_MAX], ep[ARC_PATH_MAX], ip[ARC_PATH_MAX];
    arc_config__path(p, hpath, "active");
    if (!arc_config__check_map(s, m, p, active_keys, N(active_keys)))
        return;
    struct arc_active_conf *ac = &u->active;
    ac->enabled = true;
    arc_config__get_dur(s, m, p, "interval", 100, 24 * MS_H, false, &ac->interval);
    arc_config__get_dur(s, m, p, "timeout", 1, 60 * MS_S, false, &ac->timeout);
    arc_config__get_u32(s, m, p, "fail_after", 1, 1000, &ac->fail_after);
    arc_config__get_u32(s, m, p, "pass_after", 1, 1000, &ac->pass_after);
    char *path = NULL;
    const struct arc_cn *pv = arc_config__val(m, "path");
    if (arc_config__get_str(s, m, p, "path", ARC_STR_NONEMPTY | ARC_STR_NO_CTL, &path) && path) {
        if (path[0] != '/' || strpbrk(path, " \t") || strlen(path) > 1024) {
            arc_config__err(s, pv, "%s.path: must start with '/' and have no spaces (at most "
                            "1024 bytes)", p);
            free(path);
        } else {
            free(ac->path);
            ac->path = path;
        }
    }
    const struct arc_cn *es = arc_config__val(m, "expect_status");
    arc_config__path(ep, p, "expect_status");
    if (es && arc_config__want(s, es, ep, ARC_CN_SEQ)) {
        if (es->n == 0 || es->n > ARC_ACTIVE_MAX_RANGES) {
            arc_config__err(s, es, "%s: 1 to %d statuses or ranges", ep, ARC_ACTIVE_MAX_RANGES);
            return;
        }
        ac->n_expect = 0;
        size_t i = 0;
        for (const struct arc_cn *it = es->first; it; it = it->next, i++)
            if (status_range(s, it, arc_config__path_index(ip, ep, i), &ac->expect_lo[ac->n_expect],
                             &ac->expect_hi[ac->n_expect]))
                ac->n_expect++;
    }
}

static void health(struct arc_sctx *s, const struct arc_cn *m, const char *upath,
                   struct arc_upstream_conf *u)
{
    char p[ARC_PATH_MAX], pp[ARC_PATH_MAX];
    arc_config__path(p, upath, "health");
    if (!arc_config__check_map(s, m, p, health_keys, N(health_keys)))
        return;
    arc_config__get_u32(s, m, p, "panic_threshold", 0, 100, &u->panic_threshold);
    const struct arc_cn *a = arc_config__val(m, "active");
    if (a)
        active(s, a, p, u);
    const struct arc_cn *v = arc_config__val(m, "passive");
    if (!v)
        return;
    arc_config__path(pp, p, "passive");
    struct arc_passive_conf *pc = &u->passive;
    if (!arc_config__check_map(s, v, pp, passive_keys, N(passive_keys)))
        return;
    pc->enabled = true;
    arc_config__get_u32(s, v, pp, "consecutive_failures", 0, 1000000, &pc->consecutive_failures);
    get_fraction(s, v, pp, "error_rate_threshold", &pc->error_rate_threshold);
    arc_config__get_dur(s, v, pp, "window", 1, 24 * MS_H, false, &pc->window);
    arc_config__get_u32(s, v, pp, "min_requests", 1, 1000000, &pc->min_requests);
    arc_config__get_dur(s, v, pp, "ejection_time", 1, 24 * MS_H, false, &pc->ejection_time);
    arc_config__get_dur(s, v, pp, "max_ejection_time", 1, 24 * MS_H, false,
                        &pc->max_ejection_time);
    arc_config__get_u32(s, v, pp, "max_ejection_percent", 0, 100, &pc->max_ejection_percent);
    const struct arc_cn *mx = arc_config__val(v, "max_ejection_time");
    if (pc->max_ejection_time < pc->ejection_time)
        arc_config__err(s, mx ? mx : v, "%s.max_ejection_time: must not be below ejection_time",
                        pp);
}

static void circuit(struct arc_sctx *s, const struct arc_cn *m, const char *upath,
                    struct arc_upstream_conf *u)
{
    char p[ARC_PATH_MAX], ep[ARC_PATH_MAX];
    arc_config__path(p, upath, "circuit_breaker");
    if (!arc_config__check_map(s, m, p, circuit_keys, N(circuit_keys)))
        return;
    struct arc_circuit_conf *c = &u->circuit;
    arc_config__get_u32(s, m, p, "max_connections", 0, 1000000, &c->max_connections);
    arc_config__get_u32(s, m, p, "max_pending", 0, 1000000, &c->max_pending);
    arc_config__get_u32(s, m, p, "max_requests", 0, 1000000, &c->max_requests);
    arc_config__get_dur(s, m, p, "pending_timeout", 1, 24 * MS_H, false, &c->pending_timeout);
    const struct arc_cn *v = arc_config__val(m, "per_endpoint");
    arc_config__path(ep, p, "per_endpoint");
    if (v && arc_config__check_map(s, v, ep, circuit_ep_keys, N(circuit_ep_keys))) {
        arc_config__get_u32(s, v, ep, "max_connections", 0, 1000000, &c->ep_max_connections);
        arc_config__get_u32(s, v, ep, "max_pending", 0, 1000000, &c->ep_max_pending);
        arc_config__get_u32(s, v, ep, "max_requests", 0, 1000000, &c->ep_max_requests);
    }
}

static void upstream(struct arc_sctx *s, const struct arc_cn *m, const char *p,
                     struct arc_upstream_conf *u)
{
    /* Same order as enum arc_up_protocol. */
    static const char *const protocols[] = { "http1", "http2" };
    char sp[ARC_PATH_MAX];
    u->lb = ARC_LB_PEAK_EWMA;
    u->peak_ewma_decay = 10 * MS_S;
    u->lb_key_by = ARC_LB_KEY_CLIENT_IP;
    u->lb_virtual_nodes = 160;
    u->lb_table_size = 65537;
    u->pool_max_idle = 1024;
    u->pool_idle_ttl = 30 * MS_S;
    u->pool_max_lifetime = 300 * MS_S;
    u->pool_max_connections = 0;
    u->connect_timeout = 2 * MS_S;
    u->write_timeout = 30 * MS_S;
    u->ttfb_timeout = 30 * MS_S;
    u->read_timeout = 30 * MS_S;
    u->passive = (struct arc_passive_conf){
        .consecutive_failures = 5, .error_rate_threshold = 0.2, .window = 30 * MS_S,
        .min_requests = 10, .ejection_time = 30 * MS_S, .max_ejection_time = 300 * MS_S,
        .max_ejection_percent = 50,
    };
    u->panic_threshold = 50;
    u->active = (struct arc_active_conf){
        .interval = 10 * MS_S, .timeout = 1 * MS_S, .expect_lo = { 200 }, .expect_hi = { 399 },
        .n_expect = 1, .fail_after = 3, .pass_after = 2,
    };
    u->active.path = arc_config__xstrdup("/health");
    u->circuit.pending_timeout = 1 * MS_S;
    if (!arc_config__check_map(s, m, p, upstream_keys, N(upstream_keys)))
        return;
    arc_config__get_str(s, m, p, "name", ARC_STR_NAME, &u->name);
    const struct arc_cn *v;
    if ((v = arc_config__val(m, "discovery")))
        discovery(s, v, p, u);
    if ((v = arc_config__val(m, "lb")))
        lb(s, v, p, u);
    if ((v = arc_config__val(m, "pool"))) {
        arc_config__path(sp, p, "pool");
        if (arc_config__check_map(s, v, sp, pool_keys, N(pool_keys))) {
            arc_config__get_u32(s, v, sp, "max_idle", 0, 1000000, &u->pool_max_idle);
            arc_config__get_dur(s, v, sp, "idle_ttl", 1, 24 * MS_H, false, &u->pool_idle_ttl);
            arc_config__get_dur(s, v, sp, "max_lifetime", 1, 7 * 24 * MS_H, false,
                                &u->pool_max_lifetime);
            arc_config__get_u32(s, v, sp, "max_connections", 0, UINT32_MAX,
                                &u->pool_max_connections);
        }
    }
    if ((v = arc_config__val(m, "timeouts"))) {
        arc_config__path(sp, p, "timeouts");
        if (arc_config__check_map(s, v, sp, timeout_keys, N(timeout_keys))) {
            arc_config__get_dur(s, v, sp, "connect", 1, 24 * MS_H, false, &u->connect_timeout);
            arc_config__get_dur(s, v, sp, "write", 1, 24 * MS_H, false, &u->write_timeout);
            arc_config__get_dur(s, v, sp, "ttfb", 1, 24 * MS_H, false, &u->ttfb_timeout);
            arc_config__get_dur(s, v, sp, "read", 1, 24 * MS_H, false, &u->read_timeout);
        }
    }
    int proto = (int)ARC_UP_HTTP1;
    if (arc_config__get_enum(s, m, p, "protocol", protocols, N(protocols), NULL, 0, &proto)) {
        u->protocol = (enum arc_up_protocol)proto;
        if ((v = arc_config__val(m, "protocol"))) {
            u->protocol_line = v->line;
            u->protocol_col = v->col;
        }
    }
    if ((v = arc_config__val(m, "tls")))
        arc_config__upstream_tls(s, v, p, u);
    if ((v = arc_config__val(m, "health")))
        health(s, v, p, u);
    if ((v = arc_config__val(m, "circuit_breaker")))
        circuit(s, v, p, u);
}

void arc_config__upstreams(struct arc_sctx *s, const struct arc_cn *seq)
{
    struct arc_config *cfg = s->cfg;
    if (!arc_config__want(s, seq, "upstreams", ARC_CN_SEQ))
        return;
    if (seq->n == 0)
        return;
    cfg->upstreams = arc_config__xcalloc(seq->n, sizeof(*cfg->upstreams));
    cfg->n_upstreams = seq->n;
    char p[ARC_PATH_MAX];
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++)
        upstream(s, it, arc_config__path_index(p, "upstreams", i), &cfg->upstreams[i]);

    i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        const char *name = cfg->upstreams[i].name;
        size_t j = 0;
        for (const struct arc_cn *jt = seq->first; name && jt != it; jt = jt->next, j++) {
            if (cfg->upstreams[j].name && strcmp(cfg->upstreams[j].name, name) == 0) {
                arc_config__err(s, arc_config__val(it, "name"),
                                "upstreams[%zu].name: duplicate upstream name '%s' (first used "
                                "at line %d)", i, name, arc_config__val(jt, "name")->line);
                break;
            }
        }
    }
}
