/*
 * The exchange's side of proxy-wasm plugins (src/plugin/): the request and
 * response heads presented as header maps with Envoy's pseudo-headers, the
 * filters' changes applied back, local answers, and the failure policy.
 *
 *   pipeline (route matched) ─arc_px__plugins_request─▶ continue: action
 *                                                  ├──▶ local answer / 500
 *                                                  └──▶ a filter paused: EX_WAITING
 *        (pause_timeout; proxy_continue_stream or proxy_send_local_response
 *         for the paused context reschedules the wait's timer to now)
 *        ─on_pl_wake─▶ arc_pl_resume: the later filters ─▶ changes applied,
 *          arc_px__pipeline_action (the plugins are not run again) / local
 *          answer / 500 / 504 (pause_timeout, fail_closed) / paused again
 *   upstream head parsed ─arc_px__plugins_response─▶ continue: send_head
 *                                              ├──▶ local answer / 500
 *                                              └──▶ a filter paused: the head is held
 *        (the codecs' send_head hook) and the upstream side held back
 *        (ex->pl_hold); proxy_continue_stream(1) or a local answer fires the
 *        glue's timer (or pause_timeout does) ─resp_resume─▶ head sent with
 *        the changes, held body bytes after it, upstream side resumed /
 *        local answer / 500 / 504. If the upstream finished meanwhile,
 *        arc_px__plugins_finish defers the end: EX_WAITING, detached, ended
 *        from resp_resume.
 *   request body (filters export proxy_on_request_body): the action waits
 *        (ex->pl_gate) for the filters' first output ─gate_feed─▶
 *        EX_WAITING ─gate_open─▶ framing decided, arc_px__pipeline_action,
 *        then what the filters passed on
 *   response body: the head is held until the filters' first output
 *        (send_held: Content-Length when that is the whole body)
 *   a body filter returning StopIteration at end_of_stream, or a trailer
 *        filter returning it ─wait_arm─▶ g->wait[dir] (the glue's timer:
 *        pause_timeout; notify moves it to now) ─wait_resume─▶ the held body
 *        / trailers go on (request: to the upstream or the gate; response:
 *        head, body, trailers) / answer or cut / paused again. A response
 *        whose upstream finished meanwhile: arc_px__plugins_finish detaches
 *        it (EX_WAITING), ended from wait_resume. The response head
 *        arriving gives up a request-side wait (arc_pl_abandon).
 *   trailers a body filter added at end_of_stream (run->tmap): merged into
 *        the message's trailers, or sent as its only trailers (chunked)
 *   a filter's failure mid-body ─glue_fail─▶ on the next turn: an answer if
 *        nothing of the response went out, else a cut
 *   a filter's proxy_http_call ─arc_px__callout (callout.c)─▶ an internal exchange
 *        to the upstream named; its answer reaches the filter later
 *   arc_px__ex_end ─arc_px__plugins_finish─▶ the response body's end through
 *        the filters ─arc_px__plugins_end─▶ on_done, on_log, on_delete
 */
#include "proxy/proxy_int.h"
#include "plugin/plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof(struct arc_pl_field) == sizeof(struct arc_hdr), "field layout");

static enum arc_err_kind fail_kind(enum arc_pl_fail f)
{
    return f == ARC_PL_FAIL_BUDGET ? ARC_ERR_PLUGIN_BUDGET
           : f == ARC_PL_FAIL_TRAP ? ARC_ERR_PLUGIN_TRAP
           : f == ARC_PL_FAIL_TIMEOUT ? ARC_ERR_PLUGIN_TIMEOUT : ARC_ERR_PLUGIN_UNAVAILABLE;
}

static struct arc_pl_props *props_new(struct arc_exchange *ex)
{
    struct arc_pl_props *p = arc_arena_alloc(&ex->arena, sizeof(*p));
    if (!p)
        return NULL;
    const struct arc_req *q = &ex->req;
    bool ok = true;
    memset(p, 0, sizeof(*p));
    p->method = q->method;
    p->url_path = q->path;
    if (q->query.len) {
        char *t = arc_arena_alloc(&ex->arena, q->path.len + 1 + q->query.len);
        if (!t)
            return NULL;
        memcpy(t, q->path.p, q->path.len);
        t[q->path.len] = '?';
        memcpy(t + q->path.len + 1, q->query.p, q->query.len);
        p->path = (struct arc_str){ t, q->path.len + 1 + q->query.len };
    } else {
        p->path = q->path;
    }
    p->authority = q->authority;
    p->scheme = q->scheme;
    p->protocol = q->version == 20 ? ARC_STR_LIT("HTTP/2")
                  : q->version == 10 ? ARC_STR_LIT("HTTP/1.0") : ARC_STR_LIT("HTTP/1.1");
    const char *rn = ex->route->conf->name;
    p->route_name = (struct arc_str){ rn, strlen(rn) };
    p->source = arc_px__peer_addr(ex->client);
    return ok ? p : NULL;
}

static bool answer(struct arc_worker *w, struct arc_exchange *ex, enum arc_pl_verdict v)
{
    struct arc_pl_run *r = ex->pl;
    if (r->fail != ARC_PL_FAIL_NONE && v != ARC_PL_FAIL)
        arc_m_add(&w->metrics.errors[fail_kind(r->fail)], 1);   /* failed open */
    if (v == ARC_PL_CONTINUE)
        return true;
    if (v == ARC_PL_FAIL) {
        arc_px__ex_error(w, ex, r->fail == ARC_PL_FAIL_TIMEOUT ? 504 : 500, fail_kind(r->fail));
        return false;
    }
    const struct arc_pl_local *l = &r->local;
    arc_px__ex_respond(w, ex, l->status, (const struct arc_hdr *)l->hdrs, l->n_hdrs,
                       l->body.p, l->body.len);
    return false;
}

static struct arc_str pseudo(const struct arc_pl_hmap *m, const char *name)
{
    const struct arc_str *v = arc_pl_hmap_get(m, name, strlen(name));
    return v ? *v : (struct arc_str){ "", 0 };
}

/* The request map's original :path (before the filters). */
static struct arc_str orig_path(struct arc_exchange *ex)
{
    return ex->req.up_target.len ? ex->req.up_target : ex->pl->props->path;
}

static bool request_fields(struct arc_worker *w, struct arc_exchange *ex, struct arc_str path);

/* After the request stage: the verdict answered, or the filters' changes
 * applied to the request. False: the exchange was answered, or its body
 * goes through the filters before the action (ex->pl_gate). */
static bool request_done(struct arc_worker *w, struct arc_exchange *ex, enum arc_pl_verdict v,
                         struct arc_str path)
{
    const struct arc_req *q = &ex->req;
    if (!answer(w, ex, v))
        return false;
    /* A body the filters may rewrite: the upstream attempt waits for their
     * first output (gate_open), when its framing can be decided. */
    bool gate = (ex->pl->body_mask & ARC_PL_HAS_REQ_BODY) && q->body != ARC_H1_BODY_NONE &&
                !(q->body == ARC_H1_BODY_LENGTH && q->content_length == 0);
    if (!request_fields(w, ex, path))
        return false;
    if (gate) {
        ex->pl_gate = true;
        return false;                   /* (the body goes on through the filters) */
    }
    return true;
}

/* The filters' changes to the request head applied. False: answered. */
static bool request_fields(struct arc_worker *w, struct arc_exchange *ex, struct arc_str path)
{
    struct arc_req *q = &ex->req;
    struct arc_pl_hmap *m = ex->pl->req_map;
    if (!m || !m->changed)
        return true;
    /* The filters' changes: fields, then the pseudo-headers they replaced. */
    size_t k = 0;
    struct arc_hdr *f = arc_arena_alloc(&ex->arena, (m->n ? m->n : 1) * sizeof(*f));
    if (!f) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return false;
    }
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].name.len && m->v[i].name.p[0] != ':')
            f[k++] = (struct arc_hdr){ m->v[i].name, m->v[i].value };
    struct arc_str np = pseudo(m, ":path"), na = pseudo(m, ":authority"), nm = pseudo(m, ":method");
    if (!(np.len == path.len && memcmp(np.p, path.p, np.len) == 0) && np.len && np.p[0] == '/')
        q->up_target = np;
    if (na.len)
        q->authority = na;
    if (nm.len)
        q->method = nm;
    q->hdrs = (struct arc_hdr *)f;
    q->n_hdrs = k;
    /* (recomputes the method's facts; the fields already live in the arena) */
    if (!arc_px__ex_take_fields(ex, f, k)) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return false;
    }
    return true;
}

static void pl_pause(struct arc_worker *w, struct arc_exchange *ex);
static void on_pl_notify(void *owner);

/* Framing fields: Arc's to decide, never a filter's. */
static bool framing(struct arc_str n)
{
    return (n.len == 14 && strncasecmp(n.p, "content-length", 14) == 0) ||
           (n.len == 17 && strncasecmp(n.p, "transfer-encoding", 17) == 0);
}


/* ------------------------------------------------------------ bodies, trailers */

/* Per exchange whose filters export body or trailer callbacks (arena). */
struct pl_glue {
    struct arc_timer timer;             /* applies `fv` on the worker's next turn */
    struct arc_exchange *ex;
    enum arc_pl_verdict fv;             /* a failure mid-body (LOCAL, FAIL, TOO_LARGE);
                                           CONTINUE: none. Later bytes are dropped */
    enum arc_pl_fail ffail;
    int fdir;                           /* the direction that failed */
    bool done;                          /* the failure was applied */
    bool resp_body;                     /* the response's body goes through the filters */
    bool emitting;                      /* handing filtered bytes to the codec */
    /* The response head waits for the body filters' first output: if that
     * is the whole body, its Content-Length is known. */
    bool head_held;
    bool head_sent;
    struct arc_resp head;               /* (its fields copied into the arena) */
    /* The request gate (ex->pl_gate): what the filters passed on before the
     * attempt started, its trailers, and whether it is the whole body. */
    struct arc_pl_buf pend;             /* heap */
    bool opening;                       /* gate_open runs on the next turn */
    bool pend_eos;
    const struct arc_hdr *pend_tr;
    size_t pend_ntr;
    /* A response head paused by a filter (proxy_on_response_headers
     * returning Pause): its map, its deadline, and what the upstream sent
     * meanwhile (the upstream side is held back by ex->pl_hold). */
    bool resp_paused;
    bool detached;                      /* the upstream finished meanwhile (EX_WAITING) */
    struct arc_pl_hmap *resp_map;
    uint64_t pause_until;
    struct arc_pl_buf held_body;        /* heap */
    const struct arc_hdr *held_tr;
    size_t held_ntr;
    bool held_trailers;
    /* A body's end or trailers a filter paused (Pause at end_of_stream, or
     * in a trailer callback), per direction: ARC_PL_STAGE_BODY / _TRAILERS,
     * 0 if none. The glue's timer holds its pause_timeout (or, detached, the
     * exchange's wait); the trailers that came meanwhile wait in wtr, the
     * paused trailer stage's map in wmap. */
    uint8_t wait[2];
    const struct arc_hdr *wtr;          /* (arena) */
    size_t wntr;
    bool wtr_set;
    struct arc_pl_hmap *wmap;
    bool tr_sent;                       /* the response's trailers went to the codec */
};

static void resp_resume(struct arc_worker *w, struct arc_exchange *ex);
static void wait_sched(struct arc_worker *w, struct arc_exchange *ex);
static void on_resp_notify(void *owner);
static void on_resp_waited(struct arc_worker *w, struct arc_exchange *ex);
static void wait_resume(struct arc_worker *w, struct arc_exchange *ex);
static void glue_apply(struct arc_worker *w, struct arc_exchange *ex);

static void on_glue_timer(struct arc_timer *t, uint64_t now)
{
    (void)now;
    struct pl_glue *g = arc_container_of(t, struct pl_glue, timer);
    struct arc_exchange *ex = g->ex;
    struct arc_worker *w = arc_px__worker();
    if (g->resp_paused && g->fv == ARC_PL_CONTINUE) {
        resp_resume(w, ex);             /* (continued, answered, or pause_timeout) */
        return;
    }
    if ((g->wait[0] || g->wait[1]) && g->fv == ARC_PL_CONTINUE) {
        wait_resume(w, ex);
        return;
    }
    glue_apply(w, ex);
}

/* A failure mid-body (g->fv), applied: an answer if nothing of the
 * response went out, else a cut. */
static void glue_apply(struct arc_worker *w, struct arc_exchange *ex)
{
    struct pl_glue *g = ex->pl->glue;
    struct arc_pl_run *r = ex->pl;
    g->done = true;
    if (g->head_held) {
        /* The response's head was held back: nothing went out yet. */
        g->head_held = false;
        ex->resp_started = false;
    }
    if (ex->resp_started || !r) {
        /* Bytes of the response already went out: no second head. */
        if (g->fv == ARC_PL_FAIL)
            arc_m_add(&w->metrics.errors[fail_kind(g->ffail)], 1);
        else if (g->fv == ARC_PL_TOO_LARGE)
            arc_m_add(&w->metrics.errors[ARC_ERR_BODY_TOO_LARGE], 1);
        arc_px__ex_cut(w, ex);
        return;
    }
    if (g->fv == ARC_PL_LOCAL) {
        const struct arc_pl_local *l = &r->local;
        arc_px__ex_respond(w, ex, l->status, (const struct arc_hdr *)l->hdrs, l->n_hdrs,
                           l->body.p, l->body.len);
    } else if (g->fv == ARC_PL_TOO_LARGE) {
        /* (as Envoy: a request body over the buffer limit is the client's
         * 413, a response body over it the proxy's 500) */
        arc_px__ex_error(w, ex, g->fdir == ARC_PL_DIR_REQ ? 413 : 500, ARC_ERR_BODY_TOO_LARGE);
    } else {
        arc_px__ex_error(w, ex, g->ffail == ARC_PL_FAIL_TIMEOUT ? 504 : 500, fail_kind(g->ffail));
    }
}

static bool glue_new(struct arc_exchange *ex)
{
    struct pl_glue *g = arc_arena_alloc(&ex->arena, sizeof(*g));
    if (!g)
        return false;
    memset(g, 0, sizeof(*g));
    g->ex = ex;
    arc_timer_init(&g->timer, on_glue_timer);
    ex->pl->glue = g;
    return true;
}

/* A filter failed or answered mid-body: applied on the next turn (the
 * codec calling us still uses the exchange). */
static void glue_fail(struct arc_worker *w, struct arc_exchange *ex, int dir,
                      enum arc_pl_verdict v)
{
    struct pl_glue *g = ex->pl->glue;
    if (g->fv != ARC_PL_CONTINUE)
        return;
    g->fv = v;
    g->fdir = dir;
    g->ffail = ex->pl->fail;
    arc_tw_schedule(&w->tw, &g->timer, w->now_ms);
}

/* Counts a failure the filters absorbed (fail_open). */
static void note_open(struct arc_worker *w, const struct arc_pl_run *r)
{
    if (r->fail != ARC_PL_FAIL_NONE)
        arc_m_add(&w->metrics.errors[fail_kind(r->fail)], 1);
}

/* The gate opens: the framing of the body is decided (its length when the
 * filters' first output was all of it, else chunked / no content-length)
 * and the action starts, then gets what the filters passed on so far. */
static void gate_open(struct arc_worker *w, struct arc_exchange *ex)
{
    struct pl_glue *g = ex->pl->glue;
    struct arc_req *q = &ex->req;
    ex->pl_gate = false;
    g->opening = false;
    if (g->pend_eos && g->pend_ntr == 0) {
        q->body = ARC_H1_BODY_LENGTH;
        q->content_length = g->pend.len;
    } else {
        q->body = ARC_H1_BODY_CHUNKED;
        q->content_length = 0;
    }
    /* The attempt starts as for a body still to come (an HTTP/2 stream
     * would otherwise end at once): it is fed right after. */
    bool done = ex->req_done;
    ex->req_done = false;
    arc_px__pipeline_action(w, ex);     /* (ex->pl is set: the plugins do not run again) */
    if (ex->ended)
        return;                         /* (answered) */
    ex->req_done = done;
    if (!arc_px__body_wanted(ex))
        return;                         /* (answered locally: the bytes are dropped) */
    ex->req_done = false;
    if (g->pend.len)
        arc_px__up_body_raw(w, ex, -1, g->pend.p, g->pend.len, false);
    if (g->pend_eos)
        arc_px__up_body_end_raw(w, ex, g->pend_tr, g->pend_ntr);
    ex->req_done = done;
    free(g->pend.p);
    g->pend = (struct arc_pl_buf){ 0 };
    arc_px__up_kick(w, ex);
}

/* Output of the request filters while the gate is closed: kept, and the
 * gate opens on the worker's next turn (client input waits meanwhile). */
static void gate_feed(struct arc_worker *w, struct arc_exchange *ex, const char *p, size_t len)
{
    struct pl_glue *g = ex->pl->glue;
    if (len) {
        if (g->pend.len + len > g->pend.cap) {
            size_t cap = g->pend.cap ? g->pend.cap : 4096;
            while (cap < g->pend.len + len)
                cap *= 2;
            char *np = realloc(g->pend.p, cap);
            if (!np) {
                ex->pl->fail = ARC_PL_FAIL_TRAP;
                glue_fail(w, ex, ARC_PL_DIR_REQ, ARC_PL_FAIL);
                return;
            }
            g->pend.p = np;
            g->pend.cap = cap;
        }
        memcpy(g->pend.p + g->pend.len, p, len);
        g->pend.len += len;
    }
    if (!g->opening && (len || g->pend_eos)) {
        g->opening = true;
        arc_px__ex_wait(w, ex, w->now_ms, gate_open, NULL, 0);
    }
}

void arc_px__plugins_req_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                              const char *p, size_t len)
{
    struct pl_glue *g = ex->pl->glue;
    if (g->fv != ARC_PL_CONTINUE || !arc_px__body_wanted(ex) || len == 0)
        return;                         /* (failing, or nobody takes the bytes) */
    const char *o;
    size_t on;
    enum arc_pl_verdict v = arc_pl_body(ex->pl, ARC_PL_DIR_REQ, p, len, false, w->now_ms, &o, &on);
    if (v != ARC_PL_CONTINUE) {
        glue_fail(w, ex, ARC_PL_DIR_REQ, v);
        return;
    }
    note_open(w, ex->pl);
    if (ex->pl_gate)
        gate_feed(w, ex, o, on);
    else if (on)
        arc_px__up_body_raw(w, ex, o == p ? bid : -1, o, on, false);
}

/* Trailer fields through the trailer filters (with those a body filter
 * added at the body's end, run->tmap): the fields to send (the given ones,
 * or the filters' version in the arena); n_out = -1: the exchange fails
 * (glue_fail ran); -2: a filter paused them (g->wmap holds the map). */
static const struct arc_hdr *trailers_run(struct arc_worker *w, struct arc_exchange *ex, int dir,
                                          const struct arc_hdr *t, size_t n, long *n_out)
{
    *n_out = (long)n;
    unsigned has = dir ? ARC_PL_HAS_RESP_TRAILERS : ARC_PL_HAS_REQ_TRAILERS;
    const struct arc_pl_hmap *added = ex->pl->tmap[dir];
    size_t na = added ? added->n : 0;
    if (!n && !na)
        return t;                       /* (no trailers: no callback, as Envoy) */
    if (!(ex->pl->body_mask & has) && !na)
        return t;
    struct arc_pl_hmap *m = arc_arena_alloc(&ex->arena, sizeof(*m));
    bool ok = m != NULL;
    if (ok)
        *m = (struct arc_pl_hmap){ .arena = &ex->arena };
    for (size_t i = 0; ok && i < n; i++)
        ok = arc_pl_hmap_add(m, t[i].name, t[i].value);  /* (copied: views may be short-lived) */
    for (size_t i = 0; ok && i < na; i++)
        ok = arc_pl_hmap_view(m, added->v[i].name, added->v[i].value);
    if (!ok) {
        ex->pl->fail = ARC_PL_FAIL_TRAP;
        glue_fail(w, ex, dir, ARC_PL_FAIL);
        *n_out = -1;
        return NULL;
    }
    m->changed = false;
    enum arc_pl_verdict v = arc_pl_trailers(ex->pl, dir, m, w->now_ms);
    if (v == ARC_PL_PAUSE) {
        ((struct pl_glue *)ex->pl->glue)->wmap = m;
        *n_out = -2;
        return NULL;
    }
    if (v != ARC_PL_CONTINUE) {
        glue_fail(w, ex, dir, v);
        *n_out = -1;
        return NULL;
    }
    note_open(w, ex->pl);
    *n_out = (long)m->n;
    return (const struct arc_hdr *)m->v;
}

/* Trailer fields copied into the arena (their views die with the
 * caller's buffer); NULL with *ok false on out of memory. */
static const struct arc_hdr *keep_fields(struct arc_exchange *ex, const struct arc_hdr *t,
                                         size_t n, bool *ok)
{
    struct arc_hdr *kt = n ? arc_arena_alloc(&ex->arena, n * sizeof(*kt)) : NULL;
    *ok = !n || kt;
    for (size_t i = 0; *ok && i < n; i++) {
        kt[i].name = arc_px__ex_dup(ex, t[i].name, ok);
        kt[i].value = arc_px__ex_dup(ex, t[i].value, ok);
    }
    return kt;
}

/* A filter paused a body's end or its trailers: the exchange waits for
 * proxy_continue_stream (or a local answer) up to pause_timeout, on the
 * glue's timer (notify moves it to now). */
static void wait_arm(struct arc_worker *w, struct arc_exchange *ex, int dir, int stage)
{
    struct pl_glue *g = ex->pl->glue;
    g->wait[dir] = (uint8_t)stage;
    g->pause_until = w->now_ms + ex->pl->pause_ms;
    wait_sched(w, ex);
}

/* (the wait's deadline: g->pause_until) */
static void wait_sched(struct arc_worker *w, struct arc_exchange *ex)
{
    struct pl_glue *g = ex->pl->glue;
    ex->pl->notify = on_resp_notify;
    ex->pl->owner = ex;
    if (g->detached)
        arc_px__ex_wait(w, ex, g->pause_until, on_resp_waited, NULL, 0);
    else
        arc_tw_schedule(&w->tw, &g->timer, g->pause_until);
}

/* The request body's last output: to the upstream, or kept for the gate. */
static void req_body_out(struct arc_worker *w, struct arc_exchange *ex, const char *o, size_t on)
{
    struct pl_glue *g = ex->pl->glue;
    if (ex->pl_gate) {
        if (on && !arc_pl_buf_add(&g->pend, o, on)) {
            ex->pl->fail = ARC_PL_FAIL_TRAP;
            glue_fail(w, ex, ARC_PL_DIR_REQ, ARC_PL_FAIL);
        }
        return;
    }
    if (on && arc_px__body_wanted(ex))
        arc_px__up_body_raw(w, ex, -1, o, on, false);
}

/* The request's end, its trailers filtered: to the upstream, or the gate
 * opens with the whole body. */
static void req_finish(struct arc_worker *w, struct arc_exchange *ex, const struct arc_hdr *t,
                       size_t nt)
{
    struct pl_glue *g = ex->pl->glue;
    if (g->fv != ARC_PL_CONTINUE)
        return;
    if (ex->pl_gate) {
        bool ok;
        g->pend_tr = keep_fields(ex, t, nt, &ok);
        g->pend_ntr = ok ? nt : 0;
        g->pend_eos = true;
        gate_feed(w, ex, NULL, 0);
        return;
    }
    arc_px__up_body_end_raw(w, ex, t, nt);
}

static void req_trailers(struct arc_worker *w, struct arc_exchange *ex,
                         const struct arc_hdr *trailers, size_t n)
{
    long nt;
    const struct arc_hdr *t = trailers_run(w, ex, ARC_PL_DIR_REQ, trailers, n, &nt);
    if (nt == -2)
        wait_arm(w, ex, ARC_PL_DIR_REQ, ARC_PL_STAGE_TRAILERS);
    else if (nt >= 0)
        req_finish(w, ex, t, (size_t)nt);
}

void arc_px__plugins_req_end(struct arc_worker *w, struct arc_exchange *ex,
                             const struct arc_hdr *trailers, size_t n)
{
    struct pl_glue *g = ex->pl->glue;
    if (g->fv != ARC_PL_CONTINUE)
        return;
    if (ex->pl->body_mask & ARC_PL_HAS_REQ_BODY) {
        const char *o;
        size_t on;
        enum arc_pl_verdict v = arc_pl_body(ex->pl, ARC_PL_DIR_REQ, NULL, 0, true, w->now_ms,
                                            &o, &on);
        if (v == ARC_PL_PAUSE) {
            bool ok;
            g->wtr = keep_fields(ex, trailers, n, &ok);
            g->wntr = ok ? n : 0;
            wait_arm(w, ex, ARC_PL_DIR_REQ, ARC_PL_STAGE_BODY);
            return;
        }
        if (v != ARC_PL_CONTINUE) {
            glue_fail(w, ex, ARC_PL_DIR_REQ, v);
            return;
        }
        note_open(w, ex->pl);
        req_body_out(w, ex, o, on);
    }
    req_trailers(w, ex, trailers, n);
}

bool arc_px__plugins_holding(const struct arc_exchange *ex)
{
    const struct pl_glue *g = ex->pl->glue;
    return ex->pl_hold || ex->pl_gate ||
           (g && (g->resp_paused || g->wait[ARC_PL_DIR_REQ] || g->wait[ARC_PL_DIR_RESP]));
}

void arc_px__plugins_unsent(struct arc_exchange *ex)
{
    struct pl_glue *g = ex->pl->glue;
    if (!g->head_held)
        return;
    g->head_held = false;
    g->done = true;                     /* (the answer ends it: no body end, no resume) */
    ex->resp_started = false;
}

bool arc_px__plugins_hold_head(struct arc_exchange *ex, const struct arc_resp *r)
{
    struct pl_glue *g = ex->pl->glue;
    if (!g || g->emitting || !(g->resp_body || g->resp_paused) || g->head_sent || g->head_held)
        return false;
    /* The received head's views are valid during this call only. */
    struct arc_h1_header *f = arc_arena_alloc(&ex->arena, (r->n_hdrs + 1) * sizeof(*f));
    if (!f)
        return false;
    bool ok = true;
    for (size_t i = 0; i < r->n_hdrs; i++) {
        f[i].name = arc_px__ex_dup(ex, r->hdrs[i].name, &ok);
        f[i].value = arc_px__ex_dup(ex, r->hdrs[i].value, &ok);
    }
    g->head = *r;
    g->head.reason = arc_px__ex_dup(ex, r->reason, &ok);
    g->head.hdrs = f;
    if (!ok)
        return false;
    g->head_held = true;
    return true;
}

/* The held head goes out: with the body's length when `whole` (the
 * filters' output is all of it), else as the filters' framing said. */
static void send_held(struct arc_worker *w, struct arc_exchange *ex, bool whole, size_t len)
{
    struct pl_glue *g = ex->pl->glue;
    if (!g->head_held)
        return;
    g->head_held = false;
    g->head_sent = true;
    struct arc_resp *r = &g->head;
    if (whole) {
        char *cl = arc_arena_alloc(&ex->arena, 24);
        if (cl) {
            int n = snprintf(cl, 24, "%zu", len);
            struct arc_h1_header *f = (struct arc_h1_header *)r->hdrs;
            size_t k = 0;
            for (size_t i = 0; i < r->n_hdrs; i++)
                if (!framing(f[i].name))        /* (the upstream's own, if kept) */
                    f[k++] = f[i];
            r->n_hdrs = k;
            f[r->n_hdrs++] = (struct arc_h1_header){ ARC_STR_LIT("content-length"),
                                                     { cl, (size_t)n } };
            r->body = ARC_H1_BODY_LENGTH;
            r->content_length = len;
        }
    }
    g->emitting = true;
    ex->client->c.codec->send_head(w, ex, r);
    g->emitting = false;
}

static void emit(struct arc_worker *w, struct arc_exchange *ex, int32_t bid, const char *p,
                 size_t len)
{
    struct pl_glue *g = ex->pl->glue;
    if (!len)
        return;
    g->emitting = true;
    ex->client->c.codec->send_body(w, ex, bid, p, len, false);
    g->emitting = false;
}

/* A body filter added response trailers at the body's end. */
static bool added_trailers(const struct arc_exchange *ex)
{
    return ex->pl->tmap[ARC_PL_DIR_RESP] && ex->pl->tmap[ARC_PL_DIR_RESP]->n;
}

bool arc_px__plugins_resp_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                               const char *p, size_t len)
{
    struct pl_glue *g = ex->pl->glue;
    if (!g || g->emitting)
        return false;
    if (g->resp_paused) {
        /* (the few bytes already on their way when the upstream side was
         * held back: bounded by its receive buffer or stream window) */
        if (len && !arc_pl_buf_add(&g->held_body, p, len))
            glue_fail(w, ex, ARC_PL_DIR_RESP, ARC_PL_FAIL);
        return true;
    }
    if (!g->resp_body)
        return false;
    if (g->fv != ARC_PL_CONTINUE || len == 0)
        return true;
    const char *o;
    size_t on;
    enum arc_pl_verdict v = arc_pl_body(ex->pl, ARC_PL_DIR_RESP, p, len, ex->resp_done,
                                        w->now_ms, &o, &on);
    if (v == ARC_PL_PAUSE) {
        wait_arm(w, ex, ARC_PL_DIR_RESP, ARC_PL_STAGE_BODY);
        return true;
    }
    if (v != ARC_PL_CONTINUE) {
        glue_fail(w, ex, ARC_PL_DIR_RESP, v);
        return true;
    }
    note_open(w, ex->pl);
    if (on || ex->resp_done)
        send_held(w, ex, ex->resp_done && !added_trailers(ex), on);
    emit(w, ex, o == p ? bid : -1, o, on);
    return true;
}

/* The end of the response body through the body filters (its last bytes
 * in *o, *on, not sent yet): their verdict (ARC_PL_PAUSE: a filter holds
 * it, wait_arm next). */
static enum arc_pl_verdict resp_body_end(struct arc_worker *w, struct arc_exchange *ex,
                                         const char **o, size_t *on)
{
    struct pl_glue *g = ex->pl->glue;
    *o = "";
    *on = 0;
    if (!g->resp_body || !(ex->pl->body_mask & ARC_PL_HAS_RESP_BODY) ||
        ex->pl->body_eos[ARC_PL_DIR_RESP])
        return ARC_PL_CONTINUE;
    enum arc_pl_verdict v = arc_pl_body(ex->pl, ARC_PL_DIR_RESP, NULL, 0, true, w->now_ms,
                                        o, on);
    if (v == ARC_PL_CONTINUE)
        note_open(w, ex->pl);
    return v;
}

/* The response's last body bytes (o, on) and its trailers, through the
 * trailer filters, to the client. False: a trailer filter paused them (the
 * body went out) or the exchange fails. */
static bool resp_tail(struct arc_worker *w, struct arc_exchange *ex, const char *o, size_t on,
                      const struct arc_hdr *hdrs, size_t n)
{
    struct pl_glue *g = ex->pl->glue;
    long nt;
    const struct arc_hdr *t = trailers_run(w, ex, ARC_PL_DIR_RESP, hdrs, n, &nt);
    if (nt == -1)
        return false;
    send_held(w, ex, nt == 0, on);      /* (trailers need the chunked framing) */
    emit(w, ex, -1, o, on);
    if (nt == -2) {
        wait_arm(w, ex, ARC_PL_DIR_RESP, ARC_PL_STAGE_TRAILERS);
        return false;
    }
    if (nt > 0 || n) {
        g->tr_sent = true;
        g->emitting = true;
        ex->client->c.codec->trailers(w, ex, t, (size_t)nt);
        g->emitting = false;
    }
    return true;
}

bool arc_px__plugins_resp_trailers(struct arc_worker *w, struct arc_exchange *ex,
                                   const struct arc_hdr *hdrs, size_t n)
{
    struct pl_glue *g = ex->pl->glue;
    if (!g || g->emitting)
        return false;
    if (g->resp_paused || g->wait[ARC_PL_DIR_RESP] == ARC_PL_STAGE_BODY) {
        /* (kept for when the paused head or body's end goes on) */
        bool ok;
        const struct arc_hdr *kt = keep_fields(ex, hdrs, n, &ok);
        if (g->resp_paused) {
            g->held_tr = kt;
            g->held_ntr = ok ? n : 0;
            g->held_trailers = true;
        } else {
            g->wtr = kt;
            g->wntr = ok ? n : 0;
            g->wtr_set = true;
        }
        return true;
    }
    if (!g->resp_body)
        return false;
    if (g->fv != ARC_PL_CONTINUE || g->wait[ARC_PL_DIR_RESP])
        return true;
    /* Trailers end the body: its last call (end_of_stream) comes first. */
    const char *o;
    size_t on;
    enum arc_pl_verdict v = resp_body_end(w, ex, &o, &on);
    if (v == ARC_PL_PAUSE) {
        bool ok;
        g->wtr = keep_fields(ex, hdrs, n, &ok);
        g->wntr = ok ? n : 0;
        g->wtr_set = true;
        wait_arm(w, ex, ARC_PL_DIR_RESP, ARC_PL_STAGE_BODY);
        return true;
    }
    if (v != ARC_PL_CONTINUE) {
        glue_fail(w, ex, ARC_PL_DIR_RESP, v);
        return true;
    }
    resp_tail(w, ex, o, on, hdrs, n);
    return true;
}

/* A paused body end or trailer stage goes on (continued, answered, failed
 * or past pause_timeout). */
static void wait_resume(struct arc_worker *w, struct arc_exchange *ex)
{
    struct pl_glue *g = ex->pl->glue;
    struct arc_pl_run *r = ex->pl;
    int dir = g->wait[ARC_PL_DIR_REQ] ? ARC_PL_DIR_REQ : ARC_PL_DIR_RESP;
    int stage = g->wait[dir];
    enum arc_pl_verdict v = arc_pl_resume(r, w->now_ms);
    if (v == ARC_PL_PAUSE) {
        g->wait[dir] = 0;               /* (a later filter paused it again) */
        wait_arm(w, ex, dir, r->pause_stage);
        return;
    }
    g->wait[dir] = 0;
    if (v != ARC_PL_CONTINUE) {
        g->fv = v;
        g->fdir = dir;
        g->ffail = r->fail;
        g->detached = false;
        glue_apply(w, ex);
        return;
    }
    note_open(w, r);
    bool ended = true;
    if (dir == ARC_PL_DIR_REQ) {
        if (stage == ARC_PL_STAGE_BODY) {
            const char *o;
            size_t on;
            arc_pl_body_out(r, ARC_PL_DIR_REQ, &o, &on);
            req_body_out(w, ex, o, on);
            if (g->fv == ARC_PL_CONTINUE)
                req_trailers(w, ex, g->wtr, g->wntr);
        } else {
            req_finish(w, ex, (const struct arc_hdr *)g->wmap->v, g->wmap->n);
        }
        if (!ex->pl_gate)
            arc_px__up_kick(w, ex);     /* (what was queued goes out) */
        return;
    }
    if (stage == ARC_PL_STAGE_BODY) {
        const char *o;
        size_t on;
        arc_pl_body_out(r, ARC_PL_DIR_RESP, &o, &on);
        if (g->wtr_set || added_trailers(ex)) {
            g->wtr_set = false;
            ended = resp_tail(w, ex, o, on, g->wtr, g->wntr);
        } else {
            send_held(w, ex, g->detached, on);
            emit(w, ex, -1, o, on);
        }
    } else {
        g->tr_sent = true;
        g->emitting = true;
        ex->client->c.codec->trailers(w, ex, (const struct arc_hdr *)g->wmap->v, g->wmap->n);
        g->emitting = false;
    }
    if (!ended || g->fv != ARC_PL_CONTINUE)
        return;                         /* (paused again, or failing: glue_fail's turn) */
    if (g->detached) {
        g->detached = false;
        arc_px__ex_end(w, ex, EXO_COMPLETE);
    }
}

static void on_resp_waited(struct arc_worker *w, struct arc_exchange *ex);

bool arc_px__plugins_finish(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome *out)
{
    struct pl_glue *g = ex->pl->glue;
    enum ex_outcome o = *out;
    arc_tw_cancel(&w->tw, &g->timer);
    if ((o == EXO_CLIENT_ABORT || o == EXO_CLIENT_TIMEOUT) && g->head_held)
        ex->status = 0;                 /* (nothing was answered: counted as 499) */
    if (g->resp_paused && o == EXO_COMPLETE && g->fv == ARC_PL_CONTINUE && !g->done) {
        /* The upstream finished while a filter holds the response head:
         * everything it sent is kept here; the exchange lets go of the
         * upstream and waits for the filter (up to what is left of its
         * pause_timeout), then ends. */
        arc_px__ex_drop_upstream(w, ex);
        ex->pl_hold = false;
        g->detached = true;
        ex->pl->notify = on_pl_notify;
        arc_px__ex_wait(w, ex, ARC_MAX(g->pause_until, w->now_ms), on_resp_waited, NULL, 0);
        return false;
    }
    bool paused_before = g->wait[ARC_PL_DIR_RESP] != 0;
    if (o == EXO_COMPLETE && g->fv == ARC_PL_CONTINUE && !g->done && !g->detached &&
        g->resp_body && !g->wait[ARC_PL_DIR_RESP]) {
        const char *b;
        size_t bn;
        enum arc_pl_verdict v = resp_body_end(w, ex, &b, &bn);
        if (v == ARC_PL_CONTINUE) {
            if (added_trailers(ex) && !g->tr_sent) {
                if (!resp_tail(w, ex, b, bn, NULL, 0) && g->fv == ARC_PL_CONTINUE &&
                    !g->wait[ARC_PL_DIR_RESP])
                    v = ARC_PL_FAIL;    /* (trailers failed: counted below) */
            } else {
                send_held(w, ex, true, bn);
                emit(w, ex, -1, b, bn);
            }
        } else if (v == ARC_PL_PAUSE) {
            g->wait[ARC_PL_DIR_RESP] = ARC_PL_STAGE_BODY;
        } else {
            g->fv = v;
            g->ffail = ex->pl->fail;
        }
    }
    if (g->wait[ARC_PL_DIR_RESP] && o == EXO_COMPLETE && g->fv == ARC_PL_CONTINUE && !g->done) {
        /* The upstream finished while a filter holds the response's end
         * (its body's last call or its trailers): the exchange lets go of
         * the upstream and waits for the filter, then ends. */
        arc_tw_cancel(&w->tw, &g->timer);
        arc_px__ex_drop_upstream(w, ex);
        ex->pl_hold = false;
        g->detached = true;
        if (!paused_before)
            g->pause_until = w->now_ms + ex->pl->pause_ms;
        g->pause_until = ARC_MAX(g->pause_until, w->now_ms);
        if (ex->pl->resume_req || ex->pl->has_local || ex->pl->pfail)
            g->pause_until = w->now_ms;  /* (told meanwhile: goes on at once) */
        wait_sched(w, ex);              /* (what is left of its pause_timeout) */
        return false;
    }
    free(g->pend.p);
    g->pend = (struct arc_pl_buf){ 0 };
    free(g->held_body.p);
    g->held_body = (struct arc_pl_buf){ 0 };
    ex->pl_gate = false;
    ex->pl_hold = false;
    if (g->done)
        return true;                    /* (the failure's own answer ends it) */
    if (g->fv != ARC_PL_CONTINUE && o == EXO_COMPLETE && g->head_held) {
        /* The upstream finished before the failure's answer was due, and
         * nothing of the response went out: answered here instead. */
        g->head_held = false;
        int st = g->fv == ARC_PL_LOCAL ? ex->pl->local.status
                 : g->fv == ARC_PL_TOO_LARGE && g->fdir == ARC_PL_DIR_REQ ? 413 : 500;
        if (g->fv != ARC_PL_LOCAL)
            arc_m_add(&w->metrics.errors[g->fv == ARC_PL_TOO_LARGE ? ARC_ERR_BODY_TOO_LARGE
                                                                    : fail_kind(g->ffail)], 1);
        char body[64];
        int bl = snprintf(body, sizeof(body), "%d %s\n", st, arc_h1_reason(st));
        static const struct arc_hdr ct = { ARC_STR_LIT("Content-Type"),
                                           ARC_STR_LIT("text/plain; charset=utf-8") };
        const struct arc_pl_local *l = &ex->pl->local;
        ex->status = st;
        if (g->fv == ARC_PL_LOCAL)
            ex->client->c.codec->respond(w, ex, st, (const struct arc_hdr *)l->hdrs, l->n_hdrs,
                                         l->body.p, l->body.len);
        else
            ex->client->c.codec->respond(w, ex, st, &ct, 1, body, (size_t)bl);
        return true;
    }
    if (g->fv != ARC_PL_CONTINUE && (o == EXO_COMPLETE)) {
        /* A filter failed on the body's last bytes: the response is cut. */
        arc_m_add(&w->metrics.errors[g->fv == ARC_PL_TOO_LARGE ? ARC_ERR_BODY_TOO_LARGE
                                                                : fail_kind(g->ffail)], 1);
        *out = EXO_UPSTREAM_CUT;
    }
    return true;
}

/* The paused request's wait ended: continued, answered, or timed out. */
static void on_pl_wake(struct arc_worker *w, struct arc_exchange *ex)
{
    struct arc_str path = orig_path(ex);
    enum arc_pl_verdict v = arc_pl_resume(ex->pl, w->now_ms);
    if (v == ARC_PL_PAUSE) {
        pl_pause(w, ex);
        return;
    }
    if (request_done(w, ex, v, path))
        arc_px__pipeline_action(w, ex);  /* (ex->pl is set: plugins do not run again) */
}

/* Called from a guest call: only moves the wait's deadline to now (the
 * timer fires on the worker's next turn, outside any guest call). */
static void on_pl_notify(void *owner)
{
    struct arc_exchange *ex = owner;
    if (arc_px__ex_waiting(ex))
        arc_tw_schedule(&ex->wait.w->tw, &ex->wait.timer, 0);
}

static void pl_pause(struct arc_worker *w, struct arc_exchange *ex)
{
    ex->pl->notify = on_pl_notify;
    ex->pl->owner = ex;
    arc_px__ex_wait(w, ex, w->now_ms + ex->pl->pause_ms, on_pl_wake, NULL, 0);
}

bool arc_px__plugins_request(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_route_conf *rc = ex->route->conf;
    struct arc_pl_set *set = ex->snap->plugins;
    struct arc_req *q = &ex->req;
    struct arc_pl_props *props = props_new(ex);
    if (!props || !(ex->pl = arc_pl_run_new(set, w->id, rc->plugins, rc->plugin_roots, rc->n_plugins, &ex->arena,
                                             props))) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return false;
    }
    ex->pl->notify = on_pl_notify;
    ex->pl->owner = ex;
    ex->pl->dispatch = arc_px__callout;
    if (ex->pl->body_mask && !glue_new(ex)) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return false;
    }
    struct arc_pl_hmap *m = arc_arena_alloc(&ex->arena, sizeof(*m));
    if (!m) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return false;
    }
    *m = (struct arc_pl_hmap){ .arena = &ex->arena };
    struct arc_str path = orig_path(ex);
    /* Views: the request lives in the exchange's arena, like the map. */
    bool ok = arc_pl_hmap_view(m, ARC_STR_LIT(":authority"), q->authority) &&
              arc_pl_hmap_view(m, ARC_STR_LIT(":path"), path) &&
              arc_pl_hmap_view(m, ARC_STR_LIT(":method"), q->method) &&
              arc_pl_hmap_view(m, ARC_STR_LIT(":scheme"), q->scheme);
    for (size_t i = 0; ok && i < q->n_hdrs; i++)
        if (!arc_str_eq(q->hdrs[i].name, "host", 4) && !(q->hdrs[i].name.len == 4 &&
                                                          strncasecmp(q->hdrs[i].name.p, "host", 4) == 0))
            ok = arc_pl_hmap_view(m, q->hdrs[i].name, q->hdrs[i].value);
    if (!ok) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return false;
    }
    m->changed = false;
    bool eos = q->body == ARC_H1_BODY_NONE || (q->body == ARC_H1_BODY_LENGTH && !q->content_length);
    enum arc_pl_verdict v = arc_pl_request_headers(ex->pl, m, eos, w->now_ms);
    if (v == ARC_PL_PAUSE) {
        pl_pause(w, ex);
        return false;
    }
    return request_done(w, ex, v, path);
}

/* ------------------------------------------------------------ response pause */

/* Called from a guest call: the paused response's timer fires now (on the
 * worker's next turn, outside any guest call). */
static void on_resp_notify(void *owner)
{
    struct arc_exchange *ex = owner;
    struct pl_glue *g = ex->pl->glue;
    if (g->detached)
        on_pl_notify(owner);            /* (waiting: its wait's timer) */
    else
        arc_tw_schedule(&arc_px__worker()->tw, &g->timer, 0);
}

/* A filter paused the response head: its map is kept (the received head's
 * views die with the upstream's buffer), the upstream side is held back,
 * and the head (arc_px__plugins_hold_head) waits. */
static bool resp_pause(struct arc_worker *w, struct arc_exchange *ex, struct arc_pl_hmap *m,
                       struct arc_resp *resp)
{
    struct arc_pl_run *r = ex->pl;
    bool ok = r->glue || glue_new(ex);
    for (size_t i = 0; ok && i < m->n; i++) {
        m->v[i].name = arc_px__ex_dup(ex, m->v[i].name, &ok);
        m->v[i].value = arc_px__ex_dup(ex, m->v[i].value, &ok);
    }
    if (!ok) {
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_BAD);
        return false;
    }
    struct pl_glue *g = r->glue;
    g->resp_map = m;
    g->resp_paused = true;
    g->pause_until = w->now_ms + r->pause_ms;
    r->notify = on_resp_notify;
    r->owner = ex;
    ex->pl_hold = true;
    arc_tw_schedule(&w->tw, &g->timer, g->pause_until);
    /* What arrives meanwhile is kept decoded: a chunked body goes on
     * re-chunked by Arc. */
    if (resp->body == ARC_H1_BODY_CHUNKED)
        resp->decoded = true;
    return true;
}

/* The response head h as the filters left map m: their fields (no
 * pseudo-headers), and a valid :status. Framing stays Arc's: the
 * upstream's Content-Length and Transfer-Encoding are kept whatever the
 * filters did to them, unless the body is reframed (then none). False
 * when memory ran out. */
static bool head_from_map(struct arc_exchange *ex, const struct arc_pl_hmap *m,
                          struct arc_resp *h, bool reframed)
{
    struct arc_h1_header *f = arc_arena_alloc(&ex->arena, (m->n + h->n_hdrs + 1) * sizeof(*f));
    if (!f)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].name.len && m->v[i].name.p[0] != ':' && !framing(m->v[i].name))
            f[k++] = (struct arc_h1_header){ m->v[i].name, m->v[i].value };
    for (size_t i = 0; i < h->n_hdrs && !reframed; i++)
        if (framing(h->hdrs[i].name))
            f[k++] = h->hdrs[i];
    struct arc_str ns = pseudo(m, ":status");
    int status = 0;
    for (size_t i = 0; i < ns.len && ns.p[i] >= '0' && ns.p[i] <= '9'; i++)
        status = status * 10 + (ns.p[i] - '0');
    if (ns.len == 3 && status >= 200 && status <= 599) {
        h->status = status;
        ex->status = status;
    }
    h->hdrs = f;
    h->n_hdrs = k;
    return true;
}

/* The filters' changes to the paused head, applied to the held copy. */
static bool head_apply(struct arc_exchange *ex)
{
    struct pl_glue *g = ex->pl->glue;
    struct arc_pl_hmap *m = g->resp_map;
    struct arc_resp *h = &g->head;
    return head_from_map(ex, m, h, g->resp_body && (ex->pl->body_mask & ARC_PL_HAS_RESP_BODY));
}

/* The paused response head goes on (continued), is answered instead
 * (a local answer, a failure, pause_timeout), or waits for a later
 * filter that paused it too. */
static void resp_resume(struct arc_worker *w, struct arc_exchange *ex)
{
    struct pl_glue *g = ex->pl->glue;
    struct arc_pl_run *r = ex->pl;
    enum arc_pl_verdict v = arc_pl_resume(r, w->now_ms);
    if (v == ARC_PL_PAUSE) {
        g->pause_until = w->now_ms + r->pause_ms;
        if (g->detached)
            arc_px__ex_wait(w, ex, g->pause_until, on_resp_waited, NULL, 0);
        else
            arc_tw_schedule(&w->tw, &g->timer, g->pause_until);
        return;
    }
    g->resp_paused = false;
    ex->pl_hold = false;
    if (v == ARC_PL_CONTINUE && !head_apply(ex)) {
        r->fail = ARC_PL_FAIL_UNAVAILABLE;
        v = ARC_PL_FAIL;
    }
    if (v != ARC_PL_CONTINUE) {
        /* Nothing of the response went out: the answer replaces it. */
        g->done = true;
        g->head_held = false;
        ex->resp_started = false;
        if (v == ARC_PL_LOCAL) {
            const struct arc_pl_local *l = &r->local;
            arc_px__ex_respond(w, ex, l->status, (const struct arc_hdr *)l->hdrs, l->n_hdrs,
                               l->body.p, l->body.len);
        } else {
            arc_px__ex_error(w, ex, r->fail == ARC_PL_FAIL_TIMEOUT ? 504 : 500,
                             fail_kind(r->fail));
        }
        return;
    }
    note_open(w, r);
    struct arc_pl_buf b = g->held_body;
    g->held_body = (struct arc_pl_buf){ 0 };
    if (!g->resp_body)
        send_held(w, ex, false, 0);     /* (body filters send it with their output) */
    if (b.len && !arc_px__plugins_resp_body(w, ex, -1, b.p, b.len))
        emit(w, ex, -1, b.p, b.len);
    free(b.p);
    if (g->held_trailers) {
        g->held_trailers = false;
        if (!arc_px__plugins_resp_trailers(w, ex, g->held_tr, g->held_ntr)) {
            g->emitting = true;
            ex->client->c.codec->trailers(w, ex, g->held_tr, g->held_ntr);
            g->emitting = false;
        }
    }
    if (g->detached) {
        g->detached = false;
        arc_px__ex_end(w, ex, EXO_COMPLETE);
        return;
    }
    arc_px__up_kick(w, ex);             /* the upstream side goes on */
}

static void on_resp_waited(struct arc_worker *w, struct arc_exchange *ex)
{
    struct pl_glue *g = ex->pl->glue;
    if (g->wait[ARC_PL_DIR_REQ] || g->wait[ARC_PL_DIR_RESP])
        wait_resume(w, ex);             /* (a body's end or trailers held) */
    else
        resp_resume(w, ex);
}

bool arc_px__plugins_response(struct arc_worker *w, struct arc_exchange *ex, struct arc_resp *resp)
{
    if (!ex->pl || !ex->pl->n || resp->status < 200)
        return true;
    struct pl_glue *g0 = ex->pl->glue;
    if (g0 && g0->wait[ARC_PL_DIR_REQ]) {
        /* The upstream answered before the request's end, which a filter
         * still holds: that wait is given up (the request's end is not
         * sent). */
        g0->wait[ARC_PL_DIR_REQ] = 0;
        arc_tw_cancel(&w->tw, &g0->timer);
        arc_pl_abandon(ex->pl);
    }
    struct arc_pl_hmap *m = arc_arena_alloc(&ex->arena, sizeof(*m));
    unsigned sv = (unsigned)resp->status % 1000;
    char st[3] = { (char)('0' + sv / 100), (char)('0' + sv / 10 % 10), (char)('0' + sv % 10) };
    if (!m) {
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_BAD);
        return false;
    }
    *m = (struct arc_pl_hmap){ .arena = &ex->arena };
    bool ok = arc_pl_hmap_add(m, ARC_STR_LIT(":status"), (struct arc_str){ st, 3 });
    /* Views of the received head: valid during this call, and the map and
     * what is built from it are used only during it (send_head). */
    for (size_t i = 0; ok && i < resp->n_hdrs; i++)
        ok = arc_pl_hmap_view(m, resp->hdrs[i].name, resp->hdrs[i].value);
    if (!ok) {
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_BAD);
        return false;
    }
    m->changed = false;
    bool eos = resp->body == ARC_H1_BODY_NONE ||
               (resp->body == ARC_H1_BODY_LENGTH && resp->content_length == 0);
    enum arc_pl_verdict v = arc_pl_response_headers(ex->pl, m, eos, w->now_ms);
    if (v == ARC_PL_PAUSE) {
        if (!resp_pause(w, ex, m, resp))
            return false;
        v = ARC_PL_CONTINUE;            /* (for now: the head is held, see above) */
    }
    if (!answer(w, ex, v))
        return false;
    struct pl_glue *g = ex->pl->glue;
    if (g && !eos && !ex->is_head && (ex->pl->body_mask & ARC_PL_HAS_RESP) &&
        resp->body != ARC_H1_BODY_NONE) {
        /* The filters see the body decoded; one they may rewrite has no
         * length known ahead: chunked to an HTTP/1.1 client, no
         * content-length over HTTP/2 (close-delimited to HTTP/1.0). */
        g->resp_body = true;
        if (ex->pl->body_mask & ARC_PL_HAS_RESP_BODY) {
            resp->body = ARC_H1_BODY_CHUNKED;
            resp->content_length = 0;
            resp->decoded = true;
        } else if (resp->body == ARC_H1_BODY_CHUNKED) {
            resp->decoded = true;       /* (trailers only: they are seen as fields) */
        }
    }
    if (!m->changed && !(g && g->resp_body && resp->decoded))
        return true;
    if (!head_from_map(ex, m, resp, g && g->resp_body && resp->decoded)) {
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_BAD);
        return false;
    }
    return true;
}

void arc_px__plugins_end(struct arc_exchange *ex)
{
    if (ex->pl)
        arc_pl_run_end(ex->pl);
    ex->pl = NULL;
}
