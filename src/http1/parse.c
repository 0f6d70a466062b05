/*
 * HTTP/1.1 request and response head parser (RFC 9112 §2-§6, RFC 9110).
 *
 * One forward pass: the start line, then each field line, every byte
 * classified by a table lookup (http1_int.h) or a 16-byte SSE2 compare as it
 * is scanned. Framing fields (Content-Length, Transfer-Encoding, Host,
 * Connection...) are interpreted as soon as their line is complete, so a bad
 * one is rejected before the rest of the head has arrived.
 *
 * Cost on a growing buffer: the API keeps no state between calls, so every
 * call restarts at byte 0 and a head delivered in k reads costs O(k * len).
 * len is bounded by max_header_bytes (a buffer that reaches it without a
 * complete head is 431), so the worst case is ~max_header_bytes^2 / read
 * size, and a head that arrives in one read (the common case) is parsed
 * once. A caller facing a byte-dribbling peer may skip the call until the
 * new bytes contain '\n', since a head can only complete on one (at the
 * price of noticing a bad byte or a 414 one line later).
 *
 * Leniency, all deliberate and none framing-relevant:
 *  - request-target accepts every visible ASCII byte except '#', so
 *    `"<>\^{|}` pass (real clients send them unescaped in queries);
 *    non-ASCII bytes and controls do not.
 *  - HTTP/1.2..1.9 are treated as 1.1 (RFC 9110 §2.5); minor is then 1.
 *  - a status line without the SP before an empty reason ("HTTP/1.1 200").
 *  - Connection/Expect/Upgrade values are not syntax-checked, only searched.
 * Strictness beyond the RFC minimum: empty list elements in Content-Length
 * or Transfer-Encoding, transfer-coding parameters, and any Transfer-Encoding
 * other than plain "chunked" in a response are rejected, because they are
 * where parsers disagree and a proxy must not guess.
 */
#include "http1/http1.h"
#include "http1/http1_int.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define IS(c, cl) ARC_H1__IS(c, cl)

struct limits {
    size_t max_bytes, max_headers, max_uri;
};

/* What the field lines said about framing and the connection. */
struct fields {
    uint64_t cl;
    struct arc_str host;
    unsigned n_cl, n_host, n_te;
    bool te_chunked;    /* chunked seen; any coding after it is an error */
    bool te_other;      /* a known coding other than chunked was seen */
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool expect_100, upgrade;
};

static struct limits effective_limits(const struct arc_h1_limits *l, size_t max_hdrs)
{
    struct limits r = {
        ARC_H1_DEFAULT_MAX_HEADER_BYTES, ARC_H1_DEFAULT_MAX_HEADERS, ARC_H1_DEFAULT_MAX_URI,
    };

    if (l) {
        if (l->max_header_bytes)
            r.max_bytes = l->max_header_bytes;
        if (l->max_headers)
            r.max_headers = l->max_headers;
        if (l->max_uri)
            r.max_uri = l->max_uri;
    }
    if (max_hdrs < r.max_headers)
        r.max_headers = max_hdrs;
    return r;
}

/* First byte at or after p that is not field-content (VCHAR, SP, HTAB,
 * obs-text), or end. */
static inline const char *scan_value(const char *p, const char *end)
{
#ifdef __SSE2__
    /* Long values (cookies, tokens, user agents) dominate head size. The
     * compare flags CTLs (<= 0x1f) and DEL; HTAB is flagged too and simply
     * stepped over, it is rare in practice. */
    const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);

    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, c1f), c1f),
                                   _mm_cmpeq_epi8(v, del));
        unsigned m = (unsigned)_mm_movemask_epi8(bad);
        if (m == 0) {
            p += 16;
            continue;
        }
        p += __builtin_ctz(m);
        if (*p != '\t')
            return p;
        p++;
    }
#endif
    while (p < end && IS(*p, ARC_H1__VALUE))
        p++;
    return p;
}

/* First byte at or after p that cannot be in a request-target, or end. */
static inline const char *scan_target(const char *p, const char *end)
{
#ifdef __SSE2__
    /* Flags <= 0x20 (SP, CTLs), >= 0x7f (DEL, non-ASCII) and '#'. */
    const __m128i c20 = _mm_set1_epi8(0x20), c7f = _mm_set1_epi8(0x7f),
                  hash = _mm_set1_epi8('#');

    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i bad = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, c20), c20),
                         _mm_cmpeq_epi8(_mm_min_epu8(v, c7f), c7f)),
            _mm_cmpeq_epi8(v, hash));
        unsigned m = (unsigned)_mm_movemask_epi8(bad);
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && IS(*p, ARC_H1__TARGET))
        p++;
    return p;
}

/* Matches "HTTP/" DIGIT "." DIGIT (case-sensitive, RFC 9112 §2.3). Returns 8,
 * 0 if the buffer ends inside a prefix that could still match, or -1. */
static int match_version(const char *p, const char *end, int *major, int *minor)
{
    size_t avail = (size_t)(end - p);

    if (ARC_LIKELY(avail >= 8)) {
        if (memcmp(p, "HTTP/", 5) != 0 || !IS(p[5], ARC_H1__DIGIT) || p[6] != '.' ||
            !IS(p[7], ARC_H1__DIGIT))
            return -1;
        *major = p[5] - '0';
        *minor = p[7] - '0';
        return 8;
    }
    /* Reject a partial version as soon as it cannot become one, so garbage
     * is not buffered up to the head limit. */
    for (size_t i = 0; i < avail; i++) {
        bool ok = i < 5 ? p[i] == "HTTP/"[i] : i == 6 ? p[i] == '.' : IS(p[i], ARC_H1__DIGIT);
        if (!ok)
            return -1;
    }
    return 0;
}

/* uri-host [":" port] (RFC 3986 §3.2.2-3). `need_port` for authority-form,
 * where the port is mandatory (RFC 9112 §3.2.3). Userinfo ('@') is never
 * accepted: RFC 9110 §4.2.4 says to treat it as an error. */
static bool valid_authority(struct arc_str a, bool need_port)
{
    const char *p = a.p, *end = a.p + a.len;

    if (a.len == 0)
        return false;
    if (*p == '[') {
        /* IP-literal: no nested brackets, must close, must not be empty. */
        p++;
        const char *s = p;
        while (p < end && *p != ']' && *p != '[' && IS(*p, ARC_H1__HOST))
            p++;
        if (p == end || *p != ']' || p == s)
            return false;
        p++;
    } else {
        const char *s = p;
        while (p < end && *p != ':' && *p != '[' && *p != ']' && IS(*p, ARC_H1__HOST))
            p++;
        if (p == s) /* an empty host is invalid for http(s) (RFC 9110 §4.2.1) */
            return false;
    }
    if (p == end)
        return !need_port;
    if (*p != ':')
        return false;
    p++;
    if (p == end)
        return !need_port;
    for (; p < end; p++)
        if (!IS(*p, ARC_H1__DIGIT))
            return false;
    return true;
}

/* Content-Length = 1*DIGIT, possibly repeated as a list or in several
 * fields; all values must agree (RFC 9110 §8.6, RFC 9112 §6.3 item 5). */
static const char *note_content_length(struct fields *f, struct arc_str v)
{
    struct arc_h1__list l = arc_h1__list_init(v);
    struct arc_str el;

    while (arc_h1__list_next(&l, &el)) {
        uint64_t x = 0;
        if (el.len == 0)
            return "empty Content-Length";
        for (size_t i = 0; i < el.len; i++) {
            if (!IS(el.p[i], ARC_H1__DIGIT))
                return "Content-Length is not a decimal number";
            unsigned d = (unsigned)(el.p[i] - '0');
            /* Cap at INT64_MAX so the length fits off_t/ssize_t downstream. */
            if (x > ((uint64_t)INT64_MAX - d) / 10)
                return "Content-Length overflows";
            x = x * 10 + d;
        }
        if (f->n_cl && x != f->cl)
            return "conflicting Content-Length values";
        f->cl = x;
        f->n_cl++;
    }
    return NULL;
}

/* Transfer-Encoding codings across all TE fields, in order (RFC 9112 §6.1):
 * chunked must be last and appear once; anything after it is an error at
 * once, whatever later fields say. */
static const char *note_transfer_encoding(struct fields *f, struct arc_str v)
{
    struct arc_h1__list l = arc_h1__list_init(v);
    struct arc_str el;

    f->n_te++;
    while (arc_h1__list_next(&l, &el)) {
        if (el.len == 0)
            return "empty transfer-coding";
        bool chunked = arc_str_ieq(el, "chunked", 7);
        if (f->te_chunked)
            return chunked ? "chunked applied more than once"
                           : "chunked is not the final transfer-coding";
        if (chunked) {
            f->te_chunked = true;
            continue;
        }
        for (size_t i = 0; i < el.len; i++)
            if (!IS(el.p[i], ARC_H1__TCHAR))
                return "malformed transfer-coding"; /* incl. parameters */
        if (arc_str_ieq(el, "gzip", 4) || arc_str_ieq(el, "x-gzip", 6) ||
            arc_str_ieq(el, "deflate", 7) || arc_str_ieq(el, "compress", 8) ||
            arc_str_ieq(el, "x-compress", 10))
            f->te_other = true;
        else
            /* "identity" included: RFC 9112 removed it from the registry. */
            return "unknown transfer-coding";
    }
    return NULL;
}

static void note_connection(struct fields *f, struct arc_str v)
{
    struct arc_h1__list l = arc_h1__list_init(v);
    struct arc_str el;

    while (arc_h1__list_next(&l, &el)) {
        if (arc_str_ieq(el, "close", 5))
            f->conn_close = true;
        else if (arc_str_ieq(el, "keep-alive", 10))
            f->conn_keep_alive = true;
        else if (arc_str_ieq(el, "upgrade", 7))
            f->conn_upgrade = true;
    }
}

/* Interprets one complete field line. Returns an error reason or NULL.
 * Dispatch is on length first: most names fail it without a compare. */
static const char *note_field(struct fields *f, struct arc_str name, struct arc_str v)
{
    switch (name.len) {
    case 4:
        if (arc_str_ieq(name, "Host", 4)) {
            f->n_host++;
            f->host = v;
        }
        break;
    case 6:
        if (arc_str_ieq(name, "Expect", 6) && arc_h1_list_has(v, "100-continue", 12))
            f->expect_100 = true;
        break;
    case 7:
        if (arc_str_ieq(name, "Upgrade", 7) && v.len)
            f->upgrade = true;
        break;
    case 10:
        if (arc_str_ieq(name, "Connection", 10))
            note_connection(f, v);
        break;
    case 14:
        if (arc_str_ieq(name, "Content-Length", 14))
            return note_content_length(f, v);
        break;
    case 17:
        if (arc_str_ieq(name, "Transfer-Encoding", 17))
            return note_transfer_encoding(f, v);
        break;
    default:
        break;
    }
    return NULL;
}

/*
 * Field lines up to and including the empty line (RFC 9112 §5):
 *   field-line = field-name ":" OWS field-value OWS CRLF
 * Returns OK with *pp past the final CRLF, INCOMPLETE if `end` was reached,
 * or BAD / HEADERS_TOO_LARGE with *err set.
 */
static enum arc_h1_status parse_fields(const char **pp, const char *end,
                                       struct arc_h1_header *hdrs, size_t max_n,
                                       size_t *n_out, struct fields *f, const char **err)
{
    const char *p = *pp;
    size_t n = 0;

    for (;;) {
        if (p == end)
            goto more;
        if (*p == '\r') {
            if (end - p < 2)
                goto more;
            if (p[1] != '\n') {
                *err = "bare CR";
                return ARC_H1_BAD;
            }
            p += 2;
            break;
        }
        const char *name = p;
        while (p < end && IS(*p, ARC_H1__TCHAR))
            p++;
        if (p == end)
            goto more;
        if (ARC_UNLIKELY(*p != ':' || p == name)) {
            if (*p == '\n')
                *err = "bare LF line ending";
            else if (p == name && (*p == ' ' || *p == '\t'))
                /* obs-fold (§5.2), or whitespace after the start line (§2.2):
                 * both let two parsers see different field sets. */
                *err = "line folding or whitespace at start of field line";
            else if (*p == ' ' || *p == '\t')
                *err = "whitespace between field name and colon";
            else if (p == name && *p == ':')
                *err = "empty field name";
            else
                *err = "invalid character in field name";
            return ARC_H1_BAD;
        }
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *v = p;
        p = scan_value(p, end);
        if (p == end)
            goto more;
        if (ARC_UNLIKELY(*p != '\r')) {
            *err = *p == '\n' ? "bare LF line ending" : "control character in field value";
            return ARC_H1_BAD;
        }
        if (end - p < 2)
            goto more;
        if (p[1] != '\n') {
            *err = "bare CR";
            return ARC_H1_BAD;
        }
        const char *ve = p;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        p += 2;
        if (n == max_n) {
            *n_out = n;
            *err = "too many header fields";
            return ARC_H1_HEADERS_TOO_LARGE;
        }
        hdrs[n].name = arc_str_make(name, name_len);
        hdrs[n].value = arc_str_make(v, (size_t)(ve - v));
        if ((*err = note_field(f, hdrs[n].name, hdrs[n].value)) != NULL) {
            *n_out = n + 1;
            return ARC_H1_BAD;
        }
        n++;
    }
    *n_out = n;
    *pp = p;
    return ARC_H1_OK;
more:
    *n_out = n;
    return ARC_H1_INCOMPLETE;
}

/* Connection persistence (RFC 9112 §9.3): 1.1 unless "close", 1.0 only with
 * "keep-alive" (and no "close"). */
static uint32_t connection_flags(const struct fields *f, int minor)
{
    uint32_t fl = 0;

    if (f->conn_close)
        fl |= ARC_H1_F_CONN_CLOSE;
    else if (minor >= 1 || f->conn_keep_alive)
        fl |= ARC_H1_F_KEEP_ALIVE;
    if (f->n_te)
        fl |= ARC_H1_F_HAS_TE;
    return fl;
}

/* Sets path/query/host from the request-target (RFC 9112 §3.2). Returns an
 * error reason or NULL; *target_host says the target carried the authority. */
static const char *classify_target(struct arc_h1_request *r, bool *target_host)
{
    struct arc_str t = r->target;
    const char *end = t.p + t.len;
    const char *rest;

    *target_host = false;
    if (arc_str_eq(r->method, "CONNECT", 7)) {
        /* CONNECT takes authority-form only, with a port (§3.2.3). */
        if (!valid_authority(t, true))
            return "CONNECT target is not host:port";
        r->host = t;
        r->path = arc_str_make(end, 0);
        r->query = arc_str_make(end, 0);
        *target_host = true;
        return NULL;
    }
    if (t.p[0] == '/') {
        rest = t.p;
    } else if (t.len == 1 && t.p[0] == '*') {
        if (!arc_str_eq(r->method, "OPTIONS", 7))
            return "asterisk-form target with a method other than OPTIONS";
        r->path = t;
        r->query = arc_str_make(end, 0);
        return NULL;
    } else {
        /* absolute-form (§3.2.2). Only http and https: this is a reverse
         * proxy, any other scheme cannot be meant for it. */
        size_t off;
        if (t.len >= 7 && arc_str_ieq(arc_str_make(t.p, 7), "http://", 7))
            off = 7;
        else if (t.len >= 8 && arc_str_ieq(arc_str_make(t.p, 8), "https://", 8))
            off = 8;
        else
            return "request-target is not origin-, absolute-, authority- or asterisk-form";
        const char *a = t.p + off, *ae = a;
        while (ae < end && *ae != '/' && *ae != '?')
            ae++;
        struct arc_str auth = arc_str_make(a, (size_t)(ae - a));
        if (!valid_authority(auth, false))
            return "invalid authority in absolute-form target";
        r->host = auth;
        *target_host = true;
        rest = ae;
    }
    const char *q = memchr(rest, '?', (size_t)(end - rest));
    const char *pe = q ? q : end;
    if (pe == rest)
        /* "http://h" or "http://h?x": the path is "/" (RFC 9112 §3.2.1),
         * given as a static string so consumers always see a leading '/'. */
        r->path = ARC_STR_LIT("/");
    else
        r->path = arc_str_make(rest, (size_t)(pe - rest));
    r->query = q ? arc_str_make(q + 1, (size_t)(end - q - 1)) : arc_str_make(end, 0);
    return NULL;
}

#define FAIL(st, why) do { out->err = (why); return (st); } while (0)

enum arc_h1_status arc_h1_parse_request(const char *buf, size_t len,
                                        const struct arc_h1_limits *limits,
                                        struct arc_h1_header *hdrs, size_t max_hdrs,
                                        struct arc_h1_request *out)
{
    struct limits lim = effective_limits(limits, max_hdrs);
    struct fields f = {0};
    const char *p = buf, *end = buf + (len < lim.max_bytes ? len : lim.max_bytes);
    enum arc_h1_status st;
    int major, minor, r;
    bool target_host;

    memset(out, 0, sizeof(*out));
    out->headers = hdrs;
    if (p == end)
        goto incomplete;

    /* One empty line before the request-line is tolerated (§2.2); more
     * would let a peer pad the stream without bound. */
    if (*p == '\r' || *p == '\n') {
        if (*p == '\n')
            FAIL(ARC_H1_BAD, "bare LF line ending");
        if (end - p < 2)
            goto incomplete;
        if (p[1] != '\n')
            FAIL(ARC_H1_BAD, "bare CR");
        p += 2;
        if (p == end)
            goto incomplete;
        if (*p == '\r' || *p == '\n')
            FAIL(ARC_H1_BAD, "more than one empty line before the request-line");
    }

    /* request-line = method SP request-target SP HTTP-version CRLF (§3),
     * single SPs only: lenient whitespace splitting is a smuggling aid. */
    const char *m = p;
    while (p < end && IS(*p, ARC_H1__TCHAR))
        p++;
    if (p == end)
        goto incomplete;
    if (p == m || *p != ' ')
        FAIL(ARC_H1_BAD, "invalid method");
    out->method = arc_str_make(m, (size_t)(p - m));
    p++;

    const char *t = p;
    const char *tend = (size_t)(end - t) > lim.max_uri ? t + lim.max_uri + 1 : end;
    p = scan_target(p, tend);
    if ((size_t)(p - t) > lim.max_uri)
        FAIL(ARC_H1_URI_TOO_LONG, "request-target too long");
    if (p == end)
        goto incomplete;
    if (p == t)
        FAIL(ARC_H1_BAD, "empty request-target");
    if (*p != ' ')
        FAIL(ARC_H1_BAD, *p == '\r' || *p == '\n' ? "missing HTTP-version"
                                                 : "invalid character in request-target");
    out->target = arc_str_make(t, (size_t)(p - t));
    p++;

    r = match_version(p, end, &major, &minor);
    if (r == 0)
        goto incomplete;
    if (r < 0)
        FAIL(ARC_H1_BAD, "malformed HTTP-version");
    if (major != 1)
        FAIL(ARC_H1_BAD_VERSION, "unsupported HTTP version");
    out->minor = minor >= 1;
    p += r;
    if (p == end)
        goto incomplete;
    if (*p != '\r')
        FAIL(ARC_H1_BAD, *p == '\n' ? "bare LF line ending" : "junk after HTTP-version");
    if (end - p < 2)
        goto incomplete;
    if (p[1] != '\n')
        FAIL(ARC_H1_BAD, "bare CR");
    p += 2;

    const char *why = classify_target(out, &target_host);
    if (why)
        FAIL(ARC_H1_BAD, why);

    st = parse_fields(&p, end, hdrs, lim.max_headers, &out->n_headers, &f, &out->err);
    if (st == ARC_H1_INCOMPLETE)
        goto incomplete;
    if (st != ARC_H1_OK)
        return st;
    out->head_len = (size_t)(p - buf);

    /* RFC 9110 §7.2: exactly one Host in 1.1, at most one ever, and valid. */
    if (f.n_host > 1)
        FAIL(ARC_H1_BAD, "repeated Host");
    if (f.n_host == 0 && out->minor == 1)
        FAIL(ARC_H1_BAD, "missing Host");
    if (f.n_host && f.host.len && !valid_authority(f.host, false))
        FAIL(ARC_H1_BAD, "invalid Host");
    if (!target_host)
        out->host = f.n_host ? f.host : arc_str_make(p, 0);

    out->flags = connection_flags(&f, out->minor);
    if (out->minor == 1) {
        /* Both are ignored in 1.0 requests (RFC 9110 §10.1.1, §7.8). */
        if (f.expect_100)
            out->flags |= ARC_H1_F_EXPECT_100;
        if (f.upgrade && f.conn_upgrade)
            out->flags |= ARC_H1_F_UPGRADE;
    }

    if (f.n_te) {
        /* A 1.0 recipient cannot know the sender meant chunked (§6.1). */
        if (out->minor == 0)
            FAIL(ARC_H1_BAD, "Transfer-Encoding in an HTTP/1.0 request");
        /* Both Content-Length and Transfer-Encoding is the classic
         * smuggling vector (§6.1): reject instead of picking one. */
        if (f.n_cl)
            FAIL(ARC_H1_BAD, "both Content-Length and Transfer-Encoding");
        if (f.te_other)
            FAIL(ARC_H1_NOT_IMPLEMENTED, "unsupported transfer-coding");
        if (!f.te_chunked) /* unreachable: every coding is chunked or other */
            FAIL(ARC_H1_BAD, "final transfer-coding is not chunked");
        out->body = ARC_H1_BODY_CHUNKED;
    } else if (f.n_cl) {
        out->body = ARC_H1_BODY_LENGTH;
        out->content_length = f.cl;
    } else {
        out->body = ARC_H1_BODY_NONE;
    }
    return ARC_H1_OK;

incomplete:
    /* Once the buffer holds max_header_bytes without a complete head, the
     * head can only be larger: fail now so the caller never buffers more. */
    if (len >= lim.max_bytes)
        FAIL(ARC_H1_HEADERS_TOO_LARGE, "request head too large");
    return ARC_H1_INCOMPLETE;
}

enum arc_h1_status arc_h1_parse_response(const char *buf, size_t len,
                                         const struct arc_h1_limits *limits,
                                         bool req_method_head, bool req_connect,
                                         struct arc_h1_header *hdrs, size_t max_hdrs,
                                         struct arc_h1_response *out)
{
    struct limits lim = effective_limits(limits, max_hdrs);
    struct fields f = {0};
    const char *p = buf, *end = buf + (len < lim.max_bytes ? len : lim.max_bytes);
    enum arc_h1_status st;
    int major, minor, r, status = 0;

    memset(out, 0, sizeof(*out));
    out->headers = hdrs;

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF */
    r = match_version(p, end, &major, &minor);
    if (r == 0)
        goto incomplete;
    if (r < 0)
        FAIL(ARC_H1_BAD, "malformed status line");
    /* BAD, not BAD_VERSION: the caller answers 502 for any bad upstream. */
    if (major != 1)
        FAIL(ARC_H1_BAD, "unsupported HTTP version in response");
    out->minor = minor >= 1;
    p += r;
    if (p == end)
        goto incomplete;
    if (*p != ' ')
        FAIL(ARC_H1_BAD, "malformed status line");
    p++;
    for (int i = 0; i < 3; i++, p++) {
        if (p == end)
            goto incomplete;
        if (!IS(*p, ARC_H1__DIGIT))
            FAIL(ARC_H1_BAD, "malformed status code");
        status = status * 10 + (*p - '0');
    }
    if (status < 100)
        FAIL(ARC_H1_BAD, "malformed status code");
    out->status = status;
    if (p == end)
        goto incomplete;
    const char *rs = p;
    if (*p == ' ') {
        rs = ++p;
        p = scan_value(p, end);
        if (p == end)
            goto incomplete;
    }
    if (*p != '\r')
        FAIL(ARC_H1_BAD, *p == '\n' ? "bare LF line ending" : "invalid character in status line");
    if (end - p < 2)
        goto incomplete;
    if (p[1] != '\n')
        FAIL(ARC_H1_BAD, "bare CR");
    out->reason = arc_str_make(rs, (size_t)(p - rs));
    p += 2;

    st = parse_fields(&p, end, hdrs, lim.max_headers, &out->n_headers, &f, &out->err);
    if (st == ARC_H1_INCOMPLETE)
        goto incomplete;
    if (st != ARC_H1_OK)
        return st;
    out->head_len = (size_t)(p - buf);
    out->flags = connection_flags(&f, out->minor);
    if (status == 101 && f.upgrade)
        out->flags |= ARC_H1_F_UPGRADE;

    /* A 2xx to CONNECT turns the connection into a tunnel whose CL/TE must
     * be ignored (RFC 9110 §9.3.6): their combination is not checked (each
     * field's own syntax already was, in the field loop). */
    if (req_connect && status / 100 == 2) {
        out->body = ARC_H1_BODY_NONE;
        return ARC_H1_OK;
    }
    if (f.n_te) {
        if (out->minor == 0)
            FAIL(ARC_H1_BAD, "Transfer-Encoding in an HTTP/1.0 response");
        if (f.n_cl)
            FAIL(ARC_H1_BAD, "both Content-Length and Transfer-Encoding");
        /* RFC 9112 §6.3 would read a non-chunked coding until close, but the
         * proxy drops hop-by-hop TE and would relay coded bytes unlabelled. */
        if (f.te_other || !f.te_chunked)
            FAIL(ARC_H1_BAD, "unsupported transfer-coding in response");
    }
    /* RFC 9112 §6.3 items 1, 4, 5, 7. */
    if (req_method_head || status < 200 || status == 204 || status == 304) {
        out->body = ARC_H1_BODY_NONE;
    } else if (f.n_te) {
        out->body = ARC_H1_BODY_CHUNKED;
    } else if (f.n_cl) {
        out->body = ARC_H1_BODY_LENGTH;
        out->content_length = f.cl;
    } else {
        /* Read-until-close framing: the connection cannot be reused. */
        out->body = ARC_H1_BODY_CLOSE;
        out->flags &= ~(uint32_t)ARC_H1_F_KEEP_ALIVE;
    }
    return ARC_H1_OK;

incomplete:
    if (len >= lim.max_bytes)
        FAIL(ARC_H1_HEADERS_TOO_LARGE, "response head too large");
    return ARC_H1_INCOMPLETE;
}
