/*
 * Loading compiled modules, instances, and contained guest calls.
 *
 * Instance states (per worker slot, touched only by its worker once built):
 *
 *   (built on the control thread) ─▶ LIVE ──trap / budget──▶ DEAD
 *   DEAD ──next use, not backing off: arc_pl__inst_rebuild──▶ LIVE (gen+1)
 *   DEAD ──rebuild failed──▶ DEAD, retry after a doubling back-off
 *        (100 ms .. 10 s); exchanges meanwhile get the on_error policy
 *
 * A guest call sets a per-thread trap point (setjmp, no signal mask: no
 * signal is involved) and a deadline; the shim's trap and the budget check
 * longjmp back to it. Calls made from inside a host function (the guest's
 * allocator) run under the outer point, so a trap anywhere in the nest
 * unwinds the whole guest call. Host functions never hold anything that a
 * longjmp would leak: they allocate from the exchange's arena only.
 */
#include "core/log.h"
#include "plugin/plugin_int.h"
#include "config/config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct point {
    jmp_buf jb;
};
static __thread struct point *t_point;

static __attribute__((noreturn)) void host_trap(uint32_t code)
{
    struct point *p = t_point;
    if (!p)
        abort();            /* a trap outside a guest call: a host bug, never hidden */
    longjmp(p->jb, (int)(code ? code : 1));
}

void arc_pl__exit_trap(void)
{
    host_trap(ARC_TRAP_EXIT);
}

static struct arc_w2c_hdr *hdr_of(const struct arc_pl_inst *in)
{
    return (struct arc_w2c_hdr *)((char *)in->w2c + in->pl->mod.m->hdr_off);
}

/* The fuel of a slice is spent: the budget's clock. A guest call reads no
 * clock until its first slice is spent (nearly every call ends sooner:
 * a clock read at each call's start cost 1.2% of a request's CPU with
 * one header filter); the deadline then runs from that first refuel, so a
 * looping call is stopped after its budget plus its first slice, and the
 * check itself happens once a slice as before. */
static void host_refuel(struct arc_w2c_hdr *h)
{
    struct arc_pl_inst *in = h->host;
    uint64_t now = arc_pl__now_ns();
    if (!in->deadline_ns)
        in->deadline_ns = now + in->budget_ns;
    else if (now >= in->deadline_ns)
        host_trap(ARC_TRAP_BUDGET);
    h->fuel = ARC_W2C_FUEL_SLICE;
}

static const struct arc_w2c_host g_host = {
    .abi = ARC_W2C_ABI, .trap = host_trap, .refuel = host_refuel, .fns = arc_pl__import_fns,
};

typedef uint32_t (*fn_i)(void *);
typedef uint32_t (*fn_ii)(void *, uint32_t);
typedef uint32_t (*fn_iii)(void *, uint32_t, uint32_t);
typedef uint32_t (*fn_iiii)(void *, uint32_t, uint32_t, uint32_t);
typedef void (*fn_v)(void *);
typedef void (*fn_vi)(void *, uint32_t);
typedef void (*fn_vii)(void *, uint32_t, uint32_t);

/* Calls export e through its real C type (the signatures were checked
 * against arc_pl__exports when the module was built). */
static uint32_t invoke(void *w2c, enum arc_pl_export e, arc_w2c_fn f, uint32_t a0, uint32_t a1,
                       uint32_t a2)
{
    switch (e) {
    case PLX_ABI_0_2_0:
    case PLX_ABI_0_2_1:
    case PLX_INITIALIZE:
        ((fn_v)f)(w2c);
        return 0;
    case PLX_ON_LOG:
    case PLX_ON_DELETE:
    case PLX_ON_TICK:
        ((fn_vi)f)(w2c, a0);
        return 0;
    case PLX_ON_CONTEXT_CREATE:
    case PLX_ON_QUEUE_READY:
        ((fn_vii)f)(w2c, a0, a1);
        return 0;
    case PLX_ON_DONE:
    case PLX_ON_MEMORY_ALLOCATE:
    case PLX_MALLOC:
        return ((fn_ii)f)(w2c, a0);
    case PLX_ON_VM_START:
    case PLX_ON_CONFIGURE:
    case PLX_ON_REQUEST_TRAILERS:
    case PLX_ON_RESPONSE_TRAILERS:
        return ((fn_iii)f)(w2c, a0, a1);
    case PLX_ON_REQUEST_HEADERS:
    case PLX_ON_RESPONSE_HEADERS:
    case PLX_ON_REQUEST_BODY:
    case PLX_ON_RESPONSE_BODY:
    case PLX_ON_HTTP_CALL_RESPONSE:     /* (arc_pl__call5) */
    case PLX__COUNT:
        break;
    }
    return ((fn_iiii)f)(w2c, a0, a1, a2);
}

int arc_pl__call(struct arc_pl_inst *in, enum arc_pl_export e, uint32_t *ret, int nargs,
                 uint32_t a0, uint32_t a1, uint32_t a2)
{
    (void)nargs;
    *ret = 0;
    if (in->dead)
        return ARC_TRAP_UNSUPPORTED;
    arc_w2c_fn f = in->pl->mod.m->exports[e];
    if (!f)
        return 0;                       /* the module does not handle this callback */
    if (t_point) {                      /* nested: under the outer call's point */
        *ret = invoke(in->w2c, e, f, a0, a1, a2);
        return 0;
    }
    struct point p;
    struct arc_w2c_hdr *h = hdr_of(in);
    h->fuel = ARC_W2C_FUEL_SLICE;
    h->depth = 0;
    h->stack_floor = (char *)__builtin_frame_address(0) - ARC_W2C_STACK_MAX;
    in->deadline_ns = 0;                /* set at the first refuel: see host_refuel */
    t_point = &p;
    int code = setjmp(p.jb);
    if (code) {
        t_point = NULL;
        in->dead = true;
        return code;
    }
    *ret = invoke(in->w2c, e, f, a0, a1, a2);
    t_point = NULL;
    return 0;
}

typedef void (*fn_v5)(void *, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t);

int arc_pl__call5(struct arc_pl_inst *in, enum arc_pl_export e, uint32_t a0, uint32_t a1,
                  uint32_t a2, uint32_t a3, uint32_t a4)
{
    if (in->dead)
        return ARC_TRAP_UNSUPPORTED;
    arc_w2c_fn f = in->pl->mod.m->exports[e];
    if (!f || t_point)
        return 0;                       /* (never nested: only from the worker's loop) */
    struct point p;
    struct arc_w2c_hdr *h = hdr_of(in);
    h->fuel = ARC_W2C_FUEL_SLICE;
    h->depth = 0;
    h->stack_floor = (char *)__builtin_frame_address(0) - ARC_W2C_STACK_MAX;
    in->deadline_ns = 0;                /* set at the first refuel: see host_refuel */
    t_point = &p;
    int code = setjmp(p.jb);
    if (code) {
        t_point = NULL;
        in->dead = true;
        return code;
    }
    ((fn_v5)f)(in->w2c, a0, a1, a2, a3, a4);
    t_point = NULL;
    return 0;
}

int arc_pl__call_seq(struct arc_pl_inst *in, const enum arc_pl_export *ev, size_t n, uint32_t a0)
{
    if (in->dead)
        return ARC_TRAP_UNSUPPORTED;
    if (t_point)
        return -1;                      /* (never nested: only the end of an exchange) */
    struct point p;
    struct arc_w2c_hdr *h = hdr_of(in);
    h->fuel = ARC_W2C_FUEL_SLICE;
    h->depth = 0;
    h->stack_floor = (char *)__builtin_frame_address(0) - ARC_W2C_STACK_MAX;
    in->deadline_ns = 0;                /* set at the first refuel: see host_refuel */
    t_point = &p;
    int code = setjmp(p.jb);
    if (code) {
        t_point = NULL;
        in->dead = true;
        return code;
    }
    for (size_t i = 0; i < n; i++) {
        arc_w2c_fn f = in->pl->mod.m->exports[ev[i]];
        if (f)
            invoke(in->w2c, ev[i], f, a0, 0, 0);
    }
    t_point = NULL;
    return 0;
}

static int guarded_instantiate(struct arc_pl_inst *in)
{
    struct point p;
    struct arc_w2c_hdr *h = hdr_of(in);
    h->fuel = ARC_W2C_FUEL_SLICE;
    h->depth = 0;
    h->stack_floor = (char *)__builtin_frame_address(0) - ARC_W2C_STACK_MAX;
    h->host = in;
    in->deadline_ns = 0;                /* set at the first refuel: see host_refuel */
    t_point = &p;
    int code = setjmp(p.jb);
    if (code) {
        t_point = NULL;
        return code;
    }
    in->pl->mod.m->instantiate(in->w2c, in);
    t_point = NULL;
    return 0;
}

static const char *trap_text(int code)
{
    switch (code) {
    case 1: return "out-of-bounds memory access";
    case 2: return "integer overflow";
    case 3: return "integer divide by zero";
    case 4: return "invalid conversion";
    case 5: return "unreachable executed";
    case 6: return "invalid indirect call";
    case 7: return "uncaught exception";
    case 8: return "call stack exhausted";
    case ARC_TRAP_BUDGET: return "CPU budget exceeded";
    case ARC_TRAP_EXIT: return "the module exited (proc_exit / abort)";
    case ARC_TRAP_OOM: return "out of memory";
    case ARC_TRAP_UNSUPPORTED: return "unsupported feature (exceptions or an unknown import)";
    }
    return "trap";
}

static void inst_release(struct arc_pl_inst *in)
{
    if (in->w2c) {
        in->pl->mod.m->free(in->w2c);
        free(in->w2c);
        in->w2c = NULL;
    }
}

/* Instantiates and configures `in` (its pl set). */
static int inst_build(struct arc_pl_inst *in, char *err, size_t err_len)
{
    const struct arc_pl_plugin *pl = in->pl;
    const struct arc_w2c_module *m = pl->mod.m;
    in->w2c = calloc(1, m->inst_size);
    if (!in->w2c) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    in->dead = false;
    in->tick_ms = 0;                    /* (the new instance asks again if it wants) */
    in->live = NULL;                    /* contexts of the old generation are gone */
    in->next_ctx = pl->n_roots + 1;
    in->cfg_root = 0;
    in->cur = NULL;
    in->root_now = 1;                   /* (start, vm_start: the first root context) */
    in->budget_ns = pl->budget_ns;
    int code = guarded_instantiate(in);
    if (code) {
        snprintf(err, err_len, "instantiation failed: %s", trap_text(code));
        goto fail;
    }
    in->mem = m->memory(in->w2c);
    if (in->mem->pages > pl->max_pages) {
        snprintf(err, err_len, "the module's initial memory (%u pages of 64 KiB) is over "
                 "max_memory", in->mem->pages);
        goto fail;
    }
    if (in->mem->max_pages > pl->max_pages)
        in->mem->max_pages = pl->max_pages;
    uint32_t r;
    if ((code = arc_pl__call(in, PLX_INITIALIZE, &r, 0, 0, 0, 0)) ||
        (code = arc_pl__call(in, PLX_ON_CONTEXT_CREATE, &r, 2, 1, 0, 0))) {
        snprintf(err, err_len, "start failed: %s", trap_text(code));
        goto fail;
    }
    if ((code = arc_pl__call(in, PLX_ON_VM_START, &r, 2, 1, 0, 0)) ||
        (pl->mod.m->exports[PLX_ON_VM_START] && r == 0)) {
        snprintf(err, err_len, "proxy_on_vm_start %s", code ? trap_text(code) : "returned false");
        goto fail;
    }
    /* Root context 1 has the plugin's configuration; each distinct
     * per-route configuration has a root context of its own. */
    for (uint32_t k = 0; k < pl->n_roots; k++) {
        in->cfg_root = k;
        in->root_now = k + 1;
        if (k && (code = arc_pl__call(in, PLX_ON_CONTEXT_CREATE, &r, 2, k + 1, 0, 0)))
            break;
        if ((code = arc_pl__call(in, PLX_ON_CONFIGURE, &r, 2, k + 1, (uint32_t)pl->roots[k].len, 0)) ||
            (pl->mod.m->exports[PLX_ON_CONFIGURE] && r == 0))
            break;
    }
    if (code || (pl->n_roots && pl->mod.m->exports[PLX_ON_CONFIGURE] && r == 0)) {
        snprintf(err, err_len, "proxy_on_configure %s%s",
                 code ? trap_text(code) : "returned false (the plugin rejected its config)",
                 in->cfg_root ? " (a route's plugins[].config)" : "");
        goto fail;
    }
    in->cfg_root = 0;
    in->root_now = 0;
    return 0;
fail:
    inst_release(in);
    in->dead = true;
    in->root_now = 0;
    return -1;
}

int arc_pl__inst_rebuild(struct arc_pl_inst *in)
{
    char err[256];
    inst_release(in);
    in->gen++;
    if (inst_build(in, err, sizeof(err)) < 0) {
        arc_log(ARC_LOG_ERROR, "plugin '%s': rebuilding an instance failed: %s", in->pl->name, err);
        return -1;
    }
    return 0;
}

const char *arc_pl__trap_text(int code)
{
    return trap_text(code);
}

/* ------------------------------------------------------------ sets */

static int load_module(struct arc_pl_plugin *pl, const char *so, char *err, size_t err_len)
{
    /* RTLD_LOCAL: every module keeps its own hidden runtime. */
    void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, err_len, "cannot load the compiled module: %s", dlerror());
        return -1;
    }
    const struct arc_w2c_module *m = dlsym(dl, "arc_w2c_module_v1");
    if (!m || m->abi != ARC_W2C_ABI) {
        dlclose(dl);
        snprintf(err, err_len, "%.300s is not a module built by this Arc", so);
        return -1;
    }
    pl->mod = (struct arc_pl_module){ .dl = dl, .m = m };
    pl->body_mask = (m->exports[PLX_ON_REQUEST_BODY] ? ARC_PL_HAS_REQ_BODY : 0) |
                    (m->exports[PLX_ON_RESPONSE_BODY] ? ARC_PL_HAS_RESP_BODY : 0) |
                    (m->exports[PLX_ON_REQUEST_TRAILERS] ? ARC_PL_HAS_REQ_TRAILERS : 0) |
                    (m->exports[PLX_ON_RESPONSE_TRAILERS] ? ARC_PL_HAS_RESP_TRAILERS : 0);
    m->set_host(&g_host);
    m->init_module();
    return 0;
}

static void add_err(struct arc_config_errors *errs, const struct arc_plugin_conf *pc,
                    const char *source, const char *msg)
{
    if (errs->n == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 8;
        struct arc_config_error *v = realloc(errs->v, cap * sizeof(*v));
        if (!v)
            return;
        errs->v = v;
        errs->cap = cap;
    }
    char full[700];
    snprintf(full, sizeof(full), "plugins.wasm '%s': %s", pc->name, msg);
    errs->v[errs->n++] = (struct arc_config_error){
        .file = strdup(pc->pos_file ? pc->pos_file : source ? source : "<config>"),
        .line = pc->line, .col = pc->col, .msg = strdup(full),
    };
}

int arc_plugin_set_new(const struct arc_config *cfg, unsigned n_workers,
                       struct arc_pl_set **out, struct arc_config_errors *errs)
{
    *out = NULL;
    if (cfg->n_plugins == 0)
        return 0;
    if (n_workers == 0)
        n_workers = 1;
    struct arc_pl_set *set = calloc(1, sizeof(*set));
    if (!set || !(set->pl = calloc(cfg->n_plugins, sizeof(*set->pl)))) {
        free(set);
        return -1;
    }
    set->n = cfg->n_plugins;
    int rc = 0;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        const struct arc_plugin_conf *pc = &cfg->plugins[i];
        struct arc_pl_plugin *pl = &set->pl[i];
        pl->name = pc->name;
        pl->root_id = pc->root_id ? pc->root_id : pc->name;
        pl->n_roots = (uint32_t)(1 + pc->n_route_configs);
        pl->roots = calloc(pl->n_roots, sizeof(*pl->roots));
        if (!pl->roots) {
            rc = -1;
            continue;
        }
        const char *c0 = pc->config_json ? pc->config_json : "";
        pl->roots[0] = (struct arc_str){ c0, strlen(c0) };
        for (size_t k = 0; k < pc->n_route_configs; k++)
            pl->roots[k + 1] = (struct arc_str){ pc->route_configs[k],
                                                 strlen(pc->route_configs[k]) };
        pl->budget_ns = pc->budget_ms * 1000000ull;
        pl->pause_ms = pc->pause_timeout_ms;
        pl->max_body = pc->max_body_buffer;
        pl->max_queues = pc->max_queues;
        pl->max_queue_items = pc->max_queue_items;
        pl->max_queue_bytes = pc->max_queue_bytes;
        pl->max_call_body = pc->max_call_body;
        /* (0: a config built without the schema's defaults) */
        pl->max_root_calls = pc->max_root_calls ? pc->max_root_calls : 16;
        pl->max_pages = (uint32_t)(pc->max_memory / 65536);
        pl->pool = pc->pool;
        pl->fail_open = pc->fail_open;
        char so[4096], err[512];
        /* (0: a config built without the schema's defaults) */
        uint32_t tmo = cfg->plugin_compile_timeout_ms ? (uint32_t)cfg->plugin_compile_timeout_ms
                                                      : ARC_PLUGIN_COMPILE_TIMEOUT_MS;
        if ((arc_pl__defer_armed()
                 ? arc_pl__defer_lookup(pc->file, cfg->plugin_cache_dir,
                                        tmo, so, sizeof(so), err, sizeof(err))
                 : arc_pl__build(pc->file, cfg->plugin_cache_dir, tmo, so, sizeof(so), err,
                                 sizeof(err))) < 0 ||
            load_module(pl, so, err, sizeof(err)) < 0) {
            add_err(errs, pc, cfg->source, err);
            rc = -1;
            continue;
        }
        pthread_mutex_init(&pl->metric_lock, NULL);
        pl->n_workers = n_workers;
        pl->w = calloc(n_workers, sizeof(*pl->w));
        if (!pl->w) {
            rc = -1;
            continue;
        }
        for (unsigned w = 0; w < n_workers && rc == 0; w++) {
            pl->w[w].inst = calloc(pl->pool, sizeof(*pl->w[w].inst));
            if (!pl->w[w].inst) {
                rc = -1;
                break;
            }
            for (uint32_t k = 0; k < pl->pool; k++) {
                struct arc_pl_inst *in = &pl->w[w].inst[k];
                in->pl = pl;
                in->slot = &pl->w[w];
                arc_timer_init(&in->tick, arc_pl__on_tick);
                if (inst_build(in, err, sizeof(err)) < 0) {
                    add_err(errs, pc, cfg->source, err);
                    rc = -1;
                    break;
                }
            }
        }
    }
    if (rc < 0) {
        arc_plugin_set_free(set);
        return -1;
    }
    *out = set;
    return 0;
}

void arc_plugin_set_free(struct arc_pl_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        struct arc_pl_plugin *pl = &set->pl[i];
        for (unsigned w = 0; pl->w && w < pl->n_workers; w++) {
            for (uint32_t k = 0; pl->w[w].inst && k < pl->pool; k++)
                if (pl->w[w].inst[k].pl)
                    inst_release(&pl->w[w].inst[k]);
            free(pl->w[w].inst);
            for (uint32_t k = 0; k < pl->w[w].n_shared; k++) {
                free(pl->w[w].shared[k].key);
                free(pl->w[w].shared[k].value);
            }
            free(pl->w[w].shared);
            arc_pl__queues_free(&pl->w[w]);
        }
        free(pl->w);
        free(pl->roots);
        if (pl->w)
            pthread_mutex_destroy(&pl->metric_lock);
        if (pl->mod.dl)
            dlclose(pl->mod.dl);
    }
    free(set->pl);
    free(set);
}

int arc_plugin_index(const struct arc_pl_set *set, const char *name)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (strcmp(set->pl[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* A live instance of plugin `pl` for `worker` (round robin over the pool),
 * rebuilding a dead one unless backing off; NULL when none is available. */
struct arc_pl_inst *arc_pl__pick(struct arc_pl_plugin *pl, unsigned worker, uint64_t now_ms)
{
    if (worker >= pl->n_workers)
        return NULL;
    struct arc_pl_wslot *s = &pl->w[worker];
    struct arc_pl_inst *in = &s->inst[s->rr++ % pl->pool];
    if (!in->dead)
        return in;
    if (now_ms < s->retry_ms)
        return NULL;
    if (arc_pl__inst_rebuild(in) < 0) {
        s->backoff_ms = s->backoff_ms ? ARC_MIN(s->backoff_ms * 2, 10000u) : 100;
        s->retry_ms = now_ms + s->backoff_ms;
        return NULL;
    }
    s->backoff_ms = 0;
    return in;
}
