/* Proves that server and client contexts are built from configuration the
 * way docs/tls.md says — certificate files checked up front with messages
 * naming the file and the reason, SNI choosing exact then wildcard then
 * default, ALPN, versions and cipher suites, client certificates required
 * or optional, upstream verification by CA, host name, IP or not at all —
 * by running real handshakes between two in-memory connections. */
#include "tls_test.h"

static void check_server_err(const struct tconf *c, const char *want1, const char *want2)
{
    char err[512] = "";
    struct arc_tls_server *s = arc_tls_server_new(&c->t, NULL, err, sizeof(err));
    t_checks++;
    if (s || !strstr(err, want1) || (want2 && !strstr(err, want2))) {
        t_failures++;
        fprintf(stderr, "expected an error with \"%s\" and \"%s\", got %s: \"%s\"\n", want1,
                want2 ? want2 : "", s ? "a context" : "NULL", err);
    }
    arc_tls_server_free(s);
    CHECK_INT(ERR_peek_error(), 0);     /* the thread's error queue is left empty */
}

static void test_server_config_errors(void)
{
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "does-not-exist");
    check_server_err(&c, "certificates[0]: certificate '", "does-not-exist.pem': cannot open: No "
                     "such file or directory");

    tconf_init(&c);
    tconf_cert(&c, NULL, "garbage");
    check_server_err(&c, "garbage.pem': no PEM certificate could be read", NULL);

    /* the key file is a certificate: no key in it */
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.certs[0].key_pem = (char *)P("api.pem");
    check_server_err(&c, "private key '", "api.pem': no PEM private key could be read");

    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.certs[0].key_pem = (char *)P("default.key");
    check_server_err(&c, "default.key' does not match certificate '", "api.pem'");

    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.certs[0].key_pem = (char *)P("enc.key");
    check_server_err(&c, "enc.key': is encrypted; encrypted keys are not supported", NULL);

    tconf_init(&c);
    tconf_cert(&c, NULL, "default");
    tconf_cert(&c, "old.example.com", "expired");
    check_server_err(&c, "certificates[1]: certificate '", "expired.pem': expired on 20");

    tconf_init(&c);
    tconf_cert(&c, NULL, "default");
    c.t.client_auth = true;
    c.t.client_ca_pem = (char *)P("no-ca.pem");
    check_server_err(&c, "client_auth.ca_pem '", "no-ca.pem': cannot open: No such file");

    tconf_init(&c);
    tconf_cert(&c, NULL, "default");
    c.t.client_auth = true;
    c.t.client_ca_pem = (char *)P("default.key");
    check_server_err(&c, "client_auth.ca_pem '", "default.key': no CA certificate could be read");

    tconf_init(&c);
    tconf_cert(&c, NULL, "default");
    c.ciphers[c.t.n_cipher_suites++] = (char *)"ECDHE-ECDSA-AES128-GCM-SHA256";
    c.ciphers[c.t.n_cipher_suites++] = (char *)"ECDHE-ECDSA-AES129-GCM-SHA256";
    check_server_err(&c, "cipher_suites: unknown TLS 1.2 cipher 'ECDHE-ECDSA-AES129-GCM-SHA256'", NULL);

    tconf_init(&c);
    tconf_cert(&c, NULL, "default");
    c.ciphers[c.t.n_cipher_suites++] = (char *)"TLS_AES_512_GCM_SHA384";
    check_server_err(&c, "unknown TLS 1.3 cipher suite 'TLS_AES_512_GCM_SHA384'", NULL);

    tconf_init(&c);
    tconf_cert(&c, NULL, "default");
    c.t.min_version = ARC_TLS_V13;
    c.ciphers[c.t.n_cipher_suites++] = (char *)"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    check_server_err(&c, "lists no TLS 1.3 suite but only TLS 1.3 is enabled", NULL);

    /* a chain file loads; IANA names are accepted for TLS 1.2 */
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.certs[0].cert_pem = (char *)P("chain.pem");
    c.ciphers[c.t.n_cipher_suites++] = (char *)"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    struct arc_tls_server *s = server_or_die(&c, NULL);
    arc_tls_server_free(s);
}

static void test_client_config_errors(void)
{
    char err[512];
    struct uconf u;
    uconf_init(&u, "missing-ca.pem", "api.example.com");
    CHECK(arc_tls_client_new(&u.u, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "tls.ca_pem '") && strstr(err, "missing-ca.pem': cannot open"));

    uconf_init(&u, "ca.pem", "api.example.com");
    uconf_client_cert(&u, "expired");
    CHECK(arc_tls_client_new(&u.u, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "tls.client_cert_pem: certificate '") && strstr(err, "expired.pem': expired on"));

    uconf_init(&u, "ca.pem", "api.example.com");
    uconf_client_cert(&u, "client");
    u.t.client_key_pem = (char *)P("api.key");
    CHECK(arc_tls_client_new(&u.u, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "api.key' does not match certificate '") != NULL);

    struct arc_upstream_conf plain = { .name = (char *)"p" };
    CHECK(arc_tls_client_new(&plain, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "no tls section") != NULL);
    CHECK_INT(ERR_peek_error(), 0);
}

static void test_cert_expiry_exposed(void)
{
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "default");
    tconf_cert(&c, "api.example.com", "api");
    struct arc_tls_server *s = server_or_die(&c, NULL);
    if (!s)
        return;
    CHECK_INT(arc_tls_server_cert_count(s), 2);
    CHECK_STR(arc_tls_server_cert_sni(s, 0), "");
    CHECK_STR(arc_tls_server_cert_sni(s, 1), "api.example.com");
    /* made to expire in 30 days */
    long left = (long)(arc_tls_server_cert_not_after(s, 1) - time(NULL));
    CHECK(left > 30 * 86400L - 120 && left <= 30 * 86400L + 5);
    arc_tls_server_free(s);
}

/* Which certificate did the server present? Its subject CN, via the
 * client's verified peer subject. */
static void check_sni(struct arc_tls_server *srv, const char *sni, const char *want_cn)
{
    struct uconf u;
    uconf_init(&u, "ca.pem", sni);
    u.t.insecure = true;        /* we only look at what was presented */
    struct arc_tls_client *cl = client_or_die(&u);
    if (!cl)
        return;
    struct duo d;
    duo_open(&d, srv, cl, NULL);
    CHECK_INT(d.rs, ARC_TLS_HS_DONE);
    CHECK_INT(d.rc, ARC_TLS_HS_DONE);
    X509 *x = SSL_get0_peer_certificate(d.c._ssl);
    char cn[128] = "";
    if (x)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    t_checks++;
    if (strcmp(cn, want_cn) != 0) {
        t_failures++;
        fprintf(stderr, "SNI %s: got certificate %s, expected %s\n", sni ? sni : "(none)", cn,
                want_cn);
    }
    if (sni)
        CHECK_STR(arc_tls_conn_sni(&d.s), sni);
    else
        CHECK(arc_tls_conn_sni(&d.s) == NULL);
    duo_close(&d);
    arc_tls_client_free(cl);
}

static void test_sni_selection(void)
{
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "default");
    tconf_cert(&c, "*.example.com", "wild");
    tconf_cert(&c, "api.example.com", "api");
    tconf_cert(&c, "*.b.example.com", "deep");
    struct arc_tls_server *s = server_or_die(&c, NULL);
    if (!s)
        return;
    check_sni(s, "api.example.com", "api.example.com");     /* exact beats wildcard */
    check_sni(s, "API.Example.COM", "api.example.com");     /* case-insensitive */
    check_sni(s, "www.example.com", "*.example.com");       /* wildcard */
    check_sni(s, "x.b.example.com", "*.b.example.com");     /* longest suffix wins */
    check_sni(s, "example.com", "default.test");            /* needs a label in front */
    check_sni(s, "other.test", "default.test");             /* default */
    check_sni(s, NULL, "default.test");                     /* no SNI at all */
    arc_tls_server_free(s);
}

static void check_alpn(struct arc_tls_server *srv, enum arc_up_protocol proto, const char *want)
{
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    u.u.protocol = proto;
    struct arc_tls_client *cl = client_or_die(&u);
    if (!cl)
        return;
    struct duo d;
    duo_open(&d, srv, cl, NULL);
    CHECK_INT(d.rs, ARC_TLS_HS_DONE);
    CHECK_INT(d.rc, ARC_TLS_HS_DONE);
    if (want) {
        CHECK_STR(arc_tls_conn_alpn(&d.s), want);
        CHECK_STR(arc_tls_conn_alpn(&d.c), want);
    } else {
        CHECK(arc_tls_conn_alpn(&d.s) == NULL);
        CHECK(arc_tls_conn_alpn(&d.c) == NULL);
    }
    duo_close(&d);
    arc_tls_client_free(cl);
}

static void test_alpn(void)
{
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    struct arc_tls_server *s = server_or_die(&c, NULL);     /* h2, http/1.1 */
    if (!s)
        return;
    check_alpn(s, ARC_UP_HTTP2, "h2");
    check_alpn(s, ARC_UP_HTTP1, "http/1.1");
    arc_tls_server_free(s);

    /* a listener offering only http/1.1: an h2-only client gets no ALPN
     * (and the handshake still succeeds) */
    static const char *const h1_only[] = { "http/1.1" };
    struct arc_tls_server_opts o = { .alpn = h1_only, .n_alpn = 1 };
    s = server_or_die(&c, &o);
    if (!s)
        return;
    check_alpn(s, ARC_UP_HTTP1, "http/1.1");
    check_alpn(s, ARC_UP_HTTP2, NULL);
    arc_tls_server_free(s);
}

/* Handshake with the server limited to [min,max]; the client's own
 * maximum may be lowered through its SSL to test a version mismatch. */
static void check_version(enum arc_tls_version min, enum arc_tls_version max, int client_max,
                          const char *want, enum arc_tls_fail want_fail)
{
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.t.min_version = min;
    c.t.max_version = max;
    struct arc_tls_server *s = server_or_die(&c, NULL);
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    struct arc_tls_client *cl = client_or_die(&u);
    if (!s || !cl)
        goto out;
    struct duo d;
    CHECK_INT(arc_tls_conn_init_server(&d.s, s), 0);
    CHECK_INT(arc_tls_conn_init_client(&d.c, cl, NULL), 0);
    if (client_max)
        SSL_set_max_proto_version(d.c._ssl, client_max);
    handshake(&d.s, &d.c, &d.rs, &d.rc);
    if (want) {
        CHECK_INT(d.rs, ARC_TLS_HS_DONE);
        CHECK_INT(d.rc, ARC_TLS_HS_DONE);
        CHECK_STR(arc_tls_conn_version(&d.s), want);
        CHECK_STR(arc_tls_conn_version(&d.c), want);
    } else {
        CHECK_INT(d.rs, ARC_TLS_HS_FAILED);
        CHECK_INT(d.rc, ARC_TLS_HS_FAILED);
        CHECK_STR(arc_tls_fail_name(arc_tls_conn_fail(&d.s)), arc_tls_fail_name(want_fail));
        CHECK_STR(arc_tls_fail_name(arc_tls_conn_fail(&d.c)), arc_tls_fail_name(want_fail));
        CHECK(strstr(arc_tls_conn_error(&d.s), "protocol") != NULL);
        CHECK(!arc_tls_conn_established(&d.s));
    }
    duo_close(&d);
out:
    arc_tls_server_free(s);
    arc_tls_client_free(cl);
}

static void test_versions(void)
{
    check_version(ARC_TLS_V12, ARC_TLS_V13, 0, "TLSv1.3", ARC_TLS_FAIL_NONE);
    check_version(ARC_TLS_V12, ARC_TLS_V12, 0, "TLSv1.2", ARC_TLS_FAIL_NONE);
    check_version(ARC_TLS_V12, ARC_TLS_V13, TLS1_2_VERSION, "TLSv1.2", ARC_TLS_FAIL_NONE);
    check_version(ARC_TLS_V13, ARC_TLS_V13, TLS1_2_VERSION, NULL, ARC_TLS_FAIL_VERSION);
}

static void test_cipher_suites(void)
{
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    struct arc_tls_client *cl = client_or_die(&u);
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.ciphers[c.t.n_cipher_suites++] = (char *)"TLS_CHACHA20_POLY1305_SHA256";
    c.ciphers[c.t.n_cipher_suites++] = (char *)"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256";
    struct arc_tls_server *s = server_or_die(&c, NULL);
    struct duo d;
    if (s && cl) {
        duo_open(&d, s, cl, NULL);
        CHECK_INT(d.rs, ARC_TLS_HS_DONE);
        CHECK_STR(arc_tls_conn_cipher(&d.s), "TLS_CHACHA20_POLY1305_SHA256");
        duo_close(&d);
    }
    arc_tls_server_free(s);

    /* TLS 1.2 with the listed ECDSA cipher */
    c.t.max_version = ARC_TLS_V12;
    s = server_or_die(&c, NULL);
    if (s && cl) {
        duo_open(&d, s, cl, NULL);
        CHECK_INT(d.rs, ARC_TLS_HS_DONE);
        CHECK_STR(arc_tls_conn_cipher(&d.c), "ECDHE-ECDSA-CHACHA20-POLY1305");
        duo_close(&d);
    }
    arc_tls_server_free(s);

    /* only an RSA cipher with an EC certificate: nothing in common */
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.t.max_version = ARC_TLS_V12;
    c.ciphers[c.t.n_cipher_suites++] = (char *)"ECDHE-RSA-AES128-GCM-SHA256";
    s = server_or_die(&c, NULL);
    if (s && cl) {
        duo_open(&d, s, cl, NULL);
        CHECK_INT(d.rs, ARC_TLS_HS_FAILED);
        CHECK_INT(d.rc, ARC_TLS_HS_FAILED);
        CHECK_INT(arc_tls_conn_fail(&d.s), ARC_TLS_FAIL_NO_SHARED_CIPHER);
        CHECK(strstr(arc_tls_conn_error(&d.s), "no shared cipher") != NULL);
        duo_close(&d);
    }
    arc_tls_server_free(s);
    arc_tls_client_free(cl);
}

/* mTLS against a server requiring or merely accepting client certificates. */
static void test_client_auth(void)
{
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.t.client_auth = true;
    c.t.client_auth_required = true;
    c.t.client_ca_pem = (char *)P("ca.pem");
    struct arc_tls_server *req = server_or_die(&c, NULL);
    c.t.client_auth_required = false;
    struct arc_tls_server *opt = server_or_die(&c, NULL);

    struct uconf anon, me, stranger;
    uconf_init(&anon, "ca.pem", "api.example.com");
    uconf_init(&me, "ca.pem", "api.example.com");
    uconf_client_cert(&me, "client");
    uconf_init(&stranger, "ca.pem", "api.example.com");
    uconf_client_cert(&stranger, "stranger");
    struct arc_tls_client *c_anon = client_or_die(&anon), *c_me = client_or_die(&me),
                          *c_str = client_or_die(&stranger);
    if (!req || !opt || !c_anon || !c_me || !c_str)
        goto out;
    struct duo d;
    char buf[64];
    size_t got;

    /* required, with a certificate: the subject is available */
    duo_open(&d, req, c_me, NULL);
    CHECK_INT(d.rs, ARC_TLS_HS_DONE);
    CHECK_INT(d.rc, ARC_TLS_HS_DONE);
    CHECK_STR(arc_tls_conn_peer_subject(&d.s), "CN=client-1,O=Arc tests");
    CHECK_STR(arc_tls_conn_peer_subject(&d.c), "CN=api.example.com,O=Arc tests");
    duo_close(&d);

    /* required, none sent: the server fails with a countable reason; in
     * TLS 1.3 the client learns it from the alert on its first read */
    duo_open(&d, req, c_anon, NULL);
    CHECK_INT(d.rs, ARC_TLS_HS_FAILED);
    CHECK_INT(arc_tls_conn_fail(&d.s), ARC_TLS_FAIL_NO_CERTIFICATE);
    CHECK(strstr(arc_tls_conn_error(&d.s), "peer did not return a certificate") != NULL);
    CHECK(arc_tls_conn_peer_subject(&d.s) == NULL);
    CHECK_INT(drain(&d.c, buf, sizeof(buf), &got), ARC_TLS_IO_ERROR);
    CHECK_INT(arc_tls_conn_fail(&d.c), ARC_TLS_FAIL_NO_CERTIFICATE);
    CHECK(strstr(arc_tls_conn_error(&d.c), "certificate required") != NULL);
    duo_close(&d);

    /* required, certificate from an unknown CA */
    duo_open(&d, req, c_str, NULL);
    CHECK_INT(d.rs, ARC_TLS_HS_FAILED);
    CHECK_INT(arc_tls_conn_fail(&d.s), ARC_TLS_FAIL_UNKNOWN_CA);
    CHECK(strstr(arc_tls_conn_error(&d.s), "certificate verify failed: unable to get local issuer") != NULL);
    CHECK_INT(drain(&d.c, buf, sizeof(buf), &got), ARC_TLS_IO_ERROR);
    CHECK_INT(arc_tls_conn_fail(&d.c), ARC_TLS_FAIL_UNKNOWN_CA);
    duo_close(&d);

    /* optional: both with and without a certificate get in */
    duo_open(&d, opt, c_anon, NULL);
    CHECK_INT(d.rs, ARC_TLS_HS_DONE);
    CHECK(arc_tls_conn_peer_subject(&d.s) == NULL);
    duo_close(&d);
    duo_open(&d, opt, c_me, NULL);
    CHECK_INT(d.rs, ARC_TLS_HS_DONE);
    CHECK_STR(arc_tls_conn_peer_subject(&d.s), "CN=client-1,O=Arc tests");
    duo_close(&d);

    /* a server without client_auth never asks, so never has a subject */
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    struct arc_tls_server *none = server_or_die(&c, NULL);
    if (none) {
        duo_open(&d, none, c_me, NULL);
        CHECK_INT(d.rs, ARC_TLS_HS_DONE);
        CHECK(arc_tls_conn_peer_subject(&d.s) == NULL);
        duo_close(&d);
    }
    arc_tls_server_free(none);
out:
    arc_tls_server_free(req);
    arc_tls_server_free(opt);
    arc_tls_client_free(c_anon);
    arc_tls_client_free(c_me);
    arc_tls_client_free(c_str);
}

/* The client side: trust, host name, IP address, insecure. */
static void check_upstream(struct arc_tls_server *srv, struct uconf *u, enum arc_tls_fail want,
                           const char *want_err)
{
    struct arc_tls_client *cl = client_or_die(u);
    if (!cl)
        return;
    struct duo d;
    duo_open(&d, srv, cl, NULL);
    if (want == ARC_TLS_FAIL_NONE) {
        CHECK_INT(d.rc, ARC_TLS_HS_DONE);
        CHECK_INT(d.rs, ARC_TLS_HS_DONE);
    } else {
        CHECK_INT(d.rc, ARC_TLS_HS_FAILED);
        CHECK_STR(arc_tls_fail_name(arc_tls_conn_fail(&d.c)), arc_tls_fail_name(want));
        t_checks++;
        if (!strstr(arc_tls_conn_error(&d.c), want_err)) {
            t_failures++;
            fprintf(stderr, "client error \"%s\" lacks \"%s\"\n", arc_tls_conn_error(&d.c), want_err);
        }
        /* the server hears about it through the client's alert */
        CHECK_INT(d.rs, ARC_TLS_HS_FAILED);
    }
    duo_close(&d);
    arc_tls_client_free(cl);
}

static void test_upstream_verification(void)
{
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    struct arc_tls_server *s = server_or_die(&c, NULL);
    if (!s)
        return;
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    check_upstream(s, &u, ARC_TLS_FAIL_NONE, NULL);
    uconf_init(&u, "other-ca.pem", "api.example.com");
    check_upstream(s, &u, ARC_TLS_FAIL_UNKNOWN_CA, "unable to get local issuer certificate");
    uconf_init(&u, "ca.pem", "www.example.com");
    check_upstream(s, &u, ARC_TLS_FAIL_HOSTNAME, "hostname mismatch");
    uconf_init(&u, "ca.pem", "127.0.0.1");              /* IP SAN */
    check_upstream(s, &u, ARC_TLS_FAIL_NONE, NULL);
    uconf_init(&u, "ca.pem", "127.0.0.2");
    check_upstream(s, &u, ARC_TLS_FAIL_HOSTNAME, "IP address mismatch");
    uconf_init(&u, NULL, "api.example.com");            /* system store: our CA is unknown */
    check_upstream(s, &u, ARC_TLS_FAIL_UNKNOWN_CA, "unable to get local issuer certificate");
    uconf_init(&u, NULL, "www.example.com");
    u.t.insecure = true;                                /* wrong CA and name, still fine */
    check_upstream(s, &u, ARC_TLS_FAIL_NONE, NULL);

    /* Arc refuses to load an expired certificate, but a peer may present
     * one: swap it into this connection behind the loader's back. */
    uconf_init(&u, "ca.pem", "old.example.com");
    struct arc_tls_client *cl = client_or_die(&u);
    struct duo d;
    if (cl) {
        CHECK_INT(arc_tls_conn_init_server(&d.s, s), 0);
        CHECK_INT(arc_tls_conn_init_client(&d.c, cl, NULL), 0);
        CHECK_INT(SSL_use_certificate_file(d.s._ssl, P("expired.pem"), SSL_FILETYPE_PEM), 1);
        CHECK_INT(SSL_use_PrivateKey_file(d.s._ssl, P("expired.key"), SSL_FILETYPE_PEM), 1);
        handshake(&d.s, &d.c, &d.rs, &d.rc);
        CHECK_INT(d.rc, ARC_TLS_HS_FAILED);
        CHECK_INT(arc_tls_conn_fail(&d.c), ARC_TLS_FAIL_CERT_EXPIRED);
        CHECK(strstr(arc_tls_conn_error(&d.c), "certificate has expired") != NULL);
        CHECK_INT(d.rs, ARC_TLS_HS_FAILED);
        CHECK_INT(arc_tls_conn_fail(&d.s), ARC_TLS_FAIL_CERT_EXPIRED);  /* from the alert */
        duo_close(&d);
    }
    arc_tls_client_free(cl);
    arc_tls_server_free(s);
}

int main(void)
{
    pki_make();
    RUN(test_server_config_errors);
    RUN(test_client_config_errors);
    RUN(test_cert_expiry_exposed);
    RUN(test_sni_selection);
    RUN(test_alpn);
    RUN(test_versions);
    RUN(test_cipher_suites);
    RUN(test_client_auth);
    RUN(test_upstream_verification);
    pki_remove();
    return TEST_REPORT();
}
