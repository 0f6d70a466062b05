/*
 * Schema, part 4: routes[].rate_limit — the algorithm and its numbers, the
 * key a request is counted under, and the answer when it is over the
 * limit; and rate_limits: the Redis tier's connection (global) and the
 * heavy hitters. `scope: global` needs rate_limits.global and gcra.
 * The runtime side is src/limit/ (algorithms, tables) and
 * src/proxy/ratelimit.c (keys, answers, fields).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema_int.h"
#include "limit/limit.h"

#define REQ ARC_KEY_REQUIRED
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct arc_conf_key limit_keys[] = {
    { "qps", REQ }, { "burst", 0 }, { "key", 0 }, { "status", 0 }, { "algorithm", 0 },
    { "window", 0 }, { "scope", 0 }, { "max_delay", 0 }, { "max_keys", 0 },
    { "headers", 0 }, { "legacy_headers", 0 },
};

static const struct arc_conf_key rate_limits_keys[] = {
    { "global", 0 }, { "heavy_hitters", 0 },
};

static const struct arc_conf_key global_keys[] = {
    { "backend", 0 }, { "redis", REQ }, { "fallback", 0 }, { "nodes", 0 },
};

static const struct arc_conf_key redis_keys[] = {
    { "address", REQ }, { "password", 0 }, { "db", 0 }, { "timeout", 0 }, { "lease", 0 },
    { "circuit_open", 0 },
};
static const char *const backends[] = { "redis" };
/* enum arc_rl_fallback order */
static const char *const fallbacks[] = { "local_share", "fail_open", "fail_closed" };

static const struct arc_conf_key heavy_keys[] = {
    { "enabled", 0 }, { "width", 0 }, { "depth", 0 }, { "ipv6_prefix", 0 },
    { "threshold_qps", 0 }, { "action", 0 }, { "status", 0 }, { "close", 0 }, { "limit", 0 },
};
/* enum arc_hh_action order */
static const char *const hh_actions[] = { "none", "reject", "limit" };
/* heavy_hitters.limit: a route limit's keys that make sense per prefix */
static const struct arc_conf_key hh_limit_keys[] = {
    { "qps", REQ }, { "burst", 0 }, { "algorithm", 0 }, { "window", 0 }, { "max_keys", 0 },
    { "headers", 0 }, { "legacy_headers", 0 },
};

static const struct arc_conf_key key_keys[] = {
    { "by", 0 }, { "name", 0 }, { "ipv6_prefix", 0 },
};

/* enum arc_rl_algo order */
static const char *const algorithms[] = {
    "gcra", "token_bucket", "leaky_bucket", "fixed_window", "sliding_window",
};
/* enum arc_rl_key_by order */
static const char *const key_bys[] = { "client_ip", "header", "cookie", "route", "client_cert" };
static const char *const header_modes[] = { "always", "rejected", "none" };
static const char *const scopes[] = { "local", "global" };

#define MAX_QPS 1000000.0
#define MIN_QPS 0.01

static bool is_window(int algo)
{
    return algo == ARC_RL_FIXED_WINDOW || algo == ARC_RL_SLIDING_WINDOW;
}

static void key(struct arc_sctx *s, const struct arc_cn *m, const char *lp,
                struct arc_rate_limit_conf *rl)
{
    char p[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    arc_config__path(p, lp, "key");
    if (!arc_config__check_map(s, m, p, key_keys, N(key_keys)))
        return;
    arc_config__get_enum(s, m, p, "by", key_bys, N(key_bys), NULL, 0, &rl->key_by);
    const struct arc_cn *v = arc_config__val(m, "name");
    bool named = rl->key_by == ARC_RL_BY_HEADER || rl->key_by == ARC_RL_BY_COOKIE;
    if (named && !v)
        arc_config__err(s, m, "missing required key 'name' in %s (by: %s)", p,
                        key_bys[rl->key_by]);
    if (!named && v)
        arc_config__err_key(s, arc_config__get(m, "name"), "%s.name: only used with by: header "
                            "or by: cookie", p);
    if (named && v && arc_config__str_value(s, v, arc_config__path(kp, p, "name"),
                                            ARC_STR_NONEMPTY)) {
        if (!arc_config__is_token(v->v.s.p, v->v.s.len))
            arc_config__err(s, v, "%s: '%s' is not a valid %s name", kp, v->v.s.p,
                            rl->key_by == ARC_RL_BY_HEADER ? "header" : "cookie");
        else
            rl->key_name = arc_config__xstrdup(v->v.s.p);
    }
    if (arc_config__val(m, "ipv6_prefix")) {
        if (rl->key_by != ARC_RL_BY_CLIENT_IP)
            arc_config__err_key(s, arc_config__get(m, "ipv6_prefix"), "%s.ipv6_prefix: only "
                                "used with by: client_ip", p);
        else
            arc_config__get_u32(s, m, p, "ipv6_prefix", 1, 128, &rl->ipv6_prefix);
    }
}

/* A limit's definition at path p into *rl (checked against its keys
 * already). hh: rate_limits.heavy_hitters.limit (no key, scope or
 * max_delay; no leaky_bucket: a heavy hitter is limited before routing,
 * where a request cannot wait). */
static void limit_def(struct arc_sctx *s, const struct arc_cn *m, const char *p,
                      struct arc_rate_limit_conf *rl, bool hh)
{
    char kp[ARC_PATH_MAX];
    *rl = (struct arc_rate_limit_conf){
        .qps = 0, .algorithm = ARC_RL_GCRA, .window = 1000, .max_delay = 1000,
        .max_keys = 100000, .key_by = ARC_RL_BY_CLIENT_IP, .ipv6_prefix = 64, .status = 429,
        .headers = ARC_RL_HEADERS_ALWAYS,
    };
    bool ok = true;
    const struct arc_cn *v = arc_config__val(m, "qps");
    if (v) {
        arc_config__path(kp, p, "qps");
        double q = v->kind == ARC_CN_INT ? (double)v->v.i : v->kind == ARC_CN_FLOAT ? v->v.f : NAN;
        if (v->kind != ARC_CN_INT && v->kind != ARC_CN_FLOAT) {
            arc_config__want(s, v, kp, ARC_CN_FLOAT);
            ok = false;
        } else if (!(q >= MIN_QPS && q <= MAX_QPS)) {
            arc_config__err(s, v, "%s: %g is out of range (0.01 .. 1000000 requests per second)",
                            kp, q);
            ok = false;
        } else {
            rl->qps = q;
        }
    }
    arc_config__get_enum(s, m, p, "algorithm", algorithms, N(algorithms), NULL, 0,
                         &rl->algorithm);
    if (hh && rl->algorithm == ARC_RL_LEAKY_BUCKET) {
        arc_config__err(s, arc_config__val(m, "algorithm"), "%s.algorithm: leaky_bucket is not "
                        "available here (a heavy hitter is limited before routing, where a "
                        "request cannot be delayed); use gcra", p);
        rl->algorithm = ARC_RL_GCRA;
    }
    int scope = 0;
    if (arc_config__get_enum(s, m, p, "scope", scopes, N(scopes), NULL, 0, &scope) &&
        scope == 1) {
        rl->global = true;
        const struct arc_cn *sv = arc_config__val(m, "scope");
        if (!s->cfg->rl_global.enabled)
            arc_config__err(s, sv, "%s.scope: global needs a rate_limits.global section (the "
                            "Redis that holds the limit)", p);
        else if (rl->algorithm != ARC_RL_GCRA)
            arc_config__err(s, sv, "%s.scope: global limits use gcra (the Redis script), not "
                            "%s", p, algorithms[rl->algorithm]);
    }
    if (arc_config__val(m, "burst")) {
        if (is_window(rl->algorithm))
            arc_config__err_key(s, arc_config__get(m, "burst"), "%s.burst: not used by %s "
                                "(its limit is qps x window requests per window)", p,
                                algorithms[rl->algorithm]);
        else
            arc_config__get_u32(s, m, p, "burst", 1, ARC_RL_MAX_BURST, &rl->burst);
    }
    if (rl->burst == 0)
        rl->burst = rl->qps >= 1 ? (uint32_t)ceil(rl->qps) : 1;
    if (arc_config__val(m, "window")) {
        if (!is_window(rl->algorithm))
            arc_config__err_key(s, arc_config__get(m, "window"), "%s.window: only used by "
                                "fixed_window and sliding_window", p);
        else
            ok = arc_config__get_dur(s, m, p, "window", 1000, 86400000, true, &rl->window) && ok;
    }
    if (ok && is_window(rl->algorithm)) {
        double lim = floor(rl->qps * (double)rl->window / 1000.0 + 0.5);
        if (lim < 1 || lim > ARC_RL_MAX_WINDOW_LIMIT)
            arc_config__err(s, arc_config__val(m, "window") ? arc_config__val(m, "window") : m,
                            "%s: qps x window = %.0f requests per window; it must be 1 .. %u",
                            p, lim, ARC_RL_MAX_WINDOW_LIMIT);
    }
    if (arc_config__val(m, "max_delay")) {
        if (rl->algorithm != ARC_RL_LEAKY_BUCKET)
            arc_config__err_key(s, arc_config__get(m, "max_delay"), "%s.max_delay: only used "
                                "by leaky_bucket", p);
        else
            arc_config__get_dur(s, m, p, "max_delay", 0, 60000, false, &rl->max_delay);
    }
    arc_config__get_u32(s, m, p, "max_keys", 1, 50000000, &rl->max_keys);
    int64_t st = 429;
    if (arc_config__get_int(s, m, p, "status", 400, 599, &st))
        rl->status = (int)st;
    arc_config__get_enum(s, m, p, "headers", header_modes, N(header_modes), NULL, 0,
                         &rl->headers);
    arc_config__get_bool(s, m, p, "legacy_headers", &rl->legacy_headers);
    if ((v = arc_config__val(m, "key")))
        key(s, v, p, rl);
}

void arc_config__rate_limit(struct arc_sctx *s, const struct arc_cn *m, const char *rpath,
                            struct arc_route_conf *r)
{
    char p[ARC_PATH_MAX];
    arc_config__path(p, rpath, "rate_limit");
    if (!arc_config__check_map(s, m, p, limit_keys, N(limit_keys)))
        return;
    struct arc_rate_limit_conf *rl = arc_config__xcalloc(1, sizeof(*rl));
    r->rate_limit = rl;
    limit_def(s, m, p, rl, false);
}

static void global(struct arc_sctx *s, const struct arc_cn *g)
{
    const char *p = "rate_limits.global";
    char rp[ARC_PATH_MAX];
    if (!arc_config__check_map(s, g, p, global_keys, N(global_keys)))
        return;
    struct arc_rl_global_conf *c = &s->cfg->rl_global;
    *c = (struct arc_rl_global_conf){ .enabled = true, .timeout = 2, .lease = 64,
                                      .circuit_open = 500, .nodes = 1,
                                      .fallback = ARC_RL_FB_LOCAL_SHARE };
    int backend = 0;
    arc_config__get_enum(s, g, p, "backend", backends, N(backends), NULL, 0, &backend);
    arc_config__get_enum(s, g, p, "fallback", fallbacks, N(fallbacks), NULL, 0, &c->fallback);
    arc_config__get_u32(s, g, p, "nodes", 1, 10000, &c->nodes);
    const struct arc_cn *r = arc_config__val(g, "redis");
    arc_config__path(rp, p, "redis");
    if (!r || !arc_config__check_map(s, r, rp, redis_keys, N(redis_keys)))
        return;
    arc_config__get_addr(s, r, rp, "address", false, &c->address);
    char *pw = NULL;
    if (arc_config__get_str(s, r, rp, "password", ARC_STR_NO_CTL, &pw) && pw) {
        if (strlen(pw) >= sizeof(c->password))
            arc_config__err(s, arc_config__val(r, "password"), "%s.password: longer than %zu "
                            "bytes", rp, sizeof(c->password) - 1);
        else
            snprintf(c->password, sizeof(c->password), "%s", pw);
    }
    free(pw);
    arc_config__get_u32(s, r, rp, "db", 0, 1000000, &c->db);
    arc_config__get_dur(s, r, rp, "timeout", 1, 10000, false, &c->timeout);
    arc_config__get_u32(s, r, rp, "lease", 1, 1000000, &c->lease);
    arc_config__get_dur(s, r, rp, "circuit_open", 10, 600000, false, &c->circuit_open);
}

void arc_config__rate_limits(struct arc_sctx *s, const struct arc_cn *m)
{
    const char *p = "rate_limits";
    char hp[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    if (!arc_config__check_map(s, m, p, rate_limits_keys, N(rate_limits_keys)))
        return;
    const struct arc_cn *g = arc_config__val(m, "global");
    if (g)
        global(s, g);
    const struct arc_cn *h = arc_config__val(m, "heavy_hitters");
    arc_config__path(hp, p, "heavy_hitters");
    if (!h || !arc_config__check_map(s, h, hp, heavy_keys, N(heavy_keys)))
        return;
    struct arc_heavy_hitters_conf *c = &s->cfg->heavy_hitters;
    *c = (struct arc_heavy_hitters_conf){ .enabled = false, .width = 2719, .depth = 4,
                                          .ipv6_prefix = 64, .threshold_qps = 1000,
                                          .action = ARC_HH_NONE, .status = 429 };
    arc_config__get_bool(s, h, hp, "enabled", &c->enabled);
    arc_config__get_u32(s, h, hp, "width", 16, 1u << 24, &c->width);
    arc_config__get_u32(s, h, hp, "depth", 1, ARC_CMS_MAX_DEPTH, &c->depth);
    arc_config__get_u32(s, h, hp, "ipv6_prefix", 1, 128, &c->ipv6_prefix);
    const struct arc_cn *v = arc_config__val(h, "threshold_qps");
    if (v) {
        arc_config__path(kp, hp, "threshold_qps");
        double q = v->kind == ARC_CN_INT ? (double)v->v.i : v->kind == ARC_CN_FLOAT ? v->v.f : NAN;
        if (v->kind != ARC_CN_INT && v->kind != ARC_CN_FLOAT)
            arc_config__want(s, v, kp, ARC_CN_FLOAT);
        else if (!(q >= 1 && q <= 1e9))
            arc_config__err(s, v, "%s: %g is out of range (1 .. 1000000000 requests per second)",
                            kp, q);
        else
            c->threshold_qps = q;
    }
    arc_config__get_enum(s, h, hp, "action", hh_actions, N(hh_actions), NULL, 0, &c->action);
    int64_t st = 429;
    if (arc_config__get_int(s, h, hp, "status", 400, 599, &st))
        c->status = (int)st;
    arc_config__get_bool(s, h, hp, "close", &c->close);
    if (c->action == ARC_HH_NONE) {
        const char *only[] = { "status", "close" };
        for (size_t i = 0; i < N(only); i++)
            if (arc_config__val(h, only[i]))
                arc_config__err_key(s, arc_config__get(h, only[i]), "%s.%s: only used with "
                                    "action: reject or action: limit", hp, only[i]);
    }
    const struct arc_cn *l = arc_config__val(h, "limit");
    arc_config__path(kp, hp, "limit");
    if (c->action != ARC_HH_LIMIT) {
        if (l)
            arc_config__err_key(s, arc_config__get(h, "limit"), "%s: only used with action: "
                                "limit", kp);
        return;
    }
    if (!l) {
        arc_config__err(s, arc_config__val(h, "action"), "%s.action: limit needs %s "
                        "({qps, burst, ...}: what each listed prefix is admitted at)", hp, kp);
        return;
    }
    if (l->kind == ARC_CN_MAP) {
        const char *no[] = { "key", "scope", "status", "max_delay" };
        const char *why[] = { "a heavy hitter is counted under its listed prefix",
                              "heavy hitters are limited on this node",
                              "the answer's status is heavy_hitters.status",
                              "a heavy hitter cannot be delayed (no leaky_bucket)" };
        for (size_t i = 0; i < N(no); i++)
            if (arc_config__val(l, no[i])) {
                arc_config__err_key(s, arc_config__get(l, no[i]), "%s.%s: not used here (%s)",
                                    kp, no[i], why[i]);
                return;
            }
    }
    if (!arc_config__check_map(s, l, kp, hh_limit_keys, N(hh_limit_keys)))
        return;
    limit_def(s, l, kp, &c->limit, true);
    c->limit.status = c->status;
}
