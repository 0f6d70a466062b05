/*
 * The proxy-wasm host surface with a C probe filter (examples/plugins/c/
 * probe.c, built into tests/e2e/plugins/c_probe.wasm): every host call it
 * makes, with good and with hostile pointers, lengths, names and values,
 * answers the ABI's status; traps and budget overruns are contained and
 * the instance is rebuilt; a module that is not proxy-wasm is refused.
 */
#include "test.h"

#include "config/config.h"
#include "core/sbuf.h"
#include "plugin/plugin.h"
#include "plugin/plugin_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char cache[] = "/tmp/arc-plugin-test-XXXXXX";

static struct arc_config *config_for(const char *file, const char *conf)
{
    struct arc_config *cfg = calloc(1, sizeof(*cfg));
    cfg->plugins = calloc(1, sizeof(*cfg->plugins));
    cfg->n_plugins = 1;
    cfg->plugin_cache_dir = cache;
    cfg->source = "test.yaml";
    cfg->plugins[0] = (struct arc_plugin_conf){
        .name = "probe", .file = (char *)file, .budget_ms = 50, .max_memory = 16 << 20,
        .pool = 1, .config_json = (char *)conf, .line = 3, .col = 5,
        .max_body_buffer = 1 << 16, .max_queues = 64, .max_queue_items = 1024,
        .max_queue_bytes = 1 << 20, .max_call_body = 1 << 20, .max_root_calls = 16,
    };
    return cfg;
}

static void config_free(struct arc_config *cfg)
{
    free(cfg->plugins);
    free(cfg);
}

struct probe {
    struct arc_config *cfg;
    struct arc_pl_set *set;
    struct arc_arena arena;
    struct arc_pl_props props;
    struct sockaddr_in src;
};

static void probe_open(struct probe *p, const char *file)
{
    memset(p, 0, sizeof(*p));
    p->cfg = config_for(file, "the-config");
    struct arc_config_errors errs = { 0 };
    CHECK_INT(arc_plugin_set_new(p->cfg, 2, &p->set, &errs), 0);
    if (errs.n)
        fprintf(stderr, "%s\n", errs.v[0].msg);
    arc_config_errors_dispose(&errs);
    arc_arena_init(&p->arena, 4096);
    p->props = (struct arc_pl_props){
        .method = ARC_STR_LIT("GET"), .path = ARC_STR_LIT("/a?b=1"),
        .url_path = ARC_STR_LIT("/a"), .authority = ARC_STR_LIT("h.example"),
        .scheme = ARC_STR_LIT("http"), .route_name = ARC_STR_LIT("r"),
        .source = (const struct sockaddr *)&p->src,
    };
    p->src.sin_family = AF_INET;
    p->src.sin_port = htons(5555);
    p->src.sin_addr.s_addr = htonl(0x7f000001);
}

static void probe_close(struct probe *p)
{
    arc_plugin_set_free(p->set);
    arc_arena_dispose(&p->arena);
    config_free(p->cfg);
}

/* Runs the request stage with "x-probe: what" (plus extra fields) on
 * worker `w`; returns the verdict and leaves the map in *out. */
static enum arc_pl_verdict run_probe(struct probe *p, unsigned w, const char *what,
                                     struct arc_pl_hmap *m, struct arc_pl_run **out)
{
    static const uint32_t idx[1] = { 0 };
    struct arc_pl_run *r = arc_pl_run_new(p->set, w, idx, NULL, 1, &p->arena, &p->props);
    *m = (struct arc_pl_hmap){ .arena = &p->arena };
    arc_pl_hmap_add(m, ARC_STR_LIT(":authority"), ARC_STR_LIT("h.example"));
    arc_pl_hmap_add(m, ARC_STR_LIT(":path"), ARC_STR_LIT("/a?b=1"));
    arc_pl_hmap_add(m, ARC_STR_LIT(":method"), ARC_STR_LIT("GET"));
    arc_pl_hmap_add(m, ARC_STR_LIT(":scheme"), ARC_STR_LIT("http"));
    arc_pl_hmap_add(m, ARC_STR_LIT("x-dup"), ARC_STR_LIT("a"));
    arc_pl_hmap_add(m, ARC_STR_LIT("x-dup"), ARC_STR_LIT("b"));
    arc_pl_hmap_add(m, ARC_STR_LIT("x-probe"), (struct arc_str){ what, strlen(what) });
    m->changed = false;
    enum arc_pl_verdict v = arc_pl_request_headers(r, m, true, 0);
    arc_pl_run_end(r);
    if (out)
        *out = r;
    return v;
}

/* run_probe with an "x-v: value" field too. */
static void run_probe_v(struct probe *p, unsigned w, const char *what, const char *value,
                        struct arc_pl_hmap *m)
{
    static const uint32_t idx[1] = { 0 };
    struct arc_pl_run *r = arc_pl_run_new(p->set, w, idx, NULL, 1, &p->arena, &p->props);
    *m = (struct arc_pl_hmap){ .arena = &p->arena };
    arc_pl_hmap_add(m, ARC_STR_LIT("x-probe"), (struct arc_str){ what, strlen(what) });
    arc_pl_hmap_add(m, ARC_STR_LIT("x-v"), (struct arc_str){ value, strlen(value) });
    arc_pl_request_headers(r, m, true, 0);
    arc_pl_run_end(r);
}

static int rc_of(const struct arc_pl_hmap *m)
{
    const struct arc_str *v = arc_pl_hmap_get(m, "x-rc", 4);
    return v && v->len == 2 ? (v->p[0] - '0') * 10 + (v->p[1] - '0') : -1;
}

static const char *val_of(const struct arc_pl_hmap *m, char *buf, size_t n)
{
    const struct arc_str *v = arc_pl_hmap_get(m, "x-val", 5);
    snprintf(buf, n, "%.*s", v ? (int)v->len : 0, v ? v->p : "");
    return buf;
}

static void test_host_calls(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_probe.wasm");
    if (!p.set)
        return;
    static const struct { const char *what; int rc; } cases[] = {
        { "oob-key", 6 },           /* InvalidMemoryAccess */
        { "oob-len", 6 },
        { "oob-ret", 6 },
        { "bad-name", 2 },          /* BadArgument: no CR/LF into a head */
        { "bad-value", 2 },
        { "bad-map", 2 },
        { "remove-absent", 0 },     /* Ok, as Envoy answers */
        { "prop-missing", 1 },      /* NotFound */
        { "bad-pairs", 2 },
        { "local-bad-status", 2 },
        { "local-bad-pairs", 2 },
        { "unimplemented", 12 },    /* proxy_close_stream */
        { "pairs", 0 },
        { "big-body", 2 },          /* over ARC_PL_LOCAL_BODY_MAX */
        { "grow-300", 0 },          /* memory.grow past max_memory (16 MiB) fails */
    };
    char buf[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct arc_pl_hmap m;
        CHECK_INT(run_probe(&p, 0, cases[i].what, &m, NULL), ARC_PL_CONTINUE);
        if (rc_of(&m) != cases[i].rc)
            fprintf(stderr, "case %s\n", cases[i].what);
        CHECK_INT(rc_of(&m), cases[i].rc);
    }
    struct arc_pl_hmap m;
    /* a filter cannot grow a head past ARC_PL_MAP_MAX_FIELDS (nor x-rc) */
    run_probe(&p, 0, "flood", &m, NULL);
    CHECK_INT(m.n, ARC_PL_MAP_MAX_FIELDS);
    CHECK_INT(rc_of(&m), -1);
    run_probe(&p, 1, "prop", &m, NULL);
    CHECK_INT(rc_of(&m), 0);
    CHECK_STR(val_of(&m, buf, sizeof(buf)), "/a?b=1");
    /* shared data: per worker, kept across exchanges, compare-and-swap */
    run_probe(&p, 0, "shared-get", &m, NULL);
    CHECK_INT(rc_of(&m), 1);
    run_probe_v(&p, 0, "shared-set", "w0", &m);
    CHECK_INT(rc_of(&m), 0);
    run_probe(&p, 0, "shared-get", &m, NULL);
    CHECK_INT(rc_of(&m), 0);
    CHECK_STR(val_of(&m, buf, sizeof(buf)), "w0");
    run_probe(&p, 1, "shared-get", &m, NULL);
    CHECK_INT(rc_of(&m), 1);                /* worker 1 has its own store */
    run_probe(&p, 0, "shared-cas", &m, NULL);
    CHECK_INT(rc_of(&m), 0);
    run_probe(&p, 0, "shared-get", &m, NULL);
    CHECK_STR(val_of(&m, buf, sizeof(buf)), "new");
    /* metrics: defined once, values per worker, read back summed */
    run_probe(&p, 0, "metrics", &m, NULL);
    CHECK_INT(rc_of(&m), 0);
    CHECK_STR(val_of(&m, buf, sizeof(buf)), "1");
    run_probe(&p, 1, "metrics", &m, NULL);
    CHECK_STR(val_of(&m, buf, sizeof(buf)), "2");
    struct arc_sbuf text = { 0 };
    arc_plugin_metrics_render(&text, p.set);
    CHECK(text.p && strstr(text.p, "arc_plugin_counter{plugin=\"probe\",name=\"requests\"} 2\n"));
    CHECK(text.p && strstr(text.p, "arc_plugin_gauge{plugin=\"probe\",name=\"last\"} 84\n"));
    CHECK(text.p && strstr(text.p, "arc_plugin_histogram_count{plugin=\"probe\",name=\"sizes\"} 2\n"));
    arc_sbuf_dispose(&text);
    run_probe(&p, 1, "prop-src", &m, NULL);
    CHECK_STR(val_of(&m, buf, sizeof(buf)), "127.0.0.1:5555");
    run_probe(&p, 1, "prop-root", &m, NULL);
    CHECK_STR(val_of(&m, buf, sizeof(buf)), "probe");
    run_probe(&p, 1, "config", &m, NULL);
    CHECK_STR(val_of(&m, buf, sizeof(buf)), "the-config");
    /* replace: one value left */
    run_probe(&p, 0, "replace", &m, NULL);
    CHECK_INT(rc_of(&m), 0);
    size_t dups = 0;
    for (size_t i = 0; i < m.n; i++)
        dups += m.v[i].name.len == 5 && memcmp(m.v[i].name.p, "x-dup", 5) == 0;
    CHECK_INT(dups, 1);
    CHECK_STR(arc_pl_hmap_get(&m, "x-dup", 5)->p[0] == 'o' ? "one" : "?", "one");
    /* a pseudo-header is replaced in place */
    run_probe(&p, 0, "path", &m, NULL);
    const struct arc_str *np = arc_pl_hmap_get(&m, ":path", 5);
    CHECK(np && np->len == 8 && memcmp(np->p, "/new?q=1", 8) == 0);
    CHECK(m.changed);
    probe_close(&p);
}

static void test_traps_and_budget(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_trap.wasm");
    if (!p.set)
        return;
    struct arc_pl_hmap m;
    struct arc_pl_run *r;
    /* c_trap reads x-trap; x-probe is ignored */
    static const uint32_t idx[1] = { 0 };
    for (int round = 0; round < 3; round++) {
        r = arc_pl_run_new(p.set, 0, idx, NULL, 1, &p.arena, &p.props);
        m = (struct arc_pl_hmap){ .arena = &p.arena };
        arc_pl_hmap_add(&m, ARC_STR_LIT("x-trap"), round == 1 ? ARC_STR_LIT("unreachable")
                                                              : ARC_STR_LIT("oob"));
        CHECK_INT(arc_pl_request_headers(r, &m, true, 0), ARC_PL_FAIL);
        CHECK_INT(r->fail, ARC_PL_FAIL_TRAP);
        arc_pl_run_end(r);
        /* the next exchange gets a rebuilt instance */
        run_probe(&p, 0, "none", &m, &r);
        CHECK(arc_pl_hmap_get(&m, "x-trap-filter", 13) != NULL);
        CHECK_INT(r->fail, ARC_PL_FAIL_NONE);
    }
    probe_close(&p);

    probe_open(&p, "tests/e2e/plugins/c_loop.wasm");
    if (!p.set)
        return;
    r = arc_pl_run_new(p.set, 1, idx, NULL, 1, &p.arena, &p.props);
    m = (struct arc_pl_hmap){ .arena = &p.arena };
    arc_pl_hmap_add(&m, ARC_STR_LIT("x-loop"), ARC_STR_LIT("forever"));
    uint64_t t0 = arc_pl__now_ns();
    CHECK_INT(arc_pl_request_headers(r, &m, true, 0), ARC_PL_FAIL);
    uint64_t took = arc_pl__now_ns() - t0;
    CHECK_INT(r->fail, ARC_PL_FAIL_BUDGET);
    CHECK(took >= 50 * 1000000ull);     /* ran to its 50 ms budget, then stopped */
    arc_pl_run_end(r);
    run_probe(&p, 1, "none", &m, &r);
    CHECK(arc_pl_hmap_get(&m, "x-loop-filter", 13) != NULL);
    probe_close(&p);
}

/* ------------------------------------------------------------ pause */

static int notified;
static void note(void *owner)
{
    (void)owner;
    notified++;
}

/* A request stage on worker 0 with one field `name: value`. */
static struct arc_pl_run *pause_start(struct probe *p, const char *name, const char *value,
                                      struct arc_pl_hmap *m, enum arc_pl_verdict *v)
{
    static const uint32_t idx[1] = { 0 };
    struct arc_pl_run *r = arc_pl_run_new(p->set, 0, idx, NULL, 1, &p->arena, &p->props);
    r->notify = note;
    r->owner = r;
    *m = (struct arc_pl_hmap){ .arena = &p->arena };
    arc_pl_hmap_add(m, ARC_STR_LIT(":path"), ARC_STR_LIT("/"));
    arc_pl_hmap_add(m, (struct arc_str){ name, strlen(name) },
                    (struct arc_str){ value, strlen(value) });
    m->changed = false;
    *v = arc_pl_request_headers(r, m, true, 0);
    return r;
}

static bool field_is(const struct arc_pl_hmap *m, const char *name, const char *want)
{
    const struct arc_str *v = arc_pl_hmap_get(m, name, strlen(name));
    return v && v->len == strlen(want) && memcmp(v->p, want, v->len) == 0;
}

/* examples/plugins/c/pause.c: Pause holds a run; another run's callback
 * continues it (proxy_set_effective_context + proxy_continue_stream, with
 * a field added to the held request) or answers it; a run never continued
 * fails as a pause timeout; an ended run's context is gone. */
static void test_pause_resume(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_pause.wasm");
    if (!p.set)
        return;
    struct arc_pl_hmap ma, mb, mc, md, me;
    enum arc_pl_verdict v;
    notified = 0;
    struct arc_pl_run *a = pause_start(&p, "x-pause", "hold", &ma, &v);
    CHECK_INT(v, ARC_PL_PAUSE);
    CHECK(a->paused && notified == 0);
    /* continued from inside its own callback: not held */
    struct arc_pl_run *s = pause_start(&p, "x-pause", "self", &me, &v);
    CHECK_INT(v, ARC_PL_CONTINUE);
    CHECK(!s->paused && field_is(&me, "x-self-continued", "1"));
    arc_pl_run_end(s);
    struct arc_pl_run *b = pause_start(&p, "x-release", "continue", &mb, &v);
    CHECK_INT(v, ARC_PL_CONTINUE);
    CHECK_INT(notified, 1);
    CHECK(field_is(&mb, "x-released", "1"));
    arc_pl_run_end(b);
    CHECK_INT(arc_pl_resume(a, 0), ARC_PL_CONTINUE);
    CHECK(!a->paused && ma.changed && arc_pl_hmap_get(&ma, "x-released-by", 13) != NULL);
    CHECK(a->req_map == &ma && a->map == NULL);
    arc_pl_run_end(a);
    /* never continued: the pause timeout (fail_closed) */
    struct arc_pl_run *c = pause_start(&p, "x-pause", "hold", &mc, &v);
    CHECK_INT(v, ARC_PL_PAUSE);
    CHECK_INT(arc_pl_resume(c, 0), ARC_PL_FAIL);
    CHECK_INT(c->fail, ARC_PL_FAIL_TIMEOUT);
    arc_pl_run_end(c);                  /* on_delete: the filter forgets it */
    /* answered while paused */
    struct arc_pl_run *d = pause_start(&p, "x-pause", "hold", &md, &v);
    CHECK_INT(v, ARC_PL_PAUSE);
    b = pause_start(&p, "x-release", "deny", &mb, &v);
    CHECK_INT(v, ARC_PL_CONTINUE);
    CHECK(field_is(&mb, "x-released", "1"));   /* c is not among the held */
    CHECK_INT(notified, 2);
    arc_pl_run_end(b);
    CHECK_INT(arc_pl_resume(d, 0), ARC_PL_LOCAL);
    CHECK_INT(d->local.status, 409);
    arc_pl_run_end(d);
    /* a run ended while paused (its client left) is forgotten too */
    d = pause_start(&p, "x-pause", "hold", &md, &v);
    CHECK_INT(v, ARC_PL_PAUSE);
    arc_pl_run_end(d);
    b = pause_start(&p, "x-release", "continue", &mb, &v);
    CHECK(field_is(&mb, "x-released", "0"));
    CHECK_INT(notified, 2);
    arc_pl_run_end(b);
    probe_close(&p);
}

/* The same filter pausing response heads: proxy_continue_stream(1) from
 * another run continues it (a field added to the held response), a local
 * answer replaces it, no continue is a pause timeout; continue_stream(0)
 * does not release a paused response. */
static void test_response_pause(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_pause.wasm");
    if (!p.set)
        return;
    struct arc_pl_hmap mq, mr, mb;
    enum arc_pl_verdict v;
    notified = 0;
    struct arc_pl_run *a = pause_start(&p, "x-pause-response", "hold", &mq, &v);
    CHECK_INT(v, ARC_PL_CONTINUE);
    mr = (struct arc_pl_hmap){ .arena = &p.arena };
    arc_pl_hmap_add(&mr, ARC_STR_LIT(":status"), ARC_STR_LIT("200"));
    arc_pl_hmap_add(&mr, ARC_STR_LIT("server"), ARC_STR_LIT("up"));
    mr.changed = false;
    CHECK_INT(arc_pl_response_headers(a, &mr, false, 0), ARC_PL_PAUSE);
    CHECK(a->paused && a->pause_resp && a->map == &mr);
    /* a request release does not touch it */
    struct arc_pl_run *b = pause_start(&p, "x-release", "continue", &mb, &v);
    arc_pl_run_end(b);
    CHECK_INT(notified, 0);
    b = pause_start(&p, "x-release-response", "continue", &mb, &v);
    CHECK_INT(v, ARC_PL_CONTINUE);
    CHECK(field_is(&mb, "x-released-responses", "1"));
    CHECK_INT(notified, 1);
    arc_pl_run_end(b);
    CHECK_INT(arc_pl_resume(a, 0), ARC_PL_CONTINUE);
    CHECK(!a->paused && a->map == NULL && a->req_map == &mq);
    CHECK(mr.changed && arc_pl_hmap_get(&mr, "x-released-by", 13) != NULL);
    arc_pl_run_end(a);
    /* answered instead */
    a = pause_start(&p, "x-pause-response", "hold", &mq, &v);
    mr = (struct arc_pl_hmap){ .arena = &p.arena };
    arc_pl_hmap_add(&mr, ARC_STR_LIT(":status"), ARC_STR_LIT("200"));
    CHECK_INT(arc_pl_response_headers(a, &mr, true, 0), ARC_PL_PAUSE);
    b = pause_start(&p, "x-release-response", "deny", &mb, &v);
    arc_pl_run_end(b);
    CHECK_INT(notified, 2);
    CHECK_INT(arc_pl_resume(a, 0), ARC_PL_LOCAL);
    CHECK_INT(a->local.status, 409);
    arc_pl_run_end(a);
    /* never continued */
    a = pause_start(&p, "x-pause-response", "hold", &mq, &v);
    mr = (struct arc_pl_hmap){ .arena = &p.arena };
    arc_pl_hmap_add(&mr, ARC_STR_LIT(":status"), ARC_STR_LIT("200"));
    CHECK_INT(arc_pl_response_headers(a, &mr, true, 0), ARC_PL_PAUSE);
    CHECK_INT(arc_pl_resume(a, 0), ARC_PL_FAIL);
    CHECK_INT(a->fail, ARC_PL_FAIL_TIMEOUT);
    arc_pl_run_end(a);
    /* continued inside its own callback: not held */
    a = pause_start(&p, "x-pause-response", "self", &mq, &v);
    mr = (struct arc_pl_hmap){ .arena = &p.arena };
    arc_pl_hmap_add(&mr, ARC_STR_LIT(":status"), ARC_STR_LIT("200"));
    CHECK_INT(arc_pl_response_headers(a, &mr, true, 0), ARC_PL_CONTINUE);
    CHECK(field_is(&mr, "x-self-continued", "1"));
    arc_pl_run_end(a);
    probe_close(&p);
}

/* examples/plugins/c/queue.c: a queue registered at configure time is
 * resolved and fed from request callbacks; proxy_on_queue_ready runs on
 * its owner's root context after the call that enqueued and drains it;
 * queues are per worker; unknown names and ids, an empty queue. */
static void test_queues(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_queue.wasm");
    if (!p.set)
        return;
    struct arc_pl_hmap m;
    enum arc_pl_verdict v;
    static const char *const items[] = { "a", "bb", "ccc" };
    for (size_t i = 0; i < 3; i++) {
        struct arc_pl_run *r = pause_start(&p, "x-enqueue", items[i], &m, &v);
        CHECK_INT(v, ARC_PL_CONTINUE);
        CHECK(field_is(&m, "x-enqueue-rc", "0"));
        arc_pl_run_end(r);
    }
    struct arc_pl_wslot *s = &p.set->pl[0].w[0];
    CHECK_INT(s->n_queues, 1);
    CHECK(s->queues[0].head == NULL && !s->queue_ready);   /* delivered and drained */
    struct arc_pl_run *r = pause_start(&p, "x-queue-stat", "1", &m, &v);
    CHECK(field_is(&m, "x-dequeued", "3") && field_is(&m, "x-last", "ccc"));
    CHECK(field_is(&m, "x-ready-root", "1"));
    arc_pl_run_end(r);
    r = pause_start(&p, "x-queue-errors", "1", &m, &v);
    CHECK(field_is(&m, "x-rcs", "1,1,7"));   /* NotFound, NotFound, Empty */
    arc_pl_run_end(r);
    /* worker 1 has its own queue: nothing was delivered there */
    CHECK_INT(p.set->pl[0].w[1].n_queues, 1);
    CHECK(p.set->pl[0].w[1].queues[0].head == NULL);
    /* a full queue refuses (BadArgument) and keeps what it has */
    struct arc_pl_queue *q = &s->queues[0];
    q->n = 1024;                        /* (max_queue_items) */
    r = pause_start(&p, "x-enqueue", "z", &m, &v);
    CHECK(field_is(&m, "x-enqueue-rc", "2"));
    arc_pl_run_end(r);
    q->n = 0;
    probe_close(&p);
}

/* examples/plugins/c/authcall.c against a recorded dispatch: the call's
 * request as the filter built it; the answer delivered later continues
 * the paused run with fields from it, or answers it (failed call); a
 * refused dispatch; an answer for an ended run is dropped. */
static struct arc_pl_caller got_who;
static char got_up[64], got_path[64];
static uint32_t dispatch_rc;
static int dispatched;

static uint32_t record_dispatch(void *owner, const struct arc_pl_call_req *req,
                                const struct arc_pl_caller *who)
{
    (void)owner;
    dispatched++;
    got_who = *who;
    snprintf(got_up, sizeof(got_up), "%.*s", (int)req->upstream.len, req->upstream.p);
    const struct arc_str *pth = arc_pl_hmap_get(req->hdrs, ":path", 5);
    snprintf(got_path, sizeof(got_path), "%.*s", pth ? (int)pth->len : 0, pth ? pth->p : "");
    return dispatch_rc;
}

static struct arc_pl_run *call_start(struct probe *p, const char *path, struct arc_pl_hmap *m,
                                     enum arc_pl_verdict *v)
{
    static const uint32_t idx[1] = { 0 };
    struct arc_pl_run *r = arc_pl_run_new(p->set, 0, idx, NULL, 1, &p->arena, &p->props);
    r->notify = note;
    r->owner = r;
    r->dispatch = record_dispatch;
    *m = (struct arc_pl_hmap){ .arena = &p->arena };
    arc_pl_hmap_add(m, ARC_STR_LIT(":path"), ARC_STR_LIT("/"));
    arc_pl_hmap_add(m, ARC_STR_LIT("x-auth"), (struct arc_str){ path, strlen(path) });
    *v = arc_pl_request_headers(r, m, true, 0);
    return r;
}

static void test_http_call(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_authcall.wasm");
    if (!p.set)
        return;
    struct arc_pl_hmap m;
    enum arc_pl_verdict v;
    notified = dispatched = 0;
    dispatch_rc = 0;
    struct arc_pl_run *r = call_start(&p, "/check?x=1", &m, &v);
    CHECK_INT(v, ARC_PL_PAUSE);
    CHECK_INT(dispatched, 1);
    CHECK(strcmp(got_up, "the-config") == 0 && strcmp(got_path, "/check?x=1") == 0);
    /* the answer: 200 with a field and a body */
    struct arc_arena ra;
    arc_arena_init(&ra, 1024);
    struct arc_pl_hmap h = { .arena = &ra };
    arc_pl_hmap_add(&h, ARC_STR_LIT(":status"), ARC_STR_LIT("200"));
    arc_pl_hmap_add(&h, ARC_STR_LIT("x-upstream"), ARC_STR_LIT("authsrv"));
    struct arc_pl_call_resp ok = { .ok = true, .hdrs = &h, .body = ARC_STR_LIT("hello") };
    arc_pl_http_call_done(&got_who, &ok);
    CHECK_INT(notified, 1);
    CHECK_INT(arc_pl_resume(r, 0), ARC_PL_CONTINUE);
    CHECK(field_is(&m, "x-auth-status", "200") && field_is(&m, "x-auth-upstream", "authsrv"));
    CHECK(field_is(&m, "x-auth-body", "5"));
    arc_pl_run_end(r);
    /* a failed call: the filter answers 503 */
    r = call_start(&p, "/check", &m, &v);
    CHECK_INT(v, ARC_PL_PAUSE);
    struct arc_pl_call_resp bad = { .ok = false };
    arc_pl_http_call_done(&got_who, &bad);
    CHECK_INT(notified, 2);
    CHECK_INT(arc_pl_resume(r, 0), ARC_PL_LOCAL);
    CHECK_INT(r->local.status, 503);
    arc_pl_run_end(r);
    /* the calling exchange ended first: the answer is dropped */
    r = call_start(&p, "/check", &m, &v);
    arc_pl_run_end(r);
    arc_pl_http_call_done(&got_who, &ok);
    CHECK_INT(notified, 2);
    /* refused at once (NotFound): the filter answers in the same call */
    dispatch_rc = 1;
    r = call_start(&p, "/check", &m, &v);
    CHECK_INT(v, ARC_PL_LOCAL);
    CHECK_INT(r->local.status, 503);
    arc_pl_run_end(r);
    /* without a dispatcher (no exchange side): BadArgument, same answer */
    static const uint32_t idx[1] = { 0 };
    r = arc_pl_run_new(p.set, 0, idx, NULL, 1, &p.arena, &p.props);
    m = (struct arc_pl_hmap){ .arena = &p.arena };
    arc_pl_hmap_add(&m, ARC_STR_LIT("x-auth"), ARC_STR_LIT("/c"));
    CHECK_INT(arc_pl_request_headers(r, &m, true, 0), ARC_PL_LOCAL);
    arc_pl_run_end(r);
    arc_arena_dispose(&ra);
    probe_close(&p);
}

/* examples/plugins/c/tick.c on a timer wheel: the period its configure
 * asked for is armed when the worker starts the ticks; every due tick
 * calls proxy_on_tick on the root context and re-arms; a period of 0 from
 * a request's callback stops them; ticks_stop disarms. */
static void test_ticks(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_tick.wasm");
    if (!p.set)
        return;
    struct arc_pl_plugin *pl = &p.set->pl[0];
    CHECK_INT(pl->w[0].inst[0].tick_ms, 0);     /* config "the-config": atou = 0 */
    struct arc_pl_hmap m;
    enum arc_pl_verdict v;
    struct arc_tw tw;
    uint64_t now = arc_pl__now_ns() / 1000000u;
    arc_tw_init(&tw, now, 1);
    arc_plugin_ticks_start(p.set, 0, &tw, now, NULL, NULL);
    CHECK_INT(tw.count, 0);
    struct arc_pl_run *r = pause_start(&p, "x-tick-period", "20", &m, &v);
    arc_pl_run_end(r);
    CHECK_INT(pl->w[0].inst[0].tick_ms, 20);
    CHECK_INT(tw.count, 1);
    for (int i = 1; i <= 5; i++)
        arc_tw_advance(&tw, now + 1000u * (uint64_t)i);
    CHECK_INT(atomic_load(&pl->w[0].metrics[0].v), 5);
    CHECK_INT(atomic_load(&pl->w[1].metrics[0].v), 0);     /* worker 1: not started */
    r = pause_start(&p, "x-tick-stat", "1", &m, &v);
    CHECK(field_is(&m, "x-ticks", "5") && field_is(&m, "x-tick-root", "1"));
    arc_pl_run_end(r);
    r = pause_start(&p, "x-tick-period", "0", &m, &v);
    arc_pl_run_end(r);
    CHECK_INT(tw.count, 0);
    arc_tw_advance(&tw, now + 10000);
    CHECK_INT(atomic_load(&pl->w[0].metrics[0].v), 5);
    r = pause_start(&p, "x-tick-period", "20", &m, &v);
    arc_pl_run_end(r);
    arc_plugin_ticks_stop(p.set, 0);
    CHECK_INT(tw.count, 0);
    CHECK(pl->w[0].tw == NULL);
    probe_close(&p);
}

/* examples/plugins/c/rootcall.c: proxy_http_call from proxy_on_tick (a
 * root context) goes to the worker's root dispatcher given at
 * ticks_start (refused without one), at most max_root_calls outstanding
 * per instance; the answer reaches the root context (headers, body read
 * in it, kept in shared data); an answer for an instance rebuilt since,
 * or after the worker let the set go, is dropped (and still ends the
 * call's count). */
static struct arc_pl_caller root_who[8];
static int n_root_who;
static void *root_owner;

static uint32_t record_root(void *owner, const struct arc_pl_call_req *req,
                            const struct arc_pl_caller *who)
{
    root_owner = owner;
    const struct arc_str *pth = arc_pl_hmap_get(req->hdrs, ":path", 5);
    CHECK(req->upstream.len == 4 && memcmp(req->upstream.p, "keys", 4) == 0);
    CHECK(pth && pth->len == 5 && memcmp(pth->p, "/keys", 5) == 0);
    CHECK_INT(req->timeout_ms, 900);
    if (n_root_who < 8)
        root_who[n_root_who++] = *who;
    return 0;
}

static bool shared_is(const struct arc_pl_wslot *s, const char *k, const char *v)
{
    for (uint32_t i = 0; i < s->n_shared; i++)
        if (s->shared[i].klen == strlen(k) && memcmp(s->shared[i].key, k, s->shared[i].klen) == 0)
            return s->shared[i].vlen == strlen(v) && memcmp(s->shared[i].value, v, s->shared[i].vlen) == 0;
    return false;
}

static void test_root_http_call(void)
{
    struct arc_config *cfg = config_for("tests/e2e/plugins/c_rootcall.wasm", "keys /keys 20 900 3");
    cfg->plugins[0].max_root_calls = 2;
    struct arc_pl_set *set = NULL;
    struct arc_config_errors errs = { 0 };
    CHECK_INT(arc_plugin_set_new(cfg, 1, &set, &errs), 0);
    arc_config_errors_dispose(&errs);
    if (!set) {
        config_free(cfg);
        return;
    }
    struct arc_pl_wslot *s = &set->pl[0].w[0];
    struct arc_pl_inst *in = &s->inst[0];
    CHECK_INT(in->tick_ms, 20);
    struct arc_tw tw;
    uint64_t now = arc_pl__now_ns() / 1000000u;
    arc_tw_init(&tw, now, 1);
    /* a worker without a root dispatcher: refused (BadArgument) */
    arc_plugin_ticks_start(set, 0, &tw, now, NULL, NULL);
    arc_pl__on_tick(&in->tick, now);
    CHECK(shared_is(s, "refused", "3") && shared_is(s, "rc", "2"));
    arc_plugin_ticks_stop(set, 0);
    int marker;
    arc_plugin_ticks_start(set, 0, &tw, now, record_root, &marker);
    n_root_who = 0;
    arc_pl__on_tick(&in->tick, now);
    CHECK_INT(n_root_who, 2);           /* the third is over max_root_calls */
    CHECK(shared_is(s, "refused", "4") && shared_is(s, "maxpending", "2"));
    CHECK(root_owner == &marker);
    CHECK(root_who[0].root && root_who[0].ctx_id == 1 && root_who[0].gen == in->gen);
    CHECK(root_who[0].token != root_who[1].token);
    CHECK_INT(in->root_calls, 2);
    struct arc_arena ra;
    arc_arena_init(&ra, 1024);
    struct arc_pl_hmap h = { .arena = &ra };
    arc_pl_hmap_add(&h, ARC_STR_LIT(":status"), ARC_STR_LIT("200"));
    arc_pl_hmap_add(&h, ARC_STR_LIT("x-upstream"), ARC_STR_LIT("keysrv"));
    struct arc_pl_call_resp ok = { .ok = true, .hdrs = &h, .body = ARC_STR_LIT("k1k2") };
    arc_pl_http_call_done(&root_who[0], &ok);
    CHECK_INT(in->root_calls, 1);
    CHECK(shared_is(s, "status", "200") && shared_is(s, "body", "k1k2"));
    CHECK(shared_is(s, "upstream", "keysrv") && shared_is(s, "root", "1"));
    CHECK(shared_is(s, "answers", "1") && shared_is(s, "tokens", "ok"));
    struct arc_pl_call_resp bad = { .ok = false };
    arc_pl_http_call_done(&root_who[1], &bad);
    CHECK_INT(in->root_calls, 0);
    CHECK(shared_is(s, "status", "failed") && shared_is(s, "failures", "1"));
    /* from an HTTP callback after proxy_set_effective_context(1): a root
     * call (not the exchange's dispatcher), answered to the root after the
     * request ended; that answer calls again (x-root-chain) */
    static const uint32_t idx[1] = { 0 };
    struct arc_arena ea;
    arc_arena_init(&ea, 1024);
    struct arc_pl_props props = { .method = ARC_STR_LIT("GET"), .path = ARC_STR_LIT("/"),
                                  .url_path = ARC_STR_LIT("/"), .route_name = ARC_STR_LIT("r") };
    struct arc_pl_run *r = arc_pl_run_new(set, 0, idx, NULL, 1, &ea, &props);
    r->dispatch = record_dispatch;
    r->owner = r;
    struct arc_pl_hmap m = { .arena = &ea };
    arc_pl_hmap_add(&m, ARC_STR_LIT("x-root-call"), ARC_STR_LIT("1"));
    arc_pl_hmap_add(&m, ARC_STR_LIT("x-root-chain"), ARC_STR_LIT("1"));
    dispatched = 0;
    CHECK_INT(arc_pl_request_headers(r, &m, true, now), ARC_PL_CONTINUE);
    arc_pl_run_end(r);
    CHECK_INT(dispatched, 0);
    CHECK_INT(n_root_who, 3);
    CHECK(root_who[2].root && root_who[2].ctx_id == 1);
    CHECK_INT(in->root_calls, 1);
    arc_pl_http_call_done(&root_who[2], &ok);
    CHECK(shared_is(s, "answers", "3") && shared_is(s, "root", "1"));
    CHECK_INT(n_root_who, 4);
    CHECK(root_who[3].root && root_who[3].ctx_id == 1);
    CHECK_INT(in->root_calls, 1);
    arc_pl_http_call_done(&root_who[3], &ok);
    CHECK(shared_is(s, "answers", "4"));
    CHECK_INT(in->root_calls, 0);
    arc_arena_dispose(&ea);
    /* the next tick calls again; the instance is rebuilt meanwhile: the
     * answer is not delivered to the new generation */
    arc_pl__on_tick(&in->tick, now);
    CHECK_INT(n_root_who, 6);
    CHECK_INT(arc_pl__inst_rebuild(in), 0);
    CHECK(root_who[4].gen != in->gen);
    arc_pl_http_call_done(&root_who[4], &ok);
    CHECK(shared_is(s, "answers", "4"));        /* (shared data outlives the rebuild) */
    CHECK_INT(in->root_calls, 1);
    /* the worker lets the set go (a reload): dropped too */
    arc_plugin_ticks_stop(set, 0);
    CHECK(s->root_call == NULL);
    arc_pl_http_call_done(&root_who[5], &ok);
    CHECK(shared_is(s, "answers", "4"));
    CHECK_INT(in->root_calls, 0);
    arc_arena_dispose(&ra);
    arc_plugin_set_free(set);
    config_free(cfg);
}

/* A worker's pool of two instances: each instance's root calls carry it,
 * and an answer goes back to (and is counted against) that one only. */
static void test_root_http_call_pool(void)
{
    struct arc_config *cfg = config_for("tests/e2e/plugins/c_rootcall.wasm", "keys /keys 20 900");
    cfg->plugins[0].pool = 2;
    struct arc_pl_set *set = NULL;
    struct arc_config_errors errs = { 0 };
    CHECK_INT(arc_plugin_set_new(cfg, 1, &set, &errs), 0);
    arc_config_errors_dispose(&errs);
    if (!set) {
        config_free(cfg);
        return;
    }
    struct arc_pl_wslot *s = &set->pl[0].w[0];
    struct arc_tw tw;
    uint64_t now = arc_pl__now_ns() / 1000000u;
    arc_tw_init(&tw, now, 1);
    int marker;
    arc_plugin_ticks_start(set, 0, &tw, now, record_root, &marker);
    n_root_who = 0;
    arc_pl__on_tick(&s->inst[0].tick, now);
    arc_pl__on_tick(&s->inst[1].tick, now);
    CHECK_INT(n_root_who, 2);
    CHECK(root_who[0].inst == &s->inst[0] && root_who[1].inst == &s->inst[1]);
    CHECK_INT(s->inst[0].root_calls, 1);
    CHECK_INT(s->inst[1].root_calls, 1);
    struct arc_pl_call_resp bad = { .ok = false };
    arc_pl_http_call_done(&root_who[1], &bad);
    CHECK_INT(s->inst[0].root_calls, 1);
    CHECK_INT(s->inst[1].root_calls, 0);
    CHECK(shared_is(s, "answers", "1") && shared_is(s, "failures", "1"));
    arc_pl_http_call_done(&root_who[0], &bad);
    CHECK_INT(s->inst[0].root_calls, 0);
    CHECK(shared_is(s, "answers", "1"));        /* (each instance counts its own) */
    arc_plugin_ticks_stop(set, 0);
    arc_plugin_set_free(set);
    config_free(cfg);
}

static void test_not_proxy_wasm(void)
{
    /* A valid module without the ABI version export. */
    static const unsigned char plain[] = {
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,     /* magic, version */
        0x05, 0x03, 0x01, 0x00, 0x01,                       /* memory: min 1 */
        0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
    };
    char path[64];
    snprintf(path, sizeof(path), "%s/plain.wasm", cache);
    FILE *f = fopen(path, "wb");
    fwrite(plain, 1, sizeof(plain), f);
    fclose(f);
    struct arc_config *cfg = config_for(path, NULL);
    struct arc_config_errors errs = { 0 };
    struct arc_pl_set *set = NULL;
    CHECK_INT(arc_plugin_set_new(cfg, 1, &set, &errs), -1);
    CHECK(set == NULL);
    CHECK_INT(errs.n, 1);
    if (errs.n) {
        CHECK(strstr(errs.v[0].msg, "not a proxy-wasm 0.2.0/0.2.1 module") != NULL);
        CHECK_INT(errs.v[0].line, 3);
        CHECK_INT(errs.v[0].col, 5);
    }
    arc_config_errors_dispose(&errs);
    config_free(cfg);
    unlink(path);
}

/* ------------------------------------------------------------ bodies, trailers */

/* A run of examples/plugins/c/body.c with "x-body: mode" past its request
 * head stage. */
static struct arc_pl_run *body_start(struct probe *p, const char *field, const char *mode)
{
    static const uint32_t idx[1] = { 0 };
    struct arc_pl_run *r = arc_pl_run_new(p->set, 0, idx, NULL, 1, &p->arena, &p->props);
    struct arc_pl_hmap *m = arc_arena_alloc(&p->arena, sizeof(*m));
    *m = (struct arc_pl_hmap){ .arena = &p->arena };
    arc_pl_hmap_add(m, ARC_STR_LIT(":path"), ARC_STR_LIT("/"));
    arc_pl_hmap_add(m, (struct arc_str){ field, strlen(field) },
                    (struct arc_str){ mode, strlen(mode) });
    CHECK_INT(arc_pl_request_headers(r, m, false, 0), ARC_PL_CONTINUE);
    return r;
}

/* One request body chunk through mode's filter; the output as a string. */
static enum arc_pl_verdict body_once(struct probe *p, const char *mode, int dir, const char *in,
                                     char *out, size_t cap)
{
    struct arc_pl_run *r = body_start(p, dir ? "x-resp-body" : "x-body", mode);
    const char *o;
    size_t on;
    enum arc_pl_verdict v = arc_pl_body(r, dir, in, strlen(in), false, 0, &o, &on);
    snprintf(out, cap, "%.*s", v == ARC_PL_CONTINUE ? (int)on : 0, o);
    arc_pl_run_end(r);
    return v;
}

static void test_bodies(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_body.wasm");
    if (!p.set)
        return;
    char out[256];
    /* Hostile pointers and lengths from the guest get the ABI's status. */
    static const struct { const char *mode, *want; } cases[] = {
        { "rc-oob-ptr", "rc=06" },      /* get: result pointer out of memory */
        { "rc-oob-data", "rc=06" },     /* set: data out of memory */
        { "rc-mid", "rc=02" },          /* set: start inside the body, not 0 */
        { "rc-other", "rc=01" },        /* the other direction's body: NotFound */
        { "rc-overflow", "rc=02" },     /* get: start + length overflows */
        { "rc-grow", "rc=02" },         /* set: past max_body_buffer */
        { "rc-edges", "{hello>" },      /* prepend, append, replace a prefix, read past end */
        { "rc-status", "rc=00" },       /* get_buffer_status: the size offered */
        { "rc-status-oob", "rc=06" },
        { "upper", "HELLO" },
        { "count", "hello" },
    };
    for (int dir = 0; dir < 2; dir++)
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            CHECK_INT(body_once(&p, cases[i].mode, dir, "hello", out, sizeof(out)),
                      ARC_PL_CONTINUE);
            if (strcmp(out, cases[i].want) != 0)
                fprintf(stderr, "body mode %s (dir %d): got '%s'\n", cases[i].mode, dir, out);
            CHECK_STR(out, cases[i].want);
        }
    /* Buffered: held until the end, offered again with each chunk. */
    struct arc_pl_run *r = body_start(&p, "x-body", "hold");
    const char *o;
    size_t on;
    CHECK_INT(arc_pl_body(r, 0, "ab", 2, false, 0, &o, &on), ARC_PL_CONTINUE);
    CHECK_INT(on, 0);
    CHECK_INT(arc_pl_body(r, 0, "cd", 2, false, 0, &o, &on), ARC_PL_CONTINUE);
    CHECK_INT(on, 0);
    CHECK_INT(arc_pl_body(r, 0, NULL, 0, true, 0, &o, &on), ARC_PL_CONTINUE);
    CHECK_VIEW(o, on, "abcd[held 4]");
    /* after the end, bytes pass through */
    CHECK_INT(arc_pl_body(r, 0, "zz", 2, false, 0, &o, &on), ARC_PL_CONTINUE);
    CHECK_VIEW(o, on, "zz");
    arc_pl_run_end(r);
    /* Held past max_body_buffer (64 KiB here). */
    static char big[40000];
    memset(big, 'b', sizeof(big));
    r = body_start(&p, "x-body", "hold");
    CHECK_INT(arc_pl_body(r, 0, big, sizeof(big), false, 0, &o, &on), ARC_PL_CONTINUE);
    CHECK_INT(arc_pl_body(r, 0, big, sizeof(big), false, 0, &o, &on), ARC_PL_TOO_LARGE);
    arc_pl_run_end(r);
    /* A trap mid-body: the fail_closed policy, the instance rebuilt. */
    r = body_start(&p, "x-body", "trap");
    CHECK_INT(arc_pl_body(r, 0, "a", 1, false, 0, &o, &on), ARC_PL_CONTINUE);
    CHECK_INT(arc_pl_body(r, 0, "b", 1, false, 0, &o, &on), ARC_PL_FAIL);
    CHECK_INT(r->fail, ARC_PL_FAIL_TRAP);
    arc_pl_run_end(r);
    CHECK_INT(body_once(&p, "upper", 0, "again", out, sizeof(out)), ARC_PL_CONTINUE);
    CHECK_STR(out, "AGAIN");
    /* A local answer from a body callback. */
    r = body_start(&p, "x-body", "local");
    CHECK_INT(arc_pl_body(r, 0, "a", 1, false, 0, &o, &on), ARC_PL_LOCAL);
    CHECK_INT(r->local.status, 418);
    arc_pl_run_end(r);
    /* Trailers: maps 1 and 3 writable during their callbacks. */
    for (int dir = 0; dir < 2; dir++) {
        r = body_start(&p, "x-body", "count");
        struct arc_pl_hmap t = { .arena = &p.arena };
        arc_pl_hmap_add(&t, ARC_STR_LIT("grpc-status"), ARC_STR_LIT("0"));
        CHECK_INT(arc_pl_trailers(r, dir, &t, 0), ARC_PL_CONTINUE);
        const struct arc_str *v = arc_pl_hmap_get(&t, dir ? "x-resp-trailer-filter"
                                                          : "x-trailer-filter",
                                                  dir ? 21 : 16);
        CHECK(v && v->len == 2 && memcmp(v->p, "01", 2) == 0);
        CHECK(t.changed);
        arc_pl_run_end(r);
    }
    probe_close(&p);
    /* A filter without body callbacks: bytes pass untouched, no call. */
    probe_open(&p, "tests/e2e/plugins/c_probe.wasm");
    if (!p.set)
        return;
    static const uint32_t idx[1] = { 0 };
    r = arc_pl_run_new(p.set, 0, idx, NULL, 1, &p.arena, &p.props);
    CHECK_INT(r->body_mask, 0);
    const char *in = "untouched";
    CHECK_INT(arc_pl_body(r, 0, in, 9, true, 0, &o, &on), ARC_PL_CONTINUE);
    CHECK(o == in && on == 9);
    arc_pl_run_end(r);
    probe_close(&p);
}

/* A run of examples/plugins/c/bodywait.c with `field: value`, past its
 * request head (dispatching calls to record_dispatch). */
static struct arc_pl_run *wait_start(struct probe *p, const char *field, const char *value)
{
    struct arc_pl_run *r = body_start(p, field, value);
    r->notify = note;
    r->owner = r;
    r->dispatch = record_dispatch;
    return r;
}

static bool out_is(struct arc_pl_run *r, int dir, const char *want)
{
    const char *o;
    size_t on;
    arc_pl_body_out(r, dir, &o, &on);
    return on == strlen(want) && memcmp(o, want, on) == 0;
}

/* examples/plugins/c/bodywait.c: StopIteration at end_of_stream pauses the
 * run (the whole body held), resumed by proxy_continue_stream from the
 * call's answer (which still rewrites the held body) or failing at
 * pause_timeout; continue_stream in the callback itself is a Continue; a
 * trailer callback pauses the same way; trailers added in the body's last
 * call land in run->tmap. */
static void test_body_wait(void)
{
    struct probe p;
    probe_open(&p, "tests/e2e/plugins/c_bodywait.wasm");
    if (!p.set)
        return;
    const char *o;
    size_t on;
    for (int dir = 0; dir < 2; dir++) {
        const char *f = dir ? "x-resp-wait" : "x-body-wait";
        /* never continued: pause_timeout, fail_closed */
        struct arc_pl_run *r = wait_start(&p, f, "stall");
        CHECK_INT(arc_pl_body(r, dir, "abc", 3, false, 0, &o, &on), ARC_PL_CONTINUE);
        CHECK_INT(on, 0);                               /* (held) */
        CHECK_INT(arc_pl_body(r, dir, "de", 2, true, 0, &o, &on), ARC_PL_PAUSE);
        CHECK(r->paused && r->pause_stage == ARC_PL_STAGE_BODY && r->pause_resp == (dir == 1));
        CHECK_INT(arc_pl_resume(r, 0), ARC_PL_FAIL);
        CHECK_INT(r->fail, ARC_PL_FAIL_TIMEOUT);
        arc_pl_run_end(r);
        /* continued in its own callback */
        r = wait_start(&p, f, "self");
        CHECK_INT(arc_pl_body(r, dir, "abc", 3, true, 0, &o, &on), ARC_PL_CONTINUE);
        CHECK_VIEW(o, on, "abc[waited 3]");
        arc_pl_run_end(r);
        /* continued from the call's answer, which appends to the held body */
        notified = dispatched = 0;
        dispatch_rc = 0;
        r = wait_start(&p, f, "/check");
        CHECK_INT(arc_pl_body(r, dir, "ab", 2, true, 0, &o, &on), ARC_PL_PAUSE);
        CHECK_INT(dispatched, 1);
        CHECK(strcmp(got_path, "/check") == 0);
        struct arc_arena ra;
        arc_arena_init(&ra, 1024);
        struct arc_pl_hmap h = { .arena = &ra };
        arc_pl_hmap_add(&h, ARC_STR_LIT(":status"), ARC_STR_LIT("200"));
        struct arc_pl_call_resp ok = { .ok = true, .hdrs = &h, .body = ARC_STR_LIT("") };
        arc_pl_http_call_done(&got_who, &ok);
        CHECK_INT(notified, 1);
        CHECK_INT(arc_pl_resume(r, 0), ARC_PL_CONTINUE);
        CHECK(out_is(r, dir, "ab[waited 2][checked]"));
        CHECK(!r->paused);
        arc_pl_run_end(r);
        /* the answer says no: a local answer */
        r = wait_start(&p, f, "/check");
        CHECK_INT(arc_pl_body(r, dir, "ab", 2, true, 0, &o, &on), ARC_PL_PAUSE);
        h = (struct arc_pl_hmap){ .arena = &ra };
        arc_pl_hmap_add(&h, ARC_STR_LIT(":status"), ARC_STR_LIT("401"));
        arc_pl_http_call_done(&got_who, &ok);
        CHECK_INT(arc_pl_resume(r, 0), ARC_PL_LOCAL);
        CHECK_INT(r->local.status, 403);
        arc_pl_run_end(r);
        arc_arena_dispose(&ra);
        /* a trailer callback pausing; its map keeps what it added */
        r = wait_start(&p, dir ? "x-resp-trailer-wait" : "x-trailer-wait", "stall");
        struct arc_pl_hmap t = { .arena = &p.arena };
        arc_pl_hmap_add(&t, ARC_STR_LIT("x-sum"), ARC_STR_LIT("6"));
        CHECK_INT(arc_pl_trailers(r, dir, &t, 0), ARC_PL_PAUSE);
        CHECK(r->pause_stage == ARC_PL_STAGE_TRAILERS && field_is(&t, "x-trailer-wait", "1"));
        CHECK_INT(arc_pl_resume(r, 0), ARC_PL_FAIL);
        arc_pl_run_end(r);
        /* trailers added in the body's last call only */
        r = wait_start(&p, dir ? "x-resp-add-trailer" : "x-add-trailer", "v1");
        CHECK_INT(arc_pl_body(r, dir, "a", 1, false, 0, &o, &on), ARC_PL_CONTINUE);
        CHECK(r->tmap[dir] == NULL);
        CHECK_INT(arc_pl_body(r, dir, "b", 1, true, 0, &o, &on), ARC_PL_CONTINUE);
        CHECK(r->tmap[dir] && field_is(r->tmap[dir], dir ? "x-resp-added" : "x-added", "v1"));
        CHECK(r->tmap[dir ^ 1] == NULL);
        arc_pl_run_end(r);
    }
    probe_close(&p);
}

int main(void)
{
    if (!mkdtemp(cache)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_host_calls);
    RUN(test_traps_and_budget);
    RUN(test_not_proxy_wasm);
    RUN(test_pause_resume);
    RUN(test_response_pause);
    RUN(test_queues);
    RUN(test_http_call);
    RUN(test_ticks);
    RUN(test_root_http_call);
    RUN(test_root_http_call_pool);
    RUN(test_bodies);
    RUN(test_body_wait);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", cache);
    return TEST_REPORT();
}
