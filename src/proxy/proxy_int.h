/*
 * Proxy module internals shared by worker.c, conn.c, client.c, upstream.c
 * and heads.c. Nothing outside src/proxy/ includes this.
 *
 * Connection state machines
 * -------------------------
 * Client connection (struct arc_conn, kind CONN_CLIENT):
 *
 *   C_HEAD ──head parsed──▶ dispatch ──local answer──▶ C_LOCAL ──sent, keep-alive──▶ C_HEAD
 *     │                         │                         └──sent, close──▶ C_LINGER
 *     │                         └─upstream─▶ C_PROXY ──response done, keep-alive──▶ C_HEAD
 *     │                                        │  └──response done, close──▶ C_LINGER
 *     │                                        └──101 Switching Protocols──▶ C_TUNNEL
 *     └──timeout / bad request──▶ C_LOCAL (408/400, close) or closed
 *   C_LINGER: our side is shut for writing; unread client bytes are read and
 *   dropped until EOF or a short deadline so the client sees our last
 *   response instead of a RST (the classic lingering-close problem).
 *
 * Upstream connection (kind CONN_UPSTREAM):
 *   U_CONNECTING ──connected──▶ U_ACTIVE ──response done, reusable──▶ U_IDLE (pool)
 *   U_IDLE ──checked out──▶ U_ACTIVE;  U_IDLE ──EOF/data/idle_ttl──▶ closed
 *   U_ACTIVE ──101──▶ U_TUNNEL
 *
 * All moves happen in client.c (client side) and upstream.c (upstream side);
 * pump() in conn.c re-evaluates, after every event, which receives and sends
 * should be armed, which is where backpressure lives: a side is read only
 * while the other side's output queue is below its high-water mark.
 *
 * In-flight rule: a connection slot is reused only after every io_uring
 * operation referencing it has completed (ops == 0) and its close finished;
 * the 24-bit generation in user_data catches anything that slips through.
 */
#ifndef ARC_PROXY_INT_H
#define ARC_PROXY_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <sys/uio.h>
#include <sys/socket.h>

#include "core/common.h"
#include "config/snapshot.h"
#include "http1/http1.h"
#include "loop/ring.h"
#include "loop/timer.h"
#include "obs/metrics.h"
#include "upstream/lb.h"

/* ------------------------------------------------------------ user_data */

enum op_kind {
    OP_IGNORE = 0,      /* cancel requests and other fire-and-forget SQEs */
    OP_ACCEPT,          /* idx = listener index */
    OP_TICK,            /* the timer wheel's multishot timeout */
    OP_RECV,
    OP_SEND,
    OP_CONNECT,
    OP_CLOSE,
};

static inline uint64_t op_ud(enum op_kind k, uint32_t idx, uint32_t gen)
{
    return ((uint64_t)idx << 32) | ((uint64_t)(gen & 0xffffff) << 8) | (uint64_t)k;
}
#define UD_KIND(ud) ((enum op_kind)((ud) & 0xff))
#define UD_GEN(ud)  ((uint32_t)(((ud) >> 8) & 0xffffff))
#define UD_IDX(ud)  ((uint32_t)((ud) >> 32))

/* ------------------------------------------------------------ output queue */

/* A segment to send: either inside a provided buffer (bid >= 0, one buffer
 * reference held) or a heap block we own (bid < 0, mem freed when sent). */
struct seg {
    const char *p;
    uint32_t len;
    int32_t bid;
    void *mem;
};

#define OUTQ_SEGS 32
#define OUTQ_IOV 16
/* Stop reading the other side once this many segments are queued (the byte
 * limit is node.max_buffered_output, copied into each connection). */
#define OUTQ_HIGH_SEGS (OUTQ_SEGS - 6)

struct outq {
    struct seg seg[OUTQ_SEGS];
    uint16_t head, n;
    size_t bytes;
};

/* ------------------------------------------------------------ connections */

enum conn_kind { CONN_CLIENT = 1, CONN_UPSTREAM = 2 };

/* ------------------------------------------------------------ transport */

struct arc_conn;
struct arc_worker;

/*
 * What sits between a connection's socket operations and its protocol
 * state machine. Plain TCP hands received bytes straight to the protocol
 * and sends the output queue as it is; TLS (next) will decrypt on the way
 * in and encrypt the queue into records on the way out, without either
 * state machine noticing.
 */
struct arc_transport_vt {
    const char *name;
    /* Bytes the socket received (in provided buffer `bid`). */
    void (*on_recv)(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                    const char *p, size_t len);
    /* Push the output queue towards the socket (one send in flight at most). */
    void (*flush)(struct arc_worker *w, struct arc_conn *c);
};

extern const struct arc_transport_vt arc_px__plain;

enum client_state { C_HEAD = 1, C_LOCAL, C_PROXY, C_TUNNEL, C_LINGER };
enum up_state { U_CONNECTING = 1, U_ACTIVE, U_IDLE, U_TUNNEL };

struct arc_worker;

/* One request/response exchange. Codec-neutral: it records what the
 * pipeline decided and how far each direction got, not HTTP/1 syntax. */
struct stream {
    const struct arc_route_rt *route;   /* NULL: no route (metrics row n_routes) */
    int status;                         /* final status sent to the client, 0 = none yet */
    uint64_t started_ms;
    int ep;                             /* endpoint index, -1 before pick */
    /* request body still coming from the client */
    enum arc_h1_body req_body;
    uint64_t req_left;                  /* BODY_LENGTH: bytes still to forward */
    struct arc_h1_chunked req_chunk;
    /* response from the upstream */
    enum arc_h1_body resp_body;
    uint64_t resp_left;
    struct arc_h1_chunked resp_chunk;
    bool req_done;                      /* whole request read from the client */
    bool resp_head_done;                /* final response head parsed */
    bool resp_started;                  /* bytes of the response already queued to the client */
    bool resp_done;
    bool is_head;                       /* HEAD request */
    bool expect_100;                    /* we owe (and sent) 100 Continue */
    bool upgrade;                       /* request asked to upgrade */
    bool client_keep_alive;             /* client connection may continue after this */
    bool retried;                       /* already retried once on a fresh connection */
    bool resp_keep_alive;               /* upstream allows reuse after this response */
    bool lb_open;                       /* arc_lb_start ran; arc_lb_done still owed */
    bool idempotent;                    /* method may be replayed (RFC 9110 §9.2.2) */
    bool dechunk;                       /* HTTP/1.0 client: forward chunk data only, close after */
    bool extra;                         /* upstream sent bytes past the response end */
    int client_minor;                   /* HTTP/1.x minor version of the request */
    char *replay;                       /* request head kept for one retry (no body) */
    size_t replay_len;
};

struct arc_conn {
    uint32_t idx, gen;
    uint8_t kind, state;
    uint16_t ops;                       /* io_uring operations in flight */
    const struct arc_transport_vt *tp;  /* plain TCP for now */
    uint32_t out_high;                  /* node.max_buffered_output */
    int fd;
    bool recv_armed, send_armed, closing, close_queued;
    bool eof;                           /* peer closed its sending side */
    bool starved;                       /* waiting for provided buffers */
    bool recv_full;                     /* last receive filled its buffer */
    bool in_process;                    /* input is being processed: pumps must not arm a
                                           receive (new bytes would overtake the current ones) */
    bool shut_wr;
    bool fresh;                         /* client: no request seen yet */
    bool head_started;                  /* client: bytes of the next head arrived (header deadline runs) */
    bool close_after;                   /* client: close once the output queue drained */
    struct outq out;
    struct iovec iov[OUTQ_IOV];
    struct msghdr msg;
    struct arc_timer timer;
    uint64_t created_ms;
    /* Input received but not processable yet (pipelined requests, bytes
     * that arrived while the other side was backed up), oldest first.
     * Segments as in the output queue: a provided-buffer reference or an
     * owned heap copy. */
    struct seg *stash;
    uint32_t stash_n, stash_cap;
    bool recv_cancelling;               /* a cancel of the multishot receive is in flight */
    bool eof_pending;                   /* EOF arrived behind stashed bytes: deliver it after them */
    /* Head bytes accumulated across receives (only when a head spans them). */
    char *hbuf;
    uint32_t hlen, hcap;
    struct arc_conn *peer;              /* client <-> upstream while paired */
    struct arc_conn *starved_next;
    union {
        struct {                        /* CONN_CLIENT */
            struct stream st;
            uint32_t listener;
            char peer_ip[48];           /* for X-Forwarded-For; "" until needed */
            struct sockaddr_storage peer; /* valid once peer_ip is set (family 0 = unknown) */
        } c;
        struct {                        /* CONN_UPSTREAM */
            const struct arc_upstream_rt *up;
            const struct arc_endpoint_rt *ep_rt;
            uint32_t ep;
            struct arc_conn *pool_next, *pool_prev;
            bool in_pool;
            bool reused;                /* carried an earlier request */
            bool got_bytes;             /* response bytes arrived for this request */
            bool counted_open;          /* holds a slot in ep_rt->open_conns */
            bool connected;
        } u;
    };
};

/* ------------------------------------------------------------ worker */

struct pool {
    struct arc_conn *head;              /* idle connections, most recent first */
    uint32_t n_idle;
};

struct wup {                            /* a worker's state for one upstream */
    struct arc_lb lb;
    struct pool *pools;                 /* [n_eps] */
};

struct slab {
    struct arc_conn **chunks;           /* stable addresses: chunks never move */
    size_t n_chunks;
    uint32_t *free_idx;
    size_t n_free, cap_free;
    size_t used;
};
#define SLAB_CHUNK 256

struct arc_worker {
    unsigned id;
    int cpu;                            /* -1 = not pinned */
    struct io_uring ring;
    struct arc_bufring br;
    struct arc_tw tw;
    uint64_t now_ms;
    struct arc_snapshot *snap;          /* one reference held */
    struct slab slab;
    size_t n_clients;                   /* open client connections */
    int *listen_fds;                    /* [n_listeners] */
    bool *accept_armed;
    size_t n_listen;
    struct arc_metrics_shard metrics;
    struct wup *ups;                    /* [snap->n_ups] */
    struct arc_conn *starved_head;
    struct __kernel_timespec tick_ts;
    bool draining, stopping;
    uint64_t drain_deadline;
    uint32_t max_conns;                 /* per-worker share of node.max_connections, 0 = none */
    _Atomic int done;                   /* 1 once the thread left its loop */
    _Atomic int ready;                  /* 1 once accepting, -1 on failure (control thread reads) */
    struct arc_h1_header *hdrs;         /* parser scratch, [snap->limits.max_headers] */
    pthread_t thread;
    char errmsg[256];
};

/* worker.c */
void arc_px__on_timer(struct arc_timer *t, uint64_t now);

/* conn.c */
struct arc_conn *arc_px__conn_new(struct arc_worker *w, enum conn_kind kind, int fd);
struct arc_conn *arc_px__conn_get(struct arc_worker *w, uint32_t idx);
void arc_px__conn_close(struct arc_worker *w, struct arc_conn *c);
void arc_px__conn_on_closed(struct arc_worker *w, struct arc_conn *c);
void arc_px__arm_recv(struct arc_worker *w, struct arc_conn *c);
void arc_px__flush(struct arc_worker *w, struct arc_conn *c);
void arc_px__on_send(struct arc_worker *w, struct arc_conn *c, int res);
void arc_px__queue_buf(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len);
void arc_px__queue_copy(struct arc_worker *w, struct arc_conn *c, const void *p, size_t len);
void arc_px__queue_owned(struct arc_worker *w, struct arc_conn *c, char *mem, size_t len);
void arc_px__stash(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len);
void arc_px__stash_drop(struct arc_worker *w, struct arc_conn *c);
/* Feeds stashed input, oldest first, to `fn` while `can` allows; fn returns
 * the bytes it consumed (less than given = stop, the rest stays first). */
typedef size_t (*arc_px_input_fn)(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                                  const char *p, size_t len);
void arc_px__stash_replay(struct arc_worker *w, struct arc_conn *c,
                          bool (*can)(const struct arc_conn *c), arc_px_input_fn fn);
/* Stops the multishot receive (data already in flight still arrives and is
 * stashed); it is re-armed by the next pump that wants input. */
void arc_px__recv_pause(struct arc_worker *w, struct arc_conn *c);
bool arc_px__hbuf_append(struct arc_conn *c, const char *p, size_t len, size_t cap);
void arc_px__hbuf_reset(struct arc_conn *c);

/* A message head may arrive over several receives (either direction).
 * arc_px__head_view presents the bytes to parse: the received bytes
 * themselves when nothing is pending (no copy), else the pending bytes in
 * hbuf with the new ones appended (up to cap). False: out of memory. */
struct arc_px_head {
    const char *buf;
    size_t len;
    size_t copied;                      /* bytes of the receive appended to hbuf */
    bool pending;                       /* buf is hbuf */
};
bool arc_px__head_view(struct arc_conn *c, const char *p, size_t len, size_t cap,
                       struct arc_px_head *h);
/* Incomplete head: keep the received bytes for the next receive. */
bool arc_px__head_keep(struct arc_conn *c, const struct arc_px_head *h,
                       const char *p, size_t len, size_t cap);
/* A head of head_len bytes was parsed: how many received bytes it used. */
static inline size_t arc_px__head_used(const struct arc_conn *c, const struct arc_px_head *h,
                                       size_t head_len)
{
    return h->pending ? h->copied - (c->hlen - head_len) : head_len;
}
void arc_px__shutdown_wr(struct arc_worker *w, struct arc_conn *c);
/* Arms c's deadline ms from now; a no-op on a closing connection. */
void arc_px__set_timer(struct arc_worker *w, struct arc_conn *c, uint64_t ms);
static inline bool arc_px__outq_high(const struct arc_conn *c)
{
    return c->out.bytes >= c->out_high || c->out.n >= OUTQ_HIGH_SEGS;
}

/* client.c */
void arc_px__client_accepted(struct arc_worker *w, int fd, uint32_t listener);
void arc_px__client_data(struct arc_worker *w, struct arc_conn *c, int32_t bid, const char *p, size_t len);
void arc_px__client_eof(struct arc_worker *w, struct arc_conn *c, int err);
void arc_px__client_pump(struct arc_worker *w, struct arc_conn *c);
void arc_px__client_timeout(struct arc_worker *w, struct arc_conn *c);
void arc_px__client_sent(struct arc_worker *w, struct arc_conn *c);
/* Called by upstream.c */
void arc_px__local_error(struct arc_worker *w, struct arc_conn *c, int status, enum arc_err_kind kind,
                         bool close);
void arc_px__exchange_done(struct arc_worker *w, struct arc_conn *c);
void arc_px__client_abort(struct arc_worker *w, struct arc_conn *c);
void arc_px__client_cut(struct arc_worker *w, struct arc_conn *c);

/* upstream.c */
int arc_px__up_start(struct arc_worker *w, struct arc_conn *c, char *head, size_t head_len);
void arc_px__up_data(struct arc_worker *w, struct arc_conn *u, int32_t bid, const char *p, size_t len);
void arc_px__up_eof(struct arc_worker *w, struct arc_conn *u, int err);
void arc_px__up_connected(struct arc_worker *w, struct arc_conn *u, int res);
void arc_px__up_pump(struct arc_worker *w, struct arc_conn *u);
void arc_px__up_timeout(struct arc_worker *w, struct arc_conn *u);
void arc_px__up_release(struct arc_worker *w, struct arc_conn *u, bool reusable);
void arc_px__up_sent(struct arc_worker *w, struct arc_conn *u);
void arc_px__pool_remove(struct arc_worker *w, struct arc_conn *u);
/* Reports the exchange's end to the load balancer, once. */
void arc_px__lb_end(struct arc_worker *w, struct arc_conn *c);
/* Closes a finished tunnel once both sides hit EOF and both queues drained. */
void arc_px__tunnel_check(struct arc_worker *w, struct arc_conn *c);

/* heads.c */
char *arc_px__build_request_head(struct arc_worker *w, struct arc_conn *c,
                                 const struct arc_h1_request *req, size_t *len);
char *arc_px__build_response_head(struct arc_worker *w, struct arc_conn *c,
                                  const struct arc_h1_response *resp, bool close, size_t *len);
char *arc_px__build_redirect(const struct arc_route_rt *r, const struct arc_h1_request *req,
                             const struct arc_rt_captures *caps, bool close, size_t *len);

#endif
