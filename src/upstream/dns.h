/**
 * DNS discovery (upstreams[].discovery: {type: dns}), on the control thread.
 *
 * Each dns upstream's hostname is resolved with c-ares (A and AAAA), again
 * when the shortest TTL of the answer runs out (respect_ttl) or every
 * fallback_poll. A good answer is stored in config/discovered.h; when it
 * differs from the stored set arc_dns_take_changed() says so and the
 * control thread publishes a new snapshot (workers adopt it like a reload:
 * pools and health of the endpoints that remain are kept, by identity). A
 * failed lookup keeps the last good set, is logged on a change of state,
 * counted, shown in /v1/upstreams, and retried after fallback_poll.
 *
 * c-ares' sockets are watched with one-shot poll operations on the caller's
 * io_uring (user data ud_first .. ud_first + ARC_DNS_SLOTS - 1); its
 * timeouts are run from arc_dns_tick. The resolver is the system's
 * (/etc/resolv.conf, /etc/hosts) unless node.dns.servers names the servers
 * (then /etc/hosts still answers first); node.dns.timeout and attempts
 * bound each lookup. They are read once (node.dns is restart-only).
 *
 * Thread: control only.
 */
#ifndef ARC_UPSTREAM_DNS_H
#define ARC_UPSTREAM_DNS_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

struct io_uring;
struct arc_sbuf;
struct json_t;

/* c-ares sockets watched at once (a UDP and a TCP socket per server). */
#define ARC_DNS_SLOTS 16

struct arc_dns;

/* NULL if c-ares could not start (err says why). `node`: node.dns (read
 * here only). */
struct arc_dns *arc_dns_new(struct io_uring *ring, uint64_t ud_first,
                            const struct arc_node_conf *node, char *err, size_t errlen);
void arc_dns_free(struct arc_dns *d);

/* Follows the running config: new dns upstreams are looked up at once,
 * removed ones are forgotten. */
void arc_dns_sync(struct arc_dns *d, const struct arc_config *cfg, uint64_t now_ms);
/* A completion with user data in this resolver's range. */
void arc_dns_on_cqe(struct arc_dns *d, uint64_t ud, int res, uint64_t now_ms);
/* Timeouts, and lookups that are due. */
void arc_dns_tick(struct arc_dns *d, uint64_t now_ms);
/* True once after any stored set changed. */
bool arc_dns_take_changed(struct arc_dns *d);

/* /metrics: arc_upstream_dns_* series. */
void arc_dns_render_metrics(struct arc_sbuf *m, const struct arc_dns *d);
/* /v1/upstreams: the upstream's discovery state (new reference), or NULL
 * when it is not a dns upstream. */
struct json_t *arc_dns_status_json(const struct arc_dns *d, const char *upstream,
                                   uint64_t now_ms);

#endif
