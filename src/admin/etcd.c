/*
 * The etcd config source (control_plane.config_source.etcd): the config is
 * the value of key <prefix>config in etcd, read at start and watched, so a
 * fleet of Arc nodes runs whatever `arc config push` last stored.
 *
 *   ES_WAIT ──retry time──▶ ES_CONNECTING ──connected──▶ ES_RANGE ──value read──▶ ES_WATCH
 *      ▲                        │                           │                       │ events:
 *      └────────────────────────┴── error, EOF, timeout ────┴───────────────────────┘ apply each
 *
 * It speaks etcd's v3 JSON gateway (POST /v3/kv/range, POST /v3/watch, keys
 * and values base64) over one plain HTTP/1.1 connection on the control
 * loop's ring: a range reads the value and its revision, then a watch from
 * the next revision streams changes, one JSON object per line. Every value
 * is compiled and applied like any reload (trigger "etcd"): a bad one is
 * logged and counted and the running config stays. On any failure the
 * connection is dropped and, after a backoff (250 ms doubling to 10 s),
 * the next endpoint is tried and the value read again, so nothing is
 * missed while disconnected. etcd being down never stops Arc: it keeps the
 * config it runs.
 *
 * The pure parts (etcdproto.c: bodies, replies, the response reader) are
 * unit-tested;
 * the loop part is tested against a real etcd (tests/e2e/test_etcd.py).
 * Thread: control.
 */
#include "core/log.h"
#include "admin/admin.h"
#include "admin/admin_int.h"
#include "config/config.h"
#include "config/snapshot.h"
#include "core/sbuf.h"
#include "http1/http1.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ETCD_CONNECT_TIMEOUT_MS 3000
#define ETCD_RANGE_TIMEOUT_MS 5000
#define ETCD_BACKOFF_MIN_MS 250
#define ETCD_BACKOFF_MAX_MS 10000
/* A config is at most 16 MiB, base64 grows it by a third, JSON adds a little. */

/* ------------------------------------------------------------ loop client */

static void ring_op(struct arc_ctl_loop *cs, uint64_t ud, void (*prep)(struct io_uring_sqe *, void *),
                    void *arg)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
    prep(sqe, arg);
    io_uring_sqe_set_data64(sqe, ud);
    cs->etcd->inflight++;
}

static void prep_connect(struct io_uring_sqe *sqe, void *arg)
{
    struct arc_etcd *e = arg;
    const struct arc_addr *a = &e->eps[e->ep];
    io_uring_prep_connect(sqe, e->fd, (const struct sockaddr *)&a->ss, a->len);
}

static void prep_send(struct io_uring_sqe *sqe, void *arg)
{
    struct arc_etcd *e = arg;
    io_uring_prep_send(sqe, e->fd, e->out.p + e->out_off, e->out.len - e->out_off, MSG_NOSIGNAL);
}

static void prep_recv(struct io_uring_sqe *sqe, void *arg)
{
    struct arc_etcd *e = arg;
    io_uring_prep_recv(sqe, e->fd, e->rbuf, sizeof(e->rbuf), 0);
}

/* The descriptor is closed once no operation refers to it any more. */
static void maybe_closed(struct arc_etcd *e)
{
    if (e->closing && !e->inflight) {
        close(e->fd);
        e->fd = -1;
        e->closing = false;
    }
}

/* Drops the connection and schedules the next attempt (the next endpoint). */
static void fail(struct arc_ctl_loop *cs, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct arc_ctl_loop *cs, uint64_t now, const char *fmt, ...)
{
    struct arc_etcd *e = cs->etcd;
    char why[sizeof(e->last_error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    /* Logged when the state changes, not on every retry of an etcd that
     * stays down. */
    if (e->up || strcmp(why, e->last_error) != 0) {
        arc_log(ARC_LOG_WARN, "etcd %s: %s; keeping the running config, retrying",
                e->eps[e->ep].text, why);
        fflush(stderr);
    }
    snprintf(e->last_error, sizeof(e->last_error), "%s", why);
    e->up = false;
    if (e->fd >= 0) {
        if (e->inflight) {
            struct io_uring_sqe *sqe = arc_ring_sqe(&cs->ring);
            io_uring_prep_cancel_fd(sqe, e->fd, IORING_ASYNC_CANCEL_ALL);
            io_uring_sqe_set_data64(sqe, 0);
        }
        e->closing = true;
        maybe_closed(e);
    }
    e->state = ES_WAIT;
    e->ep = (e->ep + 1) % e->n_eps;
    e->retry_at = now + e->backoff_ms;
    e->backoff_ms = ARC_MIN(e->backoff_ms * 2, ETCD_BACKOFF_MAX_MS);
    e->deadline = 0;
}

static void send_request(struct arc_ctl_loop *cs, const char *path, char *body)
{
    struct arc_etcd *e = cs->etcd;
    arc_sbuf_dispose(&e->out);
    e->out = (struct arc_sbuf){ 0 };
    arc_sbuf_printf(&e->out, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: arc\r\n"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                    path, e->eps[e->ep].text, strlen(body), body);
    free(body);
    e->out_off = 0;
    arc_etcd__reader_init(&e->rd);
    ring_op(cs, UD_ETCD_SEND, prep_send, e);
    ring_op(cs, UD_ETCD_RECV, prep_recv, e);
}

static void start_connect(struct arc_ctl_loop *cs, uint64_t now)
{
    struct arc_etcd *e = cs->etcd;
    if (e->fd >= 0)
        return;                         /* the old one is still closing */
    const struct arc_addr *a = &e->eps[e->ep];
    e->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (e->fd < 0) {
        int er = errno;
        fail(cs, now, "socket: %s", strerror(er));
        return;
    }
    /* A watch is silent for as long as the config does not change: TCP
     * keepalives find a peer that vanished without a FIN. */
    int on = 1, idle = 30, intvl = 10, cnt = 3;
    setsockopt(e->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(e->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(e->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(e->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    e->state = ES_CONNECTING;
    e->deadline = now + ETCD_CONNECT_TIMEOUT_MS;
    ring_op(cs, UD_ETCD_CONNECT, prep_connect, e);
}

/* Applies a value read from etcd (trigger "etcd"); a value equal to the
 * running config is not published again. */
static void apply_value(struct arc_ctl_loop *cs, struct arc_etcd_value *v)
{
    struct arc_etcd *e = cs->etcd;
    e->revision = ARC_MAX(e->revision, v->mod_revision);
    free(e->value);
    e->value = v->text;
    e->value_len = v->len;
    v->text = NULL;
    arc_admin__etcd_apply_bg(cs, "etcd");
}

static void on_range(struct arc_ctl_loop *cs, uint64_t now)
{
    struct arc_etcd *e = cs->etcd;
    if (e->rd.status != 200) {
        fail(cs, now, "range answered %d", e->rd.status);
        return;
    }
    struct arc_etcd_value v;
    int64_t rev = 0;
    char err[160];
    int rc = arc_etcd__parse_range(e->rd.body.p ? e->rd.body.p : "", e->rd.body.len, &v, &rev,
                                   err, sizeof(err));
    if (rc < 0) {
        fail(cs, now, "%s", err);
        return;
    }
    if (!e->up) {
        arc_log(ARC_LOG_INFO, "etcd %s: connected, key %s%s", e->eps[e->ep].text, e->key,
                rc == 0 ? " not set: running the file's config until it is" : "");
        fflush(stderr);
    }
    e->up = true;
    e->last_error[0] = '\0';
    e->backoff_ms = ETCD_BACKOFF_MIN_MS;
    e->revision = rev;
    if (rc == 1 && (!e->value || v.len != e->value_len || memcmp(v.text, e->value, v.len) != 0))
        apply_value(cs, &v);
    free(v.text);
    /* Watch from the next revision: nothing between the range and the
     * watch is missed. The connection is kept (HTTP/1.1 keep-alive). */
    char *body = arc_etcd__watch_body(e->key, rev + 1);
    if (!body) {
        fail(cs, now, "out of memory");
        return;
    }
    e->state = ES_WATCH;
    e->deadline = 0;
    send_request(cs, "/v3/watch", body);
}

static void on_watch_lines(struct arc_ctl_loop *cs, uint64_t now)
{
    struct arc_etcd *e = cs->etcd;
    if (e->rd.head_done && e->rd.status != 200) {
        fail(cs, now, "watch answered %d", e->rd.status);
        return;
    }
    char *line;
    size_t n;
    while ((n = arc_etcd__reader_line(&e->rd, &line)) > 0) {
        struct arc_etcd_event ev;
        char err[200];
        if (n <= 1)
            continue;
        if (arc_etcd__parse_watch(line, n - 1, &ev, err, sizeof(err)) < 0) {
            fail(cs, now, "%s", err);
            return;
        }
        e->revision = ARC_MAX(e->revision, ev.revision);
        if (ev.deleted) {
            arc_log(ARC_LOG_WARN, "etcd: key %s deleted (revision %lld); keeping the running "
                    "config", e->key, (long long)ev.value.mod_revision);
            fflush(stderr);
        } else if (ev.has_value) {
            apply_value(cs, &ev.value);
        }
        free(ev.value.text);
    }
    arc_etcd__reader_compact(&e->rd);
}

void arc_admin__etcd_on_cqe(struct arc_ctl_loop *cs, uint64_t ud, int res, uint64_t now)
{
    struct arc_etcd *e = cs->etcd;
    e->inflight--;
    if (e->closing) {
        maybe_closed(e);
        return;
    }
    if (ud == UD_ETCD_CONNECT) {
        if (res < 0) {
            fail(cs, now, "connect: %s", strerror(-res));
            return;
        }
        char *body = arc_etcd__range_body(e->key);
        if (!body) {
            fail(cs, now, "out of memory");
            return;
        }
        e->state = ES_RANGE;
        e->deadline = now + ETCD_RANGE_TIMEOUT_MS;
        send_request(cs, "/v3/kv/range", body);
    } else if (ud == UD_ETCD_SEND) {
        if (res <= 0) {
            fail(cs, now, "send: %s", res ? strerror(-res) : "closed");
            return;
        }
        e->out_off += (size_t)res;
        if (e->out_off < e->out.len)
            ring_op(cs, UD_ETCD_SEND, prep_send, e);
    } else if (ud == UD_ETCD_RECV) {
        if (res <= 0) {
            fail(cs, now, "%s", res ? strerror(-res) : "connection closed by etcd");
            return;
        }
        char err[160];
        int rc = arc_etcd__reader_feed(&e->rd, e->rbuf, (size_t)res, err, sizeof(err));
        if (rc < 0) {
            fail(cs, now, "%s", err);
            return;
        }
        if (e->state == ES_RANGE && rc == 1) {
            on_range(cs, now);          /* (sends the watch, arms the receive) */
            return;
        }
        if (e->state == ES_WATCH) {
            on_watch_lines(cs, now);
            if (e->state != ES_WATCH)
                return;
            if (rc == 1) {
                fail(cs, now, "watch ended");
                return;
            }
        }
        ring_op(cs, UD_ETCD_RECV, prep_recv, e);
    }
}

void arc_admin__etcd_tick(struct arc_ctl_loop *cs, uint64_t now)
{
    struct arc_etcd *e = cs->etcd;
    if (!e || cs->draining)
        return;
    if (e->state == ES_WAIT && now >= e->retry_at)
        start_connect(cs, now);
    else if (e->deadline && now >= e->deadline)
        fail(cs, now, "%s timed out", e->state == ES_CONNECTING ? "connect" : "range");
}

int arc_admin__etcd_start(struct arc_ctl_loop *cs, const struct arc_control_plane_conf *cp)
{
    struct arc_etcd *e = calloc(1, sizeof(*e));
    if (!e || !(e->key = arc_etcd__key(cp->etcd_prefix))) {
        free(e);
        return -ENOMEM;
    }
    memcpy(e->eps, cp->etcd, cp->n_etcd * sizeof(cp->etcd[0]));
    e->n_eps = cp->n_etcd;
    e->fd = -1;
    e->backoff_ms = ETCD_BACKOFF_MIN_MS;
    e->state = ES_WAIT;
    cs->etcd = e;
    start_connect(cs, arc_now_ms());
    return 0;
}

void arc_admin__etcd_dispose(struct arc_ctl_loop *cs)
{
    struct arc_etcd *e = cs->etcd;
    if (!e)
        return;
    if (e->fd >= 0)
        close(e->fd);
    arc_etcd__reader_dispose(&e->rd);
    arc_sbuf_dispose(&e->out);
    free(e->value);
    free(e->key);
    free(e);
    cs->etcd = NULL;
}

const char *arc_admin__etcd_state(const struct arc_etcd *e)
{
    static const char *const names[] = { [ES_WAIT] = "waiting to retry",
                                         [ES_CONNECTING] = "connecting", [ES_RANGE] = "reading",
                                         [ES_WATCH] = "watching" };
    return e->up && e->state == ES_WATCH ? "watching" : names[e->state];
}

/* ------------------------------------------------------------ push (CLI) */

int arc_etcd_push(const char *endpoint, const char *prefix, const char *text, size_t len,
                  unsigned timeout_ms, long long *revision, char *err, size_t errlen)
{
    char *key = arc_etcd__key(prefix);
    char *body = key ? arc_etcd__put_body(key, text, len) : NULL;
    free(key);
    if (!body) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct arc_ctl_reply r;
    int rc = arc_ctl_client_request(endpoint, "POST", "/v3/kv/put", NULL, "application/json",
                                    body, strlen(body), timeout_ms, &r, err, errlen);
    free(body);
    if (rc < 0)
        return -1;
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    if (r.status != 200 || !json_is_object(doc)) {
        const json_t *m = json_object_get(doc, "message");
        snprintf(err, errlen, "etcd answered %d%s%s", r.status, json_is_string(m) ? ": " : "",
                 json_is_string(m) ? json_string_value(m) : "");
        json_decref(doc);
        free(r.body);
        return -1;
    }
    *revision = (long long)arc_etcd__int64(json_object_get(doc, "header"), "revision");
    json_decref(doc);
    free(r.body);
    return 0;
}
