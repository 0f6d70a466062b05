/**
 * Internals shared by the http1 module's files (parse.c, chunked.c, util.c):
 * the byte-class table and the list-element iterator. Not for other modules.
 */
#ifndef ARC_HTTP1_HTTP1_INT_H
#define ARC_HTTP1_HTTP1_INT_H

#include "http1/http1.h"

/* Byte classes (RFC 9110 §5.6.2, §5.5, RFC 3986 §3.2.2). One table lookup per
 * byte keeps the hot loops free of function calls and branches per class. */
enum {
    ARC_H1__TCHAR  = 0x01, /* token character */
    ARC_H1__VALUE  = 0x02, /* field-content: VCHAR, SP, HTAB, obs-text */
    ARC_H1__TARGET = 0x04, /* request-target: visible ASCII 0x21..0x7e except '#' */
    ARC_H1__HOST   = 0x08, /* authority: unreserved, pct, sub-delims, ':', '[', ']' */
    ARC_H1__DIGIT  = 0x10,
    ARC_H1__QDTEXT = 0x20, /* quoted-string text: qdtext (no '"' or '\\') */
    ARC_H1__HEX    = 0x40,
};

extern const uint8_t arc_h1__cls[256];

#define ARC_H1__IS(c, cl) (arc_h1__cls[(uint8_t)(c)] & (cl))

/**
 * Walks a comma-separated field list (RFC 9110 §5.6.1). Each call to
 * arc_h1__list_next yields the next element with OWS trimmed, possibly
 * empty: "a,,b" gives "a", "", "b"; "" gives one empty element; "a," gives
 * "a", "". Callers decide whether empty elements are acceptable.
 */
struct arc_h1__list {
    const char *p, *end;
    bool done;
};

static inline struct arc_h1__list arc_h1__list_init(struct arc_str v)
{
    /* v.p may be NULL for an empty view; NULL + 0 is still UB in C. */
    return (struct arc_h1__list){ v.p, v.len ? v.p + v.len : v.p, false };
}

static inline bool arc_h1__list_next(struct arc_h1__list *l, struct arc_str *el)
{
    if (l->done)
        return false;
    const char *comma = l->p < l->end ? memchr(l->p, ',', (size_t)(l->end - l->p)) : NULL;
    const char *s = l->p, *e = comma ? comma : l->end;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *el = arc_str_make(s, (size_t)(e - s));
    if (comma)
        l->p = comma + 1;
    else
        l->done = true;
    return true;
}

#endif
