/*
 * Route table: build-time compilation and the per-request match.
 *
 * Layout. Routes are grouped by the host pattern they name: one group per
 * exact host ("api.example.com"), one per suffix ("*.example.com", keyed
 * ".example.com") and one "any host" group for routes without hosts (a route
 * listing several hosts sits in several groups). Groups are found through an
 * open-addressing hash whose hash is FNV-1a over the bytes *from the right*,
 * so one right-to-left pass over the request host yields the hash of the
 * whole name and of every ".suffix" at once (O(len), no per-suffix rehash).
 *
 * Inside a group, one segment tree per distinct priority, highest first.
 * A tree node has literal children sorted by (length, bytes) for binary
 * search, at most one {name} child, one * child and one {*name} child. A
 * node where patterns end holds entries (route, method mask), sorted by
 * the route's predicate count, highest first.
 *
 * Matchers. Every distinct (source, name, op, value) is one atom of the
 * table, shared by the routes that use it; a regex atom is compiled and
 * JIT-compiled once here. A route keeps the atom of each of its matchers
 * and, when it has an expression, the parsed nodes.
 *
 * Matching. For each priority (highest first), the applicable groups are
 * tried in host order (exact, longer suffix, shorter suffix, any host); in
 * each, the tree is walked depth-first trying literal, {name}, * and then
 * {*name} children. The first node reached with an entry that accepts the
 * method and whose matchers hold is the answer, because that order is
 * exactly the precedence of router.h. Entries that matched host, path and
 * matchers but not the method feed the 405 Allow mask.
 *
 * Ambiguity. Two routes can only tie on all precedence keys if they share a
 * group, a priority, a tree node (same literals, same segment kinds) and a
 * predicate count, accept a common method and their matchers can hold
 * together (arc_rt__satisfiable). That is checked as entries are added, so
 * detection costs nothing at match time.
 */
#include "router/router_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"

/* ------------------------------------------------------------- arena */

/* Immutable build products (path copies, capture tables, shapes) live in a
 * bump arena freed in one go with the table. */
struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

static void *arena_alloc(struct chunk **head, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct chunk *c = *head;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > 16384 ? size : 16384;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->next = *head;
        c->used = 0;
        c->cap = cap;
        *head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

static char *arena_strndup(struct chunk **head, const char *s, size_t n)
{
    char *p = arena_alloc(head, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ------------------------------------------------------------- types */

struct node;

struct edge {
    const char *label;
    uint32_t len;
    uint32_t hash;              /* seg_hash(label); set by finalize() */
    struct node *child;
};

struct entry {
    uint32_t methods;           /* 0 = any method */
    uint32_t route;             /* index into table->routes == spec index */
    bool preds;                 /* the route has matchers (saves a visit to it) */
};

struct node {
    struct edge *lits;          /* sorted by (length, bytes) */
    uint32_t n_lits, cap_lits;
    uint32_t *lit_slots;        /* many literals: hash index into lits (+1), else NULL */
    uint32_t lit_mask;
    struct entry *ents;         /* by route weight, highest first */
    uint32_t n_ents, cap_ents;
    struct node *param;         /* {name} */
    struct node *star;          /* * */
    struct node *rest;          /* {*name}; never has children */
};

struct cap_def {
    struct arc_str name;
    uint8_t seg;
    bool rest;
};

struct route {
    const void *data;
    const char *name;           /* arena copy, for error messages */
    const char *path;           /* arena copy */
    const uint8_t *shape;       /* arc_rt__rank per segment */
    const struct cap_def *caps;
    uint32_t methods;
    int32_t priority;
    uint8_t n_segs, n_caps;
    uint8_t n_preds;
    uint32_t weight;            /* precedence key 4: methods given + matchers */
    const uint32_t *atoms;      /* [n_preds]: table atom of each matcher */
    const struct arc_rt__xnode *x; /* expression nodes (root last), NULL = all matchers */
    uint16_t nx;
};

enum { G_ANY, G_SUFFIX, G_EXACT };

struct level {
    int32_t priority;
    struct node *root;
};

struct group {
    uint64_t hash;
    const char *key;            /* "api.example.com" or ".example.com"; arena */
    uint32_t key_len;
    uint8_t kind;
    uint32_t rank;              /* host precedence: any 0 < suffix 1+len < exact */
    struct level *levels;       /* priority descending */
    uint32_t n_levels, cap_levels;
};

/* (source, name) of a matcher: atoms of one field share its id. */
struct field_key {
    uint8_t source;
    struct arc_str name;
};

/* An open-addressing index of uint32 ids (slot = id + 1, 0 = empty). */
struct index {
    uint32_t *slots;
    size_t mask;
};

struct arc_rt_table {
    struct route *routes;
    size_t n_routes;
    struct group *groups;       /* [0] is the any-host group */
    size_t n_groups, cap_groups;
    uint32_t *slots;            /* group index + 1, 0 = empty */
    size_t mask;
    struct arc_rt__atom *atoms;
    uint32_t n_atoms, cap_atoms;
    struct index atom_index;
    struct field_key *fields;
    uint32_t n_fields, cap_fields;
    struct index field_index;
    pcre2_match_context *mctx;  /* match limits of every regex; NULL if none */
    struct chunk *arena;
};

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t rev_hash(const char *s, size_t n)
{
    uint64_t h = FNV_OFFSET;
    while (n--)
        h = (h ^ (unsigned char)s[n]) * FNV_PRIME;
    return h;
}

static uint64_t fwd_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * FNV_PRIME;
    return h;
}

/* ------------------------------------------------------------- errors */

static int errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *const method_names[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};

static void methods_text(uint32_t mask, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ARC_ARRAY_LEN(method_names); i++) {
        if (!(mask & (1u << i)))
            continue;
        int k = snprintf(buf + o, len - o, "%s%s", o ? "," : "", method_names[i]);
        if (k < 0 || (size_t)k >= len - o)
            break;
        o += (size_t)k;
    }
}

/* ------------------------------------------------------------- free */

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (uint32_t i = 0; i < n->n_lits; i++)
        node_free(n->lits[i].child);
    node_free(n->param);
    node_free(n->star);
    node_free(n->rest);
    free(n->lit_slots);
    free(n->lits);
    free(n->ents);
    free(n);
}

void arc_rt_free(struct arc_rt_table *t)
{
    if (!t)
        return;
    for (size_t g = 0; g < t->n_groups; g++) {
        for (uint32_t l = 0; l < t->groups[g].n_levels; l++)
            node_free(t->groups[g].levels[l].root);
        free(t->groups[g].levels);
    }
    for (uint32_t i = 0; i < t->n_atoms; i++)
        pcre2_code_free(t->atoms[i].re);
    pcre2_match_context_free(t->mctx);
    free(t->atoms);
    free(t->atom_index.slots);
    free(t->fields);
    free(t->field_index.slots);
    free(t->groups);
    free(t->slots);
    free(t->routes);
    while (t->arena) {
        struct chunk *c = t->arena;
        t->arena = c->next;
        free(c);
    }
    free(t);
}

/* ------------------------------------------------------------- host groups */

static const struct group *lookup_group(const struct arc_rt_table *t, uint64_t h,
                                        uint8_t kind, const char *key, size_t len)
{
    if (!t->slots)
        return NULL;
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        uint32_t s = t->slots[i];
        if (!s)
            return NULL;
        const struct group *g = &t->groups[s - 1];
        if (g->hash == h && g->kind == kind && g->key_len == len && memcmp(g->key, key, len) == 0)
            return g;
    }
}

static int slots_rebuild(struct arc_rt_table *t, size_t cap)
{
    uint32_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    free(t->slots);
    t->slots = slots;
    t->mask = cap - 1;
    for (size_t g = 1; g < t->n_groups; g++) {
        size_t i = (size_t)t->groups[g].hash & t->mask;
        while (t->slots[i])
            i = (i + 1) & t->mask;
        t->slots[i] = (uint32_t)g + 1;
    }
    return 0;
}

/* Returns the group index for a normalised host key, creating it. -1 = OOM. */
static long group_get(struct arc_rt_table *t, uint8_t kind, const char *key, size_t len)
{
    uint64_t h = rev_hash(key, len);
    const struct group *found = lookup_group(t, h, kind, key, len);
    if (found)
        return (long)(found - t->groups);
    if (t->n_groups == t->cap_groups) {
        size_t cap = t->cap_groups * 2;
        struct group *g = realloc(t->groups, cap * sizeof(*g));
        if (!g)
            return -1;
        t->groups = g;
        t->cap_groups = cap;
    }
    char *k = arena_strndup(&t->arena, key, len);
    if (!k)
        return -1;
    size_t idx = t->n_groups++;
    t->groups[idx] = (struct group){
        .hash = h, .key = k, .key_len = (uint32_t)len, .kind = kind,
        .rank = kind == G_EXACT ? UINT32_MAX : 1u + (uint32_t)len,
    };
    /* keep the load factor under 1/2 so probes stay short */
    if (!t->slots || t->n_groups * 2 > t->mask + 1) {
        if (slots_rebuild(t, t->slots ? (t->mask + 1) * 2 : 16) < 0) {
            t->n_groups--;
            return -1;
        }
    } else {
        size_t i = (size_t)h & t->mask;
        while (t->slots[i])
            i = (i + 1) & t->mask;
        t->slots[i] = (uint32_t)idx + 1;
    }
    return (long)idx;
}

/* Validates and normalises one configured host pattern into buf. Returns the
 * kind, or -1 with the reason in *why. */
static int host_pattern(const char *h, char buf[256], size_t *len, const char **why)
{
    size_t n = h ? strlen(h) : 0;
    int kind = G_EXACT;
    if (n >= 2 && h[0] == '*' && h[1] == '.') {
        kind = G_SUFFIX;
        h++;                    /* keep the dot: ".example.com" */
        n--;
    }
    if (n && h[n - 1] == '.' && !(kind == G_SUFFIX && n == 1))
        n--;
    if (n == 0 || (kind == G_SUFFIX && n == 1)) {
        *why = "empty host name";
        return -1;
    }
    if (n > 255) {
        *why = "host name longer than 255 bytes";
        return -1;
    }
    bool bracket = h[0] == '[';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '*') {
            *why = "'*' is only allowed as a leading '*.' label";
            return -1;
        }
        if (c == ':' && !bracket) {
            *why = "host patterns must not include a port (ports are ignored when matching)";
            return -1;
        }
        if (c <= 0x20 || c == 0x7f || c == '/') {
            *why = "invalid character in host name";
            return -1;
        }
        buf[i] = (char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
    }
    *len = n;
    return kind;
}

/* ------------------------------------------------------------- atoms */

/* Finds id in `ix` by hash and `eq`, or returns UINT32_MAX. */
static uint32_t index_find(const struct index *ix, uint64_t h,
                           bool (*eq)(const struct arc_rt_table *, uint32_t, const void *),
                           const struct arc_rt_table *t, const void *key)
{
    if (!ix->slots)
        return UINT32_MAX;
    for (size_t i = (size_t)h & ix->mask;; i = (i + 1) & ix->mask) {
        uint32_t s = ix->slots[i];
        if (!s)
            return UINT32_MAX;
        if (eq(t, s - 1, key))
            return s - 1;
    }
}

/* Adds id (hash h) to `ix` holding n ids after this one, growing it to keep
 * the load under 1/2. `hash_of` rehashes existing ids. */
static int index_add(struct index *ix, uint32_t id, uint32_t n, uint64_t h,
                     uint64_t (*hash_of)(const struct arc_rt_table *, uint32_t),
                     const struct arc_rt_table *t)
{
    if (!ix->slots || (size_t)n * 2 > ix->mask + 1) {
        size_t cap = ix->slots ? (ix->mask + 1) * 2 : 64;
        uint32_t *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return -1;
        for (size_t k = 0; ix->slots && k <= ix->mask; k++) {
            uint32_t s = ix->slots[k];
            if (!s)
                continue;
            size_t i = (size_t)hash_of(t, s - 1) & (cap - 1);
            while (slots[i])
                i = (i + 1) & (cap - 1);
            slots[i] = s;
        }
        free(ix->slots);
        ix->slots = slots;
        ix->mask = cap - 1;
    }
    size_t i = (size_t)h & ix->mask;
    while (ix->slots[i])
        i = (i + 1) & ix->mask;
    ix->slots[i] = id + 1;
    return 0;
}

static uint64_t field_hash(uint8_t source, struct arc_str name)
{
    return fwd_hash(fwd_hash(FNV_OFFSET, &source, 1), name.p, name.len);
}

static uint64_t field_hash_of(const struct arc_rt_table *t, uint32_t id)
{
    return field_hash(t->fields[id].source, t->fields[id].name);
}

static bool field_eq(const struct arc_rt_table *t, uint32_t id, const void *key)
{
    const struct field_key *a = &t->fields[id], *b = key;
    return a->source == b->source && a->name.len == b->name.len &&
           memcmp(a->name.p, b->name.p, a->name.len) == 0;
}

static uint64_t atom_hash(uint8_t source, uint8_t op, struct arc_str name, struct arc_str value)
{
    uint8_t so[2] = { source, op };
    uint64_t h = fwd_hash(FNV_OFFSET, so, 2);
    h = fwd_hash(h, name.p, name.len);
    h = fwd_hash(h, "\xff", 1);     /* never inside a name: separates name and value */
    return fwd_hash(h, value.p, value.len);
}

static uint64_t atom_hash_of(const struct arc_rt_table *t, uint32_t id)
{
    const struct arc_rt__atom *a = &t->atoms[id];
    return atom_hash(a->source, a->op, a->name, a->value);
}

static bool atom_eq(const struct arc_rt_table *t, uint32_t id, const void *key)
{
    const struct arc_rt__atom *a = &t->atoms[id], *b = key;
    return a->source == b->source && a->op == b->op && a->name.len == b->name.len &&
           a->value.len == b->value.len && memcmp(a->name.p, b->name.p, a->name.len) == 0 &&
           memcmp(a->value.p, b->value.p, a->value.len) == 0;
}

/* Field id of (source, name) (name already canonical), creating it. */
static long field_get(struct arc_rt_table *t, uint8_t source, struct arc_str name)
{
    struct field_key k = { source, name };
    uint64_t h = field_hash(source, name);
    uint32_t id = index_find(&t->field_index, h, field_eq, t, &k);
    if (id != UINT32_MAX)
        return id;
    if (t->n_fields == t->cap_fields) {
        uint32_t cap = t->cap_fields ? t->cap_fields * 2 : 16;
        struct field_key *f = realloc(t->fields, cap * sizeof(*f));
        if (!f)
            return -1;
        t->fields = f;
        t->cap_fields = cap;
    }
    id = t->n_fields;
    t->fields[id] = k;          /* name points into the arena (the atom's copy) */
    if (index_add(&t->field_index, id, id + 1, h, field_hash_of, t) < 0)
        return -1;
    t->n_fields++;
    return id;
}

static const char *const source_names[] = { "header", "cookie", "query" };
static const char *const op_names[] = { "exists", "equals", "contains", "regex" };

/* Atom of one matcher, interned. Returns its id, -1 (OOM) or -2 (invalid
 * matcher or regex; message in err). */
static long atom_get(struct arc_rt_table *t, const struct arc_rt_pred *p, const char *rname,
                     char *err, size_t errlen)
{
    if (p->source > ARC_RT_QUERY || p->op > ARC_RT_REGEX) {
        errf(err, errlen, "route '%s': invalid matcher (source %u, op %u)", rname,
             (unsigned)p->source, (unsigned)p->op);
        return -2;
    }
    const char *src = source_names[p->source];
    if (!p->name || !p->name[0]) {
        errf(err, errlen, "route '%s': %s matcher without a name", rname, src);
        return -2;
    }
    if (p->op != ARC_RT_EXISTS && !p->value) {
        errf(err, errlen, "route '%s': %s matcher '%s': op %s needs a %s", rname, src, p->name,
             op_names[p->op], p->op == ARC_RT_REGEX ? "pattern" : "value");
        return -2;
    }
    char lower[256];
    struct arc_str name = { p->name, strlen(p->name) };
    if (p->source == ARC_RT_HEADER) {
        /* Field names are case-insensitive (RFC 9110 §5.1): keep one case. */
        if (name.len > sizeof(lower)) {
            errf(err, errlen, "route '%s': header name longer than %zu bytes", rname, sizeof(lower));
            return -2;
        }
        for (size_t i = 0; i < name.len; i++) {
            unsigned char c = (unsigned char)name.p[i];
            lower[i] = (char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
        }
        name.p = lower;
    }
    struct arc_str value = { "", 0 };
    if (p->op != ARC_RT_EXISTS)
        value = (struct arc_str){ p->value, strlen(p->value) };
    struct arc_rt__atom key = { .source = p->source, .op = p->op, .name = name, .value = value };
    uint64_t h = atom_hash(p->source, p->op, name, value);
    uint32_t id = index_find(&t->atom_index, h, atom_eq, t, &key);
    if (id != UINT32_MAX)
        return id;

    if (t->n_atoms == t->cap_atoms) {
        uint32_t cap = t->cap_atoms ? t->cap_atoms * 2 : 16;
        struct arc_rt__atom *a = realloc(t->atoms, cap * sizeof(*a));
        if (!a)
            return -1;
        t->atoms = a;
        t->cap_atoms = cap;
    }
    char *np = arena_strndup(&t->arena, name.p, name.len);
    char *vp = arena_strndup(&t->arena, value.p, value.len);
    if (!np || !vp)
        return -1;
    key.name.p = np;
    key.value.p = vp;
    if (p->op == ARC_RT_REGEX) {
        char why[256];
        size_t off = 0;
        key.re = arc_rt__regex_compile(vp, why, sizeof(why), &off);
        if (!key.re) {
            errf(err, errlen, "route '%s': %s matcher '%s': regex '%s' does not compile: %s "
                 "(at offset %zu)", rname, src, p->name, p->value, why, off);
            return -2;
        }
        if (!t->mctx && !(t->mctx = arc_rt__regex_mctx_new())) {
            pcre2_code_free(key.re);
            return -1;
        }
    }
    long f = field_get(t, p->source, key.name);
    if (f < 0 || index_add(&t->atom_index, t->n_atoms, t->n_atoms + 1, h, atom_hash_of, t) < 0) {
        pcre2_code_free(key.re);
        return -1;
    }
    key.field = (uint32_t)f;
    id = t->n_atoms++;
    t->atoms[id] = key;
    return id;
}

/* Cheaper tests first when every matcher must hold: presence and equality
 * before substring search before regex; headers before cookies and query
 * (which need parsing). */
static unsigned atom_cost(const struct arc_rt__atom *a)
{
    return a->op * 3u + a->source;
}

static struct arc_rt__formula formula_of(const struct route *r)
{
    return (struct arc_rt__formula){ .atoms = r->atoms, .n = r->n_preds, .x = r->x, .nx = r->nx };
}

/* Compiles the matchers and expression of spec `s` into route r. Returns 0,
 * -1 (OOM) or -2 (message in err). */
static int route_preds(struct arc_rt_table *t, struct route *r, const struct arc_rt_spec *s,
                       char *err, size_t errlen)
{
    size_t np = s->preds ? s->n_preds : 0;
    r->weight = (s->methods != 0) + (uint32_t)np;
    if (np == 0 && !s->expr)
        return 0;
    if (np > ARC_RT_MAX_PREDS) {
        errf(err, errlen, "route '%s': more than %d matchers", r->name, ARC_RT_MAX_PREDS);
        return -2;
    }
    uint32_t *atoms = arena_alloc(&t->arena, (np ? np : 1) * sizeof(*atoms));
    if (!atoms)
        return -1;
    const char *ids[ARC_RT_MAX_PREDS];
    for (size_t i = 0; i < np; i++) {
        const struct arc_rt_pred *p = &s->preds[i];
        long a = atom_get(t, p, r->name, err, errlen);
        if (a < 0)
            return (int)a;
        atoms[i] = (uint32_t)a;
        ids[i] = p->id;
        for (size_t j = 0; p->id && j < i; j++) {
            if (ids[j] && strcmp(ids[j], p->id) == 0) {
                errf(err, errlen, "route '%s': matcher id '%s' is used twice", r->name, p->id);
                return -2;
            }
        }
    }
    r->atoms = atoms;
    r->n_preds = (uint8_t)np;
    if (!s->expr) {
        /* insertion sort: order does not matter to an AND */
        for (size_t i = 1; i < np; i++) {
            uint32_t a = atoms[i];
            size_t j = i;
            while (j > 0 && atom_cost(&t->atoms[atoms[j - 1]]) > atom_cost(&t->atoms[a])) {
                atoms[j] = atoms[j - 1];
                j--;
            }
            atoms[j] = a;
        }
        return 0;
    }

    for (size_t i = 0; i < np; i++) {
        if (!ids[i]) {
            errf(err, errlen, "route '%s': with expr, every matcher needs an id (%s matcher "
                 "'%s' has none)", r->name, source_names[s->preds[i].source], s->preds[i].name);
            return -2;
        }
    }
    size_t len = strlen(s->expr);
    if (len > ARC_RT_MAX_EXPR) {
        errf(err, errlen, "route '%s': expr: longer than %d bytes", r->name, ARC_RT_MAX_EXPR);
        return -2;
    }
    struct arc_rt__xnode *tmp = malloc(ARC_RT__XNODES(len) * sizeof(*tmp));
    if (!tmp)
        return -1;
    size_t nx = 0, off = 0;
    uint64_t used = 0;
    char why[200];
    if (arc_rt__expr_parse(s->expr, ids, np, tmp, &nx, &used, why, sizeof(why), &off) < 0) {
        free(tmp);
        errf(err, errlen, "route '%s': expr '%s': %s (at offset %zu)", r->name, s->expr, why, off);
        return -2;
    }
    struct arc_rt__xnode *x = arena_alloc(&t->arena, nx * sizeof(*x));
    if (x)
        memcpy(x, tmp, nx * sizeof(*x));
    free(tmp);
    if (!x)
        return -1;
    r->x = x;
    r->nx = (uint16_t)nx;
    for (size_t i = 0; i < np; i++) {
        if (!(used & (1ull << i))) {
            errf(err, errlen, "route '%s': matcher '%s' is not used in expr '%s'", r->name,
                 ids[i], s->expr);
            return -2;
        }
    }
    struct arc_rt__formula f = formula_of(r);
    if (!arc_rt__satisfiable(&f, NULL, t->atoms)) {
        errf(err, errlen, "route '%s': expr '%s' can never be true, so the route never matches",
             r->name, s->expr);
        return -2;
    }
    return 0;
}

/* ------------------------------------------------------------- tree build */

static int lit_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

static struct node *node_new(void)
{
    return calloc(1, sizeof(struct node));
}

/* Finds or creates the literal child `s`, keeping children sorted. */
static struct node *lit_child(struct node *n, const char *s, size_t len)
{
    uint32_t lo = 0, hi = n->n_lits;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = lit_cmp(n->lits[mid].label, n->lits[mid].len, s, len);
        if (c == 0)
            return n->lits[mid].child;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (n->n_lits == n->cap_lits) {
        uint32_t cap = n->cap_lits ? n->cap_lits * 2 : 4;
        struct edge *e = realloc(n->lits, cap * sizeof(*e));
        if (!e)
            return NULL;
        n->lits = e;
        n->cap_lits = cap;
    }
    struct node *child = node_new();
    if (!child)
        return NULL;
    memmove(&n->lits[lo + 1], &n->lits[lo], (n->n_lits - lo) * sizeof(n->lits[0]));
    n->lits[lo] = (struct edge){ .label = s, .len = (uint32_t)len, .child = child };
    n->n_lits++;
    return child;
}

static struct node *tree_insert(struct node *root, const struct arc_rt__pattern *pat)
{
    struct node *n = root;
    for (size_t i = 0; i < pat->n && n; i++) {
        const struct arc_rt__seg *s = &pat->segs[i];
        struct node **slot = NULL;
        switch (s->kind) {
        case ARC_RT__LIT:
            n = lit_child(n, s->p, s->len);
            continue;
        case ARC_RT__PARAM:
            slot = &n->param;
            break;
        case ARC_RT__STAR:
            slot = &n->star;
            break;
        default:
            slot = &n->rest;
            break;
        }
        if (!*slot)
            *slot = node_new();
        n = *slot;
    }
    return n;
}

static struct node *level_root(struct group *g, int32_t prio)
{
    uint32_t i = 0;
    while (i < g->n_levels && g->levels[i].priority > prio)
        i++;
    if (i < g->n_levels && g->levels[i].priority == prio)
        return g->levels[i].root;
    if (g->n_levels == g->cap_levels) {
        uint32_t cap = g->cap_levels ? g->cap_levels * 2 : 2;
        struct level *l = realloc(g->levels, cap * sizeof(*l));
        if (!l)
            return NULL;
        g->levels = l;
        g->cap_levels = cap;
    }
    struct node *root = node_new();
    if (!root)
        return NULL;
    memmove(&g->levels[i + 1], &g->levels[i], (g->n_levels - i) * sizeof(g->levels[0]));
    g->levels[i] = (struct level){ prio, root };
    g->n_levels++;
    return root;
}

static void host_text(const struct group *g, char *buf, size_t len)
{
    if (g->kind == G_ANY)
        snprintf(buf, len, "any host");
    else
        snprintf(buf, len, "host '%s%.*s'", g->kind == G_SUFFIX ? "*" : "",
                 (int)g->key_len, g->key);
}

/* Segments are short: FNV-1a, folded to 32 bits. */
static uint32_t seg_hash(const char *p, size_t n)
{
    uint64_t h = fwd_hash(FNV_OFFSET, p, n);
    return (uint32_t)(h ^ (h >> 32));
}

/* Nodes with this many literal children get a hash index: a root with
 * 10,000 literal first segments would otherwise cost ~14 string compares
 * (and as many cache misses) per request. */
#ifndef LIT_HASH_MIN
#define LIT_HASH_MIN 8
#endif

/* Hashes every node's literal labels and indexes the large sets. */
static int finalize(struct node *n)
{
    if (!n)
        return 0;
    for (uint32_t i = 0; i < n->n_lits; i++) {
        n->lits[i].hash = seg_hash(n->lits[i].label, n->lits[i].len);
        if (finalize(n->lits[i].child) < 0)
            return -1;
    }
    if (n->n_lits >= LIT_HASH_MIN) {
        uint32_t cap = 16;
        while (cap < n->n_lits * 2)
            cap *= 2;
        n->lit_slots = calloc(cap, sizeof(*n->lit_slots));
        if (!n->lit_slots)
            return -1;
        n->lit_mask = cap - 1;
        for (uint32_t i = 0; i < n->n_lits; i++) {
            uint32_t k = n->lits[i].hash & n->lit_mask;
            while (n->lit_slots[k])
                k = (k + 1) & n->lit_mask;
            n->lit_slots[k] = i + 1;
        }
    }
    return finalize(n->param) < 0 || finalize(n->star) < 0 ? -1 : finalize(n->rest);
}

/* Methods two routes both accept (0 = every method) overlap? */
static bool methods_overlap(uint32_t a, uint32_t b)
{
    return a == 0 || b == 0 || (a & b) != 0;
}

/* Adds route `ri` to the tree of group `gi`. Returns 0, -1 (OOM) or -2
 * (ambiguity; message in err). */
static int add_to_group(struct arc_rt_table *t, size_t gi, uint32_t ri,
                        const struct arc_rt__pattern *pat, char *err, size_t errlen)
{
    struct group *g = &t->groups[gi];
    const struct route *r = &t->routes[ri];
    struct node *root = level_root(g, r->priority);
    struct node *leaf = root ? tree_insert(root, pat) : NULL;
    if (!leaf)
        return -1;
    uint32_t at = leaf->n_ents;
    for (uint32_t i = 0; i < leaf->n_ents; i++) {
        const struct entry *e = &leaf->ents[i];
        if (e->route == ri)
            return 0;           /* same route listed the host twice */
        const struct route *o = &t->routes[e->route];
        if (at == leaf->n_ents && o->weight < r->weight)
            at = i;
        if (o->weight != r->weight || !methods_overlap(e->methods, r->methods))
            continue;
        struct arc_rt__formula fo = formula_of(o), fr = formula_of(r);
        bool preds = o->n_preds || r->n_preds;
        if (preds && !arc_rt__satisfiable(&fo, &fr, t->atoms))
            continue;
        char hosts[300], meth[80];
        host_text(g, hosts, sizeof(hosts));
        if (r->methods == 0 && o->methods == 0)
            snprintf(meth, sizeof(meth), "any method");
        else
            methods_text(o->methods && r->methods ? o->methods & r->methods
                                                  : o->methods | r->methods, meth, sizeof(meth));
        errf(err, errlen,
             "routes '%s' and '%s' are ambiguous: same priority %d, equivalent paths '%s' "
             "and '%s', %s, %s%s; give one a priority or make them differ",
             o->name, r->name, (int)r->priority, o->path, r->path, hosts, meth,
             preds ? ", as many predicates, and their matchers can all hold for one request" : "");
        return -2;
    }
    if (leaf->n_ents == leaf->cap_ents) {
        uint32_t cap = leaf->cap_ents ? leaf->cap_ents * 2 : 2;
        struct entry *e = realloc(leaf->ents, cap * sizeof(*e));
        if (!e)
            return -1;
        leaf->ents = e;
        leaf->cap_ents = cap;
    }
    memmove(&leaf->ents[at + 1], &leaf->ents[at], (leaf->n_ents - at) * sizeof(leaf->ents[0]));
    leaf->ents[at] = (struct entry){ r->methods, ri, r->n_preds != 0 };
    leaf->n_ents++;
    return 0;
}

/* Routes without a name (only in tests; config requires one) are called by
 * their index so error messages still say which one. */
static const char *display_name(const struct arc_rt_spec *s, size_t idx, char tmp[32])
{
    if (s->name)
        return s->name;
    snprintf(tmp, 32, "#%zu", idx);
    return tmp;
}

/* Copies what matching needs out of the spec. The pattern is re-parsed from
 * the arena copy so every view the tree keeps points into table memory. */
static int route_init(struct arc_rt_table *t, struct route *r, const struct arc_rt_spec *s,
                      size_t idx, struct arc_rt__pattern *pat)
{
    char tmp[32];
    const char *name = display_name(s, idx, tmp);
    char *path = arena_strndup(&t->arena, s->path, strlen(s->path));
    char *nm = arena_strndup(&t->arena, name, strlen(name));
    if (!path || !nm || arc_rt__parse(path, pat, NULL, 0) < 0)
        return -1;
    uint8_t *shape = arena_alloc(&t->arena, pat->n);
    struct cap_def *caps = arena_alloc(&t->arena, (pat->n_caps ? pat->n_caps : 1) * sizeof(*caps));
    if (!shape || !caps)
        return -1;
    size_t nc = 0;
    for (size_t i = 0; i < pat->n; i++) {
        const struct arc_rt__seg *sg = &pat->segs[i];
        shape[i] = (uint8_t)arc_rt__rank(sg->kind);
        if (sg->kind == ARC_RT__PARAM || sg->kind == ARC_RT__REST)
            caps[nc++] = (struct cap_def){ { sg->p, sg->len }, (uint8_t)i, sg->kind == ARC_RT__REST };
    }
    *r = (struct route){
        .data = s->data, .name = nm, .path = path, .shape = shape, .caps = caps,
        .methods = s->methods, .priority = s->priority,
        .n_segs = (uint8_t)pat->n, .n_caps = (uint8_t)nc,
    };
    return 0;
}

int arc_rt_build(const struct arc_rt_spec *specs, size_t n, struct arc_rt_table **out,
                 char *err, size_t errlen, size_t *err_index)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (err_index)
        *err_index = 0;
    if (n >= UINT32_MAX)
        return errf(err, errlen, "too many routes");

    struct arc_rt_table *t = calloc(1, sizeof(*t));
    if (!t)
        return errf(err, errlen, "out of memory building the route table");
    t->routes = calloc(n ? n : 1, sizeof(*t->routes));
    t->groups = calloc(8, sizeof(*t->groups));
    if (!t->routes || !t->groups)
        goto oom;
    t->cap_groups = 8;
    t->n_groups = 1;            /* [0]: any host */
    t->groups[0] = (struct group){ .key = "", .kind = G_ANY };
    t->n_routes = n;

    struct arc_rt__pattern pat;
    char why[256];
    for (size_t i = 0; i < n; i++) {
        const struct arc_rt_spec *s = &specs[i];
        char tmp[32];
        const char *name = display_name(s, i, tmp);
        if (err_index)
            *err_index = i;
        if (arc_rt__parse(s->path, &pat, why, sizeof(why)) < 0) {
            errf(err, errlen, "route '%s': %s", name, why);
            goto fail;
        }
        if (route_init(t, &t->routes[i], s, i, &pat) < 0)
            goto oom;
        int prc = route_preds(t, &t->routes[i], s, err, errlen);
        if (prc == -1)
            goto oom;
        if (prc == -2)
            goto fail;

        size_t nh = s->hosts ? s->n_hosts : 0;
        for (size_t h = 0; h < (nh ? nh : 1); h++) {
            long gi = 0;
            if (nh) {
                char buf[256];
                size_t len = 0;
                const char *reason;
                int kind = host_pattern(s->hosts[h], buf, &len, &reason);
                if (kind < 0) {
                    errf(err, errlen, "route '%s': host '%s': %s", name,
                         s->hosts[h] ? s->hosts[h] : "(null)", reason);
                    goto fail;
                }
                gi = group_get(t, (uint8_t)kind, buf, len);
                if (gi < 0)
                    goto oom;
            }
            int rc = add_to_group(t, (size_t)gi, (uint32_t)i, &pat, err, errlen);
            if (rc == -1)
                goto oom;
            if (rc == -2)
                goto fail;
        }
    }
    for (size_t g = 0; g < t->n_groups; g++)
        for (uint32_t l = 0; l < t->groups[g].n_levels; l++)
            if (finalize(t->groups[g].levels[l].root) < 0)
                goto oom;
    *out = t;
    return 0;

oom:
    errf(err, errlen, "out of memory building the route table");
fail:
    arc_rt_free(t);
    return -1;
}

/* ------------------------------------------------------------- match */

/* Routes that matched host and path but not the method are held here
 * instead of having their matchers tested at once: that is only needed
 * (for the Allow list) if no route matches at all. */
#define MAX_PENDING 16

struct mctx {
    const struct arc_rt_table *t;
    const struct arc_rt_input *in;
    const char *p;
    size_t len;
    uint32_t bit;
    uint32_t allowed;
    unsigned n_pending;
    const struct route *pending[MAX_PENDING];
    size_t seg_start[ARC_RT__MAX_SEGS];
};

/* Expression over the route's matchers; each matcher is tested at most
 * once (known/val cache its result). Depth is bounded (expr.c). */
static bool xeval(const struct mctx *m, const struct route *r, uint16_t i,
                  uint64_t *known, uint64_t *val)
{
    const struct arc_rt__xnode *n = &r->x[i];
    switch (n->op) {
    case ARC_RT__X_PRED: {
        uint64_t bit = 1ull << n->pred;
        if (!(*known & bit)) {
            *known |= bit;
            if (arc_rt__atom_test(&m->t->atoms[r->atoms[n->pred]], m->in, m->t->mctx))
                *val |= bit;
        }
        return (*val & bit) != 0;
    }
    case ARC_RT__X_NOT:
        return !xeval(m, r, n->a, known, val);
    case ARC_RT__X_AND:
        for (uint16_t k = n->a; k != ARC_RT__XNONE; k = r->x[k].next)
            if (!xeval(m, r, k, known, val))
                return false;
        return true;
    default:
        for (uint16_t k = n->a; k != ARC_RT__XNONE; k = r->x[k].next)
            if (xeval(m, r, k, known, val))
                return true;
        return false;
    }
}

static bool preds_hold(const struct mctx *m, const struct route *r)
{
    if (!r->n_preds)
        return true;
    if (r->x) {
        uint64_t known = 0, val = 0;
        return xeval(m, r, (uint16_t)(r->nx - 1), &known, &val);
    }
    for (size_t i = 0; i < r->n_preds; i++)
        if (!arc_rt__atom_test(&m->t->atoms[r->atoms[i]], m->in, m->t->mctx))
            return false;
    return true;
}

static const struct entry *leaf_pick(struct mctx *m, const struct node *n)
{
    for (uint32_t i = 0; i < n->n_ents; i++) {
        const struct entry *e = &n->ents[i];
        if (e->methods && !(e->methods & m->bit)) {
            if ((m->allowed & e->methods) == e->methods)
                continue;       /* adds nothing to Allow */
            const struct route *r = &m->t->routes[e->route];
            if (!e->preds)
                m->allowed |= e->methods;
            else if (m->n_pending < MAX_PENDING)
                m->pending[m->n_pending++] = r;
            else if (preds_hold(m, r))
                m->allowed |= e->methods;
            continue;
        }
        if (!e->preds || preds_hold(m, &m->t->routes[e->route]))
            return e;
    }
    return NULL;
}

static const struct entry *walk(struct mctx *m, const struct node *n, size_t pos, unsigned depth);

/* Descends into child `c` after the segment ending at `end`. */
static const struct entry *step(struct mctx *m, const struct node *c, size_t end, unsigned depth)
{
    if (end == m->len)
        return c->n_ents ? leaf_pick(m, c) : NULL;
    if ((!c->n_lits && !c->param && !c->star && !c->rest) || depth + 1 >= ARC_RT__MAX_SEGS)
        return NULL;
    return walk(m, c, end + 1, depth + 1);
}

static const struct node *find_lit(const struct node *n, const char *s, size_t len)
{
    if (n->lit_slots) {
        uint32_t h = seg_hash(s, len);
        for (uint32_t k = h & n->lit_mask;; k = (k + 1) & n->lit_mask) {
            uint32_t i = n->lit_slots[k];
            if (!i)
                return NULL;
            const struct edge *e = &n->lits[i - 1];
            if (e->hash == h && e->len == len && memcmp(e->label, s, len) == 0)
                return e->child;
        }
    }
    uint32_t lo = 0, hi = n->n_lits;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = lit_cmp(n->lits[mid].label, n->lits[mid].len, s, len);
        if (c == 0)
            return n->lits[mid].child;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* `pos` is the first byte of segment `depth` (just after its '/'). The
 * order of the tries below is the per-segment precedence. */
static const struct entry *walk(struct mctx *m, const struct node *n, size_t pos, unsigned depth)
{
    const char *seg = m->p + pos;
    const char *slash = memchr(seg, '/', m->len - pos);
    size_t end = slash ? (size_t)(slash - m->p) : m->len;
    size_t slen = end - pos;
    const struct entry *e;

    m->seg_start[depth] = pos;
    if (n->n_lits) {
        const struct node *c = find_lit(n, seg, slen);
        if (c && (e = step(m, c, end, depth)))
            return e;
    }
    if (slen && n->param && (e = step(m, n->param, end, depth)))
        return e;
    if (slen && n->star && (e = step(m, n->star, end, depth)))
        return e;
    if (n->rest)
        return leaf_pick(m, n->rest);
    return NULL;
}

/* 1 any + 1 exact + at most one suffix group per '.' of a 255-byte name. */
#define MAX_APPLICABLE 130

/* The groups whose host pattern matches, in host precedence order: exact,
 * longer suffix before shorter, any host last. */
static size_t applicable(const struct arc_rt_table *t, struct arc_str host,
                         const struct group **out)
{
    size_t k = 0;
    if (t->n_groups > 1 && host.len) {
        char buf[256];
        int len = arc_rt__norm_host(host, buf);
        if (len > 0) {
            const struct group *sfx[MAX_APPLICABLE];
            size_t ns = 0;
            uint64_t h = FNV_OFFSET;
            for (int i = len - 1; i >= 0; i--) {
                h = (h ^ (unsigned char)buf[i]) * FNV_PRIME;
                /* "*.example.com" needs a non-empty label before ".example.com" */
                if (buf[i] == '.' && i > 0) {
                    const struct group *g = lookup_group(t, h, G_SUFFIX, buf + i,
                                                         (size_t)(len - i));
                    if (g && ns < MAX_APPLICABLE - 2)
                        sfx[ns++] = g;  /* shortest first */
                }
            }
            const struct group *g = lookup_group(t, h, G_EXACT, buf, (size_t)len);
            if (g)
                out[k++] = g;
            while (ns)
                out[k++] = sfx[--ns];
        }
    }
    out[k++] = &t->groups[0];
    return k;
}

const void *arc_rt_match(const struct arc_rt_table *t, const struct arc_rt_input *in,
                         struct arc_rt_captures *caps, uint32_t *allowed)
{
    uint32_t dummy;
    if (!allowed)
        allowed = &dummy;
    *allowed = 0;
    if (caps)
        caps->n = 0;
    /* Only origin-form is routed; "*" (OPTIONS) and absolute-form are the
     * caller's to translate first. */
    if (!t || !in || !in->path.len || in->path.p[0] != '/')
        return NULL;

    const struct group *gs[MAX_APPLICABLE];
    uint32_t li[MAX_APPLICABLE];
    size_t ng = applicable(t, in->host, gs);
    for (size_t k = 0; k < ng; k++)
        li[k] = 0;

    struct mctx m;
    m.t = t;
    m.in = in;
    m.p = in->path.p;
    m.len = in->path.len;
    m.bit = in->method_bit;
    m.allowed = 0;
    m.n_pending = 0;

    for (;;) {
        bool have = false;
        int32_t prio = INT32_MIN;
        for (size_t k = 0; k < ng; k++) {
            if (li[k] < gs[k]->n_levels && (!have || gs[k]->levels[li[k]].priority > prio)) {
                prio = gs[k]->levels[li[k]].priority;
                have = true;
            }
        }
        if (!have)
            break;
        for (size_t k = 0; k < ng; k++) {
            if (li[k] >= gs[k]->n_levels || gs[k]->levels[li[k]].priority != prio)
                continue;
            const struct entry *e = walk(&m, gs[k]->levels[li[k]++].root, 1, 0);
            if (!e)
                continue;
            const struct route *r = &t->routes[e->route];
            if (caps) {
                /* Segment offsets depend only on the request path, so the
                 * ones the walk recorded serve whichever route won. */
                for (size_t i = 0; i < r->n_caps; i++) {
                    const struct cap_def *d = &r->caps[i];
                    size_t s = m.seg_start[d->seg], end = m.len;
                    if (!d->rest) {
                        const char *slash = memchr(m.p + s, '/', m.len - s);
                        if (slash)
                            end = (size_t)(slash - m.p);
                    }
                    caps->v[i].name = d->name;
                    caps->v[i].value = arc_str_make(m.p + s, end - s);
                }
                caps->n = r->n_caps;
            }
            return r->data;
        }
    }
    for (unsigned i = 0; i < m.n_pending; i++) {
        const struct route *r = m.pending[i];
        if ((m.allowed & r->methods) != r->methods && preds_hold(&m, r))
            m.allowed |= r->methods;
    }
    *allowed = m.allowed;
    return NULL;
}
