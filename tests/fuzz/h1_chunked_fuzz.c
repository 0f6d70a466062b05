/*
 * Fuzz target for the chunked decoder keeping trailer fields: the input is a
 * chunked body. It is decoded with trailers kept, fed whole, byte by byte
 * and in pseudo-random pieces, and abort()s when an invariant breaks: the
 * splits disagree on status, consumed count, data or fields; keeping
 * trailers changes the framing outcome compared to not keeping them; fields
 * are handed out before DONE; a name is not a token or a value has CR, LF,
 * NUL or OWS at either end; arc_h1_trailer_allowed depends on case. Every
 * section that decodes is also written out again with OWS (SP, HTAB) added
 * around each value and must decode to the same fields byte for byte, so
 * the normalisations (OWS trimmed on both sides, inner OWS, empty values,
 * name case kept) are checked on every corpus input, not only that nothing
 * crashes. (h1_request_fuzz covers the framing without keeping trailers.)
 *
 * Built two ways (Makefile): with clang -fsanitize=fuzzer for exploration,
 * and with tests/fuzz/replay_main.c under gcc ASan to replay the corpus.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "http1/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c) do { if (!(c)) { \
    fprintf(stderr, "h1 chunked fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

struct run {
    enum arc_h1_chunk_rc rc;
    size_t consumed, data_len;
    char *data;                 /* size of the input: data never exceeds it */
    struct arc_arena arena;     /* holds the kept fields until run_dispose */
    struct arc_h1_chunked st;
};

/* An exact-size heap copy of buf[0..n), so ASan sees reads past n. */
static char *copy(const char *buf, size_t n)
{
    char *c = malloc(n ? n : 1);
    REQUIRE(c != NULL);
    memcpy(c, buf, n);
    return c;
}

/*
 * Decodes buf[0..len) in pieces whose sizes come from `pattern` (0 = all
 * at once, 1 = byte by byte, else pseudo-random from the bytes), keeping
 * trailers if `keep`, with the given limits.
 */
static void run(struct run *r, const char *buf, size_t len, int pattern, bool keep,
                uint32_t max_line, uint32_t max_trailer)
{
    size_t off = 0;

    r->rc = ARC_H1_CHUNK_AGAIN;
    r->consumed = r->data_len = 0;
    r->data = malloc(len ? len : 1);
    REQUIRE(r->data != NULL);
    arc_arena_init(&r->arena, 0);
    arc_h1_chunked_init(&r->st);
    r->st.max_line = max_line;
    r->st.max_trailer_bytes = max_trailer;
    if (keep)
        arc_h1_chunked_keep_trailers(&r->st, &r->arena);
    while (off < len) {
        size_t piece = pattern == 0 ? len - off : pattern == 1 ? 1
                     : 1 + (size_t)((unsigned char)buf[off] % 13);
        if (piece > len - off)
            piece = len - off;
        char *c = copy(buf + off, piece);
        size_t p_off = 0;
        for (;;) {
            size_t used = (size_t)-1, dl = 0, pos = 0;
            const char *d = NULL, *err = NULL;
            struct arc_h1_header f;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&r->st, c + p_off, piece - p_off, &used,
                                                          &d, &dl, &err);
            REQUIRE(used <= piece - p_off);
            if (rc == ARC_H1_CHUNK_DATA) {
                REQUIRE(r->data_len + dl <= len);
                memcpy(r->data + r->data_len, d, dl);
                r->data_len += dl;
            }
            if (rc != ARC_H1_CHUNK_DONE)
                REQUIRE(arc_h1_chunked_trailer_count(&r->st) == 0 &&
                        !arc_h1_chunked_trailer_next(&r->st, &pos, &f));
            p_off += used;
            r->consumed += used;
            if (rc == ARC_H1_CHUNK_DATA)
                continue;
            if (rc == ARC_H1_CHUNK_AGAIN)
                break;
            REQUIRE((rc == ARC_H1_CHUNK_ERROR) == (err != NULL));
            r->rc = rc;
            free(c);
            return;
        }
        free(c);
        off += piece;
    }
}

static void run_dispose(struct run *r)
{
    free(r->data);
    arc_arena_dispose(&r->arena);
}

static bool str_same(struct arc_str a, struct arc_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* The two decoders hand out the same fields in the same order. */
static void require_same_fields(const struct arc_h1_chunked *a, const struct arc_h1_chunked *b)
{
    size_t pa = 0, pb = 0, n = 0;
    struct arc_h1_header fa, fb;

    REQUIRE(arc_h1_chunked_trailer_count(a) == arc_h1_chunked_trailer_count(b));
    for (;;) {
        bool ma = arc_h1_chunked_trailer_next(a, &pa, &fa);
        bool mb = arc_h1_chunked_trailer_next(b, &pb, &fb);
        REQUIRE(ma == mb);
        if (!ma)
            break;
        REQUIRE(str_same(fa.name, fb.name) && str_same(fa.value, fb.value));
        n++;
    }
    REQUIRE(n == arc_h1_chunked_trailer_count(a));
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void check_field(const struct arc_h1_header *f)
{
    char lower[64];

    REQUIRE(f->name.len > 0);
    for (size_t i = 0; i < f->name.len; i++)
        REQUIRE(is_tchar((unsigned char)f->name.p[i]));
    for (size_t i = 0; i < f->value.len; i++) {
        unsigned char c = (unsigned char)f->value.p[i];
        REQUIRE(c == '\t' || (c >= 0x20 && c != 0x7f));
    }
    if (f->value.len)
        REQUIRE(!is_ows(f->value.p[0]) && !is_ows(f->value.p[f->value.len - 1]));
    /* Names are case-insensitive (RFC 9110 §5.1): so is the predicate. */
    if (f->name.len <= sizeof(lower)) {
        for (size_t i = 0; i < f->name.len; i++) {
            char c = f->name.p[i];
            lower[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        REQUIRE(arc_h1_trailer_allowed(f->name) ==
                arc_h1_trailer_allowed(arc_str_make(lower, f->name.len)));
    }
}

static size_t put(char *out, size_t off, const void *p, size_t n)
{
    if (n)
        memcpy(out + off, p, n);
    return off + n;
}

/*
 * The fields of a decoded section, written out again as a last chunk and
 * trailer section with `ows` on both sides of every value, must decode to
 * the same fields (RFC 9112 §5: OWS around a field value is not part of it).
 */
static void check_reserialised(const struct arc_h1_chunked *st)
{
    static const char *const ows[] = { "", " ", "\t", " \t  \t" };
    for (size_t o = 0; o < sizeof(ows) / sizeof(ows[0]); o++) {
        size_t ol = strlen(ows[o]), n = 5, pos = 0;
        struct arc_h1_header f;
        while (arc_h1_chunked_trailer_next(st, &pos, &f))
            n += f.name.len + 1 + 2 * ol + f.value.len + 2;
        char *s = malloc(n);
        REQUIRE(s != NULL);
        size_t off = put(s, 0, "0\r\n", 3);
        pos = 0;
        while (arc_h1_chunked_trailer_next(st, &pos, &f)) {
            off = put(s, off, f.name.p, f.name.len);
            off = put(s, off, ":", 1);
            off = put(s, off, ows[o], ol);
            off = put(s, off, f.value.p, f.value.len);
            off = put(s, off, ows[o], ol);
            off = put(s, off, "\r\n", 2);
        }
        off = put(s, off, "\r\n", 2);
        REQUIRE(off == n);

        struct run r2;
        run(&r2, s, n, 0, true, 65536, 1u << 20);
        REQUIRE(r2.rc == ARC_H1_CHUNK_DONE && r2.consumed == n && r2.data_len == 0);
        require_same_fields(st, &r2.st);
        run_dispose(&r2);
        free(s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    /* Small limits so both trailer limits are reachable with small inputs. */
    const uint32_t max_line = 64, max_trailer = 256;
    struct run a, b;

    run(&a, buf, size, 0, true, max_line, max_trailer);
    REQUIRE(a.consumed <= size);
    REQUIRE(a.rc != ARC_H1_CHUNK_AGAIN || a.consumed == size);
    for (int pattern = 1; pattern <= 3; pattern++) {
        /* pattern 3: the same pieces as 2, trailers not kept. */
        bool keep = pattern != 3;
        run(&b, buf, size, keep ? pattern : 2, keep, max_line, max_trailer);
        REQUIRE(a.rc == b.rc && a.consumed == b.consumed && a.data_len == b.data_len);
        REQUIRE(memcmp(a.data, b.data, a.data_len) == 0);
        if (keep)
            require_same_fields(&a.st, &b.st);
        else
            REQUIRE(arc_h1_chunked_trailer_count(&b.st) == 0);
        run_dispose(&b);
    }
    if (a.rc == ARC_H1_CHUNK_DONE) {
        size_t pos = 0;
        struct arc_h1_header f;
        while (arc_h1_chunked_trailer_next(&a.st, &pos, &f))
            check_field(&f);
        check_reserialised(&a.st);
    }
    run_dispose(&a);
    return 0;
}
