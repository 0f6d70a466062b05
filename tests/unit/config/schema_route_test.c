/* Proves upstreams[] and routes[] are read into struct arc_config exactly
 * (endpoints, lb, pool, timeouts; match, the one action, header ops,
 * forwarded, trusted proxies) and that their mistakes — unknown upstream
 * references, bad path patterns, duplicate names, conflicting actions, bad
 * methods, hosts, headers and templates — are reported at exact positions. */
#include <netinet/in.h>

#include "config_test.h"
#include "core/common.h"

/* Lines 1-14; routes start at line 15. */
#define BASE \
    "listeners:\n" \
    "  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n" \
    "upstreams:\n" \
    "  - name: app\n" \
    "    discovery:\n" \
    "      type: static\n" \
    "      endpoints:\n" \
    "        - address: \"127.0.0.1:3000\"\n" \
    "  - name: api-v2\n" \
    "    discovery:\n" \
    "      type: static\n" \
    "      endpoints:\n" \
    "        - address: \"127.0.0.1:3001\"\n" \
    "routes:\n"

static void test_upstream_values(void)
{
    struct arc_config *c = must_load("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: a\n"
        "    protocol: http1\n"
        "    discovery:\n"
        "      type: static\n"
        "      endpoints:\n"
        "        - {address: \"10.0.0.1:80\", weight: 5}\n"
        "        - {address: \"[2001:db8::1]:8080\"}\n"
        "    lb: {algorithm: weighted_round_robin}\n"
        "    pool: {max_idle: 16, idle_ttl: 10s, max_lifetime: 1h, max_connections: 100}\n"
        "    timeouts: {connect: 500ms, write: 5s, ttfb: 10s, read: 1m}\n"
        "  - name: b\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.2:80\"}]}\n"
        "    lb: {algorithm: peak_ewma, decay: 5s}\n"
        "  - name: c\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.3:80\"}]}\n"
        "    lb: {algorithm: round_robin}\n"
        "  - name: d\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.4:80\"}]}\n"
        "    lb: {algorithm: least_requests}\n");
    if (!c)
        return;
    CHECK_INT(c->n_upstreams, 4);
    const struct arc_upstream_conf *u = &c->upstreams[0];
    CHECK_STR(u->name, "a");
    CHECK_INT(u->n_endpoints, 2);
    CHECK_STR(u->endpoints[0].address.text, "10.0.0.1:80");
    CHECK_INT(u->endpoints[0].weight, 5);
    CHECK_STR(u->endpoints[1].address.text, "[2001:db8::1]:8080");
    CHECK_INT(u->endpoints[1].address.ss.ss_family, AF_INET6);
    CHECK_INT(u->endpoints[1].weight, 1);
    CHECK_INT(u->lb, ARC_LB_WEIGHTED_ROUND_ROBIN);
    CHECK_INT(u->pool_max_idle, 16);
    CHECK_INT(u->pool_idle_ttl, 10000);
    CHECK_INT(u->pool_max_lifetime, 3600000);
    CHECK_INT(u->pool_max_connections, 100);
    CHECK_INT(u->connect_timeout, 500);
    CHECK_INT(u->write_timeout, 5000);
    CHECK_INT(u->ttfb_timeout, 10000);
    CHECK_INT(u->read_timeout, 60000);
    CHECK_INT(c->upstreams[1].lb, ARC_LB_PEAK_EWMA);
    CHECK_INT(c->upstreams[1].peak_ewma_decay, 5000);
    CHECK_INT(c->upstreams[2].lb, ARC_LB_ROUND_ROBIN);
    CHECK_INT(c->upstreams[3].lb, ARC_LB_LEAST_REQUESTS);
    arc_config_free(c);
}

static void test_upstream_errors(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"         /* 1 */
        "upstreams:\n"                                                          /* 2 */
        "  - name: a\n"                                                         /* 3 */
        "    discovery:\n"                                                      /* 4 */
        "      type: static\n"                                                  /* 5 */
        "      endpoints:\n"                                                    /* 6 */
        "        - {address: \"10.0.0.1:80\", weight: 10001}\n"                 /* 7 */
        "        - {address: \"10.0.0.1:80\"}\n"                                /* 8 */
        "        - {address: \"10.0.0.2:0\"}\n"                                 /* 9 */
        "    lb: {algorithm: maglev, virtual_nodes: 100, table_size: 100}\n"    /* 10 */
        "    health: {active: {fail_after: 0}}\n"                               /* 11 */
        "  - name: a\n"                                                         /* 12 */
        "    discovery: {type: dns, hostname: x..example, endpoints: []}\n"     /* 13 */
        "    lb: {algorithm: round_robin, decay: 1s}\n"                         /* 14 */
        "    protocol: h2\n"                                                    /* 15 */
        "    tls: {insecure: true, ca_pem: ca.pem}\n"                           /* 16 */
        "  - name: c\n"                                                         /* 17 */
        "    discovery: {type: static, port: 80}\n"                             /* 18 */
        "    timeouts: {connect: 0ms}\n"                                        /* 19 */
        "  - name: d\n"                                                         /* 20 */
        "    discovery: {type: static, endpoints: []}\n"                        /* 21 */
        "    lb: {algorithm: roundrobin}\n"                                     /* 22 */
        "  - discovery: {type: statik, endpoints: [{address: \"1.1.1.1:1\"}]}\n", /* 23 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 7, 44, "endpoints[0].weight: must be between 1 and 10000, got 10001");
    CHECK_ERR(&e, 8, 21, "endpoints[1].address: duplicate endpoint 10.0.0.1:80 (also "
                         "upstreams[0].discovery.endpoints[0])");
    CHECK_ERR(&e, 9, 21, "endpoints[2].address: port 0 is not valid here");
    CHECK_ERR(&e, 10, 44, "upstreams[0].lb.virtual_nodes: only applies to algorithm "
                          "consistent_hash");
    CHECK_ERR(&e, 10, 61, "upstreams[0].lb.table_size: 100 is not a prime");
    CHECK_ERR(&e, 11, 35, "upstreams[0].health.active.fail_after: must be between 1 and 1000");
    CHECK_ERR(&e, 12, 11, "upstreams[1].name: duplicate upstream name 'a' (first used at line 3)");
    CHECK_ERR(&e, 13, 38, "upstreams[1].discovery.hostname: 'x..example' is not a DNS name");
    CHECK_ERR(&e, 13, 61, "upstreams[1].discovery.endpoints: not used with type: dns");
    CHECK_ERR(&e, 13, 16, "missing required key 'port' in upstreams[1].discovery (type: dns)");
    CHECK_ERR(&e, 14, 41, "upstreams[1].lb.decay: only applies to algorithm peak_ewma");
    CHECK_ERR(&e, 15, 15, "upstreams[1].protocol: unknown value 'h2' (expected one of: http1, http2)");
    CHECK_ERR(&e, 16, 35, "upstreams[1].tls.ca_pem: has no effect with insecure: true");
    CHECK_ERR(&e, 18, 16, "missing required key 'endpoints' in upstreams[2].discovery");
    CHECK_ERR(&e, 18, 37, "upstreams[2].discovery.port: only used with type: dns");
    CHECK_ERR(&e, 19, 25, "upstreams[2].timeouts.connect: must be between 1ms and 24h, got 0ms");
    CHECK_ERR(&e, 21, 42, "upstreams[3].discovery.endpoints: at least one endpoint is required");
    CHECK_ERR(&e, 22, 21, "upstreams[3].lb.algorithm: unknown value 'roundrobin' (did you mean "
                          "'round_robin'?)");
    CHECK_ERR(&e, 23, 5, "missing required key 'name' in upstreams[4]");
    CHECK_ERR(&e, 23, 23, "upstreams[4].discovery.type: unknown value 'statik' (did you mean "
                          "'static'?)");
    CHECK_INT(e.n, 20);
    arc_config_errors_dispose(&e);
}

static void test_route_values(void)
{
    struct arc_config *c = must_load("yaml", BASE
        "  - name: api\n"                                                  /* 15 */
        "    priority: -5\n"
        "    match:\n"
        "      path: \"/api/{version}/{*rest}\"\n"
        "      host: [Api.Example.COM, \"*.example.org\", \"[::1]\"]\n"
        "      methods: [GET, POST, PATCH]\n"
        "    action:\n"
        "      upstream: api-v2\n"
        "      headers:\n"
        "        - {op: set, name: X-Version, value: \"{version}\"}\n"
        "        - {op: add, name: X-Empty, value: \"\"}\n"
        "        - {op: remove, name: Cookie}\n"
        "      response_headers:\n"
        "        - {op: set, name: Server, value: \"arc\"}\n"
        "      forwarded:\n"
        "        x_forwarded_for: false\n"
        "        via: false\n"
        "        trusted_proxies: [\"10.0.0.0/8\", \"fd00::/8\", 192.168.1.1]\n"
        "  - name: old\n"
        "    match: {path: \"/old/{id}\"}\n"
        "    action:\n"
        "      redirect: {status: 301, location: \"https://new.example/{id}?$query\"}\n"
        "      response_headers: [{op: set, name: Cache-Control, value: max-age=60}]\n"
        "  - name: health\n"
        "    match: {path: /healthz, methods: [GET, HEAD]}\n"
        "    action:\n"
        "      respond:\n"
        "        status: 200\n"
        "        body: \"ok\\n\"\n"
        "        headers: {Content-Type: text/plain, X-A: \"1\"}\n"
        "  - name: empty\n"
        "    match: {path: /e}\n"
        "    action:\n"
        "      respond:\n"
        "        status: 204\n"
        "        headers: [{name: Set-Cookie, value: a=1}, {name: Set-Cookie, value: b=2}]\n"
        "  - name: dflt\n"
        "    match: {path: /d}\n"
        "    action: {redirect: {location: /e}}\n");
    if (!c)
        return;
    CHECK_INT(c->n_routes, 5);
    const struct arc_route_conf *r = &c->routes[0];
    CHECK_STR(r->name, "api");
    CHECK_STR(r->file, "t.yaml");
    CHECK_INT(r->line, 15);
    CHECK_INT(r->col, 5);
    CHECK_INT(r->priority, -5);
    CHECK_STR(r->path, "/api/{version}/{*rest}");
    CHECK_INT(r->n_hosts, 3);
    CHECK_STR(r->hosts[0], "api.example.com");
    CHECK_STR(r->hosts[1], "*.example.org");
    CHECK_STR(r->hosts[2], "[::1]");
    CHECK_INT(r->methods, ARC_M_GET | ARC_M_POST | ARC_M_PATCH);
    CHECK_INT(r->action, ARC_ACTION_UPSTREAM);
    CHECK_STR(r->upstream, "api-v2");
    CHECK_INT(r->upstream_index, 1);
    CHECK_INT(r->n_req_headers, 3);
    CHECK_INT(r->req_headers[0].op, ARC_HDR_SET);
    CHECK_STR(r->req_headers[0].name, "X-Version");
    CHECK_STR(r->req_headers[0].value, "{version}");
    CHECK_INT(r->req_headers[1].op, ARC_HDR_ADD);
    CHECK_STR(r->req_headers[1].value, "");
    CHECK_INT(r->req_headers[2].op, ARC_HDR_REMOVE);
    CHECK(r->req_headers[2].value == NULL);
    CHECK_INT(r->n_resp_headers, 1);
    CHECK_STR(r->resp_headers[0].name, "Server");
    CHECK(!r->xff);
    CHECK(r->xfp);
    CHECK(!r->via);
    CHECK_INT(r->n_trusted_proxies, 3);
    CHECK_STR(r->trusted_proxies[0].text, "10.0.0.0/8");
    CHECK_STR(r->trusted_proxies[1].text, "fd00::/8");
    CHECK_STR(r->trusted_proxies[2].text, "192.168.1.1/32");

    r = &c->routes[1];
    CHECK_INT(r->action, ARC_ACTION_REDIRECT);
    CHECK_INT(r->redirect_status, 301);
    CHECK_STR(r->redirect_location, "https://new.example/{id}?$query");
    CHECK_INT(r->n_hosts, 0);
    CHECK_INT(r->methods, 0);
    CHECK(r->xff && r->xfp && r->via);
    CHECK_INT(r->n_resp_headers, 1);

    r = &c->routes[2];
    CHECK_INT(r->action, ARC_ACTION_RESPOND);
    CHECK_INT(r->respond_status, 200);
    CHECK_STR(r->respond_body, "ok\n");
    CHECK_INT(r->n_respond_headers, 2);
    CHECK_STR(r->respond_headers[0].name, "Content-Type");
    CHECK_STR(r->respond_headers[0].value, "text/plain");
    CHECK_STR(r->respond_headers[1].name, "X-A");
    CHECK_INT(r->methods, ARC_M_GET | ARC_M_HEAD);

    r = &c->routes[3];
    CHECK_INT(r->respond_status, 204);
    CHECK_STR(r->respond_body, "");
    CHECK_INT(r->n_respond_headers, 2);
    CHECK_STR(r->respond_headers[1].value, "b=2");

    r = &c->routes[4];
    CHECK_INT(r->redirect_status, 302);
    arc_config_free(c);
}

static void test_unknown_upstream(void)
{
    CHECK_FAILS("yaml", BASE
                "  - name: r\n"
                "    match: {path: /}\n"
                "    action: {upstream: ap}\n",
                1, 17, 24, "routes[0].action.upstream: unknown upstream 'ap' (did you mean 'app'?)");
    CHECK_FAILS("yaml", BASE
                "  - name: r\n"
                "    match: {path: /}\n"
                "    action:\n"
                "      upstream: billing\n",
                1, 18, 17, "routes[0].action.upstream: unknown upstream 'billing'");
    CHECK_FAILS("yaml",
                "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
                "routes: [{name: r, match: {path: /}, action: {upstream: app}}]\n",
                1, 2, 57, "unknown upstream 'app' (no upstreams are defined)");
}

static void test_bad_path_pattern(void)
{
    /* The message text comes from arc_rt_check_pattern; we own the position. */
    CHECK_FAILS("yaml", BASE
                "  - name: r\n"
                "    match:\n"
                "      path: \"/a/{*rest}/b\"\n"
                "    action: {upstream: app}\n",
                1, 17, 13, "routes[0].match.path: ");
    CHECK_FAILS("yaml", BASE
                "  - name: r\n"
                "    match: {path: \"no-slash\"}\n"
                "    action: {upstream: app}\n",
                1, 16, 19, "routes[0].match.path: ");
    CHECK_FAILS("json",
                "{\"listeners\": [{\"name\": \"h\", \"kind\": \"http\", \"bind\": \"127.0.0.1:0\"}],\n"
                " \"routes\": [{\"name\": \"r\", \"action\": {\"respond\": {}},\n"
                "             \"match\": {\"path\": \"/{unclosed\"}}]}\n",
                1, 3, 32, "routes[0].match.path: ");
    CHECK_FAILS("yaml", BASE
                "  - name: r\n"
                "    match: {path: \"\"}\n"
                "    action: {upstream: app}\n",
                1, 16, 19, "routes[0].match.path: must not be empty");
}

static void test_duplicate_names(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", BASE
        "  - name: a\n"                                   /* 15 */
        "    match: {path: /a}\n"
        "    action: {upstream: app}\n"
        "  - name: a\n"                                   /* 18 */
        "    match: {path: /b}\n"
        "    action: {upstream: app}\n"
        "  - name: a\n"                                   /* 21 */
        "    match: {path: /c}\n"
        "    action: {upstream: app}\n", &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 2);
    CHECK_ERR(&e, 18, 11, "routes[1].name: duplicate route name 'a' (first used at line 15)");
    CHECK_ERR(&e, 21, 11, "routes[2].name: duplicate route name 'a' (first used at line 15)");
    arc_config_errors_dispose(&e);
}

static void test_action_exactly_one(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", BASE
        "  - name: none\n"                                                  /* 15 */
        "    match: {path: /a}\n"                                           /* 16 */
        "    action: {headers: []}\n"                                       /* 17 */
        "  - name: two\n"                                                   /* 18 */
        "    match: {path: /b}\n"                                           /* 19 */
        "    action:\n"                                                     /* 20 */
        "      respond: {status: 200}\n"                                    /* 21 */
        "      upstream: app\n"                                             /* 22 */
        "      redirect: {location: /x}\n"                                  /* 23 */
        "  - name: noaction\n"                                              /* 24 */
        "    match: {path: /c}\n", &e);                                     /* 25 */
    CHECK(c == NULL);
    CHECK_INT(e.n, 4);
    CHECK_ERR(&e, 17, 13, "routes[0].action: needs exactly one of upstream, redirect or respond");
    CHECK_ERR(&e, 22, 7, "routes[1].action: 'upstream' cannot be combined with 'respond'");
    CHECK_ERR(&e, 23, 7, "routes[1].action: 'redirect' cannot be combined with 'respond'");
    CHECK_ERR(&e, 24, 5, "missing required key 'action' in routes[2]");
    arc_config_errors_dispose(&e);
}

static void test_split(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", BASE
        "  - name: r\n"                                                     /* 15 */
        "    match: {path: /}\n"                                            /* 16 */
        "    action: {retry: {}}\n"                                         /* 17 */
        "    split:\n"                                                      /* 18 */
        "      choices: [{upstream: app, weight: 9}, {upstream: api-v2}]\n" /* 19 */
        "      key: {source: cookie, name: sid}\n"                          /* 20 */
        "  - name: s\n"                                                     /* 21 */
        "    match: {path: /s}\n"                                           /* 22 */
        "    split: {choices: [{upstream: app}]}\n", &e);                   /* 23 */
    CHECK(c != NULL);
    arc_config_errors_dispose(&e);
    const struct arc_route_conf *r = &c->routes[0];
    CHECK(r->split != NULL && r->action == ARC_ACTION_UPSTREAM && r->retry.enabled);
    CHECK_INT(r->split->n_choices, 2);
    CHECK_STR(r->split->choices[1].upstream, "api-v2");
    CHECK_INT(r->split->choices[1].upstream_index, 1);
    CHECK_INT(r->split->choices[0].weight, 9);
    CHECK_INT(r->split->choices[1].weight, 1);
    CHECK_INT(r->split->key, ARC_SPLIT_COOKIE);
    CHECK_STR(r->split->key_name, "sid");
    CHECK_STR(r->upstream, "app");                  /* the first choice stands in */
    CHECK_INT(c->routes[1].split->key, ARC_SPLIT_RANDOM);
    arc_config_free(c);

    c = load_str("yaml", BASE
        "  - name: r\n"                                                     /* 15 */
        "    match: {path: /}\n"                                            /* 16 */
        "    action: {respond: {status: 200}}\n"                            /* 17 */
        "    split:\n"                                                      /* 18 */
        "      choices: [{upstream: apq, weight: 0}, {upstream: app, weight: 0}, {upstream: app}]\n" /* 19 */
        "      key: {source: header}\n"                                     /* 20 */
        "  - name: s\n"                                                     /* 21 */
        "    match: {path: /s}\n"                                           /* 22 */
        "    split: {choices: [{upstream: app, weight: 0}], key: {source: random, name: x}}\n", /* 23 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 17, 14, "routes[0].action: 'respond' cannot be combined with split");
    CHECK_ERR(&e, 19, 28, "routes[0].split.choices[0].upstream: unknown upstream 'apq' (did you "
                          "mean 'app'?)");
    CHECK_ERR(&e, 19, 84, "routes[0].split.choices[2].upstream: 'app' is already choice 1");
    CHECK_ERR(&e, 20, 12, "routes[0].split.key: source: header needs a name");
    CHECK_ERR(&e, 23, 22, "routes[1].split.choices: every weight is 0");
    CHECK_ERR(&e, 23, 80, "routes[1].split.key.name: not used with source: random");
    CHECK_INT(e.n, 6);
    arc_config_errors_dispose(&e);
}

static void test_mirror(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", BASE
        "  - name: r\n"                                                     /* 15 */
        "    match: {path: /}\n"                                            /* 16 */
        "    action: {upstream: app}\n"                                     /* 17 */
        "    mirror: api-v2\n"                                              /* 18 */
        "  - name: s\n"                                                     /* 19 */
        "    match: {path: /s}\n"                                           /* 20 */
        "    action: {upstream: app}\n"                                     /* 21 */
        "    mirror:\n"                                                     /* 22 */
        "      - upstream: api-v2\n"                                        /* 23 */
        "        sample: 0.5\n"                                             /* 24 */
        "        timeout: 250ms\n"                                          /* 25 */
        "        transform: {path: \"/m$path\", headers: {set: {X-M: \"1\"}, remove: [X-Secret]}}\n" /* 26 */
        "        compare: {ignore_headers: [X-Trace, server], on_diff: count, log_rate: 5,\n" /* 27 */
        "                  ignore_body_fields: [ts, \"req.id\"], max_body: 2kb}\n" /* 28 */
        "      - {upstream: api-v2, compare: {headers: [X-A], body: false}}\n"           /* 29 */
        "      - {upstream: api-v2, compare: {enabled: false, headers: false}}\n",       /* 30 */
        &e);
    CHECK(c != NULL);
    arc_config_errors_dispose(&e);
    CHECK_INT(c->routes[0].n_mirrors, 1);
    CHECK_STR(c->routes[0].mirrors[0].upstream, "api-v2");
    CHECK_INT(c->routes[0].mirrors[0].upstream_index, 1);
    CHECK(c->routes[0].mirrors[0].sample == 1.0);
    CHECK_INT(c->routes[0].mirrors[0].timeout, 3000);
    CHECK_INT(c->routes[0].mirrors[0].max_body, 64 * 1024);
    const struct arc_mirror_conf *m = &c->routes[1].mirrors[0];
    CHECK(m->sample == 0.5);
    CHECK_INT(m->timeout, 250);
    CHECK_STR(m->path, "/m$path");
    CHECK_INT(m->n_set, 1);
    CHECK_STR(m->set[0].name, "X-M");
    CHECK_INT(m->n_remove, 1);
    CHECK_STR(m->remove[0], "x-secret");
    CHECK(c->routes[0].mirrors[0].compare == NULL);
    CHECK(m->compare != NULL);
    CHECK_INT(m->compare->fields, ARC_MCF_ALL);
    CHECK_INT(m->compare->n_names, 2);
    CHECK_STR(m->compare->names[0], "x-trace");
    CHECK(m->compare->body && !m->compare->log);
    CHECK_INT(m->compare->log_rate, 5);
    CHECK_INT(m->compare->n_body_fields, 2);
    CHECK_STR(m->compare->body_fields[1], "req.id");
    CHECK_INT(m->compare->max_body, 2048);
    m = &c->routes[1].mirrors[1];
    CHECK(m->compare != NULL);
    CHECK_INT(m->compare->fields, ARC_MCF_LISTED);
    CHECK_INT(m->compare->n_names, 1);
    CHECK_STR(m->compare->names[0], "x-a");
    CHECK(!m->compare->body && m->compare->log);
    CHECK_INT(m->compare->log_rate, 10);
    CHECK_INT(m->compare->n_body_fields, 0);
    CHECK_INT(m->compare->max_body, 1 << 20);
    CHECK(c->routes[1].mirrors[2].compare == NULL);
    arc_config_free(c);

    c = load_str("yaml", BASE
        "  - name: r\n"                                                     /* 15 */
        "    match: {path: /}\n"                                            /* 16 */
        "    action: {redirect: {location: /x}}\n"                          /* 17 */
        "    mirror: app\n"                                                 /* 18 */
        "  - name: s\n"                                                     /* 19 */
        "    match: {path: /s}\n"                                           /* 20 */
        "    action: {upstream: app}\n"                                     /* 21 */
        "    mirror:\n"                                                     /* 22 */
        "      - upstream: apx\n"                                           /* 23 */
        "        sample: 2\n"                                               /* 24 */
        "        compare: {ignore_body_fields: [id], body: false, headers: 5, on_diff: mail}\n" /* 25 */
        "        transform: {path: x, headers: {set: {Content-Length: \"1\"}, remove: [\"a b\"]}}\n", /* 26 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 18, 13, "routes[0].mirror: only applies to routes with an upstream");
    CHECK_ERR(&e, 23, 19, "routes[1].mirror[0].upstream: unknown upstream 'apx' (did you mean "
                          "'app'?)");
    CHECK_ERR(&e, 24, 17, "routes[1].mirror[0].sample: expected a number between 0 and 1");
    CHECK_ERR(&e, 25, 19, "routes[1].mirror[0].compare.ignore_body_fields: only with body: true");
    CHECK_ERR(&e, 25, 67, "routes[1].mirror[0].compare.headers: expected true, false or a list");
    CHECK_ERR(&e, 25, 79, "routes[1].mirror[0].compare.on_diff: unknown value 'mail'");
    CHECK_ERR(&e, 26, 27, "routes[1].mirror[0].transform.path: must start with '/'");
    CHECK_ERR(&e, 26, 46, "transform.headers.set: 'Content-Length' is managed by Arc");
    CHECK_ERR(&e, 26, 77, "transform.headers.remove[0]: 'a b' is not a valid header name");
    CHECK_INT(e.n, 9);
    arc_config_errors_dispose(&e);
}

static void test_match_errors(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", BASE
        "  - name: r\n"                                                     /* 15 */
        "    match:\n"                                                      /* 16 */
        "      path: /\n"                                                   /* 17 */
        "      methods: [get, FETCH, GET, GET]\n"                           /* 18 */
        "      host: [\"a.example\", \"A.EXAMPLE\", \"x:80\", \"*\", \"a..b\", \"*.\", \"h\xc3\xa9\"]\n" /* 19 */
        "      headers: [{name: x, op: exists, value: y}]\n"                /* 20 */
        "    action: {upstream: app}\n"                                     /* 21 */
        "  - name: s\n"                                                     /* 22 */
        "    match: {path: /s, methods: [], host: []}\n"                    /* 23 */
        "    action: {upstream: app}\n"                                     /* 24 */
        "    split: {choices: []}\n", &e);                                  /* 25 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 18, 17, "routes[0].match.methods[0]: unknown method 'get' (did you mean 'GET'?)");
    CHECK_ERR(&e, 18, 22, "routes[0].match.methods[1]: unknown method 'FETCH'");
    CHECK_ERR(&e, 18, 34, "routes[0].match.methods[3]: method GET is listed twice");
    CHECK_ERR(&e, 19, 27, "routes[0].match.host[1]: host 'a.example' is listed twice");
    CHECK_ERR(&e, 19, 40, "host 'x:80' is matched without a port");
    CHECK_ERR(&e, 19, 48, "host '*' may use '*' only as a leading '*.'");
    CHECK_ERR(&e, 19, 53, "host 'a..b' has an empty label");
    CHECK_ERR(&e, 19, 61, "host '*.' needs a suffix");
    CHECK_ERR(&e, 19, 67, "must be ASCII");
    CHECK_ERR(&e, 20, 39, "routes[0].match.headers[0].value: not used with op: exists");
    CHECK_ERR(&e, 23, 32, "routes[1].match.methods: empty list");
    CHECK_ERR(&e, 23, 42, "routes[1].match.host: empty list");
    CHECK_ERR(&e, 24, 14, "routes[1].action: 'upstream' cannot be combined with split");
    CHECK_ERR(&e, 25, 22, "routes[1].split.choices: expected 1 to 64 choices, got 0");
    CHECK_INT(e.n, 14);
    arc_config_errors_dispose(&e);
}

static void test_redirect_respond_errors(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", BASE
        "  - name: r1\n"                                                    /* 15 */
        "    match: {path: \"/a/{id}\"}\n"                                  /* 16 */
        "    action:\n"                                                     /* 17 */
        "      redirect: {status: 300, location: \"/b/{idd}\"}\n"           /* 18 */
        "      forwarded: {via: false}\n"                                   /* 19 */
        "  - name: r2\n"                                                    /* 20 */
        "    match: {path: /b}\n"                                           /* 21 */
        "    action: {redirect: {location: \"/x?$hots\"}}\n"                /* 22 */
        "  - name: r3\n"                                                    /* 23 */
        "    match: {path: /c}\n"                                           /* 24 */
        "    action: {redirect: {}}\n"                                      /* 25 */
        "  - name: r4\n"                                                    /* 26 */
        "    match: {path: /d}\n"                                           /* 27 */
        "    action:\n"                                                     /* 28 */
        "      respond:\n"                                                  /* 29 */
        "        status: 304\n"                                             /* 30 */
        "        body: nope\n"                                              /* 31 */
        "        headers:\n"                                                /* 32 */
        "          Content-Length: \"4\"\n"                                 /* 33 */
        "          \"Bad Name\": x\n"                                       /* 34 */
        "          X-Ok: \"a\\r\\nX-Injected: 1\"\n"                        /* 35 */
        "  - name: r5\n"                                                    /* 36 */
        "    match: {path: /e}\n"                                           /* 37 */
        "    action: {respond: {status: 600, headers: [{name: X}]}}\n"      /* 38 */
        "  - name: r6\n"                                                    /* 39 */
        "    match: {path: /f}\n"                                           /* 40 */
        "    action: {redirect: {location: \"/{\"}}\n",                      /* 41 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 18, 26, "routes[0].action.redirect.status: must be 301, 302, 303, 307 or 308, got 300");
    CHECK_ERR(&e, 18, 41, "routes[0].action.redirect.location: {idd} is not captured by the route's path");
    CHECK_ERR(&e, 19, 7, "routes[0].action.forwarded: only applies to routes with an upstream");
    CHECK_ERR(&e, 22, 35, "unknown variable '$hots' (supported: $host, $client_ip, $client_port, "
              "$scheme, $method, $path, $query, $request_uri, $route, $request_id; write $$ for a '$')");
    CHECK_ERR(&e, 25, 24, "missing required key 'location' in routes[2].action.redirect");
    CHECK_ERR(&e, 31, 15, "routes[3].action.respond.body: a 304 response cannot have a body");
    CHECK_ERR(&e, 33, 11, "'Content-Length' is managed by Arc and cannot be set by a route");
    CHECK_ERR(&e, 34, 11, "'Bad Name' is not a valid header name");
    CHECK_ERR(&e, 35, 17, "routes[3].action.respond.headers.X-Ok: header values must not contain CR, LF");
    CHECK_ERR(&e, 38, 32, "routes[4].action.respond.status: must be between 200 and 599, got 600");
    CHECK_ERR(&e, 38, 47, "missing required key 'value' in routes[4].action.respond.headers[0]");
    CHECK_ERR(&e, 41, 35, "'{' must start a {name} placeholder");
    CHECK_INT(e.n, 12);
    arc_config_errors_dispose(&e);
}

static void test_header_op_errors(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", BASE
        "  - name: r\n"                                                     /* 15 */
        "    match: {path: /}\n"                                            /* 16 */
        "    action:\n"                                                     /* 17 */
        "      upstream: app\n"                                             /* 18 */
        "      headers:\n"                                                  /* 19 */
        "        - {op: replace, name: X-A, value: b}\n"                    /* 20 */
        "        - {op: set, name: \"X:A\", value: b}\n"                    /* 21 */
        "        - {op: add, name: X-B}\n"                                  /* 22 */
        "        - {op: remove, name: X-C, value: c}\n"                     /* 23 */
        "        - {op: set, name: Transfer-Encoding, value: chunked}\n"    /* 24 */
        "        - {op: set, name: X-D, value: \" padded\"}\n"              /* 25 */
        "        - {name: X-E, value: e}\n"                                 /* 26 */
        "      response_headers: {op: set}\n"                               /* 27 */
        "      forwarded:\n"                                                /* 28 */
        "        trusted_proxies: [\"10.0.0.1/8\", \"any\", 7]\n"           /* 29 */
        "        x_forwarded_proto: \"no\"\n"                               /* 30 */
        "      retry: {max_retries: 11}\n", &e);                            /* 31 */
    CHECK(c == NULL);
    CHECK_ERR(&e, 20, 16, "routes[0].action.headers[0].op: unknown value 'replace'");
    CHECK_ERR(&e, 21, 27, "routes[0].action.headers[1].name: 'X:A' is not a valid header name");
    CHECK_ERR(&e, 22, 11, "missing required key 'value' in routes[0].action.headers[2] (op: add)");
    CHECK_ERR(&e, 23, 42, "routes[0].action.headers[3].value: not used with op: remove");
    CHECK_ERR(&e, 24, 27, "'Transfer-Encoding' is managed by Arc");
    CHECK_ERR(&e, 25, 39, "header values must not start or end with whitespace");
    CHECK_ERR(&e, 26, 11, "missing required key 'op' in routes[0].action.headers[6]");
    CHECK_ERR(&e, 27, 25, "routes[0].action.response_headers: expected a list, got mapping");
    CHECK_ERR(&e, 29, 27, "trusted_proxies[0]: '10.0.0.1/8' is not a CIDR prefix");
    CHECK_ERR(&e, 29, 41, "trusted_proxies[1]: 'any' is not a CIDR prefix");
    CHECK_ERR(&e, 29, 48, "trusted_proxies[2]: expected a string, got integer");
    CHECK_ERR(&e, 30, 28, "routes[0].action.forwarded.x_forwarded_proto: expected true or false");
    CHECK_ERR(&e, 31, 28, "routes[0].action.retry.max_retries: must be between 0 and 10");
    CHECK_INT(e.n, 13);
    arc_config_errors_dispose(&e);
}

/* action.rewrite, timeout and max_body: values, the default, and errors at
 * the character they are about. */
static void test_action_options(void)
{
    struct arc_config *c = must_load("yaml", BASE
        "  - name: r\n"
        "    match: {path: \"/api/{ver}/{*rest}\"}\n"
        "    action:\n"
        "      upstream: app\n"
        "      rewrite: {pattern: \"^/api/([^/]+)/(.*)$\", replace: \"/{ver}/$2?v=$1\"}\n"
        "      timeout: 1500ms\n"
        "      max_body: 1mb\n"
        "  - name: s\n"
        "    match: {path: /s}\n"
        "    action: {upstream: app, max_body: 0}\n");
    if (!c)
        return;
    const struct arc_route_conf *r = &c->routes[0];
    CHECK_STR(r->rewrite_pattern, "^/api/([^/]+)/(.*)$");
    CHECK_STR(r->rewrite_replace, "/{ver}/$2?v=$1");
    CHECK_INT(r->timeout_ms, 1500);
    CHECK_INT(r->max_body, 1 << 20);
    CHECK(c->routes[1].rewrite_pattern == NULL);
    CHECK_INT(c->routes[1].timeout_ms, 0);
    CHECK_INT(c->routes[1].max_body, 0);
    arc_config_free(c);

    c = must_load("yaml", BASE "  - {name: d, match: {path: /d}, action: {upstream: app}}\n");
    if (c) {
        CHECK_INT(c->routes[0].max_body, 10 << 20);
        arc_config_free(c);
    }

    struct arc_config_errors e;
    c = load_str("yaml", BASE
        "  - name: r1\n"                                                    /* 15 */
        "    match: {path: \"/a/{id}\"}\n"                                  /* 16 */
        "    action:\n"                                                     /* 17 */
        "      upstream: app\n"                                             /* 18 */
        "      rewrite: {pattern: \"^/a/(x\", replace: /b}\n"               /* 19 */
        "      timeout: soon\n"                                             /* 20 */
        "      max_body: -1\n"                                              /* 21 */
        "  - name: r2\n"                                                    /* 22 */
        "    match: {path: \"/b/{id}\"}\n"                                  /* 23 */
        "    action: {upstream: app, rewrite: {pattern: \"^/b/(.*)\", replace: \"/c/$2\"}}\n" /* 24 */
        "  - name: r3\n"                                                    /* 25 */
        "    match: {path: \"/c/{id}\"}\n"                                  /* 26 */
        "    action: {upstream: app, rewrite: {pattern: c, replace: \"/{idd}\"}}\n" /* 27 */
        "  - name: r4\n"                                                    /* 28 */
        "    match: {path: /d}\n"                                           /* 29 */
        "    action: {upstream: app, rewrite: {pattern: d, replace: \"/x#frag\"}}\n" /* 30 */
        "  - name: r5\n"                                                    /* 31 */
        "    match: {path: /e}\n"                                           /* 32 */
        "    action: {upstream: app, rewrite: {pattern: e, replace: \"x/\"}}\n" /* 33 */
        "  - name: r6\n"                                                    /* 34 */
        "    match: {path: /f}\n"                                           /* 35 */
        "    action: {respond: {status: 200}, timeout: 1s, rewrite: {pattern: f}}\n", /* 36 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 19, 26, "routes[0].action.rewrite.pattern: regex does not compile: missing closing parenthesis");
    CHECK_ERR(&e, 20, 16, "routes[0].action.timeout:");
    CHECK_ERR(&e, 21, 17, "routes[0].action.max_body:");
    CHECK_ERR(&e, 24, 69, "routes[1].action.rewrite.replace: $2: the pattern has 1 group");
    CHECK_ERR(&e, 27, 60, "routes[2].action.rewrite.replace: {idd} is not captured by the route's path");
    CHECK_ERR(&e, 30, 60, "routes[3].action.rewrite.replace: '#' is not allowed in a path or query");
    CHECK_ERR(&e, 33, 60, "routes[4].action.rewrite.replace: must start with '/'");
    CHECK_ERR(&e, 36, 38, "routes[5].action.timeout: only applies to routes with an upstream");
    CHECK_ERR(&e, 36, 51, "routes[5].action.rewrite: only applies to routes with an upstream");
    CHECK_INT(e.n, 9);
    arc_config_errors_dispose(&e);
}

/* consistent_hash / maglev: their key, ring and table settings, and what
 * is refused. */
static void test_hash_lb(void)
{
    struct arc_config *c = must_load("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: a\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:80\"}]}\n"
        "    lb: {algorithm: consistent_hash, key: {by: header, name: X-User}, virtual_nodes: 40}\n"
        "  - name: b\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.2:80\"}]}\n"
        "    lb: {algorithm: maglev, key: {by: cookie, name: sid}, table_size: 251}\n"
        "  - name: c\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.3:80\"}]}\n"
        "    lb: {algorithm: maglev}\n");
    if (!c)
        return;
    CHECK_INT(c->upstreams[0].lb, ARC_LB_CONSISTENT_HASH);
    CHECK_INT(c->upstreams[0].lb_key_by, ARC_LB_KEY_HEADER);
    CHECK_STR(c->upstreams[0].lb_key_name, "X-User");
    CHECK_INT(c->upstreams[0].lb_virtual_nodes, 40);
    CHECK_INT(c->upstreams[1].lb, ARC_LB_MAGLEV);
    CHECK_INT(c->upstreams[1].lb_key_by, ARC_LB_KEY_COOKIE);
    CHECK_STR(c->upstreams[1].lb_key_name, "sid");
    CHECK_INT(c->upstreams[1].lb_table_size, 251);
    CHECK_INT(c->upstreams[2].lb_key_by, ARC_LB_KEY_CLIENT_IP);
    CHECK(c->upstreams[2].lb_key_name == NULL);
    CHECK_INT(c->upstreams[2].lb_table_size, 65537);
    arc_config_free(c);

    struct arc_config_errors e;
    c = load_str("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"           /* 1 */
        "upstreams:\n"                                                              /* 2 */
        "  - name: a\n"                                                             /* 3 */
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:80\"}]}\n"   /* 4 */
        "    lb: {algorithm: consistent_hash, key: {by: header}}\n"                  /* 5 */
        "  - name: b\n"                                                             /* 6 */
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.2:80\"}]}\n"   /* 7 */
        "    lb: {algorithm: round_robin, key: {by: client_ip}}\n"                   /* 8 */
        "  - name: c\n"                                                             /* 9 */
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.3:80\"}]}\n"   /* 10 */
        "    lb: {algorithm: maglev, key: {by: client_ip, name: x}}\n"               /* 11 */
        "  - name: d\n"                                                             /* 12 */
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.4:80\"}]}\n"   /* 13 */
        "    lb: {algorithm: maglev, key: {by: header, name: \"a b\"}, table_size: 2}\n", /* 14 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 5, 43, "upstreams[0].lb.key: by: header needs a name");
    CHECK_ERR(&e, 8, 39, "upstreams[1].lb.key: only applies to algorithms consistent_hash and "
                         "maglev");
    CHECK_ERR(&e, 11, 56, "upstreams[2].lb.key.name: not used with by: client_ip");
    CHECK_ERR(&e, 14, 53, "upstreams[3].lb.key.name: 'a b' is not a valid header name");
    CHECK_ERR(&e, 14, 73, "upstreams[3].lb.table_size: must be between 3 and");
    arc_config_errors_dispose(&e);
}

static void test_passive_health(void)
{
    struct arc_config *c = must_load("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: a\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:80\"}]}\n"
        "    health:\n"
        "      panic_threshold: 30\n"
        "      passive: {consecutive_failures: 3, error_rate_threshold: 0.5, window: 10s,\n"
        "                min_requests: 4, ejection_time: 2s, max_ejection_time: 1m,\n"
        "                max_ejection_percent: 100}\n"
        "  - name: b\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.2:80\"}]}\n"
        "    health: {passive: {}}\n"
        "  - name: c\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.3:80\"}]}\n");
    if (!c)
        return;
    const struct arc_passive_conf *p = &c->upstreams[0].passive;
    CHECK(p->enabled);
    CHECK_INT(p->consecutive_failures, 3);
    CHECK(p->error_rate_threshold == 0.5);
    CHECK_INT(p->window, 10000);
    CHECK_INT(p->min_requests, 4);
    CHECK_INT(p->ejection_time, 2000);
    CHECK_INT(p->max_ejection_time, 60000);
    CHECK_INT(p->max_ejection_percent, 100);
    CHECK_INT(c->upstreams[0].panic_threshold, 30);
    p = &c->upstreams[1].passive;
    CHECK(p->enabled);
    CHECK_INT(p->consecutive_failures, 5);
    CHECK(p->error_rate_threshold == 0.2);
    CHECK_INT(p->window, 30000);
    CHECK_INT(p->ejection_time, 30000);
    CHECK_INT(p->max_ejection_percent, 50);
    CHECK_INT(c->upstreams[1].panic_threshold, 50);
    CHECK(!c->upstreams[2].passive.enabled);
    CHECK(!c->upstreams[2].active.enabled);
    arc_config_free(c);

    c = must_load("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: a\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:80\"}]}\n"
        "    health:\n"
        "      active: {interval: 2s, timeout: 300ms, path: /ready, fail_after: 1,\n"
        "               pass_after: 4, expect_status: [204, \"200-299\"]}\n"
        "  - name: b\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.2:80\"}]}\n"
        "    health: {active: {}}\n"
        "  - name: c\n"                                  /* checked over TLS */
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.3:443\"}]}\n"
        "    tls: {insecure: true}\n"
        "    health: {active: {}}\n");
    if (!c)
        return;
    CHECK(c->upstreams[2].active.enabled);
    const struct arc_active_conf *ac = &c->upstreams[0].active;
    CHECK(ac->enabled);
    CHECK_INT(ac->interval, 2000);
    CHECK_INT(ac->timeout, 300);
    CHECK_STR(ac->path, "/ready");
    CHECK_INT(ac->fail_after, 1);
    CHECK_INT(ac->pass_after, 4);
    CHECK_INT(ac->n_expect, 2);
    CHECK(ac->expect_lo[0] == 204 && ac->expect_hi[0] == 204);
    CHECK(ac->expect_lo[1] == 200 && ac->expect_hi[1] == 299);
    ac = &c->upstreams[1].active;
    CHECK(ac->enabled && ac->interval == 10000 && ac->timeout == 1000);
    CHECK_STR(ac->path, "/health");
    CHECK(ac->n_expect == 1 && ac->expect_lo[0] == 200 && ac->expect_hi[0] == 399);
    CHECK(ac->fail_after == 3 && ac->pass_after == 2);
    arc_config_free(c);

    CHECK_FAILS("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: a\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:80\"}]}\n"
        "    health: {active: {expect_status: [\"300-200\"]}}\n",
        1, 5, 39, "expected a status (100-599) or a range like");
    c = must_load("yaml",                          /* checked over HTTP/2 */
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: a\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:80\"}]}\n"
        "    protocol: http2\n"
        "    health: {active: {}}\n");
    if (c) {
        CHECK(c->upstreams[0].active.enabled);
        arc_config_free(c);
    }

    CHECK_FAILS("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: a\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:80\"}]}\n"
        "    health: {passive: {error_rate_threshold: 1.5}}\n",
        1, 5, 46, "upstreams[0].health.passive.error_rate_threshold: must be between 0 and 1");
    CHECK_FAILS("yaml",
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: a\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:80\"}]}\n"
        "    health: {passive: {ejection_time: 10m}}\n",
        1, 5, 23, "max_ejection_time: must not be below ejection_time");
}

int main(void)
{
    RUN(test_upstream_values);
    RUN(test_passive_health);
    RUN(test_hash_lb);
    RUN(test_upstream_errors);
    RUN(test_route_values);
    RUN(test_unknown_upstream);
    RUN(test_bad_path_pattern);
    RUN(test_duplicate_names);
    RUN(test_action_exactly_one);
    RUN(test_match_errors);
    RUN(test_redirect_respond_errors);
    RUN(test_header_op_errors);
    RUN(test_action_options);
    RUN(test_split);
    RUN(test_mirror);
    return TEST_REPORT();
}
