/*
 * Server role: turning received request heads into the neutral view
 * (RFC 9113 §8.3.1 :authority/Host, §8.2.3 cookie crumbs), the answers the
 * module gives on its own, responses, and the h2c upgrade entry.
 *
 * Answers the module gives itself (the owner never sees these streams):
 *   400  Host differs from :authority, or repeated differing Host fields
 *   405  CONNECT when options.allow_connect is off
 *   431  header list over limits.max_header_list_size
 * Each goes out with END_STREAM; if the client has not finished its request,
 * RST_STREAM(NO_ERROR) follows once the answer is sent (§8.1: "a complete response ... then
 * RST_STREAM with NO_ERROR"). Each is charged to the reset budget, so a
 * client cannot use malformed requests to dodge the rapid-reset guard.
 */
#include <stdio.h>
#include <stdlib.h>

#include "http2/http2_int.h"

static int submit_head(struct arc_h2_session *s, int32_t sid, int status,
                       const struct arc_h2_header *h, size_t n, bool has_body, bool final)
{
    char code[4];
    size_t nnv = 0;
    nghttp2_nv *nv;
    int rv;

    if (status < 100 || status > 999 || (final && status < 200) || (!final && status >= 200))
        return ARC_H2_E_INVAL;
    snprintf(code, sizeof(code), "%d", status);
    nghttp2_nv ps = arc_h2__nv(":status", 7, code, 3);
    nv = arc_h2__build_nv(&ps, 1, h, n, false, &nnv);
    if (!nv)
        return ARC_H2_E_NOMEM;
    if (final)
        rv = nghttp2_submit_response(s->ng, sid, nv, nnv, has_body ? &arc_h2__provider : NULL);
    else
        rv = nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, sid, NULL, nv, nnv, NULL);
    free(nv);
    if (rv == NGHTTP2_ERR_NOMEM)
        return ARC_H2_E_NOMEM;
    return rv == 0 ? 0 : ARC_H2_E_STREAM;
}

int arc_h2_submit_response(struct arc_h2_session *s, int32_t sid, int status,
                           const struct arc_h2_header *hdrs, size_t n, bool has_body)
{
    struct arc_h2__stream *st = arc_h2__stream_find(s, sid);
    int rv;

    if (!s->server || !st || !st->delivered || st->replied)
        return ARC_H2_E_STREAM;
    rv = submit_head(s, sid, status, hdrs, n, has_body, true);
    if (rv == 0) {
        st->replied = true;
        st->has_provider = has_body;
    }
    return rv;
}

int arc_h2_submit_informational(struct arc_h2_session *s, int32_t sid, int status,
                                const struct arc_h2_header *hdrs, size_t n)
{
    struct arc_h2__stream *st = arc_h2__stream_find(s, sid);

    if (!s->server || !st || !st->delivered || st->replied)
        return ARC_H2_E_STREAM;
    return submit_head(s, sid, status, hdrs, n, false, false);
}

/* Answers `st` ourselves (see the top of the file). */
static int local_reject(struct arc_h2_session *s, struct arc_h2__stream *st, int status,
                        bool request_ended)
{
    static const struct arc_h2_header allow[] = { { ARC_STR_LIT("allow"),
                                                    ARC_STR_LIT("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH") } };
    static const struct arc_h2_header none[] = { { ARC_STR_LIT("content-length"), ARC_STR_LIT("0") } };
    const struct arc_h2_header *h = status == 405 ? allow : none;
    char code[4];
    size_t nnv = 0;
    nghttp2_nv *nv;

    st->local_reject = true;
    st->charged = true;
    arc_h2__fields_clear(st);
    if (arc_h2__charge(s, ARC_H2_FLOOD_RESET) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    snprintf(code, sizeof(code), "%d", status);
    nghttp2_nv ps = arc_h2__nv(":status", 7, code, 3);
    nv = arc_h2__build_nv(&ps, 1, h, 1, false, &nnv);
    if (!nv) {
        s->nomem = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    int rv = nghttp2_submit_response(s->ng, st->id, nv, nnv, NULL);
    free(nv);
    /* The RST goes out once the answer has (on_frame_send): submitted now,
     * nghttp2 would send it first and drop the answer. */
    st->rst_after_reply = !request_ended;
    if (nghttp2_is_fatal(rv)) {
        s->nomem = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

/* Joins the cookie crumbs of st's fields into s->cookie ("a=1; b=2").
 * Returns false on allocation failure. */
static bool join_cookies(struct arc_h2_session *s, const struct arc_h2__stream *st,
                         struct arc_str *out)
{
    size_t total = 0, k = 0;

    for (size_t i = 0; i < st->nf; i++) {
        struct arc_str n = arc_h2__rc(st->f[i].name);
        if (arc_str_eq(n, "cookie", 6))
            total += arc_h2__rc(st->f[i].value).len + 2;
    }
    if (total > s->cookie_cap) {
        char *p = realloc(s->cookie, total);
        if (!p)
            return false;
        s->cookie = p;
        s->cookie_cap = total;
    }
    for (size_t i = 0; i < st->nf; i++) {
        struct arc_str n = arc_h2__rc(st->f[i].name), v;
        if (!arc_str_eq(n, "cookie", 6))
            continue;
        v = arc_h2__rc(st->f[i].value);
        if (k) {
            memcpy(s->cookie + k, "; ", 2);
            k += 2;
        }
        memcpy(s->cookie + k, v.p, v.len);
        k += v.len;
    }
    *out = arc_str_make(s->cookie, k);
    return true;
}

static int on_request_head(struct arc_h2_session *s, struct arc_h2__stream *st, bool end)
{
    struct arc_h2_request req = { .content_length = -1, .end_stream = end };
    struct arc_str host = { 0 }, cookie = { 0 };
    bool has_authority = false, bad_host = false, has_host = false, cookie_done = false;
    size_t n = 0;

    st->head_seen = true;
    if (s->taken_sid == st->id)
        s->taken_sid = 0;
    if (st->refused) {
        arc_h2__fields_clear(st);
        return 0;
    }
    if (st->too_large)
        return local_reject(s, st, 431, end);
    if (!arc_h2__scratch_reserve(s, st->nf) || !join_cookies(s, st, &cookie)) {
        s->nomem = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    for (size_t i = 0; i < st->nf; i++) {
        struct arc_str name = arc_h2__rc(st->f[i].name), value = arc_h2__rc(st->f[i].value);

        if (name.len && name.p[0] == ':') {
            /* nghttp2 has already checked presence, uniqueness and syntax of
             * the pseudo-fields (§8.3.1). */
            if (arc_str_eq(name, ":method", 7))
                req.method = value;
            else if (arc_str_eq(name, ":scheme", 7))
                req.scheme = value;
            else if (arc_str_eq(name, ":path", 5))
                req.path = value;
            else if (arc_str_eq(name, ":protocol", 9))
                req.protocol = value;
            else if (arc_str_eq(name, ":authority", 10)) {
                req.authority = value;
                has_authority = true;
            }
            continue;
        }
        if (arc_str_eq(name, "host", 4)) {
            if (has_host && !arc_str_ieq(host, value.p, value.len))
                bad_host = true;
            host = value;
            has_host = true;
            continue;
        }
        if (arc_str_eq(name, "cookie", 6)) {
            if (cookie_done)
                continue;
            cookie_done = true;
            value = cookie;
        } else if (arc_str_eq(name, "content-length", 14)) {
            /* nghttp2 validated the digits and will hold DATA to them. */
            int64_t v = 0;
            for (size_t j = 0; j < value.len && v <= (INT64_MAX - 9) / 10; j++)
                v = v * 10 + (value.p[j] - '0');
            req.content_length = v;
        }
        s->scratch[n++] = (struct arc_h2_header){ name, value };
    }
    /* §8.3.1: Host alone stands in for :authority; both present must agree,
     * or the request is malformed (a proxy routing on one and forwarding the
     * other is a classic confusion). */
    if (has_host) {
        if (bad_host || (has_authority && !arc_str_ieq(req.authority, host.p, host.len)))
            return local_reject(s, st, 400, end);
        if (!has_authority)
            req.authority = host;
    }
    if (arc_str_eq(req.method, "CONNECT", 7) &&
        (req.protocol.len ? !s->allow_ext_connect : !s->allow_connect))
        return local_reject(s, st, 405, end);
    req.headers = s->scratch;
    req.n_headers = n;

    /* Delivered before the call so the owner can answer from inside it. */
    arc_h2__set_delivered(s, st, true);
    int refuse = s->cb.on_request ? s->cb.on_request(s->ud, st->id, &req, &st->ud) : 1;
    arc_h2__fields_clear(st);
    if (refuse) {
        arc_h2__set_delivered(s, st, false);
        st->owner_reset = true;
        int rv = nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id,
                                           NGHTTP2_REFUSED_STREAM);
        return nghttp2_is_fatal(rv) ? rv : 0;
    }
    if (end && arc_h2__live(st) && s->cb.on_end)
        s->cb.on_end(s->ud, st->id, st->ud);
    return 0;
}

int arc_h2__server_on_headers(struct arc_h2_session *s, const nghttp2_frame *f,
                              struct arc_h2__stream *st)
{
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

    if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
        return on_request_head(s, st, end);
    /* Trailers: nghttp2 has checked they end the stream and carry no
     * pseudo-fields. */
    if (!arc_h2__live(st)) {
        arc_h2__fields_clear(st);
        return 0;
    }
    if (st->too_large) {
        arc_h2__fields_clear(st);
        int rv = nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id,
                                           NGHTTP2_ENHANCE_YOUR_CALM);
        return nghttp2_is_fatal(rv) ? rv : 0;
    }
    if (!arc_h2__scratch_reserve(s, st->nf)) {
        s->nomem = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    for (size_t i = 0; i < st->nf; i++)
        s->scratch[i] = (struct arc_h2_header){ arc_h2__rc(st->f[i].name),
                                                arc_h2__rc(st->f[i].value) };
    if (s->cb.on_trailers)
        s->cb.on_trailers(s->ud, st->id, st->ud, s->scratch, st->nf);
    arc_h2__fields_clear(st);
    if (end && s->cb.on_end)
        s->cb.on_end(s->ud, st->id, st->ud);
    return 0;
}

/* ------------------------------------------------------------ create */

enum arc_h2_sniff arc_h2_sniff_preface(const uint8_t *p, size_t len)
{
    size_t n = ARC_MIN(len, (size_t)NGHTTP2_CLIENT_MAGIC_LEN);

    if (n && memcmp(p, NGHTTP2_CLIENT_MAGIC, n) != 0)
        return ARC_H2_SNIFF_HTTP1;
    return n == NGHTTP2_CLIENT_MAGIC_LEN ? ARC_H2_SNIFF_H2 : ARC_H2_SNIFF_NEED_MORE;
}

int arc_h2_server_new(const struct arc_h2_callbacks *cb, void *ud,
                      const struct arc_h2_options *opt, struct arc_h2_session **out)
{
    return arc_h2__session_new(cb, ud, opt, true, out);
}

int arc_h2_server_new_upgrade(const struct arc_h2_callbacks *cb, void *ud,
                              const struct arc_h2_options *opt,
                              const uint8_t *settings, size_t settings_len,
                              struct arc_str method, void *sud1,
                              struct arc_h2_session **out)
{
    struct arc_h2_session *s;
    struct arc_h2__stream *st;
    int rv = arc_h2__session_new(cb, ud, opt, true, &s);

    if (rv != 0)
        return rv;
    st = arc_h2__stream_new(s, 1);
    if (!st) {
        arc_h2_free(s);
        return ARC_H2_E_NOMEM;
    }
    st->ud = sud1;
    arc_h2__set_delivered(s, st, true);
    st->head_seen = true;
    /* Stream 1 opens half-closed (remote): the HTTP/1 request was the whole
     * request. HEAD matters for nghttp2's content-length checks. */
    rv = nghttp2_session_upgrade2(s->ng, settings, settings_len,
                                  arc_str_eq(method, "HEAD", 4), st);
    /* nghttp2 keeps the stream user data only for the client side of an
     * upgrade; set ours explicitly. */
    if (rv == 0)
        rv = nghttp2_session_set_stream_user_data(s->ng, 1, st);
    if (rv != 0) {
        arc_h2_free(s);
        return rv == NGHTTP2_ERR_NOMEM ? ARC_H2_E_NOMEM : ARC_H2_E_INVAL;
    }
    *out = s;
    return 0;
}
