/*
 * The request pipeline, written once against the exchange: route → action
 * (respond, redirect, upstream). It never sees wire syntax: local answers
 * go out through the client codec's respond call, and the upstream side is
 * started with the exchange's request view.
 *
 * Stages slot in between route and action (the rate limit today, plugins
 * later); they may answer, or hold the exchange (EX_WAITING) and continue
 * it with arc_px__pipeline_action.
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
    char *loc = arc_px__build_location(ex->route, &ex->req, caps, &len);
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

static void run_action(struct arc_worker *w, struct arc_exchange *ex,
                       const struct arc_rt_captures *caps)
{
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
    arc_px__up_start(w, ex);
}

void arc_px__pipeline_start(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_req *q = &ex->req;
    if (w->hh)
        arc_px__hh_count(w, ex);        /* heavy hitters: every request, routed or not */
    struct arc_rt_captures caps;
    uint32_t allowed = 0;
    /* The router reads header fields through its own view type, which has
     * the same layout as struct arc_hdr. */
    _Static_assert(sizeof(struct arc_rt_field) == sizeof(struct arc_hdr) &&
                   offsetof(struct arc_rt_field, value) == offsetof(struct arc_hdr, value),
                   "arc_rt_field and arc_hdr differ");
    const struct arc_rt_input in = {
        .method_bit = q->mbit, .host = q->authority, .path = q->path, .query = q->query,
        .fields = (const struct arc_rt_field *)q->hdrs, .n_fields = q->n_hdrs,
    };
    const struct arc_route_rt *r = arc_rt_match(ex->snap->rt, &in, &caps, &allowed);
    if (!r) {
        if (allowed)
            answer_405(w, ex, allowed);
        else
            arc_px__ex_error(w, ex, 404, ARC_ERR_NOT_FOUND);
        return;
    }
    ex->route = r;
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
    if (ex->route->conf->action == ARC_ACTION_REDIRECT) {
        /* The captures were on the stack of the first pass: match again
         * (same snapshot, same request: the same route). */
        const struct arc_req *q = &ex->req;
        uint32_t allowed = 0;
        const struct arc_rt_input in = {
            .method_bit = q->mbit, .host = q->authority, .path = q->path, .query = q->query,
            .fields = (const struct arc_rt_field *)q->hdrs, .n_fields = q->n_hdrs,
        };
        arc_rt_match(ex->snap->rt, &in, &caps, &allowed);
    }
    run_action(w, ex, &caps);
}
