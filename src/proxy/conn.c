/*
 * Connections: the slab they live in, their output queues, arming receives
 * and sends, stashing unprocessed input, the plain TCP transport, and
 * closing. Protocol logic lives in h1_server.c and upstream.c; this file
 * only moves bytes and lifetimes, and is the one place that dispatches on a
 * connection's role (arc_px__conn_*).
 *
 * Provided buffers are shared by every connection of the worker, so a
 * connection may hold only a few of them (io_uring.buffers_per_connection)
 * and none once the ring runs low: past that its bytes are copied into
 * memory of its own (bounded by node.max_buffered_output), so a peer that
 * stops reading cannot starve everyone else's receives.
 */
#include "proxy/proxy_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Pieces smaller than this are copied into the queue's tail block rather
 * than taking a segment (and a buffer reference) of their own. */
#define SMALL_PIECE 512
#define TAIL_BLOCK 4096
/* Output blocks a worker keeps for reuse: enough that connections take and
 * return them without malloc under load; the rest of a burst's are freed. */
#define OUTBLK_FREE_MAX 256

/* ------------------------------------------------------------ slab */

static struct arc_conn *slot(struct arc_worker *w, uint32_t idx)
{
    return &w->slab.chunks[idx / SLAB_CHUNK][idx % SLAB_CHUNK];
}

struct arc_conn *arc_px__conn_get(struct arc_worker *w, uint32_t idx)
{
    if (idx / SLAB_CHUNK >= w->slab.n_chunks)
        return NULL;
    return slot(w, idx);
}

static int slab_grow(struct slab *s)
{
    struct arc_conn **chunks = realloc(s->chunks, (s->n_chunks + 1) * sizeof(*chunks));
    if (!chunks)
        return -1;
    s->chunks = chunks;
    struct arc_conn *chunk = calloc(SLAB_CHUNK, sizeof(*chunk));
    if (!chunk)
        return -1;
    /* The free list must be able to hold every slot at once (all of them
     * free again after a burst), not just the ones free now. */
    size_t need = (s->n_chunks + 1) * SLAB_CHUNK;
    if (need > s->cap_free) {
        uint32_t *f = realloc(s->free_idx, need * sizeof(*f));
        if (!f) {
            free(chunk);
            return -1;
        }
        s->free_idx = f;
        s->cap_free = need;
    }
    uint32_t base = (uint32_t)(s->n_chunks * SLAB_CHUNK);
    s->chunks[s->n_chunks++] = chunk;
    /* Push in reverse so low indices are handed out first. */
    for (uint32_t i = SLAB_CHUNK; i-- > 0;) {
        chunk[i].idx = base + i;
        s->free_idx[s->n_free++] = base + i;
    }
    return 0;
}

struct arc_conn *arc_px__conn_new(struct arc_worker *w, enum conn_kind kind, int fd)
{
    struct slab *s = &w->slab;
    if (s->n_free == 0 && slab_grow(s) < 0)
        return NULL;
    uint32_t idx = s->free_idx[--s->n_free];
    struct arc_conn *c = slot(w, idx);
    uint32_t gen = (c->gen + 1) & 0xffffff;
    memset(c, 0, sizeof(*c));
    c->idx = idx;
    c->gen = gen;
    c->kind = (uint8_t)kind;
    c->fd = fd;
    c->created_ms = w->now_ms;
    c->tp = &arc_px__plain;
    c->out_high = w->snap->cfg->node.max_buffered_output;
    arc_timer_init(&c->timer, arc_px__on_timer);
    s->used++;
    return c;
}

static void outq_clear(struct arc_worker *w, struct arc_conn *c);

static void slab_free(struct arc_worker *w, struct arc_conn *c)
{
    /* conn_new zeroes the slot: a timer still linked would corrupt the wheel. */
    arc_tw_cancel(&w->tw, &c->timer);
    /* Only now: a send in flight may have pointed into transport memory. */
    c->tp->dispose(w, c);
    outq_clear(w, c);                   /* (already empty: gives the block back) */
    /* An upstream connection's definition (and its TLS client context) live
     * in the snapshot it pinned: released last. */
    if (c->kind == CONN_UPSTREAM && c->u.snap)
        arc_px__snap_unpin(w, c->u.snap);
    else if (c->kind == CONN_CLIENT && c->c.tls_srv)
        arc_tls_server_free(c->c.tls_srv);     /* (after dispose freed the SSL) */
    c->gen = (c->gen + 1) & 0xffffff;   /* stale completions now mismatch */
    c->kind = 0;
    w->slab.free_idx[w->slab.n_free++] = c->idx;
    w->slab.used--;
}

/* ------------------------------------------------------------ role dispatch */

void arc_px__conn_input(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                        const char *p, size_t len)
{
    if (c->kind == CONN_CLIENT)
        c->c.codec->on_input(w, c, bid, p, len);
    else
        arc_px__up_data(w, c, bid, p, len);
}

void arc_px__conn_eof(struct arc_worker *w, struct arc_conn *c, int err)
{
    if (c->kind == CONN_CLIENT)
        arc_px__client_eof(w, c, err);
    else
        arc_px__up_eof(w, c, err);
}

void arc_px__conn_pump(struct arc_worker *w, struct arc_conn *c)
{
    if (c->kind == CONN_CLIENT)
        arc_px__client_pump(w, c);
    else
        arc_px__up_pump(w, c);
}

void arc_px__conn_sent(struct arc_worker *w, struct arc_conn *c)
{
    if (c->kind == CONN_CLIENT)
        arc_px__client_sent(w, c);
    else
        arc_px__up_sent(w, c);
}

void arc_px__conn_timeout(struct arc_worker *w, struct arc_conn *c)
{
    if (c->kind == CONN_CLIENT)
        arc_px__client_timeout(w, c);
    else
        arc_px__up_timeout(w, c);
}

/* ------------------------------------------------------------ output */

static void seg_release(struct arc_worker *w, struct arc_conn *c, struct seg *s)
{
    if (s->bid >= 0) {
        arc_buf_unref(&w->br, (uint16_t)s->bid);
        c->pinned--;
    } else {
        free(s->mem);
    }
}

/* May c take another reference on a provided buffer? */
static bool may_pin(const struct arc_worker *w, const struct arc_conn *c)
{
    return c->pinned < w->snap->cfg->uring.buffers_per_connection &&
           w->br.in_kernel > w->br.count / 4;
}

static struct seg *outq_at(struct outq *q, uint32_t i)
{
    return &q->seg[(q->head + i) % q->cap];
}

/* ------------------------------------------------------------ output blocks
 *
 * A connection holds an output block (struct outblk: sendmsg header, iovec,
 * first segments) only while it has output: attached when a segment is
 * queued or a send armed, returned to the worker's pool once the queue is
 * empty and no send is in flight (a send's iovec must stay put until its
 * completion). A busy keep-alive connection takes one from the pool and
 * gives it back per response (no malloc); an idle one holds none. */

struct outblk *arc_px__outblk(struct arc_worker *w, struct arc_conn *c)
{
    struct outq *q = &c->out;
    if (q->blk)
        return q->blk;
    struct outblk *b = w->outblk_free;
    if (b) {
        w->outblk_free = b->next_free;
        w->n_outblk_free--;
    } else {
        b = malloc(sizeof(*b));
        ARC_ASSERT(b != NULL);
    }
    ARC_ASSERT(q->n == 0);
    q->blk = b;
    q->seg = b->seg;
    q->cap = OUTQ_INLINE;
    q->head = 0;
    return b;
}

/* Gives the block back once the connection has no output left. */
static void outq_detach(struct arc_worker *w, struct arc_conn *c)
{
    struct outq *q = &c->out;
    struct outblk *b = q->blk;
    if (!b || q->n || c->send_armed)
        return;
    if (q->seg != b->seg)
        free(q->seg);                   /* the ring had outgrown the block */
    if (w->n_outblk_free < OUTBLK_FREE_MAX) {
        b->next_free = w->outblk_free;
        w->outblk_free = b;
        w->n_outblk_free++;
    } else {
        free(b);
    }
    *q = (struct outq){ 0 };
}

void arc_px__outblk_pool_shrink(struct arc_worker *w, size_t keep)
{
    while (w->n_outblk_free > keep) {
        struct outblk *b = w->outblk_free;
        w->outblk_free = b->next_free;
        w->n_outblk_free--;
        free(b);
    }
}

void arc_px__outblk_pool_dispose(struct arc_worker *w)
{
    arc_px__outblk_pool_shrink(w, 0);
}

static void outq_grow(struct outq *q)
{
    uint32_t ncap = q->cap * 2;
    struct seg *v = malloc(ncap * sizeof(*v));
    ARC_ASSERT(v != NULL);
    for (uint32_t i = 0; i < q->n; i++)
        v[i] = *outq_at(q, i);
    if (q->seg != q->blk->seg)
        free(q->seg);
    q->seg = v;
    q->cap = ncap;
    q->head = 0;
}

static void outq_push(struct arc_worker *w, struct arc_conn *c, struct seg s)
{
    struct outq *q = &c->out;
    if (!q->blk)
        arc_px__outblk(w, c);
    if (q->n == q->cap)
        outq_grow(q);
    *outq_at(q, q->n) = s;
    q->n++;
    q->bytes += s.len;
}

/* Appends a copy of p to the queue, into the tail block when it has room
 * and is not being sent. */
static void outq_append_copy(struct arc_worker *w, struct arc_conn *c, const char *p, size_t len)
{
    struct outq *q = &c->out;
    if (q->n > q->inflight) {
        struct seg *t = outq_at(q, q->n - 1);
        if (t->bid < 0 && t->cap && (size_t)(t->mem + t->cap - (t->p + t->len)) >= len) {
            memcpy((char *)t->p + t->len, p, len);
            t->len += (uint32_t)len;
            q->bytes += len;
            return;
        }
    }
    size_t cap = len < TAIL_BLOCK ? TAIL_BLOCK : len;
    char *m = malloc(cap);
    ARC_ASSERT(m != NULL);
    memcpy(m, p, len);
    outq_push(w, c, (struct seg){ .p = m, .len = (uint32_t)len, .bid = -1, .mem = m,
                                  .cap = (uint32_t)cap });
}

void arc_px__queue_buf(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len)
{
    if (len == 0)
        return;
    if (bid < 0 || len < SMALL_PIECE || !may_pin(w, c)) {
        outq_append_copy(w, c, p, len);
        return;
    }
    arc_buf_ref(&w->br, (uint16_t)bid);
    c->pinned++;
    outq_push(w, c, (struct seg){ .p = p, .len = (uint32_t)len, .bid = bid });
}

void arc_px__queue_copy(struct arc_worker *w, struct arc_conn *c, const void *p, size_t len)
{
    if (len)
        outq_append_copy(w, c, p, len);
}

void arc_px__queue_owned(struct arc_worker *w, struct arc_conn *c, char *mem, size_t len)
{
    if (len == 0) {
        free(mem);
        return;
    }
    outq_push(w, c, (struct seg){ .p = mem, .len = (uint32_t)len, .bid = -1, .mem = mem });
}

void arc_px__flush(struct arc_worker *w, struct arc_conn *c)
{
    if (c->kind == CONN_CLIENT && c->c.h2)
        arc_px__h2_pull(w, c);          /* the session's frames into the queue */
    else if (c->kind == CONN_UPSTREAM && c->u.h2)
        arc_px__h2u_pull(w, c);
    if (c->send_armed || c->closing)
        return;
    if (c->kind == CONN_UPSTREAM && !c->u.connected)
        return;
    c->tp->flush(w, c);
}

void arc_px__flush_soon(struct arc_worker *w, struct arc_conn *c)
{
    if (c->flush_soon)
        return;
    if (!w->in_batch || c->kind != CONN_CLIENT || !c->c.h2) {
        arc_px__flush(w, c);
        return;
    }
    if (w->n_soon == w->cap_soon) {
        size_t cap = w->cap_soon ? w->cap_soon * 2 : 64;
        uint32_t (*v)[2] = realloc(w->soon, cap * sizeof(*v));
        if (!v) {
            arc_px__flush(w, c);
            return;
        }
        w->soon = v;
        w->cap_soon = cap;
    }
    w->soon[w->n_soon][0] = c->idx;
    w->soon[w->n_soon][1] = c->gen;
    w->n_soon++;
    c->flush_soon = true;
}

void arc_px__flush_batch(struct arc_worker *w)
{
    /* A flush may close connections, never list new ones (in_batch is
     * false here); a listed slot closed or reused since is skipped by its
     * generation, and a reused one's flag starts false. */
    for (size_t i = 0; i < w->n_soon; i++) {
        struct arc_conn *c = arc_px__conn_get(w, w->soon[i][0]);
        if (!c || c->gen != w->soon[i][1] || !c->flush_soon)
            continue;
        c->flush_soon = false;
        if (!c->closing)
            arc_px__flush(w, c);
    }
    w->n_soon = 0;
}

void arc_px__outq_consume(struct arc_worker *w, struct arc_conn *c, size_t left)
{
    struct outq *q = &c->out;
    q->bytes -= left;
    while (left > 0 && q->n > 0) {
        struct seg *s = outq_at(q, 0);
        if (left >= s->len) {
            left -= s->len;
            seg_release(w, c, s);
            q->head = (q->head + 1) % q->cap;
            q->n--;
        } else {
            s->p += left;
            s->len -= (uint32_t)left;
            left = 0;
        }
    }
}

/* Replaces a segment's provided-buffer reference with a copy of its bytes. */
static void seg_unpin(struct arc_worker *w, struct arc_conn *c, struct seg *s)
{
    char *m = malloc(s->len);
    ARC_ASSERT(m != NULL);
    memcpy(m, s->p, s->len);
    arc_buf_unref(&w->br, (uint16_t)s->bid);
    c->pinned--;
    *s = (struct seg){ .p = m, .len = s->len, .bid = -1, .mem = m };
}

/* Moves a stalled connection's queued bytes out of provided buffers (into
 * its own memory), except those a send in flight points at. */
static void unpin_queue(struct arc_worker *w, struct arc_conn *c)
{
    struct outq *q = &c->out;
    for (uint32_t i = q->inflight; i < q->n && c->pinned; i++)
        if (outq_at(q, i)->bid >= 0)
            seg_unpin(w, c, outq_at(q, i));
    for (uint32_t i = 0; i < c->stash_n && c->pinned; i++)
        if (c->stash[i].bid >= 0)
            seg_unpin(w, c, &c->stash[i]);
}

/* Called when receives starve: every connection whose output is waiting on
 * its peer gives its provided buffers back. O(connections), only when the
 * ring ran dry. */
void arc_px__unpin_stalled(struct arc_worker *w)
{
    for (size_t ch = 0; ch < w->slab.n_chunks; ch++)
        for (size_t i = 0; i < SLAB_CHUNK; i++) {
            struct arc_conn *c = &w->slab.chunks[ch][i];
            /* waiting on its peer: a send in flight, or input held back */
            if (c->kind && !c->closing && c->pinned && (c->send_armed || c->stash_n))
                unpin_queue(w, c);
        }
}

/* ------------------------------------------------------------ plain TCP */

static void plain_start(struct arc_worker *w, struct arc_conn *c)
{
    (void)w;
    (void)c;
}

static void plain_on_recv(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                          const char *p, size_t len)
{
    arc_px__conn_input(w, c, bid, p, len);
}

/* Sends the head of the output queue as one sendmsg (up to OUTQ_IOV
 * segments): a response head and its body leave in one call. */
static void plain_flush(struct arc_worker *w, struct arc_conn *c)
{
    if (c->out.n == 0 || c->shut_wr)
        return;
    struct outblk *b = c->out.blk;     /* attached: the queue is not empty */
    uint32_t n = ARC_MIN(c->out.n, (uint32_t)OUTQ_IOV);
    for (uint32_t i = 0; i < n; i++) {
        struct seg *s = outq_at(&c->out, i);
        b->iov[i].iov_base = (void *)s->p;
        b->iov[i].iov_len = s->len;
    }
    c->out.inflight = n;
    b->msg = (struct msghdr){ .msg_iov = b->iov, .msg_iovlen = n };
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    /* MSG_NOSIGNAL: a peer that vanished must give EPIPE, not kill us. */
    io_uring_prep_sendmsg(sqe, c->fd, &b->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, op_ud(OP_SEND, c->idx, c->gen));
    c->send_armed = true;
    c->ops++;
}

static void plain_on_sent(struct arc_worker *w, struct arc_conn *c, size_t res)
{
    arc_px__outq_consume(w, c, res);
}

static void plain_shutdown(struct arc_worker *w, struct arc_conn *c)
{
    (void)w;
    /* A plain syscall: it never blocks, and the FIN follows the data
     * already handed to the socket. */
    shutdown(c->fd, SHUT_WR);
}

static void plain_dispose(struct arc_worker *w, struct arc_conn *c)
{
    (void)w;
    (void)c;
}

const struct arc_transport_vt arc_px__plain = {
    .name = "tcp",
    .start = plain_start,
    .on_recv = plain_on_recv,
    .on_sent = plain_on_sent,
    .flush = plain_flush,
    .shutdown = plain_shutdown,
    .dispose = plain_dispose,
};

void arc_px__on_send(struct arc_worker *w, struct arc_conn *c, int res)
{
    c->send_armed = false;
    c->out.inflight = 0;
    if (res < 0) {
        /* EPIPE/ECONNRESET: the peer is gone. The owner decides what that
         * means for the exchange. */
        arc_px__conn_eof(w, c, res);
        return;
    }
    if (c->kind == CONN_CLIENT)
        arc_m_add(arc_m_li(&w->metrics, c->c.listener, ARC_ML_BYTES_OUT), (uint64_t)res);
    c->tp->on_sent(w, c, (size_t)res);
    if (c->closing)
        return;
    arc_px__conn_sent(w, c);
    if (c->closing)
        return;
    /* Output done for now (the codec queued nothing more): what the
     * connection only needs while it has something to send or replay goes
     * back, so an idle keep-alive connection is little more than its slot. */
    outq_detach(w, c);
    if (c->stash_n == 0 && c->stash) {
        free(c->stash);
        c->stash = NULL;
        c->stash_cap = 0;
    }
    /* A head that spanned receives left its buffer (kept by hbuf_reset for
     * the next head on a busy connection); no head is pending now, and
     * nothing points into it between completions. */
    if (c->hlen == 0 && c->hbuf) {
        free(c->hbuf);
        c->hbuf = NULL;
        c->hcap = 0;
        c->hscanned = 0;
    }
}

static void outq_clear(struct arc_worker *w, struct arc_conn *c)
{
    while (c->out.n > 0) {
        seg_release(w, c, outq_at(&c->out, 0));
        c->out.head = (c->out.head + 1) % c->out.cap;
        c->out.n--;
    }
    c->out.bytes = 0;
    c->out.inflight = 0;
    outq_detach(w, c);
}

/* ------------------------------------------------------------ input */

/*
 * Receives are multishot: armed once, they keep posting completions (each
 * with a provided buffer) until an error, EOF, buffer exhaustion or a
 * cancel ends them, so the common request/response cycle costs no receive
 * SQE and no poll re-arm at all. Backpressure pauses them (recv_pause).
 */
void arc_px__arm_recv(struct arc_worker *w, struct arc_conn *c)
{
    if (c->recv_armed || c->closing || c->eof)
        return;
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    /* Unless the last receive filled a whole buffer (more is probably
     * queued), the socket is most likely empty now: go straight to poll
     * instead of a receive attempt that would only return EAGAIN. */
    if (!c->recv_full)
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = w->br.bgid;
    io_uring_sqe_set_data64(sqe, op_ud(OP_RECV, c->idx, c->gen));
    c->recv_armed = true;
    c->ops++;
}

void arc_px__stash(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len)
{
    if (len == 0 || c->closing)
        return;
    if (c->stash_n == c->stash_cap) {
        uint32_t cap = c->stash_cap ? c->stash_cap * 2 : 4;
        struct seg *v = realloc(c->stash, cap * sizeof(*v));
        ARC_ASSERT(v != NULL);
        c->stash = v;
        c->stash_cap = cap;
    }
    struct seg sg;
    /* A small remainder, or one the connection may not pin, is copied so
     * that a waiting connection does not hold shared receive buffers. */
    if (bid >= 0 && len >= w->br.size / 4 && may_pin(w, c)) {
        arc_buf_ref(&w->br, (uint16_t)bid);
        c->pinned++;
        sg = (struct seg){ .p = p, .len = (uint32_t)len, .bid = bid };
    } else {
        char *m = malloc(len);
        ARC_ASSERT(m != NULL);
        memcpy(m, p, len);
        sg = (struct seg){ .p = m, .len = (uint32_t)len, .bid = -1, .mem = m };
    }
    c->stash[c->stash_n++] = sg;
    /* Bytes are piling up that nobody can take: stop the receive so the
     * stash stays bounded by what was already in flight. */
    arc_px__recv_pause(w, c);
}

void arc_px__stash_drop(struct arc_worker *w, struct arc_conn *c)
{
    for (uint32_t i = 0; i < c->stash_n; i++)
        seg_release(w, c, &c->stash[i]);
    c->stash_n = 0;
}

void arc_px__stash_replay(struct arc_worker *w, struct arc_conn *c,
                          bool (*can)(const struct arc_conn *c), arc_px_input_fn fn)
{
    while (c->stash_n && !c->closing && can(c)) {
        struct seg *sg = &c->stash[0];
        size_t n = fn(w, c, sg->bid, sg->p, sg->len);
        /* fn may end an exchange, and with it close the connection or drop
         * the stash (segment included): nothing of it is ours any more. */
        if (c->closing || c->stash_n == 0 || sg != &c->stash[0])
            return;
        if (n < sg->len) {
            sg->p += n;
            sg->len -= (uint32_t)n;
            return;
        }
        seg_release(w, c, sg);
        c->stash_n--;
        memmove(&c->stash[0], &c->stash[1], c->stash_n * sizeof(*c->stash));
    }
}

bool arc_px__hbuf_append(struct arc_conn *c, const char *p, size_t len, size_t cap)
{
    if (c->hlen + len > cap)
        len = cap - c->hlen;
    if (c->hlen + len > c->hcap) {
        size_t ncap = c->hcap ? c->hcap : 1024;
        while (ncap < c->hlen + len)
            ncap *= 2;
        char *nb = realloc(c->hbuf, ncap);
        if (!nb)
            return false;
        c->hbuf = nb;
        c->hcap = (uint32_t)ncap;
    }
    memcpy(c->hbuf + c->hlen, p, len);
    c->hlen += (uint32_t)len;
    return true;
}

bool arc_px__head_view(struct arc_conn *c, const char *p, size_t len, size_t cap,
                       struct arc_px_head *h)
{
    *h = (struct arc_px_head){ .buf = p, .len = len, .pending = c->hlen > 0 };
    if (!h->pending)
        return true;
    size_t before = c->hlen;
    if (!arc_px__hbuf_append(c, p, len, cap))
        return false;
    h->copied = c->hlen - before;
    h->buf = c->hbuf;
    h->len = c->hlen;
    return true;
}

bool arc_px__head_keep(struct arc_conn *c, const struct arc_px_head *h,
                       const char *p, size_t len, size_t cap)
{
    return h->pending || arc_px__hbuf_append(c, p, len, cap);
}

bool arc_px__head_may_be_complete(struct arc_conn *c, const struct arc_px_head *h)
{
    /* Only pending heads are resumed: fresh bytes are parsed at once (the
     * common case of a head in one receive costs one pass). A line ends in
     * LF; the parser decides the rest, and is run only once a new line
     * arrived since the last pass, so a head trickled byte by byte costs
     * one parse per line, not one per byte. */
    if (!h->pending)
        return true;
    return arc_h1_head_scan(h->buf, h->len, &c->hscanned);
}

void arc_px__hbuf_reset(struct arc_conn *c)
{
    c->hlen = 0;
    c->hscanned = 0;
    /* Keep small buffers for the next head; give big ones back. */
    if (c->hcap > 8192) {
        free(c->hbuf);
        c->hbuf = NULL;
        c->hcap = 0;
    }
}

void arc_px__recv_pause(struct arc_worker *w, struct arc_conn *c)
{
    if (!c->recv_armed || c->recv_cancelling || c->closing)
        return;
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_cancel64(sqe, op_ud(OP_RECV, c->idx, c->gen), 0);
    io_uring_sqe_set_data64(sqe, op_ud(OP_IGNORE, 0, 0));
    c->recv_cancelling = true;
}

void arc_px__set_timer(struct arc_worker *w, struct arc_conn *c, uint64_t ms)
{
    if (!c->closing)
        arc_tw_schedule(&w->tw, &c->timer, w->now_ms + ms);
}

void arc_px__shutdown_wr(struct arc_worker *w, struct arc_conn *c)
{
    if (c->shut_wr || c->closing)
        return;
    c->shut_wr = true;
    c->tp->shutdown(w, c);
}

/* ------------------------------------------------------------ close */

static void maybe_finish_close(struct arc_worker *w, struct arc_conn *c)
{
    if (c->ops > 0 || c->close_queued)
        return;
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_close(sqe, c->fd);
    io_uring_sqe_set_data64(sqe, op_ud(OP_CLOSE, c->idx, c->gen));
    c->close_queued = true;
    c->ops++;
}

/*
 * Starts closing c: nothing more is queued or read; pending operations are
 * cancelled and the descriptor is closed once the last one completed, so no
 * operation ever runs against a reused descriptor number. A client's
 * running exchange ends here (as aborted) if its owner did not end it.
 */
void arc_px__conn_close(struct arc_worker *w, struct arc_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->kind == CONN_CLIENT)
        c->c.codec->teardown(w, c);
    else if (c->u.h2)
        arc_px__h2u_closed(w, c);       /* its exchanges fail or move */
    arc_tw_cancel(&w->tw, &c->timer);
    if (c->starved) {
        struct arc_conn **pp = &w->starved_head;
        while (*pp && *pp != c)
            pp = &(*pp)->starved_next;
        if (*pp)
            *pp = c->starved_next;
        c->starved = false;
    }
    arc_px__stash_drop(w, c);
    free(c->stash);
    c->stash = NULL;
    c->stash_cap = 0;
    free(c->hbuf);
    c->hbuf = NULL;
    c->hlen = c->hcap = c->hscanned = 0;
    if (c->kind == CONN_CLIENT) {
        arc_px__guard_release(w, c);
        w->n_clients--;
        atomic_fetch_sub_explicit(&arc_px__node_clients, 1, memory_order_relaxed);
        arc_m_add(arc_m_li(&w->metrics, c->c.listener, ARC_ML_CLOSED), 1);
    } else {
        struct arc_exchange *ex = c->u.ex;
        if (ex && ex->up == c)
            ex->up = NULL;
        c->u.ex = NULL;
        if (c->u.in_pool)
            arc_px__pool_remove(w, c);
        if (c->u.counted_open) {
            atomic_fetch_sub_explicit(c->u.ep_rt->open_conns, 1,
                                      memory_order_relaxed);
            c->u.counted_open = false;
        }
        arc_m_sub(arc_m_up(&w->metrics, c->u.up->id, ARC_MU_POOL_OPEN), 1);
        arc_px__up_conn_gone(w, c);
    }
    if (c->ops > 0) {
        struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, op_ud(OP_IGNORE, 0, 0));
    }
    if (!c->send_armed)
        outq_clear(w, c);
    maybe_finish_close(w, c);
}

/* Called for every completion of an op on a closing connection. */
void arc_px__conn_on_closed(struct arc_worker *w, struct arc_conn *c)
{
    if (!c->send_armed)
        outq_clear(w, c);
    if (c->close_queued && c->ops == 0) {
        slab_free(w, c);
        return;
    }
    maybe_finish_close(w, c);
}

void arc_px__conn_teardown(struct arc_worker *w, struct arc_conn *c)
{
    if (c->kind == CONN_UPSTREAM)
        arc_px__h2u_dispose(c);
    if (c->kind)
        c->tp->dispose(w, c);
    free(c->hbuf);
    for (uint32_t s = 0; s < c->stash_n; s++)
        if (c->stash[s].bid < 0)
            free(c->stash[s].mem);
    free(c->stash);
    for (uint32_t s = 0; s < c->out.n; s++) {
        struct seg *sg = outq_at(&c->out, s);
        if (sg->bid < 0)
            free(sg->mem);
    }
    if (c->out.blk && c->out.seg != c->out.blk->seg)
        free(c->out.seg);
    free(c->out.blk);
}

/* ------------------------------------------------------------ peer address */

const struct sockaddr *arc_px__peer_addr(struct arc_conn *c)
{
    /* Looked up once, by the L7 guards at accept (multishot accept shares
     * one address buffer between completions, so it does not record it). Kept as the sockaddr only: 28 bytes, not a
     * sockaddr_storage and its text. */
    if (!c->c.peer_known) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        c->c.peer_known = true;
        c->c.peer.sa.sa_family = AF_UNSPEC;
        if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET)
                memcpy(&c->c.peer.in, &ss, sizeof(c->c.peer.in));
            else if (ss.ss_family == AF_INET6)
                memcpy(&c->c.peer.in6, &ss, sizeof(c->c.peer.in6));
        }
    }
    return c->c.peer.sa.sa_family == AF_UNSPEC ? NULL : &c->c.peer.sa;
}

const char *arc_px__peer_text(struct arc_conn *c, char buf[ARC_PX_PEER_TEXT])
{
    const struct sockaddr *sa = arc_px__peer_addr(c);
    if (!sa)
        return "unknown";
    if (sa->sa_family == AF_INET6)
        return inet_ntop(AF_INET6, &c->c.peer.in6.sin6_addr, buf, ARC_PX_PEER_TEXT) ? buf
                                                                                     : "unknown";
    /* IPv4 by hand: this runs for every forwarded request, and inet_ntop
     * costs several times as much for the same dotted quad. */
    const uint8_t *a = (const uint8_t *)&c->c.peer.in.sin_addr;
    char *o = buf;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100) {
            *o++ = (char)('0' + v / 100);
            v %= 100;
            *o++ = (char)('0' + v / 10);
        } else if (v >= 10) {
            *o++ = (char)('0' + v / 10);
        }
        *o++ = (char)('0' + v % 10);
        *o++ = i < 3 ? '.' : '\0';
    }
    return buf;
}
