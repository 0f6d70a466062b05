/*
 * Helpers shared by the TLS unit tests: a throw-away PKI made in-process
 * with OpenSSL (EC P-256 keys, one CA and another unrelated CA, leaf
 * certificates for several names, one expired, one client certificate)
 * written to a fresh temporary directory, and a shuttle that moves bytes
 * between two struct arc_tls_conn in memory, the way a worker would move
 * them between sockets.
 */
#ifndef ARC_TLS_TEST_H
#define ARC_TLS_TEST_H

#include <dirent.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <unistd.h>

#include "test.h"
#include "tls/tls.h"

/* ------------------------------------------------------------ PKI */

static char g_dir[64];

/* Path of `name` in the test directory (16 rotating buffers). */
static inline const char *P(const char *name)
{
    static char bufs[16][128];
    static unsigned i;
    char *b = bufs[i++ % 16];
    snprintf(b, 128, "%s/%s", g_dir, name);
    return b;
}

static inline EVP_PKEY *gen_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k) {
        fprintf(stderr, "EVP_EC_gen failed\n");
        exit(2);
    }
    return k;
}

static inline void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e || !X509_add_ext(x, e, -1)) {
        fprintf(stderr, "extension %d=%s failed\n", nid, value);
        exit(2);
    }
    X509_EXTENSION_free(e);
}

/* A certificate for `key` named `cn`, valid from now+nb_days to
 * now+na_days, signed by (issuer, ikey) or self-signed when issuer is NULL.
 * `san` is an X509v3 subjectAltName value ("DNS:a,IP:127.0.0.1") or NULL. */
static inline X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
                              EVP_PKEY *ikey, bool ca, long nb_days, long na_days)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), nb_days * 86400L);
    X509_gmtime_adj(X509_getm_notAfter(x), na_days * 86400L);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Arc tests", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer ? issuer : x;
    if (ca) {
        add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, iss, NID_basic_constraints, "CA:FALSE");
    }
    add_ext(x, iss, NID_subject_key_identifier, "hash");
    if (san)
        add_ext(x, iss, NID_subject_alt_name, san);
    if (!X509_sign(x, ikey ? ikey : key, EVP_sha256())) {
        fprintf(stderr, "X509_sign failed\n");
        exit(2);
    }
    return x;
}

static inline void write_cert(const char *name, X509 *x, X509 *chain)
{
    FILE *f = fopen(P(name), "w");
    if (!f || !PEM_write_X509(f, x) || (chain && !PEM_write_X509(f, chain))) {
        fprintf(stderr, "cannot write %s\n", name);
        exit(2);
    }
    fclose(f);
}

static inline void write_key(const char *name, EVP_PKEY *k, const char *pass)
{
    FILE *f = fopen(P(name), "w");
    int ok = f && (pass ? PEM_write_PrivateKey(f, k, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)pass)
                        : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
    if (!ok) {
        fprintf(stderr, "cannot write %s\n", name);
        exit(2);
    }
    fclose(f);
}

static inline void write_text(const char *name, const char *text)
{
    FILE *f = fopen(P(name), "w");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", name);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* Leaf certificate + key signed by the CA, as NAME.pem / NAME.key. */
static inline void leaf(const char *stem, const char *cn, const char *san, X509 *ca,
                        EVP_PKEY *cakey, long nb, long na)
{
    char n1[64], n2[64];
    EVP_PKEY *k = gen_key();
    X509 *x = make_cert(k, cn, san, ca, cakey, false, nb, na);
    snprintf(n1, sizeof(n1), "%s.pem", stem);
    snprintf(n2, sizeof(n2), "%s.key", stem);
    write_cert(n1, x, NULL);
    write_key(n2, k, NULL);
    X509_free(x);
    EVP_PKEY_free(k);
}

/*
 * Files made:
 *   ca.pem, other-ca.pem          trust anchors (unrelated to each other)
 *   default.{pem,key}             default.test
 *   api.{pem,key}                 api.example.com, IP 127.0.0.1
 *   wild.{pem,key}                *.example.com
 *   deep.{pem,key}                *.b.example.com
 *   chain.pem                     api leaf followed by the CA (a chain file)
 *   expired.{pem,key}             expired yesterday
 *   client.{pem,key}              client-1 (signed by ca)
 *   stranger.{pem,key}            client signed by other-ca
 *   enc.key                       api's key, encrypted
 *   garbage.pem                   a PEM block that is not base64
 */
static inline void pki_make(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/arc-tls-test-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        exit(2);
    }
    EVP_PKEY *cak = gen_key(), *ocak = gen_key();
    X509 *ca = make_cert(cak, "Arc Test CA", NULL, NULL, NULL, true, -1, 30);
    X509 *oca = make_cert(ocak, "Other CA", NULL, NULL, NULL, true, -1, 30);
    write_cert("ca.pem", ca, NULL);
    write_cert("other-ca.pem", oca, NULL);
    leaf("default", "default.test", "DNS:default.test", ca, cak, -1, 30);
    leaf("wild", "*.example.com", "DNS:*.example.com", ca, cak, -1, 30);
    leaf("deep", "*.b.example.com", "DNS:*.b.example.com", ca, cak, -1, 30);
    leaf("expired", "old.example.com", "DNS:old.example.com", ca, cak, -10, -1);
    leaf("client", "client-1", NULL, ca, cak, -1, 30);
    leaf("stranger", "stranger", NULL, oca, ocak, -1, 30);
    /* api: also written as a chain file and with an encrypted key */
    EVP_PKEY *k = gen_key();
    X509 *x = make_cert(k, "api.example.com", "DNS:api.example.com,IP:127.0.0.1", ca, cak, false,
                        -1, 30);
    write_cert("api.pem", x, NULL);
    write_key("api.key", k, NULL);
    write_cert("chain.pem", x, ca);
    write_key("enc.key", k, "secret");
    X509_free(x);
    EVP_PKEY_free(k);
    write_text("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"
                              "-----END CERTIFICATE-----\n");
    X509_free(ca);
    X509_free(oca);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(ocak);
}

static inline void pki_remove(void)
{
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            unlink(P(e->d_name));
    if (d)
        closedir(d);
    rmdir(g_dir);
}

/* ------------------------------------------------------------ configs */

/* A listener tls section held in test storage (no heap, nothing to free). */
struct tconf {
    struct arc_listener_tls_conf t;
    struct arc_tls_cert_conf certs[4];
    char *ciphers[4];
};

static inline void tconf_init(struct tconf *c)
{
    memset(c, 0, sizeof(*c));
    c->t.certs = c->certs;
    c->t.min_version = ARC_TLS_V12;
    c->t.max_version = ARC_TLS_V13;
    c->t.session_resumption = true;
    c->t.cipher_suites = c->ciphers;
}

/* Appends a certificate; paths are copied into static storage. */
static inline void tconf_cert(struct tconf *c, const char *sni, const char *stem)
{
    static char store[64][128];
    static unsigned used;
    struct arc_tls_cert_conf *cc = &c->certs[c->t.n_certs++];
    cc->sni = sni ? strcpy(store[used++ % 64], sni) : NULL;
    snprintf(store[used % 64], 128, "%s/%s.pem", g_dir, stem);
    cc->cert_pem = store[used++ % 64];
    snprintf(store[used % 64], 128, "%s/%s.key", g_dir, stem);
    cc->key_pem = store[used++ % 64];
}

struct uconf {
    struct arc_upstream_conf u;
    struct arc_upstream_tls_conf t;
};

/* An upstream trusting ca.pem (if ca), checking `server_name`. */
static inline void uconf_init(struct uconf *c, const char *ca, const char *server_name)
{
    static char store[8][128];
    static unsigned used;
    memset(c, 0, sizeof(*c));
    c->u.name = (char *)"up";
    c->u.tls = &c->t;
    if (ca)
        c->t.ca_pem = strcpy(store[used++ % 8], P(ca));
    c->t.server_name = server_name ? strcpy(store[used++ % 8], server_name) : NULL;
}

static inline void uconf_client_cert(struct uconf *c, const char *stem)
{
    static char store[8][128];
    static unsigned used;
    snprintf(store[used % 8], 128, "%s/%s.pem", g_dir, stem);
    c->t.client_cert_pem = store[used++ % 8];
    snprintf(store[used % 8], 128, "%s/%s.key", g_dir, stem);
    c->t.client_key_pem = store[used++ % 8];
}

static inline struct arc_tls_server *server_or_die(const struct tconf *c,
                                                   const struct arc_tls_server_opts *o)
{
    char err[512];
    struct arc_tls_server *s = arc_tls_server_new(&c->t, o, err, sizeof(err));
    if (!s)
        fprintf(stderr, "arc_tls_server_new: %s\n", err);
    CHECK(s != NULL);
    return s;
}

static inline struct arc_tls_client *client_or_die(const struct uconf *c)
{
    char err[512];
    struct arc_tls_client *cl = arc_tls_client_new(&c->u, err, sizeof(err));
    if (!cl)
        fprintf(stderr, "arc_tls_client_new: %s\n", err);
    CHECK(cl != NULL);
    return cl;
}

/* ------------------------------------------------------------ shuttle */

/* Moves all of from's pending output into `to`, `step` bytes per feed
 * (the way a socket delivers it in pieces). Returns the bytes moved. */
static inline size_t move(struct arc_tls_conn *from, struct arc_tls_conn *to, size_t step)
{
    size_t total = 0;
    const void *p;
    size_t n;
    while ((n = arc_tls_conn_out_peek(from, &p)) > 0) {
        for (size_t o = 0; o < n; o += step) {
            size_t k = n - o < step ? n - o : step;
            if (arc_tls_conn_feed(to, (const char *)p + o, k) != 0) {
                fprintf(stderr, "feed failed\n");
                exit(2);
            }
        }
        arc_tls_conn_out_consume(from, n);
        total += n;
    }
    return total;
}

/* Runs both handshakes to completion or failure. */
static inline void handshake(struct arc_tls_conn *s, struct arc_tls_conn *c, enum arc_tls_hs *rs,
                             enum arc_tls_hs *rc)
{
    *rs = *rc = ARC_TLS_HS_AGAIN;
    for (int i = 0; i < 20; i++) {
        *rc = arc_tls_conn_handshake(c);
        size_t m1 = move(c, s, SIZE_MAX);
        *rs = arc_tls_conn_handshake(s);
        size_t m2 = move(s, c, SIZE_MAX);
        if (*rs != ARC_TLS_HS_AGAIN && *rc != ARC_TLS_HS_AGAIN && !m1 && !m2)
            return;
        if ((*rs == ARC_TLS_HS_FAILED || *rc == ARC_TLS_HS_FAILED) && !m1 && !m2)
            return;
    }
}

/* Reads everything available from c (processing TLS 1.3 tickets on the
 * way) into buf; returns the last status. */
static inline enum arc_tls_io drain(struct arc_tls_conn *c, char *buf, size_t cap, size_t *got)
{
    enum arc_tls_io st;
    size_t n;
    *got = 0;
    while ((st = arc_tls_conn_read(c, buf ? buf + *got : (char[64]){ 0 },
                                   buf ? cap - *got : 64, &n)) == ARC_TLS_IO_OK)
        *got += n;
    return st;
}

/* A server and a client connection over the given contexts. */
struct duo {
    struct arc_tls_conn s, c;
    enum arc_tls_hs rs, rc;
};

static inline void duo_open(struct duo *d, struct arc_tls_server *srv, struct arc_tls_client *cl,
                            const char *session_key)
{
    CHECK_INT(arc_tls_conn_init_server(&d->s, srv), 0);
    CHECK_INT(arc_tls_conn_init_client(&d->c, cl, session_key), 0);
    handshake(&d->s, &d->c, &d->rs, &d->rc);
}

/* Lets the client see what the server sent after its handshake (TLS 1.3
 * session tickets) and vice versa. */
static inline void duo_settle(struct duo *d)
{
    size_t got;
    move(&d->s, &d->c, SIZE_MAX);
    drain(&d->c, NULL, 0, &got);
    move(&d->c, &d->s, SIZE_MAX);
    drain(&d->s, NULL, 0, &got);
}

static inline void duo_close(struct duo *d)
{
    arc_tls_conn_dispose(&d->s);
    arc_tls_conn_dispose(&d->c);
}

#endif
