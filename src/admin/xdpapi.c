/*
 * The XDP layer in the admin surfaces (control thread): /v1/status's "xdp"
 * object, /v1/xdp/blocks and /v1/xdp/stats, the arc_xdp_* metrics, and the
 * tick that sweeps expired blocks and pushes heavy hitters into XDP blocks
 * (security.xdp.block_heavy_hitters).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <jansson.h>

#include "admin/admin_int.h"
#include "limit/limit.h"
#include "xdp/xdp.h"
#include "xdp/xdp_abi.h"

static const char *state_name(enum arc_xdp_state s)
{
    return s == ARC_XDP_ATTACHED ? "attached" : s == ARC_XDP_UNAVAILABLE ? "unavailable" : "off";
}

json_t *arc_admin__xdp_status(const struct arc_control *ctl)
{
    const struct arc_xdp *x = ctl->xdp;
    enum arc_xdp_state st = arc_xdp_state(x);
    json_t *o = json_pack("{s:s}", "state", state_name(st));
    if (st != ARC_XDP_OFF)
        json_object_set_new(o, "interface", json_string(arc_xdp_interface(x)));
    if (st == ARC_XDP_ATTACHED)
        json_object_set_new(o, "mode", json_string(arc_xdp_mode_name(x)));
    if (st == ARC_XDP_UNAVAILABLE)
        json_object_set_new(o, "why", json_string(arc_xdp_why(x)));
    return o;
}

json_t *arc_admin__xdp_stats(const struct arc_control *ctl)
{
    uint64_t c[ARC_XDP_N_REASONS];
    arc_xdp_counters(ctl->xdp, c);
    json_t *o = arc_admin__xdp_status(ctl);
    json_t *pass = json_object(), *drop = json_object();
    uint64_t np = 0, nd = 0;
    for (size_t r = 0; r < ARC_XDP_N_REASONS; r++) {
        json_object_set_new(arc_xdp_reason_drops[r] ? drop : pass, arc_xdp_reason_names[r],
                            json_integer((json_int_t)c[r]));
        *(arc_xdp_reason_drops[r] ? &nd : &np) += c[r];
    }
    json_object_set_new(o, "passed", pass);
    json_object_set_new(o, "dropped", drop);
    json_object_set_new(o, "passed_total", json_integer((json_int_t)np));
    json_object_set_new(o, "dropped_total", json_integer((json_int_t)nd));
    return o;
}

void arc_admin__xdp_metrics(struct arc_sbuf *m, const struct arc_control *ctl)
{
    enum arc_xdp_state st = arc_xdp_state(ctl->xdp);
    if (st == ARC_XDP_OFF)
        return;
    arc_sbuf_printf(m, "# HELP arc_xdp_attached 1 while the XDP program is attached "
                       "(security.xdp), 0 when it could not be (see /v1/status).\n"
                       "# TYPE arc_xdp_attached gauge\narc_xdp_attached %d\n",
                    st == ARC_XDP_ATTACHED);
    uint64_t c[ARC_XDP_N_REASONS];
    arc_xdp_counters(ctl->xdp, c);
    arc_sbuf_printf(m, "# HELP arc_xdp_packets_total Packets the XDP program judged, by "
                       "action and reason.\n# TYPE arc_xdp_packets_total counter\n");
    for (size_t r = 0; r < ARC_XDP_N_REASONS; r++)
        arc_sbuf_printf(m, "arc_xdp_packets_total{action=\"%s\",reason=\"%s\"} %llu\n",
                        arc_xdp_reason_drops[r] ? "drop" : "pass", arc_xdp_reason_names[r],
                        (unsigned long long)c[r]);
}

#define XDP_HH_MAX 1024

void arc_admin__xdp_tick(struct arc_control *ctl, uint64_t now)
{
    static uint64_t next;
    if (!ctl->xdp || arc_xdp_state(ctl->xdp) != ARC_XDP_ATTACHED || now < next)
        return;
    next = now + 1000;
    arc_xdp_sweep(ctl->xdp);
    const struct arc_config *cfg = ctl->snap->cfg;
    if (!cfg->xdp.block_heavy_hitters || !cfg->heavy_hitters.enabled)
        return;
    struct arc_rl_hh_item *hh = calloc(XDP_HH_MAX, sizeof(*hh));
    if (!hh)
        return;
    size_t n = arc_workers_heavy_hitters(ctl->workers, ctl->n_workers,
                                         cfg->heavy_hitters.threshold_qps, hh, XDP_HH_MAX);
    for (size_t i = 0; i < n; i++) {
        /* Single addresses only: a /24 or /48 aggregate of several
         * clients is a report, not proof against each of them. */
        if (hh[i].prefix != (hh[i].family == 4 ? 32 : 128))
            continue;
        struct arc_cidr c = { .family = hh[i].family == 4 ? AF_INET : AF_INET6,
                              .prefix = hh[i].prefix };
        memcpy(c.addr, hh[i].addr, 16);
        char ip[INET6_ADDRSTRLEN], err[200];
        inet_ntop(c.family, c.addr, ip, sizeof(ip));
        snprintf(c.text, sizeof(c.text), "%s/%u", ip, c.prefix);
        if (arc_xdp_block(ctl->xdp, &c, cfg->xdp.heavy_hitter_ttl, ARC_XDP_BY_HEAVY, err,
                          sizeof(err)) < 0)
            fprintf(stderr, "arc: xdp: blocking heavy hitter %s: %s\n", c.text, err);
    }
    free(hh);
}

#define XDP_LIST_MAX 10000

int arc_admin__xdp_blocks(struct arc_control *ctl, const char *method, const char *body,
                          size_t len, const char *peer, json_t **doc)
{
    struct arc_xdp *x = ctl->xdp;
    if (arc_xdp_state(x) != ARC_XDP_ATTACHED) {
        *doc = json_pack("{s:s,s:o}", "error", "the XDP layer is not attached",
                         "xdp", arc_admin__xdp_status(ctl));
        return 409;
    }
    if (strcmp(method, "GET") == 0) {
        struct arc_xdp_block_view *v = calloc(XDP_LIST_MAX, sizeof(*v));
        if (!v) {
            *doc = json_pack("{s:s}", "error", "out of memory");
            return 500;
        }
        size_t n = arc_xdp_blocks(x, v, XDP_LIST_MAX);
        json_t *a = json_array();
        for (size_t i = 0; i < n && i < XDP_LIST_MAX; i++) {
            json_t *b = json_pack("{s:s,s:s}", "cidr", v[i].cidr, "origin", v[i].origin);
            json_object_set_new(b, "expires_in_ms", v[i].expires_in_ms
                                ? json_integer((json_int_t)v[i].expires_in_ms) : json_null());
            json_array_append_new(a, b);
        }
        free(v);
        *doc = json_pack("{s:o,s:I,s:b}", "blocks", a, "total", (json_int_t)n,
                         "truncated", n > XDP_LIST_MAX);
        return 200;
    }
    json_error_t je;
    json_t *in = json_loadb(body ? body : "", len, 0, &je);
    const char *cidr = NULL, *ttl = NULL;
    if (!in || json_unpack_ex(in, &je, 0, "{s:s,s?s}", "cidr", &cidr, "ttl", &ttl) < 0) {
        *doc = json_pack("{s:s,s:s}", "error", "expected a JSON object {\"cidr\": "
                         "\"10.0.0.0/8\"} (POST also takes \"ttl\": \"10m\")", "detail", je.text);
        json_decref(in);
        return 400;
    }
    struct arc_cidr c;
    uint64_t ttl_ms = 0;
    char err[300];
    int status;
    if (arc_config_parse_cidr(cidr, &c) < 0) {
        snprintf(err, sizeof(err), "'%.80s' is not a CIDR prefix like \"10.0.0.0/8\" or "
                 "\"2001:db8::/32\" (host bits must be zero)", cidr);
        *doc = json_pack("{s:s}", "error", err);
        status = 400;
    } else if (strcmp(method, "POST") == 0) {
        if (ttl && (arc_config_parse_duration(ttl, &ttl_ms) < 0)) {
            snprintf(err, sizeof(err), "ttl: '%.40s' is not a duration like \"10m\"", ttl);
            *doc = json_pack("{s:s}", "error", err);
            status = 400;
        } else if (arc_xdp_block(x, &c, ttl_ms, ARC_XDP_BY_API, err, sizeof(err)) < 0) {
            *doc = json_pack("{s:s}", "error", err);
            status = 500;
        } else {
            fprintf(stderr, "arc: xdp: blocked %s%s%s (API from %s)\n", c.text,
                    ttl ? " ttl=" : "", ttl ? ttl : "", peer);
            *doc = json_pack("{s:s,s:s}", "result", "blocked", "cidr", c.text);
            json_object_set_new(*doc, "expires_in_ms",
                                ttl_ms ? json_integer((json_int_t)ttl_ms) : json_null());
            status = 200;
        }
    } else {
        int rc = arc_xdp_unblock(x, &c, err, sizeof(err));
        if (rc < 0) {
            *doc = json_pack("{s:s}", "error", err);
            status = 500;
        } else if (rc == 0) {
            *doc = json_pack("{s:s,s:s}", "error", "no such block", "cidr", c.text);
            status = 404;
        } else {
            fprintf(stderr, "arc: xdp: unblocked %s (API from %s)\n", c.text, peer);
            *doc = json_pack("{s:s,s:s}", "result", "unblocked", "cidr", c.text);
            status = 200;
        }
    }
    fflush(stderr);
    json_decref(in);
    return status;
}
