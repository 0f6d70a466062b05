/*
 * Process and kernel metrics, read from /proc when /metrics is scraped (the
 * admin thread; nothing here runs on a worker). See metrics.h.
 *
 * process_* are the names Prometheus client libraries use, so existing
 * dashboards and alerts work unchanged. arc_kernel_tcp_* are the kernel's
 * TCP counters of Arc's network namespace (/proc/net/netstat "TcpExt" and
 * /proc/net/snmp "Tcp"): listen-queue overflows and drops, retransmits and
 * SYN cookies say whether the machine, not Arc, is losing connections.
 */
#include "obs/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void gauge(struct arc_sbuf *o, const char *name, const char *type, const char *help,
                  const char *fmt_value)
{
    arc_sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type, name,
                    fmt_value);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

static void render_self(struct arc_sbuf *o)
{
    char buf[4096], v[64];
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long ut = 0, st = 0, start = 0, vsize = 0, rss = 0;
    if (read_file("/proc/self/stat", buf, sizeof(buf))) {
        /* The command name may hold spaces and parentheses: fields count
         * from the last ')'. */
        char *p = strrchr(buf, ')');
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                               "%*d %*d %*d %*d %*d %*d %llu %llu %llu",
                        &ut, &st, &start, &vsize, &rss) == 5) {
            snprintf(v, sizeof(v), "%.2f", (double)(ut + st) / (double)tck);
            gauge(o, "process_cpu_seconds_total", "counter",
                  "Total user and system CPU time spent in seconds.", v);
            snprintf(v, sizeof(v), "%llu", rss * (unsigned long long)page);
            gauge(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", v);
            snprintf(v, sizeof(v), "%llu", vsize);
            gauge(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", v);
        }
    }
    unsigned long long btime = 0;
    if (start && read_file("/proc/stat", buf, sizeof(buf))) {
        const char *b = strstr(buf, "\nbtime ");
        if (b && sscanf(b + 7, "%llu", &btime) == 1) {
            snprintf(v, sizeof(v), "%.2f", (double)btime + (double)start / (double)tck);
            gauge(o, "process_start_time_seconds", "gauge",
                  "Start time of the process since unix epoch in seconds.", v);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        size_t fds = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        snprintf(v, sizeof(v), "%zu", fds ? fds - 1 : 0);    /* not the one opendir holds */
        gauge(o, "process_open_fds", "gauge", "Number of open file descriptors.", v);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        snprintf(v, sizeof(v), "%llu", (unsigned long long)rl.rlim_cur);
        gauge(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.", v);
    }
}

/* The kernel counters Arc shows, by their /proc names. */
static const struct kc {
    const char *group, *key, *name, *type, *help;
} kcs[] = {
    { "TcpExt:", "ListenOverflows", "arc_kernel_tcp_listen_overflows_total", "counter",
      "Connections dropped because a listen queue (accept backlog) was full." },
    { "TcpExt:", "ListenDrops", "arc_kernel_tcp_listen_drops_total", "counter",
      "SYNs and connections dropped at a listening socket, for any reason (overflows included)." },
    { "TcpExt:", "TCPSynRetrans", "arc_kernel_tcp_syn_retransmits_total", "counter",
      "SYN and SYN-ACK retransmissions." },
    { "TcpExt:", "SyncookiesSent", "arc_kernel_tcp_syncookies_sent_total", "counter",
      "SYN cookies sent (the SYN queue overflowed)." },
    { "TcpExt:", "SyncookiesRecv", "arc_kernel_tcp_syncookies_recv_total", "counter",
      "Valid SYN cookies received back." },
    { "TcpExt:", "SyncookiesFailed", "arc_kernel_tcp_syncookies_failed_total", "counter",
      "Invalid SYN cookies received." },
    { "TcpExt:", "TCPTimeouts", "arc_kernel_tcp_timeouts_total", "counter",
      "Retransmission timeouts." },
    { "Tcp:", "RetransSegs", "arc_kernel_tcp_retransmitted_segments_total", "counter",
      "TCP segments retransmitted." },
    { "Tcp:", "OutSegs", "arc_kernel_tcp_out_segments_total", "counter", "TCP segments sent." },
    { "Tcp:", "InErrs", "arc_kernel_tcp_in_errors_total", "counter",
      "TCP segments received in error (bad checksum and the like)." },
    { "Tcp:", "OutRsts", "arc_kernel_tcp_resets_sent_total", "counter", "TCP resets sent." },
    { "Tcp:", "AttemptFails", "arc_kernel_tcp_attempt_fails_total", "counter",
      "Connection attempts that failed (SYN-SENT or SYN-RECV to CLOSED or LISTEN)." },
    { "Tcp:", "EstabResets", "arc_kernel_tcp_established_resets_total", "counter",
      "Established connections reset." },
    { "Tcp:", "CurrEstab", "arc_kernel_tcp_established", "gauge",
      "TCP connections in ESTABLISHED or CLOSE-WAIT now." },
};

/* /proc/net/{netstat,snmp} hold pairs of lines: "Group: names..." then
 * "Group: values...". Finds `key` of `group` in text. */
static bool kernel_value(const char *text, const char *group, const char *key,
                         unsigned long long *out)
{
    size_t gl = strlen(group);
    const char *p = text;
    while ((p = strstr(p, group))) {
        if (p != text && p[-1] != '\n') {
            p += gl;
            continue;
        }
        const char *names = p + gl, *eol = strchr(names, '\n');
        if (!eol)
            return false;
        const char *vals = eol + 1;
        if (strncmp(vals, group, gl) != 0) {
            p = vals;
            continue;
        }
        vals += gl;
        /* walk both lines in step */
        const char *n = names;
        while (n < eol) {
            while (*n == ' ')
                n++;
            const char *ne = n;
            while (ne < eol && *ne != ' ')
                ne++;
            while (*vals == ' ')
                vals++;
            char *ve;
            unsigned long long v = strtoull(vals, &ve, 10);
            if ((size_t)(ne - n) == strlen(key) && memcmp(n, key, (size_t)(ne - n)) == 0) {
                *out = v;
                return true;
            }
            if (ve == vals)
                return false;
            vals = ve;
            n = ne;
        }
        return false;
    }
    return false;
}

static void render_kernel(struct arc_sbuf *o)
{
    static char netstat[16384], snmp[16384];
    /* (one admin thread: the static buffers are its own) */
    bool have_n = read_file("/proc/net/netstat", netstat, sizeof(netstat)) > 0;
    bool have_s = read_file("/proc/net/snmp", snmp, sizeof(snmp)) > 0;
    for (size_t i = 0; i < sizeof(kcs) / sizeof(kcs[0]); i++) {
        const struct kc *k = &kcs[i];
        bool ext = strcmp(k->group, "TcpExt:") == 0;
        unsigned long long v;
        if (!(ext ? have_n : have_s) || !kernel_value(ext ? netstat : snmp, k->group, k->key, &v))
            continue;
        char b[32];
        snprintf(b, sizeof(b), "%llu", v);
        gauge(o, k->name, k->type, k->help, b);
    }
}

void arc_metrics_render_process(struct arc_sbuf *o)
{
    render_self(o);
    render_kernel(o);
}
