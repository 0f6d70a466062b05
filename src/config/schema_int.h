/**
 * Schema walker internals shared by schema*.c: the key tables that say which
 * keys a mapping may hold, and typed getters that read one member, check its
 * type and range, and record a positioned error when it is wrong.
 *
 * Conventions of every getter below:
 * - `path` names the mapping ("listeners[0].socket", "" at top level); the
 *   error text is "<path>.<key>: <problem>" and points at the value.
 * - A missing member, or one whose value is null, leaves *out untouched (the
 *   caller put the default there) and returns true; null means "default".
 * - On a problem the error is recorded, *out is untouched, false returned.
 * Strings handed out are heap copies owned by the caller (the config).
 */
#ifndef ARC_CONFIG_SCHEMA_INT_H
#define ARC_CONFIG_SCHEMA_INT_H

#include "config/tree_int.h"

#define ARC_KEY_REQUIRED 1u    /* must be present (and not null) */
#define ARC_KEY_LATER    2u    /* in CONFIG.md, not implemented in this version */

struct arc_conf_key {
    const char *name;
    unsigned flags;
};

struct arc_sctx {
    struct arc_conf_diag *d;
    struct arc_config *cfg;
};

/* Longest path we print; deeper names are truncated, never overflowed. */
#define ARC_PATH_MAX 160

/* Heap helpers that abort on exhaustion (see tree_int.h). */
void *arc_config__xcalloc(size_t n, size_t size);
char *arc_config__xstrdup(const char *s);

/* "a.b" (or "b" when a is ""), into buf. */
const char *arc_config__path(char buf[ARC_PATH_MAX], const char *path, const char *key);
/* "a[3]" into buf. */
const char *arc_config__path_index(char buf[ARC_PATH_MAX], const char *path, size_t i);

void arc_config__err(struct arc_sctx *s, const struct arc_cn *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, at the key of a map member instead of its value. */
void arc_config__err_key(struct arc_sctx *s, const struct arc_cn *member, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Text of a user string safe to quote in one error line (control
 * characters become '?', long text is cut with "..."). */
const char *arc_config__show(char buf[72], const char *p, size_t n);

/* Closest candidate to `word` within a small edit distance (typos, case
 * slips), or NULL. */
const char *arc_config__suggest(const char *word, const char *const *cands, size_t n);

/**
 * Checks that `node` is a mapping whose keys all appear in `keys`:
 * unknown keys (with a "did you mean" hint), keys of later versions and
 * missing required keys are recorded. Returns false only if `node` is not a
 * mapping (then nothing else is checked; the caller skips the section).
 */
bool arc_config__check_map(struct arc_sctx *s, const struct arc_cn *node, const char *path,
                           const struct arc_conf_key *keys, size_t n_keys);

/* The member's value if present and not null, else NULL. */
const struct arc_cn *arc_config__val(const struct arc_cn *map, const char *key);

/* Type check of a value that is present; records "expected X, got Y". */
bool arc_config__want(struct arc_sctx *s, const struct arc_cn *v, const char *path,
                      enum arc_cn_kind kind);

bool arc_config__get_bool(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                          const char *key, bool *out);
/* A list of CIDR prefixes ("10.0.0.0/8", "2001:db8::/32") at map.key, at most `max` of them (0: no limit); each
 * bad one is an error at its position. *out is allocated (NULL when the
 * key is absent). */
void arc_config__get_cidrs(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                           const char *key, size_t max, struct arc_cidr **out, size_t *n_out);
bool arc_config__get_int(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                         const char *key, int64_t min, int64_t max, int64_t *out);
bool arc_config__get_u32(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                         const char *key, uint32_t min, uint32_t max, uint32_t *out);
/* Integer read from an already located value (for list items). */
bool arc_config__int_value(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                           int64_t min, int64_t max, int64_t *out);

/* flags for get_str */
#define ARC_STR_NONEMPTY 1u    /* "" is an error */
#define ARC_STR_NO_CTL   2u    /* no control characters at all */
#define ARC_STR_NAME     4u    /* [A-Za-z0-9_.-]{1,128}: names in logs/metrics */
#define ARC_STR_FIELD    8u    /* an HTTP field value: no CTL but HTAB, no edge space */
bool arc_config__get_str(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                         const char *key, unsigned flags, char **out);
/* Validates a string value already located (same flags). */
bool arc_config__str_value(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                           unsigned flags);

/* Durations must be strings ("30s"); `whole_seconds` also rejects "1500ms". */
bool arc_config__get_dur(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                         const char *key, uint64_t min, uint64_t max, bool whole_seconds,
                         uint64_t *out);
/* Sizes: an integer (bytes) or a string "64kb". */
bool arc_config__get_size(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                          const char *key, uint64_t min, uint64_t max, bool pow2,
                          uint64_t *out);
bool arc_config__get_addr(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                          const char *key, bool allow_port0, struct arc_addr *out);
/* One of `names` (index into *out); values listed in `later` are reported as
 * not supported yet. */
bool arc_config__get_enum(struct arc_sctx *s, const struct arc_cn *map, const char *path,
                          const char *key, const char *const *names, size_t n_names,
                          const char *const *later, size_t n_later, int *out);

/* "1kb" / "512" / "16mb" for messages. */
const char *arc_config__size_text(char buf[32], uint64_t v);
const char *arc_config__dur_text(char buf[32], uint64_t ms);

/* HTTP token (RFC 9110 §5.6.2), for header names. */
bool arc_config__is_token(const char *s, size_t n);

/* schema_upstream.c / schema_route.c */
void arc_config__upstreams(struct arc_sctx *s, const struct arc_cn *seq);
void arc_config__routes(struct arc_sctx *s, const struct arc_cn *seq);
/* schema_limit.c: routes[i].rate_limit (rpath "routes[i]"). */
void arc_config__rate_limit(struct arc_sctx *s, const struct arc_cn *m, const char *rpath,
                            struct arc_route_conf *r);
/* schema_limit.c: the top-level rate_limits section. */
void arc_config__rate_limits(struct arc_sctx *s, const struct arc_cn *m);
/* routes[].mirror (schema_mirror.c). */
void arc_config__route_mirror(struct arc_sctx *s, const struct arc_cn *v, const char *rpath,
                              struct arc_route_conf *r);
/* Finds upstream `name` (index into cfg->upstreams), else reports it at v. */
void arc_config__resolve_upstream(struct arc_sctx *s, const struct arc_cn *v, const char *what,
                                  const char *name, size_t *index);

/* schema_log.c: logging (defaults set before any section is read) and
 * observability.tracing. */
void arc_config__logging_defaults(struct arc_config *cfg);
void arc_config__logging(struct arc_sctx *s, const struct arc_cn *m);
void arc_config__tracing(struct arc_sctx *s, const struct arc_cn *m);

/* schema_plugin.c */
void arc_config__plugin_defaults(struct arc_config *cfg);
void arc_config__plugins(struct arc_sctx *s, const struct arc_cn *m);
void arc_config__route_plugins(struct arc_sctx *s, const struct arc_cn *seq, const char *path,
                               struct arc_route_conf *r);

/* schema_tls.c: `m` is the tls mapping; the conf is allocated even when the
 * mapping is malformed, so the caller's kind checks see that it was given. */
void arc_config__listener_tls(struct arc_sctx *s, const struct arc_cn *m, const char *lpath,
                              struct arc_listener_conf *l);
void arc_config__upstream_tls(struct arc_sctx *s, const struct arc_cn *m, const char *upath,
                              struct arc_upstream_conf *u);

/* schema_xdp.c: security.xdp. */
void arc_config__xdp_defaults(struct arc_config *cfg);
void arc_config__xdp(struct arc_sctx *s, const struct arc_cn *m);

#endif
