/*
 * arc: command-line entry point.
 *
 *   arc run [-c FILE]     serve
 *   arc check [-c FILE] [--canonical]
 *                         validate, print "ok <fingerprint>" (or the canonical
 *                         JSON) or every error
 *   arc reload | status | config get [-c FILE] [--addr IP:PORT]
 *                         talk to a running Arc's control-plane API
 *   arc config push -c FILE [--etcd URL] [--prefix P]
 *                         validate a config and store it in etcd (a fleet)
 *   arc logs tail|query   read the access log (obs/logcli.c)
 *   arc version           version, build options, io_uring probe
 *
 * Without -c, run and check use ARC_DEFAULT_CONFIG (/etc/arc/arc.yaml) when
 * it exists, else the embedded default config, and say on stderr which one.
 * Exit status: 0 success, 1 failure (bad config, cannot start, second
 * termination signal, a refused or failed API request), 2 usage error.
 */
#include "xdp/xdp.h"
#include "core/log.h"
#include "upstream/active.h"
#include "plugin/plugin.h"
#include "admin/admin.h"
#include "config/config.h"
#include "config/snapshot.h"
#include "core/common.h"
#include "http1/http1.h"
#include "loop/ring.h"
#include "net/net.h"
#include "obs/accesslog.h"
#include "obs/logcli.h"
#include "obs/otlp.h"
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#ifndef ARC_VERSION
#define ARC_VERSION "0.0.0"
#endif
#ifndef ARC_GIT_REV
#define ARC_GIT_REV "unknown"
#endif
#ifndef ARC_BUILD
#define ARC_BUILD "release"
#endif
#ifndef ARC_DEFAULT_CONFIG
#define ARC_DEFAULT_CONFIG "/etc/arc/arc.yaml"
#endif

/* What `arc run` serves without -c when ARC_DEFAULT_CONFIG does not exist:
 * a working gateway that explains itself. */
static const char embedded_config[] =
    "# Arc's embedded default configuration (arc run without -c and no /etc/arc/arc.yaml).\n"
    "listeners:\n"
    "  - name: http\n"
    "    kind: http\n"
    "    bind: \"127.0.0.1:8080\"\n"
    "routes:\n"
    "  - name: welcome\n"
    "    match:\n"
    "      path: \"/\"\n"
    "    action:\n"
    "      respond:\n"
    "        status: 200\n"
    "        headers:\n"
    "          - name: Content-Type\n"
    "            value: \"text/plain; charset=utf-8\"\n"
    "        body: \"Arc is running with its embedded default configuration.\\n\\n"
    "To proxy to a real service, write a config such as:\\n\\n"
    "  listeners:\\n"
    "    - {name: http, kind: http, bind: \\\"127.0.0.1:8080\\\"}\\n"
    "  upstreams:\\n"
    "    - name: app\\n"
    "      discovery: {type: static, endpoints: [{address: \\\"127.0.0.1:3000\\\"}]}\\n"
    "  routes:\\n"
    "    - {name: root, match: {path: \\\"/{*rest}\\\"}, action: {upstream: app}}\\n\\n"
    "and start Arc with: arc run -c arc.yaml   (check it first: arc check -c arc.yaml)\\n"
    "Admin endpoints: http://127.0.0.1:9090/healthz /readyz /metrics\\n\"\n"
    "observability:\n"
    "  metrics_bind: \"127.0.0.1:9090\"\n";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: arc run [-c FILE]     start the gateway\n"
            "       arc check [-c FILE] [--canonical]\n"
            "                             validate a config; prints 'ok <fingerprint>', or\n"
            "                             with --canonical the canonical JSON it hashes\n"
            "       arc reload [-c FILE] [--addr IP:PORT]\n"
            "                             make a running arc read its config file again\n"
            "       arc status [-c FILE] [--addr IP:PORT]\n"
            "                             a running arc's status (JSON)\n"
            "       arc config get [-c FILE] [--addr IP:PORT]\n"
            "                             a running arc's config (canonical JSON)\n"
            "       arc config push -c FILE [--etcd http://IP:PORT] [--prefix P]\n"
            "                             validate FILE and store it in etcd for a fleet\n"
            "                             (default: the file's own config_source.etcd)\n"
            "       arc logs tail [-f] [-n N] | arc logs query  [--file F | -c FILE] [filters] [--json]\n"
            "                             read the access log (filters: --status 5xx|429|404,\n"
            "                             --route, --upstream, --client-ip, --trace-id, --since 10m)\n"
            "       arc xdp status | block CIDR [--ttl 10m] | unblock CIDR  [-c FILE] [--addr IP:PORT]\n"
            "                             the XDP layer: state, counters and blocks; add or\n"
            "                             remove a block (security.xdp must be attached)\n"
            "       arc version           version, build options and io_uring support\n"
            "       arc plugin build [--cache-dir DIR] FILE.wasm...\n"
            "                             compile proxy-wasm modules ahead of time\n"
            "Without -c: " ARC_DEFAULT_CONFIG " if it exists, else the embedded default config.\n"
            "reload/status/config get reach the control-plane API at --addr, else at the\n"
            "config's control_plane.bind; the token is $ARC_TOKEN, else control_plane.auth_token.\n");
}

static int load(const char *path, struct arc_config **cfg, struct arc_config_errors *errs)
{
    return path ? arc_config_load_file(path, cfg, errs)
                : arc_config_load_string(embedded_config, sizeof(embedded_config) - 1,
                                         "<embedded>", "yaml", cfg, errs);
}

/* Loads and compiles; every error is appended to errs. */
static int compile(const char *path, struct arc_snapshot **snap, struct arc_config_errors *errs)
{
    struct arc_config *cfg = NULL;
    if (load(path, &cfg, errs) < 0)
        return -1;
    return arc_snapshot_build(cfg, snap, errs);
}

static int build_snapshot(const char *path, struct arc_snapshot **snap)
{
    struct arc_config_errors errs = { 0 };
    int rc = compile(path, snap, &errs);
    if (rc < 0) {
        for (size_t i = 0; i < errs.n; i++)
            arc_log_at(ARC_LOG_ERROR, errs.v[i].file, errs.v[i].line, errs.v[i].col, errs.v[i].msg);
        arc_log(ARC_LOG_ERROR, "%zu error%s in %s", errs.n, errs.n == 1 ? "" : "s",
                path ? path : "<embedded>");
    }
    arc_config_errors_dispose(&errs);
    return rc;
}

/* The reload source: the same file (or the embedded default) again. The
 * control thread prints the errors, with the reload's trigger. */
static struct arc_snapshot *reload_load(void *ud, struct arc_config_errors *errs)
{
    struct arc_snapshot *s = NULL;
    return compile(ud, &s, errs) < 0 ? NULL : s;
}

/* The file to use when no -c was given: ARC_DEFAULT_CONFIG if it exists,
 * else NULL (the embedded default). Only a file that is certainly absent
 * falls back: one that exists but cannot be read is loaded, so that the
 * error is reported instead of a different config starting silently. */
static const char *default_config(void)
{
    if (access(ARC_DEFAULT_CONFIG, F_OK) == 0 || errno != ENOENT)
        return ARC_DEFAULT_CONFIG;
    return NULL;
}

static void say_config(const char *path, bool given)
{
    if (path)
        arc_log(ARC_LOG_INFO, "using config %s%s", path, given ? "" : " (no -c given)");
    else
        arc_log(ARC_LOG_INFO, "using the embedded default config (no -c given and "
                        ARC_DEFAULT_CONFIG " does not exist)");
}

static const char *opt_config(int argc, char **argv, int *bad)
{
    const char *path = NULL;
    for (int i = 2; i < argc; i++) {
        bool opt_c = strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0;
        if (opt_c && i + 1 < argc) {
            path = argv[++i];
        } else if (opt_c) {
            arc_log(ARC_LOG_ERROR, "%s needs a file name", argv[i]);
            *bad = 1;
        } else {
            arc_log(ARC_LOG_ERROR, "unexpected argument '%s'", argv[i]);
            *bad = 1;
        }
    }
    return path;
}

static int cmd_check(int argc, char **argv)
{
    int bad = 0;
    /* --canonical: print the canonical JSON (what the fingerprint hashes)
     * instead of "ok <fingerprint>". */
    bool canonical = false;
    char *args[argc + 1];
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && strcmp(argv[i], "--canonical") == 0)
            canonical = true;
        else
            args[n++] = argv[i];
    }
    args[n] = NULL;
    argc = n;
    argv = args;
    const char *path = opt_config(argc, argv, &bad);
    if (bad) {
        usage(stderr);
        return 2;
    }
    if (!path) {
        path = default_config();
        say_config(path, false);
    }
    struct arc_snapshot *snap;
    if (build_snapshot(path, &snap) < 0)
        return 1;
    if (canonical)
        printf("%s\n", snap->cfg->canonical_json);
    else
        printf("ok %s\n", snap->cfg->fingerprint);
    arc_snapshot_unref(snap);
    return 0;
}

static int cmd_version(void)
{
    printf("arc %s (%s, %s build)\n", ARC_VERSION, ARC_GIT_REV, ARC_BUILD);
    printf("built with: liburing 2.x, gcc %d.%d, C17\n",
           __GNUC__, __GNUC_MINOR__);
    printf("features: http/1.1 and http/2 proxy (tls, h2c, grpc), yaml+json+toml config, "
           "hot reload, control-plane api, prometheus metrics, access log, request ids, "
           "w3c trace context with otlp export\n");
    char msg[512] = "", report[2048] = "";
    int rc = arc_loop_probe(msg, sizeof(msg), report, sizeof(report));
    printf("io_uring probe:\n");
    for (char *line = strtok(report, "\n"); line; line = strtok(NULL, "\n"))
        printf("  %s\n", line);
    printf("io_uring: %s%s%s\n", rc == 0 ? "usable" : "NOT usable: ", rc == 0 ? "" : msg, "");
    return 0;
}

/* `a` with its port replaced by the one the kernel gave, as text. */
static const char *shown_addr(const struct arc_addr *a, unsigned port, char *out, size_t len)
{
    struct arc_addr shown = *a;
    if (shown.ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&shown.ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&shown.ss)->sin6_port = htons((uint16_t)port);
    arc_net_format((struct sockaddr *)&shown.ss, out, len, 1);
    return out;
}

/* CPUs this process may run on, in order: worker i is pinned to cpus[i]. */
static size_t usable_cpus(int *cpus, size_t max)
{
    cpu_set_t set;
    size_t n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        for (int i = 0; i < CPU_SETSIZE && n < max; i++)
            if (CPU_ISSET(i, &set))
                cpus[n++] = i;
    return n;
}

static int cmd_run(int argc, char **argv)
{
    int bad = 0;
    const char *path = opt_config(argc, argv, &bad);
    if (bad) {
        usage(stderr);
        return 2;
    }
    /* Signals are read from a signalfd by the control loop; block them
     * before anything else (and before any thread starts, so every thread
     * inherits the mask): a SIGHUP during start-up must not kill Arc either.
     * A SIGTERM or SIGINT that arrives while starting begins the drain as
     * soon as the control loop runs. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* Writes to a closed peer fail with EPIPE (sends also pass MSG_NOSIGNAL). */
    signal(SIGPIPE, SIG_IGN);
    arc_log_init();                     /* the system log's format on stderr */
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        arc_log(ARC_LOG_ERROR, "signalfd: %s", strerror(errno));
        return 1;
    }

    bool given = path != NULL;
    if (!given)
        path = default_config();
    say_config(path, given);

    char msg[512];
    if (arc_loop_probe(msg, sizeof(msg), NULL, 0) < 0) {
        arc_log(ARC_LOG_ERROR, "cannot start: %s", msg);
        return 1;
    }
    struct arc_snapshot *snap;
    if (build_snapshot(path, &snap) < 0)
        return 1;
    const struct arc_config *cfg = snap->cfg;
    arc_snapshot_publish(snap);

    /* security.xdp: attached before the listeners open; with required: true
     * a layer that cannot attach stops the start (its reason is logged). */
    struct arc_xdp *xdp = arc_xdp_start(&cfg->xdp);
    if (cfg->xdp.enabled && cfg->xdp.required && arc_xdp_state(xdp) != ARC_XDP_ATTACHED) {
        arc_log(ARC_LOG_ERROR, "cannot start: security.xdp.required is true and XDP is not "
                "attached: %s", arc_xdp_why(xdp));
        arc_xdp_stop(xdp);
        return 1;
    }

    int cpus[1024];
    size_t ncpu = usable_cpus(cpus, ARC_ARRAY_LEN(cpus));
    size_t nw = cfg->node.workers ? cfg->node.workers : (ncpu ? ncpu : 1);

    /* Each proxied connection can need two descriptors (client + upstream). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* Listeners: one SO_REUSEPORT socket per listener per worker. With
     * port 0 the first socket's kernel-assigned port is reused by the rest. */
    size_t nl = cfg->n_listeners;
    int *fds = calloc(nw * nl, sizeof(int));
    unsigned *ports = calloc(nl, sizeof(unsigned));
    ARC_ASSERT(fds && ports);
    char err[512];
    for (size_t l = 0; l < nl; l++) {
        /* The workers' sockets share the port through SO_REUSEPORT, which
         * would also let them join another process's listener silently.
         * A plain bind first makes "someone else listens there" an error. */
        if (arc_net_local_port_of(&cfg->listeners[l].bind) != 0) {
            int probe = arc_net_listen(&cfg->listeners[l], 0, false, err, sizeof(err));
            if (probe < 0) {
                arc_log(ARC_LOG_ERROR, "%s", err);
                return 1;
            }
            close(probe);
        }
        for (size_t i = 0; i < nw; i++) {
            int fd = arc_net_listen(&cfg->listeners[l], ports[l], true, err, sizeof(err));
            if (fd < 0) {
                arc_log(ARC_LOG_ERROR, "%s", err);
                return 1;
            }
            if (i == 0)
                ports[l] = arc_net_local_port(fd);
            fds[i * nl + l] = fd;
        }
    }
    int admin_fd = -1;
    unsigned admin_port = 0;
    if (cfg->metrics_enabled) {
        struct arc_listener_conf al = { .name = "admin", .bind = cfg->metrics_bind, .backlog = 128,
                                        .dscp = -1 };
        admin_fd = arc_net_listen(&al, 0, false, err, sizeof(err));
        if (admin_fd < 0) {
            arc_log(ARC_LOG_ERROR, "observability.metrics_bind: %s", err);
            return 1;
        }
        admin_port = arc_net_local_port(admin_fd);
    }

    int ctl_fd = -1;
    unsigned ctl_port = 0;
    if (cfg->control_plane.enabled) {
        struct arc_listener_conf cl = { .name = "control", .bind = cfg->control_plane.bind,
                                        .backlog = 128, .dscp = -1 };
        ctl_fd = arc_net_listen(&cl, 0, false, err, sizeof(err));
        if (ctl_fd < 0) {
            arc_log(ARC_LOG_ERROR, "control_plane.bind: %s", err);
            return 1;
        }
        ctl_port = arc_net_local_port(ctl_fd);
    }

    /* The access log's rings exist before the workers that fill them. */
    if (cfg->logging.enabled && arc_alog_start(&cfg->logging, nw, err, sizeof(err)) < 0) {
        arc_log(ARC_LOG_ERROR, "%s", err);
        return 1;
    }
    if (!cfg->logging.enabled)
        arc_log_set_sink(NULL);         /* no outputs: stop keeping the start-up records */
    if (arc_otlp_start(&cfg->tracing, cfg->node.id, nw, err, sizeof(err)) < 0) {
        arc_log(ARC_LOG_ERROR, "%s", err);
        return 1;
    }
    _Static_assert(ARC_M_MAX_BUCKETS == ARC_HIST_MAX_BUCKETS, "bucket limits agree");
    /* The metrics layout (histogram bounds, series per route) is fixed for
     * the process before the first worker makes its shard. */
    struct arc_m_conf mc = { .histograms = cfg->histograms.enabled,
                             .n_dur = cfg->histograms.n_duration,
                             .n_size = cfg->histograms.n_size,
                             .status_series = cfg->status_series };
    memcpy(mc.dur_ns, cfg->histograms.duration_ns, sizeof(mc.dur_ns));
    memcpy(mc.size, cfg->histograms.size, sizeof(mc.size));
    ARC_ASSERT(arc_metrics_setup(&mc) == 0);

    /* The Redis tier's thread and rings exist before the workers use them. */
    if (arc_px_gl_start(&cfg->rl_global, nw, err, sizeof(err)) < 0) {
        arc_log(ARC_LOG_ERROR, "%s", err);
        return 1;
    }
    /* The mirror thread takes the workers' copies (routes[].mirror). */
    int mrc = arc_mirror_start(cfg->node.mirror_queue, cfg->node.mirror_max_in_flight);
    if (mrc < 0)
        arc_log(ARC_LOG_WARN, "mirror thread: %s; routes[].mirror copies are dropped",
                strerror(-mrc));
    struct arc_worker **workers = calloc(nw, sizeof(*workers));
    ARC_ASSERT(workers);
    for (size_t i = 0; i < nw; i++) {
        int cpu = nw <= ncpu ? cpus[i] : -1;
        workers[i] = arc_worker_start((unsigned)i, cpu, snap, &fds[i * nl], nl, cfg->node.max_connections,
                                      err, sizeof(err));
        if (!workers[i]) {
            arc_log(ARC_LOG_ERROR, "worker %zu: %s", i, err);
            return 1;
        }
    }
    for (size_t i = 0; i < nw; i++) {
        while (!arc_worker_ready(workers[i]))
            usleep(1000);
        if (arc_worker_error(workers[i])) {
            arc_log(ARC_LOG_ERROR, "cannot start: %s", arc_worker_error(workers[i]));
            return 1;
        }
    }
    for (size_t l = 0; l < nl; l++) {
        char a[80];
        arc_log(ARC_LOG_INFO, "listening listener=%s addr=%s", cfg->listeners[l].name,
                shown_addr(&cfg->listeners[l].bind, ports[l], a, sizeof(a)));
    }
    if (admin_fd >= 0) {
        char a[80];
        arc_log(ARC_LOG_INFO, "admin listening addr=%s",
                shown_addr(&cfg->metrics_bind, admin_port, a, sizeof(a)));
    }
    if (ctl_fd >= 0) {
        char a[80];
        arc_log(ARC_LOG_INFO, "control plane listening addr=%s auth=%s",
                shown_addr(&cfg->control_plane.bind, ctl_port, a, sizeof(a)),
                cfg->control_plane.has_token ? "bearer-token" : "loopback-only");
    }
    arc_log(ARC_LOG_INFO, "ready workers=%zu fingerprint=%s", nw, cfg->fingerprint);

    /* The control thread takes over our reference (reloads replace it). */
    struct arc_control ctl = { .snap = snap, .workers = workers, .n_workers = nw,
                               .admin_fd = admin_fd, .ctl_fd = ctl_fd, .signal_fd = sfd,
                               .xdp = xdp,
                               .config_path = path,
                               .load = reload_load, .load_ud = (void *)path };
    /* Active health checks follow the published snapshot (idle while no
     * upstream asks for them). */
    int hrc = arc_active_start();
    if (hrc < 0)
        arc_log(ARC_LOG_ERROR, "health-check thread: %s; health.active checks are off",
                strerror(-hrc));
    int rc = arc_control_run(&ctl);
    arc_active_stop();
    for (size_t i = 0; i < nw; i++)
        arc_worker_join(workers[i]);
    arc_mirror_stop();                  /* (after the workers: nothing is pushed any more) */
    for (size_t i = 0; i < nw; i++)
        arc_worker_free(workers[i]);
    free(workers);
    arc_log(ARC_LOG_INFO, "stopping: workers done, flushing the access log");
    arc_xdp_stop(xdp);
    arc_px_gl_stop();                   /* after the workers: nothing posts any more */
    arc_alog_stop();                    /* after the workers: their last records are written */
    arc_otlp_stop();                    /* (and their last spans sent) */
    free(fds);
    free(ports);
    if (admin_fd >= 0)
        close(admin_fd);
    if (ctl_fd >= 0)
        close(ctl_fd);
    close(sfd);
    arc_log(ARC_LOG_INFO, "stopped");
    return rc < 0 ? 1 : 0;
}

/* ------------------------------------------------------------ API client */

#define CLI_TIMEOUT_MS 30000

struct cli_target {
    char addr[80];
    char token[ARC_CP_TOKEN_MAX + 1];
};

/* Where the control plane of the config at `path` listens, as an address
 * to connect to (a wildcard bind is reached on loopback). */
static int bind_to_connect(const struct arc_addr *bind, char *out, size_t len)
{
    struct arc_addr a = *bind;
    if (a.ss.ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a.ss;
        if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (!s4->sin_port)
            return -1;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
            s6->sin6_addr = in6addr_loopback;
        if (!s6->sin6_port)
            return -1;
    }
    arc_net_format((struct sockaddr *)&a.ss, out, len, 1);
    return 0;
}

/* Parses [-c FILE] [--addr IP:PORT] from argv[first..] and finds the
 * address and token. Returns 0, 1 (error, said) or 2 (usage error, said). */
static int cli_target(int argc, char **argv, int first, struct cli_target *t)
{
    const char *path = NULL, *addr = NULL;
    for (int i = first; i < argc; i++) {
        bool opt_c = strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0;
        bool opt_a = strcmp(argv[i], "--addr") == 0;
        if ((opt_c || opt_a) && i + 1 < argc) {
            *(opt_c ? &path : &addr) = argv[++i];
        } else if (strncmp(argv[i], "--addr=", 7) == 0) {
            addr = argv[i] + 7;
        } else if (opt_c || opt_a) {
            fprintf(stderr, "arc: %s needs %s\n", argv[i], opt_c ? "a file name" : "an address");
            return 2;
        } else {
            fprintf(stderr, "arc: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    memset(t, 0, sizeof(*t));
    struct arc_config *cfg = NULL;
    /* With --addr the config is read only if -c names one (for its token). */
    if (!addr && !path && !(path = default_config())) {
        fprintf(stderr, "arc: no config file to find the control plane in (no -c given and "
                ARC_DEFAULT_CONFIG " does not exist); pass --addr\n");
        return 1;
    }
    if (path) {
        struct arc_config_errors errs = { 0 };
        if (arc_config_load_file(path, &cfg, &errs) < 0) {
            arc_config_errors_print(&errs, stderr);
            fprintf(stderr, "arc: %zu error%s in %s\n", errs.n, errs.n == 1 ? "" : "s", path);
            arc_config_errors_dispose(&errs);
            return 1;
        }
        arc_config_errors_dispose(&errs);
    }
    int rc = 0;
    if (addr) {
        snprintf(t->addr, sizeof(t->addr), "%s", addr);
    } else if (!cfg->control_plane.enabled) {
        fprintf(stderr, "arc: control_plane is not enabled in %s; pass --addr to reach another "
                "address\n", path);
        rc = 1;
    } else if (bind_to_connect(&cfg->control_plane.bind, t->addr, sizeof(t->addr)) < 0) {
        fprintf(stderr, "arc: control_plane.bind in %s has port 0 (kernel-assigned: see the "
                "'control plane listening' line of arc run); pass --addr\n", path);
        rc = 1;
    }
    const char *env = getenv("ARC_TOKEN");
    if (env && *env)
        snprintf(t->token, sizeof(t->token), "%s", env);
    else if (cfg && cfg->control_plane.has_token)
        snprintf(t->token, sizeof(t->token), "%s", cfg->control_plane.auth_token);
    arc_config_free(cfg);
    return rc;
}

/* Says why a request did not succeed: the server's message (the JSON
 * "error" or "message" member, and each config error), else its body. */
static void cli_explain(const char *what, const struct arc_ctl_reply *r)
{
    json_error_t je;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &je);
    const char *msg = NULL;
    if (json_is_object(doc)) {
        msg = json_string_value(json_object_get(doc, "error"));
        if (!msg)
            msg = json_string_value(json_object_get(doc, "message"));
    }
    if (msg)
        fprintf(stderr, "arc: %s: %d %s: %s\n", what, r->status, arc_h1_reason(r->status), msg);
    else
        fprintf(stderr, "arc: %s: %d %s%s%.*s\n", what, r->status, arc_h1_reason(r->status),
                r->body_len ? ": " : "", (int)ARC_MIN(r->body_len, 2000), r->body);
    json_t *errs = json_is_object(doc) ? json_object_get(doc, "errors") : NULL;
    size_t i;
    json_t *e;
    json_array_foreach(errs, i, e)
        fprintf(stderr, "%s:%lld:%lld: error: %s\n",
                json_string_value(json_object_get(e, "file")) ?: "?",
                (long long)json_integer_value(json_object_get(e, "line")),
                (long long)json_integer_value(json_object_get(e, "col")),
                json_string_value(json_object_get(e, "message")) ?: "");
    json_t *fields = json_is_object(doc) ? json_object_get(doc, "restart_required") : NULL;
    if (json_array_size(fields)) {
        fprintf(stderr, "arc: fields that need a restart:");
        json_array_foreach(fields, i, e)
            fprintf(stderr, " %s", json_string_value(e) ?: "?");
        fprintf(stderr, "\n");
    }
    json_decref(doc);
}

/* arc config push -c FILE [--etcd http://IP:PORT] [--prefix P]: compiles the
 * file like `arc check` (certificates included), then stores its canonical
 * JSON in etcd. 0 pushed, 1 invalid or etcd failed, 2 usage. */
static int cmd_config_push(int argc, char **argv)
{
    const char *path = NULL, *etcd = NULL, *prefix = NULL;
    for (int i = 3; i < argc; i++) {
        const char **dst = strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0 ? &path
                         : strcmp(argv[i], "--etcd") == 0 ? &etcd
                         : strcmp(argv[i], "--prefix") == 0 ? &prefix : NULL;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "arc: %s '%s'\n", dst ? "a value is needed after" : "unexpected "
                    "argument", argv[i]);
            usage(stderr);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!path) {
        fprintf(stderr, "arc: config push needs -c FILE\n");
        usage(stderr);
        return 2;
    }
    struct arc_snapshot *snap;
    if (build_snapshot(path, &snap) < 0)
        return 1;
    const struct arc_control_plane_conf *cp = &snap->cfg->control_plane;
    char ep[80];
    if (etcd) {
        struct arc_addr a;
        if (strncmp(etcd, "http://", 7) != 0 || arc_config_parse_addr(etcd + 7, &a) < 0) {
            fprintf(stderr, "arc: --etcd '%s': expected http://ip:port\n", etcd);
            arc_snapshot_unref(snap);
            return 2;
        }
        snprintf(ep, sizeof(ep), "%s", a.text);
    } else if (cp->n_etcd) {
        snprintf(ep, sizeof(ep), "%s", cp->etcd[0].text);
    } else {
        fprintf(stderr, "arc: %s has no control_plane.config_source.etcd: pass --etcd\n", path);
        arc_snapshot_unref(snap);
        return 2;
    }
    if (!prefix)
        prefix = cp->n_etcd ? cp->etcd_prefix : "/arc/";
    long long rev = 0;
    char err[512];
    const char *text = snap->cfg->canonical_json;
    int rc = arc_etcd_push(ep, prefix, text, strlen(text), CLI_TIMEOUT_MS, &rev, err,
                           sizeof(err));
    if (rc < 0)
        fprintf(stderr, "arc: config push to etcd %s: %s\n", ep, err);
    else
        printf("pushed fingerprint=%s to etcd http://%s key %sconfig revision=%lld\n",
               snap->cfg->fingerprint, ep, prefix, rev);
    arc_snapshot_unref(snap);
    return rc < 0 ? 1 : 0;
}

/* arc reload | status | config get: 0 on a 2xx answer, 1 otherwise. */
static int cmd_api(int argc, char **argv)
{
    bool config_get = strcmp(argv[1], "config") == 0;
    if (config_get && argc >= 3 && strcmp(argv[2], "push") == 0)
        return cmd_config_push(argc, argv);
    if (config_get && (argc < 3 || strcmp(argv[2], "get") != 0)) {
        fprintf(stderr, "arc: 'arc config' needs a subcommand: get or push\n");
        usage(stderr);
        return 2;
    }
    struct cli_target t;
    int rc = cli_target(argc, argv, config_get ? 3 : 2, &t);
    if (rc == 2)
        usage(stderr);
    if (rc)
        return rc;
    const char *method = "GET", *path = "/v1/status", *what = "status";
    if (strcmp(argv[1], "reload") == 0) {
        method = "POST";
        path = "/v1/reload";
        what = "reload";
    } else if (config_get) {
        path = "/v1/config";
        what = "config get";
    }
    struct arc_ctl_reply r;
    char err[512];
    if (arc_ctl_client_request(t.addr, method, path, t.token, NULL, NULL, 0, CLI_TIMEOUT_MS,
                               &r, err, sizeof(err)) < 0) {
        fprintf(stderr, "arc: %s: %s\n", what, err);
        return 1;
    }
    if (r.status / 100 != 2) {
        cli_explain(what, &r);
        free(r.body);
        return 1;
    }
    if (strcmp(what, "reload") == 0) {
        json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
        const char *msg = json_string_value(json_object_get(doc, "message"));
        printf("reloaded: %s\n", msg ? msg : "ok");
        json_decref(doc);
    } else {
        fwrite(r.body, 1, r.body_len, stdout);
        if (!r.body_len || r.body[r.body_len - 1] != '\n')
            putchar('\n');
    }
    free(r.body);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* arc xdp status | block CIDR [--ttl D] | unblock CIDR: 0 on a 2xx answer. */
static int cmd_xdp(int argc, char **argv)
{
    const char *sub = argc >= 3 ? argv[2] : "";
    bool status = strcmp(sub, "status") == 0, block = strcmp(sub, "block") == 0;
    bool unblock = strcmp(sub, "unblock") == 0;
    if (!status && !block && !unblock) {
        fprintf(stderr, "arc: 'arc xdp' needs a subcommand: status, block or unblock\n");
        usage(stderr);
        return 2;
    }
    const char *cidr = NULL, *ttl = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    ARC_ASSERT(rest != NULL);
    int n = 0;
    rest[n++] = argv[0];
    rest[n++] = argv[1];
    for (int i = 3; i < argc; i++) {
        if (block && strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
            ttl = argv[++i];
        else if (!status && !cidr && argv[i][0] != '-')
            cidr = argv[i];
        else
            rest[n++] = argv[i];
    }
    int rc = 0;
    if (!status && !cidr) {
        fprintf(stderr, "arc: xdp %s needs a CIDR (\"10.1.2.0/24\", \"2001:db8::1\")\n", sub);
        rc = 2;
    }
    struct cli_target t;
    if (!rc)
        rc = cli_target(n, rest, 2, &t);
    free(rest);
    if (rc == 2)
        usage(stderr);
    if (rc)
        return rc;
    char what[32];
    snprintf(what, sizeof(what), "xdp %s", sub);
    json_t *body = NULL;
    if (!status) {
        body = json_pack("{s:s}", "cidr", cidr);
        if (ttl)
            json_object_set_new(body, "ttl", json_string(ttl));
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct arc_ctl_reply r;
    char err[512];
    rc = arc_ctl_client_request(t.addr, status ? "GET" : block ? "POST" : "DELETE",
                                status ? "/v1/xdp/stats" : "/v1/xdp/blocks", t.token,
                                text ? "application/json" : NULL, text, text ? strlen(text) : 0,
                                CLI_TIMEOUT_MS, &r, err, sizeof(err));
    free(text);
    if (rc < 0) {
        fprintf(stderr, "arc: %s: %s\n", what, err);
        return 1;
    }
    if (r.status / 100 != 2) {
        cli_explain(what, &r);
        free(r.body);
        return 1;
    }
    if (status) {
        /* the counters, then the blocks */
        fwrite(r.body, 1, r.body_len, stdout);
        putchar('\n');
        free(r.body);
        if (arc_ctl_client_request(t.addr, "GET", "/v1/xdp/blocks", t.token, NULL, NULL, 0,
                                   CLI_TIMEOUT_MS, &r, err, sizeof(err)) == 0) {
            if (r.status / 100 == 2)
                fwrite(r.body, 1, r.body_len, stdout);
            putchar('\n');
            free(r.body);
        }
    } else {
        json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
        const char *res = json_string_value(json_object_get(doc, "result"));
        const char *c = json_string_value(json_object_get(doc, "cidr"));
        printf("%s %s\n", res ? res : "ok", c ? c : cidr);
        json_decref(doc);
        free(r.body);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc, argv);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc, argv);
    if (strcmp(argv[1], "reload") == 0 || strcmp(argv[1], "status") == 0 ||
        strcmp(argv[1], "config") == 0)
        return cmd_api(argc, argv);
    if (strcmp(argv[1], "xdp") == 0)
        return cmd_xdp(argc, argv);
    if (strcmp(argv[1], "logs") == 0)
        return arc_logs_main(argc, argv, ARC_DEFAULT_CONFIG);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)
        return cmd_version();
    if (strcmp(argv[1], "plugin") == 0)
        return arc_plugin_cli(argc, argv);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "arc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
