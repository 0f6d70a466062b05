/*
 * Control loop and admin HTTP server. See admin.h.
 *
 * Admin connections are served one request each (Connection: close): the
 * admin port is for probes and scrapers, not for throughput, so keep-alive
 * and pipelining would add states for no benefit.
 *
 * The loop also carries the control-plane API (ctlapi.c) and the file
 * watcher (watch.c). After every batch of completions it checks whether
 * the running config changed (whichever trigger changed it): if so the
 * watches follow the new config's files and parked long polls are answered.
 */
#include "core/log.h"
#include "admin/admin_int.h"
#include "core/common.h"
#include "core/sbuf.h"
#include "http1/http1.h"
#include "loop/ring.h"
#include "obs/accesslog.h"
#include "obs/otlp.h"
#include "obs/metrics.h"
#include "upstream/health.h"
#include "plugin/plugin.h"
#include "tls/tls.h"
#include "http2/http2.h"
#include "limit/limit.h"
#include "guard/guard.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_BUF 8192
#define ADMIN_TIMEOUT_MS 5000
#define TICK_MS 100
#define ACCEPT_RETRY_MS ARC_ADMIN_ACCEPT_RETRY_MS

struct admin_conn {
    int fd;
    size_t len;
    char *out;
    size_t out_len, out_off;
    uint64_t deadline;
    bool closing;
    bool head_only;                 /* HEAD: the answer's head without its body */
    char buf[ADMIN_BUF];
};

static uint64_t conn_ud(struct admin_conn *a, int op)
{
    return arc_admin__ud(a, op);
}

static void track(struct arc_ctl_loop *cs, struct admin_conn *a)
{
    if (cs->n_conns == cs->cap_conns) {
        size_t cap = cs->cap_conns ? cs->cap_conns * 2 : 16;
        struct admin_conn **v = realloc(cs->conns, cap * sizeof(*v));
        ARC_ASSERT(v != NULL);
        cs->conns = v;
        cs->cap_conns = cap;
    }
    cs->conns[cs->n_conns++] = a;
}

static void untrack(struct arc_ctl_loop *cs, struct admin_conn *a)
{
    for (size_t i = 0; i < cs->n_conns; i++)
        if (cs->conns[i] == a) {
            cs->conns[i] = cs->conns[--cs->n_conns];
            return;
        }
}

static void arm_accept(struct arc_ctl_loop *cs)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_multishot_accept(sqe, cs->ctl->admin_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD_ACCEPT);
}

static void arm_recv(struct arc_ctl_loop *cs, struct admin_conn *a);

static void arm_accept_retry(struct arc_ctl_loop *cs)
{
    cs->accept_retry.tv_sec = 0;
    cs->accept_retry.tv_nsec = ACCEPT_RETRY_MS * 1000000L;
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_timeout(sqe, &cs->accept_retry, 0, 0);
    io_uring_sqe_set_data64(sqe, UD_ACCEPT_RETRY);
}

/* One multishot accept completion. The first failure of an episode is
 * logged, the recovery too; the retries in between are not, so a process
 * out of descriptors does not also flood its log. */
static void on_accept(struct arc_ctl_loop *cs, const struct io_uring_cqe *cqe, uint64_t now)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->res < 0) {
        if (cqe->res != cs->accept_error)
            arc_log(ARC_LOG_ERROR, "admin accept: %s; retrying every %d ms",
                    strerror(-cqe->res), ACCEPT_RETRY_MS);
        cs->accept_error = cqe->res;
        if (!more && !cs->draining)
            arm_accept_retry(cs);
        return;
    }
    if (cs->accept_error) {
        arc_log(ARC_LOG_INFO, "admin accept works again");
        cs->accept_error = 0;
    }
    if (!more && !cs->draining)
        arm_accept(cs);
    struct admin_conn *a = calloc(1, sizeof(*a));
    if (!a) {
        close(cqe->res);
        return;
    }
    a->fd = cqe->res;
    a->deadline = now + ADMIN_TIMEOUT_MS;
    cs->open_conns++;
    track(cs, a);
    arm_recv(cs, a);
}

static void arm_signal(struct arc_ctl_loop *cs)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_read(sqe, cs->ctl->signal_fd, &cs->si, sizeof(cs->si), 0);
    io_uring_sqe_set_data64(sqe, UD_SIGNAL);
}

/* Session-ticket keys are rotated on the control thread: a new key seals
 * new tickets, the two previous ones still open older tickets, so a ticket
 * resumes for up to three periods and a stolen key exposes at most that. */
#define TICKET_ROTATE_MS (12u * 3600u * 1000u)

static void rotate_ticket_keys(struct arc_ctl_loop *cs, uint64_t now)
{
    if (!cs->next_ticket_rotation) {
        cs->next_ticket_rotation = now + TICKET_ROTATE_MS;
        return;
    }
    if (now < cs->next_ticket_rotation)
        return;
    cs->next_ticket_rotation = now + TICKET_ROTATE_MS;
    if (arc_tls_ticket_keys_rotate(arc_snapshot_ticket_keys()) < 0)
        arc_log(ARC_LOG_ERROR, "TLS ticket key rotation failed (random generator); keeping the keys");
}

static void arm_tick(struct arc_ctl_loop *cs)
{
    cs->tick.tv_sec = 0;
    cs->tick.tv_nsec = TICK_MS * 1000000L;
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_timeout(sqe, &cs->tick, 0, IORING_TIMEOUT_MULTISHOT);
    io_uring_sqe_set_data64(sqe, UD_TICK);
}

static void arm_recv(struct arc_ctl_loop *cs, struct admin_conn *a)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_recv(sqe, a->fd, a->buf + a->len, ADMIN_BUF - a->len, 0);
    io_uring_sqe_set_data64(sqe, conn_ud(a, AOP_RECV));
}

static void conn_close(struct arc_ctl_loop *cs, struct admin_conn *a)
{
    a->closing = true;
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_close(sqe, a->fd);
    io_uring_sqe_set_data64(sqe, conn_ud(a, AOP_CLOSE));
}

static void arm_send(struct arc_ctl_loop *cs, struct admin_conn *a)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_send(sqe, a->fd, a->out + a->out_off, a->out_len - a->out_off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, conn_ud(a, AOP_SEND));
}

static bool workers_ready(struct arc_control *ctl)
{
    for (size_t i = 0; i < ctl->n_workers; i++)
        if (!arc_worker_ready(ctl->workers[i]) || arc_worker_error(ctl->workers[i]))
            return false;
    return true;
}

static void respond(struct arc_ctl_loop *cs, struct admin_conn *a, int status,
                    const char *ctype, const char *body, size_t blen)
{
    struct arc_sbuf b = { 0 };
    arc_sbuf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                    status, arc_h1_reason(status), ctype, blen,
                    status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!a->head_only)
        arc_sbuf_append(&b, body, blen);
    a->out = b.p;
    a->out_len = b.len;
    a->out_off = 0;
    arm_send(cs, a);
}

/* rate_limits.heavy_hitters: how many client prefixes are at or above
 * threshold_qps now, by prefix length (the list: GET /v1/limits/heavy_hitters). */
static void render_heavy_hitters(struct arc_sbuf *m, const struct arc_control *ctl,
                                 struct arc_metrics_shard *const *shards)
{
    const struct arc_heavy_hitters_conf *hc = &ctl->snap->cfg->heavy_hitters;
    if (!hc->enabled)
        return;
    uint64_t rej = 0;
    for (size_t i = 0; i < ctl->n_workers; i++)
        rej += arc_m_get(&shards[i]->hh_rejected);
    arc_sbuf_printf(m, "# HELP arc_heavy_hitters_rejected_total Requests answered "
                       "rate_limits.heavy_hitters.status because their client was a heavy "
                       "hitter (action: reject).\n"
                       "# TYPE arc_heavy_hitters_rejected_total counter\n"
                       "arc_heavy_hitters_rejected_total %llu\n", (unsigned long long)rej);
    uint64_t lim[2] = { 0, 0 };
    for (size_t i = 0; i < ctl->n_workers; i++)
        for (int k = 0; k < 2; k++)
            lim[k] += arc_m_get(&shards[i]->hh_limited[k]);
    arc_sbuf_printf(m, "# HELP arc_heavy_hitters_limit_decisions_total Requests of heavy "
                       "hitters charged to rate_limits.heavy_hitters.limit (action: limit).\n"
                       "# TYPE arc_heavy_hitters_limit_decisions_total counter\n"
                       "arc_heavy_hitters_limit_decisions_total{decision=\"allowed\"} %llu\n"
                       "arc_heavy_hitters_limit_decisions_total{decision=\"rejected\"} %llu\n",
                       (unsigned long long)lim[0], (unsigned long long)lim[1]);
    struct arc_rl_hh_item items[256];
    size_t n = arc_workers_heavy_hitters(ctl->workers, ctl->n_workers, hc->threshold_qps, items,
                                         ARC_ARRAY_LEN(items));
    static const uint8_t lens[2][3] = { { 32, 24, 0 }, { 128, 48, 0 } };
    arc_sbuf_printf(m, "# HELP arc_heavy_hitters Client prefixes sending at or above "
                       "rate_limits.heavy_hitters.threshold_qps, by family and prefix length.\n"
                       "# TYPE arc_heavy_hitters gauge\n");
    for (int f = 0; f < 2; f++) {
        uint8_t l[3] = { lens[f][0], lens[f][1], f ? (uint8_t)hc->ipv6_prefix : 0 };
        for (int k = 0; k < 3; k++) {
            if (!l[k] || (k == 2 && (l[k] == 128 || l[k] == 48)))
                continue;
            size_t c = 0;
            for (size_t i = 0; i < n; i++)
                c += items[i].family == (f ? 6 : 4) && items[i].prefix == l[k];
            arc_sbuf_printf(m, "arc_heavy_hitters{family=\"ipv%d\",prefix_len=\"%u\"} %zu\n",
                            f ? 6 : 4, l[k], c);
        }
    }
}

/* TLS handshakes by side and result, and each https certificate's expiry
 * (arc_tls_cert_expiry_seconds{listener,sni}: seconds until notAfter,
 * negative once expired). */
static void render_tls(struct arc_sbuf *m, const struct arc_control *ctl,
                       struct arc_metrics_shard *const *shards)
{
    static const char *const sides[2] = { "downstream", "upstream" };
    arc_sbuf_printf(m, "# HELP arc_tls_handshakes_total TLS handshakes by side and result.\n"
                       "# TYPE arc_tls_handshakes_total counter\n");
    for (size_t sd = 0; sd < 2; sd++)
        for (size_t r = 0; r < ARC_M_TLS_RESULTS; r++) {
            uint64_t v = 0;
            for (size_t i = 0; i < ctl->n_workers; i++)
                v += arc_m_get(&shards[i]->tls_handshakes[sd][r]);
            arc_sbuf_printf(m, "arc_tls_handshakes_total{side=\"%s\",result=\"%s\"} %llu\n",
                            sides[sd], r ? arc_tls_fail_name((enum arc_tls_fail)r) : "ok",
                            (unsigned long long)v);
        }
    arc_sbuf_printf(m, "# HELP arc_h2_flood_trips_total HTTP/2 connections cut by a flood "
                       "guard (GOAWAY ENHANCE_YOUR_CALM), by reason.\n"
                       "# TYPE arc_h2_flood_trips_total counter\n");
    for (size_t r = 1; r < ARC_M_H2_BREACHES; r++) {
        uint64_t v = 0;
        for (size_t i = 0; i < ctl->n_workers; i++)
            v += arc_m_get(&shards[i]->h2_flood[r]);
        arc_sbuf_printf(m, "arc_h2_flood_trips_total{reason=\"%s\"} %llu\n",
                        arc_h2_breach_name((enum arc_h2_breach)r), (unsigned long long)v);
    }
    arc_sbuf_printf(m, "# HELP arc_guard_trips_total Connections and requests an L7 guard "
                       "closed or refused (security.l7), by reason.\n"
                       "# TYPE arc_guard_trips_total counter\n");
    for (size_t r = 0; r < ARC_M_GUARD_REASONS; r++) {
        uint64_t v = 0;
        for (size_t i = 0; i < ctl->n_workers; i++)
            v += arc_m_get(&shards[i]->guard[r]);
        arc_sbuf_printf(m, "arc_guard_trips_total{reason=\"%s\"} %llu\n",
                        arc_guard_reason_name((enum arc_guard_reason)r), (unsigned long long)v);
    }
    const struct arc_snapshot *s = ctl->snap;
    bool head = false;
    time_t now = time(NULL);
    for (size_t l = 0; l < s->n_listeners; l++) {
        const struct arc_tls_server *ts = s->listener_tls[l];
        if (!ts)
            continue;
        if (!head) {
            arc_sbuf_printf(m, "# HELP arc_tls_cert_expiry_seconds Seconds until the certificate "
                               "expires (negative: expired).\n"
                               "# TYPE arc_tls_cert_expiry_seconds gauge\n");
            head = true;
        }
        for (size_t i = 0; i < arc_tls_server_cert_count(ts); i++)
            arc_sbuf_printf(m, "arc_tls_cert_expiry_seconds{listener=\"%s\",sni=\"%s\"} %lld\n",
                            s->cfg->listeners[l].name, arc_tls_server_cert_sni(ts, i),
                            (long long)(arc_tls_server_cert_not_after(ts, i) - now));
    }
}

static void serve(struct arc_ctl_loop *cs, struct admin_conn *a, const struct arc_h1_request *req)
{
    struct arc_control *ctl = cs->ctl;
    a->head_only = arc_str_eq(req->method, "HEAD", 4);
    if (!a->head_only && !arc_str_eq(req->method, "GET", 3)) {
        respond(cs, a, 405, "text/plain", "method not allowed\n", 19);
        return;
    }
    if (arc_str_eq(req->path, "/healthz", 8)) {
        respond(cs, a, 200, "text/plain", "ok\n", 3);
    } else if (arc_str_eq(req->path, "/readyz", 7)) {
        if (cs->draining)
            respond(cs, a, 503, "text/plain", "draining\n", 9);
        else if (workers_ready(ctl))
            respond(cs, a, 200, "text/plain", "ready\n", 6);
        else
            respond(cs, a, 503, "text/plain", "starting\n", 9);
    } else if (arc_str_eq(req->path, "/", 1)) {
        respond(cs, a, 200, "text/html; charset=utf-8", arc_admin__dashboard_html,
                strlen(arc_admin__dashboard_html));
    } else if (arc_str_eq(req->path, "/status.json", 12)) {
        char *j = arc_admin__status_json(cs->history, ctl, arc_now_ms());
        respond(cs, a, 200, "application/json", j, strlen(j));
        free(j);
    } else if (arc_str_eq(req->path, "/metrics", 8)) {
        struct arc_metrics_shard *shards[ctl->n_workers ? ctl->n_workers : 1];
        for (size_t i = 0; i < ctl->n_workers; i++)
            shards[i] = arc_worker_metrics(ctl->workers[i]);
        struct arc_sbuf m = { 0 };
        struct arc_admin_names names;
        arc_admin__names(&names, ctl->snap);
        arc_metrics_render(&m, shards, ctl->n_workers, &names.m);
        arc_admin__names_dispose(&names);
        render_tls(&m, ctl, shards);
        const struct arc_htable *health[ctl->n_workers ? ctl->n_workers : 1];
        for (size_t i = 0; i < ctl->n_workers; i++)
            health[i] = arc_worker_health(ctl->workers[i]);
        arc_health_render(&m, health, ctl->n_workers, ctl->snap);
        arc_alog_render_metrics(&m);
        arc_otlp_render_metrics(&m);
        arc_metrics_render_process(&m);
        arc_plugin_metrics_render(&m, ctl->snap->plugins);
        render_heavy_hitters(&m, ctl, shards);
        arc_px_gl_render(&m, shards, ctl->n_workers);
        arc_admin__xdp_metrics(&m, ctl);
        arc_dns_render_metrics(&m, cs->dns);
        arc_mirror_render(&m);
        arc_sbuf_printf(&m, "# HELP arc_workers Worker threads.\n# TYPE arc_workers gauge\n"
                            "arc_workers %zu\n", ctl->n_workers);
        arc_sbuf_printf(&m, "# HELP arc_config_reloads_total Configuration reloads, by result "
                            "(error: the new config did not load; refused: it changed a "
                            "restart-only field).\n# TYPE arc_config_reloads_total counter\n"
                            "arc_config_reloads_total{result=\"ok\"} %llu\n"
                            "arc_config_reloads_total{result=\"error\"} %llu\n"
                            "arc_config_reloads_total{result=\"refused\"} %llu\n",
                        (unsigned long long)ctl->reloads[ARC_RELOAD_OK],
                        (unsigned long long)ctl->reloads[ARC_RELOAD_ERROR],
                        (unsigned long long)ctl->reloads[ARC_RELOAD_REFUSED]);
        arc_sbuf_printf(&m, "# HELP arc_config_live_snapshots Compiled configurations in memory "
                            "(the running one, and older ones still held by exchanges or "
                            "connections that started on them).\n"
                            "# TYPE arc_config_live_snapshots gauge\narc_config_live_snapshots %u\n",
                        (unsigned)arc_snapshot_live());
        arc_sbuf_printf(&m, "# HELP arc_config_generation Generation of the active configuration.\n"
                            "# TYPE arc_config_generation gauge\narc_config_generation %llu\n",
                        (unsigned long long)ctl->snap->generation);
        if (cs->etcd)
            arc_sbuf_printf(&m, "# HELP arc_config_etcd_up 1 while the etcd config source is "
                                "read and watched, 0 while it is unreachable (the running "
                                "config stays).\n# TYPE arc_config_etcd_up gauge\n"
                                "arc_config_etcd_up %d\n"
                                "# HELP arc_config_etcd_revision Highest etcd revision seen.\n"
                                "# TYPE arc_config_etcd_revision gauge\n"
                                "arc_config_etcd_revision %lld\n",
                            cs->etcd->up && cs->etcd->state == ES_WATCH,
                            (long long)cs->etcd->revision);
        respond(cs, a, 200, "text/plain; version=0.0.4", m.p ? m.p : "", m.len);
        arc_sbuf_dispose(&m);
    } else {
        respond(cs, a, 404, "text/plain", "not found\n", 10);
    }
}

static void on_conn(struct arc_ctl_loop *cs, struct admin_conn *a, int op, int res)
{
    if (op == AOP_CLOSE) {
        untrack(cs, a);
        free(a->out);
        free(a);
        cs->open_conns--;
        return;
    }
    if (a->closing)
        return;
    if (op == AOP_SEND) {
        if (res <= 0) {
            conn_close(cs, a);
            return;
        }
        a->out_off += (size_t)res;
        if (a->out_off < a->out_len)
            arm_send(cs, a);
        else
            conn_close(cs, a);
        return;
    }
    /* AOP_RECV */
    if (res <= 0) {
        conn_close(cs, a);
        return;
    }
    a->len += (size_t)res;
    struct arc_h1_limits lim = { .max_header_bytes = ADMIN_BUF - 1, .max_headers = 64, .max_uri = 2048 };
    struct arc_h1_header hdrs[64];
    struct arc_h1_request req;
    enum arc_h1_status rc = arc_h1_parse_request(a->buf, a->len, &lim, hdrs, 64, &req);
    if (rc == ARC_H1_INCOMPLETE && a->len < ADMIN_BUF) {
        arm_recv(cs, a);
        return;
    }
    if (rc != ARC_H1_OK) {
        respond(cs, a, rc == ARC_H1_INCOMPLETE || rc == ARC_H1_HEADERS_TOO_LARGE ? 431 : 400,
                "text/plain", "bad request\n", 12);
        return;
    }
    serve(cs, a, &req);
}

static bool termination_signal(uint32_t signo)
{
    return signo == SIGTERM || signo == SIGINT;
}

/* SIGUSR1 is what logrotate's postrotate sends: the access-log writer
 * reopens its file (its default action would kill the process). Without
 * an access log it is said to be ignored, so the operator sees why
 * nothing happened. Other signals that reach here are ignored. */
static void ignore_signal(uint32_t signo)
{
    if (signo == SIGUSR1 && arc_alog_running()) {
        arc_alog_reopen();
        arc_log(ARC_LOG_INFO, "SIGUSR1 received: reopening the access log");
    } else if (signo == SIGUSR1)
        arc_log(ARC_LOG_WARN, "SIGUSR1 received: no access log to reopen; ignored");
    else
        arc_log(ARC_LOG_WARN, "signal %u received: ignored", (unsigned)signo);
}

static bool all_workers_done(struct arc_control *ctl)
{
    for (size_t i = 0; i < ctl->n_workers; i++)
        if (!arc_worker_done(ctl->workers[i]))
            return false;
    return true;
}

static void arm_watch(struct arc_ctl_loop *cs)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    io_uring_prep_poll_multishot(sqe, cs->watch.fd, POLLIN);
    io_uring_sqe_set_data64(sqe, UD_WATCH);
}

/* A reload from the config's source that nobody waits on (SIGHUP, a file
 * change): the snapshot is built with plugin compiles deferred; if modules
 * are missing from the cache, a thread compiles them and the reload runs
 * again when it is done (finish_compile; the file is read again then, so
 * the newest config wins). A request while a compile runs waits for it. */
static void reload_bg(struct arc_ctl_loop *cs, const char *trigger, bool skip_unchanged)
{
    if (arc_plugin_compile_running()) {
        if (!cs->compile_pending)
            cs->compile_skip = true;
        cs->compile_pending = true;
        cs->compile_skip = cs->compile_skip && skip_unchanged;
        snprintf(cs->compile_trigger, sizeof(cs->compile_trigger), "%s", trigger);
        arc_log(ARC_LOG_INFO, "reload (%s) waits for the plugin compile running", trigger);
        return;
    }
    arc_plugin_defer_arm(true);
    int rc = arc_admin__reload_source(cs->ctl, trigger, skip_unchanged, NULL);
    size_t n = arc_plugin_defer_missing();
    if (rc == ARC_RELOAD_NONE && n && arc_plugin_compile_start() == 0) {
        cs->compile_pending = true;
        cs->compile_skip = skip_unchanged;
        snprintf(cs->compile_trigger, sizeof(cs->compile_trigger), "%s", trigger);
        arc_log(ARC_LOG_INFO, "reload (%s): compiling %zu plugin module%s first (off the "
                "control thread)", trigger, n, n == 1 ? "" : "s");
        arc_plugin_defer_arm(false);
        return;
    }
    arc_plugin_defer_arm(false);
    if (rc == ARC_RELOAD_NONE && n)     /* (no thread: compile here, as before) */
        arc_admin__reload_source(cs->ctl, trigger, skip_unchanged, NULL);
}

/* The compile thread ended: join it, run the reload waiting on it (its
 * modules are cached now, or their errors are reported at their place). */

static void finish_compile(struct arc_ctl_loop *cs)
{
    arc_plugin_compile_join();
    /* API requests waiting for it first: they answer with its outcome. */
    arc_admin__ctl_compiled(cs);
    if (cs->compile_etcd && !arc_plugin_compile_running()) {
        cs->compile_etcd = false;
        if (cs->draining)
            arc_log(ARC_LOG_WARN, "plugin compile done while draining: the etcd value is "
                    "not applied");
        else if (cs->etcd && cs->etcd->value)
            arc_admin__etcd_apply_bg(cs, "etcd");
    }
    if (arc_plugin_compile_running())
        return;                         /* (another compile: the rest waits for it) */
    bool pending = cs->compile_pending;
    cs->compile_pending = false;
    char trigger[sizeof(cs->compile_trigger)];
    memcpy(trigger, cs->compile_trigger, sizeof(trigger));
    if (pending && cs->draining)
        arc_log(ARC_LOG_WARN, "plugin compile done while draining: not reloaded");
    else if (pending && cs->etcd && cs->etcd->value)
        arc_log(ARC_LOG_INFO, "plugin compile done; the config comes from etcd (%s): the "
                "file is not applied", cs->etcd->key);
    else if (pending) {
        arc_admin__watch_read(&cs->watch, arc_now_ms());
        reload_bg(cs, trigger, cs->compile_skip);
        arc_admin__watch_clear(&cs->watch);
    }
    arc_plugin_compile_forget();
}

void arc_admin__compile_wait(struct arc_ctl_loop *cs)
{
    if (arc_plugin_compile_running())
        arc_log(ARC_LOG_INFO, "waiting for the plugin compile running");
    while (arc_plugin_compile_running())
        finish_compile(cs);
}

/* An etcd value nobody waits on (a watch event, a certificate's change,
 * SIGHUP): like reload_bg, modules missing from the cache are compiled on
 * a thread first, then the newest value is applied (finish_compile). */
void arc_admin__etcd_apply_bg(struct arc_ctl_loop *cs, const char *trigger)
{
    if (arc_plugin_compile_running()) {
        cs->compile_etcd = true;
        arc_log(ARC_LOG_INFO, "etcd value (%s) waits for the plugin compile running", trigger);
        return;
    }
    arc_plugin_defer_arm(true);
    int rc = arc_admin__etcd_apply(cs, trigger, NULL);
    size_t n = arc_plugin_defer_missing();
    if (rc == ARC_RELOAD_NONE && n && arc_plugin_compile_start() == 0) {
        cs->compile_etcd = true;
        arc_log(ARC_LOG_INFO, "etcd value (%s): compiling %zu plugin module%s first (off the "
                "control thread)", trigger, n, n == 1 ? "" : "s");
        arc_plugin_defer_arm(false);
        return;
    }
    arc_plugin_defer_arm(false);
    if (rc == ARC_RELOAD_NONE && n)     /* (no thread: compile here, as before) */
        arc_admin__etcd_apply(cs, trigger, NULL);
}

int arc_admin__etcd_apply(struct arc_ctl_loop *cs, const char *trigger,
                          struct arc_config_errors *keep)
{
    arc_admin__compile_wait(cs);
    struct arc_etcd *e = cs->etcd;
    char name[ARC_CP_ETCD_PREFIX_MAX + 16];
    snprintf(name, sizeof(name), "etcd:%s", e->key);
    struct arc_admin_outcome out;
    arc_admin__submit(cs->ctl, e->value, e->value_len, "json", name, trigger, true, &out);
    if (keep)
        *keep = out.errs;
    else
        arc_config_errors_dispose(&out.errs);
    return out.result;
}

int arc_admin__reload_file(struct arc_ctl_loop *cs, const char *trigger,
                           struct arc_config_errors *keep)
{
    /* etcd is the source: a reload compiles its value again (reading the
     * certificate files anew); the file only started Arc. */
    if (cs->etcd && cs->etcd->value) {
        arc_admin__watch_read(&cs->watch, arc_now_ms());
        arc_admin__watch_clear(&cs->watch);
        if (!keep) {                    /* (nobody waits for the outcome) */
            arc_admin__etcd_apply_bg(cs, trigger);
            return ARC_RELOAD_NONE;
        }
        return arc_admin__etcd_apply(cs, trigger, keep);
    }
    if (!keep) {                        /* (nobody waits for the outcome) */
        arc_admin__watch_read(&cs->watch, arc_now_ms());
        reload_bg(cs, trigger, false);
        arc_admin__watch_clear(&cs->watch);
        return ARC_RELOAD_NONE;
    }
    arc_admin__compile_wait(cs);
    arc_admin__watch_read(&cs->watch, arc_now_ms());
    int rc = arc_admin__reload_source(cs->ctl, trigger, false, keep);
    arc_admin__watch_clear(&cs->watch);
    return rc;
}

/* The debounce ran out: reload for the files that changed. A change to the
 * config file alone that leaves its meaning unchanged is no reload; a
 * change to a certificate or key always is (the config does not say what
 * the file holds). */
static void file_changed(struct arc_ctl_loop *cs)
{
    unsigned what = cs->watch.pending;
    arc_log(ARC_LOG_INFO, "file change seen: %s", cs->watch.seen);
    arc_admin__watch_clear(&cs->watch);
    if (cs->draining) {
        arc_log(ARC_LOG_WARN, "file change while draining: not reloaded");
        return;
    }
    if (cs->etcd && cs->etcd->value) {
        if (what & ARC_WATCH_REF)
            arc_admin__etcd_apply_bg(cs, "file change");
        else
            arc_log(ARC_LOG_INFO, "the config comes from etcd (%s): the file's change is not "
                    "applied", cs->etcd->key);
        return;
    }
    reload_bg(cs, "file change", !(what & ARC_WATCH_REF));
}

/* Whatever changed the running config: the watches follow its files and
 * long polls waiting for a new fingerprint are answered. */
static void after_events(struct arc_ctl_loop *cs)
{
    /* Discovery's answers changed an endpoint set: a new snapshot. */
    if (cs->dns && arc_dns_take_changed(cs->dns) && !cs->draining)
        arc_admin__republish(cs->ctl, "dns");
    const struct arc_snapshot *s = cs->ctl->snap;
    if (s == cs->seen_snap)
        return;
    cs->seen_snap = s;
    if (cs->dns)
        arc_dns_sync(cs->dns, s->cfg, arc_now_ms());
    arc_admin__watch_set(&cs->watch, cs->ctl->config_path, s->cfg);
    if (strcmp(cs->seen_fp, s->cfg->fingerprint) != 0) {
        memcpy(cs->seen_fp, s->cfg->fingerprint, sizeof(cs->seen_fp));
        arc_admin__ctl_config_changed(cs);
    }
}

static void on_signal(struct arc_ctl_loop *cs, const struct io_uring_cqe *cqe)
{
    struct arc_control *ctl = cs->ctl;
    if (cqe->res != (int)sizeof(cs->si)) {
        arm_signal(cs);
        return;
    }
    uint32_t signo = cs->si.ssi_signo;
    if (signo == SIGHUP) {
        if (cs->draining) {
            arc_log(ARC_LOG_WARN, "SIGHUP while draining: not reloaded");
        } else {
            arc_admin__reload_file(cs, "SIGHUP", NULL);
        }
    } else if (!termination_signal(signo)) {
        ignore_signal(signo);
    } else {
        if (cs->draining) {
            arc_log(ARC_LOG_WARN, "second signal, exiting now");
            _exit(1);
        }
        cs->draining = true;
        arc_log(ARC_LOG_INFO, "%s received, draining (up to %llu ms)", strsignal((int)signo),
                (unsigned long long)ctl->snap->cfg->node.drain_timeout);
        arc_workers_drain(ctl->snap->cfg->node.drain_timeout);
        arc_admin__ctl_drain(cs);
    }
    arm_signal(cs);
}

int arc_control_run(struct arc_control *ctl)
{
    struct arc_ctl_loop cs = { .ctl = ctl, .history = arc_admin__history_new() };
    ctl->last.result = ARC_RELOAD_NONE;
    struct arc_ring_opts ro = { .entries = 256, .single_issuer = true };
    int rc = arc_ring_init(&cs.ring, &ro);
    if (rc < 0) {
        arc_admin__history_free(cs.history);
        arc_snapshot_unref(ctl->snap);
        ctl->snap = NULL;
        return rc;
    }
    cs.watch.fd = -1;
    if (ctl->config_path) {
        int wrc = arc_admin__watch_init(&cs.watch);
        if (wrc < 0)
            arc_log(ARC_LOG_ERROR, "inotify: %s; the config file is not watched (reload with "
                    "SIGHUP or the API)", strerror(-wrc));
    }
    if (ctl->admin_fd >= 0)
        arm_accept(&cs);
    arc_admin__ctl_start(&cs);
    const struct arc_control_plane_conf *cp = &ctl->snap->cfg->control_plane;
    if (cp->n_etcd && arc_admin__etcd_start(&cs, cp) < 0)
        arc_log(ARC_LOG_ERROR, "etcd: out of memory; the config is not watched");
    arm_signal(&cs);
    arm_tick(&cs);
    if (cs.watch.fd >= 0)
        arm_watch(&cs);
    char derr[256];
    if (!(cs.dns = arc_dns_new(&cs.ring, UD_DNS_FIRST, &ctl->snap->cfg->node, derr,
                               sizeof(derr))))
        arc_log(ARC_LOG_WARN, "dns discovery unavailable: %s", derr);
    after_events(&cs);

    bool done = false;
    while (!done) {
        rc = io_uring_submit_and_wait(&cs.ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            break;
        uint64_t now = arc_now_ms();
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&cs.ring, head, cqe) {
            n++;
            uint64_t ud = cqe->user_data;
            if (ud == UD_ACCEPT) {
                on_accept(&cs, cqe, now);
            } else if (ud == UD_ACCEPT_RETRY) {
                if (!cs.draining)
                    arm_accept(&cs);
            } else if (ud == UD_CTL_ACCEPT) {
                arc_admin__ctl_on_accept(&cs, cqe, now);
            } else if (ud == UD_CTL_ACCEPT_RETRY) {
                arc_admin__ctl_accept_retry(&cs);
            } else if (ud == UD_ETCD_CONNECT || ud == UD_ETCD_SEND || ud == UD_ETCD_RECV) {
                arc_admin__etcd_on_cqe(&cs, ud, cqe->res, now);
            } else if (ud >= UD_DNS_FIRST && ud <= UD_DNS_LAST) {
                if (cs.dns)
                    arc_dns_on_cqe(cs.dns, ud, cqe->res, now);
            } else if (ud == UD_SIGNAL) {
                on_signal(&cs, cqe);
            } else if (ud == UD_WATCH) {
                arc_admin__watch_read(&cs.watch, now);
                if (!(cqe->flags & IORING_CQE_F_MORE))
                    arm_watch(&cs);
            } else if (ud == UD_TICK) {
                if (!(cqe->flags & IORING_CQE_F_MORE))
                    arm_tick(&cs);
                for (size_t i = 0; i < cs.n_conns; i++)
                    if (!cs.conns[i]->closing && now > cs.conns[i]->deadline) {
                        struct io_uring_sqe *sqe = arc_ring_sqe(&cs.ring);
                        io_uring_prep_cancel_fd(sqe, cs.conns[i]->fd, IORING_ASYNC_CANCEL_ALL);
                        io_uring_sqe_set_data64(sqe, 0);
                    }
                arc_admin__ctl_tick(&cs, now);
                arc_admin__etcd_tick(&cs, now);
                if (cs.dns)
                    arc_dns_tick(cs.dns, now);
                arc_admin__history_tick(cs.history, ctl, now);
                arc_admin__xdp_tick(ctl, now);
                if (cs.watch.pending && now >= cs.watch.due)
                    file_changed(&cs);
                if (arc_plugin_compile_done())
                    finish_compile(&cs);
                if (cs.draining && all_workers_done(ctl))
                    done = true;
                /* The last old config was freed (its memory went back to
                 * the allocator from whichever thread let go of it last):
                 * hand the freed pages back to the kernel once, here, off
                 * the data path. */
                uint32_t live = arc_snapshot_live();
                if (live == 1 && cs.live_before > 1)
                    malloc_trim(0);
                cs.live_before = live;
                rotate_ticket_keys(&cs, now);
            } else if (ud > UD__LAST) {
                void *conn = (void *)(uintptr_t)(ud & ~(uint64_t)7);
                int op = (int)(ud & 7);
                if (op >= COP_RECV)
                    arc_admin__ctl_on_cqe(&cs, conn, op, cqe->res, now);
                else
                    on_conn(&cs, conn, op, cqe->res);
            }
        }
        io_uring_cq_advance(&cs.ring, n);
        after_events(&cs);
    }
    /* The ring goes first: operations still pending point into the
     * connections' buffers. */
    io_uring_queue_exit(&cs.ring);
    arc_plugin_compile_shutdown();      /* (joins a compile still running) */
    arc_dns_free(cs.dns);
    arc_admin__etcd_dispose(&cs);
    for (size_t i = 0; i < cs.n_conns; i++) {
        close(cs.conns[i]->fd);
        free(cs.conns[i]->out);
        free(cs.conns[i]);
    }
    free(cs.conns);
    arc_admin__ctl_dispose(&cs);
    arc_admin__watch_dispose(&cs.watch);
    arc_admin__history_free(cs.history);
    arc_snapshot_unref(ctl->snap);
    ctl->snap = NULL;
    return 0;
}
