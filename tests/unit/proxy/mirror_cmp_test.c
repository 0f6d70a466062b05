/*
 * mirror compare (src/proxy/mirror_cmp.c): the body digest does not depend
 * on how the bytes were split; a one-byte change changes it; the shadow's
 * reader takes Content-Length, chunked and close-delimited answers, skips
 * 1xx heads and refuses an over-long head; the comparison honours the
 * field filter (Date and framing always ignored, ignore list, listed only).
 */
#include "test.h"
#include "proxy/mirror_int.h"

#include <stdlib.h>
#include <string.h>

static uint64_t digest_split(const char *p, size_t n, size_t step)
{
    struct arc_mc_digest d;
    arc_mc__dg_init(&d);
    for (size_t o = 0; o < n; o += step)
        arc_mc__dg_update(&d, p + o, n - o < step ? n - o : step);
    return arc_mc__dg_final(&d);
}

static void test_digest(void)
{
    char buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)(i * 7 + 3);
    uint64_t whole = digest_split(buf, sizeof(buf), sizeof(buf));
    for (size_t step = 1; step < 20; step++)
        CHECK(digest_split(buf, sizeof(buf), step) == whole);
    CHECK(digest_split(buf, 999, 999) != whole);        /* shorter */
    for (size_t i = 0; i < sizeof(buf); i += 97) {
        buf[i] ^= 1;
        CHECK(digest_split(buf, sizeof(buf), 13) != whole);
        buf[i] ^= 1;
    }
    CHECK(digest_split("", 0, 1) != digest_split("\0", 1, 1));
}

static struct arc_mc_job *job(void)
{
    struct arc_mc_job *j = calloc(1, sizeof(*j));
    j->fields = ARC_MCF_ALL;
    j->body = true;
    return j;
}

/* Feeds `s` to a fresh reader `step` bytes at a time; returns the last rc. */
static int read_all(struct arc_mc_reader *r, const struct arc_mc_job *j, const char *s,
                    size_t step, bool eof)
{
    memset(r, 0, sizeof(*r));
    int rc = 0;
    size_t n = strlen(s);
    for (size_t o = 0; o < n && rc == 0; o += step)
        rc = arc_mc__feed(r, j, s + o, n - o < step ? n - o : step);
    if (rc == 0 && eof)
        rc = arc_mc__eof(r, j);
    return rc;
}

static void test_reader_and_compare(void)
{
    struct arc_mc_job *j = job();
    struct arc_mc_reader r;
    const char *a = "HTTP/1.1 200 OK\r\nDate: x\r\nX-V: 1\r\nContent-Length: 5\r\n\r\nhello";
    const char *b = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nx-v: 1\r\n"
                    "Transfer-Encoding: chunked\r\nDate: y\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n";
    const char *c = "HTTP/1.1 200 OK\r\nX-V: 1\r\nConnection: close\r\n\r\nhello";
    for (size_t step = 1; step <= 7; step += 3) {
        CHECK_INT(read_all(&r, j, a, step, false), 1);
        j->primary = r.sum;
        arc_mc__reader_free(&r);
        char f[64];
        CHECK_INT(read_all(&r, j, b, step, false), 1);
        CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), 0);
        arc_mc__reader_free(&r);
        CHECK_INT(read_all(&r, j, c, step, false), 0);          /* until EOF */
        CHECK_INT(arc_mc__eof(&r, j), 1);
        CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), 0);
        arc_mc__reader_free(&r);
    }
    char f[64];
    CHECK_INT(read_all(&r, j, "HTTP/1.1 201 OK\r\nX-V: 2\r\nX-New: 1\r\nContent-Length: 5\r\n\r\nhellp",
                       4, false), 1);
    CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)),
              ARC_MC_DIFF_STATUS | ARC_MC_DIFF_FIELDS | ARC_MC_DIFF_BODY);
    CHECK_STR(f, "x-v,x-new");
    /* ignored, then listed */
    j->names[0] = arc_mc__name_hash("X-NEW", 5);
    j->names[1] = arc_mc__name_hash("x-v", 3);
    j->n_names = 2;
    j->body = false;
    CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), ARC_MC_DIFF_STATUS);
    j->fields = ARC_MCF_LISTED;
    j->n_names = 1;
    CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), ARC_MC_DIFF_STATUS | ARC_MC_DIFF_FIELDS);
    CHECK_STR(f, "x-new");
    arc_mc__reader_free(&r);
    /* Arc's own answer: only the status */
    j->primary.head = false;
    j->fields = ARC_MCF_ALL;
    j->body = true;
    CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), ARC_MC_DIFF_STATUS);
    /* errors: a malformed head, an EOF in a Content-Length body, a head
     * over the limit */
    CHECK_INT(read_all(&r, j, "HTTP/1.1 2x0 OK\r\n\r\n", 64, false), -1);
    arc_mc__reader_free(&r);
    CHECK_INT(read_all(&r, j, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhel", 64, true), -1);
    arc_mc__reader_free(&r);
    j->lim.max_header_bytes = 64;
    char big[200];
    memset(big, 'a', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    big[sizeof(big) - 1] = '\0';
    CHECK_INT(read_all(&r, j, big, 16, false), -1);
    arc_mc__reader_free(&r);
    free(j);
}

/* ignore_body_fields: JSON bodies equal but for the named members (at any
 * depth) and member order match; a real difference, a body that is not
 * JSON or one over max_body is compared by digest. */
static void test_json_bodies(void)
{
    struct arc_mc_job *j = job();
    static const char names[] = "ts\0id";
    j->bfields = malloc(sizeof(names));
    memcpy(j->bfields, names, sizeof(names));
    j->n_bfields = 2;
    j->max_body = 1000;
    char *c = arc_mc__json_canon(j, "{\"b\": [1, {\"ts\": 5, \"x\": 2}], \"a\": 1, \"id\": \"q\"}", 48);
    CHECK_STR(c, "{\"a\":1,\"b\":[1,{\"x\":2}]}");
    free(c);
    CHECK(arc_mc__json_canon(j, "not json", 8) == NULL);
    struct arc_mc_reader r;
    const char *pa = "HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n{\"a\": 1, \"ts\": 100, \"id\": \"x1\"}";
    CHECK_INT(read_all(&r, j, pa, 7, false), 1);
    j->primary = r.sum;
    j->pbody = r.jb;                    /* (the job owns it now) */
    j->pbody_len = r.jlen;
    r.jb = NULL;
    arc_mc__reader_free(&r);
    char f[64];
    /* other ts and id, other order, chunked: a match */
    const char *sb = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "18\r\n{\"id\":\"y2\",\"ts\":7,\"a\":1}\r\n0\r\n\r\n";
    CHECK_INT(read_all(&r, j, sb, 5, false), 1);
    CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), 0);
    arc_mc__reader_free(&r);
    /* a member that counts differs */
    CHECK_INT(read_all(&r, j, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":2}", 64, false), 1);
    CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), ARC_MC_DIFF_BODY);
    arc_mc__reader_free(&r);
    /* not JSON: the digests decide */
    CHECK_INT(read_all(&r, j, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 64, false), 1);
    CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), ARC_MC_DIFF_BODY);
    arc_mc__reader_free(&r);
    /* over max_body: the digests decide (they differ here) */
    j->max_body = 10;
    CHECK_INT(read_all(&r, j, sb, 64, false), 1);
    CHECK(r.jover);
    CHECK_INT(arc_mc__compare(j, &r, f, sizeof(f)), ARC_MC_DIFF_BODY);
    arc_mc__reader_free(&r);
    arc_mc__job_free(j);
}

int main(void)
{
    RUN(test_digest);
    RUN(test_reader_and_compare);
    RUN(test_json_bodies);
    return TEST_REPORT();
}
