/*
 * HTTP/2 session core shared by both roles: nghttp2 setup, the byte pumps
 * (arc_h2_recv / arc_h2_output), flow-control bookkeeping, the outgoing body
 * provider, stream bookkeeping, flood accounting hooks, and outgoing header
 * filtering. Role-specific head handling is in server.c and client.c.
 *
 * Stream life (module side; nghttp2 keeps the protocol states):
 *
 *   server: on_begin_headers ─► receiving head ─► END_HEADERS ─► delivered ─► on_stream_close
 *                │                    │                  └─► local_reject (400/405/431) ─┘
 *                └─ on_request_begin refuses ─► refused (RST REFUSED_STREAM, head dropped) ─┘
 *   client: arc_h2_submit_request ─► queued ─► HEADERS sent ─► on_stream_close
 *                                      └─► on_frame_not_send (GOAWAY first) ─► closed REFUSED
 *
 * The owner hears on_close exactly once for every delivered stream.
 */
#include <stdlib.h>
#include <time.h>

#include "http1/http1.h"
#include "http2/http2_int.h"

/* ----------------------------------------------------------- streams */

struct arc_h2__stream *arc_h2__stream_new(struct arc_h2_session *s, int32_t id)
{
    struct arc_h2__stream *st = calloc(1, sizeof(*st));

    if (!st)
        return NULL;
    st->id = id;
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->n_streams++;
    return st;
}

void arc_h2__fields_clear(struct arc_h2__stream *st)
{
    for (size_t i = 0; i < st->nf; i++) {
        nghttp2_rcbuf_decref(st->f[i].name);
        nghttp2_rcbuf_decref(st->f[i].value);
    }
    st->nf = 0;
    st->hdr_bytes = 0;
}

void arc_h2__stream_free(struct arc_h2_session *s, struct arc_h2__stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    s->n_streams--;
    arc_h2__set_delivered(s, st, false);
    arc_h2__fields_clear(st);
    free(st->f);
    free(st->trailers);
    free(st);
}

struct arc_h2__stream *arc_h2__stream_find(struct arc_h2_session *s, int32_t id)
{
    struct arc_h2__stream *st;

    if (id <= 0)
        return NULL;
    st = nghttp2_session_get_stream_user_data(s->ng, id);
    if (st)
        return st;
    /* A client request still in nghttp2's queue has no nghttp2 stream yet. */
    for (st = s->streams; st; st = st->next)
        if (st->id == id)
            return st;
    return NULL;
}

bool arc_h2__scratch_reserve(struct arc_h2_session *s, size_t n)
{
    if (n <= s->scratch_cap)
        return true;
    size_t cap = ARC_MAX(n, 2 * s->scratch_cap);
    struct arc_h2_header *p = realloc(s->scratch, cap * sizeof(*p));
    if (!p)
        return false;
    s->scratch = p;
    s->scratch_cap = cap;
    return true;
}

/* ------------------------------------------------------ flood guards */

int arc_h2__breach(struct arc_h2_session *s, enum arc_h2_breach why)
{
    if (s->breach == ARC_H2_BREACH_NONE) {
        s->breach = why;
        /* Streams up to the last one we processed may still finish; the
         * owner is expected to flush this GOAWAY and close. */
        nghttp2_session_terminate_session2(s->ng, nghttp2_session_get_last_proc_stream_id(s->ng),
                                           NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

int arc_h2__charge(struct arc_h2_session *s, enum arc_h2_flood_kind kind)
{
    if (arc_h2_flood_charge(&s->flood, kind, s->now_ms(s->clock_ud)))
        return 0;
    return arc_h2__breach(s, arc_h2_flood_breach_of(kind));
}

static uint64_t default_now_ms(void *unused)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------- nghttp2 callbacks */

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    struct arc_h2_session *s = user;

    switch (hd->type) {
    case NGHTTP2_HEADERS:
        s->n_cont = 0;
        s->taken_sid = 0;           /* (a new block: the previous one ended) */
        return 0;
    case NGHTTP2_CONTINUATION:
        /* nghttp2 counts these too (max_continuations option, set one above
         * ours), but only we turn it into a reasoned ENHANCE_YOUR_CALM. */
        if (s->lim.max_continuations != ARC_H2_UNLIMITED &&
            ++s->n_cont > s->lim.max_continuations)
            return arc_h2__breach(s, ARC_H2_BREACH_CONTINUATION_FLOOD);
        return 0;
    case NGHTTP2_RST_STREAM:
        /* A client cancelling streams is normal; thousands per second are
         * the rapid-reset attack. Upstreams (client role) are not charged:
         * REFUSED_STREAM bursts from a busy server are legitimate. */
        return s->server ? arc_h2__charge(s, ARC_H2_FLOOD_RESET) : 0;
    case NGHTTP2_SETTINGS:
        return (hd->flags & NGHTTP2_FLAG_ACK) ? 0 : arc_h2__charge(s, ARC_H2_FLOOD_SETTINGS);
    case NGHTTP2_PING:
        return arc_h2__charge(s, ARC_H2_FLOOD_PING);
    case NGHTTP2_PRIORITY:
        return arc_h2__charge(s, ARC_H2_FLOOD_PRIORITY);
    case NGHTTP2_DATA:
        if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM))
            return arc_h2__charge(s, ARC_H2_FLOOD_EMPTY_DATA);
        return 0;
    default:
        return 0;
    }
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct arc_h2_session *s = user;
    struct arc_h2__stream *st;

    if (!s->server || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    st = arc_h2__stream_new(s, f->hd.stream_id);
    if (!st) {
        s->nomem = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st) != 0) {
        arc_h2__stream_free(s, st);
        return 0;
    }
    if (s->cb.on_request_begin && s->cb.on_request_begin(s->ud, st->id)) {
        /* Refused before its head is whole: the rest of the block is
         * decoded and dropped; the reset is charged when it is sent
         * (on_frame_send), as nghttp2's own refusals are. */
        st->refused = true;
        int rv = nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        return nghttp2_is_fatal(rv) ? rv : 0;
    }
    s->taken_sid = st->id;
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value, uint8_t flags, void *user)
{
    struct arc_h2_session *s = user;
    struct arc_h2__stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    nghttp2_vec nv = nghttp2_rcbuf_get_buf(name), vv = nghttp2_rcbuf_get_buf(value);

    if (!st || st->too_large || st->refused)
        return 0;
    /* RFC 9113 §6.5.2 counts 32 bytes of overhead per field, which also
     * bounds the field count: no separate count limit is needed. */
    st->hdr_bytes += nv.len + vv.len + 32;
    if (st->hdr_bytes > s->lim.max_header_list_size) {
        st->too_large = true;
        arc_h2__fields_clear(st);
        return 0;
    }
    if (st->nf == st->capf) {
        size_t cap = st->capf ? 2 * st->capf : 16;
        struct arc_h2__field *p = realloc(st->f, cap * sizeof(*p));
        if (!p) {
            s->nomem = true;
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        st->f = p;
        st->capf = cap;
    }
    nghttp2_rcbuf_incref(name);
    nghttp2_rcbuf_incref(value);
    st->f[st->nf++] = (struct arc_h2__field){ name, value };
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct arc_h2_session *s = user;
    struct arc_h2__stream *st;

    switch (f->hd.type) {
    case NGHTTP2_DATA:
        st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st && arc_h2__live(st) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->cb.on_end)
            s->cb.on_end(s->ud, st->id, st->ud);
        return 0;
    case NGHTTP2_HEADERS:
        st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (!st)
            return 0;
        return s->server ? arc_h2__server_on_headers(s, f, st)
                         : arc_h2__client_on_headers(s, f, st);
    case NGHTTP2_GOAWAY:
        s->goaway_rx = true;
        s->goaway_last = f->goaway.last_stream_id;
        return 0;
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *user)
{
    struct arc_h2_session *s = user;
    struct arc_h2__stream *st = nghttp2_session_get_stream_user_data(ng, sid);

    if (!st || !arc_h2__live(st)) {
        /* Nobody will consume these: give the window back now. */
        int rv = nghttp2_session_consume(ng, sid, len);
        return nghttp2_is_fatal(rv) ? rv : 0;
    }
    /* The connection window reopens at once, the stream's only when the
     * owner passed the bytes on (arc_h2_consume): a stream whose other side
     * is slow holds back itself (at most its window), never its siblings. */
    int rv = nghttp2_session_consume_connection(ng, len);
    if (nghttp2_is_fatal(rv))
        return rv;
    st->unconsumed += len;
    if (s->cb.on_data)
        s->cb.on_data(s->ud, sid, st->ud, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t code, void *user)
{
    struct arc_h2_session *s = user;
    struct arc_h2__stream *st = nghttp2_session_get_stream_user_data(ng, sid);

    if (!st)
        return 0;
    st->unconsumed = 0;         /* (the connection window took them back on receipt) */
    nghttp2_session_set_stream_user_data(ng, sid, NULL);
    if (st->delivered && s->cb.on_close)
        s->cb.on_close(s->ud, sid, st->ud, code ? code : st->close_code);
    arc_h2__stream_free(s, st);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct arc_h2_session *s = user;

    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR &&
        !s->breach && !s->failed) {
        /* nghttp2 answered a connection error by itself inside mem_recv
         * (which then reported success): make it visible from here on. */
        s->failed = ARC_H2_E_PROTOCOL;
        return 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS && s->server) {
        struct arc_h2__stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st && st->rst_after_reply) {
            /* §8.1: a complete response, then "stop sending" without error. */
            st->rst_after_reply = false;
            int rv = nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
            return nghttp2_is_fatal(rv) ? rv : 0;
        }
        return 0;
    }
    if (f->hd.type != NGHTTP2_RST_STREAM || !s->server)
        return 0;
    /* Streams we had to reset (refused over the concurrency limit, malformed,
     * flow-control errors) cost us as much as the client's own resets: the
     * 2023 attack has a variant that provokes them instead. */
    struct arc_h2__stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (st && (st->owner_reset || st->charged))
        return 0;
    if (st)
        st->charged = true;
    /* We are inside mem_send: a breach queues GOAWAY and is reported by
     * arc_h2_breach() and the next arc_h2_recv(), not by failing the send. */
    if (!arc_h2_flood_charge(&s->flood, ARC_H2_FLOOD_RESET, s->now_ms(s->clock_ud)))
        (void)arc_h2__breach(s, ARC_H2_BREACH_RAPID_RESET);
    return 0;
}

static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *f, int err, void *user)
{
    struct arc_h2_session *s = user;
    struct arc_h2__stream *st;

    /* A request HEADERS that never left (GOAWAY arrived, ids ran out, the
     * owner reset it first). nghttp2 1.52 opens the stream before that check
     * and closes it with REFUSED_STREAM through on_stream_close; if a version
     * does not, no on_stream_close would come: close it here the same way
     * (REFUSED_STREAM tells the owner a retry elsewhere is safe). */
    if (s->server || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    for (st = s->streams; st; st = st->next)
        if (st->id == f->hd.stream_id)
            break;
    if (!st || nghttp2_session_get_stream_user_data(ng, st->id) == st)
        return 0;
    if (st->delivered && s->cb.on_close)
        s->cb.on_close(s->ud, st->id, st->ud, NGHTTP2_REFUSED_STREAM);
    arc_h2__stream_free(s, st);
    return 0;
}

/* ------------------------------------------------- outgoing bodies */

static ssize_t read_cb(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct arc_h2_session *s = user;
    struct arc_h2__stream *st = arc_h2__stream_find(s, sid);
    size_t n = 0;

    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    while (n < len && s->cb.read_body) {
        size_t k = s->cb.read_body(s->ud, sid, st->ud, buf + n, len - n);
        ARC_ASSERT(k <= len - n);
        if (k == 0)
            break;
        n += k;
    }
    /* Here n < len means the owner has nothing more queued right now. */
    if (n < len && st->body_ended) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->ntrailers) {
            /* nghttp2's documented way: trailers are submitted from inside
             * the provider so they cannot overtake the last DATA frame. */
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            int rv = nghttp2_submit_trailer(ng, sid, st->trailers, st->ntrailers);
            free(st->trailers);
            st->trailers = NULL;
            st->ntrailers = 0;
            if (rv != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        return (ssize_t)n;
    }
    if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

const nghttp2_data_provider arc_h2__provider = { .source = { .ptr = NULL },
                                                 .read_callback = read_cb };

/* ------------------------------------------------ outgoing headers */

struct arc_str arc_h2__find_host(const struct arc_h2_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (arc_str_ieq(h[i].name, "host", 4))
            return h[i].value;
    return arc_str_make(NULL, 0);
}

static struct arc_str trim_ows(struct arc_str v)
{
    while (v.len && (v.p[0] == ' ' || v.p[0] == '\t')) {
        v.p++;
        v.len--;
    }
    while (v.len && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t'))
        v.len--;
    return v;
}

/* RFC 9113 §8.2.2: connection-specific fields must not appear in HTTP/2;
 * a field nominated by Connection is connection-specific too (RFC 9110
 * §7.6.1). Host is carried by :authority. */
static bool drop_field(const struct arc_h2_header *f, const struct arc_h2_header *h, size_t n)
{
    struct arc_str name = f->name;

    if (name.len == 0 || name.p[0] == ':')
        return true;
    switch (name.len) {
    case 2:
        if (arc_str_ieq(name, "te", 2))
            return !arc_str_ieq(trim_ows(f->value), "trailers", 8);
        break;
    case 4:
        if (arc_str_ieq(name, "host", 4))
            return true;
        break;
    case 7:
        if (arc_str_ieq(name, "upgrade", 7))
            return true;
        break;
    case 10:
        if (arc_str_ieq(name, "connection", 10) || arc_str_ieq(name, "keep-alive", 10))
            return true;
        break;
    case 16:
        if (arc_str_ieq(name, "proxy-connection", 16))
            return true;
        break;
    case 17:
        if (arc_str_ieq(name, "transfer-encoding", 17))
            return true;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < n; i++)
        if (arc_str_ieq(h[i].name, "connection", 10) &&
            arc_h1_list_has(h[i].value, name.p, name.len))
            return true;
    return false;
}

nghttp2_nv *arc_h2__build_nv(const nghttp2_nv *pseudo, size_t np,
                             const struct arc_h2_header *h, size_t n,
                             bool copy_values, size_t *nout)
{
    size_t bytes = (np + n) * sizeof(nghttp2_nv);
    nghttp2_nv *nv;
    char *mem;
    size_t k = 0;

    for (size_t i = 0; i < np; i++)
        if (copy_values)
            bytes += pseudo[i].namelen + pseudo[i].valuelen;
    for (size_t i = 0; i < n; i++)
        bytes += h[i].name.len + (copy_values ? h[i].value.len : 0);
    nv = malloc(bytes ? bytes : 1);
    if (!nv)
        return NULL;
    mem = (char *)(nv + np + n);
    for (size_t i = 0; i < np; i++) {
        nv[k] = pseudo[i];
        if (copy_values) {
            memcpy(mem, pseudo[i].name, pseudo[i].namelen);
            nv[k].name = (uint8_t *)mem;
            mem += pseudo[i].namelen;
            if (pseudo[i].valuelen)
                memcpy(mem, pseudo[i].value, pseudo[i].valuelen);
            nv[k].value = (uint8_t *)mem;
            mem += pseudo[i].valuelen;
        }
        k++;
    }
    for (size_t i = 0; i < n; i++) {
        const struct arc_h2_header *f = &h[i];
        /* §8.2.1 forbids leading/trailing whitespace in values; HTTP/1
         * allows it as OWS, which carries no meaning: trim, don't drop. */
        struct arc_str value = trim_ows(f->value);
        char *name = mem;

        if (drop_field(f, h, n))
            continue;
        /* HTTP/2 field names are lower case (§8.2.1); HTTP/1 ones need not be. */
        for (size_t j = 0; j < f->name.len; j++) {
            unsigned char c = (unsigned char)f->name.p[j];
            name[j] = (char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
        }
        if (!nghttp2_check_header_name((const uint8_t *)name, f->name.len) ||
            !nghttp2_check_header_value_rfc9113((const uint8_t *)value.p, value.len))
            continue;
        mem += f->name.len;
        nv[k] = arc_h2__nv(name, f->name.len, value.p, value.len);
        if (copy_values) {
            if (value.len)
                memcpy(mem, value.p, value.len);
            nv[k].value = (uint8_t *)mem;
            mem += value.len;
        }
        k++;
    }
    *nout = k;
    return nv;
}

/* --------------------------------------------------------- session */

int arc_h2__session_new(const struct arc_h2_callbacks *cb, void *ud,
                        const struct arc_h2_options *opt, bool server,
                        struct arc_h2_session **out)
{
    static const struct arc_h2_options no_opt;
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *o = NULL;
    struct arc_h2_session *s;
    int rv;

    if (!opt)
        opt = &no_opt;
    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return ARC_H2_E_NOMEM;
    if (cb)
        s->cb = *cb;
    s->ud = ud;
    s->server = server;
    s->allow_connect = opt->allow_connect;
    s->allow_ext_connect = opt->allow_extended_connect;
    s->now_ms = opt->now_ms ? opt->now_ms : default_now_ms;
    s->rx.skip = server ? NGHTTP2_CLIENT_MAGIC_LEN : 0;
    s->clock_ud = opt->clock_ud;
    arc_h2_limits_resolve(opt->limits, &s->lim);
    arc_h2_flood_init(&s->flood, &s->lim, s->now_ms(s->clock_ud));
    s->ocap = opt->out_buf_size ? opt->out_buf_size : 16384;
    s->obuf = malloc(s->ocap);
    if (!s->obuf)
        goto nomem;

    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&o) != 0)
        goto nomem;
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback2(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);

    /* Windows open only when the owner consumes (flow control tied to the
     * other side's pace). */
    nghttp2_option_set_no_auto_window_update(o, 1);
    /* Let our CONTINUATION guard fire first (it names the reason); nghttp2's
     * own count stays as a backstop for header blocks it ignores. */
    nghttp2_option_set_max_continuations(o, s->lim.max_continuations == ARC_H2_UNLIMITED
                                                ? SIZE_MAX : (size_t)s->lim.max_continuations + 1);
    /* nghttp2's rapid-reset bucket (default burst 1000, 33/s) stays on as a
     * backstop but must not undercut ours: give it at least twice our rate. */
    if (server && s->lim.resets_per_sec != ARC_H2_UNLIMITED) {
        uint64_t r = 2ull * s->lim.resets_per_sec;
        nghttp2_option_set_stream_reset_rate_limit(o, ARC_MAX(r, 1000u), ARC_MAX(r, 33u));
    }
    nghttp2_option_set_max_deflate_dynamic_table_size(o, opt->encoder_table_size);
    if (server)
        rv = nghttp2_session_server_new2(&s->ng, cbs, s, o);
    else
        rv = nghttp2_session_client_new2(&s->ng, cbs, s, o);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(o);
    cbs = NULL;
    o = NULL;
    if (rv != 0)
        goto nomem;

    nghttp2_settings_entry iv[6];
    size_t niv = 0;
    iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                          s->lim.max_concurrent_streams };
    iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                          s->lim.stream_window };
    iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
                                          s->lim.max_header_list_size };
    /* RFC 9218 priorities or none: nghttp2 then keeps no RFC 7540 tree. */
    iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 };
    if (!server)
        iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
    if (server && s->allow_ext_connect)
        iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 };
    if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
        nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)s->lim.conn_window) != 0)
        goto nomem;
    *out = s;
    return 0;

nomem:
    if (cbs)
        nghttp2_session_callbacks_del(cbs);
    if (o)
        nghttp2_option_del(o);
    arc_h2_free(s);
    return ARC_H2_E_NOMEM;
}

void arc_h2_free(struct arc_h2_session *s)
{
    if (!s)
        return;
    while (s->streams)
        arc_h2__stream_free(s, s->streams);
    if (s->ng)
        nghttp2_session_del(s->ng);
    free(s->obuf);
    free(s->scratch);
    free(s->cookie);
    free(s);
}

/* ------------------------------------------------------- byte pumps */

static int fail(struct arc_h2_session *s, int err)
{
    if (!s->failed)
        s->failed = err;
    return err;
}

/* A frame's last byte arrived (server framing, see struct rx). */
static void frame_done(struct arc_h2_session *s)
{
    if (s->rx.block_frame && s->rx.end_headers)
        s->rx.open = false;
    s->rx.block_frame = false;
}

/* Follows the client's framing over bytes nghttp2 has taken: the preface,
 * then 9-byte frame headers and payloads skipped whole. Only frame
 * headers are looked at, so this costs a few steps per frame. */
static void track_frames(struct arc_h2_session *s, const uint8_t *p, size_t len)
{
    while (len) {
        if (s->rx.skip || s->rx.left) {
            uint32_t *n = s->rx.skip ? &s->rx.skip : &s->rx.left;
            size_t k = ARC_MIN(len, (size_t)*n);
            *n -= (uint32_t)k;
            p += k;
            len -= k;
            if (n == &s->rx.left && *n == 0)
                frame_done(s);
            continue;
        }
        if (s->rx.hn == 0)
            s->rx.hd_ms = s->now_ms(s->clock_ud);
        s->rx.hd[s->rx.hn++] = *p++;
        len--;
        if (s->rx.hn < 9)
            continue;
        const uint8_t *h = s->rx.hd;
        uint8_t type = h[3];
        s->rx.hn = 0;
        s->rx.left = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        s->rx.block_frame = type == NGHTTP2_HEADERS || type == NGHTTP2_CONTINUATION;
        s->rx.end_headers = h[4] & NGHTTP2_FLAG_END_HEADERS;
        if (type == NGHTTP2_HEADERS) {
            s->rx.open = true;
            s->rx.sid = (int32_t)((uint32_t)(h[5] & 0x7f) << 24 | (uint32_t)h[6] << 16 |
                                  (uint32_t)h[7] << 8 | h[8]);
            s->rx.since_ms = s->rx.hd_ms;
        } else if (!s->rx.block_frame) {
            s->rx.open = false;     /* (inside a block this is a connection error) */
        }
        if (s->rx.left == 0)
            frame_done(s);
    }
}

int32_t arc_h2_open_header_block(const struct arc_h2_session *s, uint64_t *since_ms, bool *taken)
{
    bool open = s->server && s->rx.open;
    if (since_ms)
        *since_ms = open ? s->rx.since_ms : 0;
    if (taken)
        *taken = open && s->taken_sid == s->rx.sid;
    return open ? s->rx.sid : 0;
}

int arc_h2_recv(struct arc_h2_session *s, const uint8_t *p, size_t len)
{
    ssize_t rv;

    if (s->failed)
        return s->failed;
    if (s->breach)
        return fail(s, ARC_H2_E_FLOOD);   /* tripped while sending */
    rv = nghttp2_session_mem_recv(s->ng, p, len);
    if (rv >= 0 && s->server)
        track_frames(s, p, (size_t)rv);
    if (rv >= 0)
        return s->breach ? fail(s, ARC_H2_E_FLOOD) : 0;
    if (s->breach)
        return fail(s, ARC_H2_E_FLOOD);
    if (s->nomem || rv == NGHTTP2_ERR_NOMEM)
        return fail(s, ARC_H2_E_NOMEM);
    switch (rv) {
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
        (void)arc_h2__breach(s, ARC_H2_BREACH_CONTINUATION_FLOOD);
        return fail(s, ARC_H2_E_FLOOD);
    case NGHTTP2_ERR_FLOODED:
        (void)arc_h2__breach(s, ARC_H2_BREACH_OUTBOUND_FLOOD);
        return fail(s, ARC_H2_E_FLOOD);
    default:
        /* e.g. a bad client preface: nghttp2 did not queue GOAWAY itself. */
        nghttp2_session_terminate_session(s->ng, NGHTTP2_PROTOCOL_ERROR);
        return fail(s, ARC_H2_E_PROTOCOL);
    }
}

size_t arc_h2_output(struct arc_h2_session *s, const uint8_t **p)
{
    if (s->olen > s->ooff) {
        *p = s->obuf + s->ooff;
        return s->olen - s->ooff;
    }
    if (s->held_len) {
        *p = s->held;
        return s->held_len;
    }
    s->ooff = s->olen = 0;
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(s->ng, &d);

        if (n < 0) {
            fail(s, n == NGHTTP2_ERR_NOMEM ? ARC_H2_E_NOMEM : ARC_H2_E_PROTOCOL);
            break;
        }
        if (n == 0)
            break;
        /* Large frames go out from nghttp2's own buffer; it stays put until
         * the next mem_send, which we only make once everything is sent. */
        if ((size_t)n >= ARC_H2__DIRECT_MIN || (size_t)n > s->ocap - s->olen) {
            s->held = d;
            s->held_len = (size_t)n;
            break;
        }
        memcpy(s->obuf + s->olen, d, (size_t)n);
        s->olen += (size_t)n;
    }
    if (s->olen) {
        *p = s->obuf;
        return s->olen;
    }
    *p = s->held;
    return s->held_len;
}

void arc_h2_sent(struct arc_h2_session *s, size_t n)
{
    if (s->olen > s->ooff) {
        ARC_ASSERT(n <= s->olen - s->ooff);
        s->ooff += n;
        if (s->ooff == s->olen)
            s->ooff = s->olen = 0;
        return;
    }
    ARC_ASSERT(n <= s->held_len);
    s->held += n;
    s->held_len -= n;
}

bool arc_h2_want_write(const struct arc_h2_session *s)
{
    return s->olen > s->ooff || s->held_len || nghttp2_session_want_write(s->ng);
}

bool arc_h2_want_read(const struct arc_h2_session *s)
{
    return !s->failed && !s->breach && nghttp2_session_want_read(s->ng);
}

int arc_h2_shutdown(struct arc_h2_session *s)
{
    int rv = nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                                   nghttp2_session_get_last_proc_stream_id(s->ng),
                                   NGHTTP2_NO_ERROR, NULL, 0);
    return rv == 0 ? 0 : rv == NGHTTP2_ERR_NOMEM ? ARC_H2_E_NOMEM : ARC_H2_E_CLOSED;
}

enum arc_h2_breach arc_h2_breach(const struct arc_h2_session *s)
{
    return s->breach;
}

bool arc_h2_goaway_received(const struct arc_h2_session *s, int32_t *last_sid)
{
    if (s->goaway_rx && last_sid)
        *last_sid = s->goaway_last;
    return s->goaway_rx;
}

uint32_t arc_h2_peer_max_concurrent_streams(const struct arc_h2_session *s)
{
    return nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

uint32_t arc_h2_open_streams(const struct arc_h2_session *s)
{
    return s->n_open;
}

/* --------------------------------------------------- stream calls */

int arc_h2_resume(struct arc_h2_session *s, int32_t sid)
{
    struct arc_h2__stream *st = arc_h2__stream_find(s, sid);

    if (!st || !st->has_provider)
        return ARC_H2_E_STREAM;
    /* INVALID_ARGUMENT just means "not deferred right now": nothing to do. */
    int rv = nghttp2_session_resume_data(s->ng, sid);
    return nghttp2_is_fatal(rv) ? ARC_H2_E_NOMEM : 0;
}

int arc_h2_end_body(struct arc_h2_session *s, int32_t sid,
                    const struct arc_h2_header *trailers, size_t n)
{
    struct arc_h2__stream *st = arc_h2__stream_find(s, sid);

    if (!st || !st->has_provider || st->body_ended)
        return ARC_H2_E_STREAM;
    if (n) {
        size_t nt = 0;
        nghttp2_nv *nv = arc_h2__build_nv(NULL, 0, trailers, n, true, &nt);
        if (!nv)
            return ARC_H2_E_NOMEM;
        if (nt == 0)
            free(nv);
        else {
            st->trailers = nv;
            st->ntrailers = nt;
        }
    }
    st->body_ended = true;
    return arc_h2_resume(s, sid);
}

int arc_h2_consume(struct arc_h2_session *s, int32_t sid, size_t n)
{
    struct arc_h2__stream *st = arc_h2__stream_find(s, sid);

    if (!st)
        return 0;
    n = ARC_MIN(n, st->unconsumed);
    if (!n)
        return 0;
    st->unconsumed -= n;
    int rv = nghttp2_session_consume_stream(s->ng, sid, n);
    return nghttp2_is_fatal(rv) ? ARC_H2_E_NOMEM : 0;
}

int arc_h2_reset(struct arc_h2_session *s, int32_t sid, uint32_t error_code)
{
    struct arc_h2__stream *st = arc_h2__stream_find(s, sid);

    if (!st)
        return ARC_H2_E_STREAM;
    st->owner_reset = true;
    int rv = nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, sid, error_code);
    return rv == 0 ? 0 : rv == NGHTTP2_ERR_NOMEM ? ARC_H2_E_NOMEM : ARC_H2_E_STREAM;
}
