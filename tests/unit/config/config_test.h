/*
 * Helpers shared by the config unit tests: load a document from a string
 * and assert on the exact position and text of the errors it produced.
 */
#ifndef ARC_CONFIG_TEST_H
#define ARC_CONFIG_TEST_H

#include "test.h"
#include "config/config.h"

/* Loads `text` as `format` ("yaml"/"json") named "t.<format>". Returns the
 * config or NULL; errors go to *e (initialised here). */
static inline struct arc_config *load_str(const char *format, const char *text,
                                          struct arc_config_errors *e)
{
    struct arc_config *cfg = NULL;
    *e = (struct arc_config_errors){ 0 };
    char name[32];
    snprintf(name, sizeof(name), "t.%s", format);
    int rc = arc_config_load_string(text, strlen(text), name, format, &cfg, e);
    if ((rc == 0) != (cfg != NULL) || (rc == 0 && e->n != 0) || (rc != 0 && e->n == 0)) {
        fprintf(stderr, "load_str: inconsistent result rc=%d cfg=%p n=%zu\n", rc, (void *)cfg,
                e->n);
        t_failures++;
    }
    return cfg;
}

/* Index of the error at line:col whose message contains `sub`, or -1. */
static inline int find_err(const struct arc_config_errors *e, int line, int col,
                           const char *sub)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].line == line && e->v[i].col == col && strstr(e->v[i].msg, sub))
            return (int)i;
    return -1;
}

#define CHECK_ERR(e, line, col, sub) do { t_checks++; \
    if (find_err((e), (line), (col), (sub)) < 0) { t_failures++; \
    fprintf(stderr, "%s:%d: no error at %d:%d containing \"%s\"; got:\n", __FILE__, \
    __LINE__, (line), (col), (sub)); arc_config_errors_print((e), stderr); } } while (0)

/* Loads a document that must fail with exactly `n` errors, the first of
 * which is at line:col and contains `sub`. */
static inline void check_fails(const char *file, int at_line, const char *format,
                               const char *text, size_t n, int line, int col, const char *sub)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str(format, text, &e);
    t_checks++;
    if (c != NULL || e.n != n || e.v[0].line != line || e.v[0].col != col ||
        !strstr(e.v[0].msg, sub)) {
        t_failures++;
        fprintf(stderr, "%s:%d: expected %zu error(s), the first at %d:%d containing \"%s\"; "
                "got %zu:\n", file, at_line, n, line, col, sub, e.n);
        arc_config_errors_print(&e, stderr);
    }
    arc_config_free(c);
    arc_config_errors_dispose(&e);
}

#define CHECK_FAILS(format, text, n, line, col, sub) \
    check_fails(__FILE__, __LINE__, (format), (text), (n), (line), (col), (sub))

/* Loads a document that must succeed; prints the errors otherwise. */
static inline struct arc_config *must_load(const char *format, const char *text)
{
    struct arc_config_errors e;
    struct arc_config *cfg = load_str(format, text, &e);
    t_checks++;
    if (!cfg) {
        t_failures++;
        fprintf(stderr, "must_load failed:\n");
        arc_config_errors_print(&e, stderr);
    }
    arc_config_errors_dispose(&e);
    return cfg;
}

/* The smallest valid document, for tests that add one thing to it. */
#define MINI_YAML \
    "listeners:\n" \
    "  - name: http\n" \
    "    kind: http\n" \
    "    bind: \"127.0.0.1:0\"\n" \
    "upstreams:\n" \
    "  - name: app\n" \
    "    discovery:\n" \
    "      type: static\n" \
    "      endpoints:\n" \
    "        - address: \"127.0.0.1:3000\"\n"

#endif
