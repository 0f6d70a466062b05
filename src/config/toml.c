/*
 * TOML 1.0.0 reader → positioned tree.
 *
 * Written for Arc (Debian ships no C TOML library) to produce exactly the
 * tree the YAML and JSON readers produce, so the schema and the fingerprint
 * never know which format a file was in. Follows https://toml.io/en/v1.0.0
 * and its ABNF; where the prose and the ABNF differ (U+007F in comments) the
 * prose wins.
 *
 * Mapping onto the tree:
 * - tables (root, [headers], dotted keys, inline) → MAP; arrays and arrays
 *   of tables → SEQ; strings → STR; integers → INT; floats → FLOAT;
 *   booleans → BOOL. TOML has no null, so no NULL node is ever produced.
 * - Date-times, dates and times become STR in RFC 3339 form: the T
 *   delimiter (a space or 't' in the file) is written 'T' and a 'z' offset
 *   'Z'; fractional seconds are kept as written. Arc's schema has no
 *   date-time values; this keeps them lossless and equal to the same text
 *   written as a YAML or JSON string.
 * - inf and nan are recognised and rejected (the tree only holds finite
 *   numbers; canonical JSON cannot express them), as the YAML reader does.
 * - Newlines inside multi-line strings are LF whether the file uses LF or
 *   CRLF (the spec lets parsers normalise), so a file saved on Windows has
 *   the same fingerprint.
 * - A MAP made by a [header] sits at the header's '['; a [[header]]
 *   element too, and its SEQ at the first [[header]]; a table made by a
 *   dotted key or a header path sits at that key part. Every member carries
 *   the position of its key part (the last part of a dotted key).
 * - A document with no key and no table is empty (root NULL), as in the
 *   other readers, so the schema says "configuration is empty".
 * - A leading UTF-8 byte order mark is skipped, as the JSON reader does.
 *
 * Errors. Syntax errors are fatal: the first is reported and reading stops
 * (resuming inside broken TOML guesses). Errors that leave the syntax
 * intact — a key or table defined twice, a dotted key or header reaching
 * into something it may not extend, a value out of range or an invalid date
 * — are recorded and reading goes on, so one run reports all of them; the
 * read then fails with t->root NULL, like the YAML reader's soft errors.
 * Keys under a [header] that failed go into a detached table (checked,
 * then dropped) so one bad header does not cascade.
 *
 * Which definitions may extend which tables (TOML 1.0 "Table", "Inline
 * Table", "Array of Tables"; the same rules as the reference suite
 * toml-test). A table is in one of these states, kept in struct tnode:
 *
 *   state         made by                      [a] header  [a.x] / [[a.x]]  dotted a.x = ...
 *   implicit      path of a header             defines it   yes              yes (→ dotted)
 *   header        [a], or [[a]] element        twice: err   yes              no
 *   dotted(S)     dotted key in section S      no           yes              only in section S
 *   inline        a = { ... }                  no           no               no
 *   array value   a = [ ... ]                  no           no               no
 *   array of tbl  [[a]]                        no           into last elem   no
 *
 * A "section" is the stretch between two headers; the root is section 1.
 * A dotted key may only add to tables created or extended by dotted keys of
 * the same section (`fruit.apple.color` then `fruit.apple.taste` is fine;
 * coming back to `fruit.apple` under another header is not). A key that
 * already exists, whatever it holds, is a duplicate.
 *
 * Limits are the other readers': ARC_CONF_MAX_DEPTH nested tables/arrays
 * (counting each array of tables and its element, as in the JSON form),
 * ARC_CONF_MAX_BYTES of input (checked by the caller).
 * Columns count characters, not bytes, to agree with libyaml.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tree_int.h"

/* ------------------------------------------------------------ nodes */

enum {
    T_HEADER = 1,   /* MAP: defined by [header], or an element of [[header]] */
    T_FROZEN = 2,   /* MAP: inline table; SEQ: array value. Complete as written. */
    T_AOT = 4,      /* SEQ: array of tables, grown by [[header]] */
};

/* Every MAP and SEQ this reader builds is a tnode; scalars are plain nodes.
 * `cn` comes first so a tnode is used wherever an arc_cn is. */
struct tnode {
    struct arc_cn cn;
    uint32_t section;   /* MAP: section whose dotted keys made/extended it; 0 = none */
    int depth;          /* root = 1, as the JSON reader counts */
    unsigned flags;
};

/* One part of a (dotted) key. `s` is in the arena, NUL-terminated. */
struct seg {
    const char *s;
    size_t len;
    int line, col;
};

/* Child index: (parent, key) → member, so lookups stay O(1) for generated
 * or hostile documents with many keys in one table. */
struct slot {
    const struct arc_cn *parent;
    struct arc_cn *child;
};

struct treader {
    const char *p, *end;
    int line, col;
    struct arc_ctree *t;
    struct arc_conf_diag *d;
    bool soft_error;            /* recorded a non-fatal error */
    uint32_t section;
    struct tnode *root, *cur;
    struct slot *slots;
    size_t cap, used;
    char *buf;                  /* scratch for decoding strings and numbers */
    size_t blen, bcap;
};

#define MAX_SEGS ARC_CONF_MAX_DEPTH

static void oom(void)
{
    /* As tree.c: the control thread cannot recover from this. */
    fputs("arc: out of memory while loading configuration\n", stderr);
    abort();
}

static struct tnode *tnode_new(struct treader *r, enum arc_cn_kind k, int line, int col,
                               int depth, unsigned flags)
{
    struct tnode *n = arc_config__alloc(&r->t->arena, sizeof(*n));
    n->cn.kind = k;
    n->cn.line = line;
    n->cn.col = col;
    n->depth = depth;
    n->flags = flags;
    return n;
}

static struct tnode *tn(struct arc_cn *c)
{
    return (struct tnode *)c;
}

static uint64_t hash_key(const struct arc_cn *parent, const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ ((uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ull);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static struct arc_cn *child_get(const struct treader *r, const struct arc_cn *parent,
                                const struct seg *s)
{
    if (parent->n == 0 || r->cap == 0)
        return NULL;
    size_t mask = r->cap - 1;
    for (size_t i = hash_key(parent, s->s, s->len) & mask;; i = (i + 1) & mask) {
        const struct slot *e = &r->slots[i];
        if (!e->parent)
            return NULL;
        if (e->parent == parent && e->child->key_len == s->len &&
            memcmp(e->child->key, s->s, s->len) == 0)
            return e->child;
    }
}

static void slot_put(struct slot *slots, size_t cap, const struct arc_cn *parent,
                     struct arc_cn *child)
{
    size_t mask = cap - 1;
    size_t i = hash_key(parent, child->key, child->key_len) & mask;
    while (slots[i].parent)
        i = (i + 1) & mask;
    slots[i] = (struct slot){ parent, child };
}

/* Appends a keyed member to a MAP and indexes it. */
static void add_member(struct treader *r, struct tnode *parent, struct arc_cn *child,
                       const struct seg *s)
{
    child->key = s->s;
    child->key_len = s->len;
    child->key_line = s->line;
    child->key_col = s->col;
    if ((r->used + 1) * 2 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct slot *v = calloc(cap, sizeof(*v));
        if (!v)
            oom();
        for (size_t i = 0; i < r->cap; i++)
            if (r->slots[i].parent)
                slot_put(v, cap, r->slots[i].parent, r->slots[i].child);
        free(r->slots);
        r->slots = v;
        r->cap = cap;
    }
    slot_put(r->slots, r->cap, &parent->cn, child);
    r->used++;
    arc_config__node_append(&parent->cn, child);
}

/* ------------------------------------------------------------ input */

static int peek(const struct treader *r)
{
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

static int peek_at(const struct treader *r, size_t k)
{
    return (size_t)(r->end - r->p) > k ? (unsigned char)r->p[k] : -1;
}

/* Moves one byte forward, keeping line and (character) column. */
static void adv(struct treader *r)
{
    unsigned char c = (unsigned char)*r->p++;
    if (c == '\n') {
        r->line++;
        r->col = 1;
    } else if ((c & 0xc0) != 0x80) {
        r->col++;
    }
}

static void advn(struct treader *r, size_t n)
{
    while (n--)
        adv(r);
}

static void skip_ws(struct treader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t'))
        adv(r);
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_bare(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' ||
           c == '-';
}

/* Characters of an unquoted value: numbers, booleans, dates and times
 * (and the words people write by mistake, for the error message). */
static bool is_tok(int c)
{
    return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* Control characters TOML forbids in comments and strings: all but tab
 * (newlines are handled by the callers). */
static bool is_ctl(int c)
{
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static void buf_put(struct treader *r, const char *p, size_t n)
{
    if (r->blen + n + 1 > r->bcap) {
        size_t cap = r->bcap ? r->bcap : 256;
        while (r->blen + n + 1 > cap)
            cap *= 2;
        char *b = realloc(r->buf, cap);
        if (!b)
            oom();
        r->buf = b;
        r->bcap = cap;
    }
    memcpy(r->buf + r->blen, p, n);
    r->blen += n;
    r->buf[r->blen] = '\0';
}

static void buf_putc(struct treader *r, char c)
{
    buf_put(r, &c, 1);
}

/* ------------------------------------------------------------ errors */

/* Describes the current character for an error message. */
static const char *here(const struct treader *r, char buf[24])
{
    int c = peek(r);
    if (c < 0)
        return "end of input";
    if (c == '\n' || (c == '\r' && peek_at(r, 1) == '\n'))
        return "end of line";
    if (c == '\t')
        return "a tab";
    if (c == ' ')
        return "a space";
    if (c >= 0x21 && c < 0x7f) {
        snprintf(buf, 24, "'%c'", c);
    } else if (c >= 0xc0) {
        /* The document is valid UTF-8 (checked first). The code point too,
         * since the character may be invisible (U+FEFF) or look like a
         * space (U+3000). */
        size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        uint32_t cp = (uint32_t)c & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
        for (size_t i = 1; i < k; i++)
            cp = cp << 6 | ((unsigned char)r->p[i] & 0x3f);
        snprintf(buf, 24, "'%.*s' (U+%04X)", (int)k, r->p, (unsigned)cp);
    } else {
        snprintf(buf, 24, "U+%04X", (unsigned)c);
    }
    return buf;
}

static int fail(struct treader *r, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct treader *r, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    arc_config__verror(r->d, line, col, fmt, ap);
    va_end(ap);
    return -1;
}

static void soft(struct treader *r, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void soft(struct treader *r, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    arc_config__verror(r->d, line, col, fmt, ap);
    va_end(ap);
    r->soft_error = true;
}

static int expected(struct treader *r, const char *what)
{
    char b[24];
    return fail(r, r->line, r->col, "TOML syntax error: expected %s, found %s", what, here(r, b));
}

/* Writes `n` key parts as a dotted key for messages, quoting parts that
 * are not bare and escaping control characters; truncates long keys. */
static const char *key_text(const struct seg *segs, int n, char *buf, size_t size)
{
    size_t o = 0;
    for (int i = 0; i < n && o + 8 < size; i++) {
        const struct seg *s = &segs[i];
        bool bare = s->len > 0;
        for (size_t k = 0; k < s->len && bare; k++)
            bare = is_bare((unsigned char)s->s[k]);
        if (i)
            buf[o++] = '.';
        if (!bare)
            buf[o++] = '"';
        for (size_t k = 0; k < s->len; k++) {
            unsigned char c = (unsigned char)s->s[k];
            if (o + 12 >= size) {
                memcpy(buf + o, "...", 3);
                o += 3;
                break;
            }
            if (c < 0x20 || c == 0x7f)
                o += (size_t)snprintf(buf + o, size - o, "\\u%04X", c);
            else if (c == '"' || c == '\\')
                buf[o++] = '\\', buf[o++] = (char)c;
            else
                buf[o++] = (char)c;
        }
        if (!bare)
            buf[o++] = '"';
    }
    buf[o] = '\0';
    return buf;
}

#define KEYBUF 192

/* An unquoted token for messages, cut at 40 characters. */
#define TOKFMT "%.*s%s"
#define TOKARG(p, n) (int)((n) > 40 ? 40 : (n)), (p), ((n) > 40 ? "..." : "")

static int def_line(const struct arc_cn *c)
{
    return c->key ? c->key_line : c->line;
}

/* "a string", "an array of tables", ... for the node already at a key. */
static const char *what_is(const struct arc_cn *c)
{
    if (c->kind == ARC_CN_SEQ)
        return (tn((struct arc_cn *)c)->flags & T_AOT) ? "an array of tables" : "an array";
    if (c->kind == ARC_CN_MAP)
        return (tn((struct arc_cn *)c)->flags & T_FROZEN) ? "an inline table" : "a table";
    switch (c->kind) {
    case ARC_CN_STR: return "a string";
    case ARC_CN_INT: return "an integer";
    case ARC_CN_FLOAT: return "a float";
    case ARC_CN_BOOL: return "a boolean";
    default: return "a value";
    }
}

/* ------------------------------------------------------------ lines */

/* 1 = consumed a newline (LF or CRLF), 0 = not at one, -1 = bare CR. */
static int newline(struct treader *r)
{
    int c = peek(r);
    if (c == '\n') {
        adv(r);
        return 1;
    }
    if (c == '\r') {
        if (peek_at(r, 1) == '\n') {
            advn(r, 2);
            return 1;
        }
        return fail(r, r->line, r->col,
                    "TOML syntax error: a carriage return must be followed by a line feed");
    }
    return 0;
}

/* At '#': skips the comment up to (not including) the newline. */
static int comment(struct treader *r)
{
    adv(r);
    for (;;) {
        int c = peek(r);
        if (c < 0 || c == '\n' || (c == '\r' && peek_at(r, 1) == '\n'))
            return 0;
        if (is_ctl(c))
            return fail(r, r->line, r->col,
                        "control character U+%04X is not allowed in a comment", (unsigned)c);
        adv(r);
    }
}

/* Whitespace, comments and newlines, as allowed between array elements. */
static int skip_ws_comments_newlines(struct treader *r)
{
    for (;;) {
        skip_ws(r);
        if (peek(r) == '#' && comment(r) < 0)
            return -1;
        int nl = newline(r);
        if (nl < 0)
            return -1;
        if (nl == 0)
            return 0;
    }
}

/* After an expression: optional whitespace and comment, then a newline or
 * the end of the input. */
static int end_line(struct treader *r, const char *after)
{
    skip_ws(r);
    if (peek(r) == '#' && comment(r) < 0)
        return -1;
    if (r->p >= r->end)
        return 0;
    int nl = newline(r);
    if (nl != 0)
        return nl < 0 ? -1 : 0;
    char b[24];
    return fail(r, r->line, r->col, "TOML syntax error: expected a newline after %s, found %s",
                after, here(r, b));
}

/* ------------------------------------------------------------ strings */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void put_utf8(struct treader *r, uint32_t cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        o[0] = (char)(0xf0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    buf_put(r, o, n);
}

/* After a backslash (at eline:ecol) in a basic string: one escape. */
static int escape(struct treader *r, int eline, int ecol)
{
    int e = peek(r);
    char c;
    switch (e) {
    case 'b': c = '\b'; break;
    case 't': c = '\t'; break;
    case 'n': c = '\n'; break;
    case 'f': c = '\f'; break;
    case 'r': c = '\r'; break;
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case 'u':
    case 'U': {
        size_t nd = e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t i = 1; i <= nd; i++) {
            int h = hexval(peek_at(r, i));
            if (h < 0)
                return fail(r, eline, ecol, "invalid escape: \\%c needs %zu hexadecimal digits",
                            e, nd);
            cp = cp << 4 | (uint32_t)h;
        }
        /* Only Unicode scalar values: no surrogates, nothing past U+10FFFF. */
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return fail(r, eline, ecol,
                        "invalid escape: U+%04X is not a Unicode scalar value", (unsigned)cp);
        advn(r, nd + 1);
        put_utf8(r, cp);
        return 0;
    }
    default:
        if (e < 0)
            return fail(r, eline, ecol, "unterminated string");
        if (e >= 0x21 && e < 0x7f)
            return fail(r, eline, ecol, "invalid escape '\\%c' (TOML has \\b \\t \\n \\f \\r "
                        "\\\" \\\\ \\uXXXX \\UXXXXXXXX)", e);
        return fail(r, eline, ecol, "invalid escape: '\\' followed by %s",
                    e == ' ' ? "a space" : e == '\t' ? "a tab" : "a control character");
    }
    adv(r);
    buf_putc(r, c);
    return 0;
}

/* Runs of the quote character `q` in a multi-line string: returns 1 if the
 * string closed, 0 to go on, -1 on error. Up to two quotes may sit right
 * before the closing three (`""""x""""` style); six or more in a row is an
 * error since the first three would have closed the string. */
static int ml_quotes(struct treader *r, char q)
{
    size_t k = 0;
    while (peek_at(r, k) == q)
        k++;
    if (k < 3) {
        buf_put(r, q == '"' ? "\"\"" : "''", k);
        advn(r, k);
        return 0;
    }
    if (k > 5)
        return fail(r, r->line, r->col, "%zu %s in a row inside a multi-line string "
                    "(at most two may appear unescaped)", k, q == '"' ? "quotes" : "apostrophes");
    buf_put(r, q == '"' ? "\"\"" : "''", k - 3);
    advn(r, k);
    return 1;
}

/* At the opening quote(s) of a string (basic or literal, single or
 * multi-line, as `q` and `ml` say). Leaves the decoded bytes in r->buf. */
static int string_body(struct treader *r, char q, bool ml)
{
    int sline = r->line, scol = r->col;
    r->blen = 0;
    buf_put(r, "", 0);
    advn(r, ml ? 3 : 1);
    /* "A newline immediately following the opening delimiter will be trimmed." */
    if (ml && newline(r) < 0)
        return -1;
    for (;;) {
        int c = peek(r);
        if (c < 0)
            return fail(r, sline, scol, ml ? "unterminated multi-line string (no closing %s)"
                        : "unterminated string (no closing %s)",
                        q == '"' ? (ml ? "\"\"\"" : "\"") : (ml ? "'''" : "'"));
        if (c == q) {
            if (!ml) {
                adv(r);
                return 0;
            }
            int rc = ml_quotes(r, q);
            if (rc != 0)
                return rc > 0 ? 0 : -1;
            continue;
        }
        if (c == '\\' && q == '"') {
            int eline = r->line, ecol = r->col;
            adv(r);
            int e = peek(r);
            if (ml && (e == ' ' || e == '\t' || e == '\n' || e == '\r')) {
                /* Line-ending backslash: trims whitespace and newlines up to
                 * the next other character. Only whitespace may follow the
                 * backslash on its line. */
                skip_ws(r);
                int nl = newline(r);
                if (nl < 0)
                    return -1;
                if (nl == 0)
                    return fail(r, eline, ecol, "invalid escape: '\\' followed by whitespace "
                                "(a line-ending backslash must be the last thing on its line)");
                for (;;) {
                    skip_ws(r);
                    nl = newline(r);
                    if (nl < 0)
                        return -1;
                    if (nl == 0)
                        break;
                }
                continue;
            }
            if (escape(r, eline, ecol) < 0)
                return -1;
            continue;
        }
        if (c == '\n' || c == '\r') {
            if (!ml)
                return fail(r, r->line, r->col, q == '"'
                            ? "newline in a string (write \\n, or use a \"\"\" multi-line string)"
                            : "newline in a literal string (use a ''' multi-line string)");
            if (newline(r) < 0)
                return -1;
            buf_putc(r, '\n');
            continue;
        }
        if (is_ctl(c))
            return fail(r, r->line, r->col, "control character U+%04X in a string%s",
                        (unsigned)c, q == '"' ? " (write it as an escape)" : "");
        buf_putc(r, (char)c);
        adv(r);
    }
}

/* ------------------------------------------------------------ scalars */

static struct arc_cn *str_node(struct treader *r, const char *s, size_t n, int line, int col)
{
    struct arc_cn *node = arc_config__node_new(r->t, ARC_CN_STR, line, col);
    node->v.s.p = arc_config__strndup(&r->t->arena, s, n);
    node->v.s.len = n;
    return node;
}

/* Digits of `base` with single underscores between them, at least one
 * digit. Returns the end, or NULL with *why set. */
static const char *digits_us(const char *s, const char *e, int base, const char **why)
{
    const char *p = s;
    bool prev_digit = false;
    for (; p < e; p++) {
        int c = (unsigned char)*p;
        int v = hexval(c);
        if (c == '_') {
            if (!prev_digit || p + 1 >= e || hexval((unsigned char)p[1]) < 0 ||
                hexval((unsigned char)p[1]) >= base) {
                *why = "an underscore must be between two digits";
                return NULL;
            }
            prev_digit = false;
            continue;
        }
        if (v < 0 || v >= base)
            break;
        prev_digit = true;
    }
    if (p == s) {
        *why = "expected a digit";
        return NULL;
    }
    return p;
}

/* Value of digits (underscores skipped) in `base`; false past `limit`. */
static bool accumulate(const char *s, const char *e, int base, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    for (const char *p = s; p < e; p++) {
        if (*p == '_')
            continue;
        uint64_t dv = (uint64_t)hexval((unsigned char)*p);
        if (v > (limit - dv) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + dv;
    }
    *out = v;
    return true;
}

/* An integer or float token. Errors are soft (the token is delimited, so
 * reading can go on); the node is then NULL. */
static struct arc_cn *number(struct treader *r, const char *tok, size_t n, int line, int col)
{
    const char *e = tok + n, *p = tok, *why = NULL;
    bool neg = false, sign = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        sign = true;
        p++;
    }
    if (e - p == 3 && (memcmp(p, "inf", 3) == 0 || memcmp(p, "nan", 3) == 0)) {
        soft(r, line, col, "'%.*s' cannot be used: configuration numbers must be finite "
             "(canonical JSON has no infinity or NaN)", (int)n, tok);
        return NULL;
    }
    if (e - p >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'o' || p[1] == 'b')) {
        int base = p[1] == 'x' ? 16 : p[1] == 'o' ? 8 : 2;
        const char *q;
        if (sign) {
            why = "a sign is not allowed on hexadecimal, octal or binary integers";
        } else if ((q = digits_us(p + 2, e, base, &why)) != NULL && q != e) {
            why = base == 16 ? "not a hexadecimal digit" : base == 8 ? "not an octal digit"
                : "not a binary digit";
        } else if (q) {
            uint64_t v;
            if (!accumulate(p + 2, e, base, INT64_MAX, &v)) {
                soft(r, line, col, "integer '" TOKFMT "' is out of range (64-bit signed)",
                     TOKARG(tok, n));
                return NULL;
            }
            struct arc_cn *node = arc_config__node_new(r->t, ARC_CN_INT, line, col);
            node->v.i = (int64_t)v;
            return node;
        }
        soft(r, line, col, "invalid number '" TOKFMT "': %s", TOKARG(tok, n), why);
        return NULL;
    }
    /* dec-int [ "." zero-prefixable-int ] [ "e" [sign] zero-prefixable-int ] */
    const char *ip = p, *q = digits_us(p, e, 10, &why);
    if (*p == '.')
        why = "a decimal point must have a digit on each side";
    bool is_float = false;
    if (q && q - ip > 1 && ip[0] == '0')
        why = "leading zeros are not allowed", q = NULL;
    if (q && q < e && *q == '.') {
        is_float = true;
        if (q + 1 >= e || !is_digit((unsigned char)q[1])) {
            why = "a decimal point must have a digit on each side";
            q = NULL;
        } else {
            q = digits_us(q + 1, e, 10, &why);
        }
    }
    if (q && q < e && (*q == 'e' || *q == 'E')) {
        is_float = true;
        q++;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        if (q >= e || !is_digit((unsigned char)*q)) {
            why = "the exponent needs digits";
            q = NULL;
        } else {
            q = digits_us(q, e, 10, &why);
        }
    }
    if (q && q != e) {
        why = *q == '.' ? "a decimal point must have a digit on each side"
            : "unexpected characters after the number";
        q = NULL;
    }
    if (!q) {
        soft(r, line, col, "invalid number '" TOKFMT "': %s", TOKARG(tok, n), why);
        return NULL;
    }
    if (!is_float) {
        uint64_t v;
        if (!accumulate(ip, e, 10, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v)) {
            soft(r, line, col, "integer '" TOKFMT "' is out of range (64-bit signed)",
                 TOKARG(tok, n));
            return NULL;
        }
        struct arc_cn *node = arc_config__node_new(r->t, ARC_CN_INT, line, col);
        node->v.i = neg ? (int64_t)(0 - v) : (int64_t)v;
        return node;
    }
    r->blen = 0;
    for (const char *s = tok; s < e; s++)
        if (*s != '_')
            buf_putc(r, *s);
    errno = 0;
    double v = strtod(r->buf, NULL);  /* "C" locale on the control thread */
    if (errno == ERANGE && (v > 1.0 || v < -1.0)) {
        soft(r, line, col, "number '" TOKFMT "' is out of range", TOKARG(tok, n));
        return NULL;
    }
    struct arc_cn *node = arc_config__node_new(r->t, ARC_CN_FLOAT, line, col);
    node->v.f = v;
    return node;
}

static bool ndigits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i]))
            return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* HH:MM:SS[.frac] at s (n bytes available): length used, or 0 with *why. */
static size_t parse_time(const char *s, size_t n, const char **why)
{
    if (n < 8 || !ndigits(s, 2) || s[2] != ':' || !ndigits(s + 3, 2) || s[5] != ':' ||
        !ndigits(s + 6, 2)) {
        *why = "expected a time HH:MM:SS";
        return 0;
    }
    if (num2(s) > 23) {
        *why = "hour is out of range";
        return 0;
    }
    if (num2(s + 3) > 59) {
        *why = "minute is out of range";
        return 0;
    }
    /* 60 is a leap second, which RFC 3339 allows. */
    if (num2(s + 6) > 60) {
        *why = "second is out of range";
        return 0;
    }
    size_t k = 8;
    if (k < n && s[k] == '.') {
        k++;
        size_t f = k;
        while (k < n && is_digit((unsigned char)s[k]))
            k++;
        if (k == f) {
            *why = "fractional seconds need digits after '.'";
            return 0;
        }
    }
    return k;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Offset date-time, local date-time, local date or local time, as a
 * string in RFC 3339 form (see the top of the file). */
static struct arc_cn *datetime(struct treader *r, const char *tok, size_t n, int line, int col)
{
    const char *why = NULL;
    char out[128];
    size_t o = 0;
    if (n > 64) {
        why = "too long";
        goto bad;
    }
    if (is_digit((unsigned char)tok[0]) && n >= 3 && tok[2] == ':') {
        size_t k = parse_time(tok, n, &why);
        if (!k)
            goto bad;
        if (k != n) {
            why = "a local time cannot have an offset or anything after it";
            goto bad;
        }
        return str_node(r, tok, n, line, col);
    }
    if (n < 10 || !ndigits(tok, 4) || tok[4] != '-' || !ndigits(tok + 5, 2) || tok[7] != '-' ||
        !ndigits(tok + 8, 2)) {
        why = "expected a date YYYY-MM-DD";
        goto bad;
    }
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int year = num2(tok) * 100 + num2(tok + 2), month = num2(tok + 5), day = num2(tok + 8);
    if (month < 1 || month > 12) {
        why = "month is out of range";
        goto bad;
    }
    if (day < 1 || day > mdays[month - 1] + (month == 2 && leap(year))) {
        why = "day is out of range for the month";
        goto bad;
    }
    memcpy(out, tok, 10);
    o = 10;
    if (n == 10)
        return str_node(r, out, o, line, col);
    if (tok[10] != 'T' && tok[10] != 't' && tok[10] != ' ') {
        why = "expected 'T' or a space between the date and the time";
        goto bad;
    }
    out[o++] = 'T';
    size_t k = parse_time(tok + 11, n - 11, &why);
    if (!k)
        goto bad;
    memcpy(out + o, tok + 11, k);
    o += k;
    const char *z = tok + 11 + k;
    size_t zn = n - 11 - k;
    if (zn == 1 && (*z == 'Z' || *z == 'z')) {
        out[o++] = 'Z';
    } else if (zn == 6 && (*z == '+' || *z == '-') && ndigits(z + 1, 2) && z[3] == ':' &&
               ndigits(z + 4, 2)) {
        if (num2(z + 1) > 23 || num2(z + 4) > 59) {
            why = "the offset is out of range";
            goto bad;
        }
        memcpy(out + o, z, 6);
        o += 6;
    } else if (zn != 0) {
        why = "expected an offset Z or +HH:MM / -HH:MM after the time";
        goto bad;
    }
    return str_node(r, out, o, line, col);
bad:
    soft(r, line, col, "invalid date or time '" TOKFMT "': %s", TOKARG(tok, n), why);
    return NULL;
}

/* An unquoted value: boolean, number, date or time. */
static struct arc_cn *bare_value(struct treader *r)
{
    int line = r->line, col = r->col;
    const char *tok = r->p;
    while (is_tok(peek(r)))
        adv(r);
    size_t n = (size_t)(r->p - tok);
    /* RFC 3339 §5.6 lets a space separate date and time: "1979-05-27 07:32:00". */
    if (n == 10 && ndigits(tok, 4) && tok[4] == '-' && peek(r) == ' ' &&
        is_digit(peek_at(r, 1)) && is_digit(peek_at(r, 2)) && peek_at(r, 3) == ':') {
        adv(r);
        while (is_tok(peek(r)))
            adv(r);
        n = (size_t)(r->p - tok);
    }
    if (n == 4 && memcmp(tok, "true", 4) == 0) {
        struct arc_cn *node = arc_config__node_new(r->t, ARC_CN_BOOL, line, col);
        node->v.b = true;
        return node;
    }
    if (n == 5 && memcmp(tok, "false", 5) == 0)
        return arc_config__node_new(r->t, ARC_CN_BOOL, line, col);
    if ((n >= 5 && ndigits(tok, 4) && tok[4] == '-') ||
        (n >= 3 && ndigits(tok, 2) && tok[2] == ':'))
        return datetime(r, tok, n, line, col);
    const char *d = tok + (tok[0] == '+' || tok[0] == '-');
    if ((d < tok + n && is_digit((unsigned char)*d)) ||
        (tok + n - d >= 2 && d[0] == '.' && is_digit((unsigned char)d[1])) ||
        (tok + n - d == 3 && (memcmp(d, "inf", 3) == 0 || memcmp(d, "nan", 3) == 0)))
        return number(r, tok, n, line, col);
    const char *hint = "(a string must be quoted)";
    if ((n == 4 && (!memcmp(tok, "True", 4) || !memcmp(tok, "TRUE", 4))) ||
        (n == 5 && (!memcmp(tok, "False", 5) || !memcmp(tok, "FALSE", 5))))
        hint = "(booleans are lowercase: true, false)";
    else if ((n == 4 && (!memcmp(tok, "null", 4) || !memcmp(tok, "none", 4))) ||
             (n == 3 && !memcmp(tok, "nil", 3)))
        hint = "(TOML has no null: leave the key out for its default)";
    soft(r, line, col, "invalid value '" TOKFMT "' %s", TOKARG(tok, n), hint);
    return NULL;
}

/* ------------------------------------------------------------ values */

static int parse_value(struct treader *r, int depth, struct arc_cn **out);
static int keyval(struct treader *r, struct tnode *tbl);

static int parse_array(struct treader *r, int depth, struct arc_cn **out)
{
    struct tnode *seq = tnode_new(r, ARC_CN_SEQ, r->line, r->col, depth, T_FROZEN);
    adv(r);
    for (;;) {
        if (skip_ws_comments_newlines(r) < 0)
            return -1;
        if (peek(r) == ']') {
            adv(r);
            break;
        }
        struct arc_cn *val;
        if (parse_value(r, depth + 1, &val) < 0)
            return -1;
        arc_config__node_append(&seq->cn, val);
        if (skip_ws_comments_newlines(r) < 0)
            return -1;
        if (peek(r) == ',') {
            adv(r);
            continue;
        }
        if (peek(r) == ']') {
            adv(r);
            break;
        }
        return expected(r, "',' or ']' in the array");
    }
    *out = &seq->cn;
    return 0;
}

static int parse_inline_table(struct treader *r, int depth, struct arc_cn **out)
{
    struct tnode *map = tnode_new(r, ARC_CN_MAP, r->line, r->col, depth, 0);
    adv(r);
    skip_ws(r);
    if (peek(r) == '}') {
        adv(r);
    } else {
        for (;;) {
            skip_ws(r);
            int c = peek(r);
            if (c == '\n' || c == '\r')
                return fail(r, r->line, r->col, "TOML syntax error: newline in an inline table "
                            "(an inline table must be on one line; use a [table] instead)");
            if (c == '}')
                return fail(r, r->line, r->col, "TOML syntax error: trailing comma in an "
                            "inline table (not allowed, unlike in arrays)");
            if (keyval(r, map) < 0)
                return -1;
            skip_ws(r);
            c = peek(r);
            if (c == ',') {
                adv(r);
                continue;
            }
            if (c == '}') {
                adv(r);
                break;
            }
            if (c == '\n' || c == '\r')
                return fail(r, r->line, r->col, "TOML syntax error: newline in an inline table "
                            "(an inline table must be on one line; use a [table] instead)");
            return expected(r, "',' or '}' in the inline table");
        }
    }
    map->flags |= T_FROZEN;
    *out = &map->cn;
    return 0;
}

/* One value; `depth` is what it has if it is an array or inline table.
 * *out is NULL after a soft error in an unquoted value. */
static int parse_value(struct treader *r, int depth, struct arc_cn **out)
{
    int c = peek(r);
    int line = r->line, col = r->col;
    *out = NULL;
    if ((c == '[' || c == '{') && depth > ARC_CONF_MAX_DEPTH)
        return fail(r, line, col, "nesting deeper than %d levels", ARC_CONF_MAX_DEPTH);
    switch (c) {
    case '[':
        return parse_array(r, depth, out);
    case '{':
        return parse_inline_table(r, depth, out);
    case '"':
    case '\'': {
        bool ml = peek_at(r, 1) == c && peek_at(r, 2) == c;
        if (string_body(r, (char)c, ml) < 0)
            return -1;
        *out = str_node(r, r->buf, r->blen, line, col);
        return 0;
    }
    default:
        if (c >= 0 && is_tok(c)) {
            *out = bare_value(r);
            if (!*out)   /* a placeholder keeps arrays and keys consistent */
                *out = arc_config__node_new(r->t, ARC_CN_NULL, line, col);
            return 0;
        }
        return expected(r, "a value");
    }
}

/* ------------------------------------------------------------ keys */

/* A key: simple keys joined by '.', whitespace allowed around the dots;
 * also skips the whitespace after it. Returns the number of parts. */
static int parse_key(struct treader *r, struct seg *segs)
{
    int n = 0;
    for (;;) {
        struct seg *s = &segs[n];
        s->line = r->line;
        s->col = r->col;
        int c = peek(r);
        if (c == '"' || c == '\'') {
            if (peek_at(r, 1) == c && peek_at(r, 2) == c)
                return fail(r, r->line, r->col,
                            "TOML syntax error: a multi-line string cannot be a key");
            if (string_body(r, (char)c, false) < 0)
                return -1;
            if (memchr(r->buf, '\0', r->blen))
                return fail(r, s->line, s->col, "key contains a NUL character");
            s->s = arc_config__strndup(&r->t->arena, r->buf, r->blen);
            s->len = r->blen;
        } else if (c >= 0 && is_bare(c)) {
            const char *b = r->p;
            while (is_bare(peek(r)))
                adv(r);
            s->len = (size_t)(r->p - b);
            s->s = arc_config__strndup(&r->t->arena, b, s->len);
        } else {
            return expected(r, "a key");
        }
        n++;
        skip_ws(r);
        if (peek(r) != '.')
            return n;
        if (n == MAX_SEGS)
            return fail(r, r->line, r->col, "nesting deeper than %d levels",
                        ARC_CONF_MAX_DEPTH);
        adv(r);
        skip_ws(r);
    }
}

/* A table for part i of a dotted key under `parent`: an existing table
 * that dotted keys of this section may extend, or a new one. NULL after a
 * (soft) error. */
static struct tnode *dotted_step(struct treader *r, struct tnode *parent, const struct seg *segs,
                                 int i)
{
    const struct seg *s = &segs[i];
    char k[KEYBUF];
    struct arc_cn *c = child_get(r, &parent->cn, s);
    if (!c) {
        if (parent->depth >= ARC_CONF_MAX_DEPTH) {
            soft(r, s->line, s->col, "nesting deeper than %d levels", ARC_CONF_MAX_DEPTH);
            return NULL;
        }
        struct tnode *t = tnode_new(r, ARC_CN_MAP, s->line, s->col, parent->depth + 1, 0);
        t->section = r->section;
        add_member(r, parent, &t->cn, s);
        return t;
    }
    struct tnode *t = c->kind == ARC_CN_MAP || c->kind == ARC_CN_SEQ ? tn(c) : NULL;
    if (c->kind != ARC_CN_MAP) {
        soft(r, s->line, s->col, "'%s' is already %s (line %d), not a table; "
             "a dotted key cannot add to it", key_text(segs, i + 1, k, sizeof(k)), what_is(c),
             def_line(c));
    } else if (t->flags & T_FROZEN) {
        soft(r, s->line, s->col, "cannot add to inline table '%s' (line %d): an inline table "
             "is complete where it is written", key_text(segs, i + 1, k, sizeof(k)), def_line(c));
    } else if (t->flags & T_HEADER) {
        soft(r, s->line, s->col, "a dotted key cannot add to table '%s': it is defined by a "
             "[header] at line %d (put the key under that header)",
             key_text(segs, i + 1, k, sizeof(k)), def_line(c));
    } else if (t->section != 0 && t->section != r->section) {
        soft(r, s->line, s->col, "a dotted key cannot add to table '%s': it was defined by "
             "dotted keys under another header (line %d)", key_text(segs, i + 1, k, sizeof(k)),
             def_line(c));
    } else {
        t->section = r->section;
        return t;
    }
    return NULL;
}

/* key = value, into table `tbl` (the current [header] table, or an inline
 * table being read). */
static int keyval(struct treader *r, struct tnode *tbl)
{
    struct seg segs[MAX_SEGS];
    int n = parse_key(r, segs);
    if (n < 0)
        return -1;
    if (peek(r) != '=')
        return expected(r, "'=' after the key");
    adv(r);
    skip_ws(r);
    struct arc_cn *val;
    if (parse_value(r, tbl->depth + n, &val) < 0)
        return -1;
    /* The key's tables are resolved after the value has been read, so a
     * soft error here still leaves the reader after the value. */
    struct tnode *parent = tbl;
    for (int i = 0; i < n - 1 && parent; i++)
        parent = dotted_step(r, parent, segs, i);
    if (!parent)
        return 0;
    struct arc_cn *old = child_get(r, &parent->cn, &segs[n - 1]);
    if (old) {
        char k[KEYBUF];
        soft(r, segs[n - 1].line, segs[n - 1].col, "duplicate key '%s' (first defined at line %d)",
             key_text(segs, n, k, sizeof(k)), def_line(old));
        return 0;
    }
    add_member(r, parent, val, &segs[n - 1]);
    return 0;
}

/* A table for part i of a [header] or [[header]] path: an existing table
 * (not an inline one), the last element of an array of tables, or a new
 * implicit table. NULL after a (soft) error. */
static struct tnode *header_step(struct treader *r, struct tnode *parent, const struct seg *segs,
                                 int i)
{
    const struct seg *s = &segs[i];
    char k[KEYBUF];
    struct arc_cn *c = child_get(r, &parent->cn, s);
    if (!c) {
        if (parent->depth >= ARC_CONF_MAX_DEPTH) {
            soft(r, s->line, s->col, "nesting deeper than %d levels", ARC_CONF_MAX_DEPTH);
            return NULL;
        }
        struct tnode *t = tnode_new(r, ARC_CN_MAP, s->line, s->col, parent->depth + 1, 0);
        add_member(r, parent, &t->cn, s);
        return t;
    }
    if (c->kind == ARC_CN_MAP && !(tn(c)->flags & T_FROZEN))
        return tn(c);
    if (c->kind == ARC_CN_SEQ && (tn(c)->flags & T_AOT))
        return tn(c->last);    /* "the most recently defined table element" */
    if (c->kind == ARC_CN_MAP)
        soft(r, s->line, s->col, "cannot add to inline table '%s' (line %d): an inline table "
             "is complete where it is written", key_text(segs, i + 1, k, sizeof(k)), def_line(c));
    else if (c->kind == ARC_CN_SEQ)
        soft(r, s->line, s->col, "cannot add to array '%s' (line %d): only an array of tables "
             "made with [[%s]] can be extended", key_text(segs, i + 1, k, sizeof(k)),
             def_line(c), k);
    else
        soft(r, s->line, s->col, "'%s' is already %s (line %d), not a table",
             key_text(segs, i + 1, k, sizeof(k)), what_is(c), def_line(c));
    return NULL;
}

/* At '[': a [table] or [[array of tables]] header. Makes its table the
 * current one. */
static int header(struct treader *r)
{
    int hline = r->line, hcol = r->col;
    struct seg segs[MAX_SEGS];
    char k[KEYBUF];
    adv(r);
    bool aot = peek(r) == '[';
    if (aot)
        adv(r);
    skip_ws(r);
    int n = parse_key(r, segs);
    if (n < 0)
        return -1;
    if (peek(r) != ']')
        return expected(r, aot ? "']]' to close the [[header]]" : "']' to close the [header]");
    adv(r);
    if (aot && peek(r) != ']')
        return expected(r, peek(r) == ' ' || peek(r) == '\t'
                        ? "']]' to close the [[header]] (no space between the brackets)"
                        : "']]' to close the [[header]]");
    if (aot)
        adv(r);
    r->section++;

    struct tnode *tbl = r->root;
    for (int i = 0; i < n - 1 && tbl; i++)
        tbl = header_step(r, tbl, segs, i);
    const struct seg *s = &segs[n - 1];
    struct arc_cn *c = tbl ? child_get(r, &tbl->cn, s) : NULL;
    const char *name = key_text(segs, n, k, sizeof(k));
    if (!tbl) {
        /* error reported by header_step */
    } else if (tbl->depth + (aot ? 2 : 1) > ARC_CONF_MAX_DEPTH) {
        soft(r, s->line, s->col, "nesting deeper than %d levels", ARC_CONF_MAX_DEPTH);
    } else if (aot) {
        struct tnode *seq = NULL;
        if (!c) {
            seq = tnode_new(r, ARC_CN_SEQ, hline, hcol, tbl->depth + 1, T_AOT);
            add_member(r, tbl, &seq->cn, s);
        } else if (c->kind == ARC_CN_SEQ && (tn(c)->flags & T_AOT)) {
            seq = tn(c);
        } else if (c->kind == ARC_CN_SEQ) {
            soft(r, s->line, s->col, "cannot append to array '%s': it was written as a value at "
                 "line %d, and only an array made with [[%s]] can be extended", name,
                 def_line(c), name);
        } else {
            soft(r, s->line, s->col, "[[%s]]: '%s' is already %s (line %d), not an array of "
                 "tables", name, name, what_is(c), def_line(c));
        }
        if (seq) {
            struct tnode *el = tnode_new(r, ARC_CN_MAP, hline, hcol, seq->depth + 1, T_HEADER);
            arc_config__node_append(&seq->cn, &el->cn);
            r->cur = el;
            return 0;
        }
    } else if (!c) {
        struct tnode *t = tnode_new(r, ARC_CN_MAP, hline, hcol, tbl->depth + 1, T_HEADER);
        add_member(r, tbl, &t->cn, s);
        r->cur = t;
        return 0;
    } else if (c->kind == ARC_CN_MAP && !(tn(c)->flags & (T_HEADER | T_FROZEN)) &&
               tn(c)->section == 0) {
        /* A table so far only implied by longer headers ([a.b] before [a]):
         * this header defines it, and now it sits here. */
        tn(c)->flags |= T_HEADER;
        c->line = hline;
        c->col = hcol;
        c->key_line = s->line;
        c->key_col = s->col;
        r->cur = tn(c);
        return 0;
    } else if (c->kind == ARC_CN_MAP && (tn(c)->flags & T_FROZEN)) {
        soft(r, s->line, s->col, "table [%s] is already defined as an inline table at line %d",
             name, def_line(c));
    } else if (c->kind == ARC_CN_MAP && (tn(c)->flags & T_HEADER)) {
        soft(r, s->line, s->col, "table [%s] is defined twice (first at line %d)", name,
             def_line(c));
    } else if (c->kind == ARC_CN_MAP) {
        soft(r, s->line, s->col, "table [%s] is already defined by dotted keys at line %d",
             name, def_line(c));
    } else if (c->kind == ARC_CN_SEQ && (tn(c)->flags & T_AOT)) {
        soft(r, s->line, s->col, "[%s] is an array of tables (line %d); write [[%s]] to add "
             "an element", name, def_line(c), name);
    } else {
        soft(r, s->line, s->col, "[%s]: '%s' is already %s (line %d), not a table", name, name,
             what_is(c), def_line(c));
    }
    /* The header failed: read its keys into a table of their own so they
     * are still checked, then dropped, without cascading errors. */
    r->cur = tnode_new(r, ARC_CN_MAP, hline, hcol, 1, T_HEADER);
    return 0;
}

/* ------------------------------------------------------------ document */

static int document(struct treader *r)
{
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end)
            return 0;
        int c = peek(r);
        const char *after = "the comment";
        if (c == '[') {
            if (header(r) < 0)
                return -1;
            after = "the table header";
        } else if (c != '#' && c != '\n' && c != '\r') {
            if (keyval(r, r->cur) < 0)
                return -1;
            after = "the value";
        }
        if (end_line(r, after) < 0)
            return -1;
    }
}

int arc_config__read_toml(const char *text, size_t len, struct arc_ctree *t,
                          struct arc_conf_diag *d)
{
    struct treader r = { .p = text, .end = text + len, .line = 1, .col = 1, .t = t, .d = d,
                         .section = 1 };
    t->root = NULL;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        r.p += 3;
    /* Everything after this may assume valid UTF-8. */
    size_t bad = arc_config__utf8_check(r.p, (size_t)(r.end - r.p));
    if (bad != (size_t)(r.end - r.p)) {
        const char *at = r.p + bad;
        while (r.p < at)    /* to its line:col, counting characters as adv() does */
            adv(&r);
        arc_config__error(d, r.line, r.col, "invalid UTF-8 (byte 0x%02x): a TOML file must be "
                          "UTF-8", (unsigned char)*at);
        return -1;
    }
    r.root = tnode_new(&r, ARC_CN_MAP, 1, 1, 1, T_HEADER);
    r.cur = r.root;
    int rc = document(&r);
    free(r.slots);
    free(r.buf);
    if (rc < 0 || r.soft_error)
        return -1;
    t->root = r.root->cn.n ? &r.root->cn : NULL;
    return 0;
}
