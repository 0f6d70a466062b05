/**
 * Endpoints found by discovery (upstreams with discovery: {type: dns}).
 *
 * The resolver (upstream/dns.c) stores each upstream's latest good set of
 * addresses here; arc_snapshot_build copies it into the upstream's
 * endpoints, so a snapshot built for any reason (start, reload, a changed
 * answer) carries the addresses known at that moment. Sets are keyed by
 * upstream name, hostname and port, so a reload that keeps them keeps the
 * set, and one that changes them starts empty until the first answer.
 *
 * Thread: any (a mutex; used on the control thread, and on the main thread
 * at start). Never on a worker's request path.
 */
#ifndef ARC_CONFIG_DISCOVERED_H
#define ARC_CONFIG_DISCOVERED_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Addresses one name may contribute (after de-duplication). */
#define ARC_DISCOVERED_MAX 1024

/* Replaces the set of (upstream, hostname, port) with a[0..n) (sorted and
 * de-duplicated here; n is capped at ARC_DISCOVERED_MAX). Returns 1 if it
 * differs from the stored one, 0 if not, -1 out of memory (nothing
 * changed). */
int arc_discovered_set(const char *upstream, const char *hostname, uint16_t port,
                       const struct arc_addr *a, size_t n);

/* The stored set's size, or -1 when none is stored. */
long arc_discovered_count(const char *upstream, const char *hostname, uint16_t port);

/* Forgets every set that no dns upstream of cfg names. */
void arc_discovered_prune(const struct arc_config *cfg);

/* Copies the stored sets into the endpoints of cfg's dns upstreams (weight
 * 1), at most as many as the upstream's balancer allows (consistent_hash:
 * ARC_LB_MAX_SLOTS / virtual_nodes; maglev: table_size - 1). Returns 0, or
 * -1 out of memory. */
int arc_discovered_fill(struct arc_config *cfg);

/* Forgets everything (tests). */
void arc_discovered_reset(void);

#endif
