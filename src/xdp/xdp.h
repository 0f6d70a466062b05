/**
 * The XDP layer's loader (control thread only): loads arc_xdp.bpf.c through
 * its libbpf skeleton, attaches it to security.xdp.interface, fills its
 * maps from the config (again on every reload, without reattaching),
 * manages the dynamic blocks (admin API, CLI, heavy hitters) and reads the
 * per-reason counters. Detached on arc_xdp_stop.
 *
 * States: OFF (not enabled) | UNAVAILABLE (enabled, could not attach:
 * `why` says exactly what failed) | ATTACHED (mode says native/generic).
 */
#ifndef ARC_XDP_XDP_H
#define ARC_XDP_XDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

enum arc_xdp_state { ARC_XDP_OFF, ARC_XDP_UNAVAILABLE, ARC_XDP_ATTACHED };

struct arc_xdp;

/* Counter names (index = enum arc_xdp_reason of xdp_abi.h), and whether
 * the reason is a drop. */
#define ARC_XDP_N_REASONS 10
extern const char *const arc_xdp_reason_names[ARC_XDP_N_REASONS];
extern const bool arc_xdp_reason_drops[ARC_XDP_N_REASONS];

/**
 * Starts the layer for `c`. Not enabled: NULL (every function here takes
 * NULL as the OFF layer).
 * Enabled but not possible: UNAVAILABLE with the reason (arc_xdp_why) and
 * one log line; with c->required the caller refuses to start.
 */
struct arc_xdp *arc_xdp_start(const struct arc_xdp_conf *c);
enum arc_xdp_state arc_xdp_state(const struct arc_xdp *x);
const char *arc_xdp_why(const struct arc_xdp *x);        /* "" unless UNAVAILABLE */
const char *arc_xdp_mode_name(const struct arc_xdp *x);  /* "native", "generic" or "" */
const char *arc_xdp_interface(const struct arc_xdp *x);  /* "" when OFF */

/* Refills the maps from `c` (a reload): lists, rates, auto_block. The
 * dynamic blocks stay. 0 or -1 (err). Nothing to do unless ATTACHED. */
int arc_xdp_apply(struct arc_xdp *x, const struct arc_xdp_conf *c, char *err, size_t len);

/* Detaches and frees (NULL is fine). */
void arc_xdp_stop(struct arc_xdp *x);

/* Dynamic blocks. ttl_ms 0 = until removed. origin: ARC_XDP_BY_API or
 * ARC_XDP_BY_HEAVY. 0, or -1 with err. */
int arc_xdp_block(struct arc_xdp *x, const struct arc_cidr *c, uint64_t ttl_ms, unsigned origin,
                  char *err, size_t len);
/* 1 removed, 0 there was no such block, -1 error. */
int arc_xdp_unblock(struct arc_xdp *x, const struct arc_cidr *c, char *err, size_t len);

struct arc_xdp_block_view {
    char cidr[64];
    const char *origin;         /* "api", "heavy_hitters", "auto_block" */
    uint64_t expires_in_ms;     /* 0 = never */
};
/* Current blocks (dynamic ones and auto_block's), up to max; returns how
 * many there are in all. */
size_t arc_xdp_blocks(struct arc_xdp *x, struct arc_xdp_block_view *out, size_t max);

/* Sums the per-CPU counters into out[ARC_XDP_N_REASONS] (zeros unless
 * ATTACHED). */
void arc_xdp_counters(const struct arc_xdp *x, uint64_t *out);

/* Deletes expired dynamic blocks and expired auto_block marks (the
 * program ignores them already; this frees the entries). */
void arc_xdp_sweep(struct arc_xdp *x);

/* The prog fd (tests: BPF_PROG_TEST_RUN), -1 unless loaded. */
int arc_xdp_prog_fd(const struct arc_xdp *x);

/* Loads the program without attaching (tests); NULL with err. */
struct arc_xdp *arc_xdp_load_only(const struct arc_xdp_conf *c, char *err, size_t len);

#endif
