/*
 * A byte queue for bodies waiting on an HTTP/2 session's pull (struct
 * arc_px_bytes): appended at the tail, taken from the head, compacted or
 * grown as needed. Its size is bounded by the callers' backpressure
 * (node.max_buffered_output), not here.
 */
#include "proxy/proxy_int.h"

#include <stdlib.h>
#include <string.h>

bool arc_px__bytes_put(struct arc_px_bytes *q, const void *p, size_t len)
{
    if (q->off && q->off == q->len)
        q->off = q->len = 0;
    if (q->len + len > q->cap && q->off) {
        memmove(q->p, q->p + q->off, q->len - q->off);
        q->len -= q->off;
        q->off = 0;
    }
    if (q->len + len > q->cap) {
        size_t cap = q->cap ? q->cap : 16384;
        while (cap < q->len + len)
            cap *= 2;
        char *np = realloc(q->p, cap);
        if (!np)
            return false;
        q->p = np;
        q->cap = cap;
    }
    memcpy(q->p + q->len, p, len);
    q->len += len;
    return true;
}

size_t arc_px__bytes_take(struct arc_px_bytes *q, void *dst, size_t cap)
{
    size_t n = ARC_MIN(cap, arc_px__bytes_len(q));
    if (n)
        memcpy(dst, q->p + q->off, n);
    q->off += n;
    if (q->off == q->len)
        q->off = q->len = 0;
    return n;
}

void arc_px__bytes_free(struct arc_px_bytes *q)
{
    free(q->p);
    *q = (struct arc_px_bytes){ 0 };
}
