/*
 * Typed access to the positioned tree for the schema walker: key tables,
 * "did you mean" hints, and getters that check type and range and point
 * their errors at the offending node. See schema_int.h for the conventions.
 */
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/schema_int.h"

static void oom(void)
{
    fputs("arc: out of memory while loading configuration\n", stderr);
    abort();
}

void *arc_config__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

char *arc_config__xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

const char *arc_config__path(char buf[ARC_PATH_MAX], const char *path, const char *key)
{
    if (!path || !*path)
        snprintf(buf, ARC_PATH_MAX, "%s", key);
    else
        snprintf(buf, ARC_PATH_MAX, "%s.%s", path, key);
    return buf;
}

const char *arc_config__path_index(char buf[ARC_PATH_MAX], const char *path, size_t i)
{
    if (snprintf(buf, ARC_PATH_MAX, "%s[%zu]", path, i) >= ARC_PATH_MAX)
        buf[ARC_PATH_MAX - 2] = ']';   /* (cut, never overflowed; still reads as an index) */
    return buf;
}

void arc_config__err(struct arc_sctx *s, const struct arc_cn *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    arc_config__verror(s->d, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

void arc_config__err_key(struct arc_sctx *s, const struct arc_cn *member, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    arc_config__verror(s->d, member->key_line, member->key_col, fmt, ap);
    va_end(ap);
}

/* Text of a user string safe to embed in one error line: control
 * characters become '?', long text is cut with "...". */
const char *arc_config__show(char buf[72], const char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o < 64; i++)
        buf[o++] = ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) ? '?' : p[i];
    if (o < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* ------------------------------------------------------------ suggestions */

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* Optimal string alignment distance (Levenshtein plus adjacent swaps),
 * case-insensitive; words longer than 63 bytes are never close. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = lower(a[i - 1]) != lower(b[j - 1]);
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]) && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

const char *arc_config__suggest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word);
    /* Short words get one edit, longer ones two: "tls"→"tld" is not a typo
     * of anything, "lisener"→"listeners" is. */
    size_t limit = len <= 4 ? 1 : 2;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        size_t dist = edit_distance(word, cands[i]);
        if (dist < best_d && dist < len) {
            best = cands[i];
            best_d = dist;
        }
    }
    return best;
}

/* ------------------------------------------------------------ mappings */

const struct arc_cn *arc_config__val(const struct arc_cn *map, const char *key)
{
    const struct arc_cn *v = arc_config__get(map, key);
    return v && v->kind != ARC_CN_NULL ? v : NULL;
}

bool arc_config__check_map(struct arc_sctx *s, const struct arc_cn *node, const char *path,
                           const struct arc_conf_key *keys, size_t n_keys)
{
    char kb[72], pb[ARC_PATH_MAX];
    if (node->kind != ARC_CN_MAP) {
        arc_config__err(s, node, "%s: expected a mapping, got %s", *path ? path : "document",
                        arc_config__kind_name(node->kind));
        return false;
    }
    const char *names[48];
    size_t nn = n_keys < 48 ? n_keys : 48;
    for (size_t i = 0; i < nn; i++)
        names[i] = keys[i].name;

    /* Required keys that a typo error already points at ("did you mean
     * 'bind'?") are not reported missing a second time. */
    bool hinted[48] = { false };
    for (const struct arc_cn *m = node->first; m; m = m->next) {
        const struct arc_conf_key *k = NULL;
        for (size_t i = 0; i < n_keys; i++)
            if (strlen(keys[i].name) == m->key_len && memcmp(keys[i].name, m->key, m->key_len) == 0)
                k = &keys[i];
        if (!k) {
            const char *hint = arc_config__suggest(m->key, names, nn);
            for (size_t i = 0; hint && i < nn; i++)
                if (names[i] == hint)
                    hinted[i] = true;
            char where[ARC_PATH_MAX + 8];
            if (*path)
                snprintf(where, sizeof(where), "in %s", path);
            else
                snprintf(where, sizeof(where), "at top level");
            if (hint)
                arc_config__err_key(s, m, "unknown key '%s' %s (did you mean '%s'?)",
                                    arc_config__show(kb, m->key, m->key_len), where, hint);
            else
                arc_config__err_key(s, m, "unknown key '%s' %s", arc_config__show(kb, m->key, m->key_len),
                                    where);
            continue;
        }
        if (k->flags & ARC_KEY_LATER)
            arc_config__err_key(s, m, "%s: not supported yet in this version",
                                arc_config__path(pb, path, k->name));
    }
    for (size_t i = 0; i < n_keys; i++) {
        if (!(keys[i].flags & ARC_KEY_REQUIRED))
            continue;
        const struct arc_cn *m = arc_config__get(node, keys[i].name);
        if (!m && i < nn && hinted[i])
            continue;
        if (!m)
            arc_config__err(s, node, "missing required key '%s' in %s", keys[i].name,
                            *path ? path : "the document");
        else if (m->kind == ARC_CN_NULL)
            arc_config__err(s, m, "%s: a value is required",
                            arc_config__path(pb, path, keys[i].name));
    }
    return true;
}

bool arc_config__want(struct arc_sctx *s, const struct arc_cn *v, const char *path,
                      enum arc_cn_kind kind)
{
    if (v->kind == kind)
        return true;
    static const char *const article[] = {
        [ARC_CN_NULL] = "null", [ARC_CN_BOOL] = "a boolean", [ARC_CN_INT] = "an integer",
        [ARC_CN_FLOAT] = "a number", [ARC_CN_STR] = "a string", [ARC_CN_SEQ] = "a list",
        [ARC_CN_MAP] = "a mapping",
    };
    arc_config__err(s, v, "%s: expected %s, got %s", path, article[kind],
                    arc_config__kind_name(v->kind));
    return false;
}

/* ------------------------------------------------------------ scalars */

bool arc_config__get_bool(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                          const char *key, bool *out)
{
    char pb[ARC_PATH_MAX];
    const struct arc_cn *v = arc_config__val(map, key);
    if (!v)
        return true;
    if (v->kind == ARC_CN_STR) {
        static const char *const yaml11[] = { "yes", "no", "on", "off", "y", "n" };
        for (size_t i = 0; i < sizeof(yaml11) / sizeof(yaml11[0]); i++)
            if (strcasecmp(v->v.s.p, yaml11[i]) == 0) {
                /* YAML 1.1 habits: in the 1.2 core schema these are strings. */
                arc_config__err(s, v, "%s: expected true or false, got the string '%s'",
                                arc_config__path(pb, path, key), v->v.s.p);
                return false;
            }
    }
    if (!arc_config__want(s, v, arc_config__path(pb, path, key), ARC_CN_BOOL))
        return false;
    *out = v->v.b;
    return true;
}

/* The fewest significant digits that read back as f: an error quotes the
 * number the user wrote (1.0000000000000002, not %g's "1"). */
static const char *shortest(double f, char *buf, size_t n)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    return buf;
}

bool arc_config__int_value(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                           int64_t min, int64_t max, int64_t *out)
{
    int64_t i;
    if (v->kind == ARC_CN_INT) {
        i = v->v.i;
    } else if (v->kind == ARC_CN_FLOAT && v->v.f == trunc(v->v.f) &&
               fabs(v->v.f) <= 9007199254740992.0) {
        /* 4.0 is the integer 4 (canon.c writes it so; validity must agree). */
        i = (int64_t)v->v.f;
    } else if (v->kind == ARC_CN_FLOAT) {
        char num[32];
        arc_config__err(s, v, "%s: expected an integer, got %s", what,
                        shortest(v->v.f, num, sizeof(num)));
        return false;
    } else {
        return arc_config__want(s, v, what, ARC_CN_INT);
    }
    if (i < min || i > max) {
        arc_config__err(s, v, "%s: must be between %lld and %lld, got %lld", what,
                        (long long)min, (long long)max, (long long)i);
        return false;
    }
    *out = i;
    return true;
}

bool arc_config__get_int(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                         const char *key, int64_t min, int64_t max, int64_t *out)
{
    char pb[ARC_PATH_MAX];
    const struct arc_cn *v = arc_config__val(map, key);
    if (!v)
        return true;
    return arc_config__int_value(s, v, arc_config__path(pb, path, key), min, max, out);
}

bool arc_config__get_u32(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                         const char *key, uint32_t min, uint32_t max, uint32_t *out)
{
    int64_t i;
    if (!arc_config__val(map, key))
        return true;
    if (!arc_config__get_int(s, map, path, key, min, max, &i))
        return false;
    *out = (uint32_t)i;
    return true;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

bool arc_config__str_value(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                           unsigned flags)
{
    if (!arc_config__want(s, v, what, ARC_CN_STR))
        return false;
    const char *p = v->v.s.p;
    size_t n = v->v.s.len;
    if (memchr(p, '\0', n)) {
        arc_config__err(s, v, "%s: must not contain NUL characters", what);
        return false;
    }
    if ((flags & (ARC_STR_NONEMPTY | ARC_STR_NAME)) && n == 0) {
        arc_config__err(s, v, "%s: must not be empty", what);
        return false;
    }
    if (flags & ARC_STR_NAME) {
        bool ok = n <= 128;
        for (size_t i = 0; ok && i < n; i++)
            ok = name_char(p[i]);
        if (!ok) {
            char b[72];
            arc_config__err(s, v, "%s: '%s' is not a valid name (use 1-128 of A-Z a-z 0-9 _ . -)",
                            what, arc_config__show(b, p, n));
            return false;
        }
    }
    if (flags & ARC_STR_NO_CTL) {
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
                arc_config__err(s, v, "%s: must not contain control characters", what);
                return false;
            }
    }
    if (flags & ARC_STR_FIELD) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                /* CR/LF here would let a config inject headers (RFC 9110 §5.5). */
                arc_config__err(s, v, "%s: header values must not contain CR, LF or other "
                                "control characters", what);
                return false;
            }
        }
        if (n && (p[0] == ' ' || p[0] == '\t' || p[n - 1] == ' ' || p[n - 1] == '\t')) {
            arc_config__err(s, v, "%s: header values must not start or end with whitespace",
                            what);
            return false;
        }
    }
    return true;
}

bool arc_config__get_str(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                         const char *key, unsigned flags, char **out)
{
    char pb[ARC_PATH_MAX];
    const struct arc_cn *v = arc_config__val(map, key);
    if (!v)
        return true;
    if (!arc_config__str_value(s, v, arc_config__path(pb, path, key), flags))
        return false;
    free(*out);
    *out = arc_config__xstrdup(v->v.s.p);
    return true;
}

const char *arc_config__dur_text(char buf[32], uint64_t ms)
{
    if (ms && ms % 3600000 == 0)
        snprintf(buf, 32, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms && ms % 60000 == 0)
        snprintf(buf, 32, "%llum", (unsigned long long)(ms / 60000));
    else if (ms && ms % 1000 == 0)
        snprintf(buf, 32, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, 32, "%llums", (unsigned long long)ms);
    return buf;
}

const char *arc_config__size_text(char buf[32], uint64_t v)
{
    if (v && v % (1u << 30) == 0)
        snprintf(buf, 32, "%llugb", (unsigned long long)(v >> 30));
    else if (v && v % (1u << 20) == 0)
        snprintf(buf, 32, "%llumb", (unsigned long long)(v >> 20));
    else if (v && v % 1024 == 0)
        snprintf(buf, 32, "%llukb", (unsigned long long)(v >> 10));
    else
        snprintf(buf, 32, "%llu", (unsigned long long)v);
    return buf;
}

bool arc_config__get_dur(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                         const char *key, uint64_t min, uint64_t max, bool whole_seconds,
                         uint64_t *out)
{
    char pb[ARC_PATH_MAX], b1[32], b2[32], sb[72];
    const struct arc_cn *v = arc_config__val(map, key);
    if (!v)
        return true;
    const char *what = arc_config__path(pb, path, key);
    if (v->kind != ARC_CN_STR) {
        arc_config__err(s, v, "%s: expected a duration string like \"30s\" or \"250ms\" "
                        "(units ms, s, m, h), got %s", what, arc_config__kind_name(v->kind));
        return false;
    }
    uint64_t ms;
    if (memchr(v->v.s.p, '\0', v->v.s.len) || arc_config_parse_duration(v->v.s.p, &ms) < 0) {
        arc_config__err(s, v, "%s: invalid duration '%s' (expected a whole number with a "
                        "unit: ms, s, m or h, e.g. \"30s\")", what,
                        arc_config__show(sb, v->v.s.p, v->v.s.len));
        return false;
    }
    if (ms < min || ms > max) {
        arc_config__err(s, v, "%s: must be between %s and %s, got %s", what,
                        arc_config__dur_text(b1, min), arc_config__dur_text(b2, max),
                        arc_config__show(sb, v->v.s.p, v->v.s.len));
        return false;
    }
    if (whole_seconds && ms % 1000) {
        arc_config__err(s, v, "%s: must be a whole number of seconds (the kernel option "
                        "has 1s resolution), got %s", what, arc_config__show(sb, v->v.s.p, v->v.s.len));
        return false;
    }
    *out = ms;
    return true;
}

bool arc_config__get_size(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                          const char *key, uint64_t min, uint64_t max, bool pow2,
                          uint64_t *out)
{
    char pb[ARC_PATH_MAX], b1[32], b2[32], b3[32], sb[72];
    const struct arc_cn *v = arc_config__val(map, key);
    if (!v)
        return true;
    const char *what = arc_config__path(pb, path, key);
    uint64_t bytes;
    if (v->kind == ARC_CN_INT || v->kind == ARC_CN_FLOAT) {
        int64_t i;
        if (!arc_config__int_value(s, v, what, 0, INT64_MAX, &i))
            return false;
        bytes = (uint64_t)i;
    } else if (v->kind == ARC_CN_STR) {
        if (memchr(v->v.s.p, '\0', v->v.s.len) || arc_config_parse_size(v->v.s.p, &bytes) < 0) {
            arc_config__err(s, v, "%s: invalid size '%s' (expected bytes or a number with kb, "
                            "mb or gb, e.g. \"64kb\")", what, arc_config__show(sb, v->v.s.p, v->v.s.len));
            return false;
        }
    } else {
        arc_config__err(s, v, "%s: expected a size like 512 or \"64kb\", got %s", what,
                        arc_config__kind_name(v->kind));
        return false;
    }
    if (bytes < min || bytes > max) {
        arc_config__err(s, v, "%s: must be between %s and %s, got %s", what,
                        arc_config__size_text(b1, min), arc_config__size_text(b2, max),
                        arc_config__size_text(b3, bytes));
        return false;
    }
    if (pow2 && (bytes & (bytes - 1))) {
        arc_config__err(s, v, "%s: must be a power of two, got %s", what,
                        arc_config__size_text(b1, bytes));
        return false;
    }
    *out = bytes;
    return true;
}

bool arc_config__get_addr(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                          const char *key, bool allow_port0, struct arc_addr *out)
{
    char pb[ARC_PATH_MAX], sb[72];
    const struct arc_cn *v = arc_config__val(map, key);
    if (!v)
        return true;
    const char *what = arc_config__path(pb, path, key);
    if (!arc_config__want(s, v, what, ARC_CN_STR))
        return false;
    struct arc_addr a;
    if (memchr(v->v.s.p, '\0', v->v.s.len) || arc_config_parse_addr(v->v.s.p, &a) < 0) {
        arc_config__err(s, v, "%s: '%s' is not an address; expected \"ip:port\" or "
                        "\"[ipv6]:port\" (host names are not accepted)", what,
                        arc_config__show(sb, v->v.s.p, v->v.s.len));
        return false;
    }
    uint16_t port = a.ss.ss_family == AF_INET
                        ? ((const struct sockaddr_in *)(const void *)&a.ss)->sin_port
                        : ((const struct sockaddr_in6 *)(const void *)&a.ss)->sin6_port;
    if (port == 0 && !allow_port0) {
        arc_config__err(s, v, "%s: port 0 is not valid here", what);
        return false;
    }
    *out = a;
    return true;
}

bool arc_config__get_enum(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                          const char *key, const char *const *names, size_t n_names,
                          const char *const *later, size_t n_later, int *out)
{
    char pb[ARC_PATH_MAX], sb[72], list[256];
    const struct arc_cn *v = arc_config__val(map, key);
    if (!v)
        return true;
    const char *what = arc_config__path(pb, path, key);
    if (!arc_config__want(s, v, what, ARC_CN_STR))
        return false;
    for (size_t i = 0; i < n_names; i++)
        if (strlen(names[i]) == v->v.s.len && strcmp(names[i], v->v.s.p) == 0) {
            *out = (int)i;
            return true;
        }
    size_t o = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n_names && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", names[i]);
    for (size_t i = 0; i < n_later; i++)
        if (strlen(later[i]) == v->v.s.len && strcmp(later[i], v->v.s.p) == 0) {
            arc_config__err(s, v, "%s: '%s' is not supported yet in this version (supported: %s)",
                            what, later[i], list);
            return false;
        }
    const char *hint = arc_config__suggest(v->v.s.p, names, n_names);
    if (hint)
        arc_config__err(s, v, "%s: unknown value '%s' (did you mean '%s'?)", what,
                        arc_config__show(sb, v->v.s.p, v->v.s.len), hint);
    else
        arc_config__err(s, v, "%s: unknown value '%s' (expected one of: %s)", what,
                        arc_config__show(sb, v->v.s.p, v->v.s.len), list);
    return false;
}

bool arc_config__is_token(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (!strchr("!#$%&'*+-.^_`|~", c) || c == 0)
            return false;
    }
    return true;
}

void arc_config__get_cidrs(struct arc_sctx *s, const struct arc_cn *m, const char *path,
                           const char *key, size_t max, struct arc_cidr **out, size_t *n_out)
{
    char kp[ARC_PATH_MAX], ip[ARC_PATH_MAX], b[72];
    const struct arc_cn *seq = arc_config__val(m, key);
    if (!seq || !arc_config__want(s, seq, arc_config__path(kp, path, key), ARC_CN_SEQ))
        return;
    if (max && seq->n > max) {
        arc_config__err(s, seq, "%s: at most %zu prefixes, got %zu", kp, max, seq->n);
        return;
    }
    *out = arc_config__xcalloc(seq->n ? seq->n : 1, sizeof(**out));
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        arc_config__path_index(ip, kp, i);
        if (!arc_config__str_value(s, it, ip, 0))
            continue;
        struct arc_cidr c;
        if (memchr(it->v.s.p, '\0', it->v.s.len) || arc_config_parse_cidr(it->v.s.p, &c) < 0) {
            arc_config__err(s, it, "%s: '%s' is not a CIDR prefix like \"10.0.0.0/8\" or "
                            "\"2001:db8::/32\" (host bits must be zero)", ip,
                            arc_config__show(b, it->v.s.p, it->v.s.len));
            continue;
        }
        (*out)[(*n_out)++] = c;
    }
}
