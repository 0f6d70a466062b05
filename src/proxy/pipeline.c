/*
 * The request pipeline, written once against the exchange: route → action
 * (respond, redirect, upstream). It never sees wire syntax: local answers
 * go out through the client codec's respond call, and the upstream side is
 * started with the exchange's request view.
 *
 * Between route and action: the route's max_body (a declared length over
 * it is a 413 at once; codecs check streamed bodies with
 * arc_px__body_over), its total timeout (armed on the exchange), the
 * stages (the rate limit today, plugins later), which may answer, or hold
 * the exchange (EX_WAITING) and continue it with arc_px__pipeline_action;
 * then the action, an upstream one after the route's path rewrite
 * (ex->req.up_target; the request view keeps what the client sent, for
 * logs and matching).
 */
#include "proxy/proxy_int.h"
#include "router/router.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void answer_405(struct arc_worker *w, struct arc_exchange *ex, uint32_t allowed)
{
    static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "DELETE",
                                         "CONNECT", "OPTIONS", "TRACE", "PATCH" };
    char allow[96] = "";
    size_t off = 0;
    for (size_t i = 0; i < ARC_ARRAY_LEN(names); i++)
        if (allowed & (1u << i))
            off += (size_t)snprintf(allow + off, sizeof(allow) - off, "%s%s",
                                    off ? ", " : "", names[i]);
    struct arc_hdr h[2] = {
        { ARC_STR_LIT("Allow"), { allow, off } },
        { ARC_STR_LIT("Content-Type"), ARC_STR_LIT("text/plain; charset=utf-8") },
    };
    arc_m_add(&w->metrics.errors[ARC_ERR_METHOD_NOT_ALLOWED], 1);
    arc_px__ex_respond(w, ex, 405, h, 2, "405 Method Not Allowed\n", 23);
}

static void answer_respond(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_route_conf *rc = ex->route->conf;
    const char *body = rc->respond_body ? rc->respond_body : "";
    size_t blen = strlen(body);
    size_t n = rc->n_respond_headers;
    struct arc_hdr *h = arc_arena_alloc(&ex->arena, (n + 1 + ARC_PX_LIMIT_FIELDS) * sizeof(*h));
    if (!h) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return;
    }
    bool has_ct = false;
    for (size_t i = 0; i < n; i++) {
        const char *nm = rc->respond_headers[i].name;
        const char *v = rc->respond_headers[i].value ? rc->respond_headers[i].value : "";
        h[i] = (struct arc_hdr){ { nm, strlen(nm) }, { v, strlen(v) } };
        if (strcasecmp(nm, "content-type") == 0)
            has_ct = true;
    }
    if (!has_ct && blen)
        h[n++] = (struct arc_hdr){ ARC_STR_LIT("Content-Type"),
                                   ARC_STR_LIT("text/plain; charset=utf-8") };
    n += arc_px__limit_fields(ex, h + n);
    arc_px__ex_respond(w, ex, rc->respond_status, h, n, body, blen);
}

static void answer_redirect(struct arc_worker *w, struct arc_exchange *ex,
                            const struct arc_rt_captures *caps)
{
    size_t len;
    char *loc = arc_px__build_location(ex, caps, &len);
    char *kept = arc_arena_dup(&ex->arena, loc ? loc : "", loc ? len : 0);
    free(loc);
    if (!kept) {
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
        return;
    }
    struct arc_hdr h[1 + ARC_PX_LIMIT_FIELDS] = { { ARC_STR_LIT("Location"), { kept, len } } };
    size_t n = 1 + arc_px__limit_fields(ex, h + 1);
    arc_px__ex_respond(w, ex, ex->route->conf->redirect_status, h, n, NULL, 0);
}

/* routes[].action.rewrite: the upstream gets the rewritten target. False:
 * the exchange was answered (out of memory, or a target too long). */
static bool rewrite(struct arc_worker *w, struct arc_exchange *ex,
                    const struct arc_rt_captures *caps)
{
    char out[ARC_RT_REWRITE_MAX];
    ssize_t n = arc_rt_rewrite_apply(ex->route->rewrite, ex->req.path, ex->req.query, caps,
                                     out, sizeof(out));
    if (n <= 0 && n != -2)
        return true;                    /* no match (or the match limit): as it is */
    if (n == -2) {
        arc_px__ex_error(w, ex, 414, ARC_ERR_URI_TOO_LONG);
        return false;
    }
    bool ok = true;
    ex->req.up_target = arc_px__ex_dup(ex, (struct arc_str){ out, (size_t)n }, &ok);
    if (!ok)
        arc_px__ex_error(w, ex, 500, ARC_ERR_BAD_REQUEST);
    return ok;
}

static void run_action(struct arc_worker *w, struct arc_exchange *ex,
                       const struct arc_rt_captures *caps)
{
    /* Plugins (request headers) run after the limiter, also after a wait:
     * a filter may answer locally. */
    if (ex->route->conf->n_plugins && !ex->pl && !arc_px__plugins_request(w, ex))
        return;                         /* (ex->pl set: they ran, a filter paused and
                                           the request continued) */
    switch (ex->route->conf->action) {
    case ARC_ACTION_RESPOND:
        answer_respond(w, ex);
        return;
    case ARC_ACTION_REDIRECT:
        answer_redirect(w, ex, caps);
        return;
    case ARC_ACTION_UPSTREAM:
        break;
    }
    if (ex->route->rewrite && !rewrite(w, ex, caps))
        return;
    if (ex->route->conf->n_mirrors && !ex->mirror)
        arc_px__mirror_start(w, ex);
    arc_px__up_start(w, ex);
}

bool arc_px__body_over(struct arc_worker *w, struct arc_exchange *ex)
{
    uint64_t max = ex->route ? ex->route->conf->max_body : 0;
    if (!max || ex->body_in <= max)
        return false;
    arc_px__ex_error(w, ex, 413, ARC_ERR_BODY_TOO_LARGE);
    return true;
}

/* A CONNECT request (authority-form) has no path: routes see it as "/". */
static struct arc_str route_path(const struct arc_req *q)
{
    return q->path.len || q->mbit != ARC_M_CONNECT ? q->path : (struct arc_str)ARC_STR_LIT("/");
}

/* CONNECT opens a TCP tunnel, so a route takes it only when it says so:
 * CONNECT listed in its match.methods (a route for any method does not),
 * and only from HTTP/1.1 clients. False: answered. */
static bool connect_allowed(struct arc_worker *w, struct arc_exchange *ex,
                            const struct arc_route_rt *r)
{
    if (!(r->conf->methods & ARC_M_CONNECT)) {
        answer_405(w, ex, (r->conf->methods ? r->conf->methods : 0x1ffu) & ~ARC_M_CONNECT);
        return false;
    }
    if (ex->req.version >= 20) {
        static const char msg[] = "501 CONNECT over HTTP/2 is not supported\n";
        arc_m_add(&w->metrics.errors[ARC_ERR_NOT_IMPLEMENTED], 1);
        arc_px__ex_respond(w, ex, 501, NULL, 0, msg, sizeof(msg) - 1);
        return false;
    }
    return true;
}

void arc_px__pipeline_start(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_req *q = &ex->req;
    /* heavy hitters: every request, routed or not */
    uint64_t heavy = w->hh ? arc_px__hh_count(w, ex) : 0;
    struct arc_rt_captures caps;
    uint32_t allowed = 0;
    /* The router reads header fields through its own view type, which has
     * the same layout as struct arc_hdr. */
    _Static_assert(sizeof(struct arc_rt_field) == sizeof(struct arc_hdr) &&
                   offsetof(struct arc_rt_field, value) == offsetof(struct arc_hdr, value),
                   "arc_rt_field and arc_hdr differ");
    const struct arc_rt_input in = {
        .method_bit = q->mbit, .host = q->authority, .path = route_path(q), .query = q->query,
        .fields = (const struct arc_rt_field *)q->hdrs, .n_fields = q->n_hdrs,
    };
    const struct arc_route_rt *r = arc_rt_match(ex->snap->rt, &in, &caps, &allowed);
    arc_px__obs_ids(w, ex, r);
    if (heavy) {
        int act = ex->snap->cfg->heavy_hitters.action;
        if (act == ARC_HH_REJECT) {
            arc_px__hh_reject(w, ex);
            return;
        }
        if (act == ARC_HH_LIMIT && !arc_px__hh_limit(w, ex, heavy))
            return;
    }
    if (!r) {
        if (allowed)
            answer_405(w, ex, allowed);
        else
            arc_px__ex_error(w, ex, 404, ARC_ERR_NOT_FOUND);
        return;
    }
    ex->route = r;
    ex->target = r->split ? arc_px__split_pick(w, ex, r) : r->up;
    if (q->mbit == ARC_M_CONNECT && !connect_allowed(w, ex, r))
        return;
    const struct arc_route_conf *rc = r->conf;
    if (rc->max_body && q->body == ARC_H1_BODY_LENGTH && q->content_length > rc->max_body) {
        arc_px__ex_error(w, ex, 413, ARC_ERR_BODY_TOO_LARGE);
        return;
    }
    /* (the deadline covers a wait in a stage too) */
    if (rc->timeout_ms)
        arc_tw_schedule(&w->tw, &ex->deadline, ex->started_ms + rc->timeout_ms);
    /* Stages between route and action: the rate limit (which may answer
     * or hold the exchange; a held one continues in
     * arc_px__pipeline_action); plugins later. */
    if (r->limit && !arc_px__limit(w, ex))
        return;
    run_action(w, ex, &caps);
}

void arc_px__pipeline_action(struct arc_worker *w, struct arc_exchange *ex)
{
    struct arc_rt_captures caps = { .n = 0 };
    if (ex->route->conf->action == ARC_ACTION_REDIRECT || ex->route->rewrite) {
        /* The captures were on the stack of the first pass: match again
         * (same snapshot, same request: the same route). */
        const struct arc_req *q = &ex->req;
        uint32_t allowed = 0;
        const struct arc_rt_input in = {
            .method_bit = q->mbit, .host = q->authority, .path = route_path(q), .query = q->query,
            .fields = (const struct arc_rt_field *)q->hdrs, .n_fields = q->n_hdrs,
        };
        arc_rt_match(ex->snap->rt, &in, &caps, &allowed);
    }
    run_action(w, ex, &caps);
}
