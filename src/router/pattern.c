/*
 * Path pattern syntax, host normalisation and method tokens: the parts of
 * the router that look at one string at a time.
 */
#include "router/router_int.h"

#include <stdarg.h>
#include <stdio.h>

#include "config/config.h"

static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "path '%s': ", path ? path : "(null)");
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static bool is_name_char(unsigned char c, bool first)
{
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    if (c == '_')
        return true;
    return !first && c >= '0' && c <= '9';
}

/* Literal bytes are compared raw against the request target, which on the
 * wire is ASCII without spaces (RFC 9112 §3.2): a byte that can never appear
 * there would make a route that silently never matches, so refuse it. */
static const char *literal_problem(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '{' || c == '}')
            return "'{' and '}' must enclose a whole segment, like /{name}/";
        if (c == '*')
            return "'*' must be a whole segment";
        if (c == '?' || c == '#')
            return "'?' and '#' cannot appear in a path pattern (the query is not matched)";
        if (c <= 0x20 || c == 0x7f)
            return "space or control character in path";
        if (c >= 0x80)
            return "non-ASCII byte in path (percent-encode it)";
    }
    return NULL;
}

int arc_rt__parse(const char *path, struct arc_rt__pattern *pat, char *err, size_t errlen)
{
    pat->n = 0;
    pat->n_caps = 0;
    if (!path || path[0] != '/')
        return fail(err, errlen, path, "must start with '/'");

    const char *s = path + 1;
    for (;;) {
        const char *e = strchr(s, '/');
        bool last = e == NULL;
        if (last)
            e = s + strlen(s);
        size_t len = (size_t)(e - s);
        if (pat->n == ARC_RT__MAX_SEGS)
            return fail(err, errlen, path, "more than %d segments", ARC_RT__MAX_SEGS);
        struct arc_rt__seg *seg = &pat->segs[pat->n];

        if (len == 0) {
            /* A trailing slash is meaningful ("/a/" is not "/a"); an empty
             * segment in the middle is almost always a typo. */
            if (!last)
                return fail(err, errlen, path, "empty segment ('//')");
            *seg = (struct arc_rt__seg){ ARC_RT__LIT, s, 0 };
        } else if (len == 1 && s[0] == '*') {
            *seg = (struct arc_rt__seg){ ARC_RT__STAR, s, 1 };
        } else if (s[0] == '{') {
            if (len < 2 || s[len - 1] != '}')
                return fail(err, errlen, path,
                            "'{' must open a whole segment that ends with '}', like /{name}/");
            const char *name = s + 1;
            size_t nlen = len - 2;
            bool rest = nlen > 0 && name[0] == '*';
            if (rest) {
                name++;
                nlen--;
            }
            if (nlen == 0)
                return fail(err, errlen, path, "capture without a name: use {name} or {*name}");
            for (size_t i = 0; i < nlen; i++)
                if (!is_name_char((unsigned char)name[i], i == 0))
                    return fail(err, errlen, path,
                                "invalid capture name '%.*s' (letters, digits, '_'; not starting with a digit)",
                                (int)nlen, name);
            if (rest && !last)
                return fail(err, errlen, path, "{*name} must be the last segment");
            for (size_t i = 0; i < pat->n; i++) {
                const struct arc_rt__seg *o = &pat->segs[i];
                if ((o->kind == ARC_RT__PARAM || o->kind == ARC_RT__REST) && o->len == nlen &&
                    memcmp(o->p, name, nlen) == 0)
                    return fail(err, errlen, path, "capture '%.*s' appears twice", (int)nlen, name);
            }
            if (pat->n_caps == ARC_RT_MAX_CAPTURES)
                return fail(err, errlen, path, "more than %d captures", ARC_RT_MAX_CAPTURES);
            pat->n_caps++;
            *seg = (struct arc_rt__seg){ rest ? ARC_RT__REST : ARC_RT__PARAM, name, nlen };
        } else {
            const char *why = literal_problem(s, len);
            if (why)
                return fail(err, errlen, path, "%s", why);
            *seg = (struct arc_rt__seg){ ARC_RT__LIT, s, len };
        }
        pat->n++;
        if (last)
            return 0;
        s = e + 1;
    }
}

int arc_rt_check_pattern(const char *path, char *err, size_t errlen)
{
    struct arc_rt__pattern pat;
    return arc_rt__parse(path, &pat, err, errlen);
}

int arc_rt__norm_host(struct arc_str host, char buf[256])
{
    const char *p = host.p;
    size_t n = host.len;
    if (n && p[0] == '[') {
        /* IPv6 literal: the port, if any, follows the closing bracket. */
        const char *rb = memchr(p, ']', n);
        if (rb)
            n = (size_t)(rb - p) + 1;
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon)
            n = (size_t)(colon - p);
    }
    /* "example.com." is the same name as "example.com" (absolute form). */
    if (n && p[n - 1] == '.')
        n--;
    if (n > 255)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        buf[i] = (char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
    }
    return (int)n;
}

uint32_t arc_rt_method_bit(struct arc_str m)
{
    /* Method tokens are case-sensitive (RFC 9110 §9.1): "get" is an
     * extension method, not GET. */
    switch (m.len) {
    case 3:
        if (memcmp(m.p, "GET", 3) == 0) return ARC_M_GET;
        if (memcmp(m.p, "PUT", 3) == 0) return ARC_M_PUT;
        break;
    case 4:
        if (memcmp(m.p, "HEAD", 4) == 0) return ARC_M_HEAD;
        if (memcmp(m.p, "POST", 4) == 0) return ARC_M_POST;
        break;
    case 5:
        if (memcmp(m.p, "TRACE", 5) == 0) return ARC_M_TRACE;
        if (memcmp(m.p, "PATCH", 5) == 0) return ARC_M_PATCH;
        break;
    case 6:
        if (memcmp(m.p, "DELETE", 6) == 0) return ARC_M_DELETE;
        break;
    case 7:
        if (memcmp(m.p, "CONNECT", 7) == 0) return ARC_M_CONNECT;
        if (memcmp(m.p, "OPTIONS", 7) == 0) return ARC_M_OPTIONS;
        break;
    }
    return 0;
}
