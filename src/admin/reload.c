/*
 * Reloads: one path for every trigger (SIGHUP, a file change, POST
 * /v1/reload, POST /v1/config). A new config is loaded and compiled on the
 * control thread, refused if it changes a restart-only field, else
 * published; the workers adopt it at the top of their loops. A plugin
 * module not yet in the compile cache is compiled on a thread first, for
 * every trigger (admin.c's reload_bg and arc_admin__etcd_apply_bg, and
 * ctlapi.c for the API, whose request waits for the outcome). Each attempt
 * is logged with its trigger, counted by result and remembered for
 * GET /v1/status.
 */
#include "core/log.h"
#include "admin/admin_int.h"
#include "plugin/plugin.h"
#include "xdp/xdp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void remember(struct arc_control *ctl, int result, const char *trigger, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void remember(struct arc_control *ctl, int result, const char *trigger, const char *fmt, ...)
{
    struct arc_reload_last *l = &ctl->last;
    l->result = result;
    l->at = time(NULL);
    l->generation = ctl->snap->generation;
    snprintf(l->trigger, sizeof(l->trigger), "%s", trigger);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->message, sizeof(l->message), fmt, ap);
    va_end(ap);
    ctl->reloads[result]++;
}

/* "3 errors; first: f.yaml:4:7: msg" (the whole list went to the log). */
static void errors_summary(const struct arc_config_errors *errs, char *out, size_t len)
{
    if (errs->n == 0) {
        snprintf(out, len, "the configuration did not load");
        return;
    }
    const struct arc_config_error *e = &errs->v[0];
    snprintf(out, len, "%zu error%s; first: %s:%d:%d: %s", errs->n, errs->n == 1 ? "" : "s",
             e->file ? e->file : "?", e->line, e->col, e->msg ? e->msg : "");
}

static int failed(struct arc_control *ctl, const char *trigger, const struct arc_config_errors *errs)
{
    char sum[900];
    errors_summary(errs, sum, sizeof(sum));
    for (size_t i = 0; i < errs->n; i++)
        arc_log_at(ARC_LOG_ERROR, errs->v[i].file, errs->v[i].line, errs->v[i].col, errs->v[i].msg);
    arc_log(ARC_LOG_ERROR, "reload (%s) failed: the config above was not applied; still "
            "serving fingerprint=%s", trigger, ctl->snap->cfg->fingerprint);
    fflush(stderr);
    remember(ctl, ARC_RELOAD_ERROR, trigger, "%s", sum);
    return ARC_RELOAD_ERROR;
}

/* Publishes ns (one reference, taken over) unless a restart-only field
 * changed; fields/flen receive the changed fields' names. */
static int apply(struct arc_control *ctl, struct arc_snapshot *ns, const char *trigger,
                 char *fields, size_t flen, size_t *n_fields)
{
    size_t n = arc_config_restart_diff(ctl->snap->cfg, ns->cfg, fields, flen);
    if (n_fields)
        *n_fields = n;
    if (n) {
        arc_log(ARC_LOG_ERROR, "reload (%s) refused: these fields need a restart: %s; still "
                "serving fingerprint=%s", trigger, fields, ctl->snap->cfg->fingerprint);
        fflush(stderr);
        arc_snapshot_unref(ns);
        remember(ctl, ARC_RELOAD_REFUSED, trigger, "these fields need a restart: %s", fields);
        return ARC_RELOAD_REFUSED;
    }
    /* Workers adopt it at the top of their loops; exchanges running finish
     * on the snapshot they started with. */
    arc_snapshot_publish(ns);
    struct arc_snapshot *old = ctl->snap;
    ctl->snap = ns;
    bool same = strcmp(old->cfg->fingerprint, ns->cfg->fingerprint) == 0;
    arc_log(ARC_LOG_INFO, "reloaded (%s) generation=%llu fingerprint=%s%s", trigger,
            (unsigned long long)ns->generation, ns->cfg->fingerprint, same ? " (unchanged)" : "");
    arc_snapshot_unref(old);
    /* security.xdp: the maps' contents follow the config (no reattach). */
    char xerr[300];
    if (ctl->xdp && arc_xdp_apply(ctl->xdp, &ns->cfg->xdp, xerr, sizeof(xerr)) < 0)
        arc_log(ARC_LOG_WARN, "xdp: applying the reloaded security.xdp failed: %s", xerr);
    remember(ctl, ARC_RELOAD_OK, trigger, "generation %llu, fingerprint %s%s",
             (unsigned long long)ns->generation, ns->cfg->fingerprint, same ? " (unchanged)" : "");
    return ARC_RELOAD_OK;
}

int arc_admin__reload_source(struct arc_control *ctl, const char *trigger, bool skip_unchanged,
                             struct arc_config_errors *keep)
{
    struct arc_config_errors errs = { 0 };
    struct arc_snapshot *ns = ctl->load ? ctl->load(ctl->load_ud, &errs) : NULL;
    if (!ns && arc_plugin_defer_missing()) {
        /* (armed by the caller: modules to compile first; the caller
         * starts the compile and reloads again when it is done) */
        arc_config_errors_dispose(&errs);
        return ARC_RELOAD_NONE;
    }
    if (!ns) {
        int rc = failed(ctl, trigger, &errs);
        if (keep)
            *keep = errs;
        else
            arc_config_errors_dispose(&errs);
        return rc;
    }
    arc_config_errors_dispose(&errs);
    if (skip_unchanged && strcmp(ns->cfg->fingerprint, ctl->snap->cfg->fingerprint) == 0) {
        arc_log(ARC_LOG_WARN, "%s: the config says the same as the running one "
                "(fingerprint=%s): not reloaded", trigger, ns->cfg->fingerprint);
        arc_snapshot_unref(ns);
        return ARC_RELOAD_OK;
    }
    char fields[1024];
    return apply(ctl, ns, trigger, fields, sizeof(fields), NULL);
}

int arc_admin__republish(struct arc_control *ctl, const char *trigger)
{
    const struct arc_config *cur = ctl->snap->cfg;
    struct arc_config_errors errs = { 0 };
    struct arc_config *cfg = NULL;
    struct arc_snapshot *ns = NULL;
    if (arc_config_load_string(cur->canonical_json, strlen(cur->canonical_json), cur->source,
                               "json", &cfg, &errs) < 0 ||
        arc_snapshot_build(cfg, &ns, &errs) < 0) {
        /* (the running config compiled before: only memory, or a
         * certificate file changed on disk since, can fail it) */
        char sum[900];
        errors_summary(&errs, sum, sizeof(sum));
        arc_log(ARC_LOG_WARN, "%s: the new endpoints are not applied: %s", trigger, sum);
        arc_config_errors_dispose(&errs);
        return -1;
    }
    arc_config_errors_dispose(&errs);
    arc_snapshot_publish(ns);
    struct arc_snapshot *old = ctl->snap;
    ctl->snap = ns;
    arc_log(ARC_LOG_INFO, "%s: endpoints changed, generation=%llu fingerprint=%s", trigger,
            (unsigned long long)ns->generation, ns->cfg->fingerprint);
    arc_snapshot_unref(old);
    return 0;
}

int arc_control_reload(struct arc_control *ctl, const char *trigger)
{
    return arc_admin__reload_source(ctl, trigger, false, NULL);
}

void arc_admin__submit(struct arc_control *ctl, const char *text, size_t len, const char *format,
                       const char *name, const char *trigger, bool apply_it,
                       struct arc_admin_outcome *out)
{
    memset(out, 0, sizeof(*out));
    struct arc_config *cfg = NULL;
    struct arc_snapshot *ns = NULL;
    /* Errors name the text `name` ("<request>", "etcd:/arc/config");
     * certificate paths in it are read relative to Arc's working
     * directory, like the file's. */
    if (arc_config_load_string(text, len, name, format, &cfg, &out->errs) == 0) {
        snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", cfg->fingerprint);
        if (arc_snapshot_build(cfg, &ns, &out->errs) < 0)
            ns = NULL;
    }
    if (!ns && arc_plugin_defer_missing()) {
        /* (armed by the caller: modules to compile first; it starts the
         * compile and submits again when it is done) */
        out->result = ARC_RELOAD_NONE;
        return;
    }
    if (!ns) {
        out->result = ARC_RELOAD_ERROR;
        if (apply_it)
            failed(ctl, trigger, &out->errs);
        return;
    }
    out->unchanged = strcmp(ns->cfg->fingerprint, ctl->snap->cfg->fingerprint) == 0;
    if (!apply_it) {
        out->n_fields = arc_config_restart_diff(ctl->snap->cfg, ns->cfg, out->fields,
                                                sizeof(out->fields));
        out->result = ARC_RELOAD_OK;
        arc_snapshot_unref(ns);
        return;
    }
    out->result = apply(ctl, ns, trigger, out->fields, sizeof(out->fields), &out->n_fields);
    out->generation = ctl->snap->generation;
}

const char *arc_admin__result_name(int result)
{
    static const char *const names[] = { "ok", "error", "refused", "none" };
    return result >= 0 && result <= ARC_RELOAD_NONE ? names[result] : "none";
}
