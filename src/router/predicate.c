/*
 * Request matchers: reading header fields, cookies (RFC 6265 §4.2.1) and
 * query parameters out of a request view, and testing one atom (exists,
 * equals, contains, regex) against them. Also the PCRE2 glue: compile
 * options, the limits every match runs under, and the per-thread match
 * block.
 *
 * Nothing here allocates per request except a query value longer than the
 * stack buffer that needs decoding, and each thread's first regex match.
 */
#include "router/router_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- PCRE2 */

/* UTF mode so that '.' and classes see characters of non-ASCII patterns;
 * MATCH_INVALID_UTF because header bytes need not be UTF-8 (obs-text), and
 * without it an invalid subject would be an error or, with NO_UTF_CHECK,
 * undefined behaviour. \C could split a character in UTF mode: refused. */
#define RE_OPTIONS (PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C)

static pcre2_code *compile(const char *pattern, char *err, size_t errlen, size_t *offset)
{
    int code = 0;
    PCRE2_SIZE off = 0;
    if (offset)
        *offset = 0;
    pcre2_code *re = pattern ? pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                             RE_OPTIONS, &code, &off, NULL) : NULL;
    if (!re && err && errlen) {
        PCRE2_UCHAR msg[256];
        if (!pattern)
            snprintf((char *)msg, sizeof(msg), "no pattern");
        else if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "PCRE2 error %d", code);
        snprintf(err, errlen, "%s", (const char *)msg);
    }
    if (!re && offset)
        *offset = (size_t)off;
    return re;
}

pcre2_code *arc_rt__regex_compile(const char *pattern, char *err, size_t errlen, size_t *offset)
{
    pcre2_code *re = compile(pattern, err, errlen, offset);
    /* A JIT failure (no JIT on this CPU, no executable memory) is not an
     * error: pcre2_match falls back to the interpreter, under the same
     * limits. */
    if (re)
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

int arc_rt_check_regex(const char *pattern, char *err, size_t errlen, size_t *offset)
{
    pcre2_code *re = compile(pattern, err, errlen, offset);
    if (!re)
        return -1;
    pcre2_code_free(re);
    return 0;
}

pcre2_match_context *arc_rt__regex_mctx_new(void)
{
    pcre2_match_context *m = pcre2_match_context_create(NULL);
    if (!m)
        return NULL;
    /* The match limit bounds backtracking for the JIT and the interpreter;
     * depth and heap bound the interpreter's frames (used if JIT is not
     * available). A request that hits a limit simply does not match. */
    pcre2_set_match_limit(m, ARC_RT_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(m, 10000);
    pcre2_set_heap_limit(m, 1024);      /* KiB */
    return m;
}

/* One match block per thread, made on the thread's first regex match and
 * freed when the thread exits (the key's destructor). The _Thread_local
 * copy saves pthread_getspecific on every match. */
static pthread_key_t g_md_key;
static pthread_once_t g_md_once = PTHREAD_ONCE_INIT;
static bool g_md_key_ok;
static _Thread_local pcre2_match_data *tl_md;

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
}

static void md_key_init(void)
{
    g_md_key_ok = pthread_key_create(&g_md_key, md_destroy) == 0;
}

static pcre2_match_data *thread_md(void)
{
    if (tl_md)
        return tl_md;
    pthread_once(&g_md_once, md_key_init);
    if (!g_md_key_ok)
        return NULL;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return NULL;
    if (pthread_setspecific(g_md_key, md) != 0) {
        pcre2_match_data_free(md);
        return NULL;
    }
    tl_md = md;
    return md;
}

static bool re_search(const pcre2_code *re, const char *p, size_t len,
                      const pcre2_match_context *mctx)
{
    pcre2_match_data *md = thread_md();
    if (!md)
        return false;
    /* PCRE2 10.42 refuses a NULL subject even when it is empty. */
    int rc = pcre2_match(re, (PCRE2_SPTR)(len ? p : ""), len, 0, 0, md,
                         (pcre2_match_context *)mctx);
    return rc >= 0;
}

/* ------------------------------------------------------------- values */

static bool value_test(const struct arc_rt__atom *a, const char *p, size_t len,
                       const pcre2_match_context *mctx)
{
    switch (a->op) {
    case ARC_RT_EXISTS:
        return true;
    case ARC_RT_EQUALS:
        return len == a->value.len && (len == 0 || memcmp(p, a->value.p, len) == 0);
    case ARC_RT_CONTAINS:
        return a->value.len <= len && (a->value.len == 0 || memmem(p, len, a->value.p, a->value.len));
    case ARC_RT_REGEX:
        return re_search(a->re, p, len, mctx);
    }
    return false;
}

static bool name_ieq(struct arc_str got, struct arc_str want_lower)
{
    if (got.len != want_lower.len)
        return false;
    for (size_t i = 0; i < got.len; i++) {
        unsigned char c = (unsigned char)got.p[i];
        if ((unsigned)(c - 'A') < 26u)
            c |= 0x20;
        if (c != (unsigned char)want_lower.p[i])
            return false;
    }
    return true;
}

/* ------------------------------------------------------------- headers */

static bool test_header(const struct arc_rt__atom *a, const struct arc_rt_input *in,
                        const pcre2_match_context *mctx)
{
    for (size_t i = 0; i < in->n_fields; i++) {
        const struct arc_rt_field *f = &in->fields[i];
        if (name_ieq(f->name, a->name) && value_test(a, f->value.p, f->value.len, mctx))
            return true;
    }
    return false;
}

/* ------------------------------------------------------------- cookies */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* cookie-string = cookie-pair *( ";" SP cookie-pair ), cookie-pair =
 * cookie-name "=" cookie-value (RFC 6265 §4.2.1). Read leniently, as
 * servers do: any whitespace around pairs, names and values is dropped,
 * pairs without '=' are skipped, and a value in DQUOTEs loses them (they are
 * cookie-value syntax, not data). HTTP/2 may split the field into crumbs
 * (RFC 9113 §8.2.3) and some clients send several Cookie lines: every
 * Cookie field is read. */
static bool test_cookie(const struct arc_rt__atom *a, const struct arc_rt_input *in,
                        const pcre2_match_context *mctx)
{
    static const struct arc_str cookie = { "cookie", 6 };
    for (size_t i = 0; i < in->n_fields; i++) {
        const struct arc_rt_field *f = &in->fields[i];
        if (!name_ieq(f->name, cookie))
            continue;
        const char *p = f->value.p, *end = p + f->value.len;
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *pe = semi ? semi : end;
            const char *eq = memchr(p, '=', (size_t)(pe - p));
            if (eq) {
                const char *ns = p, *ne = eq, *vs = eq + 1, *ve = pe;
                while (ns < ne && is_ows(*ns))
                    ns++;
                while (ne > ns && is_ows(ne[-1]))
                    ne--;
                while (vs < ve && is_ows(*vs))
                    vs++;
                while (ve > vs && is_ows(ve[-1]))
                    ve--;
                if (ve - vs >= 2 && vs[0] == '"' && ve[-1] == '"') {
                    vs++;
                    ve--;
                }
                if ((size_t)(ne - ns) == a->name.len && memcmp(ns, a->name.p, a->name.len) == 0 &&
                    value_test(a, vs, (size_t)(ve - vs), mctx))
                    return true;
            }
            p = semi ? semi + 1 : end;
        }
    }
    return false;
}

/* ------------------------------------------------------------- query */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes the byte at p[*i] (advancing *i). */
static unsigned char decode_one(const char *p, size_t len, size_t *i)
{
    unsigned char c = (unsigned char)p[*i];
    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c == '%' && len - *i >= 3) {
        int h = hexval((unsigned char)p[*i + 1]), l = hexval((unsigned char)p[*i + 2]);
        if (h >= 0 && l >= 0) {
            *i += 3;
            return (unsigned char)(h << 4 | l);
        }
    }
    (*i)++;
    return c;
}

size_t arc_rt__query_decode(const char *p, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;)
        out[o++] = (char)decode_one(p, len, &i);
    return o;
}

static bool decoded_eq(const char *p, size_t len, struct arc_str want)
{
    size_t i = 0, k = 0;
    while (i < len) {
        if (k == want.len || decode_one(p, len, &i) != (unsigned char)want.p[k])
            return false;
        k++;
    }
    return k == want.len;
}

static bool needs_decoding(const char *p, size_t len)
{
    return memchr(p, '%', len) || memchr(p, '+', len);
}

/* The query is split on '&' into name[=value] pairs (the WHATWG
 * application/x-www-form-urlencoded reading every framework uses); empty
 * pairs are skipped and a pair without '=' has an empty value. */
static bool test_query(const struct arc_rt__atom *a, const struct arc_rt_input *in,
                       const pcre2_match_context *mctx)
{
    const char *p = in->query.p, *end = p + in->query.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        if (pe > p) {
            const char *eq = memchr(p, '=', (size_t)(pe - p));
            const char *ne = eq ? eq : pe;
            if (decoded_eq(p, (size_t)(ne - p), a->name)) {
                const char *v = eq ? eq + 1 : pe;
                size_t vlen = (size_t)(pe - v);
                if (a->op == ARC_RT_EXISTS)
                    return true;
                if (!needs_decoding(v, vlen)) {
                    if (value_test(a, v, vlen, mctx))
                        return true;
                } else {
                    char stack[512];
                    char *buf = vlen <= sizeof(stack) ? stack : malloc(vlen);
                    if (buf) {
                        size_t n = arc_rt__query_decode(v, vlen, buf);
                        bool ok = value_test(a, buf, n, mctx);
                        if (buf != stack)
                            free(buf);
                        if (ok)
                            return true;
                    }
                }
            }
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}

bool arc_rt__atom_test(const struct arc_rt__atom *a, const struct arc_rt_input *in,
                       const pcre2_match_context *mctx)
{
    switch (a->source) {
    case ARC_RT_HEADER:
        return test_header(a, in, mctx);
    case ARC_RT_COOKIE:
        return test_cookie(a, in, mctx);
    case ARC_RT_QUERY:
        return test_query(a, in, mctx);
    }
    return false;
}
