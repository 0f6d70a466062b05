/* Proves plugins.wasm[] and routes[].plugins (with per-route configs,
 * deduplicated per plugin) are read into struct arc_config with their
 * defaults, and that their mistakes (bad budget,
 * policy, pool, duplicate or unknown names, a relative cache_dir) are reported at exact positions. Loading the string config
 * does not compile modules (that happens when a snapshot is built). */
#include "config_test.h"

#define HEAD \
    "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"   /* 1 */ \
    "plugins:\n"                                                    /* 2 */ \
    "  cache_dir: /var/tmp/arc-test\n"                              /* 3 */ \
    "  wasm:\n"                                                     /* 4 */

static void test_values_and_defaults(void)
{
    struct arc_config *c = must_load("yaml", HEAD
        "    - {name: a, file: a.wasm}\n"                                              /* 5 */
        "    - {name: b, file: b.wasm, root_id: rb, budget: 5ms, max_memory: 1mb,\n"
        "       pool: 3, on_error: fail_open, config: {k: [1, 2], a: \"x\"}}\n"
        "    - {name: c, file: c.wasm, config: \"plain text\"}\n"
        "routes:\n"
        "  - name: r\n"
        "    match: {path: /}\n"
        "    action: {respond: {status: 200}}\n"
        "    plugins: [{name: b}, {name: a, stage: request_headers}]\n"
        "  - name: r2\n"
        "    match: {path: /2}\n"
        "    action: {respond: {status: 200}}\n"
        "    plugins: [{name: a, config: one}, {name: b, config: {x: 1}}]\n"
        "  - name: r3\n"
        "    match: {path: /3}\n"
        "    action: {respond: {status: 200}}\n"
        "    plugins: [{name: a, config: two}, {name: b, config: {x: 1}}]\n");
    if (!c)
        return;
    CHECK_STR(c->plugin_cache_dir, "/var/tmp/arc-test");
    CHECK_INT(c->plugin_compile_timeout_ms, 120000);
    CHECK_INT(c->n_plugins, 3);
    const struct arc_plugin_conf *a = &c->plugins[0], *b = &c->plugins[1];
    CHECK_STR(a->name, "a");
    CHECK_STR(a->file, "a.wasm");
    CHECK(a->root_id == NULL && a->config_json == NULL);
    CHECK_INT(a->budget_ms, 2);
    CHECK_INT(a->max_memory, 64 << 20);
    CHECK_INT(a->pool, 1);
    CHECK(!a->fail_open);
    CHECK_INT(a->line, 5);
    CHECK_INT(a->col, 7);
    CHECK_STR(b->root_id, "rb");
    CHECK_INT(b->budget_ms, 5);
    CHECK_INT(b->max_memory, 1 << 20);
    CHECK_INT(b->pool, 3);
    CHECK(b->fail_open);
    CHECK_STR(b->config_json, "{\"a\":\"x\",\"k\":[1,2]}");
    CHECK_STR(c->plugins[2].config_json, "plain text");
    CHECK_INT(c->routes[0].n_plugins, 2);
    CHECK_INT(c->routes[0].plugins[0], 1);
    CHECK_INT(c->routes[0].plugins[1], 0);
    /* per-route configs: one root per distinct config, equal ones shared */
    CHECK_INT(c->routes[0].plugin_roots[0], 0);
    CHECK_INT(c->routes[0].plugin_roots[1], 0);
    CHECK_INT(a->n_route_configs, 2);
    CHECK_STR(a->route_configs[0], "one");
    CHECK_STR(a->route_configs[1], "two");
    CHECK_INT(b->n_route_configs, 1);
    CHECK_STR(b->route_configs[0], "{\"x\":1}");
    CHECK_INT(c->routes[1].plugin_roots[0], 1);
    CHECK_INT(c->routes[1].plugin_roots[1], 1);
    CHECK_INT(c->routes[2].plugin_roots[0], 2);
    CHECK_INT(c->routes[2].plugin_roots[1], 1);
    arc_config_free(c);
}

static void test_errors(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", HEAD
        "    - {name: a, file: a.wasm, budget: 0ms}\n"                 /* 5 */
        "    - {name: a, file: b.wasm, on_error: maybe}\n"             /* 6 */
        "    - {name: c, file: c.wasm, pool: 0}\n"                     /* 7 */
        "    - {name: d}\n"                                            /* 8 */
        "routes:\n"                                                    /* 9 */
        "  - name: r\n"                                                /* 10 */
        "    match: {path: /}\n"                                       /* 11 */
        "    action: {respond: {status: 200}}\n"                       /* 12 */
        "    plugins: [{name: zz}, {name: c, config: {}}, {name: c, stage: body}]\n", /* 13 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 5, 39, "plugins.wasm[0].budget");
    CHECK_ERR(&e, 6, 14, "duplicate plugin name 'a'");
    CHECK_ERR(&e, 6, 41, "plugins.wasm[1].on_error: unknown value 'maybe'");
    CHECK_ERR(&e, 7, 37, "plugins.wasm[2].pool");
    CHECK_ERR(&e, 8, 7, "missing required key 'file' in plugins.wasm[3]");
    CHECK_ERR(&e, 13, 22, "routes[0].plugins[0].name: no plugin named 'zz' in plugins.wasm");
    CHECK_ERR(&e, 13, 57, "routes[0].plugins[2].name: plugin 'c' is already on this route");
    CHECK_INT(e.n, 8);
    CHECK_ERR(&e, 13, 67, "routes[0].plugins[2].stage: unknown value 'body'");
    arc_config_errors_dispose(&e);
    CHECK_FAILS("yaml", "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
                "plugins: {cache_dir: rel/dir}\n", 1, 2, 22, "plugins.cache_dir: must be an absolute path");
    CHECK_FAILS("yaml", "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
                "plugins: {compile_timeout: 10ms}\n", 1, 2, 28, "plugins.compile_timeout");
    struct arc_config *c2 = must_load("yaml", "listeners: [{name: http, kind: http, bind: "
                                      "\"127.0.0.1:0\"}]\nplugins: {compile_timeout: 30s}\n");
    if (c2) {
        CHECK_INT(c2->plugin_compile_timeout_ms, 30000);
        arc_config_free(c2);
    }
}

int main(void)
{
    RUN(test_values_and_defaults);
    RUN(test_errors);
    return TEST_REPORT();
}
