#include "core/sbuf.h"
#include "core/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void reserve(struct arc_sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    ARC_ASSERT(p != NULL);
    b->p = p;
    b->cap = cap;
}

void arc_sbuf_append(struct arc_sbuf *b, const void *data, size_t len)
{
    reserve(b, len);
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void arc_sbuf_printf(struct arc_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void arc_sbuf_dispose(struct arc_sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
