/*
 * One TLS connection over memory: an input BIO hands OpenSSL the ciphertext
 * the caller received, a chunk BIO collects the ciphertext OpenSSL writes.
 *
 * Why a home-made input BIO: a memory BIO copies every received byte into a
 * buffer of its own and keeps that buffer (as large as the biggest feed,
 * often the ClientHello) for the connection's life, on every idle
 * connection. Ours reads the caller's bytes in place while it processes
 * them (arc_tls_conn_feed_borrow .. feed_end) and keeps memory only for
 * bytes OpenSSL has not asked for yet, which reading until AGAIN leaves
 * none of.
 *
 * Why a home-made output BIO: the caller hands the pending output to a send
 * SQE and only learns later how much the kernel took. A memory BIO
 * reallocates its buffer as OpenSSL appends records, which would move the
 * bytes under the in-flight send; a BIO pair has a fixed ring but then
 * SSL_write can stop half-way (WANT_WRITE) and must be retried with the
 * same arguments. Chunks that never move and never refuse avoid both: the
 * view handed out stays put until arc_tls_conn_out_consume(), and writes
 * always complete (the caller bounds memory with arc_tls_conn_out_pending).
 *
 *   state       entered by                         leaves by
 *   HANDSHAKE   arc_tls_conn_init_*                handshake() → DONE | FAILED
 *   OPEN        handshake() = DONE                 shutdown(), read() = CLOSED/EOF/ERROR
 *   CLOSING     shutdown(): close_notify queued    dispose
 *   FAILED      any fatal error                    dispose (pending output = alert)
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "tls/tls_int.h"

/* 32 KiB holds a full TLS record (16 KiB + overhead) with room for the
 * next; a whole handshake flight usually fits one chunk. */
#define CHUNK_BYTES (32u * 1024u)

struct arc_tls_chunk {
    struct arc_tls_chunk *next;
    size_t start, end;          /* unsent bytes are data[start, end) */
    unsigned char data[];
};

#define CHUNK_CAP (CHUNK_BYTES - sizeof(struct arc_tls_chunk))

/* ------------------------------------------------------------ output BIO */

static int out_write(BIO *b, const char *p, int len)
{
    struct arc_tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    size_t left = (size_t)len;
    while (left) {
        struct arc_tls_chunk *t = c->_tail;
        if (!t || t->end == CHUNK_CAP) {
            t = c->_spare;
            if (t)
                c->_spare = NULL;
            else if (!(t = malloc(CHUNK_BYTES)))
                return -1;      /* OpenSSL reports an internal error: fatal */
            t->next = NULL;
            t->start = t->end = 0;
            if (c->_tail)
                c->_tail->next = t;
            else
                c->_head = t;
            c->_tail = t;
        }
        size_t n = ARC_MIN(left, CHUNK_CAP - t->end);
        memcpy(t->data + t->end, p, n);
        t->end += n;
        p += n;
        left -= n;
        c->_out_bytes += n;
    }
    return len;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    struct arc_tls_conn *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;               /* the caller flushes, on its own loop */
    case BIO_CTRL_WPENDING:
        return (long)c->_out_bytes;
    case BIO_CTRL_PENDING:
        return 0;
    default:
        return 0;               /* includes kTLS queries: not offered */
    }
}

static int out_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *g_out_method;
static pthread_once_t g_out_once = PTHREAD_ONCE_INIT;

static void out_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "arc tls output");
    if (m && BIO_meth_set_write(m, out_write) == 1 && BIO_meth_set_ctrl(m, out_ctrl) == 1 &&
        BIO_meth_set_create(m, out_create) == 1) {
        g_out_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* Lives for the process; OpenSSL keeps no reference to it past the BIOs. */
static const BIO_METHOD *out_method(void)
{
    pthread_once(&g_out_once, out_method_init);
    return g_out_method;
}

__attribute__((destructor)) static void out_method_fini(void)
{
    BIO_meth_free(g_out_method);
    g_out_method = NULL;
}

/* ------------------------------------------------------------ input BIO */

static int in_read(BIO *b, char *out, int len)
{
    struct arc_tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    size_t want = (size_t)len, got = 0;
    if (c->_kept) {
        got = ARC_MIN(want, c->_kept_len - c->_kept_off);
        memcpy(out, c->_kept + c->_kept_off, got);
        c->_kept_off += got;
        if (c->_kept_off == c->_kept_len) {
            free(c->_kept);
            c->_kept = NULL;
            c->_kept_off = c->_kept_len = c->_kept_cap = 0;
        }
    }
    if (got < want && c->_in_len) {
        size_t n = ARC_MIN(want - got, c->_in_len);
        memcpy(out + got, c->_in, n);
        c->_in += n;
        c->_in_len -= n;
        got += n;
    }
    if (got)
        return (int)got;
    if (c->_in_eof)
        return 0;
    BIO_set_retry_read(b);      /* empty input means "more may come" */
    return -1;
}

static long in_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    struct arc_tls_conn *c = BIO_get_data(b);
    size_t pending = c->_kept_len - c->_kept_off + c->_in_len;
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return (long)pending;
    case BIO_CTRL_EOF:
        return c->_in_eof && pending == 0;
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static BIO_METHOD *g_in_method;
static pthread_once_t g_in_once = PTHREAD_ONCE_INIT;

static void in_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "arc tls input");
    if (m && BIO_meth_set_read(m, in_read) == 1 && BIO_meth_set_ctrl(m, in_ctrl) == 1 &&
        BIO_meth_set_create(m, out_create) == 1) {
        g_in_method = m;
        return;
    }
    BIO_meth_free(m);
}

static const BIO_METHOD *in_method(void)
{
    pthread_once(&g_in_once, in_method_init);
    return g_in_method;
}

__attribute__((destructor)) static void in_method_fini(void)
{
    BIO_meth_free(g_in_method);
    g_in_method = NULL;
}

/* ------------------------------------------------------------ failures */

const char *arc_tls_fail_name(enum arc_tls_fail f)
{
    static const char *const names[ARC_TLS_FAIL__COUNT] = {
        [ARC_TLS_FAIL_NONE] = "none",
        [ARC_TLS_FAIL_VERSION] = "version",
        [ARC_TLS_FAIL_NO_SHARED_CIPHER] = "no_shared_cipher",
        [ARC_TLS_FAIL_NO_CERTIFICATE] = "no_certificate",
        [ARC_TLS_FAIL_UNKNOWN_CA] = "unknown_ca",
        [ARC_TLS_FAIL_CERT_EXPIRED] = "cert_expired",
        [ARC_TLS_FAIL_HOSTNAME] = "hostname",
        [ARC_TLS_FAIL_BAD_CERTIFICATE] = "bad_certificate",
        [ARC_TLS_FAIL_ALPN] = "alpn",
        [ARC_TLS_FAIL_PROTOCOL] = "protocol",
        [ARC_TLS_FAIL_EOF] = "eof",
        [ARC_TLS_FAIL_OTHER] = "other",
    };
    return (unsigned)f < ARC_TLS_FAIL__COUNT ? names[f] : "other";
}

static enum arc_tls_fail classify_verify(long v)
{
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return ARC_TLS_FAIL_CERT_EXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return ARC_TLS_FAIL_HOSTNAME;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return ARC_TLS_FAIL_UNKNOWN_CA;
    default:
        return ARC_TLS_FAIL_BAD_CERTIFICATE;
    }
}

/* Our own errors and the alerts a peer sends for the same problems land in
 * the same bucket, so both ends of a failed handshake count alike. */
static enum arc_tls_fail classify(int reason, long verify)
{
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return classify_verify(verify);
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_UNSUPPORTED_SSL_VERSION:
        return ARC_TLS_FAIL_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_CIPHERS_AVAILABLE:
        return ARC_TLS_FAIL_NO_SHARED_CIPHER;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return ARC_TLS_FAIL_NO_CERTIFICATE;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return ARC_TLS_FAIL_UNKNOWN_CA;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        return ARC_TLS_FAIL_CERT_EXPIRED;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        return ARC_TLS_FAIL_BAD_CERTIFICATE;
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
        return ARC_TLS_FAIL_ALPN;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return ARC_TLS_FAIL_EOF;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_BAD_PACKET_LENGTH:
    case SSL_R_LENGTH_MISMATCH:
    case SSL_R_BAD_EXTENSION:
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
    case SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE:
    case SSL_R_TLSV1_ALERT_DECODE_ERROR:
        return ARC_TLS_FAIL_PROTOCOL;
    default:
        return ARC_TLS_FAIL_OTHER;
    }
}

/* The failure text is allocated only when there is one: it would
 * otherwise be 200 bytes in every connection. */
__attribute__((format(printf, 2, 3)))
static void set_error(struct arc_tls_conn *c, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(c->_err);
    c->_err = strdup(buf);      /* NULL on out of memory: reported as "" */
}

/* Records why the connection failed and empties the error queue. */
static void fail(struct arc_tls_conn *c, int ssl_err)
{
    char why[160];
    int reason = 0;
    arc_tls__drain_errors(why, sizeof(why), &reason);
    long v = SSL_get_verify_result(c->_ssl);
    c->_failed = true;
    if (ssl_err == SSL_ERROR_SYSCALL && !why[0]) {
        c->_fail = ARC_TLS_FAIL_OTHER;
        set_error(c, "I/O error in the TLS layer");
        return;
    }
    c->_fail = classify(reason, v);
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK)
        set_error(c, "%s: %s", why[0] ? why : "certificate verify failed",
                  X509_verify_cert_error_string(v));
    else
        set_error(c, "%s", why[0] ? why : "TLS error");
}

/* ------------------------------------------------------------ lifecycle */

static int conn_init(struct arc_tls_conn *c, SSL_CTX *ctx)
{
    *c = (struct arc_tls_conn){ 0 };
    const BIO_METHOD *om = out_method(), *im = in_method();
    if (!om || !im)
        return -ENOMEM;
    c->_ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(im);
    c->_wbio = BIO_new(om);
    if (!c->_ssl || !rbio || !c->_wbio) {
        SSL_free(c->_ssl);
        BIO_free(rbio);
        BIO_free(c->_wbio);
        *c = (struct arc_tls_conn){ 0 };
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(rbio, c);
    BIO_set_data(c->_wbio, c);
    SSL_set_bio(c->_ssl, rbio, c->_wbio);       /* the SSL owns both now */
    SSL_set_app_data(c->_ssl, c);
    return 0;
}

int arc_tls_conn_init_server(struct arc_tls_conn *c, struct arc_tls_server *s)
{
    int rc = conn_init(c, s->certs[0].ctx);
    if (rc == 0)
        SSL_set_accept_state(c->_ssl);
    return rc;
}

int arc_tls_conn_init_client(struct arc_tls_conn *c, struct arc_tls_client *cl,
                             const char *session_key)
{
    int rc = conn_init(c, cl->ctx);
    if (rc < 0)
        return rc;
    c->_client = cl;
    SSL_set_connect_state(c->_ssl);
    bool ok = true;
    if (cl->server_name && !cl->server_name_is_ip)
        ok = SSL_set_tlsext_host_name(c->_ssl, cl->server_name) == 1; /* SNI is never an IP */
    if (ok && cl->server_name && !cl->insecure) {
        if (cl->server_name_is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->_ssl), cl->server_name) == 1;
        } else {
            SSL_set_hostflags(c->_ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(c->_ssl, cl->server_name) == 1;
        }
    }
    if (ok && session_key) {
        ok = (c->_session_key = strdup(session_key)) != NULL;
        /* A copy again (see new_session_cb): the cached object must not
         * become this connection's session, or an abrupt close of this
         * connection would mark it not resumable for everyone. */
        SSL_SESSION *sess = ok ? arc_tls__client_session_get(cl, session_key) : NULL;
        SSL_SESSION *copy = sess ? SSL_SESSION_dup(sess) : NULL;
        if (copy)
            SSL_set_session(c->_ssl, copy);
        SSL_SESSION_free(copy);
        SSL_SESSION_free(sess);
    }
    if (!ok) {
        arc_tls_conn_dispose(c);
        ERR_clear_error();
        return -ENOMEM;
    }
    return 0;
}

void arc_tls_conn_dispose(struct arc_tls_conn *c)
{
    if (c->_ssl) {
        SSL_set_app_data(c->_ssl, NULL);
        SSL_free(c->_ssl);      /* frees both BIOs */
    }
    for (struct arc_tls_chunk *k = c->_head, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    free(c->_spare);
    free(c->_kept);
    free(c->_session_key);
    free(c->_peer_subject);
    free(c->_err);
    *c = (struct arc_tls_conn){ 0 };
}

/* ------------------------------------------------------------ input */

void arc_tls_conn_feed_borrow(struct arc_tls_conn *c, const void *p, size_t len)
{
    ARC_ASSERT(c->_in_len == 0);        /* the previous borrow was ended */
    c->_in = p;
    c->_in_len = len;
}

int arc_tls_conn_feed_end(struct arc_tls_conn *c)
{
    const unsigned char *p = c->_in;
    size_t left = c->_in_len;
    c->_in = NULL;
    c->_in_len = 0;
    if (left == 0)
        return 0;
    /* Appended to what is kept already (a caller may feed many small
     * pieces before reading): the buffer grows geometrically. */
    size_t have = c->_kept_len - c->_kept_off;
    if (c->_kept_cap - c->_kept_len < left) {
        if (c->_kept_off) {
            memmove(c->_kept, c->_kept + c->_kept_off, have);
            c->_kept_off = 0;
            c->_kept_len = have;
        }
        if (c->_kept_cap - have < left) {
            size_t cap = c->_kept_cap ? c->_kept_cap : 1024;
            while (cap < have + left)
                cap *= 2;
            unsigned char *k = realloc(c->_kept, cap);
            if (!k)
                return -ENOMEM;
            c->_kept = k;
            c->_kept_cap = cap;
        }
    }
    memcpy(c->_kept + c->_kept_len, p, left);
    c->_kept_len += left;
    return 0;
}

int arc_tls_conn_feed(struct arc_tls_conn *c, const void *p, size_t len)
{
    arc_tls_conn_feed_borrow(c, p, len);
    return arc_tls_conn_feed_end(c);
}

void arc_tls_conn_feed_eof(struct arc_tls_conn *c)
{
    c->_in_eof = true;
}

/* ------------------------------------------------------------ handshake */

static void on_established(struct arc_tls_conn *c)
{
    const unsigned char *p;
    unsigned int n;
    c->_done = true;
    SSL_get0_alpn_selected(c->_ssl, &p, &n);
    if (p && n && n < sizeof(c->_alpn)) {
        memcpy(c->_alpn, p, n);
        c->_alpn[n] = '\0';
    }
}

enum arc_tls_hs arc_tls_conn_handshake(struct arc_tls_conn *c)
{
    if (c->_failed)
        return ARC_TLS_HS_FAILED;
    if (c->_done)
        return ARC_TLS_HS_DONE;
    ERR_clear_error();
    int r = SSL_do_handshake(c->_ssl);
    if (r == 1) {
        on_established(c);
        return ARC_TLS_HS_DONE;
    }
    int e = SSL_get_error(c->_ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return ARC_TLS_HS_AGAIN;
    fail(c, e);
    return ARC_TLS_HS_FAILED;
}

/* ------------------------------------------------------------ data */

enum arc_tls_io arc_tls_conn_read(struct arc_tls_conn *c, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (c->_failed)
        return c->_fail == ARC_TLS_FAIL_EOF ? ARC_TLS_IO_EOF : ARC_TLS_IO_ERROR;
    if (c->_peer_closed)
        return ARC_TLS_IO_CLOSED;
    if (cap == 0)
        return ARC_TLS_IO_AGAIN;
    ERR_clear_error();
    size_t got = 0;
    int r = SSL_read_ex(c->_ssl, buf, cap, &got);
    if (r == 1) {
        if (!c->_done)
            on_established(c);  /* read() may finish a handshake itself */
        *n = got;
        return ARC_TLS_IO_OK;
    }
    int e = SSL_get_error(c->_ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return ARC_TLS_IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        c->_peer_closed = true;
        return ARC_TLS_IO_CLOSED;
    default:
        fail(c, e);
        return c->_fail == ARC_TLS_FAIL_EOF ? ARC_TLS_IO_EOF : ARC_TLS_IO_ERROR;
    }
}

enum arc_tls_io arc_tls_conn_write(struct arc_tls_conn *c, const void *p, size_t len, size_t *n)
{
    *n = 0;
    if (c->_failed)
        return ARC_TLS_IO_ERROR;
    if (!c->_done || c->_sent_close) {
        set_error(c, "%s", c->_done ? "write after shutdown" : "write before the handshake completed");
        return ARC_TLS_IO_ERROR;
    }
    if (len == 0)
        return ARC_TLS_IO_OK;
    ERR_clear_error();
    size_t w = 0;
    int r = SSL_write_ex(c->_ssl, p, len, &w);
    if (r == 1) {
        *n = w;
        return ARC_TLS_IO_OK;
    }
    int e = SSL_get_error(c->_ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return ARC_TLS_IO_AGAIN;
    fail(c, e);
    return ARC_TLS_IO_ERROR;
}

void arc_tls_conn_shutdown(struct arc_tls_conn *c)
{
    /* OpenSSL forbids SSL_shutdown after a fatal error, and before the
     * handshake there is nothing to close politely. */
    if (!c->_ssl || c->_failed || c->_sent_close || !c->_done)
        return;
    ERR_clear_error();
    SSL_shutdown(c->_ssl);      /* 0: ours sent, theirs not seen yet; fine */
    ERR_clear_error();
    c->_sent_close = true;
}

/* ------------------------------------------------------------ output view */

size_t arc_tls_conn_out_pending(const struct arc_tls_conn *c)
{
    return c->_out_bytes;
}

size_t arc_tls_conn_out_peek(const struct arc_tls_conn *c, const void **p)
{
    const struct arc_tls_chunk *h = c->_head;
    if (!h) {
        *p = NULL;
        return 0;
    }
    *p = h->data + h->start;
    return h->end - h->start;
}

int arc_tls_conn_out_iov(const struct arc_tls_conn *c, struct iovec *iov, int max)
{
    int n = 0;
    for (const struct arc_tls_chunk *k = c->_head; k && n < max; k = k->next, n++) {
        iov[n].iov_base = (void *)(k->data + k->start);
        iov[n].iov_len = k->end - k->start;
    }
    return n;
}

void arc_tls_conn_out_consume(struct arc_tls_conn *c, size_t n)
{
    ARC_ASSERT(n <= c->_out_bytes);
    c->_out_bytes -= n;
    while (n) {
        struct arc_tls_chunk *h = c->_head;
        size_t take = ARC_MIN(n, h->end - h->start);
        h->start += take;
        n -= take;
        if (h->start < h->end)
            break;
        c->_head = h->next;
        if (!c->_head)
            c->_tail = NULL;
        if (!c->_spare)
            c->_spare = h;      /* reused by the next record while streaming */
        else
            free(h);
    }
    /* Idle connections hold no output memory. */
    if (!c->_head && c->_spare) {
        free(c->_spare);
        c->_spare = NULL;
    }
}

/* ------------------------------------------------------------ results */

bool arc_tls_conn_established(const struct arc_tls_conn *c)
{
    return c->_done && !c->_failed;
}

const char *arc_tls_conn_alpn(const struct arc_tls_conn *c)
{
    return c->_alpn[0] ? c->_alpn : NULL;
}

const char *arc_tls_conn_sni(const struct arc_tls_conn *c)
{
    return c->_ssl ? SSL_get_servername(c->_ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

bool arc_tls_conn_resumed(const struct arc_tls_conn *c)
{
    return c->_done && SSL_session_reused(c->_ssl) == 1;
}

const char *arc_tls_conn_version(const struct arc_tls_conn *c)
{
    return c->_done ? SSL_get_version(c->_ssl) : NULL;
}

const char *arc_tls_conn_cipher(const struct arc_tls_conn *c)
{
    return c->_done ? SSL_get_cipher_name(c->_ssl) : NULL;
}

const char *arc_tls_conn_peer_subject(struct arc_tls_conn *c)
{
    if (c->_peer_subject || !c->_done || c->_failed)
        return c->_peer_subject;
    X509 *x = SSL_get0_peer_certificate(c->_ssl);
    if (!x || SSL_get_verify_result(c->_ssl) != X509_V_OK)
        return NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return NULL;
    if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        if (n >= 0 && (c->_peer_subject = malloc((size_t)n + 1)) != NULL) {
            memcpy(c->_peer_subject, p, (size_t)n);
            c->_peer_subject[n] = '\0';
        }
    }
    BIO_free(b);
    ERR_clear_error();
    return c->_peer_subject;
}

enum arc_tls_fail arc_tls_conn_fail(const struct arc_tls_conn *c)
{
    return c->_fail;
}

const char *arc_tls_conn_error(const struct arc_tls_conn *c)
{
    return c->_err ? c->_err : "";
}

bool arc_tls_conn_peer_closed(const struct arc_tls_conn *c)
{
    return c->_peer_closed;
}
