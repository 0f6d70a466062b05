/*
 * Plugin module internals: the contract between Arc and a compiled module
 * (the "shim" build.c generates next to wasm2c's output), instances, and
 * the host functions.
 *
 * A compiled module (.so) exports one symbol, arc_w2c_module_v1 (struct
 * arc_w2c_module). Everything else in it is hidden. The module's imports
 * (env.proxy_*, wasi_unstable.proc_exit) are forwarders into the host's
 * table (struct arc_w2c_host); wasm2c's runtime (memories, tables, traps)
 * is the shim's own, with bounds-checked memory (no signal handler: a
 * fault in the host stays a crash, never a "plugin trap") and a trap that
 * calls the host, which longjmps to the per-thread point set around the
 * guest call.
 *
 * CPU budget: the generated C is rewritten so that every function entry
 * and every backward branch (a `goto` to a loop label) decrements a fuel
 * counter in the instance header; when it runs out the host checks the
 * monotonic clock against the call's deadline and either refills it or
 * traps (ARC_TRAP_BUDGET). No signal, no syscall per call; an infinite
 * loop or unbounded recursion cannot avoid a back-edge or a call.
 */
#ifndef ARC_PLUGIN_INT_H
#define ARC_PLUGIN_INT_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "plugin/plugin.h"
#include "loop/timer.h"

#define ARC_W2C_ABI 2

/* Trap codes beyond wasm2c's (wasm_rt_trap_t stays below 32). */
#define ARC_TRAP_BUDGET 40
#define ARC_TRAP_EXIT 41        /* proc_exit / abort from the guest */
#define ARC_TRAP_OOM 42         /* memory could not be allocated */
#define ARC_TRAP_UNSUPPORTED 43 /* exceptions, or an import Arc cannot run */

/* Fuel units (function entries + back-edges) between clock checks. */
#define ARC_W2C_FUEL_SLICE 65536

/* Placed by the host right after the wasm2c instance struct, at hdr_off. */
struct arc_w2c_hdr {
    int64_t fuel;
    uint32_t depth;             /* wasm2c's call stack depth, per instance */
    uint32_t pad;
    void *host;                 /* struct arc_pl_inst * */
    char *stack_floor;          /* a guest frame below this traps (stack exhausted) */
};

/* Native stack a guest call may use below the host frame that called it
 * (threads have 8 MiB; wasm2c frames hold a function's locals, so the
 * depth limit alone does not bound it). */
#define ARC_W2C_STACK_MAX (1u << 20)

typedef void (*arc_w2c_fn)(void);

struct arc_w2c_host {
    uint32_t abi;
    void (*trap)(uint32_t code) __attribute__((noreturn));
    void (*refuel)(struct arc_w2c_hdr *h);
    arc_w2c_fn const *fns;      /* [ARC_PL_IMPORTS] */
};

/* Exports the host calls (index into arc_w2c_module.exports). */
enum arc_pl_export {
    PLX_ABI_0_2_0, PLX_ABI_0_2_1,
    PLX_ON_VM_START, PLX_ON_CONFIGURE, PLX_ON_CONTEXT_CREATE,
    PLX_ON_REQUEST_HEADERS, PLX_ON_RESPONSE_HEADERS,
    PLX_ON_DONE, PLX_ON_LOG, PLX_ON_DELETE,
    PLX_ON_MEMORY_ALLOCATE, PLX_MALLOC, PLX_INITIALIZE, PLX_ON_QUEUE_READY,
    PLX_ON_HTTP_CALL_RESPONSE, PLX_ON_TICK,
    PLX_ON_REQUEST_BODY, PLX_ON_RESPONSE_BODY, PLX_ON_REQUEST_TRAILERS, PLX_ON_RESPONSE_TRAILERS,
    PLX__COUNT
};

struct arc_w2c_module {
    uint32_t abi;
    uint32_t hdr_off;           /* offset of struct arc_w2c_hdr in an instance */
    uint32_t inst_size;         /* hdr_off + sizeof(struct arc_w2c_hdr) */
    void (*set_host)(const struct arc_w2c_host *h);
    void (*init_module)(void);
    void (*instantiate)(void *inst, void *host_ctx);
    void (*free)(void *inst);
    void *(*memory)(void *inst);    /* wasm_rt_memory_t * */
    arc_w2c_fn exports[PLX__COUNT];
};

/* wasm2c's memory object (wasm-rt.h), mirrored to keep wasm-rt.h out of
 * Arc's own includes. */
struct arc_w2c_memory {
    uint8_t *data;
    uint32_t pages, max_pages;
    uint32_t size;
};

static inline uint64_t arc_pl__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ build.c */

/* Export names and signatures ("params>result", i = u32, I = u64). */
struct arc_pl_sig {
    const char *name;
    const char *sig;
};
extern const struct arc_pl_sig arc_pl__exports[PLX__COUNT];
/* Host functions for imports (module "env" unless said). */
#define ARC_PL_IMPORTS 37
extern const struct arc_pl_sig arc_pl__imports[ARC_PL_IMPORTS];
extern const arc_w2c_fn arc_pl__import_fns[ARC_PL_IMPORTS];

/* Builds (or finds in cache_dir) the shared object for `wasm_path`; the
 * path of the .so is written to so_path. 0, or -1 with a message. Each
 * tool (wasm2c, the C compiler) may run timeout_ms (killed after it).
 * Thread: any (runs them as child processes, reaped by pid; the only
 * shared state is the cache directory, written by rename). */
int arc_pl__build(const char *wasm_path, const char *cache_dir, uint32_t timeout_ms,
                  char *so_path, size_t so_len, char *err, size_t err_len);
/* While on, a tool arc_pl__build runs is killed at once (shutdown). */
void arc_pl__build_stop(bool on);
/* The cache lookup alone (reads and hashes the file, no compiler): 1 =
 * cached (so_path names it), 0 = not cached (so_path is where it would
 * go), -1 with a message (unreadable, not WebAssembly, bad cache dir).
 * hex receives the module's key. */
int arc_pl__cached(const char *wasm_path, const char *cache_dir, char *so_path, size_t so_len,
                   char hex[65], char *err, size_t err_len);

/* ------------------------------------------------------------ defer.c */

/* True while the control thread armed deferred compiles
 * (arc_plugin_defer_arm). */
bool arc_pl__defer_armed(void);
/* arc_pl__build's stand-in while armed: a cached module gives 0 and its
 * path; one whose last background compile failed gives -1 with that
 * compile's error; one not cached is recorded for arc_plugin_compile_start
 * and gives -1 ("compile pending"). */
int arc_pl__defer_lookup(const char *wasm_path, const char *cache_dir, uint32_t timeout_ms,
                         char *so_path, size_t so_len, char *err, size_t err_len);

/* ------------------------------------------------------------ host.c */

struct arc_pl_module {
    void *dl;
    const struct arc_w2c_module *m;
};

/* One instance: wasm2c's instance struct (+ header) and the host's state. */
struct arc_pl_inst {
    void *w2c;                          /* inst_size bytes, header at hdr_off */
    struct arc_pl_wslot *slot;          /* its worker's slot (shared data) */
    const struct arc_pl_plugin *pl;
    struct arc_w2c_memory *mem;
    uint32_t next_ctx;                  /* HTTP context ids: after the roots */
    uint32_t cfg_root;                  /* root whose configuration the buffer shows */
    bool dead;                          /* trapped: rebuilt before the next use */
    uint32_t gen;                       /* bumped on every rebuild (contexts check it) */
    uint64_t budget_ns;
    uint64_t deadline_ns;               /* of the call running (0: its first slice runs) */
    struct arc_pl_ctx *cur;             /* HTTP context of the call running, or NULL */
    const struct arc_pl_call_resp *call_resp; /* during proxy_on_http_call_response */
    uint32_t next_token;                /* proxy_http_call tokens */
    struct arc_timer tick;              /* proxy_on_tick, on the worker's wheel */
    uint32_t tick_ms;                   /* proxy_set_tick_period_milliseconds, 0 = none */
    uint32_t tick_root;                 /* the root context that asked */
    struct arc_pl_ctx *live;            /* HTTP contexts created on this instance (since
                                           its last rebuild) and not ended: what
                                           proxy_set_effective_context can switch to */
    uint32_t root_now;                  /* the root context of the root callback running
                                           (or switched to by proxy_set_effective_context)
                                           when cur is NULL; 0: none */
    uint32_t root_calls;                /* proxy_http_calls of its root contexts not
                                           answered yet (all generations: max_root_calls) */
};

/* proxy_{get,set}_shared_data: per plugin per worker (see docs/plugins.md). */
#define ARC_PL_SHARED_MAX_KEYS 1024
#define ARC_PL_SHARED_MAX_BYTES (1u << 20)      /* keys + values of one store */
struct arc_pl_shared {
    char *key, *value;                  /* heap */
    uint32_t klen, vlen, cas;
};

/* proxy_define_metric & co: definitions per plugin (appended under a
 * mutex: defining is rare, usually in proxy_on_configure), values per
 * worker (one writer each; /metrics sums them with relaxed loads). */
#define ARC_PL_MAX_METRICS 64
struct arc_pl_metric_def {
    char name[128];
    uint32_t type;                      /* 0 counter, 1 gauge, 2 histogram */
};
struct arc_pl_metric_val {
    _Atomic int64_t v;                  /* counter / gauge value, histogram sum */
    _Atomic uint64_t n;                 /* histogram: samples */
};

/* proxy_register_shared_queue & co: per plugin per worker, like shared
 * data (see docs/plugins.md). An item is one malloc'd block. */
/* (bounds: the plugin's max_queues, max_queue_items, max_queue_bytes) */
struct arc_pl_qitem {
    struct arc_pl_qitem *next;
    uint32_t len;
    char data[];
};
struct arc_pl_queue {
    char *name;                         /* heap */
    uint32_t nlen;
    uint32_t owner;                     /* pool index of the instance that registered it */
    uint32_t root;                      /* its root context id (proxy_on_queue_ready) */
    struct arc_pl_qitem *head, *tail;
    uint32_t n;
    size_t bytes;
    bool ready;                         /* proxy_on_queue_ready owed */
};

struct arc_pl_wslot {                   /* one worker's instances of a plugin */
    struct arc_pl_metric_val metrics[ARC_PL_MAX_METRICS];
    struct arc_pl_inst *inst;           /* [pool] */
    struct arc_pl_shared *shared;       /* the worker's shared data, survives rebuilds */
    uint32_t n_shared, cap_shared;
    size_t shared_bytes;
    uint32_t next_cas;
    struct arc_pl_queue *queues;        /* [n_queues], id = index + 1; survive rebuilds */
    uint32_t n_queues;
    bool queue_ready;                   /* some queue owes proxy_on_queue_ready */
    struct arc_pl_qitem *limbo;         /* dequeued, being copied to the guest */
    struct arc_tw *tw;                  /* the worker's wheel while its ticks run
                                           (arc_plugin_ticks_start), else NULL */
    arc_pl_dispatch_fn root_call;       /* proxy_http_call from a root context, while the
                                           worker runs this set (else NULL) */
    void *root_owner;
    uint32_t rr;
    uint64_t retry_ms;                  /* back-off: no rebuild before this */
    uint32_t backoff_ms;
};

struct arc_pl_plugin {
    char *name, *root_id;
    struct arc_str *roots;              /* [n_roots]: configurations of the root contexts:
                                           0 = the plugin's `config`, then the routes' own
                                           (context id = 1 + index) */
    uint32_t n_roots;
    uint64_t budget_ns;
    uint64_t pause_ms;                  /* pause_timeout */
    uint64_t max_body;                  /* max_body_buffer: bytes it may hold buffered */
    uint32_t max_queues, max_queue_items;   /* shared queues per worker, items per queue */
    uint64_t max_queue_bytes;           /* data queued in one queue */
    uint64_t max_call_body;             /* proxy_http_call: largest request or answer body */
    uint32_t max_root_calls;            /* root contexts' calls outstanding per instance */
    unsigned body_mask;                 /* ARC_PL_HAS_*: the body and trailer callbacks
                                           the module exports */
    uint32_t max_pages;                 /* max_memory in 64 KiB pages */
    uint32_t pool;
    bool fail_open;
    struct arc_pl_module mod;
    struct arc_pl_wslot *w;             /* [n_workers] */
    unsigned n_workers;
    struct arc_pl_metric_def metric_defs[ARC_PL_MAX_METRICS];
    _Atomic uint32_t n_metrics;         /* defs [0, n) are complete (release/acquire) */
    pthread_mutex_t metric_lock;        /* serialises definitions */
};

struct arc_pl_set {
    struct arc_pl_plugin *pl;
    size_t n;
};

struct arc_pl_ctx {
    uint32_t plugin;                    /* index in the set */
    bool dead;                          /* failed open: no more calls */
    struct arc_pl_inst *inst;           /* NULL: no instance (failure policy applied) */
    uint32_t gen;                       /* inst->gen when the context was created */
    uint32_t id;
    uint32_t root;                      /* index into pl->roots */
    bool created;
    bool linked;                        /* in inst->live (of generation gen) */
    struct arc_pl_run *run;
    struct arc_pl_ctx *live_next, *live_prev;
    struct arc_pl_buf held[2];          /* body it holds (StopIteration*), per direction */
};

/* Creates and configures an instance (start function, _initialize,
 * proxy_on_vm_start, proxy_on_configure). 0, or -1 with a message. */
int arc_pl__inst_new(const struct arc_pl_plugin *pl, struct arc_pl_inst **out,
                     char *err, size_t err_len);
/* Calls the one-argument exports ev[0..n) in order under one trap point
 * and one budget (the end of an exchange: on_done, on_log, on_delete). */
int arc_pl__call_seq(struct arc_pl_inst *in, const enum arc_pl_export *ev, size_t n, uint32_t a0);
/* Calls proxy_on_queue_ready on the owners of queues that received items
 * (worker thread, outside any guest call; a few rounds at most). */
void arc_pl__queues_deliver(struct arc_pl_wslot *s);
void arc_pl__queues_free(struct arc_pl_wslot *s);
/* The instance's tick timer callback (abi.c). */
void arc_pl__on_tick(struct arc_timer *t, uint64_t now_ms);
/* Discards a trapped instance's state and builds it again (gen + 1). */
int arc_pl__inst_rebuild(struct arc_pl_inst *in);
struct arc_pl_inst *arc_pl__pick(struct arc_pl_plugin *pl, unsigned worker, uint64_t now_ms);
const char *arc_pl__trap_text(int code);
/* proc_exit from the guest: unwinds the call as a trap. */
void arc_pl__exit_trap(void) __attribute__((noreturn));

/* ------------------------------------------------------------ abi.c, store.c */

/* proxy-wasm status codes (WasmResult). */
enum {
    WR_OK = 0, WR_NOT_FOUND = 1, WR_BAD_ARGUMENT = 2, WR_INVALID_MEMORY = 6, WR_EMPTY = 7,
    WR_CAS_MISMATCH = 8, WR_INTERNAL = 10, WR_UNIMPLEMENTED = 12,
};

/* The guest's bytes [ptr, ptr + len), or NULL when not inside its memory. */
static inline uint8_t *arc_pl__gmem(struct arc_pl_inst *in, uint32_t ptr, uint32_t len)
{
    if ((uint64_t)ptr + len > in->mem->size)
        return NULL;
    return in->mem->data + ptr;
}

static inline bool arc_pl__put_u32(struct arc_pl_inst *in, uint32_t ptr, uint32_t v)
{
    uint8_t *p = arc_pl__gmem(in, ptr, 4);
    if (!p)
        return false;
    memcpy(p, &v, 4);                   /* wasm is little-endian, like x86-64 */
    return true;
}

/* Copies len bytes into memory the guest's allocator gives and stores its
 * address and size at ret_ptr / ret_size (a status). */
uint32_t arc_pl__ret_bytes(struct arc_pl_inst *in, const void *data, size_t len,
                           uint32_t ret_ptr, uint32_t ret_size);

/* Host functions in store.c (the import table is in abi.c). */
uint32_t arc_pl__h_get_shared_data(void *e, uint32_t kp, uint32_t kn, uint32_t ret_ptr,
                                   uint32_t ret_size, uint32_t ret_cas);
uint32_t arc_pl__h_set_shared_data(void *e, uint32_t kp, uint32_t kn, uint32_t vp, uint32_t vn,
                                   uint32_t cas);
uint32_t arc_pl__h_register_queue(void *e, uint32_t np, uint32_t nl, uint32_t ret);
/* calls.c */
uint32_t arc_pl__h_http_call(void *e, uint32_t up, uint32_t upl, uint32_t hp, uint32_t hl,
                             uint32_t bp, uint32_t bl, uint32_t tp, uint32_t tl, uint32_t timeout,
                             uint32_t ret);
/* abi.c: a guest's serialised header pairs into `out` (pseudo-headers
 * allowed or BadArgument). */
uint32_t arc_pl__parse_pairs(struct arc_pl_inst *in, uint32_t p, uint32_t n, struct arc_pl_hmap *out,
                             bool allow_pseudo);
uint32_t arc_pl__h_resolve_queue(void *e, uint32_t vp, uint32_t vl, uint32_t np, uint32_t nl,
                                 uint32_t ret);
uint32_t arc_pl__h_enqueue(void *e, uint32_t id, uint32_t dp, uint32_t dl);
uint32_t arc_pl__h_dequeue(void *e, uint32_t id, uint32_t ret_ptr, uint32_t ret_size);
uint32_t arc_pl__h_define_metric(void *e, uint32_t type, uint32_t np, uint32_t nn, uint32_t ret);
uint32_t arc_pl__h_increment_metric(void *e, uint32_t id, uint64_t off);
uint32_t arc_pl__h_record_metric(void *e, uint32_t id, uint64_t value);
uint32_t arc_pl__h_get_metric(void *e, uint32_t id, uint32_t ret);

/* Calls export `e` with up to three u32 arguments inside a trap point and
 * the instance's budget. Returns 0 (result in *ret) or the trap code. A
 * call from inside a host function (the guest's allocator) runs under the
 * outer call's trap point. */
int arc_pl__call(struct arc_pl_inst *in, enum arc_pl_export e, uint32_t *ret, int nargs,
                 uint32_t a0, uint32_t a1, uint32_t a2);
/* proxy_on_http_call_response(ctx, token, headers, body size, trailers). */
int arc_pl__call5(struct arc_pl_inst *in, enum arc_pl_export e, uint32_t a0, uint32_t a1,
                  uint32_t a2, uint32_t a3, uint32_t a4);

#endif
