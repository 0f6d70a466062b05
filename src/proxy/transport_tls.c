/*
 * The TLS transport: OpenSSL over memory (src/tls/) on the connection's own
 * io_uring receive and send operations, for https listeners (server side)
 * and upstreams with `tls` (client side). The codec above never notices:
 * it reads plaintext through arc_px__conn_input and queues plaintext in the
 * connection's output queue; this file encrypts that queue into records
 * and sends them.
 *
 *   start ──(client: ClientHello out)──▶ HANDSHAKE ──handshake() DONE──▶ OPEN
 *      HANDSHAKE ──FAILED──▶ alert out, then closed (counted by reason)
 *      OPEN ──shutdown──▶ close_notify out, then SHUT_WR (lingering close)
 *      OPEN ──peer close_notify / EOF──▶ EOF to the protocol
 *
 * Memory: received ciphertext is copied into OpenSSL's input BIO, so the
 * provided buffer goes straight back to the ring; plaintext from the output
 * queue is encrypted as soon as the records fit under
 * node.max_buffered_output, so queued provided buffers are released early;
 * encrypted records stay put until the send that points at them completed
 * (they are only freed by dispose, when the slot itself is freed).
 * A handshake costs only its own CPU: every call is non-blocking and all
 * certificate files were read when the snapshot was built.
 */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

_Static_assert(ARC_M_TLS_RESULTS == ARC_TLS_FAIL__COUNT, "metrics shard TLS result slots");

static void count_handshake(struct arc_worker *w, struct arc_conn *c, enum arc_tls_fail f)
{
    arc_m_add(&w->metrics.tls_handshakes[c->kind == CONN_CLIENT ? 0 : 1][f], 1);
    arc_px__guard_hs_done(w, c);
}

/* Hands pending records to one sendmsg. */
static void send_records(struct arc_worker *w, struct arc_conn *c)
{
    if (c->send_armed || !arc_tls_conn_out_pending(c->tls))
        return;
    struct outblk *b = arc_px__outblk(w, c);
    int n = arc_tls_conn_out_iov(c->tls, b->iov, OUTQ_IOV);
    b->msg = (struct msghdr){ .msg_iov = b->iov, .msg_iovlen = (size_t)n };
    c->out.inflight = 0;                /* the send points at records, not at the queue */
    struct io_uring_sqe *sqe = arc_ring_sqe(&w->ring);
    io_uring_prep_sendmsg(sqe, c->fd, &b->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, op_ud(OP_SEND, c->idx, c->gen));
    c->send_armed = true;
    c->ops++;
}

/* Encrypts queued plaintext while the records waiting stay under the
 * connection's output bound. */
static void encrypt_queue(struct arc_worker *w, struct arc_conn *c)
{
    while (c->out.n && !c->tls_close && !c->shut_wr && arc_tls_conn_established(c->tls) &&
           arc_tls_conn_out_pending(c->tls) < c->out_high) {
        struct seg *s = &c->out.seg[c->out.head];
        size_t n = 0;
        if (arc_tls_conn_write(c->tls, s->p, s->len, &n) != ARC_TLS_IO_OK || n == 0)
            break;
        arc_px__outq_consume(w, c, n);
    }
}

static void tls_flush(struct arc_worker *w, struct arc_conn *c)
{
    encrypt_queue(w, c);
    send_records(w, c);
}

static void tls_start(struct arc_worker *w, struct arc_conn *c)
{
    if (c->kind != CONN_UPSTREAM)
        return;                         /* the server waits for the ClientHello */
    if (arc_tls_conn_handshake(c->tls) == ARC_TLS_HS_FAILED) {
        count_handshake(w, c, arc_tls_conn_fail(c->tls));
        c->tls_close = true;
    }
    send_records(w, c);
}

/* The handshake failed: the alert (if any) goes out, then the connection
 * closes; nothing more is read. */
static void handshake_failed(struct arc_worker *w, struct arc_conn *c)
{
    count_handshake(w, c, arc_tls_conn_fail(c->tls));
    if (c->kind == CONN_UPSTREAM) {
        /* For the exchange this is a failed connection (502). */
        arc_px__up_connected(w, c, -EPROTO);
        return;
    }
    c->tls_close = true;
    arc_px__recv_pause(w, c);
    if (arc_tls_conn_out_pending(c->tls))
        send_records(w, c);
    else
        arc_px__conn_close(w, c);
}

/* End of the peer's data (close_notify, or a cut without one), in order
 * behind input still waiting in the stash. */
static void deliver_eof(struct arc_worker *w, struct arc_conn *c, int err)
{
    if (c->eof)
        return;
    c->eof = true;
    if (err == 0 && c->stash_n) {
        c->eof_pending = true;
        return;
    }
    arc_px__conn_eof(w, c, err);
}

/* Handshake and decryption of what was fed. */
static void tls_process(struct arc_worker *w, struct arc_conn *c)
{
    if (!arc_tls_conn_established(c->tls)) {
        switch (arc_tls_conn_handshake(c->tls)) {
        case ARC_TLS_HS_AGAIN:
            send_records(w, c);
            return;
        case ARC_TLS_HS_FAILED:
            handshake_failed(w, c);
            return;
        case ARC_TLS_HS_DONE:
            count_handshake(w, c, ARC_TLS_FAIL_NONE);
            if (c->kind == CONN_CLIENT)
                arc_px__client_ready(w, c, arc_tls_conn_alpn(c->tls));
            else
                arc_px__up_ready(w, c, arc_tls_conn_alpn(c->tls));
            if (c->closing)
                return;
            break;
        }
    }
    while (!c->closing && !c->eof) {
        size_t n = 0;
        enum arc_tls_io r = arc_tls_conn_read(c->tls, w->tls_plain, TLS_PLAIN_BUF, &n);
        if (r == ARC_TLS_IO_OK) {
            arc_px__conn_input(w, c, -1, w->tls_plain, n);
            continue;
        }
        if (r == ARC_TLS_IO_CLOSED || r == ARC_TLS_IO_EOF)
            deliver_eof(w, c, 0);
        else if (r == ARC_TLS_IO_ERROR)
            deliver_eof(w, c, -EPROTO);
        break;
    }
    /* Reads may queue output (TLS 1.3 tickets, key updates), and the
     * protocol may have queued an answer. */
    if (!c->closing)
        arc_px__flush_soon(w, c);
}

static void tls_on_recv(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                        const char *p, size_t len)
{
    (void)bid;
    if (c->tls_close || c->eof)
        return;
    /* OpenSSL reads the ciphertext straight from the provided buffer (it
     * stays ours until this returns); only bytes it did not take yet are
     * copied, so an idle connection keeps no input buffer. */
    arc_tls_conn_feed_borrow(c->tls, p, len);
    tls_process(w, c);
    if (arc_tls_conn_feed_end(c->tls) < 0 && !c->closing)
        arc_px__conn_eof(w, c, -ENOMEM);
}

static void tls_on_sent(struct arc_worker *w, struct arc_conn *c, size_t res)
{
    arc_tls_conn_out_consume(c->tls, res);
    if (arc_tls_conn_out_pending(c->tls))
        return;
    if (c->tls_close) {
        arc_px__conn_close(w, c);       /* the alert is out */
        return;
    }
    if (c->shut_wr)
        shutdown(c->fd, SHUT_WR);       /* close_notify is out: now the FIN */
}

static void tls_shutdown(struct arc_worker *w, struct arc_conn *c)
{
    arc_tls_conn_shutdown(c->tls);
    if (arc_tls_conn_out_pending(c->tls))
        send_records(w, c);
    else
        shutdown(c->fd, SHUT_WR);
}

static void tls_dispose(struct arc_worker *w, struct arc_conn *c)
{
    (void)w;
    if (!c->tls)
        return;
    arc_tls_conn_dispose(c->tls);
    free(c->tls);
    c->tls = NULL;
}

const struct arc_transport_vt arc_px__tls = {
    .name = "tls",
    .start = tls_start,
    .on_recv = tls_on_recv,
    .on_sent = tls_on_sent,
    .flush = tls_flush,
    .shutdown = tls_shutdown,
    .dispose = tls_dispose,
};
