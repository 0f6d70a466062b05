/*
 * Metrics shards and Prometheus exposition. See metrics.h.
 *
 * Row layouts (columns of one row; widths fixed by the node-wide layout):
 *
 *   route row:    [0, S)            one counter per (code, method, protocol)
 *                                   series of the node-wide key table
 *                 [S, S + 100)      code="other": [class 1..5][method][protocol]
 *                 [.., + H)         histograms (when enabled)
 *   upstream row: [0, ARC_MU__COUNT) counters and pool gauges, then histograms
 *   histogram h:  hoff[h] + [0, nb]  non-cumulative counts, bucket nb = +Inf
 *                 hoff[h] + nb + 1   sum of the observed values (ns or bytes)
 *
 * Cumulative buckets and _count are made at scrape time from the
 * non-cumulative counts, so le="+Inf" always equals _count and buckets never
 * decrease, whatever moment a scrape catches a worker at.
 *
 * Series keys: which (code, method, protocol) column S slots of a route
 * hold is decided node-wide (every worker's column i means the same
 * series), by a compare-and-swap the first time a route sees a series:
 * at most S times per route in the life of the process, never per request.
 */
#include "obs/metrics.h"
#include "config/ident.h"
#include "core/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OTHER (5 * ARC_MM__COUNT * ARC_MP__COUNT)

static struct {
    struct arc_m_conf c;
    bool set, fixed;
    size_t hoff[ARC_MH__COUNT], hlen;
} L;

static bool is_size(enum arc_m_hist h)
{
    return h == ARC_MH_REQ_SIZE || h == ARC_MH_RESP_SIZE;
}

void arc_metrics_conf_default(struct arc_m_conf *c)
{
    /* Seconds: 0.25ms .. 30s; bytes: 64 B .. 64 MiB, powers of four. */
    static const double dur_ms[] = { 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
                                     1000, 2500, 5000, 10000, 30000 };
    memset(c, 0, sizeof(*c));
    c->histograms = true;
    c->n_dur = sizeof(dur_ms) / sizeof(dur_ms[0]);
    for (uint32_t i = 0; i < c->n_dur; i++)
        c->dur_ns[i] = (uint64_t)(dur_ms[i] * 1e6);
    c->n_size = 0;
    for (uint64_t b = 64; b <= 64ull << 20; b *= 4)
        c->size[c->n_size++] = b;
    c->status_series = 64;
}

static void layout(void)
{
    size_t off = 0;
    for (int h = 0; h < ARC_MH__COUNT; h++) {
        L.hoff[h] = off;
        off += (is_size(h) ? L.c.n_size : L.c.n_dur) + 2;
    }
    L.hlen = L.c.histograms ? off : 0;
}

int arc_metrics_setup(const struct arc_m_conf *c)
{
    if (L.fixed && memcmp(&L.c, c, sizeof(*c)) != 0)
        return -1;
    if (c->n_dur > ARC_M_MAX_BUCKETS || c->n_size > ARC_M_MAX_BUCKETS || c->status_series == 0)
        return -1;
    L.c = *c;
    L.set = true;
    layout();
    return 0;
}

const struct arc_m_conf *arc_metrics_conf(void)
{
    if (!L.set) {
        struct arc_m_conf d;
        arc_metrics_conf_default(&d);
        arc_metrics_setup(&d);
    }
    return &L.c;
}

static size_t route_width(void)
{
    return L.c.status_series + N_OTHER + L.hlen;
}

/* ------------------------------------------------------------ series keys */

#define KEY_CHUNK 64
#define KEY_ROWS ((size_t)ARC_IDENT_MAX + 1)
static _Atomic(_Atomic uint32_t *) key_chunks[(KEY_ROWS + KEY_CHUNK - 1) / KEY_CHUNK];

static int keys_fit(size_t rows)
{
    for (size_t c = 0; c * KEY_CHUNK < rows && c < sizeof(key_chunks) / sizeof(key_chunks[0]); c++) {
        if (atomic_load_explicit(&key_chunks[c], memory_order_acquire))
            continue;
        _Atomic uint32_t *p = calloc((size_t)KEY_CHUNK * L.c.status_series, sizeof(*p));
        if (!p)
            return -1;
        _Atomic uint32_t *none = NULL;
        if (!atomic_compare_exchange_strong(&key_chunks[c], &none, p))
            free(p);                    /* another worker was first */
    }
    return 0;
}

static _Atomic uint32_t *keys_of(size_t row)
{
    if (row >= KEY_ROWS)
        return NULL;
    _Atomic uint32_t *c = atomic_load_explicit(&key_chunks[row / KEY_CHUNK], memory_order_acquire);
    return c ? c + (row % KEY_CHUNK) * L.c.status_series : NULL;
}

static uint32_t series_key(int status, unsigned method, unsigned proto)
{
    uint32_t code = status >= 100 && status <= 999 ? (uint32_t)status : 999;
    return code << 5 | method << 1 | proto;
}

static size_t other_col(int status, unsigned method, unsigned proto)
{
    return L.c.status_series +
           ((size_t)(arc_m_class(status) - 1) * ARC_MM__COUNT + method) * ARC_MP__COUNT + proto;
}

static size_t series_col(size_t row, int status, unsigned method, unsigned proto)
{
    _Atomic uint32_t *slots = keys_of(row);
    uint32_t key = series_key(status, method, proto);
    if (slots)
        for (size_t i = 0; i < L.c.status_series; i++) {
            uint32_t k = atomic_load_explicit(&slots[i], memory_order_relaxed);
            if (k == key)
                return i;
            if (k == 0) {
                uint32_t exp = 0;
                if (atomic_compare_exchange_strong(&slots[i], &exp, key) || exp == key)
                    return i;
            }
        }
    return other_col(status, method, proto);
}

/* ------------------------------------------------------------ tables */

int arc_metrics_shard_init(struct arc_metrics_shard *m)
{
    arc_metrics_conf();
    L.fixed = true;
    memset(m, 0, sizeof(*m));
    m->listeners.width = ARC_ML__COUNT;
    m->routes.width = route_width();
    m->ups.width = ARC_MU__COUNT + L.hlen;
    m->eps.width = ARC_ME__COUNT;
    m->limits.width = ARC_MRL__COUNT;
    return 0;
}

/* Rows go on whole cache lines of their own: a worker's array never shares
 * a line with memory another thread writes. */
static arc_counter *rows_alloc(size_t n_counters)
{
    size_t bytes = (n_counters * sizeof(arc_counter) + 63) & ~(size_t)63;
    arc_counter *v = aligned_alloc(64, bytes ? bytes : 64);
    if (v)
        memset(v, 0, bytes ? bytes : 64);
    return v;
}

static int table_fit(struct arc_m_table *t, size_t n)
{
    size_t have = atomic_load_explicit(&t->n, memory_order_relaxed);
    if (n <= have)
        return 0;
    arc_counter *old = atomic_load_explicit(&t->v, memory_order_relaxed);
    arc_counter **retired = realloc(t->retired, (t->n_retired + 1) * sizeof(*retired));
    if (!retired)
        return -1;
    t->retired = retired;
    arc_counter *v = rows_alloc(n * t->width);
    if (!v)
        return -1;
    for (size_t i = 0; i < have * t->width; i++)
        atomic_init(&v[i], arc_m_get(&old[i]));
    if (old)
        t->retired[t->n_retired++] = old;
    atomic_store_explicit(&t->v, v, memory_order_release);
    atomic_store_explicit(&t->n, n, memory_order_release);
    return 0;
}

int arc_metrics_shard_fit(struct arc_metrics_shard *m, size_t n_routes, size_t n_ups,
                          size_t n_eps, size_t n_listeners)
{
    if (keys_fit(n_routes + 1) < 0 || table_fit(&m->routes, n_routes + 1) < 0 ||
        table_fit(&m->ups, n_ups) < 0 || table_fit(&m->eps, n_eps) < 0 ||
        table_fit(&m->listeners, n_listeners) < 0 || table_fit(&m->limits, n_routes) < 0)
        return -1;
    return 0;
}

static void table_dispose(struct arc_m_table *t)
{
    for (size_t i = 0; i < t->n_retired; i++)
        free(t->retired[i]);
    free(t->retired);
    free(atomic_load_explicit(&t->v, memory_order_relaxed));
}

void arc_metrics_shard_dispose(struct arc_metrics_shard *m)
{
    table_dispose(&m->listeners);
    table_dispose(&m->routes);
    table_dispose(&m->ups);
    table_dispose(&m->limits);
    table_dispose(&m->eps);
    memset(m, 0, sizeof(*m));
}

/* A reader's view of row `id`, column `col` (0 when the shard has no such
 * row yet): row count first, then the array it was published with. */
static uint64_t table_get(const struct arc_m_table *t, size_t id, size_t col)
{
    size_t n = atomic_load_explicit(&((struct arc_m_table *)t)->n, memory_order_acquire);
    if (id >= n)
        return 0;
    arc_counter *v = atomic_load_explicit(&((struct arc_m_table *)t)->v, memory_order_acquire);
    return arc_m_get(&v[id * t->width + col]);
}

static const struct arc_m_table *tab(const struct arc_metrics_shard *m, enum arc_m_tab t)
{
    switch (t) {
    case ARC_MTAB_LISTENERS: return &m->listeners;
    case ARC_MTAB_ROUTES: return &m->routes;
    case ARC_MTAB_UPS: return &m->ups;
    case ARC_MTAB_EPS: return &m->eps;
    }
    return &m->eps;
}

uint64_t arc_m_read(struct arc_metrics_shard *const *sh, size_t n, enum arc_m_tab t,
                    size_t id, size_t col)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += table_get(tab(sh[i], t), id, col);
    return s;
}

/* ------------------------------------------------------------ hot path */

static inline void observe(arc_counter *blk, enum arc_m_hist h, uint64_t v)
{
    if (v == ARC_M_NOT_TIMED)
        return;
    const uint64_t *b = is_size(h) ? L.c.size : L.c.dur_ns;
    size_t nb = is_size(h) ? L.c.n_size : L.c.n_dur, i = 0;
    while (i < nb && v > b[i])
        i++;
    arc_counter *base = blk + L.hoff[h];
    arc_m_add(&base[i], 1);
    arc_m_add(&base[nb + 1], v);
}

static void observe_all(arc_counter *blk, const struct arc_m_exchange *x)
{
    observe(blk, ARC_MH_DURATION, x->dur_ns);
    observe(blk, ARC_MH_CONNECT, x->connect_ns);
    observe(blk, ARC_MH_TTFB, x->ttfb_ns);
    observe(blk, ARC_MH_UPSTREAM, x->upstream_ns);
    observe(blk, ARC_MH_REQ_SIZE, x->req_bytes);
    observe(blk, ARC_MH_RESP_SIZE, x->resp_bytes);
}

void arc_m_exchange(struct arc_metrics_shard *m, const struct arc_m_exchange *x)
{
    size_t row = x->route_id == ARC_M_NO_ROUTE ? 0 : (size_t)x->route_id + 1;
    arc_counter *r = arc_m_cell(&m->routes, row, 0);
    arc_m_add(&r[series_col(row, x->status, x->method, x->proto)], 1);
    if (L.hlen)
        observe_all(r + L.c.status_series + N_OTHER, x);
    if (x->up_id == ARC_M_NONE)
        return;
    if (L.hlen)
        observe_all(arc_m_up(m, x->up_id, ARC_MU__COUNT), x);
    if (x->err > ARC_ERR_UPSTREAM_CONNECT && x->err <= ARC_ERR_NO_ENDPOINT + 1) {
        if (x->ep_id != ARC_M_NONE)
            arc_m_add(arc_m_ep(m, x->ep_id, ARC_ME_ERROR + x->err - 1u), 1);
        else if (x->err == ARC_ERR_NO_ENDPOINT + 1)
            arc_m_add(arc_m_up(m, x->up_id, ARC_MU_NO_ENDPOINT), 1);
    }
}

/* ------------------------------------------------------------ readers */

void arc_m_hist_read(struct arc_metrics_shard *const *sh, size_t n, bool upstream,
                     uint32_t id, enum arc_m_hist h, struct arc_m_hsum *out)
{
    memset(out, 0, sizeof(*out));
    out->n_bounds = is_size(h) ? L.c.n_size : L.c.n_dur;
    out->bounds = is_size(h) ? L.c.size : L.c.dur_ns;
    if (!L.hlen)
        return;
    enum arc_m_tab t = upstream ? ARC_MTAB_UPS : ARC_MTAB_ROUTES;
    size_t row = upstream ? id : id == ARC_M_NO_ROUTE ? 0 : (size_t)id + 1;
    size_t base = (upstream ? ARC_MU__COUNT : L.c.status_series + N_OTHER) + L.hoff[h];
    for (size_t b = 0; b <= out->n_bounds; b++) {
        out->buckets[b] = arc_m_read(sh, n, t, row, base + b);
        out->count += out->buckets[b];
    }
    out->sum = arc_m_read(sh, n, t, row, base + out->n_bounds + 1);
}

void arc_m_route_classes(struct arc_metrics_shard *const *sh, size_t n, uint32_t route_id,
                         uint64_t out[5])
{
    size_t row = route_id == ARC_M_NO_ROUTE ? 0 : (size_t)route_id + 1;
    _Atomic uint32_t *slots = keys_of(row);
    memset(out, 0, 5 * sizeof(out[0]));
    for (size_t i = 0; slots && i < L.c.status_series; i++) {
        uint32_t k = atomic_load_explicit(&slots[i], memory_order_relaxed);
        if (k)
            out[arc_m_class((int)(k >> 5)) - 1] += arc_m_read(sh, n, ARC_MTAB_ROUTES, row, i);
    }
    for (size_t c = 0; c < N_OTHER; c++)
        out[c / (ARC_MM__COUNT * ARC_MP__COUNT)] +=
            arc_m_read(sh, n, ARC_MTAB_ROUTES, row, L.c.status_series + c);
}

double arc_m_quantile(const struct arc_m_hsum *h, double q)
{
    if (h->count == 0)
        return NAN;
    double rank = q * (double)h->count, cum = 0;
    for (size_t b = 0; b <= h->n_bounds; b++) {
        double c = (double)h->buckets[b];
        if (cum + c >= rank && c > 0) {
            /* The +Inf bucket has no upper bound: Prometheus answers the
             * highest finite bound. */
            if (b == h->n_bounds)
                return h->n_bounds ? (double)h->bounds[h->n_bounds - 1] : NAN;
            double lo = b ? (double)h->bounds[b - 1] : 0, hi = (double)h->bounds[b];
            return lo + (hi - lo) * (rank - cum) / c;
        }
        cum += c;
    }
    return h->n_bounds ? (double)h->bounds[h->n_bounds - 1] : NAN;
}

/* ------------------------------------------------------------ exposition */

static const char *const err_names[ARC_ERR__COUNT] = {
    [ARC_ERR_BAD_REQUEST] = "bad_request",
    [ARC_ERR_URI_TOO_LONG] = "uri_too_long",
    [ARC_ERR_HEADERS_TOO_LARGE] = "headers_too_large",
    [ARC_ERR_NOT_IMPLEMENTED] = "not_implemented",
    [ARC_ERR_BAD_VERSION] = "bad_version",
    [ARC_ERR_NOT_FOUND] = "not_found",
    [ARC_ERR_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [ARC_ERR_BODY_TOO_LARGE] = "body_too_large",
    [ARC_ERR_ROUTE_TIMEOUT] = "route_timeout",
    [ARC_ERR_PLUGIN_TRAP] = "plugin_trap",
    [ARC_ERR_PLUGIN_BUDGET] = "plugin_budget",
    [ARC_ERR_PLUGIN_UNAVAILABLE] = "plugin_unavailable",
    [ARC_ERR_PLUGIN_TIMEOUT] = "plugin_timeout",
    [ARC_ERR_CLIENT_TIMEOUT] = "client_timeout",
    [ARC_ERR_UPSTREAM_CONNECT] = "upstream_connect",
    [ARC_ERR_UPSTREAM_TIMEOUT] = "upstream_timeout",
    [ARC_ERR_UPSTREAM_BAD] = "upstream_bad_response",
    [ARC_ERR_UPSTREAM_RESET] = "upstream_reset",
    [ARC_ERR_NO_ENDPOINT] = "no_endpoint",
    [ARC_ERR_CLIENT_ABORT] = "client_abort",
};

const char *arc_m_err_name(enum arc_err_kind k)
{
    return (unsigned)k < ARC_ERR__COUNT ? err_names[k] : "unknown";
}

static const char *const method_names[ARC_MM__COUNT] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER",
};
static const char *const proto_names[ARC_MP__COUNT] = { "h1", "h2" };
static const char *const class_names[5] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
static const char *const phase_names[ARC_MT__COUNT] = { "connect", "write", "ttfb", "read" };

/* Label values come from config names, which the schema restricts, but a
 * backslash, quote or newline must still never break the format. */
static void label(struct arc_sbuf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            arc_sbuf_append(o, "\\", 1);
        if (*s == '\n') {
            arc_sbuf_append(o, "\\n", 2);
            continue;
        }
        arc_sbuf_append(o, s, 1);
    }
}

static void family(struct arc_sbuf *o, const char *name, const char *type, const char *help)
{
    arc_sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* `name{k="v"` (the caller adds more labels and closes the brace). */
static void series(struct arc_sbuf *o, const char *name, const char *k, const char *v)
{
    arc_sbuf_printf(o, "%s{%s=\"", name, k);
    label(o, v);
    arc_sbuf_append(o, "\"", 1);
}

#define SUM(expr) ({ uint64_t _s = 0; for (size_t _i = 0; _i < n; _i++) { \
    const struct arc_metrics_shard *m = sh[_i]; _s += arc_m_get(&(expr)); } _s; })

static void render_listeners(struct arc_sbuf *o, struct arc_metrics_shard *const *sh, size_t n,
                             const struct arc_m_names *nm)
{
    static const struct { const char *name, *type, *help; int col; } f[] = {
        { "arc_connections_accepted_total", "counter", "Client connections accepted.",
          ARC_ML_ACCEPTED },
        { "arc_connections_closed_total", "counter", "Client connections closed.", ARC_ML_CLOSED },
        { "arc_connections_refused_total", "counter", "Client connections answered 503 and "
          "closed because node.max_connections was reached.", ARC_ML_REFUSED },
        { "arc_connections_active", "gauge", "Client connections open now.", -1 },
        { "arc_bytes_in_total", "counter", "Bytes received from clients (on the wire, TLS "
          "records included).", ARC_ML_BYTES_IN },
        { "arc_bytes_out_total", "counter", "Bytes sent to clients (on the wire).",
          ARC_ML_BYTES_OUT },
    };
    for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
        family(o, f[k].name, f[k].type, f[k].help);
        for (size_t l = 0; l < nm->n_listeners; l++) {
            uint64_t v;
            if (f[k].col >= 0) {
                v = arc_m_read(sh, n, ARC_MTAB_LISTENERS, l, (size_t)f[k].col);
            } else {
                uint64_t a = arc_m_read(sh, n, ARC_MTAB_LISTENERS, l, ARC_ML_ACCEPTED);
                uint64_t c = arc_m_read(sh, n, ARC_MTAB_LISTENERS, l, ARC_ML_CLOSED);
                v = a >= c ? a - c : 0;
            }
            series(o, f[k].name, "listener", nm->listener_names[l]);
            arc_sbuf_printf(o, "} %llu\n", (unsigned long long)v);
        }
    }
}

static void render_requests(struct arc_sbuf *o, struct arc_metrics_shard *const *sh, size_t n,
                            const struct arc_m_names *nm)
{
    family(o, "arc_requests_total", "counter",
           "Exchanges ended, by route, method, status code (exact; other past the "
           "per-route series bound), status class and client protocol. Aborted exchanges "
           "without an answer count as 499.");
    for (size_t r = 0; r <= nm->n_routes; r++) {
        const char *rname = r < nm->n_routes ? nm->route_names[r] : "";
        size_t row = r < nm->n_routes ? (size_t)nm->route_ids[r] + 1 : 0;
        _Atomic uint32_t *slots = keys_of(row);
        for (size_t i = 0; slots && i < L.c.status_series; i++) {
            uint32_t k = atomic_load_explicit(&slots[i], memory_order_relaxed);
            uint64_t v = k ? arc_m_read(sh, n, ARC_MTAB_ROUTES, row, i) : 0;
            if (!v)
                continue;
            int code = (int)(k >> 5);
            series(o, "arc_requests_total", "route", rname);
            arc_sbuf_printf(o, ",method=\"%s\",code=\"%d\",class=\"%s\",protocol=\"%s\"} %llu\n",
                            method_names[(k >> 1) & 15], code, class_names[arc_m_class(code) - 1],
                            proto_names[k & 1], (unsigned long long)v);
        }
        for (size_t c = 0; c < N_OTHER; c++) {
            uint64_t v = arc_m_read(sh, n, ARC_MTAB_ROUTES, row, L.c.status_series + c);
            if (!v)
                continue;
            size_t cls = c / (ARC_MM__COUNT * ARC_MP__COUNT);
            size_t meth = c / ARC_MP__COUNT % ARC_MM__COUNT;
            series(o, "arc_requests_total", "route", rname);
            arc_sbuf_printf(o, ",method=\"%s\",code=\"other\",class=\"%s\",protocol=\"%s\"} %llu\n",
                            method_names[meth], class_names[cls], proto_names[c % ARC_MP__COUNT],
                            (unsigned long long)v);
        }
    }
}

static const struct {
    const char *route, *up, *help;
} hist_names[ARC_MH__COUNT] = {
    [ARC_MH_DURATION] = { "arc_route_request_duration_seconds",
                          "arc_upstream_request_duration_seconds",
                          "Whole exchange, from its request head parsed to its end." },
    [ARC_MH_CONNECT] = { "arc_route_upstream_connect_seconds", "arc_upstream_connect_seconds",
                         "Upstream connection set-up (TCP, and TLS when used) for attempts "
                         "that opened a new connection." },
    [ARC_MH_TTFB] = { "arc_route_upstream_ttfb_seconds", "arc_upstream_ttfb_seconds",
                      "From the upstream attempt's start (connect included) to the response "
                      "head." },
    [ARC_MH_UPSTREAM] = { "arc_route_upstream_response_seconds", "arc_upstream_response_seconds",
                          "From the upstream attempt's start to the exchange's end, for "
                          "exchanges that got a response head." },
    [ARC_MH_REQ_SIZE] = { "arc_route_request_body_bytes", "arc_upstream_request_body_bytes",
                          "Request body bytes received from the client." },
    [ARC_MH_RESP_SIZE] = { "arc_route_response_body_bytes", "arc_upstream_response_body_bytes",
                           "Response body bytes sent to the client." },
};

static void bound_text(char *b, size_t len, enum arc_m_hist h, uint64_t v)
{
    if (is_size(h))
        snprintf(b, len, "%llu", (unsigned long long)v);
    else
        snprintf(b, len, "%.9g", (double)v / 1e9);
}

static void hist_series(struct arc_sbuf *o, const char *name, const char *lk, const char *lv,
                        enum arc_m_hist h, const struct arc_m_hsum *s)
{
    char b[48];
    uint64_t cum = 0;
    for (size_t i = 0; i <= s->n_bounds; i++) {
        cum += s->buckets[i];
        if (i < s->n_bounds)
            bound_text(b, sizeof(b), h, s->bounds[i]);
        else
            strcpy(b, "+Inf");
        arc_sbuf_printf(o, "%s_bucket{%s=\"", name, lk);
        label(o, lv);
        arc_sbuf_printf(o, "\",le=\"%s\"} %llu\n", b, (unsigned long long)cum);
    }
    arc_sbuf_printf(o, "%s_sum{%s=\"", name, lk);
    label(o, lv);
    if (is_size(h))
        arc_sbuf_printf(o, "\"} %llu\n", (unsigned long long)s->sum);
    else
        arc_sbuf_printf(o, "\"} %.9f\n", (double)s->sum / 1e9);
    arc_sbuf_printf(o, "%s_count{%s=\"", name, lk);
    label(o, lv);
    arc_sbuf_printf(o, "\"} %llu\n", (unsigned long long)cum);
}

static void render_histograms(struct arc_sbuf *o, struct arc_metrics_shard *const *sh, size_t n,
                              const struct arc_m_names *nm)
{
    if (!L.hlen)
        return;
    struct arc_m_hsum s;
    for (int h = 0; h < ARC_MH__COUNT; h++) {
        const char *name = hist_names[h].route;
        family(o, name, "histogram", hist_names[h].help);
        for (size_t r = 0; r <= nm->n_routes; r++) {
            uint32_t id = r < nm->n_routes ? nm->route_ids[r] : ARC_M_NO_ROUTE;
            arc_m_hist_read(sh, n, false, id, (enum arc_m_hist)h, &s);
            /* The no-route row is shown once something landed there. */
            if (r == nm->n_routes && s.count == 0)
                continue;
            hist_series(o, name, "route", r < nm->n_routes ? nm->route_names[r] : "",
                        (enum arc_m_hist)h, &s);
        }
    }
    for (int h = 0; h < ARC_MH__COUNT; h++) {
        const char *name = hist_names[h].up;
        family(o, name, "histogram", hist_names[h].help);
        for (size_t u = 0; u < nm->n_ups; u++) {
            arc_m_hist_read(sh, n, true, nm->up_ids[u], (enum arc_m_hist)h, &s);
            hist_series(o, name, "upstream", nm->up_names[u], (enum arc_m_hist)h, &s);
        }
    }
}

static void up_series(struct arc_sbuf *o, struct arc_metrics_shard *const *sh, size_t n,
                      const struct arc_m_names *nm, enum arc_m_up col, const char *name,
                      const char *type, const char *help)
{
    family(o, name, type, help);
    for (size_t u = 0; u < nm->n_ups; u++) {
        series(o, name, "upstream", nm->up_names[u]);
        arc_sbuf_printf(o, "} %llu\n",
                        (unsigned long long)arc_m_read(sh, n, ARC_MTAB_UPS, nm->up_ids[u], col));
    }
}

/* `name{upstream="u",endpoint="e"` for endpoint e of names. */
static void ep_series(struct arc_sbuf *o, const char *name, const struct arc_m_names *nm, size_t e)
{
    series(o, name, "upstream", nm->up_names[nm->ep_up[e]]);
    arc_sbuf_append(o, ",endpoint=\"", 11);
    label(o, nm->ep_names[e]);
    arc_sbuf_append(o, "\"", 1);
}

static void render_upstreams(struct arc_sbuf *o, struct arc_metrics_shard *const *sh, size_t n,
                             const struct arc_m_names *nm)
{
    static const struct { const char *name, *help; int col; } ef[] = {
        { "arc_upstream_requests_total", "Requests sent to the endpoint (first attempts).",
          ARC_ME_REQUESTS },
        { "arc_upstream_retries_total", "Further attempts of a request on the endpoint after "
          "one failed (action.retry, a stale pooled connection, a refused HTTP/2 stream).",
          ARC_ME_RETRIES },
        { "arc_upstream_connect_errors_total", "Connections to the endpoint that could not be "
          "made (refused, unreachable, no ALPN h2, pool_max_connections reached).",
          ARC_ME_CONNECT_ERRORS },
    };
    for (size_t k = 0; k < sizeof(ef) / sizeof(ef[0]); k++) {
        family(o, ef[k].name, "counter", ef[k].help);
        for (size_t e = 0; e < nm->n_eps; e++) {
            ep_series(o, ef[k].name, nm, e);
            arc_sbuf_printf(o, "} %llu\n", (unsigned long long)arc_m_read(
                                               sh, n, ARC_MTAB_EPS, nm->ep_ids[e], (size_t)ef[k].col));
        }
    }
    family(o, "arc_upstream_timeouts_total", "counter",
           "Upstream deadlines that fired, by the phase the attempt was in: connect "
           "(connect_timeout, TLS handshake included), write (write_timeout), ttfb "
           "(ttfb_timeout), read (read_timeout, between response bytes).");
    for (size_t e = 0; e < nm->n_eps; e++)
        for (size_t p = 0; p < ARC_MT__COUNT; p++) {
            ep_series(o, "arc_upstream_timeouts_total", nm, e);
            arc_sbuf_printf(o, ",phase=\"%s\"} %llu\n", phase_names[p],
                            (unsigned long long)arc_m_read(sh, n, ARC_MTAB_EPS, nm->ep_ids[e],
                                                           ARC_ME_TIMEOUT + p));
        }
    family(o, "arc_upstream_errors_total", "counter",
           "Exchanges that ended in an upstream error, by endpoint and kind (an empty "
           "endpoint: none could be picked).");
    for (size_t e = 0; e < nm->n_eps; e++)
        for (size_t k = ARC_ERR_UPSTREAM_CONNECT; k <= ARC_ERR_NO_ENDPOINT; k++) {
            ep_series(o, "arc_upstream_errors_total", nm, e);
            arc_sbuf_printf(o, ",kind=\"%s\"} %llu\n", err_names[k],
                            (unsigned long long)arc_m_read(sh, n, ARC_MTAB_EPS, nm->ep_ids[e],
                                                           ARC_ME_ERROR + k));
        }
    for (size_t u = 0; u < nm->n_ups; u++) {
        uint64_t v = arc_m_read(sh, n, ARC_MTAB_UPS, nm->up_ids[u], ARC_MU_NO_ENDPOINT);
        series(o, "arc_upstream_errors_total", "upstream", nm->up_names[u]);
        arc_sbuf_printf(o, ",endpoint=\"\",kind=\"no_endpoint\"} %llu\n", (unsigned long long)v);
    }
    up_series(o, sh, n, nm, ARC_MU_REUSED, "arc_upstream_reused_total", "counter",
              "Requests sent on a connection already open (a pooled keep-alive "
              "connection, or a stream on an HTTP/2 connection).");
    up_series(o, sh, n, nm, ARC_MU_POOL_OPEN, "arc_upstream_pool_open", "gauge",
              "Upstream connections open (busy and idle).");
    up_series(o, sh, n, nm, ARC_MU_POOL_IDLE, "arc_upstream_pool_idle", "gauge",
              "Idle upstream connections in the keep-alive pools.");
    family(o, "arc_upstream_pool_busy", "gauge",
           "Upstream connections open and not idle (carrying requests, or connecting).");
    for (size_t u = 0; u < nm->n_ups; u++) {
        uint64_t op = arc_m_read(sh, n, ARC_MTAB_UPS, nm->up_ids[u], ARC_MU_POOL_OPEN);
        uint64_t id = arc_m_read(sh, n, ARC_MTAB_UPS, nm->up_ids[u], ARC_MU_POOL_IDLE);
        series(o, "arc_upstream_pool_busy", "upstream", nm->up_names[u]);
        arc_sbuf_printf(o, "} %llu\n", (unsigned long long)(op > id ? op - id : 0));
    }
}

static void render_ring(struct arc_sbuf *o, struct arc_metrics_shard *const *sh, size_t n)
{
    static const struct { const char *name, *type, *help; } f[ARC_MR__COUNT] = {
        [ARC_MR_SQ_FULL] = { "arc_ring_sq_full_total", "counter",
                             "SQEs wanted while the submission queue was full (the queue was "
                             "submitted early to make room)." },
        [ARC_MR_CQ_OVERFLOW] = { "arc_ring_cq_overflow_total", "counter",
                                 "Worker loop turns that found the completion queue overflowed "
                                 "(completions parked in the kernel's overflow list)." },
        [ARC_MR_CQ_DROPPED] = { "arc_ring_cq_dropped_total", "counter",
                                "Completions the kernel dropped because the CQ and its "
                                "overflow list were full (io_uring's cq.overflow)." },
        [ARC_MR_BUF_EXHAUSTED] = { "arc_ring_buffers_exhausted_total", "counter",
                                   "Receives that completed with no provided buffer left "
                                   "(ENOBUFS)." },
        [ARC_MR_STARVED] = { "arc_ring_starved_receives_total", "counter",
                             "Connections whose receive had to wait for provided buffers to "
                             "come back." },
        [ARC_MR_BUF_FREE] = { "arc_ring_buffers_free", "gauge",
                              "Provided receive buffers owned by the kernel (free to receive "
                              "into)." },
        [ARC_MR_BUF_TOTAL] = { "arc_ring_buffers", "gauge", "Provided receive buffers." },
    };
    for (size_t k = 0; k < ARC_MR__COUNT; k++) {
        family(o, f[k].name, f[k].type, f[k].help);
        for (size_t i = 0; i < n; i++)
            arc_sbuf_printf(o, "%s{worker=\"%zu\"} %llu\n", f[k].name, i,
                            (unsigned long long)arc_m_get(&sh[i]->ring[k]));
    }
}

void arc_metrics_render(struct arc_sbuf *o, struct arc_metrics_shard *const *sh,
                        size_t n, const struct arc_m_names *nm)
{
    if (n == 0)
        return;
    render_listeners(o, sh, n, nm);
    family(o, "arc_exchanges_active", "gauge", "Exchanges (requests) in progress.");
    arc_sbuf_printf(o, "arc_exchanges_active %llu\n", (unsigned long long)SUM(m->exchanges));
    render_requests(o, sh, n, nm);
    family(o, "arc_errors_total", "counter",
           "Locally generated error answers and failures, by cause.");
    for (size_t e = 0; e < ARC_ERR__COUNT; e++)
        arc_sbuf_printf(o, "arc_errors_total{kind=\"%s\"} %llu\n", err_names[e],
                        (unsigned long long)SUM(m->errors[e]));
    render_upstreams(o, sh, n, nm);
    render_histograms(o, sh, n, nm);
    render_ring(o, sh, n);
    up_series(o, sh, n, nm, ARC_MU_RETRY_BUDGET_EXHAUSTED,
              "arc_upstream_retry_budget_exhausted_total", "counter",
              "Retries not made because the route's retry budget was spent.");
    up_series(o, sh, n, nm, ARC_MU_OVERFLOW, "arc_upstream_overflow_total", "counter",
              "Requests answered 503 at once by a circuit_breaker limit (requests, or "
              "connections with the wait queue full), or after waiting in vain.");
    up_series(o, sh, n, nm, ARC_MU_PENDING_TIMEOUTS, "arc_upstream_pending_timeouts_total",
              "counter", "Requests that waited circuit_breaker.pending_timeout for a "
              "connection in vain (also in arc_upstream_overflow_total).");
    arc_metrics_render_limits(o, sh, n, nm);
}
