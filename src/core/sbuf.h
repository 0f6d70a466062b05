/**
 * Growable byte buffer for building text off the hot path (metrics pages,
 * error messages). Owned; arc_sbuf_dispose frees it. Out-of-memory aborts:
 * the callers are control-thread paths where there is no better answer.
 * Thread: the owner's.
 */
#ifndef ARC_CORE_SBUF_H
#define ARC_CORE_SBUF_H

#include <stddef.h>

struct arc_sbuf {
    char *p;
    size_t len, cap;
};

void arc_sbuf_append(struct arc_sbuf *b, const void *data, size_t len);
void arc_sbuf_printf(struct arc_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void arc_sbuf_dispose(struct arc_sbuf *b);

#endif
