/*
 * routes[].mirror: fire-and-forget copies of a route's requests to shadow
 * upstreams.
 *
 * Worker side (per exchange): when the action runs, each mirror of the
 * route is sampled; a sampled one gets its request head built at once
 * (path and header transforms applied). Body bytes are copied as they go
 * to the primary, up to the largest max_body. When the exchange ends (the
 * ONE place: arc_px__ex_end) the copies whose request is complete are
 * handed to the mirror thread through the worker's own single-producer
 * ring (no lock, no read-modify-write atomic); a full ring drops the copy.
 * So a copy never delays or changes the primary: it leaves after it.
 *
 * Mirror thread (one per process, its own poll() loop over non-blocking
 * sockets, like the health-check thread): each copy is one connection
 *
 *   CONNECTING ──writable──▶ SENDING ──all sent──▶ READING ──status line──▶ done
 *        │                                             (compare: the whole response)
 *        └──────────── error, EOF, or the mirror's timeout ─────────────▶ done
 *
 * bounded by max_in_flight per shadow upstream (over it the copy is
 * dropped) and its timeout. Only the response's status line is read; the
 * connection is then closed. Everything is counted (arc_mirror_*).
 *
 * compare (mirror_cmp.c): a sampled copy whose mirror compares gets a
 * summary of the primary's response (status, field hashes, body digest),
 * filled while the response streams to the client (arc_px__mirror_resp_*)
 * and copied into the job at the end; the thread reads the shadow's whole
 * answer into the same kind of summary, compares, counts and logs.
 */
#include "proxy/proxy_int.h"
#include "proxy/mirror_int.h"
#include "core/log.h"
#include "core/sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_WORKERS 1024
#define MAX_UPS 256                     /* shadow upstreams counted by name */

/* ------------------------------------------------------------ shared */

struct job {
    struct sockaddr_storage ss;
    socklen_t sslen;
    char up[64];
    uint32_t max_in_flight;
    uint64_t timeout;
    char *buf;
    size_t len;
    struct arc_mc_job *cmp;             /* compare: the primary's summary and the filter */
};

struct ring {
    _Atomic uint32_t head, tail;        /* head: the thread; tail: the worker */
    uint32_t cap;                       /* node.mirror.queue (a power of two) */
    struct job *v[];
};

enum { R_2XX, R_3XX, R_4XX, R_5XX, R_ERROR, R_TIMEOUT, R_BUSY, R__N };
static const char *const result_names[] = { "2xx", "3xx", "4xx", "5xx", "error", "timeout",
                                            "dropped_busy" };
enum { D_QUEUE, D_BODY, D_INCOMPLETE, D_NO_ENDPOINT, D_MEMORY, D__N };
static const char *const drop_names[] = { "queue_full", "body_too_large", "request_incomplete",
                                          "no_endpoint", "out_of_memory" };

enum { C_MATCH, C_MISMATCH, C_INCOMPLETE, C__N };
static const char *const cmp_names[] = { "match", "mismatch", "incomplete" };
static const char *const diff_names[] = { "status", "headers", "body" };

struct upstat {
    char name[64];
    _Atomic uint64_t n[R__N];
    _Atomic uint32_t in_flight;
    _Atomic uint64_t cmp[C__N];         /* compare results */
    _Atomic uint64_t diffs[3];          /* mismatches by part (ARC_MC_DIFF_* bit order) */
    /* diff records logged this second (the mirror thread's own) */
    uint64_t log_sec;
    uint32_t log_n;
    uint64_t log_suppressed;
};

static _Atomic(struct ring *) g_rings[MAX_WORKERS];
static struct upstat g_ups[MAX_UPS];
static _Atomic uint32_t g_n_ups;
static _Atomic uint64_t g_drops[MAX_WORKERS][D__N]; /* each worker writes its own row */
static _Atomic bool g_stop;
/* node.mirror, set by arc_mirror_start before any worker runs */
static uint32_t g_ring_cap = 1024;      /* copies waiting per worker */
static uint32_t g_max_conns = 4096;     /* copies under way in all */
static pthread_t g_thread;
static _Atomic bool g_started;

/* ------------------------------------------------------------ worker side */

struct mentry {
    const struct arc_mirror_conf *mc;
    const struct arc_upstream_rt *up;
    char *head;                         /* request line and fields, without framing */
    size_t head_len;
};

struct arc_px_mirror {
    struct mentry e[ARC_MIRROR_MAX];
    size_t n;
    struct arc_mc_sum *psum;            /* the primary's response, when a mirror compares */
    /* ignore_body_fields: the primary's response body, up to jmax (the
     * largest compare.max_body of the mirrors that ignore fields) */
    char *pbody;
    size_t pbody_len, pbody_cap;
    uint64_t jmax;
    bool pbody_over;
    char *body;
    size_t body_len, body_cap;
    uint64_t max_body;
    bool too_big;
    bool had_body;
};

static bool is_hop(struct arc_str n)
{
    static const char *const hop[] = { "connection", "keep-alive", "proxy-connection", "te",
                                       "trailer", "transfer-encoding", "upgrade",
                                       "content-length", "host", "expect" };
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (arc_str_ieq(n, hop[i], strlen(hop[i])))
            return true;
    return n.len && n.p[0] == ':';
}

static bool listed(struct arc_str n, const struct arc_mirror_conf *mc)
{
    for (size_t i = 0; i < mc->n_remove; i++)
        if (arc_str_ieq(n, mc->remove[i], strlen(mc->remove[i])))
            return true;
    for (size_t i = 0; i < mc->n_set; i++)
        if (arc_str_ieq(n, mc->set[i].name, strlen(mc->set[i].name)))
            return true;
    return false;
}

static char *build_head(const struct arc_exchange *ex, const struct arc_mirror_conf *mc,
                        size_t *len)
{
    const struct arc_req *q = &ex->req;
    struct arc_sbuf b = { 0 };
    arc_sbuf_append(&b, q->method.p, q->method.len);
    arc_sbuf_append(&b, " ", 1);
    struct arc_str path = q->path.len ? q->path : (struct arc_str)ARC_STR_LIT("/");
    if (mc->path) {
        for (const char *p = mc->path; *p;) {
            if (strncmp(p, "$path", 5) == 0) {
                arc_sbuf_append(&b, path.p, path.len);
                p += 5;
            } else {
                arc_sbuf_append(&b, p, 1);
                p++;
            }
        }
    } else {
        arc_sbuf_append(&b, path.p, path.len);
    }
    if (q->query.len) {
        arc_sbuf_append(&b, "?", 1);
        arc_sbuf_append(&b, q->query.p, q->query.len);
    }
    arc_sbuf_append(&b, " HTTP/1.1\r\nHost: ", 17);
    if (q->authority.len)
        arc_sbuf_append(&b, q->authority.p, q->authority.len);
    else
        arc_sbuf_append(&b, "localhost", 9);
    arc_sbuf_append(&b, "\r\n", 2);
    for (size_t i = 0; i < q->n_hdrs; i++) {
        const struct arc_hdr *h = &q->hdrs[i];
        if (is_hop(h->name) || listed(h->name, mc))
            continue;
        arc_sbuf_append(&b, h->name.p, h->name.len);
        arc_sbuf_append(&b, ": ", 2);
        arc_sbuf_append(&b, h->value.p, h->value.len);
        arc_sbuf_append(&b, "\r\n", 2);
    }
    for (size_t i = 0; i < mc->n_set; i++)
        arc_sbuf_printf(&b, "%s: %s\r\n", mc->set[i].name, mc->set[i].value);
    arc_sbuf_append(&b, "Connection: close\r\n", 19);
    *len = b.len;
    return b.p;
}

static void drop(struct arc_worker *w, int reason)
{
    _Atomic uint64_t *c = &g_drops[w->id < MAX_WORKERS ? w->id : MAX_WORKERS - 1][reason];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void arc_px__mirror_start(struct arc_worker *w, struct arc_exchange *ex)
{
    const struct arc_route_conf *rc = ex->route->conf;
    struct arc_px_mirror *m = NULL;
    if (ex->req.mbit == ARC_M_CONNECT || ex->req.upgrade)
        return;                         /* tunnels are not copied */
    for (size_t i = 0; i < rc->n_mirrors; i++) {
        const struct arc_mirror_conf *mc = &rc->mirrors[i];
        if (mc->sample < 1.0 &&
            (double)(arc_px__rand(w) >> 11) / 9007199254740992.0 >= mc->sample)
            continue;
        if (!m && !(m = calloc(1, sizeof(*m)))) {
            drop(w, D_MEMORY);
            return;
        }
        struct mentry *e = &m->e[m->n];
        e->mc = mc;
        e->up = &ex->snap->ups[mc->upstream_index];
        if (!(e->head = build_head(ex, mc, &e->head_len))) {
            drop(w, D_MEMORY);
            continue;
        }
        if (mc->max_body > m->max_body)
            m->max_body = mc->max_body;
        if (mc->compare && !m->psum && !(m->psum = calloc(1, sizeof(*m->psum))))
            drop(w, D_MEMORY);          /* (the copies still go, uncompared) */
        if (mc->compare && mc->compare->n_body_fields && mc->compare->max_body > m->jmax)
            m->jmax = mc->compare->max_body;
        m->n++;
    }
    if (!m)
        return;
    if (m->n == 0) {
        free(m->psum);
        free(m);
        return;
    }
    m->had_body = ex->req.body != ARC_H1_BODY_NONE;
    if (ex->req.body == ARC_H1_BODY_LENGTH && ex->req.content_length > m->max_body)
        m->too_big = true;
    ex->mirror = m;
}

/* Appends p to a buffer held up to max bytes. False when it would pass max
 * or memory ran out: the buffer is then freed and the caller stops keeping. */
static bool keep_bounded(char **buf, size_t *n, size_t *cap, size_t max, const char *p,
                         size_t len)
{
    if (*n + len > max) {
        free(*buf);
        *buf = NULL;
        *n = *cap = 0;
        return false;
    }
    if (*n + len > *cap) {
        size_t c = *cap ? *cap * 2 : 4096;
        while (c < *n + len)
            c *= 2;
        if (c > max)
            c = max;
        char *b = realloc(*buf, c);
        if (!b) {
            free(*buf);
            *buf = NULL;
            *n = *cap = 0;
            return false;
        }
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *n, p, len);
    *n += len;
    return true;
}

void arc_px__mirror_body(struct arc_exchange *ex, const char *p, size_t len)
{
    struct arc_px_mirror *m = ex->mirror;
    if (m->too_big || len == 0)
        return;
    /* (a body over max_body, or out of memory: counted as too large) */
    if (!keep_bounded(&m->body, &m->body_len, &m->body_cap, m->max_body, p, len))
        m->too_big = true;
}

void arc_px__mirror_resp_head(struct arc_exchange *ex, const struct arc_resp *r)
{
    struct arc_px_mirror *m = ex->mirror;
    if (m->psum)
        arc_mc__sum_head(m->psum, r->status, r->hdrs, r->n_hdrs);
    m->pbody_len = 0;
    m->pbody_over = false;
}

void arc_px__mirror_resp_body(struct arc_exchange *ex, const char *p, size_t len)
{
    struct arc_px_mirror *m = ex->mirror;
    if (!m->psum)
        return;
    arc_mc__dg_update(&m->psum->body, p, len);
    if (!m->jmax || m->pbody_over || len == 0)
        return;
    if (!keep_bounded(&m->pbody, &m->pbody_len, &m->pbody_cap, m->jmax, p, len))
        m->pbody_over = true;           /* (compared by digest) */
}

static void copy_text(char *dst, size_t cap, struct arc_str v)
{
    size_t l = v.len < cap - 1 ? v.len : cap - 1;
    memcpy(dst, v.p, l);
    dst[l] = '\0';
}

/* What the mirror thread needs to compare this copy's answer. */
static struct arc_mc_job *cmp_job(const struct arc_exchange *ex, const struct mentry *e,
                                  const struct arc_px_mirror *m)
{
    const struct arc_mirror_compare *mc = e->mc->compare;
    struct arc_mc_job *j = malloc(sizeof(*j));
    if (!j)
        return NULL;
    j->primary = *m->psum;
    j->bfields = j->pbody = NULL;
    j->n_bfields = j->pbody_len = 0;
    j->max_body = mc->max_body;
    if (mc->n_body_fields) {
        size_t len = 0;
        for (size_t i = 0; i < mc->n_body_fields; i++)
            len += strlen(mc->body_fields[i]) + 1;
        if (!(j->bfields = malloc(len))) {
            free(j);
            return NULL;
        }
        char *o = j->bfields;
        for (size_t i = 0; i < mc->n_body_fields; i++)
            o = stpcpy(o, mc->body_fields[i]) + 1;
        j->n_bfields = mc->n_body_fields;
        /* (NULL when over this mirror's max_body: compared by digest) */
        if (!m->pbody_over && m->pbody_len <= mc->max_body && m->psum->head) {
            j->pbody = malloc(m->pbody_len ? m->pbody_len : 1);
            if (j->pbody) {
                memcpy(j->pbody, m->pbody ? m->pbody : "", m->pbody_len);
                j->pbody_len = m->pbody_len;
            }
        }
    }
    j->fields = mc->fields;
    j->n_names = 0;
    for (size_t i = 0; i < mc->n_names && i < ARC_MIRROR_CMP_NAMES; i++)
        j->names[j->n_names++] = arc_mc__name_hash(mc->names[i], strlen(mc->names[i]));
    j->body = mc->body;
    j->log = mc->log;
    j->log_rate = mc->log_rate;
    j->is_head = ex->is_head;
    j->lim = ex->snap->limits;
    snprintf(j->route, sizeof(j->route), "%s", ex->route->conf->name);
    copy_text(j->rid, sizeof(j->rid), (struct arc_str){ ex->rid, ex->rid_len });
    copy_text(j->method, sizeof(j->method), ex->req.method);
    copy_text(j->path, sizeof(j->path), ex->req.path);
    return j;
}

static struct ring *my_ring(struct arc_worker *w)
{
    if (w->id >= MAX_WORKERS)
        return NULL;
    struct ring *r = atomic_load_explicit(&g_rings[w->id], memory_order_acquire);
    if (!r) {
        r = calloc(1, sizeof(*r) + (size_t)g_ring_cap * sizeof(r->v[0]));
        if (r) {
            r->cap = g_ring_cap;
            atomic_store_explicit(&g_rings[w->id], r, memory_order_release);
        }
    }
    return r;
}

static void push(struct arc_worker *w, const struct arc_exchange *ex, const struct mentry *e,
                 const struct arc_px_mirror *m)
{
    const struct arc_upstream_rt *up = e->up;
    if (up->n_eps == 0) {
        drop(w, D_NO_ENDPOINT);
        return;
    }
    struct ring *r = my_ring(w);
    uint32_t tail = r ? atomic_load_explicit(&r->tail, memory_order_relaxed) : 0;
    if (!r || tail - atomic_load_explicit(&r->head, memory_order_acquire) >= r->cap) {
        drop(w, D_QUEUE);
        return;
    }
    struct job *j = calloc(1, sizeof(*j));
    char cl[48];
    int cln = m->had_body || m->body_len ? snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n",
                                                    m->body_len) : 0;
    size_t len = e->head_len + (size_t)cln + 2 + m->body_len;
    char *buf = j ? malloc(len) : NULL;
    if (buf && e->mc->compare && m->psum && !(j->cmp = cmp_job(ex, e, m))) {
        free(buf);
        buf = NULL;
    }
    if (!buf) {
        free(j);
        drop(w, D_MEMORY);
        return;
    }
    memcpy(buf, e->head, e->head_len);
    memcpy(buf + e->head_len, cl, (size_t)cln);
    memcpy(buf + e->head_len + cln, "\r\n", 2);
    if (m->body_len)
        memcpy(buf + e->head_len + cln + 2, m->body, m->body_len);
    const struct arc_endpoint_rt *ep = &up->eps[arc_px__rand(w) % up->n_eps];
    j->ss = ep->ss;
    j->sslen = ep->len;
    snprintf(j->up, sizeof(j->up), "%s", up->conf->name);
    j->max_in_flight = e->mc->max_in_flight;
    j->timeout = e->mc->timeout;
    j->buf = buf;
    j->len = len;
    r->v[tail & (r->cap - 1)] = j;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
}

void arc_px__mirror_end(struct arc_worker *w, struct arc_exchange *ex, bool resp_complete)
{
    struct arc_px_mirror *m = ex->mirror;
    ex->mirror = NULL;
    bool complete = !m->had_body || ex->req_done;
    if (m->psum) {
        /* The answer the client got is the upstream's whose head was seen
         * only if its status is that one's; else it was Arc's own (an
         * error, a plugin's answer): only the status is compared. */
        if (!m->psum->head || m->psum->status != ex->status) {
            m->psum->head = false;
            m->psum->status = ex->status;
        }
        m->psum->complete = resp_complete && ex->status != 0;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (m->too_big || m->body_len > m->e[i].mc->max_body)
            drop(w, D_BODY);            /* (over the largest max_body, or over this one's) */
        else if (!complete)
            drop(w, D_INCOMPLETE);
        else if (!atomic_load_explicit(&g_started, memory_order_relaxed))
            drop(w, D_QUEUE);
        else
            push(w, ex, &m->e[i], m);
        free(m->e[i].head);
    }
    free(m->body);
    free(m->psum);
    free(m->pbody);
    free(m);
}

/* ------------------------------------------------------------ mirror thread */

enum mstate { C_CONNECTING, C_SENDING, C_READING };

struct mconn {
    int fd;
    enum mstate st;
    struct job *j;
    struct upstat *u;
    size_t off;                         /* sent */
    char rb[64];                        /* the status line's start */
    size_t rlen;
    uint64_t deadline;
    struct arc_mc_reader *rd;           /* compare: the whole answer is read */
};

static void job_free(struct job *j)
{
    free(j->buf);
    arc_mc__job_free(j->cmp);
    free(j);
}

static struct upstat *stat_of(const char *name)
{
    uint32_t n = atomic_load_explicit(&g_n_ups, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(g_ups[i].name, name) == 0)
            return &g_ups[i];
    if (n == MAX_UPS)
        return NULL;
    snprintf(g_ups[n].name, sizeof(g_ups[n].name), "%s", name);
    atomic_store_explicit(&g_n_ups, n + 1, memory_order_release);
    return &g_ups[n];
}

static void count(struct upstat *u, int r)
{
    if (u)
        atomic_store_explicit(&u->n[r], atomic_load_explicit(&u->n[r], memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

static void inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The diff record: one system-log line of key=value pairs (primary/shadow). */
static void log_diff(struct upstat *u, const struct arc_mc_job *j, const struct arc_mc_sum *sh,
                     unsigned d, const char *fields)
{
    uint64_t sec = arc_now_ms() / 1000;
    if (u->log_sec != sec) {
        u->log_sec = sec;
        u->log_n = 0;
    }
    if (u->log_n >= j->log_rate) {
        u->log_suppressed++;
        return;
    }
    u->log_n++;
    char body[128] = "";
    if (j->body && j->primary.head)
        snprintf(body, sizeof(body), " body_bytes=%llu/%llu body_digest=%016llx/%016llx",
                 (unsigned long long)j->primary.body.len, (unsigned long long)sh->body.len,
                 (unsigned long long)arc_mc__dg_final(&j->primary.body),
                 (unsigned long long)arc_mc__dg_final(&sh->body));
    char more[48] = "";
    if (u->log_suppressed)
        snprintf(more, sizeof(more), " suppressed=%llu", (unsigned long long)u->log_suppressed);
    u->log_suppressed = 0;
    arc_log(ARC_LOG_INFO, "mirror: compare: diff upstream=%s route=%s request_id=%s method=%s "
            "path=%s differs=%s%s%s status=%d/%d%s%s%s%s", u->name, j->route,
            j->rid[0] ? j->rid : "-", j->method, j->path,
            d & ARC_MC_DIFF_STATUS ? "status" : "",
            d & ARC_MC_DIFF_FIELDS ? (d & ARC_MC_DIFF_STATUS ? ",headers" : "headers") : "",
            d & ARC_MC_DIFF_BODY ? (d & (ARC_MC_DIFF_STATUS | ARC_MC_DIFF_FIELDS) ? ",body" : "body")
                                 : "",
            j->primary.status, sh->status, fields[0] ? " fields=" : "", fields, body, more);
}

/* A copy whose primary compares: its answer (complete or not) against the
 * primary's. */
static void compare_done(struct mconn *c, bool shadow_complete)
{
    const struct arc_mc_job *j = c->j->cmp;
    struct upstat *u = c->u;
    if (!u)
        return;
    if (!j->primary.complete || !shadow_complete || !c->rd) {
        inc(&u->cmp[C_INCOMPLETE]);
        return;
    }
    char fields[512];
    unsigned d = arc_mc__compare(j, c->rd, fields, sizeof(fields));
    if (!d) {
        inc(&u->cmp[C_MATCH]);
        return;
    }
    inc(&u->cmp[C_MISMATCH]);
    for (int b = 0; b < 3; b++)
        if (d & (1u << b))
            inc(&u->diffs[b]);
    if (j->log)
        log_diff(u, j, &c->rd->sum, d, fields);
}

static void conn_done(struct mconn *c, int result)
{
    count(c->u, result);
    if (c->j->cmp)
        compare_done(c, c->rd && result != R_ERROR && result != R_TIMEOUT);
    if (c->rd) {
        arc_mc__reader_free(c->rd);
        free(c->rd);
        c->rd = NULL;
    }
    if (c->u)
        atomic_store_explicit(&c->u->in_flight,
                              atomic_load_explicit(&c->u->in_flight, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    close(c->fd);
    job_free(c->j);
    c->fd = -1;
}

static bool start_conn(struct mconn *c, struct job *j, uint64_t now)
{
    struct upstat *u = stat_of(j->up);
    if (u && atomic_load_explicit(&u->in_flight, memory_order_relaxed) >= j->max_in_flight) {
        count(u, R_BUSY);
        return false;
    }
    int fd = socket(j->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        count(u, R_ERROR);
        return false;
    }
    *c = (struct mconn){ .fd = fd, .st = C_CONNECTING, .j = j, .u = u,
                         .deadline = now + j->timeout };
    /* (a primary that did not complete is not compared: the status line
     * is enough) */
    if (j->cmp && j->cmp->primary.complete && !(c->rd = calloc(1, sizeof(*c->rd)))) {
        close(fd);
        c->fd = -1;
        count(u, R_ERROR);
        return false;
    }
    if (u)
        atomic_store_explicit(&u->in_flight,
                              atomic_load_explicit(&u->in_flight, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    if (connect(fd, (const struct sockaddr *)&j->ss, j->sslen) < 0 && errno != EINPROGRESS) {
        conn_done(c, R_ERROR);
        return true;                    /* (the job is consumed) */
    }
    return true;
}

static int result_of(int status)
{
    int st = status / 100;
    return st == 2 ? R_2XX : st == 3 ? R_3XX : st == 4 ? R_4XX : st == 5 ? R_5XX : R_ERROR;
}

/* compare: the answer is read whole (its body hashed, not kept). */
static void read_whole(struct mconn *c)
{
    char b[16384];
    for (int k = 0; k < 8; k++) {       /* (then back to poll: others wait too) */
        ssize_t n = recv(c->fd, b, sizeof(b), 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                conn_done(c, R_ERROR);
            return;
        }
        int rc = n == 0 ? arc_mc__eof(c->rd, c->j->cmp)
                        : arc_mc__feed(c->rd, c->j->cmp, b, (size_t)n);
        if (rc < 0) {
            conn_done(c, R_ERROR);
            return;
        }
        if (rc > 0) {
            conn_done(c, result_of(c->rd->sum.status));
            return;
        }
    }
}

static void on_ready(struct mconn *c, short re)
{
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (re & (POLLERR | POLLHUP) && !(re & POLLOUT))) {
            conn_done(c, R_ERROR);
            return;
        }
        c->st = C_SENDING;
    }
    if (c->st == C_SENDING) {
        ssize_t n = send(c->fd, c->j->buf + c->off, c->j->len - c->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                conn_done(c, R_ERROR);
            return;
        }
        c->off += (size_t)n;
        if (c->off == c->j->len)
            c->st = C_READING;
        return;
    }
    if (c->rd) {
        read_whole(c);
        return;
    }
    ssize_t n = recv(c->fd, c->rb + c->rlen, sizeof(c->rb) - 1 - c->rlen, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_done(c, R_ERROR);
        return;
    }
    if (n == 0) {
        conn_done(c, R_ERROR);
        return;
    }
    c->rlen += (size_t)n;
    if (c->rlen < 12)
        return;
    /* "HTTP/1.x NNN" */
    int st = memcmp(c->rb, "HTTP/1.", 7) == 0 && c->rb[8] == ' ' && c->rb[9] >= '1' &&
             c->rb[9] <= '5' ? c->rb[9] - '0' : 0;
    conn_done(c, st == 2 ? R_2XX : st == 3 ? R_3XX : st == 4 ? R_4XX : st == 5 ? R_5XX
                 : st == 1 ? R_2XX : R_ERROR);
}

static void *thread_main(void *arg)
{
    (void)arg;
    const size_t max_conns = g_max_conns;
    struct mconn *cs = calloc(max_conns, sizeof(*cs));
    struct pollfd *pf = calloc(max_conns, sizeof(*pf));
    size_t n = 0;
    if (!cs || !pf) {
        free(cs);
        free(pf);
        return NULL;
    }
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        uint64_t now = arc_now_ms();
        for (size_t r = 0; r < MAX_WORKERS; r++) {
            struct ring *rg = atomic_load_explicit(&g_rings[r], memory_order_acquire);
            if (!rg)
                continue;
            uint32_t h = atomic_load_explicit(&rg->head, memory_order_relaxed);
            uint32_t t = atomic_load_explicit(&rg->tail, memory_order_acquire);
            for (; h != t; h++) {
                struct job *j = rg->v[h & (rg->cap - 1)];
                if (n < max_conns && start_conn(&cs[n], j, now)) {
                    if (cs[n].fd >= 0)
                        n++;
                    continue;
                }
                if (n >= max_conns)
                    count(stat_of(j->up), R_BUSY);
                if (j->cmp) {                   /* (not sent: not compared) */
                    struct upstat *u = stat_of(j->up);
                    if (u)
                        inc(&u->cmp[C_INCOMPLETE]);
                }
                job_free(j);
            }
            atomic_store_explicit(&rg->head, h, memory_order_release);
        }
        for (size_t i = 0; i < n; i++) {
            pf[i].fd = cs[i].fd;
            pf[i].events = cs[i].st == C_READING ? POLLIN : POLLOUT;
            pf[i].revents = 0;
        }
        int rc = poll(pf, n, n ? 10 : 50);
        now = arc_now_ms();
        for (size_t i = 0; i < n; i++) {
            if (rc > 0 && pf[i].revents)
                on_ready(&cs[i], pf[i].revents);
            if (cs[i].fd >= 0 && now >= cs[i].deadline)
                conn_done(&cs[i], R_TIMEOUT);
        }
        size_t k = 0;                   /* compact */
        for (size_t i = 0; i < n; i++)
            if (cs[i].fd >= 0)
                cs[k++] = cs[i];
        n = k;
    }
    for (size_t i = 0; i < n; i++) {
        close(cs[i].fd);
        if (cs[i].rd) {
            arc_mc__reader_free(cs[i].rd);
            free(cs[i].rd);
        }
        job_free(cs[i].j);
    }
    free(cs);
    free(pf);
    return NULL;
}

int arc_mirror_start(uint32_t queue, uint32_t max_in_flight)
{
    g_ring_cap = queue && !(queue & (queue - 1)) ? queue : 1024;
    g_max_conns = max_in_flight ? max_in_flight : 4096;
    atomic_store(&g_stop, false);
    int rc = pthread_create(&g_thread, NULL, thread_main, NULL);
    if (rc)
        return -rc;
    g_started = true;
    return 0;
}

void arc_mirror_stop(void)
{
    if (g_started) {
        atomic_store(&g_stop, true);
        pthread_join(g_thread, NULL);
        g_started = false;
    }
    for (size_t r = 0; r < MAX_WORKERS; r++) {
        struct ring *rg = atomic_load(&g_rings[r]);
        if (!rg)
            continue;
        for (uint32_t h = atomic_load(&rg->head), t = atomic_load(&rg->tail); h != t; h++) {
            job_free(rg->v[h & (rg->cap - 1)]);
        }
        free(rg);
        atomic_store(&g_rings[r], NULL);
    }
}

void arc_mirror_render(struct arc_sbuf *m)
{
    uint32_t n = atomic_load_explicit(&g_n_ups, memory_order_acquire);
    arc_sbuf_printf(m, "# HELP arc_mirror_requests_total Mirrored copies by shadow upstream and "
                       "result (the response's status class, error, timeout, or dropped_busy: "
                       "over max_in_flight).\n# TYPE arc_mirror_requests_total counter\n");
    for (uint32_t i = 0; i < n; i++)
        for (int r = 0; r < R__N; r++)
            arc_sbuf_printf(m, "arc_mirror_requests_total{upstream=\"%s\",result=\"%s\"} %llu\n",
                            g_ups[i].name, result_names[r],
                            (unsigned long long)atomic_load_explicit(&g_ups[i].n[r],
                                                                     memory_order_relaxed));
    arc_sbuf_printf(m, "# HELP arc_mirror_in_flight Mirrored copies under way.\n"
                       "# TYPE arc_mirror_in_flight gauge\n");
    for (uint32_t i = 0; i < n; i++)
        arc_sbuf_printf(m, "arc_mirror_in_flight{upstream=\"%s\"} %u\n", g_ups[i].name,
                        (unsigned)atomic_load_explicit(&g_ups[i].in_flight,
                                                       memory_order_relaxed));
    arc_sbuf_printf(m, "# HELP arc_mirror_compare_total Compared copies by shadow upstream "
                       "and result (match, mismatch, or incomplete: the primary's or the "
                       "shadow's answer was not seen whole).\n"
                       "# TYPE arc_mirror_compare_total counter\n");
    for (uint32_t i = 0; i < n; i++)
        for (int r = 0; r < C__N; r++)
            arc_sbuf_printf(m, "arc_mirror_compare_total{upstream=\"%s\",result=\"%s\"} %llu\n",
                            g_ups[i].name, cmp_names[r],
                            (unsigned long long)atomic_load_explicit(&g_ups[i].cmp[r],
                                                                     memory_order_relaxed));
    arc_sbuf_printf(m, "# HELP arc_mirror_compare_diffs_total Mismatches by the part that "
                       "differed (one mismatch may count in several).\n"
                       "# TYPE arc_mirror_compare_diffs_total counter\n");
    for (uint32_t i = 0; i < n; i++)
        for (int r = 0; r < 3; r++)
            arc_sbuf_printf(m, "arc_mirror_compare_diffs_total{upstream=\"%s\",part=\"%s\"} "
                            "%llu\n", g_ups[i].name, diff_names[r],
                            (unsigned long long)atomic_load_explicit(&g_ups[i].diffs[r],
                                                                     memory_order_relaxed));
    arc_sbuf_printf(m, "# HELP arc_mirror_dropped_total Copies not sent, by reason.\n"
                       "# TYPE arc_mirror_dropped_total counter\n");
    for (int d = 0; d < D__N; d++) {
        uint64_t sum = 0;
        for (size_t wi = 0; wi < MAX_WORKERS; wi++)
            sum += atomic_load_explicit(&g_drops[wi][d], memory_order_relaxed);
        arc_sbuf_printf(m, "arc_mirror_dropped_total{reason=\"%s\"} %llu\n", drop_names[d],
                        (unsigned long long)sum);
    }
}
