/*
 * Client role (upstream connections): submitting requests, sorting received
 * HEADERS into interim responses, the final response and trailers, and the
 * facts a connection pool needs to decide whether a connection can take
 * another exchange.
 */
#include <stdlib.h>

#include "http2/http2_int.h"

int32_t arc_h2_submit_request(struct arc_h2_session *s, const struct arc_h2_request *req,
                              bool has_body, void *sud)
{
    struct arc_str authority = req->authority;
    bool connect = arc_str_eq(req->method, "CONNECT", 7);
    nghttp2_nv ps[4];
    size_t np = 0, nnv = 0;
    struct arc_h2__stream *st;
    nghttp2_nv *nv;
    int32_t sid;

    if (s->server || !req->method.len)
        return ARC_H2_E_INVAL;
    if (s->failed || s->breach || s->goaway_rx)
        return ARC_H2_E_REFUSED;
    if (!authority.len)
        authority = arc_h2__find_host(req->headers, req->n_headers);
    /* §8.3.1 / §8.5: CONNECT carries only :method and :authority. An
     * authority is required for every request: servers (nghttp2 among them)
     * treat a request with neither :authority nor Host as malformed. */
    if (!authority.len || (!connect && (!req->scheme.len || !req->path.len)))
        return ARC_H2_E_INVAL;
    ps[np++] = arc_h2__nv(":method", 7, req->method.p, req->method.len);
    if (!connect)
        ps[np++] = arc_h2__nv(":scheme", 7, req->scheme.p, req->scheme.len);
    ps[np++] = arc_h2__nv(":authority", 10, authority.p, authority.len);
    if (!connect)
        ps[np++] = arc_h2__nv(":path", 5, req->path.p, req->path.len);
    nv = arc_h2__build_nv(ps, np, req->headers, req->n_headers, false, &nnv);
    if (!nv)
        return ARC_H2_E_NOMEM;
    st = arc_h2__stream_new(s, 0);
    if (!st) {
        free(nv);
        return ARC_H2_E_NOMEM;
    }
    st->ud = sud;
    arc_h2__set_delivered(s, st, true);
    st->has_provider = has_body;
    sid = nghttp2_submit_request(s->ng, NULL, nv, nnv, has_body ? &arc_h2__provider : NULL, st);
    free(nv);
    if (sid < 0) {
        arc_h2__stream_free(s, st);
        if (sid == NGHTTP2_ERR_NOMEM)
            return ARC_H2_E_NOMEM;
        return sid == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? ARC_H2_E_REFUSED : ARC_H2_E_INVAL;
    }
    st->id = sid;
    return sid;
}

bool arc_h2_can_submit(const struct arc_h2_session *s)
{
    if (s->server || s->failed || s->breach || s->goaway_rx)
        return false;
    /* check_request_allowed: no GOAWAY sent or received, ids left. */
    return nghttp2_session_check_request_allowed(s->ng) &&
           arc_h2_open_streams(s) < arc_h2_peer_max_concurrent_streams(s);
}

int arc_h2__client_on_headers(struct arc_h2_session *s, const nghttp2_frame *f,
                              struct arc_h2__stream *st)
{
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    struct arc_h2_response resp = { .content_length = -1, .end_stream = end };
    size_t n = 0;

    if (!arc_h2__live(st)) {
        arc_h2__fields_clear(st);           /* reset, or already failed: RST on its way */
        return 0;
    }
    if (st->too_large) {
        /* The owner sees on_close(INTERNAL_ERROR) and answers 502, even if
         * the peer's END_STREAM closes the stream before our reset leaves. */
        arc_h2__fields_clear(st);
        st->owner_reset = true;
        st->close_code = NGHTTP2_INTERNAL_ERROR;
        int rv = nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id,
                                           NGHTTP2_INTERNAL_ERROR);
        return nghttp2_is_fatal(rv) ? rv : 0;
    }
    if (!arc_h2__scratch_reserve(s, st->nf)) {
        s->nomem = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    for (size_t i = 0; i < st->nf; i++) {
        struct arc_str name = arc_h2__rc(st->f[i].name), value = arc_h2__rc(st->f[i].value);

        if (arc_str_eq(name, ":status", 7)) {
            /* nghttp2 has checked it is exactly three digits. */
            resp.status = (value.p[0] - '0') * 100 + (value.p[1] - '0') * 10 + (value.p[2] - '0');
            continue;
        }
        if (arc_str_eq(name, "content-length", 14)) {
            int64_t v = 0;
            for (size_t j = 0; j < value.len && v <= (INT64_MAX - 9) / 10; j++)
                v = v * 10 + (value.p[j] - '0');
            resp.content_length = v;
        }
        s->scratch[n++] = (struct arc_h2_header){ name, value };
    }
    resp.headers = s->scratch;
    resp.n_headers = n;
    if (!st->head_seen && (resp.status < 100 || resp.status == 101)) {
        /* nghttp2 accepts any three digits; "000" or 101 (which RFC 9113
         * §8.6 rules out) would read as an interim response. Malformed
         * (§8.1.1): reset, and tell the owner so. */
        arc_h2__fields_clear(st);
        st->owner_reset = true;
        st->close_code = NGHTTP2_PROTOCOL_ERROR;
        int rv = nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id,
                                           NGHTTP2_PROTOCOL_ERROR);
        return nghttp2_is_fatal(rv) ? rv : 0;
    }
    if (st->head_seen) {
        /* A HEADERS frame after the final response: trailers (gRPC puts
         * grpc-status here), reported apart from the head. */
        if (s->cb.on_trailers)
            s->cb.on_trailers(s->ud, st->id, st->ud, s->scratch, n);
    } else if (resp.status < 200) {
        if (s->cb.on_informational)
            s->cb.on_informational(s->ud, st->id, st->ud, &resp);
    } else {
        st->head_seen = true;
        if (s->cb.on_response)
            s->cb.on_response(s->ud, st->id, st->ud, &resp);
    }
    arc_h2__fields_clear(st);
    if (end && s->cb.on_end)
        s->cb.on_end(s->ud, st->id, st->ud);
    return 0;
}

int arc_h2_client_new(const struct arc_h2_callbacks *cb, void *ud,
                      const struct arc_h2_options *opt, struct arc_h2_session **out)
{
    return arc_h2__session_new(cb, ud, opt, false, out);
}
