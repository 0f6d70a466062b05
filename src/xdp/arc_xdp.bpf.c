/*
 * Arc's XDP filter: runs on every packet the interface receives, before
 * the kernel's TCP stack, and decides in this order:
 *
 *   parse (Ethernet, up to two VLAN tags, IPv4 / IPv6)
 *     not IP ............................... PASS  (pass_not_ip)
 *     IP header truncated / inconsistent ... DROP  (malformed)
 *   source in whitelist (LPM) .............. PASS  (pass_whitelist; nothing else checked)
 *   source in blacklist (LPM, config) ...... DROP  (blacklist)
 *   source in dyn_blocks (LPM, API) ........ DROP  (blocked) unless expired
 *   auto_block: source blocked, or over the threshold in this window
 *                                          .. DROP  (auto_block)
 *   TCP SYN (no ACK, first fragment):
 *     per-source token bucket empty ........ DROP  (syn_source)
 *     global token bucket empty ............ DROP  (syn_global)
 *     else ................................. PASS  (pass_syn)
 *   else ................................... PASS  (pass)
 *
 * Every packet is counted under exactly one reason (per-CPU counters).
 * Per-source state lives in an LRU hash, so a flood from spoofed sources
 * evicts old entries instead of growing memory. Fragments: every fragment
 * is judged by its source; only the first (offset 0) can be a SYN.
 * Layout shared with the loader: xdp_abi.h.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdp_abi.h"

#define ARC_XDP_MAX_CIDRS 65536

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, ARC_XDP_MAX_CIDRS);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct arc_xdp_lpm_key);
    __type(value, __u8);
} whitelist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, ARC_XDP_MAX_CIDRS);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct arc_xdp_lpm_key);
    __type(value, __u8);
} blacklist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, ARC_XDP_MAX_CIDRS);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct arc_xdp_lpm_key);
    __type(value, struct arc_xdp_block);
} dyn_blocks SEC(".maps");

/* max_entries is set by the loader (security.xdp.max_sources). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __u8[16]);
    __type(value, struct arc_xdp_src);
} sources SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct arc_xdp_cfg);
} settings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct arc_xdp_global);
} syn_global SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, ARC_XDP__REASONS);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

static __always_inline int verdict(__u32 reason, int action)
{
    __u64 *c = bpf_map_lookup_elem(&counters, &reason);
    if (c)
        *c += 1;
    return action;
}

/* Token bucket in 1/1000 tokens: refills `rate` tokens per second up to
 * `rate` (one second of burst). True if a token was taken. */
static __always_inline int take_token(__u64 *tokens, __u64 *last, __u64 now, __u32 rate)
{
    __u64 cap = (__u64)rate * 1000;
    if (*last == 0) {
        *tokens = cap;
        *last = now;
    } else if (now > *last) {
        __u64 dt = now - *last;
        /* rate tokens/s = rate milli-tokens/ms; cap dt to avoid overflow */
        if (dt > 10000000000ull)
            dt = 10000000000ull;
        __u64 add = dt * rate / 1000000;   /* milli-tokens */
        if (add) {
            *tokens += add;
            if (*tokens > cap)
                *tokens = cap;
            *last = now;
        }
    }
    /* a reload may have lowered the rate: never more than its burst */
    if (*tokens > cap)
        *tokens = cap;
    if (*tokens >= 1000) {
        *tokens -= 1000;
        return 1;
    }
    return 0;
}

SEC("xdp")
int arc_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return verdict(ARC_XDP_PASS_NOT_IP, XDP_PASS);
    __u16 proto = eth->h_proto;
    void *l3 = eth + 1;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
            break;
        /* struct vlan_hdr: TCI, then the encapsulated protocol */
        __be16 *vh = l3;
        if ((void *)(vh + 2) > end)
            return verdict(ARC_XDP_DROP_MALFORMED, XDP_DROP);
        proto = vh[1];
        l3 = vh + 2;
    }

    struct arc_xdp_lpm_key k = { .prefixlen = 128 };
    __u8 l4proto = 0;
    void *l4 = 0;
    int first_frag = 1;
    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = l3;
        if ((void *)(ip + 1) > end)
            return verdict(ARC_XDP_DROP_MALFORMED, XDP_DROP);
        if (ip->version != 4 || ip->ihl < 5)
            return verdict(ARC_XDP_DROP_MALFORMED, XDP_DROP);
        k.addr[10] = 0xff;
        k.addr[11] = 0xff;
        __builtin_memcpy(&k.addr[12], &ip->saddr, 4);
        l4proto = ip->protocol;
        l4 = (__u8 *)ip + ip->ihl * 4;
        first_frag = (ip->frag_off & bpf_htons(0x1fff)) == 0;
    } else if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = l3;
        if ((void *)(ip6 + 1) > end)
            return verdict(ARC_XDP_DROP_MALFORMED, XDP_DROP);
        if (ip6->version != 6)
            return verdict(ARC_XDP_DROP_MALFORMED, XDP_DROP);
        __builtin_memcpy(k.addr, &ip6->saddr, 16);
        __u8 nh = ip6->nexthdr;
        __u8 *p = (__u8 *)(ip6 + 1);
        /* Extension headers before TCP: hop-by-hop, routing, destination
         * options (8-byte units after the first 8), fragment (8 bytes). */
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
                nh != IPPROTO_FRAGMENT)
                break;
            if ((void *)(p + 8) > end)
                return verdict(ARC_XDP_DROP_MALFORMED, XDP_DROP);
            __u8 next = p[0];
            if (nh == IPPROTO_FRAGMENT) {
                if (((p[2] << 8 | p[3]) & 0xfff8) != 0)
                    first_frag = 0;
                p += 8;
            } else {
                p += 8 + p[1] * 8;
            }
            nh = next;
        }
        l4proto = nh;
        l4 = p;
    } else {
        return verdict(ARC_XDP_PASS_NOT_IP, XDP_PASS);
    }

    if (bpf_map_lookup_elem(&whitelist, &k))
        return verdict(ARC_XDP_PASS_WHITELIST, XDP_PASS);
    if (bpf_map_lookup_elem(&blacklist, &k))
        return verdict(ARC_XDP_DROP_BLACKLIST, XDP_DROP);
    __u64 now = bpf_ktime_get_ns();
    struct arc_xdp_block *b = bpf_map_lookup_elem(&dyn_blocks, &k);
    if (b && (b->expires_ns == 0 || b->expires_ns > now))
        return verdict(ARC_XDP_DROP_BLOCKED, XDP_DROP);

    __u32 zero = 0;
    struct arc_xdp_cfg *cfg = bpf_map_lookup_elem(&settings, &zero);
    if (!cfg)
        return verdict(ARC_XDP_PASS, XDP_PASS);

    int syn = 0;
    if (l4proto == IPPROTO_TCP && first_frag) {
        struct tcphdr *th = l4;
        if ((void *)(th + 1) <= end)
            syn = th->syn && !th->ack;
        /* a truncated TCP header in a first fragment: the kernel drops it */
    }

    struct arc_xdp_src *st = 0;
    if ((cfg->flags & ARC_XDP_F_AUTO) || (syn && (cfg->flags & ARC_XDP_F_SYN))) {
        st = bpf_map_lookup_elem(&sources, k.addr);
        if (!st) {
            struct arc_xdp_src init = { 0 };
            bpf_map_update_elem(&sources, k.addr, &init, BPF_NOEXIST);
            st = bpf_map_lookup_elem(&sources, k.addr);
        }
    }
    if (st && (cfg->flags & ARC_XDP_F_AUTO)) {
        if (st->blocked_until_ns > now)
            return verdict(ARC_XDP_DROP_AUTO_BLOCK, XDP_DROP);
        /* a block that ran out starts a new window (the old count is spent) */
        if (st->blocked_until_ns || now - st->win_start_ns >= cfg->ab_window_ns) {
            st->blocked_until_ns = 0;
            st->win_start_ns = now;
            st->win_pkts = 0;
        }
        st->win_pkts += 1;
        if (st->win_pkts > cfg->ab_threshold) {
            st->blocked_until_ns = now + cfg->ab_ttl_ns;
            return verdict(ARC_XDP_DROP_AUTO_BLOCK, XDP_DROP);
        }
    }
    if (!syn || !(cfg->flags & ARC_XDP_F_SYN))
        return verdict(ARC_XDP_PASS, XDP_PASS);
    if (st && !take_token(&st->syn_tokens, &st->syn_last_ns, now, cfg->syn_pps_source))
        return verdict(ARC_XDP_DROP_SYN_SOURCE, XDP_DROP);
    struct arc_xdp_global *g = bpf_map_lookup_elem(&syn_global, &zero);
    if (g) {
        __u32 rate = cfg->syn_pps_global;
        bpf_spin_lock(&g->lock);
        __u64 tokens = g->tokens, last = g->last_ns;
        int ok = take_token(&tokens, &last, now, rate);
        g->tokens = tokens;
        g->last_ns = last;
        bpf_spin_unlock(&g->lock);
        if (!ok)
            return verdict(ARC_XDP_DROP_SYN_GLOBAL, XDP_DROP);
    }
    return verdict(ARC_XDP_PASS_SYN, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
