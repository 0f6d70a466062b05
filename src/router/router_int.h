/**
 * Router internals shared by pattern.c (syntax) and router.c (tree, match).
 * Nothing here is used outside src/router/ except by the router's own tests.
 */
#ifndef ARC_ROUTER_ROUTER_INT_H
#define ARC_ROUTER_ROUTER_INT_H

#include "router/router.h"

/* Bounds the match-time stack (segment offsets are kept per depth) and keeps
 * a hostile or mistaken config from building absurdly deep trees. */
#define ARC_RT__MAX_SEGS 64

/* Segment kinds. The numeric order is the precedence order at one segment:
 * a higher value beats a lower one ({name} and * rank the same). */
enum arc_rt__kind {
    ARC_RT__REST = 0,           /* {*name} */
    ARC_RT__PARAM = 1,          /* {name} */
    ARC_RT__STAR = 2,           /* *, same rank as PARAM (see arc_rt__rank) */
    ARC_RT__LIT = 3,
};

static inline unsigned arc_rt__rank(unsigned kind)
{
    return kind == ARC_RT__LIT ? 2u : kind == ARC_RT__REST ? 0u : 1u;
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

#endif
