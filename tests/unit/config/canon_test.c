/* Proves the canonical JSON and fingerprint depend only on the logical
 * document: YAML and JSON spellings of one config, any key order, any
 * whitespace or quoting give the same text and SHA-256; any change of a
 * value changes it. Also pins the exact canonical text and digest. */
#include "config_test.h"
#include "config/tree_int.h"
#include "core/common.h"

#include <math.h>
#include <stdint.h>

/* Canonical text of a bare document (not validated as a config). */
static char *canon(const char *format, const char *text, char hex[65])
{
    struct arc_ctree t = { 0 };
    struct arc_config_errors e = { 0 };
    struct arc_conf_diag d;
    arc_config__diag_init(&d, &e, "t");
    int rc = strcmp(format, "json") == 0 ? arc_config__read_json(text, strlen(text), &t, &d)
                                         : arc_config__read_yaml(text, strlen(text), &t, &d);
    CHECK_INT(rc, 0);
    CHECK_INT(e.n, 0);
    char *out = NULL;
    CHECK_INT(arc_config__canonicalize(t.root, &out, hex), 0);
    arc_config__tree_free(&t);
    arc_config_errors_dispose(&e);
    return out;
}

static void test_exact_text(void)
{
    char hex[65];
    char *s = canon("yaml",
                    "# comment\n"
                    "b:\n"
                    "  c: \"\xc3\xa9\"\n"
                    "a: [1, 2.5, x, true, ~]\n", hex);
    CHECK_STR(s, "{\"a\":[1,2.5,\"x\",true,null],\"b\":{\"c\":\"\\u00E9\"}}");
    CHECK_STR(hex, "75224af7dabdfe1d94305475c66c2939ae179c99c03761f4a77919c6af74971b");
    free(s);
    s = canon("json", "{ \"b\" : { \"c\" : \"\\u00E9\" } ,\n\"a\":[ 1 , 2.50 , \"x\" , true , null ] }",
              hex);
    CHECK_STR(s, "{\"a\":[1,2.5,\"x\",true,null],\"b\":{\"c\":\"\\u00E9\"}}");
    CHECK_STR(hex, "75224af7dabdfe1d94305475c66c2939ae179c99c03761f4a77919c6af74971b");
    free(s);
    s = canon("yaml", "", hex);
    CHECK_STR(s, "null");
    CHECK_STR(hex, "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b");
    free(s);
}

static void test_numbers_by_value(void)
{
    char h1[65], h2[65];
    /* 4, 4.0, 0x4 and 4e0 are one number; 0.1 is written 0.1; -0.0 is 0 */
    char *a = canon("yaml", "v: [4, 4.0, 0x4, 4e0, 0o4, 0.1, -0.0, 1e300]\n", h1);
    char *b = canon("json", "{\"v\": [4, 4.0, 4, 4E0, 4, 0.1, -0, 1e300]}", h2);
    CHECK_STR(a, "{\"v\":[4,4,4,4,4,0.1,0,1e300]}");
    CHECK_STR(a, b);
    CHECK_STR(h1, h2);
    free(a);
    free(b);
}

/* Non-integral numbers are written with the fewest digits that read back as
 * the same double: never rounded to fewer (1.0000000000000002 is not 1),
 * never padded to 17 (0.3 is not 0.29999999999999999). */
static void test_numbers_shortest_round_trip(void)
{
    static const struct { const char *in, *out; } cases[] = {
        { "1.0000000000000002", "1.0000000000000002" },
        { "0.3", "0.3" },
        { "0.1e1", "1" },                               /* integral: an integer */
        { "2.5", "2.5" },
        { "-0.000001", "-1e-6" },
        { "100.125", "100.125" },
        { "123456789.12345679", "123456789.12345679" },
        { "0.30000000000000004", "0.30000000000000004" },
        { "1e21", "1e21" },                             /* integral, beyond 2^53 */
        { "5e-324", "5e-324" },
        { "1.7976931348623157e308", "1.7976931348623157e308" },
        { "9007199254740993.0", "9007199254740992" },   /* nearest double is 2^53 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[128], want[128], hex[65];
        snprintf(doc, sizeof(doc), "{\"v\": %s}", cases[i].in);
        snprintf(want, sizeof(want), "{\"v\":%s}", cases[i].out);
        char *j = canon("json", doc, hex);
        CHECK_STR(j, want);
        free(j);
        snprintf(doc, sizeof(doc), "v: %s\n", cases[i].in);
        char *y = canon("yaml", doc, hex);
        CHECK_STR(y, want);
        free(y);
    }

    /* Pseudo-random doubles of every magnitude: the text reads back as the
     * same double, and one digit fewer would not. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    int checked = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof(v));
        if (!isfinite(v) || v == trunc(v))
            continue;
        char doc[64], hex[65];
        snprintf(doc, sizeof(doc), "[%.17g]", v);
        char *j = canon("json", doc, hex);
        if (!j) {
            CHECK(j != NULL);
            break;
        }
        size_t len = strlen(j);
        CHECK(len > 2 && j[0] == '[' && j[len - 1] == ']');
        j[len - 1] = '\0';
        char *end;
        double back = strtod(j + 1, &end);
        if (back != v || *end != '\0') {
            CHECK_STR(j + 1, doc);
            free(j);
            break;
        }
        int digits = 0;
        for (const char *p = j + 1; *p && *p != 'e'; p++)
            digits += *p >= '0' && *p <= '9';
        /* "0.001" counts its leading zeros; %.Ng counts significant ones. */
        for (const char *p = j + 1; *p == '-' || *p == '0' || *p == '.'; p++)
            digits -= *p == '0';
        if (digits > 1) {
            char shorter[400];   /* %g of a double never needs more */
            snprintf(shorter, sizeof(shorter), "%.*g", digits - 1, v);
            if (strtod(shorter, NULL) == v) {
                CHECK_STR(j + 1, shorter);
                free(j);
                break;
            }
        }
        free(j);
        checked++;
    }
    CHECK(checked > 10000);
}

static const char *const doc_yaml =
    "# the quick start, reordered and restyled\n"
    "routes:\n"
    "  - action: {upstream: app}\n"
    "    match:\n"
    "      path: '/{*rest}'\n"
    "    name: root\n"
    "listeners:\n"
    "  - bind: 127.0.0.1:8080\n"
    "    kind: \"http\"\n"
    "    name: http\n"
    "upstreams:\n"
    "  - name: app\n"
    "    discovery:\n"
    "      endpoints:\n"
    "        - address: \"127.0.0.1:3000\"\n"
    "          weight: 2\n"
    "      type: static\n"
    "    timeouts: {connect: 1s}\n";

static const char *const doc_json =
    "{\"listeners\":[{\"name\":\"http\",\"kind\":\"http\",\"bind\":\"127.0.0.1:8080\"}],\n"
    " \"upstreams\": [ { \"name\": \"app\", \"timeouts\": {\"connect\": \"1s\"},\n"
    "   \"discovery\": {\"type\": \"static\", \"endpoints\": [{\"weight\": 2.0,\n"
    "   \"address\": \"127.0.0.1:3000\"}]}}],\n"
    " \"routes\": [{\"name\": \"root\", \"match\": {\"path\": \"/{*rest}\"},\n"
    "              \"action\": {\"upstream\": \"app\"}}]}\n";

static void test_yaml_json_same_fingerprint(void)
{
    struct arc_config *y = must_load("yaml", doc_yaml);
    struct arc_config *j = must_load("json", doc_json);
    CHECK(y && j);
    if (y && j) {
        CHECK_STR(y->canonical_json, j->canonical_json);
        CHECK_STR(y->fingerprint, j->fingerprint);
        CHECK_INT(strlen(y->fingerprint), 64);
        CHECK_INT(y->upstreams[0].endpoints[0].weight, 2);
        CHECK_INT(j->upstreams[0].endpoints[0].weight, 2);
        CHECK_STR(y->canonical_json,
                  "{\"listeners\":[{\"bind\":\"127.0.0.1:8080\",\"kind\":\"http\",\"name\":\"http\"}],"
                  "\"routes\":[{\"action\":{\"upstream\":\"app\"},\"match\":{\"path\":\"/{*rest}\"},"
                  "\"name\":\"root\"}],\"upstreams\":[{\"discovery\":{\"endpoints\":[{\"address\":"
                  "\"127.0.0.1:3000\",\"weight\":2}],\"type\":\"static\"},\"name\":\"app\","
                  "\"timeouts\":{\"connect\":\"1s\"}}]}");
    }
    arc_config_free(y);
    arc_config_free(j);
}

static void test_changes_change_fingerprint(void)
{
    char h1[65], h2[65];
    char *a, *b;
    struct { const char *x, *y; } cases[] = {
        { "a: 1\n", "a: 2\n" },
        { "a: 1\n", "a: \"1\"\n" },            /* type matters */
        { "a: true\n", "a: \"true\"\n" },
        { "a: [1, 2]\n", "a: [2, 1]\n" },      /* list order matters */
        { "a: 30s\n", "a: 30000ms\n" },        /* values are not normalised */
        { "a: 1\n", "a: 1\nb: ~\n" },          /* null is not absence */
        { "a: x\n", "A: x\n" },                /* keys are case-sensitive */
    };
    for (size_t i = 0; i < ARC_ARRAY_LEN(cases); i++) {
        a = canon("yaml", cases[i].x, h1);
        b = canon("yaml", cases[i].y, h2);
        CHECK(strcmp(a, b) != 0);
        CHECK(strcmp(h1, h2) != 0);
        free(a);
        free(b);
    }
}

static void test_key_order_whitespace(void)
{
    char h1[65], h2[65], h3[65];
    char *a = canon("yaml", "z: 1\ny: {b: 2, a: [x, {d: 1, c: 2}]}\n", h1);
    char *b = canon("yaml", "y:\n    a:\n        - \"x\"\n        - c: 2\n          d: 1\n"
                            "    b: 2\nz:    1   # trailing comment\n", h2);
    char *c = canon("json", "\r\n{\"y\":{\"a\":[\"x\",{\"c\":2,\"d\":1}],\"b\":2},\t\"z\":1}\r\n", h3);
    CHECK_STR(a, b);
    CHECK_STR(a, c);
    CHECK_STR(h1, h2);
    CHECK_STR(h1, h3);
    free(a);
    free(b);
    free(c);
}

static void test_load_sets_fingerprint(void)
{
    /* A load's fingerprint is that of its canonical text, and the text is
     * the document as written (no defaults filled in). */
    struct arc_config *cfg = must_load("yaml", MINI_YAML);
    char hex[65];
    char *s = canon("yaml", MINI_YAML, hex);
    if (cfg) {
        CHECK_STR(cfg->canonical_json, s);
        CHECK_STR(cfg->fingerprint, hex);
        CHECK(strstr(cfg->canonical_json, "backlog") == NULL);
    }
    free(s);
    arc_config_free(cfg);
}

int main(void)
{
    RUN(test_exact_text);
    RUN(test_numbers_by_value);
    RUN(test_numbers_shortest_round_trip);
    RUN(test_yaml_json_same_fingerprint);
    RUN(test_changes_change_fingerprint);
    RUN(test_key_order_whitespace);
    RUN(test_load_sets_fingerprint);
    return TEST_REPORT();
}
