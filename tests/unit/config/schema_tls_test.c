/* Proves that listeners[].tls, upstreams[].tls and upstreams[].protocol are
 * read into struct arc_config with their documented defaults, that every
 * mistake in them is reported at its line:col, and that the snapshot
 * compiler refuses them until the proxy serves TLS (no silent plaintext). */
#include "config_test.h"
#include "config/snapshot.h"

#define HTTPS_LISTENER \
    "listeners:\n" \
    "  - name: web\n" \
    "    kind: https\n" \
    "    bind: \"127.0.0.1:0\"\n"

static void test_listener_tls_values(void)
{
    struct arc_config *c = must_load("yaml",
        HTTPS_LISTENER
        "    tls:\n"
        "      certificates:\n"
        "        - {cert_pem: /etc/arc/default.pem, key_pem: /etc/arc/default.key}\n"
        "        - {sni: API.Example.com, cert_pem: api.pem, key_pem: api.key}\n"
        "        - {sni: \"*.example.com\", cert_pem: w.pem, key_pem: w.key}\n"
        "      min_version: tls13\n"
        "      max_version: tls13\n"
        "      cipher_suites: [TLS_AES_128_GCM_SHA256, ECDHE-ECDSA-AES128-GCM-SHA256]\n"
        "      session_resumption: false\n"
        "      client_auth: {ca_pem: clients.pem}\n"
        "  - {name: plain, kind: http, bind: \"127.0.0.1:0\"}\n");
    if (!c)
        return;
    const struct arc_listener_conf *l = &c->listeners[0];
    CHECK_INT(l->kind, ARC_LISTENER_HTTPS);
    CHECK(l->tls != NULL);
    CHECK(c->listeners[1].tls == NULL);
    if (!l->tls) {
        arc_config_free(c);
        return;
    }
    const struct arc_listener_tls_conf *t = l->tls;
    CHECK_INT(t->n_certs, 3);
    CHECK(t->certs[0].sni == NULL);
    CHECK_STR(t->certs[0].cert_pem, "/etc/arc/default.pem");
    CHECK_STR(t->certs[0].key_pem, "/etc/arc/default.key");
    CHECK_STR(t->certs[1].sni, "api.example.com");
    CHECK_STR(t->certs[2].sni, "*.example.com");
    CHECK_INT(t->min_version, ARC_TLS_V13);
    CHECK_INT(t->max_version, ARC_TLS_V13);
    CHECK_INT(t->n_cipher_suites, 2);
    CHECK_STR(t->cipher_suites[1], "ECDHE-ECDSA-AES128-GCM-SHA256");
    CHECK(!t->session_resumption);
    CHECK(t->client_auth);
    CHECK(t->client_auth_required);     /* default once client_auth is given */
    CHECK_STR(t->client_ca_pem, "clients.pem");
    CHECK_INT(t->line, 6);
    CHECK_INT(t->col, 7);
    arc_config_free(c);
}

static void test_listener_tls_defaults(void)
{
    struct arc_config *c = must_load("yaml",
        HTTPS_LISTENER
        "    tls: {certificates: [{cert_pem: c.pem, key_pem: k.pem}]}\n");
    if (!c || !c->listeners[0].tls) {
        CHECK(0);
        arc_config_free(c);
        return;
    }
    const struct arc_listener_tls_conf *t = c->listeners[0].tls;
    CHECK_INT(t->min_version, ARC_TLS_V12);
    CHECK_INT(t->max_version, ARC_TLS_V13);
    CHECK_INT(t->n_cipher_suites, 0);
    CHECK(t->session_resumption);
    CHECK(!t->client_auth);
    CHECK(t->client_ca_pem == NULL);
    arc_config_free(c);

    c = must_load("yaml", HTTPS_LISTENER
        "    tls:\n"
        "      certificates: [{cert_pem: c.pem, key_pem: k.pem}]\n"
        "      client_auth: {ca_pem: ca.pem, required: false}\n");
    if (c && c->listeners[0].tls) {
        CHECK(c->listeners[0].tls->client_auth);
        CHECK(!c->listeners[0].tls->client_auth_required);
    }
    arc_config_free(c);
}

static void test_kind_and_tls_mismatch(void)
{
    /* https without tls: pointed at the kind that needs it */
    CHECK_FAILS("yaml", HTTPS_LISTENER, 1, 3, 11,
                "listeners[0].tls: kind https needs a 'tls' section with at least one certificate");
    CHECK_FAILS("yaml", HTTPS_LISTENER "    tls: null\n", 1, 3, 11, "kind https needs a 'tls' section");
    /* tls on a plain listener: pointed at the key */
    CHECK_FAILS("yaml",
                "listeners:\n"
                "  - name: web\n"
                "    kind: http\n"
                "    bind: \"127.0.0.1:0\"\n"
                "    tls: {certificates: [{cert_pem: c.pem, key_pem: k.pem}]}\n",
                1, 5, 5, "listeners[0].tls: only applies to kind https (this listener is kind http)");
}

static void test_listener_tls_errors(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml",
        HTTPS_LISTENER                                                        /* 1-4 */
        "    tls:\n"                                                          /* 5 */
        "      certificates:\n"                                               /* 6 */
        "        - {sni: a.example, cert_pem: a.pem}\n"                       /* 7 */
        "        - {cert_pem: b.pem, key_pem: b.key}\n"                       /* 8 */
        "        - {sni: \"a.*.example\", cert_pem: c.pem, key_pem: c.key}\n" /* 9 */
        "        - {sni: A.EXAMPLE, cert_pem: d.pem, key_pem: d.key}\n"       /* 10 */
        "        - {sni: 10.0.0.1, cert_pem: e.pem, key_pem: \"\"}\n"         /* 11 */
        "      min_version: tls11\n"                                          /* 12 */
        "      cipher_suites: [\"HIGH:!aNULL\", X, X]\n"                      /* 13 */
        "      session_resumption: 1\n"                                       /* 14 */
        "      client_auth: {required: true}\n"                               /* 15 */
        "      acme: {}\n"                                                    /* 16 */
        "      alpn: [h2]\n",                                                 /* 17 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 7, 11, "missing required key 'key_pem' in listeners[0].tls.certificates[0]");
    CHECK_ERR(&e, 8, 11, "listeners[0].tls.certificates[1]: sni is required (only "
                         "certificates[0], the default, may omit it)");
    CHECK_ERR(&e, 9, 17, "certificates[2].sni: 'a.*.example' may use '*' only as a whole leading label");
    CHECK_ERR(&e, 10, 17, "certificates[3].sni: 'a.example' is already used by "
                          "listeners[0].tls.certificates[0]");
    CHECK_ERR(&e, 11, 17, "certificates[4].sni: '10.0.0.1' is an IP address");
    CHECK_ERR(&e, 11, 53, "certificates[4].key_pem: must not be empty");
    CHECK_ERR(&e, 12, 20, "listeners[0].tls.min_version: unknown value 'tls11'");
    CHECK_ERR(&e, 13, 23, "cipher_suites[0]: 'HIGH:!aNULL' is not a cipher suite name");
    CHECK_ERR(&e, 13, 41, "cipher_suites[2]: 'X' is listed twice");
    CHECK_ERR(&e, 14, 27, "listeners[0].tls.session_resumption: expected a boolean, got integer");
    CHECK_ERR(&e, 15, 20, "missing required key 'ca_pem' in listeners[0].tls.client_auth");
    CHECK_ERR(&e, 16, 7, "listeners[0].tls.acme: not supported yet");
    CHECK_ERR(&e, 17, 7, "unknown key 'alpn' in listeners[0].tls");
    CHECK_INT(e.n, 13);
    arc_config_errors_dispose(&e);

    CHECK_FAILS("yaml", HTTPS_LISTENER
                "    tls:\n"
                "      certificates: [{cert_pem: c.pem, key_pem: k.pem}]\n"
                "      min_version: tls13\n"
                "      max_version: tls12\n",
                1, 8, 20, "listeners[0].tls: min_version tls13 is above max_version tls12");
    CHECK_FAILS("yaml", HTTPS_LISTENER "    tls: {certificates: []}\n", 1, 5, 25,
                "listeners[0].tls.certificates: at least one certificate is required");
    CHECK_FAILS("yaml", HTTPS_LISTENER
                "    tls: {certificates: [{cert_pem: c.pem, key_pem: k.pem}], cipher_suites: []}\n",
                1, 5, 77, "listeners[0].tls.cipher_suites: empty list");
    CHECK_FAILS("yaml", HTTPS_LISTENER "    tls: [1]\n", 1, 5, 10,
                "listeners[0].tls: expected a mapping, got list");
}

static void test_upstream_tls(void)
{
    struct arc_config *c = must_load("yaml",
        "listeners: [{name: h, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams:\n"
        "  - name: secure\n"
        "    protocol: http2\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:443\"}]}\n"
        "    tls:\n"
        "      ca_pem: internal-ca.pem\n"
        "      client_cert_pem: me.pem\n"
        "      client_key_pem: me.key\n"
        "      server_name: API.internal\n"
        "  - name: lab\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.2:443\"}]}\n"
        "    tls: {insecure: true}\n"
        "  - name: byip\n"
        "    protocol: http1\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.3:443\"}]}\n"
        "    tls: {server_name: \"10.0.0.3\"}\n"
        "  - name: plain\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.4:80\"}]}\n");
    if (!c)
        return;
    const struct arc_upstream_conf *u = &c->upstreams[0];
    CHECK_INT(u->protocol, ARC_UP_HTTP2);
    CHECK_INT(u->protocol_line, 4);
    CHECK(u->tls != NULL);
    if (u->tls) {
        CHECK_STR(u->tls->ca_pem, "internal-ca.pem");
        CHECK_STR(u->tls->client_cert_pem, "me.pem");
        CHECK_STR(u->tls->client_key_pem, "me.key");
        CHECK_STR(u->tls->server_name, "api.internal");
        CHECK(!u->tls->insecure);
        CHECK_INT(u->tls->line, 7);
    }
    u = &c->upstreams[1];
    CHECK_INT(u->protocol, ARC_UP_HTTP1);
    CHECK_INT(u->protocol_line, 0);
    CHECK(u->tls && u->tls->insecure && !u->tls->server_name && !u->tls->ca_pem);
    CHECK(c->upstreams[2].tls && c->upstreams[2].tls->server_name &&
          strcmp(c->upstreams[2].tls->server_name, "10.0.0.3") == 0);
    CHECK(c->upstreams[3].tls == NULL);
    arc_config_free(c);

    struct arc_config_errors e;
    c = load_str("yaml",
        "listeners: [{name: h, kind: http, bind: \"127.0.0.1:0\"}]\n"        /* 1 */
        "upstreams:\n"                                                       /* 2 */
        "  - name: a\n"                                                      /* 3 */
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:443\"}]}\n" /* 4 */
        "    protocol: http3\n"                                              /* 5 */
        "    tls:\n"                                                         /* 6 */
        "      client_cert_pem: me.pem\n"                                    /* 7 */
        "      server_name: \"*.internal\"\n"                                /* 8 */
        "      insecure: \"no\"\n"                                           /* 9 */
        "  - name: b\n"                                                      /* 10 */
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.2:443\"}]}\n" /* 11 */
        "    tls: {ca_pem: ca.pem, client_key_pem: k.pem, verify: true}\n",  /* 12 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 5, 15, "upstreams[0].protocol: unknown value 'http3' (did you mean 'http1'?)");
    CHECK_ERR(&e, 7, 24, "upstreams[0].tls.client_cert_pem: client_key_pem is required with it");
    CHECK_ERR(&e, 8, 20, "upstreams[0].tls.server_name: '*.internal' must not be a wildcard");
    CHECK_ERR(&e, 9, 17, "upstreams[0].tls.insecure: expected true or false, got the string 'no'");
    CHECK_ERR(&e, 12, 50, "unknown key 'verify' in upstreams[1].tls");
    CHECK_ERR(&e, 12, 43, "upstreams[1].tls.client_key_pem: client_cert_pem is required with it");
    CHECK_ERR(&e, 12, 10, "upstreams[1].tls: server_name is required");
    CHECK_INT(e.n, 7);    /* an invalid server_name is not also reported missing */
    arc_config_errors_dispose(&e);
}

/* A TLS certificate that cannot be read is an error of the listener's tls
 * section, reported by the compiler (check, run and reload alike), never a
 * failure at run time; an HTTP/2 upstream is served, so it adds no error. */
static void test_snapshot_refuses_unreadable(void)
{
    struct arc_config *c = must_load("yaml",
        HTTPS_LISTENER
        "    tls: {certificates: [{cert_pem: /nonexistent/c.pem, key_pem: /nonexistent/k.pem}]}\n"
        "upstreams:\n"
        "  - name: a\n"
        "    protocol: http2\n"
        "    discovery: {type: static, endpoints: [{address: \"10.0.0.1:443\"}]}\n"
        "    tls: {insecure: true}\n");
    if (!c)
        return;
    struct arc_snapshot *snap = NULL;
    struct arc_config_errors e = { 0 };
    CHECK_INT(arc_snapshot_build(c, &snap, &e), -1);    /* frees c */
    CHECK(snap == NULL);
    CHECK_INT(e.n, 1);
    CHECK_ERR(&e, 5, 10, "certificate '/nonexistent/c.pem': cannot open");
    arc_config_errors_dispose(&e);

    c = must_load("yaml",
        HTTPS_LISTENER
        "    tls: {certificates: [{cert_pem: /nonexistent/c.pem, key_pem: /nonexistent/k.pem}]}\n");
    if (!c)
        return;
    e = (struct arc_config_errors){ 0 };
    CHECK_INT(arc_snapshot_build(c, &snap, &e), -1);
    CHECK_INT(e.n, 1);
    CHECK_ERR(&e, 5, 10, "listeners[0] 'web'.tls: certificates[0]");
    CHECK_ERR(&e, 5, 10, "/nonexistent/c.pem");
    arc_config_errors_dispose(&e);

    /* and a plain config still compiles */
    c = must_load("yaml", MINI_YAML);
    e = (struct arc_config_errors){ 0 };
    CHECK_INT(arc_snapshot_build(c, &snap, &e), 0);
    CHECK_INT(e.n, 0);
    arc_snapshot_unref(snap);
    arc_config_errors_dispose(&e);
}

int main(void)
{
    RUN(test_listener_tls_values);
    RUN(test_listener_tls_defaults);
    RUN(test_kind_and_tls_mismatch);
    RUN(test_listener_tls_errors);
    RUN(test_upstream_tls);
    RUN(test_snapshot_refuses_unreadable);
    return TEST_REPORT();
}
