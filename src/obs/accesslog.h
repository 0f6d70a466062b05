/**
 * Access log: fixed-size records that workers push into their own
 * single-producer single-consumer ring, and one writer thread that drains
 * every ring, formats NDJSON and writes it in batches (file and/or stdout),
 * rotating the file by size and gzip-compressing rotated files on a
 * separate thread.
 *
 *   worker 0 ──push──▶ ring 0 ─┐
 *   worker 1 ──push──▶ ring 1 ─┼──▶ writer thread ──write(2)──▶ file / stdout
 *   worker N ──push──▶ ring N ─┘        │ rotate: rename, reopen
 *                                       └──▶ compressor thread (zlib) ──▶ F.<time>.gz
 *
 * A worker never blocks and never takes a lock: a full ring drops the record
 * and counts it (ring->dropped). Head and tail sit on separate cache lines;
 * each is written by one side only (plain release stores, no read-modify-
 * write). The writes are plain write(2) calls on the writer thread, which
 * is the only thread that waits on the disk.
 *
 * Variable-length fields are truncated to the caps below (a truncated
 * field's name is listed in the line's "truncated" array).
 *
 * Thread: arc_alog_start / arc_alog_stop on the main thread before workers
 * start / after they stopped; arc_alog_ring from workers (read-only table);
 * arc_alog_reopen and arc_alog_stats from any thread.
 */
#ifndef ARC_OBS_ACCESSLOG_H
#define ARC_OBS_ACCESSLOG_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "core/sbuf.h"

struct arc_logging_conf;

/* Caps of the variable-length fields, in bytes (the record keeps a NUL). */
#define ARC_ALOG_METHOD   24
#define ARC_ALOG_HOST     128
#define ARC_ALOG_PATH     512
#define ARC_ALOG_QUERY    256
#define ARC_ALOG_NAME     64      /* route and upstream names */
#define ARC_ALOG_ADDR     56      /* upstream "ip:port" */
#define ARC_ALOG_RID      64      /* X-Request-Id */
#define ARC_ALOG_TLSV     16
#define ARC_ALOG_CIPHER   64
#define ARC_ALOG_SNI      128
#define ARC_ALOG_SUBJECT  192
#define ARC_ALOG_UA       192
#define ARC_ALOG_REFERER  192

/* The string fields of a record (arc_alog_str / arc_alog_put). */
enum {
    ARC_ALOG_S_METHOD, ARC_ALOG_S_HOST, ARC_ALOG_S_PATH, ARC_ALOG_S_QUERY, ARC_ALOG_S_ROUTE,
    ARC_ALOG_S_UPSTREAM, ARC_ALOG_S_UPSTREAM_ADDR, ARC_ALOG_S_REQUEST_ID, ARC_ALOG_S_TLS_VERSION,
    ARC_ALOG_S_TLS_CIPHER, ARC_ALOG_S_TLS_SNI, ARC_ALOG_S_TLS_SUBJECT, ARC_ALOG_S_USER_AGENT,
    ARC_ALOG_S_REFERER, ARC_ALOG_S__COUNT
};

/* Room for every field at its cap (each cap counts the field's NUL), plus
 * the empty string at offset 0. */
#define ARC_ALOG_STR_BYTES (1 + ARC_ALOG_METHOD + ARC_ALOG_HOST + ARC_ALOG_PATH + ARC_ALOG_QUERY + \
                            2 * ARC_ALOG_NAME + ARC_ALOG_ADDR + ARC_ALOG_RID + ARC_ALOG_TLSV + \
                            ARC_ALOG_CIPHER + ARC_ALOG_SNI + ARC_ALOG_SUBJECT + ARC_ALOG_UA + \
                            ARC_ALOG_REFERER)

/* Bits of rec.truncated, in field order (names in accesslog.c). */
enum {
    ARC_ALOG_T_METHOD, ARC_ALOG_T_HOST, ARC_ALOG_T_PATH, ARC_ALOG_T_QUERY,
    ARC_ALOG_T_ROUTE, ARC_ALOG_T_UPSTREAM, ARC_ALOG_T_REQUEST_ID, ARC_ALOG_T_SNI,
    ARC_ALOG_T_SUBJECT, ARC_ALOG_T_USER_AGENT, ARC_ALOG_T_REFERER, ARC_ALOG_T__COUNT
};

/* How the exchange ended (mirrors the proxy's enum ex_outcome). */
enum {
    ARC_ALOG_O_COMPLETE, ARC_ALOG_O_CLIENT_ABORT, ARC_ALOG_O_CLIENT_TIMEOUT,
    ARC_ALOG_O_UPSTREAM_CUT, ARC_ALOG_O_TUNNEL_END,
};

/* The rate-limit decision (rec.rl): none = no limit applied. Blocked: a
 * heavy hitter refused by rate_limits.heavy_hitters.action (name
 * "heavy_hitters", quota its threshold_qps per second). */
enum {
    ARC_ALOG_RL_NONE, ARC_ALOG_RL_ALLOWED, ARC_ALOG_RL_REJECTED, ARC_ALOG_RL_DELAYED,
    ARC_ALOG_RL_BLOCKED,
    ARC_ALOG_RL_HH_ALLOWED, ARC_ALOG_RL_HH_REJECTED,   /* heavy_hitters.action: limit */
};

/* A timing that did not happen (written as null). */
#define ARC_ALOG_NONE UINT64_MAX

/* protocol */
enum { ARC_ALOG_H10 = 10, ARC_ALOG_H11 = 11, ARC_ALOG_H2 = 20 };

/* One exchange, as the worker saw it when it ended. Strings are
 * NUL-terminated; an empty string means "absent" (written as null). */
struct arc_alog_rec {
    uint64_t ts_ns;                     /* CLOCK_REALTIME when the exchange started */
    uint64_t dur_ns;                    /* start to end */
    uint64_t connect_ns;                /* upstream connect (0 when pooled or none) */
    uint64_t ttfb_ns;                   /* attempt start to response head */
    uint64_t response_ns;               /* attempt start to end */
    uint64_t bytes_in, bytes_out;
    uint32_t truncated;                 /* ARC_ALOG_T_* bits */
    uint16_t status;
    uint8_t protocol;                   /* ARC_ALOG_H* */
    uint8_t https;                      /* scheme https */
    uint8_t attempt;                    /* upstream attempts made (0: none) */
    uint8_t err;                        /* 1 + enum arc_err_kind, 0 = none */
    uint8_t outcome;                    /* enum ex_outcome (proxy_int.h) */
    uint8_t tls;                        /* the client connection is TLS */
    uint8_t traced;                     /* trace_id / span_id are set */
    uint8_t trace_flags;
    uint8_t has_parent;                 /* the client sent a traceparent */
    uint8_t has_upstream;               /* upstream / upstream_addr are set */
    uint8_t rl;                         /* ARC_ALOG_RL_*: the rate-limit decision */
    uint32_t rl_quota, rl_window;       /* ... and its policy: quota requests per window s */
    uint8_t trace_id[16], span_id[8], parent_id[8];
    uint8_t server_span_id[8];          /* Arc's server span (OTLP export only) */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } client;                           /* sa_family 0: unknown */
    /* The string fields, packed: field f is the NUL-terminated string at
     * strs + off[f] (offset 0 is an empty string: the field is absent).
     * Packing keeps what a worker writes per request to the bytes it has
     * (a few cache lines) instead of one line per fixed-size field. */
    uint16_t off[ARC_ALOG_S__COUNT];
    uint16_t len[ARC_ALOG_S__COUNT];    /* its length, when off[f] != 0 (saves the writer a strlen) */
    uint16_t used;                      /* bytes of strs in use (0: none yet) */
    char strs[ARC_ALOG_STR_BYTES];
    /* Never written: lets the formatter load any field 16 bytes at a time
     * (a field's last block may reach past strs). */
    char strs_pad[16];
};

_Static_assert(ARC_ALOG_STR_BYTES < UINT16_MAX, "string offsets fit uint16_t");

/* Field f of r: a NUL-terminated string, "" when absent. */
#define arc_alog_str(r, f) ((const char *)(r)->strs + (r)->off[ARC_ALOG_S_##f])
/* ... and its length. */
#define arc_alog_len(r, f) ((r)->off[ARC_ALOG_S_##f] ? (size_t)(r)->len[ARC_ALOG_S_##f] : 0)

/* Cap (with the NUL) and truncation bit (-1: none) of each field. */
static const uint16_t arc_alog_caps[ARC_ALOG_S__COUNT] = {
    ARC_ALOG_METHOD, ARC_ALOG_HOST, ARC_ALOG_PATH, ARC_ALOG_QUERY, ARC_ALOG_NAME, ARC_ALOG_NAME,
    ARC_ALOG_ADDR, ARC_ALOG_RID, ARC_ALOG_TLSV, ARC_ALOG_CIPHER, ARC_ALOG_SNI, ARC_ALOG_SUBJECT,
    ARC_ALOG_UA, ARC_ALOG_REFERER,
};
static const int8_t arc_alog_tbits[ARC_ALOG_S__COUNT] = {
    ARC_ALOG_T_METHOD, ARC_ALOG_T_HOST, ARC_ALOG_T_PATH, ARC_ALOG_T_QUERY, ARC_ALOG_T_ROUTE,
    ARC_ALOG_T_UPSTREAM, -1, ARC_ALOG_T_REQUEST_ID, -1, -1, ARC_ALOG_T_SNI, ARC_ALOG_T_SUBJECT,
    ARC_ALOG_T_USER_AGENT, ARC_ALOG_T_REFERER,
};

/* Starts r's strings: every field absent. */
static inline void arc_alog_strs_reset(struct arc_alog_rec *r)
{
    memset(r->off, 0, sizeof(r->off));
    r->strs[0] = '\0';
    r->used = 1;
}

/* Sets field f to s[0..n) cut to its cap (the cut recorded in
 * r->truncated); an empty s leaves it absent. Setting a field again
 * appends (the last one wins); the area never overflows: what does not fit
 * is cut. */
static inline void arc_alog_put(struct arc_alog_rec *r, unsigned f, const char *s, size_t n)
{
    if (!r->used)
        arc_alog_strs_reset(r);
    size_t cap = arc_alog_caps[f], room = ARC_ALOG_STR_BYTES - r->used;
    if (cap > room)
        cap = room;
    if (n >= cap) {
        n = cap ? cap - 1 : 0;
        if (arc_alog_tbits[f] >= 0)
            r->truncated |= 1u << arc_alog_tbits[f];
    }
    if (!n) {
        r->off[f] = 0;
        return;
    }
    r->off[f] = r->used;
    r->len[f] = (uint16_t)n;
    memcpy(r->strs + r->used, s, n);
    r->strs[r->used + n] = '\0';
    r->used = (uint16_t)(r->used + n + 1);
}

/* Bytes of r that hold data (to copy a record). */
static inline size_t arc_alog_rec_size(const struct arc_alog_rec *r)
{
    return offsetof(struct arc_alog_rec, strs) + (r->used ? r->used : 1);
}

#define ARC_ALOG_CACHELINE 64

/* A worker's ring. head: next slot the worker fills (written by the
 * worker); tail: next slot the writer reads (written by the writer). */
struct arc_alog_ring {
    _Alignas(ARC_ALOG_CACHELINE) _Atomic uint64_t head;
    uint64_t tail_cache;                /* producer's last view of tail */
    _Atomic uint64_t dropped;           /* records lost to a full ring (producer writes) */
    uint64_t rng;                       /* producer's sampling state */
    _Alignas(ARC_ALOG_CACHELINE) _Atomic uint64_t tail;
    _Alignas(ARC_ALOG_CACHELINE) uint32_t mask;
    struct arc_alog_rec *recs;          /* [mask + 1] */
    size_t map_len;                     /* recs is an mmap of this many bytes (0: calloc) */
};

/* Ring API (also used by the unit test directly). */
int arc_alog_ring_init(struct arc_alog_ring *r, uint32_t capacity /* power of two */);
void arc_alog_ring_dispose(struct arc_alog_ring *r);

/* Producer: the slot to fill, or NULL (ring full: counted as dropped).
 * arc_alog_ring_commit publishes it. */
static inline struct arc_alog_rec *arc_alog_ring_claim(struct arc_alog_ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h - r->tail_cache > r->mask) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (h - r->tail_cache > r->mask) {
            atomic_store_explicit(&r->dropped,
                                  atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            return NULL;
        }
    }
    return &r->recs[h & r->mask];
}
/* The lines of a record a typical request touches: its fixed part and the
 * first few hundred bytes of strings. The writer reads a slot long after
 * the worker wrote it, so each line misses the cache: announcing the next
 * record's lines while formatting one hides the misses (the writer's
 * profile had 41% of formatting on the load of a record's first field;
 * with this the writer's CPU per line fell from ~0.5 to ~0.3 µs). The
 * same for the worker's next slot (prefetch for write at commit) showed
 * no gain and is not done. */
#define ARC_ALOG_PREFETCH_LINES 8
static inline void arc_alog_prefetch_read(const struct arc_alog_rec *r)
{
    for (int i = 0; i < ARC_ALOG_PREFETCH_LINES; i++)
        __builtin_prefetch((const char *)r + i * ARC_ALOG_CACHELINE, 0, 3);
}

static inline void arc_alog_ring_commit(struct arc_alog_ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
}
/* Consumer: records available [tail, *head) — read them, then release. */
static inline uint64_t arc_alog_ring_avail(struct arc_alog_ring *r, uint64_t *tail)
{
    *tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    return atomic_load_explicit(&r->head, memory_order_acquire) - *tail;
}
static inline void arc_alog_ring_release(struct arc_alog_ring *r, uint64_t n)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    atomic_store_explicit(&r->tail, t + n, memory_order_release);
}

/* One NDJSON line for rec (with its '\n') appended to out. */
void arc_alog_format(struct arc_sbuf *out, const struct arc_alog_rec *rec);

/* s as a JSON string (quoted, escaped, invalid UTF-8 as U+FFFD). */
void arc_alog_json_str(struct arc_sbuf *out, const char *s);

/* Text of an error byte (1 + enum arc_err_kind) and an outcome, as logged. */
const char *arc_alog_error_text(unsigned err, unsigned outcome);

/**
 * Starts the writer for n_workers rings per `conf` (copied). 0, or -1 with
 * a message in err (out of memory, thread). A log file that cannot be opened
 * is not an error: it is reported, counted and retried.
 */
int arc_alog_start(const struct arc_logging_conf *conf, size_t n_workers, char *err, size_t errlen);
/* Drains what the rings hold, writes it, stops the threads, frees. */
void arc_alog_stop(void);
/* Worker `id`'s ring, or NULL when logging is off. */
struct arc_alog_ring *arc_alog_ring(unsigned id);
/* Asks the writer to reopen its file (SIGUSR1, after logrotate moved it). */
void arc_alog_reopen(void);
bool arc_alog_running(void);

struct arc_alog_stats {
    uint64_t written;                   /* access lines written */
    uint64_t system_written;            /* system-log lines written (core/log.h) */
    uint64_t dropped;                   /* records lost to full rings */
    uint64_t lost;                      /* lines (access or system) lost: the output failed */
    uint64_t write_errors;              /* failed open/write attempts */
    uint64_t rotations, reopens;
};
void arc_alog_stats(struct arc_alog_stats *st);
/* Rotated files of `file` ("<file>.<digit>...", plain or .gz, not the
 * compressor's ".tmp" files) as "<dir>/<name>" paths, oldest first (the
 * names sort by their UTC time); the caller frees each and the array.
 * NULL and *n = 0 when there are none or the directory cannot be read. */
char **arc_alog_rotated(const char *file, size_t *n);

/* logging.writer.drop_behind: after the file grew to `size`, the range to
 * start writing back ([*synced, size) once it is a step long, a step being
 * behind / 4) and the range to drop from the page cache ([*dropped,
 * size - behind) once it is a step long; both advance *synced / *dropped.
 * A length of 0: nothing to do. behind 0: never anything. */
struct arc_alog_drop {
    uint64_t sync_off, sync_len, drop_off, drop_len;
};
void arc_alog__drop_plan(uint64_t size, uint64_t behind, uint64_t *synced, uint64_t *dropped,
                         struct arc_alog_drop *out);

/* Prometheus text of those counters (nothing when logging is off). */
void arc_alog_render_metrics(struct arc_sbuf *o);

#endif
