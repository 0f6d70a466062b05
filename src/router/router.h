/**
 * Route table: host → priority → radix tree over path segments → methods
 * and request predicates (header, cookie and query matchers, optionally
 * combined by a boolean expression).
 *
 * Built once per config snapshot from route specs (arc_rt_build) and then
 * read-only: any number of workers may call arc_rt_match concurrently.
 * Regexes are compiled (and JIT-compiled) once per table, identical
 * matchers are shared, and nothing is allocated per request except a
 * per-thread PCRE2 match block on a thread's first regex.
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
 * Predicates (struct arc_rt_pred): a header matcher tests the request's
 * header fields whose name equals `name` ignoring case; a cookie matcher the
 * cookie-pairs of every Cookie field (RFC 6265 §4.2.1; names exact, one pair
 * of surrounding DQUOTEs dropped from the value); a query matcher the
 * `&`-separated name=value pairs of the query, names and values
 * percent-decoded with '+' as a space (names exact). A field or pair may
 * repeat: a matcher holds when *any* occurrence satisfies it. `exists` holds
 * if there is an occurrence at all; `equals` compares bytes exactly;
 * `contains` looks for the value as a substring; `regex` searches the value
 * with a PCRE2 pattern (UTF mode, invalid UTF-8 in the subject never
 * matches a character; unanchored: write ^...$ for the whole value). A
 * regex that exceeds ARC_RT_REGEX_MATCH_LIMIT counts as not matching.
 * Without an expression every matcher of a route must hold; with one, the
 * expression over the matchers' ids decides (syntax: arc_rt_check_expr).
 *
 * Precedence when several routes match one request, highest first:
 *   1. `priority`;
 *   2. host specificity: exact host > `*.suffix` (longer suffix first) >
 *      routes without hosts (a host route beats an any-host route even when
 *      the any-host route has the more specific path: a host's routes own
 *      that host's traffic, as in name-based virtual hosting);
 *   3. the path, per segment from the left: literal > `{name}` > `*` >
 *      `{*name}` (so exact before capture before wildcard, and of two
 *      routes the one whose literal prefix is longer wins);
 *   4. more predicates: (methods given ? 1 : 0) + number of matchers.
 * Two routes that can match the same request and are equal on all of these
 * are ambiguous, and the build fails naming both. Whether two routes'
 * matchers can hold together is decided over the matchers as opaque tests
 * (only "exists" is known to follow from any other test of the same field):
 * routes told apart only by, say, `equals: a` versus `equals: b` on the same
 * header are ambiguous, since a request may carry both values.
 */
#ifndef ARC_ROUTER_ROUTER_H
#define ARC_ROUTER_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/common.h"

#include <sys/types.h>

#define ARC_RT_MAX_CAPTURES 16
/* Matchers per route (an expression's results are cached in a 64-bit mask). */
#define ARC_RT_MAX_PREDS 64
/* Bytes of one expression, and how deeply it may nest (parentheses, not). */
#define ARC_RT_MAX_EXPR 4096
#define ARC_RT_MAX_EXPR_DEPTH 32
/* PCRE2 match limit of every regex matcher: bounds the backtracking one
 * request can cause (PCRE2's default is 10,000,000). */
#define ARC_RT_REGEX_MATCH_LIMIT 100000

enum arc_rt_source { ARC_RT_HEADER = 0, ARC_RT_COOKIE = 1, ARC_RT_QUERY = 2 };
enum arc_rt_op { ARC_RT_EXISTS = 0, ARC_RT_EQUALS = 1, ARC_RT_CONTAINS = 2, ARC_RT_REGEX = 3 };

/* One matcher of a route (config: match.headers[], cookies[], query[]). */
struct arc_rt_pred {
    uint8_t source;             /* enum arc_rt_source */
    uint8_t op;                 /* enum arc_rt_op */
    const char *name;           /* field, cookie or (decoded) parameter name */
    const char *value;          /* EQUALS/CONTAINS: the value; REGEX: the pattern; EXISTS: NULL */
    const char *id;             /* its name in `expr`, or NULL */
};

struct arc_rt_spec {
    const char *name;           /* for error messages */
    const char *path;           /* pattern, must start with '/' */
    const char *const *hosts;   /* "api.example.com" or "*.example.com"; NULL/0 = any */
    size_t n_hosts;
    uint32_t methods;           /* ARC_M_* mask from config/config.h, 0 = any */
    int32_t priority;
    const void *data;           /* returned by arc_rt_match (e.g. the compiled route) */
    const struct arc_rt_pred *preds; /* NULL/0 = none; at most ARC_RT_MAX_PREDS */
    size_t n_preds;
    const char *expr;           /* over the preds' ids; NULL = all preds must hold */
};

/* A request header field (the same layout as the proxy's field views). */
struct arc_rt_field {
    struct arc_str name, value;
};

/* What the router looks at in a request. Every view is borrowed for the
 * duration of arc_rt_match (captures keep pointing into `path`). */
struct arc_rt_input {
    uint32_t method_bit;        /* ARC_M_* bit, 0 for an extension method */
    struct arc_str host;        /* Host / :authority, port allowed; may be empty */
    struct arc_str path;        /* origin-form path without the query */
    struct arc_str query;       /* after '?', without it; empty if none */
    const struct arc_rt_field *fields; /* header fields as received (names any case) */
    size_t n_fields;
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
 * Validates every pattern, host, matcher and expression and builds the
 * table. Returns 0 and *out, or -1 with a message in err ("route 'x': path
 * '/a/{*r}/b': {*name} must be the last segment", "routes 'a' and 'b' are
 * ambiguous: ...") and *err_index set to the offending spec's index. Builds
 * nothing on failure. The specs may be freed once this returns.
 * Thread: any (the control thread in practice); builds are independent.
 */
int arc_rt_build(const struct arc_rt_spec *specs, size_t n,
                 struct arc_rt_table **out,
                 char *err, size_t errlen, size_t *err_index);

void arc_rt_free(struct arc_rt_table *t);

/* Syntax check of one path pattern (used by config validation). */
int arc_rt_check_pattern(const char *path, char *err, size_t errlen);

/**
 * Compiles `pattern` as a matcher regex would be and throws it away (config
 * validation). Returns 0, or -1 with PCRE2's message in err and the byte
 * offset in the pattern where PCRE2 stopped in *offset.
 */
int arc_rt_check_regex(const char *pattern, char *err, size_t errlen, size_t *offset);

/**
 * Parses a match expression. Grammar (keywords lower-case, whitespace
 * between tokens free, `not` binds tighter than `and`, `and` than `or`):
 *
 *     expr    = term *( "or" term )
 *     term    = factor *( "and" factor )
 *     factor  = "not" factor / "(" expr ")" / id
 *     id      = ( ALPHA / "_" ) *( ALPHA / DIGIT / "_" / "-" )   ; not a keyword
 *
 * Every id must be one of `ids`. Returns 0 and, in *used, bit i set for each
 * ids[i] the expression mentions; or -1 with a message in err and the byte
 * offset of the offending character (or of the end) in *offset. Pure: no
 * allocation. Thread: any.
 */
int arc_rt_check_expr(const char *expr, const char *const *ids, size_t n_ids,
                      uint64_t *used, char *err, size_t errlen, size_t *offset);

/**
 * Finds the best route for the request. Returns the spec's `data` or NULL.
 * When NULL is returned because routes matched host, path and predicates
 * but none allowed the method, *allowed is set to the union of their method
 * masks (caller answers 405 with Allow); otherwise *allowed is 0 (404).
 * Captures point into in->path and into the table.
 * Thread: any worker, concurrently.
 */
const void *arc_rt_match(const struct arc_rt_table *t, const struct arc_rt_input *in,
                         struct arc_rt_captures *caps, uint32_t *allowed);

/* ARC_M_* bit for a method token ("GET" → ARC_M_GET), 0 for others. */
uint32_t arc_rt_method_bit(struct arc_str method);

/* ------------------------------------------------------------ rewrites */

/* Largest rewritten target (path and query) arc_rt_rewrite_apply writes. */
#define ARC_RT_REWRITE_MAX 8192

struct arc_rt_rewrite;          /* compiled routes[].action.rewrite; immutable */

/**
 * Checks a rewrite for the config: `pattern` compiles as a PCRE2 regex and
 * `replace` is a valid template (starts with '/', $0-$9 within the
 * pattern's groups, {name} captured by the route's path as has_capture
 * says, only path/query characters, %XX escapes). Returns 0, or -1 with a
 * message in err, *in_replace telling which string is wrong and *offset
 * the byte in it. Thread: any.
 */
int arc_rt_rewrite_check(const char *pattern, const char *replace,
                         bool (*has_capture)(const char *name, size_t n, const void *ud),
                         const void *ud, char *err, size_t errlen, size_t *offset,
                         bool *in_replace);

/* Compiles a checked rewrite (JIT when available); NULL on out of memory. */
struct arc_rt_rewrite *arc_rt_rewrite_new(const char *pattern, const char *replace);
void arc_rt_rewrite_free(struct arc_rt_rewrite *rw);

/**
 * Applies the rewrite to a request's path: the first match of the pattern
 * is replaced by the expanded template (captures from the route's match in
 * caps), the rest of the path follows, and the query is kept unless the
 * template sets one. Writes the new origin-form target (no NUL) to out.
 * Returns its length, 0 when the pattern does not match (or the match limit
 * was hit: -1), -2 when it would not fit in cap. Thread: any worker.
 */
ssize_t arc_rt_rewrite_apply(const struct arc_rt_rewrite *rw, struct arc_str path,
                             struct arc_str query, const struct arc_rt_captures *caps,
                             char *out, size_t cap);

#endif
