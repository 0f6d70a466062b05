/**
 * The control thread's event loop: the admin HTTP listener (/healthz,
 * /readyz, /metrics), signals (SIGTERM/SIGINT drain, a second one exits at
 * once; SIGHUP/SIGUSR1 are logged and ignored) and watching the workers
 * finish. It runs on the main
 * thread with its own io_uring ring, the loop/ ring wrapper and the same
 * HTTP/1 parser as the data plane.
 */
#ifndef ARC_ADMIN_ADMIN_H
#define ARC_ADMIN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "config/snapshot.h"
#include "proxy/proxy.h"

struct arc_control {
    struct arc_snapshot *snap;      /* borrowed */
    struct arc_worker **workers;    /* borrowed */
    size_t n_workers;
    int admin_fd;                   /* listening socket, -1 if metrics are disabled */
    int signal_fd;                  /* signalfd for SIGTERM, SIGINT, SIGHUP, SIGUSR1 */
};

/**
 * Runs until every worker has exited after a drain (returns 0) or the ring
 * fails (returns -errno). Thread: main only.
 */
int arc_control_run(struct arc_control *ctl);

#endif
