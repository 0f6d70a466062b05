/*
 * The HTTP/2 server codec: a client connection speaking HTTP/2 (TLS with
 * ALPN h2, or h2c with the connection preface on a cleartext listener),
 * driving the I/O-free session of src/http2/. Every stream becomes an
 * exchange and goes through the same pipeline as an HTTP/1.1 request; the
 * upstream side (HTTP/1.1 or HTTP/2 to the service) is reached through the
 * exchange only (arc_px__up_body and friends).
 *
 * Connection: CS_H2 from the preface until the session is done (GOAWAY sent
 * and streams finished, a flood guard tripped, or the peer left), then
 * CS_CLOSING → CS_LINGER like HTTP/1 (h1_server.c).
 *
 * Stream (struct h2s), one per stream the session handed us (a request
 * whose HEADERS began may be refused first, cb_request_begin:
 * max_incomplete_per_ip):
 *
 *   on_request ──▶ exchange running (s->ex) ──exchange ended──▶ draining its
 *      │               │                                    queued response body
 *      │               └──peer reset (on_close)──▶ exchange ends as aborted
 *      └── on_close (always, once) ──▶ freed
 *
 * Flow control both ways is tied to the other side's pace: request body
 * bytes are acknowledged (WINDOW_UPDATE via arc_h2_consume) only once the
 * upstream connection has room for them, and a response body is read from
 * the upstream only while the stream's queue is below
 * node.max_buffered_output, the queue being drained as the client's
 * windows allow. Nothing is buffered whole.
 *
 * Re-entrancy: the session calls back from inside arc_h2_recv() and
 * arc_h2_output(); from there only submit/resume/end_body/consume/reset may
 * be called, so output is pulled (arc_px__h2_pull, through arc_px__flush) only from the outside, and
 * upstreams that were waiting on a stream's queue are woken after sends.
 *
 * security.l7.slowloris on HTTP/2: the connection holds one count of
 * incomplete requests per stream whose exchange runs and whose request has
 * not all arrived (struct h2s counted), plus one for the request head it
 * is receiving (head_counted, from its HEADERS to its END_HEADERS); a
 * header block left open is under the header deadline from its first byte
 * (arc_px__h2_head_deadline), whatever stream it belongs to.
 *
 * Batching: input and ended streams ask for a flush with arc_px__flush_soon,
 * which the worker runs once per connection at the end of its completion
 * batch, so the frames of every stream a batch finished go out in one pull,
 * one run of TLS records and one send.
 */
#include "proxy/proxy_int.h"
#include "plugin/plugin.h"
#include "http2/http2.h"
#include "router/router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(ARC_M_H2_BREACHES == ARC_H2_BREACH__COUNT, "metrics shard HTTP/2 breach slots");

struct h2s {
    int32_t sid;
    struct arc_exchange *ex;            /* NULL once the exchange ended */
    struct arc_h2c *h;
    struct h2s *next, *prev;            /* the connection's streams */
    struct arc_px_bytes q;              /* response body bytes not yet pulled by the session */
    size_t unconsumed;                  /* request body bytes not yet acknowledged */
    bool head_sent;                     /* response head submitted */
    bool with_body;                     /* ... with a body (end_body owed) */
    bool body_ended;                    /* end_body called */
    bool req_trailers;                  /* the request's trailers (and so its end) went upstream */
    bool waiting;                       /* the upstream waits for this queue to drain */
    /* Request input that arrived while the exchange waited (EX_WAITING),
     * fed upstream when it continues (unacknowledged meanwhile, so the
     * stream's window bounds it). */
    struct arc_px_bytes held;
    bool held_end;                      /* ... and the request's end */
    struct arc_hdr *held_tr;            /* its trailers (exchange arena) */
    size_t n_held_tr;
    /* security.l7.slowloris.min_recv_rate_bps on the request body: the
     * current window; stalled: the window is suspended while Arc holds the
     * client back (body unacknowledged: upstream full, or the exchange
     * waiting) and starts afresh once it acknowledges again. */
    struct arc_guard_rate rate;
    bool stalled;
    bool counted;                       /* holds one incomplete request (see the top) */
};

struct arc_h2c {
    struct arc_h2_session *s;
    struct arc_conn *c;
    struct arc_worker *w;
    struct h2s *streams;
    size_t n_streams;
    int in_cb;                          /* inside a session call: no output pulls */
    bool counted_breach;
    bool awaiting_head;                 /* no request yet: the accept's header deadline runs */
    uint64_t head_deadline_ms;          /* ... until then */
    uint32_t n_counted;                 /* streams counted as incomplete requests */
    bool head_counted;                  /* the head being received is counted too */
    bool block_timer;                   /* c's timer is a header block's deadline */
};

static const struct arc_config *cfg_of(struct arc_worker *w)
{
    return w->snap->cfg;
}

/* The incomplete requests c holds in the guard table: see the top. */
static void guard_update(struct arc_worker *w, struct arc_h2c *h)
{
    arc_px__guard_h2_incomplete(w, h->c, h->n_counted + (h->head_counted ? 1u : 0u));
}

/* After st's exchange or request progressed: is it still incomplete? */
static void stream_count(struct arc_worker *w, struct h2s *st)
{
    bool want = st->ex && !st->ex->req_done && !st->held_end;
    if (want == st->counted)
        return;
    st->counted = want;
    st->h->n_counted += want ? 1u : (uint32_t)-1;
    guard_update(w, st->h);
}

/* ------------------------------------------------------------ output */

/* Moves the session's output into the connection's queue (a copy: the
 * session's view must be handed back before the next pull) while the
 * queue is below its bound. Called by arc_px__flush for CS_H2 connections,
 * so every "push output out" of the generic code pulls from the session.
 * Never from inside a session callback; and the codec calls made by the
 * pipeline (respond, send_head, send_body) do not pull either: a pull may
 * close streams, and the caller still uses its exchange. */
void arc_px__h2_pull(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_h2c *h = c->c.h2;
    if (!h || h->in_cb || c->closing)
        return;
    while (!arc_px__outq_high(c)) {
        const uint8_t *p;
        h->in_cb++;
        size_t n = arc_h2_output(h->s, &p);
        h->in_cb--;
        if (c->closing)
            return;
        if (n == 0)
            break;
        arc_px__queue_copy(w, c, p, n);
        arc_h2_sent(h->s, n);
    }
}

/* After input or output progress: is the session over? */
static void check_done(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_h2c *h = c->c.h2;
    if (!h || c->closing || c->c.state != CS_H2)
        return;
    enum arc_h2_breach b = arc_h2_breach(h->s);
    if (b != ARC_H2_BREACH_NONE && !h->counted_breach) {
        h->counted_breach = true;
        arc_m_add(&w->metrics.h2_flood[b], 1);
    }
    if (arc_h2_want_read(h->s) || arc_h2_want_write(h->s))
        return;
    /* GOAWAY is out (or the peer is done): finish like HTTP/1. Streams
     * still running when the session ended (a connection error) are over:
     * nothing more of theirs can reach the client. */
    for (struct h2s *st = h->streams; st; st = st->next)
        if (st->ex) {
            struct arc_exchange *ex = st->ex;
            arc_px__ex_end(w, ex, EXO_CLIENT_ABORT);
            if (c->closing || c->c.h2 != h)
                return;
        }
    h->head_counted = false;            /* (no more input is read) */
    guard_update(w, h);
    c->c.state = CS_CLOSING;
    arc_px__set_timer(w, c, cfg_of(w)->node.write_timeout);
    arc_px__client_pump(w, c);
}

/* ------------------------------------------------------------ streams */

static void stream_unlink(struct arc_h2c *h, struct h2s *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    h->n_streams--;
}

/* ------------------------------------------------------------ request */

static bool set_request(struct arc_exchange *ex, const struct arc_h2_request *r)
{
    struct arc_req *q = &ex->req;
    bool ok = true;
    q->method = arc_px__ex_dup(ex, r->method, &ok);
    q->scheme = arc_px__ex_dup(ex, r->scheme, &ok);
    q->authority = arc_px__ex_dup(ex, r->authority, &ok);
    q->target = arc_px__ex_dup(ex, r->path, &ok);
    const char *qm = memchr(q->target.p, '?', q->target.len);
    size_t plen = qm ? (size_t)(qm - q->target.p) : q->target.len;
    q->path = (struct arc_str){ q->target.p, plen };
    q->query = qm ? (struct arc_str){ qm + 1, q->target.len - plen - 1 } : (struct arc_str){ "", 0 };
    q->absolute_form = false;
    q->version = 20;
    q->keep_alive = true;
    if (r->end_stream) {
        q->body = ARC_H1_BODY_NONE;
    } else if (r->content_length >= 0) {
        q->body = ARC_H1_BODY_LENGTH;
        q->content_length = (uint64_t)r->content_length;
    } else {
        q->body = ARC_H1_BODY_CHUNKED;  /* (an HTTP/1.1 upstream gets it chunked) */
    }
    ex->req_done = r->end_stream || (q->body == ARC_H1_BODY_LENGTH && q->content_length == 0);
    return arc_px__ex_take_fields(ex, (const struct arc_hdr *)r->headers, r->n_headers) && ok;
}

/* A request's HEADERS began: refused (REFUSED_STREAM, the client may
 * retry) when its address is at max_incomplete_per_ip, else counted until
 * its head is whole (then its stream is) or dropped. */
static int cb_request_begin(void *ud, int32_t sid)
{
    struct arc_h2c *h = ud;
    (void)sid;
    /* Counted first, then checked (as arc_guard_admit): two workers taking
     * heads from one address at once cannot both pass the cap. */
    h->head_counted = true;
    guard_update(h->w, h);
    if (!arc_px__guard_h2_head(h->w, h->c)) {
        h->head_counted = false;
        guard_update(h->w, h);
        return 1;
    }
    return 0;
}

static int cb_request(void *ud, int32_t sid, const struct arc_h2_request *r, void **sud)
{
    struct arc_h2c *h = ud;
    struct arc_worker *w = h->w;
    struct arc_conn *c = h->c;
    h->head_counted = false;            /* (its stream is counted instead, below) */
    guard_update(w, h);
    if (w->draining)
        return -1;                      /* refused: GOAWAY follows */
    struct h2s *st = calloc(1, sizeof(*st));
    struct arc_exchange *ex = st ? arc_px__ex_new(w, c) : NULL;
    if (!ex) {
        free(st);
        return -1;
    }
    h->awaiting_head = false;           /* a whole request head came */
    st->sid = sid;
    st->h = h;
    st->ex = ex;
    st->next = h->streams;
    if (h->streams)
        h->streams->prev = st;
    h->streams = st;
    h->n_streams++;
    *sud = st;
    ex->cx = st;
    if (c->tls && r->scheme.len == 0)
        ex->req.scheme = ARC_STR_LIT("https");
    if (!set_request(ex, r)) {
        arc_px__ex_error(w, ex, 431, ARC_ERR_HEADERS_TOO_LARGE);
        return 0;
    }
    arc_tw_cancel(&w->tw, &c->timer);   /* a stream is running: no idle deadline */
    if (!ex->req_done && arc_px__guard_rate_on(w))
        arc_guard_rate_start(&st->rate, w->now_ms);
    stream_count(w, st);
    arc_px__pipeline_start(w, ex);
    return 0;
}

/* Acknowledges request body bytes the upstream connection has taken. */
static void ack_body(struct h2s *st)
{
    struct arc_exchange *ex = st->ex;
    if (!st->unconsumed)
        return;
    if (ex && arc_px__up_full(ex)) {
        st->stalled = true;             /* (Arc holds the client back, not its fault) */
        return;
    }
    arc_h2_consume(st->h->s, st->sid, st->unconsumed);
    st->unconsumed = 0;
    if (st->stalled) {
        st->stalled = false;
        if (st->rate.start_ms)
            arc_guard_rate_start(&st->rate, st->h->w->now_ms);
    }
}

/* The request body of st trickles below min_recv_rate_bps: 408 (the
 * session then resets the stream with NO_ERROR, §8.1), or a reset when the
 * answer has started. The exchange ends either way. */
static void slow_body(struct arc_worker *w, struct h2s *st)
{
    struct arc_exchange *ex = st->ex;
    if (ex->resp_started) {
        arc_m_add(&w->metrics.errors[ARC_ERR_CLIENT_TIMEOUT], 1);
        arc_px__ex_end(w, ex, EXO_CLIENT_TIMEOUT);
    } else {
        arc_px__ex_error(w, ex, 408, ARC_ERR_CLIENT_TIMEOUT);
    }
}

static void cb_data(void *ud, int32_t sid, void *sud, const uint8_t *p, size_t len)
{
    struct arc_h2c *h = ud;
    struct h2s *st = sud;
    struct arc_exchange *ex = st ? st->ex : NULL;
    (void)sid;
    if (!st)
        return;
    st->unconsumed += len;
    if (ex && arc_px__ex_waiting(ex) && !st->held_end) {
        st->stalled = true;             /* (held unacknowledged: see struct h2s) */
        if (!arc_px__bytes_put(&st->held, p, len))
            arc_px__ex_error(h->w, ex, 500, ARC_ERR_BAD_REQUEST);  /* (out of memory) */
        return;
    }
    if (!ex || !arc_px__body_wanted(ex) || ex->req_done) {
        ack_body(st);                   /* nobody wants these bytes: drop them */
        return;
    }
    if (st->rate.start_ms && !st->stalled &&
        !arc_px__guard_stream_body(h->w, h->c, &st->rate, len)) {
        ack_body(st);
        slow_body(h->w, st);
        return;
    }
    ex->bytes_in += len;
    ex->body_in += len;
    if (arc_px__body_over(h->w, ex))
        return;                         /* answered 413; the stream is reset */
    arc_px__up_body(h->w, ex, -1, (const char *)p, len, false);
    ack_body(st);
    arc_px__up_kick(h->w, ex);
}

static void cb_trailers(void *ud, int32_t sid, void *sud, const struct arc_h2_header *t, size_t n)
{
    struct arc_h2c *h = ud;
    struct h2s *st = sud;
    (void)sid;
    if (st && st->ex && arc_px__ex_waiting(st->ex)) {
        struct arc_exchange *ex = st->ex;
        st->held_tr = arc_arena_alloc(&ex->arena, (n ? n : 1) * sizeof(*st->held_tr));
        bool ok = st->held_tr != NULL;
        for (size_t i = 0; ok && i < n; i++) {
            st->held_tr[i].name = arc_px__ex_dup(ex, (struct arc_str){ t[i].name.p, t[i].name.len }, &ok);
            st->held_tr[i].value = arc_px__ex_dup(ex, (struct arc_str){ t[i].value.p, t[i].value.len }, &ok);
        }
        st->n_held_tr = ok ? n : 0;
        return;
    }
    if (!st || !st->ex || !arc_px__body_wanted(st->ex))
        return;
    /* struct arc_hdr and struct arc_h2_header are the same pair of views. */
    arc_px__up_body_end(h->w, st->ex, (const struct arc_hdr *)t, n);
    st->req_trailers = true;
}

static void cb_end(void *ud, int32_t sid, void *sud)
{
    struct arc_h2c *h = ud;
    struct h2s *st = sud;
    (void)sid;
    if (!st || !st->ex)
        return;
    struct arc_exchange *ex = st->ex;
    if (arc_px__ex_waiting(ex)) {
        st->held_end = true;            /* (req_done once what was held is fed) */
        stream_count(h->w, st);
        return;
    }
    ex->req_done = true;
    stream_count(h->w, st);
    if (!arc_px__body_wanted(ex))
        return;
    if (!st->req_trailers)
        arc_px__up_body_end(h->w, ex, NULL, 0);
    arc_px__up_kick(h->w, ex);
}

static void cb_close(void *ud, int32_t sid, void *sud, uint32_t error_code)
{
    struct arc_h2c *h = ud;
    struct h2s *st = sud;
    (void)sid;
    (void)error_code;
    if (!st)
        return;
    if (st->ex) {
        struct arc_exchange *ex = st->ex;
        st->ex = NULL;
        ex->cx = NULL;
        /* Closed after our whole response was submitted: the exchange ends
         * on its own (the codec no longer has a stream for it). Otherwise
         * the peer reset the stream, or the session failed, mid-exchange. */
        if (!(st->head_sent && (!st->with_body || st->body_ended)))
            arc_px__ex_end(h->w, ex, EXO_CLIENT_ABORT);
    }
    stream_count(h->w, st);             /* (gives its place back) */
    stream_unlink(h, st);
    arc_px__bytes_free(&st->q);
    arc_px__bytes_free(&st->held);
    free(st);
    if (h->n_streams == 0 && !h->c->closing && !arc_px__h2_head_deadline(h->w, h->c))
        arc_px__set_timer(h->w, h->c, cfg_of(h->w)->node.idle_timeout);
}

static size_t cb_read_body(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t cap)
{
    struct h2s *st = sud;
    (void)ud;
    (void)sid;
    return st ? arc_px__bytes_take(&st->q, buf, cap) : 0;
}

static const struct arc_h2_callbacks callbacks = {
    .on_request_begin = cb_request_begin,
    .on_request = cb_request,
    .on_data = cb_data,
    .on_trailers = cb_trailers,
    .on_end = cb_end,
    .on_close = cb_close,
    .read_body = cb_read_body,
};

/* ------------------------------------------------------------ codec */

static struct h2s *stream_of(const struct arc_exchange *ex)
{
    return ex->cx;
}

static void submit_head(struct arc_exchange *ex, int status, const struct arc_hdr *hdrs, size_t n,
                        bool body)
{
    struct h2s *st = stream_of(ex);
    if (!st)
        return;
    st->head_sent = true;
    st->with_body = body;
    /* struct arc_hdr and struct arc_h2_header are the same pair of views. */
    _Static_assert(sizeof(struct arc_hdr) == sizeof(struct arc_h2_header), "header layout");
    arc_h2_submit_response(st->h->s, st->sid, status, (const struct arc_h2_header *)hdrs, n, body);
}

static void h2_respond(struct arc_worker *w, struct arc_exchange *ex, int status,
                       const struct arc_hdr *hdrs, size_t n, const char *body, size_t body_len)
{
    struct h2s *st = stream_of(ex);
    if (!st)
        return;
    bool no_body = status < 200 || status == 204 || status == 304;
    struct arc_hdr *v = arc_arena_alloc(&ex->arena, (n + 1) * sizeof(*v));
    if (!v)
        return;
    if (n)
        memcpy(v, hdrs, n * sizeof(*v));
    size_t k = n;
    if (!no_body) {
        char *cl = arc_arena_alloc(&ex->arena, 24);
        if (cl) {
            int l = snprintf(cl, 24, "%zu", body_len);
            v[k++] = (struct arc_hdr){ ARC_STR_LIT("content-length"), { cl, (size_t)l } };
        }
    }
    bool with = !no_body && !ex->is_head && body_len > 0;
    if (with && !arc_px__bytes_put(&st->q, body, body_len))
        with = false;
    submit_head(ex, status, v, k, with);
}

static void h2_interim(struct arc_worker *w, struct arc_exchange *ex, const struct arc_resp *r)
{
    struct h2s *st = stream_of(ex);
    struct arc_hdr *v;
    size_t n;
    if (!st || ex->n_interim >= ex->snap->cfg->node.max_interim_responses ||
        !arc_px__response_fields(ex, r, &v, &n))
        return;
    ex->n_interim++;
    arc_h2_submit_informational(st->h->s, st->sid, r->status, (const struct arc_h2_header *)v, n);
}

static void h2_send_head(struct arc_worker *w, struct arc_exchange *ex, const struct arc_resp *r)
{
    if (ex->pl && ex->pl->glue && arc_px__plugins_hold_head(ex, r))
        return;                         /* (sent with the body filters' first output) */
    struct arc_hdr *v;
    size_t n;
    ex->resp_passthrough = false;       /* data arrives decoded; DATA frames carry it */
    if (r->status == 101 || !arc_px__response_fields(ex, r, &v, &n)) {
        /* No Upgrade over HTTP/2 (the request could not ask for one). */
        submit_head(ex, 502, NULL, 0, false);
        return;
    }
    bool body = r->body != ARC_H1_BODY_NONE && !ex->is_head &&
                !(r->body == ARC_H1_BODY_LENGTH && r->content_length == 0);
    submit_head(ex, r->status, v, n, body);
}

static void h2_send_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                         const char *p, size_t len, bool framed)
{
    if (ex->pl && ex->pl->glue && arc_px__plugins_resp_body(w, ex, bid, p, len))
        return;                         /* (the filters pass it on, or hold it) */
    (void)bid;
    (void)framed;
    struct h2s *st = stream_of(ex);
    if (!st || len == 0)
        return;
    ex->bytes_out += len;
    if (!arc_px__bytes_put(&st->q, p, len)) {
        arc_px__ex_cut(w, ex);
        return;
    }
    arc_h2_resume(st->h->s, st->sid);
}

static void h2_trailers(struct arc_worker *w, struct arc_exchange *ex,
                        const struct arc_hdr *hdrs, size_t n)
{
    if (ex->pl && ex->pl->glue && arc_px__plugins_resp_trailers(w, ex, hdrs, n))
        return;
    (void)w;
    struct h2s *st = stream_of(ex);
    if (!st || !st->with_body || st->body_ended || n == 0)
        return;                         /* (a bodiless answer has no place for them) */
    st->body_ended = true;
    arc_h2_end_body(st->h->s, st->sid, (const struct arc_h2_header *)hdrs, n);
}

static void h2_send_raw(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                        const char *p, size_t len)
{
    (void)w; (void)ex; (void)bid; (void)p; (void)len;   /* no tunnels over HTTP/2 here */
}

static bool h2_blocked(const struct arc_exchange *ex)
{
    struct h2s *st = stream_of(ex);
    if (!st)
        return false;
    if (arc_px__bytes_len(&st->q) >= ex->client->out_high || arc_px__outq_high(ex->client)) {
        st->waiting = true;
        return true;
    }
    return false;
}

/* The exchange continued after a wait: what the client sent meanwhile goes
 * on to the upstream (or is dropped when there is none). */
static void feed_held(struct arc_worker *w, struct h2s *st)
{
    struct arc_exchange *ex = st->ex;
    if (!ex || arc_px__ex_waiting(ex) || (!arc_px__bytes_len(&st->held) && !st->held_end))
        return;
    size_t n = arc_px__bytes_len(&st->held);
    if (n && arc_px__body_wanted(ex) && !ex->req_done) {
        ex->bytes_in += n;
        ex->body_in += n;
        if (ex->route && ex->route->conf->max_body && ex->body_in > ex->route->conf->max_body) {
            arc_px__bytes_free(&st->held);
            st->held_end = false;
            arc_px__body_over(w, ex);   /* answered 413 (the exchange is gone) */
            return;
        }
        arc_px__up_body(w, ex, -1, st->held.p + st->held.off, n, false);
    }
    arc_px__bytes_free(&st->held);
    if (st->held_end) {
        st->held_end = false;
        ex->req_done = true;
        stream_count(w, st);
        if (arc_px__body_wanted(ex) && !st->req_trailers) {
            arc_px__up_body_end(w, ex, st->held_tr, st->n_held_tr);
            st->req_trailers = true;
        }
    }
    if (ex->up)
        arc_px__up_kick(w, ex);
}

static void h2_resume(struct arc_worker *w, struct arc_exchange *ex)
{
    struct h2s *st = stream_of(ex);
    if (!st)
        return;
    feed_held(w, st);
    if (stream_of(ex) != st || st->ex != ex)
        return;
    ack_body(st);
    arc_px__flush(w, ex->client);
}

static void h2_ended(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome o)
{
    struct h2s *st = stream_of(ex);
    struct arc_conn *c = ex->client;
    if (!st)
        return;
    st->ex = NULL;
    ex->cx = NULL;
    stream_count(w, st);                /* (an exchange ended early gives its place back) */
    struct arc_h2_session *s = st->h->s;
    switch (o) {
    case EXO_COMPLETE:
    case EXO_TUNNEL_END:
        if (!st->head_sent)
            arc_h2_reset(s, st->sid, 2 /* INTERNAL_ERROR */);
        else if (st->with_body && !st->body_ended) {
            st->body_ended = true;
            arc_h2_end_body(s, st->sid, NULL, 0);
        }
        break;
    case EXO_UPSTREAM_CUT:
        /* The response broke after it started: a reset is HTTP/2's way to
         * say "incomplete" (the client must not take it as whole). */
        arc_h2_reset(s, st->sid, 2 /* INTERNAL_ERROR */);
        break;
    case EXO_CLIENT_ABORT:
    case EXO_CLIENT_TIMEOUT:
        if (!c->closing)
            arc_h2_reset(s, st->sid, 8 /* CANCEL */);
        break;
    }
    /* Any request body still coming is no longer wanted. */
    arc_px__bytes_free(&st->held);
    st->held_end = false;
    if (st->unconsumed) {
        arc_h2_consume(s, st->sid, st->unconsumed);
        st->unconsumed = 0;
    }
    arc_px__flush_soon(w, c);
}

static void h2_teardown(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_h2c *h = c->c.h2;
    if (!h)
        return;
    for (struct h2s *st = h->streams; st; st = st->next)
        if (st->ex) {
            struct arc_exchange *ex = st->ex;
            st->ex = NULL;
            ex->cx = NULL;
            arc_px__ex_end(w, ex, EXO_CLIENT_ABORT);
        }
    struct h2s *st = h->streams;
    while (st) {
        struct h2s *next = st->next;
        arc_px__bytes_free(&st->q);
        arc_px__bytes_free(&st->held);
        free(st);
        st = next;
    }
    arc_h2_free(h->s);
    free(h);
    c->c.h2 = NULL;
}

static void h2_on_input(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                        const char *p, size_t len)
{
    (void)bid;
    arc_px__h2_input(w, c, p, len);
    arc_px__client_pump(w, c);
}

const struct arc_codec_vt arc_px__h2_server = {
    .name = "h2",
    .on_input = h2_on_input,
    .respond = h2_respond,
    .interim = h2_interim,
    .send_head = h2_send_head,
    .send_body = h2_send_body,
    .trailers = h2_trailers,
    .send_raw = h2_send_raw,
    .ended = h2_ended,
    .blocked = h2_blocked,
    .resume = h2_resume,
    .teardown = h2_teardown,
};

/* ------------------------------------------------------------ connection */

static uint64_t clock_ms(void *ud)
{
    return ((struct arc_worker *)ud)->now_ms;
}

/* Both starts: prior knowledge (ex == NULL) and Upgrade: h2c, where the
 * HTTP/1.1 request `ex` becomes stream 1. */
static bool h2_start(struct arc_worker *w, struct arc_conn *c, struct arc_exchange *ex,
                     const uint8_t *settings, size_t settings_len)
{
    struct arc_h2c *h = calloc(1, sizeof(*h));
    if (!h)
        return false;
    h->c = c;
    h->w = w;
    const struct arc_config *cfg = cfg_of(w);
    struct arc_h2_limits lim = {
        .max_concurrent_streams = cfg->h2.max_concurrent_streams,
        .max_header_list_size = cfg->limits.max_header_bytes,
        .max_continuations = cfg->h2.max_continuations,
        .resets_per_sec = cfg->h2.max_rst_per_sec,
        .settings_per_sec = cfg->h2.max_settings_per_sec,
        .pings_per_sec = cfg->h2.max_ping_per_sec,
        .priority_per_sec = cfg->h2.max_priority_per_sec,
        .empty_data_per_sec = cfg->h2.max_empty_data_per_sec,
    };
    struct arc_h2_options o = { .limits = &lim, .now_ms = clock_ms, .clock_ud = w,
                                .encoder_table_size = cfg->node.http2_header_table_size };
    struct h2s *st = NULL;
    int rc;
    if (ex) {
        st = calloc(1, sizeof(*st));
        if (!st) {
            free(h);
            return false;
        }
        rc = arc_h2_server_new_upgrade(&callbacks, h, &o, settings, settings_len, ex->req.method,
                                       st, &h->s);
    } else {
        rc = arc_h2_server_new(&callbacks, h, &o, &h->s);
    }
    if (rc != ARC_H2_OK) {
        free(st);
        free(h);
        return false;
    }
    if (st) {
        st->sid = 1;
        st->h = h;
        st->ex = ex;
        ex->cx = st;
        h->streams = st;
        h->n_streams = 1;
        c->c.ex = NULL;                 /* the exchange is stream 1's now */
        stream_count(w, st);
    }
    c->c.h2 = h;
    c->c.codec = &arc_px__h2_server;
    c->c.state = CS_H2;
    c->c.fresh = false;
    bool guard;
    uint64_t head_ms = arc_px__head_deadline(w, &guard);
    if (ex) {
        arc_tw_cancel(&w->tw, &c->timer);
    } else if (guard) {
        /* security.l7.slowloris.headers_timeout: the first request's
         * HEADERS must be whole within the deadline that runs from accept
         * (TLS handshake and preface included), as an HTTP/1 head. */
        h->awaiting_head = true;
        h->head_deadline_ms = c->created_ms + head_ms;
        arc_px__h2_head_deadline(w, c);
    } else {
        arc_px__set_timer(w, c, cfg->node.idle_timeout);
    }
    arc_px__flush(w, c);                     /* our SETTINGS */
    return true;
}

bool arc_px__h2_start(struct arc_worker *w, struct arc_conn *c)
{
    return h2_start(w, c, NULL, NULL, 0);
}

bool arc_px__h2_upgrade(struct arc_worker *w, struct arc_conn *c, struct arc_exchange *ex,
                        const uint8_t *settings, size_t settings_len)
{
    return h2_start(w, c, ex, settings, settings_len);
}

void arc_px__h2_input(struct arc_worker *w, struct arc_conn *c, const char *p, size_t len)
{
    struct arc_h2c *h = c->c.h2;
    if (!h || c->c.state != CS_H2)
        return;                         /* closing: input is dropped */
    h->in_cb++;
    int rc = arc_h2_recv(h->s, (const uint8_t *)p, len);
    h->in_cb--;
    if (c->closing)
        return;
    bool taken;
    bool open = arc_h2_open_header_block(h->s, NULL, &taken) != 0;
    if (h->head_counted && !taken) {
        h->head_counted = false;        /* (the head was answered or dropped by the session) */
        guard_update(w, h);
    }
    if (open || h->block_timer) {
        /* A header block is open (its deadline runs from its first byte),
         * or the one that was ended: the timer goes back to its usual job. */
        h->block_timer = open;
        arc_px__h2_timer(w, c);
    }
    if (rc < 0 || !arc_h2_want_read(h->s)) {
        arc_px__flush(w, c);
        check_done(w, c);
    } else {
        arc_px__flush_soon(w, c);       /* with the batch's responses */
    }
}

void arc_px__h2_sent(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_h2c *h = c->c.h2;
    if (!h)
        return;
    arc_px__flush(w, c);
    /* Upstreams waiting on a stream's queue, now drained below the bound:
     * pumped one at a time, the walk starting over after each (a pump may
     * end exchanges and free streams); each stream is woken once. */
    for (;;) {
        struct h2s *st = h->streams;
        while (st && !(st->waiting && st->ex && st->ex->up && !h2_blocked(st->ex)))
            st = st->next;
        if (!st || c->closing)
            break;
        st->waiting = false;
        arc_px__up_kick(w, st->ex);
    }
    if (!c->closing)
        check_done(w, c);
}

void arc_px__h2_drain(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_h2c *h = c->c.h2;
    if (!h)
        return;
    arc_h2_shutdown(h->s);
    arc_px__flush(w, c);
    check_done(w, c);
}

size_t arc_px__h2_streams(const struct arc_conn *c)
{
    return c->c.h2 ? c->c.h2->n_streams : 0;
}

/* When c's header deadline falls, or 0 when none runs: from accept until
 * the first request's head is whole (headers_timeout), and from the first
 * byte of any header block left open (the head deadline: headers_timeout,
 * or node.read_timeout when shorter or the guard is off). *guard: the
 * guard's deadline, not read_timeout's. */
static uint64_t head_due(struct arc_worker *w, const struct arc_h2c *h, bool *guard)
{
    bool g = false, bg;
    uint64_t due = 0, since;
    if (h->awaiting_head) {
        due = h->head_deadline_ms;
        g = true;
    }
    if (arc_h2_open_header_block(h->s, &since, NULL)) {
        uint64_t d = since + arc_px__head_deadline(w, &bg);
        if (!due || d < due) {
            due = d;
            g = bg;
        }
    }
    if (guard)
        *guard = g;
    return due;
}

bool arc_px__h2_head_deadline(struct arc_worker *w, struct arc_conn *c)
{
    uint64_t due = c->c.h2 ? head_due(w, c->c.h2, NULL) : 0;
    if (!due)
        return false;
    if (!c->closing)
        arc_tw_schedule(&w->tw, &c->timer, due);
    return true;
}

bool arc_px__h2_head_late(struct arc_worker *w, struct arc_conn *c, bool *guard)
{
    uint64_t due = c->c.h2 ? head_due(w, c->c.h2, guard) : 0;
    return due && w->now_ms >= due;
}

void arc_px__h2_timer(struct arc_worker *w, struct arc_conn *c)
{
    /* A header deadline first; then our output stalled on the client, or
     * no stream left (idle); while streams wait on upstreams, theirs
     * govern. */
    if (c->closing || arc_px__h2_head_deadline(w, c))
        return;
    if (!arc_px__out_idle(c))
        arc_px__set_timer(w, c, cfg_of(w)->node.write_timeout);
    else if (arc_px__h2_streams(c) == 0)
        arc_px__set_timer(w, c, cfg_of(w)->node.idle_timeout);
    else
        arc_tw_cancel(&w->tw, &c->timer);
}
