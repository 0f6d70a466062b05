/**
 * Router internals shared by pattern.c (syntax), predicate.c (reading a
 * request's fields, PCRE2), expr.c (expressions, satisfiability) and
 * router.c (tree, build, match). Nothing here is used outside src/router/
 * except by the router's own tests and benchmark.
 */
#ifndef ARC_ROUTER_ROUTER_INT_H
#define ARC_ROUTER_ROUTER_INT_H

#include "router/router.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* Bounds the match-time stack (segment offsets are kept per depth) and keeps
 * a hostile or mistaken config from building absurdly deep trees. */
#define ARC_RT__MAX_SEGS 64

/* Segment kinds. The numeric order is the precedence order at one segment:
 * a higher value beats a lower one (router.h: literal > {name} > * >
 * {*name}). */
enum arc_rt__kind {
    ARC_RT__REST = 0,           /* {*name} */
    ARC_RT__STAR = 1,           /* * */
    ARC_RT__PARAM = 2,          /* {name} */
    ARC_RT__LIT = 3,
};

static inline unsigned arc_rt__rank(unsigned kind)
{
    return kind;
}

struct arc_rt__seg {
    uint8_t kind;               /* enum arc_rt__kind */
    const char *p;              /* literal text or capture name; points into the pattern */
    size_t len;
};

struct arc_rt__pattern {
    struct arc_rt__seg segs[ARC_RT__MAX_SEGS];
    size_t n;                   /* >= 1; "/" is one empty literal segment */
    size_t n_caps;
};

/**
 * Splits and validates `path`. On error writes "path '<path>': <reason>" to
 * err and returns -1. Segment views point into `path`.
 */
int arc_rt__parse(const char *path, struct arc_rt__pattern *pat, char *err, size_t errlen);

/**
 * Normalises a request Host value into buf (lower case, ":port" and one
 * trailing dot removed). Returns the length, or -1 when the value cannot be a
 * host name we index (longer than 255 bytes) and only host-less routes apply.
 */
int arc_rt__norm_host(struct arc_str host, char buf[256]);

/* ------------------------------------------------------------ predicates */

/* One distinct test, shared by every route that names the same (source,
 * name, op, value): its regex is compiled once, and the ambiguity check
 * knows two routes test the same thing. `field` identifies (source, name):
 * an `exists` atom holds whenever another atom of its field does. */
struct arc_rt__atom {
    uint8_t source, op;
    uint32_t field;
    struct arc_str name;        /* header names lower-cased; arena copies */
    struct arc_str value;
    pcre2_code *re;             /* REGEX only; owned by the table */
};

/* PCRE2 glue (predicate.c). The match context carries the limits. */
pcre2_code *arc_rt__regex_compile(const char *pattern, char *err, size_t errlen,
                                  size_t *offset);
pcre2_match_context *arc_rt__regex_mctx_new(void);

/* Does the request satisfy the atom? */
bool arc_rt__atom_test(const struct arc_rt__atom *a, const struct arc_rt_input *in,
                       const pcre2_match_context *mctx);

/* Percent-decodes a query component (RFC 3986 %XX, '+' as a space, a '%'
 * not followed by two hex digits kept as it is) into out, which must hold
 * len bytes. Returns the decoded length. */
size_t arc_rt__query_decode(const char *p, size_t len, char *out);

/* ------------------------------------------------------------ expressions */

/* A parsed expression is a node array, children before parents, the root
 * last. A chain `a and b and c` is one AND node whose operands are linked
 * through `next` (so depth grows only with parentheses and `not`). Leaves
 * name a matcher by its index in the route's spec. */
enum arc_rt__xop { ARC_RT__X_PRED, ARC_RT__X_NOT, ARC_RT__X_AND, ARC_RT__X_OR };

#define ARC_RT__XNONE 0xffffu

struct arc_rt__xnode {
    uint8_t op;                 /* enum arc_rt__xop */
    uint8_t pred;               /* X_PRED: index into the route's matchers */
    uint16_t a;                 /* NOT: operand; AND/OR: first operand */
    uint16_t next;              /* next operand of the parent chain, or XNONE */
};

/* Upper bound on nodes for an expression of `len` bytes (every node
 * consumes at least one byte of text). */
#define ARC_RT__XNODES(len) ((len) + 1)

/**
 * Parses `s` (NUL-terminated) into nodes[0..*n) with the root last. Returns
 * 0, or -1 with err and *offset (see arc_rt_check_expr). `nodes` must hold
 * ARC_RT__XNODES(strlen(s)) entries.
 */
int arc_rt__expr_parse(const char *s, const char *const *ids, size_t n_ids,
                       struct arc_rt__xnode *nodes, size_t *n, uint64_t *used,
                       char *err, size_t errlen, size_t *offset);

/* Three-valued (Kleene) truth, for the satisfiability search. */
enum { ARC_RT__F = 0, ARC_RT__T = 1, ARC_RT__U = 2 };

/* A route's matcher formula as the satisfiability check sees it: atoms[i]
 * is the table atom of matcher i; x == NULL means "all matchers hold". */
struct arc_rt__formula {
    const uint32_t *atoms;
    size_t n;
    const struct arc_rt__xnode *x;
    size_t nx;
};

/**
 * Can `a` and `b` (b may be NULL) hold for one request? Atoms are treated as
 * independent except that an atom that holds makes the `exists` atom of its
 * field hold. Returns 1 (yes, or undecided after a large search: callers
 * treat that as yes), 0 (never).
 */
int arc_rt__satisfiable(const struct arc_rt__formula *a, const struct arc_rt__formula *b,
                        const struct arc_rt__atom *atoms);

#endif
