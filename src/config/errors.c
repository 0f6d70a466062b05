/*
 * Error collection for config loads. A load never stops at the first
 * problem: readers and the schema walker record every error they find with
 * its position, and the list is sorted into file order at the end so the
 * output reads top to bottom like a compiler's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tree_int.h"

static void oom(void)
{
    fputs("arc: out of memory while loading configuration\n", stderr);
    abort();
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

static void push(struct arc_config_errors *errs, const char *file, int line,
                 int col, char *msg /* owned */)
{
    if (errs->n == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 8;
        struct arc_config_error *v = realloc(errs->v, cap * sizeof(*v));
        if (!v)
            oom();
        errs->v = v;
        errs->cap = cap;
    }
    errs->v[errs->n++] = (struct arc_config_error){
        .file = xstrdup(file ? file : "<config>"),
        .line = line,
        .col = col,
        .msg = msg,
    };
}

void arc_config_errors_print(const struct arc_config_errors *errs, void *file)
{
    FILE *f = file ? file : stderr;
    for (size_t i = 0; i < errs->n; i++) {
        const struct arc_config_error *e = &errs->v[i];
        if (e->line > 0)
            fprintf(f, "%s:%d:%d: error: %s\n", e->file, e->line, e->col, e->msg);
        else
            fprintf(f, "%s: error: %s\n", e->file, e->msg);
    }
}

void arc_config_errors_dispose(struct arc_config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->v[i].file);
        free(errs->v[i].msg);
    }
    free(errs->v);
    errs->v = NULL;
    errs->n = errs->cap = 0;
}

void arc_config__diag_init(struct arc_conf_diag *d, struct arc_config_errors *errs,
                           const char *file)
{
    d->errs = errs;
    d->file = file;
    d->base = errs->n;
    d->truncated = false;
}

void arc_config__verror(struct arc_conf_diag *d, int line, int col,
                        const char *fmt, va_list ap)
{
    if (d->errs->n - d->base >= ARC_CONF_MAX_ERRORS) {
        d->truncated = true;
        return;
    }
    char *msg;
    if (vasprintf(&msg, fmt, ap) < 0)
        oom();
    push(d->errs, d->file, line, col, msg);
}

void arc_config__error(struct arc_conf_diag *d, int line, int col,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    arc_config__verror(d, line, col, fmt, ap);
    va_end(ap);
}

size_t arc_config__error_count(const struct arc_conf_diag *d)
{
    return d->errs->n - d->base + (d->truncated ? 1 : 0);
}

static bool before(const struct arc_config_error *a, const struct arc_config_error *b)
{
    return a->line < b->line || (a->line == b->line && a->col < b->col);
}

void arc_config__diag_finish(struct arc_conf_diag *d)
{
    /* Insertion sort: stable, and at most ARC_CONF_MAX_ERRORS elements. */
    size_t n = d->errs->n - d->base;
    struct arc_config_error *v = n ? d->errs->v + d->base : NULL;   /* (v may be NULL) */
    for (size_t i = 1; i < n; i++) {
        struct arc_config_error e = v[i];
        size_t j = i;
        while (j > 0 && before(&e, &v[j - 1])) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = e;
    }
    if (d->truncated) {
        char *msg;
        if (asprintf(&msg, "too many errors; stopped after %u", ARC_CONF_MAX_ERRORS) < 0)
            oom();
        push(d->errs, d->file, 0, 0, msg);
        d->truncated = false;
    }
}
