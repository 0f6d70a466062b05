/**
 * proxy-wasm plugins: modules compiled ahead of time (.wasm → wasm2c → cc →
 * .so, cached by content hash), loaded with dlopen when a config is
 * compiled, and run per worker with their own instances (nothing shared
 * between workers). Every guest call is contained: a trap (out-of-bounds
 * access, unreachable, stack exhaustion, proc_exit) or a call that runs
 * past its CPU budget unwinds to the host, the instance is discarded and
 * rebuilt, and the exchange gets the plugin's on_error policy.
 *
 * Lifetimes: a plugin set belongs to one snapshot (built on the control
 * thread by arc_plugin_set_new, freed with the snapshot). Its per-worker
 * instances are touched only by that worker (slice `worker` of each
 * plugin). A per-exchange run (struct arc_pl_run) lives in the exchange's
 * arena and ends with arc_pl_run_end.
 */
#ifndef ARC_PLUGIN_PLUGIN_H
#define ARC_PLUGIN_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/common.h"

struct arc_config;
struct sockaddr;
struct arc_plugin_conf;
struct arc_config_errors;
struct arc_pl_set;
struct arc_pl_plugin;

/* A header field as the host sees it (same layout as the proxy's views). */
struct arc_pl_field {
    struct arc_str name, value;
};

/* A mutable header map for one stage: pseudo-headers first (":method",
 * ":path", ":authority", ":scheme" for requests, ":status" for responses),
 * then the fields. Entries live in `arena`. */
#define ARC_PL_MAP_MAX_FIELDS 1024          /* entries a filter may grow a map to */
#define ARC_PL_MAP_MAX_BYTES (256u << 10)   /* name + value bytes added by filters */
#define ARC_PL_LOCAL_BODY_MAX (1u << 20)    /* body of a proxy_send_local_response */
struct arc_pl_hmap {
    struct arc_pl_field *v;
    size_t n, cap;
    size_t added;                       /* bytes filters added (ARC_PL_MAP_MAX_BYTES) */
    struct arc_arena *arena;
    bool changed;
};

/* What proxy_get_property can answer about the exchange (views valid for
 * the exchange's life). */
struct arc_pl_props {
    struct arc_str method, path, url_path, authority, scheme, protocol, route_name;
    const struct sockaddr *source;      /* the client (formatted only when asked), or NULL */
    uint64_t start_ns;                  /* request.time, wall clock ns */
};

/* A local answer a filter asked for (proxy_send_local_response). */
struct arc_pl_local {
    int status;
    struct arc_str body;
    struct arc_pl_field *hdrs;
    size_t n_hdrs;
};

enum arc_pl_verdict {
    ARC_PL_CONTINUE = 0,    /* go on (fail_open failures included) */
    ARC_PL_TOO_LARGE = 4,   /* a body a filter buffered outgrew its max_body_buffer */
    ARC_PL_LOCAL,           /* answer with run->local */
    ARC_PL_FAIL,            /* fail_closed failure: answer 500 (504 for a pause timeout) */
    ARC_PL_PAUSE,           /* a filter paused the request: wait for arc_pl_resume */
};

/* Why the last stage's guest call failed (counted by the caller). */
enum arc_pl_fail {
    ARC_PL_FAIL_NONE = 0,
    ARC_PL_FAIL_TRAP,       /* a trap: out of bounds, unreachable, stack, proc_exit */
    ARC_PL_FAIL_BUDGET,     /* the call ran past the plugin's budget */
    ARC_PL_FAIL_UNAVAILABLE,/* no healthy instance (rebuild failed; backing off) */
    ARC_PL_FAIL_TIMEOUT,    /* a paused request was not continued within pause_timeout */
};

/* proxy_http_call: what the filter asked for (views valid during the
 * dispatch call only), who to answer, and the answer. */
struct arc_pl_caller {
    void *inst;                         /* struct arc_pl_inst * (lives as long as its set) */
    uint32_t ctx_id, gen, token;        /* ctx_id: the HTTP context, or the root context
                                           when `root` */
    bool root;                          /* made from a root context (no exchange) */
};
struct arc_pl_call_req {
    struct arc_str upstream;            /* an upstreams[] name */
    const struct arc_pl_hmap *hdrs;     /* :method, :path, :authority, then fields */
    struct arc_str body;
    uint32_t timeout_ms;
    uint64_t max_body;                  /* largest answer body kept (the plugin's
                                           max_call_body); a longer one fails the call */
};
struct arc_pl_call_resp {
    bool ok;                            /* false: failed (no answer, timeout, bad upstream) */
    const struct arc_pl_hmap *hdrs;     /* :status first (NULL when failed) */
    struct arc_str body;
    const struct arc_pl_hmap *trailers; /* or NULL */
};
/* Dispatches a call for the filter; 0 = started (the answer comes later
 * through arc_pl_http_call_done, on the same worker, never from inside
 * this call), else a proxy-wasm status (NotFound: no such upstream,
 * BadArgument, InternalFailure). */
typedef uint32_t (*arc_pl_dispatch_fn)(void *owner, const struct arc_pl_call_req *req,
                                       const struct arc_pl_caller *who);

/* A body buffer (heap; bodies can be large, arenas only grow). */
struct arc_pl_buf {
    char *p;
    size_t len, cap;
};
/* Room for `need` bytes in b (grown by doubling from 4 KiB); false when
 * memory ran out (b unchanged). */
bool arc_pl_buf_reserve(struct arc_pl_buf *b, size_t need);
/* Appends p[0..len) to b; false when memory ran out (b unchanged). */
bool arc_pl_buf_add(struct arc_pl_buf *b, const void *p, size_t len);

/* Which body and trailer callbacks a module exports (arc_pl_run.body_mask). */
#define ARC_PL_HAS_REQ_BODY 1u
#define ARC_PL_HAS_RESP_BODY 2u
#define ARC_PL_HAS_REQ_TRAILERS 4u
#define ARC_PL_HAS_RESP_TRAILERS 8u
#define ARC_PL_HAS_REQ (ARC_PL_HAS_REQ_BODY | ARC_PL_HAS_REQ_TRAILERS)
#define ARC_PL_HAS_RESP (ARC_PL_HAS_RESP_BODY | ARC_PL_HAS_RESP_TRAILERS)
enum arc_pl_dir { ARC_PL_DIR_REQ = 0, ARC_PL_DIR_RESP = 1 };
/* The stage a run paused in (arc_pl_run.pause_stage). */
enum { ARC_PL_STAGE_HEAD = 0, ARC_PL_STAGE_BODY, ARC_PL_STAGE_TRAILERS };

/* One exchange's plugin contexts: one per plugin on its route. */
struct arc_pl_run {
    struct arc_pl_set *set;
    unsigned worker;
    size_t n;
    struct arc_pl_ctx *ctx;             /* [n] */
    struct arc_pl_hmap *map;            /* the map of the stage running */
    int map_type;                       /* its proxy-wasm map type */
    struct arc_pl_hmap *req_map;        /* request headers, readable afterwards */
    const struct arc_pl_props *props;
    struct arc_pl_local local;
    bool has_local;
    enum arc_pl_fail fail;              /* of the last stage, ARC_PL_FAIL_NONE if none */
    struct arc_arena *arena;
    /* Pause (request or response headers): the stage stopped at ctx[next];
     * it goes on from ctx[next + 1] in arc_pl_resume. */
    bool paused;
    bool pause_resp;                    /* the stage paused is the response's */
    uint8_t pause_stage;                /* ARC_PL_STAGE_*: which stage paused */
    bool resume_req;                    /* proxy_continue_stream for the paused context
                                           (or for the context being called) */
    bool stage_eos;
    size_t next;
    uint64_t pause_ms;                  /* the pausing plugin's pause_timeout */
    /* Set by the exchange's side: told (from inside a guest call, so it
     * must only schedule) that a paused run can go on. */
    void (*notify)(void *owner);
    void *owner;
    arc_pl_dispatch_fn dispatch;        /* proxy_http_call (NULL: Unimplemented) */
    int pfail;                          /* a trap while paused (e.g. in
                                           proxy_on_http_call_response), 0 if none */
    /* Bodies and trailers: 0 for header-only filters (then nothing below
     * is used and the exchange pays nothing for it). */
    unsigned body_mask;                 /* ARC_PL_HAS_* of the run's filters, ORed */
    struct arc_pl_buf work[2];          /* per direction: the bytes passing the filters */
    struct arc_pl_buf *body;            /* the buffer offered to the callback running */
    int body_type;                      /* its proxy-wasm buffer type (0 or 1) */
    bool body_eos[2];                   /* end_of_stream was given, per direction */
    /* Trailers a filter added in its body's last call (end_of_stream) to a
     * message that may have none (map type 1 / 3 then); NULL if none. */
    struct arc_pl_hmap *tmap[2];
    void *glue;                         /* the exchange side's state (plugins.c) */
};

/**
 * Compiles (or finds in the cache) and loads every module of cfg's
 * plugins.wasm[], instantiates `n_workers` × pool instances of each and
 * configures them (proxy_on_vm_start, proxy_on_configure). Returns 0 and
 * *out (NULL when there are no plugins), or -1 with positioned errors
 * appended. Thread: control.
 */
int arc_plugin_set_new(const struct arc_config *cfg, unsigned n_workers,
                       struct arc_pl_set **out, struct arc_config_errors *errs);
void arc_plugin_set_free(struct arc_pl_set *set);

/*
 * Reload compiles off the control thread (defer.c). While armed, a set
 * does not compile: a module missing from the cache is recorded and fails
 * the set with "compile pending" (one whose last background compile failed
 * fails with that compile's error). Arming (on or off) clears the record.
 * arc_plugin_compile_start compiles the recorded modules on a thread (0,
 * or -1: nothing recorded, one running, or no thread); poll
 * arc_plugin_compile_done, then arc_plugin_compile_join (blocks until the
 * thread ends; returns how many modules it compiled) keeps its failures
 * for the next set until arc_plugin_compile_forget. Thread: control.
 */
void arc_plugin_defer_arm(bool on);
size_t arc_plugin_defer_missing(void);
int arc_plugin_compile_start(void);
bool arc_plugin_compile_running(void);
bool arc_plugin_compile_done(void);
size_t arc_plugin_compile_join(void);
void arc_plugin_compile_forget(void);
/* Joins a compile still running and frees everything (control loop exit). */
void arc_plugin_compile_shutdown(void);

/* Index of a plugin by name, or -1. */
int arc_plugin_index(const struct arc_pl_set *set, const char *name);

/**
 * Starts a run for an exchange on `worker` over the plugins listed (indexes
 * into the set) with their root configurations (arc_route_conf's
 * plugin_roots; NULL = each plugin's own), allocating from `arena`.
 * Returns NULL on out of memory.
 */
struct arc_pl_run *arc_pl_run_new(struct arc_pl_set *set, unsigned worker,
                                  const uint32_t *plugins, const uint32_t *roots, size_t n,
                                  struct arc_arena *arena, const struct arc_pl_props *props);

/* on_request_headers / on_response_headers of each plugin in order over
 * `map`. ARC_PL_LOCAL: run->local holds the answer. `now_ms` drives the
 * failure back-off. Thread: the run's worker. */
enum arc_pl_verdict arc_pl_request_headers(struct arc_pl_run *run, struct arc_pl_hmap *map,
                                           bool end_of_stream, uint64_t now_ms);
enum arc_pl_verdict arc_pl_response_headers(struct arc_pl_run *run, struct arc_pl_hmap *map,
                                            bool end_of_stream, uint64_t now_ms);
/* After ARC_PL_PAUSE: the paused stage (request or response head, body end
 * or trailers: see run->pause_resp, run->pause_stage) goes on once notify was called (proxy_continue_stream
 * or proxy_send_local_response for the paused context), or fails with
 * ARC_PL_FAIL_TIMEOUT (the plugin's on_error policy) when the wait's
 * deadline passed first. Returns the stage's
 * verdict (ARC_PL_PAUSE again if a later filter pauses). A body stage's
 * output is then in arc_pl_body_out; a trailer stage's map is the one given
 * to arc_pl_trailers. */
enum arc_pl_verdict arc_pl_resume(struct arc_pl_run *run, uint64_t now_ms);
/* The bytes a body stage passed on after arc_pl_resume (valid until the
 * next call for `dir`). */
void arc_pl_body_out(struct arc_pl_run *run, int dir, const char **out, size_t *out_len);
/* A body or trailer stage paused on `dir` is given up (the exchange no
 * longer needs it: e.g. the response arrived before the request's end). */
void arc_pl_abandon(struct arc_pl_run *run);
/* The answer to a proxy_http_call: proxy_on_http_call_response on the
 * calling context if it still exists (else dropped): an HTTP context not
 * ended yet, or a root context of the same instance, not rebuilt since,
 * on a worker still running its configuration. Called once for every call
 * dispatched (it ends the call's count against max_root_calls). Worker
 * thread, outside any guest call. */
void arc_pl_http_call_done(const struct arc_pl_caller *who, const struct arc_pl_call_resp *resp);
/**
 * A body chunk (p, len; end_of_stream `eos`) of direction `dir` through the
 * filters that export proxy_on_request_body / proxy_on_response_body, in
 * order. A filter returning Continue passes the (possibly rewritten) bytes
 * to the next; any other action holds them (buffered in its context, up to
 * its plugin's max_body_buffer) and they are offered to it again, with the
 * next chunks appended, until it continues or the stream ends. On
 * ARC_PL_CONTINUE *out / *out_len are the bytes to pass on now (possibly
 * none; valid until the next call for `dir`). A filter that does not
 * continue at end_of_stream pauses the run (ARC_PL_PAUSE, the body it holds
 * kept, up to its max_body_buffer): arc_pl_resume goes on once it
 * continues. ARC_PL_LOCAL: run->local;
 * ARC_PL_FAIL: a fail_closed failure (run->fail); ARC_PL_TOO_LARGE: over a
 * max_body_buffer. After eos the direction is closed (later calls pass
 * bytes through). Thread: the run's worker.
 */
enum arc_pl_verdict arc_pl_body(struct arc_pl_run *run, int dir, const char *p, size_t len,
                                bool eos, uint64_t now_ms, const char **out, size_t *out_len);
/* proxy_on_request_trailers / proxy_on_response_trailers over `map` (map
 * type 1 or 3, writable). A filter that does not continue pauses the run
 * (ARC_PL_PAUSE; `map` must live until arc_pl_resume). */
enum arc_pl_verdict arc_pl_trailers(struct arc_pl_run *run, int dir, struct arc_pl_hmap *map,
                                    uint64_t now_ms);
/* proxy_on_done, proxy_on_log, proxy_on_delete for every context. */
void arc_pl_run_end(struct arc_pl_run *run);

/* proxy_on_tick: a worker runs the ticks of its instances of `set` on its
 * timer wheel from ticks_start (it adopted the snapshot) to ticks_stop
 * (before it lets the snapshot go). In between, a proxy_http_call from a
 * root context of those instances goes to `root_call(owner, …)` (NULL:
 * refused); an answer to one arriving after ticks_stop, or for an instance
 * rebuilt since, is dropped (logged). Thread: that worker. */
struct arc_tw;
void arc_plugin_ticks_start(struct arc_pl_set *set, unsigned worker, struct arc_tw *tw,
                            uint64_t now_ms, arc_pl_dispatch_fn root_call, void *owner);
void arc_plugin_ticks_stop(struct arc_pl_set *set, unsigned worker);

/* Appends the plugins' own metrics (proxy_define_metric) in Prometheus
 * text: arc_plugin_counter / arc_plugin_gauge / arc_plugin_histogram_{sum,count}
 * {plugin, name}, summed over workers. Thread: control. */
struct arc_sbuf;
void arc_plugin_metrics_render(struct arc_sbuf *out, const struct arc_pl_set *set);

/* Where compiled modules are kept unless plugins.cache_dir says otherwise
 * (heap string; NULL on out of memory). */
char *arc_plugin_default_cache_dir(void);

/* `arc plugin build [--cache-dir DIR] FILE.wasm...`: compiles each module
 * into the cache (as a config load would) and loads it once to check it;
 * prints "ok <object path>" per module. Exit status 0, 1 (a module failed,
 * said on stderr) or 2 (usage). */
int arc_plugin_cli(int argc, char **argv);

/* Header map helpers (lower-cased names; false = out of memory).
 * arc_pl_hmap_add copies name and value into the map's arena;
 * arc_pl_hmap_view keeps them as they are (they must outlive the map, e.g.
 * live in the same arena) and copies only a name that needs lower-casing. */
bool arc_pl_hmap_add(struct arc_pl_hmap *m, struct arc_str name, struct arc_str value);
bool arc_pl_hmap_view(struct arc_pl_hmap *m, struct arc_str name, struct arc_str value);
const struct arc_str *arc_pl_hmap_get(const struct arc_pl_hmap *m, const char *name, size_t len);


#endif
