/*
 * Where the L7 guards (src/guard/, security.l7) are checked on a client
 * connection, and what a trip does: always the cheapest correct action.
 *
 *   accept ── max_connections_per_ip, TLS: max_handshakes_per_worker,
 *             handshakes_per_ip_per_sec ──▶ refused: closed without a byte
 *   head's first byte ── max_incomplete_per_ip ──▶ tarpit: held unanswered,
 *             its bytes dropped, closed at its header deadline (or closed
 *             at once: over_incomplete: close);
 *             HTTP/2: a request's HEADERS frame ──▶ that stream refused
 *             (RST_STREAM REFUSED_STREAM), the connection goes on
 *   each receive (head or body) ── min_recv_rate_bps over windows ──▶
 *             head: closed without a byte; body: 408 (cut if the answer
 *             already started), as a stalled body
 *   header deadline (headers_timeout, when not longer than
 *             node.read_timeout) ──▶ closed without a byte; HTTP/2: from
 *             accept to the first request's complete HEADERS (preface,
 *             SETTINGS and TLS handshake included) ──▶ closed, nothing written;
 *             and any later header block (HEADERS without END_HEADERS,
 *             CONTINUATION trickled) from its first byte ──▶ closed,
 *             nothing more written (nothing else can arrive meanwhile)
 *   HTTP/2 DATA of a stream's request body ── min_recv_rate_bps over
 *             windows, per stream ──▶ that stream: 408 (then RST_STREAM
 *             NO_ERROR), or RST_STREAM CANCEL if its answer started
 *
 * A client that sent one byte of a head gets no 400/408 page written back:
 * answering costs a write to a peer that is likely not reading.
 */
#include "proxy/proxy_int.h"

#include <stdio.h>

_Static_assert(ARC_M_GUARD_REASONS == ARC_GR__COUNT, "metrics shard guard reason slots");

static const struct arc_guard_conf *gconf(const struct arc_worker *w)
{
    return &w->snap->cfg->guard;
}

void arc_px__guard_trip(struct arc_worker *w, struct arc_conn *c, enum arc_guard_reason r)
{
    arc_m_add(&w->metrics.guard[r], 1);
    arc_guard_log_trip(&w->guard_log, w->id, r, c ? arc_px__peer_addr(c) : NULL, w->now_ms);
}

uint64_t arc_px__head_deadline(const struct arc_worker *w, bool *guard)
{
    const struct arc_guard_conf *g = gconf(w);
    uint64_t rt = w->snap->cfg->node.read_timeout;
    bool mine = g->slowloris && g->headers_timeout <= rt;
    if (guard)
        *guard = mine;
    return mine ? g->headers_timeout : rt;
}

bool arc_px__guard_accept(struct arc_worker *w, struct arc_conn *c, bool tls)
{
    const struct arc_guard_conf *g = gconf(w);
    struct arc_guard_conn *gc = &c->c.g;
    /* The address is looked up once here (getpeername) and kept for the
     * connection: forwarding needs it anyway. */
    arc_guard_key_of(arc_px__peer_addr(c), g->ipv6_prefix, &gc->key);
    if (g->max_connections_per_ip && gc->key.valid) {
        if (!arc_guard_admit(w->id, &gc->key, ARC_GC_CONNS, g->max_connections_per_ip)) {
            arc_px__guard_trip(w, c, ARC_GR_MAX_CONNECTIONS_PER_IP);
            return false;
        }
        gc->counted_conn = true;
    }
    if (tls) {
        /* A full handshake is the most expensive thing a client can make a
         * worker do on one packet: a worker takes at most
         * max_handshakes_per_worker at a time, and an address at most
         * handshakes_per_ip_per_sec (whole seconds, node-wide). */
        if (g->max_handshakes_per_worker && w->hs_pending >= g->max_handshakes_per_worker) {
            arc_px__guard_trip(w, c, ARC_GR_TLS_HANDSHAKE_BUDGET);
            return false;
        }
        if (g->handshakes_per_ip_per_sec) {
            uint32_t sec = (uint32_t)(w->now_ms / 1000);
            if (arc_guard_hs_count(&gc->key, sec) >= g->handshakes_per_ip_per_sec) {
                arc_px__guard_trip(w, c, ARC_GR_TLS_HANDSHAKE_RATE);
                return false;
            }
            arc_guard_hs_add(w->id, &gc->key, sec);
        }
        w->hs_pending++;
        gc->hs_pending = true;
    }
    if (gc->key.valid && !gc->counted_conn) {
        /* counted with no cap too: a reload may set one */
        arc_guard_inc(w->id, &gc->key, ARC_GC_CONNS);
        gc->counted_conn = true;
    }
    return true;
}

void arc_px__guard_hs_done(struct arc_worker *w, struct arc_conn *c)
{
    if (c->kind == CONN_CLIENT && c->c.g.hs_pending) {
        c->c.g.hs_pending = false;
        w->hs_pending--;
    }
}

bool arc_px__guard_head_start(struct arc_worker *w, struct arc_conn *c)
{
    const struct arc_guard_conf *g = gconf(w);
    struct arc_guard_conn *gc = &c->c.g;
    if (gc->counted_incomplete || !gc->key.valid)
        return true;
    if (g->slowloris && g->max_incomplete_per_ip) {
        if (!arc_guard_admit(w->id, &gc->key, ARC_GC_INCOMPLETE, g->max_incomplete_per_ip)) {
            arc_px__guard_trip(w, c, ARC_GR_MAX_INCOMPLETE_PER_IP);
            return false;
        }
    } else {
        arc_guard_inc(w->id, &gc->key, ARC_GC_INCOMPLETE);
    }
    gc->counted_incomplete = true;
    return true;
}

void arc_px__guard_sync(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_guard_conn *gc = &c->c.g;
    if (!gc->counted_incomplete)
        return;
    bool incomplete = (c->c.state == CS_HEAD && c->c.head_started) ||
                      (c->c.state == CS_EXCHANGE && c->c.ex && !c->c.ex->req_done);
    if (!incomplete || c->closing) {
        arc_guard_dec(w->id, &gc->key, ARC_GC_INCOMPLETE);
        gc->counted_incomplete = false;
    }
}

bool arc_px__guard_input(struct arc_worker *w, struct arc_conn *c, size_t len)
{
    const struct arc_guard_conf *g = gconf(w);
    struct arc_guard_conn *gc = &c->c.g;
    bool head = c->c.state == CS_HEAD;
    bool body = c->c.state == CS_EXCHANGE && c->c.ex && !c->c.ex->req_done && !c->c.paused;
    if (!g->slowloris || !g->min_recv_rate_bps || (!head && !body))
        return true;
    if ((head && !c->c.head_started && c->stash_n == 0) || gc->rate.start_ms == 0)
        arc_guard_rate_start(&gc->rate, w->now_ms);     /* a new request begins */
    if (arc_guard_rate_feed(&gc->rate, len, w->now_ms, g->min_recv_rate_bps,
                            g->min_recv_rate_window))
        return true;
    if (head) {
        arc_px__guard_trip(w, c, ARC_GR_MIN_RATE_HEAD);
        arc_px__conn_close(w, c);
    } else {
        arc_px__guard_trip(w, c, ARC_GR_MIN_RATE_BODY);
        arc_px__client_slow_body(w, c);
    }
    return false;
}

bool arc_px__guard_rate_on(const struct arc_worker *w)
{
    const struct arc_guard_conf *g = gconf(w);
    return g->slowloris && g->min_recv_rate_bps;
}

bool arc_px__guard_stream_body(struct arc_worker *w, struct arc_conn *c,
                               struct arc_guard_rate *r, size_t len)
{
    const struct arc_guard_conf *g = gconf(w);
    if (!g->slowloris || !g->min_recv_rate_bps)
        return true;
    if (r->start_ms == 0)
        arc_guard_rate_start(r, w->now_ms);
    if (arc_guard_rate_feed(r, len, w->now_ms, g->min_recv_rate_bps, g->min_recv_rate_window))
        return true;
    arc_px__guard_trip(w, c, ARC_GR_MIN_RATE_BODY);
    return false;
}

bool arc_px__guard_h2_head(struct arc_worker *w, struct arc_conn *c)
{
    const struct arc_guard_conf *g = gconf(w);
    struct arc_guard_conn *gc = &c->c.g;
    if (!gc->key.valid || !g->slowloris || !g->max_incomplete_per_ip)
        return true;
    /* The head is already counted: the fence orders that store before the
     * loads of the sum (see arc_guard_admit). */
    atomic_thread_fence(memory_order_seq_cst);
    if (arc_guard_count(&gc->key, ARC_GC_INCOMPLETE) <= g->max_incomplete_per_ip)
        return true;
    arc_px__guard_trip(w, c, ARC_GR_MAX_INCOMPLETE_PER_IP);
    return false;
}

void arc_px__guard_h2_incomplete(struct arc_worker *w, struct arc_conn *c, uint32_t n)
{
    struct arc_guard_conn *gc = &c->c.g;
    if (c->closing)
        n = 0;                          /* (all of it is given back at close) */
    if (!gc->key.valid || n == gc->h2_incomplete)
        return;
    arc_guard_add(w->id, &gc->key, ARC_GC_INCOMPLETE, (int32_t)(n - gc->h2_incomplete));
    gc->h2_incomplete = n;
}

void arc_px__guard_release(struct arc_worker *w, struct arc_conn *c)
{
    struct arc_guard_conn *gc = &c->c.g;
    if (gc->counted_incomplete)
        arc_guard_dec(w->id, &gc->key, ARC_GC_INCOMPLETE);
    if (gc->h2_incomplete)
        arc_guard_add(w->id, &gc->key, ARC_GC_INCOMPLETE, -(int32_t)gc->h2_incomplete);
    gc->h2_incomplete = 0;
    if (gc->counted_conn)
        arc_guard_dec(w->id, &gc->key, ARC_GC_CONNS);
    arc_px__guard_hs_done(w, c);
    gc->counted_incomplete = gc->counted_conn = false;
}
