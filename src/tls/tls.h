/**
 * TLS for Arc: OpenSSL 3 over memory, with no sockets inside.
 *
 * Three kinds of objects:
 * - a ticket key store (`struct arc_tls_ticket_keys`): the keys that encrypt
 *   and decrypt TLS session tickets, shared by every worker's server
 *   contexts so a client resumes on whichever worker the kernel picks, and
 *   rotated by the control thread (the newest key encrypts, the previous
 *   ones still decrypt);
 * - contexts: `struct arc_tls_server` (one listener's certificates, SNI,
 *   ALPN, versions, ciphers, tickets, client certificates) and
 *   `struct arc_tls_client` (one upstream's trust, server name, client
 *   certificate, ALPN and its session cache). All files are read when a
 *   context is built, never during a handshake;
 * - connections: `struct arc_tls_conn`, embedded in the owner's connection
 *   object. Ciphertext goes in with arc_tls_conn_feed() and comes out as a
 *   view (arc_tls_conn_out_peek / _iov) that stays put until
 *   arc_tls_conn_out_consume(), so a send SQE can point straight at it.
 *   Plaintext goes in with arc_tls_conn_write() and out with
 *   arc_tls_conn_read(). Nothing blocks: every call does only the CPU work
 *   the bytes at hand allow.
 *
 * Errors: constructors return NULL and write a one-line reason (naming the
 * file at fault) into `err`; connection calls return a status enum and keep
 * the reason in the connection (arc_tls_conn_error, arc_tls_conn_fail).
 *
 * Threads: the key store may be read by any thread and rotated by any one
 * thread at a time (the control thread). A context may be shared by several
 * threads (OpenSSL's SSL_CTX is thread-safe; the client session cache has
 * its own lock) but Arc builds one per listener or upstream per snapshot. A
 * connection belongs to the thread that created it. OpenSSL keeps an error
 * queue per thread; every call here leaves it empty.
 */
#ifndef ARC_TLS_TLS_H
#define ARC_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "config/config.h"

struct ssl_st;
struct bio_st;

/* ---------------------------------------------------------------- keys */

/** Newest key plus at most this many previous keys. */
#define ARC_TLS_TICKET_KEYS_MAX 4

struct arc_tls_ticket_keys;

/**
 * A store with one fresh random key that keeps `keep_previous` (0..3)
 * retired keys able to decrypt after rotations. Returns NULL if the random
 * generator fails or memory runs out. One reference for the caller.
 * Thread: any.
 */
struct arc_tls_ticket_keys *arc_tls_ticket_keys_new(unsigned keep_previous);
void arc_tls_ticket_keys_ref(struct arc_tls_ticket_keys *k);
void arc_tls_ticket_keys_unref(struct arc_tls_ticket_keys *k);

/**
 * Makes a new random key the encrypting one; the oldest key beyond
 * `keep_previous` is forgotten, so tickets it sealed no longer resume.
 * Handshakes on other threads keep running: readers never lock, they copy
 * the key set under a sequence counter and retry if a rotation overlapped.
 * Returns 0 or -EIO (random generator failure; the keys are unchanged).
 * Thread: any, one writer at a time (writers take a mutex).
 */
int arc_tls_ticket_keys_rotate(struct arc_tls_ticket_keys *k);

/* Number of rotations so far (0 after _new). Thread: any. */
uint64_t arc_tls_ticket_keys_generation(const struct arc_tls_ticket_keys *k);

/* ------------------------------------------------------------- server */

struct arc_tls_server;

struct arc_tls_server_opts {
    /* ALPN protocols in preference order; NULL = { "h2", "http/1.1" }. A
     * client offering none of them gets no ALPN answer (HTTP/1.1 then). */
    const char *const *alpn;
    size_t n_alpn;
    /* Shared ticket keys (a reference is taken). NULL with
     * session_resumption: true uses keys private to this context, so
     * resumption only works against this very context. */
    struct arc_tls_ticket_keys *ticket_keys;
};

/**
 * Builds the contexts of one `kind: https` listener: one SSL_CTX per
 * certificate, the first being the default. Reads and checks every file now
 * (unreadable file, bad PEM, encrypted key, key not matching its
 * certificate, expired certificate, unknown cipher name: each is an error
 * naming the file or value). `conf` and `opts` are only read during the
 * call. Returns the context or NULL with the reason in err.
 * Thread: any (typically the control thread, while compiling a snapshot).
 */
struct arc_tls_server *arc_tls_server_new(const struct arc_listener_tls_conf *conf,
                                          const struct arc_tls_server_opts *opts,
                                          char *err, size_t errlen);
/* Reference counting: a context starts with one reference (its snapshot's);
 * each TLS client connection holds another for its life, because OpenSSL
 * calls back into the context after the handshake (TLS 1.3 session tickets)
 * and the connection must not keep the whole snapshot alive for that.
 * arc_tls_server_free drops a reference and frees on the last one.
 * Thread: any (atomic count; once per connection, never per request). */
struct arc_tls_server *arc_tls_server_ref(struct arc_tls_server *s);
void arc_tls_server_free(struct arc_tls_server *s);

/* Certificates in configuration order, for the
 * arc_tls_cert_expiry_seconds{sni} metric: the configured `sni` ("" for a
 * default certificate without one; owned by `s`) and notAfter as Unix
 * time. Thread: any. */
size_t arc_tls_server_cert_count(const struct arc_tls_server *s);
const char *arc_tls_server_cert_sni(const struct arc_tls_server *s, size_t i);
time_t arc_tls_server_cert_not_after(const struct arc_tls_server *s, size_t i);

/* ------------------------------------------------------------- client */

struct arc_tls_client;

/**
 * Builds the context for one upstream (`up->tls` must be set): trust from
 * tls.ca_pem, else the system CA bundle (loaded now; OpenSSL's hashed
 * directory is not used because it is read lazily during verification,
 * which would be blocking file I/O inside a handshake); host name check
 * against tls.server_name (an IP address is checked against the
 * certificate's IP addresses and not sent as SNI); optional client
 * certificate; ALPN "http/1.1" or "h2" by up->protocol; `insecure: true`
 * turns verification off. Returns NULL with the reason in err.
 * Thread: any.
 */
struct arc_tls_client *arc_tls_client_new(const struct arc_upstream_conf *up,
                                          char *err, size_t errlen);
void arc_tls_client_free(struct arc_tls_client *c);

/* Sessions cached by the client (one per session key). Thread: any. */
size_t arc_tls_client_cached_sessions(struct arc_tls_client *c);

/* --------------------------------------------------------- connection */

/** Why a handshake (or a connection) failed, for counting. */
enum arc_tls_fail {
    ARC_TLS_FAIL_NONE = 0,
    ARC_TLS_FAIL_VERSION,           /* no common protocol version */
    ARC_TLS_FAIL_NO_SHARED_CIPHER,
    ARC_TLS_FAIL_NO_CERTIFICATE,    /* a required peer certificate was not sent */
    ARC_TLS_FAIL_UNKNOWN_CA,        /* chain does not lead to a trusted CA */
    ARC_TLS_FAIL_CERT_EXPIRED,      /* expired or not yet valid */
    ARC_TLS_FAIL_HOSTNAME,          /* certificate is not for the expected name */
    ARC_TLS_FAIL_BAD_CERTIFICATE,   /* any other certificate problem */
    ARC_TLS_FAIL_ALPN,              /* no application protocol in common */
    ARC_TLS_FAIL_PROTOCOL,          /* malformed or unexpected TLS data */
    ARC_TLS_FAIL_EOF,               /* transport ended (without close_notify) */
    ARC_TLS_FAIL_OTHER,
    ARC_TLS_FAIL__COUNT
};

/* "version", "no_shared_cipher", ... (metric label values). */
const char *arc_tls_fail_name(enum arc_tls_fail f);

enum arc_tls_hs {
    ARC_TLS_HS_AGAIN = 0,   /* send the pending output, feed more input, call again */
    ARC_TLS_HS_DONE,        /* established (pending output may hold the last flight) */
    ARC_TLS_HS_FAILED,      /* see arc_tls_conn_fail/_error; send pending output (the
                               alert) if convenient, then close */
};

enum arc_tls_io {
    ARC_TLS_IO_OK = 0,      /* *n bytes moved (> 0) */
    ARC_TLS_IO_AGAIN,       /* nothing now: needs more input (read) */
    ARC_TLS_IO_CLOSED,      /* the peer sent close_notify: no more plaintext */
    ARC_TLS_IO_EOF,         /* input ended without close_notify (possible truncation) */
    ARC_TLS_IO_ERROR,       /* fatal; see arc_tls_conn_fail/_error */
};

/* Output chunk: ciphertext records as OpenSSL wrote them. Private. */
struct arc_tls_chunk;

/**
 * One TLS connection. Embed it; all fields are private to src/tls/. It must
 * not move between init and dispose (OpenSSL's output BIO points at it).
 *
 * State machine (who moves it):
 *
 *   HANDSHAKE --handshake()=DONE--> OPEN --shutdown()--> CLOSING (our
 *       |                            |                  close_notify queued;
 *       |                            |                  read() still works)
 *       +--handshake()=FAILED--+     +--read()=CLOSED/EOF/ERROR--> peer gone
 *                              v
 *                            FAILED (only dispose; pending output is the alert)
 */
struct arc_tls_conn {
    struct ssl_st *_ssl;
    struct bio_st *_wbio;           /* chunk BIO: ciphertext out */
    struct arc_tls_chunk *_head, *_tail, *_spare;
    size_t _out_bytes;              /* total pending output */
    /* Ciphertext in (the input BIO): bytes kept from earlier feeds (owned,
     * NULL when none) are read first, then the caller's borrowed ones. */
    const unsigned char *_in;
    size_t _in_len;
    unsigned char *_kept;
    size_t _kept_off, _kept_len, _kept_cap;
    struct arc_tls_client *_client; /* client side: session cache owner */
    char *_session_key;             /* client side: cache key, owned */
    char *_peer_subject;            /* lazily built, owned */
    char *_err;                     /* why it failed, owned (NULL: no failure text) */
    enum arc_tls_fail _fail;
    bool _done, _failed, _peer_closed, _sent_close, _in_eof;
    char _alpn[32];
};

/**
 * Initialises `c` as the server end of a new connection on context `s`
 * (borrowed: it must outlive `c`, e.g. by living in the snapshot the
 * connection pins). Returns 0 or -ENOMEM. Thread: the owner's, from here
 * to dispose.
 */
int arc_tls_conn_init_server(struct arc_tls_conn *c, struct arc_tls_server *s);

/**
 * Initialises `c` as a client to an upstream endpoint. `session_key`
 * (copied; e.g. "upstream|10.0.0.1:443") names the cache slot: the last
 * session stored under it is offered for resumption and new sessions the
 * server sends replace it. NULL disables resumption. `cl` must outlive `c`.
 * Returns 0 or -ENOMEM.
 */
int arc_tls_conn_init_client(struct arc_tls_conn *c, struct arc_tls_client *cl,
                             const char *session_key);

/** Frees everything `c` holds, including unsent output. Idempotent. */
void arc_tls_conn_dispose(struct arc_tls_conn *c);

/**
 * Hands ciphertext received from the peer to the connection (copied, so
 * the caller may reuse its buffer at once). Returns 0 or -ENOMEM.
 */
int arc_tls_conn_feed(struct arc_tls_conn *c, const void *p, size_t len);
/**
 * The same without a copy: [p, p+len) is read in place by the handshake
 * and read calls that follow, and must stay valid and unchanged until
 * arc_tls_conn_feed_end(), which keeps a copy of whatever they did not
 * consume yet (normally nothing: reading until AGAIN consumes it all).
 * No other feed in between. feed_end returns 0 or -ENOMEM.
 */
void arc_tls_conn_feed_borrow(struct arc_tls_conn *c, const void *p, size_t len);
int arc_tls_conn_feed_end(struct arc_tls_conn *c);
/** The transport reached end of input; reads then report CLOSED or EOF. */
void arc_tls_conn_feed_eof(struct arc_tls_conn *c);

/** Advances the handshake with the input fed so far. */
enum arc_tls_hs arc_tls_conn_handshake(struct arc_tls_conn *c);

/**
 * Decrypts into buf (after the handshake). OK with *n > 0, or AGAIN when
 * all fed input is consumed. TLS 1.3 post-handshake messages (session
 * tickets, key updates) are handled here, and may queue output.
 */
enum arc_tls_io arc_tls_conn_read(struct arc_tls_conn *c, void *buf, size_t cap, size_t *n);

/**
 * Encrypts all of [p, p+len) into pending output (after the handshake;
 * *n = len on OK). The output side never refuses: bound it by checking
 * arc_tls_conn_out_pending() before writing more.
 */
enum arc_tls_io arc_tls_conn_write(struct arc_tls_conn *c, const void *p, size_t len, size_t *n);

/**
 * Queues our close_notify (once; no-op after a failure). The peer's answer
 * is not waited for: read() reports it as CLOSED if it comes.
 */
void arc_tls_conn_shutdown(struct arc_tls_conn *c);

/* ------------------------------------------------ pending output view */

/** Ciphertext waiting to be sent, in bytes. */
size_t arc_tls_conn_out_pending(const struct arc_tls_conn *c);

/**
 * The first contiguous run of pending output (0 and *p = NULL if none).
 * The bytes stay valid and unchanged until consumed or disposed, even while
 * more is written, so a send may reference them in flight.
 */
size_t arc_tls_conn_out_peek(const struct arc_tls_conn *c, const void **p);

/** Fills up to `max` iovecs with pending output (same lifetime). */
int arc_tls_conn_out_iov(const struct arc_tls_conn *c, struct iovec *iov, int max);

/** Drops the first n bytes (n <= pending), i.e. what the socket took. */
void arc_tls_conn_out_consume(struct arc_tls_conn *c, size_t n);

/* ----------------------------------------------------------- results */

/* Valid after ARC_TLS_HS_DONE; strings live as long as the connection. */
bool arc_tls_conn_established(const struct arc_tls_conn *c);
const char *arc_tls_conn_alpn(const struct arc_tls_conn *c);     /* NULL: none */
const char *arc_tls_conn_sni(const struct arc_tls_conn *c);      /* NULL: none sent */
bool arc_tls_conn_resumed(const struct arc_tls_conn *c);
const char *arc_tls_conn_version(const struct arc_tls_conn *c);  /* "TLSv1.3" */
const char *arc_tls_conn_cipher(const struct arc_tls_conn *c);
/* RFC 2253 subject of the peer's certificate if one was sent and verified,
 * else NULL (server: client certificates; client: the upstream's). */
const char *arc_tls_conn_peer_subject(struct arc_tls_conn *c);

enum arc_tls_fail arc_tls_conn_fail(const struct arc_tls_conn *c);
/* Human-readable reason of the failure ("" if none). */
const char *arc_tls_conn_error(const struct arc_tls_conn *c);
bool arc_tls_conn_peer_closed(const struct arc_tls_conn *c);

#endif
