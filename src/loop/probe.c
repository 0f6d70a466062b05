/*
 * Startup probe: find out, before any worker starts, whether this kernel and
 * sandbox let Arc use io_uring the way it needs to, and if not say why in
 * words an operator can act on (a bare "EPERM" helps nobody).
 */
#include "loop/ring.h"
#include "core/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>

static void add(char *report, size_t len, size_t *off, const char *fmt, ...)
{
    if (!report || *off >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(report + *off, len - *off, fmt, ap);
    va_end(ap);
    if (n > 0)
        *off += (size_t)n;
}

static int read_sysctl(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int v = -1;
    if (fscanf(f, "%d", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

int arc_loop_probe(char *msg, size_t msglen, char *report, size_t reportlen)
{
    size_t off = 0;
    struct utsname u;
    if (uname(&u) == 0)
        add(report, reportlen, &off, "kernel: %s\n", u.release);

    int disabled = read_sysctl("/proc/sys/kernel/io_uring_disabled");
    if (disabled >= 0)
        add(report, reportlen, &off, "kernel.io_uring_disabled: %d\n", disabled);

    struct io_uring ring;
    struct arc_ring_opts o = { .entries = 8, .single_issuer = true };
    int rc = arc_ring_init(&ring, &o);
    if (rc == -EINVAL) {
        /* Older kernels reject SINGLE_ISSUER/DEFER_TASKRUN (< 6.1). */
        o.single_issuer = false;
        if (arc_ring_init(&ring, &o) == 0) {
            io_uring_queue_exit(&ring);
            snprintf(msg, msglen, "this kernel (%s) has io_uring but not "
                     "IORING_SETUP_SINGLE_ISSUER/DEFER_TASKRUN; Arc needs Linux 6.1 or newer",
                     u.release);
            add(report, reportlen, &off, "single_issuer+defer_taskrun: no\n");
            return -1;
        }
    }
    if (rc < 0) {
        if (rc == -ENOSYS)
            snprintf(msg, msglen, "io_uring is not available: the kernel was built "
                     "without it or a seccomp filter blocks io_uring_setup (Docker's default "
                     "profile does: run with --security-opt seccomp=unconfined or a profile "
                     "that allows io_uring_setup/io_uring_enter/io_uring_register)");
        else if (rc == -EPERM && disabled > 0)
            snprintf(msg, msglen, "io_uring is disabled by the sysctl kernel.io_uring_disabled=%d; "
                     "set it to 0 (sysctl -w kernel.io_uring_disabled=0) or run Arc as a member "
                     "of kernel.io_uring_group", disabled);
        else if (rc == -EPERM)
            snprintf(msg, msglen, "io_uring_setup was refused (EPERM): a seccomp filter or LSM "
                     "policy blocks io_uring; allow io_uring_setup/io_uring_enter/io_uring_register");
        else if (rc == -ENOMEM)
            snprintf(msg, msglen, "io_uring could not allocate its rings (ENOMEM): the locked-memory "
                     "limit (ulimit -l) is too low; raise it (e.g. LimitMEMLOCK=infinity in systemd)");
        else
            snprintf(msg, msglen, "io_uring_setup failed: %s", strerror(-rc));
        add(report, reportlen, &off, "io_uring_setup: no (%s)\n", strerror(-rc));
        return -1;
    }
    add(report, reportlen, &off, "io_uring_setup: yes\nsingle_issuer+defer_taskrun: yes\n");

    static const struct { int op; const char *name; } ops[] = {
        { IORING_OP_ACCEPT, "accept" }, { IORING_OP_RECV, "recv" },
        { IORING_OP_SEND, "send" }, { IORING_OP_SENDMSG, "sendmsg" },
        { IORING_OP_CONNECT, "connect" }, { IORING_OP_CLOSE, "close" },
        { IORING_OP_TIMEOUT, "timeout" }, { IORING_OP_ASYNC_CANCEL, "async_cancel" },
        { IORING_OP_SHUTDOWN, "shutdown" }, { IORING_OP_READ, "read" },
    };
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    int missing = 0;
    char missing_names[256] = "";
    for (size_t i = 0; i < ARC_ARRAY_LEN(ops); i++) {
        bool ok = p && io_uring_opcode_supported(p, ops[i].op);
        add(report, reportlen, &off, "op %s: %s\n", ops[i].name, ok ? "yes" : "no");
        if (!ok) {
            missing++;
            strncat(missing_names, " ", sizeof(missing_names) - strlen(missing_names) - 1);
            strncat(missing_names, ops[i].name, sizeof(missing_names) - strlen(missing_names) - 1);
        }
    }
    if (p)
        io_uring_free_probe(p);

    /* Provided-buffer rings (5.19+) are how every receive gets its memory. */
    struct arc_bufring b;
    rc = arc_bufring_init(&b, &ring, 0, 8, 4096);
    add(report, reportlen, &off, "provided buffer rings: %s\n", rc == 0 ? "yes" : "no");
    if (rc == 0)
        arc_bufring_dispose(&b, &ring);
    io_uring_queue_exit(&ring);

    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0)
        add(report, reportlen, &off, "memlock limit: %llu KiB\n",
            rl.rlim_cur == RLIM_INFINITY ? 0ULL : (unsigned long long)rl.rlim_cur / 1024);

    if (missing) {
        snprintf(msg, msglen, "this kernel's io_uring lacks opcodes Arc needs:%s; "
                 "Arc needs Linux 6.1 or newer", missing_names);
        return -1;
    }
    if (rc < 0) {
        snprintf(msg, msglen, "this kernel cannot register provided-buffer rings (%s); "
                 "Arc needs Linux 6.1 or newer", strerror(-rc));
        return -1;
    }
    return 0;
}
