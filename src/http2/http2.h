/**
 * HTTP/2 codec on nghttp2 (RFC 9113): server sessions (one per client
 * connection) and client sessions (one per upstream connection, many
 * exchanges), plus the flood guards of RFC 9113 §10.5.
 *
 * I/O-free: the owner feeds received bytes with arc_h2_recv(), takes bytes to
 * send with arc_h2_output() / arc_h2_sent(), and is told about streams through
 * the callbacks below. No socket, timer or TLS code lives here, so the same
 * session runs over plain TCP (h2c), TLS, or an in-memory peer in tests.
 *
 * Backpressure both ways, nothing unbounded:
 *  - received bodies: automatic WINDOW_UPDATE is off; a stream's window
 *    reopens only when the owner calls arc_h2_consume() for bytes the other
 *    side (the upstream, the client) has accepted, while the connection
 *    window reopens as bytes arrive, so a stream whose other side is slow
 *    holds back only itself. The module never buffers body bytes; an owner
 *    buffers at most the stream window per stream.
 *  - sent bodies: nghttp2 pulls through callbacks.read_body; the owner returns
 *    0 when it has nothing queued (the stream is then deferred) and calls
 *    arc_h2_resume() when it has more, arc_h2_end_body() when it is done.
 *
 * Thread: one worker. A session and everything it hands out belong to the
 * worker that created it; no call is thread-safe. Callbacks run synchronously
 * inside arc_h2_recv() (and inside arc_h2_output() for read_body and
 * on_close). From a callback the owner may call the submit/stream functions
 * (submit_response, resume, end_body, consume, reset) but never arc_h2_recv,
 * arc_h2_output, arc_h2_sent or arc_h2_free.
 */
#ifndef ARC_HTTP2_HTTP2_H
#define ARC_HTTP2_HTTP2_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/common.h"

/* ------------------------------------------------------------- limits */

/** A limit field set to this disables the check (rates and counts only). */
#define ARC_H2_UNLIMITED UINT32_MAX

/**
 * Per-session limits. A field left 0 takes the default below; rates are
 * token buckets holding one second's worth (burst = rate per second).
 */
struct arc_h2_limits {
    uint32_t max_concurrent_streams;  /* SETTINGS_MAX_CONCURRENT_STREAMS we advertise */
    uint32_t max_header_list_size;    /* SETTINGS_MAX_HEADER_LIST_SIZE; RFC 9113 §6.5.2 size
                                         (name + value + 32 per field), enforced: 431 */
    uint32_t max_continuations;       /* CONTINUATION frames after one HEADERS */
    uint32_t resets_per_sec;          /* RST_STREAM received + streams we had to reset (server) */
    uint32_t settings_per_sec;        /* SETTINGS frames received (not ACKs) */
    uint32_t pings_per_sec;           /* PING frames received */
    uint32_t priority_per_sec;        /* PRIORITY frames received */
    uint32_t empty_data_per_sec;      /* DATA frames with no payload and no END_STREAM */
    uint32_t stream_window;           /* initial stream receive window (bytes, <= 2^31-1) */
    uint32_t conn_window;             /* connection receive window (bytes, <= 2^31-1) */
};

#define ARC_H2_DEFAULT_MAX_CONCURRENT_STREAMS 100u
#define ARC_H2_DEFAULT_MAX_HEADER_LIST_SIZE   32768u
#define ARC_H2_DEFAULT_MAX_CONTINUATIONS      8u
#define ARC_H2_DEFAULT_RESETS_PER_SEC         100u
#define ARC_H2_DEFAULT_SETTINGS_PER_SEC       20u
#define ARC_H2_DEFAULT_PINGS_PER_SEC          20u
#define ARC_H2_DEFAULT_PRIORITY_PER_SEC       100u
#define ARC_H2_DEFAULT_EMPTY_DATA_PER_SEC     100u
#define ARC_H2_DEFAULT_STREAM_WINDOW          65535u
#define ARC_H2_DEFAULT_CONN_WINDOW            (1u << 20)

/** Copies `in` (NULL: all defaults) to `out` with every 0 field defaulted
 *  and windows clamped to 2^31-1. Thread: any. */
void arc_h2_limits_resolve(const struct arc_h2_limits *in, struct arc_h2_limits *out);

/* ------------------------------------------------------- flood guards */

/** Why a session sent GOAWAY(ENHANCE_YOUR_CALM). Stable: usable as a
 *  metrics label index. */
enum arc_h2_breach {
    ARC_H2_BREACH_NONE = 0,
    ARC_H2_BREACH_RAPID_RESET,        /* resets_per_sec exceeded (CVE-2023-44487 and kin) */
    ARC_H2_BREACH_SETTINGS_FLOOD,
    ARC_H2_BREACH_PING_FLOOD,
    ARC_H2_BREACH_PRIORITY_FLOOD,
    ARC_H2_BREACH_EMPTY_DATA_FLOOD,
    ARC_H2_BREACH_CONTINUATION_FLOOD, /* max_continuations exceeded (CVE-2024-27316 family) */
    ARC_H2_BREACH_OUTBOUND_FLOOD,     /* peer makes us queue ACKs it never reads (nghttp2) */
    ARC_H2_BREACH__COUNT
};

/** Static lower-case name ("rapid_reset"), for logs and metric labels. */
const char *arc_h2_breach_name(enum arc_h2_breach b);

/** What a frame is charged to. */
enum arc_h2_flood_kind {
    ARC_H2_FLOOD_RESET,
    ARC_H2_FLOOD_SETTINGS,
    ARC_H2_FLOOD_PING,
    ARC_H2_FLOOD_PRIORITY,
    ARC_H2_FLOOD_EMPTY_DATA,
    ARC_H2_FLOOD__KINDS
};

/**
 * Pure rate accounting, one token bucket per kind, time injected by the
 * caller (milliseconds from any monotonic origin). Embedded in a session;
 * usable alone (tests, other codecs). Fields are private.
 */
struct arc_h2_flood {
    struct {
        uint64_t _milli;              /* tokens x 1000 */
        uint64_t _at_ms;              /* last refill */
        uint32_t _rate;               /* per second; ARC_H2_UNLIMITED = off */
    } _b[ARC_H2_FLOOD__KINDS];
};

/** `lim` must be resolved (arc_h2_limits_resolve); buckets start full. */
void arc_h2_flood_init(struct arc_h2_flood *f, const struct arc_h2_limits *lim, uint64_t now_ms);

/** Charges one frame of `kind` at `now_ms` (a clock going backwards is
 *  treated as no time passing). Returns false when the bucket is empty: the
 *  caller has a breach (arc_h2_flood_breach_of(kind)). */
bool arc_h2_flood_charge(struct arc_h2_flood *f, enum arc_h2_flood_kind kind, uint64_t now_ms);

enum arc_h2_breach arc_h2_flood_breach_of(enum arc_h2_flood_kind kind);

/* ------------------------------------------------------------ messages */

/** A header field. Incoming: borrowed, valid during the callback only;
 *  names are lower-case (nghttp2 rejects upper case on receipt). Outgoing:
 *  borrowed for the call; names of any case (lower-cased on the wire). */
struct arc_h2_header {
    struct arc_str name;
    struct arc_str value;
};

/**
 * A request head. Incoming (server): every view is valid during on_request
 * only. `authority` is :authority, or Host when :authority is absent
 * (RFC 9113 §8.3.1); it may be empty when the client sent neither.
 * `headers` excludes pseudo-fields and Host, and carries the cookie crumbs
 * re-joined into one "cookie" field with "; " (§8.2.3), so it converts to
 * HTTP/1.1 as is. `scheme`/`path` are empty for CONNECT; `protocol` is the
 * extended-CONNECT :protocol (RFC 8441), empty otherwise.
 * Outgoing (client, arc_h2_submit_request): method, scheme, authority, path
 * and headers are read; the rest is ignored.
 */
struct arc_h2_request {
    struct arc_str method;
    struct arc_str scheme;
    struct arc_str authority;
    struct arc_str path;              /* with the query */
    struct arc_str protocol;
    const struct arc_h2_header *headers;
    size_t n_headers;
    int64_t content_length;           /* -1 when absent (nghttp2 checks it against DATA) */
    bool end_stream;                  /* no body follows */
};

/** A response head (client side); views valid during the callback only. */
struct arc_h2_response {
    int status;
    const struct arc_h2_header *headers;  /* excludes :status */
    size_t n_headers;
    int64_t content_length;           /* -1 when absent */
    bool end_stream;
};

/* ------------------------------------------------------------ sessions */

struct arc_h2_session;                /* opaque; owned by whoever created it */

/**
 * Owner callbacks. `ud` is the session's user data, `sid` the stream id,
 * `sud` the stream's user data (set by on_request for server streams, given
 * to arc_h2_submit_request for client streams). Any may be NULL.
 * Roles: S = server session only, C = client session only.
 */
struct arc_h2_callbacks {
    /* S: a request's HEADERS frame has begun (its header block may still be
     * coming, in CONTINUATION frames). Return 0 to take the stream, or
     * nonzero to refuse it at once with RST_STREAM(REFUSED_STREAM): its
     * head is still decoded (HPACK state) but not kept, and neither
     * on_request nor on_close comes for it. The refusal is charged to
     * resets_per_sec like the resets nghttp2 makes. NULL: every stream is
     * taken. */
    int (*on_request_begin)(void *ud, int32_t sid);
    /* S: a request head is complete. Return 0 to take the stream (and set
     * *sud), or nonzero to refuse it with RST_STREAM(REFUSED_STREAM) (the
     * client may retry). The owner may answer from inside this call
     * (arc_h2_submit_response, arc_h2_end_body). Not called for requests the
     * module answers itself (Host differing from :authority, CONNECT when not
     * allowed, header list too large) nor for those nghttp2 rejects as
     * malformed. */
    int (*on_request)(void *ud, int32_t sid, const struct arc_h2_request *req, void **sud);
    /* C: an interim 1xx response (100, 103...). */
    void (*on_informational)(void *ud, int32_t sid, void *sud, const struct arc_h2_response *resp);
    /* C: the final response head. */
    void (*on_response)(void *ud, int32_t sid, void *sud, const struct arc_h2_response *resp);
    /* S, C: body bytes (borrowed for the call). The owner forwards or keeps
     * them and later calls arc_h2_consume(sid, len) to reopen the window. */
    void (*on_data)(void *ud, int32_t sid, void *sud, const uint8_t *p, size_t len);
    /* S, C: trailer fields; always followed by on_end. */
    void (*on_trailers)(void *ud, int32_t sid, void *sud,
                        const struct arc_h2_header *h, size_t n);
    /* S, C: the peer finished its message (END_STREAM). */
    void (*on_end)(void *ud, int32_t sid, void *sud);
    /* S, C: the stream is gone (both sides done, or reset by either side:
     * error_code is the RFC 9113 §7 code, 0 for a clean close). The last call
     * for `sid`; the owner may free `sud` here. Client streams that were never
     * sent (GOAWAY came first) close with REFUSED_STREAM (7): safe to retry. */
    void (*on_close)(void *ud, int32_t sid, void *sud, uint32_t error_code);
    /* S, C: nghttp2 wants up to `cap` body bytes for `sid`: copy them to
     * `buf` and return the count. Return 0 when nothing is queued: the stream
     * waits for arc_h2_resume()/arc_h2_end_body(). */
    size_t (*read_body)(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t cap);
};

struct arc_h2_options {
    const struct arc_h2_limits *limits;   /* NULL: defaults; copied */
    /* S: let CONNECT (RFC 9113 §8.5) through to on_request. Otherwise it is
     * answered 405 with END_STREAM, then RST_STREAM(NO_ERROR). */
    bool allow_connect;
    /* S: advertise SETTINGS_ENABLE_CONNECT_PROTOCOL and let extended CONNECT
     * (RFC 8441, :protocol) through. Otherwise nghttp2 treats :protocol as
     * malformed: RST_STREAM(PROTOCOL_ERROR). */
    bool allow_extended_connect;
    /* Clock for the flood guards, ms; NULL: CLOCK_MONOTONIC_COARSE. */
    uint64_t (*now_ms)(void *clock_ud);
    void *clock_ud;
    size_t out_buf_size;              /* output coalescing buffer; 0: 16 KiB */
    /* Bytes of HPACK dynamic table our encoder may use for the header
     * blocks it sends (RFC 7541 §4.2; never above the peer's
     * SETTINGS_HEADER_TABLE_SIZE). 0 (zero-initialised): none, every field
     * is sent by static-table index or as a literal without indexing, so no
     * table search, insertion or eviction per field. */
    uint32_t encoder_table_size;
};

/** Error codes (negative). */
enum arc_h2_err {
    ARC_H2_OK = 0,
    ARC_H2_E_PROTOCOL = -1,   /* the peer broke the protocol; GOAWAY is queued: flush, close */
    ARC_H2_E_FLOOD = -2,      /* a flood guard tripped; GOAWAY(ENHANCE_YOUR_CALM) queued;
                                 arc_h2_breach() says which */
    ARC_H2_E_NOMEM = -3,
    ARC_H2_E_STREAM = -4,     /* no such stream, or it is not in a state for this call */
    ARC_H2_E_INVAL = -5,      /* bad argument (e.g. malformed HTTP2-Settings payload) */
    ARC_H2_E_REFUSED = -6,    /* client: no new stream possible (GOAWAY, ids exhausted) */
    ARC_H2_E_CLOSED = -7,     /* arc_h2_shutdown: the session is already going away */
};

/**
 * Creates a server session for a connection whose first bytes from the
 * client are the HTTP/2 preface (after TLS ALPN "h2", or h2c prior
 * knowledge). Our SETTINGS are queued at once. `cb` is copied; `ud` is
 * borrowed. Returns 0 and *out (owned: arc_h2_free) or ARC_H2_E_NOMEM.
 */
int arc_h2_server_new(const struct arc_h2_callbacks *cb, void *ud,
                      const struct arc_h2_options *opt, struct arc_h2_session **out);

/**
 * Creates a server session for an HTTP/1.1 request that carried
 * "Upgrade: h2c" (RFC 7540 §3.2; removed from RFC 9113 but still spoken).
 * `settings`/`settings_len` is the base64url-decoded HTTP2-Settings value,
 * `method` the HTTP/1 request's method (a HEAD changes the body rules).
 * The HTTP/1 request becomes stream 1, half-closed (remote), owned by the
 * caller with user data `sud1`: answer it with arc_h2_submit_response(1, ..)
 * after sending "101 Switching Protocols" yourself, then the output of this
 * session. The client sends its preface after the 101; feed it as usual.
 * Returns 0, ARC_H2_E_INVAL (bad settings payload) or ARC_H2_E_NOMEM.
 */
int arc_h2_server_new_upgrade(const struct arc_h2_callbacks *cb, void *ud,
                              const struct arc_h2_options *opt,
                              const uint8_t *settings, size_t settings_len,
                              struct arc_str method, void *sud1,
                              struct arc_h2_session **out);

/** What the first bytes of a cleartext connection are. */
enum arc_h2_sniff {
    ARC_H2_SNIFF_NEED_MORE = -1,  /* a prefix of the HTTP/2 preface: wait for more bytes */
    ARC_H2_SNIFF_HTTP1 = 0,       /* not the preface: hand the bytes to the HTTP/1 codec */
    ARC_H2_SNIFF_H2 = 1,          /* starts with the 24-byte preface: arc_h2_server_new, feed all */
};

/** Tells h2c prior knowledge (RFC 9113 §3.3) from HTTP/1 on a cleartext
 *  listener by the client's first bytes. Pure; thread: any. */
enum arc_h2_sniff arc_h2_sniff_preface(const uint8_t *p, size_t len);

/** Creates a client session (upstream). The preface and our SETTINGS are
 *  queued at once. Ownership as arc_h2_server_new. */
int arc_h2_client_new(const struct arc_h2_callbacks *cb, void *ud,
                      const struct arc_h2_options *opt, struct arc_h2_session **out);

/** Frees the session and its stream state. Calls no callbacks: the owner
 *  ends its own exchanges. Any view from arc_h2_output dies here. NULL ok. */
void arc_h2_free(struct arc_h2_session *s);

/* --------------------------------------------------------- connection */

/**
 * Processes received bytes (all of them; nothing is kept beyond HPACK and
 * frame-header state). Callbacks run from here. Returns 0, or
 * ARC_H2_E_PROTOCOL / ARC_H2_E_FLOOD (GOAWAY queued: flush the output, then
 * close) / ARC_H2_E_NOMEM; once failed, every later call returns the same
 * code. Some connection errors nghttp2 handles by itself (it queues GOAWAY
 * and reports success); those surface once that GOAWAY is sent: want_read
 * turns false and the next recv returns ARC_H2_E_PROTOCOL. The same holds
 * for a flood breach found while sending (our own resets). So the owner's
 * rule is: after recv and after each output flush, close when
 * !want_read && !want_write. `p` is borrowed for the call.
 */
int arc_h2_recv(struct arc_h2_session *s, const uint8_t *p, size_t len);

/**
 * Bytes to send next: sets *p and returns their count (0: nothing now).
 * The view is owned by the session and stays valid until arc_h2_sent()
 * consumes all of it or arc_h2_free(); other calls do not move it, so it
 * can sit in an in-flight send. Calling again without arc_h2_sent returns the
 * same bytes. Small frames are coalesced into one buffer; large DATA frames
 * are handed out directly from nghttp2's buffer (no extra copy).
 * read_body and on_close may run from here.
 */
size_t arc_h2_output(struct arc_h2_session *s, const uint8_t **p);

/** `n` bytes of the last output view were written (n <= its length). */
void arc_h2_sent(struct arc_h2_session *s, size_t n);

/** Something to send (output pending or frames queued). */
bool arc_h2_want_write(const struct arc_h2_session *s);

/** The session still expects to read. When neither want_read nor
 *  want_write holds, the connection can be closed. */
bool arc_h2_want_read(const struct arc_h2_session *s);

/** Graceful shutdown: GOAWAY(NO_ERROR) naming the last stream we processed;
 *  streams in flight finish, new ones are refused. */
int arc_h2_shutdown(struct arc_h2_session *s);

/**
 * S: the header block (RFC 9113 §4.3: a HEADERS frame, then CONTINUATION
 * frames up to the one with END_HEADERS) the client is in the middle of,
 * as of the bytes given to arc_h2_recv so far: its stream id, or 0 when
 * none is open. A block is open from its HEADERS frame's 9-byte header to
 * the last byte of the frame that carries END_HEADERS; meanwhile nothing
 * else can arrive on the connection (§6.10). *since_ms (may be NULL): the
 * session clock when the first byte of its HEADERS frame arrived. *taken (may be
 * NULL): it is a request head the owner took (on_request_begin), not
 * trailers nor the head of a refused or ignored stream.
 */
int32_t arc_h2_open_header_block(const struct arc_h2_session *s, uint64_t *since_ms, bool *taken);

/** The flood guard that tripped, or ARC_H2_BREACH_NONE. */
enum arc_h2_breach arc_h2_breach(const struct arc_h2_session *s);

/** True once the peer sent GOAWAY; *last_sid (may be NULL) gets the last
 *  stream id it promised to process. */
bool arc_h2_goaway_received(const struct arc_h2_session *s, int32_t *last_sid);

/** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2 assumes 100 until the
 *  peer's SETTINGS arrive; UINT32_MAX if the peer sets no limit). */
uint32_t arc_h2_peer_max_concurrent_streams(const struct arc_h2_session *s);

/** Streams the owner knows about and that have not had on_close yet
 *  (client: submitted, including ones not yet on the wire). */
uint32_t arc_h2_open_streams(const struct arc_h2_session *s);

/** Client: can this connection take another exchange now? (no GOAWAY
 *  either way, no failure, stream ids left, open < peer's max). */
bool arc_h2_can_submit(const struct arc_h2_session *s);

/* ------------------------------------------------------------- streams */

/**
 * S: sends the response head for `sid`. `hdrs` borrowed for the call;
 * connection-specific fields (Connection and the fields it names,
 * Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, Host, TE other
 * than "trailers") and pseudo-fields are dropped, names are lower-cased,
 * fields nghttp2 deems invalid are dropped. With has_body the body is pulled
 * through read_body until arc_h2_end_body; without, END_STREAM is on the
 * HEADERS frame. One final response per stream. Returns 0, ARC_H2_E_STREAM
 * (unknown or closed stream, not taken by on_request, already answered),
 * ARC_H2_E_NOMEM, ARC_H2_E_INVAL (status outside 200..999).
 */
int arc_h2_submit_response(struct arc_h2_session *s, int32_t sid, int status,
                           const struct arc_h2_header *hdrs, size_t n, bool has_body);

/** S: an interim 1xx response (e.g. 100 Continue, 103 Early Hints), before
 *  the final one. ARC_H2_E_INVAL for a status outside 100..199. */
int arc_h2_submit_informational(struct arc_h2_session *s, int32_t sid, int status,
                                const struct arc_h2_header *hdrs, size_t n);

/**
 * C: starts an exchange. Filters headers as arc_h2_submit_response does (a
 * Host field is used as :authority only if req->authority is empty; one of
 * them is required, as are scheme and path except for CONNECT). `sud`
 * is borrowed until on_close. With has_body the body is pulled through
 * read_body. Returns the stream id (> 0) or ARC_H2_E_REFUSED, ARC_H2_E_NOMEM,
 * ARC_H2_E_INVAL. The HEADERS go out with the next output.
 */
int32_t arc_h2_submit_request(struct arc_h2_session *s, const struct arc_h2_request *req,
                              bool has_body, void *sud);

/** S, C: the owner queued more body bytes for `sid`: wake its provider.
 *  ARC_H2_E_STREAM if the stream is gone or sends no body. */
int arc_h2_resume(struct arc_h2_session *s, int32_t sid);

/**
 * S, C: no body bytes beyond what read_body still hands out. With trailers
 * (n > 0; copied, filtered like heads) they follow the last DATA frame;
 * otherwise the last DATA frame carries END_STREAM. Only for a head
 * submitted with has_body; once per stream (else ARC_H2_E_STREAM).
 */
int arc_h2_end_body(struct arc_h2_session *s, int32_t sid,
                    const struct arc_h2_header *trailers, size_t n);

/**
 * S, C: the owner passed on `n` received body bytes of `sid`; reopens the
 * stream's window by that much (WINDOW_UPDATE goes out when nghttp2 finds it
 * worthwhile; the connection window reopened when the bytes arrived). A
 * closed stream is a no-op.
 */
int arc_h2_consume(struct arc_h2_session *s, int32_t sid, size_t n);

/** S, C: resets `sid` with `error_code` (e.g. 8 CANCEL, 2 INTERNAL_ERROR).
 *  Resets the owner asks for are not charged to the peer's reset budget. */
int arc_h2_reset(struct arc_h2_session *s, int32_t sid, uint32_t error_code);

#endif
