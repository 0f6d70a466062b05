/*
 * A worker: one pinned thread, one io_uring ring, and everything it needs
 * to serve connections without touching another worker's memory. This file
 * owns the loop, completion dispatch, accepts, the timer tick and drain;
 * client.c and upstream.c own the protocol.
 */
#include "core/log.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "plugin/plugin.h"

#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Control → workers: set by the control thread, polled every loop turn
 * (the timer tick guarantees a turn at least every TICK_MS). */
static _Atomic int g_drain;
static _Atomic uint64_t g_drain_ms;
static _Atomic int g_stop_now;

_Atomic uint32_t arc_px__node_clients;

#define TICK_MS 20
/* Buffers that must be back in the kernel before starved receives retry. */
#define STARVED_RETRY_MIN 32

/* The timer wheel's callbacks receive only the timer; the owning worker is
 * the one running on this thread. */
static __thread struct arc_worker *tl_worker;

uint64_t arc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t arc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct arc_worker *arc_px__worker(void)
{
    return tl_worker;
}

void arc_px__on_timer(struct arc_timer *t, uint64_t now)
{
    struct arc_conn *c = arc_container_of(t, struct arc_conn, timer);
    (void)now;
    if (c->closing)
        return;
    arc_px__conn_timeout(tl_worker, c);
}

void arc_px__ex_on_deadline(struct arc_timer *t, uint64_t now)
{
    (void)now;
    arc_px__ex_deadline(tl_worker, arc_container_of(t, struct arc_exchange, deadline));
}

/* ------------------------------------------------------------ accept */

static void arm_accept(struct arc_worker *w, size_t i)
{
    if (w->accept_armed[i] || w->listen_fds[i] < 0 || w->draining)
        return;
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_multishot_accept(sqe, w->listen_fds[i], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, op_ud(OP_ACCEPT, (uint32_t)i, 0));
    w->accept_armed[i] = true;
}

static void on_accept(struct arc_worker *w, struct io_uring_cqe *cqe)
{
    uint32_t li = UD_IDX(cqe->user_data);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        w->accept_armed[li] = false;
    if (cqe->res < 0) {
        /* EMFILE/ENFILE/ENOBUFS: re-arming now would spin; the tick re-arms. */
        return;
    }
    if (w->draining) {
        close(cqe->res);
        return;
    }
    /* node.max_connections is one node-wide count shared by the workers
     * (touched on accept and close only, never per request), so a worker
     * never refuses while the node is below the limit. */
    uint32_t before = atomic_fetch_add_explicit(&arc_px__node_clients, 1, memory_order_relaxed);
    arc_px__client_accepted(w, cqe->res, li, w->max_conns && before >= w->max_conns);
    if (!w->accept_armed[li] && cqe->res >= 0)
        arm_accept(w, li);
}

/* ------------------------------------------------------------ tick */

static void arm_tick(struct arc_worker *w)
{
    w->tick_ts.tv_sec = 0;
    w->tick_ts.tv_nsec = TICK_MS * 1000000L;
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_timeout(sqe, &w->tick_ts, 0, IORING_TIMEOUT_MULTISHOT);
    io_uring_sqe_set_data64(sqe, op_ud(OP_TICK, 0, 0));
}

static void start_drain(struct arc_worker *w)
{
    w->draining = true;
    w->drain_deadline = w->now_ms + atomic_load(&g_drain_ms);
    /* Stop accepting and close the listening sockets: new connections are
     * refused at once (a load balancer retries elsewhere) instead of
     * completing a handshake nobody will answer. The pending multishot
     * accept holds its own file reference until its cancel completes. */
    for (size_t i = 0; i < w->n_listen; i++) {
        if (w->listen_fds[i] < 0)
            continue;
        struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
        io_uring_prep_cancel_fd(sqe, w->listen_fds[i], IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, op_ud(OP_IGNORE, 0, 0));
        io_uring_submit(&w->ring);
        close(w->listen_fds[i]);
        w->listen_fds[i] = -1;
    }
    /* Idle keep-alive connections have nothing in flight: close them now.
     * Busy ones finish their exchange with Connection: close. */
    for (size_t ch = 0; ch < w->slab.n_chunks; ch++) {
        for (size_t i = 0; i < SLAB_CHUNK; i++) {
            struct arc_conn *c = &w->slab.chunks[ch][i];
            if (c->kind == CONN_CLIENT && !c->closing && c->c.state == CS_HEAD &&
                c->hlen == 0 && c->stash_n == 0 && arc_px__out_idle(c))
                arc_px__conn_close(w, c);
            else if (c->kind == CONN_CLIENT && !c->closing && c->c.state == CS_H2)
                arc_px__h2_drain(w, c);     /* GOAWAY: running streams finish */
        }
    }
}

static void close_everything(struct arc_worker *w)
{
    for (size_t ch = 0; ch < w->slab.n_chunks; ch++)
        for (size_t i = 0; i < SLAB_CHUNK; i++) {
            struct arc_conn *c = &w->slab.chunks[ch][i];
            if (c->kind && !c->closing)
                arc_px__conn_close(w, c);
        }
}

/*
 * After a burst (a connect storm, a spike of exchanges and upstream
 * connections) its memory is free again but stays resident: glibc gives
 * back only the top of a heap, and the burst's blocks lie under ones that
 * outlive it (the connections that stay). Idle keep-alive connections then
 * cost what the burst left behind rather than what they hold. Once a burst
 * has subsided (TRIM_DROP fewer live connections and exchanges than at its
 * peak, and no longer falling), the worker's caches are cut back and
 * malloc_trim(0) hands the free pages of every arena back to the kernel. It walks the free lists, so it runs only
 * then and at most every TRIM_EVERY_MS: never on a steady worker.
 */
#define TRIM_DROP 1024
#define TRIM_SETTLE_MS 200
#define TRIM_EVERY_MS 1000
/* Recycled exchanges and output blocks kept past a burst (a busy worker
 * refills its caches from these without malloc). */
#define TRIM_KEEP 32

static void maybe_trim(struct arc_worker *w)
{
    size_t live = w->slab.used + w->n_exchanges;
    if (live > w->trim_peak)
        w->trim_peak = live;
    if (live + 16 < w->trim_last_live)
        w->trim_settle_ms = w->now_ms + TRIM_SETTLE_MS;     /* still falling */
    w->trim_last_live = live;
    if (w->trim_peak - live < TRIM_DROP || w->now_ms < w->trim_settle_ms ||
        w->now_ms < w->trim_ms + TRIM_EVERY_MS)
        return;
    /* The caches filled up during the burst: their blocks are scattered
     * over pages that could otherwise go back. */
    arc_px__ex_pool_shrink(w, TRIM_KEEP);
    arc_px__outblk_pool_shrink(w, TRIM_KEEP);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    w->trim_peak = live;
    w->trim_ms = w->now_ms;
}

/* Gauges the worker publishes every tick (the admin thread must not read
 * the worker's own fields). */
static void metrics_tick(struct arc_worker *w)
{
    arc_counter *r = w->metrics.ring;
    arc_m_set(&w->metrics.exchanges, w->n_exchanges);
    arc_m_set(&r[ARC_MR_SQ_FULL], arc_ring_sq_full);
    arc_m_set(&r[ARC_MR_CQ_DROPPED], w->ring.cq.koverflow ? IO_URING_READ_ONCE(*w->ring.cq.koverflow) : 0);
    arc_m_set(&r[ARC_MR_BUF_FREE], w->br.in_kernel);
    arc_m_set(&r[ARC_MR_BUF_TOTAL], w->br.count);
}

static void on_tick(struct arc_worker *w, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        arm_tick(w);
    metrics_tick(w);
    arc_tw_advance(&w->tw, w->now_ms);
    arc_px__hh_tick(w);
    maybe_trim(w);
    for (size_t i = 0; i < w->n_listen; i++)
        arm_accept(w, i);
}

/* ------------------------------------------------------------ dispatch */

static void on_recv(struct arc_worker *w, struct arc_conn *c, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        c->recv_cancelling = false;
    }
    int res = cqe->res;
    if (res > 0) {
        ARC_ASSERT(cqe->flags & IORING_CQE_F_BUFFER);
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        arc_buf_taken(&w->br, bid);
        const char *p = arc_buf_ptr(&w->br, bid);
        c->recv_full = (uint32_t)res == w->br.size;
        if (c->closing) {
            arc_buf_unref(&w->br, bid);
            return;
        }
        if (c->kind == CONN_CLIENT)
            arc_m_add(arc_m_li(&w->metrics, c->c.listener, ARC_ML_BYTES_IN), (uint64_t)res);
        c->tp->on_recv(w, c, bid, p, (size_t)res);
        arc_buf_unref(&w->br, bid);
        return;
    }
    if (c->closing)
        return;
    if (res == -ENOBUFS) {
        /* Every buffer is in use (held by queued sends or stashes): retry
         * when some come back instead of failing the connection. */
        arc_m_add(&w->metrics.ring[ARC_MR_BUF_EXHAUSTED], 1);
        if (!c->starved) {
            arc_m_add(&w->metrics.ring[ARC_MR_STARVED], 1);
            c->starved = true;
            c->starved_next = w->starved_head;
            w->starved_head = c;
        }
        /* Whoever sits on buffers while waiting for a slow peer gives them
         * back (copies its bytes into memory of its own). */
        arc_px__unpin_stalled(w);
        return;
    }
    if (res == -ECANCELED) {
        /* Our pause finished: the pump re-arms once input is wanted again. */
        arc_px__conn_pump(w, c);
        return;
    }
    {
        if (res == 0) {
            c->eof = true;
            /* The EOF comes after the bytes still stashed: keep it in order. */
            if (c->stash_n) {
                c->eof_pending = true;
                return;
            }
        }
        arc_px__conn_eof(w, c, res);
    }
}

static void dispatch(struct arc_worker *w, struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    enum op_kind k = UD_KIND(ud);
    switch (k) {
    case OP_IGNORE:
        return;
    case OP_ACCEPT:
        on_accept(w, cqe);
        return;
    case OP_TICK:
        on_tick(w, cqe);
        return;
    case OP_GLWAKE:
        arc_px__gl_on_event(w, cqe->res);
        return;
    default:
        break;
    }
    struct arc_conn *c = arc_px__conn_get(w, UD_IDX(ud));
    if (!c || c->gen != UD_GEN(ud) || !c->kind) {
        /* Stale: the slot moved on. Give back any buffer the kernel picked. */
        if (k == OP_RECV && cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
            uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            arc_buf_taken(&w->br, bid);
            arc_buf_unref(&w->br, bid);
        }
        return;
    }
    /* A multishot receive stays in flight until its final completion. */
    if (!(k == OP_RECV && (cqe->flags & IORING_CQE_F_MORE))) {
        ARC_ASSERT(c->ops > 0);
        c->ops--;
    }
    switch (k) {
    case OP_RECV:
        on_recv(w, c, cqe);
        break;
    case OP_SEND:
        if (c->closing)
            c->send_armed = false;
        else
            arc_px__on_send(w, c, cqe->res);
        break;
    case OP_CONNECT:
        if (!c->closing)
            arc_px__up_connected(w, c, cqe->res);
        break;
    case OP_CLOSE:
        break;
    default:
        break;
    }
    if (c->closing && c->kind)
        arc_px__conn_on_closed(w, c);
}

static void retry_starved(struct arc_worker *w)
{
    /* (may_pin keeps more than a quarter of the buffers in the kernel, so
     * this threshold is always reachable) */
    if (!w->starved_head || w->br.in_kernel < ARC_MIN(STARVED_RETRY_MIN, w->br.count / 4 + 1))
        return;
    struct arc_conn *c = w->starved_head;
    w->starved_head = NULL;
    while (c) {
        struct arc_conn *next = c->starved_next;
        c->starved = false;
        c->starved_next = NULL;
        arc_px__conn_pump(w, c);
        c = next;
    }
}

/* ------------------------------------------------------------ thread */

/* Grows a table of `n` elements of `size` bytes to `want` (new ones zeroed). */
static int grow(void **tab, size_t *n, size_t want, size_t size)
{
    if (want <= *n)
        return 0;
    char *t = realloc(*tab, want * size);
    if (!t)
        return -1;
    memset(t + *n * size, 0, (want - *n) * size);
    *tab = t;
    *n = want;
    return 0;
}

/* Sizes the worker's tables for the identities snapshot `s` carries (they
 * only grow, so an exchange pinned to an older snapshot still finds its
 * rows): a load balancer per upstream id, a pool per endpoint id, metrics
 * rows per route and upstream id. An upstream gets its load balancer the
 * first time a snapshot names it. */
/* What a load balancer is built from: its algorithm and the endpoints
 * (identity and weight, in order, since picks are indexes into them). */
static uint64_t lb_def(const struct arc_upstream_rt *u)
{
    uint64_t h = 1469598103934665603ull;
    uint64_t v[5] = { (uint64_t)u->conf->lb, u->conf->peak_ewma_decay, u->n_eps,
                      u->conf->lb_virtual_nodes, u->conf->lb_table_size };
    for (size_t i = 0; i < 5 + 2 * u->n_eps; i++) {
        uint64_t x = i < 5 ? v[i] : (i - 5) % 2 == 0 ? u->eps[(i - 5) / 2].id
                                                     : u->eps[(i - 5) / 2].weight;
        h = (h ^ x) * 1099511628211ull;
    }
    return h;
}

/* Sizes the worker's tables for the identities snapshot `s` carries (they
 * only grow, so an exchange pinned to an older snapshot still finds its
 * rows): a load balancer per upstream id, a pool per endpoint id, metrics
 * rows per route and upstream id. An upstream gets its load balancer the
 * first time a snapshot names it, and a new one when a reload changes its
 * endpoints or algorithm (exchanges started on the old one then report to
 * nobody: wup.gen). */
static int tables_fit(struct arc_worker *w, const struct arc_snapshot *s)
{
    size_t n_eps = w->n_pools;
    if (grow((void **)&w->ups, &w->n_ups, s->n_up_ids, sizeof(*w->ups)) < 0 ||
        grow((void **)&w->pools, &n_eps, s->n_ep_ids, sizeof(*w->pools)) < 0 ||
        arc_metrics_shard_fit(&w->metrics, s->n_route_ids, s->n_up_ids, s->n_ep_ids,
                              w->n_listen) < 0 ||
        arc_htable_fit(&w->health, s->n_ep_ids) < 0 ||
        grow((void **)&w->budgets, &w->n_budgets, s->n_route_ids, sizeof(*w->budgets)) < 0)
        return -1;
    w->n_pools = n_eps;
    if (s->limits.max_headers + 1 > w->n_hdrs) {
        struct arc_h1_header *h = calloc(s->limits.max_headers + 1, sizeof(*h));
        if (!h)
            return -1;
        free(w->hdrs);
        w->hdrs = h;
        w->n_hdrs = s->limits.max_headers + 1;
    }
    for (size_t i = 0; i < w->n_ups; i++)
        w->ups[i].rt = NULL;
    for (size_t i = 0; i < s->n_ups; i++) {
        const struct arc_upstream_rt *u = &s->ups[i];
        struct wup *wu = &w->ups[u->id];
        wu->rt = u;
        if (arc_px__health_sync(w, wu) < 0)
            return -1;
        uint64_t def = lb_def(u);
        if (wu->live && wu->def == def)
            continue;
        if (u->n_eps == 0) {            /* discovery: dns before its first answer */
            if (wu->live)
                arc_lb_dispose(&wu->lb);
            wu->live = false;
            wu->def = def;
            wu->gen++;
            continue;
        }
        uint32_t weights[u->n_eps];
        const char *names[u->n_eps];
        for (size_t e = 0; e < u->n_eps; e++) {
            weights[e] = u->eps[e].weight;
            names[e] = u->eps[e].text;
        }
        struct arc_lb lb;
        if (arc_lb_init(&lb, u->conf->lb, weights, u->n_eps, u->conf->peak_ewma_decay,
                        0x9e3779b97f4a7c15ULL * (w->id + 1) + u->id) < 0)
            return -1;
        if (arc_lb_build_hash(&lb, names, u->conf->lb_virtual_nodes, u->conf->lb_table_size) < 0) {
            arc_lb_dispose(&lb);
            return -1;
        }
        if (wu->live)
            arc_lb_dispose(&wu->lb);
        wu->lb = lb;
        wu->live = true;
        wu->def = def;
        wu->gen++;
    }
    return 0;
}

/* Adopts the published snapshot when it is not ours (top of the loop):
 * tables grow to fit it, pooled connections follow it or close, new
 * exchanges start on it; running ones finish on the snapshot they pinned. */
static void adopt(struct arc_worker *w)
{
    struct arc_snapshot *ns = arc_snapshot_acquire();
    if (!ns || ns == w->snap || ns->generation == w->adopt_failed) {
        arc_snapshot_unref(ns);
        return;
    }
    if (tables_fit(w, ns) < 0) {
        arc_log(ARC_LOG_ERROR, "worker %u: out of memory adopting config generation %llu; "
                "still serving generation %llu", w->id, (unsigned long long)ns->generation,
                (unsigned long long)w->snap->generation);
        w->adopt_failed = ns->generation;
        tables_fit(w, w->snap);         /* (only resets what the failed fit touched) */
        arc_snapshot_unref(ns);
        return;
    }
    struct arc_snapshot *old = w->snap;
    w->snap = ns;
    w->max_conns = ns->cfg->node.max_connections;
    if (arc_px__hh_fit(w) < 0)
        arc_log(ARC_LOG_ERROR, "worker %u: out of memory for the heavy-hitter sketch; "
                "heavy hitters off on this worker", w->id);
    arc_px__pools_adopt(w);
    /* The plugins' ticks (and their root contexts' calls) follow the worker's snapshot. */
    arc_plugin_ticks_stop(old->plugins, w->id);
    arc_plugin_ticks_start(ns->plugins, w->id, &w->tw, w->now_ms, arc_px__callout_root, ns);
    arc_snapshot_unref(old);
}

static int worker_setup(struct arc_worker *w)
{
    const struct arc_config *cfg = w->snap->cfg;
    struct arc_ring_opts ro = {
        .entries = cfg->uring.uring_entries,
        .sqpoll = cfg->uring.sqpoll,
        .sqpoll_idle_ms = cfg->uring.sqpoll_idle_ms,
        .single_issuer = true,
    };
    int rc = arc_ring_init(&w->ring, &ro);
    if (rc < 0) {
        snprintf(w->errmsg, sizeof(w->errmsg), "worker %u: io_uring setup: %s", w->id, strerror(-rc));
        return -1;
    }
    rc = arc_bufring_init(&w->br, &w->ring, 0, cfg->uring.buffer_count, cfg->uring.buffer_size);
    if (rc < 0) {
        snprintf(w->errmsg, sizeof(w->errmsg), "worker %u: provided buffers (%u x %u): %s",
                 w->id, cfg->uring.buffer_count, cfg->uring.buffer_size, strerror(-rc));
        return -1;
    }
    w->now_ns = arc_now_ns();
    w->now_ms = w->now_ns / 1000000u;
    arc_tw_init(&w->tw, w->now_ms, TICK_MS);
    w->tls_plain = malloc(TLS_PLAIN_BUF);
    if (!w->tls_plain)
        return -1;
    if (tables_fit(w, w->snap) < 0 || arc_px__hh_fit(w) < 0 || arc_px__gl_worker_init(w) < 0)
        return -1;
    return 0;
}

static void worker_teardown(struct arc_worker *w)
{
    for (size_t ch = 0; ch < w->slab.n_chunks; ch++) {
        for (size_t i = 0; i < SLAB_CHUNK; i++) {
            arc_px__conn_teardown(w, &w->slab.chunks[ch][i]);
        }
        free(w->slab.chunks[ch]);
    }
    free(w->slab.chunks);
    free(w->slab.free_idx);
    free(w->hdrs);
    free(w->tls_plain);
    free(w->soon);
    arc_px__ex_pool_dispose(w);
    arc_px__outblk_pool_dispose(w);
    arc_px__hh_dispose(w);
    for (size_t i = 0; i < w->n_ups; i++) {
        if (w->ups[i].live)
            arc_lb_dispose(&w->ups[i].lb);
        free(w->ups[i].usable);
        free(w->ups[i].scratch);
    }
    free(w->ups);
    free(w->pools);
    free(w->budgets);
    arc_bufring_dispose(&w->br, &w->ring);
    if (w->ring.ring_fd > 0)
        io_uring_queue_exit(&w->ring);
    arc_px__gl_worker_dispose(w);       /* (after the ring: its read is gone) */
    for (size_t i = 0; i < w->n_listen; i++)
        if (w->listen_fds[i] >= 0)
            close(w->listen_fds[i]);
}

static void *worker_main(void *arg)
{
    struct arc_worker *w = arg;
    tl_worker = w;
    char name[16];
    snprintf(name, sizeof(name), "arc-w%u", w->id);
    pthread_setname_np(pthread_self(), name);
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    if (worker_setup(w) < 0) {
        if (!w->errmsg[0])
            snprintf(w->errmsg, sizeof(w->errmsg), "worker %u: out of memory", w->id);
        atomic_store(&w->ready, -1);
        worker_teardown(w);
        atomic_store(&w->done, 1);
        return NULL;
    }
    arm_tick(w);
    arc_px__gl_arm(w);
    arc_plugin_ticks_start(w->snap->plugins, w->id, &w->tw, arc_now_ms(), arc_px__callout_root,
                           w->snap);
    for (size_t i = 0; i < w->n_listen; i++)
        arm_accept(w, i);
    io_uring_submit(&w->ring);
    atomic_store(&w->ready, 1);

    while (!w->stopping) {
        int rc = io_uring_submit_and_wait(&w->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            arc_log(ARC_LOG_ERROR, "worker %u: io_uring_enter: %s", w->id, strerror(-rc));
            break;
        }
        w->now_ns = arc_now_ns();
        w->now_ms = w->now_ns / 1000000u;
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        w->in_batch = true;
        io_uring_for_each_cqe(&w->ring, head, cqe) {
            dispatch(w, cqe);
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
        w->in_batch = false;
        arc_px__flush_batch(w);
        if (ARC_UNLIKELY(IO_URING_READ_ONCE(*w->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW))
            arc_m_add(&w->metrics.ring[ARC_MR_CQ_OVERFLOW], 1);
        arc_bufring_flush(&w->br);
        retry_starved(w);
        if (!w->draining && arc_snapshot_current() != w->snap)
            adopt(w);

        if (atomic_load_explicit(&g_stop_now, memory_order_relaxed))
            break;
        if (!w->draining && atomic_load_explicit(&g_drain, memory_order_relaxed))
            start_drain(w);
        if (w->draining) {
            if (w->n_clients == 0)
                break;
            if (w->now_ms >= w->drain_deadline) {
                arc_log(ARC_LOG_WARN, "worker %u: drain timeout, closing %zu connections",
                        w->id, w->n_clients);
                break;
            }
        }
    }
    /* Close what is left and let the kernel finish those operations so no
     * SQE points into memory we are about to free. */
    arc_plugin_ticks_stop(w->snap->plugins, w->id);
    close_everything(w);
    io_uring_submit(&w->ring);
    for (int spins = 0; spins < 100 && w->slab.used > 0; spins++) {
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 10 * 1000000L };
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        unsigned head, n = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe) {
            dispatch(w, cqe);
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
    }
    arc_px__callouts_dispose(w);
    worker_teardown(w);
    atomic_store(&w->done, 1);
    return NULL;
}

bool arc_worker_done(struct arc_worker *w)
{
    return atomic_load(&w->done) != 0;
}

struct arc_worker *arc_worker_start(unsigned id, int cpu, struct arc_snapshot *snap,
                                    int *listen_fds, size_t n_listen, uint32_t max_conns,
                                    char *err, size_t errlen)
{
    /* The metrics shard inside is cache-line aligned (no line shared with
     * another worker's): so must the worker be. */
    struct arc_worker *w = aligned_alloc(_Alignof(struct arc_worker),
                                         (sizeof(*w) + 63) & ~(size_t)63);
    if (w)
        memset(w, 0, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->id = id;
    w->cpu = cpu;
    w->max_conns = max_conns;
    arc_snapshot_ref(snap);
    w->snap = snap;
    w->n_listen = n_listen;
    w->listen_fds = calloc(n_listen ? n_listen : 1, sizeof(int));
    w->accept_armed = calloc(n_listen ? n_listen : 1, sizeof(bool));
    w->hh_pub = arc_px__hh_pub_new(id);
    if (!w->listen_fds || !w->accept_armed || !w->hh_pub || arc_guard_attach(id, snap->cfg->guard.max_tracked_addresses) < 0 ||
        arc_metrics_shard_init(&w->metrics) < 0) {
        snprintf(err, errlen, "out of memory");
        arc_worker_free(w);
        return NULL;
    }
    memcpy(w->listen_fds, listen_fds, n_listen * sizeof(int));
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        arc_worker_free(w);
        return NULL;
    }
    return w;
}

bool arc_worker_ready(struct arc_worker *w)
{
    return atomic_load(&w->ready) != 0;
}

const char *arc_worker_error(struct arc_worker *w)
{
    return atomic_load(&w->ready) < 0 ? w->errmsg : NULL;
}

struct arc_metrics_shard *arc_worker_metrics(struct arc_worker *w)
{
    return &w->metrics;
}

const struct arc_htable *arc_worker_health(struct arc_worker *w)
{
    return &w->health;
}

void arc_workers_drain(uint64_t drain_ms)
{
    atomic_store(&g_drain_ms, drain_ms);
    atomic_store(&g_drain, 1);
}

void arc_workers_stop_now(void)
{
    atomic_store(&g_stop_now, 1);
}

void arc_worker_join(struct arc_worker *w)
{
    pthread_join(w->thread, NULL);
}

void arc_worker_free(struct arc_worker *w)
{
    if (!w)
        return;
    arc_metrics_shard_dispose(&w->metrics);
    arc_htable_dispose(&w->health);
    free(w->listen_fds);
    free(w->accept_armed);
    arc_px__hh_pub_free(w->id, w->hh_pub);
    if (w->snap)
        arc_snapshot_unref(w->snap);
    free(w);
}
