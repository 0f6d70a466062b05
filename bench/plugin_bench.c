/*
 * Plugin micro-benchmark: the host-side cost of running a filter on one
 * exchange, in process (no network, no other load in the figure): a run
 * over a 12-field request map through proxy_on_context_create,
 * proxy_on_request_headers and the end callbacks, for
 *   - c_probe.wasm with no x-probe field (the guest reads one field and
 *     returns: the floor of a filter call),
 *   - c_headers.wasm (reads one field, adds one, removes one),
 *   - as_headers.wasm (the AssemblyScript SDK doing the same),
 * and the same run with the response stage too. Prints Markdown.
 */
#include "config/config.h"
#include "plugin/plugin.h"
#include "plugin/plugin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char cache[] = "/tmp/arc-plugin-bench-XXXXXX";

static double bench(const char *file, const char *root_id, long iters, bool response)
{
    static bool made;
    if (!made && !mkdtemp(cache))
        return -1;
    made = true;
    struct arc_plugin_conf pc = { .name = "b", .file = (char *)file, .root_id = (char *)root_id,
                                  .budget_ms = 100, .max_memory = 16 << 20, .pool = 1,
                                  .config_json = "x" };
    struct arc_config cfg = { .plugins = &pc, .n_plugins = 1, .plugin_cache_dir = cache,
                              .source = "bench" };
    struct arc_config_errors errs = { 0 };
    struct arc_pl_set *set = NULL;
    if (arc_plugin_set_new(&cfg, 1, &set, &errs) < 0) {
        fprintf(stderr, "%s: %s\n", file, errs.n ? errs.v[0].msg : "?");
        exit(1);
    }
    struct arc_arena arena;
    arc_arena_init(&arena, 16384);
    struct arc_pl_props props = { .method = ARC_STR_LIT("GET"), .path = ARC_STR_LIT("/a"),
                                  .url_path = ARC_STR_LIT("/a"), .authority = ARC_STR_LIT("h"),
                                  .scheme = ARC_STR_LIT("http"), .route_name = ARC_STR_LIT("r") };
    static const uint32_t idx[1] = { 0 };
    static const char *const names[] = { "accept", "user-agent", "accept-encoding", "cookie",
                                         "x-request-id", "x-remove-me", "content-type", "referer" };
    uint64_t t0 = 0;
    for (long i = -iters / 10; i < iters; i++) {
        if (i == 0)
            t0 = arc_pl__now_ns();
        struct arc_pl_run *r = arc_pl_run_new(set, 0, idx, NULL, 1, &arena, &props);
        struct arc_pl_hmap m = { .arena = &arena };
        arc_pl_hmap_view(&m, ARC_STR_LIT(":authority"), ARC_STR_LIT("h.example"));
        arc_pl_hmap_view(&m, ARC_STR_LIT(":path"), ARC_STR_LIT("/a?b=1"));
        arc_pl_hmap_view(&m, ARC_STR_LIT(":method"), ARC_STR_LIT("GET"));
        arc_pl_hmap_view(&m, ARC_STR_LIT(":scheme"), ARC_STR_LIT("http"));
        for (size_t k = 0; k < 8; k++)
            arc_pl_hmap_view(&m, (struct arc_str){ names[k], strlen(names[k]) },
                            ARC_STR_LIT("some value of a field"));
        if (arc_pl_request_headers(r, &m, true, 0) != ARC_PL_CONTINUE) {
            fprintf(stderr, "%s: the filter failed\n", file);
            exit(1);
        }
        if (response) {
            struct arc_pl_hmap rm = { .arena = &arena };
            arc_pl_hmap_view(&rm, ARC_STR_LIT(":status"), ARC_STR_LIT("200"));
            arc_pl_hmap_view(&rm, ARC_STR_LIT("server"), ARC_STR_LIT("x"));
            arc_pl_hmap_view(&rm, ARC_STR_LIT("content-type"), ARC_STR_LIT("text/plain"));
            arc_pl_response_headers(r, &rm, false, 0);
        }
        arc_pl_run_end(r);
        arc_arena_reset(&arena);
    }
    double ns = (double)(arc_pl__now_ns() - t0) / (double)iters;
    arc_arena_dispose(&arena);
    arc_plugin_set_free(set);
    return ns;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *fx = "tests/e2e/plugins/";
    char a[256], b[256], c[256];
    snprintf(a, sizeof(a), "%sc_probe.wasm", fx);
    snprintf(b, sizeof(b), "%sc_headers.wasm", fx);
    snprintf(c, sizeof(c), "%sas_headers.wasm", fx);
    printf("| filter | request stage + end | request + response + end |\n|---|---|---|\n");
    printf("| c_probe (reads one field) | %.0f ns | %.0f ns |\n", bench(a, NULL, n, false),
           bench(a, NULL, n, true));
    printf("| c_headers (get, add, remove) | %.0f ns | %.0f ns |\n", bench(b, NULL, n, false),
           bench(b, NULL, n, true));
    printf("| as_headers (AssemblyScript SDK) | %.0f ns | %.0f ns |\n",
           bench(c, "as_headers", n / 10, false), bench(c, "as_headers", n / 10, true));
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
    return system(cmd) == 0 ? 0 : 1;
}
