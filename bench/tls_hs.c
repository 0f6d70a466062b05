/* tls_hs.c - TLS handshake load generator: one new TCP+TLS connection per
 * request, with or without TLS 1.3 session resumption (PSK from a ticket).
 *
 *   gcc -O2 -Wall -Wextra -o tls_hs bench/tls_hs.c -lssl -lcrypto
 *   tls_hs -p 18445 -c 4 -d 8            # full handshakes, 4 client processes, 8 s
 *   tls_hs -p 18445 -c 4 -d 8 -r         # resumed, single-use tickets
 *   tls_hs -p 18445 -c 4 -d 8 -R         # resumed, a ticket may be offered again
 *   tls_hs -p 18085 -c 4 -d 8 -n         # no TLS: the same loop in plaintext (baseline)
 *   tls_hs -p 18445 -c 4 -d 8 -b 127.0.0.2  # from source address 127.0.0.2
 *
 * Each of the -c client processes loops until the deadline:
 *   socket + connect -> SSL_connect (TLS 1.3 only, SNI, ALPN http/1.1; in
 *   the resumption modes SSL_set_session() with the newest ticket this
 *   process received) -> one GET ->
 *   read the whole response (Content-Length or chunked) -> close_notify ->
 *   close.
 * Tickets are collected with a new-session callback (TLS 1.3 tickets arrive
 * after the handshake, so SSL_get1_session() right after SSL_connect may not
 * have one yet); every ticket is counted, so tickets/connection is reported.
 * Whether a connection was resumed is SSL_session_reused() after the
 * handshake; resumed and full handshakes are counted separately.
 *
 * -r  single-use tickets, as RFC 8446 C.4 recommends and browsers do:
 *     OpenSSL's client marks a TLS 1.3 session not resumable once it has
 *     been used (SSL_SESS_CACHE_CLIENT mode), so a connection resumes only
 *     if the previous one brought a fresh ticket; a server that issues no
 *     ticket on a resumed connection gets every other connection in full.
 * -R  ticket reuse: every connection offers a copy (SSL_SESSION_dup) of the
 *     newest ticket, so a ticket is offered again until a newer one
 *     arrives; this measures the cost of a resumed handshake on any server
 *     that accepts a ticket more than once (all TLS 1.3 servers without
 *     0-RTT anti-replay).
 *
 * Output: one JSON line on stdout with the totals over all processes.
 * Loopback benchmarking only: no certificate verification (the TLS 1.3
 * CertificateVerify signature is still checked by OpenSSL in a full
 * handshake).  Every socket has a send/receive timeout, and the parent
 * SIGKILLs (by PID) any child still running 10 s after the deadline.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HIST_BUCKETS 20000      /* 10 µs buckets up to 200 ms, last = overflow */
#define HIST_STEP_US 10

struct stats {
    uint64_t ok;                /* complete request/response exchanges */
    uint64_t resumed;           /* ... of which SSL_session_reused() */
    uint64_t offered;           /* connections that offered a ticket */
    uint64_t tickets;           /* NewSessionTicket messages received */
    uint64_t err_connect, err_handshake, err_io, err_status;
    uint64_t lat_sum_us;
    char first_error[160];
    char proto[16], cipher[64], group[32], alpn[16];
    uint32_t hist[HIST_BUCKETS];
};

static const char *opt_host = "127.0.0.1", *opt_sni = "localhost", *opt_path = "/";
static const char *opt_src;         /* -b: source address (a different client on loopback) */
static int opt_port, opt_procs = 4, opt_resume /* 0, 1 = -r, 2 = -R */, opt_timeout_ms = 5000;
static int opt_plain;           /* -n: no TLS (plaintext baseline: TCP + HTTP only) */
static double opt_secs = 8;

static SSL_SESSION *g_latest;       /* newest ticket of this process */
static struct stats *g_st;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void set_error(const char *what, SSL *ssl, int rc)
{
    if (g_st->first_error[0])
        return;
    char buf[120] = "";
    unsigned long e = ERR_peek_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    else if (ssl)
        snprintf(buf, sizeof buf, "ssl_error=%d errno=%d %s", SSL_get_error(ssl, rc), errno, strerror(errno));
    else
        snprintf(buf, sizeof buf, "errno=%d %s", errno, strerror(errno));
    snprintf(g_st->first_error, sizeof g_st->first_error, "%s: %s", what, buf);
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    g_st->tickets++;
    if (!opt_resume)
        return 0;               /* not kept: OpenSSL frees it */
    /* A copy: the object handed over is also the connection's current
     * session, which OpenSSL marks not resumable if the connection ends
     * without close_notify (an error path here). */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy) {
        if (g_latest)
            SSL_SESSION_free(g_latest);
        g_latest = copy;
    }
    return 0;                   /* OpenSSL keeps its own reference */
}

static int io_read(SSL *ssl, int fd, char *b, int n)
{
    return ssl ? SSL_read(ssl, b, n) : (int)read(fd, b, (size_t)n);
}

static int io_write(SSL *ssl, int fd, const char *b, int n)
{
    return ssl ? SSL_write(ssl, b, n) : (int)write(fd, b, (size_t)n);
}

/* Reads one HTTP/1.1 response; returns the status code, or -1. */
static int read_response(SSL *ssl, int fd)
{
    char buf[16384];
    size_t have = 0;
    long need = -1;             /* total bytes needed once headers are known */
    int status = -1, chunked = 0;
    size_t hdr_end = 0;
    for (;;) {
        if (have == sizeof buf)
            return -1;          /* our responses are tiny */
        int n = io_read(ssl, fd, buf + have, (int)(sizeof buf - have - 1));
        if (n <= 0) {
            set_error("read", ssl, n);
            return -1;
        }
        have += (size_t)n;
        buf[have] = 0;
        if (!hdr_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e)
                continue;
            hdr_end = (size_t)(e - buf) + 4;
            if (sscanf(buf, "HTTP/1.%*c %d", &status) != 1)
                return -1;
            for (char *l = strstr(buf, "\r\n"); l && l < e; l = strstr(l + 2, "\r\n")) {
                if (!strncasecmp(l + 2, "content-length:", 15))
                    need = (long)hdr_end + strtol(l + 17, NULL, 10);
                else if (!strncasecmp(l + 2, "transfer-encoding:", 18) && strcasestr(l, "chunked"))
                    chunked = 1;
            }
            if (need < 0 && !chunked)
                need = (long)hdr_end;   /* no body framing: assume none */
        }
        if (chunked) {
            if (strstr(buf + hdr_end, "0\r\n\r\n"))
                return status;  /* good enough for the tiny bodies here */
        } else if ((long)have >= need) {
            return status;
        }
    }
}

static void one_connection(SSL_CTX *ctx, const struct sockaddr_in *sa, const char *req, size_t reqlen)
{
    uint64_t t0 = now_us();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        g_st->err_connect++;
        set_error("socket", NULL, 0);
        usleep(1000);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = { opt_timeout_ms / 1000, (opt_timeout_ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (opt_src) {
        struct sockaddr_in src = { .sin_family = AF_INET };
        if (inet_pton(AF_INET, opt_src, &src.sin_addr) != 1 ||
            bind(fd, (const struct sockaddr *)&src, sizeof src) < 0) {
            g_st->err_connect++;
            set_error("bind", NULL, 0);
            close(fd);
            return;
        }
    }
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
        g_st->err_connect++;
        set_error("connect", NULL, 0);
        close(fd);
        usleep(1000);
        return;
    }
    SSL *ssl = NULL;
    int rc, reused = 0;
    if (opt_plain)
        goto request;
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, opt_sni);
    if (opt_resume && g_latest) {
        SSL_SESSION *offer = opt_resume == 2 ? SSL_SESSION_dup(g_latest) : g_latest;
        if (offer && SSL_SESSION_is_resumable(offer)) {
            SSL_set_session(ssl, offer);
            g_st->offered++;
        }
        if (offer && offer != g_latest)
            SSL_SESSION_free(offer);    /* the SSL holds its own reference */
    }
    rc = SSL_connect(ssl);
    if (rc != 1) {
        g_st->err_handshake++;
        set_error("handshake", ssl, rc);
        goto out;
    }
    reused = SSL_session_reused(ssl);
    if (!g_st->proto[0]) {
        snprintf(g_st->proto, sizeof g_st->proto, "%s", SSL_get_version(ssl));
        snprintf(g_st->cipher, sizeof g_st->cipher, "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
        int nid = SSL_get_negotiated_group(ssl);
        const char *gn = OBJ_nid2sn(nid & ~TLSEXT_nid_unknown);
        snprintf(g_st->group, sizeof g_st->group, "%s", gn ? gn : "?");
        const unsigned char *a = NULL;
        unsigned alen = 0;
        SSL_get0_alpn_selected(ssl, &a, &alen);
        snprintf(g_st->alpn, sizeof g_st->alpn, "%.*s", (int)alen, a ? (const char *)a : "");
    }
request:
    rc = io_write(ssl, fd, req, (int)reqlen);
    if (rc != (int)reqlen) {
        g_st->err_io++;
        set_error("write", ssl, rc);
        goto out;
    }
    int status = read_response(ssl, fd);
    if (status < 0) {
        g_st->err_io++;
        goto out;
    }
    if (status != 200) {
        g_st->err_status++;
        if (!g_st->first_error[0])
            snprintf(g_st->first_error, sizeof g_st->first_error, "status %d", status);
        goto out;
    }
    g_st->ok++;
    g_st->resumed += reused != 0;
    uint64_t us = now_us() - t0;
    g_st->lat_sum_us += us;
    size_t b = us / HIST_STEP_US;
    g_st->hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
    if (ssl)
        SSL_shutdown(ssl);      /* send close_notify; do not wait for the peer's */
out:
    ERR_clear_error();
    SSL_free(ssl);              /* NULL in plaintext mode: a no-op */
    close(fd);
}

static void child(int idx, uint64_t deadline)
{
    g_st += idx;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        _exit(2);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    /* tickets go to our callback only (no internal cache) */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);

    char req[512];
    int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tls_hs\r\n\r\n",
                          opt_path, opt_sni);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt_port) };
    if (inet_pton(AF_INET, opt_host, &sa.sin_addr) != 1)
        _exit(2);
    while (now_us() < deadline)
        one_connection(ctx, &sa, req, (size_t)reqlen);
    _exit(0);
}

static double pct(const uint64_t *h, uint64_t n, double p)
{
    if (!n)
        return 0;
    uint64_t want = (uint64_t)(p * (double)n + 0.5), c = 0;
    if (!want)
        want = 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        c += h[i];
        if (c >= want)
            return (i + 0.5) * HIST_STEP_US;
    }
    return HIST_BUCKETS * HIST_STEP_US;
}

static void json_str(const char *k, const char *v)
{
    printf(",\"%s\":\"", k);
    for (; *v; v++)
        if (*v == '"' || *v == '\\')
            printf("\\%c", *v);
        else if ((unsigned char)*v >= 0x20)
            putchar(*v);
    putchar('"');
}

static void usage(void)
{
    fprintf(stderr, "usage: tls_hs -p PORT [-H 127.0.0.1] [-s SNI] [-u PATH] [-c PROCS] [-d SECS] [-r|-R|-n] [-t TIMEOUT_MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "H:p:s:u:c:d:rRnt:b:")) != -1) {
        switch (o) {
        case 'H': opt_host = optarg; break;
        case 'b': opt_src = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 's': opt_sni = optarg; break;
        case 'u': opt_path = optarg; break;
        case 'c': opt_procs = atoi(optarg); break;
        case 'd': opt_secs = atof(optarg); break;
        case 'r': opt_resume = 1; break;
        case 'R': opt_resume = 2; break;
        case 'n': opt_plain = 1; break;
        case 't': opt_timeout_ms = atoi(optarg); break;
        default: usage();
        }
    }
    if (opt_port <= 0 || opt_procs <= 0 || opt_procs > 256 || opt_secs <= 0 || opt_secs > 600)
        usage();
    signal(SIGPIPE, SIG_IGN);
    size_t sz = sizeof(struct stats) * (size_t)opt_procs;
    g_st = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_st == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    uint64_t t0 = now_us(), deadline = t0 + (uint64_t)(opt_secs * 1e6);
    pid_t *pids = calloc((size_t)opt_procs, sizeof *pids);
    for (int i = 0; i < opt_procs; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            child(i, deadline);
        if (pids[i] < 0) {
            perror("fork");
            opt_procs = i;
            break;
        }
    }
    /* wait for all children; SIGKILL (by PID) whatever overstays by 10 s */
    int left = opt_procs;
    while (left > 0) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p > 0) {
            left--;
            continue;
        }
        if (p < 0 && errno == ECHILD)
            break;
        if (now_us() > deadline + 10000000u) {
            for (int i = 0; i < opt_procs; i++)
                kill(pids[i], SIGKILL);
        }
        usleep(20000);
    }
    double elapsed = (double)(now_us() - t0) / 1e6;

    struct stats tot = { 0 };
    static uint64_t hist[HIST_BUCKETS];
    for (int i = 0; i < opt_procs; i++) {
        struct stats *s = &g_st[i];
        tot.ok += s->ok;
        tot.resumed += s->resumed;
        tot.offered += s->offered;
        tot.tickets += s->tickets;
        tot.err_connect += s->err_connect;
        tot.err_handshake += s->err_handshake;
        tot.err_io += s->err_io;
        tot.err_status += s->err_status;
        tot.lat_sum_us += s->lat_sum_us;
        for (int b = 0; b < HIST_BUCKETS; b++)
            hist[b] += s->hist[b];
        if (!tot.first_error[0] && s->first_error[0])
            memcpy(tot.first_error, s->first_error, sizeof tot.first_error);
        if (!tot.proto[0] && s->proto[0]) {
            memcpy(tot.proto, s->proto, sizeof tot.proto);
            memcpy(tot.cipher, s->cipher, sizeof tot.cipher);
            memcpy(tot.group, s->group, sizeof tot.group);
            memcpy(tot.alpn, s->alpn, sizeof tot.alpn);
        }
    }
    uint64_t errors = tot.err_connect + tot.err_handshake + tot.err_io + tot.err_status;
    uint64_t attempts = tot.ok + errors;
    printf("{\"mode\":\"%s\",\"procs\":%d,\"duration\":%.3f,\"elapsed\":%.3f", opt_plain ? "plain" : opt_resume == 2 ? "reuse" : opt_resume ? "resume" : "full",
           opt_procs, opt_secs, elapsed);
    printf(",\"ok\":%llu,\"rate\":%.1f,\"resumed\":%llu,\"full\":%llu,\"offered\":%llu,\"tickets\":%llu",
           (unsigned long long)tot.ok, (double)tot.ok / opt_secs, (unsigned long long)tot.resumed,
           (unsigned long long)(tot.ok - tot.resumed), (unsigned long long)tot.offered,
           (unsigned long long)tot.tickets);
    printf(",\"tickets_per_conn\":%.3f", attempts ? (double)tot.tickets / (double)attempts : 0.0);
    printf(",\"errors\":%llu,\"err_connect\":%llu,\"err_handshake\":%llu,\"err_io\":%llu,\"err_status\":%llu",
           (unsigned long long)errors, (unsigned long long)tot.err_connect,
           (unsigned long long)tot.err_handshake, (unsigned long long)tot.err_io,
           (unsigned long long)tot.err_status);
    printf(",\"lat_mean_us\":%.0f,\"lat_p50_us\":%.0f,\"lat_p99_us\":%.0f",
           tot.ok ? (double)tot.lat_sum_us / (double)tot.ok : 0.0, pct(hist, tot.ok, 0.50),
           pct(hist, tot.ok, 0.99));
    json_str("proto", tot.proto);
    json_str("cipher", tot.cipher);
    json_str("group", tot.group);
    json_str("alpn", tot.alpn);
    json_str("first_error", tot.first_error);
    printf("}\n");
    return tot.ok ? 0 : 1;
}
