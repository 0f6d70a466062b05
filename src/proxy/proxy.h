/**
 * The data plane: per-core worker threads, each with its own io_uring ring,
 * listeners, provided buffers, connection slab, timer wheel, upstream pools
 * and metrics shard. The control thread (main) creates the listener sockets,
 * starts the workers, reads their metrics and asks them to drain.
 */
#ifndef ARC_PROXY_PROXY_H
#define ARC_PROXY_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "config/snapshot.h"
#include "obs/metrics.h"

struct arc_worker;

/**
 * Starts one worker. `listen_fds[n_listen]` are this worker's SO_REUSEPORT
 * sockets (ownership passes to the worker). `cpu` < 0 leaves it unpinned.
 * Returns NULL with a message in err on failure (ring setup, buffers).
 * Thread: control thread.
 */
struct arc_worker *arc_worker_start(unsigned id, int cpu, struct arc_snapshot *snap,
                                    int *listen_fds, size_t n_listen, uint32_t max_conns,
                                    char *err, size_t errlen);
/* True once the worker's accepts are armed (or it failed: see errmsg). */
bool arc_worker_ready(struct arc_worker *w);
const char *arc_worker_error(struct arc_worker *w);
/* The worker's metrics shard (valid until arc_worker_free). */
struct arc_metrics_shard *arc_worker_metrics(struct arc_worker *w);
/* The worker's passive-health table, by endpoint id (upstream/health.h;
 * valid until arc_worker_free, read with arc_health_get). */
struct arc_htable;
const struct arc_htable *arc_worker_health(struct arc_worker *w);
/* The mirror thread (routes[].mirror, proxy/mirror.c): start before the
 * workers take traffic, stop after they were joined. 0 or -errno.
 * queue: copies waiting per worker (node.mirror.queue, a power of two);
 * max_in_flight: copies under way in all (node.mirror.max_in_flight). */
int arc_mirror_start(uint32_t queue, uint32_t max_in_flight);
void arc_mirror_stop(void);
/* /metrics: arc_mirror_* series. Thread: any. */
struct arc_sbuf;
void arc_mirror_render(struct arc_sbuf *m);
/* Asks every worker to stop accepting and drain for at most drain_ms. */
void arc_workers_drain(uint64_t drain_ms);
/* Asks every worker to exit now (second signal). */
void arc_workers_stop_now(void);
/* True once the worker thread has left its loop (after drain). */
bool arc_worker_done(struct arc_worker *w);
void arc_worker_join(struct arc_worker *w);
void arc_worker_free(struct arc_worker *w);

/* The heavy-hitter sources the worker published last (rate_limits.
 * heavy_hitters; at most once a second): up to cap into out, returns how
 * many. Thread: any (a consistent copy, retried while the worker writes). */
struct arc_rl_hh_item;
size_t arc_worker_heavy_hitters(struct arc_worker *w, struct arc_rl_hh_item *out, size_t cap);
/* Every worker's list summed by prefix, those at or above `threshold`,
 * heaviest first (at most cap). Thread: any. */
size_t arc_workers_heavy_hitters(struct arc_worker *const *ws, size_t n_workers, double threshold,
                                 struct arc_rl_hh_item *out, size_t cap);

/* rate_limits.global: the Redis thread (glimit.c), started before the
 * workers, stopped after they stopped; its /metrics series. */
struct arc_rl_global_conf;
struct arc_sbuf;
struct arc_metrics_shard;
int arc_px_gl_start(const struct arc_rl_global_conf *c, size_t n_workers, char *err, size_t len);
void arc_px_gl_stop(void);
void arc_px_gl_render(struct arc_sbuf *m, struct arc_metrics_shard *const *shards, size_t n);

/* Monotonic milliseconds. */
uint64_t arc_now_ms(void);
/* CLOCK_MONOTONIC in nanoseconds (exchange timings). */
uint64_t arc_now_ns(void);

#endif
