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
    struct arc_snapshot *snap;      /* the running config: one reference, owned (given by
                                       the caller, replaced by reloads, dropped at the end) */
    struct arc_worker **workers;    /* borrowed */
    size_t n_workers;
    int admin_fd;                   /* listening socket, -1 if metrics are disabled */
    int signal_fd;                  /* signalfd for SIGTERM, SIGINT, SIGHUP, SIGUSR1 */
    /* Reload: loads and compiles the config from its source again; NULL
     * when it is invalid (the errors were logged with their positions). */
    struct arc_snapshot *(*load)(void *ud);
    void *load_ud;
    /* Reload results, for /metrics (control thread only). */
    uint64_t reloads[3];            /* [ARC_RELOAD_OK, _ERROR, _REFUSED] */
};

enum { ARC_RELOAD_OK, ARC_RELOAD_ERROR, ARC_RELOAD_REFUSED };

/**
 * Reloads the config (SIGHUP, and later the API): a config that does not
 * load or compile, or that changes a restart-only field, is refused and the
 * running one stays; otherwise the new snapshot is published and the
 * workers adopt it at the top of their loops. Returns ARC_RELOAD_*.
 * Thread: control.
 */
int arc_control_reload(struct arc_control *ctl, const char *trigger);

/**
 * Runs until every worker has exited after a drain (returns 0) or the ring
 * fails (returns -errno). Thread: main only.
 */
int arc_control_run(struct arc_control *ctl);

#endif
