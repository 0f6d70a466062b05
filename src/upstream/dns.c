/*
 * DNS discovery with c-ares on the control thread's ring. See dns.h.
 *
 * A target (one dns upstream):
 *
 *   PENDING ──answer──▶ OK ◀──answer──┐
 *      │                 │  due: look up again (TTL or fallback_poll)
 *      └──failure──▶ FAILING ─────────┘  (retried every fallback_poll; the
 *                                          last good set stays in use)
 *
 * A c-ares socket slot: free (fd -1, no poll) → watched (fd, a one-shot
 * poll in flight, re-armed after each completion while c-ares wants the
 * socket) → closing (c-ares let go: the poll is cancelled; the slot is
 * free again once its completion arrived).
 */
#include "core/log.h"
#include "upstream/dns.h"
#include "config/discovered.h"
#include "core/sbuf.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <jansson.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop/ring.h"

enum tstate { T_PENDING, T_OK, T_FAILING };
static const char *const tstate_names[] = { "pending", "ok", "failing" };

struct target {
    char *upstream, *hostname;
    uint16_t port;
    bool respect_ttl;
    uint64_t fallback_poll;
    enum tstate state;
    bool in_flight;
    bool gone;                  /* no longer configured: freed when its lookup ends */
    uint64_t due;               /* next lookup (arc_now_ms), when not in flight */
    uint64_t last_ok;           /* time of the last good answer, 0 never */
    uint32_t ttl;               /* shortest TTL of the last good answer (s) */
    size_t n_addrs;             /* addresses in the last good answer */
    uint64_t ok, failed;        /* lookups by result */
    char last_error[160];
    struct arc_dns *d;
};

struct slot {
    int fd;                     /* -1: not watched */
    short events;               /* what c-ares wants (POLLIN / POLLOUT) */
    short armed_events;         /* what the poll in flight waits for */
    bool armed;                 /* a poll operation is in flight */
};

struct arc_dns {
    ares_channel ch;
    struct io_uring *ring;
    uint64_t ud_first;
    struct slot slots[ARC_DNS_SLOTS];
    struct target **t;
    size_t n_t;
    bool changed;
    bool warned_slots;
    bool dying;                 /* arc_dns_free: the ring may be gone */
    uint64_t now;               /* the caller's clock at the last entry */
};

/* ------------------------------------------------------------ sockets */

static void arm(struct arc_dns *d, size_t i)
{
    struct slot *s = &d->slots[i];
    struct io_uring_sqe *sqe = arc_ring_sqe(d->ring);
    io_uring_prep_poll_add(sqe, s->fd, (unsigned)s->events);
    io_uring_sqe_set_data64(sqe, d->ud_first + i);
    s->armed = true;
    s->armed_events = s->events;
}

static void disarm(struct arc_dns *d, size_t i)
{
    struct io_uring_sqe *sqe = arc_ring_sqe(d->ring);
    io_uring_prep_poll_remove(sqe, d->ud_first + i);
    io_uring_sqe_set_data64(sqe, 0);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct arc_dns *d = data;
    if (d->dying)
        return;
    short ev = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
    size_t i, free_i = ARC_DNS_SLOTS;
    for (i = 0; i < ARC_DNS_SLOTS; i++) {
        if (d->slots[i].fd == fd)
            break;
        if (free_i == ARC_DNS_SLOTS && d->slots[i].fd < 0 && !d->slots[i].armed)
            free_i = i;
    }
    if (i == ARC_DNS_SLOTS) {
        if (!ev)
            return;
        if (free_i == ARC_DNS_SLOTS) {
            /* (the lookup then runs into its timeout) */
            if (!d->warned_slots)
                arc_log(ARC_LOG_WARN, "dns: more than %d resolver sockets at once; some are "
                        "not watched", ARC_DNS_SLOTS);
            d->warned_slots = true;
            return;
        }
        i = free_i;
        d->slots[i].fd = fd;
    }
    struct slot *s = &d->slots[i];
    if (!ev) {                          /* c-ares closes it */
        s->fd = -1;
        s->events = 0;
        if (s->armed)
            disarm(d, i);
        return;
    }
    s->events = ev;
    if (!s->armed)
        arm(d, i);
    else if (s->armed_events != ev)
        disarm(d, i);                   /* re-armed with the new events on its completion */
}

void arc_dns_on_cqe(struct arc_dns *d, uint64_t ud, int res, uint64_t now_ms)
{
    d->now = now_ms;
    size_t i = (size_t)(ud - d->ud_first);
    if (i >= ARC_DNS_SLOTS)
        return;
    struct slot *s = &d->slots[i];
    s->armed = false;
    if (s->fd < 0)
        return;                         /* closed meanwhile: the slot is free */
    int fd = s->fd;
    if (res > 0) {
        ares_socket_t r = res & (POLLIN | POLLERR | POLLHUP) ? fd : ARES_SOCKET_BAD;
        ares_socket_t w = res & (POLLOUT | POLLERR | POLLHUP) ? fd : ARES_SOCKET_BAD;
        ares_process_fd(d->ch, r, w);
    }
    /* (c-ares may have closed it, or reopened the same number in another slot) */
    if (s->fd == fd && s->events && !s->armed)
        arm(d, i);
}

/* ------------------------------------------------------------ lookups */

static void target_free(struct target *t)
{
    free(t->upstream);
    free(t->hostname);
    free(t);
}

static void failed(struct target *t, const char *why)
{
    t->failed++;
    bool news = t->state != T_FAILING || strcmp(why, t->last_error) != 0;
    snprintf(t->last_error, sizeof(t->last_error), "%s", why);
    if (news) {
        arc_log(ARC_LOG_WARN, "dns: upstream %s: looking up %s failed: %s; %s, retrying every "
                "%llums", t->upstream, t->hostname, why,
                t->last_ok ? "keeping the last good addresses" : "no addresses yet",
                (unsigned long long)t->fallback_poll);
        fflush(stderr);
    }
    t->state = T_FAILING;
    t->due = t->d->now + t->fallback_poll;
}

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct target *t = arg;
    t->in_flight = false;
    if (t->gone || status == ARES_EDESTRUCTION) {
        ares_freeaddrinfo(ai);
        if (t->gone)
            target_free(t);
        return;
    }
    if (status != ARES_SUCCESS) {
        ares_freeaddrinfo(ai);
        failed(t, ares_strerror(status));
        return;
    }
    size_t n = 0, cap = 0;
    struct arc_addr *v = NULL;
    uint32_t ttl = UINT32_MAX;
    for (struct ares_addrinfo_node *nd = ai ? ai->nodes : NULL; nd; nd = nd->ai_next) {
        char ip[INET6_ADDRSTRLEN], text[96];
        if (nd->ai_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)nd->ai_addr)->sin_addr, ip,
                      sizeof(ip));
        else if (nd->ai_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)nd->ai_addr)->sin6_addr, ip,
                      sizeof(ip));
        else
            continue;
        snprintf(text, sizeof(text), nd->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
                 (unsigned)t->port);
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct arc_addr *nv = realloc(v, cap * sizeof(*nv));
            if (!nv)
                break;
            v = nv;
        }
        if (arc_config_parse_addr(text, &v[n]) == 0)
            n++;
        if (nd->ai_ttl >= 0 && (uint32_t)nd->ai_ttl < ttl)
            ttl = (uint32_t)nd->ai_ttl;
    }
    ares_freeaddrinfo(ai);
    if (n == 0) {
        free(v);
        failed(t, "the answer holds no address");
        return;
    }
    int rc = arc_discovered_set(t->upstream, t->hostname, t->port, v, n);
    free(v);
    if (rc < 0) {
        failed(t, "out of memory");
        return;
    }
    long kept = arc_discovered_count(t->upstream, t->hostname, t->port);
    if (rc > 0 || t->state != T_OK) {
        arc_log(ARC_LOG_INFO, "dns: upstream %s: %s resolves to %ld address%s (ttl %us)%s",
                t->upstream, t->hostname, kept, kept == 1 ? "" : "es",
                ttl == UINT32_MAX ? 0 : ttl, rc > 0 ? ": endpoints updated" : "");
    }
    if (rc > 0)
        t->d->changed = true;
    t->state = T_OK;
    t->ok++;
    t->last_ok = t->d->now;
    t->last_error[0] = 0;
    t->n_addrs = kept > 0 ? (size_t)kept : 0;
    t->ttl = ttl == UINT32_MAX ? 0 : ttl;
    /* TTL 0 (or an /etc/hosts answer) says nothing about when to ask again. */
    uint64_t wait = t->respect_ttl && t->ttl ? (uint64_t)t->ttl * 1000 : t->fallback_poll;
    t->due = t->d->now + wait;
}

static void lookup(struct arc_dns *d, struct target *t)
{
    struct ares_addrinfo_hints h = { .ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT };
    t->in_flight = true;
    /* (may answer at once, e.g. from /etc/hosts) */
    ares_getaddrinfo(d->ch, t->hostname, NULL, &h, on_answer, t);
}

void arc_dns_tick(struct arc_dns *d, uint64_t now_ms)
{
    d->now = now_ms;
    ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* timeouts */
    for (size_t i = 0; i < d->n_t; i++)
        if (!d->t[i]->in_flight && now_ms >= d->t[i]->due)
            lookup(d, d->t[i]);
}

bool arc_dns_take_changed(struct arc_dns *d)
{
    bool c = d->changed;
    d->changed = false;
    return c;
}

void arc_dns_sync(struct arc_dns *d, const struct arc_config *cfg, uint64_t now_ms)
{
    d->now = now_ms;
    size_t n_new = 0;
    for (size_t u = 0; u < cfg->n_upstreams; u++)
        n_new += cfg->upstreams[u].dns.hostname != NULL;
    struct target **nt = calloc(n_new ? n_new : 1, sizeof(*nt));
    if (!nt) {
        arc_log(ARC_LOG_WARN, "dns: out of memory following the config");
        return;
    }
    size_t k = 0;
    for (size_t u = 0; u < cfg->n_upstreams; u++) {
        const struct arc_upstream_conf *uc = &cfg->upstreams[u];
        if (!uc->dns.hostname)
            continue;
        struct target *t = NULL;
        for (size_t i = 0; i < d->n_t && !t; i++)
            if (d->t[i] && strcmp(d->t[i]->upstream, uc->name) == 0 &&
                strcmp(d->t[i]->hostname, uc->dns.hostname) == 0 && d->t[i]->port == uc->dns.port) {
                t = d->t[i];
                d->t[i] = NULL;
            }
        if (!t) {
            t = calloc(1, sizeof(*t));
            if (t) {
                t->upstream = strdup(uc->name);
                t->hostname = strdup(uc->dns.hostname);
            }
            if (!t || !t->upstream || !t->hostname) {
                if (t)
                    target_free(t);
                continue;
            }
            t->d = d;
            t->port = uc->dns.port;
            t->due = now_ms;
        }
        /* A shorter fallback_poll applies from now on. */
        if (!t->in_flight && (t->state != T_OK || !t->respect_ttl) &&
            t->due > now_ms + uc->dns.fallback_poll)
            t->due = now_ms + uc->dns.fallback_poll;
        t->respect_ttl = uc->dns.respect_ttl;
        t->fallback_poll = uc->dns.fallback_poll;
        nt[k++] = t;
    }
    for (size_t i = 0; i < d->n_t; i++) {
        if (!d->t[i])
            continue;
        if (d->t[i]->in_flight)
            d->t[i]->gone = true;
        else
            target_free(d->t[i]);
    }
    free(d->t);
    d->t = nt;
    d->n_t = k;
    arc_discovered_prune(cfg);
    for (size_t i = 0; i < d->n_t; i++)
        if (!d->t[i]->in_flight && now_ms >= d->t[i]->due)
            lookup(d, d->t[i]);
}

/* ------------------------------------------------------------ life */

struct arc_dns *arc_dns_new(struct io_uring *ring, uint64_t ud_first,
                            const struct arc_node_conf *node, char *err, size_t errlen)
{
    static bool lib_ok;
    if (!lib_ok) {
        int rc = ares_library_init(ARES_LIB_INIT_ALL);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
            return NULL;
        }
        lib_ok = true;
    }
    struct arc_dns *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->ring = ring;
    d->ud_first = ud_first;
    for (size_t i = 0; i < ARC_DNS_SLOTS; i++)
        d->slots[i].fd = -1;
    struct ares_options o = {
        .sock_state_cb = sock_state, .sock_state_cb_data = d,
        .timeout = (int)node->dns_timeout, .tries = (int)node->dns_attempts,
    };
    int rc = ares_init_options(&d->ch, &o,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(d);
        return NULL;
    }
    if (node->n_dns_servers) {
        /* "ip:port,[ipv6]:port" (the addresses' normalised text) */
        char csv[16 * 72] = "";
        size_t used = 0;
        for (size_t i = 0; i < node->n_dns_servers && used < sizeof(csv); i++)
            used += (size_t)snprintf(csv + used, sizeof(csv) - used, "%s%s", i ? "," : "",
                                     node->dns_servers[i].text);
        rc = ares_set_servers_ports_csv(d->ch, csv);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "node.dns.servers '%s': %s", csv, ares_strerror(rc));
            ares_destroy(d->ch);
            free(d);
            return NULL;
        }
    }
    return d;
}

void arc_dns_free(struct arc_dns *d)
{
    if (!d)
        return;
    d->dying = true;
    for (size_t i = 0; i < d->n_t; i++) {
        if (d->t[i]->in_flight)
            d->t[i]->gone = true;       /* freed by its callback (ARES_EDESTRUCTION) */
        else
            target_free(d->t[i]);
    }
    free(d->t);
    d->t = NULL;
    d->n_t = 0;
    ares_destroy(d->ch);
    free(d);
}

/* ------------------------------------------------------------ reporting */

void arc_dns_render_metrics(struct arc_sbuf *m, const struct arc_dns *d)
{
    if (!d || d->n_t == 0)
        return;
    arc_sbuf_printf(m, "# HELP arc_upstream_dns_lookups_total DNS lookups of dns-discovered "
                       "upstreams, by result.\n# TYPE arc_upstream_dns_lookups_total counter\n");
    for (size_t i = 0; i < d->n_t; i++)
        arc_sbuf_printf(m, "arc_upstream_dns_lookups_total{upstream=\"%s\",result=\"ok\"} %llu\n"
                           "arc_upstream_dns_lookups_total{upstream=\"%s\",result=\"error\"} "
                           "%llu\n", d->t[i]->upstream, (unsigned long long)d->t[i]->ok,
                        d->t[i]->upstream, (unsigned long long)d->t[i]->failed);
    arc_sbuf_printf(m, "# HELP arc_upstream_dns_up 1 while the latest lookup succeeded (0: "
                       "failing or not answered yet; the last good addresses stay in use).\n"
                       "# TYPE arc_upstream_dns_up gauge\n");
    for (size_t i = 0; i < d->n_t; i++)
        arc_sbuf_printf(m, "arc_upstream_dns_up{upstream=\"%s\"} %d\n", d->t[i]->upstream,
                        d->t[i]->state == T_OK);
    arc_sbuf_printf(m, "# HELP arc_upstream_dns_endpoints Addresses of the last good answer.\n"
                       "# TYPE arc_upstream_dns_endpoints gauge\n");
    for (size_t i = 0; i < d->n_t; i++)
        arc_sbuf_printf(m, "arc_upstream_dns_endpoints{upstream=\"%s\"} %zu\n",
                        d->t[i]->upstream, d->t[i]->n_addrs);
}

json_t *arc_dns_status_json(const struct arc_dns *d, const char *upstream, uint64_t now_ms)
{
    for (size_t i = 0; d && i < d->n_t; i++) {
        const struct target *t = d->t[i];
        if (strcmp(t->upstream, upstream) != 0)
            continue;
        json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:I,s:i,s:I,s:I}", "type", "dns",
                              "hostname", t->hostname, "port", (int)t->port,
                              "state", tstate_names[t->state], "addresses", (json_int_t)t->n_addrs,
                              "ttl", (int)t->ttl, "lookups_ok", (json_int_t)t->ok,
                              "lookups_failed", (json_int_t)t->failed);
        json_object_set_new(o, "last_error", t->last_error[0] ? json_string(t->last_error)
                                                              : json_null());
        json_object_set_new(o, "last_success_ms_ago", t->last_ok ? json_integer(
                                (json_int_t)(now_ms - t->last_ok)) : json_null());
        json_object_set_new(o, "next_lookup_in_ms", json_integer(
            t->in_flight ? 0 : (json_int_t)(t->due > now_ms ? t->due - now_ms : 0)));
        return o;
    }
    return NULL;
}
