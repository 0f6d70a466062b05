/*
 * Access-log records: the ring's setup and the NDJSON formatter the writer
 * thread runs for each record (logwriter.c drives both).
 *
 * The formatter is pure (record in, bytes appended out) so that the unit
 * test can check every field. Client-supplied text is escaped as JSON and
 * bytes that are not valid UTF-8 become U+FFFD, so every line is valid JSON
 * whatever a client sent.
 */
#include "core/common.h"
#include "obs/accesslog.h"
#include "obs/metrics.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define HUGE_2M ((size_t)2 << 20)

int arc_alog_ring_init(struct arc_alog_ring *r, uint32_t capacity)
{
    if (capacity < 2 || (capacity & (capacity - 1)))
        return -1;
    memset(r, 0, sizeof(*r));
    size_t bytes = (size_t)capacity * sizeof(*r->recs);
    if (bytes >= HUGE_2M) {
        /* Whole 2 MB pages, asked to be huge: the ring is cycled through
         * record by record (18 MB at the default capacity), and with 4 kB
         * pages nearly every record written or read missed the TLB. */
        size_t len = (bytes + HUGE_2M - 1) & ~(HUGE_2M - 1);
        char *m = mmap(NULL, len + HUGE_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED)
            return -1;
        char *a = (char *)(((uintptr_t)m + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
        if (a > m)
            munmap(m, (size_t)(a - m));
        if (a + len < m + len + HUGE_2M)
            munmap(a + len, (size_t)(m + len + HUGE_2M - (a + len)));
        (void)madvise(a, len, MADV_HUGEPAGE);   /* a hint: 4 kB pages still work */
        r->recs = (struct arc_alog_rec *)(void *)a;
        r->map_len = len;
    } else {
        /* calloc: untouched pages cost nothing until the ring wraps onto them. */
        r->recs = calloc(capacity, sizeof(*r->recs));
        if (!r->recs)
            return -1;
    }
    r->mask = capacity - 1;
    r->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)r;
    return 0;
}

void arc_alog_ring_dispose(struct arc_alog_ring *r)
{
    if (r->map_len)
        munmap(r->recs, r->map_len);
    else
        free(r->recs);
    r->map_len = 0;
    r->recs = NULL;
}

/* Outcomes (ARC_ALOG_O_*, mirroring enum ex_outcome) that are errors by
 * themselves when no error kind was recorded. */
static const char *const outcome_errors[] = {
    [ARC_ALOG_O_COMPLETE] = NULL,
    [ARC_ALOG_O_CLIENT_ABORT] = "client_abort",
    [ARC_ALOG_O_CLIENT_TIMEOUT] = "client_timeout",
    [ARC_ALOG_O_UPSTREAM_CUT] = "upstream_cut",
    [ARC_ALOG_O_TUNNEL_END] = NULL,
};

const char *arc_alog_error_text(unsigned err, unsigned outcome)
{
    if (err) {
        /* (the names /metrics uses for arc_errors_total{kind}) */
        const char *n = err - 1 < ARC_ERR__COUNT ? arc_m_err_name((enum arc_err_kind)(err - 1))
                                                 : NULL;
        return n ? n : "error";
    }
    return outcome < sizeof(outcome_errors) / sizeof(outcome_errors[0]) ? outcome_errors[outcome]
                                                                         : NULL;
}

static const char *const trunc_names[ARC_ALOG_T__COUNT] = {
    "method", "host", "path", "query", "route", "upstream", "request_id", "tls.sni",
    "tls.client_subject", "user_agent", "referer",
};

/* ARC_ALOG_RL_* as logged */
static const char *const rl_names[] = {
    [ARC_ALOG_RL_NONE] = "", [ARC_ALOG_RL_ALLOWED] = "allowed",
    [ARC_ALOG_RL_REJECTED] = "rejected", [ARC_ALOG_RL_DELAYED] = "delayed",
    [ARC_ALOG_RL_BLOCKED] = "blocked",
    [ARC_ALOG_RL_HH_ALLOWED] = "allowed", [ARC_ALOG_RL_HH_REJECTED] = "rejected",
};

/* ------------------------------------------------------------ JSON text */

/* The formatter writes through a cursor into room reserved once per line
 * (LINE_MAX bounds any record: every string byte may become a 6-byte
 * escape), not through a bounds-checked append per piece: it runs once per
 * request on the writer thread, and that thread's CPU is the log's cost. */
#define LINE_MAX (6 * ARC_ALOG_STR_BYTES + 2048)

#define LIT(w, s) (memcpy((w), (s), sizeof(s) - 1), (w) += sizeof(s) - 1)

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

/* Eight bytes that JSON takes as they are (0x20..0x7e, neither '"' nor
 * '\\'): the common case, tested a word at a time (exact as a yes/no:
 * "Determine if a word has a byte less than n", Bit Twiddling Hacks). */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
static inline bool word_plain(uint64_t v)
{
    uint64_t lt20 = (v - ONES * 0x20) & ~v & HIGHS;
    uint64_t x = v ^ (ONES * '"'), q = (x - ONES) & ~x & HIGHS;
    uint64_t y = v ^ (ONES * '\\'), b = (y - ONES) & ~y & HIGHS;
    uint64_t z = v ^ (ONES * 0x7f), d = (z - ONES) & ~z & HIGHS;
    return !(lt20 | q | b | d | (v & HIGHS));
}

/* s[0..n) as a JSON string. */
static char *jstrn(char *w, const char *s, size_t n)
{
    *w++ = '"';
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    static const char hx[] = "0123456789abcdef";
    while (i < n) {
        /* Plain bytes are stored as they are tested, a word at a time and
         * then one by one: no library copy per run (the fields are short;
         * memmove was ~8% of formatting a line). */
        while (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, p + i, 8);
            if (!word_plain(v))
                break;
            memcpy(w, &v, 8);
            w += 8;
            i += 8;
        }
        while (i < n && p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            *w++ = (char)p[i++];
        if (i == n)
            break;
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            *w++ = '\\';
            *w++ = (char)c;
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            LIT(w, "\\u00");
            *w++ = hx[c >> 4];
            *w++ = hx[c & 15];
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                memcpy(w, p + i, l);
                w += l;
                i += l;
            } else {
                LIT(w, "\\ufffd");
                i++;
            }
        }
    }
    *w++ = '"';
    return w;
}

static char *jstr(char *w, const char *s)
{
    return jstrn(w, s, strlen(s));
}

/* A record's field s[0..n) as a JSON string: as jstrn, but a block at a
 * time to the end, the last (short) block included, which may read up to
 * 15 bytes past s + n (still inside the record: strs_pad) and writes up to
 * 15 bytes past the string (inside the line's reserved room, overwritten by
 * what follows). Most fields are one or two blocks long: jstrn's
 * byte-at-a-time tail was most of their cost. With SSE2 (every x86-64) a
 * block is 16 bytes tested in a few instructions; else a word of 8. */
static char *jfield(char *w, const char *s, size_t n)
{
#if defined(__SSE2__)
    const __m128i sp = _mm_set1_epi8(0x20), dq = _mm_set1_epi8('"'),
                  bs = _mm_set1_epi8('\\'), del = _mm_set1_epi8(0x7f);
    char *w0 = w;
    *w++ = '"';
    for (size_t i = 0; i < n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        /* bytes below 0x20 and from 0x80 up (negative as signed) */
        __m128i bad = _mm_or_si128(_mm_cmpgt_epi8(sp, v),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, dq),
                                                _mm_or_si128(_mm_cmpeq_epi8(v, bs),
                                                             _mm_cmpeq_epi8(v, del))));
        unsigned m = (unsigned)_mm_movemask_epi8(bad);
        size_t k = n - i < 16 ? n - i : 16;
        if (m & ((1u << k) - 1))
            return jstrn(w0, s, n);     /* something to escape: the careful way */
        _mm_storeu_si128((__m128i *)(void *)w, v);
        w += k;
    }
    *w++ = '"';
    return w;
#elif __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    size_t i = 0;
    char *w0 = w;
    *w++ = '"';
    while (i < n) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        size_t k = n - i;
        if (k < 8) {
            /* the bytes past the field count as plain 'a's */
            uint64_t keep = (1ull << (8 * k)) - 1;
            v = (v & keep) | (ONES * 'a' & ~keep);
        } else {
            k = 8;
        }
        if (!word_plain(v))
            return jstrn(w0, s, n);     /* something to escape: the careful way */
        memcpy(w, &v, 8);
        w += k;
        i += k;
    }
    *w++ = '"';
    return w;
#else
    return jstrn(w, s, n);
#endif
}

void arc_alog_json_str(struct arc_sbuf *o, const char *s)
{
    size_t need = 6 * strlen(s) + 3;
    if (o->cap - o->len < need + 1) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap - o->len < need + 1)
            cap *= 2;
        char *np = realloc(o->p, cap);
        if (!np)
            abort();
        o->p = np;
        o->cap = cap;
    }
    char *w = jstr(o->p + o->len, s);
    o->len = (size_t)(w - o->p);
    o->p[o->len] = '\0';
}

/* ,"key": then the string, or null for an empty one. KEY is a literal. */
#define KSTR(w, key, v) do { LIT(w, ",\"" key "\":"); \
    const char *_v = (v); if (_v && *_v) w = jstr(w, _v); else LIT(w, "null"); } while (0)
/* The same for record field F (present or null). */
#define KFIELD(w, key, r, F) do { LIT(w, ",\"" key "\":"); \
    size_t _n = arc_alog_len(r, F); \
    if (_n) w = jfield(w, arc_alog_str(r, F), _n); else LIT(w, "null"); } while (0)

/* "00".."ff": one load and one 2-byte store per byte (the nibble-by-
 * nibble form was a third of arc_alog_format's own samples). */
static const char hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

#if defined(__SSE2__)
/* The 16 nibbles of 8 bytes in x (its low half), high nibble first, as
 * hex digits. */
static inline __m128i hex16(__m128i x)
{
    const __m128i f = _mm_set1_epi8(0x0f);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), f), lo = _mm_and_si128(x, f);
    __m128i d = _mm_unpacklo_epi8(hi, lo);
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(d, _mm_set1_epi8(9)), _mm_set1_epi8('a' - '0' - 10));
    return _mm_add_epi8(_mm_add_epi8(d, _mm_set1_epi8('0')), letter);
}
#endif

/* b[0..n) as lower-case hex (ids: 8 or 16 bytes). */
static char *hex(char *w, const uint8_t *b, size_t n)
{
#if defined(__SSE2__)
    if (n == 8 || n == 16) {
        for (size_t i = 0; i < n; i += 8)
            _mm_storeu_si128((__m128i *)(void *)(w + 2 * i),
                             hex16(_mm_loadl_epi64((const __m128i *)(const void *)(b + i))));
        return w + 2 * n;
    }
#endif
    for (size_t i = 0; i < n; i++)
        memcpy(w + 2 * i, hex_pairs + 2 * b[i], 2);
    return w + 2 * n;
}

/* "00".."99" */
static const char dec_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* v in decimal; the values a line has are mostly short (attempt, status,
 * octets, ms): those without a call. */
static inline char *num(char *w, uint64_t v)
{
    if (v < 10) {
        *w = (char)('0' + v);
        return w + 1;
    }
    if (v < 100) {
        memcpy(w, dec_pairs + 2 * v, 2);
        return w + 2;
    }
    if (v < 1000) {
        *w = (char)('0' + v / 100);
        memcpy(w + 1, dec_pairs + 2 * (v % 100), 2);
        return w + 3;
    }
    return arc_put_u64(w, v);
}

/* ns → 12.345 (ms, µs resolution), or null when it did not happen. */
static char *ms(char *w, uint64_t ns)
{
    if (ns == ARC_ALOG_NONE) {
        LIT(w, "null");
        return w;
    }
    uint64_t us = (ns + 500) / 1000;
    unsigned frac = (unsigned)(us % 1000);
    w = num(w, us / 1000);
    w[0] = '.';
    w[1] = (char)('0' + frac / 100);
    memcpy(w + 2, dec_pairs + 2 * (frac % 100), 2);
    return w + 4;
}

/* The "YYYY-MM-DDTHH:MM:SS" of a second, remembered: lines come in time
 * order per worker, so the calendar math runs about once a second. */
static _Thread_local time_t ts_sec = -1;
static _Thread_local char ts_text[64];

static char *timestamp(char *w, uint64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000ull);
    if (sec != ts_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        snprintf(ts_text, sizeof(ts_text), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        ts_sec = sec;
    }
    memcpy(w, ts_text, 19);
    w += 19;
    uint32_t frac = (uint32_t)(ns % 1000000000ull);
    *w = '.';
    for (int i = 8; i >= 2; i -= 2) {       /* nine digits: four pairs and one */
        memcpy(w + i, dec_pairs + 2 * (frac % 100), 2);
        frac /= 100;
    }
    w[1] = (char)('0' + frac);
    w[10] = 'Z';
    return w + 11;
}

static char *ipv4(char *w, const struct in_addr *a)
{
    const uint8_t *b = (const uint8_t *)&a->s_addr;
    for (int i = 0; i < 4; i++) {
        if (i)
            *w++ = '.';
        w = num(w, b[i]);
    }
    return w;
}

void arc_alog_format(struct arc_sbuf *o, const struct arc_alog_rec *r)
{
    if (o->cap - o->len < LINE_MAX + 1) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < LINE_MAX + 1)
            cap *= 2;
        char *np = realloc(o->p, cap);
        if (!np)
            abort();                    /* as arc_sbuf does: no sane way on */
        o->p = np;
        o->cap = cap;
    }
    char *w = o->p + o->len;
    LIT(w, "{\"ts\":\"");
    w = timestamp(w, r->ts_ns);
    LIT(w, "\",\"kind\":\"access\"");
    KFIELD(w, "request_id", r, REQUEST_ID);
    if (r->traced) {
        LIT(w, ",\"trace_id\":\"");
        w = hex(w, r->trace_id, 16);
        LIT(w, "\",\"span_id\":\"");
        w = hex(w, r->span_id, 8);
        LIT(w, "\",\"parent_span_id\":");
        if (r->has_parent) {
            *w++ = '"';
            w = hex(w, r->parent_id, 8);
            *w++ = '"';
        } else {
            LIT(w, "null");
        }
        if (r->trace_flags & 1)
            LIT(w, ",\"trace_sampled\":true");
        else
            LIT(w, ",\"trace_sampled\":false");
    } else {
        LIT(w, ",\"trace_id\":null,\"span_id\":null,\"parent_span_id\":null,\"trace_sampled\":false");
    }
    KFIELD(w, "method", r, METHOD);
    if (r->https)
        LIT(w, ",\"scheme\":\"https\"");
    else
        LIT(w, ",\"scheme\":\"http\"");
    KFIELD(w, "host", r, HOST);
    KFIELD(w, "path", r, PATH);
    KFIELD(w, "query", r, QUERY);
    if (r->protocol == ARC_ALOG_H2)
        LIT(w, ",\"protocol\":\"h2\"");
    else if (r->protocol == ARC_ALOG_H10)
        LIT(w, ",\"protocol\":\"http/1.0\"");
    else
        LIT(w, ",\"protocol\":\"http/1.1\"");
    LIT(w, ",\"status\":");
    w = num(w, r->status);
    KFIELD(w, "route", r, ROUTE);
    if (r->has_upstream) {
        KFIELD(w, "upstream", r, UPSTREAM);
        KFIELD(w, "upstream_addr", r, UPSTREAM_ADDR);
    } else {
        LIT(w, ",\"upstream\":null,\"upstream_addr\":null");
    }
    LIT(w, ",\"attempt\":");
    w = num(w, r->attempt);
    if (r->client.sa.sa_family == AF_INET) {
        LIT(w, ",\"client_ip\":\"");
        w = ipv4(w, &r->client.in.sin_addr);
        LIT(w, "\",\"client_port\":");
        w = num(w, ntohs(r->client.in.sin_port));
    } else if (r->client.sa.sa_family == AF_INET6) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &r->client.in6.sin6_addr, ip, sizeof(ip));
        KSTR(w, "client_ip", ip);
        LIT(w, ",\"client_port\":");
        w = num(w, ntohs(r->client.in6.sin6_port));
    } else {
        LIT(w, ",\"client_ip\":null,\"client_port\":null");
    }
    if (r->tls) {
        LIT(w, ",\"tls\":{\"version\":");
        if (arc_alog_len(r, TLS_VERSION))
            w = jfield(w, arc_alog_str(r, TLS_VERSION), arc_alog_len(r, TLS_VERSION));
        else
            LIT(w, "null");
        KFIELD(w, "cipher", r, TLS_CIPHER);
        KFIELD(w, "sni", r, TLS_SNI);
        KFIELD(w, "client_subject", r, TLS_SUBJECT);
        *w++ = '}';
    } else {
        LIT(w, ",\"tls\":null");
    }
    LIT(w, ",\"bytes_received\":");
    w = num(w, r->bytes_in);
    LIT(w, ",\"bytes_sent\":");
    w = num(w, r->bytes_out);
    LIT(w, ",\"duration_ms\":");
    w = ms(w, r->dur_ns);
    LIT(w, ",\"upstream_connect_ms\":");
    w = ms(w, r->connect_ns);
    LIT(w, ",\"upstream_ttfb_ms\":");
    w = ms(w, r->ttfb_ns);
    LIT(w, ",\"upstream_response_ms\":");
    w = ms(w, r->response_ns);
    KFIELD(w, "user_agent", r, USER_AGENT);
    KFIELD(w, "referer", r, REFERER);
    if (r->rl && r->rl < sizeof(rl_names) / sizeof(rl_names[0])) {
        LIT(w, ",\"rate_limit\":{\"name\":");
        if (r->rl >= ARC_ALOG_RL_BLOCKED)
            LIT(w, "\"heavy_hitters\"");
        else
            w = jfield(w, arc_alog_str(r, ROUTE), arc_alog_len(r, ROUTE));
        LIT(w, ",\"decision\":\"");
        memcpy(w, rl_names[r->rl], strlen(rl_names[r->rl]));
        w += strlen(rl_names[r->rl]);
        LIT(w, "\",\"quota\":");
        w = num(w, r->rl_quota);
        LIT(w, ",\"window_s\":");
        w = num(w, r->rl_window);
        *w++ = '}';
    } else {
        LIT(w, ",\"rate_limit\":null");
    }
    KSTR(w, "error", arc_alog_error_text(r->err, r->outcome));
    if (r->truncated) {
        LIT(w, ",\"truncated\":[");
        bool first = true;
        for (unsigned i = 0; i < ARC_ALOG_T__COUNT; i++)
            if (r->truncated & (1u << i)) {
                if (!first)
                    *w++ = ',';
                w = jstr(w, trunc_names[i]);
                first = false;
            }
        *w++ = ']';
    }
    LIT(w, "}\n");
    o->len = (size_t)(w - o->p);
    o->p[o->len] = '\0';
}
