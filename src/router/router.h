/**
 * Route table: host → method → radix tree over path segments.
 *
 * Built once per config snapshot from route specs (arc_rt_build) and then
 * read-only: any number of workers may call arc_rt_match concurrently.
 *
 * Path pattern syntax (CONFIG.md routes[].match.path): segments separated by
 * '/'; each segment is a literal, `{name}` (exactly one non-empty segment,
 * captured), `*` (exactly one non-empty segment, not captured) or `{*name}`
 * (the rest of the path including slashes, possibly empty, captured; only as
 * the last segment). "/{*rest}" therefore matches every path including "/".
 * Matching is on the raw path bytes (no percent-decoding, no dot-segment
 * removal) and is case-sensitive; hosts are matched case-insensitively with
 * any ":port" suffix ignored.
 *
 * Precedence when several routes match one request: higher `priority` first;
 * then per segment, from the left: literal before `{name}`/`*` before
 * `{*name}`; then the route with more predicates (host given, methods given)
 * wins; equal on all of these is an ambiguity and a build error.
 * Host patterns: exact names beat "*.suffix" patterns, longer suffix beats
 * shorter; routes without hosts match any host but lose to host routes.
 */
#ifndef ARC_ROUTER_ROUTER_H
#define ARC_ROUTER_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/common.h"

#define ARC_RT_MAX_CAPTURES 16

struct arc_rt_spec {
    const char *name;           /* for error messages */
    const char *path;           /* pattern, must start with '/' */
    const char *const *hosts;   /* "api.example.com" or "*.example.com"; NULL/0 = any */
    size_t n_hosts;
    uint32_t methods;           /* ARC_M_* mask from config/config.h, 0 = any */
    int32_t priority;
    const void *data;           /* returned by arc_rt_match (e.g. the compiled route) */
};

struct arc_rt_table;            /* opaque, immutable after build */

struct arc_rt_capture {
    struct arc_str name;        /* points into the table (lives with it) */
    struct arc_str value;       /* points into the matched path */
};

struct arc_rt_captures {
    struct arc_rt_capture v[ARC_RT_MAX_CAPTURES];
    size_t n;
};

/**
 * Validates every pattern and builds the table. Returns 0 and *out, or -1
 * with a message in err ("route 'x': path '/a/{*r}/b': {*name} must be the
 * last segment", "routes 'a' and 'b' are ambiguous: ...") and *err_index set
 * to the offending spec's index. Builds nothing on failure.
 */
int arc_rt_build(const struct arc_rt_spec *specs, size_t n,
                 struct arc_rt_table **out,
                 char *err, size_t errlen, size_t *err_index);

void arc_rt_free(struct arc_rt_table *t);

/* Syntax check of one path pattern (used by config validation). */
int arc_rt_check_pattern(const char *path, char *err, size_t errlen);

/**
 * Finds the best route for (host, method, path). Returns the spec's `data`
 * or NULL. When NULL is returned because routes matched host and path but
 * none allowed the method, *allowed is set to the union of their method
 * masks (caller answers 405 with Allow); otherwise *allowed is 0 (404).
 * `method_bit` is the ARC_M_* bit of the request method, or 0 for an
 * extension method (which only matches routes without a methods list).
 * Captures point into `path` and into the table.
 */
const void *arc_rt_match(const struct arc_rt_table *t,
                         struct arc_str host, uint32_t method_bit,
                         struct arc_str path,
                         struct arc_rt_captures *caps, uint32_t *allowed);

/* ARC_M_* bit for a method token ("GET" → ARC_M_GET), 0 for others. */
uint32_t arc_rt_method_bit(struct arc_str method);

#endif
