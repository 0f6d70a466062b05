/**
 * Per-worker hierarchical timer wheel. Owns every connection deadline
 * (header read, body read, keep-alive idle, upstream connect/ttfb/read/write)
 * so that arming, moving and cancelling a deadline is O(1) and a worker needs
 * exactly one kernel timeout (a multishot IORING_OP_TIMEOUT ticking the wheel).
 *
 * Timers are intrusive: embed a `struct arc_timer` in the owner and find the
 * owner with arc_container_of in the callback. Resolution is `tick_ms`: a
 * timer fires on the first arc_tw_advance whose `now` is >= its deadline,
 * never early, at most one tick late (plus the caller's advance latency).
 * Deadlines arbitrarily far in the future are supported (levels cascade).
 * Thread: the owning worker only.
 */
#ifndef ARC_LOOP_TIMER_H
#define ARC_LOOP_TIMER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

struct arc_timer;
typedef void (*arc_timer_cb)(struct arc_timer *t, uint64_t now_ms);

struct arc_timer {
    struct arc_timer *_next, *_prev; /* private: wheel slot list; NULL when idle */
    uint64_t deadline_ms;            /* read-only for owners */
    arc_timer_cb cb;                 /* set by owner (arc_timer_init) */
};

#define ARC_TW_LEVELS 4
#define ARC_TW_SLOTS 256             /* per level */

struct arc_tw {
    uint64_t now_tick;               /* private */
    uint32_t tick_ms;
    size_t count;                    /* pending timers */
    struct arc_timer slots[ARC_TW_LEVELS][ARC_TW_SLOTS]; /* private: list heads */
    /* private (timer.c): */
    uint64_t _now_ms;                /* `now` of the last advance (or of init) */
    struct arc_timer _due;           /* armed with deadline <= _now_ms: fire on the next advance */
    uint64_t _occupied[ARC_TW_LEVELS][ARC_TW_SLOTS / 64]; /* slot may be non-empty (lazy) */
};

/* The wheel holds pointers to itself once initialised: embed it or allocate
 * it, but never copy or move it. tick_ms 0 is taken as 1. */
void arc_tw_init(struct arc_tw *tw, uint64_t now_ms, uint32_t tick_ms);
void arc_timer_init(struct arc_timer *t, arc_timer_cb cb);
static inline bool arc_timer_pending(const struct arc_timer *t) { return t->_next != NULL; }

/* Arms or re-arms t (moving it if pending). A deadline <= now fires on the next advance. */
void arc_tw_schedule(struct arc_tw *tw, struct arc_timer *t, uint64_t deadline_ms);
/* Disarms t; a no-op when not pending. Safe to call from inside a callback. */
void arc_tw_cancel(struct arc_tw *tw, struct arc_timer *t);
/* Fires every timer whose deadline <= now_ms (callbacks may schedule or
 * cancel any timer, including themselves). Returns the number fired. */
size_t arc_tw_advance(struct arc_tw *tw, uint64_t now_ms);

#endif
