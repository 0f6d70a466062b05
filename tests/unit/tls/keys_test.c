/* Proves that session tickets sealed by one worker's server context resume
 * on another worker's context sharing the same key store (TLS 1.3 and
 * 1.2), keep resuming for as many rotations as the store keeps previous
 * keys, stop resuming (with a full handshake, not a failure) once the key
 * is rotated out, are not accepted by a context with other keys or by a
 * listener with a different client-certificate policy, and that handshakes
 * keep working while another thread rotates keys. */
#include <pthread.h>
#include <stdatomic.h>

#include "tls_test.h"

/* One connection from cl (cache slot `key`) to srv; returns whether it
 * resumed (and checks both ends agree and the handshake succeeded). */
static bool connect_once(struct arc_tls_server *srv, struct arc_tls_client *cl, const char *key)
{
    struct duo d;
    duo_open(&d, srv, cl, key);
    CHECK_INT(d.rs, ARC_TLS_HS_DONE);
    CHECK_INT(d.rc, ARC_TLS_HS_DONE);
    duo_settle(&d);                 /* TLS 1.3 tickets arrive after the handshake */
    bool r = arc_tls_conn_resumed(&d.s);
    CHECK_INT(arc_tls_conn_resumed(&d.c), r);
    /* the resumed session still carries the verified peer */
    CHECK_STR(arc_tls_conn_peer_subject(&d.c), "CN=api.example.com,O=Arc tests");
    duo_close(&d);
    return r;
}

static void resumption_across_workers(enum arc_tls_version v)
{
    struct arc_tls_ticket_keys *keys = arc_tls_ticket_keys_new(1);
    CHECK(keys != NULL);
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.t.max_version = v;
    struct arc_tls_server_opts o = { .ticket_keys = keys };
    struct arc_tls_server *w0 = server_or_die(&c, &o), *w1 = server_or_die(&c, &o);
    struct arc_tls_server *lone = server_or_die(&c, NULL);     /* keys of its own */
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    struct arc_tls_client *cl = client_or_die(&u);
    if (!w0 || !w1 || !lone || !cl)
        goto out;

    CHECK(!connect_once(w0, cl, "up|10.0.0.1:443"));           /* first contact */
    CHECK_INT(arc_tls_client_cached_sessions(cl), 1);
    CHECK(connect_once(w1, cl, "up|10.0.0.1:443"));            /* other worker */
    CHECK(connect_once(w0, cl, "up|10.0.0.1:443"));
    CHECK(!connect_once(w1, cl, "up|10.0.0.2:443"));           /* other endpoint: own slot */
    CHECK_INT(arc_tls_client_cached_sessions(cl), 2);
    CHECK(!connect_once(w0, cl, NULL));                        /* no slot: no resumption */
    CHECK_INT(arc_tls_client_cached_sessions(cl), 2);
    CHECK(!connect_once(lone, cl, "up|10.0.0.1:443"));         /* foreign keys */

    /* one rotation: the previous key still decrypts (and the server
     * reissues under the new key) */
    CHECK(connect_once(w0, cl, "up|10.0.0.2:443"));             /* refresh the slot */
    CHECK_INT(arc_tls_ticket_keys_rotate(keys), 0);
    CHECK_INT(arc_tls_ticket_keys_generation(keys), 1);
    CHECK(connect_once(w1, cl, "up|10.0.0.2:443"));
    /* two rotations without a visit: that ticket's key is gone */
    CHECK_INT(arc_tls_ticket_keys_rotate(keys), 0);
    CHECK_INT(arc_tls_ticket_keys_rotate(keys), 0);
    CHECK(!connect_once(w0, cl, "up|10.0.0.2:443"));
    CHECK(connect_once(w1, cl, "up|10.0.0.2:443"));            /* the new ticket works */
out:
    arc_tls_server_free(w0);
    arc_tls_server_free(w1);
    arc_tls_server_free(lone);
    arc_tls_client_free(cl);
    arc_tls_ticket_keys_unref(keys);
}

static void test_resumption_tls13(void)
{
    resumption_across_workers(ARC_TLS_V13);
}

static void test_resumption_tls12(void)
{
    resumption_across_workers(ARC_TLS_V12);
}

static void test_resumption_off(void)
{
    struct arc_tls_ticket_keys *keys = arc_tls_ticket_keys_new(0);
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    c.t.session_resumption = false;
    struct arc_tls_server_opts o = { .ticket_keys = keys };
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    for (int v = ARC_TLS_V12; v <= ARC_TLS_V13; v++) {
        c.t.max_version = (enum arc_tls_version)v;
        struct arc_tls_server *s = server_or_die(&c, &o);
        struct arc_tls_client *cl = client_or_die(&u);
        if (s && cl) {
            CHECK(!connect_once(s, cl, "k"));
            CHECK(!connect_once(s, cl, "k"));
        }
        arc_tls_server_free(s);
        arc_tls_client_free(cl);
    }
    arc_tls_ticket_keys_unref(keys);
}

/* Same keys, but the second listener requires client certificates: a
 * ticket from the first must not skip that check. */
static void test_tickets_bound_to_client_auth_policy(void)
{
    struct arc_tls_ticket_keys *keys = arc_tls_ticket_keys_new(0);
    struct arc_tls_server_opts o = { .ticket_keys = keys };
    struct tconf open_c, mtls_c;
    tconf_init(&open_c);
    tconf_cert(&open_c, NULL, "api");
    tconf_init(&mtls_c);
    tconf_cert(&mtls_c, NULL, "api");
    mtls_c.t.client_auth = true;
    mtls_c.t.client_auth_required = true;
    mtls_c.t.client_ca_pem = (char *)P("ca.pem");
    struct arc_tls_server *open_s = server_or_die(&open_c, &o), *mtls_s = server_or_die(&mtls_c, &o);
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    struct arc_tls_client *cl = client_or_die(&u);
    if (open_s && mtls_s && cl) {
        CHECK(!connect_once(open_s, cl, "k"));
        CHECK(connect_once(open_s, cl, "k"));
        struct duo d;
        duo_open(&d, mtls_s, cl, "k");
        CHECK_INT(d.rs, ARC_TLS_HS_FAILED);
        CHECK_INT(arc_tls_conn_fail(&d.s), ARC_TLS_FAIL_NO_CERTIFICATE);
        CHECK(!arc_tls_conn_resumed(&d.s));
        duo_close(&d);
    }
    arc_tls_server_free(open_s);
    arc_tls_server_free(mtls_s);
    arc_tls_client_free(cl);
    arc_tls_ticket_keys_unref(keys);
}

static _Atomic bool g_stop;

static void *rotator(void *arg)
{
    struct arc_tls_ticket_keys *k = arg;
    while (!atomic_load(&g_stop)) {
        if (arc_tls_ticket_keys_rotate(k) != 0)
            abort();
        usleep(200);
    }
    return NULL;
}

/* The control thread rotates while a worker handshakes: every handshake
 * still completes (resumed or not); nothing tears or blocks. */
static void test_rotation_while_handshaking(void)
{
    struct arc_tls_ticket_keys *keys = arc_tls_ticket_keys_new(3);
    struct arc_tls_server_opts o = { .ticket_keys = keys };
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    struct arc_tls_server *s = server_or_die(&c, &o);
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    struct arc_tls_client *cl = client_or_die(&u);
    pthread_t th;
    atomic_store(&g_stop, false);
    CHECK_INT(pthread_create(&th, NULL, rotator, keys), 0);
    int resumed = 0;
    for (int i = 0; i < 60 && s && cl; i++)
        resumed += connect_once(s, cl, "k");
    atomic_store(&g_stop, true);
    pthread_join(th, NULL);
    CHECK(arc_tls_ticket_keys_generation(keys) > 0);
    CHECK(resumed > 0);             /* 3 previous keys cover far more than one handshake */
    arc_tls_server_free(s);
    arc_tls_client_free(cl);
    arc_tls_ticket_keys_unref(keys);
}

int main(void)
{
    pki_make();
    RUN(test_resumption_tls13);
    RUN(test_resumption_tls12);
    RUN(test_resumption_off);
    RUN(test_tickets_bound_to_client_auth_policy);
    RUN(test_rotation_while_handshaking);
    pki_remove();
    return TEST_REPORT();
}
