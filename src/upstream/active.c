/*
 * The health-check thread (see active.h). One probe per endpoint id:
 *
 *   IDLE ──due──▶ CONNECTING ──writable──▶ SENDING ──sent──▶ READING ──status line──▶ IDLE
 *     ▲               └─────────── error, timeout ──────────────┴──────────▶ IDLE (failed)
 *
 * Every transition to IDLE records a pass or a failure and schedules the
 * next check. Published per endpoint: down, and for the admin API the last
 * status and the counts (relaxed atomics; a reader may see them a check
 * apart, never torn).
 */
#include "core/log.h"
#include "upstream/active.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/snapshot.h"
#include "http1/http1.h"

enum phase { P_IDLE, P_CONNECTING, P_SENDING, P_READING };

struct pub {                            /* what readers see, per endpoint id */
    _Atomic uint8_t down;
    _Atomic int32_t last_status;
    _Atomic uint32_t passes, fails;
    _Atomic uint64_t checks;
};

struct probe {                          /* the thread's own, per endpoint id */
    enum phase phase;
    int fd;
    uint64_t due, deadline;
    char req[1200];
    size_t req_len, sent;
    char buf[2048];
    size_t len;
    uint32_t pass_run, fail_run;
    bool down;
    uint64_t round;                     /* last round the config named it */
};

static _Atomic(struct pub *) g_pub;
static _Atomic size_t g_n;
static _Atomic uint64_t g_gen;
static _Atomic int g_stop;
static pthread_t g_thread;
static bool g_started;
/* earlier arrays (a reader may still hold one): freed at stop */
static struct pub **g_retired;
static size_t g_n_retired;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t arc_active_gen(void)
{
    return atomic_load_explicit(&g_gen, memory_order_acquire);
}

static struct pub *pub_row(uint32_t id)
{
    size_t n = atomic_load_explicit(&g_n, memory_order_acquire);
    if (id >= n)
        return NULL;
    return &atomic_load_explicit(&g_pub, memory_order_acquire)[id];
}

bool arc_active_down(uint32_t ep_id)
{
    struct pub *p = pub_row(ep_id);
    return p && atomic_load_explicit(&p->down, memory_order_relaxed);
}

bool arc_active_get(uint32_t ep_id, struct arc_active_view *out)
{
    struct pub *p = pub_row(ep_id);
    if (!p)
        return false;
    out->down = atomic_load_explicit(&p->down, memory_order_relaxed);
    out->last_status = atomic_load_explicit(&p->last_status, memory_order_relaxed);
    out->passes = atomic_load_explicit(&p->passes, memory_order_relaxed);
    out->fails = atomic_load_explicit(&p->fails, memory_order_relaxed);
    out->checks = atomic_load_explicit(&p->checks, memory_order_relaxed);
    return true;
}

bool arc_active_expect(const uint16_t *lo, const uint16_t *hi, size_t n, int status)
{
    for (size_t i = 0; i < n; i++)
        if (status >= lo[i] && status <= hi[i])
            return true;
    return false;
}

/* ------------------------------------------------------------ the thread */

static struct probe *probes;
static size_t n_probes;

static int fit(size_t n)
{
    if (n <= n_probes)
        return 0;
    /* The published rows first: a probe row never exists without its own. */
    struct pub *old = atomic_load_explicit(&g_pub, memory_order_relaxed);
    size_t have = atomic_load_explicit(&g_n, memory_order_relaxed);
    struct pub *v = calloc(n, sizeof(*v));
    struct pub **r = old ? realloc(g_retired, (g_n_retired + 1) * sizeof(*r)) : g_retired;
    if (!v || (old && !r)) {
        free(v);
        return -1;
    }
    g_retired = r;
    struct probe *p = realloc(probes, n * sizeof(*p));
    if (!p) {
        free(v);
        return -1;
    }
    for (size_t i = n_probes; i < n; i++)
        p[i] = (struct probe){ .fd = -1 };
    probes = p;
    n_probes = n;
    if (old) {
        memcpy(v, old, have * sizeof(*v));
        g_retired[g_n_retired++] = old;
    }
    /* Array first, row count second (readers load them the other way). */
    atomic_store_explicit(&g_pub, v, memory_order_release);
    atomic_store_explicit(&g_n, n, memory_order_release);
    return 0;
}

static void bump(_Atomic uint32_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* A check ended: pass or fail, and the next one scheduled. */
static void finish(uint32_t id, const struct arc_upstream_rt *up, bool ok, int status,
                   uint64_t now)
{
    struct probe *p = &probes[id];
    const struct arc_active_conf *ac = &up->conf->active;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->phase = P_IDLE;
    /* jitter: interval minus up to 10 %, so checks of many endpoints spread */
    uint64_t j = ac->interval / 10;
    p->due = now + ac->interval - (j ? (uint64_t)rand() % (j + 1) : 0);
    struct pub *pb = &atomic_load_explicit(&g_pub, memory_order_relaxed)[id];
    atomic_store_explicit(&pb->last_status, status, memory_order_relaxed);
    atomic_store_explicit(&pb->checks, atomic_load_explicit(&pb->checks, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (ok) {
        p->pass_run++;
        p->fail_run = 0;
        bump(&pb->passes);
        atomic_store_explicit(&pb->fails, 0, memory_order_relaxed);
    } else {
        p->fail_run++;
        p->pass_run = 0;
        bump(&pb->fails);
        atomic_store_explicit(&pb->passes, 0, memory_order_relaxed);
    }
    bool down = p->down;
    if (!p->down && p->fail_run >= ac->fail_after)
        down = true;
    else if (p->down && p->pass_run >= ac->pass_after)
        down = false;
    if (down == p->down)
        return;
    p->down = down;
    atomic_store_explicit(&pb->down, down, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_gen, 1, memory_order_release);
    const char *addr = "?";
    for (size_t k = 0; k < up->n_eps; k++)
        if (up->eps[k].id == id)
            addr = up->eps[k].text;
    if (down && status < 0)
        arc_log(ARC_LOG_WARN, "health: upstream %s: endpoint %s is down (%u failed checks, "
                "the last without an answer)", up->conf->name, addr, p->fail_run);
    else if (down)
        arc_log(ARC_LOG_WARN, "health: upstream %s: endpoint %s is down (%u failed checks, "
                "the last status %d)", up->conf->name, addr, p->fail_run, status);
    else
        arc_log(ARC_LOG_INFO, "health: upstream %s: endpoint %s is up again (%u passed "
                "checks)", up->conf->name, addr, p->pass_run);
}

static void start(uint32_t id, const struct arc_upstream_rt *up, const struct arc_endpoint_rt *e,
                  uint64_t now)
{
    struct probe *p = &probes[id];
    const struct arc_active_conf *ac = &up->conf->active;
    p->len = p->sent = 0;
    int n = snprintf(p->req, sizeof(p->req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
                     "User-Agent: arc-health\r\nConnection: close\r\n\r\n", ac->path, e->text);
    p->req_len = n > 0 && (size_t)n < sizeof(p->req) ? (size_t)n : 0;
    p->deadline = now + ac->timeout;
    p->fd = socket(e->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0 || !p->req_len) {
        finish(id, up, false, -1, now);
        return;
    }
    int rc = connect(p->fd, (const struct sockaddr *)&e->ss, e->len);
    if (rc < 0 && errno != EINPROGRESS) {
        finish(id, up, false, -1, now);
        return;
    }
    p->phase = rc == 0 ? P_SENDING : P_CONNECTING;
}

/* Progress on a readable/writable probe. */
static void step(uint32_t id, const struct arc_upstream_rt *up, short rev, uint64_t now)
{
    struct probe *p = &probes[id];
    if (p->phase == P_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
            finish(id, up, false, -1, now);
            return;
        }
        p->phase = P_SENDING;
    }
    if (p->phase == P_SENDING) {
        ssize_t w = send(p->fd, p->req + p->sent, p->req_len - p->sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            finish(id, up, false, -1, now);
            return;
        }
        if (w > 0)
            p->sent += (size_t)w;
        if (p->sent == p->req_len)
            p->phase = P_READING;
        return;
    }
    if (p->phase != P_READING || !(rev & (POLLIN | POLLHUP | POLLERR)))
        return;
    ssize_t r = recv(p->fd, p->buf + p->len, sizeof(p->buf) - p->len, 0);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r > 0)
        p->len += (size_t)r;
    /* The head is all a check needs; the body (if any) is not read. */
    struct arc_h1_limits lim = { .max_header_bytes = sizeof(p->buf), .max_headers = 64,
                                 .max_uri = 1024 };
    struct arc_h1_header hdrs[64];
    struct arc_h1_response resp;
    enum arc_h1_status st = arc_h1_parse_response(p->buf, p->len, &lim, false, false, hdrs,
                                                  64, &resp);
    if (st == ARC_H1_OK && resp.status >= 200) {
        const struct arc_active_conf *ac = &up->conf->active;
        finish(id, up, arc_active_expect(ac->expect_lo, ac->expect_hi, ac->n_expect, resp.status),
               resp.status, now);
        return;
    }
    if (st == ARC_H1_OK) {              /* a 1xx: the final head follows */
        memmove(p->buf, p->buf + resp.head_len, p->len - resp.head_len);
        p->len -= resp.head_len;
        return;
    }
    if (st != ARC_H1_INCOMPLETE || r <= 0 || p->len == sizeof(p->buf))
        finish(id, up, false, -1, now);
}

static void *run(void *arg)
{
    (void)arg;
    struct pollfd *pfd = NULL;
    uint32_t *pid = NULL;
    const struct arc_upstream_rt **pup = NULL;
    size_t cap = 0;
    uint64_t round = 0;
    srand((unsigned)mono_ms());
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        struct arc_snapshot *s = arc_snapshot_acquire();
        round++;
        size_t n = 0;
        bool any = false;
        uint64_t now = mono_ms();
        if (s && fit(s->n_ep_ids) == 0) {
            for (size_t i = 0; i < s->n_ups; i++) {
                const struct arc_upstream_rt *up = &s->ups[i];
                if (!up->conf->active.enabled)
                    continue;
                any = true;
                for (size_t k = 0; k < up->n_eps; k++) {
                    uint32_t id = up->eps[k].id;
                    struct probe *p = &probes[id];
                    p->round = round;
                    if (p->phase == P_IDLE && now >= p->due)
                        start(id, up, &up->eps[k], now);
                    if (p->phase != P_IDLE && now >= p->deadline)
                        finish(id, up, false, -1, now);
                    if (p->phase == P_IDLE)
                        continue;
                    if (n == cap) {
                        size_t nc = cap ? cap * 2 : 64;
                        struct pollfd *a = realloc(pfd, nc * sizeof(*a));
                        uint32_t *b = a ? realloc(pid, nc * sizeof(*b)) : NULL;
                        const struct arc_upstream_rt **c = b ? realloc(pup, nc * sizeof(*c))
                                                            : NULL;
                        if (a)
                            pfd = a;
                        if (b)
                            pid = b;
                        if (!c)
                            break;
                        pup = c;
                        cap = nc;
                    }
                    pfd[n] = (struct pollfd){ p->fd, p->phase == P_READING ? POLLIN : POLLOUT, 0 };
                    pid[n] = id;
                    pup[n++] = up;
                }
            }
            /* Endpoints the config no longer checks: their probe stops and
             * they count as up (nothing judges them any more). */
            for (size_t id = 0; id < n_probes; id++) {
                struct probe *p = &probes[id];
                if (p->round == round || (p->phase == P_IDLE && !p->down))
                    continue;
                if (p->fd >= 0)
                    close(p->fd);
                p->fd = -1;
                p->phase = P_IDLE;
                p->pass_run = p->fail_run = 0;
                p->due = 0;
                if (p->down) {
                    p->down = false;
                    struct pub *pb = &atomic_load_explicit(&g_pub, memory_order_relaxed)[id];
                    atomic_store_explicit(&pb->down, 0, memory_order_relaxed);
                    atomic_fetch_add_explicit(&g_gen, 1, memory_order_release);
                }
            }
        }
        if (n == 0) {
            /* nothing in flight refers to it: do not hold a reloaded-away
             * config through the wait */
            arc_snapshot_unref(s);
            s = NULL;
        }
        int rc = poll(pfd, n, any ? 20 : 200);
        now = mono_ms();
        for (size_t i = 0; rc > 0 && i < n; i++)
            if (pfd[i].revents && probes[pid[i]].fd == pfd[i].fd)
                step(pid[i], pup[i], pfd[i].revents, now);
        arc_snapshot_unref(s);
    }
    for (size_t id = 0; id < n_probes; id++)
        if (probes[id].fd >= 0)
            close(probes[id].fd);
    free(pfd);
    free(pid);
    free(pup);
    return NULL;
}

int arc_active_start(void)
{
    if (g_started)
        return 0;
    atomic_store(&g_stop, 0);
    int rc = pthread_create(&g_thread, NULL, run, NULL);
    if (rc)
        return -rc;
    pthread_setname_np(g_thread, "arc-health");
    g_started = true;
    return 0;
}

void arc_active_stop(void)
{
    if (!g_started)
        return;
    atomic_store(&g_stop, 1);
    pthread_join(g_thread, NULL);
    g_started = false;
    free(probes);
    probes = NULL;
    n_probes = 0;
    for (size_t i = 0; i < g_n_retired; i++)
        free(g_retired[i]);
    free(g_retired);
    g_retired = NULL;
    g_n_retired = 0;
    atomic_store(&g_n, 0);
    free(atomic_load(&g_pub));
    atomic_store(&g_pub, NULL);
}
