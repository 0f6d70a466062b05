/*
 * Shared rig for the http2 tests: an owner that logs every callback into a
 * text log and serves response/request bodies from per-stream queues, a real
 * nghttp2 peer session (client or server) that logs what it receives, a byte
 * shuttle between the two, and raw frame builders for the attack tests.
 */
#ifndef ARC_TEST_HTTP2_H2_TEST_H
#define ARC_TEST_HTTP2_H2_TEST_H

#include <nghttp2/nghttp2.h>
#include <stdarg.h>

#include "test.h"
#include "http2/http2.h"

/* ------------------------------------------------------------- log */

struct tlog {
    char buf[65536];
    size_t len;
};

__attribute__((format(printf, 2, 3)))
static inline void tlog_add(struct tlog *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len = ARC_MIN(l->len + (size_t)n, sizeof(l->buf) - 1);
}

static inline void tlog_reset(struct tlog *l)
{
    l->len = 0;
    l->buf[0] = 0;
}

#define CHECK_LOG(l, s) do { t_checks++; if (!strstr((l)->buf, (s))) { t_failures++; \
    fprintf(stderr, "%s:%d: log lacks \"%s\"; log:\n%s\n", __FILE__, __LINE__, (s), (l)->buf); } } while (0)
#define CHECK_NOLOG(l, s) do { t_checks++; if (strstr((l)->buf, (s))) { t_failures++; \
    fprintf(stderr, "%s:%d: log has \"%s\"; log:\n%s\n", __FILE__, __LINE__, (s), (l)->buf); } } while (0)

/* ------------------------------------------------------------ owner */

#define MAXS 64

struct qstream {
    int32_t sid;
    uint8_t *out;           /* body bytes the owner has queued to send */
    size_t out_len, out_off;
    size_t in_bytes;        /* body bytes received */
    bool closed;            /* on_close seen: the slot may be recycled */
    uint8_t in[1 << 16];    /* first 64 KiB of the received body */
};

struct owner {
    struct tlog log;
    struct arc_h2_session *s;
    struct qstream st[MAXS];
    int refuse;             /* on_request returns this */
    int refuse_begin;       /* on_request_begin returns this */
    bool answer_now;        /* on_request answers 200 "now" from inside the callback */
    int n_close;
};

static inline struct qstream *qs(struct owner *o, int32_t sid)
{
    for (int i = 0; i < MAXS; i++)
        if (o->st[i].sid == sid)
            return &o->st[i];
    for (int i = 0; i < MAXS; i++)
        if (o->st[i].sid == 0) {
            o->st[i].sid = sid;
            return &o->st[i];
        }
    /* Full: recycle a closed stream's slot (the attack tests open many). */
    for (int i = 0; i < MAXS; i++)
        if (o->st[i].closed) {
            struct qstream *q = &o->st[i];
            free(q->out);
            q->out = NULL;
            q->out_len = q->out_off = q->in_bytes = 0;
            q->closed = false;
            q->sid = sid;
            return q;
        }
    abort();
}

/* Queues body bytes for sid (copied). */
static inline void owner_queue(struct owner *o, int32_t sid, const void *p, size_t n)
{
    struct qstream *q = qs(o, sid);
    q->out = realloc(q->out, q->out_len + n);
    memcpy(q->out + q->out_len, p, n);
    q->out_len += n;
}

static inline void owner_dispose(struct owner *o)
{
    for (int i = 0; i < MAXS; i++)
        free(o->st[i].out);
}

static inline void log_fields(struct tlog *l, const char *tag, int32_t sid,
                       const struct arc_h2_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tlog_add(l, "%s %d %.*s: %.*s\n", tag, sid, (int)h[i].name.len, h[i].name.p,
                 (int)h[i].value.len, h[i].value.p);
}

static inline int o_on_request_begin(void *ud, int32_t sid)
{
    struct owner *o = ud;
    tlog_add(&o->log, "begin %d\n", sid);
    return o->refuse_begin;
}

static inline int o_on_request(void *ud, int32_t sid, const struct arc_h2_request *r, void **sud)
{
    struct owner *o = ud;
    tlog_add(&o->log, "req %d %.*s %.*s %.*s %.*s cl=%lld end=%d%s%.*s\n", sid,
             (int)r->method.len, r->method.p, (int)r->scheme.len, r->scheme.p,
             (int)r->authority.len, r->authority.p, (int)r->path.len, r->path.p,
             (long long)r->content_length, r->end_stream, r->protocol.len ? " proto=" : "",
             (int)r->protocol.len, r->protocol.p);
    log_fields(&o->log, "hdr", sid, r->headers, r->n_headers);
    *sud = qs(o, sid);
    if (o->answer_now) {
        CHECK_INT(arc_h2_submit_response(o->s, sid, 200, NULL, 0, true), 0);
        owner_queue(o, sid, "now", 3);
        CHECK_INT(arc_h2_end_body(o->s, sid, NULL, 0), 0);
    }
    return o->refuse;
}

static inline void o_on_response(void *ud, int32_t sid, void *sud, const struct arc_h2_response *r)
{
    struct owner *o = ud;
    tlog_add(&o->log, "resp %d %d cl=%lld end=%d\n", sid, r->status,
             (long long)r->content_length, r->end_stream);
    log_fields(&o->log, "hdr", sid, r->headers, r->n_headers);
}

static inline void o_on_info(void *ud, int32_t sid, void *sud, const struct arc_h2_response *r)
{
    struct owner *o = ud;
    tlog_add(&o->log, "info %d %d\n", sid, r->status);
}

static inline void o_on_data(void *ud, int32_t sid, void *sud, const uint8_t *p, size_t n)
{
    struct owner *o = ud;
    struct qstream *q = sud;
    CHECK(q == qs(o, sid));
    if (q->in_bytes < sizeof(q->in))
        memcpy(q->in + q->in_bytes, p, ARC_MIN(n, sizeof(q->in) - q->in_bytes));
    q->in_bytes += n;
}

static inline void o_on_trailers(void *ud, int32_t sid, void *sud, const struct arc_h2_header *h, size_t n)
{
    struct owner *o = ud;
    log_fields(&o->log, "trailer", sid, h, n);
}

static inline void o_on_end(void *ud, int32_t sid, void *sud)
{
    struct owner *o = ud;
    tlog_add(&o->log, "end %d bytes=%zu\n", sid, qs(o, sid)->in_bytes);
}

static inline void o_on_close(void *ud, int32_t sid, void *sud, uint32_t code)
{
    struct owner *o = ud;
    o->n_close++;
    qs(o, sid)->closed = true;
    tlog_add(&o->log, "close %d %u\n", sid, code);
}

static inline size_t o_read_body(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t cap)
{
    struct owner *o = ud;
    struct qstream *q = qs(o, sid);
    size_t n = ARC_MIN(cap, q->out_len - q->out_off);
    if (n == 0)
        return 0;
    memcpy(buf, q->out + q->out_off, n);
    q->out_off += n;
    return n;
}

static const struct arc_h2_callbacks owner_cbs __attribute__((unused)) = {
    .on_request_begin = o_on_request_begin, .on_request = o_on_request, .on_informational = o_on_info, .on_response = o_on_response,
    .on_data = o_on_data, .on_trailers = o_on_trailers, .on_end = o_on_end,
    .on_close = o_on_close, .read_body = o_read_body,
};

/* ------------------------------------------------------------- peer */

struct peer {
    nghttp2_session *ng;
    struct tlog log;
    int32_t last_req_sid;       /* server peer: last request head received */
    bool goaway;
    uint32_t goaway_code;
    int32_t goaway_last;
    /* body the peer sends (one stream at a time is enough for the tests) */
    const uint8_t *src;
    size_t src_len, src_off;
    bool src_trailers;
    size_t recv_bytes;
    bool quiet;                 /* do not log DATA chunks (big bodies) */
};

static inline int p_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                       const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    struct peer *p = ud;
    /* Arc's X-Request-Id is random per request (checked end to end in
     * test_access_log.py): left out so logs compare exactly. */
    if (nlen == 12 && memcmp(name, "x-request-id", 12) == 0)
        return 0;
    tlog_add(&p->log, "phdr %d %.*s: %.*s\n", f->hd.stream_id, (int)nlen, name, (int)vlen, value);
    return 0;
}

static inline int p_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct peer *p = ud;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        tlog_add(&p->log, "pheaders %d end=%d\n", f->hd.stream_id,
                 !!(f->hd.flags & NGHTTP2_FLAG_END_STREAM));
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
            p->last_req_sid = f->hd.stream_id;
        break;
    case NGHTTP2_DATA:
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
            tlog_add(&p->log, "pend %d\n", f->hd.stream_id);
        break;
    case NGHTTP2_RST_STREAM:
        tlog_add(&p->log, "prst %d %u\n", f->hd.stream_id, f->rst_stream.error_code);
        break;
    case NGHTTP2_GOAWAY:
        p->goaway = true;
        p->goaway_code = f->goaway.error_code;
        p->goaway_last = f->goaway.last_stream_id;
        tlog_add(&p->log, "pgoaway %d %u\n", f->goaway.last_stream_id, f->goaway.error_code);
        break;
    default:
        break;
    }
    return 0;
}

static inline int p_on_data(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *d, size_t n,
                     void *ud)
{
    struct peer *p = ud;
    if (!p->quiet)
        tlog_add(&p->log, "pdata %d %.*s\n", sid, (int)ARC_MIN(n, 64), (const char *)d);
    p->recv_bytes += n;
    return 0;
}

static inline int p_on_close(nghttp2_session *ng, int32_t sid, uint32_t code, void *ud)
{
    struct peer *p = ud;
    tlog_add(&p->log, "pclose %d %u\n", sid, code);
    return 0;
}

static inline ssize_t p_read(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *ud)
{
    struct peer *p = ud;
    size_t n = ARC_MIN(len, p->src_len - p->src_off);
    memcpy(buf, p->src + p->src_off, n);
    p->src_off += n;
    if (p->src_off == p->src_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (p->src_trailers) {
            static const nghttp2_nv tr[] = { { (uint8_t *)"x-checksum", (uint8_t *)"abc", 10, 3, 0 } };
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            CHECK_INT(nghttp2_submit_trailer(ng, sid, tr, 1), 0);
        }
    }
    return (ssize_t)n;
}

static inline void peer_init(struct peer *p, bool server)
{
    nghttp2_session_callbacks *cb;
    memset(p, 0, sizeof(*p));
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, p_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, p_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, p_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, p_on_close);
    if (server)
        nghttp2_session_server_new(&p->ng, cb, p);
    else
        nghttp2_session_client_new(&p->ng, cb, p);
    nghttp2_session_callbacks_del(cb);
}

static inline void peer_settings(struct peer *p, const nghttp2_settings_entry *iv, size_t n)
{
    CHECK_INT(nghttp2_submit_settings(p->ng, NGHTTP2_FLAG_NONE, iv, n), 0);
}

static const nghttp2_data_provider peer_provider __attribute__((unused)) = { .read_callback = p_read };

/* Moves bytes both ways until neither side has anything to say. Returns the
 * first nonzero arc_h2_recv result (or 0). Sends the arc output in pieces of
 * at most `chunk` bytes to exercise partial sends. */
static inline int shuttle_chunked(struct arc_h2_session *s, struct peer *p, size_t chunk)
{
    int first_err = 0;
    for (int round = 0; round < 10000; round++) {
        bool moved = false;
        const uint8_t *d;
        size_t n;
        while ((n = arc_h2_output(s, &d)) > 0) {
            n = ARC_MIN(n, chunk);
            ssize_t rv = nghttp2_session_mem_recv(p->ng, d, n);
            CHECK_INT(rv, (ssize_t)n);
            arc_h2_sent(s, n);
            moved = true;
            if (rv < 0)
                return first_err ? first_err : -100;
        }
        ssize_t m;
        while ((m = nghttp2_session_mem_send(p->ng, &d)) > 0) {
            int rv = arc_h2_recv(s, d, (size_t)m);
            if (rv && !first_err)
                first_err = rv;
            moved = true;
        }
        if (!moved)
            return first_err;
    }
    CHECK(!"shuttle did not settle");
    return first_err;
}

static inline int shuttle(struct arc_h2_session *s, struct peer *p)
{
    return shuttle_chunked(s, p, SIZE_MAX);
}

/* --------------------------------------------------- raw frames */

struct raw {
    uint8_t b[1 << 20];
    size_t len;
};

static inline void raw_frame(struct raw *r, uint8_t type, uint8_t flags, int32_t sid,
                      const void *payload, size_t len)
{
    uint8_t *h = r->b + r->len;
    h[0] = (uint8_t)(len >> 16);
    h[1] = (uint8_t)(len >> 8);
    h[2] = (uint8_t)len;
    h[3] = type;
    h[4] = flags;
    h[5] = (uint8_t)((uint32_t)sid >> 24) & 0x7f;
    h[6] = (uint8_t)(sid >> 16);
    h[7] = (uint8_t)(sid >> 8);
    h[8] = (uint8_t)sid;
    if (len)
        memcpy(h + 9, payload, len);
    r->len += 9 + len;
}

static inline void raw_preface(struct raw *r)
{
    memcpy(r->b + r->len, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    r->len += NGHTTP2_CLIENT_MAGIC_LEN;
    raw_frame(r, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
}

/* HPACK-encodes a GET for `path` with nghttp2's deflater (the one piece of
 * framing the tests do not do by hand). */
static inline size_t raw_get_block(nghttp2_hd_deflater *d, const char *path, uint8_t *out, size_t cap,
                            const nghttp2_nv *extra, size_t nextra)
{
    nghttp2_nv nv[16] = {
        { (uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0 },
        { (uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0 },
        { (uint8_t *)":authority", (uint8_t *)"example.com", 10, 11, 0 },
        { (uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0 },
    };
    for (size_t i = 0; i < nextra; i++)
        nv[4 + i] = extra[i];
    ssize_t n = nghttp2_hd_deflate_hd(d, out, cap, nv, 4 + nextra);
    CHECK(n > 0);
    return n > 0 ? (size_t)n : 0;
}

/* Walks the frames in buf (server output, no preface) and reports the
 * GOAWAY, if any. Returns true if found. */
static inline bool find_goaway(const uint8_t *b, size_t len, int32_t *last, uint32_t *code)
{
    size_t off = 0;
    while (off + 9 <= len) {
        size_t flen = ((size_t)b[off] << 16) | ((size_t)b[off + 1] << 8) | b[off + 2];
        if (off + 9 + flen > len)
            break;
        if (b[off + 3] == NGHTTP2_GOAWAY && flen >= 8) {
            const uint8_t *p = b + off + 9;
            *last = (int32_t)(((uint32_t)(p[0] & 0x7f) << 24) | ((uint32_t)p[1] << 16) |
                              ((uint32_t)p[2] << 8) | p[3]);
            *code = ((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) | ((uint32_t)p[6] << 8) | p[7];
            return true;
        }
        off += 9 + flen;
    }
    return false;
}

/* Collects everything the session wants to send. */
static inline size_t drain(struct arc_h2_session *s, uint8_t *out, size_t cap)
{
    size_t total = 0, n;
    const uint8_t *d;
    while ((n = arc_h2_output(s, &d)) > 0) {
        if (total + n <= cap)
            memcpy(out + total, d, n);
        total += n;
        arc_h2_sent(s, n);
    }
    return total;
}

/* --------------------------------------------------------- clock */

static uint64_t fake_ms __attribute__((unused));
static inline uint64_t fake_now(void *ud)
{
    return fake_ms;
}

#endif
