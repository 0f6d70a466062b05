/*
 * Schema: security.xdp, the XDP filter's settings (the filter: src/xdp).
 * Which of them a reload may change: config.h, struct arc_xdp_conf.
 */
#include <string.h>
#include <net/if.h>

#include "config/schema_int.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MS_S 1000ull

static const struct arc_conf_key xdp_keys[] = {
    { "enabled", 0 }, { "interface", 0 }, { "mode", 0 }, { "blacklist", 0 },
    { "whitelist", 0 }, { "syn_flood", 0 }, { "auto_block", 0 }, { "required", 0 },
    { "max_sources", 0 }, { "block_heavy_hitters", 0 }, { "heavy_hitter_ttl", 0 },
    { "pin_path", 0 },
};

static const struct arc_conf_key syn_keys[] = {
    { "enabled", 0 }, { "pps_per_source", 0 }, { "global_pps", 0 },
};

static const struct arc_conf_key auto_keys[] = {
    { "enabled", 0 }, { "threshold", 0 }, { "window", 0 }, { "ttl", 0 },
};

/* Most prefixes one list may hold (the kernel map's size). */
#define XDP_MAX_CIDRS 65536

void arc_config__xdp_defaults(struct arc_config *cfg)
{
    cfg->xdp = (struct arc_xdp_conf){
        .mode = ARC_XDP_AUTO,
        .syn_enabled = true,
        .syn_pps_source = 50,
        .syn_pps_global = 20000,
        .ab_threshold = 100000,
        .ab_window = 10 * MS_S,
        .ab_ttl = 300 * MS_S,
        .max_sources = 65536,
        .heavy_hitter_ttl = 300 * MS_S,
    };
}

void arc_config__xdp(struct arc_sctx *s, const struct arc_cn *m)
{
    const char *p = "security.xdp";
    char sp[ARC_PATH_MAX];
    if (!arc_config__check_map(s, m, p, xdp_keys, N(xdp_keys)))
        return;
    struct arc_xdp_conf *x = &s->cfg->xdp;
    arc_config__get_bool(s, m, p, "enabled", &x->enabled);
    arc_config__get_bool(s, m, p, "required", &x->required);
    static const char *const modes[] = { "auto", "native", "generic" };
    arc_config__get_enum(s, m, p, "mode", modes, N(modes), NULL, 0, &x->mode);
    if (arc_config__get_str(s, m, p, "interface", ARC_STR_NONEMPTY | ARC_STR_NAME, &x->interface) &&
        x->interface && strlen(x->interface) >= IF_NAMESIZE) {
        arc_config__err(s, arc_config__val(m, "interface"), "%s.interface: '%s' is longer than "
                        "an interface name can be (%d characters)", p, x->interface,
                        IF_NAMESIZE - 1);
    }
    if (x->enabled && !x->interface)
        arc_config__err(s, arc_config__val(m, "enabled"), "%s.interface: required when "
                        "%s.enabled is true (the network interface to attach to, e.g. \"eth0\")",
                        p, p);
    arc_config__get_cidrs(s, m, p, "blacklist", XDP_MAX_CIDRS, &x->blacklist, &x->n_blacklist);
    arc_config__get_cidrs(s, m, p, "whitelist", XDP_MAX_CIDRS, &x->whitelist, &x->n_whitelist);
    arc_config__get_u32(s, m, p, "max_sources", 1024, 16u << 20, &x->max_sources);
    arc_config__get_bool(s, m, p, "block_heavy_hitters", &x->block_heavy_hitters);
    if (arc_config__get_str(s, m, p, "pin_path", ARC_STR_NONEMPTY | ARC_STR_NO_CTL, &x->pin_path) &&
        x->pin_path && (x->pin_path[0] != '/' || strlen(x->pin_path) > 200))
        arc_config__err(s, arc_config__val(m, "pin_path"), "%s.pin_path: expected an absolute "
                        "path of at most 200 characters in a bpf filesystem (e.g. "
                        "\"/sys/fs/bpf/arc\")", p);
    arc_config__get_dur(s, m, p, "heavy_hitter_ttl", MS_S, 7 * 24 * 3600 * MS_S, false,
                        &x->heavy_hitter_ttl);

    const struct arc_cn *f = arc_config__val(m, "syn_flood");
    arc_config__path(sp, p, "syn_flood");
    if (f && arc_config__check_map(s, f, sp, syn_keys, N(syn_keys))) {
        arc_config__get_bool(s, f, sp, "enabled", &x->syn_enabled);
        arc_config__get_u32(s, f, sp, "pps_per_source", 1, 10000000, &x->syn_pps_source);
        arc_config__get_u32(s, f, sp, "global_pps", 1, 100000000, &x->syn_pps_global);
    }
    const struct arc_cn *a = arc_config__val(m, "auto_block");
    arc_config__path(sp, p, "auto_block");
    if (a && arc_config__check_map(s, a, sp, auto_keys, N(auto_keys))) {
        arc_config__get_bool(s, a, sp, "enabled", &x->ab_enabled);
        int64_t t = (int64_t)x->ab_threshold;
        if (arc_config__get_int(s, a, sp, "threshold", 1, 1000000000000ll, &t))
            x->ab_threshold = (uint64_t)t;
        arc_config__get_dur(s, a, sp, "window", 100, 3600 * MS_S, false, &x->ab_window);
        arc_config__get_dur(s, a, sp, "ttl", MS_S, 7 * 24 * 3600 * MS_S, false, &x->ab_ttl);
    }
}
