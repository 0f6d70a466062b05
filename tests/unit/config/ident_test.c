/* Stable identities: a name keeps its id whatever the order it is seen in,
 * kinds are separate, ids are dense, and every endpoint id has its own
 * node-wide counter; snapshots carry the ids of their routes, upstreams and
 * endpoints, unchanged when a later snapshot lists them in another order. */
#include "test.h"
#include "config/config.h"
#include "config/ident.h"
#include "config/snapshot.h"

#include <string.h>

static void test_ids_are_stable_dense_and_per_kind(void)
{
    uint32_t base = arc_ident_count(ARC_IDENT_ROUTE);
    uint32_t a = arc_ident_of(ARC_IDENT_ROUTE, "ident-a", 7);
    uint32_t b = arc_ident_of(ARC_IDENT_ROUTE, "ident-b", 7);
    CHECK_INT(a, base);
    CHECK_INT(b, base + 1);
    CHECK_INT(arc_ident_of(ARC_IDENT_ROUTE, "ident-a", 7), a);
    CHECK_INT(arc_ident_of(ARC_IDENT_ROUTE, "ident-axx", 7), a);     /* by length given */
    CHECK_INT(arc_ident_count(ARC_IDENT_ROUTE), base + 2);
    uint32_t ub = arc_ident_count(ARC_IDENT_UPSTREAM);
    CHECK_INT(arc_ident_of(ARC_IDENT_UPSTREAM, "ident-a", 7), ub);    /* another kind */
    /* many names: the map grows, earlier ids stay */
    char name[32];
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(name, sizeof(name), "bulk-%d", i);
        CHECK_INT(arc_ident_of(ARC_IDENT_ROUTE, name, (size_t)n), base + 2 + (uint32_t)i);
    }
    CHECK_INT(arc_ident_of(ARC_IDENT_ROUTE, "bulk-17", 7), base + 2 + 17);
    CHECK_INT(arc_ident_of(ARC_IDENT_ROUTE, "ident-b", 7), b);
}

static void test_endpoint_counters_are_distinct(void)
{
    uint32_t e1 = arc_ident_of(ARC_IDENT_ENDPOINT, "u|10.0.0.1:80", 13);
    uint32_t e2 = arc_ident_of(ARC_IDENT_ENDPOINT, "u|10.0.0.2:80", 13);
    _Atomic uint32_t *c1 = arc_ident_endpoint_open(e1), *c2 = arc_ident_endpoint_open(e2);
    CHECK(c1 != c2);
    atomic_fetch_add(c1, 3);
    CHECK_INT(atomic_load(arc_ident_endpoint_open(e1)), 3);
    CHECK_INT(atomic_load(c2), 0);
    /* thousands of endpoints: counters in every chunk exist */
    char name[32];
    for (int i = 0; i < 2500; i++) {
        int n = snprintf(name, sizeof(name), "v|10.1.%d.%d:80", i / 250, i % 250);
        uint32_t id = arc_ident_of(ARC_IDENT_ENDPOINT, name, (size_t)n);
        CHECK(id != ARC_IDENT_NONE);
        CHECK_INT(atomic_load(arc_ident_endpoint_open(id)), 0);
    }
}

static struct arc_snapshot *build(const char *yaml)
{
    struct arc_config_errors e = { 0 };
    struct arc_config *cfg = NULL;
    int rc = arc_config_load_string(yaml, strlen(yaml), "t.yaml", "yaml", &cfg, &e);
    if (rc != 0)
        arc_config_errors_print(&e, stderr);
    CHECK_INT(rc, 0);
    struct arc_snapshot *s = NULL;
    CHECK_INT(arc_snapshot_build(cfg, &s, &e), 0);
    arc_config_errors_dispose(&e);
    return s;
}

#define LISTENER "listeners:\n  - {name: l, kind: http, bind: \"127.0.0.1:0\"}\n"
#define UP(n, a) "  - name: " n "\n    discovery: {type: static, endpoints: [{address: \"" a "\"}]}\n"
#define RT(n, p, u) "  - name: " n "\n    match: {path: \"" p "\"}\n    action: {upstream: " u "}\n"

static void test_snapshots_keep_ids_across_reorders(void)
{
    struct arc_snapshot *s1 = build(LISTENER "upstreams:\n" UP("one", "127.0.0.1:81") UP("two", "127.0.0.1:82")
                                    "routes:\n" RT("r1", "/a", "one") RT("r2", "/b", "two"));
    struct arc_snapshot *s2 = build(LISTENER "upstreams:\n" UP("two", "127.0.0.1:82") UP("three", "127.0.0.1:83")
                                    UP("one", "127.0.0.1:81")
                                    "routes:\n" RT("r3", "/c", "three") RT("r2", "/b", "two")
                                    RT("r1", "/a", "one"));
    if (!s1 || !s2)
        return;
    CHECK_INT(s2->ups[2].id, s1->ups[0].id);                /* "one" */
    CHECK_INT(s2->ups[0].id, s1->ups[1].id);                /* "two" */
    CHECK(s2->ups[1].id >= s1->n_up_ids);                   /* "three" is new */
    CHECK_INT(s2->ups[2].eps[0].id, s1->ups[0].eps[0].id);
    CHECK(s2->ups[2].eps[0].open_conns == s1->ups[0].eps[0].open_conns);  /* one counter */
    CHECK_INT(s2->routes[2].id, s1->routes[0].id);          /* "r1" */
    CHECK_INT(s2->route_ids[1], s1->route_ids[1]);          /* "r2" */
    CHECK(s2->n_route_ids > s2->routes[0].id && s2->n_up_ids > s2->ups[1].id);
    CHECK(s2->n_route_ids >= s1->n_route_ids && s2->n_ep_ids > s1->ups[1].eps[0].id);
    arc_snapshot_unref(s1);
    arc_snapshot_unref(s2);
}

int main(void)
{
    RUN(test_ids_are_stable_dense_and_per_kind);
    RUN(test_endpoint_counters_are_distinct);
    RUN(test_snapshots_keep_ids_across_reorders);
    return TEST_REPORT();
}
