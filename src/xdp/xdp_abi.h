/**
 * The layout shared by the XDP program (arc_xdp.bpf.c) and its loader
 * (xdp.c): map keys, values and counter indexes. Plain fixed-size types
 * only; both sides are compiled from this one header.
 *
 * Addresses are 16 bytes in every map: IPv6 as is, IPv4 mapped into
 * ::ffff:0:0/96 (an IPv4 /n prefix is a /96+n prefix), so one trie holds
 * both families.
 */
#ifndef ARC_XDP_ABI_H
#define ARC_XDP_ABI_H

#include <linux/types.h>
#include <linux/bpf.h>

/* LPM trie key: prefix length in bits (0..128), then the address. */
struct arc_xdp_lpm_key {
    __u32 prefixlen;
    __u8 addr[16];
};

/* Origins of a dynamic block (dyn_blocks map). */
enum { ARC_XDP_BY_API = 1, ARC_XDP_BY_HEAVY = 2 };

/* dyn_blocks value: the block ends at expires_ns (CLOCK_MONOTONIC ns,
 * bpf_ktime_get_ns); 0 = until removed. */
struct arc_xdp_block {
    __u64 expires_ns;
    __u64 added_ns;
    __u32 origin;
    __u32 pad;
};

/* Per-source state (LRU hash keyed by the 16-byte address). */
struct arc_xdp_src {
    __u64 win_start_ns;      /* auto_block: the current window began */
    __u64 win_pkts;          /* packets in it */
    __u64 blocked_until_ns;  /* auto_block: dropped until then (0: not blocked) */
    __u64 syn_tokens;        /* SYN bucket, in 1/1000 tokens */
    __u64 syn_last_ns;       /* last refill */
};

/* Settings (array map, one element), written by the loader on start and reload. */
#define ARC_XDP_F_SYN   1u   /* syn_flood.enabled */
#define ARC_XDP_F_AUTO  2u   /* auto_block.enabled */
struct arc_xdp_cfg {
    __u32 flags;
    __u32 syn_pps_source;    /* SYNs per second per source (burst: one second's worth) */
    __u32 syn_pps_global;    /* SYNs per second, all sources */
    __u32 pad;
    __u64 ab_threshold;      /* auto_block: packets per window above which a source is blocked */
    __u64 ab_window_ns;
    __u64 ab_ttl_ns;
};

/* Global SYN bucket (array map, one element, under its lock). */
struct arc_xdp_global {
    struct bpf_spin_lock lock;
    __u32 pad;
    __u64 tokens;            /* 1/1000 tokens */
    __u64 last_ns;
};

/* Per-reason packet counters (per-CPU array indexed by these). */
enum arc_xdp_reason {
    ARC_XDP_PASS = 0,          /* passed every check */
    ARC_XDP_PASS_WHITELIST,    /* source on the whitelist: no other check */
    ARC_XDP_PASS_NOT_IP,       /* not IPv4/IPv6 (ARP, ...): not ours to judge */
    ARC_XDP_PASS_SYN,          /* a SYN within both SYN budgets (each packet counts in one reason) */
    ARC_XDP_DROP_BLACKLIST,    /* source in security.xdp.blacklist */
    ARC_XDP_DROP_BLOCKED,      /* source in a block added through the API / CLI / heavy hitters */
    ARC_XDP_DROP_AUTO_BLOCK,   /* source auto-blocked (over threshold in a window) */
    ARC_XDP_DROP_SYN_SOURCE,   /* SYN over syn_flood.pps_per_source */
    ARC_XDP_DROP_SYN_GLOBAL,   /* SYN over syn_flood.global_pps */
    ARC_XDP_DROP_MALFORMED,    /* IP header truncated or inconsistent */
    ARC_XDP__REASONS
};

#endif
