/* Proves that struct arc_tls_conn moves data correctly with nothing but
 * memory between the two ends: 1 MiB each way in small, odd-sized feeds,
 * the pending-output view staying put while more is written, close_notify
 * seen by the peer, truncation (EOF without close_notify) told apart from
 * it, garbage input failing with a countable reason, calls made in the
 * wrong state refused rather than obeyed, and borrowed input read in place
 * with only its unread rest kept. */
#include <sys/uio.h>

#include "tls_test.h"

static struct arc_tls_server *g_srv;
static struct arc_tls_client *g_cli;

static void pattern(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* Writes `len` bytes into `from` in pieces of `wstep`, moves ciphertext in
 * feeds of `fstep`, reads with a `rcap` buffer; checks every byte. */
static void pump(struct arc_tls_conn *from, struct arc_tls_conn *to, size_t len, size_t wstep,
                 size_t fstep, size_t rcap)
{
    unsigned char *src = malloc(len), *dst = malloc(len), *rb = malloc(rcap);
    pattern(src, len, (unsigned)len);
    size_t wrote = 0, got = 0, max_pending = 0;
    while (got < len) {
        if (wrote < len) {
            size_t k = len - wrote < wstep ? len - wrote : wstep, n = 0;
            CHECK_INT(arc_tls_conn_write(from, src + wrote, k, &n), ARC_TLS_IO_OK);
            CHECK_INT(n, k);
            if (n != k)
                break;
            wrote += n;
        }
        size_t pend = arc_tls_conn_out_pending(from);
        if (pend > max_pending)
            max_pending = pend;
        if (move(from, to, fstep) == 0 && wrote == len && got < len) {
            CHECK(!"stalled");
            break;
        }
        size_t n;
        enum arc_tls_io st;
        while ((st = arc_tls_conn_read(to, rb, rcap, &n)) == ARC_TLS_IO_OK) {
            if (got + n > len) {
                CHECK(!"too much data");
                break;
            }
            memcpy(dst + got, rb, n);
            got += n;
        }
        CHECK_INT(st, ARC_TLS_IO_AGAIN);
        if (st != ARC_TLS_IO_AGAIN)
            break;
    }
    CHECK_INT(got, len);
    CHECK(memcmp(src, dst, len) == 0);
    CHECK_INT(arc_tls_conn_out_pending(from), 0);
    /* records add bytes; a few percent of overhead at most */
    CHECK(max_pending < wstep + wstep / 10 + 256);
    free(src);
    free(dst);
    free(rb);
}

static void test_large_payload_round_trip(void)
{
    struct duo d;
    duo_open(&d, g_srv, g_cli, NULL);
    CHECK_INT(d.rs, ARC_TLS_HS_DONE);
    CHECK_INT(d.rc, ARC_TLS_HS_DONE);
    duo_settle(&d);
    /* client → server: 1 MiB written 64 KiB at a time, fed 1000 bytes at a
     * time (records split across feeds), read into 4 KiB */
    pump(&d.c, &d.s, 1u << 20, 64 * 1024, 1000, 4096);
    /* server → client: one 1 MiB write, 7-byte feeds, 333-byte reads */
    pump(&d.s, &d.c, 1u << 20, 1u << 20, 7, 333);
    duo_close(&d);
}

/* The view handed to a send must not move or change while the connection
 * writes more records behind it. */
static void test_output_view_is_stable(void)
{
    struct duo d;
    duo_open(&d, g_srv, g_cli, NULL);
    duo_settle(&d);
    unsigned char msg[3000];
    pattern(msg, sizeof(msg), 7);
    size_t n;
    CHECK_INT(arc_tls_conn_write(&d.s, msg, sizeof(msg), &n), ARC_TLS_IO_OK);
    const void *p1;
    size_t n1 = arc_tls_conn_out_peek(&d.s, &p1);
    CHECK(n1 > sizeof(msg));
    unsigned char copy[4096];
    memcpy(copy, p1, n1);
    /* 200 KiB more: several new chunks */
    unsigned char *more = malloc(200 * 1024);
    pattern(more, 200 * 1024, 8);
    CHECK_INT(arc_tls_conn_write(&d.s, more, 200 * 1024, &n), ARC_TLS_IO_OK);
    const void *p2;
    CHECK(arc_tls_conn_out_peek(&d.s, &p2) >= n1);
    CHECK(p1 == p2);
    CHECK(memcmp(p1, copy, n1) == 0);
    struct iovec iov[16];
    int k = arc_tls_conn_out_iov(&d.s, iov, 16);
    CHECK(k >= 2);
    size_t sum = 0;
    for (int i = 0; i < k; i++)
        sum += iov[i].iov_len;
    CHECK_INT(sum, arc_tls_conn_out_pending(&d.s));
    CHECK(iov[0].iov_base == p1);
    /* a partial send: consume part of the first run, feed exactly that */
    CHECK_INT(arc_tls_conn_feed(&d.c, p1, 100), 0);
    arc_tls_conn_out_consume(&d.s, 100);
    const void *p3;
    arc_tls_conn_out_peek(&d.s, &p3);
    CHECK((const char *)p3 == (const char *)p1 + 100);
    move(&d.s, &d.c, 4096);
    unsigned char *all = malloc(sizeof(msg) + 200 * 1024);
    size_t got;
    CHECK_INT(drain(&d.c, (char *)all, sizeof(msg) + 200 * 1024, &got), ARC_TLS_IO_AGAIN);
    CHECK_INT(got, sizeof(msg) + 200 * 1024);
    CHECK(memcmp(all, msg, sizeof(msg)) == 0 && memcmp(all + sizeof(msg), more, 200 * 1024) == 0);
    free(all);
    free(more);
    duo_close(&d);
}

static void test_close_notify(void)
{
    struct duo d;
    duo_open(&d, g_srv, g_cli, NULL);
    duo_settle(&d);
    size_t n;
    char buf[64];
    CHECK_INT(arc_tls_conn_write(&d.s, "bye", 3, &n), ARC_TLS_IO_OK);
    arc_tls_conn_shutdown(&d.s);
    arc_tls_conn_shutdown(&d.s);                    /* once only */
    CHECK_INT(arc_tls_conn_write(&d.s, "x", 1, &n), ARC_TLS_IO_ERROR);
    CHECK_STR(arc_tls_conn_error(&d.s), "write after shutdown");
    move(&d.s, &d.c, SIZE_MAX);
    CHECK_INT(arc_tls_conn_read(&d.c, buf, sizeof(buf), &n), ARC_TLS_IO_OK);
    CHECK_VIEW(buf, n, "bye");
    CHECK_INT(arc_tls_conn_read(&d.c, buf, sizeof(buf), &n), ARC_TLS_IO_CLOSED);
    CHECK(arc_tls_conn_peer_closed(&d.c));
    CHECK_INT(arc_tls_conn_read(&d.c, buf, sizeof(buf), &n), ARC_TLS_IO_CLOSED);
    /* the client answers with its own close_notify */
    arc_tls_conn_shutdown(&d.c);
    CHECK(arc_tls_conn_out_pending(&d.c) > 0);
    move(&d.c, &d.s, SIZE_MAX);
    CHECK_INT(arc_tls_conn_read(&d.s, buf, sizeof(buf), &n), ARC_TLS_IO_CLOSED);
    CHECK_INT(arc_tls_conn_fail(&d.s), ARC_TLS_FAIL_NONE);
    duo_close(&d);
}

static void test_truncation_is_not_close(void)
{
    struct duo d;
    duo_open(&d, g_srv, g_cli, NULL);
    duo_settle(&d);
    size_t n;
    char buf[64];
    CHECK_INT(arc_tls_conn_write(&d.c, "partial", 7, &n), ARC_TLS_IO_OK);
    move(&d.c, &d.s, SIZE_MAX);
    arc_tls_conn_feed_eof(&d.s);
    CHECK_INT(arc_tls_conn_read(&d.s, buf, sizeof(buf), &n), ARC_TLS_IO_OK);
    CHECK_VIEW(buf, n, "partial");
    CHECK_INT(arc_tls_conn_read(&d.s, buf, sizeof(buf), &n), ARC_TLS_IO_EOF);
    CHECK_INT(arc_tls_conn_fail(&d.s), ARC_TLS_FAIL_EOF);
    CHECK(!arc_tls_conn_peer_closed(&d.s));
    CHECK_INT(arc_tls_conn_read(&d.s, buf, sizeof(buf), &n), ARC_TLS_IO_EOF);
    size_t alert = arc_tls_conn_out_pending(&d.s);  /* OpenSSL queued an alert */
    arc_tls_conn_shutdown(&d.s);                    /* after a failure: nothing more */
    CHECK_INT(arc_tls_conn_out_pending(&d.s), alert);
    duo_close(&d);

    /* EOF in the middle of a handshake */
    struct arc_tls_conn s;
    CHECK_INT(arc_tls_conn_init_server(&s, g_srv), 0);
    CHECK_INT(arc_tls_conn_handshake(&s), ARC_TLS_HS_AGAIN);
    arc_tls_conn_feed_eof(&s);
    CHECK_INT(arc_tls_conn_handshake(&s), ARC_TLS_HS_FAILED);
    CHECK_INT(arc_tls_conn_fail(&s), ARC_TLS_FAIL_EOF);
    arc_tls_conn_dispose(&s);
    arc_tls_conn_dispose(&s);                       /* idempotent */
}

static void test_garbage_and_misuse(void)
{
    struct arc_tls_conn s;
    CHECK_INT(arc_tls_conn_init_server(&s, g_srv), 0);
    size_t n;
    CHECK_INT(arc_tls_conn_write(&s, "x", 1, &n), ARC_TLS_IO_ERROR);
    CHECK_STR(arc_tls_conn_error(&s), "write before the handshake completed");
    CHECK(arc_tls_conn_alpn(&s) == NULL && arc_tls_conn_version(&s) == NULL);
    /* plain HTTP to a TLS port */
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_INT(arc_tls_conn_feed(&s, req, sizeof(req) - 1), 0);
    CHECK_INT(arc_tls_conn_handshake(&s), ARC_TLS_HS_FAILED);
    CHECK_INT(arc_tls_conn_fail(&s), ARC_TLS_FAIL_PROTOCOL);
    CHECK_STR(arc_tls_fail_name(arc_tls_conn_fail(&s)), "protocol");
    CHECK(strstr(arc_tls_conn_error(&s), "http request") != NULL);
    CHECK_INT(arc_tls_conn_handshake(&s), ARC_TLS_HS_FAILED);   /* stays failed */
    CHECK_INT(ERR_peek_error(), 0);
    arc_tls_conn_dispose(&s);

    /* a corrupted record after the handshake */
    struct duo d;
    duo_open(&d, g_srv, g_cli, NULL);
    duo_settle(&d);
    CHECK_INT(arc_tls_conn_write(&d.c, "hello", 5, &n), ARC_TLS_IO_OK);
    const void *p;
    size_t k = arc_tls_conn_out_peek(&d.c, &p);
    unsigned char bad[256];
    CHECK(k <= sizeof(bad));
    memcpy(bad, p, k);
    bad[k - 1] ^= 0x01;                             /* break the AEAD tag */
    arc_tls_conn_out_consume(&d.c, k);
    CHECK_INT(arc_tls_conn_feed(&d.s, bad, k), 0);
    char buf[16];
    CHECK_INT(arc_tls_conn_read(&d.s, buf, sizeof(buf), &n), ARC_TLS_IO_ERROR);
    CHECK_INT(arc_tls_conn_fail(&d.s), ARC_TLS_FAIL_PROTOCOL);
    CHECK(strstr(arc_tls_conn_error(&d.s), "bad record mac") != NULL);
    CHECK(arc_tls_conn_out_pending(&d.s) > 0);      /* the alert, to send if we can */
    duo_close(&d);

    CHECK_STR(arc_tls_fail_name(ARC_TLS_FAIL__COUNT), "other");
}

/* Borrowed input is read in place: reading until AGAIN leaves nothing
 * kept (an idle connection holds no input buffer), and bytes not read
 * before feed_end are copied, so the caller's buffer may change after. */
static void test_borrowed_input_keeps_only_the_unread_rest(void)
{
    struct duo d;
    duo_open(&d, g_srv, g_cli, NULL);
    duo_settle(&d);
    CHECK(d.s._kept == NULL && d.c._kept == NULL);
    unsigned char msg[5000], wire[8192], got[8192];
    pattern(msg, sizeof(msg), 11);
    size_t n;
    CHECK_INT(arc_tls_conn_write(&d.c, msg, sizeof(msg), &n), ARC_TLS_IO_OK);
    const void *p;
    size_t len = arc_tls_conn_out_peek(&d.c, &p);
    CHECK_INT(len, arc_tls_conn_out_pending(&d.c));
    CHECK(len <= sizeof(wire));
    memcpy(wire, p, len);
    arc_tls_conn_out_consume(&d.c, len);

    /* Half of it, read until AGAIN: OpenSSL took every byte offered. */
    size_t half = len / 2, all = 0, k;
    arc_tls_conn_feed_borrow(&d.s, wire, half);
    CHECK_INT(drain(&d.s, (char *)got, sizeof(got), &k), ARC_TLS_IO_AGAIN);
    all += k;
    CHECK_INT(arc_tls_conn_feed_end(&d.s), 0);
    CHECK(d.s._kept == NULL);
    /* The rest, ended before any read: kept as a copy... */
    arc_tls_conn_feed_borrow(&d.s, wire + half, len - half);
    CHECK_INT(arc_tls_conn_feed_end(&d.s), 0);
    CHECK(d.s._kept != NULL);
    memset(wire, 'Z', sizeof(wire));    /* ...so the caller's bytes may go */
    CHECK_INT(drain(&d.s, (char *)got + all, sizeof(got) - all, &k), ARC_TLS_IO_AGAIN);
    all += k;
    CHECK_INT(all, sizeof(msg));
    CHECK(memcmp(got, msg, sizeof(msg)) == 0);
    CHECK(d.s._kept == NULL);           /* read: given back */
    duo_close(&d);
}

int main(void)
{
    pki_make();
    struct tconf c;
    tconf_init(&c);
    tconf_cert(&c, NULL, "api");
    g_srv = server_or_die(&c, NULL);
    struct uconf u;
    uconf_init(&u, "ca.pem", "api.example.com");
    g_cli = client_or_die(&u);
    if (g_srv && g_cli) {
        RUN(test_large_payload_round_trip);
        RUN(test_output_view_is_stable);
        RUN(test_close_notify);
        RUN(test_truncation_is_not_close);
        RUN(test_garbage_and_misuse);
        RUN(test_borrowed_input_keeps_only_the_unread_rest);
    }
    arc_tls_server_free(g_srv);
    arc_tls_client_free(g_cli);
    pki_remove();
    return TEST_REPORT();
}
