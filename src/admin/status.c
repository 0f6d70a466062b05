/*
 * What the admin listener shows besides the Prometheus text: the names
 * metrics rows are labelled with, and the dashboard's data (GET
 * /status.json): the running config, reload result, connections, and per
 * route and upstream the request and error rates and p50/p99 latency over
 * the last minutes, read from the same shards as /metrics. See admin_int.h.
 */
#include "admin/admin_int.h"
#include "config/snapshot.h"
#include "proxy/proxy.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void arc_admin__names(struct arc_admin_names *n, const struct arc_snapshot *s)
{
    memset(n, 0, sizeof(*n));
    size_t n_eps = 0;
    for (size_t u = 0; u < s->n_ups; u++)
        n_eps += s->ups[u].n_eps;
    n->ep_ids = calloc(n_eps ? n_eps : 1, sizeof(*n->ep_ids));
    n->ep_up = calloc(n_eps ? n_eps : 1, sizeof(*n->ep_up));
    n->ep_names = calloc(n_eps ? n_eps : 1, sizeof(*n->ep_names));
    size_t nl = s->cfg->n_listeners;
    n->listener_names = calloc(nl ? nl : 1, sizeof(*n->listener_names));
    ARC_ASSERT(n->ep_ids && n->ep_up && n->ep_names && n->listener_names);
    size_t e = 0;
    for (size_t u = 0; u < s->n_ups; u++)
        for (size_t i = 0; i < s->ups[u].n_eps; i++, e++) {
            n->ep_ids[e] = s->ups[u].eps[i].id;
            n->ep_up[e] = (uint32_t)u;
            n->ep_names[e] = s->ups[u].eps[i].text;
        }
    for (size_t l = 0; l < nl; l++)
        n->listener_names[l] = s->cfg->listeners[l].name;
    n->m = (struct arc_m_names){
        .route_ids = s->route_ids, .route_names = s->route_names, .n_routes = s->n_routes,
        .up_ids = s->upstream_ids, .up_names = s->upstream_names, .n_ups = s->n_ups,
        .ep_ids = n->ep_ids, .ep_up = n->ep_up, .ep_names = n->ep_names, .n_eps = n_eps,
        .listener_names = n->listener_names, .n_listeners = nl,
    };
}

void arc_admin__names_dispose(struct arc_admin_names *n)
{
    free(n->ep_ids);
    free(n->ep_up);
    free(n->ep_names);
    free(n->listener_names);
    memset(n, 0, sizeof(*n));
}

/* ------------------------------------------------------------ history */

/*
 * The dashboard's "last minutes": every SAMPLE_MS the control thread reads
 * the shards (as a scrape does) into a ring of SAMPLES samples, each the
 * cumulative counts per route, upstream and endpoint id at that moment.
 * Rates and quantiles over an interval are differences of two samples; the
 * JSON adds a live sample taken when it is asked for, so the newest point
 * is never stale. Rows are by stable id: a reload does not shift them.
 *
 * Row layouts: route and upstream rows RW = 2 + buckets counters
 * (requests, errors, then the duration histogram's non-cumulative
 * buckets); endpoint rows EW = 4 (requests, errors, connect errors,
 * timeouts).
 */
#define EW 4

struct sample {
    uint64_t t_ms;                  /* arc_now_ms */
    size_t n_r, n_u, n_e;           /* rows: routes (row 0: no route), upstreams, endpoints */
    uint64_t *v;                    /* [n_r * RW][n_u * RW][n_e * EW] */
};

struct arc_admin_history {
    struct sample s[ARC_ADMIN_SAMPLES];
    size_t head, n;                 /* oldest sample, samples held */
    uint64_t next_ms;
    uint64_t start_ms;              /* when counting began (every counter was 0) */
    bool wrapped;                   /* samples were dropped: the oldest is not the start */
};

static size_t rw(void)
{
    return 2 + arc_metrics_conf()->n_dur + 1;
}

static void shards_of(const struct arc_control *ctl, struct arc_metrics_shard **sh)
{
    for (size_t i = 0; i < ctl->n_workers; i++)
        sh[i] = arc_worker_metrics(ctl->workers[i]);
}

/* Requests, errors and duration buckets of one route or upstream row. */
static void take_row(struct arc_metrics_shard *const *sh, size_t n, bool up, uint32_t id,
                     const struct arc_upstream_rt *u, uint64_t *row)
{
    struct arc_m_hsum h;
    arc_m_hist_read(sh, n, up, id, ARC_MH_DURATION, &h);
    if (!up) {
        uint64_t cls[5];
        arc_m_route_classes(sh, n, id, cls);
        row[0] = cls[0] + cls[1] + cls[2] + cls[3] + cls[4];
        row[1] = cls[4];
    } else {
        /* every exchange that reached the upstream is in its duration
         * histogram; without histograms, the requests sent */
        row[0] = arc_metrics_conf()->histograms ? h.count
                                                : arc_m_read(sh, n, ARC_MTAB_UPS, id, ARC_MU_REQUESTS);
        row[1] = arc_m_read(sh, n, ARC_MTAB_UPS, id, ARC_MU_NO_ENDPOINT);
        for (size_t e = 0; u && e < u->n_eps; e++)
            for (size_t k = ARC_ERR_UPSTREAM_CONNECT; k <= ARC_ERR_NO_ENDPOINT; k++)
                row[1] += arc_m_read(sh, n, ARC_MTAB_EPS, u->eps[e].id, ARC_ME_ERROR + k);
    }
    for (size_t b = 0; b <= h.n_bounds; b++)
        row[2 + b] = h.buckets[b];
}

static void take(const struct arc_control *ctl, struct sample *out, uint64_t now)
{
    const struct arc_snapshot *s = ctl->snap;
    struct arc_metrics_shard *sh[ctl->n_workers ? ctl->n_workers : 1];
    shards_of(ctl, sh);
    size_t w = rw();
    out->t_ms = now;
    out->n_r = s->n_route_ids + 1;
    out->n_u = s->n_up_ids;
    out->n_e = s->n_ep_ids;
    free(out->v);
    out->v = calloc(out->n_r * w + out->n_u * w + out->n_e * EW + 1, sizeof(uint64_t));
    ARC_ASSERT(out->v != NULL);
    take_row(sh, ctl->n_workers, false, ARC_M_NO_ROUTE, NULL, out->v);
    for (size_t r = 0; r < s->n_routes; r++)
        take_row(sh, ctl->n_workers, false, s->routes[r].id, NULL,
                 out->v + (s->routes[r].id + 1) * w);
    uint64_t *ub = out->v + out->n_r * w, *eb = ub + out->n_u * w;
    for (size_t u = 0; u < s->n_ups; u++) {
        const struct arc_upstream_rt *up = &s->ups[u];
        take_row(sh, ctl->n_workers, true, up->id, up, ub + up->id * w);
        for (size_t e = 0; e < up->n_eps; e++) {
            uint32_t id = up->eps[e].id;
            uint64_t *row = eb + id * EW;
            row[0] = arc_m_read(sh, ctl->n_workers, ARC_MTAB_EPS, id, ARC_ME_REQUESTS);
            for (size_t k = ARC_ERR_UPSTREAM_CONNECT; k <= ARC_ERR_NO_ENDPOINT; k++)
                row[1] += arc_m_read(sh, ctl->n_workers, ARC_MTAB_EPS, id, ARC_ME_ERROR + k);
            row[2] = arc_m_read(sh, ctl->n_workers, ARC_MTAB_EPS, id, ARC_ME_CONNECT_ERRORS);
            for (size_t p = 0; p < ARC_MT__COUNT; p++)
                row[3] += arc_m_read(sh, ctl->n_workers, ARC_MTAB_EPS, id, ARC_ME_TIMEOUT + p);
        }
    }
}

struct arc_admin_history *arc_admin__history_new(void)
{
    struct arc_admin_history *h = calloc(1, sizeof(*h));
    ARC_ASSERT(h != NULL);
    h->start_ms = arc_now_ms();
    return h;
}

void arc_admin__history_free(struct arc_admin_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < ARC_ADMIN_SAMPLES; i++)
        free(h->s[i].v);
    free(h);
}

void arc_admin__history_tick(struct arc_admin_history *h, const struct arc_control *ctl,
                             uint64_t now)
{
    if (now < h->next_ms || ctl->n_workers == 0)
        return;
    h->next_ms = now + ARC_ADMIN_SAMPLE_MS;
    size_t slot = (h->head + h->n) % ARC_ADMIN_SAMPLES;
    if (h->n == ARC_ADMIN_SAMPLES) {
        h->head = (h->head + 1) % ARC_ADMIN_SAMPLES;
        h->wrapped = true;
    } else
        h->n++;
    take(ctl, &h->s[slot], now);
}

/* Row `id` of kind k (0 route, 1 upstream, 2 endpoint) in sample s, NULL if
 * the sample predates that id. Route ids: ARC_M_NO_ROUTE is row 0. */
static const uint64_t *row_of(const struct sample *s, int k, uint32_t id)
{
    size_t w = rw();
    if (k == 0) {
        size_t r = id == ARC_M_NO_ROUTE ? 0 : (size_t)id + 1;
        return r < s->n_r ? s->v + r * w : NULL;
    }
    if (k == 1)
        return id < s->n_u ? s->v + s->n_r * w + id * w : NULL;
    return id < s->n_e ? s->v + s->n_r * w + s->n_u * w + (size_t)id * EW : NULL;
}

static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(round(v * 1000) / 1000) : json_null();
}

/* Quantile q in ms of the duration buckets between rows a and b. */
static double q_ms(const uint64_t *a, const uint64_t *b, double q)
{
    const struct arc_m_conf *c = arc_metrics_conf();
    if (!c->histograms)
        return NAN;
    struct arc_m_hsum h = { .n_bounds = c->n_dur, .bounds = c->dur_ns };
    for (size_t i = 0; i <= c->n_dur; i++) {
        h.buckets[i] = b[2 + i] - (a ? a[2 + i] : 0);
        h.count += h.buckets[i];
    }
    return arc_m_quantile(&h, q) / 1e6;
}

/* {total, errors, rate, error_rate, p50, p99 (window), points: [[t, rate,
 * error rate, p50, p99], ...]} of one route or upstream. */
static json_t *row_json(const struct arc_admin_history *h, const struct sample *live, int k,
                        uint32_t id)
{
    const uint64_t *now = row_of(live, k, id);
    json_t *o = json_object(), *pts = json_array();
    json_object_set_new(o, "total", json_integer((json_int_t)now[0]));
    json_object_set_new(o, "errors", json_integer((json_int_t)now[1]));
    const struct sample *prev = NULL, *first = NULL;
    for (size_t i = 0; i <= h->n; i++) {
        const struct sample *s = i < h->n ? &h->s[(h->head + i) % ARC_ADMIN_SAMPLES] : live;
        if (!first)
            first = s;
        if (prev && s->t_ms > prev->t_ms) {
            const uint64_t *a = row_of(prev, k, id), *b = row_of(s, k, id);
            if (b) {
                double dt = (double)(s->t_ms - prev->t_ms) / 1000.0;
                json_array_append_new(pts, json_pack("[I,o,o,o,o]", (json_int_t)s->t_ms,
                    jnum((double)(b[0] - (a ? a[0] : 0)) / dt),
                    jnum((double)(b[1] - (a ? a[1] : 0)) / dt),
                    jnum(q_ms(a, b, 0.5)), jnum(q_ms(a, b, 0.99))));
            }
        }
        prev = s;
    }
    /* The window: from the oldest sample to now, or everything since
     * start while Arc is younger than the window (every counter was 0
     * then, before the first sample). */
    const uint64_t *a = h->wrapped ? row_of(first, k, id) : NULL;
    uint64_t t0 = h->wrapped ? first->t_ms : h->start_ms;
    double dt = live->t_ms > t0 ? (double)(live->t_ms - t0) / 1000.0 : NAN;
    json_object_set_new(o, "rate", jnum((double)(now[0] - (a ? a[0] : 0)) / dt));
    json_object_set_new(o, "error_rate", jnum((double)(now[1] - (a ? a[1] : 0)) / dt));
    json_object_set_new(o, "p50", jnum(q_ms(a, now, 0.5)));
    json_object_set_new(o, "p99", jnum(q_ms(a, now, 0.99)));
    json_object_set_new(o, "points", pts);
    return o;
}

/* The sample endpoint states are judged from: the newest one at least
 * STATE_MS old, else the oldest (NULL: none yet, judge everything). */
#define STATE_MS 15000
static const struct sample *state_ref(const struct arc_admin_history *h, uint64_t now)
{
    const struct sample *best = h->n ? &h->s[h->head] : NULL;
    for (size_t i = 0; i < h->n; i++) {
        const struct sample *s = &h->s[(h->head + i) % ARC_ADMIN_SAMPLES];
        if (s->t_ms + STATE_MS <= now)
            best = s;
    }
    return best;
}

static json_t *name_json(const char *s)
{
    json_t *j = json_string(s ? s : "");
    return j ? j : json_string("?");
}

char *arc_admin__status_json(struct arc_admin_history *h, const struct arc_control *ctl,
                             uint64_t now)
{
    const struct arc_snapshot *s = ctl->snap;
    struct sample live = { 0 };
    take(ctl, &live, now);
    struct arc_metrics_shard *sh[ctl->n_workers ? ctl->n_workers : 1];
    shards_of(ctl, sh);
    size_t n = ctl->n_workers;
    json_t *doc = json_object();
    json_object_set_new(doc, "time_ms", json_integer((json_int_t)now));
    json_object_set_new(doc, "window_s", json_integer(ARC_ADMIN_SAMPLES * ARC_ADMIN_SAMPLE_MS / 1000));
    json_object_set_new(doc, "histograms", json_boolean(arc_metrics_conf()->histograms));
    json_object_set_new(doc, "generation", json_integer((json_int_t)s->generation));
    json_object_set_new(doc, "fingerprint", json_string(s->cfg->fingerprint));
    json_object_set_new(doc, "workers", json_integer((json_int_t)n));
    json_t *rl = json_object();
    json_object_set_new(rl, "result", json_string(arc_admin__result_name(ctl->last.result)));
    json_object_set_new(rl, "trigger", name_json(ctl->last.trigger));
    json_object_set_new(rl, "message", name_json(ctl->last.message));
    json_object_set_new(rl, "at", json_integer((json_int_t)ctl->last.at));
    json_object_set_new(rl, "ok", json_integer((json_int_t)ctl->reloads[ARC_RELOAD_OK]));
    json_object_set_new(rl, "error", json_integer((json_int_t)ctl->reloads[ARC_RELOAD_ERROR]));
    json_object_set_new(rl, "refused", json_integer((json_int_t)ctl->reloads[ARC_RELOAD_REFUSED]));
    json_object_set_new(doc, "reload", rl);
    uint64_t act = 0, ex = 0;
    json_t *ls = json_array();
    for (size_t l = 0; l < s->cfg->n_listeners; l++) {
        uint64_t a = arc_m_read(sh, n, ARC_MTAB_LISTENERS, l, ARC_ML_ACCEPTED);
        uint64_t c = arc_m_read(sh, n, ARC_MTAB_LISTENERS, l, ARC_ML_CLOSED);
        uint64_t v = a >= c ? a - c : 0;
        act += v;
        json_array_append_new(ls, json_pack("{s:o,s:I,s:I}", "name",
                                            name_json(s->cfg->listeners[l].name), "active",
                                            (json_int_t)v, "accepted", (json_int_t)a));
    }
    for (size_t i = 0; i < n; i++)
        ex += arc_m_get(&sh[i]->exchanges);
    json_object_set_new(doc, "connections_active", json_integer((json_int_t)act));
    json_object_set_new(doc, "exchanges_active", json_integer((json_int_t)ex));
    json_object_set_new(doc, "listeners", ls);
    json_t *routes = json_array();
    for (size_t r = 0; r <= s->n_routes; r++) {
        uint32_t id = r < s->n_routes ? s->routes[r].id : ARC_M_NO_ROUTE;
        json_t *o = row_json(h, &live, 0, id);
        if (r == s->n_routes && json_integer_value(json_object_get(o, "total")) == 0) {
            json_decref(o);
            continue;
        }
        json_object_set_new(o, "name", name_json(r < s->n_routes ? s->route_names[r] : ""));
        json_array_append_new(routes, o);
    }
    json_object_set_new(doc, "routes", routes);
    json_t *ups = json_array();
    for (size_t u = 0; u < s->n_ups; u++) {
        const struct arc_upstream_rt *up = &s->ups[u];
        json_t *o = row_json(h, &live, 1, up->id);
        json_object_set_new(o, "name", name_json(s->upstream_names[u]));
        uint64_t op = arc_m_read(sh, n, ARC_MTAB_UPS, up->id, ARC_MU_POOL_OPEN);
        uint64_t idle = arc_m_read(sh, n, ARC_MTAB_UPS, up->id, ARC_MU_POOL_IDLE);
        json_object_set_new(o, "pool", json_pack("{s:I,s:I,s:I}", "open", (json_int_t)op, "idle",
                                                 (json_int_t)(idle < op ? idle : op), "busy",
                                                 (json_int_t)(op > idle ? op - idle : 0)));
        json_t *eps = json_array();
        const struct sample *ref = state_ref(h, now);
        for (size_t e = 0; e < up->n_eps; e++) {
            const uint64_t *v = row_of(&live, 2, up->eps[e].id);
            /* Over the last STATE_MS or so: "failing" when there were
             * errors (connect errors included) and at least as many as
             * requests, "errors" when some requests failed, "ok" when
             * they went through, "idle" without traffic. (What it has seen
             * from traffic; health checks are not part of it.) */
            const uint64_t *p = ref ? row_of(ref, 2, up->eps[e].id) : NULL;
            uint64_t dr = v[0] - (p ? p[0] : 0), de = v[1] - (p ? p[1] : 0) + v[2] - (p ? p[2] : 0);
            const char *state = de && de >= dr ? "failing" : de ? "errors" : dr ? "ok" : "idle";
            json_array_append_new(eps, json_pack("{s:o,s:I,s:I,s:I,s:I,s:s}", "address",
                                                 name_json(up->eps[e].text), "requests",
                                                 (json_int_t)v[0], "errors", (json_int_t)v[1],
                                                 "connect_errors", (json_int_t)v[2], "timeouts",
                                                 (json_int_t)v[3], "state", state));
        }
        json_object_set_new(o, "endpoints", eps);
        json_array_append_new(ups, o);
    }
    json_object_set_new(doc, "upstreams", ups);
    free(live.v);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    ARC_ASSERT(text != NULL);
    return text;
}
