/*
 * Stable identities (ident.h): a name → id map per kind, and the node-wide
 * per-endpoint counters in chunks that never move once published.
 */
#include "config/ident.h"
#include "core/common.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EP_CHUNK 1024u

struct name_map {
    struct { char *name; size_t len; uint32_t id; } *slot;  /* open addressing */
    size_t cap;                         /* power of two (0 before first use) */
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct name_map g_maps[ARC_IDENT__KINDS];
static _Atomic uint32_t g_count[ARC_IDENT__KINDS];
static _Atomic(_Atomic uint32_t *) g_ep_open[ARC_IDENT_MAX / EP_CHUNK];

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;        /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static bool map_grow(struct name_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    void *slot = calloc(cap, sizeof(*m->slot));
    if (!slot)
        return false;
    struct name_map n = { slot, cap };
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slot[i].name)
            continue;
        size_t j = hash(m->slot[i].name, m->slot[i].len) & (cap - 1);
        while (n.slot[j].name)
            j = (j + 1) & (cap - 1);
        n.slot[j] = m->slot[i];
    }
    free(m->slot);
    *m = n;
    return true;
}

/* The endpoint's counter exists before its id is returned (and so before
 * any snapshot carrying it is published). */
static bool ep_counter_ready(uint32_t id)
{
    size_t c = id / EP_CHUNK;
    if (atomic_load_explicit(&g_ep_open[c], memory_order_relaxed))
        return true;
    _Atomic uint32_t *chunk = calloc(EP_CHUNK, sizeof(*chunk));
    if (!chunk)
        return false;
    atomic_store_explicit(&g_ep_open[c], chunk, memory_order_release);
    return true;
}

uint32_t arc_ident_of(enum arc_ident_kind k, const char *name, size_t len)
{
    struct name_map *m = &g_maps[k];
    uint32_t id = ARC_IDENT_NONE;
    pthread_mutex_lock(&g_lock);
    uint32_t count = atomic_load_explicit(&g_count[k], memory_order_relaxed);
    if ((count + 1) * 2 > m->cap && !map_grow(m))
        goto out;
    size_t j = hash(name, len) & (m->cap - 1);
    while (m->slot[j].name) {
        if (m->slot[j].len == len && memcmp(m->slot[j].name, name, len) == 0) {
            id = m->slot[j].id;
            goto out;
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (count >= ARC_IDENT_MAX || (k == ARC_IDENT_ENDPOINT && !ep_counter_ready(count)))
        goto out;
    char *copy = malloc(len + 1);
    if (!copy)
        goto out;
    memcpy(copy, name, len);
    copy[len] = '\0';
    m->slot[j].name = copy;
    m->slot[j].len = len;
    m->slot[j].id = id = count;
    atomic_store_explicit(&g_count[k], count + 1, memory_order_release);
out:
    pthread_mutex_unlock(&g_lock);
    return id;
}

uint32_t arc_ident_count(enum arc_ident_kind k)
{
    return atomic_load_explicit(&g_count[k], memory_order_acquire);
}

_Atomic uint32_t *arc_ident_endpoint_open(uint32_t id)
{
    ARC_ASSERT(id < ARC_IDENT_MAX);
    _Atomic uint32_t *chunk = atomic_load_explicit(&g_ep_open[id / EP_CHUNK], memory_order_acquire);
    ARC_ASSERT(chunk);
    return &chunk[id % EP_CHUNK];
}
