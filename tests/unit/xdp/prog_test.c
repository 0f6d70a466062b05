/*
 * The XDP program itself, run by the kernel on crafted packets through
 * BPF_PROG_TEST_RUN (no network, no attachment): IPv4, IPv6 (with a
 * fragment header), VLAN and QinQ tags, fragments, truncated and
 * inconsistent headers, CIDR black/whitelists (whitelist wins), dynamic
 * blocks with a TTL, auto_block, and the per-source and global SYN buckets.
 * Each verdict is checked together with the counter it must move.
 * Exits 77 (skipped, with the reason) where bpf() is not permitted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "test.h"
#include "xdp/xdp.h"
#include "xdp/xdp_abi.h"

static struct arc_xdp *x;

static struct arc_cidr cidr(const char *s)
{
    struct arc_cidr c;
    if (arc_config_parse_cidr(s, &c) < 0) {
        fprintf(stderr, "bad cidr %s\n", s);
        exit(1);
    }
    return c;
}

/* Packet builder. */
struct pkt { uint8_t b[256]; size_t n; };

static void eth(struct pkt *p, uint16_t proto)
{
    memset(p, 0, sizeof(*p));
    memset(p->b, 0x02, 12);
    p->b[12] = (uint8_t)(proto >> 8);
    p->b[13] = (uint8_t)proto;
    p->n = 14;
}

static void vlan(struct pkt *p, uint16_t tpid, uint16_t inner)
{
    /* replaces the current EtherType with tpid, then TCI + inner type */
    p->b[p->n - 2] = (uint8_t)(tpid >> 8);
    p->b[p->n - 1] = (uint8_t)tpid;
    p->b[p->n++] = 0;
    p->b[p->n++] = 7;
    p->b[p->n++] = (uint8_t)(inner >> 8);
    p->b[p->n++] = (uint8_t)inner;
}

static void ipv4(struct pkt *p, const char *src, uint8_t proto, uint16_t frag_off)
{
    uint8_t *h = p->b + p->n;
    h[0] = 0x45;
    h[8] = 64;
    h[9] = proto;
    h[6] = (uint8_t)(frag_off >> 8);
    h[7] = (uint8_t)frag_off;
    inet_pton(AF_INET, src, h + 12);
    inet_pton(AF_INET, "10.255.0.1", h + 16);
    p->n += 20;
}

static void ipv6(struct pkt *p, const char *src, uint8_t nexthdr)
{
    uint8_t *h = p->b + p->n;
    h[0] = 0x60;
    h[6] = nexthdr;
    h[7] = 64;
    inet_pton(AF_INET6, src, h + 8);
    inet_pton(AF_INET6, "2001:db8:ffff::1", h + 24);
    p->n += 40;
}

static void frag6(struct pkt *p, uint8_t next, uint16_t off_units)
{
    uint8_t *h = p->b + p->n;
    h[0] = next;
    uint16_t v = (uint16_t)(off_units << 3);
    h[2] = (uint8_t)(v >> 8);
    h[3] = (uint8_t)v;
    p->n += 8;
}

static void tcp(struct pkt *p, uint8_t flags)
{
    uint8_t *h = p->b + p->n;
    h[0] = 0x30; h[1] = 0x39;       /* 12345 */
    h[2] = 0; h[3] = 80;
    h[12] = 0x50;
    h[13] = flags;
    p->n += 20;
    /* Test runs want at least a minimal Ethernet frame. */
    if (p->n < 60)
        p->n = 60;
}

#define SYN 0x02
#define ACK 0x10

static uint64_t before[ARC_XDP_N_REASONS];

static void snap(void)
{
    arc_xdp_counters(x, before);
}

/* Runs p; checks the action and that exactly counter `reason` moved by 1. */
static void expect(const struct pkt *p, int action, int reason, int line)
{
    uint64_t b[ARC_XDP_N_REASONS], a[ARC_XDP_N_REASONS];
    arc_xdp_counters(x, b);
    uint8_t out[256];
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b, .data_size_in = (uint32_t)p->n,
                .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
    int rc = bpf_prog_test_run_opts(arc_xdp_prog_fd(x), &o);
    t_checks++;
    if (rc < 0) {
        t_failures++;
        fprintf(stderr, "line %d: test run failed: %s\n", line, strerror(errno));
        return;
    }
    arc_xdp_counters(x, a);
    t_checks++;
    if ((int)o.retval != action) {
        t_failures++;
        fprintf(stderr, "line %d: action %u, expected %d\n", line, o.retval, action);
    }
    for (int r = 0; r < ARC_XDP_N_REASONS; r++) {
        uint64_t want = b[r] + (r == reason ? 1 : 0);
        t_checks++;
        if (a[r] != want) {
            t_failures++;
            fprintf(stderr, "line %d: counter %s moved by %lld, expected %lld\n", line,
                    arc_xdp_reason_names[r], (long long)(a[r] - b[r]),
                    (long long)(want - b[r]));
        }
    }
}
#define EXPECT(p, action, reason) expect((p), (action), (reason), __LINE__)

static struct arc_cidr bl[3], wl[2];

static struct arc_xdp_conf base_conf(void)
{
    bl[0] = cidr("10.9.0.0/16");
    bl[1] = cidr("2001:db8::/32");
    bl[2] = cidr("10.66.0.0/16");
    wl[0] = cidr("10.9.1.0/24");
    wl[1] = cidr("2001:db8:1::/48");
    return (struct arc_xdp_conf){
        .enabled = true, .blacklist = bl, .n_blacklist = 3, .whitelist = wl, .n_whitelist = 2,
        .syn_enabled = true, .syn_pps_source = 2, .syn_pps_global = 1000000,
        .ab_enabled = false, .ab_threshold = 100, .ab_window = 10000, .ab_ttl = 60000,
        .max_sources = 4096,
    };
}

static void test_lists_v4_v6_vlan(void)
{
    struct pkt p;
    eth(&p, ETH_P_IP); ipv4(&p, "10.9.2.1", IPPROTO_TCP, 0); tcp(&p, ACK);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLACKLIST);
    eth(&p, ETH_P_IP); ipv4(&p, "10.9.1.77", IPPROTO_TCP, 0); tcp(&p, ACK);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS_WHITELIST);          /* whitelist wins */
    eth(&p, ETH_P_IP); ipv4(&p, "10.10.0.1", IPPROTO_TCP, 0); tcp(&p, ACK);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    eth(&p, ETH_P_IP); ipv4(&p, "10.9.2.1", IPPROTO_ICMP, 0); p.n = 60;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLACKLIST);
    /* IPv6 */
    eth(&p, ETH_P_IPV6); ipv6(&p, "2001:db8:2::5", IPPROTO_TCP); tcp(&p, ACK);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLACKLIST);
    eth(&p, ETH_P_IPV6); ipv6(&p, "2001:db8:1:2::5", IPPROTO_TCP); tcp(&p, ACK);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS_WHITELIST);
    eth(&p, ETH_P_IPV6); ipv6(&p, "2001:db9::5", IPPROTO_TCP); tcp(&p, ACK);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    /* an IPv4-mapped IPv6 source is not an IPv4 packet: the v4 list does not see it */
    eth(&p, ETH_P_IPV6); ipv6(&p, "::ffff:10.9.2.1", IPPROTO_TCP); tcp(&p, ACK);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLACKLIST);
    /* VLAN, QinQ */
    eth(&p, ETH_P_IP); vlan(&p, ETH_P_8021Q, ETH_P_IP); ipv4(&p, "10.9.2.1", IPPROTO_TCP, 0);
    tcp(&p, ACK);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLACKLIST);
    eth(&p, ETH_P_IP); vlan(&p, ETH_P_8021AD, ETH_P_8021Q); vlan(&p, ETH_P_8021Q, ETH_P_IPV6);
    ipv6(&p, "2001:db8:2::5", IPPROTO_TCP); tcp(&p, ACK);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLACKLIST);
    eth(&p, ETH_P_IP); vlan(&p, ETH_P_8021Q, ETH_P_IP); ipv4(&p, "10.10.0.1", IPPROTO_TCP, 0);
    tcp(&p, ACK);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
}

static void test_malformed_and_not_ip(void)
{
    struct pkt p;
    eth(&p, ETH_P_ARP); p.n = 60;
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS_NOT_IP);
    /* Ethernet header only, claiming IPv4 / IPv6 / a VLAN tag */
    eth(&p, ETH_P_IP);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_MALFORMED);
    eth(&p, ETH_P_IP); p.n = 14 + 19;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_MALFORMED);
    eth(&p, ETH_P_IPV6); p.n = 14 + 39;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_MALFORMED);
    eth(&p, ETH_P_8021Q); p.n = 16;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_MALFORMED);
    /* ihl < 5, wrong version */
    eth(&p, ETH_P_IP); ipv4(&p, "10.10.0.1", IPPROTO_TCP, 0); tcp(&p, ACK);
    p.b[14] = 0x44;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_MALFORMED);
    eth(&p, ETH_P_IP); ipv4(&p, "10.10.0.1", IPPROTO_TCP, 0); tcp(&p, ACK);
    p.b[14] = 0x65;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_MALFORMED);
    /* IPv6 fragment header cut short */
    eth(&p, ETH_P_IPV6); ipv6(&p, "2001:db9::5", IPPROTO_FRAGMENT); p.n += 4;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_MALFORMED);
    /* a TCP header cut short is the kernel's to drop: not a SYN, passed */
    eth(&p, ETH_P_IP); ipv4(&p, "10.10.0.9", IPPROTO_TCP, 0); p.n += 14;
    p.b[p.n - 1] = SYN;
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
}

static void test_syn_per_source_and_fragments(void)
{
    struct pkt p;
    for (int i = 0; i < 2; i++) {
        eth(&p, ETH_P_IP); ipv4(&p, "10.20.0.1", IPPROTO_TCP, 0); tcp(&p, SYN);
        EXPECT(&p, XDP_PASS, ARC_XDP_PASS_SYN);
    }
    eth(&p, ETH_P_IP); ipv4(&p, "10.20.0.1", IPPROTO_TCP, 0); tcp(&p, SYN);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_SYN_SOURCE);
    /* SYN-ACK and plain ACK are not SYNs */
    eth(&p, ETH_P_IP); ipv4(&p, "10.20.0.1", IPPROTO_TCP, 0); tcp(&p, SYN | ACK);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    /* a non-first fragment carries no TCP header: bytes that look like a SYN pass */
    eth(&p, ETH_P_IP); ipv4(&p, "10.20.0.1", IPPROTO_TCP, 185); tcp(&p, SYN);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    /* a first fragment (MF set, offset 0) is judged */
    eth(&p, ETH_P_IP); ipv4(&p, "10.20.0.1", IPPROTO_TCP, 0x2000); tcp(&p, SYN);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_SYN_SOURCE);
    /* another source has its own bucket */
    eth(&p, ETH_P_IP); ipv4(&p, "10.20.0.2", IPPROTO_TCP, 0); tcp(&p, SYN);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS_SYN);
    /* IPv6: SYN behind a fragment header (first fragment), then a later fragment */
    for (int i = 0; i < 2; i++) {
        eth(&p, ETH_P_IPV6); ipv6(&p, "2001:db9::20", IPPROTO_FRAGMENT);
        frag6(&p, IPPROTO_TCP, 0); tcp(&p, SYN);
        EXPECT(&p, XDP_PASS, ARC_XDP_PASS_SYN);
    }
    eth(&p, ETH_P_IPV6); ipv6(&p, "2001:db9::20", IPPROTO_TCP); tcp(&p, SYN);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_SYN_SOURCE);
    eth(&p, ETH_P_IPV6); ipv6(&p, "2001:db9::20", IPPROTO_FRAGMENT);
    frag6(&p, IPPROTO_TCP, 100); tcp(&p, SYN);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
}

static void test_syn_global(void)
{
    struct arc_xdp_conf c = base_conf();
    c.syn_pps_source = 100;
    c.syn_pps_global = 3;
    char err[300];
    CHECK(arc_xdp_apply(x, &c, err, sizeof(err)) == 0);
    /* the global bucket may hold tokens from earlier tests' time: empty it */
    struct pkt p;
    int passed = 0;
    char src[32];
    for (int i = 0; i < 40; i++) {
        snprintf(src, sizeof(src), "10.30.%d.%d", i / 200, i % 200 + 1);
        eth(&p, ETH_P_IP); ipv4(&p, src, IPPROTO_TCP, 0); tcp(&p, SYN);
        uint64_t b[ARC_XDP_N_REASONS], a[ARC_XDP_N_REASONS];
        arc_xdp_counters(x, b);
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p.b, .data_size_in = (uint32_t)p.n,
                    .repeat = 1);
        CHECK(bpf_prog_test_run_opts(arc_xdp_prog_fd(x), &o) == 0);
        arc_xdp_counters(x, a);
        if (o.retval == XDP_PASS) {
            passed++;
            CHECK_INT(a[ARC_XDP_PASS_SYN] - b[ARC_XDP_PASS_SYN], 1);
        } else {
            CHECK_INT(o.retval, XDP_DROP);
            CHECK_INT(a[ARC_XDP_DROP_SYN_GLOBAL] - b[ARC_XDP_DROP_SYN_GLOBAL], 1);
        }
    }
    /* 3 tokens of burst plus what 3/s refills during the loop (well under a second) */
    CHECK(passed >= 3 && passed <= 6);
    c = base_conf();
    CHECK(arc_xdp_apply(x, &c, err, sizeof(err)) == 0);
}

static void test_dynamic_blocks(void)
{
    struct pkt p;
    char err[300];
    struct arc_cidr c = cidr("10.40.0.0/16");
    CHECK(arc_xdp_block(x, &c, 0, ARC_XDP_BY_API, err, sizeof(err)) == 0);
    eth(&p, ETH_P_IP); ipv4(&p, "10.40.3.3", IPPROTO_UDP, 0); p.n = 60;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLOCKED);
    struct arc_xdp_block_view v[8];
    CHECK_INT(arc_xdp_blocks(x, v, 8), 1);
    CHECK_STR(v[0].cidr, "10.40.0.0/16");
    CHECK_STR(v[0].origin, "api");
    CHECK_INT(arc_xdp_unblock(x, &c, err, sizeof(err)), 1);
    CHECK_INT(arc_xdp_unblock(x, &c, err, sizeof(err)), 0);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    /* a TTL: dropped until it runs out, then passed (the sweep frees it) */
    struct arc_cidr c6 = cidr("2001:db9:40::/48");
    CHECK(arc_xdp_block(x, &c6, 200, ARC_XDP_BY_HEAVY, err, sizeof(err)) == 0);
    eth(&p, ETH_P_IPV6); ipv6(&p, "2001:db9:40::1", IPPROTO_UDP); p.n = 80;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLOCKED);
    CHECK_INT(arc_xdp_blocks(x, v, 8), 1);
    CHECK_STR(v[0].origin, "heavy_hitters");
    CHECK(v[0].expires_in_ms > 0 && v[0].expires_in_ms <= 200);
    usleep(300 * 1000);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    CHECK_INT(arc_xdp_blocks(x, v, 8), 0);
    arc_xdp_sweep(x);
    /* the whitelist still wins over a block */
    struct arc_cidr w = cidr("10.9.1.5/32");
    CHECK(arc_xdp_block(x, &w, 0, ARC_XDP_BY_API, err, sizeof(err)) == 0);
    eth(&p, ETH_P_IP); ipv4(&p, "10.9.1.5", IPPROTO_UDP, 0); p.n = 60;
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS_WHITELIST);
    CHECK_INT(arc_xdp_unblock(x, &w, err, sizeof(err)), 1);
}

static void test_auto_block_and_reload(void)
{
    struct arc_xdp_conf c = base_conf();
    c.ab_enabled = true;
    c.ab_threshold = 3;
    c.ab_window = 10000;
    c.ab_ttl = 300;
    char err[300];
    CHECK(arc_xdp_apply(x, &c, err, sizeof(err)) == 0);
    struct pkt p;
    eth(&p, ETH_P_IP); ipv4(&p, "10.50.0.1", IPPROTO_UDP, 0); p.n = 60;
    for (int i = 0; i < 3; i++)
        EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_AUTO_BLOCK);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_AUTO_BLOCK);
    struct arc_xdp_block_view v[8];
    CHECK_INT(arc_xdp_blocks(x, v, 8), 1);
    CHECK_STR(v[0].cidr, "10.50.0.1/32");
    CHECK_STR(v[0].origin, "auto_block");
    usleep(400 * 1000);         /* the ttl ran out: a new window */
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    /* unblock lifts an auto_block mark too (this window: 1 packet so far) */
    for (int i = 0; i < 2; i++)
        EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_AUTO_BLOCK);
    struct arc_cidr one = cidr("10.50.0.1/32");
    CHECK_INT(arc_xdp_unblock(x, &one, err, sizeof(err)), 1);
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    /* a reload replaces the lists: 10.9.0.0/16 gone, 10.66.0.0/16 kept, 10.77.0.0/16 new */
    struct arc_cidr nbl[2] = { cidr("10.66.0.0/16"), cidr("10.77.0.0/16") };
    c = base_conf();
    c.blacklist = nbl;
    c.n_blacklist = 2;
    c.n_whitelist = 0;
    CHECK(arc_xdp_apply(x, &c, err, sizeof(err)) == 0);
    eth(&p, ETH_P_IP); ipv4(&p, "10.9.2.1", IPPROTO_UDP, 0); p.n = 60;
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);
    eth(&p, ETH_P_IP); ipv4(&p, "10.66.2.1", IPPROTO_UDP, 0); p.n = 60;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLACKLIST);
    eth(&p, ETH_P_IP); ipv4(&p, "10.77.2.1", IPPROTO_UDP, 0); p.n = 60;
    EXPECT(&p, XDP_DROP, ARC_XDP_DROP_BLACKLIST);
    eth(&p, ETH_P_IP); ipv4(&p, "10.9.1.1", IPPROTO_UDP, 0); p.n = 60;
    EXPECT(&p, XDP_PASS, ARC_XDP_PASS);      /* 10.9.1.0/24 is no longer whitelisted, nor 10.9/16 blacklisted */
}

int main(void)
{
    struct arc_xdp_conf c = base_conf();
    char err[512];
    x = arc_xdp_load_only(&c, err, sizeof(err));
    if (!x) {
        printf("skipped: the XDP program cannot be loaded here: %s\n", err);
        return 77;
    }
    snap();
    RUN(test_lists_v4_v6_vlan);
    RUN(test_malformed_and_not_ip);
    RUN(test_syn_per_source_and_fragments);
    RUN(test_syn_global);
    RUN(test_dynamic_blocks);
    RUN(test_auto_block_and_reload);
    arc_xdp_stop(x);
    return TEST_REPORT();
}
