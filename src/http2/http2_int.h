/**
 * Internals shared by the http2 module's files (session.c, server.c,
 * client.c). Not for other modules.
 */
#ifndef ARC_HTTP2_HTTP2_INT_H
#define ARC_HTTP2_HTTP2_INT_H

#include <nghttp2/nghttp2.h>

#include "http2/http2.h"

/* Frames at least this large leave nghttp2's buffer uncopied (arc_h2_output). */
#define ARC_H2__DIRECT_MIN 4096u

/* One received header field, kept by reference: nghttp2's HPACK buffers are
 * reference-counted, so a head waits for END_HEADERS without being copied. */
struct arc_h2__field {
    nghttp2_rcbuf *name;
    nghttp2_rcbuf *value;
};

/*
 * Per-stream state the module keeps next to nghttp2's (nghttp2's stream user
 * data points here). Lifetime: server streams from on_begin_headers, client
 * streams from arc_h2_submit_request, both until on_stream_close (or
 * on_frame_not_send for a request that never went out) or arc_h2_free.
 */
struct arc_h2__stream {
    struct arc_h2__stream *next, *prev;  /* session's list (lookup before nghttp2 opens it) */
    int32_t id;
    void *ud;                   /* owner's */
    bool delivered;             /* the owner knows it: on_close is owed */
    bool head_seen;             /* request head (S) / final response head (C) received */
    bool has_provider;          /* we send a body through read_cb */
    bool body_ended;            /* arc_h2_end_body called */
    bool owner_reset;           /* the owner reset it: not the peer's fault */
    bool charged;               /* already charged to the reset budget */
    bool local_reject;          /* answered by the module (400/405/431) */
    bool rst_after_reply;       /* RST_STREAM(NO_ERROR) once that answer is sent */
    bool too_large;             /* header list over the limit; fields dropped */
    bool replied;               /* S: final response submitted */
    bool refused;               /* S: refused by on_request_begin: head dropped, never delivered */
    uint32_t close_code;        /* reported by on_close instead of a clean 0 */
    uint64_t unconsumed;        /* received body bytes not yet given back by the owner */
    size_t hdr_bytes;           /* RFC 9113 §6.5.2 size of the head being received */
    struct arc_h2__field *f;    /* fields of the head being received */
    size_t nf, capf;
    nghttp2_nv *trailers;       /* owned copy (one block) until sent */
    size_t ntrailers;
};

struct arc_h2_session {
    nghttp2_session *ng;
    struct arc_h2_callbacks cb;
    void *ud;
    bool server;
    bool allow_connect, allow_ext_connect;
    bool goaway_rx;
    int32_t goaway_last;
    int failed;                 /* sticky arc_h2_err once recv/send failed */
    bool nomem;                 /* a callback ran out of memory */
    enum arc_h2_breach breach;
    struct arc_h2_limits lim;   /* resolved */
    struct arc_h2_flood flood;
    uint64_t (*now_ms)(void *);
    void *clock_ud;
    uint32_t n_cont;            /* CONTINUATION frames in the current header block */
    /* S: the client's framing, followed beside nghttp2 over the bytes it
     * was given, to know where a header block opens and ends
     * (arc_h2_open_header_block). */
    struct {
        uint32_t skip;          /* preface bytes still to pass over */
        uint8_t hd[9];          /* a frame header being received */
        uint8_t hn;             /* ... bytes of it so far */
        uint64_t hd_ms;         /* ... when its first byte arrived */
        uint32_t left;          /* payload bytes of the current frame still to come */
        bool block_frame;       /* the current frame is HEADERS or CONTINUATION */
        bool end_headers;       /* ... with END_HEADERS */
        bool open;              /* a header block is open */
        int32_t sid;            /* its stream */
        uint64_t since_ms;      /* when its HEADERS frame's first byte arrived */
    } rx;
    int32_t taken_sid;          /* S: the request head being received, taken by the owner */
    uint32_t n_streams;         /* module-side stream records */
    uint32_t n_open;            /* of which delivered (owner-known): arc_h2_open_streams */
    struct arc_h2__stream *streams;
    /* Output: obuf[ooff..olen) first, then held (inside nghttp2's buffer,
     * valid until the next mem_send, which waits until both are drained). */
    uint8_t *obuf;
    size_t ocap, ooff, olen;
    const uint8_t *held;
    size_t held_len;
    /* Scratch for handing heads to the owner (reused; one head at a time). */
    struct arc_h2_header *scratch;
    size_t scratch_cap;
    char *cookie;
    size_t cookie_cap;
};

/* session.c */
int arc_h2__session_new(const struct arc_h2_callbacks *cb, void *ud,
                        const struct arc_h2_options *opt, bool server,
                        struct arc_h2_session **out);
struct arc_h2__stream *arc_h2__stream_new(struct arc_h2_session *s, int32_t id);
void arc_h2__stream_free(struct arc_h2_session *s, struct arc_h2__stream *st);
struct arc_h2__stream *arc_h2__stream_find(struct arc_h2_session *s, int32_t id);
void arc_h2__fields_clear(struct arc_h2__stream *st);
bool arc_h2__scratch_reserve(struct arc_h2_session *s, size_t n);
nghttp2_nv *arc_h2__build_nv(const nghttp2_nv *pseudo, size_t np,
                             const struct arc_h2_header *h, size_t n,
                             bool copy_values, size_t *nout);
struct arc_str arc_h2__find_host(const struct arc_h2_header *h, size_t n);
int arc_h2__charge(struct arc_h2_session *s, enum arc_h2_flood_kind kind);
int arc_h2__breach(struct arc_h2_session *s, enum arc_h2_breach why);
extern const nghttp2_data_provider arc_h2__provider;

/* Does the owner still want this stream's events (heads, data, end)? Not
 * after it reset the stream or the module failed it; on_close still comes. */
static inline bool arc_h2__live(const struct arc_h2__stream *st)
{
    return st->delivered && !st->local_reject && !st->owner_reset && !st->close_code;
}

static inline void arc_h2__set_delivered(struct arc_h2_session *s, struct arc_h2__stream *st,
                                         bool on)
{
    if (st->delivered != on)
        s->n_open += on ? 1u : (uint32_t)-1;
    st->delivered = on;
}

static inline struct arc_str arc_h2__rc(nghttp2_rcbuf *b)
{
    nghttp2_vec v = nghttp2_rcbuf_get_buf(b);
    return arc_str_make((const char *)v.base, v.len);
}

static inline nghttp2_nv arc_h2__nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
    return (nghttp2_nv){ (uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value,
                         nlen, vlen, NGHTTP2_NV_FLAG_NONE };
}

/* server.c / client.c: a complete HEADERS frame for `st`. */
int arc_h2__server_on_headers(struct arc_h2_session *s, const nghttp2_frame *f,
                              struct arc_h2__stream *st);
int arc_h2__client_on_headers(struct arc_h2_session *s, const nghttp2_frame *f,
                              struct arc_h2__stream *st);

#endif
