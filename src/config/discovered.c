/*
 * The store of discovered endpoint sets. See discovered.h.
 */
#include "config/discovered.h"
#include "upstream/lb.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dset {
    char *key;                  /* "upstream|hostname|port" */
    struct arc_addr *a;
    size_t n;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dset *g_sets;
static size_t g_n, g_cap;

static void make_key(char *out, size_t len, const char *up, const char *host, uint16_t port)
{
    snprintf(out, len, "%s|%s|%u", up, host, (unsigned)port);
}

static struct dset *find(const char *key)
{
    for (size_t i = 0; i < g_n; i++)
        if (strcmp(g_sets[i].key, key) == 0)
            return &g_sets[i];
    return NULL;
}

static int cmp_addr(const void *x, const void *y)
{
    return strcmp(((const struct arc_addr *)x)->text, ((const struct arc_addr *)y)->text);
}

int arc_discovered_set(const char *upstream, const char *hostname, uint16_t port,
                       const struct arc_addr *a, size_t n)
{
    char key[512];
    make_key(key, sizeof(key), upstream, hostname, port);
    struct arc_addr *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return -1;
    if (n)
        memcpy(v, a, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_addr);
    size_t m = 0;
    for (size_t i = 0; i < n && m < ARC_DISCOVERED_MAX; i++)
        if (m == 0 || strcmp(v[m - 1].text, v[i].text) != 0)
            v[m++] = v[i];
    pthread_mutex_lock(&g_lock);
    struct dset *d = find(key);
    if (d && d->n == m) {
        bool same = true;
        for (size_t i = 0; i < m && same; i++)
            same = strcmp(d->a[i].text, v[i].text) == 0;
        if (same) {
            pthread_mutex_unlock(&g_lock);
            free(v);
            return 0;
        }
    }
    if (!d) {
        if (g_n == g_cap) {
            size_t cap = g_cap ? g_cap * 2 : 8;
            struct dset *s = realloc(g_sets, cap * sizeof(*s));
            if (!s) {
                pthread_mutex_unlock(&g_lock);
                free(v);
                return -1;
            }
            g_sets = s;
            g_cap = cap;
        }
        char *k = strdup(key);
        if (!k) {
            pthread_mutex_unlock(&g_lock);
            free(v);
            return -1;
        }
        d = &g_sets[g_n++];
        *d = (struct dset){ .key = k };
    }
    free(d->a);
    d->a = v;
    d->n = m;
    pthread_mutex_unlock(&g_lock);
    return 1;
}

long arc_discovered_count(const char *upstream, const char *hostname, uint16_t port)
{
    char key[512];
    make_key(key, sizeof(key), upstream, hostname, port);
    pthread_mutex_lock(&g_lock);
    struct dset *d = find(key);
    long n = d ? (long)d->n : -1;
    pthread_mutex_unlock(&g_lock);
    return n;
}

void arc_discovered_prune(const struct arc_config *cfg)
{
    char key[512];
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_n;) {
        bool named = false;
        for (size_t u = 0; u < cfg->n_upstreams && !named; u++) {
            const struct arc_upstream_conf *uc = &cfg->upstreams[u];
            if (!uc->dns.hostname)
                continue;
            make_key(key, sizeof(key), uc->name, uc->dns.hostname, uc->dns.port);
            named = strcmp(key, g_sets[i].key) == 0;
        }
        if (named) {
            i++;
            continue;
        }
        free(g_sets[i].key);
        free(g_sets[i].a);
        g_sets[i] = g_sets[--g_n];
    }
    pthread_mutex_unlock(&g_lock);
}

/* How many endpoints the upstream's balancer can take. */
static size_t lb_cap(const struct arc_upstream_conf *uc)
{
    size_t cap = ARC_DISCOVERED_MAX;
    if (uc->lb == ARC_LB_CONSISTENT_HASH && uc->lb_virtual_nodes &&
        ARC_LB_MAX_SLOTS / uc->lb_virtual_nodes < cap)
        cap = ARC_LB_MAX_SLOTS / uc->lb_virtual_nodes;
    if (uc->lb == ARC_LB_MAGLEV && uc->lb_table_size && uc->lb_table_size - 1 < cap)
        cap = uc->lb_table_size - 1;
    return cap;
}

int arc_discovered_fill(struct arc_config *cfg)
{
    char key[512];
    int rc = 0;
    pthread_mutex_lock(&g_lock);
    for (size_t u = 0; u < cfg->n_upstreams; u++) {
        struct arc_upstream_conf *uc = &cfg->upstreams[u];
        if (!uc->dns.hostname)
            continue;
        make_key(key, sizeof(key), uc->name, uc->dns.hostname, uc->dns.port);
        const struct dset *d = find(key);
        size_t n = d ? d->n : 0, cap = lb_cap(uc);
        if (n > cap)
            n = cap;
        free(uc->endpoints);
        uc->endpoints = NULL;
        uc->n_endpoints = 0;
        if (n == 0)
            continue;
        uc->endpoints = calloc(n, sizeof(*uc->endpoints));
        if (!uc->endpoints) {
            rc = -1;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            uc->endpoints[i] = (struct arc_endpoint_conf){ .address = d->a[i], .weight = 1 };
        uc->n_endpoints = n;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

void arc_discovered_reset(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_n; i++) {
        free(g_sets[i].key);
        free(g_sets[i].a);
    }
    free(g_sets);
    g_sets = NULL;
    g_n = g_cap = 0;
    pthread_mutex_unlock(&g_lock);
}
