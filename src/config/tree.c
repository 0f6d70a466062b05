/*
 * The positioned document tree: arena, node construction, lookups and the
 * checks both readers share (duplicate keys, UTF-8).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tree_int.h"

struct arc_arena_chunk {
    struct arc_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_SIZE (32u * 1024)

static void oom(void)
{
    /* See tree_int.h: the control thread cannot recover from this. */
    fputs("arc: out of memory while loading configuration\n", stderr);
    abort();
}

void *arc_config__alloc(struct arc_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arc_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE / 2 ? n : CHUNK_SIZE;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            oom();
        c->used = 0;
        c->cap = cap;
        if (n > CHUNK_SIZE / 2 && a->head) {
            /* A big block gets its own chunk behind the current one so the
             * current chunk's free space stays usable. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *arc_config__strndup(struct arc_arena *a, const char *p, size_t n)
{
    char *s = arc_config__alloc(a, n + 1);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

struct arc_cn *arc_config__node_new(struct arc_ctree *t, enum arc_cn_kind k,
                                    int line, int col)
{
    struct arc_cn *n = arc_config__alloc(&t->arena, sizeof(*n));
    n->kind = k;
    n->line = line;
    n->col = col;
    return n;
}

void arc_config__node_append(struct arc_cn *parent, struct arc_cn *child)
{
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->n++;
}

void arc_config__tree_free(struct arc_ctree *t)
{
    struct arc_arena_chunk *c = t->arena.head;
    while (c) {
        struct arc_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    t->arena.head = NULL;
    t->root = NULL;
}

const struct arc_cn *arc_config__get(const struct arc_cn *map, const char *key)
{
    if (!map || map->kind != ARC_CN_MAP)
        return NULL;
    size_t len = strlen(key);
    for (const struct arc_cn *c = map->first; c; c = c->next)
        if (c->key_len == len && memcmp(c->key, key, len) == 0)
            return c;
    return NULL;
}

const char *arc_config__kind_name(enum arc_cn_kind k)
{
    switch (k) {
    case ARC_CN_NULL: return "null";
    case ARC_CN_BOOL: return "boolean";
    case ARC_CN_INT: return "integer";
    case ARC_CN_FLOAT: return "number";
    case ARC_CN_STR: return "string";
    case ARC_CN_SEQ: return "list";
    case ARC_CN_MAP: return "mapping";
    }
    return "?";
}

/* Sort key for duplicate detection: key bytes, then document order so the
 * first occurrence sorts first and the later ones are the ones reported. */
static int cmp_member(const void *a, const void *b)
{
    const struct arc_cn *x = *(const struct arc_cn *const *)a;
    const struct arc_cn *y = *(const struct arc_cn *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int r = memcmp(x->key, y->key, n);
    if (r)
        return r;
    if (x->key_len != y->key_len)
        return x->key_len < y->key_len ? -1 : 1;
    if (x->key_line != y->key_line)
        return x->key_line < y->key_line ? -1 : 1;
    return (x->key_col > y->key_col) - (x->key_col < y->key_col);
}

size_t arc_config__check_dup_keys(struct arc_conf_diag *d, const struct arc_cn *map)
{
    if (map->n < 2)
        return 0;
    size_t dups = 0;
    if (map->n <= 8) {
        /* The common case: tiny maps, no allocation. */
        for (const struct arc_cn *c = map->first; c; c = c->next)
            for (const struct arc_cn *p = map->first; p != c; p = p->next)
                if (p->key_len == c->key_len && memcmp(p->key, c->key, c->key_len) == 0) {
                    arc_config__error(d, c->key_line, c->key_col,
                                      "duplicate key '%s' (first defined at line %d)",
                                      c->key, p->key_line);
                    dups++;
                    break;
                }
        return dups;
    }
    /* Large maps (generated or hostile input): sort instead of O(n^2). */
    const struct arc_cn **v = malloc(map->n * sizeof(*v));
    if (!v)
        oom();
    size_t i = 0;
    for (const struct arc_cn *c = map->first; c; c = c->next)
        v[i++] = c;
    qsort(v, map->n, sizeof(*v), cmp_member);
    size_t first = 0;
    for (i = 1; i < map->n; i++) {
        if (v[i]->key_len == v[first]->key_len &&
            memcmp(v[i]->key, v[first]->key, v[i]->key_len) == 0) {
            arc_config__error(d, v[i]->key_line, v[i]->key_col,
                              "duplicate key '%s' (first defined at line %d)",
                              v[i]->key, v[first]->key_line);
            dups++;
        } else {
            first = i;
        }
    }
    free(v);
    return dups;
}

size_t arc_config__utf8_check(const char *p, size_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i < n)
            return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n;
    }
    return len;
}
