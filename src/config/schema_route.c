/*
 * Schema, part 3: routes[] — match (path pattern, hosts, methods), the one
 * action (upstream | redirect | respond) and its header mutations and
 * forwarding options. Upstream references are resolved here, so upstreams
 * must have been read first (schema.c does).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/schema_int.h"
#include "router/router.h"

#define REQ ARC_KEY_REQUIRED
#define LATER ARC_KEY_LATER
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct arc_conf_key route_keys[] = {
    { "name", REQ }, { "priority", 0 }, { "match", REQ }, { "action", 0 },
    { "rate_limit", 0 }, { "split", 0 }, { "mirror", 0 }, { "plugins", 0 },
    { "cache", LATER }, { "compression", LATER },
};

static const struct arc_conf_key match_keys[] = {
    { "path", REQ }, { "host", 0 }, { "methods", 0 }, { "headers", 0 },
    { "cookies", 0 }, { "query", 0 }, { "expr", 0 },
};

static const struct arc_conf_key matcher_keys[] = {
    { "name", REQ }, { "op", REQ }, { "value", 0 }, { "pattern", 0 }, { "id", 0 },
};

static const struct arc_conf_key action_keys[] = {
    { "upstream", 0 }, { "redirect", 0 }, { "respond", 0 }, { "headers", 0 },
    { "response_headers", 0 }, { "forwarded", 0 }, { "rewrite", 0 }, { "retry", 0 },
    { "timeout", 0 }, { "max_body", 0 },
};

static const struct arc_conf_key rewrite_keys[] = {
    { "pattern", REQ }, { "replace", REQ },
};

static const struct arc_conf_key retry_keys[] = {
    { "max_retries", 0 }, { "backoff", 0 }, { "idempotent_only", 0 }, { "on", 0 },
    { "budget", 0 }, { "budget_min", 0 }, { "budget_window", 0 }, { "max_body", 0 },
};

static const struct arc_conf_key redirect_keys[] = {
    { "status", 0 }, { "location", REQ },
};

static const struct arc_conf_key respond_keys[] = {
    { "status", 0 }, { "body", 0 }, { "headers", 0 },
};

static const struct arc_conf_key forwarded_keys[] = {
    { "x_forwarded_for", 0 }, { "x_forwarded_proto", 0 }, { "via", 0 },
    { "trusted_proxies", 0 },
};

static const struct arc_conf_key hdr_op_keys[] = {
    { "op", REQ }, { "name", REQ }, { "value", 0 },
};

static const struct arc_conf_key hdr_kv_keys[] = {
    { "name", REQ }, { "value", REQ },
};

/* Bit i of the mask is method_names[i] (config.h ARC_M_*). */
static const char *const method_names[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};

/* Framing and hop-by-hop fields: Arc computes or strips these itself, and
 * letting a config set them would break message framing (RFC 9112 §6,
 * RFC 9110 §7.6.1). */
static const char *const managed_headers[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive",
    "proxy-connection", "te", "trailer", "upgrade",
};

/* ------------------------------------------------------------ helpers */

static bool is_managed(const char *name)
{
    for (size_t i = 0; i < N(managed_headers); i++)
        if (strcasecmp(name, managed_headers[i]) == 0)
            return true;
    return false;
}

static bool header_name(struct arc_sctx *s, const struct arc_cn *v, const char *what)
{
    char b[72];
    if (!arc_config__str_value(s, v, what, ARC_STR_NONEMPTY))
        return false;
    if (!arc_config__is_token(v->v.s.p, v->v.s.len)) {
        arc_config__err(s, v, "%s: '%s' is not a valid header name", what,
                        arc_config__show(b, v->v.s.p, v->v.s.len));
        return false;
    }
    if (is_managed(v->v.s.p)) {
        arc_config__err(s, v, "%s: '%s' is managed by Arc and cannot be set by a route",
                        what, v->v.s.p);
        return false;
    }
    return true;
}

static const char *host_problem(const char *h, size_t n)
{
    if (n == 0)
        return "must not be empty";
    if (n > 253)
        return "is longer than 253 characters";
    if (h[0] == '[') {
        char ip[64];
        if (h[n - 1] != ']' || n - 2 >= sizeof(ip))
            return "is not a valid [IPv6] literal";
        memcpy(ip, h + 1, n - 2);
        ip[n - 2] = '\0';
        struct in6_addr a;
        return inet_pton(AF_INET6, ip, &a) == 1 ? NULL : "is not a valid [IPv6] literal";
    }
    size_t i = 0;
    if (n >= 2 && h[0] == '*' && h[1] == '.')
        i = 2;
    if (i == n)
        return "needs a suffix after '*.'";
    size_t label = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.') {
            if (label == 0)
                return "has an empty label (check the dots)";
            label = 0;
            continue;
        }
        if (c == '*')
            return "may use '*' only as a leading '*.'";
        if (c == ':')
            return "is matched without a port; remove the ':port'";
        if (c >= 0x80)
            return "must be ASCII (write international names in punycode, xn--...)";
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return "contains a character not allowed in a host name";
        if (++label > 63)
            return "has a label longer than 63 characters";
    }
    if (label == 0)
        return "ends with a dot";
    return NULL;
}

static void hosts(struct arc_sctx *s, const struct arc_cn *seq, const char *p,
                  struct arc_route_conf *r)
{
    char ip[ARC_PATH_MAX], b[72];
    if (!arc_config__want(s, seq, p, ARC_CN_SEQ))
        return;
    if (seq->n == 0) {
        arc_config__err(s, seq, "%s: empty list (omit 'host' to match any host)", p);
        return;
    }
    r->hosts = arc_config__xcalloc(seq->n, sizeof(*r->hosts));
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        arc_config__path_index(ip, p, i);
        if (!arc_config__str_value(s, it, ip, 0))
            continue;
        const char *why = host_problem(it->v.s.p, it->v.s.len);
        if (why) {
            arc_config__err(s, it, "%s: host '%s' %s", ip,
                            arc_config__show(b, it->v.s.p, it->v.s.len), why);
            continue;
        }
        /* Host matching is case-insensitive (RFC 9110 §4.2.3); store the
         * canonical lower-case form once so the router need not fold. */
        char *h = arc_config__xstrdup(it->v.s.p);
        for (char *c = h; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
        bool dup = false;
        for (size_t j = 0; j < r->n_hosts && !dup; j++)
            dup = strcmp(r->hosts[j], h) == 0;
        if (dup) {
            arc_config__err(s, it, "%s: host '%s' is listed twice", ip, h);
            free(h);
            continue;
        }
        r->hosts[r->n_hosts++] = h;
    }
}

static void methods(struct arc_sctx *s, const struct arc_cn *seq, const char *p,
                    struct arc_route_conf *r)
{
    char ip[ARC_PATH_MAX], b[72];
    if (!arc_config__want(s, seq, p, ARC_CN_SEQ))
        return;
    if (seq->n == 0) {
        arc_config__err(s, seq, "%s: empty list (omit 'methods' to match any method)", p);
        return;
    }
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        arc_config__path_index(ip, p, i);
        if (!arc_config__str_value(s, it, ip, 0))
            continue;
        size_t k;
        for (k = 0; k < N(method_names); k++)
            if (strcmp(it->v.s.p, method_names[k]) == 0)
                break;
        if (k == N(method_names)) {
            /* Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET. */
            const char *hint = arc_config__suggest(it->v.s.p, method_names, N(method_names));
            if (hint)
                arc_config__err(s, it, "%s: unknown method '%s' (did you mean '%s'?)", ip,
                                arc_config__show(b, it->v.s.p, it->v.s.len), hint);
            else
                arc_config__err(s, it, "%s: unknown method '%s' (expected GET, HEAD, POST, PUT, "
                                "DELETE, CONNECT, OPTIONS, TRACE or PATCH)", ip,
                                arc_config__show(b, it->v.s.p, it->v.s.len));
            continue;
        }
        if (r->methods & (1u << k)) {
            arc_config__err(s, it, "%s: method %s is listed twice", ip, method_names[k]);
            continue;
        }
        r->methods |= 1u << k;
    }
}

/* ------------------------------------------------------------ matchers */

static bool ident_char(char c);

/* One item of match.headers / cookies / query as read, for the checks that
 * look at the route's matchers together (ids, expr). */
struct matcher_ref {
    const struct arc_cn *item;  /* the {name, op, ...} mapping */
    const struct arc_cn *id;    /* its id value if present and well formed */
    char path[ARC_PATH_MAX];
};

struct matchers {
    struct matcher_ref v[ARC_RT_MAX_PREDS];
    size_t n;                   /* items seen (may exceed what fits in v) */
};

static bool is_expr_keyword(const char *s)
{
    return !strcmp(s, "and") || !strcmp(s, "or") || !strcmp(s, "not");
}

/* id: [A-Za-z_][A-Za-z0-9_-]*, not an operator (router.h, expr grammar). */
static bool matcher_id(struct arc_sctx *s, const struct arc_cn *v, const char *what)
{
    char b[72];
    if (!arc_config__str_value(s, v, what, ARC_STR_NONEMPTY))
        return false;
    const char *p = v->v.s.p;
    bool ok = v->v.s.len <= 64 && (ident_char(p[0]) && !(p[0] >= '0' && p[0] <= '9'));
    for (size_t i = 1; ok && i < v->v.s.len; i++)
        ok = ident_char(p[i]) || p[i] == '-';
    if (!ok) {
        arc_config__err(s, v, "%s: '%s' is not a valid matcher id (a letter or '_', then "
                        "letters, digits, '_' or '-'; at most 64)", what,
                        arc_config__show(b, p, v->v.s.len));
        return false;
    }
    if (is_expr_keyword(p)) {
        arc_config__err(s, v, "%s: '%s' is an expr operator and cannot be a matcher id", what, p);
        return false;
    }
    return true;
}

static void matcher_list(struct arc_sctx *s, const struct arc_cn *seq, const char *p,
                         enum arc_rt_source src, struct arc_route_conf *r, struct matchers *ms)
{
    static const char *const ops[] = { "exists", "equals", "contains", "regex" }; /* arc_rt_op */
    char ip[ARC_PATH_MAX], kp[ARC_PATH_MAX], b[72];
    if (!arc_config__want(s, seq, p, ARC_CN_SEQ))
        return;
    if (seq->n == 0) {
        arc_config__err(s, seq, "%s: empty list (leave the key out instead)", p);
        return;
    }
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        arc_config__path_index(ip, p, i);
        if (ms->n++ == ARC_RT_MAX_PREDS) {
            arc_config__err(s, it, "%s: more than %d matchers in one route (headers, cookies "
                            "and query together)", ip, ARC_RT_MAX_PREDS);
            continue;
        }
        if (ms->n > ARC_RT_MAX_PREDS)
            continue;
        struct matcher_ref *ref = &ms->v[ms->n - 1];
        ref->item = it;
        snprintf(ref->path, sizeof(ref->path), "%s", ip);
        if (!arc_config__check_map(s, it, ip, matcher_keys, N(matcher_keys)))
            continue;
        const struct arc_cn *id = arc_config__val(it, "id");
        if (id && matcher_id(s, id, arc_config__path(kp, ip, "id"))) {
            ref->id = id;
            for (size_t j = 0; j + 1 < ms->n; j++) {
                const struct arc_cn *o = ms->v[j].id;
                if (o && strcmp(o->v.s.p, id->v.s.p) == 0) {
                    arc_config__err(s, id, "%s: matcher id '%s' is already used by %s", kp,
                                    id->v.s.p, ms->v[j].path);
                    ref->id = NULL;
                    break;
                }
            }
        }

        int op = -1;
        bool ok = arc_config__get_enum(s, it, ip, "op", ops, N(ops), NULL, 0, &op) && op >= 0;
        const struct arc_cn *n = arc_config__val(it, "name");
        if (n) {
            arc_config__path(kp, ip, "name");
            if (src == ARC_RT_QUERY) {
                /* compared with the decoded parameter name */
                ok = arc_config__str_value(s, n, kp, ARC_STR_NONEMPTY | ARC_STR_NO_CTL) && ok;
            } else if (arc_config__str_value(s, n, kp, ARC_STR_NONEMPTY)) {
                if (!arc_config__is_token(n->v.s.p, n->v.s.len)) {
                    arc_config__err(s, n, "%s: '%s' is not a valid %s name", kp,
                                    arc_config__show(b, n->v.s.p, n->v.s.len),
                                    src == ARC_RT_HEADER ? "header" : "cookie");
                    ok = false;
                }
            } else {
                ok = false;
            }
        } else {
            ok = false;
        }

        /* (null means "not given", as everywhere in the schema) */
        const struct arc_cn *val = arc_config__val(it, "value");
        const struct arc_cn *pat = arc_config__val(it, "pattern");
        const char *arg = NULL;
        if (op == ARC_RT_EXISTS) {
            if (val)
                arc_config__err_key(s, val, "%s.value: not used with op: exists", ip);
            if (pat)
                arc_config__err_key(s, pat, "%s.pattern: not used with op: exists", ip);
            ok = ok && !val && !pat;
        } else if (op == ARC_RT_EQUALS || op == ARC_RT_CONTAINS) {
            if (pat) {
                arc_config__err_key(s, pat, "%s.pattern: only used with op: regex (op: %s "
                                    "takes 'value')", ip, ops[op]);
                ok = false;
            }
            val = arc_config__val(it, "value");
            arc_config__path(kp, ip, "value");
            /* Header values reach us with surrounding whitespace trimmed
             * (RFC 9110 §5.5), so an equals value with edge whitespace
             * could never match; a contains value may have inner spaces. */
            unsigned flags = src == ARC_RT_HEADER && op == ARC_RT_EQUALS ? ARC_STR_FIELD
                                                                        : ARC_STR_NO_CTL;
            if (!val) {
                arc_config__err(s, it, "missing required key 'value' in %s (op: %s)", ip, ops[op]);
                ok = false;
            } else if (!arc_config__str_value(s, val, kp, flags)) {
                ok = false;
            } else if (op == ARC_RT_CONTAINS && val->v.s.len == 0) {
                arc_config__err(s, val, "%s: an empty value is contained in every value; use "
                                "op: exists", kp);
                ok = false;
            } else {
                arg = val->v.s.p;
            }
        } else if (op == ARC_RT_REGEX) {
            if (val) {
                arc_config__err_key(s, val, "%s.value: not used with op: regex (write the "
                                    "expression in 'pattern')", ip);
                ok = false;
            }
            pat = arc_config__val(it, "pattern");
            arc_config__path(kp, ip, "pattern");
            if (!pat) {
                arc_config__err(s, it, "missing required key 'pattern' in %s (op: regex)", ip);
                ok = false;
            } else if (!arc_config__str_value(s, pat, kp, ARC_STR_NONEMPTY)) {
                ok = false;
            } else {
                char why[256];
                size_t off = 0;
                if (arc_rt_check_regex(pat->v.s.p, why, sizeof(why), &off) < 0) {
                    arc_config__err(s, pat, "%s: invalid regex '%s': %s at offset %zu", kp,
                                    arc_config__show(b, pat->v.s.p, pat->v.s.len), why, off);
                    ok = false;
                } else {
                    arg = pat->v.s.p;
                }
            }
        }
        if (!ok)
            continue;
        r->preds[r->n_preds++] = (struct arc_rt_pred){
            .source = (uint8_t)src, .op = (uint8_t)op,
            .name = arc_config__xstrdup(n->v.s.p),
            .value = arg ? arc_config__xstrdup(arg) : NULL,
            .id = ref->id ? arc_config__xstrdup(ref->id->v.s.p) : NULL,
        };
    }
}

static size_t utf8_chars(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)p[i] & 0xc0) != 0x80;
    return c;
}

/*
 * File position of byte `off` of the string value v. The tree records where
 * a scalar starts, not how it was written, so read the source and walk it
 * alongside the value: skip an opening quote or a block indicator ('|',
 * '>') and its line, then consume equal bytes, and where the value has a
 * space or newline the source has a line break (a folded line), move to the
 * next line's first non-blank. That maps plain, quoted and block scalars
 * exactly. Where the walk fails (an escape sequence, a file changed since
 * it was read, a config that is not a file) returns false and the scalar's
 * own start. Only used on the error path.
 */
static bool text_pos(struct arc_sctx *s, const struct arc_cn *v, size_t off, int *line, int *col)
{
    *line = v->line;
    *col = v->col;
    const char *file = s->d->file;
    if (!file || v->line < 1 || v->col < 1)
        return false;
    FILE *f = fopen(file, "re");
    if (!f)
        return false;
    /* the file was read whole once already (at most 16 MiB) */
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += r;
        if (len == cap) {
            char *nb = cap <= ARC_CONF_MAX_BYTES ? realloc(buf, cap * 2) : NULL;
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return false;

    /* (line, column in characters) of the scalar's first character → byte */
    size_t b = 0;
    int ln = 1, c = 1;
    while (b < len && ln < v->line)
        if (buf[b++] == '\n')
            ln++;
    while (b < len && buf[b] != '\n' && c < v->col) {
        b++;
        while (b < len && ((unsigned char)buf[b] & 0xc0) == 0x80)
            b++;
        c++;
    }
    bool ok = ln == v->line && c == v->col && b < len;
    int indent = -1;            /* block scalars: the content's indentation */
    if (ok && (buf[b] == '"' || buf[b] == '\'')) {
        b++;
        c++;
    } else if (ok && (buf[b] == '|' || buf[b] == '>')) {
        while (b < len && buf[b] != '\n')
            b++;
        ok = b < len;
        b++;
        ln++;
        c = 1;
        while (b < len && buf[b] == ' ') {
            b++;
            c++;
        }
        indent = c;
    }
    const char *val = v->v.s.p;
    for (size_t i = 0; ok && i < off; i++) {
        if (b < len && buf[b] == val[i] && buf[b] != '\n') {
            b++;
            c += ((unsigned char)val[i] & 0xc0) != 0x80;
            continue;
        }
        /* a line break in the source where the value has a space (folded)
         * or a newline (literal); trailing blanks before it are not content */
        while (b < len && (buf[b] == ' ' || buf[b] == '\t' || buf[b] == '\r'))
            b++;
        if (!(b < len && buf[b] == '\n' && (val[i] == ' ' || val[i] == '\n'))) {
            ok = false;
            break;
        }
        b++;
        ln++;
        c = 1;
        /* a block keeps what is indented beyond its indentation; a flow
         * scalar drops all leading blanks of a continuation line */
        while (b < len && (buf[b] == ' ' || (indent < 0 && buf[b] == '\t')) &&
               (indent < 0 || c < indent)) {
            b++;
            c++;
        }
    }
    free(buf);
    if (!ok)
        return false;
    *line = ln;
    *col = c;
    return true;
}

static void expr(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                 struct arc_route_conf *r, const struct matchers *ms)
{
    char b[72];
    if (!arc_config__str_value(s, v, what, ARC_STR_NONEMPTY))
        return;
    size_t nm = ARC_MIN(ms->n, (size_t)ARC_RT_MAX_PREDS);
    if (nm == 0) {
        arc_config__err(s, v, "%s: the route has no header, cookie or query matchers for the "
                        "expression to combine", what);
        return;
    }
    const char *ids[ARC_RT_MAX_PREDS];
    bool all_ids = true;
    for (size_t i = 0; i < nm; i++) {
        const struct arc_cn *id = ms->v[i].id;
        ids[i] = id ? id->v.s.p : NULL;
        if (!id && !arc_config__get(ms->v[i].item, "id")) {
            arc_config__err(s, ms->v[i].item, "%s: needs an 'id' to be used in match.expr "
                            "(with expr, every matcher is combined through its id)",
                            ms->v[i].path);
            all_ids = false;
        } else if (!id) {
            all_ids = false;    /* a bad id: already reported */
        }
    }
    char why[256];
    size_t off = 0;
    uint64_t used = 0;
    if (arc_rt_check_expr(v->v.s.p, ids, nm, &used, why, sizeof(why), &off) < 0) {
        /* An unknown id may be one whose definition was already reported. */
        if (!all_ids && strncmp(why, "unknown matcher", 15) == 0)
            return;
        int line, col;
        if (text_pos(s, v, off, &line, &col))
            arc_config__error(s->d, line, col, "%s: %s", what, why);
        else
            arc_config__error(s->d, line, col, "%s: %s (at character %zu of '%s')", what, why,
                              utf8_chars(v->v.s.p, off) + 1,
                              arc_config__show(b, v->v.s.p, v->v.s.len));
        return;
    }
    for (size_t i = 0; i < nm; i++)
        if (ids[i] && !(used & (1ull << i)))
            arc_config__err(s, ms->v[i].id, "%s.id: matcher '%s' is not used in match.expr",
                            ms->v[i].path, ids[i]);
    if (all_ids)
        r->expr = arc_config__xstrdup(v->v.s.p);
}

static void match(struct arc_sctx *s, const struct arc_cn *m, const char *rpath,
                  struct arc_route_conf *r)
{
    char p[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    arc_config__path(p, rpath, "match");
    if (!arc_config__check_map(s, m, p, match_keys, N(match_keys)))
        return;
    const struct arc_cn *v = arc_config__val(m, "path");
    if (v && arc_config__str_value(s, v, arc_config__path(kp, p, "path"),
                                   ARC_STR_NONEMPTY | ARC_STR_NO_CTL)) {
        char err[256] = "";
        if (arc_rt_check_pattern(v->v.s.p, err, sizeof(err)) != 0)
            arc_config__err(s, v, "%s: %s", kp, err[0] ? err : "invalid path pattern");
        else
            r->path = arc_config__xstrdup(v->v.s.p);
    }
    if ((v = arc_config__val(m, "host")))
        hosts(s, v, arc_config__path(kp, p, "host"), r);
    if ((v = arc_config__val(m, "methods")))
        methods(s, v, arc_config__path(kp, p, "methods"), r);

    static const char *const lists[] = { "headers", "cookies", "query" }; /* arc_rt_source */
    size_t total = 0;
    for (size_t i = 0; i < N(lists); i++)
        if ((v = arc_config__val(m, lists[i])) && v->kind == ARC_CN_SEQ)
            total += v->n;
    if (total)
        r->preds = arc_config__xcalloc(ARC_MIN(total, (size_t)ARC_RT_MAX_PREDS), sizeof(*r->preds));
    struct matchers *ms = arc_config__xcalloc(1, sizeof(*ms));
    for (size_t i = 0; i < N(lists); i++)
        if ((v = arc_config__val(m, lists[i])))
            matcher_list(s, v, arc_config__path(kp, p, lists[i]), (enum arc_rt_source)i, r, ms);
    if ((v = arc_config__val(m, "expr")))
        expr(s, v, arc_config__path(kp, p, "expr"), r, ms);
    free(ms);
}

/* True if the path pattern captures `name` as {name} or {*name}. */
static bool captures(const char *pattern, const char *name, size_t n)
{
    for (const char *c = pattern; c && (c = strchr(c, '{')); c++) {
        const char *q = c + 1;
        if (*q == '*')
            q++;
        const char *e = strchr(q, '}');
        if (e && (size_t)(e - q) == n && memcmp(q, name, n) == 0)
            return true;
    }
    return false;
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static void err_at(struct arc_sctx *s, const struct arc_cn *v, size_t off, const char *what,
                   const char *why);

/* A '$' at l[i]: `$$` (a literal '$') or a known `$variable`. Returns the
 * index after it, or 0 after reporting an unknown one. A '$' followed by
 * neither a letter, '_' nor '$' is a literal. */
static size_t var_at(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                     const char *l, size_t i)
{
    if (l[i + 1] == '$')
        return i + 2;
    char c = l[i + 1];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'))
        return i + 1;                   /* "$5", "$ " and a trailing '$' are literal */
    size_t j = i + 1;
    while (ident_char(l[j]))
        j++;
    if (arc_var_lookup(l + i + 1, j - i - 1) >= 0)
        return j;
    char list[160];
    size_t off = 0;
    for (int k = 0; k < ARC_VAR__COUNT; k++)
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%s$%s", k ? ", " : "",
                                arc_var_names[k]);
    char why[320];
    snprintf(why, sizeof(why), "unknown variable '$%.*s' (supported: %s; write $$ for a '$')",
             (int)(j - i - 1), l + i + 1, list);
    err_at(s, v, i, what, why);
    return 0;
}

/* Location templates: {name} is a capture of the path, $variables the
 * request's (var_at). Anything else that looks like a placeholder is an error
 * rather than a literal, so a typo cannot reach clients as "{nmae}". */
static void check_location(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                           const char *pattern)
{
    const char *l = v->v.s.p;
    for (size_t i = 0; l[i]; i++) {
        if (l[i] == '{') {
            size_t j = i + 1;
            while (ident_char(l[j]))
                j++;
            if (l[j] != '}' || j == i + 1) {
                arc_config__err(s, v, "%s: '{' must start a {name} placeholder", what);
                return;
            }
            if (!pattern || !captures(pattern, l + i + 1, j - i - 1)) {
                arc_config__err(s, v, "%s: {%.*s} is not captured by the route's path", what,
                                (int)(j - i - 1), l + i + 1);
                return;
            }
            i = j;
        } else if (l[i] == '}') {
            arc_config__err(s, v, "%s: unmatched '}'", what);
            return;
        } else if (l[i] == '$') {
            size_t j = var_at(s, v, what, l, i);
            if (j == 0)
                return;
            i = j - 1;
        }
    }
}

/* Header operation values: $variables (and `$$`); sets *vars when the
 * value has any. False: an error was reported. */
static bool check_value_vars(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                             bool *vars)
{
    const char *l = v->v.s.p;
    *vars = false;
    for (size_t i = 0; l[i]; i++) {
        if (l[i] != '$')
            continue;
        size_t j = var_at(s, v, what, l, i);
        if (j == 0)
            return false;
        *vars = true;
        i = j - 1;
    }
    return true;
}

static void redirect(struct arc_sctx *s, const struct arc_cn *m, const char *apath,
                     struct arc_route_conf *r)
{
    char p[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    arc_config__path(p, apath, "redirect");
    r->redirect_status = 302;
    if (!arc_config__check_map(s, m, p, redirect_keys, N(redirect_keys)))
        return;
    int64_t st = 302;
    const struct arc_cn *v = arc_config__val(m, "status");
    if (v && arc_config__int_value(s, v, arc_config__path(kp, p, "status"), 0, 999, &st)) {
        if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308)
            arc_config__err(s, v, "%s: must be 301, 302, 303, 307 or 308, got %lld", kp,
                            (long long)st);
        else
            r->redirect_status = (int)st;
    }
    v = arc_config__val(m, "location");
    if (v && arc_config__str_value(s, v, arc_config__path(kp, p, "location"),
                                   ARC_STR_NONEMPTY | ARC_STR_FIELD)) {
        r->redirect_location = arc_config__xstrdup(v->v.s.p);
        check_location(s, v, kp, r->path);
    }
}

static void add_kv(struct arc_route_conf *r, const char *name, const char *value)
{
    struct arc_header_kv *kv = &r->respond_headers[r->n_respond_headers++];
    kv->name = arc_config__xstrdup(name);
    kv->value = arc_config__xstrdup(value);
}

/* respond.headers: a mapping {name: value} or a list of {name, value} (the
 * list form allows a field to repeat, e.g. Set-Cookie). */
static void respond_headers(struct arc_sctx *s, const struct arc_cn *h, const char *p,
                            struct arc_route_conf *r)
{
    char ip[ARC_PATH_MAX], kp[ARC_PATH_MAX], b[72];
    if (h->kind != ARC_CN_MAP && h->kind != ARC_CN_SEQ) {
        arc_config__err(s, h, "%s: expected a mapping of name: value or a list of "
                        "{name, value}, got %s", p, arc_config__kind_name(h->kind));
        return;
    }
    r->respond_headers = arc_config__xcalloc(h->n, sizeof(*r->respond_headers));
    if (h->kind == ARC_CN_MAP) {
        for (const struct arc_cn *m = h->first; m; m = m->next) {
            arc_config__path(kp, p, arc_config__show(b, m->key, m->key_len));
            if (!arc_config__is_token(m->key, m->key_len)) {
                arc_config__err_key(s, m, "%s: '%s' is not a valid header name", p,
                                    arc_config__show(b, m->key, m->key_len));
                continue;
            }
            if (is_managed(m->key)) {
                arc_config__err_key(s, m, "%s: '%s' is managed by Arc and cannot be set by a "
                                    "route", p, m->key);
                continue;
            }
            if (arc_config__str_value(s, m, kp, ARC_STR_FIELD))
                add_kv(r, m->key, m->v.s.p);
        }
        return;
    }
    size_t i = 0;
    for (const struct arc_cn *it = h->first; it; it = it->next, i++) {
        arc_config__path_index(ip, p, i);
        if (!arc_config__check_map(s, it, ip, hdr_kv_keys, N(hdr_kv_keys)))
            continue;
        const struct arc_cn *n = arc_config__val(it, "name");
        const struct arc_cn *v = arc_config__val(it, "value");
        bool ok = n && header_name(s, n, arc_config__path(kp, ip, "name"));
        ok = v && arc_config__str_value(s, v, arc_config__path(kp, ip, "value"),
                                        ARC_STR_FIELD) && ok;
        if (ok)
            add_kv(r, n->v.s.p, v->v.s.p);
    }
}

static void respond(struct arc_sctx *s, const struct arc_cn *m, const char *apath,
                    struct arc_route_conf *r)
{
    char p[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    arc_config__path(p, apath, "respond");
    r->respond_status = 200;
    r->respond_body = arc_config__xstrdup("");
    if (!arc_config__check_map(s, m, p, respond_keys, N(respond_keys)))
        return;
    int64_t st = 200;
    if (arc_config__get_int(s, m, p, "status", 200, 599, &st))
        r->respond_status = (int)st;
    const struct arc_cn *v = arc_config__val(m, "body");
    if (v && arc_config__str_value(s, v, arc_config__path(kp, p, "body"), 0)) {
        if (v->v.s.len > (1u << 20)) {
            arc_config__err(s, v, "%s: body is larger than 1mb", kp);
        } else if (v->v.s.len && (st < 200 || st == 204 || st == 304)) {
            /* RFC 9110 §6.4.1: these responses never carry content. */
            arc_config__err(s, v, "%s: a %lld response cannot have a body", kp, (long long)st);
        } else {
            free(r->respond_body);
            r->respond_body = arc_config__xstrdup(v->v.s.p);
        }
    }
    if ((v = arc_config__val(m, "headers")))
        respond_headers(s, v, arc_config__path(kp, p, "headers"), r);
}

static void header_ops(struct arc_sctx *s, const struct arc_cn *seq, const char *p,
                       struct arc_header_op **out, size_t *n_out)
{
    static const char *const ops[] = { "add", "set", "remove" }; /* enum arc_hdr_op */
    char ip[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    if (!arc_config__want(s, seq, p, ARC_CN_SEQ))
        return;
    *out = arc_config__xcalloc(seq->n, sizeof(**out));
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        arc_config__path_index(ip, p, i);
        if (!arc_config__check_map(s, it, ip, hdr_op_keys, N(hdr_op_keys)))
            continue;
        int op = -1;
        bool vars = false;
        bool ok = arc_config__get_enum(s, it, ip, "op", ops, N(ops), NULL, 0, &op) && op >= 0;
        const struct arc_cn *n = arc_config__val(it, "name");
        const struct arc_cn *v = arc_config__val(it, "value");
        ok = n && header_name(s, n, arc_config__path(kp, ip, "name")) && ok;
        if (op == ARC_HDR_REMOVE && v) {
            arc_config__err(s, v, "%s.value: not used with op: remove", ip);
            ok = false;
        } else if (op >= 0 && op != ARC_HDR_REMOVE) {
            if (!v) {
                arc_config__err(s, it, "missing required key 'value' in %s (op: %s)", ip,
                                ops[op]);
                ok = false;
            } else {
                ok = arc_config__str_value(s, v, arc_config__path(kp, ip, "value"),
                                           ARC_STR_FIELD) && ok;
                ok = ok && check_value_vars(s, v, kp, &vars);
            }
        }
        if (!ok)
            continue;
        struct arc_header_op *h = &(*out)[(*n_out)++];
        h->op = (enum arc_hdr_op)op;
        h->name = arc_config__xstrdup(n->v.s.p);
        h->value = op == ARC_HDR_REMOVE ? NULL : arc_config__xstrdup(v->v.s.p);
        h->vars = vars;
    }
}

static void forwarded(struct arc_sctx *s, const struct arc_cn *m, const char *apath,
                      struct arc_route_conf *r)
{
    char p[ARC_PATH_MAX];
    arc_config__path(p, apath, "forwarded");
    if (!arc_config__check_map(s, m, p, forwarded_keys, N(forwarded_keys)))
        return;
    arc_config__get_bool(s, m, p, "x_forwarded_for", &r->xff);
    arc_config__get_bool(s, m, p, "x_forwarded_proto", &r->xfp);
    arc_config__get_bool(s, m, p, "via", &r->via);
    arc_config__get_cidrs(s, m, p, "trusted_proxies", 0, &r->trusted_proxies,
                          &r->n_trusted_proxies);
}

void arc_config__resolve_upstream(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                                  const char *name, size_t *index)
{
    const struct arc_config *cfg = s->cfg;
    const char *names[64];
    size_t nn = 0;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const char *n = cfg->upstreams[i].name;
        if (n && strcmp(n, name) == 0) {
            *index = i;
            return;
        }
        if (n && nn < N(names))
            names[nn++] = n;
    }
    const char *hint = arc_config__suggest(name, names, nn);
    if (hint)
        arc_config__err(s, v, "%s: unknown upstream '%s' (did you mean '%s'?)", what, name, hint);
    else if (cfg->n_upstreams == 0)
        arc_config__err(s, v, "%s: unknown upstream '%s' (no upstreams are defined)", what, name);
    else
        arc_config__err(s, v, "%s: unknown upstream '%s'", what, name);
}

static void resolve_upstream(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                             struct arc_route_conf *r)
{
    arc_config__resolve_upstream(s, v, what, r->upstream, &r->upstream_index);
}

static const struct arc_conf_key split_keys[] = {
    { "choices", REQ }, { "key", 0 },
};

static const struct arc_conf_key split_choice_keys[] = {
    { "upstream", REQ }, { "weight", 0 },
};

static const struct arc_conf_key split_key_keys[] = {
    { "source", REQ }, { "name", 0 },
};

/* routes[].split: {choices [{upstream, weight}], key {source, name}}. The
 * route proxies (its action names no upstream, redirect or respond); the
 * first choice stands in as the route's upstream where one is needed. */
static void split(struct arc_sctx *s, const struct arc_cn *m, const char *rpath,
                  struct arc_route_conf *r)
{
    char p[ARC_PATH_MAX], cp[ARC_PATH_MAX], ip[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    arc_config__path(p, rpath, "split");
    if (!arc_config__check_map(s, m, p, split_keys, N(split_keys)))
        return;
    const struct arc_cn *seq = arc_config__val(m, "choices");
    arc_config__path(cp, p, "choices");
    if (!arc_config__want(s, seq, cp, ARC_CN_SEQ))
        return;
    if (seq->n == 0 || seq->n > ARC_SPLIT_MAX_CHOICES) {
        arc_config__err(s, seq, "%s: expected 1 to %d choices, got %zu", cp,
                        ARC_SPLIT_MAX_CHOICES, seq->n);
        return;
    }
    struct arc_split_conf *sp = arc_config__xcalloc(1, sizeof(*sp));
    r->split = sp;
    sp->choices = arc_config__xcalloc(seq->n, sizeof(*sp->choices));
    sp->n_choices = seq->n;
    uint64_t total = 0;
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        struct arc_split_choice *c = &sp->choices[i];
        c->weight = 1;
        arc_config__path_index(ip, cp, i);
        if (!arc_config__check_map(s, it, ip, split_choice_keys, N(split_choice_keys)))
            continue;
        arc_config__get_u32(s, it, ip, "weight", 0, 10000, &c->weight);
        total += c->weight;
        if (!arc_config__get_str(s, it, ip, "upstream", ARC_STR_NAME, &c->upstream) ||
            !c->upstream)
            continue;
        arc_config__resolve_upstream(s, arc_config__val(it, "upstream"),
                                     arc_config__path(kp, ip, "upstream"), c->upstream,
                                     &c->upstream_index);
        for (size_t j = 0; j < i; j++)
            if (sp->choices[j].upstream && strcmp(sp->choices[j].upstream, c->upstream) == 0) {
                arc_config__err(s, arc_config__val(it, "upstream"), "%s.upstream: '%s' is "
                                "already choice %zu (give it one choice with the summed "
                                "weight)", ip, c->upstream, j);
                break;
            }
    }
    if (total == 0 && sp->n_choices)
        arc_config__err(s, seq, "%s: every weight is 0 (at least one must be above 0)", cp);
    const struct arc_cn *k = arc_config__val(m, "key");
    arc_config__path(kp, p, "key");
    if (k && arc_config__check_map(s, k, kp, split_key_keys, N(split_key_keys))) {
        /* Same order as enum arc_split_key. */
        static const char *const sources[] = { "random", "client_ip", "header", "cookie" };
        int src = 0;
        if (arc_config__get_enum(s, k, kp, "source", sources, N(sources), NULL, 0, &src))
            sp->key = (enum arc_split_key)src;
        bool named = sp->key == ARC_SPLIT_HEADER || sp->key == ARC_SPLIT_COOKIE;
        const struct arc_cn *nm = arc_config__val(k, "name");
        if (!named && nm)
            arc_config__err(s, nm, "%s.name: not used with source: %s", kp, sources[sp->key]);
        else if (named && !nm)
            arc_config__err(s, k, "%s: source: %s needs a name", kp, sources[sp->key]);
        else if (nm && arc_config__get_str(s, k, kp, "name", ARC_STR_NONEMPTY, &sp->key_name) &&
                 sp->key == ARC_SPLIT_HEADER &&
                 !arc_config__is_token(sp->key_name, strlen(sp->key_name)))
            arc_config__err(s, nm, "%s.name: '%s' is not a valid header name", kp, sp->key_name);
    }
    if (sp->choices[0].upstream) {
        r->action = ARC_ACTION_UPSTREAM;
        r->upstream = arc_config__xstrdup(sp->choices[0].upstream);
        r->upstream_index = sp->choices[0].upstream_index;
    }
}

/* action.timeout at most a week; action.max_body at most 1 PiB. */
#define ROUTE_TIMEOUT_MAX (7ull * 24 * 3600 * 1000)
#define ROUTE_MAX_BODY_MAX (1ull << 50)
#define ROUTE_MAX_BODY_DEFAULT (10ull << 20)

static bool path_captures(const char *name, size_t n, const void *ud)
{
    return captures(ud, name, n);
}

/* The error for byte `off` of string v, at its position in the file. */
static void err_at(struct arc_sctx *s, const struct arc_cn *v, size_t off, const char *what,
                   const char *why)
{
    int line, col;
    char b[72];
    if (text_pos(s, v, off, &line, &col))
        arc_config__error(s->d, line, col, "%s: %s", what, why);
    else
        arc_config__error(s->d, line, col, "%s: %s (at character %zu of '%s')", what, why,
                          utf8_chars(v->v.s.p, off) + 1, arc_config__show(b, v->v.s.p, v->v.s.len));
}

static void rewrite(struct arc_sctx *s, const struct arc_cn *m, const char *apath,
                    struct arc_route_conf *r)
{
    char p[ARC_PATH_MAX], pp[ARC_PATH_MAX], rp[ARC_PATH_MAX];
    arc_config__path(p, apath, "rewrite");
    if (!arc_config__check_map(s, m, p, rewrite_keys, N(rewrite_keys)))
        return;
    const struct arc_cn *pat = arc_config__val(m, "pattern"), *rep = arc_config__val(m, "replace");
    if (!pat || !rep ||
        !arc_config__str_value(s, pat, arc_config__path(pp, p, "pattern"), ARC_STR_NONEMPTY) ||
        !arc_config__str_value(s, rep, arc_config__path(rp, p, "replace"), ARC_STR_NONEMPTY))
        return;
    if (rep->v.s.len > ARC_RT_REWRITE_MAX / 2) {
        arc_config__err(s, rep, "%s: longer than %d bytes", rp, ARC_RT_REWRITE_MAX / 2);
        return;
    }
    char why[160];
    size_t off;
    bool in_rep;
    if (arc_rt_rewrite_check(pat->v.s.p, rep->v.s.p, path_captures, r->path, why, sizeof(why),
                             &off, &in_rep) < 0) {
        if (in_rep) {
            err_at(s, rep, off, rp, why);
        } else {
            char msg[200];
            snprintf(msg, sizeof(msg), "regex does not compile: %s", why);
            err_at(s, pat, off, pp, msg);
        }
        return;
    }
    r->rewrite_pattern = arc_config__xstrdup(pat->v.s.p);
    r->rewrite_replace = arc_config__xstrdup(rep->v.s.p);
}

static void retry(struct arc_sctx *s, const struct arc_cn *m, const char *apath,
                  struct arc_retry_conf *rc)
{
    char p[ARC_PATH_MAX], ip[ARC_PATH_MAX];
    arc_config__path(p, apath, "retry");
    if (!arc_config__check_map(s, m, p, retry_keys, N(retry_keys)))
        return;
    rc->enabled = true;
    arc_config__get_u32(s, m, p, "max_retries", 0, 10, &rc->max_retries);
    arc_config__get_dur(s, m, p, "backoff", 0, 60 * 1000, false, &rc->backoff);
    arc_config__get_bool(s, m, p, "idempotent_only", &rc->idempotent_only);
    arc_config__get_u32(s, m, p, "budget", 0, 100, &rc->budget);
    arc_config__get_u32(s, m, p, "budget_min", 0, 1000000, &rc->budget_min);
    arc_config__get_dur(s, m, p, "budget_window", 1, 3600 * 1000, false, &rc->budget_window);
    arc_config__get_size(s, m, p, "max_body", 0, 64ull << 20, false, &rc->max_body);
    const struct arc_cn *on = arc_config__val(m, "on");
    char op[ARC_PATH_MAX];
    arc_config__path(op, p, "on");
    if (!on || !arc_config__want(s, on, op, ARC_CN_SEQ))
        return;
    rc->on_connect_failure = rc->on_reset = false;
    rc->n_statuses = 0;
    size_t i = 0;
    for (const struct arc_cn *it = on->first; it; it = it->next, i++) {
        arc_config__path_index(ip, op, i);
        if (it->kind == ARC_CN_STR && strcmp(it->v.s.p, "connect_failure") == 0) {
            rc->on_connect_failure = true;
        } else if (it->kind == ARC_CN_STR && strcmp(it->v.s.p, "reset") == 0) {
            rc->on_reset = true;
        } else if (it->kind == ARC_CN_INT) {
            int64_t st;
            if (!arc_config__int_value(s, it, ip, 200, 599, &st))
                continue;
            if (rc->n_statuses == ARC_RETRY_MAX_STATUSES) {
                arc_config__err(s, it, "%s: at most %d statuses", op, ARC_RETRY_MAX_STATUSES);
                return;
            }
            rc->statuses[rc->n_statuses++] = (uint16_t)st;
        } else {
            arc_config__err(s, it, "%s: expected connect_failure, reset or a status 200-599", ip);
        }
    }
}

static void action(struct arc_sctx *s, const struct arc_cn *m, const char *rpath,
                   struct arc_route_conf *r, bool has_split)
{
    static const char *const kinds[] = { "upstream", "redirect", "respond" };
    char p[ARC_PATH_MAX], kp[ARC_PATH_MAX];
    arc_config__path(p, rpath, "action");
    if (!arc_config__check_map(s, m, p, action_keys, N(action_keys)))
        return;
    const struct arc_cn *present[3];
    int pk[3], np = 0;
    for (int k = 0; k < 3; k++) {
        const struct arc_cn *v = arc_config__val(m, kinds[k]);
        if (v) {
            present[np] = v;
            pk[np++] = k;
        }
    }
    for (int i = 0; has_split && i < np; i++)
        arc_config__err_key(s, present[i], "%s: '%s' cannot be combined with split (the "
                            "split's choices are the upstreams)", p, kinds[pk[i]]);
    if (has_split)
        np = 0;
    if (np == 0 && !has_split) {
        arc_config__err(s, m, "%s: needs exactly one of upstream, redirect or respond", p);
        return;
    }
    /* The first one in the file is the action; the others are the error. */
    int best = 0;
    for (int i = 1; i < np; i++)
        if (present[i]->key_line < present[best]->key_line ||
            (present[i]->key_line == present[best]->key_line &&
             present[i]->key_col < present[best]->key_col))
            best = i;
    for (int i = 0; i < np; i++)
        if (i != best)
            arc_config__err_key(s, present[i], "%s: '%s' cannot be combined with '%s' (an "
                                "action is exactly one of upstream, redirect or respond)", p,
                                kinds[pk[i]], kinds[pk[best]]);
    const struct arc_cn *first = np ? present[best] : m;
    int kind = np ? pk[best] : ARC_ACTION_UPSTREAM;
    r->action = (enum arc_action_kind)kind;
    if (kind == ARC_ACTION_UPSTREAM && has_split) {
        /* (split() named the upstream) */
    } else if (kind == ARC_ACTION_UPSTREAM) {
        if (arc_config__get_str(s, m, p, "upstream", ARC_STR_NAME, &r->upstream) && r->upstream)
            resolve_upstream(s, first, arc_config__path(kp, p, "upstream"), r);
    } else if (kind == ARC_ACTION_REDIRECT) {
        redirect(s, first, p, r);
    } else {
        respond(s, first, p, r);
    }

    /* Request-side options only mean something when a request is proxied. */
    const struct arc_cn *v;
    static const char *const proxy_only[] = { "headers", "forwarded", "rewrite", "timeout",
                                              "max_body", "retry" };
    for (size_t i = 0; i < N(proxy_only); i++)
        if (kind != ARC_ACTION_UPSTREAM && (v = arc_config__get(m, proxy_only[i])))
            arc_config__err_key(s, v, "%s.%s: only applies to routes with an upstream", p,
                                proxy_only[i]);
    if (kind == ARC_ACTION_UPSTREAM && (v = arc_config__val(m, "headers")))
        header_ops(s, v, arc_config__path(kp, p, "headers"), &r->req_headers, &r->n_req_headers);
    if ((v = arc_config__val(m, "response_headers")))
        header_ops(s, v, arc_config__path(kp, p, "response_headers"), &r->resp_headers,
                   &r->n_resp_headers);
    if (kind == ARC_ACTION_UPSTREAM && (v = arc_config__val(m, "forwarded")))
        forwarded(s, v, p, r);
    if (kind != ARC_ACTION_UPSTREAM)
        return;
    if ((v = arc_config__val(m, "retry")))
        retry(s, v, p, &r->retry);
    if ((v = arc_config__val(m, "rewrite")))
        rewrite(s, v, p, r);
    arc_config__get_dur(s, m, p, "timeout", 0, ROUTE_TIMEOUT_MAX, false, &r->timeout_ms);
    arc_config__get_size(s, m, p, "max_body", 0, ROUTE_MAX_BODY_MAX, false, &r->max_body);
}

static void route(struct arc_sctx *s, const struct arc_cn *m, const char *p,
                  struct arc_route_conf *r)
{
    r->xff = r->xfp = r->via = true;
    r->max_body = ROUTE_MAX_BODY_DEFAULT;
    r->retry = (struct arc_retry_conf){
        .max_retries = 1, .backoff = 50, .idempotent_only = true, .on_connect_failure = true,
        .on_reset = true, .statuses = { 502, 503, 504 }, .n_statuses = 3, .budget = 20,
        .budget_min = 3, .budget_window = 10000, .max_body = 64 * 1024,
    };
    r->file = arc_config__xstrdup(s->d->file ? s->d->file : "<config>");
    r->line = m->line;
    r->col = m->col;
    if (!arc_config__check_map(s, m, p, route_keys, N(route_keys)))
        return;
    arc_config__get_str(s, m, p, "name", ARC_STR_NAME, &r->name);
    int64_t prio = 0;
    if (arc_config__get_int(s, m, p, "priority", INT32_MIN, INT32_MAX, &prio))
        r->priority = (int32_t)prio;
    const struct arc_cn *v;
    if ((v = arc_config__val(m, "match")))
        match(s, v, p, r);
    const struct arc_cn *sv = arc_config__val(m, "split");
    if (sv)
        split(s, sv, p, r);
    if ((v = arc_config__val(m, "action")))
        action(s, v, p, r, sv != NULL);
    else if (!sv)
        arc_config__err(s, m, "missing required key 'action' in %s", p);
    if ((v = arc_config__val(m, "rate_limit")))
        arc_config__rate_limit(s, v, p, r);
    char kp[ARC_PATH_MAX];
    if ((v = arc_config__val(m, "mirror")))
        arc_config__route_mirror(s, v, p, r);
    if ((v = arc_config__val(m, "plugins")))
        arc_config__route_plugins(s, v, arc_config__path(kp, p, "plugins"), r);
}

void arc_config__routes(struct arc_sctx *s, const struct arc_cn *seq)
{
    struct arc_config *cfg = s->cfg;
    if (!arc_config__want(s, seq, "routes", ARC_CN_SEQ))
        return;
    if (seq->n == 0)
        return;
    cfg->routes = arc_config__xcalloc(seq->n, sizeof(*cfg->routes));
    cfg->n_routes = seq->n;
    char p[ARC_PATH_MAX];
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++)
        route(s, it, arc_config__path_index(p, "routes", i), &cfg->routes[i]);

    i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        const char *name = cfg->routes[i].name;
        size_t j = 0;
        for (const struct arc_cn *jt = seq->first; name && jt != it; jt = jt->next, j++) {
            if (cfg->routes[j].name && strcmp(cfg->routes[j].name, name) == 0) {
                arc_config__err(s, arc_config__val(it, "name"),
                                "routes[%zu].name: duplicate route name '%s' (first used at "
                                "line %d)", i, name, arc_config__val(jt, "name")->line);
                break;
            }
        }
    }
}
