/*
 * Schema, part 4: the `logging` section (access log output, sampling,
 * redaction, the writer's ring and batching) and `observability.tracing`.
 *
 * Which keys a reload may change is decided in restart.c: the output and
 * writer keys (and whether logging is on at all) need a restart, because
 * the writer thread, its file and the workers' rings are set up when Arc
 * starts; access.* and redact.* are read per exchange from its snapshot.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema_int.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define LATER ARC_KEY_LATER
#define MS_S 1000ull

static const struct arc_conf_key logging_keys[] = {
    { "output", 0 }, { "access", 0 }, { "redact", 0 }, { "writer", 0 },
};

static const struct arc_conf_key log_output_keys[] = {
    { "file", 0 }, { "stdout", 0 }, { "rotation", 0 },
};

static const struct arc_conf_key log_rotation_keys[] = {
    { "max_size", 0 }, { "max_files", 0 }, { "compress", 0 },
};

static const struct arc_conf_key log_access_keys[] = {
    { "sample", 0 }, { "force_on_status", 0 }, { "force_on_slow", 0 },
};

static const struct arc_conf_key log_redact_keys[] = {
    { "headers", 0 }, { "query_params", 0 },
};

static const struct arc_conf_key log_writer_keys[] = {
    { "ring_capacity", 0 }, { "batch_bytes", 0 }, { "flush_interval", 0 }, { "drop_behind", 0 },
};

static const struct arc_conf_key tracing_keys[] = {
    { "endpoint", 0 }, { "sample", 0 }, { "queue_capacity", 0 }, { "flush_interval", 0 },
    { "timeout", 0 },
};

static void force_set(struct arc_logging_conf *l, int status)
{
    l->force_status[status >> 3] |= (uint8_t)(1u << (status & 7));
}

void arc_config__logging_defaults(struct arc_config *cfg)
{
    struct arc_logging_conf *l = &cfg->logging;
    *l = (struct arc_logging_conf){
        .max_size = 500ull << 20,
        .max_files = 30,
        .compress = true,
        .sample = 1.0,
        .force_on_slow = 500,
        .ring_capacity = 8192,
        .batch_bytes = 256u << 10,
        .flush_interval = 50,
        .drop_behind = 64ull << 20,
    };
    static const int forced[] = { 401, 403, 429, 500, 502, 503, 504 };
    for (size_t i = 0; i < N(forced); i++)
        force_set(l, forced[i]);
    cfg->tracing_sample = 0.01;
    cfg->tracing = (struct arc_tracing_conf){
        .queue_capacity = 4096, .flush_interval = 1000, .timeout = 2000,
    };
}

/* A probability 0..1 (an integer 0 or 1 is accepted too). */
static bool get_ratio(struct arc_sctx *s, const struct arc_cn *m, const char *path,
                      const char *key, double *out)
{
    const struct arc_cn *v = arc_config__val(m, key);
    if (!v)
        return true;
    char pb[ARC_PATH_MAX];
    const char *what = arc_config__path(pb, path, key);
    double d;
    if (v->kind == ARC_CN_INT)
        d = (double)v->v.i;
    else if (v->kind == ARC_CN_FLOAT)
        d = v->v.f;
    else
        return arc_config__want(s, v, what, ARC_CN_FLOAT);
    if (!(d >= 0.0 && d <= 1.0)) {
        arc_config__err(s, v, "%s: expected a number from 0 to 1, got %g", what, d);
        return false;
    }
    *out = d;
    return true;
}

/* A list of strings, each checked with `check` (NULL: any non-empty text
 * without control characters); `lower` lower-cases the copies. */
static void get_names(struct arc_sctx *s, const struct arc_cn *m, const char *path,
                      const char *key, bool header, char ***out, size_t *n)
{
    const struct arc_cn *v = arc_config__val(m, key);
    if (!v)
        return;
    char pb[ARC_PATH_MAX], ib[ARC_PATH_MAX];
    const char *what = arc_config__path(pb, path, key);
    if (!arc_config__want(s, v, what, ARC_CN_SEQ))
        return;
    *out = arc_config__xcalloc(v->n ? v->n : 1, sizeof(char *));
    size_t i = 0;
    for (const struct arc_cn *it = v->first; it; it = it->next, i++) {
        const char *iw = arc_config__path_index(ib, what, i);
        if (!arc_config__str_value(s, it, iw, ARC_STR_NONEMPTY | ARC_STR_NO_CTL))
            continue;
        if (header && !arc_config__is_token(it->v.s.p, it->v.s.len)) {
            char sb[72];
            arc_config__err(s, it, "%s: '%s' is not a header field name", iw,
                            arc_config__show(sb, it->v.s.p, it->v.s.len));
            continue;
        }
        char *c = arc_config__xstrdup(it->v.s.p);
        if (header)
            for (char *p = c; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        (*out)[(*n)++] = c;
    }
}

static void output_section(struct arc_sctx *s, const struct arc_cn *m)
{
    struct arc_logging_conf *l = &s->cfg->logging;
    const char *p = "logging.output";
    if (!arc_config__check_map(s, m, p, log_output_keys, N(log_output_keys)))
        return;
    arc_config__get_str(s, m, p, "file", ARC_STR_NONEMPTY | ARC_STR_NO_CTL, &l->file);
    arc_config__get_bool(s, m, p, "stdout", &l->to_stdout);
    const struct arc_cn *r = arc_config__val(m, "rotation");
    const char *rp = "logging.output.rotation";
    if (r && arc_config__check_map(s, r, rp, log_rotation_keys, N(log_rotation_keys))) {
        /* 0 = never rotate by size (logrotate + SIGUSR1 instead). */
        arc_config__get_size(s, r, rp, "max_size", 0, 1ull << 40, false, &l->max_size);
        if (l->max_size && l->max_size < 4096) {
            char pb[ARC_PATH_MAX];
            arc_config__err(s, arc_config__val(r, "max_size"), "%s: expected 0 (no size "
                            "rotation) or at least 4kb", arc_config__path(pb, rp, "max_size"));
        }
        arc_config__get_u32(s, r, rp, "max_files", 0, 10000, &l->max_files);
        arc_config__get_bool(s, r, rp, "compress", &l->compress);
    }
}

static void access_section(struct arc_sctx *s, const struct arc_cn *m)
{
    struct arc_logging_conf *l = &s->cfg->logging;
    const char *p = "logging.access";
    if (!arc_config__check_map(s, m, p, log_access_keys, N(log_access_keys)))
        return;
    get_ratio(s, m, p, "sample", &l->sample);
    arc_config__get_dur(s, m, p, "force_on_slow", 0, 24 * 3600 * MS_S, false, &l->force_on_slow);
    const struct arc_cn *v = arc_config__val(m, "force_on_status");
    char pb[ARC_PATH_MAX], ib[ARC_PATH_MAX];
    const char *what = arc_config__path(pb, p, "force_on_status");
    if (v && arc_config__want(s, v, what, ARC_CN_SEQ)) {
        memset(l->force_status, 0, sizeof(l->force_status));
        size_t i = 0;
        for (const struct arc_cn *it = v->first; it; it = it->next, i++) {
            int64_t st;
            if (arc_config__int_value(s, it, arc_config__path_index(ib, what, i), 100, 599, &st))
                force_set(l, (int)st);
        }
    }
}

static void writer_section(struct arc_sctx *s, const struct arc_cn *m)
{
    struct arc_logging_conf *l = &s->cfg->logging;
    const char *p = "logging.writer";
    if (!arc_config__check_map(s, m, p, log_writer_keys, N(log_writer_keys)))
        return;
    uint32_t rc = l->ring_capacity;
    if (arc_config__get_u32(s, m, p, "ring_capacity", 2, 1u << 20, &rc)) {
        if (rc & (rc - 1)) {
            char pb[ARC_PATH_MAX];
            arc_config__err(s, arc_config__val(m, "ring_capacity"),
                            "%s: must be a power of two, got %u",
                            arc_config__path(pb, p, "ring_capacity"), rc);
        } else {
            l->ring_capacity = rc;
        }
    }
    uint64_t bb = l->batch_bytes;
    if (arc_config__get_size(s, m, p, "batch_bytes", 4096, 64u << 20, false, &bb))
        l->batch_bytes = (uint32_t)bb;
    arc_config__get_dur(s, m, p, "flush_interval", 1, 60 * MS_S, false, &l->flush_interval);
    uint64_t db = l->drop_behind;
    if (arc_config__get_size(s, m, p, "drop_behind", 0, 1ull << 40, false, &db)) {
        if (db && db < (1u << 20)) {
            char pb[ARC_PATH_MAX];
            arc_config__err(s, arc_config__val(m, "drop_behind"),
                            "%s: must be 0 (keep the pages) or at least 1mb, got %llu",
                            arc_config__path(pb, p, "drop_behind"), (unsigned long long)db);
        } else {
            l->drop_behind = db;
        }
    }
}

void arc_config__logging(struct arc_sctx *s, const struct arc_cn *m)
{
    struct arc_logging_conf *l = &s->cfg->logging;
    if (!arc_config__check_map(s, m, "logging", logging_keys, N(logging_keys)))
        return;
    const struct arc_cn *v;
    if ((v = arc_config__val(m, "output")))
        output_section(s, v);
    if ((v = arc_config__val(m, "access")))
        access_section(s, v);
    if ((v = arc_config__val(m, "redact"))) {
        const char *p = "logging.redact";
        if (arc_config__check_map(s, v, p, log_redact_keys, N(log_redact_keys))) {
            get_names(s, v, p, "headers", true, &l->redact_headers, &l->n_redact_headers);
            get_names(s, v, p, "query_params", false, &l->redact_query, &l->n_redact_query);
        }
    }
    if ((v = arc_config__val(m, "writer")))
        writer_section(s, v);
    l->enabled = l->file || l->to_stdout;
}

void arc_config__tracing(struct arc_sctx *s, const struct arc_cn *m)
{
    const char *p = "observability.tracing";
    if (!arc_config__check_map(s, m, p, tracing_keys, N(tracing_keys)))
        return;
    get_ratio(s, m, p, "sample", &s->cfg->tracing_sample);
    struct arc_tracing_conf *t = &s->cfg->tracing;
    char pb[ARC_PATH_MAX];
    const struct arc_cn *e = arc_config__val(m, "endpoint");
    if (e && arc_config__str_value(s, e, arc_config__path(pb, p, "endpoint"),
                                   ARC_STR_NONEMPTY | ARC_STR_NO_CTL)) {
        /* http://IP:PORT[/path]: plain HTTP to an address (a collector or
         * agent nearby; names would need a resolver on this path). */
        const char *v = e->v.s.p;
        const char *hp = strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
        const char *slash = hp ? strchr(hp, '/') : NULL;
        char host[128] = "";
        size_t hl = hp ? (slash ? (size_t)(slash - hp) : strlen(hp)) : 0;
        bool ok = hp && hl > 0 && hl < sizeof(host) && strlen(slash ? slash : "") < sizeof(t->path) &&
                  strlen(v) < sizeof(t->endpoint);
        if (ok) {
            memcpy(host, hp, hl);
            host[hl] = '\0';
            ok = arc_config_parse_addr(host, &t->addr) == 0;
        }
        if (!ok) {
            char sb[72];
            arc_config__err(s, e, "%s: expected http://IP:PORT[/path] (OTLP/HTTP, e.g. "
                            "\"http://127.0.0.1:4318/v1/traces\"), got '%s'", pb,
                            arc_config__show(sb, v, e->v.s.len));
        } else {
            t->export = true;
            snprintf(t->path, sizeof(t->path), "%s", slash && slash[1] ? slash : "/v1/traces");
            snprintf(t->endpoint, sizeof(t->endpoint), "%s", v);
        }
    }
    uint32_t qc = t->queue_capacity;
    if (arc_config__get_u32(s, m, p, "queue_capacity", 2, 1u << 20, &qc)) {
        if (qc & (qc - 1))
            arc_config__err(s, arc_config__val(m, "queue_capacity"),
                            "%s: must be a power of two, got %u",
                            arc_config__path(pb, p, "queue_capacity"), qc);
        else
            t->queue_capacity = qc;
    }
    arc_config__get_dur(s, m, p, "flush_interval", 10, 60 * MS_S, false, &t->flush_interval);
    arc_config__get_dur(s, m, p, "timeout", 10, 60 * MS_S, false, &t->timeout);
}
