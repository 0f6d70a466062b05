/*
 * Canonical JSON and the config fingerprint.
 *
 * The fingerprint answers "do these two nodes run the same config?", so two
 * files that say the same thing must hash the same whatever their format or
 * layout. The canonical text is the document as written, in the form of
 * jansson's json_dumps(tree, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
 * except for non-integral numbers (below), with these rules (all decided here, relied on
 * by every node of a cluster, so change them only with a version bump):
 *
 * - Format-neutral: YAML and JSON are read into the same tree; comments,
 *   whitespace, key order, quoting style and YAML flow/block style vanish.
 * - Keys are sorted bytewise (strcmp on UTF-8), compact separators.
 * - Numbers are compared by value: an integral float within ±2^53 is written
 *   as an integer (JSON `4.0`, YAML `4.0`, `0x4`, `4` all give `4`; -0.0
 *   gives 0). The schema likewise accepts an integral float where an integer
 *   is expected, so equal fingerprints always mean equal validity. Other
 *   numbers are written with the fewest significant digits (1 to 17) that
 *   read back as the same double: `0.1` stays `0.1`, `1.0000000000000002`
 *   keeps all its digits, never `1`. jansson's own output would always use
 *   17 (`0.10000000000000001`), which round-trips but is not what the user
 *   wrote. No valid config holds such a number (every numeric key wants an
 *   integer), so this choice changes no fingerprint that `arc run` reports.
 * - Strings are escaped to ASCII (\uXXXX), so the text is plain ASCII and
 *   immune to any re-encoding on its way between nodes.
 * - YAML map keys are their literal text (`8080:` is the key "8080").
 * - No defaults are filled in and no values are normalised (`30s` and
 *   `30000ms` hash differently): the fingerprint identifies the document,
 *   the schema decides what it means. Omitting a key and writing null for it
 *   both mean "default" but hash differently.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "config/tree_int.h"
#include "core/sbuf.h"

/* 2^53: every integer up to here is exactly representable as a double. */
#define EXACT_INT_LIMIT 9007199254740992.0

static json_t *to_json(const struct arc_cn *n)
{
    switch (n->kind) {
    case ARC_CN_NULL:
        return json_null();
    case ARC_CN_BOOL:
        return json_boolean(n->v.b);
    case ARC_CN_INT:
        return json_integer((json_int_t)n->v.i);
    case ARC_CN_FLOAT:
        if (n->v.f == trunc(n->v.f) && fabs(n->v.f) <= EXACT_INT_LIMIT)
            return json_integer((json_int_t)n->v.f);
        return json_real(n->v.f);
    case ARC_CN_STR:
        return json_stringn(n->v.s.p, n->v.s.len);
    case ARC_CN_SEQ: {
        json_t *a = json_array();
        if (!a)
            return NULL;
        for (const struct arc_cn *c = n->first; c; c = c->next) {
            json_t *v = to_json(c);
            if (!v || json_array_append_new(a, v) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case ARC_CN_MAP: {
        json_t *o = json_object();
        if (!o)
            return NULL;
        for (const struct arc_cn *c = n->first; c; c = c->next) {
            /* Duplicate keys were reported by the reader; the first wins,
             * as arc_config__get() does. */
            if (json_object_get(o, c->key))
                continue;
            json_t *v = to_json(c);
            if (!v || json_object_set_new(o, c->key, v) < 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    }
    return NULL;
}

/* Shortest "%.Ng" that reads back as exactly `v` (17 digits always do),
 * then jansson's touches so the text stays what jansson would have printed
 * at that precision: ".0" when it would read as an integer, no '+' and no
 * leading zeros in the exponent. `v` is finite (the readers reject the
 * rest). Returns the length, or -1. */
static int format_real(double v, char *buf, size_t size)
{
    int n = -1;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, v);
        if (n < 0 || (size_t)n >= size)
            return -1;
        if (strtod(buf, NULL) == v)
            break;
    }
    if (!strchr(buf, '.') && !strchr(buf, 'e')) {
        if ((size_t)n + 3 > size)
            return -1;
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(buf, 'e');
    if (e) {
        char *from = e + 1, *to = e + 1;
        if (*from == '-')
            from++, to++;
        else if (*from == '+')
            from++;
        while (*from == '0' && from[1] != '\0')
            from++;
        memmove(to, from, strlen(from) + 1);
        n = (int)strlen(buf);
    }
    return n;
}

/* One string exactly as jansson escapes it with JSON_ENSURE_ASCII. */
static int dump_string(struct arc_sbuf *b, const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    char *t = j ? json_dumps(j, JSON_ENSURE_ASCII | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!t)
        return -1;
    arc_sbuf_append(b, t, strlen(t));
    free(t);
    return 0;
}

struct member {
    const char *key;
    size_t len;
    json_t *value;
};

/* jansson's key order: bytewise, a prefix first. */
static int member_cmp(const void *x, const void *y)
{
    const struct member *a = x, *b = y;
    int r = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    if (r)
        return r;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII |
 * JSON_ENCODE_ANY), reals aside (format_real). The tree comes from to_json,
 * so it has no cycles and its depth is the reader's nesting limit. */
static int dump(struct arc_sbuf *b, json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        arc_sbuf_append(b, "null", 4);
        return 0;
    case JSON_TRUE:
        arc_sbuf_append(b, "true", 4);
        return 0;
    case JSON_FALSE:
        arc_sbuf_append(b, "false", 5);
        return 0;
    case JSON_INTEGER:
        arc_sbuf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return 0;
    case JSON_REAL: {
        char num[64];
        int n = format_real(json_real_value(j), num, sizeof(num));
        if (n < 0)
            return -1;
        arc_sbuf_append(b, num, (size_t)n);
        return 0;
    }
    case JSON_STRING:
        return dump_string(b, json_string_value(j), json_string_length(j));
    case JSON_ARRAY:
        arc_sbuf_append(b, "[", 1);
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i)
                arc_sbuf_append(b, ",", 1);
            if (dump(b, json_array_get(j, i)) < 0)
                return -1;
        }
        arc_sbuf_append(b, "]", 1);
        return 0;
    case JSON_OBJECT: {
        size_t n = json_object_size(j), i = 0;
        struct member *m = calloc(n ? n : 1, sizeof(*m));
        if (!m)
            return -1;
        for (void *it = json_object_iter(j); it && i < n; it = json_object_iter_next(j, it), i++)
            m[i] = (struct member){ json_object_iter_key(it), json_object_iter_key_len(it),
                                    json_object_iter_value(it) };
        qsort(m, i, sizeof(*m), member_cmp);
        int rc = 0;
        arc_sbuf_append(b, "{", 1);
        for (size_t k = 0; k < i && rc == 0; k++) {
            if (k)
                arc_sbuf_append(b, ",", 1);
            rc = dump_string(b, m[k].key, m[k].len);
            if (rc == 0) {
                arc_sbuf_append(b, ":", 1);
                rc = dump(b, m[k].value);
            }
        }
        arc_sbuf_append(b, "}", 1);
        free(m);
        return rc;
    }
    }
    return -1;
}

int arc_config__canonicalize(const struct arc_cn *root, char **json_out,
                             char hex_out[65])
{
    *json_out = NULL;
    hex_out[0] = '\0';
    json_t *j = root ? to_json(root) : json_null();
    if (!j)
        return -1;
    struct arc_sbuf b = { 0 };
    int drc = dump(&b, j);
    json_decref(j);
    if (drc < 0 || !b.p) {
        arc_sbuf_dispose(&b);
        return -1;
    }
    char *text = b.p;

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        free(text);
        return -1;
    }
    static const char hexd[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        hex_out[2 * i] = hexd[md[i] >> 4];
        hex_out[2 * i + 1] = hexd[md[i] & 15];
    }
    hex_out[64] = '\0';
    *json_out = text;
    return 0;
}
