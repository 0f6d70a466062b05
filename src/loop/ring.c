/*
 * io_uring ring setup and provided-buffer rings. See ring.h.
 */
#include "loop/ring.h"
#include "core/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int arc_ring_init(struct io_uring *ring, const struct arc_ring_opts *o)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    if (o->single_issuer)
        p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (o->sqpoll) {
        /* SQPOLL submits from a kernel thread, which DEFER_TASKRUN forbids. */
        p.flags &= ~(unsigned)(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
        p.flags |= IORING_SETUP_SQPOLL;
        p.sq_thread_idle = o->sqpoll_idle_ms;
    }
    /* The CQ must absorb bursts (every connection may complete at once). */
    p.flags |= IORING_SETUP_CQSIZE;
    p.cq_entries = o->entries * 4;
    return io_uring_queue_init_params(o->entries, ring, &p);
}

_Thread_local uint64_t arc_ring_sq_full;

struct io_uring_sqe *arc_ring_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (ARC_LIKELY(sqe != NULL))
        return sqe;
    /* SQ full: hand what we have to the kernel and take a fresh slot. */
    arc_ring_sq_full++;
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
    ARC_ASSERT(sqe != NULL);
    return sqe;
}

int arc_bufring_init(struct arc_bufring *b, struct io_uring *ring, uint16_t bgid,
                     uint32_t count, uint32_t size)
{
    memset(b, 0, sizeof(*b));
    if (count == 0 || count > 32768 || (count & (count - 1)) != 0)
        return -EINVAL;
    b->count = count;
    b->size = size;
    b->mask = count - 1;
    b->bgid = bgid;
    b->ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
    long page = sysconf(_SC_PAGESIZE);
    b->ring_bytes = (b->ring_bytes + (size_t)page - 1) & ~((size_t)page - 1);

    void *mem = mmap(NULL, b->ring_bytes, PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    b->br = mem;
    /* Buffer memory is touched lazily: pages only become resident once a
     * receive lands in them. */
    b->base = mmap(NULL, (size_t)count * size, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (b->base == MAP_FAILED) {
        int e = -errno;
        munmap(mem, b->ring_bytes);
        return e;
    }
    b->refs = calloc(count, sizeof(*b->refs));
    if (!b->refs) {
        munmap(b->base, (size_t)count * size);
        munmap(mem, b->ring_bytes);
        return -ENOMEM;
    }

    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = count;
    reg.bgid = bgid;
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        free(b->refs);
        munmap(b->base, (size_t)count * size);
        munmap(mem, b->ring_bytes);
        return rc;
    }
    io_uring_buf_ring_init(b->br);
    for (uint32_t i = 0; i < count; i++)
        io_uring_buf_ring_add(b->br, arc_buf_ptr(b, (uint16_t)i), size, (uint16_t)i, b->mask, (int)i);
    io_uring_buf_ring_advance(b->br, (int)count);
    b->in_kernel = count;
    return 0;
}

void arc_bufring_dispose(struct arc_bufring *b, struct io_uring *ring)
{
    if (!b->br)
        return;
    io_uring_unregister_buf_ring(ring, b->bgid);
    free(b->refs);
    munmap(b->base, (size_t)b->count * b->size);
    munmap(b->br, b->ring_bytes);
    memset(b, 0, sizeof(*b));
}

void arc_buf_unref(struct arc_bufring *b, uint16_t bid)
{
    ARC_ASSERT(b->refs[bid] > 0);
    if (--b->refs[bid] > 0)
        return;
    io_uring_buf_ring_add(b->br, arc_buf_ptr(b, bid), b->size, bid, b->mask, b->pending);
    b->pending++;
    b->in_kernel++;
}

void arc_bufring_flush(struct arc_bufring *b)
{
    if (b->pending) {
        io_uring_buf_ring_advance(b->br, b->pending);
        b->pending = 0;
    }
}
