/*
 * JSON reader (RFC 8259) → positioned tree.
 *
 * Our own because jansson does not report where a value was, and every
 * config error must point at a line and column. Strict: no comments, no
 * trailing commas, no NaN/Infinity, no leading zeros, no raw control
 * characters in strings, valid UTF-8 only, lone \u surrogates rejected.
 * A leading UTF-8 byte order mark is skipped (RFC 8259 §8.1 allows it).
 *
 * Integers without fraction or exponent become ARC_CN_INT (out of int64
 * range is an error, as in the YAML reader); other numbers ARC_CN_FLOAT.
 * Columns count characters, not bytes, to agree with libyaml.
 * Syntax errors are fatal (the first one is reported; guessing how to
 * resume inside broken JSON produces noise). Duplicate keys are not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tree_int.h"

struct jreader {
    const char *p, *end;
    int line, col;
    struct arc_ctree *t;
    struct arc_conf_diag *d;
};

/* Moves one byte forward, keeping line and (character) column. */
static void adv(struct jreader *r)
{
    unsigned char c = (unsigned char)*r->p++;
    if (c == '\n') {
        r->line++;
        r->col = 1;
    } else if ((c & 0xc0) != 0x80) {
        r->col++;
    }
}

static void skip_ws(struct jreader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        adv(r);
}

/* Describes the current character for an error message. */
static const char *here(const struct jreader *r, char buf[16])
{
    if (r->p >= r->end)
        return "end of input";
    unsigned char c = (unsigned char)*r->p;
    if (c >= 0x21 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static int syntax(struct jreader *r, const char *what)
{
    char b[16];
    arc_config__error(r->d, r->line, r->col, "JSON syntax error: expected %s, found %s",
                      what, here(r, b));
    return -1;
}

static int parse_value(struct jreader *r, int depth, struct arc_cn **out);

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* At the opening quote. Decodes into the arena; the decoded form is never
 * longer than the escaped source, so one allocation of the raw span fits. */
static int parse_string(struct jreader *r, const char **out, size_t *out_len)
{
    const char *q = r->p + 1;
    while (q < r->end && *q != '"') {
        if (*q == '\\' && q + 1 < r->end)
            q++;
        q++;
    }
    if (q >= r->end) {
        arc_config__error(r->d, r->line, r->col, "JSON syntax error: unterminated string");
        return -1;
    }
    char *buf = arc_config__alloc(&r->t->arena, (size_t)(q - r->p));
    size_t n = 0;
    adv(r); /* opening quote */
    while (*r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20) {
            arc_config__error(r->d, r->line, r->col,
                              "JSON syntax error: control character 0x%02x in string (escape it)", c);
            return -1;
        }
        if (c >= 0x80) {
            size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if ((size_t)(q - r->p) < k || arc_config__utf8_check(r->p, k) != k) {
                arc_config__error(r->d, r->line, r->col, "invalid UTF-8 in string");
                return -1;
            }
            for (size_t i = 0; i < k; i++) {
                buf[n++] = *r->p;
                adv(r);
            }
            continue;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            adv(r);
            continue;
        }
        int eline = r->line, ecol = r->col;
        adv(r);
        char e = *r->p;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (q - r->p < 5 || hex4(r->p + 1, &cp) < 0) {
                arc_config__error(r->d, eline, ecol, "JSON syntax error: bad \\u escape");
                return -1;
            }
            for (int i = 0; i < 4; i++)
                adv(r);
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                arc_config__error(r->d, eline, ecol, "invalid \\u escape: lone low surrogate");
                return -1;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (q - r->p < 7 || r->p[1] != '\\' || r->p[2] != 'u' ||
                    hex4(r->p + 3, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                    arc_config__error(r->d, eline, ecol,
                                      "invalid \\u escape: high surrogate without low surrogate");
                    return -1;
                }
                for (int i = 0; i < 6; i++)
                    adv(r);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            n += put_utf8(buf + n, cp);
            break;
        }
        default:
            arc_config__error(r->d, eline, ecol, "JSON syntax error: unknown escape '\\%c'",
                              e >= 0x20 && e < 0x7f ? e : '?');
            return -1;
        }
        adv(r);
    }
    adv(r); /* closing quote */
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct jreader *r, struct arc_cn **out)
{
    int line = r->line, col = r->col;
    const char *s = r->p;
    bool is_int = true;
    if (r->p < r->end && *r->p == '-')
        adv(r);
    if (r->p >= r->end || !is_digit(*r->p))
        return syntax(r, "a digit");
    if (*r->p == '0') {
        adv(r);
        if (r->p < r->end && is_digit(*r->p)) {
            arc_config__error(r->d, line, col, "JSON syntax error: numbers cannot have leading zeros");
            return -1;
        }
    } else {
        while (r->p < r->end && is_digit(*r->p))
            adv(r);
    }
    if (r->p < r->end && *r->p == '.') {
        is_int = false;
        adv(r);
        if (r->p >= r->end || !is_digit(*r->p))
            return syntax(r, "a digit after '.'");
        while (r->p < r->end && is_digit(*r->p))
            adv(r);
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        is_int = false;
        adv(r);
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            adv(r);
        if (r->p >= r->end || !is_digit(*r->p))
            return syntax(r, "a digit in the exponent");
        while (r->p < r->end && is_digit(*r->p))
            adv(r);
    }
    size_t n = (size_t)(r->p - s);
    char buf[128];
    if (n >= sizeof(buf)) {
        arc_config__error(r->d, line, col, "number is too long (%zu characters)", n);
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct arc_cn *node;
    if (is_int) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == ERANGE) {
            arc_config__error(r->d, line, col, "integer '%s' is out of range", buf);
            return -1;
        }
        node = arc_config__node_new(r->t, ARC_CN_INT, line, col);
        node->v.i = v;
    } else {
        errno = 0;
        double v = strtod(buf, NULL);  /* "C" locale on the control thread */
        if (errno == ERANGE && (v > 1.0 || v < -1.0)) {
            arc_config__error(r->d, line, col, "number '%s' is out of range", buf);
            return -1;
        }
        node = arc_config__node_new(r->t, ARC_CN_FLOAT, line, col);
        node->v.f = v;
    }
    *out = node;
    return 0;
}

static int parse_literal(struct jreader *r, const char *word, struct arc_cn **out)
{
    size_t n = strlen(word);
    int line = r->line, col = r->col;
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return syntax(r, "a value");
    for (size_t i = 0; i < n; i++)
        adv(r);
    struct arc_cn *node;
    if (word[0] == 'n') {
        node = arc_config__node_new(r->t, ARC_CN_NULL, line, col);
    } else {
        node = arc_config__node_new(r->t, ARC_CN_BOOL, line, col);
        node->v.b = word[0] == 't';
    }
    *out = node;
    return 0;
}

static int parse_object(struct jreader *r, int depth, struct arc_cn **out)
{
    struct arc_cn *map = arc_config__node_new(r->t, ARC_CN_MAP, r->line, r->col);
    adv(r);
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        adv(r);
        *out = map;
        return 0;
    }
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            return syntax(r, "a string key");
        int kline = r->line, kcol = r->col;
        const char *key;
        size_t klen;
        if (parse_string(r, &key, &klen) < 0)
            return -1;
        if (memchr(key, '\0', klen)) {
            arc_config__error(r->d, kline, kcol, "key contains a NUL character");
            return -1;
        }
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':')
            return syntax(r, "':' after key");
        adv(r);
        skip_ws(r);
        struct arc_cn *val;
        if (parse_value(r, depth + 1, &val) < 0)
            return -1;
        val->key = key;
        val->key_len = klen;
        val->key_line = kline;
        val->key_col = kcol;
        arc_config__node_append(map, val);
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            adv(r);
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            adv(r);
            break;
        }
        return syntax(r, "',' or '}'");
    }
    arc_config__check_dup_keys(r->d, map);
    *out = map;
    return 0;
}

static int parse_array(struct jreader *r, int depth, struct arc_cn **out)
{
    struct arc_cn *seq = arc_config__node_new(r->t, ARC_CN_SEQ, r->line, r->col);
    adv(r);
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        adv(r);
        *out = seq;
        return 0;
    }
    for (;;) {
        skip_ws(r);
        struct arc_cn *val;
        if (parse_value(r, depth + 1, &val) < 0)
            return -1;
        arc_config__node_append(seq, val);
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            adv(r);
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            adv(r);
            break;
        }
        return syntax(r, "',' or ']'");
    }
    *out = seq;
    return 0;
}

static int parse_value(struct jreader *r, int depth, struct arc_cn **out)
{
    if (r->p >= r->end)
        return syntax(r, "a value");
    char c = *r->p;
    if ((c == '{' || c == '[') && depth > ARC_CONF_MAX_DEPTH) {
        arc_config__error(r->d, r->line, r->col, "nesting deeper than %d levels",
                          ARC_CONF_MAX_DEPTH);
        return -1;
    }
    switch (c) {
    case '{':
        return parse_object(r, depth, out);
    case '[':
        return parse_array(r, depth, out);
    case '"': {
        int line = r->line, col = r->col;
        const char *s;
        size_t n;
        if (parse_string(r, &s, &n) < 0)
            return -1;
        struct arc_cn *node = arc_config__node_new(r->t, ARC_CN_STR, line, col);
        node->v.s.p = s;
        node->v.s.len = n;
        *out = node;
        return 0;
    }
    case 't':
        return parse_literal(r, "true", out);
    case 'f':
        return parse_literal(r, "false", out);
    case 'n':
        return parse_literal(r, "null", out);
    default:
        if (c == '-' || is_digit(c))
            return parse_number(r, out);
        return syntax(r, "a value");
    }
}

int arc_config__read_json(const char *text, size_t len, struct arc_ctree *t,
                          struct arc_conf_diag *d)
{
    struct jreader r = { .p = text, .end = text + len, .line = 1, .col = 1, .t = t, .d = d };
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        r.p += 3;
    skip_ws(&r);
    if (r.p >= r.end) {
        t->root = NULL;
        return 0;
    }
    struct arc_cn *root;
    if (parse_value(&r, 1, &root) < 0) {
        t->root = NULL;
        return -1;
    }
    skip_ws(&r);
    if (r.p < r.end) {
        char b[16];
        arc_config__error(d, r.line, r.col,
                          "JSON syntax error: unexpected %s after the document", here(&r, b));
        t->root = NULL;
        return -1;
    }
    t->root = root;
    return 0;
}
