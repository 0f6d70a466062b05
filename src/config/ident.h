/**
 * Stable identities for routes, upstreams and endpoints.
 *
 * A route or upstream keeps its id for the life of the process, found by
 * its name (an endpoint by its upstream's name and its address), however
 * the snapshots that mention it order their arrays. Per-worker tables
 * (load balancers, pools, metrics rows) and node-wide counters are indexed
 * by these ids, so a snapshot swap never makes an old exchange index a
 * table by the wrong position, and tables only grow.
 *
 * Ids are small, dense and never reused: a table sized to
 * arc_ident_count(kind) covers every id handed out so far. At most
 * ARC_IDENT_MAX per kind (a config that would exceed it is refused).
 *
 * Thread: arc_ident_of runs where snapshots are built (serialised by a
 * mutex inside); arc_ident_count and arc_ident_endpoint_open from any
 * thread, for ids that a published snapshot carries.
 */
#ifndef ARC_CONFIG_IDENT_H
#define ARC_CONFIG_IDENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ARC_IDENT_MAX 65536u
#define ARC_IDENT_NONE UINT32_MAX

enum arc_ident_kind { ARC_IDENT_ROUTE, ARC_IDENT_UPSTREAM, ARC_IDENT_ENDPOINT, ARC_IDENT__KINDS };

/** The id of `name` (`len` bytes) of kind `k`, assigned on first sight;
 *  ARC_IDENT_NONE when the kind has ARC_IDENT_MAX ids or memory ran out. */
uint32_t arc_ident_of(enum arc_ident_kind k, const char *name, size_t len);

/** Ids handed out so far for kind `k` (every id is below it). */
uint32_t arc_ident_count(enum arc_ident_kind k);

/** Node-wide count of open connections to endpoint `id` (for
 *  pool.max_connections), shared by every worker and snapshot. */
_Atomic uint32_t *arc_ident_endpoint_open(uint32_t id);

#endif
