/**
 * HTTP/1.1 message heads and chunked framing (RFC 9110, RFC 9112).
 *
 * Pure functions: bytes in, a status and a reason out. No I/O, no allocation
 * (except trailer fields a caller asks the chunked decoder to keep, which go
 * into the caller's arena); every view in a parsed message points into the
 * caller's buffer and lives as long as it does. Safe to fuzz. Thread: any.
 *
 * The parser is deliberately strict where leniency enables request smuggling
 * or response splitting; each rejection names its reason in `err`.
 */
#ifndef ARC_HTTP1_HTTP1_H
#define ARC_HTTP1_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/common.h"

enum arc_h1_status {
    ARC_H1_OK = 0,          /* a complete head was parsed */
    ARC_H1_INCOMPLETE,      /* need more bytes; nothing is wrong so far */
    ARC_H1_BAD,             /* malformed or ambiguous: 400 (request) / 502 (response) */
    ARC_H1_URI_TOO_LONG,    /* request-target longer than limits.max_uri: 414 */
    ARC_H1_HEADERS_TOO_LARGE, /* head bytes > max_header_bytes or count > max_headers: 431 */
    ARC_H1_NOT_IMPLEMENTED, /* Transfer-Encoding other than chunked: 501 */
    ARC_H1_BAD_VERSION,     /* HTTP/2.0, HTTP/3.x... on the HTTP/1 codec: 505 */
};

struct arc_h1_limits {
    uint32_t max_header_bytes;  /* whole head incl. request line and CRLFCRLF */
    uint32_t max_headers;       /* number of header fields */
    uint32_t max_uri;           /* request-target bytes */
};

/* Used for a NULL `limits` pointer and for any limits field left 0. */
#define ARC_H1_DEFAULT_MAX_HEADER_BYTES 16384u
#define ARC_H1_DEFAULT_MAX_HEADERS      100u
#define ARC_H1_DEFAULT_MAX_URI          8192u

struct arc_h1_header {
    struct arc_str name;        /* as received (case preserved) */
    struct arc_str value;       /* OWS trimmed on both sides */
};

enum arc_h1_body {
    ARC_H1_BODY_NONE,           /* no body (request without CL/TE; HEAD/1xx/204/304 responses) */
    ARC_H1_BODY_LENGTH,         /* content_length bytes */
    ARC_H1_BODY_CHUNKED,        /* chunked coding, ends with the last chunk + trailers */
    ARC_H1_BODY_CLOSE,          /* responses only: until the connection closes */
};

/* Connection-level facts derived from the head (flags). */
enum {
    ARC_H1_F_KEEP_ALIVE   = 1u << 0, /* persistent per version + Connection header */
    ARC_H1_F_EXPECT_100   = 1u << 1, /* Expect: 100-continue (request) */
    ARC_H1_F_UPGRADE      = 1u << 2, /* Upgrade header present AND Connection lists "upgrade" */
    ARC_H1_F_CONN_CLOSE   = 1u << 3, /* Connection lists "close" */
    ARC_H1_F_HAS_TE       = 1u << 4, /* a Transfer-Encoding header was present */
};

struct arc_h1_request {
    struct arc_str method;
    struct arc_str target;      /* request-target as sent */
    struct arc_str path;        /* target up to '?' (origin-form); for absolute-form, the path part
                                   (a static "/" if the URI has an empty path); "*" for OPTIONS *;
                                   empty for CONNECT */
    struct arc_str query;       /* after '?', without it; len 0 if none */
    struct arc_str host;        /* Host header value (authority-form/absolute-form host wins) */
    int minor;                  /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
    struct arc_h1_header *headers; /* = caller's array */
    size_t n_headers;
    size_t head_len;            /* bytes of the head including the final CRLFCRLF */
    enum arc_h1_body body;      /* NONE, LENGTH or CHUNKED */
    uint64_t content_length;    /* valid when body == LENGTH */
    uint32_t flags;             /* ARC_H1_F_* */
    const char *err;            /* static reason string when status != OK/INCOMPLETE */
};

struct arc_h1_response {
    int status;                 /* 100..999 as a 3-digit number */
    struct arc_str reason;
    int minor;
    struct arc_h1_header *headers;
    size_t n_headers;
    size_t head_len;
    enum arc_h1_body body;      /* framing per RFC 9112 §6.3 given the request */
    uint64_t content_length;
    uint32_t flags;             /* KEEP_ALIVE, UPGRADE (on 101), CONN_CLOSE, HAS_TE */
    const char *err;
};

/**
 * Parses a request head from buf[0..len).
 * `hdrs`/`max_hdrs` is the caller's header array; exceeding it or
 * limits->max_headers is ARC_H1_HEADERS_TOO_LARGE. An INCOMPLETE head larger
 * than limits->max_header_bytes is HEADERS_TOO_LARGE (so a caller never
 * buffers more than that), a target longer than max_uri is URI_TOO_LONG
 * (reported as soon as it is known, even if the head is incomplete).
 *
 * Rejected as ARC_H1_BAD (RFC 9112 §2.2, §3, §5, §6): a bare CR or LF line
 * ending other than CRLF (a bare LF line ending is also rejected), NUL or
 * other control bytes (except HTAB in values), obs-fold, invalid token chars
 * in method or header names, whitespace before the colon, a missing or
 * repeated Host in HTTP/1.1 (missing is allowed for 1.0), Content-Length
 * that is not all digits / overflows / differs between repeated fields or
 * list elements, both Content-Length and Transfer-Encoding, a
 * Transfer-Encoding whose final coding is not chunked or that repeats
 * chunked, and leading empty lines beyond one CRLF (one is ignored per §2.2).
 * Transfer-Encoding on HTTP/1.0 is BAD. A request-target that is not
 * origin-form ("/..."), absolute-form ("http://h/..."), "*" (OPTIONS only)
 * or authority-form (CONNECT only) is BAD.
 */
enum arc_h1_status arc_h1_parse_request(const char *buf, size_t len,
                                        const struct arc_h1_limits *limits,
                                        struct arc_h1_header *hdrs, size_t max_hdrs,
                                        struct arc_h1_request *out);

/**
 * Parses a response head. `req_method_head` says the request was HEAD and
 * `req_connect` that it was CONNECT (both change the body rules, §6.3).
 * 1xx, 204 and 304 responses have BODY_NONE. A response without CL or TE is
 * BODY_CLOSE (and never keep-alive). Multiple differing Content-Length, CL
 * with TE, non-final chunked, bad status line, etc. are ARC_H1_BAD: an
 * upstream that sends them is answered with 502, never relayed.
 */
enum arc_h1_status arc_h1_parse_response(const char *buf, size_t len,
                                         const struct arc_h1_limits *limits,
                                         bool req_method_head, bool req_connect,
                                         struct arc_h1_header *hdrs, size_t max_hdrs,
                                         struct arc_h1_response *out);

/* ------------------------------------------------------------- chunked */

struct arc_arena;

/**
 * Incremental chunked-body decoder (RFC 9112 §7.1). Zero-initialise it (or
 * call arc_h1_chunked_init, which zeroes the limits too: set them after) per
 * message. It does not copy: it walks framing and reports where data spans
 * are, so a proxy can forward the validated bytes verbatim (consumed counts
 * framing + data) or extract data spans. Trailer fields are validated and
 * dropped unless the caller asks to keep them (arc_h1_chunked_keep_trailers).
 * Fields starting with `_` are private to chunked.c.
 */
struct arc_h1_chunked {
    uint8_t state;              /* private */
    uint8_t _pad[3];
    uint32_t line_len;          /* private: bytes of the current size/trailer line */
    uint64_t remaining;         /* private: data bytes left in the current chunk */
    uint64_t trailer_bytes;     /* private */
    uint32_t max_line;          /* max chunk-size line / trailer line length (default 4096 if 0) */
    uint32_t max_trailer_bytes; /* total trailer section limit (default 32768 if 0) */
    struct arc_arena *_tr_arena; /* NULL: trailer fields are not kept */
    char *_tr_buf;              /* kept fields, "name:value\n" each, in _tr_arena */
    uint32_t _tr_len, _tr_cap;
    uint32_t _tr_vstart;        /* where the current value starts in _tr_buf */
    uint32_t _tr_vend;          /* ... and ends, trailing OWS excluded */
    uint32_t _tr_count;         /* complete fields in _tr_buf */
};

enum arc_h1_chunk_rc {
    ARC_H1_CHUNK_AGAIN,         /* everything given was consumed; need more input */
    ARC_H1_CHUNK_DATA,          /* a data span is reported (may be followed by more) */
    ARC_H1_CHUNK_DONE,          /* last-chunk and trailer section complete */
    ARC_H1_CHUNK_ERROR,         /* bad framing: bad hex, size overflow, missing CRLF after data,
                                   bad chunk-ext chars, bad trailer line, limits exceeded,
                                   no memory for kept trailer fields */
};

void arc_h1_chunked_init(struct arc_h1_chunked *st);

/**
 * Advances over buf[0..len). Sets *consumed to the bytes eaten by this call
 * (always <= len). On DATA, *data (*data_len bytes) is a span inside the
 * consumed bytes (the caller calls again with buf+consumed). On DONE, bytes after
 * *consumed belong to the next message. On ERROR, *err names the reason.
 */
enum arc_h1_chunk_rc arc_h1_chunked_next(struct arc_h1_chunked *st,
                                         const char *buf, size_t len,
                                         size_t *consumed,
                                         const char **data, size_t *data_len,
                                         const char **err);

/**
 * Keeps this message's trailer fields so that, once arc_h1_chunked_next has
 * returned DONE, arc_h1_chunked_trailer_next can hand them out however the
 * trailer section was split across calls. Call it after arc_h1_chunked_init
 * and before the trailer section starts (in practice: before the first
 * arc_h1_chunked_next); arc_h1_chunked_init turns it off again, so it is
 * per message. A decoder not told to keep trailers never allocates.
 *
 * Storage comes from `arena` (borrowed; it must stay valid, and not be reset,
 * until the decoder returns DONE or ERROR or is re-initialised). Nothing is
 * allocated for a message whose trailer section is empty; otherwise the
 * fields are stored normalised (name, value without OWS) in a buffer that
 * doubles from 256 bytes up to max_trailer_bytes, so the arena holds at most
 * about twice max_trailer_bytes. The arena owns all of it: there is nothing
 * to free but the arena (arc_arena_reset/dispose), and the views handed out
 * live until then. Running out of memory is ARC_H1_CHUNK_ERROR
 * ("out of memory for trailer fields").
 *
 * Field lines are checked the same whether kept or not (RFC 9112 §7.1.2,
 * RFC 9110 §5): a token name directly followed by ':', a value of
 * field-content (no CR, LF, NUL or other controls but HTAB), no obs-fold,
 * each line within max_line and the whole section within
 * max_trailer_bytes; anything else is ARC_H1_CHUNK_ERROR with its reason.
 */
void arc_h1_chunked_keep_trailers(struct arc_h1_chunked *st, struct arc_arena *arena);

/**
 * Number of kept trailer fields: 0 unless trailers were kept and the
 * decoder has returned DONE (a section that is not complete and valid
 * yields nothing, so a proxy never forwards part of a bad one).
 */
size_t arc_h1_chunked_trailer_count(const struct arc_h1_chunked *st);

/**
 * Iterates over the kept trailer fields in the order received: start with
 * *pos = 0; each call that returns true sets *out and advances *pos. False
 * when there are no more, or under the same conditions that make the count
 * 0. out->name is as received (case preserved, a non-empty token);
 * out->value has leading and trailing OWS (SP, HTAB) removed, inner OWS kept,
 * and may be empty. Repeated names are returned as separate fields. Views
 * point into the arena given to arc_h1_chunked_keep_trailers.
 */
bool arc_h1_chunked_trailer_next(const struct arc_h1_chunked *st, size_t *pos,
                                 struct arc_h1_header *out);

/**
 * Case-insensitive: may a field with this name be forwarded from a trailer
 * section? False for the fields RFC 9110 §6.5.1 says cannot be processed
 * outside the header section (the groups RFC 7230 §4.1.2 spelled out); a
 * trailer cannot change what was already acted on, so a proxy drops them
 * rather than forward or merge them (RFC 9110 §6.5.2):
 *   framing, connection (RFC 9112 §6.1, RFC 9110 §6.6.2, §7.6.1, §7.8, §8.6,
 *     §10.1.4; connection-specific in HTTP/2 too, RFC 9113 §8.2.2):
 *     Transfer-Encoding, Content-Length, Trailer, TE, Connection,
 *     Keep-Alive, Proxy-Connection, Upgrade
 *   routing, request modifiers (RFC 9110 §7.2, §7.6.2, §10.1.1, §13.1,
 *     §14.2): Host, Max-Forwards, Expect, Range, If-Match, If-None-Match,
 *     If-Modified-Since, If-Unmodified-Since, If-Range
 *   authentication, state (RFC 9110 §11.6, §11.7, RFC 6265): Authorization,
 *     Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate, Cookie,
 *     Set-Cookie
 *   response controls (RFC 9110 §6.6.1, §10.2, §12.5.5, RFC 9111 §5): Age,
 *     Cache-Control, Date, Expires, Location, Pragma, Retry-After, Vary,
 *     Warning
 *   content format (RFC 9110 §8.3-§8.7, §14.4): Content-Type,
 *     Content-Encoding, Content-Language, Content-Location, Content-Range
 * Everything else is allowed, including fields made for trailers:
 * grpc-status, grpc-message, Content-Digest and Repr-Digest (RFC 9530),
 * Server-Timing, Authentication-Info (RFC 9110 §11.6.3). Pure; the HTTP/2
 * codec still lower-cases names and drops what nghttp2 rejects.
 */
bool arc_h1_trailer_allowed(struct arc_str name);

/* ------------------------------------------------------------- helpers */

/* Case-insensitive: is `name` one of the fixed hop-by-hop fields
 * (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
 * Upgrade)? Content-Length is NOT hop-by-hop. */
bool arc_h1_is_hop_by_hop(struct arc_str name);

/* True if the comma-separated list `value` contains `token` (case-insensitive,
 * OWS around elements ignored). Used for Connection: a, b. */
bool arc_h1_list_has(struct arc_str value, const char *token, size_t token_len);

/* Standard reason phrase for a status code ("Not Found"), or "Unknown". */
const char *arc_h1_reason(int status);

/**
 * Resumable scan of a head arriving in pieces: did buf[*scanned..len) bring
 * a new line (LF)? Updates *scanned to len. A caller that re-parses an
 * incomplete head only when this says yes parses once per line instead of
 * once per received piece, so a head trickled in byte by byte costs
 * O(lines x length), not O(length^2). Pure; *scanned starts at 0 per head.
 */
bool arc_h1_head_scan(const char *buf, size_t len, uint32_t *scanned);

#endif
