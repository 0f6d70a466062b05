/* Proves the control-plane API's pure parts: the bearer token is compared
 * in constant time (through digests, so no length or prefix shortcut
 * exists) and parsed from Authorization as RFC 6750 says; long-poll
 * queries are parsed strictly (fingerprint shape, durations, duplicates)
 * and capped; If-None-Match lists and weak tags match; loopback peers are
 * recognised in every form; body formats follow Content-Type. */
#include "test.h"
#include "admin/admin_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#define FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static struct arc_str S(const char *s)
{
    return arc_str_make(s, strlen(s));
}

static void test_token_eq(void)
{
    const char *want = "s3cret-token-0123456789";
    size_t wl = strlen(want);
    CHECK(arc_admin__token_eq(want, wl, want, wl));
    CHECK(!arc_admin__token_eq("s3cret-token-012345678", wl - 1, want, wl));   /* prefix */
    CHECK(!arc_admin__token_eq("s3cret-token-01234567890", wl + 1, want, wl)); /* longer */
    CHECK(!arc_admin__token_eq("S3cret-token-0123456789", wl, want, wl));      /* case */
    CHECK(!arc_admin__token_eq("s3cret-token-012345678X", wl, want, wl));      /* last byte */
    CHECK(!arc_admin__token_eq("", 0, want, wl));
    /* The length given is what counts, not a NUL inside. */
    CHECK(!arc_admin__token_eq("s3cret-token-0123456789\0x", wl + 2, want, wl));
    CHECK(arc_admin__token_eq("", 0, "", 0));
}

static void test_bearer(void)
{
    struct arc_str t;
    CHECK(arc_admin__bearer(S("Bearer abc.def"), &t));
    CHECK_VIEW(t.p, t.len, "abc.def");
    CHECK(arc_admin__bearer(S("  bearer   abc=  "), &t));   /* scheme is case-insensitive */
    CHECK_VIEW(t.p, t.len, "abc=");
    CHECK(arc_admin__bearer(S("BEARER\tx"), &t));
    CHECK_VIEW(t.p, t.len, "x");
    CHECK(!arc_admin__bearer(S("Basic dXNlcjpwYXNz"), &t));
    CHECK(!arc_admin__bearer(S("Bearer"), &t));
    CHECK(!arc_admin__bearer(S("Bearer   "), &t));
    CHECK(!arc_admin__bearer(S("Bearerabc"), &t));
    CHECK(!arc_admin__bearer(S(""), &t));
}

static void test_longpoll_query(void)
{
    struct arc_longpoll_q q;
    const char *err = NULL;
    CHECK_INT(arc_admin__longpoll_query(S(""), &q, &err), 0);
    CHECK(!q.has_since);
    CHECK_INT(q.timeout_ms, 30000);
    CHECK_INT(arc_admin__longpoll_query(S("since=" FP "&timeout=5s"), &q, &err), 0);
    CHECK(q.has_since);
    CHECK_STR(q.since, FP);
    CHECK_INT(q.timeout_ms, 5000);
    /* upper case hex is lowered; a bare number is seconds; others ignored */
    CHECK_INT(arc_admin__longpoll_query(S("x=1&since=0123456789ABCDEF0123456789abcdef0123456789abcdef"
                                          "0123456789abcdef&timeout=7&&y"), &q, &err), 0);
    CHECK_STR(q.since, FP);
    CHECK_INT(q.timeout_ms, 7000);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=250ms"), &q, &err), 0);
    CHECK_INT(q.timeout_ms, 250);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=0"), &q, &err), 0);
    CHECK_INT(q.timeout_ms, 0);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=2m"), &q, &err), 0);
    CHECK_INT(q.timeout_ms, 120000);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=1h"), &q, &err), 0);   /* capped */
    CHECK_INT(q.timeout_ms, ARC_LONGPOLL_MAX_MS);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=999999"), &q, &err), 0);
    CHECK_INT(q.timeout_ms, ARC_LONGPOLL_MAX_MS);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=30%73"), &q, &err), 0); /* percent-decoded */
    CHECK_INT(q.timeout_ms, 30000);

    CHECK_INT(arc_admin__longpoll_query(S("since=abc"), &q, &err), -1);
    CHECK(strstr(err, "since") != NULL);
    CHECK_INT(arc_admin__longpoll_query(S("since=" FP "0"), &q, &err), -1);
    CHECK_INT(arc_admin__longpoll_query(S("since=g123456789abcdef0123456789abcdef0123456789abcdef"
                                          "0123456789abcdef"), &q, &err), -1);
    CHECK_INT(arc_admin__longpoll_query(S("since=" FP "&since=" FP), &q, &err), -1);
    CHECK_STR(err, "since: given twice");
    CHECK_INT(arc_admin__longpoll_query(S("since="), &q, &err), -1);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=soon"), &q, &err), -1);
    CHECK(strstr(err, "timeout") != NULL);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=-1s"), &q, &err), -1);
    CHECK_INT(arc_admin__longpoll_query(S("timeout="), &q, &err), -1);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=%"), &q, &err), -1);
    CHECK_INT(arc_admin__longpoll_query(S("timeout=1s&timeout=2s"), &q, &err), -1);
    CHECK_STR(err, "timeout: given twice");
}

static void test_etag_match(void)
{
    CHECK(arc_admin__etag_match(S("\"" FP "\""), FP));
    CHECK(arc_admin__etag_match(S("W/\"" FP "\""), FP));
    CHECK(arc_admin__etag_match(S("\"x\", \"" FP "\""), FP));
    CHECK(arc_admin__etag_match(S("*"), FP));
    CHECK(!arc_admin__etag_match(S(FP), FP));                   /* not a quoted tag */
    CHECK(!arc_admin__etag_match(S("\"" FP "0\""), FP));
    CHECK(!arc_admin__etag_match(S("\"x\""), FP));
    CHECK(!arc_admin__etag_match(S(""), FP));
    CHECK(!arc_admin__etag_match(S("\"unterminated"), FP));
}

static void test_loopback(void)
{
    struct sockaddr_in a4 = { .sin_family = AF_INET };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
    CHECK(arc_admin__is_loopback((struct sockaddr *)&a4));
    inet_pton(AF_INET, "127.9.8.7", &a4.sin_addr);
    CHECK(arc_admin__is_loopback((struct sockaddr *)&a4));
    inet_pton(AF_INET, "192.0.2.2", &a4.sin_addr);
    CHECK(!arc_admin__is_loopback((struct sockaddr *)&a4));
    inet_pton(AF_INET, "128.0.0.1", &a4.sin_addr);
    CHECK(!arc_admin__is_loopback((struct sockaddr *)&a4));
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    CHECK(arc_admin__is_loopback((struct sockaddr *)&a6));
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
    CHECK(arc_admin__is_loopback((struct sockaddr *)&a6));
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &a6.sin6_addr);
    CHECK(!arc_admin__is_loopback((struct sockaddr *)&a6));
    inet_pton(AF_INET6, "fd00::2", &a6.sin6_addr);
    CHECK(!arc_admin__is_loopback((struct sockaddr *)&a6));
}

static void test_body_format(void)
{
    struct arc_str ct = S("application/json");
    CHECK_STR(arc_admin__body_format(&ct, "x", 1), "json");
    ct = S("Application/YAML; charset=utf-8");
    CHECK_STR(arc_admin__body_format(&ct, "{}", 2), "yaml");
    ct = S("application/x-yaml");
    CHECK_STR(arc_admin__body_format(&ct, "", 0), "yaml");
    ct = S("application/toml");
    CHECK_STR(arc_admin__body_format(&ct, "", 0), "toml");
    CHECK_STR(arc_admin__body_format(NULL, "  \n{\"a\":1}", 10), "json");
    CHECK_STR(arc_admin__body_format(NULL, "a: 1", 4), "yaml");
    ct = S("application/octet-stream");
    CHECK_STR(arc_admin__body_format(&ct, "{", 1), "json");
    ct = S("application/x-www-form-urlencoded");
    CHECK(arc_admin__body_format(&ct, "a=1", 3) == NULL);
    ct = S("text/plain");
    CHECK(arc_admin__body_format(&ct, "a: 1", 4) == NULL);
}

int main(void)
{
    RUN(test_token_eq);
    RUN(test_bearer);
    RUN(test_longpoll_query);
    RUN(test_etag_match);
    RUN(test_loopback);
    RUN(test_body_format);
    return TEST_REPORT();
}
