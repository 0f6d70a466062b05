/* A reload that changes a restart-only field is refused naming each field;
 * everything else (routes, upstreams, timeouts, TLS certificates) is not
 * restart-only. */
#include "test.h"
#include "config/config.h"

#include <string.h>

static struct arc_config *load(const char *yaml)
{
    struct arc_config_errors e = { 0 };
    struct arc_config *c = NULL;
    if (arc_config_load_string(yaml, strlen(yaml), "t.yaml", "yaml", &c, &e) != 0)
        arc_config_errors_print(&e, stderr);
    arc_config_errors_dispose(&e);
    CHECK(c != NULL);
    return c;
}

#define BASE "listeners:\n  - {name: web, kind: http, bind: \"127.0.0.1:8080\"}\n"
#define UPS "upstreams:\n  - name: a\n    discovery: {type: static, endpoints: [{address: \"127.0.0.1:81\"}]}\n"
#define RT "routes:\n  - name: r\n    match: {path: \"/{*x}\"}\n    action: {upstream: a}\n"

static void test_same_and_reloadable_changes(void)
{
    struct arc_config *a = load(BASE UPS RT);
    struct arc_config *b = load(BASE "node: {read_timeout: 5s, max_connections: 10}\n"
                                "upstreams:\n  - name: a\n    discovery: {type: static, endpoints: "
                                "[{address: \"127.0.0.1:82\"}]}\n  - name: b\n    discovery: {type: "
                                "static, endpoints: [{address: \"127.0.0.1:83\"}]}\n" RT);
    if (!a || !b)
        return;
    char out[256];
    CHECK_INT(arc_config_restart_diff(a, a, out, sizeof(out)), 0);
    CHECK_STR(out, "");
    CHECK_INT(arc_config_restart_diff(a, b, out, sizeof(out)), 0);
    arc_config_free(a);
    arc_config_free(b);
}

static void test_node_dns_and_mirror_are_restart_only(void)
{
    struct arc_config *a = load(BASE "node: {dns: {servers: [\"127.0.0.1:53\"]}}\n" UPS RT);
    struct arc_config *b = load(BASE "node: {dns: {servers: [\"127.0.0.1:54\"]}, "
                                "mirror: {queue: 64}}\n" UPS RT);
    struct arc_config *c = load(BASE UPS RT);
    struct arc_config *d = load(BASE "node: {dns: {servers: [\"127.0.0.1:53\"]}}\n" UPS RT);
    if (!a || !b || !c || !d)
        return;
    char out[256];
    CHECK_INT(arc_config_restart_diff(a, d, out, sizeof(out)), 0);
    CHECK_INT(arc_config_restart_diff(a, b, out, sizeof(out)), 2);
    CHECK_STR(out, "node.dns, node.mirror");
    CHECK_INT(arc_config_restart_diff(a, c, out, sizeof(out)), 1);
    CHECK_STR(out, "node.dns");
    arc_config_free(a);
    arc_config_free(b);
    arc_config_free(c);
    arc_config_free(d);
}

static void test_restart_only_fields_are_named(void)
{
    struct arc_config *a = load(BASE UPS RT);
    struct arc_config *b = load("listeners:\n  - {name: web, kind: http, bind: \"127.0.0.1:8081\", "
                                "socket: {backlog: 10}}\n  - {name: two, kind: http, bind: "
                                "\"127.0.0.1:8082\"}\n"
                                "node: {workers: 3}\nio_uring: {buffer_count: 2048}\n"
                                "observability: {metrics_bind: \"127.0.0.1:9999\"}\n" UPS RT);
    if (!a || !b)
        return;
    char out[256];
    CHECK_INT(arc_config_restart_diff(a, b, out, sizeof(out)), 6);
    CHECK_STR(out, "listeners (1 -> 2), listeners[0].bind, listeners[0].socket.backlog, "
                   "node.workers, io_uring.buffer_count, observability.metrics_bind");
    char tiny[12];
    CHECK_INT(arc_config_restart_diff(a, b, tiny, sizeof(tiny)), 6);   /* truncated, counted */
    CHECK(strlen(tiny) < sizeof(tiny));
    CHECK_INT(arc_config_restart_diff(a, b, NULL, 0), 6);
    arc_config_free(a);
    arc_config_free(b);
}

static void test_guard_table_size_is_restart_only(void)
{
    struct arc_config *a = load(BASE UPS RT);
    struct arc_config *b = load(BASE UPS RT "security: {l7: {max_tracked_addresses: 64}}\n");
    struct arc_config *c = load(BASE UPS RT "security: {l7: {max_connections_per_ip: 3}}\n");
    if (!a || !b || !c)
        return;
    char out[256];
    CHECK_INT(arc_config_restart_diff(a, b, out, sizeof(out)), 1);
    CHECK_STR(out, "security.l7.max_tracked_addresses");
    CHECK_INT(arc_config_restart_diff(a, c, out, sizeof(out)), 0);   /* the caps reload */
    arc_config_free(a);
    arc_config_free(b);
    arc_config_free(c);
}

static void test_histograms_are_restart_only(void)
{
    struct arc_config *a = load(BASE UPS RT);
    struct arc_config *b = load(BASE UPS RT "observability:\n  max_status_series_per_route: 9\n"
                                "  histograms: {duration_buckets_ms: [1, 2]}\n");
    if (!a || !b)
        return;
    char out[256];
    CHECK_INT(arc_config_restart_diff(a, b, out, sizeof(out)), 2);
    CHECK(strstr(out, "observability.histograms") != NULL);
    CHECK(strstr(out, "observability.max_status_series_per_route") != NULL);
    arc_config_free(a);
    arc_config_free(b);
}

static void test_control_plane_is_restart_only(void)
{
    struct arc_config *off = load(BASE UPS RT "control_plane: {bind: \"127.0.0.1:1\"}\n");
    struct arc_config *off2 = load(BASE UPS RT "control_plane: {bind: \"127.0.0.1:2\"}\n");
    struct arc_config *on = load(BASE UPS RT "control_plane: {enabled: true}\n");
    struct arc_config *on2 = load(BASE UPS RT "control_plane: {enabled: true, bind: \"127.0.0.1:2\", "
                                  "auth_token: \"0123456789abcdef\", node_id: n, max_body: 1mb}\n");
    if (!off || !off2 || !on || !on2)
        return;
    char out[256];
    CHECK_INT(arc_config_restart_diff(off, off2, out, sizeof(out)), 0);   /* disabled: inert */
    CHECK_INT(arc_config_restart_diff(off, on, out, sizeof(out)), 1);
    CHECK_STR(out, "control_plane.enabled");
    CHECK_INT(arc_config_restart_diff(on, on2, out, sizeof(out)), 4);
    CHECK_STR(out, "control_plane.bind, control_plane.auth_token, control_plane.node_id, "
                   "control_plane.max_body");
    arc_config_free(off);
    arc_config_free(off2);
    arc_config_free(on);
    arc_config_free(on2);
}

int main(void)
{
    RUN(test_same_and_reloadable_changes);
    RUN(test_node_dns_and_mirror_are_restart_only);
    RUN(test_restart_only_fields_are_named);
    RUN(test_control_plane_is_restart_only);
    RUN(test_histograms_are_restart_only);
    RUN(test_guard_table_size_is_restart_only);
    return TEST_REPORT();
}
