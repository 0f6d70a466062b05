/**
 * Bump allocator for one request's lifetime: an exchange copies its request
 * view (method, path, header list...) into its arena so the view outlives
 * the receive buffer it was parsed from, and everything is released at once
 * when the exchange ends. The first block is kept across resets, so a
 * connection that reuses one arena allocates nothing per request in the
 * common case.
 *
 * Lifetime: pointers returned are valid until arc_arena_reset/dispose.
 * Thread: the owner's. Out of memory returns NULL (sizes may be
 * client-controlled: callers answer with an error, never assert).
 */
#ifndef ARC_CORE_ARENA_H
#define ARC_CORE_ARENA_H

#include <stddef.h>

struct arc_arena_blk;

struct arc_arena {
    struct arc_arena_blk *head;     /* newest block first; the last one is kept on reset */
    size_t first_size;              /* size of the first block (0 = 2048) */
    size_t used_total;              /* bytes handed out since the last reset */
};

void arc_arena_init(struct arc_arena *a, size_t first_size);
/* NULL on out of memory. Alignment: 8 bytes. */
void *arc_arena_alloc(struct arc_arena *a, size_t n);
/* Copy of p[0..n) with a NUL after it; NULL on out of memory. */
char *arc_arena_dup(struct arc_arena *a, const char *p, size_t n);
/* Releases every allocation; keeps the first block for reuse. */
void arc_arena_reset(struct arc_arena *a);
void arc_arena_dispose(struct arc_arena *a);

#endif
