/*
 * The health-check thread (see active.h). One probe per endpoint id:
 *
 *   IDLE ──due──▶ CONNECTING ──writable──▶ SENDING ──sent──▶ READING ──status line──▶ IDLE
 *     ▲               │  (tls) └──▶ HANDSHAKE ──done: request written──▶ READING
 *     ▲               │  (http2, no tls: h2_step moves the session's bytes in
 *     ▲               │   SENDING; the stream's response head ends it)
 *     ▲               └─────────── error, timeout ──────────────┴──────────▶ IDLE (failed)
 *
 * Upstreams with tls are checked over TLS with the upstream's own client
 * context (trust, server name, client certificate, ALPN http/1.1 or h2 by
 * protocol; no session resumption), through the memory-BIO connection of
 * src/tls: the probe moves ciphertext between it and the socket. A probe
 * holds the snapshot whose context it uses until it ends (a reload may
 * free the context otherwise). Upstreams with protocol: http2 are checked
 * with an HTTP/2 client session of src/http2 (I/O-free): one GET stream,
 * judged by its response head; the probe moves the session's bytes
 * (through TLS when there is one).
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
#include "http2/http2.h"
#include "tls/tls.h"

enum phase { P_IDLE, P_CONNECTING, P_SENDING, P_READING, P_HANDSHAKE };

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
    struct arc_tls_conn *tls;           /* TLS upstreams: the connection (must not move) */
    struct arc_snapshot *snap;          /* ... and the snapshot its context lives in */
    struct arc_h2_session *h2;          /* protocol: http2: the session (ud: the id) */
    int h2_status;                      /* its stream's final status, 0 = none yet */
    bool h2_gone;                       /* its stream closed without one */
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

/* Closes the probe's socket and TLS connection (the check is over). */
static void probe_close(struct probe *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->phase = P_IDLE;
    if (p->tls) {
        arc_tls_conn_dispose(p->tls);
        free(p->tls);
        p->tls = NULL;
    }
    if (p->h2) {
        arc_h2_free(p->h2);
        p->h2 = NULL;
    }
    if (p->snap) {
        arc_snapshot_unref(p->snap);
        p->snap = NULL;
    }
}

/* A check ended: pass or fail, and the next one scheduled. */
static void finish(uint32_t id, const struct arc_upstream_rt *up, bool ok, int status,
                   uint64_t now)
{
    struct probe *p = &probes[id];
    const struct arc_active_conf *ac = &up->conf->active;
    probe_close(p);
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

/* protocol: http2 (the session's user data is the probe's id: the probe
 * array may move) */
static void h2_on_response(void *ud, int32_t sid, void *sud, const struct arc_h2_response *r)
{
    (void)sid;
    (void)sud;
    probes[(uintptr_t)ud].h2_status = r->status;
}

static void h2_on_close(void *ud, int32_t sid, void *sud, uint32_t error_code)
{
    (void)sid;
    (void)sud;
    (void)error_code;
    if (!probes[(uintptr_t)ud].h2_status)
        probes[(uintptr_t)ud].h2_gone = true;
}

static const struct arc_h2_callbacks h2_cb = {
    .on_response = h2_on_response, .on_close = h2_on_close,
};

/* The session and its one GET stream (sent once the transport is up). */
static bool h2_open(uint32_t id, const struct arc_upstream_rt *up, const struct arc_endpoint_rt *e)
{
    struct probe *p = &probes[id];
    const struct arc_active_conf *ac = &up->conf->active;
    struct arc_h2_options o = { 0 };
    if (arc_h2_client_new(&h2_cb, (void *)(uintptr_t)id, &o, &p->h2) != ARC_H2_OK) {
        p->h2 = NULL;
        return false;
    }
    p->h2_status = 0;
    p->h2_gone = false;
    static const struct arc_h2_header ua[] = { { ARC_STR_LIT("user-agent"),
                                                 ARC_STR_LIT("arc-health") } };
    struct arc_h2_request rq = {
        .method = ARC_STR_LIT("GET"),
        .scheme = up->tls ? ARC_STR_LIT("https") : ARC_STR_LIT("http"),
        .authority = { e->text, strlen(e->text) },
        .path = { ac->path, strlen(ac->path) },
        .headers = ua, .n_headers = 1, .content_length = -1, .end_stream = true,
    };
    return arc_h2_submit_request(p->h2, &rq, false, NULL) > 0;
}

/* After the session took input: the verdict, or nothing yet. */
static void h2_judge(uint32_t id, const struct arc_upstream_rt *up, bool eof, uint64_t now)
{
    struct probe *p = &probes[id];
    int status = p->h2_status;
    if (status >= 200) {
        const struct arc_active_conf *ac = &up->conf->active;
        finish(id, up, arc_active_expect(ac->expect_lo, ac->expect_hi, ac->n_expect, status),
               status, now);
        return;
    }
    if (p->h2_gone || eof || (!arc_h2_want_read(p->h2) && !arc_h2_want_write(p->h2)))
        finish(id, up, false, -1, now);
}

/* Plain h2c: bytes in, the session's bytes out. */
static void h2_step(uint32_t id, const struct arc_upstream_rt *up, short rev, uint64_t now)
{
    struct probe *p = &probes[id];
    bool eof = false;
    if (rev & (POLLIN | POLLHUP | POLLERR)) {
        uint8_t in[4096];
        ssize_t r = recv(p->fd, in, sizeof(in), 0);
        if ((r < 0 && errno != EAGAIN && errno != EINTR) ||
            (r > 0 && arc_h2_recv(p->h2, in, (size_t)r) < 0)) {
            finish(id, up, false, -1, now);
            return;
        }
        eof = r == 0;
    }
    const uint8_t *q;
    size_t n;
    while ((n = arc_h2_output(p->h2, &q)) > 0) {
        ssize_t w = send(p->fd, q, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            finish(id, up, false, -1, now);
            return;
        }
        arc_h2_sent(p->h2, (size_t)w);
        if ((size_t)w < n)
            break;
    }
    h2_judge(id, up, eof, now);
}

static void start(struct arc_snapshot *s, uint32_t id, const struct arc_upstream_rt *up,
                  const struct arc_endpoint_rt *e, uint64_t now)
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
    if (up->tls) {
        p->tls = calloc(1, sizeof(*p->tls));
        if (!p->tls || arc_tls_conn_init_client(p->tls, up->tls, NULL) < 0) {
            free(p->tls);
            p->tls = NULL;
            finish(id, up, false, -1, now);
            return;
        }
        arc_snapshot_ref(s);
        p->snap = s;
    }
    if (up->conf->protocol == ARC_UP_HTTP2 && !h2_open(id, up, e)) {
        finish(id, up, false, -1, now);
        return;
    }
    int rc = connect(p->fd, (const struct sockaddr *)&e->ss, e->len);
    if (rc < 0 && errno != EINPROGRESS) {
        finish(id, up, false, -1, now);
        return;
    }
    /* (connected at once: the first writable event moves it on all the same) */
    p->phase = P_CONNECTING;
}

/* The head read so far (p->buf) decides, or more is wanted; `eof`: no more
 * will come. */
static void judge(uint32_t id, const struct arc_upstream_rt *up, bool eof, uint64_t now)
{
    struct probe *p = &probes[id];
    /* The head is all a check needs; the body (if any) is not read. */
    struct arc_h1_limits lim = { .max_header_bytes = sizeof(p->buf), .max_headers = 64,
                                 .max_uri = 1024 };
    struct arc_h1_header hdrs[64];
    struct arc_h1_response resp;
    for (;;) {
        enum arc_h1_status st = arc_h1_parse_response(p->buf, p->len, &lim, false, false, hdrs,
                                                      64, &resp);
        if (st == ARC_H1_OK && resp.status >= 200) {
            const struct arc_active_conf *ac = &up->conf->active;
            finish(id, up, arc_active_expect(ac->expect_lo, ac->expect_hi, ac->n_expect,
                                             resp.status), resp.status, now);
            return;
        }
        if (st == ARC_H1_OK) {          /* a 1xx: the final head follows */
            memmove(p->buf, p->buf + resp.head_len, p->len - resp.head_len);
            p->len -= resp.head_len;
            continue;
        }
        if (st != ARC_H1_INCOMPLETE || eof || p->len == sizeof(p->buf))
            finish(id, up, false, -1, now);
        return;
    }
}

/* Sends what the TLS connection has for the socket; false on an error. */
static bool tls_flush(struct probe *p)
{
    while (arc_tls_conn_out_pending(p->tls)) {
        const void *q;
        size_t k = arc_tls_conn_out_peek(p->tls, &q);
        ssize_t w = send(p->fd, q, k, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR;
        arc_tls_conn_out_consume(p->tls, (size_t)w);
    }
    return true;
}

/* Progress of a TLS probe: ciphertext in, handshake, request, plaintext
 * out to the head parser, ciphertext out. */
static void tls_step(uint32_t id, const struct arc_upstream_rt *up, short rev, uint64_t now)
{
    struct probe *p = &probes[id];
    bool eof = false;
    if (rev & (POLLIN | POLLHUP | POLLERR)) {
        char in[4096];
        ssize_t r = recv(p->fd, in, sizeof(in), 0);
        if (r > 0 && arc_tls_conn_feed(p->tls, in, (size_t)r) < 0) {
            finish(id, up, false, -1, now);
            return;
        }
        if (r == 0)
            arc_tls_conn_feed_eof(p->tls);
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            finish(id, up, false, -1, now);
            return;
        }
    }
    if (p->phase == P_HANDSHAKE) {
        enum arc_tls_hs hs = arc_tls_conn_handshake(p->tls);
        if (hs == ARC_TLS_HS_FAILED) {
            tls_flush(p);               /* (the alert, if the socket takes it) */
            finish(id, up, false, -1, now);
            return;
        }
        if (hs == ARC_TLS_HS_DONE) {
            size_t n;
            const char *alpn = arc_tls_conn_alpn(p->tls);
            if (p->h2 ? !alpn || strcmp(alpn, "h2") != 0
                      : arc_tls_conn_write(p->tls, p->req, p->req_len, &n) != ARC_TLS_IO_OK) {
                finish(id, up, false, -1, now);
                return;
            }
            p->phase = P_READING;
        }
    }
    if (p->phase == P_READING && p->h2) {
        for (;;) {
            uint8_t pt[4096];
            size_t n = 0;
            enum arc_tls_io io = arc_tls_conn_read(p->tls, pt, sizeof(pt), &n);
            if (io == ARC_TLS_IO_OK) {
                if (arc_h2_recv(p->h2, pt, n) < 0) {
                    finish(id, up, false, -1, now);
                    return;
                }
                continue;
            }
            if (io == ARC_TLS_IO_ERROR) {
                finish(id, up, false, -1, now);
                return;
            }
            eof = io != ARC_TLS_IO_AGAIN;
            break;
        }
        const uint8_t *q;
        size_t n, wn;
        while ((n = arc_h2_output(p->h2, &q)) > 0) {
            if (arc_tls_conn_write(p->tls, q, n, &wn) != ARC_TLS_IO_OK) {
                finish(id, up, false, -1, now);
                return;
            }
            arc_h2_sent(p->h2, n);
        }
        if (!tls_flush(p)) {
            finish(id, up, false, -1, now);
            return;
        }
        h2_judge(id, up, eof, now);
        return;
    }
    if (p->phase == P_READING) {
        while (p->len < sizeof(p->buf)) {
            size_t n = 0;
            enum arc_tls_io io = arc_tls_conn_read(p->tls, p->buf + p->len,
                                                   sizeof(p->buf) - p->len, &n);
            if (io == ARC_TLS_IO_OK) {
                p->len += n;
                continue;
            }
            if (io == ARC_TLS_IO_ERROR) {
                finish(id, up, false, -1, now);
                return;
            }
            eof = io != ARC_TLS_IO_AGAIN;
            break;
        }
        if (!tls_flush(p)) {
            finish(id, up, false, -1, now);
            return;
        }
        judge(id, up, eof, now);
        return;
    }
    if (!tls_flush(p))
        finish(id, up, false, -1, now);
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
        p->phase = p->tls ? P_HANDSHAKE : P_SENDING;
    }
    if (p->tls) {
        tls_step(id, up, rev, now);
        return;
    }
    if (p->h2) {
        h2_step(id, up, rev, now);
        return;
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
    judge(id, up, r <= 0, now);
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
                        start(s, id, up, &up->eps[k], now);
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
                    short ev = p->phase == P_CONNECTING ? POLLOUT
                               : p->tls ? (arc_tls_conn_out_pending(p->tls) ? POLLIN | POLLOUT
                                                                             : POLLIN)
                               : p->h2 ? (arc_h2_want_write(p->h2) ? POLLIN | POLLOUT : POLLIN)
                               : p->phase == P_READING ? POLLIN : POLLOUT;
                    pfd[n] = (struct pollfd){ p->fd, ev, 0 };
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
                probe_close(p);
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
        probe_close(&probes[id]);
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
