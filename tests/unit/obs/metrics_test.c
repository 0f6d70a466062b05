/* Metrics shards indexed by stable identity: tables grow without losing
 * counts, a reader holding an earlier array stays valid, rows a shard does
 * not have yet read as 0, and the exposition labels rows by the ids the
 * current config names (whatever their position). */
#include "test.h"
#include "obs/metrics.h"

#include <string.h>

static void test_fit_grows_and_keeps_counts(void)
{
    struct arc_metrics_shard m;
    CHECK_INT(arc_metrics_shard_init(&m), 0);
    CHECK_INT(arc_metrics_shard_fit(&m, 2, 1), 0);
    arc_m_request(&m, 1, 204);
    arc_m_request(&m, ARC_M_NO_ROUTE, 404);
    arc_m_add(arc_m_up(&m, 0, ARC_MU_REQUESTS), 7);
    arc_counter *before = atomic_load(&m.routes.v);
    CHECK_INT(arc_metrics_shard_fit(&m, 40, 9), 0);
    CHECK(atomic_load(&m.routes.v) != before);
    CHECK_INT(arc_m_get(arc_m_cell(&m.routes, 1, 1)), 1);
    CHECK_INT(arc_m_get(&before[1 * 5 + 1]), 1);           /* the old array is still there */
    CHECK_INT(arc_m_get(arc_m_up(&m, 0, ARC_MU_REQUESTS)), 7);
    CHECK_INT(arc_m_get(&m.no_route[3]), 1);
    arc_m_request(&m, 39, 503);
    CHECK_INT(arc_m_get(arc_m_cell(&m.routes, 39, 4)), 1);
    CHECK_INT(arc_metrics_shard_fit(&m, 3, 1), 0);         /* never shrinks */
    CHECK_INT(atomic_load(&m.routes.n), 40);
    arc_metrics_shard_dispose(&m);
}

static void test_render_by_id(void)
{
    struct arc_metrics_shard a, b;
    arc_metrics_shard_init(&a);
    arc_metrics_shard_init(&b);
    arc_metrics_shard_fit(&a, 6, 3);
    arc_metrics_shard_fit(&b, 2, 1);                        /* b has not seen ids 2.. yet */
    arc_m_request(&a, 5, 200);
    arc_m_request(&a, 5, 201);
    arc_m_request(&b, 1, 500);
    arc_m_add(arc_m_up(&a, 2, ARC_MU_REQUESTS), 4);
    uint32_t rids[] = { 5, 1 };
    const char *rnames[] = { "five", "one" };
    uint32_t uids[] = { 2 };
    const char *unames[] = { "up2" };
    struct arc_m_names nm = { rids, rnames, 2, uids, unames, 1 };
    struct arc_metrics_shard *sh[] = { &a, &b };
    struct arc_sbuf o = { 0 };
    arc_metrics_render(&o, sh, 2, &nm);
    arc_sbuf_append(&o, "", 1);
    CHECK(strstr(o.p, "arc_requests_total{route=\"five\",class=\"2xx\"} 2\n") != NULL);
    CHECK(strstr(o.p, "arc_requests_total{route=\"one\",class=\"5xx\"} 1\n") != NULL);
    CHECK(strstr(o.p, "arc_requests_total{route=\"one\",class=\"2xx\"} 0\n") != NULL);
    CHECK(strstr(o.p, "arc_upstream_requests_total{upstream=\"up2\"} 4\n") != NULL);
    arc_sbuf_dispose(&o);
    arc_metrics_shard_dispose(&a);
    arc_metrics_shard_dispose(&b);
}

int main(void)
{
    RUN(test_fit_grows_and_keeps_counts);
    RUN(test_render_by_id);
    return TEST_REPORT();
}
