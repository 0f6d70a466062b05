/*
 * OTLP/HTTP JSON exporter (see otlp.h).
 *
 * Exporter loop: sleep flush_interval (or until stopped) → drain every
 * worker's span queue into one ExportTraceServiceRequest (at most
 * MAX_BATCH records per POST) → POST it with a blocking socket bounded by
 * `timeout` → count exported or lost spans. The spans follow the OTLP JSON
 * mapping: ids in lower-case hex, times as decimal strings of Unix ns,
 * kind 2 (server) and 3 (client), status code 2 (error) for 5xx answers
 * (server span) and for failed or 4xx/5xx upstream answers (client span).
 */
#include "core/log.h"
#include "config/config.h"
#include "obs/otlp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 512                   /* records (2 spans each) per POST */
#define APPEND(o, lit) arc_sbuf_append((o), (lit), sizeof(lit) - 1)

static struct {
    bool running;
    struct arc_tracing_conf conf;
    char instance[160];
    struct arc_alog_ring *rings;
    size_t n_rings;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    _Atomic uint64_t exported, lost, errors;
    bool failing;
} X;

struct arc_alog_ring *arc_otlp_ring(unsigned id)
{
    return X.running && id < X.n_rings ? &X.rings[id] : NULL;
}

static void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

void arc_otlp_render_metrics(struct arc_sbuf *o)
{
    if (!X.running)
        return;
    uint64_t dropped = 0;
    for (size_t i = 0; i < X.n_rings; i++)
        dropped += atomic_load_explicit(&X.rings[i].dropped, memory_order_relaxed);
    arc_sbuf_printf(o,
        "# HELP arc_tracing_spans_exported_total Spans accepted by the OTLP collector.\n"
        "# TYPE arc_tracing_spans_exported_total counter\n"
        "arc_tracing_spans_exported_total %llu\n"
        "# HELP arc_tracing_spans_dropped_total Sampled requests whose spans were dropped because a worker's span queue was full.\n"
        "# TYPE arc_tracing_spans_dropped_total counter\n"
        "arc_tracing_spans_dropped_total %llu\n"
        "# HELP arc_tracing_spans_lost_total Spans lost because an export failed.\n"
        "# TYPE arc_tracing_spans_lost_total counter\n"
        "arc_tracing_spans_lost_total %llu\n"
        "# HELP arc_tracing_export_errors_total OTLP exports that failed (connect, timeout, non-2xx).\n"
        "# TYPE arc_tracing_export_errors_total counter\n"
        "arc_tracing_export_errors_total %llu\n",
        (unsigned long long)atomic_load(&X.exported), (unsigned long long)dropped,
        (unsigned long long)atomic_load(&X.lost), (unsigned long long)atomic_load(&X.errors));
}

/* ------------------------------------------------------------ JSON */

static void hexs(struct arc_sbuf *o, const uint8_t *b, size_t n)
{
    static const char d[] = "0123456789abcdef";
    char t[40];
    for (size_t i = 0; i < n; i++) {
        t[2 * i] = d[b[i] >> 4];
        t[2 * i + 1] = d[b[i] & 15];
    }
    arc_sbuf_append(o, "\"", 1);
    arc_sbuf_append(o, t, 2 * n);
    arc_sbuf_append(o, "\"", 1);
}

static void attr_str(struct arc_sbuf *o, bool *first, const char *k, const char *v)
{
    if (!v || !*v)
        return;
    arc_sbuf_printf(o, "%s{\"key\":\"%s\",\"value\":{\"stringValue\":", *first ? "" : ",", k);
    arc_alog_json_str(o, v);
    APPEND(o, "}}");
    *first = false;
}

static void attr_int(struct arc_sbuf *o, bool *first, const char *k, long long v)
{
    arc_sbuf_printf(o, "%s{\"key\":\"%s\",\"value\":{\"intValue\":\"%lld\"}}", *first ? "" : ",",
                    k, v);
    *first = false;
}

static void span_head(struct arc_sbuf *o, bool *first, const struct arc_alog_rec *r,
                      const uint8_t *id, const uint8_t *parent, const char *name, int kind,
                      uint64_t start, uint64_t end)
{
    if (*first)
        APPEND(o, "{\"traceId\":");
    else
        APPEND(o, ",{\"traceId\":");
    *first = false;
    hexs(o, r->trace_id, 16);
    APPEND(o, ",\"spanId\":");
    hexs(o, id, 8);
    if (parent) {
        APPEND(o, ",\"parentSpanId\":");
        hexs(o, parent, 8);
    }
    APPEND(o, ",\"name\":");
    arc_alog_json_str(o, name);
    arc_sbuf_printf(o, ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\","
                    "\"flags\":%u", kind, (unsigned long long)start, (unsigned long long)end,
                    (r->trace_flags & 1u) | 0x100u | (r->has_parent ? 0x200u : 0u));
}

void arc_otlp_spans(struct arc_sbuf *o, const struct arc_alog_rec *r, bool *first)
{
    uint64_t start = r->ts_ns, end = r->ts_ns + r->dur_ns;
    const char *err = arc_alog_error_text(r->err, r->outcome);
    char name[ARC_ALOG_METHOD + ARC_ALOG_NAME + 2];
    /* Span names stay low-cardinality: method and route name, never the path. */
    const char *method = arc_alog_str(r, METHOD)[0] ? arc_alog_str(r, METHOD) : "HTTP";
    snprintf(name, sizeof(name), "%s%s%s", method, arc_alog_str(r, ROUTE)[0] ? " " : "",
             arc_alog_str(r, ROUTE));
    span_head(o, first, r, r->server_span_id, r->has_parent ? r->parent_id : NULL, name, 2,
              start, end);
    APPEND(o, ",\"attributes\":[");
    bool a = true;
    attr_str(o, &a, "http.request.method", arc_alog_str(r, METHOD));
    attr_int(o, &a, "http.response.status_code", r->status);
    attr_str(o, &a, "url.scheme", r->https ? "https" : "http");
    attr_str(o, &a, "url.path", arc_alog_str(r, PATH));
    attr_str(o, &a, "url.query", arc_alog_str(r, QUERY));
    attr_str(o, &a, "server.address", arc_alog_str(r, HOST));
    attr_str(o, &a, "network.protocol.version", r->protocol == ARC_ALOG_H2 ? "2"
                                                : r->protocol == ARC_ALOG_H10 ? "1.0" : "1.1");
    char ip[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;
    if (r->client.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &r->client.in.sin_addr, ip, sizeof(ip));
        port = ntohs(r->client.in.sin_port);
    } else if (r->client.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &r->client.in6.sin6_addr, ip, sizeof(ip));
        port = ntohs(r->client.in6.sin6_port);
    }
    attr_str(o, &a, "client.address", ip);
    if (ip[0])
        attr_int(o, &a, "client.port", port);
    attr_str(o, &a, "user_agent.original", arc_alog_str(r, USER_AGENT));
    attr_str(o, &a, "arc.route", arc_alog_str(r, ROUTE));
    attr_str(o, &a, "arc.request_id", arc_alog_str(r, REQUEST_ID));
    /* error.type: the failure's kind, else the status code (semconv). */
    char code[8];
    snprintf(code, sizeof(code), "%u", r->status);
    if (r->status >= 500)
        attr_str(o, &a, "error.type", err ? err : code);
    arc_sbuf_printf(o, "],\"status\":{\"code\":%d}}", r->status >= 500 ? 2 : 0);

    if (!r->has_upstream || r->response_ns == ARC_ALOG_NONE || r->attempt == 0)
        return;                         /* no upstream hop */
    uint64_t ustart = end - r->response_ns;
    span_head(o, first, r, r->span_id, r->server_span_id,
              arc_alog_str(r, METHOD)[0] ? arc_alog_str(r, METHOD) : "HTTP", 3,
              ustart, end);
    APPEND(o, ",\"attributes\":[");
    a = true;
    attr_str(o, &a, "http.request.method", arc_alog_str(r, METHOD));
    bool answered = r->ttfb_ns != ARC_ALOG_NONE;
    if (answered)
        attr_int(o, &a, "http.response.status_code", r->status);
    char host[ARC_ALOG_ADDR];
    snprintf(host, sizeof(host), "%s", arc_alog_str(r, UPSTREAM_ADDR));
    char *colon = strrchr(host, ':');
    if (colon) {
        *colon = '\0';
        char *h = host;
        if (h[0] == '[') {              /* "[::1]:80" */
            h++;
            char *rb = strchr(h, ']');
            if (rb)
                *rb = '\0';
        }
        attr_str(o, &a, "server.address", h);
        attr_int(o, &a, "server.port", atoi(colon + 1));
    }
    attr_str(o, &a, "url.path", arc_alog_str(r, PATH));
    attr_str(o, &a, "arc.upstream", arc_alog_str(r, UPSTREAM));
    attr_int(o, &a, "http.request.resend_count", r->attempt > 1 ? r->attempt - 1 : 0);
    bool failed = !answered || r->status >= 400;
    if (failed)
        attr_str(o, &a, "error.type", err ? err : answered ? code : "no_response");
    arc_sbuf_printf(o, "],\"status\":{\"code\":%d}}", failed ? 2 : 0);
}

/* ------------------------------------------------------------ HTTP */

static int post(const char *body, size_t len, char *why, size_t whylen)
{
    const struct arc_tracing_conf *c = &X.conf;
    int fd = socket(c->addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t deadline = (uint64_t)t0.tv_sec * 1000 + (uint64_t)t0.tv_nsec / 1000000 + c->timeout;
    char head[512];
    int hl = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                      "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n"
                      "User-Agent: arc\r\n\r\n", c->path, c->addr.text, len);
    struct iovec iov[2] = { { head, (size_t)hl }, { (void *)body, len } };
    size_t sent = 0, total = (size_t)hl + len;
    char resp[256];
    size_t got = 0;
    int rc = -1;
    bool connected = false;
    if (connect(fd, (const struct sockaddr *)&c->addr.ss, c->addr.len) == 0)
        connected = true;
    else if (errno != EINPROGRESS) {
        snprintf(why, whylen, "connect: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t nms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
        if (nms >= deadline) {
            snprintf(why, whylen, "timed out after %llu ms", (unsigned long long)c->timeout);
            goto out;
        }
        struct pollfd pf = { fd, sent < total ? POLLOUT : POLLIN, 0 };
        if (poll(&pf, 1, (int)(deadline - nms)) <= 0)
            continue;
        if (!connected) {
            int e = 0;
            socklen_t el = sizeof(e);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
            if (e) {
                snprintf(why, whylen, "connect: %s", strerror(e));
                goto out;
            }
            connected = true;
        }
        if (sent < total) {
            struct iovec v[2];
            int nv = 0;
            if (sent < (size_t)hl)
                v[nv++] = (struct iovec){ head + sent, (size_t)hl - sent };
            size_t boff = sent > (size_t)hl ? sent - (size_t)hl : 0;
            v[nv++] = (struct iovec){ (char *)body + boff, len - boff };
            (void)iov;
            struct msghdr mh = { .msg_iov = v, .msg_iovlen = (size_t)nv };
            ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(why, whylen, "send: %s", strerror(errno));
                goto out;
            }
            if (k > 0)
                sent += (size_t)k;
            continue;
        }
        ssize_t k = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (k > 0)
            got += (size_t)k;
        resp[got] = '\0';
        if (k <= 0 || strstr(resp, "\r\n") || got == sizeof(resp) - 1) {
            int status = 0;
            if (sscanf(resp, "HTTP/1.%*d %d", &status) == 1 && status / 100 == 2) {
                rc = 0;
            } else {
                char *eol = strstr(resp, "\r\n");
                if (eol)
                    *eol = '\0';
                snprintf(why, whylen, "collector answered '%.80s'", got ? resp : "nothing");
            }
            goto out;
        }
    }
out:
    close(fd);
    return rc;
}

static size_t drain_into(struct arc_sbuf *body)
{
    body->len = 0;
    arc_sbuf_append(body, "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
                          "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"arc\"}},"
                          "{\"key\":\"service.instance.id\",\"value\":{\"stringValue\":",
                    strlen("{\"resourceSpans\":[{\"resource\":{\"attributes\":["
                           "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"arc\"}},"
                           "{\"key\":\"service.instance.id\",\"value\":{\"stringValue\":"));
    arc_alog_json_str(body, X.instance);
    static const char scope[] = "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"arc\"},\"spans\":[";
    arc_sbuf_append(body, scope, sizeof(scope) - 1);
    size_t n = 0;
    bool first = true;
    for (size_t i = 0; i < X.n_rings && n < MAX_BATCH; i++) {
        struct arc_alog_ring *r = &X.rings[i];
        uint64_t t, k = arc_alog_ring_avail(r, &t);
        if (k > MAX_BATCH - n)
            k = MAX_BATCH - n;
        for (uint64_t j = 0; j < k; j++)
            arc_otlp_spans(body, &r->recs[(t + j) & r->mask], &first);
        arc_alog_ring_release(r, k);
        n += k;
    }
    APPEND(body, "]}]}]}");
    return n;
}

static void *exporter_main(void *arg)
{
    (void)arg;
    struct arc_sbuf body = { 0 };
    for (;;) {
        pthread_mutex_lock(&X.mu);
        if (!X.stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + X.conf.flush_interval * 1000000ull;
            ts.tv_sec += (time_t)(ns / 1000000000ull);
            ts.tv_nsec = (long)(ns % 1000000000ull);
            pthread_cond_timedwait(&X.cv, &X.mu, &ts);
        }
        bool stopping = X.stop;
        pthread_mutex_unlock(&X.mu);
        size_t n;
        while ((n = drain_into(&body)) > 0) {
            char why[160];
            uint64_t spans = 0;
            for (const char *p = body.p; (p = strstr(p, "\"spanId\"")); p++)
                spans++;
            if (post(body.p, body.len, why, sizeof(why)) == 0) {
                bump(&X.exported, spans);
                if (X.failing)
                    arc_log(ARC_LOG_INFO, "tracing: exporting to %s again", X.conf.endpoint);
                X.failing = false;
            } else {
                bump(&X.errors, 1);
                bump(&X.lost, spans);
                if (!X.failing)
                    arc_log(ARC_LOG_ERROR, "tracing: export to %s failed: %s (spans are counted in "
                            "arc_tracing_spans_lost_total)", X.conf.endpoint, why);
                X.failing = true;
            }
            if (n < MAX_BATCH)
                break;
        }
        if (stopping)
            break;
    }
    arc_sbuf_dispose(&body);
    return NULL;
}

int arc_otlp_start(const struct arc_tracing_conf *conf, const char *service_instance,
                   size_t n_workers, char *err, size_t errlen)
{
    if (X.running || !conf->export)
        return 0;
    X.conf = *conf;
    snprintf(X.instance, sizeof(X.instance), "%s", service_instance ? service_instance : "arc");
    X.rings = calloc(n_workers ? n_workers : 1, sizeof(*X.rings));
    if (!X.rings) {
        snprintf(err, errlen, "tracing: out of memory");
        return -1;
    }
    X.n_rings = n_workers;
    for (size_t i = 0; i < n_workers; i++)
        if (arc_alog_ring_init(&X.rings[i], conf->queue_capacity) < 0) {
            snprintf(err, errlen, "tracing: out of memory for %u spans per worker",
                     conf->queue_capacity);
            for (size_t j = 0; j < i; j++)
                arc_alog_ring_dispose(&X.rings[j]);
            free(X.rings);
            X.rings = NULL;
            return -1;
        }
    pthread_mutex_init(&X.mu, NULL);
    pthread_cond_init(&X.cv, NULL);
    X.stop = false;
    if (pthread_create(&X.thread, NULL, exporter_main, NULL) != 0) {
        snprintf(err, errlen, "tracing: cannot start the exporter thread");
        for (size_t j = 0; j < n_workers; j++)
            arc_alog_ring_dispose(&X.rings[j]);
        free(X.rings);
        X.rings = NULL;
        return -1;
    }
    pthread_setname_np(X.thread, "arc-otlp");
    X.running = true;
    return 0;
}

void arc_otlp_stop(void)
{
    if (!X.running)
        return;
    pthread_mutex_lock(&X.mu);
    X.stop = true;
    pthread_cond_signal(&X.cv);
    pthread_mutex_unlock(&X.mu);
    pthread_join(X.thread, NULL);   /* sends what the queues still hold */
    X.running = false;
    for (size_t i = 0; i < X.n_rings; i++)
        arc_alog_ring_dispose(&X.rings[i]);
    free(X.rings);
    X.rings = NULL;
    X.n_rings = 0;
}
