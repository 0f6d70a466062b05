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
 *                                              └──▶ local answer / 500
 *   a filter's proxy_http_call ─arc_px__callout (callout.c)─▶ an internal exchange
 *        to the upstream named; its answer reaches the filter later
 *   arc_px__ex_end ─arc_px__plugins_end─▶ on_done, on_log, on_delete
 *
 * Pause is honoured at the request head only: a filter that pauses a
 * response without answering counts as failing (its on_error policy).
 */
#include "proxy/proxy_int.h"
#include "plugin/plugin.h"

#include <stdio.h>
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

/* After the request stage: the verdict answered, or the filters' changes
 * applied to the request. False: the exchange was answered. */
static bool request_done(struct arc_worker *w, struct arc_exchange *ex, enum arc_pl_verdict v,
                         struct arc_str path)
{
    struct arc_req *q = &ex->req;
    if (!answer(w, ex, v))
        return false;
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

static bool framing(struct arc_str n)
{
    return (n.len == 14 && strncasecmp(n.p, "content-length", 14) == 0) ||
           (n.len == 17 && strncasecmp(n.p, "transfer-encoding", 17) == 0);
}

bool arc_px__plugins_response(struct arc_worker *w, struct arc_exchange *ex, struct arc_resp *resp)
{
    if (!ex->pl || !ex->pl->n || resp->status < 200)
        return true;
    struct arc_pl_hmap *m = arc_arena_alloc(&ex->arena, sizeof(*m));
    char st[8];
    snprintf(st, sizeof(st), "%03d", resp->status % 1000);
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
    if (!answer(w, ex, v))
        return false;
    if (!m->changed)
        return true;
    size_t k = 0;
    struct arc_h1_header *f = arc_arena_alloc(&ex->arena, (m->n + resp->n_hdrs + 1) * sizeof(*f));
    if (!f) {
        arc_px__ex_error(w, ex, 502, ARC_ERR_UPSTREAM_BAD);
        return false;
    }
    /* Framing stays Arc's: the upstream's Content-Length and
     * Transfer-Encoding are kept whatever the filters did to them. */
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].name.len && m->v[i].name.p[0] != ':' && !framing(m->v[i].name))
            f[k++] = (struct arc_h1_header){ m->v[i].name, m->v[i].value };
    for (size_t i = 0; i < resp->n_hdrs; i++)
        if (framing(resp->hdrs[i].name))
            f[k++] = resp->hdrs[i];
    struct arc_str ns = pseudo(m, ":status");
    int status = 0;
    for (size_t i = 0; i < ns.len && ns.p[i] >= '0' && ns.p[i] <= '9'; i++)
        status = status * 10 + (ns.p[i] - '0');
    if (ns.len == 3 && status >= 200 && status <= 599) {
        resp->status = status;
        ex->status = status;
    }
    resp->hdrs = f;
    resp->n_hdrs = k;
    return true;
}

void arc_px__plugins_end(struct arc_exchange *ex)
{
    if (ex->pl)
        arc_pl_run_end(ex->pl);
    ex->pl = NULL;
}
