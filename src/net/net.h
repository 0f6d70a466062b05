/**
 * Sockets: listeners (SO_REUSEPORT, one per listener per worker, with the
 * options accepted sockets inherit) and upstream sockets, plus address
 * formatting. Plain syscalls: these run at startup or once per upstream
 * connection, never per request.
 * Thread: any. Errors are returned as -errno with a message in err.
 */
#ifndef ARC_NET_NET_H
#define ARC_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config/config.h"

/**
 * Creates, configures, binds and listens one SO_REUSEPORT socket for `l`.
 * If `port_override` is non-zero it replaces the configured port (used so
 * that every worker's socket shares the port the kernel gave the first one
 * when the config says port 0). Returns the fd or -errno (err filled).
 */
int arc_net_listen(const struct arc_listener_conf *l, unsigned port_override,
                   bool reuseport, char *err, size_t errlen);

/* Port of a configured address (0 = kernel-assigned). */
unsigned arc_net_local_port_of(const struct arc_addr *a);

/* Port a bound socket listens on, or 0. */
unsigned arc_net_local_port(int fd);

/* Non-blocking TCP socket for `addr`'s family with TCP_NODELAY set. */
int arc_net_upstream_socket(const struct sockaddr *addr);

/* "1.2.3.4:80" / "[::1]:80"; for the peer address of a client, the IP
 * only (no port) when with_port is false. Returns the length written. */
size_t arc_net_format(const struct sockaddr *sa, char *out, size_t outlen, int with_port);

#endif
