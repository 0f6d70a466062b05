/*
 * The control-plane API server (control_plane.bind): status, the running
 * config, long polls for a new one, validation and application of a new
 * one, reload from the file, routes and upstreams. It shares the control
 * thread's ring with the admin listener; every request is authenticated
 * (a bearer token, or loopback peers only when no token is configured)
 * before its path is even looked at.
 *
 * One request per connection (Connection: close), like the admin port: the
 * clients are operators' tools and config agents, not traffic.
 *
 * Connection states (ops in flight are counted; a connection is freed when
 * it is CLOSING and the count is zero):
 *
 *   HEAD ──head parsed──> dispatch ──answer──> SEND ──sent──> (LINGER) ──> CLOSING
 *     │                     │  ├─long poll, no news──> PARKED ──news/deadline──> SEND
 *     │                     │  └─a config change needing a plugin compile──> COMPILING
 *     │                     │        ──compile done (arc_admin__ctl_compiled)──> dispatch again
 *     │                     └─needs the body──> (CONTINUE: 100 sent) ──> BODY ──whole──> dispatch
 *     └─error, timeout, peer gone──> CLOSING
 *
 *   HEAD      receiving the request head (recv into c->head)
 *   CONTINUE  sending "100 Continue" (Expect: 100-continue, authorised, within max_body)
 *   BODY      receiving a body (Content-Length into c->body, chunked through c->rbuf)
 *   PARKED    a long poll waiting; a recv into c->sink notices the client leaving
 *   COMPILING POST /v1/config[/validate] or /v1/reload waiting for a plugin
 *             compile on a thread (its own, or one running): the control
 *             thread goes on; a recv into c->sink notices the client leaving
 *   SEND      sending the answer
 *   LINGER    the answer went out before the request body was read: our side
 *             is shut for writing and the rest is read and dropped (for up to
 *             LINGER_MS), so closing does not reset the connection under an
 *             answer the client has not read yet (a 413, a 401)
 *   CLOSING   close submitted
 */
#include "core/log.h"
#include "admin/admin_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/sbuf.h"
#include "http1/http1.h"
#include "plugin/plugin.h"
#include "net/net.h"
#include "limit/limit.h"
#include "obs/metrics.h"
#include "upstream/health.h"
#include "upstream/active.h"

#ifndef ARC_VERSION
#define ARC_VERSION "0.0.0"
#endif

#define CTL_HEAD_MAX 16384
#define CTL_MAX_HEADERS 64
#define CTL_MAX_CONNS 1024
#define CTL_IO_TIMEOUT_MS 30000     /* head, body and answer, each */
#define CTL_RBUF 16384
#define LINGER_MS 2000

enum ctl_state { CS_HEAD, CS_CONTINUE, CS_BODY, CS_PARKED, CS_COMPILING, CS_SEND, CS_LINGER,
                 CS_CLOSING };

enum ctl_ep {
    EP_NONE, EP_STATUS, EP_CONFIG, EP_LONGPOLL, EP_VALIDATE, EP_APPLY, EP_RELOAD,
    EP_ROUTES, EP_UPSTREAMS, EP_HEAVY_HITTERS, EP_XDP_BLOCKS, EP_XDP_STATS,
};

struct ctl_conn {
    int fd;
    enum ctl_state st;
    enum ctl_ep ep;
    unsigned inflight;              /* SQEs submitted and not completed */
    uint64_t deadline;              /* of the current state (UINT64_MAX: cancel sent) */
    char peer[80];                  /* "ip:port", for the log */
    bool loopback;
    bool head_only;                 /* HEAD: the answer without its body */
    bool body_unread;               /* the request has body bytes we did not read */
    /* request head; the views in req point into head[] */
    size_t fill;
    struct arc_h1_request req;
    struct arc_h1_header hdrs[CTL_MAX_HEADERS];
    /* body */
    char *body;
    size_t body_len, body_cap;
    uint64_t want;                  /* Content-Length bytes still to receive */
    bool chunked;
    struct arc_h1_chunked ck;
    char *rbuf;                     /* chunked: raw bytes before decoding */
    /* long poll */
    char since[65];
    /* answer */
    char *out;
    size_t out_len, out_off;
    char sink[512];                 /* PARKED / LINGER: bytes read to be dropped */
    char head[CTL_HEAD_MAX];
};

/* ------------------------------------------------------------ plumbing */

static struct io_uring_sqe *sqe_for(struct arc_ctl_loop *cs, struct ctl_conn *c, int op)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_sqe_set_data64(sqe, arc_admin__ud(c, op));
    c->inflight++;
    return sqe;
}

static void arm_recv(struct arc_ctl_loop *cs, struct ctl_conn *c, void *buf, size_t len)
{
    io_uring_prep_recv(sqe_for(cs, c, COP_RECV), c->fd, buf, len, 0);
}

static void arm_send(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    io_uring_prep_send(sqe_for(cs, c, COP_SEND), c->fd, c->out + c->out_off,
                       c->out_len - c->out_off, MSG_NOSIGNAL);
}

static void conn_close(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    if (c->st == CS_CLOSING)
        return;
    if (c->st == CS_PARKED)
        cs->srv.n_parked--;
    c->st = CS_CLOSING;
    io_uring_prep_close(sqe_for(cs, c, COP_CLOSE), c->fd);
}

static void conn_free(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    struct arc_ctl_server *s = &cs->srv;
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i] == c) {
            s->conns[i] = s->conns[--s->n_conns];
            break;
        }
    free(c->body);
    free(c->rbuf);
    free(c->out);
    free(c);
}

static const struct arc_h1_header *header(const struct ctl_conn *c, const char *name)
{
    for (size_t i = 0; i < c->req.n_headers; i++)
        if (arc_str_ieq(c->hdrs[i].name, name, strlen(name)))
            return &c->hdrs[i];
    return NULL;
}

static size_t header_count(const struct ctl_conn *c, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < c->req.n_headers; i++)
        n += arc_str_ieq(c->hdrs[i].name, name, strlen(name));
    return n;
}

/* ------------------------------------------------------------ answers */

/* A JSON string of text that should be UTF-8 (messages can quote what a
 * client sent): bytes that do not form valid UTF-8 become '?', so a
 * malformed request can never make an answer impossible to build. */
static json_t *jstr(const char *t)
{
    json_t *j = json_string(t ? t : "");
    if (j)
        return j;
    char *copy = strdup(t);
    ARC_ASSERT(copy != NULL);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    ARC_ASSERT(j != NULL);
    return j;
}

/* Queues the whole answer; `extra` is more header lines ("Name: v\r\n"). */
static void respond(struct arc_ctl_loop *cs, struct ctl_conn *c, int status, const char *ctype,
                    const char *extra, const char *body, size_t blen)
{
    if (c->st == CS_PARKED)
        cs->srv.n_parked--;
    struct arc_sbuf b = { 0 };
    arc_sbuf_printf(&b, "HTTP/1.1 %d %s\r\n", status, arc_h1_reason(status));
    if (status != 304)
        arc_sbuf_printf(&b, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, blen);
    arc_sbuf_printf(&b, "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                    extra ? extra : "");
    if (status != 304 && !c->head_only)
        arc_sbuf_append(&b, body, blen);
    free(c->out);
    c->out = b.p;
    c->out_len = b.len;
    c->out_off = 0;
    c->st = CS_SEND;
    c->deadline = arc_now_ms() + CTL_IO_TIMEOUT_MS;
    arm_send(cs, c);
}

/* Answers with a JSON document (taken over). */
static void respond_json(struct arc_ctl_loop *cs, struct ctl_conn *c, int status,
                         const char *extra, json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    ARC_ASSERT(text != NULL);
    size_t n = strlen(text);
    char *t = realloc(text, n + 2);
    ARC_ASSERT(t != NULL);
    t[n++] = '\n';
    t[n] = '\0';
    respond(cs, c, status, "application/json", extra, t, n);
    free(t);
}

static void respond_error(struct arc_ctl_loop *cs, struct ctl_conn *c, int status,
                          const char *extra, const char *msg)
{
    respond_json(cs, c, status, extra, json_pack("{s:o}", "error", jstr(msg)));
}

static void log_mutation(const struct ctl_conn *c, int status, const char *what)
{
    arc_log(ARC_LOG_INFO, "control: %.*s %.*s from %s: %d %s", (int)c->req.method.len,
            c->req.method.p, (int)c->req.path.len, c->req.path.p, c->peer, status, what);
    fflush(stderr);
}

static bool mutation(enum ctl_ep ep)
{
    return ep == EP_APPLY || ep == EP_RELOAD;
}

/* ------------------------------------------------------------ endpoints */

static const char *node_id(const struct arc_config *cfg)
{
    return cfg->control_plane.node_id[0] ? cfg->control_plane.node_id : cfg->node.id;
}

static json_t *time_json(time_t t)
{
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static void ep_status(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    const struct arc_control *ctl = cs->ctl;
    const struct arc_config *cfg = ctl->snap->cfg;
    uint64_t up_ms = arc_now_ms() - cs->srv.started_ms;
    json_t *last;
    if (ctl->last.result == ARC_RELOAD_NONE)
        last = json_pack("{s:s,s:s}", "result", "none", "message", "no reload since start");
    else
        last = json_pack("{s:s,s:o,s:o,s:o,s:I}", "result",
                         arc_admin__result_name(ctl->last.result), "trigger",
                         jstr(ctl->last.trigger), "message", jstr(ctl->last.message),
                         "at", time_json(ctl->last.at),
                         "generation", (json_int_t)ctl->last.generation);
    json_t *doc = json_pack(
        "{s:s,s:s,s:I,s:I,s:s,s:o,s:o,s:I,s:I,s:b,s:I,s:{s:I,s:I,s:I},s:o}",
        "node_id", node_id(cfg), "version", ARC_VERSION, "pid", (json_int_t)getpid(),
        "generation", (json_int_t)ctl->snap->generation, "fingerprint", cfg->fingerprint,
        "config_source", jstr(cfg->source),
        "started_at", time_json(time(NULL) - (time_t)(up_ms / 1000)),
        "uptime_seconds", (json_int_t)(up_ms / 1000), "workers", (json_int_t)ctl->n_workers,
        "draining", cs->draining, "live_snapshots", (json_int_t)arc_snapshot_live(),
        "reloads", "ok", (json_int_t)ctl->reloads[ARC_RELOAD_OK],
        "error", (json_int_t)ctl->reloads[ARC_RELOAD_ERROR],
        "refused", (json_int_t)ctl->reloads[ARC_RELOAD_REFUSED], "last_reload", last);
    if (doc)
        json_object_set_new(doc, "xdp", arc_admin__xdp_status(ctl));
    const struct arc_etcd *e = cs->etcd;
    if (doc && e)
        json_object_set_new(doc, "etcd", json_pack("{s:s,s:s,s:s,s:b,s:I,s:o}",
                                                   "state", arc_admin__etcd_state(e),
                                                   "endpoint", e->eps[e->ep].text, "key", e->key,
                                                   "has_value", e->value != NULL,
                                                   "revision", (json_int_t)e->revision,
                                                   "last_error", e->last_error[0]
                                                       ? json_string(e->last_error)
                                                       : json_null()));
    respond_json(cs, c, 200, NULL, doc);
}

/* The running config as canonical JSON: the body is exactly the text the
 * fingerprint hashes, so sha256(body) == ETag. */
static void answer_config(struct arc_ctl_loop *cs, struct ctl_conn *c, int status)
{
    const struct arc_config *cfg = cs->ctl->snap->cfg;
    char extra[128];
    snprintf(extra, sizeof(extra), "ETag: \"%s\"\r\nX-Arc-Generation: %llu\r\n", cfg->fingerprint,
             (unsigned long long)cs->ctl->snap->generation);
    const char *j = cfg->canonical_json ? cfg->canonical_json : "";
    respond(cs, c, status, "application/json", extra, j, strlen(j));
}

static void ep_config(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    const struct arc_h1_header *inm = header(c, "If-None-Match");
    bool match = inm && arc_admin__etag_match(inm->value, cs->ctl->snap->cfg->fingerprint);
    answer_config(cs, c, match ? 304 : 200);
}

static void ep_longpoll(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    struct arc_longpoll_q q;
    const char *err = NULL;
    if (arc_admin__longpoll_query(c->req.query, &q, &err) < 0) {
        respond_error(cs, c, 400, NULL, err);
        return;
    }
    if (cs->draining) {
        respond_error(cs, c, 503, "Retry-After: 1\r\n", "draining");
        return;
    }
    const char *fp = cs->ctl->snap->cfg->fingerprint;
    if (!q.has_since || strcmp(q.since, fp) != 0) {
        answer_config(cs, c, 200);
        return;
    }
    if (q.timeout_ms == 0) {
        answer_config(cs, c, 304);
        return;
    }
    /* Parked: nothing is in flight but a recv that tells us if the client
     * leaves; the answer comes from arc_admin__ctl_config_changed or the
     * tick at the deadline. */
    memcpy(c->since, q.since, sizeof(c->since));
    c->st = CS_PARKED;
    c->deadline = arc_now_ms() + q.timeout_ms;
    cs->srv.n_parked++;
    arm_recv(cs, c, c->sink, sizeof(c->sink));
}

static json_t *errors_json(const struct arc_config_errors *errs)
{
    json_t *a = json_array();
    for (size_t i = 0; i < errs->n; i++) {
        const struct arc_config_error *e = &errs->v[i];
        json_array_append_new(a, json_pack("{s:o,s:i,s:i,s:o}", "file", jstr(e->file),
                                           "line", e->line, "col", e->col,
                                           "message", jstr(e->msg)));
    }
    return a;
}

static json_t *fields_json(const char *fields, size_t n)
{
    json_t *a = json_array();
    const char *p = fields;
    for (size_t i = 0; i < n && *p; i++) {
        const char *e = strstr(p, ", ");
        size_t len = e ? (size_t)(e - p) : strlen(p);
        json_array_append_new(a, json_stringn(p, len));
        p = e ? e + 2 : p + len;
    }
    return a;
}

/* The config endpoints below return false, without answering, when plugin
 * modules must be compiled first (compiles deferred: run_mutation). */
static bool ep_validate(struct arc_ctl_loop *cs, struct ctl_conn *c, const char *format)
{
    struct arc_admin_outcome *o = malloc(sizeof(*o));
    ARC_ASSERT(o != NULL);
    arc_admin__submit(cs->ctl, c->body ? c->body : "", c->body_len, format, "<request>", NULL, false, o);
    if (o->result == ARC_RELOAD_NONE) {
        arc_config_errors_dispose(&o->errs);
        free(o);
        return false;
    }
    if (o->result == ARC_RELOAD_ERROR)
        respond_json(cs, c, 400, NULL, json_pack("{s:b,s:o}", "valid", 0,
                                                 "errors", errors_json(&o->errs)));
    else
        respond_json(cs, c, 200, NULL, json_pack("{s:b,s:s,s:b,s:o}", "valid", 1,
                                                 "fingerprint", o->fingerprint,
                                                 "unchanged", o->unchanged, "restart_required",
                                                 fields_json(o->fields, o->n_fields)));
    arc_config_errors_dispose(&o->errs);
    free(o);
    return true;
}

static bool ep_apply(struct arc_ctl_loop *cs, struct ctl_conn *c, const char *format)
{
    struct arc_admin_outcome *o = malloc(sizeof(*o));
    ARC_ASSERT(o != NULL);
    char trigger[160];
    snprintf(trigger, sizeof(trigger), "API POST /v1/config from %s", c->peer);
    arc_admin__submit(cs->ctl, c->body ? c->body : "", c->body_len, format, "<request>", trigger, true, o);
    if (o->result == ARC_RELOAD_NONE) {
        arc_config_errors_dispose(&o->errs);
        free(o);
        return false;
    }
    if (o->result == ARC_RELOAD_ERROR) {
        log_mutation(c, 400, "(the config did not load; not applied)");
        respond_json(cs, c, 400, NULL, json_pack("{s:s,s:o,s:o}", "result", "error",
                                                 "error", jstr(cs->ctl->last.message),
                                                 "errors", errors_json(&o->errs)));
    } else if (o->result == ARC_RELOAD_REFUSED) {
        log_mutation(c, 409, "(restart-only fields changed; not applied)");
        respond_json(cs, c, 409, NULL, json_pack("{s:s,s:o,s:o}", "result", "refused",
                                                 "error", jstr(cs->ctl->last.message),
                                                 "restart_required",
                                                 fields_json(o->fields, o->n_fields)));
    } else {
        log_mutation(c, 200, "(applied)");
        respond_json(cs, c, 200, NULL, json_pack("{s:s,s:I,s:s,s:b}", "result", "ok",
                                                 "generation", (json_int_t)o->generation,
                                                 "fingerprint", o->fingerprint,
                                                 "unchanged", o->unchanged));
    }
    arc_config_errors_dispose(&o->errs);
    free(o);
    return true;
}

static bool ep_reload(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    char trigger[160];
    snprintf(trigger, sizeof(trigger), "API POST /v1/reload from %s", c->peer);
    struct arc_config_errors errs = { 0 };
    int rc = arc_admin__reload_file(cs, trigger, &errs);
    if (rc == ARC_RELOAD_NONE && arc_plugin_defer_missing()) {
        arc_config_errors_dispose(&errs);
        return false;
    }
    const struct arc_reload_last *l = &cs->ctl->last;
    int status = rc == ARC_RELOAD_OK ? 200 : rc == ARC_RELOAD_REFUSED ? 409 : 400;
    log_mutation(c, status, rc == ARC_RELOAD_OK ? "(reloaded)" : "(not reloaded)");
    const struct arc_snapshot *s = cs->ctl->snap;
    json_t *doc = json_pack("{s:s,s:o,s:I,s:s}", "result", arc_admin__result_name(rc),
                            "message", jstr(l->message), "generation", (json_int_t)s->generation,
                            "fingerprint", s->cfg->fingerprint);
    if (rc == ARC_RELOAD_ERROR)
        json_object_set_new(doc, "errors", errors_json(&errs));
    arc_config_errors_dispose(&errs);
    respond_json(cs, c, status, NULL, doc);
    return true;
}

/* The config endpoint of c (its body's format is known: dispatch checked
 * it); false: plugin modules must be compiled first. */
static bool mutate(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    if (c->ep == EP_RELOAD)
        return ep_reload(cs, c);
    const struct arc_h1_header *ct = header(c, "Content-Type");
    const char *format = arc_admin__body_format(ct ? &ct->value : NULL, c->body ? c->body : "",
                                                c->body_len);
    return c->ep == EP_APPLY ? ep_apply(cs, c, format) : ep_validate(cs, c, format);
}

/* Waits for the plugin compile (no deadline of its own: each compiler run
 * is bounded by plugins.compile_timeout); a recv notices the client
 * leaving. */
static void compile_park(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    if (c->st == CS_COMPILING)
        return;                         /* (its recv is still armed) */
    c->st = CS_COMPILING;
    c->deadline = UINT64_MAX - 1;
    arm_recv(cs, c, c->sink, sizeof(c->sink));
}

/* POST /v1/config, /v1/config/validate and /v1/reload: a plugin module
 * missing from the cache is compiled on a thread (as for SIGHUP) while the
 * request waits (COMPILING) and the control thread goes on serving; then
 * the request runs again and answers with the outcome. A request that
 * comes while a compile runs waits for it first. */
static void run_mutation(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    if (arc_plugin_compile_running()) {
        compile_park(cs, c);
        return;
    }
    arc_plugin_defer_arm(true);
    bool answered = mutate(cs, c);
    size_t n = arc_plugin_defer_missing();
    if (!answered && n && arc_plugin_compile_start() == 0) {
        arc_plugin_defer_arm(false);
        arc_log(ARC_LOG_INFO, "API %s from %s: compiling %zu plugin module%s first (off the "
                "control thread)", c->ep == EP_RELOAD ? "POST /v1/reload"
                : c->ep == EP_APPLY ? "POST /v1/config" : "POST /v1/config/validate",
                c->peer, n, n == 1 ? "" : "s");
        compile_park(cs, c);
        return;
    }
    arc_plugin_defer_arm(false);
    if (!answered)
        mutate(cs, c);                  /* (no thread: compiled here, as before) */
}

static json_t *methods_json(uint32_t mask)
{
    static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT",
                                         "OPTIONS", "TRACE", "PATCH" };
    json_t *a = json_array();
    for (size_t i = 0; i < ARC_ARRAY_LEN(names); i++)
        if (mask & (1u << i))
            json_array_append_new(a, json_string(names[i]));
    return a;
}

static void ep_routes(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    const struct arc_snapshot *s = cs->ctl->snap;
    json_t *routes = json_array();
    for (size_t i = 0; i < s->cfg->n_routes; i++) {
        const struct arc_route_conf *r = &s->cfg->routes[i];
        json_t *hosts = json_array();
        for (size_t h = 0; h < r->n_hosts; h++)
            json_array_append_new(hosts, json_string(r->hosts[h]));
        json_t *action;
        static const char *const sources[] = { "random", "client_ip", "header", "cookie" };
        if (r->split) {
            json_t *ch = json_array();
            for (size_t k = 0; k < r->split->n_choices; k++)
                json_array_append_new(ch, json_pack("{s:s,s:i}", "upstream",
                                                    r->split->choices[k].upstream, "weight",
                                                    (int)r->split->choices[k].weight));
            action = json_pack("{s:{s:o,s:s}}", "split", "choices", ch, "key",
                               sources[r->split->key]);
        } else if (r->action == ARC_ACTION_UPSTREAM)
            action = json_pack("{s:s}", "upstream", r->upstream);
        else if (r->action == ARC_ACTION_REDIRECT)
            action = json_pack("{s:{s:i,s:s}}", "redirect", "status", r->redirect_status,
                               "location", r->redirect_location ? r->redirect_location : "");
        else
            action = json_pack("{s:{s:i}}", "respond", "status", r->respond_status);
        json_array_append_new(routes, json_pack("{s:s,s:i,s:{s:s,s:o,s:o},s:o}",
                                                "name", r->name, "priority", (int)r->priority,
                                                "match", "path", r->path, "hosts", hosts,
                                                "methods", methods_json(r->methods),
                                                "action", action));
    }
    respond_json(cs, c, 200, NULL, json_pack("{s:I,s:s,s:o}", "generation",
                                             (json_int_t)s->generation, "fingerprint",
                                             s->cfg->fingerprint, "routes", routes));
}

/* A worker's counter for upstream `id`, read as the metrics page reads it
 * (obs/metrics.h: the row count first, then the array it was published
 * with; a row the worker has not grown yet counts 0). */
static uint64_t up_counter(struct arc_metrics_shard *m, uint32_t id, enum arc_m_up col)
{
    size_t n = atomic_load_explicit(&m->ups.n, memory_order_acquire);
    if (id >= n)
        return 0;
    arc_counter *v = atomic_load_explicit(&m->ups.v, memory_order_acquire);
    return arc_m_get(&v[(size_t)id * m->ups.width + col]);
}

/* An endpoint's passive-health state over the workers (each judges by its
 * own traffic): "healthy" in all, "ejected" in all, or "degraded" (ejected
 * in some); the reason of the latest ejection seen, and counts. */
static json_t *ep_health(const struct arc_control *ctl, const struct arc_upstream_rt *u, size_t e)
{
    size_t ejected = 0;
    uint64_t total[ARC_HR__COUNT] = { 0 };
    enum arc_hreason why = ARC_HR_NONE;
    for (size_t w = 0; w < ctl->n_workers; w++) {
        struct arc_health_view v;
        if (!arc_health_get(arc_worker_health(ctl->workers[w]), u->eps[e].id, &v))
            continue;
        if (v.state == ARC_HS_EJECTED) {
            ejected++;
            why = v.reason;
        } else if (why == ARC_HR_NONE) {
            why = v.reason;
        }
        for (size_t r = 0; r < ARC_HR__COUNT; r++)
            total[r] += v.ejections[r];
    }
    json_t *by = json_object();
    for (size_t r = 1; r < ARC_HR__COUNT; r++)
        json_object_set_new(by, arc_health_reason_names[r], json_integer((json_int_t)total[r]));
    const char *state = ejected == 0 ? "healthy" : ejected == ctl->n_workers ? "ejected"
                                                                              : "degraded";
    json_t *h = json_pack("{s:s,s:I,s:I,s:o}", "state", state, "ejected_workers",
                          (json_int_t)ejected, "workers", (json_int_t)ctl->n_workers,
                          "ejections", by);
    json_object_set_new(h, "reason", why == ARC_HR_NONE ? json_null()
                                     : json_string(arc_health_reason_names[why]));
    return h;
}

static void ep_upstreams(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    static const char *const lbs[] = { "round_robin", "weighted_round_robin", "least_requests",
                                       "peak_ewma", "consistent_hash", "maglev" };
    const struct arc_control *ctl = cs->ctl;
    const struct arc_snapshot *s = ctl->snap;
    json_t *ups = json_array();
    for (size_t i = 0; i < s->n_ups; i++) {
        const struct arc_upstream_rt *u = &s->ups[i];
        uint64_t open = 0, idle = 0, reqs = 0;
        for (size_t w = 0; w < ctl->n_workers; w++) {
            struct arc_metrics_shard *m = arc_worker_metrics(ctl->workers[w]);
            open += up_counter(m, u->id, ARC_MU_POOL_OPEN);
            idle += up_counter(m, u->id, ARC_MU_POOL_IDLE);
            reqs += up_counter(m, u->id, ARC_MU_REQUESTS);
        }
        /* Gauges of different workers are read at slightly different
         * moments: never report more idle than open. */
        if (idle > open)
            idle = open;
        json_t *eps = json_array();
        for (size_t e = 0; e < u->n_eps; e++) {
            json_t *ep = json_pack("{s:s,s:i}", "address", u->eps[e].text,
                                   "weight", (int)u->eps[e].weight);
            /* The node-wide count per endpoint is kept only where
             * pool.max_connections needs it. */
            if (u->conf->pool_max_connections)
                json_object_set_new(ep, "open_connections",
                                    json_integer(atomic_load_explicit(u->eps[e].open_conns,
                                                                      memory_order_relaxed)));
            if (u->conf->passive.enabled)
                json_object_set_new(ep, "health", ep_health(ctl, u, e));
            struct arc_active_view av;
            if (u->conf->active.enabled) {
                if (!arc_active_get(u->eps[e].id, &av))
                    av = (struct arc_active_view){ 0 };
                json_object_set_new(ep, "active", json_pack(
                    "{s:s,s:i,s:I,s:I,s:I}", "state", av.down ? "down" : "up",
                    "last_status", av.last_status, "passes_in_a_row", (json_int_t)av.passes,
                    "fails_in_a_row", (json_int_t)av.fails, "checks", (json_int_t)av.checks));
            }
            json_array_append_new(eps, ep);
        }
        unsigned lb = (unsigned)u->conf->lb;
        json_array_append_new(ups, json_pack(
            "{s:s,s:s,s:s,s:b,s:{s:I,s:I,s:I},s:I,s:o}", "name", u->conf->name,
            "lb", lb < ARC_ARRAY_LEN(lbs) ? lbs[lb] : "?",
            "protocol", u->conf->protocol == ARC_UP_HTTP2 ? "http2" : "http1",
            "tls", u->conf->tls != NULL,
            "connections", "open", (json_int_t)open, "idle", (json_int_t)idle,
            "active", (json_int_t)(open - idle), "requests", (json_int_t)reqs, "endpoints", eps));
        json_t *disc = arc_dns_status_json(cs->dns, u->conf->name, arc_now_ms());
        if (disc)
            json_object_set_new(json_array_get(ups, json_array_size(ups) - 1), "discovery", disc);
    }
    respond_json(cs, c, 200, NULL, json_pack("{s:I,s:s,s:o}", "generation",
                                             (json_int_t)s->generation, "fingerprint",
                                             s->cfg->fingerprint, "upstreams", ups));
}

/* rate_limits.heavy_hitters: every worker's published sources summed by
 * prefix (a source spread over workers counts once, with its total rate),
 * those at or above threshold_qps, heaviest first. */
#define HH_MAX 1024

static void ep_heavy_hitters(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    const struct arc_control *ctl = cs->ctl;
    const struct arc_heavy_hitters_conf *hc = &ctl->snap->cfg->heavy_hitters;
    struct arc_rl_hh_item *all = calloc(HH_MAX, sizeof(*all));
    size_t n = all ? arc_workers_heavy_hitters(ctl->workers, ctl->n_workers, hc->threshold_qps,
                                               all, HH_MAX) : 0;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char ip[64], pfx[80];
        inet_ntop(all[i].family == 4 ? AF_INET : AF_INET6, all[i].addr, ip, sizeof(ip));
        snprintf(pfx, sizeof(pfx), "%s/%u", ip, all[i].prefix);
        json_array_append_new(list, json_pack("{s:s,s:f}", "prefix", pfx, "qps",
                                              (double)(int64_t)(all[i].qps * 10) / 10));
    }
    free(all);
    respond_json(cs, c, 200, NULL, json_pack("{s:b,s:f,s:o}", "enabled", hc->enabled,
                                             "threshold_qps", hc->threshold_qps,
                                             "heavy_hitters", list));
}

/* ------------------------------------------------------------ requests */

struct route { const char *path; enum ctl_ep ep; bool post; };
static const struct route routes[] = {
    { "/v1/status", EP_STATUS, false }, { "/v1/config", EP_CONFIG, false },
    { "/v1/config/longpoll", EP_LONGPOLL, false }, { "/v1/config/validate", EP_VALIDATE, true },
    { "/v1/reload", EP_RELOAD, true }, { "/v1/routes", EP_ROUTES, false },
    { "/v1/upstreams", EP_UPSTREAMS, false },
    { "/v1/limits/heavy_hitters", EP_HEAVY_HITTERS, false },
    { "/v1/xdp/blocks", EP_XDP_BLOCKS, false }, { "/v1/xdp/stats", EP_XDP_STATS, false },
};

/* /v1/xdp/blocks: GET lists; POST adds and DELETE removes (JSON bodies). */
static void ep_xdp_blocks(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    const struct arc_h1_request *r = &c->req;
    const char *method = arc_str_eq(r->method, "POST", 4) ? "POST"
                       : arc_str_eq(r->method, "DELETE", 6) ? "DELETE" : "GET";
    json_t *doc = NULL;
    int status = arc_admin__xdp_blocks(cs->ctl, method, c->body, c->body_len, c->peer, &doc);
    respond_json(cs, c, status, NULL, doc);
}

/* 0 if the peer may use the API; else the status it gets. */
static int authorise(struct arc_ctl_loop *cs, struct ctl_conn *c, const char **extra)
{
    const struct arc_control_plane_conf *cp = &cs->ctl->snap->cfg->control_plane;
    if (!cp->has_token) {
        /* No secret to check: only processes on this host may talk to us. */
        return c->loopback ? 0 : 403;
    }
    struct arc_str tok;
    const struct arc_h1_header *h = header(c, "Authorization");
    if (!h || header_count(c, "Authorization") != 1 || !arc_admin__bearer(h->value, &tok)) {
        *extra = "WWW-Authenticate: Bearer realm=\"arc\"\r\n";
        return 401;
    }
    if (!arc_admin__token_eq(tok.p, tok.len, cp->auth_token, strlen(cp->auth_token))) {
        *extra = "WWW-Authenticate: Bearer realm=\"arc\", error=\"invalid_token\"\r\n";
        return 401;
    }
    return 0;
}

static void dispatch(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    const char *format = NULL;
    if (c->ep == EP_VALIDATE || c->ep == EP_APPLY) {
        const struct arc_h1_header *ct = header(c, "Content-Type");
        format = arc_admin__body_format(ct ? &ct->value : NULL, c->body ? c->body : "",
                                        c->body_len);
        if (!format) {
            if (mutation(c->ep))
                log_mutation(c, 415, "(unsupported Content-Type)");
            respond_error(cs, c, 415, NULL, "Content-Type: expected application/json, "
                          "application/yaml or application/toml");
            return;
        }
    }
    if (mutation(c->ep) && cs->draining) {
        log_mutation(c, 503, "(draining; not applied)");
        respond_error(cs, c, 503, NULL, "draining: configuration changes are not accepted");
        return;
    }
    switch (c->ep) {
    case EP_STATUS: ep_status(cs, c); break;
    case EP_CONFIG: ep_config(cs, c); break;
    case EP_LONGPOLL: ep_longpoll(cs, c); break;
    case EP_VALIDATE:
    case EP_APPLY:
    case EP_RELOAD: run_mutation(cs, c); break;
    case EP_ROUTES: ep_routes(cs, c); break;
    case EP_UPSTREAMS: ep_upstreams(cs, c); break;
    case EP_HEAVY_HITTERS: ep_heavy_hitters(cs, c); break;
    case EP_XDP_BLOCKS: ep_xdp_blocks(cs, c); break;
    case EP_XDP_STATS: respond_json(cs, c, 200, NULL, arc_admin__xdp_stats(cs->ctl)); break;
    case EP_NONE: break;
    }
}

static void too_large(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "request body larger than control_plane.max_body (%u bytes)",
             cs->ctl->snap->cfg->control_plane.max_body);
    if (mutation(c->ep))
        log_mutation(c, 413, "(body too large)");
    c->body_unread = true;
    respond_error(cs, c, 413, NULL, msg);
}

static bool body_add(struct arc_ctl_loop *cs, struct ctl_conn *c, const char *p, size_t n)
{
    uint32_t max = cs->ctl->snap->cfg->control_plane.max_body;
    if (c->body_len + n > max)
        return false;
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        char *b = realloc(c->body, cap);
        ARC_ASSERT(b != NULL);
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, p, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return true;
}

/* Feeds raw chunked bytes; returns 1 when the body is complete, 0 for
 * more, -1 after answering an error. */
static int chunked_feed(struct arc_ctl_loop *cs, struct ctl_conn *c, const char *p, size_t n)
{
    while (n) {
        size_t used = 0, dlen = 0;
        const char *data = NULL, *err = NULL;
        enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&c->ck, p, n, &used, &data, &dlen, &err);
        p += used;
        n -= used;
        if (rc == ARC_H1_CHUNK_ERROR) {
            respond_error(cs, c, 400, NULL, err ? err : "bad chunked framing");
            return -1;
        }
        if (rc == ARC_H1_CHUNK_DATA && !body_add(cs, c, data, dlen)) {
            too_large(cs, c);
            return -1;
        }
        if (rc == ARC_H1_CHUNK_DONE)
            return 1;
        if (rc == ARC_H1_CHUNK_AGAIN)
            break;
    }
    return 0;
}

static void recv_body(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    c->st = CS_BODY;
    c->deadline = arc_now_ms() + CTL_IO_TIMEOUT_MS;
    if (c->chunked) {
        if (!c->rbuf) {
            c->rbuf = malloc(CTL_RBUF);
            ARC_ASSERT(c->rbuf != NULL);
        }
        arm_recv(cs, c, c->rbuf, CTL_RBUF);
    } else {
        arm_recv(cs, c, c->body + c->body_len, (size_t)c->want);
    }
}

/* The head is complete: authorise, find the endpoint, then answer or read
 * the body first. */
static void on_head(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    const struct arc_h1_request *r = &c->req;
    c->body_unread = r->body != ARC_H1_BODY_NONE;
    bool get = arc_str_eq(r->method, "GET", 3), head = arc_str_eq(r->method, "HEAD", 4);
    bool post = arc_str_eq(r->method, "POST", 4);
    const struct route *rt = NULL;
    for (size_t i = 0; i < ARC_ARRAY_LEN(routes) && !rt; i++)
        if (arc_str_eq(r->path, routes[i].path, strlen(routes[i].path)))
            rt = &routes[i];
    bool config_path = arc_str_eq(r->path, "/v1/config", 10);
    c->ep = !rt ? EP_NONE : config_path && post ? EP_APPLY : rt->ep;
    c->head_only = head;

    const char *extra = NULL;
    int denied = authorise(cs, c, &extra);
    if (denied) {
        if (post)
            log_mutation(c, denied, denied == 403 ? "(not a loopback peer and no auth_token "
                         "configured)" : "(no valid bearer token)");
        respond_error(cs, c, denied, extra, denied == 403 ? "forbidden: without "
                      "control_plane.auth_token only loopback peers are served"
                      : "unauthorized: a valid bearer token is required");
        return;
    }
    if (!rt) {
        respond_error(cs, c, 404, NULL, "not found");
        return;
    }
    bool del = arc_str_eq(r->method, "DELETE", 6);
    bool xdp_blocks = c->ep == EP_XDP_BLOCKS;
    bool allowed = config_path ? get || head || post
                 : xdp_blocks ? get || head || post || del : rt->post ? post : get || head;
    if (!allowed) {
        const char *allow = xdp_blocks ? "Allow: GET, HEAD, POST, DELETE\r\n"
                          : config_path ? "Allow: GET, HEAD, POST\r\n"
                          : rt->post ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n";
        respond_error(cs, c, 405, allow, "method not allowed");
        return;
    }
    bool needs_body = c->ep == EP_VALIDATE || c->ep == EP_APPLY || (xdp_blocks && (post || del));
    if (!needs_body || r->body == ARC_H1_BODY_NONE) {
        dispatch(cs, c);
        return;
    }
    uint32_t max = cs->ctl->snap->cfg->control_plane.max_body;
    const char *rest = c->head + r->head_len;
    size_t n_rest = c->fill - r->head_len;
    if (r->body == ARC_H1_BODY_LENGTH) {
        if (r->content_length > max) {
            too_large(cs, c);
            return;
        }
        c->body_cap = (size_t)r->content_length + 1;
        c->body = malloc(c->body_cap);
        ARC_ASSERT(c->body != NULL);
        size_t take = ARC_MIN(n_rest, (size_t)r->content_length);
        memcpy(c->body, rest, take);
        c->body_len = take;
        c->body[take] = '\0';
        c->want = r->content_length - take;
        if (!c->want) {
            c->body_unread = false;
            dispatch(cs, c);
            return;
        }
    } else {
        c->chunked = true;
        arc_h1_chunked_init(&c->ck);
        int done = chunked_feed(cs, c, rest, n_rest);
        if (done < 0)
            return;
        if (done) {
            c->body_unread = false;
            dispatch(cs, c);
            return;
        }
    }
    if (r->flags & ARC_H1_F_EXPECT_100) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->out = malloc(sizeof(cont));
        ARC_ASSERT(c->out != NULL);
        memcpy(c->out, cont, sizeof(cont));
        c->out_len = sizeof(cont) - 1;
        c->out_off = 0;
        c->st = CS_CONTINUE;
        c->deadline = arc_now_ms() + CTL_IO_TIMEOUT_MS;
        arm_send(cs, c);
        return;
    }
    recv_body(cs, c);
}

static void on_head_bytes(struct arc_ctl_loop *cs, struct ctl_conn *c, int res)
{
    c->fill += (size_t)res;
    struct arc_h1_limits lim = { .max_header_bytes = CTL_HEAD_MAX - 1,
                                 .max_headers = CTL_MAX_HEADERS, .max_uri = 4096 };
    enum arc_h1_status rc = arc_h1_parse_request(c->head, c->fill, &lim, c->hdrs,
                                                 CTL_MAX_HEADERS, &c->req);
    if (rc == ARC_H1_INCOMPLETE && c->fill < CTL_HEAD_MAX) {
        arm_recv(cs, c, c->head + c->fill, CTL_HEAD_MAX - c->fill);
        return;
    }
    if (rc != ARC_H1_OK) {
        /* Nothing of the request can be trusted, the method included. */
        memset(&c->req, 0, sizeof(c->req));
        c->body_unread = true;
        int status = rc == ARC_H1_URI_TOO_LONG ? 414
                   : rc == ARC_H1_INCOMPLETE || rc == ARC_H1_HEADERS_TOO_LARGE ? 431
                   : rc == ARC_H1_NOT_IMPLEMENTED ? 501 : rc == ARC_H1_BAD_VERSION ? 505 : 400;
        respond_error(cs, c, status, NULL, arc_h1_reason(status));
        return;
    }
    on_head(cs, c);
}

static void on_body_bytes(struct arc_ctl_loop *cs, struct ctl_conn *c, int res)
{
    if (c->chunked) {
        int done = chunked_feed(cs, c, c->rbuf, (size_t)res);
        if (done < 0)
            return;
        if (!done) {
            arm_recv(cs, c, c->rbuf, CTL_RBUF);
            return;
        }
    } else {
        c->body_len += (size_t)res;
        c->body[c->body_len] = '\0';
        c->want -= (uint64_t)res;
        if (c->want) {
            arm_recv(cs, c, c->body + c->body_len, (size_t)c->want);
            return;
        }
    }
    c->body_unread = false;
    dispatch(cs, c);
}

/* The answer is out. */
static void sent(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    if (!c->body_unread || shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(cs, c);
        return;
    }
    c->st = CS_LINGER;
    c->deadline = arc_now_ms() + LINGER_MS;
    arm_recv(cs, c, c->sink, sizeof(c->sink));
}

/* ------------------------------------------------------------ loop hooks */

static void arm_accept(struct arc_ctl_loop *cs)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_multishot_accept(sqe, cs->ctl->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD_CTL_ACCEPT);
}

void arc_admin__ctl_start(struct arc_ctl_loop *cs)
{
    cs->srv.started_ms = arc_now_ms();
    if (cs->ctl->ctl_fd >= 0)
        arm_accept(cs);
}

/* The API keeps answering during a drain (status, config): only changes
 * are refused then. */
void arc_admin__ctl_accept_retry(struct arc_ctl_loop *cs)
{
    arm_accept(cs);
}

void arc_admin__ctl_on_accept(struct arc_ctl_loop *cs, const struct io_uring_cqe *cqe, uint64_t now)
{
    struct arc_ctl_server *s = &cs->srv;
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->res < 0) {
        if (cqe->res != s->accept_error)
            arc_log(ARC_LOG_ERROR, "control-plane accept: %s; retrying every %d ms",
                    strerror(-cqe->res), ARC_ADMIN_ACCEPT_RETRY_MS);
        s->accept_error = cqe->res;
        if (!more) {
            s->accept_retry.tv_sec = 0;
            s->accept_retry.tv_nsec = ARC_ADMIN_ACCEPT_RETRY_MS * 1000000L;
            struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
            io_uring_prep_timeout(sqe, &s->accept_retry, 0, 0);
            io_uring_sqe_set_data64(sqe, UD_CTL_ACCEPT_RETRY);
        }
        return;
    }
    if (s->accept_error) {
        arc_log(ARC_LOG_INFO, "control-plane accept works again");
        s->accept_error = 0;
    }
    if (!more)
        arm_accept(cs);
    int fd = cqe->res;
    struct ctl_conn *c = s->n_conns < CTL_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->st = CS_HEAD;
    c->deadline = now + CTL_IO_TIMEOUT_MS;
    /* The peer's address (not from the accept: a multishot accept writes
     * every peer into the one buffer it was given). */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        c->loopback = arc_admin__is_loopback((struct sockaddr *)&ss);
        arc_net_format((struct sockaddr *)&ss, c->peer, sizeof(c->peer), 1);
    } else {
        snprintf(c->peer, sizeof(c->peer), "?");
    }
    if (s->n_conns == s->cap_conns) {
        size_t cap = s->cap_conns ? s->cap_conns * 2 : 16;
        struct ctl_conn **v = realloc(s->conns, cap * sizeof(*v));
        ARC_ASSERT(v != NULL);
        s->conns = v;
        s->cap_conns = cap;
    }
    s->conns[s->n_conns++] = c;
    arm_recv(cs, c, c->head, CTL_HEAD_MAX);
}

void arc_admin__ctl_on_cqe(struct arc_ctl_loop *cs, struct ctl_conn *c, int op, int res,
                           uint64_t now)
{
    ARC_ASSERT(c->inflight > 0);
    c->inflight--;
    if (c->st == CS_CLOSING) {
        if (!c->inflight)
            conn_free(cs, c);
        return;
    }
    if (op == COP_SEND) {
        if (res <= 0) {
            conn_close(cs, c);
            return;
        }
        c->out_off += (size_t)res;
        if (c->out_off < c->out_len) {
            arm_send(cs, c);
        } else if (c->st == CS_CONTINUE) {
            recv_body(cs, c);
        } else if (c->st == CS_SEND) {
            sent(cs, c);
        }
        return;
    }
    if (op != COP_RECV)
        return;
    switch (c->st) {
    case CS_HEAD:
        if (res <= 0)
            conn_close(cs, c);
        else
            on_head_bytes(cs, c, res);
        break;
    case CS_BODY:
        if (res <= 0)
            conn_close(cs, c);
        else
            on_body_bytes(cs, c, res);
        break;
    case CS_PARKED:
    case CS_COMPILING:
        /* The client left (or sent something it should not have). */
        conn_close(cs, c);
        break;
    case CS_LINGER:
        if (res <= 0 || now >= c->deadline)
            conn_close(cs, c);
        else
            arm_recv(cs, c, c->sink, sizeof(c->sink));
        break;
    default:
        /* A recv cancelled when a parked poll was answered. */
        break;
    }
}

/* The recv watching a waiting client is cancelled (its completion finds
 * the connection answered, in SEND, and is dropped). */
static void unwatch(struct arc_ctl_loop *cs, struct ctl_conn *c)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_cancel64(sqe, arc_admin__ud(c, COP_RECV), 0);
    io_uring_sqe_set_data64(sqe, 0);
}

/* Answers a parked poll. */
static void unpark(struct arc_ctl_loop *cs, struct ctl_conn *c, int status)
{
    unwatch(cs, c);
    if (status == 503)
        respond_error(cs, c, 503, "Retry-After: 1\r\n", "draining");
    else
        answer_config(cs, c, status);
}

void arc_admin__ctl_tick(struct arc_ctl_loop *cs, uint64_t now)
{
    struct arc_ctl_server *s = &cs->srv;
    /* unpark/cancel never add or remove connections, so the array is stable. */
    for (size_t i = 0; i < s->n_conns; i++) {
        struct ctl_conn *c = s->conns[i];
        if (c->st == CS_CLOSING || now < c->deadline)
            continue;
        if (c->st == CS_PARKED) {
            unpark(cs, c, 304);
            continue;
        }
        struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, 0);
        c->deadline = UINT64_MAX;
    }
}

void arc_admin__ctl_config_changed(struct arc_ctl_loop *cs)
{
    struct arc_ctl_server *s = &cs->srv;
    const char *fp = cs->ctl->snap->cfg->fingerprint;
    for (size_t i = 0; i < s->n_conns && s->n_parked; i++) {
        struct ctl_conn *c = s->conns[i];
        /* A reload that went back to the fingerprint the poll already has
         * is no news for it. */
        if (c->st == CS_PARKED && strcmp(c->since, fp) != 0)
            unpark(cs, c, 200);
    }
}

void arc_admin__ctl_drain(struct arc_ctl_loop *cs)
{
    struct arc_ctl_server *s = &cs->srv;
    for (size_t i = 0; i < s->n_conns; i++) {
        struct ctl_conn *c = s->conns[i];
        if (c->st == CS_PARKED) {
            unpark(cs, c, 503);
        } else if (c->st == CS_COMPILING) {
            unwatch(cs, c);
            if (mutation(c->ep))
                log_mutation(c, 503, "(draining; not applied)");
            respond_error(cs, c, 503, NULL, "draining: configuration changes are not accepted");
        }
    }
}

void arc_admin__ctl_compiled(struct arc_ctl_loop *cs)
{
    struct arc_ctl_server *s = &cs->srv;
    /* (answering never adds or removes connections: the array is stable;
     * a request may start another compile and go on waiting) */
    for (size_t i = 0; i < s->n_conns; i++) {
        struct ctl_conn *c = s->conns[i];
        if (c->st != CS_COMPILING)
            continue;
        if (cs->draining) {
            unwatch(cs, c);
            if (mutation(c->ep))
                log_mutation(c, 503, "(draining; not applied)");
            respond_error(cs, c, 503, NULL, "draining: configuration changes are not accepted");
            continue;
        }
        run_mutation(cs, c);
        if (c->st != CS_COMPILING)
            unwatch(cs, c);             /* (answered: its recv is cancelled) */
    }
}

void arc_admin__ctl_dispose(struct arc_ctl_loop *cs)
{
    struct arc_ctl_server *s = &cs->srv;
    for (size_t i = 0; i < s->n_conns; i++) {
        struct ctl_conn *c = s->conns[i];
        if (c->st != CS_CLOSING)
            close(c->fd);
        free(c->body);
        free(c->rbuf);
        free(c->out);
        free(c);
    }
    free(s->conns);
    s->conns = NULL;
    s->n_conns = s->cap_conns = 0;
}
