/*
 * Fuzz target for the HTTP/1 codec: runs the request parser, the response
 * parser and the chunked decoder over the same bytes and abort()s when an
 * invariant breaks: views outside the buffer, head_len past the input, a
 * prefix of the input parsing differently from the whole, the chunked
 * decoder consuming more than given, making no progress, or giving
 * different results for different splits of the same input. Every request
 * that parses is also serialised again in canonical forms (see
 * check_reserialised) that must parse to the same fields, so the parser's
 * normalisations (OWS trimming on both sides of values, case-insensitive
 * field names) are checked on every corpus input, not only that it does not
 * crash.
 *
 * Built two ways (Makefile): with clang -fsanitize=fuzzer for exploration,
 * and with tests/fuzz/replay_main.c under gcc ASan to replay the corpus.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c) do { if (!(c)) { \
    fprintf(stderr, "h1 fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

#define MAX_H 24

/* Small limits so 414 and 431 are reachable with fuzzer-sized inputs. */
static const struct arc_h1_limits LIM = { 2048, MAX_H, 512 };

static bool view_in(struct arc_str v, const char *buf, size_t len)
{
    if (v.len == 0)
        return v.p == NULL || (v.p >= buf && v.p <= buf + len);
    return v.p >= buf && v.p <= buf + len && v.len <= (size_t)(buf + len - v.p);
}

/* An exact-size heap copy of buf[0..n), so ASan sees reads past n. */
static char *copy(const char *buf, size_t n)
{
    char *c = malloc(n ? n : 1);
    REQUIRE(c != NULL);
    memcpy(c, buf, n);
    return c;
}

static void check_headers(const struct arc_h1_header *h, size_t n, const char *buf, size_t len)
{
    REQUIRE(n <= MAX_H);
    for (size_t i = 0; i < n; i++) {
        REQUIRE(view_in(h[i].name, buf, len) && view_in(h[i].value, buf, len));
        REQUIRE(h[i].name.len > 0);
        REQUIRE(memchr(h[i].name.p, ':', h[i].name.len) == NULL);
        if (h[i].value.len) {
            REQUIRE(memchr(h[i].value.p, '\r', h[i].value.len) == NULL);
            REQUIRE(memchr(h[i].value.p, '\n', h[i].value.len) == NULL);
            REQUIRE(memchr(h[i].value.p, '\0', h[i].value.len) == NULL);
            char first = h[i].value.p[0], last = h[i].value.p[h[i].value.len - 1];
            REQUIRE(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
        /* The views sit where field-line = field-name ":" OWS field-value
         * OWS CRLF puts them: the name starts a line (nothing folded or
         * indented into it), a colon follows it at once, and only SP/HTAB
         * lies between the colon and the value and between the value and
         * the CRLF. */
        const char *np = h[i].name.p, *ne = np + h[i].name.len;
        REQUIRE(np > buf && np[-1] == '\n');
        REQUIRE(ne < buf + len && *ne == ':');
        const char *vp = h[i].value.len ? h[i].value.p : NULL;
        const char *q = ne + 1;
        while (q < buf + len && (*q == ' ' || *q == '\t') && q != vp)
            q++;
        if (vp)
            REQUIRE(q == vp);
        q = vp ? vp + h[i].value.len : q;
        while (q < buf + len && (*q == ' ' || *q == '\t'))
            q++;
        REQUIRE(q + 1 < buf + len && q[0] == '\r' && q[1] == '\n');
    }
}

static enum arc_h1_status parse_req(const char *buf, size_t len, struct arc_h1_header *h,
                                    struct arc_h1_request *r)
{
    char *c = copy(buf, len);
    enum arc_h1_status st = arc_h1_parse_request(c, len, &LIM, h, MAX_H, r);
    /* Views would dangle after free; callers only compare scalars. */
    free(c);
    return st;
}

/* Limits for re-parsing a serialised head: room for the OWS added. */
static const struct arc_h1_limits LIM_RE = { 65536, MAX_H, 512 };

enum name_case { NAME_ASIS, NAME_LOWER, NAME_UPPER };

static size_t put(char *out, size_t off, const void *p, size_t n)
{
    memcpy(out + off, p, n);
    return off + n;
}

/*
 * Serialises a parsed request head again: the request line with HTTP/1.minor,
 * then every field as name ":" ows value ows CRLF, with the name's case
 * changed per `nc` and `ows` (possibly empty) on both sides of the value.
 * Returns a malloc'd exact-size buffer.
 */
static char *serialise(const struct arc_h1_request *r, enum name_case nc, const char *ows,
                       size_t *out_len)
{
    size_t ol = strlen(ows);
    size_t n = r->method.len + 1 + r->target.len + 11;
    for (size_t i = 0; i < r->n_headers; i++)
        n += r->headers[i].name.len + 1 + 2 * ol + r->headers[i].value.len + 2;
    n += 2;
    char *out = malloc(n);
    REQUIRE(out != NULL);
    size_t off = put(out, 0, r->method.p, r->method.len);
    off = put(out, off, " ", 1);
    off = put(out, off, r->target.p, r->target.len);
    off = put(out, off, r->minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
    for (size_t i = 0; i < r->n_headers; i++) {
        const struct arc_h1_header *h = &r->headers[i];
        size_t at = off;
        off = put(out, off, h->name.p, h->name.len);
        for (size_t k = at; k < off; k++) {
            char ch = out[k];
            if (nc == NAME_LOWER && ch >= 'A' && ch <= 'Z')
                out[k] = (char)(ch - 'A' + 'a');
            else if (nc == NAME_UPPER && ch >= 'a' && ch <= 'z')
                out[k] = (char)(ch - 'a' + 'A');
        }
        off = put(out, off, ":", 1);
        off = put(out, off, ows, ol);
        off = put(out, off, h->value.p, h->value.len);
        off = put(out, off, ows, ol);
        off = put(out, off, "\r\n", 2);
    }
    off = put(out, off, "\r\n", 2);
    REQUIRE(off == n);
    *out_len = n;
    return out;
}

static bool str_same(struct arc_str a, struct arc_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool str_same_icase(struct arc_str a, struct arc_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b.p[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/*
 * A request that parsed (r, over buf) must parse to the same thing when it
 * is written out again canonically: field names in any case (names are
 * case-insensitive, RFC 9110 §5.1, so framing, Host and the connection
 * flags must not change), and with OWS (SP and HTAB) added on both sides of
 * every value (RFC 9112 §5: OWS around a field value is not part of it, so
 * every value must come back byte for byte).
 */
static void check_reserialised(const struct arc_h1_request *r)
{
    static const char *const ows[] = { "", " ", "\t", " \t  \t" };
    for (int nc = NAME_ASIS; nc <= NAME_UPPER; nc++) {
        for (size_t o = 0; o < ARC_ARRAY_LEN(ows); o++) {
            size_t n;
            char *s = serialise(r, (enum name_case)nc, ows[o], &n);
            struct arc_h1_header h2[MAX_H];
            struct arc_h1_request r2;
            enum arc_h1_status st = arc_h1_parse_request(s, n, &LIM_RE, h2, MAX_H, &r2);
            REQUIRE(st == ARC_H1_OK);
            REQUIRE(r2.head_len == n);
            check_headers(h2, r2.n_headers, s, n);
            REQUIRE(r2.n_headers == r->n_headers);
            for (size_t i = 0; i < r->n_headers; i++) {
                REQUIRE(str_same_icase(h2[i].name, r->headers[i].name));
                REQUIRE(nc != NAME_ASIS || str_same(h2[i].name, r->headers[i].name));
                REQUIRE(str_same(h2[i].value, r->headers[i].value));
            }
            REQUIRE(str_same(r2.method, r->method) && str_same(r2.target, r->target));
            REQUIRE(str_same(r2.path, r->path) && str_same(r2.query, r->query));
            REQUIRE(str_same(r2.host, r->host));
            REQUIRE(r2.minor == r->minor);
            REQUIRE(r2.body == r->body && r2.content_length == r->content_length);
            REQUIRE(r2.flags == r->flags);
            free(s);
        }
    }
}

static void check_request(const char *buf, size_t len)
{
    struct arc_h1_header h[MAX_H];
    struct arc_h1_request r;
    enum arc_h1_status st = arc_h1_parse_request(buf, len, &LIM, h, MAX_H, &r);

    REQUIRE(st <= ARC_H1_BAD_VERSION);
    REQUIRE((st == ARC_H1_OK || st == ARC_H1_INCOMPLETE) == (r.err == NULL));
    if (st == ARC_H1_INCOMPLETE)
        REQUIRE(len < LIM.max_header_bytes);
    if (st == ARC_H1_OK) {
        REQUIRE(r.head_len >= 16 && r.head_len <= len && r.head_len <= LIM.max_header_bytes);
        REQUIRE(memcmp(buf + r.head_len - 4, "\r\n\r\n", 4) == 0);
        REQUIRE(r.headers == h);
        check_headers(h, r.n_headers, buf, r.head_len);
        REQUIRE(view_in(r.method, buf, r.head_len) && r.method.len > 0);
        REQUIRE(view_in(r.target, buf, r.head_len) && r.target.len > 0);
        REQUIRE(r.target.len <= LIM.max_uri);
        REQUIRE(view_in(r.path, buf, r.head_len) ||
                (r.path.len == 1 && r.path.p[0] == '/')); /* static "/" */
        REQUIRE(view_in(r.query, buf, r.head_len) && view_in(r.host, buf, len));
        REQUIRE(r.minor == 0 || r.minor == 1);
        REQUIRE(r.body == ARC_H1_BODY_NONE || r.body == ARC_H1_BODY_LENGTH ||
                r.body == ARC_H1_BODY_CHUNKED);
        REQUIRE(r.body != ARC_H1_BODY_CHUNKED || (r.flags & ARC_H1_F_HAS_TE));
        REQUIRE(!((r.flags & ARC_H1_F_KEEP_ALIVE) && (r.flags & ARC_H1_F_CONN_CLOSE)));
        if (r.flags & ARC_H1_F_HAS_TE)
            REQUIRE(r.body == ARC_H1_BODY_CHUNKED && r.minor == 1);
        check_reserialised(&r);
    }

    /* A prefix parses as INCOMPLETE or exactly like the whole: nothing the
     * parser decides may depend on bytes it has not seen yet. */
    size_t step = len <= 256 ? 1 : len / 128;
    for (size_t k = 0; k < len; k += step) {
        struct arc_h1_header h2[MAX_H];
        struct arc_h1_request r2;
        enum arc_h1_status s2 = parse_req(buf, k, h2, &r2);
        if (st == ARC_H1_OK && k >= r.head_len) {
            REQUIRE(s2 == ARC_H1_OK && r2.head_len == r.head_len && r2.body == r.body &&
                    r2.flags == r.flags && r2.content_length == r.content_length);
        } else if (st == ARC_H1_OK) {
            REQUIRE(s2 == ARC_H1_INCOMPLETE);
        } else {
            REQUIRE(s2 == ARC_H1_INCOMPLETE || s2 == st);
        }
    }
}

static void check_response(const char *buf, size_t len, bool head, bool connect)
{
    struct arc_h1_header h[MAX_H];
    struct arc_h1_response r;
    enum arc_h1_status st = arc_h1_parse_response(buf, len, &LIM, head, connect, h, MAX_H, &r);

    REQUIRE(st == ARC_H1_OK || st == ARC_H1_INCOMPLETE || st == ARC_H1_BAD ||
            st == ARC_H1_HEADERS_TOO_LARGE);
    REQUIRE((st == ARC_H1_OK || st == ARC_H1_INCOMPLETE) == (r.err == NULL));
    if (st != ARC_H1_OK)
        return;
    REQUIRE(r.head_len >= 16 && r.head_len <= len);
    REQUIRE(memcmp(buf + r.head_len - 4, "\r\n\r\n", 4) == 0);
    check_headers(h, r.n_headers, buf, r.head_len);
    REQUIRE(view_in(r.reason, buf, r.head_len));
    REQUIRE(r.status >= 100 && r.status <= 999);
    REQUIRE(r.body <= ARC_H1_BODY_CLOSE);
    if (r.body == ARC_H1_BODY_CLOSE)
        REQUIRE(!(r.flags & ARC_H1_F_KEEP_ALIVE));
    if (head || r.status < 200 || r.status == 204 || r.status == 304)
        REQUIRE(r.body == ARC_H1_BODY_NONE);
    if (r.flags & ARC_H1_F_UPGRADE)
        REQUIRE(r.status == 101);

    char *c = copy(buf, r.head_len);
    struct arc_h1_response r2;
    REQUIRE(arc_h1_parse_response(c, r.head_len, &LIM, head, connect, h, MAX_H, &r2) == ARC_H1_OK);
    REQUIRE(r2.head_len == r.head_len && r2.body == r.body && r2.flags == r.flags);
    free(c);
}

struct chunk_result {
    enum arc_h1_chunk_rc rc;
    size_t consumed, data_len;
    char *data;                 /* size `len` of the input: data never exceeds it */
};

/*
 * Decodes buf[0..len) fed in pieces whose sizes come from `pattern` (0 =
 * all at once, 1 = byte by byte, else pseudo-random from the bytes), checking
 * the per-call contract.
 */
static struct chunk_result run_chunked(const char *buf, size_t len, int pattern)
{
    struct chunk_result res = { ARC_H1_CHUNK_AGAIN, 0, 0, malloc(len ? len : 1) };
    struct arc_h1_chunked st;
    size_t off = 0;

    REQUIRE(res.data != NULL);
    arc_h1_chunked_init(&st);
    st.max_line = 64;
    st.max_trailer_bytes = 256;
    while (off < len) {
        size_t piece = pattern == 0 ? len - off : pattern == 1 ? 1
                     : 1 + (size_t)((unsigned char)buf[off] % 13);
        if (piece > len - off)
            piece = len - off;
        char *c = copy(buf + off, piece);
        size_t p_off = 0;
        for (;;) {
            size_t used = (size_t)-1, dl = 0;
            const char *d = NULL, *err = NULL;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&st, c + p_off, piece - p_off, &used,
                                                          &d, &dl, &err);
            REQUIRE(used <= piece - p_off);
            if (rc == ARC_H1_CHUNK_DATA) {
                REQUIRE(used > 0 && dl > 0);
                REQUIRE(d >= c + p_off && d + dl <= c + p_off + used);
                REQUIRE(res.data_len + dl <= len);
                memcpy(res.data + res.data_len, d, dl);
                res.data_len += dl;
            }
            p_off += used;
            res.consumed += used;
            if (rc == ARC_H1_CHUNK_DATA)
                continue;
            if (rc == ARC_H1_CHUNK_AGAIN) {
                REQUIRE(p_off == piece && err == NULL);
                break;
            }
            REQUIRE(rc == ARC_H1_CHUNK_DONE || rc == ARC_H1_CHUNK_ERROR);
            REQUIRE((rc == ARC_H1_CHUNK_ERROR) == (err != NULL));
            res.rc = rc;
            free(c);
            /* Both are sticky and consume nothing more. */
            size_t u2 = 1, dl2;
            const char *d2, *e2;
            REQUIRE(arc_h1_chunked_next(&st, buf, len, &u2, &d2, &dl2, &e2) == rc && u2 == 0);
            return res;
        }
        free(c);
        off += piece;
    }
    return res;
}

static void check_chunked(const char *buf, size_t len)
{
    struct chunk_result a = run_chunked(buf, len, 0);
    for (int pattern = 1; pattern <= 2; pattern++) {
        struct chunk_result b = run_chunked(buf, len, pattern);
        REQUIRE(a.rc == b.rc && a.consumed == b.consumed && a.data_len == b.data_len);
        REQUIRE(memcmp(a.data, b.data, a.data_len) == 0);
        free(b.data);
    }
    REQUIRE(a.consumed <= len);
    REQUIRE(a.rc != ARC_H1_CHUNK_AGAIN || a.consumed == len);
    free(a.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    unsigned char last = size ? data[size - 1] : 0;

    check_request(buf, size);
    check_response(buf, size, last & 1, last & 2);
    check_chunked(buf, size);

    /* Chunked bodies behind a valid head reach the decoder's deep states. */
    struct arc_h1_header h[MAX_H];
    struct arc_h1_request r;
    if (arc_h1_parse_request(buf, size, &LIM, h, MAX_H, &r) == ARC_H1_OK &&
        r.body == ARC_H1_BODY_CHUNKED)
        check_chunked(buf + r.head_len, size - r.head_len);
    return 0;
}
