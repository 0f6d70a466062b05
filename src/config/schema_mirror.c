/*
 * Schema: routes[].mirror — an upstream name, or a list of
 * {upstream, sample, timeout, max_body, max_in_flight, transform {headers
 * {set, remove}, path}, compare {enabled, headers, ignore_headers, body,
 * ignore_body_fields, max_body, on_diff, log_rate}}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/schema_int.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct arc_conf_key mirror_keys[] = {
    { "upstream", ARC_KEY_REQUIRED }, { "sample", 0 }, { "timeout", 0 }, { "transform", 0 },
    { "max_body", 0 }, { "max_in_flight", 0 }, { "compare", 0 },
};

static const struct arc_conf_key compare_keys[] = {
    { "enabled", 0 }, { "headers", 0 }, { "ignore_headers", 0 }, { "body", 0 },
    { "ignore_body_fields", 0 }, { "max_body", 0 }, { "on_diff", 0 }, { "log_rate", 0 },
};

static const struct arc_conf_key transform_keys[] = {
    { "headers", 0 }, { "path", 0 },
};

static const struct arc_conf_key theaders_keys[] = {
    { "set", 0 }, { "remove", 0 },
};

/* Framing and hop-by-hop fields: Arc writes them. */
static const char *const managed[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te",
    "trailer", "upgrade",
};

static bool name_ok(struct arc_sctx *s, const struct arc_cn *at, const char *p, const char *name,
                    bool is_key)
{
    char b[72];
    if (!arc_config__is_token(name, strlen(name))) {
        if (is_key)
            arc_config__err_key(s, at, "%s: '%s' is not a valid header name", p,
                                arc_config__show(b, name, strlen(name)));
        else
            arc_config__err(s, at, "%s: '%s' is not a valid header name", p,
                            arc_config__show(b, name, strlen(name)));
        return false;
    }
    for (size_t i = 0; i < N(managed); i++)
        if (strcasecmp(name, managed[i]) == 0) {
            if (is_key)
                arc_config__err_key(s, at, "%s: '%s' is managed by Arc", p, name);
            else
                arc_config__err(s, at, "%s: '%s' is managed by Arc", p, name);
            return false;
        }
    return true;
}

static void transform(struct arc_sctx *s, const struct arc_cn *m, const char *ip,
                      struct arc_mirror_conf *mc)
{
    char p[ARC_PATH_MAX], hp[ARC_PATH_MAX], kp[ARC_PATH_MAX], xp[ARC_PATH_MAX];
    arc_config__path(p, ip, "transform");
    if (!arc_config__check_map(s, m, p, transform_keys, N(transform_keys)))
        return;
    const struct arc_cn *v;
    if (arc_config__get_str(s, m, p, "path", ARC_STR_NONEMPTY | ARC_STR_NO_CTL, &mc->path) &&
        mc->path && (mc->path[0] != '/' || strpbrk(mc->path, " #?"))) {
        arc_config__err(s, arc_config__val(m, "path"), "%s.path: must start with '/' and hold "
                        "no space, '#' or '?' (the query is kept)", p);
    }
    if (!(v = arc_config__val(m, "headers")))
        return;
    arc_config__path(hp, p, "headers");
    if (!arc_config__check_map(s, v, hp, theaders_keys, N(theaders_keys)))
        return;
    const struct arc_cn *set = arc_config__val(v, "set"), *rm = arc_config__val(v, "remove");
    arc_config__path(kp, hp, "set");
    if (set && arc_config__want(s, set, kp, ARC_CN_MAP) && set->n) {
        mc->set = arc_config__xcalloc(set->n, sizeof(*mc->set));
        for (const struct arc_cn *it = set->first; it; it = it->next) {
            arc_config__path(xp, kp, it->key);
            if (!name_ok(s, it, kp, it->key, true) ||
                !arc_config__str_value(s, it, xp, ARC_STR_FIELD))
                continue;
            mc->set[mc->n_set].name = arc_config__xstrdup(it->key);
            mc->set[mc->n_set++].value = arc_config__xstrdup(it->v.s.p);
        }
    }
    arc_config__path(kp, hp, "remove");
    if (rm && arc_config__want(s, rm, kp, ARC_CN_SEQ) && rm->n) {
        mc->remove = arc_config__xcalloc(rm->n, sizeof(*mc->remove));
        size_t i = 0;
        for (const struct arc_cn *it = rm->first; it; it = it->next, i++) {
            arc_config__path_index(xp, kp, i);
            if (!arc_config__str_value(s, it, xp, ARC_STR_NONEMPTY) ||
                !name_ok(s, it, xp, it->v.s.p, false))
                continue;
            char *n = arc_config__xstrdup(it->v.s.p);
            for (char *c = n; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
            mc->remove[mc->n_remove++] = n;
        }
    }
}

/* A list of field names (lower-cased into cmp->names). */
static void cmp_names(struct arc_sctx *s, const struct arc_cn *v, const char *kp,
                      struct arc_mirror_compare *cmp)
{
    char xp[ARC_PATH_MAX], b[72];
    if (!arc_config__want(s, v, kp, ARC_CN_SEQ))
        return;
    if (v->n > ARC_MIRROR_CMP_NAMES) {
        arc_config__err(s, v, "%s: at most %d names, got %zu", kp, ARC_MIRROR_CMP_NAMES, v->n);
        return;
    }
    cmp->names = arc_config__xcalloc(v->n ? v->n : 1, sizeof(*cmp->names));
    size_t i = 0;
    for (const struct arc_cn *it = v->first; it; it = it->next, i++) {
        arc_config__path_index(xp, kp, i);
        if (!arc_config__str_value(s, it, xp, ARC_STR_NONEMPTY))
            continue;
        if (!arc_config__is_token(it->v.s.p, it->v.s.len)) {
            arc_config__err(s, it, "%s: '%s' is not a valid header name", xp,
                            arc_config__show(b, it->v.s.p, it->v.s.len));
            continue;
        }
        char *n = arc_config__xstrdup(it->v.s.p);
        for (char *c = n; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        cmp->names[cmp->n_names++] = n;
    }
}

static void compare(struct arc_sctx *s, const struct arc_cn *m, const char *ip,
                    struct arc_mirror_conf *mc)
{
    char p[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    arc_config__path(p, ip, "compare");
    if (!arc_config__check_map(s, m, p, compare_keys, N(compare_keys)))
        return;
    bool enabled = true;
    arc_config__get_bool(s, m, p, "enabled", &enabled);
    struct arc_mirror_compare *cmp = arc_config__xcalloc(1, sizeof(*cmp));
    cmp->body = true;
    cmp->log = true;
    cmp->log_rate = 10;
    /* (kept while disabled too, so that every error is reported; freed below) */
    mc->compare = cmp;
    const struct arc_cn *h = arc_config__val(m, "headers"), *ig = arc_config__val(m, "ignore_headers");
    arc_config__path(kp, p, "headers");
    if (h && h->kind == ARC_CN_BOOL) {
        cmp->fields = h->v.b ? ARC_MCF_ALL : ARC_MCF_NONE;
    } else if (h && h->kind == ARC_CN_SEQ) {
        cmp->fields = ARC_MCF_LISTED;
        cmp_names(s, h, kp, cmp);
        if (ig)
            arc_config__err_key(s, ig, "%s.ignore_headers: not with a list in %s.headers "
                                "(only the listed fields are compared)", p, p);
    } else if (h) {
        arc_config__err(s, h, "%s: expected true, false or a list of header names, got %s", kp,
                        arc_config__kind_name(h->kind));
    }
    if (ig && cmp->fields != ARC_MCF_LISTED)
        cmp_names(s, ig, arc_config__path(kp, p, "ignore_headers"), cmp);
    arc_config__get_bool(s, m, p, "body", &cmp->body);
    static const char *const on_diff[] = { "log", "count" };
    int od = 0;
    if (arc_config__get_enum(s, m, p, "on_diff", on_diff, N(on_diff), NULL, 0, &od))
        cmp->log = od == 0;
    arc_config__get_u32(s, m, p, "log_rate", 0, 100000, &cmp->log_rate);
    cmp->max_body = 1u << 20;
    arc_config__get_size(s, m, p, "max_body", 1, 64ull << 20, false, &cmp->max_body);
    const struct arc_cn *bf = arc_config__val(m, "ignore_body_fields");
    arc_config__path(kp, p, "ignore_body_fields");
    if (bf && arc_config__want(s, bf, kp, ARC_CN_SEQ)) {
        char xp[ARC_PATH_MAX];
        if (bf->n == 0 || bf->n > ARC_MIRROR_CMP_NAMES)
            arc_config__err(s, bf, "%s: expected 1 to %d names, got %zu", kp,
                            ARC_MIRROR_CMP_NAMES, bf->n);
        else if (!cmp->body)
            arc_config__err_key(s, bf, "%s: only with body: true", kp);
        else
            cmp->body_fields = arc_config__xcalloc(bf->n, sizeof(*cmp->body_fields));
        size_t i = 0;
        for (const struct arc_cn *it = bf->first; cmp->body_fields && it; it = it->next, i++)
            if (arc_config__str_value(s, it, arc_config__path_index(xp, kp, i),
                                      ARC_STR_NONEMPTY | ARC_STR_NO_CTL))
                cmp->body_fields[cmp->n_body_fields++] = arc_config__xstrdup(it->v.s.p);
    }
    if (!enabled) {
        for (size_t i = 0; i < cmp->n_names; i++)
            free(cmp->names[i]);
        free(cmp->names);
        for (size_t i = 0; i < cmp->n_body_fields; i++)
            free(cmp->body_fields[i]);
        free(cmp->body_fields);
        free(cmp);
        mc->compare = NULL;
    }
}

static void entry(struct arc_sctx *s, const struct arc_cn *it, const char *ip,
                  struct arc_mirror_conf *mc)
{
    char kp[ARC_PATH_MAX];
    mc->sample = 1.0;
    mc->timeout = 3000;
    mc->max_body = 64 * 1024;
    mc->max_in_flight = 64;
    if (it->kind == ARC_CN_STR) {               /* the short form: an upstream name */
        if (arc_config__str_value(s, it, ip, ARC_STR_NAME)) {
            mc->upstream = arc_config__xstrdup(it->v.s.p);
            arc_config__resolve_upstream(s, it, ip, mc->upstream, &mc->upstream_index);
        }
        return;
    }
    if (!arc_config__check_map(s, it, ip, mirror_keys, N(mirror_keys)))
        return;
    if (arc_config__get_str(s, it, ip, "upstream", ARC_STR_NAME, &mc->upstream) && mc->upstream)
        arc_config__resolve_upstream(s, arc_config__val(it, "upstream"),
                                     arc_config__path(kp, ip, "upstream"), mc->upstream,
                                     &mc->upstream_index);
    const struct arc_cn *v = arc_config__val(it, "sample");
    if (v) {
        double f = v->kind == ARC_CN_INT ? (double)v->v.i : v->kind == ARC_CN_FLOAT ? v->v.f : -1;
        if (f < 0 || f > 1)
            arc_config__err(s, v, "%s.sample: expected a number between 0 and 1", ip);
        else
            mc->sample = f;
    }
    arc_config__get_dur(s, it, ip, "timeout", 1, 3600 * 1000, false, &mc->timeout);
    arc_config__get_size(s, it, ip, "max_body", 0, 64ull << 20, false, &mc->max_body);
    arc_config__get_u32(s, it, ip, "max_in_flight", 1, 100000, &mc->max_in_flight);
    if ((v = arc_config__val(it, "transform")))
        transform(s, v, ip, mc);
    if ((v = arc_config__val(it, "compare")))
        compare(s, v, ip, mc);
}

void arc_config__route_mirror(struct arc_sctx *s, const struct arc_cn *v, const char *rpath,
                              struct arc_route_conf *r)
{
    char p[ARC_PATH_MAX], ip[ARC_PATH_MAX];
    arc_config__path(p, rpath, "mirror");
    if (r->action != ARC_ACTION_UPSTREAM) {
        arc_config__err(s, v, "%s: only applies to routes with an upstream", p);
        return;
    }
    if (v->kind == ARC_CN_STR) {
        r->mirrors = arc_config__xcalloc(1, sizeof(*r->mirrors));
        r->n_mirrors = 1;
        entry(s, v, p, &r->mirrors[0]);
        return;
    }
    if (v->kind != ARC_CN_SEQ) {
        arc_config__err(s, v, "%s: expected an upstream name or a list of {upstream, ...}, got %s",
                        p, arc_config__kind_name(v->kind));
        return;
    }
    if (v->n == 0 || v->n > ARC_MIRROR_MAX) {
        arc_config__err(s, v, "%s: expected 1 to %d mirrors, got %zu", p, ARC_MIRROR_MAX, v->n);
        return;
    }
    r->mirrors = arc_config__xcalloc(v->n, sizeof(*r->mirrors));
    r->n_mirrors = v->n;
    size_t i = 0;
    for (const struct arc_cn *it = v->first; it; it = it->next, i++)
        entry(s, it, arc_config__path_index(ip, p, i), &r->mirrors[i]);
}
