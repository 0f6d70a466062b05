/* Proves the route table matches by router.h's precedence rules (priority,
 * host, per-segment specificity, predicate count), routes on header, cookie
 * and query matchers and their expressions, reports syntax errors, bad
 * matchers and ambiguities at build time, and agrees with a brute-force
 * reference matcher on randomly generated route sets and requests. */
#include "test.h"
#include "router/router.h"
#include "config/config.h"


/* ------------------------------------------------------------- helpers */

#define R(name_, path_, ...) { .name = name_, .path = path_, .data = name_, __VA_ARGS__ }
#define HOSTS(...) .hosts = (const char *const[]){ __VA_ARGS__ }, \
    .n_hosts = sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *)
/* matchers: P(HEADER, EQUALS, "X-Env", "beta"), PI(..., "id") */
#define P(src, op_, name_, value_) { .source = ARC_RT_##src, .op = ARC_RT_##op_, \
    .name = name_, .value = value_ }
#define PI(src, op_, name_, value_, id_) { .source = ARC_RT_##src, .op = ARC_RT_##op_, \
    .name = name_, .value = value_, .id = id_ }
#define PREDS(...) .preds = (const struct arc_rt_pred[]){ __VA_ARGS__ }, \
    .n_preds = sizeof((const struct arc_rt_pred[]){ __VA_ARGS__ }) / sizeof(struct arc_rt_pred)

static char g_err[512];
static size_t g_err_index;

static struct arc_rt_table *build(const struct arc_rt_spec *s, size_t n)
{
    struct arc_rt_table *t = NULL;
    g_err[0] = '\0';
    int rc = arc_rt_build(s, n, &t, g_err, sizeof(g_err), &g_err_index);
    if (rc != 0)
        fprintf(stderr, "build failed: %s\n", g_err);
    return rc == 0 ? t : NULL;
}

static int build_fails(const struct arc_rt_spec *s, size_t n)
{
    struct arc_rt_table *t = (struct arc_rt_table *)1;
    int rc = arc_rt_build(s, n, &t, g_err, sizeof(g_err), &g_err_index);
    if (rc == 0) {
        arc_rt_free(t);
        return 0;
    }
    return t == NULL;   /* builds nothing on failure */
}

static struct arc_rt_captures g_caps;
static uint32_t g_allowed;

/* A request with optional query and "Name: value" header lines. */
static const char *match_req(const struct arc_rt_table *t, const char *host, uint32_t m,
                             const char *path, const char *query, const char *const *hdrs)
{
    struct arc_rt_field f[16];
    size_t n = 0;
    for (; hdrs && hdrs[n] && n < 16; n++) {
        const char *c = strchr(hdrs[n], ':');
        const char *v = c + 1;
        while (*v == ' ')
            v++;
        f[n] = (struct arc_rt_field){ { hdrs[n], (size_t)(c - hdrs[n]) }, { v, strlen(v) } };
    }
    struct arc_rt_input in = {
        .method_bit = m, .host = arc_str_make(host, strlen(host)),
        .path = arc_str_make(path, strlen(path)),
        .query = arc_str_make(query ? query : "", query ? strlen(query) : 0),
        .fields = f, .n_fields = n,
    };
    return arc_rt_match(t, &in, &g_caps, &g_allowed);
}
#define HL(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const char *match_hm(const struct arc_rt_table *t, const char *host, uint32_t m, const char *path)
{
    return match_req(t, host, m, path, NULL, NULL);
}

static const char *match(const struct arc_rt_table *t, const char *path)
{
    return match_hm(t, "example.org", ARC_M_GET, path);
}

/* Value of capture `name` of the last match, or NULL. */
static const char *cap(const char *name)
{
    static char buf[256];
    for (size_t i = 0; i < g_caps.n; i++) {
        if (g_caps.v[i].name.len == strlen(name) && memcmp(g_caps.v[i].name.p, name, strlen(name)) == 0) {
            snprintf(buf, sizeof(buf), "%.*s", (int)g_caps.v[i].value.len, g_caps.v[i].value.p);
            return buf;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- syntax */

static void check_bad(const char *path, const char *reason)
{
    char err[256];
    int rc = arc_rt_check_pattern(path, err, sizeof(err));
    CHECK_INT(rc, -1);
    if (rc == -1 && !strstr(err, reason)) {
        t_failures++;
        fprintf(stderr, "%s:%d: pattern '%s': error '%s' lacks '%s'\n", __FILE__, __LINE__,
                path, err, reason);
    }
}

static void test_pattern_syntax(void)
{
    const char *good[] = {
        "/", "/a", "/a/", "/a/b/c", "/{id}", "/*", "/a/{*rest}", "/{*rest}", "/a/*/b",
        "/v1/{org}/repos/{repo}/{*path}", "/caf%C3%A9", "/a-b.c_d~e", "/{_x1}",
    };
    for (size_t i = 0; i < ARC_ARRAY_LEN(good); i++) {
        char err[256] = "";
        int rc = arc_rt_check_pattern(good[i], err, sizeof(err));
        CHECK_INT(rc, 0);
        if (rc)
            fprintf(stderr, "  '%s': %s\n", good[i], err);
    }
    check_bad("", "must start with '/'");
    check_bad("a/b", "must start with '/'");
    check_bad("/a//b", "empty segment");
    check_bad("/a/{*r}/b", "{*name} must be the last segment");
    check_bad("/{}", "capture without a name");
    check_bad("/{*}", "capture without a name");
    check_bad("/a{id}", "'{' and '}' must enclose a whole segment");
    check_bad("/{id}x", "'{' must open a whole segment");
    check_bad("/{id", "'{' must open a whole segment");
    check_bad("/{a-b}", "invalid capture name 'a-b'");
    check_bad("/{1a}", "invalid capture name");
    check_bad("/{x}/{x}", "capture 'x' appears twice");
    check_bad("/{x}/{*x}", "capture 'x' appears twice");
    check_bad("/a*b", "'*' must be a whole segment");
    check_bad("/**", "'*' must be a whole segment");
    check_bad("/a?b=1", "'?' and '#'");
    check_bad("/a b", "space or control");
    check_bad("/caf\xc3\xa9", "non-ASCII");

    char many[512] = "";
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "/{c%d}", i);
    check_bad(many, "more than 16 captures");
    char deep[512] = "";
    for (int i = 0; i < 65; i++)
        strcat(deep, "/a");
    check_bad(deep, "more than 64 segments");

    /* the full message, as documented in router.h */
    char err[256];
    arc_rt_check_pattern("/a/{*r}/b", err, sizeof(err));
    CHECK_STR(err, "path '/a/{*r}/b': {*name} must be the last segment");

    struct arc_rt_spec s[] = { R("ok", "/a"), R("x", "/a/{*r}/b") };
    CHECK(build_fails(s, 2));
    CHECK_STR(g_err, "route 'x': path '/a/{*r}/b': {*name} must be the last segment");
    CHECK_INT(g_err_index, 1);
}

static void test_host_pattern_errors(void)
{
    struct arc_rt_spec a[] = { R("h", "/", HOSTS("*")) };
    CHECK(build_fails(a, 1));
    CHECK(strstr(g_err, "route 'h': host '*'") != NULL);
    struct arc_rt_spec b[] = { R("h", "/", HOSTS("a.*.com")) };
    CHECK(build_fails(b, 1));
    struct arc_rt_spec c[] = { R("h", "/", HOSTS("api.example.com:8080")) };
    CHECK(build_fails(c, 1));
    CHECK(strstr(g_err, "port") != NULL);
    struct arc_rt_spec d[] = { R("ok", "/"), R("h", "/x", HOSTS("ok.com", "")) };
    CHECK(build_fails(d, 2));
    CHECK_INT(g_err_index, 1);
    struct arc_rt_spec e[] = { R("h", "/", HOSTS("*.")) };
    CHECK(build_fails(e, 1));
}

/* ------------------------------------------------------------- precedence */

static void test_precedence(void)
{
    struct arc_rt_spec s[] = {
        R("all", "/{*all}"),
        R("users_rest", "/users/{*rest}"),
        R("user", "/users/{id}"),
        R("me", "/users/me"),
        R("abd", "/a/{x}/d"),
        R("abc", "/a/b/c"),
        R("first_cap", "/{a}/b"),
        R("first_lit", "/p/{b}"),
        R("deep_caps", "/s/{a}/{b}"),
        R("s_rest", "/s/{*r}"),
        R("star", "/f/*/g"),
        R("slash", "/t/"),
        R("noslash", "/t"),
        R("root", "/"),
    };
    struct arc_rt_table *t = build(s, ARC_ARRAY_LEN(s));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match(t, "/users/me"), "me");
    CHECK_STR(match(t, "/users/42"), "user");
    CHECK_STR(cap("id"), "42");
    CHECK_STR(match(t, "/users/42/x"), "users_rest");
    CHECK_STR(cap("rest"), "42/x");
    CHECK_STR(match(t, "/users/"), "users_rest");          /* {id} needs a non-empty segment */
    CHECK_STR(cap("rest"), "");
    CHECK_STR(match(t, "/users"), "all");                  /* "/users/{*rest}" needs the slash */
    CHECK_STR(cap("all"), "users");
    CHECK_STR(match(t, "/a/b/c"), "abc");
    CHECK_STR(match(t, "/a/b/d"), "abd");                  /* backtracks from the literal b */
    CHECK_STR(cap("x"), "b");
    CHECK_STR(match(t, "/a/b/e"), "all");
    CHECK_STR(match(t, "/p/b"), "first_lit");              /* the leftmost segment decides */
    CHECK_STR(match(t, "/q/b"), "first_cap");
    CHECK_STR(match(t, "/s/x/y"), "deep_caps");            /* {a} beats {*r} at segment 1 */
    CHECK_STR(match(t, "/s/x"), "s_rest");
    CHECK_STR(match(t, "/s/x/y/z"), "s_rest");
    CHECK_STR(match(t, "/f/anything/g"), "star");
    CHECK_INT(g_caps.n, 0);                                /* * is not captured */
    CHECK_STR(match(t, "/f//g"), "all");                   /* * needs a non-empty segment */
    CHECK_STR(match(t, "/t/"), "slash");
    CHECK_STR(match(t, "/t"), "noslash");
    CHECK_STR(match(t, "/"), "root");
    /* raw bytes, case-sensitive, no normalisation */
    CHECK_STR(match(t, "/Users/me"), "all");
    CHECK_STR(match(t, "/users/a%2Fb"), "user");
    CHECK_STR(cap("id"), "a%2Fb");
    CHECK_STR(match(t, "/users/../me"), "users_rest");
    /* only origin-form is routed */
    CHECK(match(t, "*") == NULL);
    CHECK(match(t, "") == NULL);
    arc_rt_free(t);
}

static void test_rest_matches_root(void)
{
    struct arc_rt_spec s[] = { R("root", "/{*rest}") };
    struct arc_rt_table *t = build(s, 1);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match(t, "/"), "root");
    CHECK_INT(g_caps.n, 1);
    CHECK_VIEW(g_caps.v[0].name.p, g_caps.v[0].name.len, "rest");
    CHECK_INT(g_caps.v[0].value.len, 0);
    CHECK_STR(match(t, "/a/b//c/"), "root");
    CHECK_STR(cap("rest"), "a/b//c/");
    CHECK_STR(match(t, "//"), "root");
    CHECK_STR(cap("rest"), "/");
    arc_rt_free(t);
}

static void test_captures(void)
{
    struct arc_rt_spec s[] = {
        R("repo", "/v1/{org}/repos/{repo}/{*path}"),
        R("two", "/x/{a}/*/{b}"),
    };
    struct arc_rt_table *t = build(s, 2);
    CHECK(t != NULL);
    if (!t)
        return;
    const char *path = "/v1/acme/repos/arc/src/router/router.c";
    CHECK_STR(match(t, path), "repo");
    CHECK_INT(g_caps.n, 3);
    CHECK_VIEW(g_caps.v[0].name.p, g_caps.v[0].name.len, "org");
    CHECK_VIEW(g_caps.v[0].value.p, g_caps.v[0].value.len, "acme");
    CHECK_VIEW(g_caps.v[1].name.p, g_caps.v[1].name.len, "repo");
    CHECK_VIEW(g_caps.v[1].value.p, g_caps.v[1].value.len, "arc");
    CHECK_VIEW(g_caps.v[2].name.p, g_caps.v[2].name.len, "path");
    CHECK_VIEW(g_caps.v[2].value.p, g_caps.v[2].value.len, "src/router/router.c");
    /* values point into the caller's path, not into copies */
    CHECK(g_caps.v[0].value.p == path + 4);
    CHECK_STR(match(t, "/x/1/2/3"), "two");
    CHECK_INT(g_caps.n, 2);
    CHECK_STR(cap("a"), "1");
    CHECK_STR(cap("b"), "3");
    CHECK(match(t, "/x/1/2") == NULL);
    CHECK_INT(g_caps.n, 0);
    CHECK_INT(g_allowed, 0);
    arc_rt_free(t);
}

/* ------------------------------------------------------------- hosts */

static void test_hosts(void)
{
    struct arc_rt_spec s[] = {
        R("any", "/x"),
        R("exact", "/x", HOSTS("api.example.com")),
        R("suffix", "/x", HOSTS("*.example.com")),
        R("longer", "/x", HOSTS("*.EU.example.com")),
        R("v6", "/x", HOSTS("[::1]")),
        R("host_only", "/only", HOSTS("api.example.com")),
        R("any_lit", "/p/lit"),
        R("host_cap", "/p/{x}", HOSTS("api.example.com")),
        R("multi", "/m", HOSTS("a.test", "b.test", "B.TEST")),
    };
    struct arc_rt_table *t = build(s, ARC_ARRAY_LEN(s));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match_hm(t, "api.example.com", ARC_M_GET, "/x"), "exact");
    CHECK_STR(match_hm(t, "API.Example.COM:8443", ARC_M_GET, "/x"), "exact");
    CHECK_STR(match_hm(t, "api.example.com.", ARC_M_GET, "/x"), "exact");
    CHECK_STR(match_hm(t, "www.example.com", ARC_M_GET, "/x"), "suffix");
    CHECK_STR(match_hm(t, "a.b.example.com", ARC_M_GET, "/x"), "suffix");
    CHECK_STR(match_hm(t, "a.eu.example.com", ARC_M_GET, "/x"), "longer");
    CHECK_STR(match_hm(t, "eu.example.com", ARC_M_GET, "/x"), "suffix");
    CHECK_STR(match_hm(t, "example.com", ARC_M_GET, "/x"), "any");
    CHECK_STR(match_hm(t, ".example.com", ARC_M_GET, "/x"), "any");
    CHECK_STR(match_hm(t, "other.org", ARC_M_GET, "/x"), "any");
    CHECK_STR(match_hm(t, "", ARC_M_GET, "/x"), "any");
    CHECK_STR(match_hm(t, "[::1]:8080", ARC_M_GET, "/x"), "v6");
    CHECK_STR(match_hm(t, "[::1]", ARC_M_GET, "/x"), "v6");
    CHECK_STR(match_hm(t, "api.example.com", ARC_M_GET, "/only"), "host_only");
    CHECK(match_hm(t, "www.example.com", ARC_M_GET, "/only") == NULL);
    /* the host comes before the path (router.h) */
    CHECK_STR(match_hm(t, "api.example.com", ARC_M_GET, "/p/lit"), "host_cap");
    CHECK_STR(cap("x"), "lit");
    CHECK_STR(match_hm(t, "www.example.com", ARC_M_GET, "/p/lit"), "any_lit");
    CHECK_STR(match_hm(t, "api.example.com", ARC_M_GET, "/p/other"), "host_cap");
    CHECK(match_hm(t, "www.example.com", ARC_M_GET, "/p/other") == NULL);
    CHECK_STR(match_hm(t, "a.test", ARC_M_GET, "/m"), "multi");
    CHECK_STR(match_hm(t, "B.test", ARC_M_GET, "/m"), "multi");
    CHECK(match_hm(t, "c.test", ARC_M_GET, "/m") == NULL);
    /* a hostile Host: too long, many dots */
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_STR(match_hm(t, big, ARC_M_GET, "/x"), "any");
    char dots[256];
    for (size_t i = 0; i < 254; i++)
        dots[i] = i % 2 ? '.' : 'a';
    dots[254] = '\0';
    memcpy(dots + 254 - 12, ".example.com", 12);
    CHECK_STR(match_hm(t, dots, ARC_M_GET, "/x"), "suffix");
    arc_rt_free(t);
}

/* ------------------------------------------------------------- methods */

static void test_method_bit(void)
{
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("GET")), ARC_M_GET);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("HEAD")), ARC_M_HEAD);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("POST")), ARC_M_POST);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("PUT")), ARC_M_PUT);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("DELETE")), ARC_M_DELETE);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("CONNECT")), ARC_M_CONNECT);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("OPTIONS")), ARC_M_OPTIONS);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("TRACE")), ARC_M_TRACE);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("PATCH")), ARC_M_PATCH);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("get")), 0);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("PROPFIND")), 0);
    CHECK_INT(arc_rt_method_bit(ARC_STR_LIT("")), 0);
    CHECK_INT(arc_rt_method_bit(arc_str_make("GETX", 3)), ARC_M_GET);
}

static void test_methods_and_405(void)
{
    struct arc_rt_spec s[] = {
        R("get", "/m", .methods = ARC_M_GET),
        R("post_put", "/m", .methods = ARC_M_POST | ARC_M_PUT),
        R("only_get", "/g", .methods = ARC_M_GET | ARC_M_HEAD),
        R("lit_get", "/a/b", .methods = ARC_M_GET),
        R("cap_post", "/a/{x}", .methods = ARC_M_POST),
        R("any_m", "/n"),
        R("get_n", "/n", .methods = ARC_M_GET),
        R("host_get", "/h", HOSTS("api.test"), .methods = ARC_M_GET),
        R("other_delete", "/h", .methods = ARC_M_DELETE),
    };
    struct arc_rt_table *t = build(s, ARC_ARRAY_LEN(s));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match_hm(t, "x", ARC_M_GET, "/m"), "get");
    CHECK_STR(match_hm(t, "x", ARC_M_PUT, "/m"), "post_put");
    CHECK_INT(g_allowed, 0);
    CHECK(match_hm(t, "x", ARC_M_DELETE, "/m") == NULL);
    CHECK_INT(g_allowed, ARC_M_GET | ARC_M_POST | ARC_M_PUT);
    CHECK(match_hm(t, "x", 0, "/m") == NULL);                  /* extension method */
    CHECK_INT(g_allowed, ARC_M_GET | ARC_M_POST | ARC_M_PUT);
    CHECK(match_hm(t, "x", ARC_M_POST, "/g") == NULL);
    CHECK_INT(g_allowed, ARC_M_GET | ARC_M_HEAD);
    CHECK(match_hm(t, "x", ARC_M_GET, "/nothing") == NULL);    /* 404, not 405 */
    CHECK_INT(g_allowed, 0);
    /* a route that rejects the method does not hide a less specific one */
    CHECK_STR(match_hm(t, "x", ARC_M_POST, "/a/b"), "cap_post");
    CHECK_STR(cap("x"), "b");
    CHECK(match_hm(t, "x", ARC_M_PUT, "/a/b") == NULL);
    CHECK_INT(g_allowed, ARC_M_GET | ARC_M_POST);
    /* a methods route beats a method-less one (more predicates) */
    CHECK_STR(match_hm(t, "x", ARC_M_GET, "/n"), "get_n");
    CHECK_STR(match_hm(t, "x", ARC_M_POST, "/n"), "any_m");
    CHECK_STR(match_hm(t, "x", 0, "/n"), "any_m");
    /* Allow only lists routes whose host matched */
    CHECK(match_hm(t, "api.test", ARC_M_POST, "/h") == NULL);
    CHECK_INT(g_allowed, ARC_M_GET | ARC_M_DELETE);
    CHECK(match_hm(t, "other.test", ARC_M_POST, "/h") == NULL);
    CHECK_INT(g_allowed, ARC_M_DELETE);
    /* host given + GET vs any host + DELETE: both predicates counted */
    CHECK_STR(match_hm(t, "api.test", ARC_M_DELETE, "/h"), "other_delete");
    arc_rt_free(t);
}

/* ------------------------------------------------------------- priority */

static void test_priority(void)
{
    struct arc_rt_spec s[] = {
        R("lit", "/p/lit"),
        R("cap_hi", "/p/{x}", .priority = 10),
        R("same_path_lo", "/q", .priority = -1),
        R("same_path_hi", "/q", .priority = 1),
        R("host_lo", "/r", HOSTS("api.test")),
        R("any_hi", "/r", .priority = 5),
        R("hi_get", "/s", .priority = 3, .methods = ARC_M_GET),
        R("lo_any", "/s"),
    };
    struct arc_rt_table *t = build(s, ARC_ARRAY_LEN(s));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match(t, "/p/lit"), "cap_hi");
    CHECK_STR(match(t, "/q"), "same_path_hi");
    CHECK_STR(match_hm(t, "api.test", ARC_M_GET, "/r"), "any_hi");
    CHECK_STR(match_hm(t, "x", ARC_M_GET, "/s"), "hi_get");
    CHECK_STR(match_hm(t, "x", ARC_M_POST, "/s"), "lo_any");
    CHECK_INT(g_allowed, 0);
    arc_rt_free(t);
}

/* ------------------------------------------------------------- ambiguity */

static void check_ambiguous(const struct arc_rt_spec *s, size_t n, size_t idx,
                            const char *a, const char *b, int line)
{
    char want[128];
    snprintf(want, sizeof(want), "routes '%s' and '%s' are ambiguous", a, b);
    if (!build_fails(s, n) || !strstr(g_err, want) || g_err_index != idx) {
        t_failures++;
        fprintf(stderr, "%s:%d: expected ambiguity of %s/%s at %zu, got '%s' (index %zu)\n",
                __FILE__, line, a, b, idx, g_err, g_err_index);
    }
    t_checks++;
}
#define AMBIGUOUS(s, idx, a, b) check_ambiguous(s, ARC_ARRAY_LEN(s), idx, a, b, __LINE__)

static void test_ambiguity(void)
{
    struct arc_rt_spec a[] = { R("ok", "/z"), R("a", "/a/{x}"), R("b", "/a/{y}") };
    AMBIGUOUS(a, 2, "a", "b");
    CHECK(strstr(g_err, "'/a/{x}' and '/a/{y}'") != NULL);
    CHECK(strstr(g_err, "any host, any method") != NULL);
    struct arc_rt_spec b[] = { R("a", "/a/*"), R("b", "/a/*", .methods = ARC_M_GET),
                               R("c", "/a/*", .methods = ARC_M_GET | ARC_M_PUT) };
    AMBIGUOUS(b, 2, "b", "c");
    struct arc_rt_spec c[] = { R("a", "/a", .methods = ARC_M_GET),
                               R("b", "/a", .methods = ARC_M_GET | ARC_M_POST) };
    AMBIGUOUS(c, 1, "a", "b");
    CHECK(strstr(g_err, "GET") != NULL && !strstr(g_err, "POST"));
    struct arc_rt_spec d[] = { R("a", "/a", HOSTS("a.com", "b.com")), R("b", "/a", HOSTS("B.com")) };
    AMBIGUOUS(d, 1, "a", "b");
    CHECK(strstr(g_err, "host 'b.com'") != NULL);
    struct arc_rt_spec e[] = { R("a", "/{*r}", HOSTS("*.x.com")), R("b", "/{*rest}", HOSTS("*.X.com.")) };
    AMBIGUOUS(e, 1, "a", "b");
    struct arc_rt_spec f[] = { R("a", "/", .priority = 2), R("b", "/", .priority = 2) };
    AMBIGUOUS(f, 1, "a", "b");

    /* not ambiguous: something always tells them apart */
    struct arc_rt_spec ok[] = {
        R("get", "/a", .methods = ARC_M_GET),
        R("post", "/a", .methods = ARC_M_POST),
        R("any", "/a"),
        R("h1", "/a", HOSTS("one.com")),
        R("h2", "/a", HOSTS("two.com")),
        R("h1get", "/a", HOSTS("one.com"), .methods = ARC_M_GET),
        R("sfx", "/a", HOSTS("*.com")),
        R("sfx2", "/a", HOSTS("*.one.com")),
        R("prio", "/a", .priority = 1),
        R("dup", "/d", HOSTS("x.com", "X.COM", "x.com.")),
        R("slash", "/a/"),
        R("cap", "/{a}"),
        R("rest", "/{*r}"),
        R("any_get", "/h", .methods = ARC_M_GET),
        R("host_any", "/h", HOSTS("one.com")),
        R("star", "/s/*"),
        R("param", "/s/{id}"),
        R("rest", "/s/{*r}"),
    };
    struct arc_rt_table *t = build(ok, ARC_ARRAY_LEN(ok));
    CHECK(t != NULL);
    if (t) {
        CHECK_STR(match_hm(t, "one.com", ARC_M_GET, "/a"), "prio");
        /* the host route wins before predicates are counted */
        CHECK_STR(match_hm(t, "one.com", ARC_M_GET, "/h"), "host_any");
        CHECK_STR(match_hm(t, "two.com", ARC_M_GET, "/h"), "any_get");
        /* {name} > * > {*name}: same segments accepted, never a tie */
        CHECK_STR(match_hm(t, "two.com", ARC_M_GET, "/s/x"), "param");
        CHECK_STR(match_hm(t, "two.com", ARC_M_GET, "/s/x/y"), "rest");
        arc_rt_free(t);
    }
    /* without the priority route the predicates decide */
    struct arc_rt_table *t2 = build(ok, 8);
    CHECK(t2 != NULL);
    if (t2) {
        CHECK_STR(match_hm(t2, "one.com", ARC_M_GET, "/a"), "h1get");
        CHECK_STR(match_hm(t2, "one.com", ARC_M_PUT, "/a"), "h1");
        CHECK_STR(match_hm(t2, "a.one.com", ARC_M_PUT, "/a"), "sfx2");
        CHECK_STR(match_hm(t2, "three.com", ARC_M_PUT, "/a"), "sfx");
        CHECK_STR(match_hm(t2, "three.org", ARC_M_POST, "/a"), "post");
        CHECK_STR(match_hm(t2, "three.org", ARC_M_PUT, "/a"), "any");
        arc_rt_free(t2);
    }
}

/* ------------------------------------------------------------- precedence rules */

/* literal > {name} > * > {*name} at one segment. */
static void test_segment_kinds(void)
{
    struct arc_rt_spec s[] = {
        R("lit", "/f/x"),
        R("param", "/f/{id}", .methods = ARC_M_GET),
        R("star", "/f/*"),
        R("rest", "/f/{*r}"),
        R("deep_param", "/g/{a}/*"),
        R("deep_star", "/g/*/{b}"),
    };
    struct arc_rt_table *t = build(s, ARC_ARRAY_LEN(s));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match(t, "/f/x"), "lit");
    CHECK_STR(match(t, "/f/y"), "param");
    CHECK_STR(cap("id"), "y");
    CHECK_STR(match_hm(t, "h", ARC_M_POST, "/f/y"), "star");   /* {id} refuses the method */
    CHECK_STR(match(t, "/f/"), "rest");                       /* one-segment kinds need bytes */
    CHECK_STR(match(t, "/f/y/z"), "rest");
    CHECK_STR(match(t, "/g/1/2"), "deep_param");              /* the leftmost difference decides */
    CHECK_STR(cap("a"), "1");
    arc_rt_free(t);
}

/* The rule chosen for hosts versus paths: priority, then host, then path. */
static void test_host_before_path(void)
{
    struct arc_rt_spec s[] = {
        R("any_health", "/health"),
        R("any_api", "/api/v1/users"),
        R("tenant_all", "/{*rest}", HOSTS("tenant.example.com")),
        R("wild_cap", "/api/{*rest}", HOSTS("*.example.com")),
        R("wild_deep", "/api/{*rest}", HOSTS("*.eu.example.com")),
        R("any_urgent", "/urgent", .priority = 1),
        R("api_get", "/only-get", HOSTS("api.example.com"), .methods = ARC_M_GET),
        R("any_post", "/only-get", .methods = ARC_M_POST),
    };
    struct arc_rt_table *t = build(s, ARC_ARRAY_LEN(s));
    CHECK(t != NULL);
    if (!t)
        return;
    /* a host's own catch-all beats any-host literals */
    CHECK_STR(match_hm(t, "tenant.example.com", ARC_M_GET, "/health"), "tenant_all");
    CHECK_STR(match_hm(t, "TENANT.example.com:443", ARC_M_GET, "/api/v1/users"), "tenant_all");
    CHECK_STR(match_hm(t, "other.org", ARC_M_GET, "/health"), "any_health");
    /* an exact host beats a suffix, a longer suffix a shorter one */
    CHECK_STR(match_hm(t, "www.example.com", ARC_M_GET, "/api/v1/users"), "wild_cap");
    CHECK_STR(match_hm(t, "x.eu.example.com", ARC_M_GET, "/api/v1/users"), "wild_deep");
    CHECK_STR(match_hm(t, "example.com", ARC_M_GET, "/api/v1/users"), "any_api");
    /* a host route that does not match the path leaves the request to others */
    CHECK_STR(match_hm(t, "www.example.com", ARC_M_GET, "/health"), "any_health");
    /* priority still comes first */
    CHECK_STR(match_hm(t, "tenant.example.com", ARC_M_GET, "/urgent"), "any_urgent");
    /* a host route that refuses the method falls through to any-host ones */
    CHECK_STR(match_hm(t, "api.example.com", ARC_M_POST, "/only-get"), "any_post");
    CHECK_STR(match_hm(t, "api.example.com", ARC_M_GET, "/only-get"), "api_get");
    CHECK_STR(match_hm(t, "tenant.example.com", ARC_M_POST, "/only-get"), "tenant_all");
    arc_rt_free(t);
}

/* ------------------------------------------------------------- predicates */

static void test_predicate_routes(void)
{
    struct arc_rt_spec s[] = {
        R("plain", "/app"),
        R("beta", "/app", PREDS(P(HEADER, EQUALS, "X-Env", "beta"))),
        R("beta_mobile", "/app", PREDS(P(HEADER, EQUALS, "X-Env", "beta"),
                                       P(HEADER, REGEX, "User-Agent", "(?i)mobile"))),
        R("canary_cookie", "/app", PREDS(P(COOKIE, EQUALS, "canary", "1"),
                                         P(QUERY, EXISTS, "debug", NULL), P(HEADER, EXISTS, "X-A", NULL))),
        R("v2_any", "/v", PREDS(P(QUERY, EQUALS, "v", "2"))),
        R("v2_get", "/v", .methods = ARC_M_GET, PREDS(P(QUERY, EQUALS, "v", "2"))),
        R("only_preds", "/p", PREDS(P(HEADER, CONTAINS, "Accept", "json"))),
        R("post_with_header", "/w", .methods = ARC_M_POST, PREDS(P(HEADER, EXISTS, "X-Token", NULL))),
        R("put_plain", "/w", .methods = ARC_M_PUT),
    };
    struct arc_rt_table *t = build(s, ARC_ARRAY_LEN(s));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/app", NULL, NULL), "plain");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/app", NULL, HL("x-env: beta")), "beta");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/app", NULL, HL("X-Env: alpha")), "plain");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/app", NULL,
                        HL("X-Env: beta", "User-Agent: Foo Mobile/1")), "beta_mobile");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/app", "debug", HL("Cookie: a=b; canary=1", "X-A: 1",
                                                               "X-Env: beta", "User-Agent: mobile")),
              "canary_cookie");    /* three matchers beat two */
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/v", "v=2", NULL), "v2_get");   /* methods count */
    CHECK_STR(match_req(t, "h", ARC_M_POST, "/v", "v=2", NULL), "v2_any");
    CHECK(match_req(t, "h", ARC_M_POST, "/v", "v=3", NULL) == NULL);
    /* a route whose matchers fail is not a candidate: 404, not 405 */
    CHECK(match_req(t, "h", ARC_M_GET, "/p", NULL, HL("Accept: text/html")) == NULL);
    CHECK_INT(g_allowed, 0);
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/p", NULL, HL("Accept: application/json")),
              "only_preds");
    /* 405 lists a method only if that route's matchers hold */
    CHECK(match_req(t, "h", ARC_M_GET, "/w", NULL, NULL) == NULL);
    CHECK_INT(g_allowed, ARC_M_PUT);
    CHECK(match_req(t, "h", ARC_M_GET, "/w", NULL, HL("X-Token: t")) == NULL);
    CHECK_INT(g_allowed, ARC_M_PUT | ARC_M_POST);
    CHECK_STR(match_req(t, "h", ARC_M_POST, "/w", NULL, HL("X-Token: t")), "post_with_header");
    CHECK(match_req(t, "h", ARC_M_POST, "/w", NULL, NULL) == NULL);
    CHECK_INT(g_allowed, ARC_M_PUT);
    arc_rt_free(t);
}

static void test_expr_routes(void)
{
    struct arc_rt_spec s[] = {
        R("fallback", "/x"),
        R("beta_not_mobile", "/x", .expr = "beta and not mobile",
          PREDS(PI(HEADER, EQUALS, "X-Env", "beta", "beta"),
                PI(HEADER, REGEX, "User-Agent", "Mobile", "mobile"))),
        R("either", "/y", .expr = "(q or c) and not h",
          PREDS(PI(QUERY, EQUALS, "mode", "fast", "q"), PI(COOKIE, EXISTS, "fast", NULL, "c"),
                PI(HEADER, EXISTS, "X-Slow", NULL, "h"))),
        /* exclusive through the expression: never ambiguous */
        R("has_token", "/z", .expr = "t", PREDS(PI(HEADER, EXISTS, "X-Token", NULL, "t"))),
        R("no_token", "/z", .expr = "not t", PREDS(PI(HEADER, EXISTS, "X-Token", NULL, "t"))),
    };
    struct arc_rt_table *t = build(s, ARC_ARRAY_LEN(s));
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/x", NULL, HL("X-Env: beta")), "beta_not_mobile");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/x", NULL, HL("X-Env: beta", "User-Agent: Mobile")),
              "fallback");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/x", NULL, NULL), "fallback");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/y", "mode=fast", NULL), "either");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/y", "a=1", HL("Cookie: fast=")), "either");
    CHECK(match_req(t, "h", ARC_M_GET, "/y", "mode=fast", HL("X-Slow: 1")) == NULL);
    CHECK(match_req(t, "h", ARC_M_GET, "/y", "mode=slow", NULL) == NULL);
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/z", NULL, HL("X-Token: 1")), "has_token");
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/z", NULL, NULL), "no_token");
    arc_rt_free(t);
}

static void test_predicate_ambiguity(void)
{
    /* equals a vs equals b on one header: a request may carry both */
    struct arc_rt_spec a[] = { R("a", "/a", PREDS(P(HEADER, EQUALS, "X-V", "a"))),
                               R("b", "/a", PREDS(P(HEADER, EQUALS, "x-v", "b"))) };
    AMBIGUOUS(a, 1, "a", "b");
    CHECK(strstr(g_err, "their matchers can all hold for one request") != NULL);
    /* same count, different fields */
    struct arc_rt_spec b[] = { R("a", "/a", PREDS(P(HEADER, EXISTS, "X-A", NULL))),
                               R("b", "/a", PREDS(P(COOKIE, EXISTS, "s", NULL))) };
    AMBIGUOUS(b, 1, "a", "b");
    /* a methods route and a one-matcher route tie for that method */
    struct arc_rt_spec c[] = { R("a", "/a", .methods = ARC_M_GET),
                               R("b", "/a", PREDS(P(QUERY, EXISTS, "q", NULL))) };
    AMBIGUOUS(c, 1, "a", "b");
    CHECK(strstr(g_err, "GET") != NULL);
    /* exists vs absent through expr: fine; exists vs some value test: not */
    struct arc_rt_spec d[] = {
        R("absent", "/a", .expr = "not x", PREDS(PI(HEADER, EXISTS, "X-A", NULL, "x"))),
        R("equals", "/a", PREDS(P(HEADER, EQUALS, "X-A", "1"))),
        R("regex", "/a", PREDS(P(HEADER, REGEX, "x-a", "^2"))),
    };
    AMBIGUOUS(d, 2, "equals", "regex");
    struct arc_rt_table *t = build(d, 2);
    CHECK(t != NULL);
    arc_rt_free(t);

    /* told apart by methods, count, priority or host */
    struct arc_rt_spec ok[] = {
        R("g", "/a", .methods = ARC_M_GET, PREDS(P(HEADER, EQUALS, "X-V", "a"))),
        R("p", "/a", .methods = ARC_M_POST, PREDS(P(HEADER, EQUALS, "X-V", "b"))),
        R("three", "/a", PREDS(P(HEADER, EQUALS, "X-V", "a"), P(HEADER, EQUALS, "X-V", "b"),
                               P(HEADER, EXISTS, "X-W", NULL))),
        R("prio", "/a", .priority = 1, PREDS(P(HEADER, EQUALS, "X-V", "c"))),
        R("host", "/a", HOSTS("h.test"), PREDS(P(HEADER, EQUALS, "X-V", "d"))),
        R("other_path", "/b", PREDS(P(HEADER, EQUALS, "X-V", "d"))),
    };
    t = build(ok, ARC_ARRAY_LEN(ok));
    CHECK(t != NULL);
    if (t) {
        CHECK_STR(match_req(t, "x", ARC_M_GET, "/a", NULL, HL("X-V: b", "X-V: a", "X-W: 1")),
                  "three");
        CHECK_STR(match_req(t, "x", ARC_M_GET, "/a", NULL, HL("X-V: a")), "g");
        CHECK_STR(match_req(t, "x", ARC_M_POST, "/a", NULL, HL("X-V: a", "X-V: c")), "prio");
        CHECK(match_req(t, "x", ARC_M_PUT, "/a", NULL, HL("X-V: a")) == NULL);
        CHECK_INT(g_allowed, ARC_M_GET);
        arc_rt_free(t);
    }
}

static void check_build_error(const struct arc_rt_spec *s, size_t n, size_t idx, const char *want,
                              int line)
{
    t_checks++;
    if (!build_fails(s, n) || !strstr(g_err, want) || g_err_index != idx) {
        t_failures++;
        fprintf(stderr, "%s:%d: expected error '%s' at %zu, got '%s' (index %zu)\n", __FILE__,
                line, want, idx, g_err, g_err_index);
    }
}
#define BUILD_ERROR(s, idx, want) check_build_error(s, ARC_ARRAY_LEN(s), idx, want, __LINE__)

static void test_predicate_errors(void)
{
    struct arc_rt_spec a[] = { R("ok", "/"), R("re", "/r", PREDS(P(HEADER, REGEX, "X-A", "a(b"))) };
    BUILD_ERROR(a, 1, "route 're': header matcher 'X-A': regex 'a(b' does not compile: "
                      "missing closing parenthesis (at offset 3)");
    struct arc_rt_spec b[] = { R("x", "/", .expr = "a and", PREDS(PI(HEADER, EXISTS, "X", NULL, "a"))) };
    BUILD_ERROR(b, 0, "route 'x': expr 'a and': expected a matcher id, 'not' or '(' but found the "
                      "end of the expression (at offset 5)");
    struct arc_rt_spec c[] = { R("x", "/", .expr = "a", PREDS(PI(HEADER, EXISTS, "X", NULL, "a"),
                                                         P(COOKIE, EXISTS, "c", NULL))) };
    BUILD_ERROR(c, 0, "with expr, every matcher needs an id (cookie matcher 'c' has none)");
    struct arc_rt_spec d[] = { R("x", "/", .expr = "a", PREDS(PI(HEADER, EXISTS, "X", NULL, "a"),
                                                         PI(COOKIE, EXISTS, "c", NULL, "b"))) };
    BUILD_ERROR(d, 0, "matcher 'b' is not used in expr 'a'");
    struct arc_rt_spec e[] = { R("x", "/", PREDS(PI(HEADER, EXISTS, "X", NULL, "a"),
                                                 PI(COOKIE, EXISTS, "c", NULL, "a"))) };
    BUILD_ERROR(e, 0, "matcher id 'a' is used twice");
    struct arc_rt_spec f[] = { R("x", "/", .expr = "a and not e",
                                 PREDS(PI(HEADER, EQUALS, "X", "1", "a"), PI(HEADER, EXISTS, "x", NULL, "e"))) };
    BUILD_ERROR(f, 0, "expr 'a and not e' can never be true");
    struct arc_rt_spec g[] = { R("x", "/", PREDS(P(QUERY, EQUALS, "q", NULL))) };
    BUILD_ERROR(g, 0, "query matcher 'q': op equals needs a value");
    struct arc_rt_spec h[] = { R("x", "/", PREDS(P(QUERY, EXISTS, "", NULL))) };
    BUILD_ERROR(h, 0, "query matcher without a name");
    struct arc_rt_spec i[] = { R("x", "/", .expr = "zz", PREDS(PI(QUERY, EXISTS, "q", NULL, "q"))) };
    BUILD_ERROR(i, 0, "unknown matcher 'zz'");
    struct arc_rt_pred many[ARC_RT_MAX_PREDS + 1];
    for (size_t k = 0; k < ARC_ARRAY_LEN(many); k++)
        many[k] = (struct arc_rt_pred){ .source = ARC_RT_HEADER, .op = ARC_RT_EXISTS, .name = "X" };
    struct arc_rt_spec j[] = { R("x", "/", .preds = many, .n_preds = ARC_ARRAY_LEN(many)) };
    BUILD_ERROR(j, 0, "more than 64 matchers");
    struct arc_rt_spec k[] = { R("x", "/", .preds = many, .n_preds = ARC_RT_MAX_PREDS) };
    struct arc_rt_table *t = build(k, 1);
    CHECK(t != NULL);
    arc_rt_free(t);
}

/* Identical matchers across routes share one atom (and one compiled regex). */
static void test_atoms_shared(void)
{
    enum { N = 200 };
    static struct arc_rt_spec s[N];
    static char paths[N][32];
    static struct arc_rt_pred preds[N][2];
    for (int i = 0; i < N; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/r%d", i);
        preds[i][0] = (struct arc_rt_pred){ .source = ARC_RT_HEADER, .op = ARC_RT_REGEX,
                                            .name = i % 2 ? "X-Env" : "x-env", .value = "^(a|b)+$" };
        preds[i][1] = (struct arc_rt_pred){ .source = ARC_RT_COOKIE, .op = ARC_RT_EQUALS,
                                            .name = "s", .value = i % 3 ? "1" : "2" };
        s[i] = (struct arc_rt_spec){ .name = paths[i], .path = paths[i], .data = paths[i],
                                     .preds = preds[i], .n_preds = 2 };
    }
    struct arc_rt_table *t = build(s, N);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/r4", NULL, HL("X-ENV: abba", "Cookie: s=1")), "/r4");
    CHECK(match_req(t, "h", ARC_M_GET, "/r4", NULL, HL("X-ENV: abc", "Cookie: s=1")) == NULL);
    CHECK_STR(match_req(t, "h", ARC_M_GET, "/r0", NULL, HL("X-ENV: a", "Cookie: s=2")), "/r0");
    arc_rt_free(t);
}

/* ------------------------------------------------------------- scale, lifetime */

static void test_many_routes(void)
{
    enum { N = 1000 };
    static struct arc_rt_spec s[3 * N];
    static char paths[3 * N][48], names[3 * N][16], hosts[N][32];
    static const char *host_lists[N][1];
    for (int i = 0; i < N; i++) {
        snprintf(paths[3 * i], 48, "/svc%d/items/{id}", i);
        snprintf(paths[3 * i + 1], 48, "/svc%d/items/{id}/{*rest}", i);
        snprintf(paths[3 * i + 2], 48, "/{*r}");
        snprintf(hosts[i], 32, "h%d.example.com", i);
        host_lists[i][0] = hosts[i];
        for (int k = 0; k < 3; k++) {
            snprintf(names[3 * i + k], 16, "r%d", 3 * i + k);
            s[3 * i + k] = (struct arc_rt_spec){ .name = names[3 * i + k], .path = paths[3 * i + k],
                                                 .data = names[3 * i + k] };
        }
        s[3 * i + 2].hosts = host_lists[i];
        s[3 * i + 2].n_hosts = 1;
    }
    struct arc_rt_table *t = build(s, 3 * N);
    CHECK(t != NULL);
    if (!t)
        return;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        char p[64], h[32];
        snprintf(p, sizeof(p), "/svc%d/items/%d", i, i * 7);
        if (match(t, p) != names[3 * i] || atoi(cap("id")) != i * 7)
            bad++;
        snprintf(p, sizeof(p), "/svc%d/items/x/y/z", i);
        if (match(t, p) != names[3 * i + 1] || strcmp(cap("rest"), "y/z") != 0)
            bad++;
        snprintf(h, sizeof(h), "H%d.example.com:80", i);
        if (match_hm(t, h, ARC_M_GET, "/nope") != names[3 * i + 2])
            bad++;
    }
    CHECK_INT(bad, 0);
    CHECK(match(t, "/svc1000/items/1") == NULL);
    arc_rt_free(t);
}

static void test_specs_may_be_freed(void)
{
    char *path = strdup("/k/{key}"), *name = strdup("k"), *host = strdup("*.Example.com");
    const char *hosts[] = { host };
    struct arc_rt_spec s = { .name = name, .path = path, .hosts = hosts, .n_hosts = 1, .data = &s };
    struct arc_rt_table *t = build(&s, 1);
    memset(path, 'x', strlen(path));
    memset(host, 'x', strlen(host));
    free(path);
    free(name);
    free(host);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(match_hm(t, "a.example.com", ARC_M_GET, "/k/v") == (const void *)&s);
    CHECK_STR(cap("key"), "v");
    arc_rt_free(t);

    struct arc_rt_table *e = build(NULL, 0);
    CHECK(e != NULL);
    CHECK(match(e, "/") == NULL);
    CHECK_INT(g_allowed, 0);
    arc_rt_free(e);
    arc_rt_free(NULL);
}

/* ------------------------------------------------------------- brute force */

/* A deliberately naive reading of router.h: check every route against the
 * request (path, host, matchers evaluated from the request's field
 * contents) and rank by (priority, host rank, per-segment kind, predicate
 * count). Nothing here shares code with the router. */

enum { NSEG = 8 };
struct seg_view { const char *p; size_t len; };

static size_t split(const char *s, struct seg_view *out)
{
    size_t n = 0;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        out[n++] = (struct seg_view){ s, len };
        if (!e || n == NSEG)
            return n;
        s = e + 1;
    }
}

/* literal 3 > {name} 2 > * 1 > {*name} 0 */
static int seg_rank(struct seg_view s)
{
    if (s.len >= 2 && s.p[0] == '{')
        return s.p[1] == '*' ? 0 : 2;
    return s.len == 1 && s.p[0] == '*' ? 1 : 3;
}

struct naive_key { int ok; int32_t prio; uint32_t rank; int shape[NSEG]; size_t nshape; int weight; };

static uint32_t naive_host_rank(const struct arc_rt_spec *s, const char *host, bool *ok)
{
    *ok = s->n_hosts == 0;
    if (!s->n_hosts)
        return 0;
    char h[64];
    size_t n = 0;
    for (; host[n] && host[n] != ':' && n < 63; n++)
        h[n] = (char)(host[n] >= 'A' && host[n] <= 'Z' ? host[n] + 32 : host[n]);
    h[n] = '\0';
    uint32_t best = 0;
    for (size_t i = 0; i < s->n_hosts; i++) {
        const char *p = s->hosts[i];
        if (p[0] == '*') {
            size_t sl = strlen(p + 1);
            if (n > sl && strcmp(h + n - sl, p + 1) == 0) {
                *ok = true;
                best = ARC_MAX(best, 1 + (uint32_t)sl);
            }
        } else if (strcmp(h, p) == 0) {
            *ok = true;
            best = UINT32_MAX;
        }
    }
    return best;
}

/* Key of route s for (host, path), ignoring method and matchers. */
static struct naive_key naive_key(const struct arc_rt_spec *s, const char *host, const char *path)
{
    struct naive_key k = { 0 };
    struct seg_view ps[NSEG], rs[NSEG];
    size_t np = split(s->path + 1, ps), nr = split(path + 1, rs);
    for (size_t i = 0; i < np; i++) {
        int r = seg_rank(ps[i]);
        k.shape[k.nshape++] = r;
        if (r == 0) {
            if (i >= nr)
                return k;
            goto path_ok;
        }
        if (i >= nr)
            return k;
        if ((r == 1 || r == 2) && rs[i].len == 0)
            return k;
        if (r == 3 && (rs[i].len != ps[i].len || memcmp(rs[i].p, ps[i].p, ps[i].len) != 0))
            return k;
    }
    if (np != nr)
        return k;
path_ok:;
    bool hok;
    k.rank = naive_host_rank(s, host, &hok);
    if (!hok)
        return k;
    k.ok = 1;
    k.prio = s->priority;
    k.weight = (s->methods != 0) + (int)s->n_preds;
    return k;
}

static int naive_cmp(const struct naive_key *a, const struct naive_key *b)
{
    if (a->prio != b->prio)
        return a->prio > b->prio ? 1 : -1;
    if (a->rank != b->rank)
        return a->rank > b->rank ? 1 : -1;
    for (size_t i = 0; i < ARC_MIN(a->nshape, b->nshape); i++)
        if (a->shape[i] != b->shape[i])
            return a->shape[i] > b->shape[i] ? 1 : -1;
    if (a->weight != b->weight)
        return a->weight > b->weight ? 1 : -1;
    return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* Matcher vocabulary: three fields, five tests each. A field's content in a
 * request is a set of occurrences drawn from five values, one that makes
 * exactly one non-exists test true and "z" that makes none: so every
 * combination of test results a field can have is reachable, and the
 * router's treatment of matchers as independent tests (but for exists) is
 * exact here. */
enum { NFIELD = 3, NVAL = 5, NSTATE = 1 << NVAL };
static const uint8_t field_src[NFIELD] = { ARC_RT_HEADER, ARC_RT_COOKIE, ARC_RT_QUERY };
static const char *const field_name[NFIELD] = { "X-A", "c", "q" };
static const char *const occ_value[NVAL] = { "a", "b", "xcx", "d", "z" };
static const struct { uint8_t op; const char *value; } tests[NVAL] = {
    { ARC_RT_EXISTS, NULL }, { ARC_RT_EQUALS, "a" }, { ARC_RT_EQUALS, "b" },
    { ARC_RT_CONTAINS, "c" }, { ARC_RT_REGEX, "^d$" },
};

static bool naive_test(int field, int test, const unsigned *state)
{
    unsigned s = state[field];
    return test == 0 ? s != 0 : (s >> (test - 1)) & 1;
}

/* Expression trees built by the test (printed for the router, evaluated
 * here directly). */
enum { XL, XN, XA, XO };
struct xt { int op, a, b, pred; };

struct naive_route {
    int field[3], test[3];
    size_t n;
    struct xt x[16];
    int nx, root;               /* root < 0: all matchers */
    char expr[160];
};

static bool naive_x(const struct naive_route *r, int i, const unsigned *state)
{
    const struct xt *x = &r->x[i];
    switch (x->op) {
    case XL:
        return naive_test(r->field[x->pred], r->test[x->pred], state);
    case XN:
        return !naive_x(r, x->a, state);
    case XA:
        return naive_x(r, x->a, state) && naive_x(r, x->b, state);
    default:
        return naive_x(r, x->a, state) || naive_x(r, x->b, state);
    }
}

static bool naive_preds(const struct naive_route *r, const unsigned *state)
{
    if (r->root >= 0)
        return naive_x(r, r->root, state);
    for (size_t i = 0; i < r->n; i++)
        if (!naive_test(r->field[i], r->test[i], state))
            return false;
    return true;
}

static void print_x(const struct naive_route *r, int i, char *out, size_t len)
{
    const struct xt *x = &r->x[i];
    char a[72], b[72];
    switch (x->op) {
    case XL:
        snprintf(out, len, "p%d", x->pred);
        return;
    case XN:
        print_x(r, x->a, a, sizeof(a));
        snprintf(out, len, "not (%s)", a);
        return;
    default:
        print_x(r, x->a, a, sizeof(a));
        print_x(r, x->b, b, sizeof(b));
        snprintf(out, len, "(%s) %s (%s)", a, x->op == XA ? "and" : "or", b);
    }
}

/* Random matchers for one route, and an expression over all of them half
 * of the time. */
static void random_preds(struct naive_route *r, struct arc_rt_pred *preds, char ids[3][4],
                         bool allowed)
{
    r->n = !allowed || rnd(2) ? 0 : 1 + rnd(3);
    r->root = -1;
    r->nx = 0;
    for (size_t i = 0; i < r->n; i++) {
        r->field[i] = (int)rnd(NFIELD);
        r->test[i] = (int)rnd(NVAL);
        ids[i][0] = 'p';
        ids[i][1] = (char)('0' + i);
        ids[i][2] = '\0';
        preds[i] = (struct arc_rt_pred){ .source = field_src[r->field[i]],
                                         .op = tests[r->test[i]].op,
                                         .name = field_name[r->field[i]],
                                         .value = tests[r->test[i]].value, .id = ids[i] };
    }
    if (r->n == 0 || rnd(2))
        return;
    int items[3];
    size_t ni = r->n;
    for (size_t i = 0; i < ni; i++) {
        r->x[r->nx] = (struct xt){ XL, 0, 0, (int)i };
        items[i] = r->nx++;
        if (!rnd(3)) {
            r->x[r->nx] = (struct xt){ XN, items[i], 0, 0 };
            items[i] = r->nx++;
        }
    }
    while (ni > 1) {
        size_t k = rnd((uint32_t)ni - 1);
        r->x[r->nx] = (struct xt){ rnd(2) ? XA : XO, items[k], items[k + 1], 0 };
        items[k] = r->nx++;
        if (!rnd(4)) {
            r->x[r->nx] = (struct xt){ XN, items[k], 0, 0 };
            items[k] = r->nx++;
        }
        memmove(&items[k + 1], &items[k + 2], (ni - k - 2) * sizeof(items[0]));
        ni--;
    }
    r->root = items[0];
    print_x(r, r->root, r->expr, sizeof(r->expr));
}

/* Can both routes' matchers hold for one request (b may be NULL)? By
 * enumerating every content of the three fields. */
static bool naive_cosat(const struct naive_route *a, const struct naive_route *b)
{
    unsigned st[NFIELD];
    for (unsigned v = 0; v < NSTATE * NSTATE * NSTATE; v++) {
        st[0] = v % NSTATE;
        st[1] = v / NSTATE % NSTATE;
        st[2] = v / (NSTATE * NSTATE);
        if (naive_preds(a, st) && (!b || naive_preds(b, st)))
            return true;
    }
    return false;
}

/* The request fields for a content: header lines in random case, cookies
 * split over one or two Cookie fields, query values partly percent-encoded,
 * with unrelated noise around them. */
struct req_buf {
    char lines[12][64];
    const char *hdrs[13];
    char query[160];
};

static void build_request(struct req_buf *b, const unsigned *st)
{
    size_t nl = 0;
    char cookie[2][96] = { "n=1", "" };
    size_t qo = 0;
    b->query[0] = '\0';
    if (rnd(2))
        qo += (size_t)snprintf(b->query + qo, sizeof(b->query) - qo, "r=1");
    for (int v = 0; v < NVAL; v++) {
        if (st[0] >> v & 1)
            snprintf(b->lines[nl++], 64, "%s: %s", rnd(2) ? "X-A" : "x-a", occ_value[v]);
        if (st[1] >> v & 1) {
            char *c = cookie[rnd(2)];
            snprintf(c + strlen(c), 96 - strlen(c), "%sc=%s", c[0] ? "; " : "", occ_value[v]);
        }
        if (st[2] >> v & 1) {
            char enc[16];
            const char *val = occ_value[v];
            if (rnd(2)) {           /* percent-encode every byte */
                size_t o = 0;
                for (const char *p = val; *p; p++)
                    o += (size_t)snprintf(enc + o, sizeof(enc) - o, "%%%02X", (unsigned char)*p);
                val = enc;
            }
            qo += (size_t)snprintf(b->query + qo, sizeof(b->query) - qo, "%s%s=%s",
                                   qo ? "&" : "", rnd(2) ? "q" : "%71", val);
        }
    }
    snprintf(b->lines[nl++], 64, "X-B: a");
    for (int k = 0; k < 2; k++)
        if (cookie[k][0])
            snprintf(b->lines[nl++], 64, "Cookie: %s", cookie[k]);
    for (size_t i = 0; i < nl; i++)
        b->hdrs[i] = b->lines[i];
    b->hdrs[nl] = NULL;
}

static void test_against_brute_force(void)
{
    static const char *segs[] = { "a", "b", "{x}", "*", "{*r}", "{y}" };
    static const char *host_pats[] = { "x.example.com", "*.example.com", "*.x.example.com", "y.example.com" };
    static const char *req_hosts[] = { "x.example.com", "Y.example.com:80", "z.x.example.com", "other.org", "" };
    static const uint32_t req_methods[] = { ARC_M_GET, ARC_M_POST, ARC_M_PUT, 0 };
    static const uint32_t route_methods[] = { 0, 0, ARC_M_GET, ARC_M_POST, ARC_M_GET | ARC_M_POST };
    /* request paths: every path of 1..4 segments over {a,b,c} with and without a trailing slash, and "/" */
    static char req_paths[300][24];
    size_t nreq = 0;
    strcpy(req_paths[nreq++], "/");
    for (int len = 1; len <= 4; len++) {
        int total = 1;
        for (int i = 0; i < len; i++)
            total *= 3;
        for (int v = 0; v < total; v++) {
            char p[12] = "";
            for (int i = 0, x = v; i < len; i++, x /= 3)
                snprintf(p + strlen(p), sizeof(p) - strlen(p), "/%c", "abc"[x % 3]);
            strcpy(req_paths[nreq++], p);
            snprintf(req_paths[nreq++], 24, "%s/", p);
        }
    }

    int built = 0, ambiguous = 0, never = 0, mismatches = 0, with_preds = 0;
    long matched_preds = 0;
    for (int trial = 0; trial < 1000; trial++) {
        enum { MAXR = 7 };
        struct arc_rt_spec s[MAXR];
        struct naive_route nr[MAXR];
        struct arc_rt_pred preds[MAXR][3];
        char ids[MAXR][3][4];
        char paths[MAXR][40], names[MAXR][24];
        const char *hl[MAXR][2];
        size_t n = 2 + rnd(MAXR - 1);
        bool matchers = trial % 3 != 0;     /* a third of the tables without any */
        for (size_t i = 0; i < n; i++) {
            size_t ns = 1 + rnd(3);
            paths[i][0] = '\0';
            bool used_x = false, used_y = false;
            for (size_t j = 0; j < ns; j++) {
                const char *sg = segs[rnd(ARC_ARRAY_LEN(segs))];
                if (!strcmp(sg, "{*r}") && j + 1 != ns)
                    sg = "a";
                if (!strcmp(sg, "{x}") && used_x)
                    sg = "*";
                if (!strcmp(sg, "{y}") && used_y)
                    sg = "b";
                used_x |= !strcmp(sg, "{x}");
                used_y |= !strcmp(sg, "{y}");
                snprintf(paths[i] + strlen(paths[i]), 40 - strlen(paths[i]), "/%s", sg);
            }
            snprintf(names[i], 24, "r%zu", i);
            random_preds(&nr[i], preds[i], ids[i], matchers);
            s[i] = (struct arc_rt_spec){ .name = names[i], .path = paths[i], .data = names[i],
                                         .methods = route_methods[rnd(5)],
                                         .priority = (int32_t)rnd(2) * rnd(2),
                                         .preds = preds[i], .n_preds = nr[i].n,
                                         .expr = nr[i].root >= 0 ? nr[i].expr : NULL };
            size_t nh = rnd(3) ? 0 : 1 + rnd(2);
            for (size_t h = 0; h < nh; h++)
                hl[i][h] = host_pats[rnd(4)];
            s[i].hosts = hl[i];
            s[i].n_hosts = nh;
        }
        /* ground truth: a route that can never match, or two that tie for
         * some request (same keys, both accept the method, matchers both
         * hold for some field content) */
        bool never_true = false;
        for (size_t i = 0; i < n && !never_true; i++)
            never_true = nr[i].root >= 0 && !naive_cosat(&nr[i], NULL);
        int cosat[MAXR][MAXR];
        memset(cosat, -1, sizeof(cosat));
        bool tie = false;
        for (size_t q = 0; q < nreq && !tie && !never_true; q++)
            for (size_t h = 0; h < ARC_ARRAY_LEN(req_hosts) && !tie; h++) {
                struct naive_key keys[MAXR];
                for (size_t i = 0; i < n; i++)
                    keys[i] = naive_key(&s[i], req_hosts[h], req_paths[q]);
                for (size_t m = 0; m < ARC_ARRAY_LEN(req_methods) && !tie; m++)
                    for (size_t i = 0; i < n && !tie; i++) {
                        if (!keys[i].ok || (s[i].methods && !(s[i].methods & req_methods[m])))
                            continue;
                        for (size_t j = i + 1; j < n && !tie; j++) {
                            if (s[j].methods && !(s[j].methods & req_methods[m]))
                                continue;
                            if (!keys[j].ok || naive_cmp(&keys[i], &keys[j]) != 0)
                                continue;
                            if (cosat[i][j] < 0)
                                cosat[i][j] = naive_cosat(&nr[i], &nr[j]);
                            tie = cosat[i][j];
                        }
                    }
            }
        struct arc_rt_table *t = NULL;
        char err[512];
        size_t ei;
        int rc = arc_rt_build(s, n, &t, err, sizeof(err), &ei);
        if ((rc != 0) != (tie || never_true)) {
            if (mismatches++ < 5)
                fprintf(stderr, "trial %d: build rc %d (%s) but naive tie=%d never=%d\n", trial,
                        rc, rc ? err : "", tie, never_true);
            continue;
        }
        if (rc != 0) {
            if (never_true)
                never++;
            else
                ambiguous++;
            continue;
        }
        built++;
        bool any_preds = false;
        for (size_t i = 0; i < n; i++)
            any_preds |= nr[i].n > 0;
        with_preds += any_preds;
        for (size_t q = 0; q < nreq; q++)
            for (size_t h = 0; h < ARC_ARRAY_LEN(req_hosts); h++) {
                unsigned st[NFIELD] = { 0, 0, 0 };
                if (any_preds)
                    for (int f = 0; f < NFIELD; f++)
                        st[f] = rnd(3) ? rnd(NSTATE) : 0;
                struct req_buf rb;
                build_request(&rb, st);
                struct naive_key keys[MAXR];
                for (size_t i = 0; i < n; i++) {
                    keys[i] = naive_key(&s[i], req_hosts[h], req_paths[q]);
                    keys[i].ok = keys[i].ok && naive_preds(&nr[i], st);
                }
                for (size_t m = 0; m < ARC_ARRAY_LEN(req_methods); m++) {
                    const struct arc_rt_spec *best = NULL;
                    const struct naive_key *bk = NULL;
                    uint32_t allow = 0;
                    for (size_t i = 0; i < n; i++) {
                        if (!keys[i].ok)
                            continue;
                        if (s[i].methods && !(s[i].methods & req_methods[m])) {
                            allow |= s[i].methods;
                            continue;
                        }
                        if (!best || naive_cmp(&keys[i], bk) > 0) {
                            best = &s[i];
                            bk = &keys[i];
                        }
                    }
                    if (best)
                        allow = 0;
                    if (best && best->n_preds)
                        matched_preds++;
                    const void *got = match_req(t, req_hosts[h], req_methods[m], req_paths[q],
                                                rb.query, rb.hdrs);
                    if (got != (best ? best->data : NULL) || g_allowed != allow) {
                        if (mismatches++ < 5)
                            fprintf(stderr, "trial %d: %s %s?%s m=%u: got %s/%u want %s/%u\n",
                                    trial, req_hosts[h], req_paths[q], rb.query, req_methods[m],
                                    got ? (const char *)got : "-", g_allowed,
                                    best ? (const char *)best->data : "-", allow);
                    }
                }
            }
        arc_rt_free(t);
    }
    CHECK_INT(mismatches, 0);
    CHECK(built > 50);
    CHECK(with_preds > 50);
    CHECK(ambiguous > 20);
    CHECK(never > 5);
    CHECK(matched_preds > 1000);
    printf("     brute force: %d tables compared (%d with matchers, %ld matches won by a route "
           "with matchers), %d ambiguous and %d never-matching sets rejected\n",
           built, with_preds, matched_preds, ambiguous, never);
}

int main(void)
{
    RUN(test_pattern_syntax);
    RUN(test_host_pattern_errors);
    RUN(test_precedence);
    RUN(test_rest_matches_root);
    RUN(test_captures);
    RUN(test_hosts);
    RUN(test_method_bit);
    RUN(test_methods_and_405);
    RUN(test_priority);
    RUN(test_ambiguity);
    RUN(test_segment_kinds);
    RUN(test_host_before_path);
    RUN(test_predicate_routes);
    RUN(test_expr_routes);
    RUN(test_predicate_ambiguity);
    RUN(test_predicate_errors);
    RUN(test_atoms_shared);
    RUN(test_many_routes);
    RUN(test_specs_may_be_freed);
    RUN(test_against_brute_force);
    return TEST_REPORT();
}
