/*
 * Shared by the config reader fuzz targets (json_fuzz.c, yaml_fuzz.c,
 * toml_fuzz.c): runs one reader and checks, on every input, what every
 * reader promises (tree_int.h), then that the tree survives the trip to the
 * other formats:
 *
 * - a read fails exactly when it recorded an error, and then leaves no tree;
 *   every error of the input has a position inside the input;
 * - a tree has a position on every node, keys without NUL, strings of valid
 *   UTF-8, finite floats, no nesting past ARC_CONF_MAX_DEPTH, and (when the
 *   read recorded nothing) no duplicate keys;
 * - its canonical JSON exists, reads back with the JSON reader and is then
 *   the same text (the fingerprint is a fixed point);
 * - a tree with a table at the root and no null is written as TOML twice,
 *   once all inline (`k = {...}`) and once with [headers] and [[arrays of
 *   tables]], and both read back with the TOML reader to the same canonical
 *   JSON: "one logical config, one fingerprint" whatever the format.
 *
 * Each target aborts (REQUIRE) on the first broken invariant, so libFuzzer
 * and the ASan replay of the committed corpus both report it.
 */
#ifndef ARC_CONFIG_FUZZ_H
#define ARC_CONFIG_FUZZ_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tree_int.h"
#include "core/sbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c) do { if (!(c)) { \
    fprintf(stderr, "config fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

typedef int (*fz_reader)(const char *text, size_t len, struct arc_ctree *t,
                         struct arc_conf_diag *d);

struct fz_read {
    struct arc_ctree t;
    struct arc_config_errors e;
    int rc;
};

/* Reads buf[0..len) (an exact-size heap copy, so ASan sees overreads). */
static void fz_read(struct fz_read *r, fz_reader reader, const char *buf, size_t len)
{
    struct arc_conf_diag d;
    char *copy = malloc(len ? len : 1);
    REQUIRE(copy != NULL);
    if (len)
        memcpy(copy, buf, len);
    memset(r, 0, sizeof(*r));
    arc_config__diag_init(&d, &r->e, "fuzz");
    r->rc = reader(copy, len, &r->t, &d);
    arc_config__diag_finish(&d);
    free(copy);
}

static void fz_done(struct fz_read *r)
{
    arc_config__tree_free(&r->t);
    arc_config_errors_dispose(&r->e);
}

/* Lines in buf: a position may be one past the last character. A lone CR
 * ends a line too (YAML says so, and libyaml counts it). */
static int fz_lines(const char *buf, size_t len)
{
    int n = 1;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n' || (buf[i] == '\r' && (i + 1 == len || buf[i + 1] != '\n'));
    return n;
}

static void fz_check_errors(const struct fz_read *r, const char *buf, size_t len)
{
    int lines = fz_lines(buf, len);
    REQUIRE(r->rc == 0 || r->rc == -1);
    if (r->rc != 0) {
        REQUIRE(r->e.n > 0);
        REQUIRE(r->t.root == NULL);
    }
    for (size_t i = 0; i < r->e.n; i++) {
        const struct arc_config_error *e = &r->e.v[i];
        REQUIRE(e->msg && e->msg[0]);
        if (e->line == 0)       /* whole-file errors (the error limit note) */
            continue;
        REQUIRE(e->line >= 1 && e->line <= lines + 1);
        REQUIRE(e->col >= 1 && (size_t)e->col <= len + 1);
    }
}

/* The tree invariants; returns false if the tree holds a null (which TOML
 * cannot write). `unique`: no duplicate keys expected. */
static bool fz_check_tree(const struct arc_cn *n, int depth, bool unique)
{
    bool tomlable = true;
    REQUIRE(n->line >= 1 && n->col >= 1);
    switch (n->kind) {
    case ARC_CN_NULL:
        return false;
    case ARC_CN_BOOL:
    case ARC_CN_INT:
        return true;
    case ARC_CN_FLOAT:
        REQUIRE(isfinite(n->v.f));
        return true;
    case ARC_CN_STR:
        REQUIRE(n->v.s.p != NULL && n->v.s.p[n->v.s.len] == '\0');
        REQUIRE(arc_config__utf8_check(n->v.s.p, n->v.s.len) == n->v.s.len);
        return true;
    case ARC_CN_SEQ:
    case ARC_CN_MAP: {
        REQUIRE(depth <= ARC_CONF_MAX_DEPTH);
        size_t count = 0;
        for (const struct arc_cn *c = n->first; c; c = c->next) {
            count++;
            if (n->kind == ARC_CN_MAP) {
                REQUIRE(c->key != NULL && strlen(c->key) == c->key_len);
                REQUIRE(arc_config__utf8_check(c->key, c->key_len) == c->key_len);
                REQUIRE(c->key_line >= 1 && c->key_col >= 1);
                if (unique && count <= 512)     /* quadratic: bounded */
                    for (const struct arc_cn *p = n->first; p != c; p = p->next)
                        REQUIRE(p->key_len != c->key_len ||
                                memcmp(p->key, c->key, c->key_len) != 0);
            }
            if (!fz_check_tree(c, depth + 1, unique))
                tomlable = false;
            if (!c->next)
                REQUIRE(c == n->last);
        }
        REQUIRE(count == n->n);
        return tomlable;
    }
    }
    REQUIRE(!"unknown node kind");
    return false;
}

/* --------------------------------------------------------- TOML writer */

static void fz_toml_str(struct arc_sbuf *b, const char *s, size_t len)
{
    arc_sbuf_append(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            arc_sbuf_append(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            arc_sbuf_printf(b, "\\u%04X", c);
        } else {
            arc_sbuf_append(b, s + i, 1);
        }
    }
    arc_sbuf_append(b, "\"", 1);
}

static void fz_toml_value(struct arc_sbuf *b, const struct arc_cn *n)
{
    switch (n->kind) {
    case ARC_CN_NULL:
        REQUIRE(!"null has no TOML form");
        break;
    case ARC_CN_BOOL:
        arc_sbuf_printf(b, "%s", n->v.b ? "true" : "false");
        break;
    case ARC_CN_INT:
        arc_sbuf_printf(b, "%lld", (long long)n->v.i);
        break;
    case ARC_CN_FLOAT: {
        /* %.17g reads back exactly; TOML wants a '.' or an exponent */
        char f[64];
        snprintf(f, sizeof(f), "%.17g", n->v.f);
        arc_sbuf_printf(b, "%s%s", f, strpbrk(f, ".e") ? "" : ".0");
        break;
    }
    case ARC_CN_STR:
        fz_toml_str(b, n->v.s.p, n->v.s.len);
        break;
    case ARC_CN_SEQ:
        arc_sbuf_append(b, "[", 1);
        for (const struct arc_cn *c = n->first; c; c = c->next) {
            fz_toml_value(b, c);
            if (c->next)
                arc_sbuf_append(b, ", ", 2);
        }
        arc_sbuf_append(b, "]", 1);
        break;
    case ARC_CN_MAP:
        arc_sbuf_append(b, "{", 1);
        for (const struct arc_cn *c = n->first; c; c = c->next) {
            fz_toml_str(b, c->key, c->key_len);
            arc_sbuf_append(b, " = ", 3);
            fz_toml_value(b, c);
            if (c->next)
                arc_sbuf_append(b, ", ", 2);
        }
        arc_sbuf_append(b, "}", 1);
        break;
    }
}

/* A non-empty list of tables only: written as [[path]] sections. */
static bool fz_is_table_array(const struct arc_cn *n)
{
    if (n->kind != ARC_CN_SEQ || n->n == 0)
        return false;
    for (const struct arc_cn *c = n->first; c; c = c->next)
        if (c->kind != ARC_CN_MAP)
            return false;
    return true;
}

struct fz_path {
    const struct arc_cn *part[ARC_CONF_MAX_DEPTH + 1];
    int n;
};

static void fz_header(struct arc_sbuf *b, const struct fz_path *p, bool aot)
{
    arc_sbuf_append(b, aot ? "[[" : "[", aot ? 2 : 1);
    for (int i = 0; i < p->n; i++) {
        if (i)
            arc_sbuf_append(b, ".", 1);
        fz_toml_str(b, p->part[i]->key, p->part[i]->key_len);
    }
    arc_sbuf_append(b, aot ? "]]\n" : "]\n", aot ? 3 : 2);
}

/* The members of `map` (at `path`): plain values first, as a table's keys
 * must come before its sub-tables, then a [header] per table and a
 * [[header]] per element of a list of tables. */
static void fz_toml_table(struct arc_sbuf *b, const struct arc_cn *map, struct fz_path *path)
{
    for (const struct arc_cn *c = map->first; c; c = c->next) {
        if (c->kind == ARC_CN_MAP || fz_is_table_array(c))
            continue;
        fz_toml_str(b, c->key, c->key_len);
        arc_sbuf_append(b, " = ", 3);
        fz_toml_value(b, c);
        arc_sbuf_append(b, "\n", 1);
    }
    for (const struct arc_cn *c = map->first; c; c = c->next) {
        if (c->kind != ARC_CN_MAP && !fz_is_table_array(c))
            continue;
        REQUIRE(path->n < ARC_CONF_MAX_DEPTH);
        path->part[path->n++] = c;
        if (c->kind == ARC_CN_MAP) {
            fz_header(b, path, false);
            fz_toml_table(b, c, path);
        } else {
            for (const struct arc_cn *el = c->first; el; el = el->next) {
                fz_header(b, path, true);
                fz_toml_table(b, el, path);
            }
        }
        path->n--;
    }
}

/* Writes the tree as TOML (inline values only, or with headers), reads it
 * back and requires the same canonical JSON. */
static void fz_toml_roundtrip(const struct arc_cn *root, const char *canonical, bool headers)
{
    struct arc_sbuf b = { 0 };
    if (headers) {
        struct fz_path path = { .n = 0 };
        fz_toml_table(&b, root, &path);
    } else {
        for (const struct arc_cn *c = root->first; c; c = c->next) {
            fz_toml_str(&b, c->key, c->key_len);
            arc_sbuf_append(&b, " = ", 3);
            fz_toml_value(&b, c);
            arc_sbuf_append(&b, "\n", 1);
        }
    }
    struct fz_read r;
    fz_read(&r, arc_config__read_toml, b.p ? b.p : "", b.len);
    if (r.rc != 0) {
        fprintf(stderr, "TOML written from the tree does not read back:\n%.*s\n",
                (int)(b.len > 4000 ? 4000 : b.len), b.p ? b.p : "");
        arc_config_errors_print(&r.e, stderr);
    }
    REQUIRE(r.rc == 0 && r.e.n == 0);
    /* an empty table reads as an empty document */
    REQUIRE((r.t.root == NULL) == (root->n == 0));
    char *json = NULL, hex[65];
    REQUIRE(arc_config__canonicalize(r.t.root ? r.t.root : root, &json, hex) == 0);
    if (strcmp(json, canonical) != 0)
        fprintf(stderr, "TOML round trip changed the document:\n  %s\n  %s\n", canonical, json);
    REQUIRE(strcmp(json, canonical) == 0);
    free(json);
    fz_done(&r);
    arc_sbuf_dispose(&b);
}

/* Everything above, for one input through one reader. */
static void fz_run(fz_reader reader, const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct fz_read r;
    fz_read(&r, reader, buf, size);
    fz_check_errors(&r, buf, size);
    if (r.rc != 0) {
        fz_done(&r);
        return;
    }
    const struct arc_cn *root = r.t.root;
    bool unique = r.e.n == 0;
    bool tomlable = !root || fz_check_tree(root, 1, unique);

    char *json = NULL, hex[65];
    REQUIRE(arc_config__canonicalize(root, &json, hex) == 0);
    REQUIRE(strlen(hex) == 64);
    /* the canonical text is JSON that canonicalises to itself */
    struct fz_read j;
    fz_read(&j, arc_config__read_json, json, strlen(json));
    REQUIRE(j.rc == 0 && j.e.n == 0);
    char *json2 = NULL, hex2[65];
    REQUIRE(arc_config__canonicalize(j.t.root, &json2, hex2) == 0);
    REQUIRE(strcmp(json, json2) == 0 && strcmp(hex, hex2) == 0);
    free(json2);
    fz_done(&j);

    if (root && root->kind == ARC_CN_MAP && tomlable && unique) {
        fz_toml_roundtrip(root, json, false);
        fz_toml_roundtrip(root, json, true);
    }
    free(json);
    fz_done(&r);
}

#endif
