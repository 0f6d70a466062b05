/*
 * The global rate-limit tier's Redis client (rate_limits.global): one
 * thread per process ("arc-redis") owning one non-blocking connection to
 * Redis, and per-worker single-producer single-consumer rings.
 *
 *   worker 0 ──refill request──▶ ring ─┐                    ┌─ one connection,
 *   worker 1 ──refill request──▶ ring ─┼─▶ arc-redis thread ─┤  calls pipelined
 *   worker N ──refill request──▶ ring ─┘   (poll, eventfd)  └─ EVALSHA / EVAL
 *        ▲                                      │
 *        └──── reply ring + eventfd (a read ◀───┘
 *              armed on the worker's io_uring)
 *
 * Why one thread and one connection rather than one connection per worker
 * on its io_uring: Redis sees one connection per node, however many
 * workers; every refill pending from any worker goes out in one write (one
 * pipelined batch); the Redis timeout is enforced by the thread's poll
 * with millisecond precision (a worker's timer wheel turns every 20 ms);
 * and the worker core gains only one eventfd read. Workers never block and
 * take no lock: they post to their ring (plain release stores) and write
 * the thread's eventfd, once per refill, not per request (leases).
 *
 * Connection states (the circuit breaker of limit/redis.h decides when a
 * connection may be tried):
 *
 *   DOWN ──breaker allows──▶ CONNECTING ──connected──▶ HANDSHAKE (AUTH, SELECT, PING)
 *   HANDSHAKE ──PONG──▶ READY (breaker → CLOSED; workers ask Redis again)
 *   any ──error, close, a call older than timeout, handshake older than
 *        circuit_open──▶ DOWN (breaker → OPEN; every call in flight answered
 *        "failed": its requests take the fallback)
 *
 * Workers read `ready` (a relaxed load): while it is 0 they do not ask and
 * use the fallback at once. Transitions are logged and counted.
 */
#include "core/log.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "limit/redis.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GL_RING 1024            /* per worker, each direction (power of two) */
#define GL_INFLIGHT 8192        /* calls in flight on the connection (power of two) */
#define GL_MAX_WORKERS 1024

struct gl_ringside {
    _Alignas(64) _Atomic uint32_t head;     /* producer */
    _Alignas(64) _Atomic uint32_t tail;     /* consumer */
};

struct gl_wk {
    struct gl_ringside rq;                  /* worker → thread */
    struct arc_gl_req req[GL_RING];
    struct gl_ringside rp;                  /* thread → worker */
    struct arc_gl_rep rep[GL_RING];
    int efd;                                /* wakes the worker (its io_uring reads it) */
    bool signal;                            /* thread: replies posted this round */
};

enum { K_HS, K_TAKE };

struct inflight {
    uint8_t kind;
    uint16_t worker;
    uint64_t sent_ns;
    struct arc_gl_req r;
};

enum gl_cstate { C_DOWN, C_CONNECTING, C_HANDSHAKE, C_READY };

static struct {
    struct arc_rl_global_conf conf;
    size_t n_workers;
    struct gl_wk *wk[GL_MAX_WORKERS];
    int efd;                                /* wakes the thread */
    pthread_t thread;
    bool started;
    _Atomic int stop;
    _Atomic int ready;
    /* thread-owned */
    enum gl_cstate cs;
    int fd;
    uint64_t conn_started_ns;
    redisReader *rd;
    char *out;
    size_t out_len, out_cap;
    struct inflight *fl;
    uint32_t fl_head, fl_tail;
    struct arc_rl_breaker cb;
    /* metrics (written by the thread only) */
    _Atomic uint64_t m_calls, m_errors, m_timeouts, m_noscript, m_opened, m_closed;
    _Atomic int m_state;
} G = { .efd = -1, .fd = -1 };

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* ------------------------------------------------------------ worker side */

bool arc_px__gl_enabled(void)
{
    return G.started;
}

bool arc_px__gl_ready(void)
{
    return atomic_load_explicit(&G.ready, memory_order_relaxed) != 0;
}

const struct arc_rl_global_conf *arc_px__gl_conf(void)
{
    return &G.conf;
}

int arc_px__gl_efd(unsigned worker)
{
    return worker < G.n_workers && G.wk[worker] ? G.wk[worker]->efd : -1;
}

bool arc_px__gl_post(unsigned worker, const struct arc_gl_req *r)
{
    struct gl_wk *k = worker < G.n_workers ? G.wk[worker] : NULL;
    if (!k)
        return false;
    uint32_t h = atomic_load_explicit(&k->rq.head, memory_order_relaxed);
    if (h - atomic_load_explicit(&k->rq.tail, memory_order_acquire) >= GL_RING)
        return false;
    k->req[h & (GL_RING - 1)] = *r;
    atomic_store_explicit(&k->rq.head, h + 1, memory_order_release);
    uint64_t one = 1;
    ssize_t n = write(G.efd, &one, sizeof(one));
    (void)n;
    return true;
}

size_t arc_px__gl_replies(unsigned worker, struct arc_gl_rep *out, size_t cap)
{
    struct gl_wk *k = worker < G.n_workers ? G.wk[worker] : NULL;
    if (!k)
        return 0;
    uint32_t t = atomic_load_explicit(&k->rp.tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&k->rp.head, memory_order_acquire);
    size_t n = 0;
    while (t != h && n < cap)
        out[n++] = k->rep[t++ & (GL_RING - 1)];
    atomic_store_explicit(&k->rp.tail, t, memory_order_release);
    return n;
}

/* ------------------------------------------------------------ thread */

static void reply(uint16_t worker, const struct arc_gl_req *r, bool ok, uint32_t granted,
                  uint64_t retry_us)
{
    struct gl_wk *k = worker < G.n_workers ? G.wk[worker] : NULL;
    if (!k)
        return;
    uint32_t h = atomic_load_explicit(&k->rp.head, memory_order_relaxed);
    /* (a worker holds at most one call per lease entry in flight, and
     * drains on every wake: a full ring means it stopped; drop) */
    if (h - atomic_load_explicit(&k->rp.tail, memory_order_acquire) >= GL_RING)
        return;
    k->rep[h & (GL_RING - 1)] = (struct arc_gl_rep){ .slot = r->slot, .gen = r->gen,
                                                     .ok = ok, .granted = granted,
                                                     .retry_us = retry_us };
    atomic_store_explicit(&k->rp.head, h + 1, memory_order_release);
    k->signal = true;
}

static void signal_workers(void)
{
    for (size_t i = 0; i < G.n_workers; i++) {
        struct gl_wk *k = G.wk[i];
        if (k && k->signal) {
            k->signal = false;
            uint64_t one = 1;
            ssize_t n = write(k->efd, &one, sizeof(one));
            (void)n;
        }
    }
}

static bool out_append(const char *p, size_t n)
{
    if (G.out_len + n > G.out_cap) {
        size_t cap = G.out_cap ? G.out_cap : 16384;
        while (cap < G.out_len + n)
            cap *= 2;
        char *o = realloc(G.out, cap);
        if (!o)
            return false;
        G.out = o;
        G.out_cap = cap;
    }
    memcpy(G.out + G.out_len, p, n);
    G.out_len += n;
    return true;
}

static bool fl_push(const struct inflight *f)
{
    if (G.fl_head - G.fl_tail >= GL_INFLIGHT)
        return false;
    G.fl[G.fl_head++ & (GL_INFLIGHT - 1)] = *f;
    return true;
}

static bool send_take(const struct inflight *f, bool eval)
{
    char small[1024];
    size_t n = arc_rl_redis_take(small, sizeof(small), eval, f->r.key, f->r.klen, f->r.qps,
                                 f->r.burst, f->r.want);
    if (n <= sizeof(small))
        return out_append(small, n);
    char *big = malloc(n);
    if (!big)
        return false;
    arc_rl_redis_take(big, n, eval, f->r.key, f->r.klen, f->r.qps, f->r.burst, f->r.want);
    bool ok = out_append(big, n);
    free(big);
    return ok;
}

static void publish_state(void)
{
    atomic_store_explicit(&G.m_state, (int)G.cb.state, memory_order_relaxed);
    atomic_store_explicit(&G.ready, G.cs == C_READY && G.cb.state == ARC_CB_CLOSED,
                          memory_order_relaxed);
}

/* The connection is given up: every call in flight fails (its requests
 * take the fallback), the breaker opens. */
static void fail(const char *why, uint64_t now)
{
    if (G.fd >= 0)
        close(G.fd);
    G.fd = -1;
    for (; G.fl_tail != G.fl_head; G.fl_tail++) {
        struct inflight *f = &G.fl[G.fl_tail & (GL_INFLIGHT - 1)];
        if (f->kind == K_TAKE)
            reply(f->worker, &f->r, false, 0, 0);
    }
    G.fl_head = G.fl_tail = 0;
    G.out_len = 0;
    if (G.rd)
        redisReaderFree(G.rd);
    G.rd = NULL;
    bool was_ready = G.cs == C_READY;
    G.cs = C_DOWN;
    if (arc_rl_cb_result(&G.cb, false, now)) {
        bump(&G.m_opened);
        arc_log(ARC_LOG_WARN, "rate_limits.global: redis %s: %s; circuit open for %llu ms, "
                "global limits use their fallback", G.conf.address.text, why,
                (unsigned long long)G.conf.circuit_open);
    } else if (was_ready) {
        arc_log(ARC_LOG_INFO, "rate_limits.global: redis %s: %s", G.conf.address.text, why);
    }
    publish_state();
    signal_workers();
}

static void start_connect(uint64_t now)
{
    G.fd = socket(G.conf.address.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (G.fd < 0) {
        fail("socket failed", now);
        return;
    }
    int one = 1;
    setsockopt(G.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    G.conn_started_ns = now;
    G.rd = redisReaderCreate();
    if (!G.rd) {
        fail("out of memory", now);
        return;
    }
    int rc = connect(G.fd, (const struct sockaddr *)&G.conf.address.ss, G.conf.address.len);
    if (rc < 0 && errno != EINPROGRESS) {
        fail(strerror(errno), now);
        return;
    }
    G.cs = C_CONNECTING;
}

static void handshake(uint64_t now)
{
    struct inflight f = { .kind = K_HS, .sent_ns = now };
    char buf[600], db[16];
    size_t n;
    if (G.conf.password[0]) {
        const char *argv[] = { "AUTH", G.conf.password };
        size_t lens[] = { 4, strlen(G.conf.password) };
        n = arc_resp_cmd(buf, sizeof(buf), 2, argv, lens);
        out_append(buf, n);
        fl_push(&f);
    }
    if (G.conf.db) {
        snprintf(db, sizeof(db), "%u", G.conf.db);
        const char *argv[] = { "SELECT", db };
        size_t lens[] = { 6, strlen(db) };
        n = arc_resp_cmd(buf, sizeof(buf), 2, argv, lens);
        out_append(buf, n);
        fl_push(&f);
    }
    const char *argv[] = { "PING" };
    size_t lens[] = { 4 };
    n = arc_resp_cmd(buf, sizeof(buf), 1, argv, lens);
    out_append(buf, n);
    f.kind = K_HS;
    f.r.want = 1;                       /* (marks the PING: the last of the handshake) */
    fl_push(&f);
    G.cs = C_HANDSHAKE;
}

static void take_requests(uint64_t now)
{
    for (size_t i = 0; i < G.n_workers; i++) {
        struct gl_wk *k = G.wk[i];
        if (!k)
            continue;
        uint32_t t = atomic_load_explicit(&k->rq.tail, memory_order_relaxed);
        uint32_t h = atomic_load_explicit(&k->rq.head, memory_order_acquire);
        for (; t != h; t++) {
            struct inflight f = { .kind = K_TAKE, .worker = (uint16_t)i, .sent_ns = now,
                                  .r = k->req[t & (GL_RING - 1)] };
            if (G.cs != C_READY || G.cb.state != ARC_CB_CLOSED || !fl_push(&f)) {
                reply(f.worker, &f.r, false, 0, 0);
                continue;
            }
            if (!send_take(&f, false)) {
                G.fl_head--;
                reply(f.worker, &f.r, false, 0, 0);
                continue;
            }
            bump(&G.m_calls);
        }
        atomic_store_explicit(&k->rq.tail, t, memory_order_release);
    }
}

static void on_reply(redisReply *r, uint64_t now)
{
    if (G.fl_tail == G.fl_head) {
        fail("unexpected reply", now);
        return;
    }
    struct inflight f = G.fl[G.fl_tail++ & (GL_INFLIGHT - 1)];
    if (f.kind == K_HS) {
        if (r->type == REDIS_REPLY_ERROR) {
            char why[160];
            snprintf(why, sizeof(why), "handshake refused: %.120s", r->str ? r->str : "");
            bump(&G.m_errors);
            fail(why, now);
            return;
        }
        if (f.r.want == 1) {                    /* PONG: ready */
            G.cs = C_READY;
            if (arc_rl_cb_result(&G.cb, true, now)) {
                bump(&G.m_closed);
                arc_log(ARC_LOG_INFO, "rate_limits.global: redis %s is back; circuit closed",
                        G.conf.address.text);
            }
            publish_state();
        }
        return;
    }
    uint32_t granted;
    uint64_t retry;
    switch (arc_rl_redis_reply(r, &granted, &retry)) {
    case ARC_RL_REDIS_OK:
        reply(f.worker, &f.r, true, granted, retry);
        return;
    case ARC_RL_REDIS_NOSCRIPT:
        /* (Redis restarted or SCRIPT FLUSH: EVAL loads it again) */
        bump(&G.m_noscript);
        if (fl_push(&f)) {
            if (send_take(&f, true))
                return;
            G.fl_head--;
        }
        reply(f.worker, &f.r, false, 0, 0);
        return;
    case ARC_RL_REDIS_ERROR:
        break;
    }
    bump(&G.m_errors);
    reply(f.worker, &f.r, false, 0, 0);
    char why[160];
    snprintf(why, sizeof(why), "error reply: %.120s",
             r->type == REDIS_REPLY_ERROR && r->str ? r->str : "(unexpected shape)");
    fail(why, now);
}

static void do_read(uint64_t now)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(G.fd, buf, sizeof(buf));
        if (n == 0) {
            fail("connection closed", now);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            fail(strerror(errno), now);
            return;
        }
        redisReaderFeed(G.rd, buf, (size_t)n);
        for (;;) {
            void *rep = NULL;
            if (redisReaderGetReply(G.rd, &rep) != REDIS_OK) {
                fail("protocol error", now);
                return;
            }
            if (!rep)
                break;
            on_reply(rep, now);
            freeReplyObject(rep);
            if (G.cs == C_DOWN)
                return;
        }
        if ((size_t)n < sizeof(buf))
            break;
    }
}

static void do_write(uint64_t now)
{
    while (G.out_len) {
        ssize_t n = send(G.fd, G.out, G.out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            fail(strerror(errno), now);
            return;
        }
        memmove(G.out, G.out + n, G.out_len - (size_t)n);
        G.out_len -= (size_t)n;
    }
}

/* A call older than the timeout (or a handshake older than circuit_open):
 * Redis is too slow. */
static void check_deadlines(uint64_t now)
{
    uint64_t tmo = G.conf.timeout * 1000000ull, hs = G.conf.circuit_open * 1000000ull;
    if ((G.cs == C_CONNECTING || G.cs == C_HANDSHAKE) && now - G.conn_started_ns > hs) {
        fail("no answer to the handshake in circuit_open", now);
        return;
    }
    for (uint32_t i = G.fl_tail; i != G.fl_head; i++) {
        struct inflight *f = &G.fl[i & (GL_INFLIGHT - 1)];
        if (f->kind == K_TAKE && now - f->sent_ns > tmo) {
            bump(&G.m_timeouts);
            fail("a call took longer than timeout", now);
            return;
        }
        if (f->kind == K_TAKE)
            break;                      /* (the oldest call decides) */
    }
}

static int poll_timeout_ms(uint64_t now)
{
    uint64_t until = now + 50 * 1000000ull;
    if (G.cs == C_DOWN && G.cb.state == ARC_CB_OPEN && G.cb.reopen_at_ns < until)
        until = G.cb.reopen_at_ns;
    if (G.cs == C_CONNECTING || G.cs == C_HANDSHAKE) {
        uint64_t d = G.conn_started_ns + G.conf.circuit_open * 1000000ull;
        if (d < until)
            until = d;
    }
    for (uint32_t i = G.fl_tail; i != G.fl_head; i++) {
        struct inflight *f = &G.fl[i & (GL_INFLIGHT - 1)];
        if (f->kind == K_TAKE) {
            uint64_t d = f->sent_ns + G.conf.timeout * 1000000ull;
            if (d < until)
                until = d;
            break;
        }
    }
    return until <= now ? 0 : (int)((until - now + 999999) / 1000000);
}

static void *thread_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "arc-redis");
    while (!atomic_load(&G.stop)) {
        uint64_t now = now_ns();
        if (G.cs == C_DOWN && arc_rl_cb_allow(&G.cb, now)) {
            publish_state();
            start_connect(now);
        }
        struct pollfd p[2] = { { .fd = G.efd, .events = POLLIN }, { .fd = -1 } };
        if (G.fd >= 0) {
            p[1].fd = G.fd;
            p[1].events = (short)(POLLIN | (G.cs == C_CONNECTING || G.out_len ? POLLOUT : 0));
        }
        int rc = poll(p, 2, poll_timeout_ms(now));
        now = now_ns();
        if (rc < 0 && errno != EINTR)
            break;
        if (p[0].revents & POLLIN) {
            uint64_t v;
            ssize_t n = read(G.efd, &v, sizeof(v));
            (void)n;
        }
        if (G.fd >= 0 && p[1].revents) {
            if (G.cs == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(G.fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err)
                    fail(strerror(err), now);
                else if (p[1].revents & (POLLOUT | POLLIN))
                    handshake(now);
            }
            if (G.fd >= 0 && G.cs != C_CONNECTING && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
                do_read(now);
        }
        take_requests(now);
        if (G.fd >= 0 && G.cs != C_CONNECTING)
            do_write(now);
        if (G.fd >= 0)
            check_deadlines(now_ns());
        signal_workers();
    }
    if (G.fd >= 0)
        close(G.fd);
    if (G.rd)
        redisReaderFree(G.rd);
    return NULL;
}

int arc_px_gl_start(const struct arc_rl_global_conf *c, size_t n_workers, char *err, size_t len)
{
    if (!c->enabled)
        return 0;
    if (n_workers > GL_MAX_WORKERS) {
        snprintf(err, len, "rate_limits.global: at most %d workers", GL_MAX_WORKERS);
        return -1;
    }
    G.conf = *c;
    G.n_workers = n_workers;
    G.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    G.fl = calloc(GL_INFLIGHT, sizeof(*G.fl));
    if (G.efd < 0 || !G.fl) {
        snprintf(err, len, "rate_limits.global: %s", strerror(errno ? errno : ENOMEM));
        return -1;
    }
    for (size_t i = 0; i < n_workers; i++) {
        G.wk[i] = aligned_alloc(64, (sizeof(struct gl_wk) + 63) & ~(size_t)63);
        if (!G.wk[i]) {
            snprintf(err, len, "rate_limits.global: out of memory");
            return -1;
        }
        memset(G.wk[i], 0, sizeof(struct gl_wk));
        G.wk[i]->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (G.wk[i]->efd < 0) {
            snprintf(err, len, "rate_limits.global: eventfd: %s", strerror(errno));
            return -1;
        }
    }
    arc_rl_cb_init(&G.cb, c->circuit_open * 1000000ull);
    G.cs = C_DOWN;
    int rc = pthread_create(&G.thread, NULL, thread_main, NULL);
    if (rc) {
        snprintf(err, len, "rate_limits.global: pthread_create: %s", strerror(rc));
        return -1;
    }
    G.started = true;
    arc_log(ARC_LOG_INFO, "rate_limits.global: redis %s db=%u timeout=%llums lease=%u "
            "fallback=%s", c->address.text, c->db, (unsigned long long)c->timeout, c->lease,
            c->fallback == ARC_RL_FB_FAIL_OPEN ? "fail_open"
            : c->fallback == ARC_RL_FB_FAIL_CLOSED ? "fail_closed" : "local_share");
    return 0;
}

void arc_px_gl_stop(void)
{
    if (G.started) {
        atomic_store(&G.stop, 1);
        uint64_t one = 1;
        ssize_t n = write(G.efd, &one, sizeof(one));
        (void)n;
        pthread_join(G.thread, NULL);
        G.started = false;
    }
    for (size_t i = 0; i < G.n_workers; i++) {
        if (G.wk[i]) {
            if (G.wk[i]->efd >= 0)
                close(G.wk[i]->efd);
            free(G.wk[i]);
            G.wk[i] = NULL;
        }
    }
    if (G.efd >= 0)
        close(G.efd);
    G.efd = -1;
    free(G.fl);
    G.fl = NULL;
    free(G.out);
    G.out = NULL;
}

void arc_px_gl_render(struct arc_sbuf *m, struct arc_metrics_shard *const *shards, size_t n)
{
    if (!G.started)
        return;
    uint64_t fb = 0, waits = 0;
    for (size_t i = 0; i < n; i++) {
        fb += arc_m_get(&shards[i]->gl_fallback);
        waits += arc_m_get(&shards[i]->gl_waits);
    }
    static const char *const st[] = { "closed", "open", "half_open" };
    int s = atomic_load_explicit(&G.m_state, memory_order_relaxed);
    arc_sbuf_printf(m,
        "# HELP arc_rate_limit_global_calls_total Calls to Redis for leases (rate_limits.global).\n"
        "# TYPE arc_rate_limit_global_calls_total counter\n"
        "arc_rate_limit_global_calls_total %llu\n"
        "# HELP arc_rate_limit_global_errors_total Redis calls that failed, by kind.\n"
        "# TYPE arc_rate_limit_global_errors_total counter\n"
        "arc_rate_limit_global_errors_total{kind=\"error\"} %llu\n"
        "arc_rate_limit_global_errors_total{kind=\"timeout\"} %llu\n"
        "arc_rate_limit_global_errors_total{kind=\"noscript\"} %llu\n"
        "# HELP arc_rate_limit_global_fallbacks_total Requests decided by the fallback "
        "(Redis down, slow or circuit open).\n"
        "# TYPE arc_rate_limit_global_fallbacks_total counter\n"
        "arc_rate_limit_global_fallbacks_total %llu\n"
        "# HELP arc_rate_limit_global_waits_total Requests that waited for a lease refill.\n"
        "# TYPE arc_rate_limit_global_waits_total counter\n"
        "arc_rate_limit_global_waits_total %llu\n"
        "# HELP arc_rate_limit_global_circuit_transitions_total Circuit breaker transitions.\n"
        "# TYPE arc_rate_limit_global_circuit_transitions_total counter\n"
        "arc_rate_limit_global_circuit_transitions_total{to=\"open\"} %llu\n"
        "arc_rate_limit_global_circuit_transitions_total{to=\"closed\"} %llu\n"
        "# HELP arc_rate_limit_global_circuit Circuit breaker state (1 = this state).\n"
        "# TYPE arc_rate_limit_global_circuit gauge\n",
        (unsigned long long)atomic_load(&G.m_calls), (unsigned long long)atomic_load(&G.m_errors),
        (unsigned long long)atomic_load(&G.m_timeouts),
        (unsigned long long)atomic_load(&G.m_noscript), (unsigned long long)fb,
        (unsigned long long)waits, (unsigned long long)atomic_load(&G.m_opened),
        (unsigned long long)atomic_load(&G.m_closed));
    for (int i = 0; i < 3; i++)
        arc_sbuf_printf(m, "arc_rate_limit_global_circuit{state=\"%s\"} %d\n", st[i], s == i);
}
