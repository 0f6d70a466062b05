/*
 * YAML reader: libyaml's event stream → positioned tree.
 *
 * Scalars are resolved with the YAML 1.2 core schema, the same rules a
 * JSON-minded user expects: a plain `8080` is an integer, `true`/`false` a
 * boolean, `null`/`~`/empty a null, `1.5`/`1e3` a number; anything quoted,
 * literal (|) or folded (>) is a string. YAML 1.1 surprises (`yes`/`on` as
 * booleans, `010` as octal) do not apply: `yes` is the string "yes".
 *
 * Deliberately unsupported, each reported with its position:
 * - anchors (&a) and aliases (*a): they make one node appear in several
 *   places, which breaks "every value has one position" and invites
 *   billion-laughs expansion;
 * - several documents in one stream (---): a config is one document;
 * - complex keys (a mapping or list used as a key);
 * - tags other than the core ones (!!str, !!int, !!float, !!bool, !!null,
 *   !!map, !!seq) and the non-specific "!" (which makes a string);
 * - .inf / .nan: canonical JSON cannot represent them.
 * Map keys are taken as their literal text (`8080: x` has key "8080"), since
 * JSON keys are strings.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/tree_int.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

struct frame {
    struct arc_cn *node;
    bool have_key;
    const char *key;
    size_t key_len;
    int key_line, key_col;
};

struct yreader {
    struct arc_ctree *t;
    struct arc_conf_diag *d;
    const char *text;
    size_t len;
    struct frame stack[ARC_CONF_MAX_DEPTH];
    size_t depth;
    bool soft_error;            /* recorded an error but kept building */
};

/* ------------------------------------------------------------ resolution */

static bool is_digits(const char *s, size_t n, int base)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = base == 8 ? (c >= '0' && c <= '7')
                : base == 16 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                                (c >= 'A' && c <= 'F'))
                : (c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* 1 = is an integer (value in *out), 0 = not an integer, -1 = integer
 * syntax but out of int64 range. */
static int resolve_int(const char *s, size_t n, int64_t *out)
{
    int base = 10;
    const char *digits = s;
    size_t nd = n;
    bool neg = false;
    if (n > 2 && s[0] == '0' && s[1] == 'o') {
        base = 8;
        digits = s + 2;
        nd = n - 2;
    } else if (n > 2 && s[0] == '0' && s[1] == 'x') {
        base = 16;
        digits = s + 2;
        nd = n - 2;
    } else if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        digits = s + 1;
        nd = n - 1;
    }
    if (!is_digits(digits, nd, base))
        return 0;
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = 0; i < nd; i++) {
        char c = digits[i];
        unsigned dv = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
        if (v > (limit - dv) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + dv;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

/* Core schema float: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
 * 1 = finite float, 0 = not a float, -1 = .inf/.nan or overflow. */
static int resolve_float(const char *s, size_t n, double *out)
{
    size_t i = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    const char *rest = s + i;
    size_t rn = n - i;
    if ((rn == 4 && (!memcmp(rest, ".inf", 4) || !memcmp(rest, ".Inf", 4) ||
                     !memcmp(rest, ".INF", 4))) ||
        (i == 0 && n == 4 && (!memcmp(s, ".nan", 4) || !memcmp(s, ".NaN", 4) ||
                              !memcmp(s, ".NAN", 4))))
        return -1;
    size_t int_digits = 0, frac_digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
        int_digits++;
    }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t exp_digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
            exp_digits++;
        }
        if (exp_digits == 0)
            return 0;
    }
    if (i != n)
        return 0;
    /* The scalar is NUL-terminated (libyaml guarantees it), so strtod stops
     * exactly at its end. The control thread runs in the "C" locale. */
    errno = 0;
    double v = strtod(s, NULL);
    if (errno == ERANGE && (v > 1.0 || v < -1.0))
        return -1;
    *out = v;
    return 1;
}

static bool is_null(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) ||
                       !memcmp(s, "NULL", 4)));
}

static int resolve_bool(const char *s, size_t n, bool *out)
{
    if (n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4))) {
        *out = true;
        return 1;
    }
    if (n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) ||
                   !memcmp(s, "FALSE", 5))) {
        *out = false;
        return 1;
    }
    return 0;
}

static void err(struct yreader *r, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err(struct yreader *r, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    arc_config__verror(r->d, line, col, fmt, ap);
    va_end(ap);
    r->soft_error = true;
}

static struct arc_cn *make_string(struct yreader *r, const char *s, size_t n, int line, int col)
{
    struct arc_cn *node = arc_config__node_new(r->t, ARC_CN_STR, line, col);
    node->v.s.p = arc_config__strndup(&r->t->arena, s, n);
    node->v.s.len = n;
    return node;
}

/* Builds the node for one scalar event. Never NULL: on a resolution error
 * the error is recorded and a null node stands in. */
static struct arc_cn *scalar_node(struct yreader *r, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char *want = NULL;    /* core tag suffix, or NULL = implicit */

    if (tag) {
        if (strcmp(tag, "!") == 0)
            return make_string(r, s, n, line, col);
        if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) != 0) {
            err(r, line, col, "unsupported YAML tag '%s'", tag);
            return arc_config__node_new(r->t, ARC_CN_NULL, line, col);
        }
        want = tag + strlen(TAG_PREFIX);
        if (strcmp(want, "str") == 0)
            return make_string(r, s, n, line, col);
        if (strcmp(want, "int") && strcmp(want, "float") && strcmp(want, "bool") &&
            strcmp(want, "null")) {
            err(r, line, col, "unsupported YAML tag '!!%s' on a scalar", want);
            return arc_config__node_new(r->t, ARC_CN_NULL, line, col);
        }
    } else if (!plain) {
        return make_string(r, s, n, line, col);
    }

    struct arc_cn *node;
    bool b;
    int64_t i;
    double f;
    if (is_null(s, n) && (!want || !strcmp(want, "null")))
        return arc_config__node_new(r->t, ARC_CN_NULL, line, col);
    if ((!want || !strcmp(want, "bool")) && resolve_bool(s, n, &b)) {
        node = arc_config__node_new(r->t, ARC_CN_BOOL, line, col);
        node->v.b = b;
        return node;
    }
    if (!want || !strcmp(want, "int") || !strcmp(want, "float")) {
        int rc = resolve_int(s, n, &i);
        if (rc == -1) {
            err(r, line, col, "integer '%s' is out of range", s);
            return arc_config__node_new(r->t, ARC_CN_NULL, line, col);
        }
        if (rc == 1) {
            if (want && !strcmp(want, "float")) {
                node = arc_config__node_new(r->t, ARC_CN_FLOAT, line, col);
                node->v.f = (double)i;
            } else {
                node = arc_config__node_new(r->t, ARC_CN_INT, line, col);
                node->v.i = i;
            }
            return node;
        }
    }
    if (!want || !strcmp(want, "float")) {
        int rc = resolve_float(s, n, &f);
        if (rc == -1) {
            err(r, line, col, "number '%s' cannot be represented (no .inf, .nan or overflow)", s);
            return arc_config__node_new(r->t, ARC_CN_NULL, line, col);
        }
        if (rc == 1) {
            node = arc_config__node_new(r->t, ARC_CN_FLOAT, line, col);
            node->v.f = f;
            return node;
        }
    }
    if (want) {
        err(r, line, col, "'%s' is not a valid !!%s", s, want);
        return arc_config__node_new(r->t, ARC_CN_NULL, line, col);
    }
    return make_string(r, s, n, line, col);
}

/* ------------------------------------------------------------ structure */

static void check_anchor(struct yreader *r, const yaml_char_t *anchor, const yaml_mark_t *m)
{
    if (anchor)
        err(r, (int)m->line + 1, (int)m->column + 1,
            "YAML anchors (&%s) are not supported; write the value out", (const char *)anchor);
}

static bool check_collection_tag(struct yreader *r, const yaml_char_t *tag,
                                 const yaml_mark_t *m, const char *expect)
{
    if (!tag || strcmp((const char *)tag, "!") == 0)
        return true;
    size_t pl = strlen(TAG_PREFIX);
    if (strncmp((const char *)tag, TAG_PREFIX, pl) == 0 && strcmp((const char *)tag + pl, expect) == 0)
        return true;
    err(r, (int)m->line + 1, (int)m->column + 1, "unsupported YAML tag '%s'", (const char *)tag);
    return false;
}

/* Places `node` under the current container. A container about to be
 * pushed must be attached first so that it receives its key. Returns false
 * on a fatal structural error (complex key). */
static bool attach(struct yreader *r, struct arc_cn *node, bool is_scalar, const yaml_event_t *ev)
{
    if (r->depth == 0) {
        r->t->root = node;
        return true;
    }
    struct frame *top = &r->stack[r->depth - 1];
    if (top->node->kind == ARC_CN_SEQ) {
        arc_config__node_append(top->node, node);
        return true;
    }
    if (!top->have_key) {
        int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
        if (!is_scalar) {
            arc_config__error(r->d, line, col,
                              "a mapping or list cannot be used as a key");
            return false;
        }
        /* Keys are their literal text, whatever the scalar resolved to. An
         * alias used as a key (already reported) gets an empty key. */
        const char *s = "";
        size_t n = 0;
        if (ev->type == YAML_SCALAR_EVENT) {
            s = (const char *)ev->data.scalar.value;
            n = ev->data.scalar.length;
        }
        if (n && memchr(s, '\0', n))
            err(r, line, col, "key contains a NUL character");
        top->key = arc_config__strndup(&r->t->arena, s, n);
        top->key_len = n;
        top->key_line = line;
        top->key_col = col;
        top->have_key = true;
        return true;
    }
    node->key = top->key;
    node->key_len = top->key_len;
    node->key_line = top->key_line;
    node->key_col = top->key_col;
    top->have_key = false;
    arc_config__node_append(top->node, node);
    return true;
}

/* Line/col of a byte offset, counting characters the way libyaml does
 * (reader errors carry only an offset). */
static void offset_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void syntax_error(struct yreader *r, const yaml_parser_t *p)
{
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_pos(r->text, r->len, p->problem_offset, &line, &col);
        arc_config__error(r->d, line, col, "YAML: %s", p->problem ? p->problem : "invalid input");
        return;
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->context)
        arc_config__error(r->d, line, col, "YAML syntax error: %s (%s at line %d, column %d)",
                          p->problem ? p->problem : "invalid syntax", p->context,
                          (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        arc_config__error(r->d, line, col, "YAML syntax error: %s",
                          p->problem ? p->problem : "invalid syntax");
}

int arc_config__read_yaml(const char *text, size_t len, struct arc_ctree *t,
                          struct arc_conf_diag *d)
{
    struct yreader r = { .t = t, .d = d, .text = text, .len = len };
    yaml_parser_t p;
    yaml_event_t ev;
    int docs = 0, rc = 0;
    bool done = false;

    if (!yaml_parser_initialize(&p)) {
        arc_config__error(d, 0, 0, "cannot initialise the YAML parser");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(&r, &p);
            rc = -1;
            break;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        struct arc_cn *node = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                arc_config__error(d, line, col,
                                  "only one YAML document per file is supported (found a second '---')");
                rc = -1;
                done = true;
            }
            break;
        case YAML_ALIAS_EVENT:
            err(&r, line, col, "YAML aliases (*%s) are not supported; write the value out",
                (const char *)ev.data.alias.anchor);
            node = arc_config__node_new(t, ARC_CN_NULL, line, col);
            if (!attach(&r, node, true, &ev)) {
                rc = -1;
                done = true;
            }
            break;
        case YAML_SCALAR_EVENT:
            check_anchor(&r, ev.data.scalar.anchor, &ev.start_mark);
            if (r.depth > 0 && r.stack[r.depth - 1].node->kind == ARC_CN_MAP &&
                !r.stack[r.depth - 1].have_key) {
                attach(&r, NULL, true, &ev);   /* a key: no node */
                break;
            }
            node = scalar_node(&r, &ev);
            attach(&r, node, true, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            bool is_map = ev.type == YAML_MAPPING_START_EVENT;
            const yaml_char_t *anchor = is_map ? ev.data.mapping_start.anchor
                                               : ev.data.sequence_start.anchor;
            const yaml_char_t *tag = is_map ? ev.data.mapping_start.tag
                                            : ev.data.sequence_start.tag;
            check_anchor(&r, anchor, &ev.start_mark);
            check_collection_tag(&r, tag, &ev.start_mark, is_map ? "map" : "seq");
            if (r.depth == ARC_CONF_MAX_DEPTH) {
                arc_config__error(d, line, col, "nesting deeper than %d levels",
                                  ARC_CONF_MAX_DEPTH);
                rc = -1;
                done = true;
                break;
            }
            node = arc_config__node_new(t, is_map ? ARC_CN_MAP : ARC_CN_SEQ, line, col);
            if (!attach(&r, node, false, &ev)) {
                rc = -1;
                done = true;
                break;
            }
            r.stack[r.depth++] = (struct frame){ .node = node };
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            r.depth--;
            if (r.stack[r.depth].node->kind == ARC_CN_MAP)
                arc_config__check_dup_keys(d, r.stack[r.depth].node);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc == 0 && r.soft_error)
        rc = -1;
    if (rc != 0)
        t->root = NULL;
    return rc;
}
