/*
 * Arena blocks are chained newest first; a request that outgrows the first
 * block gets blocks of at least twice the previous size, so a big head
 * costs O(log n) mallocs and every later request reuses the first block.
 */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arc_arena_blk {
    struct arc_arena_blk *next;
    size_t size, used;
    _Alignas(8) char data[];
};

void arc_arena_init(struct arc_arena *a, size_t first_size)
{
    a->head = NULL;
    a->first_size = first_size ? first_size : 2048;
    a->used_total = 0;
}

void *arc_arena_alloc(struct arc_arena *a, size_t n)
{
    if (n > SIZE_MAX / 4)
        return NULL;
    n = (n + 7) & ~(size_t)7;
    if (n == 0)
        n = 8;
    struct arc_arena_blk *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = b ? b->size * 2 : a->first_size;
        while (size < n)
            size *= 2;
        struct arc_arena_blk *nb = malloc(sizeof(*nb) + size);
        if (!nb)
            return NULL;
        nb->next = b;
        nb->size = size;
        nb->used = 0;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used_total += n;
    return p;
}

char *arc_arena_dup(struct arc_arena *a, const char *p, size_t n)
{
    char *d = arc_arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

void arc_arena_reset(struct arc_arena *a)
{
    struct arc_arena_blk *b = a->head;
    while (b && b->next) {
        struct arc_arena_blk *next = b->next;
        free(b);
        b = next;
    }
    a->head = b;
    if (b)
        b->used = 0;
    a->used_total = 0;
}

void arc_arena_dispose(struct arc_arena *a)
{
    arc_arena_reset(a);
    free(a->head);
    a->head = NULL;
}
