/*
 * Building the heads Arc sends: the request head to the upstream and the
 * response head to the client, plus redirects. This is where hop-by-hop
 * fields are removed (RFC 9110 §7.6.1), forwarding fields added, route
 * header operations applied and framing re-declared.
 *
 * Framing is always re-declared by Arc, never copied: Content-Length and
 * Transfer-Encoding from the peer are dropped and the one framing we
 * validated is written back. That way a head we send can never carry the
 * ambiguity we rejected on input.
 */
#include "proxy/proxy_int.h"
#include "core/sbuf.h"
#include "net/net.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static bool name_is(struct arc_str n, const char *lit)
{
    return arc_str_ieq(n, lit, strlen(lit));
}

/* The Connection field values of one head, gathered in one pass so that
 * filtering every field against them stays linear in the head's size. */
#define CONN_VALUES_MAX 8
struct conn_values {
    struct arc_str v[CONN_VALUES_MAX];
    size_t n;
    bool overflow;                      /* too many to gather: scan the head */
    const struct arc_hdr *req;          /* the head's fields (one of the two) */
    const struct arc_h1_header *resp;
    size_t n_all;
};

static struct arc_str cv_name(const struct conn_values *cv, size_t i)
{
    return cv->req ? cv->req[i].name : cv->resp[i].name;
}

static struct arc_str cv_value(const struct conn_values *cv, size_t i)
{
    return cv->req ? cv->req[i].value : cv->resp[i].value;
}

static void conn_values_gather(struct conn_values *cv)
{
    cv->n = 0;
    cv->overflow = false;
    for (size_t i = 0; i < cv->n_all; i++) {
        if (!name_is(cv_name(cv, i), "connection"))
            continue;
        if (cv->n == CONN_VALUES_MAX) {
            cv->overflow = true;
            return;
        }
        cv->v[cv->n++] = cv_value(cv, i);
    }
}

/* Is `name` listed in a Connection field (so hop-by-hop for this hop)? */
static bool conn_listed(const struct conn_values *cv, struct arc_str name)
{
    if (cv->overflow) {
        for (size_t i = 0; i < cv->n_all; i++)
            if (name_is(cv_name(cv, i), "connection") &&
                arc_h1_list_has(cv_value(cv, i), name.p, name.len))
                return true;
        return false;
    }
    for (size_t i = 0; i < cv->n; i++)
        if (arc_h1_list_has(cv->v[i], name.p, name.len))
            return true;
    return false;
}

static bool op_touches(const struct arc_header_op *ops, size_t n, struct arc_str name)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].op != ARC_HDR_ADD && name_is(name, ops[i].name))
            return true;
    return false;
}

/* Decimal without printf: heads are built for every request. */
static void append_u64(struct arc_sbuf *b, unsigned long long v)
{
    char tmp[20];
    arc_sbuf_append(b, tmp, (size_t)(arc_put_u64(tmp, v) - tmp));
}

static void append_cstr(struct arc_sbuf *b, const char *s)
{
    arc_sbuf_append(b, s, strlen(s));
}

static void append_str(struct arc_sbuf *b, struct arc_str v)
{
    if (v.len)
        arc_sbuf_append(b, v.p, v.len);
}

/* The value of $variable `var` for this exchange (config.h enum arc_var). */
static void append_var(struct arc_sbuf *b, struct arc_exchange *ex, int var)
{
    const struct arc_req *q = &ex->req;
    char ip[ARC_PX_PEER_TEXT];
    switch (var) {
    case ARC_VAR_HOST:
        append_str(b, q->authority);
        break;
    case ARC_VAR_CLIENT_IP:
        append_cstr(b, arc_px__peer_text(ex->client, ip));
        break;
    case ARC_VAR_CLIENT_PORT: {
        const struct sockaddr *sa = arc_px__peer_addr(ex->client);
        if (sa)
            append_u64(b, ntohs(sa->sa_family == AF_INET6
                                    ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                    : ((const struct sockaddr_in *)sa)->sin_port));
        break;
    }
    case ARC_VAR_SCHEME:
        append_str(b, q->scheme);
        break;
    case ARC_VAR_METHOD:
        append_str(b, q->method);
        break;
    case ARC_VAR_PATH:
        append_str(b, q->path);
        break;
    case ARC_VAR_QUERY:
        append_str(b, q->query);
        break;
    case ARC_VAR_REQUEST_URI:
        append_str(b, q->path);
        if (q->query.len) {
            arc_sbuf_append(b, "?", 1);
            append_str(b, q->query);
        }
        break;
    case ARC_VAR_ROUTE:
        if (ex->route)
            append_cstr(b, ex->route->conf->name);
        break;
    case ARC_VAR_REQUEST_ID:
        arc_sbuf_append(b, ex->rid, ex->rid_len);
        break;
    }
}

/* Appends template t with its $variables expanded ($$ is a '$'); a '$'
 * not starting a known name is itself (the config checked the names).
 * {name} captures are expanded only where the caller passes them. */
static void expand(struct arc_sbuf *b, struct arc_exchange *ex, const char *t,
                   const struct arc_rt_captures *caps)
{
    while (*t) {
        const char *lit = t;
        while (*t && *t != '$' && !(caps && *t == '{'))
            t++;
        if (t > lit)
            arc_sbuf_append(b, lit, (size_t)(t - lit));
        if (!*t)
            break;
        if (*t == '{') {
            const char *end = strchr(t, '}');
            if (!end) {
                append_cstr(b, t);
                break;
            }
            const char *name = t + 1;
            size_t nl = (size_t)(end - name);
            for (size_t i = 0; i < caps->n; i++)
                if (caps->v[i].name.len == nl && memcmp(caps->v[i].name.p, name, nl) == 0) {
                    append_str(b, caps->v[i].value);
                    break;
                }
            t = end + 1;
            continue;
        }
        if (t[1] == '$') {
            arc_sbuf_append(b, "$", 1);
            t += 2;
            continue;
        }
        size_t n = 0;
        if (isalpha((unsigned char)t[1]) || t[1] == '_')
            while (isalnum((unsigned char)t[1 + n]) || t[1 + n] == '_')
                n++;
        int var = n ? arc_var_lookup(t + 1, n) : -1;
        if (var < 0) {
            arc_sbuf_append(b, t, 1 + n);
        } else {
            append_var(b, ex, var);
        }
        t += 1 + n;
    }
}

static void emit_ops(struct arc_sbuf *b, struct arc_exchange *ex,
                     const struct arc_header_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].op == ARC_HDR_REMOVE)
            continue;
        append_cstr(b, ops[i].name);
        arc_sbuf_append(b, ": ", 2);
        if (ops[i].vars)
            expand(b, ex, ops[i].value, NULL);
        else if (ops[i].value)
            append_cstr(b, ops[i].value);
        arc_sbuf_append(b, "\r\n", 2);
    }
}

static void emit(struct arc_sbuf *b, struct arc_str name, struct arc_str value)
{
    arc_sbuf_append(b, name.p, name.len);
    arc_sbuf_append(b, ": ", 2);
    arc_sbuf_append(b, value.p, value.len);
    arc_sbuf_append(b, "\r\n", 2);
}

/* Is the client one of this route's trusted_proxies? Decided per request:
 * requests on one connection may hit routes with different lists. */
static bool peer_trusted(struct arc_conn *c, const struct arc_route_conf *rc)
{
    if (rc->n_trusted_proxies == 0)
        return false;
    const struct sockaddr *peer = arc_px__peer_addr(c);
    if (!peer)
        return false;
    for (size_t i = 0; i < rc->n_trusted_proxies; i++)
        if (arc_config_cidr_contains(&rc->trusted_proxies[i], peer))
            return true;
    return false;
}

/* What the request builders share: which incoming fields go upstream as
 * they are, and the incoming forwarding values that are kept. */
struct fwd {
    const struct arc_exchange *ex;
    const struct arc_route_conf *rc;
    bool trusted;
    struct conn_values cv;
    struct arc_sbuf xff, via;           /* incoming values kept (trusted XFF, every Via) */
    bool have_host, have_xfp;
};

static void fwd_init(struct fwd *f, struct arc_exchange *ex)
{
    const struct arc_route_conf *rc = ex->route->conf;
    *f = (struct fwd){ .ex = ex, .rc = rc };
    /* X-Forwarded-For and X-Forwarded-Proto from a client are only
     * believed when it is one of the route's trusted_proxies; from anyone
     * else they are replaced, so an upstream that trusts the leftmost
     * address cannot be spoofed. Decided per request: requests on one
     * connection may hit routes with different lists. */
    f->trusted = (rc->xff || rc->xfp) && peer_trusted(ex->client, rc);
    f->cv = (struct conn_values){ .req = ex->req.hdrs, .n_all = ex->req.n_hdrs };
    conn_values_gather(&f->cv);
}

/* True: forward the field as it is. Gathers kept XFF and Via values. */
static bool fwd_keep(struct fwd *f, const struct arc_hdr *h)
{
    const struct arc_route_conf *rc = f->rc;
    struct arc_str nm = h->name;
    if (arc_h1_is_hop_by_hop(nm) || name_is(nm, "content-length") || conn_listed(&f->cv, nm))
        return false;
    if (f->ex->req.expect_100 && name_is(nm, "expect"))
        return false;
    /* Arc's own request id and trace context replace the client's (obs.c
     * kept a trusted id and continued a valid traceparent); tracestate
     * only travels with a traceparent Arc could continue (W3C §3.3). */
    if (name_is(nm, "x-request-id") || name_is(nm, "traceparent") ||
        (name_is(nm, "tracestate") && !f->ex->has_parent))
        return false;
    if (rc->xff && name_is(nm, "x-forwarded-for")) {
        if (f->trusted) {
            if (f->xff.len)
                arc_sbuf_append(&f->xff, ", ", 2);
            arc_sbuf_append(&f->xff, h->value.p, h->value.len);
        }
        return false;
    }
    if (rc->xfp && name_is(nm, "x-forwarded-proto")) {
        if (!f->trusted)
            return false;
        f->have_xfp = true;
    }
    /* Only Arc vouches for a client certificate: an incoming field
     * is replaced (Envoy's "sanitize" behaviour), unless the peer is
     * one of the route's trusted proxies. */
    if (name_is(nm, "x-forwarded-client-cert") && !f->trusted)
        return false;
    if (rc->via && name_is(nm, "via")) {
        if (f->via.len)
            arc_sbuf_append(&f->via, ", ", 2);
        arc_sbuf_append(&f->via, h->value.p, h->value.len);
        return false;
    }
    if (op_touches(rc->req_headers, rc->n_req_headers, nm))
        return false;
    if (name_is(nm, "host")) {
        /* absolute-form: the target's authority replaces Host
         * (RFC 9112 §3.2.2); the parser put it in the authority. */
        if (f->ex->req.absolute_form)
            return false;
        f->have_host = true;
    }
    return true;
}

/* The verified client certificate's subject as an X-Forwarded-Client-Cert
 * value, quoted (RFC 2253 DNs may hold commas and quotes: escape the
 * latter). Empty when the client presented none. */
static void xfcc_value(struct arc_conn *c, struct arc_sbuf *b)
{
    const char *subject = c->tls ? arc_tls_conn_peer_subject(c->tls) : NULL;
    if (!subject)
        return;
    arc_sbuf_append(b, "Subject=\"", 9);
    for (const char *s = subject; *s; s++) {
        if (*s == '"' || *s == '\\')
            arc_sbuf_append(b, "\\", 1);
        if ((unsigned char)*s >= 0x20 && *s != 0x7f)
            arc_sbuf_append(b, s, 1);
    }
    arc_sbuf_append(b, "\"", 1);
}

char *arc_px__build_request_head(struct arc_worker *w, struct arc_exchange *ex, size_t *len)
{
    struct arc_conn *c = ex->client;
    const struct arc_route_conf *rc = ex->route->conf;
    const struct arc_req *req = &ex->req;
    struct arc_sbuf b = { 0 };
    (void)w;

    arc_sbuf_append(&b, req->method.p, req->method.len);
    arc_sbuf_append(&b, " ", 1);
    if (req->up_target.len) {
        arc_sbuf_append(&b, req->up_target.p, req->up_target.len);   /* rewritten */
    } else if (!req->absolute_form) {
        arc_sbuf_append(&b, req->target.p, req->target.len);
    } else {
        /* absolute-form: upstreams get origin-form (RFC 9112 §3.2.1). */
        arc_sbuf_append(&b, req->path.len ? req->path.p : "/", req->path.len ? req->path.len : 1);
        if (req->query.len) {
            arc_sbuf_append(&b, "?", 1);
            arc_sbuf_append(&b, req->query.p, req->query.len);
        }
    }
    arc_sbuf_append(&b, " HTTP/1.1\r\n", 11);

    const struct arc_hdr *h = req->hdrs;
    size_t n = req->n_hdrs;
    struct fwd f;
    fwd_init(&f, ex);
    for (size_t i = 0; i < n; i++)
        if (fwd_keep(&f, &h[i]))
            emit(&b, h[i].name, h[i].value);
    struct arc_sbuf xff = f.xff, via = f.via;
    bool have_host = f.have_host, have_xfp = f.have_xfp;
    if (!have_host && !op_touches(rc->req_headers, rc->n_req_headers, ARC_STR_LIT("host"))) {
        /* HTTP/1.0 without Host, or absolute-form: an HTTP/1.1 request
         * needs one (RFC 9112 §3.2); fall back to the upstream's address. */
        arc_sbuf_append(&b, "Host: ", 6);
        if (req->authority.len)
            arc_sbuf_append(&b, req->authority.p, req->authority.len);
        else if (ex->target->conf->dns.hostname)     /* discovery: dns */
            append_cstr(&b, ex->target->conf->dns.hostname);
        else if (ex->target->n_eps)
            append_cstr(&b, ex->target->eps[0].text);
        arc_sbuf_append(&b, "\r\n", 2);
    }
    emit_ops(&b, ex, rc->req_headers, rc->n_req_headers);
    if (rc->xff) {
        arc_sbuf_append(&b, "X-Forwarded-For: ", 17);
        if (xff.len) {
            arc_sbuf_append(&b, xff.p, xff.len);
            arc_sbuf_append(&b, ", ", 2);
        }
        char ip[ARC_PX_PEER_TEXT];
        append_cstr(&b, arc_px__peer_text(c, ip));
        arc_sbuf_append(&b, "\r\n", 2);
    }
    if (c->tls) {
        struct arc_sbuf cert = { 0 };
        xfcc_value(c, &cert);
        if (cert.len)
            emit(&b, ARC_STR_LIT("X-Forwarded-Client-Cert"), (struct arc_str){ cert.p, cert.len });
        arc_sbuf_dispose(&cert);
    }
    if (rc->xfp && !have_xfp) {
        arc_sbuf_append(&b, "X-Forwarded-Proto: ", 19);
        arc_sbuf_append(&b, req->scheme.p, req->scheme.len);
        arc_sbuf_append(&b, "\r\n", 2);
    }
    if (rc->via) {
        arc_sbuf_append(&b, "Via: ", 5);
        if (via.len) {
            arc_sbuf_append(&b, via.p, via.len);
            arc_sbuf_append(&b, ", ", 2);
        }
        /* (appends, not printf: this runs for every request) */
        if (req->version >= 20)
            arc_sbuf_append(&b, "2 arc\r\n", 7);
        else if (req->version == 10)
            arc_sbuf_append(&b, "1.0 arc\r\n", 9);
        else
            arc_sbuf_append(&b, "1.1 arc\r\n", 9);
    }
    arc_sbuf_dispose(&xff);
    arc_sbuf_dispose(&via);
    if (ex->rid_len) {
        char tp[56];
        arc_px__obs_traceparent(ex, tp);
        /* A route's own header operation on X-Request-Id wins. */
        if (!op_touches(rc->req_headers, rc->n_req_headers, ARC_STR_LIT("x-request-id"))) {
            arc_sbuf_append(&b, "X-Request-Id: ", 14);
            arc_sbuf_append(&b, ex->rid, ex->rid_len);
            arc_sbuf_append(&b, "\r\n", 2);
        }
        arc_sbuf_append(&b, "traceparent: ", 13);
        arc_sbuf_append(&b, tp, 55);
        arc_sbuf_append(&b, "\r\n", 2);
    }

    if (req->body == ARC_H1_BODY_LENGTH) {
        arc_sbuf_append(&b, "Content-Length: ", 16);
        append_u64(&b, (unsigned long long)req->content_length);
        arc_sbuf_append(&b, "\r\n", 2);
    } else if (req->body == ARC_H1_BODY_CHUNKED) {
        arc_sbuf_append(&b, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (req->upgrade) {
        for (size_t i = 0; i < n; i++)
            if (name_is(h[i].name, "upgrade"))
                emit(&b, h[i].name, h[i].value);
        arc_sbuf_append(&b, "Connection: upgrade\r\n", 21);
    }
    arc_sbuf_append(&b, "\r\n", 2);
    *len = b.len;
    return b.p;
}

char *arc_px__build_response_head(struct arc_worker *w, struct arc_exchange *ex,
                                  const struct arc_resp *resp, bool close, size_t *len)
{
    const struct arc_route_conf *rc = ex->route->conf;
    struct arc_conn *c = ex->client;
    struct arc_sbuf b = { 0 };
    (void)w;
    arc_sbuf_append(&b, "HTTP/1.1 ", 9);
    append_u64(&b, (unsigned long long)resp->status);
    arc_sbuf_append(&b, " ", 1);
    if (resp->reason.len)
        arc_sbuf_append(&b, resp->reason.p, resp->reason.len);
    else
        append_cstr(&b, arc_h1_reason(resp->status));
    arc_sbuf_append(&b, "\r\n", 2);

    const struct arc_h1_header *h = resp->hdrs;
    size_t n = resp->n_hdrs;
    bool upgrading = resp->status == 101;
    bool interim = resp->status < 200 && !upgrading;
    struct conn_values cv = { .resp = h, .n_all = n };
    conn_values_gather(&cv);
    for (size_t i = 0; i < n; i++) {
        struct arc_str nm = h[i].name;
        if (upgrading && name_is(nm, "upgrade")) {
            emit(&b, h[i].name, h[i].value);
            continue;
        }
        if (arc_h1_is_hop_by_hop(nm) || conn_listed(&cv, nm))
            continue;
        /* A bodiless response (HEAD, 304) keeps its Content-Length: it
         * describes the representation, not this message's framing. */
        if (name_is(nm, "content-length") && resp->body != ARC_H1_BODY_NONE)
            continue;
        if (!interim && op_touches(rc->resp_headers, rc->n_resp_headers, nm))
            continue;
        emit(&b, h[i].name, h[i].value);
    }
    if (interim) {
        /* 1xx: fields as received (Link for 103), no framing, no ops. */
        arc_sbuf_append(&b, "\r\n", 2);
        *len = b.len;
        return b.p;
    }
    emit_ops(&b, ex, rc->resp_headers, rc->n_resp_headers);
    if (ex->limit) {                    /* the route's RateLimit fields (ratelimit.c) */
        struct arc_hdr lf[ARC_PX_LIMIT_FIELDS];
        size_t nl = arc_px__limit_fields(ex, lf);
        for (size_t i = 0; i < nl; i++)
            emit(&b, lf[i].name, lf[i].value);
    }
    if (ex->rid_len && !op_touches(rc->resp_headers, rc->n_resp_headers, ARC_STR_LIT("x-request-id"))) {
        arc_sbuf_append(&b, "X-Request-Id: ", 14);
        arc_sbuf_append(&b, ex->rid, ex->rid_len);
        arc_sbuf_append(&b, "\r\n", 2);
    }
    if (resp->body == ARC_H1_BODY_LENGTH) {
        arc_sbuf_append(&b, "Content-Length: ", 16);
        append_u64(&b, (unsigned long long)resp->content_length);
        arc_sbuf_append(&b, "\r\n", 2);
    } else if (resp->body == ARC_H1_BODY_CHUNKED && !c->c.dechunk) {
        arc_sbuf_append(&b, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (upgrading)
        arc_sbuf_append(&b, "Connection: upgrade\r\n", 21);
    else if (close)
        arc_sbuf_append(&b, "Connection: close\r\n", 19);
    else if (c->c.minor == 0)
        arc_sbuf_append(&b, "Connection: keep-alive\r\n", 24);
    arc_sbuf_append(&b, "\r\n", 2);
    *len = b.len;
    return b.p;
}

char *arc_px__build_location(struct arc_exchange *ex, const struct arc_rt_captures *caps,
                             size_t *len)
{
    struct arc_sbuf loc = { 0 };
    expand(&loc, ex, ex->route->conf->redirect_location, caps);
    *len = loc.len;
    return loc.p;
}

/* A header operation's value for this exchange: as configured, or with its
 * $variables expanded into the arena (*ok cleared on out of memory). */
static struct arc_str op_value(struct arc_exchange *ex, const struct arc_header_op *op, bool *ok)
{
    const char *val = op->value ? op->value : "";
    if (!op->vars)
        return (struct arc_str){ val, strlen(val) };
    struct arc_sbuf b = { 0 };
    expand(&b, ex, val, NULL);
    struct arc_str r = arc_px__ex_dup(ex, (struct arc_str){ b.p ? b.p : "", b.len }, ok);
    arc_sbuf_dispose(&b);
    return r;
}

bool arc_px__response_fields(struct arc_exchange *ex, const struct arc_resp *resp,
                             struct arc_hdr **out, size_t *n)
{
    const struct arc_route_conf *rc = ex->route->conf;
    size_t cap = resp->n_hdrs + rc->n_resp_headers + 2 + ARC_PX_LIMIT_FIELDS;
    struct arc_hdr *v = arc_arena_alloc(&ex->arena, cap * sizeof(*v));
    if (!v)
        return false;
    const struct arc_h1_header *h = resp->hdrs;
    bool interim = resp->status < 200;
    struct conn_values cv = { .resp = h, .n_all = resp->n_hdrs };
    conn_values_gather(&cv);
    size_t k = 0;
    bool ok = true;
    for (size_t i = 0; i < resp->n_hdrs; i++) {
        struct arc_str nm = h[i].name;
        if (arc_h1_is_hop_by_hop(nm) || conn_listed(&cv, nm))
            continue;
        if (!interim && op_touches(rc->resp_headers, rc->n_resp_headers, nm))
            continue;
        v[k++] = (struct arc_hdr){ nm, h[i].value };
    }
    if (!interim) {
        for (size_t i = 0; i < rc->n_resp_headers; i++) {
            const struct arc_header_op *op = &rc->resp_headers[i];
            if (op->op == ARC_HDR_REMOVE)
                continue;
            v[k++] = (struct arc_hdr){ { op->name, strlen(op->name) }, op_value(ex, op, &ok) };
        }
        if (ex->limit)
            k += arc_px__limit_fields(ex, v + k);
        if (ex->rid_len && !op_touches(rc->resp_headers, rc->n_resp_headers,
                                       ARC_STR_LIT("x-request-id")))
            v[k++] = (struct arc_hdr){ ARC_STR_LIT("x-request-id"), { ex->rid, ex->rid_len } };
    }
    *out = v;
    *n = k;
    return ok;
}

/* A value built in `b`, moved into the exchange's arena (b is emptied). */
static struct arc_str arena_value(struct arc_exchange *ex, struct arc_sbuf *b, bool *ok)
{
    struct arc_str v = arc_px__ex_dup(ex, (struct arc_str){ b->p ? b->p : "", b->len }, ok);
    arc_sbuf_dispose(b);
    *b = (struct arc_sbuf){ 0 };
    return v;
}

bool arc_px__request_fields(struct arc_exchange *ex, struct arc_hdr **out, size_t *n)
{
    const struct arc_route_conf *rc = ex->route->conf;
    const struct arc_req *req = &ex->req;
    struct arc_conn *c = ex->client;
    size_t cap = req->n_hdrs + rc->n_req_headers + 7;
    struct arc_hdr *v = arc_arena_alloc(&ex->arena, cap * sizeof(*v));
    if (!v)
        return false;
    struct fwd f;
    fwd_init(&f, ex);
    size_t k = 0;
    bool te_trailers = false, ok = true;
    for (size_t i = 0; i < req->n_hdrs; i++) {
        const struct arc_hdr *h = &req->hdrs[i];
        /* TE is hop-by-hop, but "trailers" in it says the client takes
         * trailer fields, which gRPC servers insist on (RFC 9113 §8.2.2). */
        if (name_is(h->name, "te") && arc_h1_list_has(h->value, "trailers", 8))
            te_trailers = true;
        /* Host becomes :authority (the caller's), never a field. */
        if (fwd_keep(&f, h) && !name_is(h->name, "host"))
            v[k++] = *h;
    }
    for (size_t i = 0; i < rc->n_req_headers; i++) {
        const struct arc_header_op *op = &rc->req_headers[i];
        if (op->op == ARC_HDR_REMOVE)
            continue;
        v[k++] = (struct arc_hdr){ { op->name, strlen(op->name) }, op_value(ex, op, &ok) };
    }
    if (rc->xff) {
        if (f.xff.len)
            arc_sbuf_append(&f.xff, ", ", 2);
        char ip[ARC_PX_PEER_TEXT];
        append_cstr(&f.xff, arc_px__peer_text(c, ip));
        v[k++] = (struct arc_hdr){ ARC_STR_LIT("x-forwarded-for"), arena_value(ex, &f.xff, &ok) };
    }
    if (c->tls) {
        struct arc_sbuf cert = { 0 };
        xfcc_value(c, &cert);
        if (cert.len)
            v[k++] = (struct arc_hdr){ ARC_STR_LIT("x-forwarded-client-cert"),
                                       arena_value(ex, &cert, &ok) };
        arc_sbuf_dispose(&cert);
    }
    if (rc->xfp && !f.have_xfp)
        v[k++] = (struct arc_hdr){ ARC_STR_LIT("x-forwarded-proto"), req->scheme };
    if (rc->via) {
        if (f.via.len)
            arc_sbuf_append(&f.via, ", ", 2);
        append_cstr(&f.via, req->version >= 20 ? "2 arc" : req->version == 10 ? "1.0 arc" : "1.1 arc");
        v[k++] = (struct arc_hdr){ ARC_STR_LIT("via"), arena_value(ex, &f.via, &ok) };
    }
    if (te_trailers)
        v[k++] = (struct arc_hdr){ ARC_STR_LIT("te"), ARC_STR_LIT("trailers") };
    if (ex->rid_len) {
        char tp[56];
        arc_px__obs_traceparent(ex, tp);
        if (!op_touches(rc->req_headers, rc->n_req_headers, ARC_STR_LIT("x-request-id")))
            v[k++] = (struct arc_hdr){ ARC_STR_LIT("x-request-id"), { ex->rid, ex->rid_len } };
        v[k++] = (struct arc_hdr){ ARC_STR_LIT("traceparent"),
                                   arc_px__ex_dup(ex, (struct arc_str){ tp, 55 }, &ok) };
    }
    arc_sbuf_dispose(&f.xff);
    arc_sbuf_dispose(&f.via);
    *out = v;
    *n = k;
    return ok;
}

size_t arc_px__chunk_trailers(struct arc_exchange *ex, const struct arc_h1_chunked *st,
                              struct arc_hdr **out)
{
    size_t n = arc_h1_chunked_trailer_count(st), k = 0, pos = 0;
    struct arc_hdr *v = n ? arc_arena_alloc(&ex->arena, n * sizeof(*v)) : NULL;
    struct arc_h1_header f;
    while (v && arc_h1_chunked_trailer_next(st, &pos, &f))
        if (arc_h1_trailer_allowed(f.name))
            v[k++] = (struct arc_hdr){ f.name, f.value };
    *out = v;
    return k;
}
