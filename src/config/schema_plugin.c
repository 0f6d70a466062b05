/*
 * Schema: the `plugins` section (proxy-wasm modules) and a route's
 * `plugins` list. Modules are compiled and loaded later, when the snapshot
 * is built (plugin/host.c); errors there point at the plugin's entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/schema_int.h"

/* plugin/plugin.h (not included: its core arena clashes with the config
 * tree's arena type of the same name). */
char *arc_plugin_default_cache_dir(void);

#define REQ ARC_KEY_REQUIRED
#define LATER ARC_KEY_LATER
#define N(a) (sizeof(a) / sizeof((a)[0]))

#define PLUGIN_POOL_MAX 64
#define PLUGIN_BUDGET_MAX_MS 10000
#define PLUGIN_PAUSE_MAX_MS 3600000
#define PLUGIN_MEMORY_MAX (4096ull << 20)
#define PLUGIN_BODY_BUFFER_MAX (1024ull << 20)

static const struct arc_conf_key plugins_keys[] = {
    { "wasm", 0 }, { "cache_dir", 0 }, { "compile_timeout", 0 },
};

static const struct arc_conf_key wasm_keys[] = {
    { "name", REQ }, { "file", REQ }, { "root_id", 0 }, { "budget", 0 }, { "max_memory", 0 },
    { "pool", 0 }, { "on_error", 0 }, { "config", 0 }, { "pause_timeout", 0 },
    { "max_body_buffer", 0 }, { "max_queues", 0 }, { "max_queue_items", 0 },
    { "max_queue_bytes", 0 }, { "max_call_body", 0 }, { "max_root_calls", 0 },
};

static const struct arc_conf_key route_plugin_keys[] = {
    { "name", REQ }, { "stage", 0 }, { "config", 0 },
};

/* A `config` value as the plugin gets it: a string as it is (Envoy's
 * usual StringValue), anything else as its compact JSON; NULL if absent. */
static char *config_text(struct arc_sctx *s, const struct arc_cn *c, const char *p)
{
    if (!c)
        return NULL;
    if (c->kind == ARC_CN_STR) {
        char *t = malloc(c->v.s.len + 1);
        if (!t)
            abort();
        memcpy(t, c->v.s.p, c->v.s.len);
        t[c->v.s.len] = '\0';
        return t;
    }
    char hex[65], *t = NULL;
    if (arc_config__canonicalize(c, &t, hex) < 0)
        arc_config__err(s, c, "%s.config: cannot be represented as JSON", p);
    return t;
}

static void wasm_entry(struct arc_sctx *s, const struct arc_cn *m, const char *p,
                       struct arc_plugin_conf *pc)
{
    pc->budget_ms = 2;
    pc->pause_timeout_ms = 10000;
    pc->max_memory = 64ull << 20;
    pc->max_body_buffer = 1ull << 20;
    pc->max_queues = 64;
    pc->max_queue_items = 1024;
    pc->max_queue_bytes = 1ull << 20;
    pc->max_call_body = 1ull << 20;
    pc->max_root_calls = 16;
    pc->pool = 1;
    pc->pos_file = arc_config__xstrdup(s->d->file ? s->d->file : "<config>");
    pc->line = m->line;
    pc->col = m->col;
    if (!arc_config__check_map(s, m, p, wasm_keys, N(wasm_keys)))
        return;
    arc_config__get_str(s, m, p, "name", ARC_STR_NAME, &pc->name);
    arc_config__get_str(s, m, p, "file", ARC_STR_NONEMPTY | ARC_STR_NO_CTL, &pc->file);
    arc_config__get_str(s, m, p, "root_id", ARC_STR_NONEMPTY | ARC_STR_NO_CTL, &pc->root_id);
    arc_config__get_dur(s, m, p, "budget", 1, PLUGIN_BUDGET_MAX_MS, false, &pc->budget_ms);
    arc_config__get_dur(s, m, p, "pause_timeout", 1, PLUGIN_PAUSE_MAX_MS, false,
                        &pc->pause_timeout_ms);
    arc_config__get_size(s, m, p, "max_memory", 65536, PLUGIN_MEMORY_MAX, false, &pc->max_memory);
    arc_config__get_size(s, m, p, "max_body_buffer", 1, PLUGIN_BODY_BUFFER_MAX, false,
                         &pc->max_body_buffer);
    arc_config__get_u32(s, m, p, "max_queues", 1, 4096, &pc->max_queues);
    arc_config__get_u32(s, m, p, "max_queue_items", 1, 1000000, &pc->max_queue_items);
    arc_config__get_size(s, m, p, "max_queue_bytes", 1, PLUGIN_BODY_BUFFER_MAX, false,
                         &pc->max_queue_bytes);
    arc_config__get_size(s, m, p, "max_call_body", 1, PLUGIN_BODY_BUFFER_MAX, false,
                         &pc->max_call_body);
    arc_config__get_u32(s, m, p, "max_root_calls", 1, 4096, &pc->max_root_calls);
    arc_config__get_u32(s, m, p, "pool", 1, PLUGIN_POOL_MAX, &pc->pool);
    static const char *const policies[] = { "fail_closed", "fail_open" };
    int pol = 0;
    if (arc_config__get_enum(s, m, p, "on_error", policies, N(policies), NULL, 0, &pol))
        pc->fail_open = pol == 1;
    pc->config_json = config_text(s, arc_config__val(m, "config"), p);
}

void arc_config__plugins(struct arc_sctx *s, const struct arc_cn *m)
{
    struct arc_config *cfg = s->cfg;
    const char *p = "plugins";
    if (!arc_config__check_map(s, m, p, plugins_keys, N(plugins_keys)))
        return;
    char *dir = NULL;
    if (arc_config__get_str(s, m, p, "cache_dir", ARC_STR_NONEMPTY | ARC_STR_NO_CTL, &dir) && dir) {
        const struct arc_cn *v = arc_config__val(m, "cache_dir");
        if (dir[0] != '/')
            arc_config__err(s, v, "plugins.cache_dir: must be an absolute path");
        free(cfg->plugin_cache_dir);
        cfg->plugin_cache_dir = dir;
    }
    arc_config__get_dur(s, m, p, "compile_timeout", 1000, 3600000, false,
                        &cfg->plugin_compile_timeout_ms);
    const struct arc_cn *seq = arc_config__val(m, "wasm");
    if (!seq || !arc_config__want(s, seq, "plugins.wasm", ARC_CN_SEQ) || seq->n == 0)
        return;
    cfg->plugins = arc_config__xcalloc(seq->n, sizeof(*cfg->plugins));
    cfg->n_plugins = seq->n;
    char pb[ARC_PATH_MAX];
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        wasm_entry(s, it, arc_config__path_index(pb, "plugins.wasm", i), &cfg->plugins[i]);
        for (size_t j = 0; j < i && cfg->plugins[i].name; j++)
            if (cfg->plugins[j].name && strcmp(cfg->plugins[j].name, cfg->plugins[i].name) == 0) {
                arc_config__err(s, arc_config__val(it, "name"),
                                "plugins.wasm[%zu].name: duplicate plugin name '%s'", i,
                                cfg->plugins[i].name);
                break;
            }
    }
}

void arc_config__plugin_defaults(struct arc_config *cfg)
{
    cfg->plugin_cache_dir = arc_plugin_default_cache_dir();
    if (!cfg->plugin_cache_dir)
        abort();
    cfg->plugin_compile_timeout_ms = ARC_PLUGIN_COMPILE_TIMEOUT_MS;
}

void arc_config__route_plugins(struct arc_sctx *s, const struct arc_cn *seq, const char *p,
                               struct arc_route_conf *r)
{
    struct arc_config *cfg = s->cfg;
    if (!arc_config__want(s, seq, p, ARC_CN_SEQ) || seq->n == 0)
        return;
    r->plugins = arc_config__xcalloc(seq->n, sizeof(*r->plugins));
    r->plugin_roots = arc_config__xcalloc(seq->n, sizeof(*r->plugin_roots));
    char pb[ARC_PATH_MAX];
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        const char *ip = arc_config__path_index(pb, p, i);
        if (!arc_config__check_map(s, it, ip, route_plugin_keys, N(route_plugin_keys)))
            continue;
        char *name = NULL;
        if (!arc_config__get_str(s, it, ip, "name", ARC_STR_NAME, &name) || !name)
            continue;
        static const char *const stages[] = { "request_headers" };
        int st = 0;
        arc_config__get_enum(s, it, ip, "stage", stages, N(stages), NULL, 0, &st);
        size_t k = 0;
        while (k < cfg->n_plugins && !(cfg->plugins[k].name && strcmp(cfg->plugins[k].name, name) == 0))
            k++;
        if (k == cfg->n_plugins) {
            arc_config__err(s, arc_config__val(it, "name"),
                            "%s.name: no plugin named '%s' in plugins.wasm", ip, name);
        } else {
            for (size_t j = 0; j < r->n_plugins; j++)
                if (r->plugins[j] == k) {
                    arc_config__err(s, arc_config__val(it, "name"),
                                    "%s.name: plugin '%s' is already on this route", ip, name);
                    k = SIZE_MAX;
                    break;
                }
            if (k != SIZE_MAX) {
                /* A per-route config is another root context of the
                 * plugin; equal configs share one. */
                uint32_t root = 0;
                char *t = config_text(s, arc_config__val(it, "config"), ip);
                struct arc_plugin_conf *pc = &cfg->plugins[k];
                if (t) {
                    size_t j = 0;
                    while (j < pc->n_route_configs && strcmp(pc->route_configs[j], t) != 0)
                        j++;
                    if (j == pc->n_route_configs) {
                        char **v = realloc(pc->route_configs, (j + 1) * sizeof(*v));
                        if (!v)
                            abort();
                        pc->route_configs = v;
                        v[pc->n_route_configs++] = t;
                    } else {
                        free(t);
                    }
                    root = (uint32_t)j + 1;
                }
                r->plugin_roots[r->n_plugins] = root;
                r->plugins[r->n_plugins++] = (uint32_t)k;
            }
        }
        free(name);
    }
}
