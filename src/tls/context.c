/*
 * TLS contexts: a listener's server contexts (one SSL_CTX per certificate,
 * SNI picks one) and an upstream's client context with its session cache.
 *
 * Everything that touches files or can fail on configuration happens here,
 * once, when a snapshot is compiled; a handshake then only does crypto. The
 * per-certificate contexts are configured identically apart from the
 * certificate because OpenSSL reads some settings from the context the SNI
 * callback switched to (ALPN, certificate) and others from the original one
 * (tickets, verification): identical contexts make that distinction moot.
 */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "tls/tls_int.h"

/* Upper bound on cached client sessions per upstream: one per endpoint is
 * the normal use, this only stops a pathological key space growing. */
#define MAX_CLIENT_SESSIONS 4096

/* ------------------------------------------------------------ errors */

void arc_tls__drain_errors(char *buf, size_t len, int *reason)
{
    unsigned long e;
    bool first = true;
    if (len)
        buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        if (first && reason)
            *reason = ERR_GET_REASON(e);
        if (first && len) {
            const char *r = ERR_reason_error_string(e);
            char tmp[160];
            if (!r) {
                ERR_error_string_n(e, tmp, sizeof(tmp));
                r = tmp;
            }
            snprintf(buf, len, "%s", r);
        }
        first = false;
    }
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* " (openssl reason)" from the queue, or "" */
static const char *ossl_why(char buf[200])
{
    char r[180];
    arc_tls__drain_errors(r, sizeof(r), NULL);
    if (r[0])
        snprintf(buf, 200, " (%s)", r);
    else
        buf[0] = '\0';
    return buf;
}

/* ------------------------------------------------------------ PEM files */

/* Never prompt on a terminal for a pass phrase: that would block the
 * control thread forever. Encrypted keys are reported instead. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag;
    *(bool *)u = true;
    return -1;
}

static BIO *open_file(const char *role, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "%s '%s': cannot open: %s", role, path, strerror(errno));
        return NULL;
    }
    BIO *b = BIO_new_fp(f, BIO_CLOSE);
    if (!b) {
        fclose(f);
        set_err(err, errlen, "%s '%s': out of memory", role, path);
    }
    return b;
}

static void fmt_time(const ASN1_TIME *t, char out[40])
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(out, 40, "%Y-%m-%d %H:%M:%S UTC", &tm);
    else
        snprintf(out, 40, "(unreadable date)");
}

static time_t to_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

/* A loaded certificate with its chain and key, all owned. */
struct keypair {
    X509 *leaf;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;
};

static void keypair_dispose(struct keypair *kp)
{
    X509_free(kp->leaf);
    sk_X509_pop_free(kp->chain, X509_free);
    EVP_PKEY_free(kp->key);
    *kp = (struct keypair){ 0 };
}

/*
 * Reads cert_path (leaf first, then its chain) and key_path; checks that
 * the key belongs to the leaf and that the leaf has not expired. Returns 0
 * or -1 with a message naming the file.
 */
static int load_keypair(const char *cert_path, const char *key_path, struct keypair *kp,
                        char *err, size_t errlen)
{
    char why[200], date[40];
    *kp = (struct keypair){ 0 };
    BIO *b = open_file("certificate", cert_path, err, errlen);
    if (!b)
        return -1;
    bool asked = false;
    ERR_clear_error();
    kp->leaf = PEM_read_bio_X509_AUX(b, NULL, no_password, &asked);
    if (!kp->leaf) {
        set_err(err, errlen, "certificate '%s': no PEM certificate could be read%s", cert_path,
                ossl_why(why));
        BIO_free(b);
        return -1;
    }
    kp->chain = sk_X509_new_null();
    if (!kp->chain) {
        BIO_free(b);
        set_err(err, errlen, "certificate '%s': out of memory", cert_path);
        goto fail;
    }
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, no_password, &asked)) != NULL) {
        if (!sk_X509_push(kp->chain, x)) {
            X509_free(x);
            BIO_free(b);
            set_err(err, errlen, "certificate '%s': out of memory", cert_path);
            goto fail;
        }
    }
    /* The loop ends on "no start line" at end of file, which is no error;
     * anything else (a damaged second block) is. */
    unsigned long e = ERR_peek_last_error();
    BIO_free(b);
    if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        set_err(err, errlen, "certificate '%s': damaged PEM block after the first "
                "certificate%s", cert_path, ossl_why(why));
        goto fail;
    }
    ERR_clear_error();

    if (X509_cmp_current_time(X509_get0_notAfter(kp->leaf)) < 0) {
        fmt_time(X509_get0_notAfter(kp->leaf), date);
        set_err(err, errlen, "certificate '%s': expired on %s", cert_path, date);
        goto fail;
    }

    b = open_file("private key", key_path, err, errlen);
    if (!b)
        goto fail;
    asked = false;
    kp->key = PEM_read_bio_PrivateKey(b, NULL, no_password, &asked);
    BIO_free(b);
    if (!kp->key) {
        if (asked)
            set_err(err, errlen, "private key '%s': is encrypted; encrypted keys are not "
                    "supported (store it unencrypted with restrictive permissions)", key_path);
        else
            set_err(err, errlen, "private key '%s': no PEM private key could be read%s",
                    key_path, ossl_why(why));
        ERR_clear_error();
        goto fail;
    }
    if (X509_check_private_key(kp->leaf, kp->key) != 1) {
        ERR_clear_error();
        set_err(err, errlen, "private key '%s' does not match certificate '%s'", key_path,
                cert_path);
        goto fail;
    }
    return 0;
fail:
    keypair_dispose(kp);
    return -1;
}

static int use_keypair(SSL_CTX *ctx, struct keypair *kp, const char *cert_path, char *err,
                       size_t errlen)
{
    char why[200];
    if (SSL_CTX_use_certificate(ctx, kp->leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, kp->key) != 1) {
        set_err(err, errlen, "certificate '%s': cannot be used%s", cert_path, ossl_why(why));
        return -1;
    }
    for (int i = 0; i < sk_X509_num(kp->chain); i++)
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(kp->chain, i)) != 1) {
            set_err(err, errlen, "certificate '%s': chain certificate %d cannot be used%s",
                    cert_path, i + 1, ossl_why(why));
            return -1;
        }
    return 0;
}

/* Loads trust anchors from a PEM bundle; the file must hold at least one. */
static int load_ca(SSL_CTX *ctx, const char *role, const char *path, char *err, size_t errlen)
{
    char why[200];
    BIO *b = open_file(role, path, err, errlen);   /* a clear errno message first */
    if (!b)
        return -1;
    BIO_free(b);
    if (SSL_CTX_load_verify_file(ctx, path) != 1) {
        set_err(err, errlen, "%s '%s': no CA certificate could be read%s", role, path,
                ossl_why(why));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ ciphers */

static bool is_tls13_suite(const char *n)
{
    return strncmp(n, "TLS_AES_", 8) == 0 || strncmp(n, "TLS_CHACHA20_", 13) == 0;
}

static int append(char **list, size_t *len, const char *name)
{
    size_t n = strlen(name);
    char *p = realloc(*list, *len + n + 2);
    if (!p)
        return -1;
    if (*len)
        p[(*len)++] = ':';
    memcpy(p + *len, name, n + 1);
    *len += n;
    *list = p;
    return 0;
}

/*
 * cipher_suites mixes TLS 1.3 suites (SSL_CTX_set_ciphersuites) and
 * TLS 1.2 ciphers (SSL_CTX_set_cipher_list), which OpenSSL keeps apart;
 * TLS 1.2 names may be IANA ("TLS_ECDHE_...") or OpenSSL ("ECDHE-...")
 * names. Each name is tried alone first because a list is accepted as long
 * as one entry is known, which would hide a typo.
 */
static int set_ciphers(SSL_CTX *ctx, const struct arc_listener_tls_conf *conf, char *err,
                       size_t errlen)
{
    char *l12 = NULL, *l13 = NULL;
    size_t n12 = 0, n13 = 0;
    int rc = -1;
    for (size_t i = 0; i < conf->n_cipher_suites; i++) {
        const char *name = conf->cipher_suites[i];
        if (is_tls13_suite(name)) {
            if (SSL_CTX_set_ciphersuites(ctx, name) != 1) {
                ERR_clear_error();
                set_err(err, errlen, "cipher_suites: unknown TLS 1.3 cipher suite '%s'", name);
                goto out;
            }
            if (append(&l13, &n13, name) < 0)
                goto oom;
            continue;
        }
        const char *os = name;
        if (strncmp(name, "TLS_", 4) == 0) {
            os = OPENSSL_cipher_name(name);
            if (!os || strcmp(os, "(NONE)") == 0) {
                set_err(err, errlen, "cipher_suites: unknown cipher suite '%s'", name);
                goto out;
            }
        }
        if (SSL_CTX_set_cipher_list(ctx, os) != 1) {
            ERR_clear_error();
            set_err(err, errlen, "cipher_suites: unknown TLS 1.2 cipher '%s'", name);
            goto out;
        }
        if (append(&l12, &n12, os) < 0)
            goto oom;
    }
    if (conf->n_cipher_suites && !n12 && conf->min_version == ARC_TLS_V12 &&
        conf->max_version == ARC_TLS_V12) {
        set_err(err, errlen, "cipher_suites: lists no TLS 1.2 cipher but only TLS 1.2 is enabled");
        goto out;
    }
    if (conf->n_cipher_suites && !n13 && conf->min_version == ARC_TLS_V13) {
        set_err(err, errlen, "cipher_suites: lists no TLS 1.3 suite but only TLS 1.3 is enabled");
        goto out;
    }
    /* A family not mentioned keeps OpenSSL's defaults. */
    if ((l13 && SSL_CTX_set_ciphersuites(ctx, l13) != 1) ||
        (l12 && SSL_CTX_set_cipher_list(ctx, l12) != 1)) {
        ERR_clear_error();
        set_err(err, errlen, "cipher_suites: the list was refused by OpenSSL");
        goto out;
    }
    if (!l13)
        SSL_CTX_set_ciphersuites(ctx, OSSL_default_ciphersuites());
    if (!l12)
        SSL_CTX_set_cipher_list(ctx, OSSL_default_cipher_list());
    rc = 0;
    goto out;
oom:
    set_err(err, errlen, "cipher_suites: out of memory");
out:
    free(l12);
    free(l13);
    return rc;
}

/* ------------------------------------------------------------ server */

static int tls_version(enum arc_tls_version v)
{
    return v == ARC_TLS_V13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/* Longest matching "*.suffix" wins, like route hosts; the suffix needs a
 * non-empty label in front of it. */
static const struct arc_tls_srv_cert *pick_cert(const struct arc_tls_server *s, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < s->n_certs; i++)
        if (s->certs[i].sni && !s->certs[i].wildcard && strcasecmp(s->certs[i].sni, name) == 0)
            return &s->certs[i];
    const struct arc_tls_srv_cert *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < s->n_certs; i++) {
        if (!s->certs[i].wildcard)
            continue;
        const char *suffix = s->certs[i].sni + 1;           /* ".example.com" */
        size_t sl = strlen(suffix);
        if (n > sl && strcasecmp(name + n - sl, suffix) == 0 && sl > best_len) {
            best = &s->certs[i];
            best_len = sl;
        }
    }
    return best ? best : &s->certs[0];
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct arc_tls_server *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_NOACK;
    const struct arc_tls_srv_cert *c = pick_cert(s, name);
    if (c->ctx != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, c->ctx);
    return SSL_TLSEXT_ERR_OK;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const struct arc_tls_server *s = arg;
    unsigned char *sel;
    unsigned char sel_len;
    /* Server preference order; no overlap means no ALPN answer rather than
     * a fatal alert, so clients with odd lists still get HTTP/1.1. */
    if (SSL_select_next_proto(&sel, &sel_len, s->alpn, (unsigned)s->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    const struct arc_tls_server *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct arc_tls_keyset set;
    arc_tls__keys_read(s->keys, &set);
    const struct arc_tls_ticket_key *k = NULL;
    int rc;
    if (enc) {
        k = &set.k[0];
        if (RAND_bytes(iv, 16) != 1) {
            rc = -1;
            goto out;
        }
        memcpy(key_name, k->name, 16);
        rc = 1;
    } else {
        size_t i;
        for (i = 0; i < set.n; i++)
            if (CRYPTO_memcmp(set.k[i].name, key_name, 16) == 0)
                break;
        if (i == set.n) {
            rc = 0;             /* rotated out: full handshake, new ticket */
            goto out;
        }
        k = &set.k[i];
        /* 2: valid, and issue a new ticket. Always for TLS 1.3, whose
         * clients use a ticket once (RFC 8446 §C.4): with 1, OpenSSL sends
         * none on a resumed connection and every other connection would
         * be a full handshake. For TLS 1.2, only to move an old key's
         * ticket under the current key. */
        rc = i == 0 && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv, enc) != 1 ||
        EVP_MAC_CTX_set_params(hctx, params) != 1)
        rc = -1;
out:
    OPENSSL_cleanse(&set, sizeof(set));
    return rc;
}

/* Sessions are bound to the listener's client-certificate policy: a ticket
 * from a listener that does not ask for certificates must not resume on
 * one that requires them (OpenSSL refuses a session whose id context
 * differs). */
static void sid_context(const struct arc_listener_tls_conf *conf, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        memset(out, 0, 32);
        memcpy(out, "arc", 3);
        EVP_MD_CTX_free(md);
        return;
    }
    char flags[8] = { 'a', 'r', 'c', conf->client_auth ? '1' : '0',
                      conf->client_auth_required ? '1' : '0', 0, 0, 0 };
    EVP_DigestUpdate(md, flags, sizeof(flags));
    if (conf->client_ca_pem)
        EVP_DigestUpdate(md, conf->client_ca_pem, strlen(conf->client_ca_pem) + 1);
    for (size_t i = 0; i < conf->n_certs; i++)
        EVP_DigestUpdate(md, conf->certs[i].cert_pem, strlen(conf->certs[i].cert_pem) + 1);
    EVP_DigestFinal_ex(md, out, &n);
    EVP_MD_CTX_free(md);
}

static SSL_CTX *server_ctx(struct arc_tls_server *s, const struct arc_listener_tls_conf *conf,
                           const struct arc_tls_cert_conf *cc, const unsigned char sid[32],
                           time_t *not_after, char *err, size_t errlen)
{
    char why[200];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create a TLS context%s", ossl_why(why));
        return NULL;
    }
    struct keypair kp;
    SSL_CTX_set_app_data(ctx, s);
    SSL_CTX_set_min_proto_version(ctx, tls_version(conf->min_version));
    SSL_CTX_set_max_proto_version(ctx, tls_version(conf->max_version));
    /* No client-initiated renegotiation (TLS 1.2): it costs the server a
     * handshake for a few bytes of client work. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                        SSL_OP_NO_COMPRESSION);
    /* Idle keep-alive connections give their 2 × ~17 KiB buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (set_ciphers(ctx, conf, err, errlen) < 0)
        goto fail;
    SSL_CTX_set_session_id_context(ctx, sid, 32);
    /* Stateless tickets only: a server-side cache would be per worker and
     * take a lock per handshake. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (conf->session_resumption) {
        SSL_CTX_set_num_tickets(ctx, 1);
        if (s->keys)
            SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, s);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, s);
    if (conf->client_auth) {
        if (load_ca(ctx, "client_auth.ca_pem", conf->client_ca_pem, err, errlen) < 0)
            goto fail;
        /* Tell clients which CAs we accept (certificate_authorities). */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(conf->client_ca_pem);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (conf->client_auth_required
                                                   ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    }
    if (load_keypair(cc->cert_pem, cc->key_pem, &kp, err, errlen) < 0)
        goto fail;
    *not_after = to_time(X509_get0_notAfter(kp.leaf));
    int rc = use_keypair(ctx, &kp, cc->cert_pem, err, errlen);
    keypair_dispose(&kp);
    if (rc < 0)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int alpn_wire(const char *const *names, size_t n, unsigned char **out, size_t *len,
                     char *err, size_t errlen)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l == 0 || l > 255) {
            set_err(err, errlen, "ALPN protocol name '%s' must be 1-255 bytes", names[i]);
            return -1;
        }
        total += 1 + l;
    }
    unsigned char *w = malloc(total ? total : 1);
    if (!w) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        w[o++] = (unsigned char)l;
        memcpy(w + o, names[i], l);
        o += l;
    }
    *out = w;
    *len = total;
    return 0;
}

static const char *const default_alpn[] = { "h2", "http/1.1" };

struct arc_tls_server *arc_tls_server_new(const struct arc_listener_tls_conf *conf,
                                          const struct arc_tls_server_opts *opts,
                                          char *err, size_t errlen)
{
    if (!conf || conf->n_certs == 0) {
        set_err(err, errlen, "a TLS listener needs at least one certificate");
        return NULL;
    }
    struct arc_tls_server *s = calloc(1, sizeof(*s));
    if (!s || !(s->certs = calloc(conf->n_certs, sizeof(*s->certs)))) {
        free(s);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    const char *const *alpn = opts && opts->alpn ? opts->alpn : default_alpn;
    size_t n_alpn = opts && opts->alpn ? opts->n_alpn : ARC_ARRAY_LEN(default_alpn);
    if (alpn_wire(alpn, n_alpn, &s->alpn, &s->alpn_len, err, errlen) < 0)
        goto fail;
    if (opts && opts->ticket_keys && conf->session_resumption) {
        s->keys = opts->ticket_keys;
        arc_tls_ticket_keys_ref(s->keys);
    }
    unsigned char sid[32];
    sid_context(conf, sid);
    for (size_t i = 0; i < conf->n_certs; i++) {
        const struct arc_tls_cert_conf *cc = &conf->certs[i];
        struct arc_tls_srv_cert *c = &s->certs[i];
        if (cc->sni && !(c->sni = strdup(cc->sni))) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
        s->n_certs = i + 1;
        c->wildcard = c->sni && c->sni[0] == '*' && c->sni[1] == '.';
        char e[400];
        c->ctx = server_ctx(s, conf, cc, sid, &c->not_after, e, sizeof(e));
        if (!c->ctx) {
            set_err(err, errlen, "certificates[%zu]: %s", i, e);
            goto fail;
        }
    }
    ERR_clear_error();
    return s;
fail:
    ERR_clear_error();
    arc_tls_server_free(s);
    return NULL;
}

struct arc_tls_server *arc_tls_server_ref(struct arc_tls_server *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void arc_tls_server_free(struct arc_tls_server *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n_certs; i++) {
        SSL_CTX_free(s->certs[i].ctx);
        free(s->certs[i].sni);
    }
    free(s->certs);
    free(s->alpn);
    arc_tls_ticket_keys_unref(s->keys);
    free(s);
}

size_t arc_tls_server_cert_count(const struct arc_tls_server *s)
{
    return s->n_certs;
}

const char *arc_tls_server_cert_sni(const struct arc_tls_server *s, size_t i)
{
    ARC_ASSERT(i < s->n_certs);
    return s->certs[i].sni ? s->certs[i].sni : "";
}

time_t arc_tls_server_cert_not_after(const struct arc_tls_server *s, size_t i)
{
    ARC_ASSERT(i < s->n_certs);
    return s->certs[i].not_after;
}

/* ------------------------------------------------------------ client */

SSL_SESSION *arc_tls__client_session_get(struct arc_tls_client *c, const char *key)
{
    SSL_SESSION *s = NULL;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n_slots; i++)
        if (strcmp(c->slots[i].key, key) == 0) {
            if (SSL_SESSION_is_resumable(c->slots[i].sess) && SSL_SESSION_up_ref(c->slots[i].sess))
                s = c->slots[i].sess;
            break;
        }
    pthread_mutex_unlock(&c->lock);
    return s;
}

/* Takes over the caller's reference to s. */
void arc_tls__client_session_put(struct arc_tls_client *c, const char *key, SSL_SESSION *s)
{
    pthread_mutex_lock(&c->lock);
    struct arc_tls_session_slot *slot = NULL;
    for (size_t i = 0; i < c->n_slots && !slot; i++)
        if (strcmp(c->slots[i].key, key) == 0)
            slot = &c->slots[i];
    if (!slot && c->n_slots == MAX_CLIENT_SESSIONS) {
        slot = &c->slots[0];
        for (size_t i = 1; i < c->n_slots; i++)
            if (c->slots[i].used < slot->used)
                slot = &c->slots[i];
        char *k = strdup(key);
        if (!k) {
            SSL_SESSION_free(s);
            goto out;
        }
        free(slot->key);
        slot->key = k;
    }
    if (!slot) {
        if (c->n_slots == c->cap_slots) {
            size_t cap = c->cap_slots ? c->cap_slots * 2 : 8;
            struct arc_tls_session_slot *v = realloc(c->slots, cap * sizeof(*v));
            if (!v) {
                SSL_SESSION_free(s);
                goto out;
            }
            c->slots = v;
            c->cap_slots = cap;
        }
        char *k = strdup(key);
        if (!k) {
            SSL_SESSION_free(s);
            goto out;
        }
        slot = &c->slots[c->n_slots++];
        *slot = (struct arc_tls_session_slot){ .key = k };
    }
    SSL_SESSION_free(slot->sess);
    slot->sess = s;
    slot->used = ++c->clock;
out:
    pthread_mutex_unlock(&c->lock);
}

size_t arc_tls_client_cached_sessions(struct arc_tls_client *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->n_slots;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* The cache keeps a copy: the session object OpenSSL hands over is also
 * the connection's current session, and freeing a connection that was not
 * shut down with close_notify marks that object not resumable. Upstream
 * connections are routinely closed that way (idle timeout), which would
 * make every cached session useless. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct arc_tls_conn *c = SSL_get_app_data(ssl);
    if (!c || !c->_client || !c->_session_key)
        return 0;
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy)
        arc_tls__client_session_put(c->_client, c->_session_key, copy);
    return 0;                   /* OpenSSL keeps its own reference */
}

struct arc_tls_client *arc_tls_client_new(const struct arc_upstream_conf *up, char *err,
                                          size_t errlen)
{
    char why[200];
    const struct arc_upstream_tls_conf *t = up ? up->tls : NULL;
    if (!t) {
        set_err(err, errlen, "upstream has no tls section");
        return NULL;
    }
    struct arc_tls_client *c = calloc(1, sizeof(*c));
    if (!c) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->insecure = t->insecure;
    if (t->server_name) {
        unsigned char buf[16];
        c->server_name_is_ip = inet_pton(AF_INET, t->server_name, buf) == 1 ||
                               inet_pton(AF_INET6, t->server_name, buf) == 1;
        if (!(c->server_name = strdup(t->server_name))) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) {
        set_err(err, errlen, "cannot create a TLS context%s", ossl_why(why));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
    if (!t->insecure) {
        if (t->ca_pem) {
            if (load_ca(c->ctx, "tls.ca_pem", t->ca_pem, err, errlen) < 0)
                goto fail;
        } else {
            const char *bundle = getenv(X509_get_default_cert_file_env());
            if (!bundle)
                bundle = X509_get_default_cert_file();
            if (load_ca(c->ctx, "system CA bundle", bundle, err, errlen) < 0)
                goto fail;
        }
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (t->client_cert_pem) {
        struct keypair kp;
        char e[400];
        if (load_keypair(t->client_cert_pem, t->client_key_pem, &kp, e, sizeof(e)) < 0) {
            set_err(err, errlen, "tls.client_cert_pem: %s", e);
            goto fail;
        }
        int rc = use_keypair(c->ctx, &kp, t->client_cert_pem, err, errlen);
        keypair_dispose(&kp);
        if (rc < 0)
            goto fail;
    }
    static const unsigned char h1[] = "\x08http/1.1", h2[] = "\x02h2";
    int arc = up->protocol == ARC_UP_HTTP2 ? SSL_CTX_set_alpn_protos(c->ctx, h2, sizeof(h2) - 1)
                                           : SSL_CTX_set_alpn_protos(c->ctx, h1, sizeof(h1) - 1);
    if (arc != 0) {             /* this one returns 0 on success */
        set_err(err, errlen, "cannot set ALPN%s", ossl_why(why));
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ctx, new_session_cb);
    ERR_clear_error();
    return c;
fail:
    ERR_clear_error();
    arc_tls_client_free(c);
    return NULL;
}

void arc_tls_client_free(struct arc_tls_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_slots; i++) {
        free(c->slots[i].key);
        SSL_SESSION_free(c->slots[i].sess);
    }
    free(c->slots);
    SSL_CTX_free(c->ctx);
    free(c->server_name);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
