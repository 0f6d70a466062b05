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
 * search, at most one single-segment child (shared by {name} and *, which
 * accept exactly the same segments) and at most one {*name} child. A node
 * where patterns end holds entries (route, method mask).
 *
 * Matching. For each priority (highest first), every applicable group's tree
 * is walked depth-first trying literal, then single, then rest children; the
 * first node reached whose entries accept the method is that tree's best
 * route, because that DFS order is exactly the per-segment precedence
 * (literal > {name} or * > {*name}, leftmost segment first). The best of the
 * groups' results is then chosen by path shape, then by predicate count
 * (host given + methods given), then by host rank (exact > longer suffix >
 * shorter suffix > any). Entries that matched the path but not the method
 * feed the 405 Allow mask.
 *
 * Ambiguity. Two routes can only tie on all of those keys if they share a
 * group, a priority and a tree node (same literals, same segment kinds) and
 * both accept some method with the same predicate count, i.e. both have no
 * methods, or their method masks intersect. That is checked as entries are
 * added, so detection is exact and costs nothing at match time.
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
    size_t len;
    struct node *child;
};

struct entry {
    uint32_t methods;           /* 0 = any method */
    uint32_t route;             /* index into table->routes == spec index */
};

struct node {
    struct edge *lits;
    uint32_t n_lits, cap_lits;
    struct entry *ents;
    uint32_t n_ents, cap_ents;
    struct node *single;        /* {name} or * */
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

struct arc_rt_table {
    struct route *routes;
    size_t n_routes;
    struct group *groups;       /* [0] is the any-host group */
    size_t n_groups, cap_groups;
    uint32_t *slots;            /* group index + 1, 0 = empty */
    size_t mask;
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
    node_free(n->single);
    node_free(n->rest);
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
    n->lits[lo] = (struct edge){ s, len, child };
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
        case ARC_RT__STAR:
            slot = &n->single;
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
    for (uint32_t i = 0; i < leaf->n_ents; i++) {
        const struct entry *e = &leaf->ents[i];
        if (e->route == ri)
            return 0;           /* same route listed the host twice */
        bool clash = (e->methods == 0 && r->methods == 0) || (e->methods & r->methods);
        if (!clash)
            continue;
        const struct route *o = &t->routes[e->route];
        char hosts[300], meth[80];
        host_text(g, hosts, sizeof(hosts));
        if (r->methods == 0)
            snprintf(meth, sizeof(meth), "any method");
        else
            methods_text(e->methods & r->methods, meth, sizeof(meth));
        errf(err, errlen,
             "routes '%s' and '%s' are ambiguous: same priority %d, equivalent paths '%s' "
             "and '%s', %s, %s; give one a priority or make them differ",
             o->name, r->name, (int)r->priority, o->path, r->path, hosts, meth);
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
    leaf->ents[leaf->n_ents++] = (struct entry){ r->methods, ri };
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
    *out = t;
    return 0;

oom:
    errf(err, errlen, "out of memory building the route table");
fail:
    arc_rt_free(t);
    return -1;
}

/* ------------------------------------------------------------- match */

struct mctx {
    const char *p;
    size_t len;
    uint32_t bit;
    uint32_t allowed;
    size_t seg_start[ARC_RT__MAX_SEGS];
};

static const struct entry *leaf_pick(struct mctx *m, const struct node *n)
{
    const struct entry *any = NULL;
    for (uint32_t i = 0; i < n->n_ents; i++) {
        const struct entry *e = &n->ents[i];
        if (e->methods == 0)
            any = e;
        else if (e->methods & m->bit)
            return e;   /* a methods route beats a method-less one: more predicates */
        else
            m->allowed |= e->methods;
    }
    return any;
}

static const struct entry *walk(struct mctx *m, const struct node *n, size_t pos, unsigned depth);

/* Descends into child `c` after the segment ending at `end`. */
static const struct entry *step(struct mctx *m, const struct node *c, size_t end, unsigned depth)
{
    if (end == m->len)
        return c->n_ents ? leaf_pick(m, c) : NULL;
    if ((!c->n_lits && !c->single && !c->rest) || depth + 1 >= ARC_RT__MAX_SEGS)
        return NULL;
    return walk(m, c, end + 1, depth + 1);
}

static const struct node *find_lit(const struct node *n, const char *s, size_t len)
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
    return NULL;
}

/* `pos` is the first byte of segment `depth` (just after its '/'). The
 * order of the three tries below is the per-segment precedence. */
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
    if (n->single && slen && (e = step(m, n->single, end, depth)))
        return e;
    if (n->rest)
        return leaf_pick(m, n->rest);
    return NULL;
}

struct cand {
    const struct route *r;
    uint32_t npred, rank;
};

/* Is a better than b? Both matched the same request, so where both shapes
 * have literals they hold the same text and only ranks need comparing. */
static bool better(const struct cand *a, const struct cand *b)
{
    size_t n = ARC_MIN(a->r->n_segs, b->r->n_segs);
    for (size_t i = 0; i < n; i++)
        if (a->r->shape[i] != b->r->shape[i])
            return a->r->shape[i] > b->r->shape[i];
    if (a->npred != b->npred)
        return a->npred > b->npred;
    return a->rank > b->rank;
}

/* 1 any + 1 exact + at most one suffix group per '.' of a 255-byte name. */
#define MAX_APPLICABLE 130

static size_t applicable(const struct arc_rt_table *t, struct arc_str host,
                         const struct group **out)
{
    size_t k = 0;
    out[k++] = &t->groups[0];
    if (t->n_groups == 1 || !host.len)
        return k;
    char buf[256];
    int len = arc_rt__norm_host(host, buf);
    if (len <= 0)
        return k;
    uint64_t h = FNV_OFFSET;
    for (int i = len - 1; i >= 0; i--) {
        h = (h ^ (unsigned char)buf[i]) * FNV_PRIME;
        /* "*.example.com" needs a non-empty label before ".example.com" */
        if (buf[i] == '.' && i > 0) {
            const struct group *g = lookup_group(t, h, G_SUFFIX, buf + i, (size_t)(len - i));
            if (g && k < MAX_APPLICABLE)
                out[k++] = g;
        }
    }
    const struct group *g = lookup_group(t, h, G_EXACT, buf, (size_t)len);
    if (g && k < MAX_APPLICABLE)
        out[k++] = g;
    return k;
}

const void *arc_rt_match(const struct arc_rt_table *t, struct arc_str host, uint32_t method_bit,
                         struct arc_str path, struct arc_rt_captures *caps, uint32_t *allowed)
{
    uint32_t dummy;
    if (!allowed)
        allowed = &dummy;
    *allowed = 0;
    if (caps)
        caps->n = 0;
    /* Only origin-form is routed; "*" (OPTIONS) and absolute-form are the
     * caller's to translate first. */
    if (!t || !path.len || path.p[0] != '/')
        return NULL;

    const struct group *gs[MAX_APPLICABLE];
    uint32_t li[MAX_APPLICABLE];
    size_t ng = applicable(t, host, gs);
    for (size_t k = 0; k < ng; k++)
        li[k] = 0;

    struct mctx m;
    m.p = path.p;
    m.len = path.len;
    m.bit = method_bit;
    m.allowed = 0;

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
        struct cand best = { NULL, 0, 0 };
        for (size_t k = 0; k < ng; k++) {
            if (li[k] >= gs[k]->n_levels || gs[k]->levels[li[k]].priority != prio)
                continue;
            const struct entry *e = walk(&m, gs[k]->levels[li[k]++].root, 1, 0);
            if (!e)
                continue;
            const struct route *r = &t->routes[e->route];
            struct cand c = { r, (gs[k]->kind != G_ANY) + (r->methods != 0), gs[k]->rank };
            if (!best.r || better(&c, &best))
                best = c;
        }
        if (!best.r)
            continue;
        if (caps) {
            const struct route *r = best.r;
            for (size_t i = 0; i < r->n_caps; i++) {
                const struct cap_def *d = &r->caps[i];
                size_t s = m.seg_start[d->seg], e = m.len;
                if (!d->rest) {
                    const char *slash = memchr(m.p + s, '/', m.len - s);
                    if (slash)
                        e = (size_t)(slash - m.p);
                }
                caps->v[i].name = d->name;
                caps->v[i].value = arc_str_make(m.p + s, e - s);
            }
            caps->n = r->n_caps;
        }
        return best.r->data;
    }
    *allowed = m.allowed;
    return NULL;
}
