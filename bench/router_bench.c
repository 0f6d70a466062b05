/*
 * Router micro-benchmark: nanoseconds per arc_rt_match at 10, 1,000 and
 * 10,000 routes, with and without header/cookie/query matchers, and the
 * time arc_rt_build takes for 10,000 routes. Run through
 * bench/router_bench.sh (builds against the release libraries).
 *
 * Route mix (route i of n):
 *   40 %  literal      /svc<i>/v1/items
 *   30 %  capture      /api<i>/users/{id}/orders/{oid}
 *   20 %  host         h<i>.example.com /static/{*path}, or *.zone<i>.example.com /{*rest}
 *   10 %  wildcard     /files<i>/STAR/raw/{*rest}  (STAR: a * segment)
 * With matchers, every 4th route carries one or two (header equals, cookie
 * exists, query equals, header regex unique to the route, or an expression
 * over two), and every 8th route has a sibling on the same path that adds
 * a matcher (so the walk evaluates matchers and falls back). A request
 * table of 4,096 requests hits random routes (matchers satisfied or not)
 * and 10 % miss; every result is checked against the expected route.
 *
 * Times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a busy
 * machine inflates them less than wall time would (caches still suffer).
 * Output: a Markdown table on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "router/router.h"

#define NREQ 4096

struct rspec {
    char name[24], path[64], host[48], expr[40];
    char pname[2][24], pval[2][40], pid[2][4];
    struct arc_rt_pred preds[2];
    const char *hosts[1];
};

struct rreq {
    char host[64], path[96], query[48];
    char hl[3][64];
    struct arc_rt_field f[3];
    struct arc_rt_input in;
    const void *want;
};

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* CPU time of this thread: the machine this runs on is shared, and time
 * spent preempted is not the router's. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int kind_of(size_t i)
{
    unsigned k = (unsigned)(i % 10);
    return k < 4 ? 0 : k < 7 ? 1 : k < 9 ? 2 : 3;
}

/* Matchers of route i (with_preds), 0 if none. */
static size_t preds_of(struct rspec *r, size_t i, bool with_preds)
{
    if (!with_preds || i % 4 != 0)
        return 0;
    size_t np = 1;
    switch ((i / 4) % 5) {
    case 0:
        snprintf(r->pname[0], 24, "X-Tenant");
        snprintf(r->pval[0], 40, "t%zu", i);
        r->preds[0] = (struct arc_rt_pred){ ARC_RT_HEADER, ARC_RT_EQUALS, r->pname[0], r->pval[0], NULL };
        break;
    case 1:
        snprintf(r->pname[0], 24, "sess%zu", i % 64);
        r->preds[0] = (struct arc_rt_pred){ ARC_RT_COOKIE, ARC_RT_EXISTS, r->pname[0], NULL, NULL };
        break;
    case 2:
        snprintf(r->pname[0], 24, "v");
        snprintf(r->pval[0], 40, "%zu", i % 7);
        r->preds[0] = (struct arc_rt_pred){ ARC_RT_QUERY, ARC_RT_EQUALS, r->pname[0], r->pval[0], NULL };
        break;
    case 3:
        snprintf(r->pname[0], 24, "X-Client");
        snprintf(r->pval[0], 40, "^c%zu-[0-9]+$", i);
        r->preds[0] = (struct arc_rt_pred){ ARC_RT_HEADER, ARC_RT_REGEX, r->pname[0], r->pval[0], NULL };
        break;
    default:
        snprintf(r->pname[0], 24, "X-Tenant");
        snprintf(r->pval[0], 40, "t%zu", i);
        snprintf(r->pname[1], 24, "X-Beta");
        snprintf(r->pid[0], 4, "a");
        snprintf(r->pid[1], 4, "b");
        r->preds[0] = (struct arc_rt_pred){ ARC_RT_HEADER, ARC_RT_EQUALS, r->pname[0], r->pval[0], r->pid[0] };
        r->preds[1] = (struct arc_rt_pred){ ARC_RT_HEADER, ARC_RT_EXISTS, r->pname[1], NULL, r->pid[1] };
        snprintf(r->expr, sizeof(r->expr), "a and not b");
        np = 2;
    }
    return np;
}

/* Adds fields that satisfy route i's first matcher (ok) or fail it. */
static void add_pred_fields(struct rreq *q, const struct rspec *r, size_t i, bool ok, size_t *nh)
{
    const struct arc_rt_pred *p = &r->preds[0];
    switch (p->source) {
    case ARC_RT_HEADER:
        if (p->op == ARC_RT_REGEX)
            snprintf(q->hl[(*nh)++], 64, "%s: %s%zu-%u", p->name, ok ? "c" : "x", i, rnd(1000));
        else
            snprintf(q->hl[(*nh)++], 64, "%s: %s", p->name, ok ? p->value : "nope");
        break;
    case ARC_RT_COOKIE:
        snprintf(q->hl[(*nh)++], 64, "Cookie: a=1; %s=1", ok ? p->name : "other");
        break;
    case ARC_RT_QUERY:
        snprintf(q->query, sizeof(q->query), "x=1&%s=%s", p->name, ok ? p->value : "nope");
        break;
    }
}

struct table {
    struct rspec *rs;           /* [n] routes, then their siblings */
    struct arc_rt_spec *specs;
    size_t n, n_specs;
    size_t *sibling;            /* [n]: spec index of route i's sibling, 0 = none */
};

static bool has_sibling(size_t i, bool with_preds)
{
    return with_preds && i % 8 == 2;
}

static void route_path(struct rspec *r, size_t i)
{
    switch (kind_of(i)) {
    case 0:
        snprintf(r->path, sizeof(r->path), "/svc%zu/v1/items", i);
        break;
    case 1:
        snprintf(r->path, sizeof(r->path), "/api%zu/users/{id}/orders/{oid}", i);
        break;
    case 2:
        if (i % 20 < 10) {
            snprintf(r->host, sizeof(r->host), "h%zu.example.com", i);
            snprintf(r->path, sizeof(r->path), "/static/{*path}");
        } else {
            snprintf(r->host, sizeof(r->host), "*.zone%zu.example.com", i);
            snprintf(r->path, sizeof(r->path), "/{*rest}");
        }
        break;
    default:
        snprintf(r->path, sizeof(r->path), "/files%zu/*/raw/{*rest}", i);
    }
}

static void spec_of(struct table *t, size_t k, struct rspec *r, size_t np)
{
    t->specs[k] = (struct arc_rt_spec){ .name = r->name, .path = r->path, .data = r,
                                        .preds = np ? r->preds : NULL, .n_preds = np,
                                        .expr = r->expr[0] ? r->expr : NULL };
    if (r->host[0]) {
        r->hosts[0] = r->host;
        t->specs[k].hosts = r->hosts;
        t->specs[k].n_hosts = 1;
    }
}

static void make_routes(struct table *t, size_t n, bool with_preds)
{
    t->rs = calloc(n * 2, sizeof(*t->rs));
    t->specs = calloc(n * 2, sizeof(*t->specs));
    t->sibling = calloc(n, sizeof(*t->sibling));
    t->n = n;
    size_t k = n;
    for (size_t i = 0; i < n; i++) {
        struct rspec *r = &t->rs[i];
        snprintf(r->name, sizeof(r->name), "r%zu", i);
        route_path(r, i);
        spec_of(t, i, r, preds_of(r, i, with_preds));
        if (has_sibling(i, with_preds)) {
            struct rspec *s = &t->rs[k];
            snprintf(s->name, sizeof(s->name), "s%zu", i);
            route_path(s, i);
            snprintf(s->pname[0], 24, "X-Sib");
            s->preds[0] = (struct arc_rt_pred){ ARC_RT_HEADER, ARC_RT_EXISTS, s->pname[0], NULL, NULL };
            spec_of(t, k, s, 1);
            t->sibling[i] = k++;
        }
    }
    t->n_specs = k;
}

static void make_requests(struct rreq *qs, const struct table *t, bool with_preds)
{
    for (size_t j = 0; j < NREQ; j++) {
        struct rreq *q = &qs[j];
        memset(q, 0, sizeof(*q));
        size_t i = rnd((uint32_t)t->n);
        const struct rspec *r = &t->rs[i];
        size_t nh = 0;
        snprintf(q->host, sizeof(q->host), "gw.example.net");
        switch (kind_of(i)) {
        case 0:
            snprintf(q->path, sizeof(q->path), "/svc%zu/v1/items", i);
            break;
        case 1:
            snprintf(q->path, sizeof(q->path), "/api%zu/users/%u/orders/%u", i, rnd(100000), rnd(1000));
            break;
        case 2:
            if (i % 20 < 10) {
                snprintf(q->host, sizeof(q->host), "H%zu.example.com:443", i);
                snprintf(q->path, sizeof(q->path), "/static/css/site.css");
            } else {
                snprintf(q->host, sizeof(q->host), "a.b.zone%zu.example.com", i);
                snprintf(q->path, sizeof(q->path), "/any/thing");
            }
            break;
        default:
            snprintf(q->path, sizeof(q->path), "/files%zu/x/raw/a/b", i);
        }
        q->want = r;
        snprintf(q->hl[nh++], 64, "User-Agent: bench/1.0");
        if (rnd(10) == 0) {
            snprintf(q->path, sizeof(q->path), "/nothing/%u", rnd(1000));
            snprintf(q->host, sizeof(q->host), "gw.example.net");
            q->want = NULL;
        } else if (t->specs[i].n_preds) {
            bool ok = rnd(4) != 0;
            add_pred_fields(q, r, i, ok, &nh);
            if (!ok)
                q->want = NULL;
        } else if (t->sibling[i] && rnd(2)) {
            snprintf(q->hl[nh++], 64, "X-Sib: 1");
            q->want = &t->rs[t->sibling[i]];
        }
        (void)with_preds;
        for (size_t h = 0; h < nh; h++) {
            const char *c = strchr(q->hl[h], ':');
            q->f[h] = (struct arc_rt_field){ { q->hl[h], (size_t)(c - q->hl[h]) },
                                             { c + 2, strlen(c + 2) } };
        }
        q->in = (struct arc_rt_input){
            .method_bit = ARC_M_GET, .host = { q->host, strlen(q->host) },
            .path = { q->path, strlen(q->path) }, .query = { q->query, strlen(q->query) },
            .fields = q->f, .n_fields = nh,
        };
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define RUNS 5

/* Median ns per match over RUNS runs of `iters` matches. */
static double bench_match(const struct arc_rt_table *rt, const struct rreq *qs, long iters,
                          long *wrong)
{
    struct arc_rt_captures caps;
    uint32_t allowed;
    *wrong = 0;
    for (size_t j = 0; j < NREQ; j++)
        if (arc_rt_match(rt, &qs[j].in, &caps, &allowed) != qs[j].want)
            (*wrong)++;
    double v[RUNS];
    uintptr_t sink = 0;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long k = 0; k < iters; k++)
            sink += (uintptr_t)arc_rt_match(rt, &qs[k & (NREQ - 1)].in, &caps, &allowed);
        v[r] = (now_ns() - t0) / (double)iters;
    }
    if (sink == 1)
        puts("");
    qsort(v, RUNS, sizeof(v[0]), cmp_double);
    return v[RUNS / 2];
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    static const size_t sizes[] = { 10, 1000, 10000 };
    printf("| routes | matchers | specs | CPU ns/match (median of %d x %ld) | wrong |\n", RUNS, iters);
    printf("|--:|---|--:|--:|--:|\n");
    struct rreq *qs = calloc(NREQ, sizeof(*qs));
    int rc = 0;
    for (size_t si = 0; si < 3; si++) {
        for (int wp = 0; wp < 2; wp++) {
            struct table t;
            make_routes(&t, sizes[si], wp);
            struct arc_rt_table *rt = NULL;
            char err[512];
            size_t ei;
            if (arc_rt_build(t.specs, t.n_specs, &rt, err, sizeof(err), &ei) < 0) {
                fprintf(stderr, "build: %s\n", err);
                return 1;
            }
            make_requests(qs, &t, wp);
            long wrong;
            double ns = bench_match(rt, qs, iters, &wrong);
            printf("| %zu | %s | %zu | %.1f | %ld |\n", sizes[si], wp ? "yes" : "no", t.n_specs,
                   ns, wrong);
            rc |= wrong != 0;
            arc_rt_free(rt);
            free(t.rs);
            free(t.specs);
            free(t.sibling);
        }
    }

    /* build time at 10,000 routes */
    printf("\n| build | specs | CPU ms (min) | CPU ms (median of %d) |\n|---|--:|--:|--:|\n", RUNS);
    for (int wp = 0; wp < 2; wp++) {
        struct table t;
        make_routes(&t, 10000, wp);
        double v[RUNS];
        for (int r = 0; r < RUNS; r++) {
            struct arc_rt_table *rt = NULL;
            char err[512];
            size_t ei;
            double t0 = now_ns();
            if (arc_rt_build(t.specs, t.n_specs, &rt, err, sizeof(err), &ei) < 0) {
                fprintf(stderr, "build: %s\n", err);
                return 1;
            }
            v[r] = (now_ns() - t0) / 1e6;
            arc_rt_free(rt);
        }
        qsort(v, RUNS, sizeof(v[0]), cmp_double);
        printf("| 10,000 routes, %s matchers | %zu | %.1f | %.1f |\n", wp ? "with" : "no",
               t.n_specs, v[0], v[RUNS / 2]);
        rc |= v[RUNS / 2] >= 1000.0;
        free(t.rs);
        free(t.specs);
        free(t.sibling);
    }
    free(qs);
    return rc;
}
