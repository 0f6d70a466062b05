/**
 * Config module internals: the positioned document tree that the readers
 * (yaml.c, json.c, toml.c) produce, the arena it lives in, error collection
 * and the canonicaliser (canon.c).
 *
 * Only the config module (src/config) and its unit tests may include this
 * header.
 *
 * The tree is format-neutral: after reading, nothing downstream knows whether
 * the text was YAML, JSON or TOML. Every node carries the 1-based line and
 * column (counted in characters, as libyaml counts) of its first character,
 * and a map member additionally carries the position of its key, so that
 * "unknown key" errors point at the key and "bad value" errors at the value.
 *
 * Memory: every node and string is allocated from one arena, released in
 * one go by arc_config__tree_free(). Allocation failure aborts (the config
 * is loaded on the control thread; a daemon that cannot allocate a few KB
 * there has no sensible way to continue).
 */
#ifndef ARC_CONFIG_TREE_INT_H
#define ARC_CONFIG_TREE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Nesting deeper than this is rejected by every reader (stack safety for
 * the recursive walkers; real configs nest about 6 deep). */
#define ARC_CONF_MAX_DEPTH 64

/* A load stops recording after this many errors and says so (cascades from
 * one mistake in a generated file should not print a million lines). */
#define ARC_CONF_MAX_ERRORS 200

/* Documents larger than this are refused before parsing. */
#define ARC_CONF_MAX_BYTES (16u << 20)

enum arc_cn_kind {
    ARC_CN_NULL,
    ARC_CN_BOOL,
    ARC_CN_INT,
    ARC_CN_FLOAT,
    ARC_CN_STR,
    ARC_CN_SEQ,
    ARC_CN_MAP,
};

struct arc_cn {
    enum arc_cn_kind kind;
    int line, col;              /* of the value */
    /* map members only: the key (NUL-terminated, never contains NUL) */
    const char *key;
    size_t key_len;
    int key_line, key_col;
    /* siblings in the parent sequence/map, in document order */
    struct arc_cn *next;
    /* SEQ / MAP: children in document order */
    struct arc_cn *first, *last;
    size_t n;
    union {
        bool b;
        int64_t i;
        double f;               /* always finite */
        struct {
            const char *p;      /* NUL-terminated; may contain NUL bytes */
            size_t len;
        } s;
    } v;
};

struct arc_arena_chunk;
struct arc_arena {
    struct arc_arena_chunk *head;
};

struct arc_ctree {
    struct arc_arena arena;
    struct arc_cn *root;        /* NULL for an empty document */
};

/* Error sink of one load: appends to the caller's list, counts what this
 * load added and stops at ARC_CONF_MAX_ERRORS. */
struct arc_conf_diag {
    struct arc_config_errors *errs;
    const char *file;
    size_t base;                /* errs->n when the load started */
    bool truncated;
};

/* ---------------------------------------------------------------- tree.c */

void *arc_config__alloc(struct arc_arena *a, size_t n);
char *arc_config__strndup(struct arc_arena *a, const char *p, size_t n);
struct arc_cn *arc_config__node_new(struct arc_ctree *t, enum arc_cn_kind k,
                                    int line, int col);
/* Appends `child` to a SEQ or MAP node. */
void arc_config__node_append(struct arc_cn *parent, struct arc_cn *child);
/* Reports every key of `map` that repeats an earlier key (error at the later
 * key). Returns the number of duplicates. Used by both readers. */
size_t arc_config__check_dup_keys(struct arc_conf_diag *d, const struct arc_cn *map);
void arc_config__tree_free(struct arc_ctree *t);

/* Member of `map` with key `key`, or NULL (also NULL if `map` is not a MAP). */
const struct arc_cn *arc_config__get(const struct arc_cn *map, const char *key);
/* "integer", "mapping", ... for messages. */
const char *arc_config__kind_name(enum arc_cn_kind k);
/* Validates UTF-8 (no overlongs, no surrogates, <= U+10FFFF). Returns the
 * byte offset of the first bad sequence or `len` if all is well. */
size_t arc_config__utf8_check(const char *p, size_t len);

/* ---------------------------------------------------------------- errors.c */

void arc_config__diag_init(struct arc_conf_diag *d, struct arc_config_errors *errs,
                           const char *file);
/* Records "file:line:col: error: msg". line/col 0 = whole file. */
void arc_config__error(struct arc_conf_diag *d, int line, int col,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void arc_config__verror(struct arc_conf_diag *d, int line, int col,
                        const char *fmt, va_list ap);
/* Errors this load recorded so far. */
size_t arc_config__error_count(const struct arc_conf_diag *d);
/* Sorts this load's errors by position (stable) and appends the truncation
 * note if the limit was hit. Called once at the end of a load. */
void arc_config__diag_finish(struct arc_conf_diag *d);

/* ---------------------------------------------------------------- readers */

/* All return 0 on success; on a syntax error they record it (with its
 * position) and return -1, leaving t->root NULL. In YAML and JSON duplicate
 * keys are recorded but not fatal (the first occurrence is kept), so the
 * schema can still report further problems. */
int arc_config__read_yaml(const char *text, size_t len, struct arc_ctree *t,
                          struct arc_conf_diag *d);
int arc_config__read_json(const char *text, size_t len, struct arc_ctree *t,
                          struct arc_conf_diag *d);
/* TOML 1.0.0 (toml.c). Redefinitions (a key or table defined twice, a
 * table extended where TOML forbids it) are recorded and reading goes on to
 * find more, but any error fails the read (-1, t->root NULL). */
int arc_config__read_toml(const char *text, size_t len, struct arc_ctree *t,
                          struct arc_conf_diag *d);

/* ---------------------------------------------------------------- canon.c */

/* Canonical JSON text of the tree (heap, caller frees) and its SHA-256 hex.
 * Returns 0, or -1 if the tree cannot be represented (never for trees the
 * readers build). See canon.c for the rules. */
int arc_config__canonicalize(const struct arc_cn *root, char **json_out,
                             char hex_out[65]);

/* ---------------------------------------------------------------- schema.c */

/* Fills `cfg` (zeroed by the caller) from the tree, recording every problem.
 * Returns 0 if no error was recorded. `cfg` may be partly filled either way
 * and is released with arc_config_free(). */
int arc_config__build(const struct arc_cn *root, struct arc_config *cfg,
                      struct arc_conf_diag *d);

#endif
