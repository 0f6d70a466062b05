/* Proves the HTTP/1 head parser accepts well-formed requests and responses
 * with the right views, framing and flags, and rejects every smuggling and
 * framing vector its header lists, each with a reason, however the bytes
 * arrive. Also covers the helpers in util.c. */
#include "test.h"
#include "http1/http1.h"

#define NH 64

static struct arc_h1_header H[NH];
static struct arc_h1_request R;
static struct arc_h1_response S;
static const struct arc_h1_limits LIM = { 8192, 50, 2048 };

static enum arc_h1_status req(const char *s)
{
    return arc_h1_parse_request(s, strlen(s), &LIM, H, NH, &R);
}

static enum arc_h1_status resp(const char *s, bool head, bool connect)
{
    return arc_h1_parse_response(s, strlen(s), &LIM, head, connect, H, NH, &S);
}

/* Every rejection must name its reason. */
#define REQ_IS(s, st) do { CHECK_INT(req(s), st); CHECK(R.err != NULL); } while (0)
#define REQ_BAD(s) REQ_IS(s, ARC_H1_BAD)
#define RESP_BAD(s) do { CHECK_INT(resp(s, false, false), ARC_H1_BAD); \
    CHECK(S.err != NULL); } while (0)

#define V(view, s) CHECK_VIEW((view).p, (view).len, s)

/* ------------------------------------------------------------ valid requests */

static void test_get(void)
{
    const char *s = "GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com\r\n"
                    "User-Agent:  curl/8 \t\r\nX-Empty:\r\nACCEPT: */*\r\n\r\n";
    CHECK_INT(req(s), ARC_H1_OK);
    CHECK(R.err == NULL);
    V(R.method, "GET");
    V(R.target, "/a/b?x=1&y");
    V(R.path, "/a/b");
    V(R.query, "x=1&y");
    V(R.host, "example.com");
    CHECK_INT(R.minor, 1);
    CHECK_INT(R.n_headers, 4);
    CHECK(R.headers == H);
    V(H[1].name, "User-Agent");
    V(H[1].value, "curl/8");
    V(H[2].name, "X-Empty");
    V(H[2].value, "");
    V(H[3].name, "ACCEPT"); /* case preserved */
    CHECK_INT(R.head_len, strlen(s));
    CHECK_INT(R.body, ARC_H1_BODY_NONE);
    CHECK_INT(R.flags, ARC_H1_F_KEEP_ALIVE);
}

static void test_value_chars(void)
{
    /* HTAB inside a value and obs-text are field-content; long values go
     * through the 16-byte scanner, so test one past several blocks. */
    CHECK_INT(req("GET / HTTP/1.1\r\nHost: h\r\nX: a\tb \xc3\xa9\r\n"
                  "Cookie: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\tbbbbbbbbbbbbbbbbbbbbbbbbbbbb;c\r\n\r\n"),
              ARC_H1_OK);
    V(H[1].value, "a\tb \xc3\xa9");
    CHECK_INT(H[2].value.len, 58 + 1 + 28 + 2);
    /* A control byte deep inside a long value must still be found. */
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x01" "aaaa\r\n\r\n");
    REQ_BAD("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x7f HTTP/1.1\r\nHost: h\r\n\r\n");
}

static void test_post_content_length(void)
{
    const char *s = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
    CHECK_INT(req(s), ARC_H1_OK);
    CHECK_INT(R.body, ARC_H1_BODY_LENGTH);
    CHECK_INT(R.content_length, 11);
    CHECK_INT(R.head_len, strlen(s) - 11);
    CHECK_INT(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.body, ARC_H1_BODY_LENGTH);
    CHECK_INT(R.content_length, 0);
    /* The largest accepted value, and leading zeros. */
    CHECK_INT(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n"),
              ARC_H1_OK);
    CHECK(R.content_length == 9223372036854775807ull);
    CHECK_INT(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.content_length, 7);
}

static void test_content_length_repeated_same(void)
{
    CHECK_INT(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.content_length, 5);
    CHECK_INT(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
              ARC_H1_OK);
    CHECK_INT(R.body, ARC_H1_BODY_LENGTH);
    CHECK_INT(R.content_length, 5);
}

static void test_chunked(void)
{
    CHECK_INT(req("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.body, ARC_H1_BODY_CHUNKED);
    CHECK(R.flags & ARC_H1_F_HAS_TE);
    CHECK_INT(req("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tChunKed \r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.body, ARC_H1_BODY_CHUNKED);
}

static void test_pipelined(void)
{
    const char *a = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *b = "GET /two HTTP/1.1\r\nHost: h\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof(buf), "%s%s", a, b);
    CHECK_INT(arc_h1_parse_request(buf, strlen(buf), &LIM, H, NH, &R), ARC_H1_OK);
    CHECK_INT(R.head_len, strlen(a));
    V(R.path, "/one");
    const char *next = buf + R.head_len;
    CHECK_INT(arc_h1_parse_request(next, strlen(next), &LIM, H, NH, &R), ARC_H1_OK);
    CHECK_INT(R.head_len, strlen(b));
    V(R.path, "/two");
    /* Partial second request after a complete first one is not our concern. */
    CHECK_INT(arc_h1_parse_request(buf, strlen(a) + 5, &LIM, H, NH, &R), ARC_H1_OK);
    CHECK_INT(R.head_len, strlen(a));
}

static void test_absolute_form(void)
{
    CHECK_INT(req("GET http://Example.com:8080/p/q?z HTTP/1.1\r\nHost: other\r\n\r\n"),
              ARC_H1_OK);
    V(R.host, "Example.com:8080"); /* the target's authority wins over Host */
    V(R.path, "/p/q");
    V(R.query, "z");
    CHECK_INT(req("GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n"), ARC_H1_OK);
    V(R.host, "h");
    V(R.path, "/");
    V(R.query, "");
    CHECK_INT(req("GET http://[::1]:80?a=b HTTP/1.1\r\nHost: h\r\n\r\n"), ARC_H1_OK);
    V(R.host, "[::1]:80");
    V(R.path, "/");
    V(R.query, "a=b");
}

static void test_absolute_form_bad(void)
{
    REQ_BAD("GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n"); /* userinfo */
    REQ_BAD("GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n");      /* empty host */
    REQ_BAD("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET http:/h/ HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET http://h:x/ HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET http://[::1/ HTTP/1.1\r\nHost: h\r\n\r\n");
}

static void test_http10_keepalive(void)
{
    CHECK_INT(req("GET / HTTP/1.0\r\n\r\n"), ARC_H1_OK); /* Host optional in 1.0 */
    CHECK_INT(R.minor, 0);
    CHECK_INT(R.flags & ARC_H1_F_KEEP_ALIVE, 0);
    CHECK_INT(R.host.len, 0);
    CHECK_INT(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), ARC_H1_OK);
    CHECK(R.flags & ARC_H1_F_KEEP_ALIVE);
    CHECK_INT(req("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.flags & ARC_H1_F_KEEP_ALIVE, 0);
    CHECK(R.flags & ARC_H1_F_CONN_CLOSE);
    CHECK_INT(req("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.flags, ARC_H1_F_CONN_CLOSE);
    /* Connection tokens may be spread over several fields. */
    CHECK_INT(req("GET / HTTP/1.0\r\nConnection: x\r\nConnection: keep-alive\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.flags, ARC_H1_F_KEEP_ALIVE);
    /* A higher 1.x minor is processed as 1.1 (RFC 9110 §2.5). */
    CHECK_INT(req("GET / HTTP/1.7\r\nHost: h\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.minor, 1);
}

static void test_options_asterisk(void)
{
    CHECK_INT(req("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), ARC_H1_OK);
    V(R.path, "*");
    V(R.target, "*");
    REQ_BAD("GET * HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n");
}

static void test_connect(void)
{
    CHECK_INT(req("CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n"),
              ARC_H1_OK);
    V(R.host, "db.internal:5432");
    V(R.path, "");
    CHECK_INT(R.body, ARC_H1_BODY_NONE);
    CHECK_INT(req("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n"), ARC_H1_OK);
    V(R.host, "[2001:db8::1]:443");
    REQ_BAD("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n");   /* port is mandatory */
    REQ_BAD("CONNECT h: HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("CONNECT http://h:1/ HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n");   /* authority-form needs CONNECT */
}

static void test_expect_upgrade(void)
{
    CHECK_INT(req("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"),
              ARC_H1_OK);
    CHECK(R.flags & ARC_H1_F_EXPECT_100);
    CHECK_INT(req("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.flags & ARC_H1_F_EXPECT_100, 0); /* ignored in 1.0 */
    CHECK_INT(req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                  "Upgrade: websocket\r\n\r\n"), ARC_H1_OK);
    CHECK(R.flags & ARC_H1_F_UPGRADE);
    CHECK_INT(req("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.flags & ARC_H1_F_UPGRADE, 0);
    CHECK_INT(req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n"), ARC_H1_OK);
    CHECK_INT(R.flags & ARC_H1_F_UPGRADE, 0);
}

static void test_leading_crlf(void)
{
    const char *s = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_INT(req(s), ARC_H1_OK);
    CHECK_INT(R.head_len, strlen(s)); /* the ignored line is consumed too */
    V(R.method, "GET");
}

static void test_host_values(void)
{
    CHECK_INT(req("GET / HTTP/1.1\r\nHost:\r\n\r\n"), ARC_H1_OK); /* empty is allowed */
    CHECK_INT(R.host.len, 0);
    CHECK_INT(req("GET / HTTP/1.1\r\nHost: h.example:8443\r\n\r\n"), ARC_H1_OK);
    V(R.host, "h.example:8443");
    REQ_BAD("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h:80:80\r\n\r\n");
}

static void test_default_limits(void)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_INT(arc_h1_parse_request(s, strlen(s), NULL, H, NH, &R), ARC_H1_OK);
    struct arc_h1_limits zero = { 0, 0, 0 };
    CHECK_INT(arc_h1_parse_request(s, strlen(s), &zero, H, NH, &R), ARC_H1_OK);
}

/* ------------------------------------------- smuggling and framing vectors */

static void test_bare_cr(void)
{
    REQ_BAD("GET / HTTP/1.1\rHost: h\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nX: a\rb\r\nHost: h\r\n\r\n");
}

static void test_bare_lf(void)
{
    REQ_BAD("GET / HTTP/1.1\nHost: h\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\n\n");
    REQ_BAD("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nX: a\nTransfer-Encoding: chunked\r\nHost: h\r\n\r\n");
}

static void test_nul_and_controls(void)
{
    static const char nul_value[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
    CHECK_INT(arc_h1_parse_request(nul_value, sizeof(nul_value) - 1, &LIM, H, NH, &R), ARC_H1_BAD);
    CHECK(R.err != NULL);
    static const char nul_target[] = "GET /a\0 HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_INT(arc_h1_parse_request(nul_target, sizeof(nul_target) - 1, &LIM, H, NH, &R), ARC_H1_BAD);
    CHECK(R.err != NULL);
    static const char nul_name[] = "GET / HTTP/1.1\r\nHo\0st: h\r\n\r\n";
    CHECK_INT(arc_h1_parse_request(nul_name, sizeof(nul_name) - 1, &LIM, H, NH, &R), ARC_H1_BAD);
    CHECK(R.err != NULL);
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX: a\x0b" "b\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[31m\r\n\r\n");
    REQ_BAD("GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n");  /* non-ASCII target */
    REQ_BAD("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n");   /* fragment */
}

static void test_obs_fold(void)
{
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n , chunked\r\n\r\n");
    /* Whitespace between the start line and the first field (§2.2). */
    REQ_BAD("GET / HTTP/1.1\r\n Host: h\r\n\r\n");
}

static void test_invalid_token_chars(void)
{
    REQ_BAD("G(ET / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GE\xc3T / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD(" GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX(y): z\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX y: z\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nX\"y: z\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\n: z\r\n\r\n");     /* empty name */
    REQ_BAD("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n");
}

static void test_space_before_colon(void)
{
    REQ_BAD("GET / HTTP/1.1\r\nHost : h\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n");
}

static void test_request_line_whitespace(void)
{
    REQ_BAD("GET  / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET /  HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1 \r\nHost: h\r\n\r\n");
    REQ_BAD("GET /\r\nHost: h\r\n\r\n");           /* HTTP/0.9 style */
    REQ_BAD("GET / http/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET / HTTP/1.10\r\nHost: h\r\n\r\n");
    REQ_BAD("GET / HTTP/1\r\nHost: h\r\n\r\n");
}

static void test_bad_version(void)
{
    REQ_IS("GET / HTTP/2.0\r\nHost: h\r\n\r\n", ARC_H1_BAD_VERSION);
    REQ_IS("GET / HTTP/3.0\r\nHost: h\r\n\r\n", ARC_H1_BAD_VERSION);
    REQ_IS("GET / HTTP/0.9\r\nHost: h\r\n\r\n", ARC_H1_BAD_VERSION);
    /* Known as soon as the version is, before the head completes. */
    REQ_IS("GET / HTTP/2.0\r\n", ARC_H1_BAD_VERSION);
}

static void test_missing_host(void)
{
    REQ_BAD("GET / HTTP/1.1\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nX-Host: h\r\n\r\n");
    REQ_BAD("GET http://h/ HTTP/1.1\r\n\r\n"); /* required even with absolute-form */
}

static void test_duplicate_host(void)
{
    REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n");
    REQ_BAD("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
}

static void test_content_length_invalid(void)
{
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5.0\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ,5\r\n\r\n");
}

static void test_content_length_overflow(void)
{
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\n");
}

static void test_content_length_conflict(void)
{
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5, 0\r\n\r\n");
}

static void test_cl_and_te(void)
{
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n");
    /* CL+TE wins over the 501 a lone gzip would get. */
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n");
}

static void test_te_not_final_chunked(void)
{
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n");
}

static void test_te_chunked_twice(void)
{
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
}

static void test_te_unsupported_or_unknown(void)
{
    /* Well-formed lists of known codings we do not decode: 501. */
    REQ_IS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", ARC_H1_NOT_IMPLEMENTED);
    REQ_IS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
           ARC_H1_NOT_IMPLEMENTED);
    REQ_IS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n",
           ARC_H1_NOT_IMPLEMENTED);
    /* Anything else is malformed or unknown: 400. */
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked chunked\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n");
    REQ_BAD("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \xe7hunked\r\n\r\n");
}

static void test_te_http10(void)
{
    REQ_BAD("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    REQ_BAD("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
}

static void test_extra_leading_empty_lines(void)
{
    REQ_BAD("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("\r\n\r\n");
}

static void test_bad_target_forms(void)
{
    REQ_BAD("GET foo HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET http//h/ HTTP/1.1\r\nHost: h\r\n\r\n");
    REQ_BAD("GET ?a HTTP/1.1\r\nHost: h\r\n\r\n");
}

/* ------------------------------------------------------------------ limits */

static void test_limit_uri(void)
{
    struct arc_h1_limits l = { 8192, 50, 16 };
    const char *ok = "GET /123456789abcdef HTTP/1.1\r\nHost: h\r\n\r\n"; /* 16 bytes */
    CHECK_INT(arc_h1_parse_request(ok, strlen(ok), &l, H, NH, &R), ARC_H1_OK);
    const char *big = "GET /123456789abcdefg HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_INT(arc_h1_parse_request(big, strlen(big), &l, H, NH, &R), ARC_H1_URI_TOO_LONG);
    CHECK(R.err != NULL);
    /* Reported as soon as it is known, on an incomplete head. */
    CHECK_INT(arc_h1_parse_request(big, 21, &l, H, NH, &R), ARC_H1_URI_TOO_LONG);
    CHECK_INT(arc_h1_parse_request(big, 20, &l, H, NH, &R), ARC_H1_INCOMPLETE);
}

static void test_limit_header_count(void)
{
    struct arc_h1_limits l = { 8192, 3, 1024 };
    const char *three = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    const char *four = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK_INT(arc_h1_parse_request(three, strlen(three), &l, H, NH, &R), ARC_H1_OK);
    CHECK_INT(arc_h1_parse_request(four, strlen(four), &l, H, NH, &R), ARC_H1_HEADERS_TOO_LARGE);
    CHECK(R.err != NULL);
    /* The caller's array is a limit too. */
    CHECK_INT(arc_h1_parse_request(four, strlen(four), &LIM, H, 3, &R), ARC_H1_HEADERS_TOO_LARGE);
    CHECK_INT(arc_h1_parse_request(four, strlen(four), &LIM, NULL, 0, &R), ARC_H1_HEADERS_TOO_LARGE);
    CHECK_INT(arc_h1_parse_request("GET / HTTP/1.0\r\n\r\n", 18, &LIM, NULL, 0, &R), ARC_H1_OK);
}

static void test_limit_header_bytes(void)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789\r\n\r\n";
    size_t n = strlen(s);
    struct arc_h1_limits exact = { (uint32_t)n, 50, 1024 };
    struct arc_h1_limits small = { (uint32_t)n - 1, 50, 1024 };
    CHECK_INT(arc_h1_parse_request(s, n, &exact, H, NH, &R), ARC_H1_OK);
    CHECK_INT(arc_h1_parse_request(s, n, &small, H, NH, &R), ARC_H1_HEADERS_TOO_LARGE);
    CHECK(R.err != NULL);
    /* An incomplete head that already fills the limit fails without more. */
    CHECK_INT(arc_h1_parse_request(s, n - 1, &small, H, NH, &R), ARC_H1_HEADERS_TOO_LARGE);
    CHECK_INT(arc_h1_parse_request(s, n - 2, &small, H, NH, &R), ARC_H1_INCOMPLETE);
    /* Body bytes after a head within the limit do not count. */
    char buf[256];
    snprintf(buf, sizeof(buf), "%sbodybodybody", s);
    CHECK_INT(arc_h1_parse_request(buf, strlen(buf), &exact, H, NH, &R), ARC_H1_OK);
    CHECK_INT(R.head_len, n);
}

/* -------------------------------------------------------------- incremental */

/* Every proper prefix must be INCOMPLETE and the whole OK. Each prefix is
 * an exact-size heap copy so ASan catches any read past the given length. */
static void feed_bytewise(const char *s)
{
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(k ? k : 1);
        memcpy(copy, s, k);
        enum arc_h1_status st = arc_h1_parse_request(copy, k, &LIM, H, NH, &R);
        free(copy);
        if (st != ARC_H1_INCOMPLETE) {
            fprintf(stderr, "prefix %zu of %s: status %d\n", k, s, (int)st);
            CHECK_INT(st, ARC_H1_INCOMPLETE);
            return;
        }
        CHECK(R.err == NULL);
    }
    CHECK_INT(arc_h1_parse_request(s, n, &LIM, H, NH, &R), ARC_H1_OK);
    CHECK_INT(R.head_len, n);
}

static void test_incremental(void)
{
    feed_bytewise("GET /a?b HTTP/1.1\r\nHost: h\r\nX:  y  \r\n\r\n");
    feed_bytewise("\r\nPOST http://h:1/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    feed_bytewise("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n");
    feed_bytewise("OPTIONS * HTTP/1.0\r\n\r\n");
    /* A bad byte is reported as soon as it arrives. */
    const char *bad = "GET / HTTP/1.1\r\nHost: h\r\nX y: z\r\n\r\n";
    CHECK_INT(arc_h1_parse_request(bad, 26, &LIM, H, NH, &R), ARC_H1_INCOMPLETE);
    CHECK_INT(arc_h1_parse_request(bad, 27, &LIM, H, NH, &R), ARC_H1_BAD);
}

static void test_incremental_response(void)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++)
        CHECK_INT(arc_h1_parse_response(s, k, &LIM, false, false, H, NH, &S), ARC_H1_INCOMPLETE);
    CHECK_INT(arc_h1_parse_response(s, n, &LIM, false, false, H, NH, &S), ARC_H1_OK);
    CHECK_INT(S.head_len, n);
}

/* ---------------------------------------------------------------- responses */

static void test_response_length(void)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nhello world!";
    CHECK_INT(resp(s, false, false), ARC_H1_OK);
    CHECK_INT(S.status, 200);
    V(S.reason, "OK");
    CHECK_INT(S.minor, 1);
    CHECK_INT(S.n_headers, 2);
    CHECK_INT(S.body, ARC_H1_BODY_LENGTH);
    CHECK_INT(S.content_length, 12);
    CHECK_INT(S.head_len, strlen(s) - 12);
    CHECK_INT(S.flags, ARC_H1_F_KEEP_ALIVE);
}

static void test_response_chunked(void)
{
    CHECK_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_CHUNKED);
    CHECK(S.flags & ARC_H1_F_HAS_TE);
    CHECK(S.flags & ARC_H1_F_KEEP_ALIVE);
}

static void test_response_close_delimited(void)
{
    CHECK_INT(resp("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_CLOSE);
    CHECK_INT(S.flags & ARC_H1_F_KEEP_ALIVE, 0);
    CHECK_INT(resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_CLOSE);
    CHECK_INT(S.flags & ARC_H1_F_KEEP_ALIVE, 0);
}

static void test_response_no_body(void)
{
    static const int codes[] = { 100, 102, 103, 204, 304 };
    char buf[128];
    for (size_t i = 0; i < ARC_ARRAY_LEN(codes); i++) {
        snprintf(buf, sizeof(buf), "HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n", codes[i]);
        CHECK_INT(resp(buf, false, false), ARC_H1_OK);
        CHECK_INT(S.status, codes[i]);
        CHECK_INT(S.body, ARC_H1_BODY_NONE);
        CHECK(S.flags & ARC_H1_F_KEEP_ALIVE);
    }
    /* HEAD: CL describes the GET body that is not sent; same for chunked. */
    CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, false), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_NONE);
    CHECK_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, false), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_NONE);
    CHECK_INT(resp("HTTP/1.1 404 Not Found\r\n\r\n", true, false), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_NONE);
    CHECK(S.flags & ARC_H1_F_KEEP_ALIVE);
}

static void test_response_connect(void)
{
    CHECK_INT(resp("HTTP/1.1 200 Connection Established\r\n\r\n", false, true), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_NONE);
    /* CL/TE in a 2xx to CONNECT are ignored, even together. */
    CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                   false, true), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_NONE);
    /* A failed CONNECT has an ordinary body. */
    CHECK_INT(resp("HTTP/1.1 407 Auth\r\nContent-Length: 5\r\n\r\n", false, true), ARC_H1_OK);
    CHECK_INT(S.body, ARC_H1_BODY_LENGTH);
}

static void test_response_upgrade(void)
{
    CHECK_INT(resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\n\r\n", false, false), ARC_H1_OK);
    CHECK(S.flags & ARC_H1_F_UPGRADE);
    CHECK_INT(S.body, ARC_H1_BODY_NONE);
    CHECK_INT(resp("HTTP/1.1 101 Switching Protocols\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.flags & ARC_H1_F_UPGRADE, 0);
    CHECK_INT(resp("HTTP/1.1 426 Upgrade Required\r\nUpgrade: h2c\r\nConnection: upgrade\r\n"
                   "Content-Length: 0\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.flags & ARC_H1_F_UPGRADE, 0);
}

static void test_response_status_line(void)
{
    CHECK_INT(resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.reason.len, 0);
    CHECK_INT(resp("HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.status, 599);
    CHECK_INT(resp("HTTP/1.1 500 Oops \tand\xff\r\nContent-Length: 0\r\n\r\n", false, false),
              ARC_H1_OK);
    V(S.reason, "Oops \tand\xff");
    RESP_BAD("HTTP/1.1 20 OK\r\n\r\n");
    RESP_BAD("HTTP/1.1 2000 OK\r\n\r\n");
    RESP_BAD("HTTP/1.1 099 OK\r\n\r\n");
    RESP_BAD("HTTP/1.1 abc OK\r\n\r\n");
    RESP_BAD("HTTP/1.1  200 OK\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 O\rK\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\n\r\n");
    RESP_BAD("HTTP/1.1 200 O\x01K\r\n\r\n");
    RESP_BAD("HTTP/2 200 OK\r\n\r\n");
    RESP_BAD("HTTP/2.0 200 OK\r\n\r\n");
    RESP_BAD("\r\nHTTP/1.1 200 OK\r\n\r\n");
    RESP_BAD("ICY 200 OK\r\n\r\n");
}

static void test_response_framing_bad(void)
{
    RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    RESP_BAD("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nX : a\r\n\r\n");
    RESP_BAD("HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n");
    CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.content_length, 5);
}

static void test_response_keepalive(void)
{
    CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false, false),
              ARC_H1_OK);
    CHECK_INT(S.flags, ARC_H1_F_CONN_CLOSE);
    CHECK_INT(resp("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, false), ARC_H1_OK);
    CHECK_INT(S.flags & ARC_H1_F_KEEP_ALIVE, 0);
    CHECK_INT(resp("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
                   false, false), ARC_H1_OK);
    CHECK(S.flags & ARC_H1_F_KEEP_ALIVE);
}

static void test_response_limits(void)
{
    struct arc_h1_limits l = { 32, 2, 0 };
    const char *s = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK_INT(arc_h1_parse_response(s, strlen(s), &l, false, false, H, NH, &S),
              ARC_H1_HEADERS_TOO_LARGE);
    CHECK(S.err != NULL);
    l.max_headers = 10;
    CHECK_INT(arc_h1_parse_response(s, strlen(s), &l, false, false, H, NH, &S),
              ARC_H1_HEADERS_TOO_LARGE);
}

/* ------------------------------------------------------------------ helpers */

static void test_hop_by_hop(void)
{
    static const char *const yes[] = { "Connection", "keep-alive", "PROXY-CONNECTION", "te",
                                       "Trailer", "transfer-encoding", "Upgrade" };
    static const char *const no[] = { "Content-Length", "Host", "Trailers", "T", "Upgrade-Insecure-Requests",
                                      "Keep-Alivex", "" };
    for (size_t i = 0; i < ARC_ARRAY_LEN(yes); i++)
        CHECK(arc_h1_is_hop_by_hop(arc_str_make(yes[i], strlen(yes[i]))));
    for (size_t i = 0; i < ARC_ARRAY_LEN(no); i++)
        CHECK(!arc_h1_is_hop_by_hop(arc_str_make(no[i], strlen(no[i]))));
}

static void test_list_has(void)
{
    CHECK(arc_h1_list_has(ARC_STR_LIT("keep-alive, Upgrade"), "upgrade", 7));
    CHECK(arc_h1_list_has(ARC_STR_LIT(" close "), "close", 5));
    CHECK(arc_h1_list_has(ARC_STR_LIT("a,,\tclose\t,b"), "close", 5));
    CHECK(!arc_h1_list_has(ARC_STR_LIT("closed"), "close", 5));
    CHECK(!arc_h1_list_has(ARC_STR_LIT("x close"), "close", 5));
    CHECK(!arc_h1_list_has(ARC_STR_LIT(""), "close", 5));
    CHECK(!arc_h1_list_has(arc_str_make(NULL, 0), "close", 5));
    CHECK(arc_h1_list_has(ARC_STR_LIT(","), "", 0)); /* empty elements exist */
}

static void test_reason(void)
{
    CHECK_STR(arc_h1_reason(200), "OK");
    CHECK_STR(arc_h1_reason(404), "Not Found");
    CHECK_STR(arc_h1_reason(431), "Request Header Fields Too Large");
    CHECK_STR(arc_h1_reason(502), "Bad Gateway");
    CHECK_STR(arc_h1_reason(505), "HTTP Version Not Supported");
    CHECK_STR(arc_h1_reason(299), "Unknown");
    CHECK_STR(arc_h1_reason(-1), "Unknown");
}

int main(void)
{
    RUN(test_get);
    RUN(test_value_chars);
    RUN(test_post_content_length);
    RUN(test_content_length_repeated_same);
    RUN(test_chunked);
    RUN(test_pipelined);
    RUN(test_absolute_form);
    RUN(test_absolute_form_bad);
    RUN(test_http10_keepalive);
    RUN(test_options_asterisk);
    RUN(test_connect);
    RUN(test_expect_upgrade);
    RUN(test_leading_crlf);
    RUN(test_host_values);
    RUN(test_default_limits);

    RUN(test_bare_cr);
    RUN(test_bare_lf);
    RUN(test_nul_and_controls);
    RUN(test_obs_fold);
    RUN(test_invalid_token_chars);
    RUN(test_space_before_colon);
    RUN(test_request_line_whitespace);
    RUN(test_bad_version);
    RUN(test_missing_host);
    RUN(test_duplicate_host);
    RUN(test_content_length_invalid);
    RUN(test_content_length_overflow);
    RUN(test_content_length_conflict);
    RUN(test_cl_and_te);
    RUN(test_te_not_final_chunked);
    RUN(test_te_chunked_twice);
    RUN(test_te_unsupported_or_unknown);
    RUN(test_te_http10);
    RUN(test_extra_leading_empty_lines);
    RUN(test_bad_target_forms);

    RUN(test_limit_uri);
    RUN(test_limit_header_count);
    RUN(test_limit_header_bytes);

    RUN(test_incremental);
    RUN(test_incremental_response);

    RUN(test_response_length);
    RUN(test_response_chunked);
    RUN(test_response_close_delimited);
    RUN(test_response_no_body);
    RUN(test_response_connect);
    RUN(test_response_upgrade);
    RUN(test_response_status_line);
    RUN(test_response_framing_bad);
    RUN(test_response_keepalive);
    RUN(test_response_limits);

    RUN(test_hop_by_hop);
    RUN(test_list_has);
    RUN(test_reason);
    return TEST_REPORT();
}
