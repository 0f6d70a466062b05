/*
 * Canonical JSON and the config fingerprint.
 *
 * The fingerprint answers "do these two nodes run the same config?", so two
 * files that say the same thing must hash the same whatever their format or
 * layout. The canonical text is jansson's
 *     json_dumps(tree, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
 * of the document as written, with these rules (all decided here, relied on
 * by every node of a cluster, so change them only with a version bump):
 *
 * - Format-neutral: YAML and JSON are read into the same tree; comments,
 *   whitespace, key order, quoting style and YAML flow/block style vanish.
 * - Keys are sorted bytewise (strcmp on UTF-8), compact separators.
 * - Numbers are compared by value: an integral float within ±2^53 is written
 *   as an integer (JSON `4.0`, YAML `4.0`, `0x4`, `4` all give `4`; -0.0
 *   gives 0). The schema likewise accepts an integral float where an integer
 *   is expected, so equal fingerprints always mean equal validity. Other
 *   floats use jansson's 17 significant digits (round-trips exactly).
 * - Strings are escaped to ASCII (\uXXXX), so the text is plain ASCII and
 *   immune to any re-encoding on its way between nodes.
 * - YAML map keys are their literal text (`8080:` is the key "8080").
 * - No defaults are filled in and no values are normalised (`30s` and
 *   `30000ms` hash differently): the fingerprint identifies the document,
 *   the schema decides what it means. Omitting a key and writing null for it
 *   both mean "default" but hash differently.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "config/tree_int.h"

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

int arc_config__canonicalize(const struct arc_cn *root, char **json_out,
                             char hex_out[65])
{
    *json_out = NULL;
    hex_out[0] = '\0';
    json_t *j = root ? to_json(root) : json_null();
    if (!j)
        return -1;
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII |
                                   JSON_ENCODE_ANY);
    json_decref(j);
    if (!text)
        return -1;

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
