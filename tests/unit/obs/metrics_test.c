/* Metrics shards indexed by stable identity: tables grow without losing
 * counts, a reader holding an earlier array stays valid, rows a shard does
 * not have yet read as 0, the exposition labels rows by the ids the current
 * config names (whatever their position), status series are bounded per
 * route with an overflow bucket, histograms are cumulative with +Inf equal
 * to _count, quantiles interpolate like histogram_quantile, and shards and
 * their rows sit on cache lines of their own. */
#include "test.h"
#include "obs/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(_Alignof(struct arc_metrics_shard) >= 64, "shards are cache-line aligned");

static struct arc_m_exchange ex(uint32_t route, int status)
{
    return (struct arc_m_exchange){
        .route_id = route, .up_id = ARC_M_NONE, .ep_id = ARC_M_NONE, .status = status,
        .method = 0, .proto = ARC_MP_H1, .dur_ns = 1000000, .connect_ns = ARC_M_NOT_TIMED,
        .ttfb_ns = ARC_M_NOT_TIMED, .upstream_ns = ARC_M_NOT_TIMED,
    };
}

static void count(struct arc_metrics_shard *m, uint32_t route, int status)
{
    struct arc_m_exchange x = ex(route, status);
    arc_m_exchange(m, &x);
}

static char *render(struct arc_metrics_shard **sh, size_t n, const struct arc_m_names *nm,
                    struct arc_sbuf *o)
{
    memset(o, 0, sizeof(*o));
    arc_metrics_render(o, sh, n, nm);
    arc_sbuf_append(o, "", 1);
    return o->p;
}

static void test_fit_grows_and_keeps_counts(void)
{
    struct arc_metrics_shard m;
    CHECK_INT(arc_metrics_shard_init(&m), 0);
    CHECK_INT(arc_metrics_shard_fit(&m, 2, 1, 1, 1), 0);
    count(&m, 1, 204);
    count(&m, ARC_M_NO_ROUTE, 404);
    arc_m_add(arc_m_up(&m, 0, ARC_MU_REQUESTS), 7);
    arc_counter *before = atomic_load(&m.routes.v);
    CHECK_INT(arc_metrics_shard_fit(&m, 40, 9, 3, 1), 0);
    CHECK(atomic_load(&m.routes.v) != before);
    struct arc_metrics_shard *sh[] = { &m };
    uint64_t cls[5];
    arc_m_route_classes(sh, 1, 1, cls);
    CHECK_INT(cls[1], 1);
    CHECK_INT(arc_m_get(&before[2 * m.routes.width]), 1);  /* the old array is still there */
    CHECK_INT(arc_m_get(arc_m_up(&m, 0, ARC_MU_REQUESTS)), 7);
    arc_m_route_classes(sh, 1, ARC_M_NO_ROUTE, cls);
    CHECK_INT(cls[3], 1);
    count(&m, 39, 503);
    arc_m_route_classes(sh, 1, 39, cls);
    CHECK_INT(cls[4], 1);
    CHECK_INT(arc_metrics_shard_fit(&m, 3, 1, 1, 1), 0);   /* never shrinks */
    CHECK_INT(atomic_load(&m.routes.n), 41);
    CHECK((uintptr_t)atomic_load(&m.routes.v) % 64 == 0);
    CHECK((uintptr_t)atomic_load(&m.ups.v) % 64 == 0);
    arc_metrics_shard_dispose(&m);
}

static void test_render_by_id(void)
{
    struct arc_metrics_shard a, b;
    arc_metrics_shard_init(&a);
    arc_metrics_shard_init(&b);
    arc_metrics_shard_fit(&a, 106, 3, 4, 1);
    arc_metrics_shard_fit(&b, 102, 1, 1, 1);               /* b has not seen ids 102.. yet */
    count(&a, 105, 200);
    count(&a, 105, 201);
    count(&b, 101, 500);
    struct arc_m_exchange x = ex(105, 200);
    x.method = arc_m_method(1u << 2);                       /* POST */
    x.proto = ARC_MP_H2;
    arc_m_exchange(&a, &x);
    arc_m_add(arc_m_ep(&a, 3, ARC_ME_REQUESTS), 4);
    arc_m_add(arc_m_li(&a, 0, ARC_ML_ACCEPTED), 2);
    arc_m_add(arc_m_li(&b, 0, ARC_ML_ACCEPTED), 1);
    arc_m_add(arc_m_li(&b, 0, ARC_ML_CLOSED), 1);
    uint32_t rids[] = { 105, 101 };
    const char *rnames[] = { "five", "one" };
    uint32_t uids[] = { 2 };
    const char *unames[] = { "up2" };
    uint32_t eids[] = { 3 }, eup[] = { 0 };
    const char *enames[] = { "127.0.0.1:80" };
    const char *lnames[] = { "web" };
    struct arc_m_names nm = { rids, rnames, 2, uids, unames, 1, eids, eup, enames, 1, lnames, 1 };
    struct arc_metrics_shard *sh[] = { &a, &b };
    struct arc_sbuf o;
    const char *t = render(sh, 2, &nm, &o);
    CHECK(strstr(t, "arc_requests_total{route=\"five\",method=\"GET\",code=\"200\",class=\"2xx\","
                    "protocol=\"h1\"} 1\n") != NULL);
    CHECK(strstr(t, "arc_requests_total{route=\"five\",method=\"POST\",code=\"200\",class=\"2xx\","
                    "protocol=\"h2\"} 1\n") != NULL);
    CHECK(strstr(t, "arc_requests_total{route=\"one\",method=\"GET\",code=\"500\",class=\"5xx\","
                    "protocol=\"h1\"} 1\n") != NULL);
    CHECK(strstr(t, "arc_upstream_requests_total{upstream=\"up2\",endpoint=\"127.0.0.1:80\"} 4\n")
          != NULL);
    CHECK(strstr(t, "arc_connections_accepted_total{listener=\"web\"} 3\n") != NULL);
    CHECK(strstr(t, "arc_connections_active{listener=\"web\"} 2\n") != NULL);
    arc_sbuf_dispose(&o);
    arc_metrics_shard_dispose(&a);
    arc_metrics_shard_dispose(&b);
}

/* More distinct (code, method, protocol) series than a route may hold: the
 * later ones are counted under code="other" with their class, and nothing
 * is lost. */
static void test_series_bound(void)
{
    struct arc_metrics_shard m;
    arc_metrics_shard_init(&m);
    arc_metrics_shard_fit(&m, 201, 1, 1, 1);
    uint32_t cap = arc_metrics_conf()->status_series;
    for (uint32_t i = 0; i < cap + 10; i++)
        count(&m, 200, 200 + (int)i);                      /* 200, 201, ... */
    count(&m, 200, 200);
    uint32_t rids[] = { 200 };
    const char *rnames[] = { "r" };
    const char *lnames[] = { "l" };
    struct arc_m_names nm = { rids, rnames, 1, NULL, NULL, 0, NULL, NULL, NULL, 0, lnames, 1 };
    struct arc_metrics_shard *sh[] = { &m };
    struct arc_sbuf o;
    const char *t = render(sh, 1, &nm, &o);
    size_t series = 0;
    uint64_t sum = 0;
    for (const char *p = t; (p = strstr(p, "\narc_requests_total{")); p++) {
        series++;
        sum += strtoull(strchr(p, '}') + 2, NULL, 10);
    }
    /* cap exact codes + one "other" series per class past the bound */
    CHECK_INT(series, cap + ((200 + cap) / 100 == (209 + cap) / 100 ? 1 : 2));
    CHECK_INT(sum, cap + 11);
    CHECK(strstr(t, "code=\"200\",class=\"2xx\",protocol=\"h1\"} 2\n") != NULL);
    /* 200 + cap .. 209 + cap are all beyond: 2xx while below 300 */
    char want[128];
    snprintf(want, sizeof(want), "code=\"other\",class=\"%cxx\",protocol=\"h1\"} 10\n",
             '0' + (char)((200 + cap) / 100));
    CHECK(cap + 209 < 300 ? strstr(t, want) != NULL : true);
    arc_sbuf_dispose(&o);
    arc_metrics_shard_dispose(&m);
}

static void test_histograms(void)
{
    struct arc_metrics_shard a, b;
    arc_metrics_shard_init(&a);
    arc_metrics_shard_init(&b);
    arc_metrics_shard_fit(&a, 301, 5, 5, 1);
    arc_metrics_shard_fit(&b, 301, 5, 5, 1);
    const struct arc_m_conf *c = arc_metrics_conf();
    /* 100 exchanges at 0.5 ms .. 50 ms, spread over two shards */
    for (int i = 1; i <= 100; i++) {
        struct arc_m_exchange x = ex(300, 200);
        x.dur_ns = (uint64_t)i * 500000;
        x.up_id = 4;
        x.ep_id = 4;
        x.ttfb_ns = x.dur_ns / 2;
        x.resp_bytes = (uint64_t)i * 100;
        arc_m_exchange(i % 2 ? &a : &b, &x);
    }
    struct arc_metrics_shard *sh[] = { &a, &b };
    struct arc_m_hsum h;
    arc_m_hist_read(sh, 2, false, 300, ARC_MH_DURATION, &h);
    CHECK_INT(h.count, 100);
    CHECK_INT(h.sum, 500000ull * 5050);
    CHECK_INT(h.n_bounds, c->n_dur);
    double p50 = arc_m_quantile(&h, 0.5) / 1e6, p99 = arc_m_quantile(&h, 0.99) / 1e6;
    /* true p50 = 25 ms, p99 = 49.5 ms; the buckets (25, 50] hold them */
    CHECK(p50 > 10 && p50 <= 25.0001);
    CHECK(p99 > 25 && p99 <= 50.0001);
    arc_m_hist_read(sh, 2, true, 4, ARC_MH_TTFB, &h);
    CHECK_INT(h.count, 100);
    arc_m_hist_read(sh, 2, false, 300, ARC_MH_CONNECT, &h);
    CHECK_INT(h.count, 0);                                 /* not timed: not observed */
    CHECK(isnan(arc_m_quantile(&h, 0.5)));

    uint32_t rids[] = { 300 }, uids[] = { 4 };
    const char *rnames[] = { "h" }, *unames[] = { "u" }, *lnames[] = { "l" };
    struct arc_m_names nm = { rids, rnames, 1, uids, unames, 1, NULL, NULL, NULL, 0, lnames, 1 };
    struct arc_sbuf o;
    const char *t = render(sh, 2, &nm, &o);
    CHECK(strstr(t, "# TYPE arc_route_request_duration_seconds histogram\n") != NULL);
    CHECK(strstr(t, "arc_route_request_duration_seconds_bucket{route=\"h\",le=\"+Inf\"} 100\n"));
    CHECK(strstr(t, "arc_route_request_duration_seconds_count{route=\"h\"} 100\n"));
    CHECK(strstr(t, "arc_route_request_duration_seconds_bucket{route=\"h\",le=\"0.025\"} 50\n"));
    CHECK(strstr(t, "arc_route_request_duration_seconds_sum{route=\"h\"} 2.525000000\n"));
    CHECK(strstr(t, "arc_upstream_response_body_bytes_count{upstream=\"u\"} 100\n"));
    arc_sbuf_dispose(&o);
    arc_metrics_shard_dispose(&a);
    arc_metrics_shard_dispose(&b);
}

static void test_methods(void)
{
    CHECK_INT(arc_m_method(1u << 0), 0);
    CHECK_INT(arc_m_method(1u << 8), 8);
    CHECK_INT(arc_m_method(0), ARC_MM_OTHER);
    CHECK_INT(arc_m_method(3), ARC_MM_OTHER);
    CHECK_INT(arc_m_method(1u << 9), ARC_MM_OTHER);
}

int main(void)
{
    RUN(test_fit_grows_and_keeps_counts);
    RUN(test_render_by_id);
    RUN(test_series_bound);
    RUN(test_histograms);
    RUN(test_methods);
    return TEST_REPORT();
}
