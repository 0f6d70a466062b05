/* Proves the chunked decoder follows RFC 9112 §7.1 (chunk extensions and
 * trailers validated, limits enforced, sizes bounded) and gives identical
 * data, status and consumed count however its input is split. */
#include "test.h"
#include "http1/http1.h"

struct result {
    enum arc_h1_chunk_rc rc;    /* DONE, ERROR, or AGAIN when the input ran out */
    size_t consumed;            /* over all calls */
    char data[1024];
    size_t data_len;
    const char *err;
};

/*
 * Feeds in[0..len) as pieces ending at cuts[0] < cuts[1] < ... and then the
 * rest, each piece an exact-size heap copy so ASan sees any overread, and
 * checks the per-call contract on the way.
 */
static struct result decode_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                                 uint32_t max_line, uint32_t max_trailer)
{
    struct result r = { .rc = ARC_H1_CHUNK_AGAIN };
    struct arc_h1_chunked st;
    size_t start = 0;

    arc_h1_chunked_init(&st);
    st.max_line = max_line;
    st.max_trailer_bytes = max_trailer;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t stop = i < ncuts ? cuts[i] : len;
        size_t plen = stop - start, off = 0;
        char *piece = malloc(plen ? plen : 1);
        memcpy(piece, in + start, plen);
        for (;;) {
            size_t used = 999;
            const char *d = NULL, *err = NULL;
            size_t dl = 0;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&st, piece + off, plen - off, &used,
                                                          &d, &dl, &err);
            CHECK(used <= plen - off);
            if (rc == ARC_H1_CHUNK_DATA) {
                CHECK(dl > 0);
                CHECK(d >= piece + off && d + dl <= piece + off + used);
                if (r.data_len + dl <= sizeof(r.data)) {
                    memcpy(r.data + r.data_len, d, dl);
                    r.data_len += dl;
                }
            }
            off += used;
            r.consumed += used;
            if (rc == ARC_H1_CHUNK_DATA)
                continue;
            if (rc == ARC_H1_CHUNK_AGAIN) {
                CHECK_INT(off, plen);
                break;
            }
            CHECK(rc == ARC_H1_CHUNK_DONE ? err == NULL : err != NULL);
            r.rc = rc;
            r.err = err;
            free(piece);
            return r;
        }
        free(piece);
        start = stop;
    }
    return r;
}

static struct result decode(const char *in, uint32_t max_line, uint32_t max_trailer)
{
    return decode_cuts(in, strlen(in), NULL, 0, max_line, max_trailer);
}

static struct result decode_bytewise(const char *in, uint32_t max_line, uint32_t max_trailer)
{
    size_t len = strlen(in);
    size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    struct result r = decode_cuts(in, len, cuts, len ? len - 1 : 0, max_line, max_trailer);
    free(cuts);
    return r;
}

static bool same(const struct result *a, const struct result *b)
{
    return a->rc == b->rc && a->consumed == b->consumed && a->data_len == b->data_len &&
           memcmp(a->data, b->data, a->data_len) == 0;
}

/* A body using every feature: extensions with BWS, token and quoted values
 * (with a quoted-pair), upper/lower hex, leading zeros, trailers. */
static const char BODY[] =
    "4\r\nWiki\r\n"
    "5 ; name = val;q=\"a\\\"b;c\" \t;x\r\npedia\r\n"
    "0E\r\n in\r\n\r\nchunks.\r\n"
    "000a;e\r\n0123456789\r\n"
    "0\r\nExpires: never\r\nX-T:\t v \r\n\r\n"
    "NEXT";
static const char BODY_DATA[] = "Wikipedia in\r\n\r\nchunks.0123456789";

static void test_simple(void)
{
    struct result r = decode(BODY, 0, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_INT(r.consumed, strlen(BODY) - 4); /* "NEXT" is the next message */
    CHECK_VIEW(r.data, r.data_len, BODY_DATA);

    r = decode("0\r\n\r\n", 0, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_INT(r.consumed, 5);
    CHECK_INT(r.data_len, 0);
}

static void test_every_split(void)
{
    size_t len = strlen(BODY);
    struct result whole = decode(BODY, 0, 0);

    for (size_t i = 0; i <= len; i++) {
        size_t cut[1] = { i };
        struct result r = decode_cuts(BODY, len, cut, 1, 0, 0);
        if (!same(&r, &whole)) {
            fprintf(stderr, "split at %zu differs\n", i);
            CHECK(0);
        }
    }
    for (size_t i = 1; i < len; i++)
        for (size_t j = i; j < len; j++) {
            size_t cut[2] = { i, j };
            struct result r = decode_cuts(BODY, len, cut, 2, 0, 0);
            if (!same(&r, &whole)) {
                fprintf(stderr, "split at %zu,%zu differs\n", i, j);
                CHECK(0);
                return;
            }
        }
    struct result b = decode_bytewise(BODY, 0, 0);
    CHECK(same(&b, &whole));
}

static void test_incomplete(void)
{
    const char *prefixes[] = { "", "4", "4\r", "4\r\nWi", "4\r\nWiki", "4\r\nWiki\r", "4\r\nWiki\r\n",
                               "5;a=\"x", "0\r\n", "0\r\nX: y\r\n", "0\r\n\r" };
    for (size_t i = 0; i < ARC_ARRAY_LEN(prefixes); i++) {
        struct result r = decode(prefixes[i], 0, 0);
        CHECK_INT(r.rc, ARC_H1_CHUNK_AGAIN);
        CHECK_INT(r.consumed, strlen(prefixes[i]));
    }
}

static void test_sticky_states(void)
{
    struct arc_h1_chunked st;
    size_t used;
    const char *d, *err;
    size_t dl;

    arc_h1_chunked_init(&st);
    CHECK_INT(arc_h1_chunked_next(&st, "0\r\n\r\nX", 6, &used, &d, &dl, &err), ARC_H1_CHUNK_DONE);
    CHECK_INT(used, 5);
    CHECK_INT(arc_h1_chunked_next(&st, "X", 1, &used, &d, &dl, &err), ARC_H1_CHUNK_DONE);
    CHECK_INT(used, 0);

    arc_h1_chunked_init(&st);
    CHECK_INT(arc_h1_chunked_next(&st, "z\r\n", 3, &used, &d, &dl, &err), ARC_H1_CHUNK_ERROR);
    CHECK(err != NULL);
    CHECK_INT(arc_h1_chunked_next(&st, "0\r\n\r\n", 5, &used, &d, &dl, &err), ARC_H1_CHUNK_ERROR);
    CHECK_INT(used, 0);
    CHECK(err != NULL);

    /* A zero-initialised struct works like an initialised one. */
    struct arc_h1_chunked z = {0};
    CHECK_INT(arc_h1_chunked_next(&z, "1\r\na\r\n", 6, &used, &d, &dl, &err), ARC_H1_CHUNK_DATA);
    CHECK_INT(used, 4);
    CHECK_INT(dl, 1);
    CHECK(d && *d == 'a');
}

/* Must fail one-shot and byte-at-a-time, at the same byte. */
static void expect_error(const char *in, uint32_t max_line, uint32_t max_trailer)
{
    struct result a = decode(in, max_line, max_trailer);
    struct result b = decode_bytewise(in, max_line, max_trailer);
    if (a.rc != ARC_H1_CHUNK_ERROR || !same(&a, &b)) {
        fprintf(stderr, "expected identical errors for \"%s\": rc %d/%d consumed %zu/%zu\n",
                in, (int)a.rc, (int)b.rc, a.consumed, b.consumed);
        CHECK(0);
    }
    CHECK(a.err != NULL);
}

static void test_size_errors(void)
{
    expect_error("\r\n", 0, 0);
    expect_error("g\r\n", 0, 0);
    expect_error("-1\r\n", 0, 0);
    expect_error("+1\r\n", 0, 0);
    expect_error("0x5\r\n", 0, 0);
    expect_error(" 5\r\n", 0, 0);
    expect_error("5 \r\n", 0, 0);       /* BWS only before ';' */
    expect_error("5\t\r\n", 0, 0);
    expect_error("5\n", 0, 0);          /* bare LF */
    expect_error("5\rx", 0, 0);         /* bare CR */
    expect_error("5\x01\r\n", 0, 0);
    expect_error("1\r\na\r\n\r\n", 0, 0); /* empty size line after a chunk */
}

static void test_size_overflow(void)
{
    expect_error("8000000000000000\r\n", 0, 0);
    expect_error("10000000000000000\r\n", 0, 0);
    expect_error("ffffffffffffffffffffffff\r\n", 0, 0);
    /* 2^63 - 1 is the largest size, and leading zeros do not count. */
    struct result r = decode("7fffffffffffffff\r\nabc", 0, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_AGAIN);
    CHECK_VIEW(r.data, r.data_len, "abc");
    r = decode("00000000000000000000001\r\nx\r\n0\r\n\r\n", 0, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_VIEW(r.data, r.data_len, "x");
}

static void test_data_crlf_errors(void)
{
    expect_error("5\r\nhello\n0\r\n\r\n", 0, 0);
    expect_error("5\r\nhelloX\r\n0\r\n\r\n", 0, 0); /* data longer than size */
    expect_error("5\r\nhello\r\r\n", 0, 0);
    expect_error("5\r\nhello0\r\n\r\n", 0, 0);
}

static void test_extensions(void)
{
    static const char *const ok[] = {
        "1;a\r\nx\r\n0\r\n\r\n",
        "1;a=b\r\nx\r\n0\r\n\r\n",
        "1 ;a=b\r\nx\r\n0\r\n\r\n",
        "1; a =\tb ;c\r\nx\r\n0\r\n\r\n",
        "1;a=\"\"\r\nx\r\n0\r\n\r\n",
        "1;a=\"x y\\\\\"\r\nx\r\n0\r\n\r\n",
        "1;a=\"\xc3\xa9\"\r\nx\r\n0\r\n\r\n",
        "0;last\r\n\r\n",
    };
    for (size_t i = 0; i < ARC_ARRAY_LEN(ok); i++) {
        struct result r = decode(ok[i], 0, 0);
        if (r.rc != ARC_H1_CHUNK_DONE)
            fprintf(stderr, "rejected: %s (%s)\n", ok[i], r.err);
        CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    }
}

static void test_extension_errors(void)
{
    expect_error("5;\r\n", 0, 0);
    expect_error("5;=x\r\n", 0, 0);
    expect_error("5;a=\r\n", 0, 0);
    expect_error("5;a=b \r\n", 0, 0);      /* BWS before CRLF */
    expect_error("5;a \r\n", 0, 0);
    expect_error("5;a b\r\n", 0, 0);
    expect_error("5;a=b c\r\n", 0, 0);
    expect_error("5;a=\"x\r\n", 0, 0);     /* unterminated quoted-string */
    expect_error("5;a=\"x\"y\r\n", 0, 0);
    expect_error("5;a=\"\\\x01\"\r\n", 0, 0);
    expect_error("5;a=\x01\r\n", 0, 0);
    expect_error("5;a\x7f\r\n", 0, 0);
    expect_error("5;a=b\nhello\r\n", 0, 0); /* bare LF ends the line */
    expect_error("5;a,b\r\n", 0, 0);
    expect_error("5;a=b;\r\n", 0, 0);
}

static void test_trailer_errors(void)
{
    expect_error("0\r\nX : y\r\n\r\n", 0, 0);
    expect_error("0\r\n y\r\n\r\n", 0, 0);
    expect_error("0\r\nX: y\r\n z\r\n\r\n", 0, 0); /* obs-fold */
    expect_error("0\r\nNoColon\r\n\r\n", 0, 0);
    expect_error("0\r\n: v\r\n\r\n", 0, 0);
    expect_error("0\r\nX: a\x01\r\n\r\n", 0, 0);
    expect_error("0\r\nX: y\n\r\n", 0, 0);
    expect_error("0\r\nX: y\r\n\n", 0, 0);
    expect_error("0\r\n\n", 0, 0);
    expect_error("0\r\n\rX", 0, 0);
    expect_error("0\r\nX(: y\r\n\r\n", 0, 0);
}

static void test_limits(void)
{
    /* max_line bounds the size line including its CRLF. */
    struct result r = decode("5;abc\r\nhello\r\n0\r\n\r\n", 7, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    expect_error("5;abcd\r\nhello\r\n0\r\n\r\n", 7, 0);
    expect_error("5;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 16, 0);
    expect_error("0000000000000000000000000000000000000001", 16, 0);
    /* ... and each trailer line. */
    expect_error("0\r\nX: 0123456789\r\n\r\n", 8, 0);
    /* The trailer section as a whole, across lines of legal length. */
    r = decode("0\r\nA: 1\r\nB: 2\r\n\r\n", 0, 14);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    expect_error("0\r\nA: 1\r\nB: 2\r\n\r\n", 0, 13);
    expect_error("0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n", 0, 16);
    /* Data bytes never count against max_line. */
    r = decode("10\r\n0123456789abcdef\r\n0\r\n\r\n", 6, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_INT(r.data_len, 16);
}

int main(void)
{
    RUN(test_simple);
    RUN(test_every_split);
    RUN(test_incomplete);
    RUN(test_sticky_states);
    RUN(test_size_errors);
    RUN(test_size_overflow);
    RUN(test_data_crlf_errors);
    RUN(test_extensions);
    RUN(test_extension_errors);
    RUN(test_trailer_errors);
    RUN(test_limits);
    return TEST_REPORT();
}
