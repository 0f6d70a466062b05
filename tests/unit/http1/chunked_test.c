/* Proves the chunked decoder follows RFC 9112 §7.1 (chunk extensions and
 * trailers validated, limits enforced, sizes bounded) and gives identical
 * data, status, consumed count and kept trailer fields however its input is
 * split; that keeping trailers changes nothing else; and which field names
 * arc_h1_trailer_allowed turns away. */
#include "test.h"
#include "http1/http1.h"
#include "core/arena.h"

struct result {
    enum arc_h1_chunk_rc rc;    /* DONE, ERROR, or AGAIN when the input ran out */
    size_t consumed;            /* over all calls */
    char data[1024];
    size_t data_len;
    const char *err;
    size_t n_trailers;          /* arc_h1_chunked_trailer_count after the last call */
    char trailers[8192];        /* kept fields as "name:value\n" each */
    size_t trailers_len;
};

/* Appends the kept fields to r->trailers, checking the iterator against
 * the count and the views' shape (a token name, a value without CR/LF or
 * OWS at either end). */
static void collect_trailers(const struct arc_h1_chunked *st, struct result *r)
{
    struct arc_h1_header f;
    size_t pos = 0, n = 0;

    r->n_trailers = arc_h1_chunked_trailer_count(st);
    while (arc_h1_chunked_trailer_next(st, &pos, &f)) {
        n++;
        CHECK(f.name.len > 0);
        CHECK(memchr(f.name.p, ':', f.name.len) == NULL);
        CHECK(memchr(f.name.p, ' ', f.name.len) == NULL);
        if (f.value.len) {
            CHECK(memchr(f.value.p, '\n', f.value.len) == NULL);
            CHECK(memchr(f.value.p, '\r', f.value.len) == NULL);
            char first = f.value.p[0], last = f.value.p[f.value.len - 1];
            CHECK(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
        if (r->trailers_len + f.name.len + f.value.len + 2 <= sizeof(r->trailers)) {
            memcpy(r->trailers + r->trailers_len, f.name.p, f.name.len);
            r->trailers_len += f.name.len;
            r->trailers[r->trailers_len++] = ':';
            memcpy(r->trailers + r->trailers_len, f.value.p, f.value.len);
            r->trailers_len += f.value.len;
            r->trailers[r->trailers_len++] = '\n';
        }
    }
    CHECK_INT(n, r->n_trailers);
    /* The iterator stays at the end. */
    CHECK(!arc_h1_chunked_trailer_next(st, &pos, &f));
}

/*
 * Feeds in[0..len) as pieces ending at cuts[0] < cuts[1] < ... and then the
 * rest, each piece an exact-size heap copy so ASan sees any overread, and
 * checks the per-call contract on the way.
 */
static struct result decode_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                                 uint32_t max_line, uint32_t max_trailer, bool keep)
{
    struct result r = { .rc = ARC_H1_CHUNK_AGAIN };
    struct arc_h1_chunked st;
    struct arc_arena arena;
    size_t start = 0;

    arc_arena_init(&arena, 0);
    arc_h1_chunked_init(&st);
    st.max_line = max_line;
    st.max_trailer_bytes = max_trailer;
    if (keep)
        arc_h1_chunked_keep_trailers(&st, &arena);
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
            if (rc != ARC_H1_CHUNK_DONE) {
                /* No field is handed out before the section is complete. */
                size_t pos = 0;
                struct arc_h1_header f;
                CHECK_INT(arc_h1_chunked_trailer_count(&st), 0);
                CHECK(!arc_h1_chunked_trailer_next(&st, &pos, &f));
            }
            if (rc == ARC_H1_CHUNK_DATA)
                continue;
            if (rc == ARC_H1_CHUNK_AGAIN) {
                CHECK_INT(off, plen);
                break;
            }
            CHECK(rc == ARC_H1_CHUNK_DONE ? err == NULL : err != NULL);
            r.rc = rc;
            r.err = err;
            collect_trailers(&st, &r);
            free(piece);
            arc_arena_dispose(&arena);
            return r;
        }
        free(piece);
        start = stop;
    }
    arc_arena_dispose(&arena);
    return r;
}

static struct result decode(const char *in, uint32_t max_line, uint32_t max_trailer)
{
    return decode_cuts(in, strlen(in), NULL, 0, max_line, max_trailer, false);
}

static struct result decode_kept(const char *in, uint32_t max_line, uint32_t max_trailer)
{
    return decode_cuts(in, strlen(in), NULL, 0, max_line, max_trailer, true);
}

static struct result decode_bytewise_opt(const char *in, uint32_t max_line, uint32_t max_trailer,
                                         bool keep)
{
    size_t len = strlen(in);
    size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    struct result r = decode_cuts(in, len, cuts, len ? len - 1 : 0, max_line, max_trailer, keep);
    free(cuts);
    return r;
}

static struct result decode_bytewise(const char *in, uint32_t max_line, uint32_t max_trailer)
{
    return decode_bytewise_opt(in, max_line, max_trailer, false);
}

/* Same framing outcome, data and kept fields. */
static bool same(const struct result *a, const struct result *b)
{
    return a->rc == b->rc && a->consumed == b->consumed && a->data_len == b->data_len &&
           memcmp(a->data, b->data, a->data_len) == 0 && a->n_trailers == b->n_trailers &&
           a->trailers_len == b->trailers_len &&
           memcmp(a->trailers, b->trailers, a->trailers_len) == 0;
}

/* Same framing outcome and data (one decoder kept trailers, one did not). */
static bool same_framing(const struct result *a, const struct result *b)
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
        struct result r = decode_cuts(BODY, len, cut, 1, 0, 0, false);
        if (!same(&r, &whole)) {
            fprintf(stderr, "split at %zu differs\n", i);
            CHECK(0);
        }
    }
    for (size_t i = 1; i < len; i++)
        for (size_t j = i; j < len; j++) {
            size_t cut[2] = { i, j };
            struct result r = decode_cuts(BODY, len, cut, 2, 0, 0, false);
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

/* Must fail one-shot and byte-at-a-time, at the same byte and for the same
 * reason, whether trailers are kept or not (and keep none). */
static void expect_error(const char *in, uint32_t max_line, uint32_t max_trailer)
{
    struct result a = decode(in, max_line, max_trailer);
    struct result b = decode_bytewise(in, max_line, max_trailer);
    struct result c = decode_kept(in, max_line, max_trailer);
    struct result d = decode_bytewise_opt(in, max_line, max_trailer, true);
    if (a.rc != ARC_H1_CHUNK_ERROR || !same(&a, &b) || !same(&a, &c) || !same(&a, &d)) {
        fprintf(stderr, "expected identical errors for \"%s\": rc %d/%d/%d/%d "
                "consumed %zu/%zu/%zu/%zu\n", in, (int)a.rc, (int)b.rc, (int)c.rc, (int)d.rc,
                a.consumed, b.consumed, c.consumed, d.consumed);
        CHECK(0);
    }
    CHECK(a.err != NULL);
    CHECK(a.err && b.err && c.err && d.err && strcmp(a.err, b.err) == 0 &&
          strcmp(a.err, c.err) == 0 && strcmp(a.err, d.err) == 0);
    CHECK_INT(c.n_trailers, 0);
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

/* ------------------------------------------------------------ kept trailers */

static void test_trailers_simple(void)
{
    struct result plain = decode(BODY, 0, 0);
    struct result kept = decode_kept(BODY, 0, 0);
    CHECK_INT(kept.rc, ARC_H1_CHUNK_DONE);
    CHECK(same_framing(&plain, &kept));
    CHECK_INT(kept.n_trailers, 2);
    CHECK_VIEW(kept.trailers, kept.trailers_len, "Expires:never\nX-T:v\n");
}

/* Several fields, data chunks before them, and every normalisation: OWS
 * (SP and HTAB) before and after values trimmed, inner OWS kept, empty and
 * OWS-only values, ':' inside a value, obs-text, repeated names kept apart
 * and in order, name case as received. */
static const char TBODY[] =
    "3\r\nabc\r\n"
    "2;x=y\r\nde\r\n"
    "0\r\n"
    "A: 1\r\n"
    "b-B:\t two  words \t\r\n"
    "Empty:\r\n"
    "Ws:   \t \r\n"
    "a: again\r\n"
    "C:x: y\r\n"
    "grpc-message: caf\xc3\xa9\x80\r\n"
    "\r\n"
    "NEXT";
static const char TBODY_FIELDS[] =
    "A:1\n"
    "b-B:two  words\n"
    "Empty:\n"
    "Ws:\n"
    "a:again\n"
    "C:x: y\n"
    "grpc-message:caf\xc3\xa9\x80\n";

static void test_trailers_every_split(void)
{
    size_t len = strlen(TBODY);
    struct result whole = decode_kept(TBODY, 0, 0);
    CHECK_INT(whole.rc, ARC_H1_CHUNK_DONE);
    CHECK_INT(whole.consumed, len - 4);
    CHECK_VIEW(whole.data, whole.data_len, "abcde");
    CHECK_INT(whole.n_trailers, 7);
    CHECK_VIEW(whole.trailers, whole.trailers_len, TBODY_FIELDS);

    for (size_t i = 1; i < len; i++)
        for (size_t j = i; j < len; j++) {
            size_t cut[2] = { i, j };
            struct result r = decode_cuts(TBODY, len, cut, 2, 0, 0, true);
            if (!same(&r, &whole)) {
                fprintf(stderr, "kept trailers: split at %zu,%zu differs\n", i, j);
                CHECK(0);
                return;
            }
        }
    struct result b = decode_bytewise_opt(TBODY, 0, 0, true);
    CHECK(same(&b, &whole));

    /* The same with the fields of BODY, behind extensions and quoted-pairs. */
    struct result bw = decode_kept(BODY, 0, 0);
    for (size_t i = 1; i < strlen(BODY); i++) {
        size_t cut[1] = { i };
        struct result r = decode_cuts(BODY, strlen(BODY), cut, 1, 0, 0, true);
        CHECK(same(&r, &bw));
    }
}

static void test_trailers_ows(void)
{
    static const struct {
        const char *line, *field;
    } cases[] = {
        { "X: v", "X:v" },
        { "X:v", "X:v" },
        { "X:\tv\t", "X:v" },
        { "X:  v  ", "X:v" },
        { "X: \t a b \t ", "X:a b" },
        { "X: a\t\tb", "X:a\t\tb" },
        { "X:", "X:" },
        { "X: ", "X:" },
        { "X:\t \t", "X:" },
        { "X: \" q \" ", "X:\" q \"" },
        { "x-Mixed-CASE: V", "x-Mixed-CASE:V" },
        { "!#$%&'*+-.^_`|~09AZaz: tchar", "!#$%&'*+-.^_`|~09AZaz:tchar" },
        { "X: \x80\xff ", "X:\x80\xff" },
    };
    for (size_t i = 0; i < ARC_ARRAY_LEN(cases); i++) {
        char in[256], want[256];
        snprintf(in, sizeof(in), "0\r\n%s\r\n\r\n", cases[i].line);
        snprintf(want, sizeof(want), "%s\n", cases[i].field);
        struct result r = decode_kept(in, 0, 0);
        struct result b = decode_bytewise_opt(in, 0, 0, true);
        CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
        CHECK_INT(r.n_trailers, 1);
        CHECK_VIEW(r.trailers, r.trailers_len, want);
        CHECK(same(&r, &b));
    }
}

/* What the decoder rejected before it still rejects when keeping (each
 * expect_error runs both ways); these are the ones about names and folds. */
static void test_trailers_invalid(void)
{
    expect_error("0\r\nX : y\r\n\r\n", 0, 0);           /* whitespace before ':' */
    expect_error("0\r\nX\t: y\r\n\r\n", 0, 0);
    expect_error("0\r\nA: 1\r\n z\r\n\r\n", 0, 0);      /* obs-fold, SP */
    expect_error("0\r\nA: 1\r\n\tz\r\n\r\n", 0, 0);     /* obs-fold, HTAB */
    expect_error("0\r\nA: 1\r\n \r\n\r\n", 0, 0);       /* obs-fold of nothing */
    expect_error("0\r\n: v\r\n\r\n", 0, 0);             /* empty name */
    expect_error("0\r\nA(b: v\r\n\r\n", 0, 0);
    expect_error("0\r\nA/b: v\r\n\r\n", 0, 0);
    expect_error("0\r\nA\"b: v\r\n\r\n", 0, 0);
    expect_error("0\r\n\xc3\xa9: v\r\n\r\n", 0, 0);     /* non-ASCII name */
    expect_error("0\r\nA\x7f: v\r\n\r\n", 0, 0);
    expect_error("0\r\nA: v\x7f\r\n\r\n", 0, 0);
    expect_error("0\r\nA: 1\r\nB: 2\rC: 3\r\n\r\n", 0, 0);
    expect_error("0\r\nA: 1\r\nNoColon\r\n\r\n", 0, 0);

    /* NUL in a value (spelled out: expect_error takes C strings). */
    static const char nul[] = "0\r\nA: v\0w\r\n\r\n";
    struct result r = decode_cuts(nul, sizeof(nul) - 1, NULL, 0, 0, 0, true);
    CHECK_INT(r.rc, ARC_H1_CHUNK_ERROR);
    CHECK_INT(r.consumed, 8);
}

static void test_trailers_limits(void)
{
    /* max_line counts each field line with its CRLF, OWS included. */
    struct result r = decode_kept("0\r\nX:   12\r\n\r\n", 9, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_VIEW(r.trailers, r.trailers_len, "X:12\n");
    expect_error("0\r\nX:    12\r\n\r\n", 9, 0);
    expect_error("0\r\nA: 1\r\nLong-Name-Here: 1\r\n\r\n", 12, 0);

    /* max_trailer_bytes counts the raw section, final CRLF included. */
    r = decode_kept("0\r\nA: 1\r\nB: 2\r\n\r\n", 0, 14);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_VIEW(r.trailers, r.trailers_len, "A:1\nB:2\n");
    expect_error("0\r\nA: 1\r\nB: 2\r\n\r\n", 0, 13);
    expect_error("0\r\nA:    1          \r\n\r\n", 0, 20);
}

/* Sections larger than the first buffer: the copy grows (in the arena) up
 * to max_trailer_bytes, including a limit that is not a power of two. */
static void test_trailers_large(void)
{
    static char in[6000], want[6000];
    size_t il = 0, wl = 0;

    il += (size_t)snprintf(in + il, sizeof(in) - il, "4\r\ndata\r\n0\r\n");
    for (int i = 0; i < 150; i++) {
        il += (size_t)snprintf(in + il, sizeof(in) - il, "Field-%03d: \t value %d \t\r\n", i, i);
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "Field-%03d:value %d\n", i, i);
    }
    il += (size_t)snprintf(in + il, sizeof(in) - il, "\r\n");
    CHECK(il < sizeof(in) - 1 && wl < sizeof(want) - 1);

    struct result r = decode_kept(in, 0, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_INT(r.n_trailers, 150);
    CHECK_VIEW(r.trailers, r.trailers_len, want);
    CHECK_VIEW(r.data, r.data_len, "data");
    struct result b = decode_bytewise_opt(in, 0, 0, true);
    CHECK(same(&r, &b));

    /* The limit exactly: the section is il - 12 bytes (after "...0\r\n"). */
    uint32_t section = (uint32_t)(il - 12);
    r = decode_kept(in, 0, section);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_VIEW(r.trailers, r.trailers_len, want);
    b = decode_bytewise_opt(in, 0, section, true);
    CHECK(same(&r, &b));
    expect_error(in, 0, section - 1);

    /* A limit just above the first buffer: the copy stops growing at it
     * (each line is 75 bytes, the section 302). */
    r = decode_kept("0\r\n"
                    "A: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
                    "B: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
                    "C: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
                    "D: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
                    "\r\n", 0, 302);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK_INT(r.n_trailers, 4);
    CHECK_INT(r.trailers_len, 4 * 73);
}

static void test_trailers_empty(void)
{
    static const char *const bodies[] = { "0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "0;e=1\r\n\r\n" };
    for (size_t i = 0; i < ARC_ARRAY_LEN(bodies); i++) {
        struct arc_arena arena;
        struct arc_h1_chunked st;
        size_t used, dl, pos = 0, len = strlen(bodies[i]), off = 0;
        const char *d, *err;
        struct arc_h1_header f;
        enum arc_h1_chunk_rc rc;

        arc_arena_init(&arena, 0);
        arc_h1_chunked_init(&st);
        arc_h1_chunked_keep_trailers(&st, &arena);
        while ((rc = arc_h1_chunked_next(&st, bodies[i] + off, len - off, &used, &d, &dl, &err)) ==
               ARC_H1_CHUNK_DATA)
            off += used;
        CHECK_INT(rc, ARC_H1_CHUNK_DONE);
        CHECK_INT(off + used, len);
        CHECK_INT(arc_h1_chunked_trailer_count(&st), 0);
        CHECK(!arc_h1_chunked_trailer_next(&st, &pos, &f));
        /* An empty section costs nothing. */
        CHECK(arena.head == NULL && arena.used_total == 0);
        arc_arena_dispose(&arena);
    }
}

static void test_trailers_not_requested(void)
{
    struct arc_arena arena;
    struct arc_h1_chunked st;
    size_t used, dl, pos = 0;
    const char *d, *err;
    struct arc_h1_header f;
    static const char in[] = "0\r\nA: 1\r\n\r\n";

    /* Without keep_trailers: validated and dropped. */
    struct result r = decode(TBODY, 0, 0);
    struct result k = decode_kept(TBODY, 0, 0);
    CHECK_INT(r.rc, ARC_H1_CHUNK_DONE);
    CHECK(same_framing(&r, &k));
    CHECK_INT(r.n_trailers, 0);
    CHECK_INT(r.trailers_len, 0);

    /* arc_h1_chunked_init ends keeping: it is per message. */
    arc_arena_init(&arena, 0);
    arc_h1_chunked_init(&st);
    arc_h1_chunked_keep_trailers(&st, &arena);
    CHECK_INT(arc_h1_chunked_next(&st, in, strlen(in), &used, &d, &dl, &err), ARC_H1_CHUNK_DONE);
    CHECK_INT(arc_h1_chunked_trailer_count(&st), 1);
    size_t after_first = arena.used_total;
    CHECK(after_first > 0);
    arc_h1_chunked_init(&st);
    CHECK_INT(arc_h1_chunked_next(&st, in, strlen(in), &used, &d, &dl, &err), ARC_H1_CHUNK_DONE);
    CHECK_INT(arc_h1_chunked_trailer_count(&st), 0);
    CHECK(!arc_h1_chunked_trailer_next(&st, &pos, &f));
    CHECK_INT(arena.used_total, after_first);
    arc_arena_dispose(&arena);
}

/* One arena serves consecutive messages; DONE is sticky and the fields stay
 * readable after it; a failed section hands out nothing. */
static void test_trailers_lifetime(void)
{
    struct arc_arena arena;
    struct arc_h1_chunked st;
    size_t used, dl, pos;
    const char *d, *err;
    struct arc_h1_header f;
    static const char m1[] = "0\r\nOne: 1\r\n\r\n0\r\nTwo:  2 \r\nThree:3\r\n\r\n";

    arc_arena_init(&arena, 0);
    arc_h1_chunked_init(&st);
    arc_h1_chunked_keep_trailers(&st, &arena);
    CHECK_INT(arc_h1_chunked_next(&st, m1, strlen(m1), &used, &d, &dl, &err), ARC_H1_CHUNK_DONE);
    CHECK_INT(used, 13);
    CHECK_INT(arc_h1_chunked_next(&st, m1 + used, 3, &used, &d, &dl, &err), ARC_H1_CHUNK_DONE);
    CHECK_INT(used, 0);
    pos = 0;
    CHECK(arc_h1_chunked_trailer_next(&st, &pos, &f));
    CHECK_VIEW(f.name.p, f.name.len, "One");
    CHECK_VIEW(f.value.p, f.value.len, "1");
    CHECK(!arc_h1_chunked_trailer_next(&st, &pos, &f));
    struct arc_h1_header one = f;

    arc_h1_chunked_init(&st);
    arc_h1_chunked_keep_trailers(&st, &arena);
    CHECK_INT(arc_h1_chunked_next(&st, m1 + 13, strlen(m1) - 13, &used, &d, &dl, &err),
              ARC_H1_CHUNK_DONE);
    CHECK_INT(arc_h1_chunked_trailer_count(&st), 2);
    pos = 0;
    CHECK(arc_h1_chunked_trailer_next(&st, &pos, &f));
    CHECK_VIEW(f.name.p, f.name.len, "Two");
    CHECK_VIEW(f.value.p, f.value.len, "2");
    CHECK(arc_h1_chunked_trailer_next(&st, &pos, &f));
    CHECK_VIEW(f.name.p, f.name.len, "Three");
    CHECK_VIEW(f.value.p, f.value.len, "3");
    /* The first message's views live as long as the arena. */
    CHECK_VIEW(one.name.p, one.name.len, "One");

    /* Complete fields before an error are not handed out. */
    static const char bad[] = "0\r\nGood: 1\r\nBad : 2\r\n\r\n";
    arc_h1_chunked_init(&st);
    arc_h1_chunked_keep_trailers(&st, &arena);
    CHECK_INT(arc_h1_chunked_next(&st, bad, strlen(bad), &used, &d, &dl, &err), ARC_H1_CHUNK_ERROR);
    CHECK_INT(arc_h1_chunked_trailer_count(&st), 0);
    pos = 0;
    CHECK(!arc_h1_chunked_trailer_next(&st, &pos, &f));
    arc_arena_dispose(&arena);
}

static void test_trailer_allowed(void)
{
    static const char *const banned[] = {
        "Transfer-Encoding", "Content-Length", "Trailer", "TE", "Connection", "Keep-Alive",
        "Proxy-Connection", "Upgrade", "Host", "Max-Forwards", "Expect", "Range", "If-Match",
        "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range",
        "Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate",
        "Cookie", "Set-Cookie", "Age", "Cache-Control", "Date", "Expires", "Location",
        "Pragma", "Retry-After", "Vary", "Warning", "Content-Type", "Content-Encoding",
        "Content-Language", "Content-Location", "Content-Range",
        "content-length", "HOST", "transfer-ENCODING", "te", "set-cookie",
    };
    static const char *const allowed[] = {
        "grpc-status", "grpc-message", "Grpc-Status-Details-Bin", "Content-Digest",
        "Repr-Digest", "Content-MD5", "Digest", "Server-Timing", "Authentication-Info",
        "X-Checksum", "Expires-X", "Hos", "Hosts", "T", "TEE", "Content-Lengths", "X",
        "Content", "Contentlength",
    };
    for (size_t i = 0; i < ARC_ARRAY_LEN(banned); i++)
        if (arc_h1_trailer_allowed(arc_str_make(banned[i], strlen(banned[i])))) {
            fprintf(stderr, "allowed in trailers: %s\n", banned[i]);
            CHECK(0);
        }
    for (size_t i = 0; i < ARC_ARRAY_LEN(allowed); i++)
        if (!arc_h1_trailer_allowed(arc_str_make(allowed[i], strlen(allowed[i])))) {
            fprintf(stderr, "refused in trailers: %s\n", allowed[i]);
            CHECK(0);
        }
    CHECK(arc_h1_trailer_allowed(arc_str_make(NULL, 0)));
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
    RUN(test_trailers_simple);
    RUN(test_trailers_every_split);
    RUN(test_trailers_ows);
    RUN(test_trailers_invalid);
    RUN(test_trailers_limits);
    RUN(test_trailers_large);
    RUN(test_trailers_empty);
    RUN(test_trailers_not_requested);
    RUN(test_trailers_lifetime);
    RUN(test_trailer_allowed);
    return TEST_REPORT();
}
