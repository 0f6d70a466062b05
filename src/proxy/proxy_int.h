/*
 * Proxy module internals shared by the files of src/proxy/. Nothing outside
 * src/proxy/ includes this.
 *
 * Three layers sit under the request pipeline (ARCHITECTURE.md):
 *
 *   socket ── transport ─────── codec ───────────── exchange ── pipeline
 *             (conn.c: plain)   (h1_server.c,       (exchange.c)  (pipeline.c,
 *             start, on_recv,    h1 side of          request view,  upstream.c)
 *             on_sent, flush,    upstream.c)         pinned snapshot,
 *             shutdown, dispose                      ends in one place
 *
 * - A connection (struct arc_conn) owns a transport and, for clients, a
 *   codec. Client and upstream connections have separate state enums and
 *   separate role structs; the state machines are drawn at the top of the
 *   file that moves them: h1_server.c (client connections), upstream.c
 *   (upstream connections), exchange.c (exchanges).
 * - An exchange (struct arc_exchange) is one request/response. It owns its
 *   request view in its own arena, pins the snapshot it started on (its
 *   route, upstream and per-exchange limits come from ex->snap; connection
 *   deadlines and head-parsing limits from the worker's current w->snap), and is
 *   paired with an upstream connection for the duration of an attempt: the
 *   upstream side never sees the client connection, only the exchange.
 * - Backpressure is per exchange: the upstream side asks the client codec
 *   whether the exchange may produce more (arc_px__ex_down_blocked), and the
 *   client side asks the upstream connection of its exchange.
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
#include <netinet/in.h>

#include "core/arena.h"
#include "core/common.h"
#include "guard/guard.h"
#include "config/snapshot.h"
#include "http1/http1.h"
#include "loop/ring.h"
#include "loop/timer.h"
#include "proxy/proxy.h"
#include "obs/metrics.h"
#include "tls/tls.h"
#include "upstream/lb.h"
#include "upstream/health.h"

/* ------------------------------------------------------------ user_data */

enum op_kind {
    OP_IGNORE = 0,      /* cancel requests and other fire-and-forget SQEs */
    OP_ACCEPT,          /* idx = listener index */
    OP_TICK,            /* the timer wheel's multishot timeout */
    OP_RECV,
    OP_SEND,
    OP_CONNECT,
    OP_CLOSE,
    OP_GLWAKE,          /* the global tier's replies are waiting (eventfd read) */
};

static inline uint64_t op_ud(enum op_kind k, uint32_t idx, uint32_t gen)
{
    return ((uint64_t)idx << 32) | ((uint64_t)(gen & 0xffffff) << 8) | (uint64_t)k;
}
#define UD_KIND(ud) ((enum op_kind)((ud) & 0xff))
#define UD_GEN(ud)  ((uint32_t)(((ud) >> 8) & 0xffffff))
#define UD_IDX(ud)  ((uint32_t)((ud) >> 32))

/* ------------------------------------------------------------ byte queues */

/* A segment of bytes: either inside a provided buffer (bid >= 0, one buffer
 * reference held) or a heap block we own (bid < 0; mem is freed when the
 * segment is done, cap > 0 marks a block that may take appended bytes). */
struct seg {
    const char *p;
    uint32_t len;
    int32_t bid;
    char *mem;
    uint32_t cap;
};

/* What a connection needs only while it has output: the sendmsg header and
 * its iovec (they must stay put until the send's completion: in-flight
 * rule) and room for the queue's first segments. Taken from the worker's
 * pool (conn.c) when output appears and given back once the queue is empty
 * and no send is in flight, so an idle connection holds none of it. */
#define OUTQ_IOV 16
#define OUTQ_INLINE 8
struct outblk {
    struct msghdr msg;
    struct iovec iov[OUTQ_IOV];
    struct seg seg[OUTQ_INLINE];
    struct outblk *next_free;
};

/* Output queue: a growable ring of segments (in blk->seg, or a heap array
 * once it outgrew that). Its byte size is bounded by backpressure
 * (node.max_buffered_output stops the producing side), and its segment
 * count can never overflow: small pieces are coalesced into a tail block,
 * and the ring grows when needed. seg, cap and blk are NULL/0 while the
 * connection has no output. */
struct outq {
    struct seg *seg;
    uint32_t cap, head, n;
    uint32_t inflight;                  /* segments handed to the send in flight */
    size_t bytes;
    struct outblk *blk;
};

/* A body waiting on an HTTP/2 session's pull (bytes.c). */
struct arc_px_bytes {
    char *p;
    size_t off, len, cap;
};
bool arc_px__bytes_put(struct arc_px_bytes *q, const void *p, size_t len);
size_t arc_px__bytes_take(struct arc_px_bytes *q, void *dst, size_t cap);
void arc_px__bytes_free(struct arc_px_bytes *q);
static inline size_t arc_px__bytes_len(const struct arc_px_bytes *q)
{
    return q->len - q->off;
}

/* ------------------------------------------------------------ roles, states */

enum conn_kind { CONN_CLIENT = 1, CONN_UPSTREAM = 2 };

/* Client connection states (h1_server.c draws the machine). */
enum cstate {
    CS_HEAD = 1,        /* waiting for / reading the next request head */
    CS_EXCHANGE,        /* an exchange is running (c->c.ex != NULL) */
    CS_TUNNEL,          /* 101 Switching Protocols: relaying bytes */
    CS_CLOSING,         /* last response going out; half-close when sent */
    CS_LINGER,          /* write side shut; reading and dropping until EOF */
    CS_H2,              /* HTTP/2: exchanges multiplexed (h2_server.c) */
};

/* Upstream connection states (upstream.c draws the machine). */
enum ustate {
    US_CONNECTING = 1,  /* connect SQE in flight */
    US_BUSY,            /* carrying one exchange's attempt (u->u.ex) */
    US_IDLE,            /* in the worker's pool, receive armed to see a close */
    US_TUNNEL,          /* after 101, relaying for its exchange */
    US_H2,              /* HTTP/2: many exchanges multiplexed (h2_upstream.c) */
};

/* Exchange states (exchange.c draws the machine). */
enum ex_state {
    EX_ROUTING = 1,     /* head parsed; the pipeline is deciding */
    EX_CONNECTING,      /* waiting for an upstream connection (resumes on connect) */
    EX_UPSTREAM,        /* attempt open: request going up, response head awaited */
    EX_STREAMING,       /* response head handed to the client codec; body flowing */
    EX_TUNNEL,          /* 101: bytes relayed both ways until both sides close */
    EX_WAITING,         /* a pipeline stage holds it until a deadline or a wake
                           (arc_px__ex_wait; the rate limiter's delay, a
                           global limit's lease refill from Redis) */
};

/* How an exchange ended, for metrics (and the access log later). */
enum ex_outcome {
    EXO_COMPLETE,       /* response fully handed to the client codec */
    EXO_CLIENT_ABORT,   /* client went away or stopped reading mid-exchange */
    EXO_CLIENT_TIMEOUT, /* client too slow sending the request */
    EXO_UPSTREAM_CUT,   /* response broke after it started (truncated to the client) */
    EXO_TUNNEL_END,     /* a tunnel closed (the 101 itself was counted when sent) */
};

/* ------------------------------------------------------------ transport */

struct arc_conn;
struct arc_worker;
struct arc_exchange;

/*
 * What sits between a connection's socket operations and its protocol.
 * Plain TCP hands received bytes straight to the protocol and sends the
 * output queue as it is; TLS decrypts on the way in and encrypts the queue
 * into records on the way out, without the codec noticing.
 */
struct arc_transport_vt {
    const char *name;
    /* The connection is established (accepted, or connect completed):
     * start a handshake if there is one; the protocol is told when the
     * transport is ready through arc_px__conn_ready. */
    void (*start)(struct arc_worker *w, struct arc_conn *c);
    /* Bytes the socket received (in provided buffer `bid`). */
    void (*on_recv)(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                    const char *p, size_t len);
    /* A send completed with `res` bytes (res > 0). */
    void (*on_sent)(struct arc_worker *w, struct arc_conn *c, size_t res);
    /* Push the output queue towards the socket (one send in flight at most).
     * Called whenever output may be waiting; the transport decides. */
    void (*flush)(struct arc_worker *w, struct arc_conn *c);
    /* Orderly end of our sending side after queued bytes (TLS: close_notify). */
    void (*shutdown)(struct arc_worker *w, struct arc_conn *c);
    /* The connection's slot is being freed (no operation references it any
     * more): release transport state. */
    void (*dispose)(struct arc_worker *w, struct arc_conn *c);
};

extern const struct arc_transport_vt arc_px__plain;
/* TLS over the same socket operations (transport_tls.c); c->tls is set. */
extern const struct arc_transport_vt arc_px__tls;

/* ------------------------------------------------------------ codec */

/* A neutral header field (views into an exchange's arena or a parse buffer). */
struct arc_hdr {
    struct arc_str name, value;
};

/* A response head as the pipeline sees it (no wire syntax). */
struct arc_resp {
    int status;
    struct arc_str reason;              /* may be empty */
    const struct arc_h1_header *hdrs;   /* as received (views valid during the call) */
    size_t n_hdrs;
    enum arc_h1_body body;              /* NONE, LENGTH, CHUNKED or CLOSE (as framed upstream) */
    uint64_t content_length;
    bool upgrade;                       /* 101 with Upgrade */
    bool decoded;                       /* CHUNKED: body bytes arrive without chunk framing
                                           (an HTTP/2 upstream); the codec frames them */
};

/*
 * Downstream codec: the client connection's protocol (HTTP/1 today). The
 * pipeline talks to the client only through these calls, per exchange.
 */
struct arc_codec_vt {
    const char *name;
    /* Plaintext input from the transport. */
    void (*on_input)(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                     const char *p, size_t len);
    /* A complete local answer: status, extra fields, body. */
    void (*respond)(struct arc_worker *w, struct arc_exchange *ex, int status,
                    const struct arc_hdr *hdrs, size_t n_hdrs, const char *body, size_t body_len);
    /* An interim (1xx) response from the upstream. */
    void (*interim)(struct arc_worker *w, struct arc_exchange *ex, const struct arc_resp *r);
    /* The final response head from the upstream. */
    void (*send_head)(struct arc_worker *w, struct arc_exchange *ex, const struct arc_resp *r);
    /* Response body bytes; `framed`: still in HTTP/1 chunked coding. */
    void (*send_body)(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                      const char *p, size_t len, bool framed);
    /* Trailer fields of a response whose body arrived decoded (resp->decoded),
     * after its last body byte and before the exchange ends. Views valid
     * during the call. */
    void (*trailers)(struct arc_worker *w, struct arc_exchange *ex,
                     const struct arc_hdr *hdrs, size_t n);
    /* Tunnel bytes after 101. */
    void (*send_raw)(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                     const char *p, size_t len);
    /* The exchange ended (after metrics): the codec decides what the
     * connection does next. The exchange is freed right after. */
    void (*ended)(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome o);
    /* True while the client side cannot take more response bytes. */
    bool (*blocked)(const struct arc_exchange *ex);
    /* The upstream side can take more request body: feed held input. */
    void (*resume)(struct arc_worker *w, struct arc_exchange *ex);
    /* The connection is closing: end every exchange still running (as
     * aborted) and free codec state. */
    void (*teardown)(struct arc_worker *w, struct arc_conn *c);
};

extern const struct arc_codec_vt arc_px__h1_server;
extern const struct arc_codec_vt arc_px__h2_server;
struct arc_h2c;
struct arc_h2u;

/* ------------------------------------------------------------ exchange */

/* The request as the pipeline sees it: owned by the exchange's arena, so it
 * outlives the receive buffer the head was parsed from. */
struct arc_req {
    struct arc_str method, scheme, authority, path, query;
    struct arc_str target;              /* HTTP/1 request-target as sent */
    struct arc_str up_target;           /* origin-form target for the upstream when the
                                           route rewrote it; empty = derive from the above */
    bool absolute_form;                 /* target was absolute-form */
    struct arc_hdr *hdrs;
    size_t n_hdrs;
    uint8_t version;                    /* 10, 11 (20 for HTTP/2 later) */
    enum arc_h1_body body;              /* NONE, LENGTH or CHUNKED */
    uint64_t content_length;
    uint32_t mbit;                      /* ARC_M_* bit of the method */
    bool expect_100, upgrade, keep_alive;
};

/* A pipeline stage's wait (EX_WAITING; exchange.c). `on_wake` runs when
 * the deadline passes or the stage calls arc_px__ex_wake, with the
 * exchange back in the state it waited in; `on_cancel` (may be NULL) when
 * the exchange ends while waiting (client gone, connection closed), before
 * it is recycled, so the stage lets go of what it holds for it. */
struct arc_px_wait;
typedef void (*arc_px_wait_fn)(struct arc_worker *w, struct arc_exchange *ex);
struct arc_px_wait {
    struct arc_timer timer;             /* the deadline, on the worker's wheel */
    struct arc_worker *w;               /* (the wheel's callback gets only the timer) */
    arc_px_wait_fn on_wake, on_cancel;
    uint64_t arg;                       /* the stage's own word (e.g. its key) */
    enum ex_state prev;                 /* the state it waited in */
    bool timed_out;                     /* on_wake: the deadline passed (not a wake call) */
};
#define ARC_PX_RID_MAX 64               /* longest X-Request-Id kept from a trusted peer */

struct arc_exchange {
    enum ex_state state;
    struct arc_conn *client;            /* the downstream connection (its codec) */
    struct arc_conn *up;                /* upstream connection of the attempt, or NULL */
    struct arc_snapshot *snap;          /* pinned until the exchange ends */
    const struct arc_route_rt *route;   /* NULL: no route (metrics row n_routes) */
    const struct arc_upstream_rt *target; /* the route's upstream, or the split's choice;
                                           NULL: none (no route, or not proxied) */
    struct arc_req req;
    struct arc_arena arena;
    int status;                         /* final status sent, 0 = none yet */
    int ep;                             /* endpoint index, -1 before pick */
    uint32_t lb_gen;                    /* w->ups[..].gen at arc_lb_start */
    int32_t lb_ep;                      /* the endpoint's index in that balancer (ep is
                                           its index in ex->target, which may be of an
                                           older config) */
    uint8_t attempts;                   /* upstream attempts made */
    uint8_t n_interim;                  /* 1xx responses forwarded */
    bool req_done;                      /* whole request body received */
    bool resp_started;                  /* response bytes handed to the client codec */
    bool resp_done;                     /* whole response handed to the client codec */
    bool lb_open;                       /* arc_lb_start ran; arc_lb_done owed */
    bool idempotent;                    /* may be replayed (RFC 9110 §9.2.2) */
    bool is_head;
    bool resp_passthrough;              /* client codec takes HTTP/1 chunked bytes as they are */
    void *cx;                           /* the client codec's per-exchange state (HTTP/2 stream) */
    void *ux;                           /* the upstream side's per-exchange state (its HTTP/2
                                           stream on ex->up), NULL for HTTP/1 upstreams */
    struct arc_px_mirror *mirror;       /* routes[].mirror copies being made (mirror.c) */
    char *replay;                       /* request head kept for one replay */
    size_t replay_len;
    /* Retries (action.retry, upstream.c): the request bytes as sent to an
     * HTTP/1 upstream (head, then body up to retry.max_body), kept while a
     * retry is possible (rbuf_on); retry_wait while the backoff timer runs
     * (no upstream attached, client input held). */
    char *rbuf;
    size_t rlen, rcap, rhead;
    bool rbuf_on;
    const struct arc_hdr *rtr;          /* HTTP/2 upstreams: the request's trailers (arena) */
    size_t n_rtr;
    bool retry_wait;                    /* between attempts (backoff, or the wait queue) */
    uint8_t retries;                    /* retries made (attempts after the first) */
    uint64_t tried;                     /* endpoint indexes (< 64) already tried */
    struct arc_timer up_timer;          /* retry backoff, or the wait for a connection */
    /* Circuit breaking (upstream.c): counted in the requests of upstream
     * cb_up and endpoint cb_ep (ids); waiting in cb_up's queue. */
    bool cb_req, cb_wait, cb_woken, cb_requeue, hold_failed;
    uint32_t cb_up, cb_ep;
    uint64_t wait_deadline;
    struct arc_exchange *wait_next, *wait_prev;
    uint64_t started_ms;
    /* Timings, CLOCK_MONOTONIC ns of the completion batch that saw the
     * event (w->now_ns: the clock is read once per batch, not per event,
     * as nginx caches its time per loop turn); 0 = did not happen. They
     * describe the last upstream attempt when there were several. */
    uint64_t t_start_ns;                /* head parsed: the exchange was created */
    uint64_t t_up_ns;                   /* upstream attempt began (endpoint picked) */
    uint64_t t_conn_ns;                 /* its connection was ready, TLS handshake done
                                           (= t_up_ns when pooled) */
    uint64_t t_head_ns;                 /* the upstream's final response head arrived */
    uint64_t t_end_ns;                  /* arc_px__ex_end */
    struct arc_timer deadline;          /* the route's action.timeout, when it has one */
    uint8_t err;                        /* 1 + enum arc_err_kind that answered or ended it
                                           (the last one when several), 0 = none */
    uint64_t bytes_in, bytes_out;       /* body bytes from / to the client (as framed) */
    uint64_t body_in;                   /* request body bytes received, decoded (max_body) */
    struct arc_px_wait wait;            /* EX_WAITING only */
    void *limit;                        /* the rate limiter's note for the response
                                           (ratelimit.c; arena memory), or NULL */
    uint8_t holds;                      /* arc_px__ex_hold: ended exchanges stay until 0 */
    bool ended;                         /* arc_px__ex_end ran (while held) */
    /* Request id and W3C trace context (obs.c), set when routing starts
     * (rid_len 0 until then). span_id is the upstream hop's span. */
    uint8_t rid_len;
    bool traced, has_parent;
    uint8_t trace_flags;
    uint8_t trace_id[16], span_id[8], parent_id[8];
    uint8_t server_span[8];             /* Arc's own span for the request (its parent:
                                           parent_id; span_id's parent: this one) */
    char rid[ARC_PX_RID_MAX + 1];
    struct arc_pl_run *pl;              /* the route's plugin contexts (plugins.c), or NULL */
    bool internal;                      /* a plugin's proxy_http_call (callout.c): not
                                           logged or counted as a client request */
    bool pl_gate;                       /* plugins.c: the request body goes through its
                                           filters before the upstream attempt starts */
    bool pl_hold;                       /* plugins.c: a filter paused the response head:
                                           the upstream side holds its bytes */
    struct arc_exchange *next_free;
};

/* ------------------------------------------------------------ connections */

/* Fields are ordered to leave no holes: an idle connection is little more
 * than its slot, and 8,000 idle connections are 8,000 slots. */
struct arc_conn {
    uint32_t idx, gen;
    const struct arc_transport_vt *tp;
    uint32_t out_high;                  /* node.max_buffered_output */
    uint16_t ops;                       /* io_uring operations in flight */
    uint16_t pinned;                    /* provided buffers held by out + stash */
    uint8_t kind;
    bool tls_close;                     /* TLS failed: close once the alert is sent */
    bool recv_armed, send_armed, closing, close_queued;
    bool eof;                           /* peer closed its sending side */
    bool starved;                       /* waiting for provided buffers */
    bool recv_full;                     /* last receive filled its buffer */
    bool in_process;                    /* input is being processed: pumps must not
                                           arm a receive (new bytes would overtake) */
    bool shut_wr;
    bool recv_cancelling;               /* a cancel of the multishot receive is in flight */
    bool eof_pending;                   /* EOF arrived behind stashed bytes */
    bool flush_soon;                    /* in the worker's end-of-batch flush list */
    struct arc_tls_conn *tls;           /* TLS transport state (NULL: plain TCP) */
    struct outq out;
    struct arc_timer timer;
    uint64_t created_ms;
    /* Input received but not processable yet (pipelined requests, bytes
     * that arrived while the other side was backed up), oldest first. */
    struct seg *stash;
    uint32_t stash_n, stash_cap;
    /* Head bytes accumulated across receives (only when a head spans them). */
    char *hbuf;
    uint32_t hlen, hcap;
    uint32_t hscanned;                  /* hbuf bytes already known to hold no end of head */
    int fd;
    struct arc_conn *starved_next;
    union {
        struct {                        /* CONN_CLIENT: HTTP/1 server codec */
            enum cstate state;
            struct arc_exchange *ex;
            const struct arc_codec_vt *codec;
            uint32_t listener;
            enum arc_h1_body req_body;  /* framing of the current request body */
            uint64_t req_left;
            struct arc_h1_chunked req_chunk;
            uint8_t minor;              /* HTTP/1.x minor of the current request */
            bool keep_alive;            /* connection may continue after this exchange */
            bool dechunk;               /* HTTP/1.0 client: chunk data only, close after */
            bool rechunk;               /* chunking a decoded body ourselves (HTTP/2 upstream) */
            bool fresh;                 /* no request seen yet */
            bool head_started;          /* bytes of the next head arrived */
            bool paused;                /* input held because the upstream is backed up */
            bool peer_known;            /* peer was looked up (family AF_UNSPEC: unknown) */
            struct arc_h2c *h2;         /* CS_H2: the HTTP/2 session and its streams */
            struct arc_guard_conn g;    /* L7 guards: counted cells, receive-rate window */
            struct arc_tls_server *tls_srv; /* TLS: its listener context, one reference held
                                           (OpenSSL calls back into it after the
                                           handshake); the snapshot is not pinned */
            /* The client's address, looked up on first use (arc_px__peer_addr);
             * its text is made when needed, not kept. */
            union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
            } peer;
        } c;
        struct {                        /* CONN_UPSTREAM: HTTP/1 client codec */
            enum ustate state;
            struct arc_exchange *ex;
            struct arc_snapshot *snap;  /* pinned: up and ep_rt live in it */
            const struct arc_upstream_rt *up;
            const struct arc_endpoint_rt *ep_rt;
            uint32_t ep;
            struct arc_conn *pool_next, *pool_prev;
            struct arc_h2u *h2;         /* US_H2: the HTTP/2 session and its streams */
            bool in_pool;
            bool reused;                /* carried an earlier request */
            bool got_bytes;             /* response bytes arrived for this attempt */
            bool counted_open;          /* holds a slot in ep_rt->open_conns */
            bool cb_counted;            /* counted in the worker's circuit-breaking counts */
            bool connected;
            bool head_done;             /* final response head parsed */
            bool keep_alive;            /* upstream allows reuse after this response */
            bool extra;                 /* bytes past the response end */
            enum arc_h1_body resp_body;
            uint64_t resp_left;
            struct arc_h1_chunked resp_chunk;
        } u;
    };
};

/* ------------------------------------------------------------ worker */

struct pool {
    struct arc_conn *head;              /* idle connections, most recent first */
    uint32_t n_idle;
    uint32_t n_conns, n_reqs, n_pending; /* circuit breaking: this worker's connections,
                                           requests in flight and waiters of the endpoint */
    struct arc_h2u *h2;                 /* HTTP/2 connections (shared by exchanges) */
};

struct wup {                            /* a worker's state for one upstream */
    struct arc_lb lb;
    bool live;                          /* lb built (a snapshot named this upstream) */
    uint32_t gen;                       /* bumped when a reload rebuilds lb (its endpoint
                                           list or algorithm changed) */
    uint64_t def;                       /* what lb was built from (hash) */
    const struct arc_upstream_rt *rt;   /* the current snapshot's definition, or NULL */
    /* Passive health (upstream.c): usable[i] is false while rt->eps[i] is
     * ejected; n_ejected of them are; the next readmission is due at
     * next_readmit. scratch: a per-pick mask (retries avoid endpoints
     * already tried). Both [cap] >= rt->n_eps. */
    bool *usable, *scratch;
    size_t cap;
    uint32_t n_ejected;
    uint32_t n_down;                    /* endpoints down by active checks */
    uint64_t active_gen;                /* arc_active_gen() the mask was made at */
    uint64_t next_readmit;
    /* Circuit breaking (upstream.c): this worker's connections, requests in
     * flight and requests waiting for a connection (FIFO) to the upstream. */
    uint32_t n_conns, n_reqs, n_pending;
    struct arc_exchange *wait_head, *wait_tail;
};

/* A route's retry budget on one worker: requests and retries in the
 * current and the previous fixed window (upstream.c). */
struct arc_rbudget {
    uint64_t start;
    uint32_t req, ret, prev_req, prev_ret;
};

struct slab {
    struct arc_conn **chunks;           /* stable addresses: chunks never move */
    size_t n_chunks;
    uint32_t *free_idx;
    size_t n_free, cap_free;
    size_t used;
};
#define SLAB_CHUNK 256

/* A snapshot this worker holds one reference on, with the number of its
 * exchanges pinned to it (per-worker counts: no shared reference-count
 * traffic per request). */
#define TLS_PLAIN_BUF 16384

struct held_snap {
    struct arc_snapshot *snap;
    uint64_t pins;
};
#define HELD_SNAPS 8

struct arc_worker {
    unsigned id;
    int cpu;                            /* -1 = not pinned */
    struct io_uring ring;
    struct arc_bufring br;
    struct arc_tw tw;
    uint64_t now_ms;
    uint64_t now_ns;                    /* CLOCK_MONOTONIC, read once per completion batch
                                           (as now_ms): the exchanges' timings */
    int64_t real_off_ns;                /* CLOCK_REALTIME - CLOCK_MONOTONIC (obs.c) */
    uint64_t real_off_ms;               /* now_ms when read (0: never) */
    struct arc_snapshot *snap;          /* current; one reference held */
    struct held_snap held[HELD_SNAPS];
    struct slab slab;
    size_t n_clients;                   /* open client connections */
    size_t n_exchanges;                 /* live exchanges */
    struct arc_exchange *ex_free;       /* recycled exchanges (arenas kept) */
    size_t n_ex_free;
    struct outblk *outblk_free;         /* output blocks not in use (conn.c) */
    size_t n_outblk_free;
    int *listen_fds;                    /* [n_listeners] */
    bool *accept_armed;
    size_t n_listen;
    struct arc_metrics_shard metrics;
    /* Tables indexed by stable identity (config/ident.h), grown to fit
     * every snapshot the worker adopts: never by position in a snapshot. */
    struct wup *ups;                    /* [n_ups]: by upstream id */
    size_t n_ups;
    struct pool *pools;                 /* [n_pools]: by endpoint id */
    size_t n_pools;
    struct arc_htable health;           /* passive health, by endpoint id */
    struct arc_rbudget *budgets;        /* [n_budgets]: retry budgets by route id */
    size_t n_budgets;
    struct arc_conn *starved_head;
    /* HTTP/2 client connections whose output waits for the end of the
     * completion batch (arc_px__flush_soon): (idx, gen) pairs. */
    uint32_t (*soon)[2];
    size_t n_soon, cap_soon;
    bool in_batch;                      /* completions are being dispatched */
    struct __kernel_timespec tick_ts;
    bool draining, stopping;
    uint64_t drain_deadline;
    uint32_t max_conns;                 /* node.max_connections (node-wide), 0 = none */
    uint32_t hs_pending;                /* TLS client handshakes accepted, not finished */
    struct arc_guard_log guard_log;     /* rate-limits the guards' lines on stderr */
    size_t trim_peak, trim_last_live;   /* after-burst trimming (worker.c) */
    uint64_t trim_settle_ms, trim_ms;
    _Atomic int done;                   /* 1 once the thread left its loop */
    _Atomic int ready;                  /* 1 once accepting, -1 on failure (control thread reads) */
    struct arc_h1_header *hdrs;         /* parser scratch, [n_hdrs >= snap->limits.max_headers + 1] */
    size_t n_hdrs;
    uint64_t adopt_failed;              /* generation that could not be adopted (no retry) */
    char *tls_plain;                    /* decrypted-input scratch, TLS_PLAIN_BUF bytes */
    uint64_t rng;                       /* obs.c: ids and sampling (not cryptographic) */
    struct arc_px_hh *hh;               /* heavy hitters (heavy.c), NULL when disabled */
    struct arc_px_hh_pub *hh_pub;       /* ... what it last published (lives with the worker) */
    struct arc_px_gl *gl;               /* global-tier leases (ratelimit.c), NULL without it */
    pthread_t thread;
    char errmsg[256];
};

/* worker.c */
void arc_px__on_timer(struct arc_timer *t, uint64_t now);
/* The worker running on this thread (for timer callbacks). */
struct arc_worker *arc_px__worker(void);
/* Node-wide count of client connections (node.max_connections). */
extern _Atomic uint32_t arc_px__node_clients;

/* conn.c */
struct arc_conn *arc_px__conn_new(struct arc_worker *w, enum conn_kind kind, int fd);
struct arc_conn *arc_px__conn_get(struct arc_worker *w, uint32_t idx);
void arc_px__conn_close(struct arc_worker *w, struct arc_conn *c);
void arc_px__conn_on_closed(struct arc_worker *w, struct arc_conn *c);
void arc_px__arm_recv(struct arc_worker *w, struct arc_conn *c);
/* Receives ran dry: connections waiting on a peer copy their queued bytes
 * out of provided buffers. */
void arc_px__unpin_stalled(struct arc_worker *w);
/* Worker teardown: frees what a connection still owns (no I/O). */
void arc_px__conn_teardown(struct arc_worker *w, struct arc_conn *c);
/* c's output block (attached from the worker's pool if c has none): the
 * sendmsg header and iovec of a send, which stay put until its completion. */
struct outblk *arc_px__outblk(struct arc_worker *w, struct arc_conn *c);
/* Worker teardown: frees the pool of output blocks. */
void arc_px__outblk_pool_dispose(struct arc_worker *w);
/* After a burst: keeps at most `keep` free output blocks. */
void arc_px__outblk_pool_shrink(struct arc_worker *w, size_t keep);
/* The client's address (getpeername on first use); NULL if it cannot be
 * had or is not an IP address. Valid while c is. */
const struct sockaddr *arc_px__peer_addr(struct arc_conn *c);
/* The client's address as text ("unknown" without one), written into buf
 * (formatted on each call: idle connections keep no text). */
#define ARC_PX_PEER_TEXT 46             /* INET6_ADDRSTRLEN */
const char *arc_px__peer_text(struct arc_conn *c, char buf[ARC_PX_PEER_TEXT]);

void arc_px__flush(struct arc_worker *w, struct arc_conn *c);
/* As arc_px__flush, but for an HTTP/2 client connection while completions
 * are being dispatched, once at the end of the batch: the responses of
 * several streams finished by one batch leave in one pull, one TLS record
 * run and one send instead of one each. Other connections flush at once. */
void arc_px__flush_soon(struct arc_worker *w, struct arc_conn *c);
/* End of a completion batch: flushes the connections flush_soon listed. */
void arc_px__flush_batch(struct arc_worker *w);
void arc_px__on_send(struct arc_worker *w, struct arc_conn *c, int res);
/* Role dispatch: the one place that switches on the connection kind. */
void arc_px__conn_input(struct arc_worker *w, struct arc_conn *c, int32_t bid,
                        const char *p, size_t len);
void arc_px__conn_eof(struct arc_worker *w, struct arc_conn *c, int err);
void arc_px__conn_pump(struct arc_worker *w, struct arc_conn *c);
void arc_px__conn_sent(struct arc_worker *w, struct arc_conn *c);
void arc_px__conn_timeout(struct arc_worker *w, struct arc_conn *c);
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
/* Could buf[0..len) hold a complete head? Resumes the scan where the last
 * one stopped (c->hscanned) so a head trickled in byte by byte is not
 * re-parsed from byte 0 on every receive. */
bool arc_px__head_may_be_complete(struct arc_conn *c, const struct arc_px_head *h);
/* A head of head_len bytes was parsed: how many received bytes it used. */
static inline size_t arc_px__head_used(const struct arc_conn *c, const struct arc_px_head *h,
                                       size_t head_len)
{
    return h->pending ? h->copied - (c->hlen - head_len) : head_len;
}
void arc_px__shutdown_wr(struct arc_worker *w, struct arc_conn *c);
/* Arms c's deadline ms from now; a no-op on a closing connection. */
void arc_px__set_timer(struct arc_worker *w, struct arc_conn *c, uint64_t ms);
/* Bytes accepted for sending and not yet taken by the socket (plaintext
 * queue plus, with TLS, encrypted records). */
static inline size_t arc_px__out_bytes(const struct arc_conn *c)
{
    return c->out.bytes + (c->tls ? arc_tls_conn_out_pending(c->tls) : 0);
}
static inline bool arc_px__outq_high(const struct arc_conn *c)
{
    return arc_px__out_bytes(c) >= c->out_high;
}
/* Nothing left to send and no send in flight. */
static inline bool arc_px__out_idle(const struct arc_conn *c)
{
    return c->out.n == 0 && !c->send_armed &&
           !(c->tls && arc_tls_conn_out_pending(c->tls));
}
/* Consumes n bytes from the head of the output queue (they were sent, or
 * handed to TLS). */
void arc_px__outq_consume(struct arc_worker *w, struct arc_conn *c, size_t n);

/* exchange.c */
/* Per-worker pins on a snapshot (no shared reference-count traffic). */
struct arc_snapshot *arc_px__snap_pin(struct arc_worker *w, struct arc_snapshot *s);
void arc_px__snap_unpin(struct arc_worker *w, struct arc_snapshot *s);
struct arc_exchange *arc_px__ex_new(struct arc_worker *w, struct arc_conn *client);
/* Copies a parsed HTTP/1 request into the exchange's arena. False: out of memory. */
bool arc_px__ex_set_request(struct arc_exchange *ex, const struct arc_h1_request *r);
/* Codecs' building blocks for that: a string copied into the arena (*ok
 * cleared on out of memory), and the header fields copied in, with the
 * method's facts (mbit, HEAD, idempotent) derived from req.method. */
struct arc_str arc_px__ex_dup(struct arc_exchange *ex, struct arc_str s, bool *ok);
bool arc_px__ex_take_fields(struct arc_exchange *ex, const struct arc_hdr *f, size_t n);
/* The one place an exchange ends: load balancer, metrics, snapshot, codec. */
void arc_px__ex_end(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome o);
/* Suspends ex (EX_WAITING) until deadline_ms on the worker's timer wheel
 * or arc_px__ex_wake, whichever comes first; then on_wake continues it.
 * If the exchange ends meanwhile, on_cancel runs instead (arc_px__ex_end
 * stays the one place it ends). Input the client sends while it waits is
 * held (HTTP/1: not read past what was in flight; HTTP/2: not
 * acknowledged) and fed on to the upstream once it continues. */
void arc_px__ex_wait(struct arc_worker *w, struct arc_exchange *ex, uint64_t deadline_ms,
                     arc_px_wait_fn on_wake, arc_px_wait_fn on_cancel, uint64_t arg);
/* Ends a wait before its deadline (e.g. a reply arrived); a no-op unless
 * ex is waiting. */
void arc_px__ex_wake(struct arc_worker *w, struct arc_exchange *ex);
static inline bool arc_px__ex_waiting(const struct arc_exchange *ex)
{
    return ex->state == EX_WAITING;
}
/* Local answer through the client codec, then the exchange ends. */
void arc_px__ex_respond(struct arc_worker *w, struct arc_exchange *ex, int status,
                        const struct arc_hdr *hdrs, size_t n, const char *body, size_t body_len);
/* Counted error answer (text body "<status> <reason>"). */
void arc_px__ex_error(struct arc_worker *w, struct arc_exchange *ex, int status,
                      enum arc_err_kind kind);
/* The response broke after it started: deliver what was queued, cut. */
void arc_px__ex_cut(struct arc_worker *w, struct arc_exchange *ex);
/* The route's whole-exchange deadline (action.timeout) passed: 504, or a
 * cut response once it started. The timer callback is in worker.c. */
void arc_px__ex_deadline(struct arc_worker *w, struct arc_exchange *ex);
void arc_px__ex_on_deadline(struct arc_timer *t, uint64_t now);
/* Drops the exchange's upstream attempt (the connection is closed). */
void arc_px__ex_drop_upstream(struct arc_worker *w, struct arc_exchange *ex);
/* Reports the exchange's end to the load balancer, once. */
void arc_px__ex_lb_end(struct arc_worker *w, struct arc_exchange *ex);
/* pick.c: an endpoint (index into ex->target) for ex's next attempt, among
 * the usable ones and, on a retry, those not tried yet; -1: none. */
int arc_px__pick(struct arc_worker *w, struct arc_exchange *ex);
/* The attempt on endpoint ep (an index into ex->target) starts: counted in
 * the worker's current balancer, under that endpoint's index there (found
 * by identity; nothing is counted when the current config dropped it). */
void arc_px__ex_lb_start(struct arc_worker *w, struct arc_exchange *ex, int ep);
void arc_px__ex_pool_dispose(struct arc_worker *w);
/* After a burst: keeps at most `keep` recycled exchanges. */
void arc_px__ex_pool_shrink(struct arc_worker *w, size_t keep);
static inline bool arc_px__ex_down_blocked(const struct arc_exchange *ex)
{
    return ex->pl_hold || ex->client->c.codec->blocked(ex);
}

/* obs.c: request id, trace context, access-log record */
/* Sets ex's request id (kept from a trusted peer of route r, else a new
 * UUIDv7) and trace context (the client's traceparent continued, else a
 * new trace sampled per observability.tracing.sample; a new span id for
 * the upstream hop). r may be NULL (no route). */
void arc_px__obs_ids(struct arc_worker *w, struct arc_exchange *ex, const struct arc_route_rt *r);
/* The exchange's access-log record into the worker's ring (sampling and
 * redaction applied); a no-op when logging is off. */
void arc_px__obs_log(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome o);
/* "traceparent" value for the upstream hop: 55 characters + NUL. */
void arc_px__obs_traceparent(const struct arc_exchange *ex, char out[56]);

/* pipeline.c */
/* Runs a new exchange through route → rate limit → action. */
void arc_px__pipeline_start(struct arc_worker *w, struct arc_exchange *ex);
/* Codecs call this after counting request body bytes (ex->bytes_in): over
 * the route's max_body the exchange is answered 413 (or cut) and true is
 * returned — the exchange is gone. */
bool arc_px__body_over(struct arc_worker *w, struct arc_exchange *ex);
/* Runs the action of an exchange whose route is set (after a wait). */
void arc_px__pipeline_action(struct arc_worker *w, struct arc_exchange *ex);

/* split.c: request keys and routes[].split */
/* The arc_lb_hash of the request's key by client address, header `name`
 * or cookie `name`; false when the request has none. */
bool arc_px__req_key(struct arc_exchange *ex, enum arc_lb_key_by by, const char *name,
                     uint64_t *h);
/* The upstream of route r (which has a split) for this request. */
const struct arc_upstream_rt *arc_px__split_pick(struct arc_worker *w, struct arc_exchange *ex,
                                                 const struct arc_route_rt *r);
/* mirror.c: routes[].mirror. start: when the action proxies (samples,
 * builds the copies' heads); body: each decoded request body byte run;
 * end: from arc_px__ex_end, hands complete copies to the mirror thread. */
struct arc_px_mirror;
void arc_px__mirror_start(struct arc_worker *w, struct arc_exchange *ex);
void arc_px__mirror_body(struct arc_exchange *ex, const char *p, size_t len);
void arc_px__mirror_end(struct arc_worker *w, struct arc_exchange *ex, bool resp_complete);
/* compare: the primary's final response head (before any plugin sees it)
 * and its body bytes, decoded (mirror.c). Call only with ex->mirror set. */
void arc_px__mirror_resp_head(struct arc_exchange *ex, const struct arc_resp *r);
void arc_px__mirror_resp_body(struct arc_exchange *ex, const char *p, size_t len);
/* obs.c: the worker's fast random numbers (xorshift64*, not cryptographic). */
uint64_t arc_px__rand(struct arc_worker *w);

/* heavy.c: rate_limits.heavy_hitters */
struct arc_px_hh;
struct arc_px_hh_pub;
/* (Re)builds the worker's sketch for its current snapshot; -1: out of memory. */
int arc_px__hh_fit(struct arc_worker *w);
/* Counts a request's client under every prefix it belongs to; when one of
 * them is listed and heavy_hitters.action is not none, the key of the
 * widest listed one (for arc_px__hh_limit), else 0. */
uint64_t arc_px__hh_count(struct arc_worker *w, struct arc_exchange *ex);
/* Timer tick: once a second, publish the heavy sources and decay. */
void arc_px__hh_tick(struct arc_worker *w);
void arc_px__hh_dispose(struct arc_worker *w);
/* The publication block (made with the worker, freed with it: the control
 * thread may read it at any time). */
struct arc_px_hh_pub *arc_px__hh_pub_new(unsigned worker_id);
void arc_px__hh_pub_free(unsigned worker_id, struct arc_px_hh_pub *p);

/* ratelimit.c */
/* The route's rate limit for ex: true when the pipeline goes on now;
 * false when the exchange was answered (rejected) or waits (delayed). */
bool arc_px__limit(struct arc_worker *w, struct arc_exchange *ex);
/* The RateLimit fields for a response of ex (none without a limit): up to
 * ARC_PX_LIMIT_FIELDS entries written to out (values in ex's arena). */
#define ARC_PX_LIMIT_FIELDS 5
size_t arc_px__limit_fields(struct arc_exchange *ex, struct arc_hdr *out);
/* Answers a heavy hitter's request (heavy_hitters.action: reject). */
void arc_px__hh_reject(struct arc_worker *w, struct arc_exchange *ex);
/* heavy_hitters.action: limit: charges a heavy hitter's request to the
 * limit of its listed prefix `key` (arc_px__hh_count); true: it goes on,
 * false: it was answered (rejected). */
bool arc_px__hh_limit(struct arc_worker *w, struct arc_exchange *ex, uint64_t key);
/* For the access log: the decision (ARC_ALOG_RL_*) and its policy. */
unsigned arc_px__limit_log(const struct arc_exchange *ex, uint32_t *quota, uint32_t *window_s);

/* glimit.c: the global tier's Redis thread (its design at the top). */
#define ARC_GL_KEY_MAX 200
struct arc_gl_req {                     /* a worker asks for tokens of one key */
    uint32_t slot, gen;                 /* the worker's lease entry */
    uint32_t want, burst;
    double qps;
    uint16_t klen;
    char key[ARC_GL_KEY_MAX];           /* the Redis key */
};
struct arc_gl_rep {
    uint32_t slot, gen;
    uint32_t granted;
    bool ok;                            /* false: failed (error, timeout, Redis down) */
    uint64_t retry_us;                  /* granted 0: Redis's retry time */
};
struct arc_rl_global_conf;
bool arc_px__gl_enabled(void);
/* Redis is connected and the circuit closed: worth asking. */
bool arc_px__gl_ready(void);
const struct arc_rl_global_conf *arc_px__gl_conf(void);
/* The worker's eventfd (-1: none): readable when replies are waiting. */
int arc_px__gl_efd(unsigned worker);
/* false: the ring is full (the request is not sent). */
bool arc_px__gl_post(unsigned worker, const struct arc_gl_req *r);
size_t arc_px__gl_replies(unsigned worker, struct arc_gl_rep *out, size_t cap);
/* ratelimit.c, worker side: the lease table; the eventfd read armed on
 * the worker's ring (OP_GLWAKE) and its completion. */
struct arc_px_gl;
int arc_px__gl_worker_init(struct arc_worker *w);
void arc_px__gl_worker_dispose(struct arc_worker *w);
void arc_px__gl_arm(struct arc_worker *w);
void arc_px__gl_on_event(struct arc_worker *w, int res);

/* plugins.c: proxy-wasm filters on the exchange. False: the exchange was
 * answered (a filter's local answer, or its failure policy) and is gone. */
bool arc_px__plugins_request(struct arc_worker *w, struct arc_exchange *ex);
/* callout.c: proxy_http_call of the filters of `parent` (a proxy-wasm
 * status; see plugin.h's arc_pl_dispatch_fn). */
struct arc_pl_call_req;
struct arc_pl_caller;
uint32_t arc_px__callout(void *parent, const struct arc_pl_call_req *req,
                         const struct arc_pl_caller *who);
/* The same from a root context of the plugin set of `snap` (a struct
 * arc_snapshot *, the worker's: given to arc_plugin_ticks_start). */
uint32_t arc_px__callout_root(void *snap, const struct arc_pl_call_req *req,
                              const struct arc_pl_caller *who);
/* Worker exit: ends and frees the worker's calls not yet delivered. */
void arc_px__callouts_dispose(struct arc_worker *w);
bool arc_px__plugins_response(struct arc_worker *w, struct arc_exchange *ex, struct arc_resp *resp);
void arc_px__plugins_end(struct arc_exchange *ex);
/* Bodies and trailers through the filters that export their callbacks
 * (ex->pl->body_mask; never called otherwise). The request side is called
 * from arc_px__up_body / arc_px__up_body_end and goes on with their _raw
 * forms; the response side from the client codecs' send_body / trailers
 * (true: the bytes were taken, the codec does nothing more with them). A
 * filter's failure or local answer mid-body is applied on the worker's
 * next turn (never inside the codec's call): an answer if the response has
 * not started, else the response is cut. */
void arc_px__plugins_req_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                              const char *p, size_t len);
void arc_px__plugins_req_end(struct arc_worker *w, struct arc_exchange *ex,
                             const struct arc_hdr *trailers, size_t n);
/* The exchange is answered instead of its response: a head the filters
 * held (paused, or waiting for the body filters' output) is dropped and
 * counts as not started, so the answer can go out. */
void arc_px__plugins_unsent(struct arc_exchange *ex);
/* The client codecs' send_head: true when the head is held until the body
 * filters' first output (the codec sends it then, called again). */
bool arc_px__plugins_hold_head(struct arc_exchange *ex, const struct arc_resp *r);
bool arc_px__plugins_resp_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                               const char *p, size_t len);
bool arc_px__plugins_resp_trailers(struct arc_worker *w, struct arc_exchange *ex,
                                   const struct arc_hdr *hdrs, size_t n);
/* From arc_px__ex_end: the response body's end through the filters, and
 * the outcome to end with in *o (a cut when a filter failed mid-body).
 * False: the exchange does not end now (a filter paused the response head
 * and the upstream finished meanwhile: it waits, detached from the
 * upstream, and ends when the filter lets it go). */
bool arc_px__plugins_finish(struct arc_worker *w, struct arc_exchange *ex, enum ex_outcome *o);
/* A filter holds the exchange (its response head paused, a body's end or
 * trailers waiting, the request gate closed): the client codec watches the
 * client meanwhile, and a half-closed HTTP/1 client counts as gone, as for
 * an exchange waiting (nothing else would end it before the upstream's
 * own timeouts). */
bool arc_px__plugins_holding(const struct arc_exchange *ex);
static inline bool arc_px__ex_held(const struct arc_exchange *ex)
{
    return arc_px__ex_waiting(ex) || (ex->pl && arc_px__plugins_holding(ex));
}

/* h2_server.c */
/* Switches a fresh client connection to HTTP/2 (TLS ALPN h2, or the h2c
 * preface seen on a cleartext listener). False: out of memory. */
bool arc_px__h2_start(struct arc_worker *w, struct arc_conn *c);
/* HTTP/1.1 "Upgrade: h2c" (RFC 7540 §3.2): the 101 is already queued; `ex`
 * (a request without a body) becomes stream 1. */
bool arc_px__h2_upgrade(struct arc_worker *w, struct arc_conn *c, struct arc_exchange *ex,
                        const uint8_t *settings, size_t settings_len);
/* Input, output progress, drain and timeouts of a CS_H2 connection. */
void arc_px__h2_input(struct arc_worker *w, struct arc_conn *c, const char *p, size_t len);
void arc_px__h2_sent(struct arc_worker *w, struct arc_conn *c);
void arc_px__h2_pull(struct arc_worker *w, struct arc_conn *c);
void arc_px__h2_drain(struct arc_worker *w, struct arc_conn *c);
size_t arc_px__h2_streams(const struct arc_conn *c);
/* While an HTTP/2 connection has not completed its first request's head
 * (the header deadline from accept), or has a header block open (a later
 * request's head, trailers; from its first byte): (re)arms c's timer for
 * that deadline and returns true. */
bool arc_px__h2_head_deadline(struct arc_worker *w, struct arc_conn *c);
/* The timer of c fired: true when a header deadline has passed (the
 * caller closes; *guard: it was headers_timeout, not read_timeout). */
bool arc_px__h2_head_late(struct arc_worker *w, struct arc_conn *c, bool *guard);
/* (Re)arms c's timer for what it waits on now: a header deadline, our
 * output stalled on the client (write_timeout), no stream (idle_timeout),
 * or nothing while streams run. */
void arc_px__h2_timer(struct arc_worker *w, struct arc_conn *c);

/* heads.c (neutral response fields: hop-by-hop removed, route ops applied) */
bool arc_px__response_fields(struct arc_exchange *ex, const struct arc_resp *resp,
                             struct arc_hdr **out, size_t *n);

/* h1_server.c */
/* over_limit: node.max_connections reached: answer 503 and close. */
void arc_px__client_accepted(struct arc_worker *w, int fd, uint32_t listener, bool over_limit);
/* The transport is ready for the protocol (TLS: handshake done, alpn set). */
void arc_px__client_ready(struct arc_worker *w, struct arc_conn *c, const char *alpn);
void arc_px__client_eof(struct arc_worker *w, struct arc_conn *c, int err);
void arc_px__client_pump(struct arc_worker *w, struct arc_conn *c);
void arc_px__client_timeout(struct arc_worker *w, struct arc_conn *c);

/* L7 guards (guard_hooks.c). Each trip is counted in
 * arc_guard_trips_total{reason} and logged (rate-limited). */
/* At accept, after the connection exists: false = refused (the caller
 * closes it without a byte). */
bool arc_px__guard_accept(struct arc_worker *w, struct arc_conn *c, bool tls);
/* The TLS handshake of client c finished (either way). */
void arc_px__guard_hs_done(struct arc_worker *w, struct arc_conn *c);
/* A head's first byte: false = over max_incomplete_per_ip (the caller
 * closes quietly). */
bool arc_px__guard_head_start(struct arc_worker *w, struct arc_conn *c);
/* After input was processed: gives back the incomplete-request count once
 * the request is whole. */
void arc_px__guard_sync(struct arc_worker *w, struct arc_conn *c);
/* New request bytes: false = below min_recv_rate_bps (the guard answered
 * or closed; the caller must not touch the bytes). */
bool arc_px__guard_input(struct arc_worker *w, struct arc_conn *c, size_t len);
/* The header deadline (ms) and whether it is the guard's (quiet close on
 * expiry) rather than node.read_timeout's (408). */
uint64_t arc_px__head_deadline(const struct arc_worker *w, bool *guard);
/* HTTP/2: a request's HEADERS began on c and is already counted: false =
 * its address is over max_incomplete_per_ip (trip counted; the caller
 * takes the count back and refuses the stream). */
bool arc_px__guard_h2_head(struct arc_worker *w, struct arc_conn *c);
/* HTTP/2: c has `n` incomplete requests now (a taken head still arriving,
 * streams whose request has not all arrived): the table is brought to n
 * (0 once c is closing). */
void arc_px__guard_h2_incomplete(struct arc_worker *w, struct arc_conn *c, uint32_t n);
/* The connection is being freed: every count it holds is given back. */
void arc_px__guard_release(struct arc_worker *w, struct arc_conn *c);
void arc_px__guard_trip(struct arc_worker *w, struct arc_conn *c, enum arc_guard_reason r);
/* HTTP/2: `len` body bytes of one stream's request (its window `r`):
 * false = below min_recv_rate_bps (counted and logged as
 * min_recv_rate_body; the caller answers 408 or resets the stream). */
bool arc_px__guard_stream_body(struct arc_worker *w, struct arc_conn *c,
                               struct arc_guard_rate *r, size_t len);
/* HTTP/2: is min_recv_rate_bps on (a stream's window worth keeping)? */
bool arc_px__guard_rate_on(const struct arc_worker *w);
/* The client is too slow sending its body: 408 (or a cut when the answer
 * has started) and a close. */
void arc_px__client_slow_body(struct arc_worker *w, struct arc_conn *c);
void arc_px__client_sent(struct arc_worker *w, struct arc_conn *c);
/* Closes the client connection with no further byte; ends its exchange. */
void arc_px__client_abort(struct arc_worker *w, struct arc_conn *c, enum ex_outcome o);

/* upstream.c */
/* Starts an attempt for ex on its route's upstream (HTTP/1 or HTTP/2). */
void arc_px__up_start(struct arc_worker *w, struct arc_exchange *ex);
/* The request body towards the exchange's upstream, whatever it speaks.
 * up_framed: the upstream takes HTTP/1 chunked bytes as they are (the
 * HTTP/1 client codec then forwards chunked framing verbatim); otherwise
 * body bytes are given decoded and up_body_end says where they end. */
bool arc_px__up_framed(const struct arc_exchange *ex);
void arc_px__up_body(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                     const char *p, size_t len, bool framed);
/* The decoded request body is complete; trailers (n may be 0) follow it. */
void arc_px__up_body_end(struct arc_worker *w, struct arc_exchange *ex,
                         const struct arc_hdr *trailers, size_t n);
/* The same after the route's body and trailer filters (plugins.c). */
void arc_px__up_body_raw(struct arc_worker *w, struct arc_exchange *ex, int32_t bid,
                         const char *p, size_t len, bool framed);
void arc_px__up_body_end_raw(struct arc_worker *w, struct arc_exchange *ex,
                             const struct arc_hdr *trailers, size_t n);
/* True while the upstream side holds as much request body as it may. */
bool arc_px__up_full(const struct arc_exchange *ex);
/* Someone takes the exchange's request body: an upstream attempt (or one
 * about to be retried), or body filters before the attempt (plugins.c). */
static inline bool arc_px__body_wanted(const struct arc_exchange *ex)
{
    return ex->up || ex->ux || ex->retry_wait || ex->pl_gate;
}
/* Push the exchange's upstream side (send what was queued, read if it may). */
void arc_px__up_kick(struct arc_worker *w, struct arc_exchange *ex);
void arc_px__up_data(struct arc_worker *w, struct arc_conn *u, int32_t bid, const char *p, size_t len);
void arc_px__up_eof(struct arc_worker *w, struct arc_conn *u, int err);
void arc_px__up_connected(struct arc_worker *w, struct arc_conn *u, int res);
void arc_px__up_pump(struct arc_worker *w, struct arc_conn *u);
void arc_px__up_timeout(struct arc_worker *w, struct arc_conn *u);
void arc_px__up_sent(struct arc_worker *w, struct arc_conn *u);
void arc_px__pool_remove(struct arc_worker *w, struct arc_conn *u);
/* Closes a finished tunnel once both sides hit EOF and both queues drained. */
void arc_px__tunnel_check(struct arc_worker *w, struct arc_exchange *ex);
/* Upstream TLS handshake done: `alpn` is the negotiated protocol or NULL. */
void arc_px__up_ready(struct arc_worker *w, struct arc_conn *u, const char *alpn);
/* Opens a connection to endpoint `ep` of `up` (pool_max_connections, TLS).
 * NULL with errno EAGAIN (limit reached) or another error. */
struct arc_conn *arc_px__up_connect(struct arc_worker *w, struct arc_snapshot *snap,
                                    const struct arc_upstream_rt *up, int ep);
/* The exchange ends: its retry backoff or wait for a connection stops and
 * it leaves the circuit-breaking counts. */
void arc_px__up_ex_end(struct arc_worker *w, struct arc_exchange *ex);
/* An upstream connection is closing (conn.c): circuit-breaking counts, and
 * a request waiting for a connection may go. */
void arc_px__up_conn_gone(struct arc_worker *w, struct arc_conn *u);
/* Passive health: the outcome of an attempt on endpoint ep of up (a
 * no-op unless health.passive is on); may eject the endpoint. */
void arc_px__ep_result(struct arc_worker *w, const struct arc_upstream_rt *up, int ep, bool ok);
/* Recomputes wu's usable mask for its current definition (after a reload
 * and when readmissions are due). -1 on out of memory. */
int arc_px__health_sync(struct arc_worker *w, struct wup *wu);
/* A reload was adopted: pooled connections follow their endpoint into the
 * new snapshot when nothing about connecting to it changed, else close. */
void arc_px__pools_adopt(struct arc_worker *w);
/* Points upstream connection u at snapshot s's definition of its endpoint
 * (moving its pin); false when s does not have it unchanged. */
bool arc_px__up_repoint(struct arc_worker *w, struct arc_conn *u, struct arc_snapshot *s);

/* action.retry for HTTP/2 upstreams (upstream.c): whether a failed
 * attempt may go again (kind: ARC_RK_*; status: the answer it failed with,
 * or 502/504 for resets and timeouts), and starting the retry (backoff on
 * the wheel, then arc_px__h2u_retry on a preferably different endpoint).
 * The caller has detached the failed stream. */
enum { ARC_RK_CONNECT, ARC_RK_RESET, ARC_RK_STATUS };
bool arc_px__retry_possible(struct arc_worker *w, struct arc_exchange *ex, int kind, int status);
void arc_px__retry_start(struct arc_worker *w, struct arc_exchange *ex, int failed_ep);

/* h2_upstream.c: exchanges over multiplexed HTTP/2 upstream connections */
struct arc_h2u;
void arc_px__h2u_start(struct arc_worker *w, struct arc_exchange *ex, int ep);
/* A retry's attempt on endpoint ep, with the request body kept in ex->rbuf
 * (the whole body so far) and the trailers kept on ex. May end ex. */
void arc_px__h2u_retry(struct arc_worker *w, struct arc_exchange *ex, int ep);
/* The request's trailers, kept on ex (its arena) for a later attempt. */
void arc_px__h2u_keep_trailers(struct arc_exchange *ex, const struct arc_hdr *trailers, size_t n);
void arc_px__h2u_body(struct arc_worker *w, struct arc_exchange *ex, const char *p, size_t len);
void arc_px__h2u_body_end(struct arc_worker *w, struct arc_exchange *ex,
                          const struct arc_hdr *trailers, size_t n);
bool arc_px__h2u_full(const struct arc_exchange *ex);
/* The exchange lets go of its stream (reset if still open). */
void arc_px__h2u_detach(struct arc_worker *w, struct arc_exchange *ex);
void arc_px__h2u_connected(struct arc_worker *w, struct arc_conn *u, int res);
void arc_px__h2u_ready(struct arc_worker *w, struct arc_conn *u, const char *alpn);
void arc_px__h2u_input(struct arc_worker *w, struct arc_conn *u, const char *p, size_t len);
void arc_px__h2u_eof(struct arc_worker *w, struct arc_conn *u, int err);
void arc_px__h2u_pump(struct arc_worker *w, struct arc_conn *u);
void arc_px__h2u_sent(struct arc_worker *w, struct arc_conn *u);
void arc_px__h2u_timeout(struct arc_worker *w, struct arc_conn *u);
/* The session's frames into the connection's queue (from arc_px__flush). */
void arc_px__h2u_pull(struct arc_worker *w, struct arc_conn *u);
/* The connection is closing: end its exchanges, free the session. */
void arc_px__h2u_closed(struct arc_worker *w, struct arc_conn *u);
/* Worker teardown: free the session without ending anything. */
void arc_px__h2u_dispose(struct arc_conn *u);
/* Reloads: the endpoint's next HTTP/2 connection; a connection follows the
 * new config (arc_px__up_repoint) or retires (no new streams, closed with
 * its last one). */
struct arc_h2u *arc_px__h2u_next(const struct arc_h2u *h);
void arc_px__h2u_adopt(struct arc_worker *w, struct arc_h2u *h);

/* heads.c */
/* The request's fields for an HTTP/2 upstream (no Host, framing or
 * hop-by-hop fields; forwarding fields and route operations applied), in
 * the exchange's arena. False: out of memory. */
bool arc_px__request_fields(struct arc_exchange *ex, struct arc_hdr **out, size_t *n);
/* The trailer fields a chunked body kept (arc_h1_chunked_keep_trailers),
 * those allowed in trailers only (RFC 9110 §6.5.1), in the exchange's
 * arena; returns their count. */
size_t arc_px__chunk_trailers(struct arc_exchange *ex, const struct arc_h1_chunked *st,
                              struct arc_hdr **out);
char *arc_px__build_request_head(struct arc_worker *w, struct arc_exchange *ex, size_t *len);
char *arc_px__build_response_head(struct arc_worker *w, struct arc_exchange *ex,
                                  const struct arc_resp *resp, bool close, size_t *len);
/* The route's redirect location with {name} captures and $variables. */
char *arc_px__build_location(struct arc_exchange *ex, const struct arc_rt_captures *caps,
                             size_t *len);

#endif
