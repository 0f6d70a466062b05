/* Proves the schema walker fills struct arc_config with the documented
 * defaults and values (node, io_uring, listeners, security, observability),
 * and reports every kind of mistake at the exact line:col of the key or
 * value at fault — all of them in one load, in file order. Upstreams and
 * routes have their own test (schema_route_test.c). */
#include <netinet/in.h>
#include <unistd.h>

#include "config_test.h"
#include "core/common.h"

static void test_defaults(void)
{
    struct arc_config *c = must_load("yaml", MINI_YAML);
    if (!c)
        return;
    char host[256];
    CHECK_INT(gethostname(host, sizeof(host)), 0);
    CHECK_STR(c->node.id, host);
    CHECK_STR(c->source, "t.yaml");
    CHECK_INT(c->node.workers, 0);
    CHECK_INT(c->node.max_connections, 0);
    CHECK_INT(c->node.read_timeout, 30000);
    CHECK_INT(c->node.write_timeout, 30000);
    CHECK_INT(c->node.idle_timeout, 60000);
    CHECK_INT(c->node.drain_timeout, 30000);
    CHECK_INT(c->node.lingering_timeout, 2000);
    CHECK_INT(c->node.max_buffered_output, 256 * 1024);
    CHECK_INT(c->uring.uring_entries, 2048);
    CHECK(!c->uring.sqpoll);
    CHECK_INT(c->uring.sqpoll_idle_ms, 2000);
    CHECK_INT(c->uring.buffer_size, 16384);
    CHECK_INT(c->uring.buffer_count, 1024);
    CHECK_INT(c->n_listeners, 1);
    const struct arc_listener_conf *l = &c->listeners[0];
    CHECK_STR(l->name, "http");
    CHECK_INT(l->kind, ARC_LISTENER_HTTP);
    CHECK_STR(l->bind.text, "127.0.0.1:0");
    CHECK_INT(l->backlog, 4096);
    CHECK_INT(l->tcp_fastopen_backlog, 0);
    CHECK_INT(l->dscp, -1);
    CHECK_INT(l->defer_accept, 0);
    CHECK(!l->keepalive_enabled);
    CHECK_INT(c->n_upstreams, 1);
    const struct arc_upstream_conf *u = &c->upstreams[0];
    CHECK_INT(u->n_endpoints, 1);
    CHECK_INT(u->endpoints[0].weight, 1);
    CHECK_INT(u->lb, ARC_LB_PEAK_EWMA);
    CHECK_INT(u->peak_ewma_decay, 10000);
    CHECK_INT(u->pool_max_idle, 1024);
    CHECK_INT(u->pool_idle_ttl, 30000);
    CHECK_INT(u->pool_max_lifetime, 300000);
    CHECK_INT(u->pool_max_connections, 0);
    CHECK_INT(u->connect_timeout, 2000);
    CHECK_INT(u->write_timeout, 30000);
    CHECK_INT(u->ttfb_timeout, 30000);
    CHECK_INT(u->read_timeout, 30000);
    CHECK_INT(c->n_routes, 0);
    CHECK_INT(c->limits.max_header_bytes, 32768);
    CHECK_INT(c->limits.max_headers, 100);
    CHECK_INT(c->limits.max_uri, 8192);
    CHECK_STR(c->metrics_bind.text, "127.0.0.1:9090");
    CHECK(c->metrics_enabled);
    arc_config_free(c);
}

static void test_values(void)
{
    struct arc_config *c = must_load("yaml",
        "node:\n"
        "  id: edge-1\n"
        "  workers: 4\n"
        "  max_connections: 100000\n"
        "  read_timeout: 15s\n"
        "  write_timeout: 250ms\n"
        "  idle_timeout: 2m\n"
        "  drain_timeout: 0s\n"
        "  lingering_timeout: 500ms\n"
        "  max_buffered_output: 1mb\n"
        "io_uring:\n"
        "  uring_entries: 4096\n"
        "  sqpoll: true\n"
        "  sqpoll_idle_ms: 500\n"
        "  buffer_size: 64kb\n"
        "  buffer_count: 1024\n"
        "listeners:\n"
        "  - name: v6\n"
        "    kind: http\n"
        "    bind: \"[::1]:8443\"\n"
        "    proxy_protocol: false\n"
        "    socket:\n"
        "      backlog: 511\n"
        "      tcp_fastopen_backlog: 256\n"
        "      dscp: 46\n"
        "      defer_accept: 5s\n"
        "      keepalive: {idle: 30s, interval: 5s, count: 3}\n"
        "  - name: ka-defaults\n"
        "    kind: http\n"
        "    bind: 0.0.0.0:0\n"
        "    socket: {keepalive: {}}\n"
        "security:\n"
        "  limits: {max_header_bytes: 64kb, max_headers: 50, max_uri: 4096}\n"
        "observability:\n"
        "  metrics_bind: \"[::]:0\"\n"
        "  metrics_enabled: false\n");
    if (!c)
        return;
    CHECK_STR(c->node.id, "edge-1");
    CHECK_INT(c->node.workers, 4);
    CHECK_INT(c->node.max_connections, 100000);
    CHECK_INT(c->node.read_timeout, 15000);
    CHECK_INT(c->node.write_timeout, 250);
    CHECK_INT(c->node.idle_timeout, 120000);
    CHECK_INT(c->node.drain_timeout, 0);
    CHECK_INT(c->node.lingering_timeout, 500);
    CHECK_INT(c->node.max_buffered_output, 1024 * 1024);
    CHECK_INT(c->uring.uring_entries, 4096);
    CHECK(c->uring.sqpoll);
    CHECK_INT(c->uring.sqpoll_idle_ms, 500);
    CHECK_INT(c->uring.buffer_size, 65536);
    CHECK_INT(c->uring.buffer_count, 1024);
    CHECK_INT(c->n_listeners, 2);
    const struct arc_listener_conf *l = &c->listeners[0];
    CHECK_STR(l->bind.text, "[::1]:8443");
    CHECK_INT(l->bind.ss.ss_family, AF_INET6);
    CHECK_INT(l->backlog, 511);
    CHECK_INT(l->tcp_fastopen_backlog, 256);
    CHECK_INT(l->dscp, 46);
    CHECK_INT(l->defer_accept, 5000);
    CHECK(l->keepalive_enabled);
    CHECK_INT(l->keepalive_idle, 30000);
    CHECK_INT(l->keepalive_interval, 5000);
    CHECK_INT(l->keepalive_count, 3);
    l = &c->listeners[1];
    CHECK(l->keepalive_enabled);
    CHECK_INT(l->keepalive_idle, 60000);
    CHECK_INT(l->keepalive_interval, 10000);
    CHECK_INT(l->keepalive_count, 6);
    CHECK_INT(c->n_upstreams, 0);
    CHECK_INT(c->limits.max_header_bytes, 65536);
    CHECK_INT(c->limits.max_headers, 50);
    CHECK_INT(c->limits.max_uri, 4096);
    CHECK_STR(c->metrics_bind.text, "[::]:0");
    CHECK(!c->metrics_enabled);
    arc_config_free(c);
}

static void test_null_and_integral_float(void)
{
    /* null means "default"; 4.0 is the integer 4 (as in the fingerprint) */
    struct arc_config *c = must_load("yaml",
        "node:\n"
        "  workers: 4.0\n"
        "  read_timeout: ~\n"
        "io_uring:\n"
        "security: {limits: {max_header_bytes: 2048.0}}\n"
        "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\", socket: null}]\n");
    if (!c)
        return;
    CHECK_INT(c->node.workers, 4);
    CHECK_INT(c->node.read_timeout, 30000);
    CHECK_INT(c->uring.uring_entries, 2048);
    CHECK_INT(c->limits.max_header_bytes, 2048);
    arc_config_free(c);
}

static void test_near_integer_quoted_exactly(void)
{
    /* 1.0000000000000002 is not an integer; the error must quote it as
     * written, not rounded to "1" (which would read as nonsense). */
    check_fails(__FILE__, __LINE__, "yaml",
                "node: {workers: 1.0000000000000002}\n"
                "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n",
                1, 1, 17, "node.workers: expected an integer, got 1.0000000000000002");
}

static void test_node_dns_and_mirror(void)
{
    struct arc_config *c = must_load("yaml",
        "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n");
    if (c) {                                        /* defaults */
        CHECK_INT(c->node.n_dns_servers, 0);
        CHECK_INT(c->node.dns_timeout, 1000);
        CHECK_INT(c->node.dns_attempts, 2);
        CHECK_INT(c->node.mirror_queue, 1024);
        CHECK_INT(c->node.mirror_max_in_flight, 4096);
        arc_config_free(c);
    }
    c = must_load("yaml",
        "node:\n"
        "  dns: {servers: [\"10.0.0.53:53\", \"[2001:db8::53]:5353\"], timeout: 300ms, attempts: 3}\n"
        "  mirror: {queue: 256, max_in_flight: 100}\n"
        "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n");
    if (c) {
        CHECK_INT(c->node.n_dns_servers, 2);
        CHECK_STR(c->node.dns_servers[0].text, "10.0.0.53:53");
        CHECK_STR(c->node.dns_servers[1].text, "[2001:db8::53]:5353");
        CHECK_INT(c->node.dns_timeout, 300);
        CHECK_INT(c->node.dns_attempts, 3);
        CHECK_INT(c->node.mirror_queue, 256);
        CHECK_INT(c->node.mirror_max_in_flight, 100);
        arc_config_free(c);
    }
    struct arc_config_errors e;
    c = load_str("yaml",
        "node:\n"                                                           /* 1 */
        "  dns: {servers: [\"10.0.0.53:53\", dns.example, \"10.0.0.1:0\", 7], attempts: 0}\n" /* 2 */
        "  mirror: {queue: 1000, max_in_flight: 0}\n"                      /* 3 */
        "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n", &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 2, 35, "node.dns.servers[1]: 'dns.example' is not an address; expected "
                         "\"ip:port\" or \"[ipv6]:port\" (host names are not accepted)");
    CHECK_ERR(&e, 2, 48, "node.dns.servers[2]: port 0 is not valid here");
    CHECK_ERR(&e, 2, 62, "node.dns.servers[3]: expected a string");
    CHECK_ERR(&e, 2, 76, "node.dns.attempts");
    CHECK_ERR(&e, 3, 19, "node.mirror.queue: must be a power of two, got 1000");
    CHECK_ERR(&e, 3, 40, "node.mirror.max_in_flight");
    CHECK_INT(e.n, 6);
    arc_config_errors_dispose(&e);
    check_fails(__FILE__, __LINE__, "yaml",
                "node: {dns: {servers: []}}\n"
                "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n",
                1, 1, 23, "node.dns.servers: expected 1 to 16 servers, got 0");
}

static void test_h2_flood(void)
{
    struct arc_config *c = must_load("yaml",
        "security: {l7: {h2_flood: {max_rst_per_sec: 50, max_ping_per_sec: 5,\n"
        "                           max_continuations: 3}}}\n"
        "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n");
    if (c) {
        CHECK_INT(c->h2.max_rst_per_sec, 50);
        CHECK_INT(c->h2.max_ping_per_sec, 5);
        CHECK_INT(c->h2.max_continuations, 3);
        CHECK_INT(c->h2.max_settings_per_sec, 20);       /* default */
        CHECK_INT(c->h2.max_concurrent_streams, 100);    /* default */
        arc_config_free(c);
    }
    check_fails(__FILE__, __LINE__, "yaml",
                "security: {l7: {h2_flood: {max_rst_per_sec: 0}}}\n"
                "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n",
                1, 1, 45, "security.l7.h2_flood.max_rst_per_sec");
}

static void test_l7_guards(void)
{
    struct arc_config *c = must_load("yaml", MINI_YAML);
    if (c) {                                        /* defaults */
        CHECK(c->guard.slowloris);
        CHECK_INT(c->guard.headers_timeout, 10000);
        CHECK_INT(c->guard.min_recv_rate_bps, 100);
        CHECK_INT(c->guard.min_recv_rate_window, 10000);
        CHECK_INT(c->guard.max_incomplete_per_ip, 64);
        CHECK(c->guard.incomplete_tarpit);
        CHECK_INT(c->guard.max_connections_per_ip, 0);
        CHECK_INT(c->guard.ipv6_prefix, 64);
        CHECK_INT(c->guard.handshakes_per_ip_per_sec, 0);
        CHECK_INT(c->guard.max_handshakes_per_worker, 256);
        CHECK_INT(c->guard.max_tracked_addresses, 16384);
        arc_config_free(c);
    }
    c = must_load("yaml",
        "security: {l7: {max_tracked_addresses: 1000}}\n"
        "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n");
    if (c) {
        CHECK_INT(c->guard.max_tracked_addresses, 1024);      /* a power of two */
        arc_config_free(c);
    }
    check_fails(__FILE__, __LINE__, "yaml",
                "security: {l7: {max_tracked_addresses: 65537}}\n"
                "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n",
                1, 1, 40, "security.l7.max_tracked_addresses");
    c = must_load("yaml",
        "security: {l7: {max_connections_per_ip: 7, ipv6_prefix: 56,\n"
        "  slowloris: {enabled: false, headers_timeout: 3s, min_recv_rate_bps: 0,\n"
        "              min_recv_rate_window: 500ms, max_incomplete_per_ip: 9,\n"
        "              over_incomplete: close},\n"
        "  tls_flood: {handshakes_per_ip_per_sec: 11, max_handshakes_per_worker: 12}}}\n"
        "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n");
    if (c) {
        CHECK(!c->guard.slowloris);
        CHECK_INT(c->guard.headers_timeout, 3000);
        CHECK_INT(c->guard.min_recv_rate_bps, 0);
        CHECK_INT(c->guard.min_recv_rate_window, 500);
        CHECK_INT(c->guard.max_incomplete_per_ip, 9);
        CHECK(!c->guard.incomplete_tarpit);
        CHECK_INT(c->guard.max_connections_per_ip, 7);
        CHECK_INT(c->guard.ipv6_prefix, 56);
        CHECK_INT(c->guard.handshakes_per_ip_per_sec, 11);
        CHECK_INT(c->guard.max_handshakes_per_worker, 12);
        arc_config_free(c);
    }
    check_fails(__FILE__, __LINE__, "yaml",
                "security: {l7: {slowloris: {min_recv_rate_window: 10ms}}}\n"
                "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n",
                1, 1, 51, "security.l7.slowloris.min_recv_rate_window");
    check_fails(__FILE__, __LINE__, "yaml",
                "security: {l7: {slowloris: {over_incomplete: tarpt}}}\n"
                "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n",
                1, 1, 46, "security.l7.slowloris.over_incomplete: unknown value 'tarpt' "
                "(did you mean 'tarpit'?)");
    check_fails(__FILE__, __LINE__, "yaml",
                "security: {l7: {ipv6_prefix: 0}}\n"
                "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n",
                1, 1, 30, "security.l7.ipv6_prefix");
    check_fails(__FILE__, __LINE__, "yaml",
                "security: {l7: {tls_flood: {handshakes: 3}}}\n"
                "listeners: [{name: a, kind: http, bind: \"127.0.0.1:1\"}]\n",
                1, 1, 29, "security.l7.tls_flood");
}

static void test_unknown_keys(void)
{
    CHECK_FAILS("yaml",
                "lisener: []\n"
                MINI_YAML,
                1, 1, 1, "unknown key 'lisener' at top level (did you mean 'listeners'?)");
    CHECK_FAILS("yaml",
                MINI_YAML
                "node:\n"
                "  wrkers: 2\n",
                1, 12, 3, "unknown key 'wrkers' in node (did you mean 'workers'?)");
    /* nested, no close match: no hint */
    CHECK_FAILS("yaml",
                "listeners:\n"
                "  - name: http\n"
                "    kind: http\n"
                "    bind: \"127.0.0.1:0\"\n"
                "    socket: {backlog: 10, zzzzzz: 1}\n",
                1, 5, 27, "unknown key 'zzzzzz' in listeners[0].socket");
    /* a misspelt required key is one error (the typo), not two */
    CHECK_FAILS("yaml",
                "listeners:\n"
                "  - name: http\n"
                "    kind: http\n"
                "    bnd: \"127.0.0.1:0\"\n",
                1, 4, 5, "unknown key 'bnd' in listeners[0] (did you mean 'bind'?)");
    /* case slips are typos too */
    CHECK_FAILS("yaml", MINI_YAML "Routes: []\n", 1, 11, 1, "did you mean 'routes'?");
    /* the same in JSON points into the JSON text */
    CHECK_FAILS("json",
                "{\"listeners\": [{\"name\": \"h\", \"kind\": \"http\",\n"
                "  \"bind\": \"127.0.0.1:0\", \"bakclog\": 5}]}",
                1, 2, 26, "unknown key 'bakclog' in listeners[0]");
}

static void test_wrong_types(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        MINI_YAML
        "node:\n"                       /* 11 */
        "  workers: \"4\"\n"            /* 12 */
        "  id: 7\n"                     /* 13 */
        "io_uring:\n"                   /* 14 */
        "  sqpoll: 1\n"                 /* 15 */
        "  buffer_count: 1.5\n"         /* 16 */
        "security: []\n"                /* 17 */
        "observability:\n"              /* 18 */
        "  metrics_enabled: yes\n"      /* 19 */
        "routes: {}\n", &e);            /* 20 */
    CHECK(c == NULL);
    CHECK_INT(e.n, 7);
    CHECK_ERR(&e, 12, 12, "node.workers: expected an integer, got string");
    CHECK_ERR(&e, 13, 7, "node.id: expected a string, got integer");
    CHECK_ERR(&e, 15, 11, "io_uring.sqpoll: expected a boolean, got integer");
    CHECK_ERR(&e, 16, 17, "io_uring.buffer_count: expected an integer, got 1.5");
    CHECK_ERR(&e, 17, 11, "security: expected a mapping, got list");
    CHECK_ERR(&e, 19, 20, "observability.metrics_enabled: expected true or false, got the string 'yes'");
    CHECK_ERR(&e, 20, 9, "routes: expected a list, got mapping");
    arc_config_errors_dispose(&e);

    CHECK_FAILS("yaml", "- a\n- b\n", 1, 1, 1, "document: expected a mapping, got list");
    CHECK_FAILS("json", "[1]", 1, 1, 1, "document: expected a mapping, got list");
    CHECK_FAILS("yaml", "listeners: 5\n", 1, 1, 12, "listeners: expected a list, got integer");
}

static void test_durations_and_sizes(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        MINI_YAML
        "node:\n"                       /* 11 */
        "  read_timeout: 30\n"          /* 12 */
        "  write_timeout: 30 s\n"       /* 13 */
        "  idle_timeout: 1.5s\n"        /* 14 */
        "  drain_timeout: 25h\n"        /* 15 */
        "io_uring:\n"                   /* 16 */
        "  buffer_size: 24kb\n"         /* 17 */
        "security:\n"                   /* 18 */
        "  limits:\n"                   /* 19 */
        "    max_uri: 8 kb\n"           /* 20 */
        "    max_header_bytes: 512\n",  /* 21 */
        &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 7);
    CHECK_ERR(&e, 12, 17, "node.read_timeout: expected a duration string like \"30s\"");
    CHECK_ERR(&e, 13, 18, "node.write_timeout: invalid duration '30 s'");
    CHECK_ERR(&e, 14, 17, "node.idle_timeout: invalid duration '1.5s'");
    CHECK_ERR(&e, 15, 18, "node.drain_timeout: must be between 0ms and 24h, got 25h");
    CHECK_ERR(&e, 17, 16, "io_uring.buffer_size: must be a power of two, got 24kb");
    CHECK_ERR(&e, 20, 14, "security.limits.max_uri: invalid size '8 kb'");
    CHECK_ERR(&e, 21, 23, "security.limits.max_header_bytes: must be between 1kb and 1mb, got 512");
    arc_config_errors_dispose(&e);
}

static void test_ranges(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        "io_uring:\n"                                    /* 1 */
        "  uring_entries: 65536\n"                       /* 2 */
        "  buffer_count: 3000\n"                         /* 3 */
        "listeners:\n"                                   /* 4 */
        "  - name: a\n"                                  /* 5 */
        "    kind: http\n"                               /* 6 */
        "    bind: \"127.0.0.1:1\"\n"                    /* 7 */
        "    socket:\n"                                  /* 8 */
        "      dscp: 64\n"                               /* 9 */
        "      defer_accept: 1500ms\n"                   /* 10 */
        "      keepalive: {idle: 0s, count: 128}\n"      /* 11 */
        "node: {workers: -1}\n",                         /* 12 */
        &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 7);
    CHECK_ERR(&e, 2, 18, "io_uring.uring_entries: must be between 1 and 32768, got 65536");
    CHECK_ERR(&e, 3, 17, "io_uring.buffer_count: must be a power of two, got 3000");
    CHECK_ERR(&e, 9, 13, "listeners[0].socket.dscp: must be between 0 and 63, got 64");
    CHECK_ERR(&e, 10, 21, "listeners[0].socket.defer_accept: must be a whole number of seconds");
    CHECK_ERR(&e, 11, 25, "listeners[0].socket.keepalive.idle: must be between 1s and 32767s");
    CHECK_ERR(&e, 11, 36, "listeners[0].socket.keepalive.count: must be between 1 and 127");
    CHECK_ERR(&e, 12, 17, "node.workers: must be between 0 and 1024, got -1");
    arc_config_errors_dispose(&e);
}

static void test_required(void)
{
    CHECK_FAILS("yaml", "node: {workers: 1}\n", 1, 1, 1,
                "missing required key 'listeners' in the document");
    CHECK_FAILS("yaml", "listeners: []\n", 1, 1, 12,
                "listeners: at least one listener is required");
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        "listeners:\n"
        "  - kind: http\n"
        "    bind: \"127.0.0.1:1\"\n"
        "  - name: b\n"
        "    kind:\n"
        "    bind: \"127.0.0.1:2\"\n", &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 2);
    CHECK_ERR(&e, 2, 5, "missing required key 'name' in listeners[0]");
    CHECK_ERR(&e, 5, 10, "listeners[1].kind: a value is required");
    arc_config_errors_dispose(&e);
    CHECK_FAILS("yaml", "", 1, 0, 0, "configuration is empty");
    CHECK_FAILS("json", " ", 1, 0, 0, "configuration is empty");
}

static void test_not_supported_yet(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        "listeners:\n"                                   /* 1 */
        "  - name: a\n"                                  /* 2 */
        "    kind: h3\n"                                 /* 3 */
        "    bind: \"127.0.0.1:1\"\n"                    /* 4 */
        "    tls: {min_version: tls14}\n"                /* 5 */
        "    proxy_protocol: true\n"                     /* 6 */
        "rate_limits: {global: {}}\n"                    /* 7 */
        "plugins: {wasm: []}\n"                          /* 8 (supported) */
        "cache: {}\n"                                    /* 9 */
        "logging: {writer: {ring_capacity: 3}}\n"        /* 10 */
        "control_plane: {config_source: {etcd: {}}}\n"  /* 11 */
        "security: {xdp: {enabled: \"off\"}, l7: {slowloris: []}}\n" /* 12 */
        "observability: {tracing: {endpoint: x}}\n",     /* 13 */
        &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 11);
    CHECK_ERR(&e, 3, 11, "listeners[0].kind: 'h3' is not supported yet in this version (supported: http, https)");
    /* the tls section of a kind not supported yet is still checked */
    CHECK_ERR(&e, 5, 10, "missing required key 'certificates' in listeners[0].tls");
    CHECK_ERR(&e, 5, 24, "listeners[0].tls.min_version: unknown value 'tls14'");
    CHECK_ERR(&e, 6, 21, "proxy_protocol: true is not supported yet");
    CHECK_ERR(&e, 7, 23, "missing required key 'redis' in rate_limits.global");
    CHECK_ERR(&e, 9, 1, "cache: not supported yet");
    CHECK_ERR(&e, 10, 35, "logging.writer.ring_capacity: must be a power of two, got 3");
    CHECK_ERR(&e, 11, 39, "missing required key 'endpoints' in control_plane.config_source.etcd");
    CHECK_ERR(&e, 12, 27, "security.xdp.enabled: expected true or false, got the string 'off'");
    CHECK_ERR(&e, 12, 51, "security.l7.slowloris: expected a mapping");
    CHECK_ERR(&e, 13, 37, "observability.tracing.endpoint: expected http://IP:PORT[/path]");
    arc_config_errors_dispose(&e);
}

static void test_control_plane(void)
{
    struct arc_config *c = must_load("yaml", MINI_YAML);
    if (c) {
        const struct arc_control_plane_conf *cp = &c->control_plane;
        CHECK(!cp->enabled);
        CHECK_STR(cp->bind.text, "127.0.0.1:22100");
        CHECK(!cp->has_token);
        CHECK_STR(cp->auth_token, "");
        CHECK_STR(cp->node_id, "");
        CHECK_INT(cp->max_body, 4 << 20);
        arc_config_free(c);
    }
    c = must_load("yaml", MINI_YAML "control_plane: {enabled: true, bind: \"[::1]:0\", "
                  "auth_token: \"abcDEF0123456789-._~+/=\", node_id: edge-1.a, max_body: 64kb, "
                  "config_source: file}\n");
    if (c) {
        const struct arc_control_plane_conf *cp = &c->control_plane;
        CHECK(cp->enabled);
        CHECK_STR(cp->bind.text, "[::1]:0");
        CHECK(cp->has_token);
        CHECK_STR(cp->auth_token, "abcDEF0123456789-._~+/=");
        CHECK_STR(cp->node_id, "edge-1.a");
        CHECK_INT(cp->max_body, 65536);
        arc_config_free(c);
    }
    struct arc_config_errors e;
    c = load_str("yaml",
        "listeners:\n"                                           /* 1 */
        "  - {name: a, kind: http, bind: \"127.0.0.1:80\"}\n"    /* 2 */
        "control_plane:\n"                                       /* 3 */
        "  enabled: true\n"                                      /* 4 */
        "  bind: \"127.0.0.1:80\"\n"                             /* 5 */
        "  auth_token: \"0123456789 abcdef\"\n"                  /* 6 */
        "  node_id: \"\"\n"                                       /* 7 */
        "  max_body: 100\n"                                      /* 8 */
        "  config_source: etcd\n"                                /* 9 */
        "  tokn: x\n",                                           /* 10 */
        &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 6);
    CHECK_ERR(&e, 5, 9, "control_plane.bind: 127.0.0.1:80 is already used by listener 'a'");
    CHECK_ERR(&e, 6, 15, "control_plane.auth_token: expected 16 to 256 characters");
    /* a secret is never quoted back */
    CHECK(strstr(e.v[1].msg, "0123456789") == NULL);
    CHECK_ERR(&e, 7, 12, "control_plane.node_id: must not be empty");
    CHECK_ERR(&e, 8, 13, "control_plane.max_body: must be between 1kb and 16mb");
    CHECK_ERR(&e, 9, 18, "control_plane.config_source: etcd needs its settings");
    CHECK_ERR(&e, 10, 3, "unknown key 'tokn' in control_plane");
    arc_config_errors_dispose(&e);
    c = load_str("yaml", MINI_YAML "observability: {metrics_bind: \"127.0.0.1:7000\"}\n"
                 "control_plane: {enabled: true, bind: \"127.0.0.1:7000\"}\n", &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 1);
    CHECK_ERR(&e, 12, 38, "control_plane.bind: 127.0.0.1:7000 is already used by "
              "observability.metrics_bind");
    arc_config_errors_dispose(&e);
}

static void test_listener_conflicts(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        "listeners:\n"                                          /* 1 */
        "  - {name: a, kind: http, bind: \"127.0.0.1:80\"}\n"   /* 2 */
        "  - {name: a, kind: http, bind: \"127.0.0.1:81\"}\n"   /* 3 */
        "  - {name: c, kind: http, bind: \"127.0.0.1:80\"}\n"   /* 4 */
        "  - {name: d, kind: http, bind: \"127.0.0.1:0\"}\n"    /* 5 */
        "  - {name: e, kind: http, bind: \"127.0.0.1:0\"}\n"    /* 6 */
        "  - {name: f, kind: http, bind: \"127.0.0.1:9090\"}\n", /* 7 */
        &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 3);
    CHECK_ERR(&e, 3, 12, "listeners[1].name: duplicate listener name 'a' (first used at line 2)");
    CHECK_ERR(&e, 4, 33, "listeners[2].bind: 127.0.0.1:80 is already used by listener 'a'");
    CHECK_ERR(&e, 7, 33, "is the default observability.metrics_bind");
    arc_config_errors_dispose(&e);

    CHECK_FAILS("yaml",
                "listeners: [{name: a, kind: http, bind: \"[::1]:80\"}]\n"
                "observability: {metrics_bind: \"[0::1]:80\"}\n",
                1, 2, 31, "observability.metrics_bind: [::1]:80 is already used by listener 'a'");
    /* no conflict when metrics are off */
    struct arc_config *ok = must_load("yaml",
        "listeners: [{name: a, kind: http, bind: \"127.0.0.1:9090\"}]\n"
        "observability: {metrics_enabled: false}\n");
    arc_config_free(ok);
}

static void test_bad_names_and_addresses(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        "listeners:\n"                                             /* 1 */
        "  - {name: \"my listener\", kind: http, bind: \"1.2.3.4:1\"}\n" /* 2 */
        "  - {name: \"\", kind: http, bind: \"localhost:80\"}\n"   /* 3 */
        "  - {name: ok, kind: http, bind: \"1.2.3.4\"}\n"          /* 4 */
        "node: {id: \"a\\nb\"}\n",                                  /* 5 */
        &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 5);
    CHECK_ERR(&e, 2, 12, "listeners[0].name: 'my listener' is not a valid name");
    CHECK_ERR(&e, 3, 12, "listeners[1].name: must not be empty");
    CHECK_ERR(&e, 3, 34, "listeners[1].bind: 'localhost:80' is not an address");
    CHECK_ERR(&e, 4, 34, "listeners[2].bind: '1.2.3.4' is not an address");
    CHECK_ERR(&e, 5, 12, "node.id: must not contain control characters");
    arc_config_errors_dispose(&e);
}

static void test_many_errors_in_file_order(void)
{
    /* Errors from the reader (duplicate key) and every schema section come
     * back together, sorted by position. */
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        "observability: {metrics_bind: nope}\n"     /* 1, reported last by the walker */
        "node:\n"                                   /* 2 */
        "  workers: many\n"                         /* 3 */
        "  workers: 2\n"                            /* 4: duplicate key */
        "listeners:\n"                              /* 5 */
        "  - {name: a, kind: tcp, bind: \"1.2.3.4:1\", extra: 1}\n" /* 6 */
        "upstreams: 3\n"                            /* 7 */
        "foo: 1\n", &e);                            /* 8 */
    CHECK(c == NULL);
    CHECK_INT(e.n, 7);
    int lines[] = { 1, 3, 4, 6, 6, 7, 8 };
    for (size_t i = 0; i < e.n && i < ARC_ARRAY_LEN(lines); i++)
        CHECK_INT(e.v[i].line, lines[i]);
    CHECK_ERR(&e, 1, 31, "observability.metrics_bind: 'nope' is not an address");
    CHECK_ERR(&e, 3, 12, "node.workers: expected an integer");
    CHECK_ERR(&e, 4, 3, "duplicate key 'workers' (first defined at line 3)");
    CHECK_ERR(&e, 6, 21, "'tcp' is not supported yet");
    CHECK_ERR(&e, 6, 45, "unknown key 'extra' in listeners[0]");
    CHECK_ERR(&e, 7, 12, "upstreams: expected a list, got integer");
    CHECK_ERR(&e, 8, 1, "unknown key 'foo' at top level");
    arc_config_errors_dispose(&e);
}

static void test_error_limit(void)
{
    /* 300 bad keys: 200 reported, then one note saying we stopped */
    size_t cap = 300 * 16 + sizeof(MINI_YAML);
    char *doc = malloc(cap);
    size_t o = (size_t)snprintf(doc, cap, "%s", MINI_YAML);
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(doc + o, cap - o, "bad%d: 1\n", i);
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", doc, &e);
    CHECK(c == NULL);
    CHECK_INT(e.n, 201);
    if (e.n == 201) {
        CHECK_INT(e.v[0].line, 11);
        CHECK_INT(e.v[199].line, 210);
        CHECK_INT(e.v[200].line, 0);
        CHECK(strstr(e.v[200].msg, "too many errors") != NULL);
    }
    arc_config_errors_dispose(&e);
    free(doc);
}

/* observability.histograms: bounds parsed (ms with fractions, sizes with
 * units), defaults kept when absent, and every bad item reported at its
 * own position. */
static void test_histograms(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", MINI_YAML, &e);
    if (c) {
        CHECK(c->histograms.enabled);
        CHECK_INT(c->histograms.n_duration, 16);
        CHECK_INT(c->histograms.duration_ns[0], 250000);
        CHECK_INT(c->histograms.n_size, 11);
        CHECK_INT(c->histograms.size[10], 64ull << 20);
        CHECK_INT(c->status_series, 64);
    }
    arc_config_free(c);
    arc_config_errors_dispose(&e);
    c = load_str("yaml", MINI_YAML "observability:\n"
                 "  max_status_series_per_route: 8\n"
                 "  histograms: {enabled: false, duration_buckets_ms: [0.5, 2, 1000], "
                 "size_buckets: [100, 2kb]}\n", &e);
    if (c) {
        CHECK(!c->histograms.enabled);
        CHECK_INT(c->histograms.n_duration, 3);
        CHECK_INT(c->histograms.duration_ns[0], 500000);
        CHECK_INT(c->histograms.duration_ns[2], 1000000000);
        CHECK_INT(c->histograms.n_size, 2);
        CHECK_INT(c->histograms.size[1], 2048);
        CHECK_INT(c->status_series, 8);
    }
    arc_config_free(c);
    arc_config_errors_dispose(&e);
    c = load_str("yaml", MINI_YAML "observability:\n"
                 "  histograms:\n"
                 "    duration_buckets_ms: [1, 1, \"x\", 0]\n"
                 "    size_buckets: []\n"
                 "    bucket: 1\n", &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 13, 30, "observability.histograms.duration_buckets_ms[1]: bucket bounds must "
                         "be strictly ascending");
    CHECK_ERR(&e, 13, 33, "duration_buckets_ms[2]: expected a number of milliseconds, got string");
    CHECK_ERR(&e, 13, 38, "duration_buckets_ms[3]: a bucket bound in milliseconds must be between");
    CHECK_ERR(&e, 14, 19, "observability.histograms.size_buckets: expected 1 to 32 bucket bounds, "
                         "got 0");
    CHECK_ERR(&e, 15, 5, "unknown key 'bucket' in observability.histograms");
    arc_config_errors_dispose(&e);
    check_fails(__FILE__, __LINE__, "yaml", MINI_YAML "observability:\n"
                "  histograms: {size_buckets: [1kb, 1gx]}\n", 1, 12, 36,
                "observability.histograms.size_buckets[1]: invalid size '1gx'");
    check_fails(__FILE__, __LINE__, "yaml", MINI_YAML "observability:\n"
                "  max_status_series_per_route: 0\n", 1, 12, 32,
                "observability.max_status_series_per_route: must be between 1 and 1000");
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_values);
    RUN(test_null_and_integral_float);
    RUN(test_near_integer_quoted_exactly);
    RUN(test_h2_flood);
    RUN(test_node_dns_and_mirror);
    RUN(test_l7_guards);
    RUN(test_unknown_keys);
    RUN(test_wrong_types);
    RUN(test_durations_and_sizes);
    RUN(test_ranges);
    RUN(test_required);
    RUN(test_not_supported_yet);
    RUN(test_control_plane);
    RUN(test_listener_conflicts);
    RUN(test_bad_names_and_addresses);
    RUN(test_many_errors_in_file_order);
    RUN(test_error_limit);
    RUN(test_histograms);
    return TEST_REPORT();
}
