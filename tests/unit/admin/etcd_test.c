/* Proves the etcd config source's pure parts: base64 both ways (every
 * padding case, bad input refused), the request bodies, range and watch
 * answers as etcd 3.4's JSON gateway writes them (int64 as strings, an
 * empty value left out, DELETE events, canceled and compacted watches,
 * error objects), and the response reader over Content-Length and chunked
 * bodies split at every byte boundary, handing out whole lines. */
#include "test.h"
#include "admin/admin_int.h"

#include <stdlib.h>
#include <string.h>

static void test_b64(void)
{
    const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (size_t i = 0; i < 7; i++) {
        char *e = arc_etcd__b64(in[i], strlen(in[i]));
        CHECK_STR(e, out[i]);
        size_t n = 99;
        char *d = arc_etcd__unb64(e, strlen(e), &n);
        CHECK(d != NULL);
        CHECK_INT(n, strlen(in[i]));
        CHECK(d && memcmp(d, in[i], n) == 0 && d[n] == '\0');
        free(e);
        free(d);
    }
    size_t n;
    CHECK(arc_etcd__unb64("Zm9", 3, &n) == NULL);          /* not a multiple of 4 */
    CHECK(arc_etcd__unb64("Zm*v", 4, &n) == NULL);         /* not the alphabet */
    /* binary with NULs survives */
    char bin[] = { 'a', 0, 'b', (char)0xff };
    char *e = arc_etcd__b64(bin, 4);
    char *d = arc_etcd__unb64(e, strlen(e), &n);
    CHECK_INT(n, 4);
    CHECK(d && memcmp(d, bin, 4) == 0);
    free(e);
    free(d);
}

static void test_bodies(void)
{
    char *k = arc_etcd__key("/arc/");
    CHECK_STR(k, "/arc/config");
    char *b = arc_etcd__range_body(k);
    CHECK_STR(b, "{\"key\":\"L2FyYy9jb25maWc=\"}");
    free(b);
    b = arc_etcd__watch_body(k, 42);
    CHECK_STR(b, "{\"create_request\":{\"key\":\"L2FyYy9jb25maWc=\",\"start_revision\":42}}");
    free(b);
    b = arc_etcd__put_body(k, "{}", 2);
    CHECK_STR(b, "{\"key\":\"L2FyYy9jb25maWc=\",\"value\":\"e30=\"}");
    free(b);
    free(k);
}

#define HDR "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"17\",\"raft_term\":\"2\"}"

static void test_parse_range(void)
{
    struct arc_etcd_value v;
    int64_t rev = 0;
    char err[160];
    const char *found = "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"3\","
                        "\"mod_revision\":\"15\",\"version\":\"4\",\"value\":\"YmFy\"}],\"count\":\"1\"}";
    CHECK_INT(arc_etcd__parse_range(found, strlen(found), &v, &rev, err, sizeof(err)), 1);
    CHECK_INT(rev, 17);
    CHECK_INT(v.mod_revision, 15);
    CHECK_STR(v.text, "bar");
    free(v.text);
    const char *none = "{" HDR "}";
    CHECK_INT(arc_etcd__parse_range(none, strlen(none), &v, &rev, err, sizeof(err)), 0);
    CHECK(v.text == NULL);
    /* an empty value is left out by the gateway */
    const char *empty = "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"mod_revision\":\"9\"}]}";
    CHECK_INT(arc_etcd__parse_range(empty, strlen(empty), &v, &rev, err, sizeof(err)), 1);
    CHECK_INT(v.len, 0);
    free(v.text);
    CHECK_INT(arc_etcd__parse_range("nope", 4, &v, &rev, err, sizeof(err)), -1);
    const char *badv = "{" HDR ",\"kvs\":[{\"value\":\"%%%%\"}]}";
    CHECK_INT(arc_etcd__parse_range(badv, strlen(badv), &v, &rev, err, sizeof(err)), -1);
}

static void test_parse_watch(void)
{
    struct arc_etcd_event ev;
    char err[200];
    const char *created = "{\"result\":{" HDR ",\"created\":true}}";
    CHECK_INT(arc_etcd__parse_watch(created, strlen(created), &ev, err, sizeof(err)), 0);
    CHECK(ev.created && !ev.has_value && !ev.deleted);
    CHECK_INT(ev.revision, 17);
    const char *put = "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":"
                      "\"16\",\"value\":\"b2xk\"}},{\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":\"17\","
                      "\"value\":\"bmV3\"}}]}}";
    CHECK_INT(arc_etcd__parse_watch(put, strlen(put), &ev, err, sizeof(err)), 0);
    CHECK(ev.has_value && !ev.deleted);
    CHECK_STR(ev.value.text, "new");              /* the last event wins */
    CHECK_INT(ev.value.mod_revision, 17);
    free(ev.value.text);
    const char *del = "{\"result\":{" HDR ",\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":"
                      "\"Zm9v\",\"mod_revision\":\"18\"}}]}}";
    CHECK_INT(arc_etcd__parse_watch(del, strlen(del), &ev, err, sizeof(err)), 0);
    CHECK(ev.deleted && !ev.has_value);
    CHECK_INT(ev.value.mod_revision, 18);
    const char *cmp = "{\"result\":{" HDR ",\"compact_revision\":\"12\",\"canceled\":true}}";
    CHECK_INT(arc_etcd__parse_watch(cmp, strlen(cmp), &ev, err, sizeof(err)), -1);
    CHECK(strstr(err, "compacted") != NULL);
    const char *er = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}";
    CHECK_INT(arc_etcd__parse_watch(er, strlen(er), &ev, err, sizeof(err)), -1);
    CHECK_STR(err, "watch: etcdserver: no leader");
    CHECK_INT(arc_etcd__parse_watch("[1]", 3, &ev, err, sizeof(err)), -1);
}

/* Feeds `resp` split at `cut` (and whole), collecting lines. */
static void feed_split(const char *resp, size_t cut, const char *want_body, int want_status)
{
    struct arc_etcd_reader r = { 0 };
    arc_etcd__reader_init(&r);
    char err[160];
    size_t n = strlen(resp);
    int rc = arc_etcd__reader_feed(&r, resp, cut, err, sizeof(err));
    if (rc == 0)
        rc = arc_etcd__reader_feed(&r, resp + cut, n - cut, err, sizeof(err));
    CHECK_INT(rc, 1);
    CHECK_INT(r.status, want_status);
    CHECK_INT(r.body.len, strlen(want_body));
    CHECK(r.body.len == strlen(want_body) && memcmp(r.body.p, want_body, r.body.len) == 0);
    arc_etcd__reader_dispose(&r);
}

static void test_reader(void)
{
    const char *cl = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
                     "\r\n{\"a\":\"bc\"}\n";
    const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "6\r\n{\"a\":1\r\n3\r\n}\n{\r\n4\r\n\"b\":\r\n3\r\n2}\n\r\n0\r\n\r\n";
    for (size_t cut = 0; cut <= strlen(cl); cut++)
        feed_split(cl, cut, "{\"a\":\"bc\"}\n", 200);
    for (size_t cut = 0; cut <= strlen(ch); cut++)
        feed_split(ch, cut, "{\"a\":1}\n{\"b\":2}\n", 200);

    /* a watch: lines come out as they complete, the rest waits */
    struct arc_etcd_reader r = { 0 };
    arc_etcd__reader_init(&r);
    char err[160], *line;
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"x\":\r\n";
    CHECK_INT(arc_etcd__reader_feed(&r, head, strlen(head), err, sizeof(err)), 0);
    CHECK_INT(arc_etcd__reader_line(&r, &line), 0);
    const char *more = "4\r\n1}\n{\r\n";
    CHECK_INT(arc_etcd__reader_feed(&r, more, strlen(more), err, sizeof(err)), 0);
    size_t n = arc_etcd__reader_line(&r, &line);
    CHECK_INT(n, 8);
    CHECK(n == 8 && memcmp(line, "{\"x\":1}\n", 8) == 0);
    CHECK_INT(arc_etcd__reader_line(&r, &line), 0);
    arc_etcd__reader_compact(&r);
    CHECK_INT(r.body.len, 1);
    arc_etcd__reader_dispose(&r);

    /* errors: a broken head, broken chunk framing */
    arc_etcd__reader_init(&r);
    CHECK_INT(arc_etcd__reader_feed(&r, "HTTP/1.1 2x0 OK\r\n\r\n", 19, err, sizeof(err)), -1);
    arc_etcd__reader_dispose(&r);
    arc_etcd__reader_init(&r);
    const char *bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    CHECK_INT(arc_etcd__reader_feed(&r, bad, strlen(bad), err, sizeof(err)), -1);
    arc_etcd__reader_dispose(&r);
    /* a 404 with a body is read like any answer */
    feed_split("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n", 10, "no\n", 404);
}

int main(void)
{
    RUN(test_b64);
    RUN(test_bodies);
    RUN(test_parse_range);
    RUN(test_parse_watch);
    RUN(test_reader);
    return TEST_REPORT();
}
