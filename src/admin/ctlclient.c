/*
 * The control-plane API's client, for the CLI (`arc reload`, `arc status`,
 * `arc config get`): one blocking request per connection, the whole answer
 * read until the server closes (it always does: Connection: close).
 */
#include "admin/admin.h"
#include "config/config.h"
#include "core/sbuf.h"
#include "http1/http1.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Answers bigger than this are refused (a config is at most 16 MiB). */
#define REPLY_MAX (32u << 20)

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Waits for `events` on fd; 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, unsigned timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    for (;;) {
        int r = poll(&p, 1, (int)timeout_ms);
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int send_all(int fd, const char *p, size_t n, unsigned timeout_ms)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, timeout_ms);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int arc_ctl_client_request(const char *addr, const char *method, const char *path,
                           const char *token, const char *content_type, const char *body,
                           size_t body_len, unsigned timeout_ms, struct arc_ctl_reply *reply,
                           char *err, size_t errlen)
{
    memset(reply, 0, sizeof(*reply));
    struct arc_addr a;
    if (arc_config_parse_addr(addr, &a) < 0)
        return fail(err, errlen, "'%s' is not an address (expected ip:port or [ipv6]:port)", addr);
    int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return fail(err, errlen, "socket: %s", strerror(errno));
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&a.ss, a.len) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
        } else if ((rc = wait_fd(fd, POLLOUT, timeout_ms)) == 0) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            rc = -soerr;
        }
    }
    if (rc < 0) {
        close(fd);
        return fail(err, errlen, "cannot connect to the control plane at %s: %s", a.text,
                    strerror(-rc));
    }

    struct arc_sbuf q = { 0 };
    arc_sbuf_printf(&q, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: arc-cli\r\n"
                        "Connection: close\r\nAccept: application/json\r\n", method, path, a.text);
    if (token && *token)
        arc_sbuf_printf(&q, "Authorization: Bearer %s\r\n", token);
    if (body || strcmp(method, "POST") == 0) {
        if (content_type)
            arc_sbuf_printf(&q, "Content-Type: %s\r\n", content_type);
        arc_sbuf_printf(&q, "Content-Length: %zu\r\n", body ? body_len : 0);
    }
    arc_sbuf_append(&q, "\r\n", 2);
    if (body && body_len)
        arc_sbuf_append(&q, body, body_len);
    rc = send_all(fd, q.p, q.len, timeout_ms);
    arc_sbuf_dispose(&q);
    /* The server may answer before it has read a whole body (413, 401):
     * a failed send is reported only if no answer can be read. */
    int send_rc = rc;

    struct arc_sbuf in = { 0 };
    char buf[16384];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0) {
            if (in.len + (size_t)r > REPLY_MAX) {
                rc = -EFBIG;
                break;
            }
            arc_sbuf_append(&in, buf, (size_t)r);
            continue;
        }
        if (r == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            /* A reset after a complete answer still leaves the answer. */
            rc = in.len ? 0 : -errno;
            break;
        }
        rc = wait_fd(fd, POLLIN, timeout_ms);
        if (rc < 0)
            break;
    }
    close(fd);
    if (rc < 0 || (!in.len && send_rc < 0)) {
        arc_sbuf_dispose(&in);
        return fail(err, errlen, "control plane at %s: %s", a.text,
                    strerror(rc < 0 ? -rc : -send_rc));
    }

    struct arc_h1_header hdrs[64];
    struct arc_h1_response resp;
    struct arc_h1_limits lim = { .max_header_bytes = 65536, .max_headers = 64 };
    enum arc_h1_status st = in.p ? arc_h1_parse_response(in.p, in.len, &lim,
                                                         strcmp(method, "HEAD") == 0, false,
                                                         hdrs, 64, &resp)
                                 : ARC_H1_INCOMPLETE;
    if (st != ARC_H1_OK) {
        arc_sbuf_dispose(&in);
        return fail(err, errlen, "control plane at %s: %s answer", a.text,
                    st == ARC_H1_INCOMPLETE ? "no (or a truncated)" : "a malformed");
    }
    size_t blen = in.len - resp.head_len;
    if (resp.body == ARC_H1_BODY_LENGTH) {
        if (blen < resp.content_length) {
            arc_sbuf_dispose(&in);
            return fail(err, errlen, "control plane at %s: truncated answer", a.text);
        }
        blen = (size_t)resp.content_length;
    } else if (resp.body == ARC_H1_BODY_NONE) {
        blen = 0;
    } else if (resp.body == ARC_H1_BODY_CHUNKED) {
        /* (etcd's gateway, which `arc config push` talks to, may chunk) */
        struct arc_h1_chunked ch;
        arc_h1_chunked_init(&ch);
        const char *p = in.p + resp.head_len;
        size_t left = blen, out = 0;
        enum arc_h1_chunk_rc crc = ARC_H1_CHUNK_AGAIN;
        while (left) {
            size_t used, dlen;
            const char *data, *why;
            crc = arc_h1_chunked_next(&ch, p, left, &used, &data, &dlen, &why);
            if (crc == ARC_H1_CHUNK_ERROR)
                break;
            if (crc == ARC_H1_CHUNK_DATA) {
                memmove(in.p + resp.head_len + out, data, dlen);  /* decoded <= framed */
                out += dlen;
            }
            p += used;
            left -= used;
            if (crc == ARC_H1_CHUNK_DONE)
                break;
        }
        if (crc != ARC_H1_CHUNK_DONE) {
            arc_sbuf_dispose(&in);
            return fail(err, errlen, "control plane at %s: truncated or malformed chunked "
                        "answer", a.text);
        }
        blen = out;
    }
    reply->status = resp.status;
    reply->body = malloc(blen + 1);
    if (!reply->body) {
        arc_sbuf_dispose(&in);
        return fail(err, errlen, "out of memory");
    }
    memcpy(reply->body, in.p + resp.head_len, blen);
    reply->body[blen] = '\0';
    reply->body_len = blen;
    arc_sbuf_dispose(&in);
    return 0;
}
