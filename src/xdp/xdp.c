/*
 * XDP loader (see xdp.h). Control thread only; the packet path is
 * arc_xdp.bpf.c. Layout shared with it: xdp_abi.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "core/common.h"
#include "xdp/xdp.h"
#include "xdp/xdp_abi.h"
#include "arc_xdp.skel.h"

_Static_assert(ARC_XDP_N_REASONS == ARC_XDP__REASONS, "reason tables agree");

const char *const arc_xdp_reason_names[ARC_XDP_N_REASONS] = {
    [ARC_XDP_PASS] = "pass", [ARC_XDP_PASS_WHITELIST] = "pass_whitelist",
    [ARC_XDP_PASS_NOT_IP] = "pass_not_ip", [ARC_XDP_PASS_SYN] = "pass_syn",
    [ARC_XDP_DROP_BLACKLIST] = "blacklist", [ARC_XDP_DROP_BLOCKED] = "blocked",
    [ARC_XDP_DROP_AUTO_BLOCK] = "auto_block", [ARC_XDP_DROP_SYN_SOURCE] = "syn_source",
    [ARC_XDP_DROP_SYN_GLOBAL] = "syn_global", [ARC_XDP_DROP_MALFORMED] = "malformed",
};
const bool arc_xdp_reason_drops[ARC_XDP_N_REASONS] = {
    [ARC_XDP_DROP_BLACKLIST] = true, [ARC_XDP_DROP_BLOCKED] = true,
    [ARC_XDP_DROP_AUTO_BLOCK] = true, [ARC_XDP_DROP_SYN_SOURCE] = true,
    [ARC_XDP_DROP_SYN_GLOBAL] = true, [ARC_XDP_DROP_MALFORMED] = true,
};

struct arc_xdp {
    enum arc_xdp_state state;
    char why[512];
    char ifname[IF_NAMESIZE];
    unsigned ifindex;
    unsigned attach_flags;      /* XDP_FLAGS_DRV_MODE or _SKB_MODE once attached */
    int link_fd;                /* the bpf_link holding the attachment, -1: none */
    char pin[256];              /* security.xdp.pin_path, "" = not pinned */
    bool took_over;             /* the pinned link of an earlier process was adopted */
    struct arc_xdp_bpf *skel;
    int ncpu;
};

/* libbpf's last warning, kept for the "why" of a failure (its debug
 * output, e.g. the verifier log, is not printed). */
static char last_libbpf[256];

static int on_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_DEBUG)
        return 0;
    vsnprintf(last_libbpf, sizeof(last_libbpf), fmt, ap);
    size_t n = strlen(last_libbpf);
    while (n && (last_libbpf[n - 1] == '\n' || last_libbpf[n - 1] == ' '))
        last_libbpf[--n] = '\0';
    if (level == LIBBPF_WARN)
        fprintf(stderr, "arc: xdp: %s\n", last_libbpf);
    return 0;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void key_of(const struct arc_cidr *c, struct arc_xdp_lpm_key *k)
{
    memset(k, 0, sizeof(*k));
    if (c->family == AF_INET) {
        k->addr[10] = k->addr[11] = 0xff;
        memcpy(&k->addr[12], c->addr, 4);
        k->prefixlen = 96u + c->prefix;
    } else {
        memcpy(k->addr, c->addr, 16);
        k->prefixlen = c->prefix;
    }
}

/* "10.0.0.0/8" or "2001:db8::/32" from a map key. */
static void text_of(const struct arc_xdp_lpm_key *k, char *out, size_t len)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    char ip[INET6_ADDRSTRLEN];
    if (k->prefixlen >= 96 && memcmp(k->addr, mapped, 12) == 0) {
        inet_ntop(AF_INET, &k->addr[12], ip, sizeof(ip));
        snprintf(out, len, "%s/%u", ip, k->prefixlen - 96);
    } else {
        inet_ntop(AF_INET6, k->addr, ip, sizeof(ip));
        snprintf(out, len, "%s/%u", ip, k->prefixlen);
    }
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct arc_xdp_lpm_key));
}

/* Makes the trie hold exactly `list`: new prefixes first, then the stale
 * ones are deleted, so a prefix on both lists is never absent. */
static int sync_list(int fd, const struct arc_cidr *list, size_t n, char *err, size_t len)
{
    struct arc_xdp_lpm_key *want = calloc(n ? n : 1, sizeof(*want));
    if (!want) {
        snprintf(err, len, "out of memory");
        return -1;
    }
    uint8_t one = 1;
    for (size_t i = 0; i < n; i++) {
        key_of(&list[i], &want[i]);
        if (bpf_map_update_elem(fd, &want[i], &one, BPF_ANY) < 0) {
            snprintf(err, len, "adding %s: %s", list[i].text, strerror(errno));
            free(want);
            return -1;
        }
    }
    qsort(want, n, sizeof(*want), key_cmp);
    size_t cap = 64, nstale = 0;
    struct arc_xdp_lpm_key *stale = malloc(cap * sizeof(*stale)), k, next;
    ARC_ASSERT(stale != NULL);
    void *prev = NULL;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        k = next;
        prev = &k;
        if (n && bsearch(&k, want, n, sizeof(*want), key_cmp))
            continue;
        if (nstale == cap) {
            cap *= 2;
            stale = realloc(stale, cap * sizeof(*stale));
            ARC_ASSERT(stale != NULL);
        }
        stale[nstale++] = k;
    }
    for (size_t i = 0; i < nstale; i++)
        bpf_map_delete_elem(fd, &stale[i]);
    free(stale);
    free(want);
    return 0;
}

int arc_xdp_apply(struct arc_xdp *x, const struct arc_xdp_conf *c, char *err, size_t len)
{
    if (!x || !x->skel)
        return 0;
    struct arc_xdp_cfg v = {
        .flags = (c->syn_enabled ? ARC_XDP_F_SYN : 0) | (c->ab_enabled ? ARC_XDP_F_AUTO : 0),
        .syn_pps_source = c->syn_pps_source,
        .syn_pps_global = c->syn_pps_global,
        .ab_threshold = c->ab_threshold,
        .ab_window_ns = c->ab_window * 1000000ull,
        .ab_ttl_ns = c->ab_ttl * 1000000ull,
    };
    uint32_t zero = 0;
    char e[300];
    if (sync_list(bpf_map__fd(x->skel->maps.whitelist), c->whitelist, c->n_whitelist, e,
                  sizeof(e)) < 0) {
        snprintf(err, len, "security.xdp.whitelist: %s", e);
        return -1;
    }
    if (sync_list(bpf_map__fd(x->skel->maps.blacklist), c->blacklist, c->n_blacklist, e,
                  sizeof(e)) < 0) {
        snprintf(err, len, "security.xdp.blacklist: %s", e);
        return -1;
    }
    if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.settings), &zero, &v, BPF_ANY) < 0) {
        snprintf(err, len, "updating the XDP settings map: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static const char *load_why(int e, char *buf, size_t len)
{
    if (e == EPERM || e == EACCES)
        snprintf(buf, len, "not permitted to load BPF programs (%s; needs root, or CAP_BPF "
                 "and CAP_NET_ADMIN)%s%s", strerror(e), last_libbpf[0] ? ": " : "", last_libbpf);
    else if (e == ENOSYS)
        snprintf(buf, len, "this kernel has no bpf() system call");
    else
        snprintf(buf, len, "loading the XDP program failed: %s%s%s", strerror(e),
                 last_libbpf[0] ? ": " : "", last_libbpf);
    return buf;
}

static struct arc_xdp *load(const struct arc_xdp_conf *c, char *err, size_t len)
{
    libbpf_set_print(on_libbpf);
    last_libbpf[0] = '\0';
    struct arc_xdp *x = calloc(1, sizeof(*x));
    ARC_ASSERT(x != NULL);
    x->link_fd = -1;
    x->skel = arc_xdp_bpf__open();
    if (!x->skel) {
        load_why(errno, err, len);
        free(x);
        return NULL;
    }
    bpf_map__set_max_entries(x->skel->maps.sources, c->max_sources);
    if (c->pin_path) {
        /* Pinned maps: an earlier process's maps (blocks, counters, per-source
         * state) are reused when compatible, else made and pinned. */
        struct statfs sf;
        if (mkdir(c->pin_path, 0700) < 0 && errno != EEXIST) {
            snprintf(err, len, "security.xdp.pin_path %s: %s", c->pin_path, strerror(errno));
            goto fail;
        }
        if (statfs(c->pin_path, &sf) < 0 || sf.f_type != BPF_FS_MAGIC) {
            snprintf(err, len, "security.xdp.pin_path %s is not in a bpf filesystem (mount one: "
                     "mount -t bpf bpf /sys/fs/bpf)", c->pin_path);
            goto fail;
        }
        snprintf(x->pin, sizeof(x->pin), "%s", c->pin_path);
        struct bpf_map *m;
        bpf_object__for_each_map(m, x->skel->obj) {
            if (bpf_map__is_internal(m))
                continue;       /* .rodata: part of the program, not state */
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", c->pin_path, bpf_map__name(m));
            bpf_map__set_pin_path(m, path);
        }
    }
    if (arc_xdp_bpf__load(x->skel) < 0) {
        load_why(errno, err, len);
        if (x->pin[0]) {
            size_t n = strlen(err);
            snprintf(err + n, len - n, " (pinned maps in %s that do not match, e.g. after a "
                     "max_sources change, must be removed first)", x->pin);
        }
        goto fail;
    }
    x->ncpu = libbpf_num_possible_cpus();
    if (x->ncpu < 1)
        x->ncpu = 1;
    if (arc_xdp_apply(x, c, err, len) < 0)
        goto fail;
    return x;
fail:
    arc_xdp_bpf__destroy(x->skel);
    free(x);
    return NULL;
}

struct arc_xdp *arc_xdp_load_only(const struct arc_xdp_conf *c, char *err, size_t len)
{
    return load(c, err, len);
}

static struct arc_xdp *unavailable(const struct arc_xdp_conf *c, const char *why)
{
    struct arc_xdp *x = calloc(1, sizeof(*x));
    ARC_ASSERT(x != NULL);
    x->state = ARC_XDP_UNAVAILABLE;
    snprintf(x->why, sizeof(x->why), "%s", why);
    snprintf(x->ifname, sizeof(x->ifname), "%s", c->interface ? c->interface : "");
    fprintf(stderr, "arc: xdp: not attached to %s: %s%s\n", x->ifname, x->why,
            c->required ? "" : " (running without the XDP layer; security.xdp.required is false)");
    return x;
}

/* A bpf_link, not a netlink attachment: the kernel detaches it when the
 * last descriptor closes, so even a crashed Arc leaves no filter behind. */
/* With pin_path: a link pinned there by an earlier process on the same
 * interface gets our program in one step (bpf_link_update: no moment
 * without a filter). 1 if so, 0 if there was none to take over. */
static int take_over(struct arc_xdp *x)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/link", x->pin);
    int lfd = bpf_obj_get(path);
    if (lfd < 0)
        return 0;
    struct bpf_link_info info;
    memset(&info, 0, sizeof(info));
    uint32_t ilen = sizeof(info);
    if (bpf_obj_get_info_by_fd(lfd, &info, &ilen) == 0 && info.type == BPF_LINK_TYPE_XDP &&
        info.xdp.ifindex == x->ifindex &&
        bpf_link_update(lfd, bpf_program__fd(x->skel->progs.arc_xdp), NULL) == 0) {
        x->link_fd = lfd;
        x->took_over = true;
        return 1;
    }
    /* another interface, or the interface went away: start afresh */
    close(lfd);
    unlink(path);
    return 0;
}

static int attach(struct arc_xdp *x, unsigned mode_flag)
{
    int fd = bpf_program__fd(x->skel->progs.arc_xdp);
    LIBBPF_OPTS(bpf_link_create_opts, o, .flags = mode_flag);
    int lfd = bpf_link_create(fd, (int)x->ifindex, BPF_XDP, &o);
    if (lfd < 0)
        return -errno;
    x->link_fd = lfd;
    if (x->pin[0]) {
        char path[512];
        snprintf(path, sizeof(path), "%s/link", x->pin);
        if (bpf_obj_pin(lfd, path) < 0) {
            int e = errno;
            fprintf(stderr, "arc: xdp: pinning the link at %s: %s (it detaches on exit)\n",
                    path, strerror(e));
        }
    }
    return 0;
}

/* The mode the kernel reports for what is attached. */
static unsigned attached_mode(const struct arc_xdp *x, unsigned fallback)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query((int)x->ifindex, 0, &q) == 0) {
        if (q.attach_mode == XDP_ATTACHED_DRV)
            return XDP_FLAGS_DRV_MODE;
        if (q.attach_mode == XDP_ATTACHED_SKB)
            return XDP_FLAGS_SKB_MODE;
    }
    return fallback;
}

/* The process's layer (one at most), so that it stays reachable however
 * the start ends (LeakSanitizer, and a clear owner). */
static struct arc_xdp *live;

static struct arc_xdp *started(struct arc_xdp *x)
{
    live = x;
    return x;
}

struct arc_xdp *arc_xdp_start(const struct arc_xdp_conf *c)
{
    if (!c->enabled)
        return NULL;
    char why[512];
    unsigned ifindex = if_nametoindex(c->interface);
    if (!ifindex) {
        snprintf(why, sizeof(why), "interface '%s' does not exist (%s)", c->interface,
                 strerror(errno));
        return started(unavailable(c, why));
    }
    struct arc_xdp *x = load(c, why, sizeof(why));
    if (!x)
        return started(unavailable(c, why));
    x->ifindex = ifindex;
    snprintf(x->ifname, sizeof(x->ifname), "%s", c->interface);
    int rc;
    if (x->pin[0] && take_over(x)) {
        rc = 0;
        x->attach_flags = attached_mode(x, XDP_FLAGS_DRV_MODE);
        fprintf(stderr, "arc: xdp: took over the link pinned at %s/link (no gap; mode stays as "
                "attached)\n", x->pin);
    } else if (c->mode == ARC_XDP_GENERIC) {
        rc = attach(x, XDP_FLAGS_SKB_MODE);
        x->attach_flags = XDP_FLAGS_SKB_MODE;
    } else {
        rc = attach(x, XDP_FLAGS_DRV_MODE);
        x->attach_flags = XDP_FLAGS_DRV_MODE;
        if (rc < 0 && c->mode == ARC_XDP_AUTO && rc != -EBUSY && rc != -EEXIST) {
            int native = rc;
            rc = attach(x, XDP_FLAGS_SKB_MODE);
            x->attach_flags = XDP_FLAGS_SKB_MODE;
            if (rc == 0)
                fprintf(stderr, "arc: xdp: native mode on %s failed (%s); using generic mode\n",
                        x->ifname, strerror(-native));
        }
    }
    if (rc < 0) {
        if (rc == -EBUSY || rc == -EEXIST)
            snprintf(why, sizeof(why), "another XDP program is already attached to %s",
                     x->ifname);
        else if (rc == -EOPNOTSUPP && c->mode == ARC_XDP_NATIVE)
            snprintf(why, sizeof(why), "the driver of %s has no native XDP (mode: native; "
                     "generic or auto would attach in generic mode)", x->ifname);
        else if (rc == -EPERM || rc == -EACCES)
            snprintf(why, sizeof(why), "not permitted to attach XDP to %s (%s; needs "
                     "CAP_NET_ADMIN)", x->ifname, strerror(-rc));
        else
            snprintf(why, sizeof(why), "attaching to %s failed: %s%s%s", x->ifname,
                     strerror(-rc), last_libbpf[0] ? ": " : "", last_libbpf);
        arc_xdp_bpf__destroy(x->skel);
        free(x);
        return started(unavailable(c, why));
    }
    x->state = ARC_XDP_ATTACHED;
    x->attach_flags = attached_mode(x, x->attach_flags);
    fprintf(stderr, "arc: xdp: attached to %s mode=%s blacklist=%zu whitelist=%zu\n", x->ifname,
            arc_xdp_mode_name(x), c->n_blacklist, c->n_whitelist);
    return started(x);
}

enum arc_xdp_state arc_xdp_state(const struct arc_xdp *x)
{
    return x ? x->state : ARC_XDP_OFF;
}

const char *arc_xdp_why(const struct arc_xdp *x)
{
    return x && x->state == ARC_XDP_UNAVAILABLE ? x->why : "";
}

const char *arc_xdp_mode_name(const struct arc_xdp *x)
{
    if (!x || x->state != ARC_XDP_ATTACHED)
        return "";
    return x->attach_flags == XDP_FLAGS_DRV_MODE ? "native" : "generic";
}

const char *arc_xdp_interface(const struct arc_xdp *x)
{
    return x ? x->ifname : "";
}

int arc_xdp_prog_fd(const struct arc_xdp *x)
{
    return x && x->skel ? bpf_program__fd(x->skel->progs.arc_xdp) : -1;
}

void arc_xdp_stop(struct arc_xdp *x)
{
    if (!x)
        return;
    if (live == x)
        live = NULL;
    if (x->state == ARC_XDP_ATTACHED && x->link_fd >= 0) {
        char path[512];
        snprintf(path, sizeof(path), "%s/link", x->pin);
        struct stat st;
        bool pinned = x->pin[0] && stat(path, &st) == 0;
        close(x->link_fd);
        if (pinned)
            fprintf(stderr, "arc: xdp: left attached to %s (link pinned at %s; the next start "
                    "takes it over; remove %s to detach)\n", x->ifname, path, x->pin);
        else
            fprintf(stderr, "arc: xdp: detached from %s\n", x->ifname);
    }
    if (x->skel)
        arc_xdp_bpf__destroy(x->skel);
    free(x);
}

int arc_xdp_block(struct arc_xdp *x, const struct arc_cidr *c, uint64_t ttl_ms, unsigned origin,
                  char *err, size_t len)
{
    if (!x || !x->skel) {
        snprintf(err, len, "the XDP layer is not running");
        return -1;
    }
    struct arc_xdp_lpm_key k;
    key_of(c, &k);
    uint64_t now = mono_ns();
    struct arc_xdp_block b = { .expires_ns = ttl_ms ? now + ttl_ms * 1000000ull : 0,
                               .added_ns = now, .origin = origin };
    if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.dyn_blocks), &k, &b, BPF_ANY) < 0) {
        snprintf(err, len, "adding the block: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int arc_xdp_unblock(struct arc_xdp *x, const struct arc_cidr *c, char *err, size_t len)
{
    if (!x || !x->skel) {
        snprintf(err, len, "the XDP layer is not running");
        return -1;
    }
    struct arc_xdp_lpm_key k;
    key_of(c, &k);
    int removed = bpf_map_delete_elem(bpf_map__fd(x->skel->maps.dyn_blocks), &k) == 0;
    /* An auto_block mark of that one address is lifted too. */
    if (k.prefixlen == 128) {
        struct arc_xdp_src st;
        int fd = bpf_map__fd(x->skel->maps.sources);
        if (bpf_map_lookup_elem(fd, k.addr, &st) == 0 && st.blocked_until_ns) {
            st.blocked_until_ns = 0;
            st.win_pkts = 0;
            bpf_map_update_elem(fd, k.addr, &st, BPF_EXIST);
            removed = 1;
        }
    }
    return removed;
}

size_t arc_xdp_blocks(struct arc_xdp *x, struct arc_xdp_block_view *out, size_t max)
{
    if (!x || !x->skel)
        return 0;
    uint64_t now = mono_ns();
    size_t n = 0;
    int fd = bpf_map__fd(x->skel->maps.dyn_blocks);
    struct arc_xdp_lpm_key k, next;
    void *prev = NULL;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        k = next;
        prev = &k;
        struct arc_xdp_block b;
        if (bpf_map_lookup_elem(fd, &k, &b) < 0 || (b.expires_ns && b.expires_ns <= now))
            continue;
        if (n < max) {
            text_of(&k, out[n].cidr, sizeof(out[n].cidr));
            out[n].origin = b.origin == ARC_XDP_BY_HEAVY ? "heavy_hitters" : "api";
            out[n].expires_in_ms = b.expires_ns ? (b.expires_ns - now + 999999) / 1000000 : 0;
        }
        n++;
    }
    fd = bpf_map__fd(x->skel->maps.sources);
    uint8_t a[16], an[16];
    prev = NULL;
    while (bpf_map_get_next_key(fd, prev, an) == 0) {
        memcpy(a, an, 16);
        prev = a;
        struct arc_xdp_src st;
        if (bpf_map_lookup_elem(fd, a, &st) < 0 || st.blocked_until_ns <= now)
            continue;
        if (n < max) {
            struct arc_xdp_lpm_key ak = { .prefixlen = 128 };
            memcpy(ak.addr, a, 16);
            text_of(&ak, out[n].cidr, sizeof(out[n].cidr));
            out[n].origin = "auto_block";
            out[n].expires_in_ms = (st.blocked_until_ns - now + 999999) / 1000000;
        }
        n++;
    }
    return n;
}

void arc_xdp_counters(const struct arc_xdp *x, uint64_t *out)
{
    memset(out, 0, ARC_XDP_N_REASONS * sizeof(*out));
    if (!x || !x->skel)
        return;
    int fd = bpf_map__fd(x->skel->maps.counters);
    uint64_t *per = calloc((size_t)x->ncpu, sizeof(*per));
    ARC_ASSERT(per != NULL);
    for (uint32_t r = 0; r < ARC_XDP_N_REASONS; r++) {
        if (bpf_map_lookup_elem(fd, &r, per) < 0)
            continue;
        for (int c = 0; c < x->ncpu; c++)
            out[r] += per[c];
    }
    free(per);
}

void arc_xdp_sweep(struct arc_xdp *x)
{
    if (!x || !x->skel)
        return;
    uint64_t now = mono_ns();
    int fd = bpf_map__fd(x->skel->maps.dyn_blocks);
    struct arc_xdp_lpm_key k, next, gone[64];
    size_t n = 0;
    void *prev = NULL;
    while (n < ARC_ARRAY_LEN(gone) && bpf_map_get_next_key(fd, prev, &next) == 0) {
        k = next;
        prev = &k;
        struct arc_xdp_block b;
        if (bpf_map_lookup_elem(fd, &k, &b) == 0 && b.expires_ns && b.expires_ns <= now)
            gone[n++] = k;
    }
    for (size_t i = 0; i < n; i++)
        bpf_map_delete_elem(fd, &gone[i]);
}
