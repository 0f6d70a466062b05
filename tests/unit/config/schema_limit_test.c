/* Proves routes[].rate_limit is read exactly (defaults, every key) and that
 * its mistakes — a missing qps, values out of range, keys that do not apply
 * to the chosen algorithm or key, a missing header name, scope: global (not
 * supported yet) — are reported at their exact positions. */
#include "config_test.h"
#include "limit/limit.h"

/* Lines 1-4; routes start at line 5. */
#define BASE \
    "listeners:\n" \
    "  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n" \
    "routes:\n" \
    "  - {name: x, match: {path: /x}, action: {respond: {status: 200}}}\n"

static void test_defaults_and_values(void)
{
    struct arc_config *c = must_load("yaml", BASE
        "  - name: a\n"
        "    match: {path: /a}\n"
        "    action: {respond: {status: 200}}\n"
        "    rate_limit: {qps: 2.5}\n"
        "  - name: b\n"
        "    match: {path: /b}\n"
        "    action: {respond: {status: 200}}\n"
        "    rate_limit:\n"
        "      qps: 100\n"
        "      burst: 20\n"
        "      algorithm: leaky_bucket\n"
        "      max_delay: 250ms\n"
        "      max_keys: 5000\n"
        "      status: 503\n"
        "      headers: rejected\n"
        "      legacy_headers: true\n"
        "      scope: local\n"
        "      key: {by: client_ip, ipv6_prefix: 48}\n"
        "  - name: c\n"
        "    match: {path: /c}\n"
        "    action: {respond: {status: 200}}\n"
        "    rate_limit: {qps: 10, algorithm: sliding_window, window: 60s, key: {by: header, name: X-Api-Key}}\n");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(c->routes[0].rate_limit == NULL);
    const struct arc_rate_limit_conf *a = c->routes[1].rate_limit;
    CHECK(a != NULL);
    CHECK(a->qps == 2.5);
    CHECK_INT(a->burst, 3);                     /* ceil(qps) */
    CHECK_INT(a->algorithm, ARC_RL_GCRA);
    CHECK_INT(a->key_by, ARC_RL_BY_CLIENT_IP);
    CHECK_INT(a->ipv6_prefix, 64);
    CHECK_INT(a->status, 429);
    CHECK_INT(a->max_keys, 100000);
    CHECK_INT(a->headers, ARC_RL_HEADERS_ALWAYS);
    CHECK(!a->legacy_headers);
    const struct arc_rate_limit_conf *b = c->routes[2].rate_limit;
    CHECK_INT(b->burst, 20);
    CHECK_INT(b->algorithm, ARC_RL_LEAKY_BUCKET);
    CHECK_INT(b->max_delay, 250);
    CHECK_INT(b->max_keys, 5000);
    CHECK_INT(b->status, 503);
    CHECK_INT(b->headers, ARC_RL_HEADERS_REJECTED);
    CHECK(b->legacy_headers);
    CHECK_INT(b->ipv6_prefix, 48);
    const struct arc_rate_limit_conf *cc = c->routes[3].rate_limit;
    CHECK_INT(cc->algorithm, ARC_RL_SLIDING_WINDOW);
    CHECK_INT(cc->window, 60000);
    CHECK_INT(cc->key_by, ARC_RL_BY_HEADER);
    CHECK_STR(cc->key_name, "X-Api-Key");
    arc_config_free(c);
}

static void test_errors(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", BASE
        "  - name: a\n"                                                        /* 5 */
        "    match: {path: /a}\n"                                              /* 6 */
        "    action: {respond: {status: 200}}\n"                               /* 7 */
        "    rate_limit: {burst: 0, status: 200, scope: global}\n"             /* 8 */
        "  - name: b\n"                                                        /* 9 */
        "    match: {path: /b}\n"                                              /* 10 */
        "    action: {respond: {status: 200}}\n"                               /* 11 */
        "    rate_limit:\n"                                                    /* 12 */
        "      qps: 0\n"                                                       /* 13 */
        "      window: 10s\n"                                                  /* 14 */
        "      max_delay: 1s\n"                                                /* 15 */
        "      key: {by: header, ipv6_prefix: 64}\n"                           /* 16 */
        "  - name: c\n"                                                        /* 17 */
        "    match: {path: /c}\n"                                              /* 18 */
        "    action: {respond: {status: 200}}\n"                               /* 19 */
        "    rate_limit: {qps: 10, algorithm: fixed_window, burst: 5, key: {by: route, name: x}}\n" /* 20 */
        "  - name: d\n"                                                        /* 21 */
        "    match: {path: /d}\n"                                              /* 22 */
        "    action: {respond: {status: 200}}\n"                               /* 23 */
        "    rate_limit: {qps: 2000000, algorithm: sliding_windw, max_keys: 0}\n" /* 24 */
        "  - name: e\n"                                                        /* 25 */
        "    match: {path: /e}\n"                                              /* 26 */
        "    action: {respond: {status: 200}}\n"                               /* 27 */
        "    rate_limit: {qps: 100000, algorithm: fixed_window, window: 60s}\n", &e); /* 28 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 8, 17, "missing required key 'qps' in routes[1].rate_limit");
    CHECK_ERR(&e, 8, 25, "routes[1].rate_limit.burst");
    CHECK_ERR(&e, 8, 36, "routes[1].rate_limit.status");
    CHECK_ERR(&e, 8, 48, "routes[1].rate_limit.scope: global needs a rate_limits.global section");
    CHECK_ERR(&e, 13, 12, "routes[2].rate_limit.qps: 0 is out of range");
    CHECK_ERR(&e, 14, 7, "routes[2].rate_limit.window: only used by fixed_window and sliding_window");
    CHECK_ERR(&e, 15, 7, "routes[2].rate_limit.max_delay: only used by leaky_bucket");
    CHECK_ERR(&e, 16, 12, "missing required key 'name' in routes[2].rate_limit.key (by: header)");
    CHECK_ERR(&e, 16, 25, "routes[2].rate_limit.key.ipv6_prefix: only used with by: client_ip");
    CHECK_ERR(&e, 20, 52, "routes[3].rate_limit.burst: not used by fixed_window");
    CHECK_ERR(&e, 20, 79, "routes[3].rate_limit.key.name: only used with by: header or by: cookie");
    CHECK_ERR(&e, 24, 23, "routes[4].rate_limit.qps: 2e+06 is out of range");
    CHECK_ERR(&e, 24, 43, "did you mean 'sliding_window'?");
    CHECK_ERR(&e, 24, 68, "routes[4].rate_limit.max_keys");
    CHECK_ERR(&e, 28, 64, "routes[5].rate_limit: qps x window = 6000000 requests per window");
    CHECK_INT(e.n, 15);
    arc_config_errors_dispose(&e);
}

static void test_heavy_hitters(void)
{
    struct arc_config *c = must_load("yaml", BASE
        "rate_limits:\n"
        "  heavy_hitters: {enabled: true, width: 5000, depth: 6, ipv6_prefix: 56, threshold_qps: 2.5}\n");
    CHECK(c != NULL);
    if (c) {
        CHECK(c->heavy_hitters.enabled);
        CHECK_INT(c->heavy_hitters.width, 5000);
        CHECK_INT(c->heavy_hitters.depth, 6);
        CHECK_INT(c->heavy_hitters.ipv6_prefix, 56);
        CHECK(c->heavy_hitters.threshold_qps == 2.5);
    }
    arc_config_free(c);
    c = must_load("yaml", BASE "rate_limits: {heavy_hitters: {enabled: true}}\n");
    if (c) {
        CHECK_INT(c->heavy_hitters.width, 2719);
        CHECK_INT(c->heavy_hitters.depth, 4);
        CHECK_INT(c->heavy_hitters.ipv6_prefix, 64);
        CHECK(c->heavy_hitters.threshold_qps == 1000);
    }
    arc_config_free(c);
    struct arc_config_errors e;
    c = load_str("yaml", BASE
        "rate_limits:\n"                                                          /* 5 */
        "  global: {backend: redis}\n"                                            /* 6 */
        "  heavy_hitters: {depth: 17, threshold_qps: 0, widht: 10}\n", &e);       /* 7 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 6, 11, "missing required key 'redis' in rate_limits.global");
    CHECK_ERR(&e, 7, 26, "rate_limits.heavy_hitters.depth");
    CHECK_ERR(&e, 7, 45, "rate_limits.heavy_hitters.threshold_qps: 0 is out of range");
    CHECK_ERR(&e, 7, 48, "unknown key 'widht'");
    CHECK_INT(e.n, 4);
    arc_config_errors_dispose(&e);
}

/* rate_limits.global and scope: global; heavy_hitters.action */
static void test_global(void)
{
    struct arc_config *c = must_load("yaml",
        "listeners:\n"
        "  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"
        "rate_limits:\n"
        "  global: {redis: {address: \"127.0.0.1:6379\"}}\n"
        "  heavy_hitters: {enabled: true, action: reject, status: 403, close: true}\n"
        "routes:\n"
        "  - name: g\n"
        "    match: {path: /g}\n"
        "    action: {respond: {status: 200}}\n"
        "    rate_limit: {qps: 10, scope: global}\n");
    if (c) {
        const struct arc_rl_global_conf *g = &c->rl_global;
        CHECK(g->enabled);
        CHECK_STR(g->address.text, "127.0.0.1:6379");
        CHECK_STR(g->password, "");
        CHECK_INT(g->db, 0);
        CHECK_INT(g->timeout, 2);
        CHECK_INT(g->lease, 64);
        CHECK_INT(g->circuit_open, 500);
        CHECK_INT(g->fallback, ARC_RL_FB_LOCAL_SHARE);
        CHECK_INT(g->nodes, 1);
        CHECK(c->routes[0].rate_limit->global);
        CHECK_INT(c->heavy_hitters.action, ARC_HH_REJECT);
        CHECK_INT(c->heavy_hitters.status, 403);
        CHECK(c->heavy_hitters.close);
    }
    arc_config_free(c);
    c = must_load("yaml", BASE
        "rate_limits:\n"
        "  global:\n"
        "    backend: redis\n"
        "    redis: {address: \"[::1]:7000\", password: pw, db: 3, timeout: 20ms, lease: 8,\n"
        "            circuit_open: 2s}\n"
        "    fallback: fail_closed\n"
        "    nodes: 4\n");
    if (c) {
        const struct arc_rl_global_conf *g = &c->rl_global;
        CHECK_STR(g->address.text, "[::1]:7000");
        CHECK_STR(g->password, "pw");
        CHECK_INT(g->db, 3);
        CHECK_INT(g->timeout, 20);
        CHECK_INT(g->lease, 8);
        CHECK_INT(g->circuit_open, 2000);
        CHECK_INT(g->fallback, ARC_RL_FB_FAIL_CLOSED);
        CHECK_INT(g->nodes, 4);
    }
    arc_config_free(c);
    struct arc_config_errors e;
    c = load_str("yaml",
        "listeners:\n"                                                            /* 1 */
        "  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"                   /* 2 */
        "rate_limits:\n"                                                          /* 3 */
        "  global: {redis: {address: \"127.0.0.1:6379\", lease: 0}, fallback: no}\n" /* 4 */
        "  heavy_hitters: {status: 403}\n"                                        /* 5 */
        "routes:\n"                                                               /* 6 */
        "  - name: g\n"                                                           /* 7 */
        "    match: {path: /g}\n"                                                 /* 8 */
        "    action: {respond: {status: 200}}\n"                                  /* 9 */
        "    rate_limit: {qps: 10, scope: global, algorithm: token_bucket}\n", &e); /* 10 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 4, 54, "rate_limits.global.redis.lease: must be between 1 and 1000000");
    CHECK_ERR(&e, 4, 68, "rate_limits.global.fallback: unknown value 'no'");
    CHECK_ERR(&e, 5, 19, "rate_limits.heavy_hitters.status: only used with action: reject");
    CHECK_ERR(&e, 10, 34, "routes[0].rate_limit.scope: global limits use gcra");
    CHECK_INT(e.n, 4);
    arc_config_errors_dispose(&e);
}

/* heavy_hitters.action: limit and its limit (a route limit's schema
 * without key, scope, status, max_delay or leaky_bucket) */
static void test_heavy_hitters_limit(void)
{
    struct arc_config *c = must_load("yaml", BASE
        "rate_limits:\n"
        "  heavy_hitters:\n"
        "    enabled: true\n"
        "    action: limit\n"
        "    status: 503\n"
        "    close: true\n"
        "    limit: {qps: 20, burst: 40, headers: rejected, legacy_headers: true}\n");
    CHECK(c != NULL);
    if (c) {
        const struct arc_heavy_hitters_conf *h = &c->heavy_hitters;
        CHECK_INT(h->action, ARC_HH_LIMIT);
        CHECK(h->limit.qps == 20);
        CHECK_INT(h->limit.burst, 40);
        CHECK_INT(h->limit.algorithm, ARC_RL_GCRA);
        CHECK_INT(h->limit.status, 503);
        CHECK_INT(h->limit.headers, ARC_RL_HEADERS_REJECTED);
        CHECK(h->limit.legacy_headers);
        CHECK_INT(h->limit.max_keys, 100000);
        CHECK(h->close);
    }
    arc_config_free(c);
    c = must_load("yaml", BASE
        "rate_limits:\n"
        "  heavy_hitters:\n"
        "    enabled: true\n"
        "    action: limit\n"
        "    limit: {qps: 5, algorithm: sliding_window, window: 10s, max_keys: 64}\n");
    if (c) {
        CHECK_INT(c->heavy_hitters.limit.algorithm, ARC_RL_SLIDING_WINDOW);
        CHECK_INT(c->heavy_hitters.limit.window, 10000);
        CHECK_INT(c->heavy_hitters.limit.max_keys, 64);
        CHECK_INT(c->heavy_hitters.limit.status, 429);
    }
    arc_config_free(c);
    struct arc_config_errors e;
    c = load_str("yaml", BASE
        "rate_limits:\n"                                                          /* 5 */
        "  heavy_hitters: {enabled: true, action: limit}\n", &e);                 /* 6 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 6, 42, "rate_limits.heavy_hitters.action: limit needs "
                         "rate_limits.heavy_hitters.limit");
    CHECK_INT(e.n, 1);
    arc_config_errors_dispose(&e);
    c = load_str("yaml", BASE
        "rate_limits:\n"                                                          /* 5 */
        "  heavy_hitters: {action: reject, limit: {qps: 1}}\n", &e);              /* 6 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 6, 35, "rate_limits.heavy_hitters.limit: only used with action: limit");
    CHECK_INT(e.n, 1);
    arc_config_errors_dispose(&e);
    c = load_str("yaml", BASE
        "rate_limits:\n"                                                          /* 5 */
        "  heavy_hitters:\n"                                                      /* 6 */
        "    action: limit\n"                                                     /* 7 */
        "    limit: {qps: 1, key: {by: route}}\n", &e);                           /* 8 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 8, 21, "rate_limits.heavy_hitters.limit.key: not used here (a heavy hitter "
                         "is counted under its listed prefix)");
    CHECK_INT(e.n, 1);
    arc_config_errors_dispose(&e);
    c = load_str("yaml", BASE
        "rate_limits:\n"                                                          /* 5 */
        "  heavy_hitters:\n"                                                      /* 6 */
        "    action: limit\n"                                                     /* 7 */
        "    limit: {qps: 0, algorithm: leaky_bucket, burts: 3}\n", &e);          /* 8 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 8, 46, "unknown key 'burts'");
    CHECK_ERR(&e, 8, 18, "rate_limits.heavy_hitters.limit.qps: 0 is out of range");
    CHECK_ERR(&e, 8, 32, "rate_limits.heavy_hitters.limit.algorithm: leaky_bucket is not "
                         "available here");
    CHECK_INT(e.n, 3);
    arc_config_errors_dispose(&e);
}

int main(void)
{
    RUN(test_heavy_hitters_limit);
    RUN(test_global);
    RUN(test_heavy_hitters);
    RUN(test_defaults_and_values);
    RUN(test_errors);
    return TEST_REPORT();
}
