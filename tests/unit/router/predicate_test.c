/* Proves each matcher reads the request as router.h says: header names
 * ignore case and any of several field lines may match; cookies come from
 * every Cookie field, split per RFC 6265 with whitespace and DQUOTEs
 * dropped and names compared exactly; query parameters are percent-decoded
 * ('+' is a space, bad escapes are kept) in names and values; exists,
 * equals, contains and regex behave on empty, long and non-UTF-8 values;
 * and a catastrophic regex stops at the match limit instead of hanging. */
#include "test.h"
#include "router/router_int.h"

#include <time.h>

static pcre2_match_context *g_mctx;

/* Up to 8 "Name: value" header lines and a query. */
struct req {
    struct arc_rt_field f[8];
    struct arc_rt_input in;
};

static const struct arc_rt_input *req(struct req *r, const char *query, const char *const *hdrs)
{
    size_t n = 0;
    for (; hdrs && hdrs[n]; n++) {
        const char *c = strchr(hdrs[n], ':');
        const char *v = c + 1;
        while (*v == ' ')
            v++;
        r->f[n] = (struct arc_rt_field){ { hdrs[n], (size_t)(c - hdrs[n]) }, { v, strlen(v) } };
    }
    r->in = (struct arc_rt_input){
        .method_bit = 1, .host = ARC_STR_LIT("x"), .path = ARC_STR_LIT("/"),
        .query = { query ? query : "", query ? strlen(query) : 0 },
        .fields = r->f, .n_fields = n,
    };
    return &r->in;
}

static bool test_one(uint8_t source, uint8_t op, const char *name, const char *value,
                     const struct arc_rt_input *in)
{
    char lower[128];
    size_t n = strlen(name);
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(source == ARC_RT_HEADER && name[i] >= 'A' && name[i] <= 'Z'
                          ? name[i] + 32 : name[i]);
    struct arc_rt__atom a = {
        .source = source, .op = op, .name = { lower, n },
        .value = { value ? value : "", value ? strlen(value) : 0 },
    };
    if (op == ARC_RT_REGEX) {
        char err[128];
        size_t off;
        a.re = arc_rt__regex_compile(value, err, sizeof(err), &off);
        if (!a.re) {
            fprintf(stderr, "regex '%s': %s\n", value, err);
            return false;
        }
    }
    bool r = arc_rt__atom_test(&a, in, g_mctx);
    pcre2_code_free(a.re);
    return r;
}

#define H(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define HDR(op, name, value, in) test_one(ARC_RT_HEADER, ARC_RT_##op, name, value, in)
#define COOKIE(op, name, value, in) test_one(ARC_RT_COOKIE, ARC_RT_##op, name, value, in)
#define QUERY(op, name, value, in) test_one(ARC_RT_QUERY, ARC_RT_##op, name, value, in)

static void test_headers(void)
{
    struct req r;
    const struct arc_rt_input *in = req(&r, NULL, H("Host: a", "X-Env: beta", "x-env: canary",
                                                    "X-Empty:", "Accept: text/html, */*"));
    CHECK(HDR(EXISTS, "X-Env", NULL, in));
    CHECK(HDR(EXISTS, "x-ENV", NULL, in));              /* names ignore case */
    CHECK(HDR(EXISTS, "X-Empty", NULL, in));            /* an empty value still exists */
    CHECK(!HDR(EXISTS, "X-Missing", NULL, in));
    CHECK(!HDR(EXISTS, "X-En", NULL, in));              /* whole names only */
    CHECK(HDR(EQUALS, "X-Env", "beta", in));
    CHECK(HDR(EQUALS, "X-Env", "canary", in));          /* any of the field lines */
    CHECK(!HDR(EQUALS, "X-Env", "Beta", in));           /* values are case-sensitive */
    CHECK(!HDR(EQUALS, "X-Env", "beta, canary", in));   /* lines are not joined */
    CHECK(!HDR(EQUALS, "X-Env", "bet", in));
    CHECK(HDR(EQUALS, "X-Empty", "", in));
    CHECK(!HDR(EQUALS, "X-Env", "", in));
    CHECK(HDR(CONTAINS, "Accept", "html", in));
    CHECK(HDR(CONTAINS, "Accept", "text/html, */*", in));
    CHECK(!HDR(CONTAINS, "Accept", "text/html, */*, x", in));
    CHECK(!HDR(CONTAINS, "X-Empty", "a", in));
    CHECK(HDR(REGEX, "X-Env", "^can", in));
    CHECK(HDR(REGEX, "X-Env", "et", in));               /* unanchored search */
    CHECK(!HDR(REGEX, "X-Env", "^et", in));
    CHECK(HDR(REGEX, "x-env", "^(beta|stable)$", in));
    CHECK(HDR(REGEX, "X-Empty", "^$", in));
    CHECK(!HDR(REGEX, "X-Missing", "^$", in));          /* absent is not empty */
    CHECK(HDR(REGEX, "X-Env", "(?i)^BETA$", in));

    /* no fields at all */
    in = req(&r, NULL, NULL);
    CHECK(!HDR(EXISTS, "X-Env", NULL, in));
    CHECK(!HDR(REGEX, "X-Env", ".*", in));
}

static void test_cookies(void)
{
    struct req r;
    const struct arc_rt_input *in = req(&r, NULL, H(
        "Cookie: session=abc123; theme=dark;lang = en ;  empty=; q=\"quoted value\"",
        "X-Other: session=wrong",
        "cookie: second=2; session=xyz",
        "COOKIE: noequals; =nameless; a=b=c; Upper=1; sp= v ",
        "Cookie: \"=\"; one=\"; two=\"\""));
    CHECK(COOKIE(EXISTS, "session", NULL, in));
    CHECK(COOKIE(EQUALS, "session", "abc123", in));
    CHECK(COOKIE(EQUALS, "session", "xyz", in));        /* a later Cookie field */
    CHECK(!COOKIE(EQUALS, "session", "wrong", in));     /* only Cookie fields */
    CHECK(COOKIE(EQUALS, "theme", "dark", in));
    CHECK(COOKIE(EQUALS, "lang", "en", in));            /* whitespace around name and value */
    CHECK(COOKIE(EXISTS, "empty", NULL, in));
    CHECK(COOKIE(EQUALS, "empty", "", in));
    CHECK(COOKIE(EQUALS, "q", "quoted value", in));     /* DQUOTEs are syntax */
    CHECK(!COOKIE(EQUALS, "q", "\"quoted value\"", in));
    CHECK(COOKIE(EQUALS, "second", "2", in));
    CHECK(!COOKIE(EXISTS, "noequals", NULL, in));       /* a pair needs '=' */
    CHECK(COOKIE(EQUALS, "a", "b=c", in));              /* split at the first '=' */
    CHECK(COOKIE(EXISTS, "Upper", NULL, in));
    CHECK(!COOKIE(EXISTS, "upper", NULL, in));          /* names are exact */
    CHECK(COOKIE(EQUALS, "sp", "v", in));
    CHECK(COOKIE(CONTAINS, "session", "123", in));
    CHECK(COOKIE(REGEX, "session", "^x.z$", in));
    CHECK(COOKIE(EQUALS, "one", "\"", in));             /* a lone DQUOTE is kept */
    CHECK(COOKIE(EQUALS, "two", "", in));
    CHECK(!COOKIE(EXISTS, "X-Other", NULL, in));
    in = req(&r, NULL, H("Cookie:"));
    CHECK(!COOKIE(EXISTS, "a", NULL, in));
}

static void test_query(void)
{
    struct req r;
    const struct arc_rt_input *in = req(&r, "a=1&b=x%20y&c=p+q&d=%zz%4&e&&f=&g=%41%62&tag=1&tag=2"
                                            "&caf%C3%A9=yes&sp%61ce=ok&plus%2B=%2B&A=upper", NULL);
    CHECK(QUERY(EXISTS, "a", NULL, in));
    CHECK(QUERY(EQUALS, "a", "1", in));
    CHECK(QUERY(EQUALS, "b", "x y", in));               /* %20 */
    CHECK(!QUERY(EQUALS, "b", "x%20y", in));
    CHECK(QUERY(EQUALS, "c", "p q", in));               /* '+' is a space */
    CHECK(QUERY(EQUALS, "d", "%zz%4", in));             /* bad escapes stay */
    CHECK(QUERY(EXISTS, "e", NULL, in));                /* no '=': present, empty */
    CHECK(QUERY(EQUALS, "e", "", in));
    CHECK(QUERY(EQUALS, "f", "", in));
    CHECK(QUERY(EQUALS, "g", "Ab", in));
    CHECK(QUERY(EQUALS, "tag", "1", in));
    CHECK(QUERY(EQUALS, "tag", "2", in));               /* any occurrence */
    CHECK(!QUERY(EQUALS, "tag", "3", in));
    CHECK(QUERY(EQUALS, "caf\xc3\xa9", "yes", in));     /* names are decoded too */
    CHECK(QUERY(EQUALS, "space", "ok", in));
    CHECK(QUERY(EQUALS, "plus+", "+", in));
    CHECK(QUERY(EXISTS, "A", NULL, in));
    CHECK(!QUERY(EXISTS, "upper", NULL, in));           /* names are exact */
    CHECK(!QUERY(EXISTS, "", NULL, in));
    CHECK(!QUERY(EXISTS, "tag=1", NULL, in));
    CHECK(QUERY(CONTAINS, "b", "x y", in));
    CHECK(QUERY(REGEX, "b", "^x\\sy$", in));
    CHECK(QUERY(REGEX, "g", "^A", in));

    /* a value longer than the decoder's stack buffer */
    static char big[3000], q[4000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[1000] = ' ';
    snprintf(q, sizeof(q), "k=%.1000s+%s", big, big + 1001);
    in = req(&r, q, NULL);
    CHECK(QUERY(EQUALS, "k", big, in));
    CHECK(QUERY(REGEX, "k", "^z+ z+$", in));
    in = req(&r, "", NULL);
    CHECK(!QUERY(EXISTS, "a", NULL, in));
    in = req(&r, "=v", NULL);
    CHECK(!QUERY(EXISTS, "v", NULL, in));

    char out[32];
    CHECK_INT(arc_rt__query_decode("%41+%", 5, out), 3);
    CHECK(memcmp(out, "A %", 3) == 0);
    CHECK_INT(arc_rt__query_decode("%4g%4", 5, out), 5);
    CHECK_INT(arc_rt__query_decode("%00", 3, out), 1);
    CHECK_INT(out[0], 0);
}

static void test_regex(void)
{
    struct req r;
    /* invalid UTF-8 in a value never breaks matching */
    const struct arc_rt_input *in = req(&r, NULL, H("X-Bin: a\xff\xfe" "b", "X-Utf: caf\xc3\xa9"));
    CHECK(HDR(REGEX, "X-Bin", "^a", in));
    CHECK(HDR(REGEX, "X-Bin", "b$", in));
    CHECK(!HDR(REGEX, "X-Bin", "^a.b$", in));           /* no character spans the bad bytes */
    CHECK(HDR(REGEX, "X-Utf", "^caf.$", in));           /* UTF mode: é is one character */
    CHECK(HDR(REGEX, "X-Utf", "\xc3\xa9", in));
    CHECK(HDR(EQUALS, "X-Bin", "a\xff\xfe" "b", in));

    /* catastrophic backtracking stops at the match limit: no match, fast */
    static char evil[64];
    memset(evil, 'a', 40);
    strcpy(evil + 40, "!");
    char line[80];
    snprintf(line, sizeof(line), "X-Evil: %s", evil);
    in = req(&r, NULL, H(line));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(!HDR(REGEX, "X-Evil", "^(a+)+$", in));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK(ms < 500);
    CHECK(HDR(REGEX, "X-Evil", "^a+!$", in));

    /* compile errors carry PCRE2's message and offset */
    char err[256];
    size_t off = 99;
    CHECK_INT(arc_rt_check_regex("ab(c", err, sizeof(err), &off), -1);
    CHECK_INT(off, 4);
    CHECK(strstr(err, "missing closing parenthesis") != NULL);
    CHECK_INT(arc_rt_check_regex("a[z-a]", err, sizeof(err), &off), -1);
    CHECK_INT(off, 4);
    CHECK(strstr(err, "range out of order") != NULL);
    CHECK_INT(arc_rt_check_regex("\\C", err, sizeof(err), &off), -1);  /* NEVER_BACKSLASH_C */
    CHECK_INT(arc_rt_check_regex("^(beta|canary)-\\d+$", err, sizeof(err), &off), 0);
    CHECK_INT(arc_rt_check_regex(NULL, err, sizeof(err), &off), -1);
}

int main(void)
{
    g_mctx = arc_rt__regex_mctx_new();
    RUN(test_headers);
    RUN(test_cookies);
    RUN(test_query);
    RUN(test_regex);
    pcre2_match_context_free(g_mctx);
    return TEST_REPORT();
}
