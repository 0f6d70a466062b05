/*
 * Listener and upstream sockets. See net.h.
 */
#include "net/net.h"
#include "core/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int set_int(int fd, int level, int opt, int v)
{
    return setsockopt(fd, level, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

int arc_net_listen(const struct arc_listener_conf *l, unsigned port_override,
                   bool reuseport, char *err, size_t errlen)
{
    struct sockaddr_storage ss = l->bind.ss;
    if (port_override) {
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port_override);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port_override);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "listener '%s': socket: %s", l->name, strerror(e));
        return -e;
    }
    int rc = 0;
    const char *what = "";
    /* Accepted sockets inherit these from the listener; that matters because
     * Arc never calls setsockopt on an accepted socket. Without TCP_NODELAY
     * small writes stall ~40 ms on Nagle + delayed ACK. */
    if ((rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0) what = "SO_REUSEADDR";
    /* SO_REUSEPORT only where we want several sockets on one port (one per
     * worker): elsewhere it would let a second process bind the same port
     * silently and steal a share of its connections. */
    else if (reuseport && (rc = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)) < 0) what = "SO_REUSEPORT";
    else if ((rc = set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1)) < 0) what = "TCP_NODELAY";
    if (!rc && ss.ss_family == AF_INET6 && (rc = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) < 0)
        what = "IPV6_V6ONLY";
    if (!rc && l->defer_accept &&
        (rc = set_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, (int)((l->defer_accept + 999) / 1000))) < 0)
        what = "TCP_DEFER_ACCEPT";
    if (!rc && l->tcp_fastopen_backlog &&
        (rc = set_int(fd, IPPROTO_TCP, TCP_FASTOPEN, (int)l->tcp_fastopen_backlog)) < 0)
        what = "TCP_FASTOPEN";
    if (!rc && l->dscp >= 0) {
        int tos = l->dscp << 2;
        rc = ss.ss_family == AF_INET ? set_int(fd, IPPROTO_IP, IP_TOS, tos)
                                     : set_int(fd, IPPROTO_IPV6, IPV6_TCLASS, tos);
        if (rc < 0) what = "DSCP";
    }
    if (!rc && l->keepalive_enabled) {
        if ((rc = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1)) < 0) what = "SO_KEEPALIVE";
        else if (l->keepalive_idle &&
                 (rc = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)ARC_MAX(1, l->keepalive_idle / 1000))) < 0)
            what = "TCP_KEEPIDLE";
        else if (l->keepalive_interval &&
                 (rc = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)ARC_MAX(1, l->keepalive_interval / 1000))) < 0)
            what = "TCP_KEEPINTVL";
        else if (l->keepalive_count &&
                 (rc = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)l->keepalive_count)) < 0)
            what = "TCP_KEEPCNT";
    }
    if (rc < 0) {
        snprintf(err, errlen, "listener '%s': setsockopt %s: %s", l->name, what, strerror(-rc));
        close(fd);
        return rc;
    }
    if (bind(fd, (struct sockaddr *)&ss, l->bind.len) < 0) {
        int e = errno;
        snprintf(err, errlen, "listener '%s': cannot bind %s: %s%s", l->name, l->bind.text,
                 strerror(e), e == EADDRINUSE ? " (another process listens there)" :
                 e == EACCES ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" : "");
        close(fd);
        return -e;
    }
    if (listen(fd, (int)(l->backlog ? l->backlog : 4096)) < 0) {
        int e = errno;
        snprintf(err, errlen, "listener '%s': listen: %s", l->name, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

unsigned arc_net_local_port_of(const struct arc_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return 0;
}

unsigned arc_net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int arc_net_upstream_socket(const struct sockaddr *addr)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

size_t arc_net_format(const struct sockaddr *sa, char *out, size_t outlen, int with_port)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    int n;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        port = ntohs(s->sin_port);
        n = with_port ? snprintf(out, outlen, "%s:%u", ip, port) : snprintf(out, outlen, "%s", ip);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        port = ntohs(s->sin6_port);
        n = with_port ? snprintf(out, outlen, "[%s]:%u", ip, port) : snprintf(out, outlen, "%s", ip);
    } else {
        n = snprintf(out, outlen, "unknown");
    }
    return n < 0 ? 0 : ARC_MIN((size_t)n, outlen ? outlen - 1 : 0);
}
