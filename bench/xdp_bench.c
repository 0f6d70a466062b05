/*
 * XDP program micro-benchmark: ns per packet of arc_xdp.bpf.c as the
 * kernel runs it (BPF_PROG_TEST_RUN with `repeat`, the kernel's own
 * per-run average; JIT on), for the paths a packet takes: an ordinary
 * packet with empty lists, the same through 10,000 blacklist and 1,000
 * whitelist prefixes, a blacklisted source dropped, SYNs over their
 * source's budget dropped, and the pass path with auto_block counting.
 * It measures the program, not a NIC: no driver, no DMA, no stack.
 * Needs root. Prints Markdown. Argument: repeats per case (default 2,000,000).
 */
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "xdp/xdp.h"

static void frame(uint8_t *b, const char *src, uint8_t tcp_flags)
{
    memset(b, 0, 64);
    memset(b, 2, 12);
    b[12] = 0x08;
    uint8_t *ip = b + 14;
    ip[0] = 0x45;
    ip[8] = 64;
    ip[9] = IPPROTO_TCP;
    inet_pton(AF_INET, src, ip + 12);
    inet_pton(AF_INET, "10.255.0.1", ip + 16);
    uint8_t *th = ip + 20;
    th[12] = 0x50;
    th[13] = tcp_flags;
}

static double run(struct arc_xdp *x, const char *src, uint8_t flags, unsigned repeat,
                  unsigned *action)
{
    uint8_t b[64];
    frame(b, src, flags);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = b, .data_size_in = sizeof(b),
                .repeat = repeat);
    if (bpf_prog_test_run_opts(arc_xdp_prog_fd(x), &o) < 0) {
        perror("BPF_PROG_TEST_RUN");
        exit(1);
    }
    *action = o.retval;
    return (double)o.duration;
}

int main(int argc, char **argv)
{
    unsigned repeat = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 2000000;
    struct arc_xdp_conf c = { .enabled = true, .syn_enabled = true, .syn_pps_source = 1,
                              .syn_pps_global = 1000000, .ab_threshold = 1ull << 62,
                              .ab_window = 10000, .ab_ttl = 60000, .max_sources = 65536 };
    char err[512];
    struct arc_xdp *x = arc_xdp_load_only(&c, err, sizeof(err));
    if (!x) {
        fprintf(stderr, "xdp_bench: %s\n", err);
        return 1;
    }
    static const char *const act[] = { "aborted", "drop", "pass", "tx", "redirect" };
    unsigned a;
    printf("| case | ns/packet | verdict |\n|---|---|---|\n");
#define ROW(name, src, fl) do { double ns = run(x, src, fl, repeat, &a); \
    printf("| %s | %.1f | %s |\n", name, ns, a < 5 ? act[a] : "?"); } while (0)
    ROW("ACK, empty lists", "10.1.2.3", 0x10);
    /* 10,000 blacklisted /24s and 1,000 whitelisted /32s */
    struct arc_cidr *bl = calloc(10000, sizeof(*bl)), *wl = calloc(1000, sizeof(*wl));
    char t[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(t, sizeof(t), "10.%d.%d.0/24", 100 + i / 250, i % 250);
        arc_config_parse_cidr(t, &bl[i]);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(t, sizeof(t), "10.99.%d.%d", i / 250, i % 250 + 1);
        arc_config_parse_cidr(t, &wl[i]);
    }
    c.blacklist = bl;
    c.n_blacklist = 10000;
    c.whitelist = wl;
    c.n_whitelist = 1000;
    if (arc_xdp_apply(x, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "xdp_bench: %s\n", err);
        return 1;
    }
    ROW("ACK, 10k blacklist + 1k whitelist prefixes", "10.1.2.3", 0x10);
    ROW("blacklisted source (same lists)", "10.120.5.9", 0x10);
    ROW("whitelisted source (same lists)", "10.99.1.7", 0x10);
    ROW("SYN over its source's budget", "10.1.2.3", 0x02);
    c.ab_enabled = true;
    arc_xdp_apply(x, &c, err, sizeof(err));
    ROW("ACK with auto_block counting", "10.1.2.3", 0x10);
    arc_xdp_stop(x);
    free(bl);
    free(wl);
    return 0;
}
