/*
 * Path rewrites (routes[].action.rewrite): a PCRE2 pattern searched in the
 * request path, and a replacement for the part it matched.
 *
 * The replacement is a template: `$0`..`$9` are the pattern's groups (an
 * unset group is empty), `{name}` a capture of the route's path pattern,
 * `$$` a literal '$'. The matched part of the path is replaced (the first
 * match only), so `^/api/(.*)` → `/$1` strips a prefix and `/v1/` → `/v2/`
 * renames a segment. A replacement containing '?' sets the query (the
 * client's query is dropped); otherwise the client's query is kept.
 * Templates are checked when the config is loaded (arc_rt_rewrite_check),
 * so applying one cannot fail except on the regex match limit.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "router/router.h"
#include "router/router_int.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUPS_MAX 10           /* $0..$9 */

struct arc_rt_rewrite {
    pcre2_code *re;
    pcre2_match_context *mctx;
    char *replace;
    size_t replace_len;
};

/* One match block per thread (GROUPS_MAX pairs), freed with the thread. */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_key_ok;
static _Thread_local pcre2_match_data *tl_md;

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
}

static void key_init(void)
{
    g_key_ok = pthread_key_create(&g_key, md_destroy) == 0;
}

static pcre2_match_data *thread_md(void)
{
    if (tl_md)
        return tl_md;
    pthread_once(&g_once, key_init);
    if (!g_key_ok)
        return NULL;
    pcre2_match_data *md = pcre2_match_data_create(GROUPS_MAX, NULL);
    if (md && pthread_setspecific(g_key, md) != 0) {
        pcre2_match_data_free(md);
        md = NULL;
    }
    return tl_md = md;
}

/* Characters a replacement may hold as literals: RFC 3986 pchar, '/', and
 * '?' (starts the query); '%' only as a %XX escape (checked by the caller's
 * walk). No '#', space, controls or non-ASCII. */
static bool literal_ok(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("-._~!$&'()*+,;=:@/?%", c) != NULL;
}

static bool hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

int arc_rt_rewrite_check(const char *pattern, const char *replace,
                         bool (*has_capture)(const char *name, size_t n, const void *ud),
                         const void *ud, char *err, size_t errlen, size_t *offset,
                         bool *in_replace)
{
    *offset = 0;
    *in_replace = false;
    pcre2_code *re = arc_rt__regex_compile(pattern, err, errlen, offset);
    if (!re)
        return -1;
    uint32_t groups = 0;
    (void)pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
    pcre2_code_free(re);
    *in_replace = true;
    if (replace[0] != '/') {
        snprintf(err, errlen, "must start with '/'");
        return -1;
    }
    for (size_t i = 0; replace[i]; i++) {
        char c = replace[i];
        *offset = i;
        if (c == '$') {
            if (replace[i + 1] == '$') {
                i++;
            } else if (replace[i + 1] >= '0' && replace[i + 1] <= '9') {
                unsigned g = (unsigned)(replace[i + 1] - '0');
                if (g > groups) {
                    snprintf(err, errlen, "$%u: the pattern has %u group%s", g, groups,
                             groups == 1 ? "" : "s");
                    return -1;
                }
                i++;
            } else {
                snprintf(err, errlen, "'$' must be followed by a digit (a group) or '$'");
                return -1;
            }
        } else if (c == '{') {
            size_t j = i + 1;
            while (ident(replace[j]))
                j++;
            if (replace[j] != '}' || j == i + 1) {
                snprintf(err, errlen, "'{' must start a {name} placeholder");
                return -1;
            }
            if (!has_capture(replace + i + 1, j - i - 1, ud)) {
                snprintf(err, errlen, "{%.*s} is not captured by the route's path",
                         (int)(j - i - 1), replace + i + 1);
                return -1;
            }
            i = j;
        } else if (c == '%') {
            if (!hex(replace[i + 1]) || !hex(replace[i + 2])) {
                snprintf(err, errlen, "'%%' must start a %%XX escape");
                return -1;
            }
            i += 2;
        } else if (!literal_ok((unsigned char)c)) {
            if ((unsigned char)c < 0x20 || c == 0x7f)
                snprintf(err, errlen, "control character 0x%02x is not allowed in a path",
                         (unsigned char)c);
            else
                snprintf(err, errlen, "'%c' is not allowed in a path or query "
                         "(percent-encode it)", c);
            return -1;
        }
    }
    return 0;
}

struct arc_rt_rewrite *arc_rt_rewrite_new(const char *pattern, const char *replace)
{
    struct arc_rt_rewrite *rw = calloc(1, sizeof(*rw));
    char err[128];
    size_t off;
    if (!rw)
        return NULL;
    rw->re = arc_rt__regex_compile(pattern, err, sizeof(err), &off);
    rw->mctx = arc_rt__regex_mctx_new();
    rw->replace = strdup(replace);
    if (!rw->re || !rw->mctx || !rw->replace) {
        arc_rt_rewrite_free(rw);
        return NULL;
    }
    rw->replace_len = strlen(replace);
    return rw;
}

void arc_rt_rewrite_free(struct arc_rt_rewrite *rw)
{
    if (!rw)
        return;
    pcre2_code_free(rw->re);
    pcre2_match_context_free(rw->mctx);
    free(rw->replace);
    free(rw);
}

static void put(char **o, char *end, const char *p, size_t n)
{
    size_t room = (size_t)(end - *o);
    if (n > room)
        n = room;
    memcpy(*o, p, n);
    *o += n;
}

ssize_t arc_rt_rewrite_apply(const struct arc_rt_rewrite *rw, struct arc_str path,
                             struct arc_str query, const struct arc_rt_captures *caps,
                             char *out, size_t cap)
{
    pcre2_match_data *md = thread_md();
    if (!md)
        return -1;
    int rc = pcre2_match(rw->re, (PCRE2_SPTR)(path.len ? path.p : ""), path.len, 0, 0, md,
                         rw->mctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return -1;              /* match limit: the caller treats it as no match */
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    uint32_t n_ov = pcre2_get_ovector_count(md);
    char *o = out, *end = out + cap;
    bool query_set = false;
    put(&o, end, path.p, ov[0]);
    for (size_t i = 0; i < rw->replace_len; i++) {
        char c = rw->replace[i];
        if (c == '$' && rw->replace[i + 1] == '$') {
            put(&o, end, "$", 1);
            i++;
        } else if (c == '$') {
            unsigned g = (unsigned)(rw->replace[++i] - '0');
            if (g < n_ov && g < (unsigned)rc && ov[2 * g] != PCRE2_UNSET)
                put(&o, end, path.p + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
        } else if (c == '{') {
            const char *nm = rw->replace + i + 1;
            const char *close = strchr(nm, '}');
            size_t nl = (size_t)(close - nm);
            for (size_t k = 0; caps && k < caps->n; k++)
                if (caps->v[k].name.len == nl && memcmp(caps->v[k].name.p, nm, nl) == 0) {
                    put(&o, end, caps->v[k].value.p, caps->v[k].value.len);
                    break;
                }
            i = (size_t)(close - rw->replace);
        } else {
            if (c == '?')
                query_set = true;
            put(&o, end, &c, 1);
        }
    }
    /* The rest of the path after the match, unless the replacement already
     * started the query. */
    if (!query_set)
        put(&o, end, path.p + ov[1], path.len - ov[1]);
    if (!query_set && query.len) {
        put(&o, end, "?", 1);
        put(&o, end, query.p, query.len);
    }
    if (o == end)
        return -2;              /* did not fit */
    return o - out;
}
