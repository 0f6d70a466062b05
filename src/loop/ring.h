/**
 * The io_uring wrapper every Arc event loop uses (workers and the control
 * thread): ring setup with the flags Arc relies on, an SQE getter that never
 * fails, provided-buffer rings with per-buffer reference counts, and the
 * startup probe that explains in plain words why io_uring cannot be used.
 *
 * Thread: a ring and its buffer rings belong to the one thread that created
 * them (SINGLE_ISSUER).
 */
#ifndef ARC_LOOP_RING_H
#define ARC_LOOP_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/compat.h"

struct arc_ring_opts {
    unsigned entries;           /* SQ size, power of two */
    bool sqpoll;
    unsigned sqpoll_idle_ms;
    bool single_issuer;         /* SINGLE_ISSUER | DEFER_TASKRUN (workers) */
};

/* Returns 0 or -errno. */
int arc_ring_init(struct io_uring *ring, const struct arc_ring_opts *o);

/**
 * Returns an SQE, submitting queued ones first if the SQ is full. Never
 * NULL: if even a submit cannot free a slot the process is broken and
 * aborts (SQ entries are sized so that this cannot happen in practice).
 */
struct io_uring_sqe *arc_ring_sqe(struct io_uring *ring);
/* Times arc_ring_sqe found the SQ full on this thread (metrics). */
extern _Thread_local uint64_t arc_ring_sq_full;

/* ------------------------------------------------------ provided buffers */

/**
 * A ring of `count` buffers of `size` bytes registered as buffer group
 * `bgid`. Receives pick a buffer on completion; Arc then holds references
 * on it (one per send segment or stash that points into it) and it goes
 * back to the kernel when the last reference is dropped. Buffers given
 * back are published in batches by arc_bufring_flush (one store per loop
 * iteration instead of one per buffer).
 */
struct arc_bufring {
    struct io_uring_buf_ring *br;
    char *base;                 /* count * size bytes */
    uint16_t *refs;             /* per buffer */
    uint32_t count, size, mask;
    uint32_t in_kernel;         /* buffers currently owned by the kernel */
    uint16_t bgid;
    uint16_t pending;           /* added but not yet advanced */
    size_t ring_bytes;
};

int arc_bufring_init(struct arc_bufring *b, struct io_uring *ring, uint16_t bgid,
                     uint32_t count, uint32_t size);
void arc_bufring_dispose(struct arc_bufring *b, struct io_uring *ring);

static inline char *arc_buf_ptr(const struct arc_bufring *b, uint16_t bid)
{
    return b->base + (size_t)bid * b->size;
}

/* A completion handed buffer `bid` to us: we now hold one reference. */
static inline void arc_buf_taken(struct arc_bufring *b, uint16_t bid)
{
    b->refs[bid] = 1;
    b->in_kernel--;
}

static inline void arc_buf_ref(struct arc_bufring *b, uint16_t bid)
{
    b->refs[bid]++;
}

void arc_buf_unref(struct arc_bufring *b, uint16_t bid);
/* Publishes buffers given back since the last flush. */
void arc_bufring_flush(struct arc_bufring *b);

/* ------------------------------------------------------------- probe */

/**
 * Checks that io_uring exists and supports every opcode and flag Arc uses,
 * and that the memlock limit is high enough for `ring_bytes_needed`.
 * Returns 0, or -1 with a plain-language explanation and the fix in msg
 * (e.g. "io_uring is disabled by the kernel.io_uring_disabled sysctl; ...").
 * `report` (may be NULL) receives one "name: yes/no" line per feature.
 */
int arc_loop_probe(char *msg, size_t msglen, char *report, size_t reportlen);

#endif
