/**
 * The control thread's event loop: the admin HTTP listener (/healthz,
 * /readyz, /metrics), the control-plane API listener (/v1/..., see
 * ctlapi.c), signals (SIGTERM/SIGINT drain, a second one exits at once;
 * SIGHUP reloads; SIGUSR1 is logged and ignored), reloads when the config
 * file or a file it names changes (inotify, see watch.c), and watching the
 * workers finish. It runs on the main thread with its own io_uring ring,
 * the loop/ ring wrapper and the same HTTP/1 parser as the data plane.
 *
 * Also the client side of the control-plane API, for `arc reload`,
 * `arc status` and `arc config get` (arc_ctl_client_request).
 */
#ifndef ARC_ADMIN_ADMIN_H
#define ARC_ADMIN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config/snapshot.h"
#include "proxy/proxy.h"

enum { ARC_RELOAD_OK, ARC_RELOAD_ERROR, ARC_RELOAD_REFUSED, ARC_RELOAD_NONE };

/* The last reload attempt, whatever its trigger (for GET /v1/status). */
struct arc_reload_last {
    int result;                     /* ARC_RELOAD_*; _NONE before the first attempt */
    char trigger[96];               /* "SIGHUP", "file change", "API POST /v1/config from ..." */
    char message[1024];             /* one line: what happened, or the first error */
    time_t at;                      /* wall-clock time of the attempt */
    uint64_t generation;            /* the generation running after it */
};

struct arc_control {
    struct arc_snapshot *snap;      /* the running config: one reference, owned (given by
                                       the caller, replaced by reloads, dropped at the end) */
    struct arc_worker **workers;    /* borrowed */
    size_t n_workers;
    int admin_fd;                   /* listening socket, -1 if metrics are disabled */
    int ctl_fd;                     /* control-plane listening socket, -1 if disabled */
    struct arc_xdp *xdp;            /* the XDP layer (src/xdp; borrowed), NULL: none */
    int signal_fd;                  /* signalfd for SIGTERM, SIGINT, SIGHUP, SIGUSR1 */
    /* The file reloads read, watched for changes; NULL when Arc runs the
     * embedded default (nothing to watch). Borrowed. */
    const char *config_path;
    /* Reload: loads and compiles the config from its source again; NULL
     * when it is invalid, with every error appended to errs (the caller of
     * load prints them). */
    struct arc_snapshot *(*load)(void *ud, struct arc_config_errors *errs);
    void *load_ud;
    /* Reload results, for /metrics and /v1/status (control thread only). */
    uint64_t reloads[3];            /* [ARC_RELOAD_OK, _ERROR, _REFUSED] */
    struct arc_reload_last last;
};

/**
 * Reloads the config from its source (SIGHUP, file change, POST
 * /v1/reload): a config that does not load or compile, or that changes a
 * restart-only field, is refused and the running one stays; otherwise the
 * new snapshot is published and the workers adopt it at the top of their
 * loops. Every outcome is logged with `trigger`. Returns ARC_RELOAD_*.
 * Thread: control.
 */
int arc_control_reload(struct arc_control *ctl, const char *trigger);

/**
 * Runs until every worker has exited after a drain (returns 0) or the ring
 * fails (returns -errno). Thread: main only.
 */
int arc_control_run(struct arc_control *ctl);

/* ------------------------------------------------------------ client */

/** One answer of the control-plane API, as the client read it. */
struct arc_ctl_reply {
    int status;                     /* HTTP status */
    char *body;                     /* owned, NUL-terminated (may hold NULs) */
    size_t body_len;
};

/**
 * Sends one request to the control-plane API at `addr` ("ip:port" or
 * "[ipv6]:port") and reads the whole answer (the server closes after each).
 * `token` (may be NULL) goes out as `Authorization: Bearer`; `body` (may be
 * NULL) with `content_type`. Blocking, with `timeout_ms` for the connect
 * and for each read and write. Returns 0 and fills *reply (free its body),
 * or -1 with a message in err (cannot connect, timeout, malformed answer).
 * Thread: any (it touches no shared state).
 */
int arc_ctl_client_request(const char *addr, const char *method, const char *path,
                           const char *token, const char *content_type, const char *body,
                           size_t body_len, unsigned timeout_ms, struct arc_ctl_reply *reply,
                           char *err, size_t errlen);

/**
 * `arc config push`: stores `text` (a config, canonical JSON) as the value
 * of key <prefix>config in etcd at `endpoint` ("ip:port"), through etcd's
 * JSON gateway (POST /v3/kv/put). Blocking. Returns 0 and the key's new
 * revision, or -1 with a message in err. Thread: any.
 */
int arc_etcd_push(const char *endpoint, const char *prefix, const char *text, size_t len,
                  unsigned timeout_ms, long long *revision, char *err, size_t errlen);

#endif
