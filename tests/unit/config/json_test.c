/* Proves the JSON reader is strict RFC 8259, decodes strings exactly
 * (escapes, surrogate pairs, UTF-8 validation), types numbers like the YAML
 * reader, and puts every node and every error at the right line:col. */
#include "config_test.h"
#include "config/tree_int.h"

struct rd {
    struct arc_ctree t;
    struct arc_config_errors e;
    struct arc_conf_diag d;
    int rc;
};

static void rd_json_n(struct rd *r, const char *text, size_t len)
{
    memset(r, 0, sizeof(*r));
    arc_config__diag_init(&r->d, &r->e, "t.json");
    r->rc = arc_config__read_json(text, len, &r->t, &r->d);
    arc_config__diag_finish(&r->d);
}

static void rd_json(struct rd *r, const char *text)
{
    rd_json_n(r, text, strlen(text));
}

static void rd_done(struct rd *r)
{
    arc_config__tree_free(&r->t);
    arc_config_errors_dispose(&r->e);
}

static const struct arc_cn *at(const struct arc_cn *map, const char *key)
{
    const struct arc_cn *n = arc_config__get(map, key);
    if (!n)
        fprintf(stderr, "missing key %s\n", key);
    return n;
}

static void test_values(void)
{
    struct rd r;
    rd_json(&r, "{\"i\": 8080, \"n\": -0, \"big\": 9223372036854775807, \"f\": 1.5,"
                " \"e\": 1E3, \"t\": true, \"fa\": false, \"nu\": null, \"s\": \"8080\","
                " \"a\": [], \"o\": {}}");
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.e.n, 0);
    const struct arc_cn *root = r.t.root;
    CHECK_INT(at(root, "i")->kind, ARC_CN_INT);
    CHECK_INT(at(root, "i")->v.i, 8080);
    CHECK_INT(at(root, "n")->v.i, 0);
    CHECK(at(root, "big")->v.i == INT64_MAX);
    CHECK_INT(at(root, "f")->kind, ARC_CN_FLOAT);
    CHECK(at(root, "f")->v.f == 1.5);
    CHECK_INT(at(root, "e")->kind, ARC_CN_FLOAT);
    CHECK(at(root, "e")->v.f == 1000.0);
    CHECK(at(root, "t")->v.b);
    CHECK_INT(at(root, "fa")->kind, ARC_CN_BOOL);
    CHECK_INT(at(root, "nu")->kind, ARC_CN_NULL);
    CHECK_INT(at(root, "s")->kind, ARC_CN_STR);
    CHECK_INT(at(root, "a")->kind, ARC_CN_SEQ);
    CHECK_INT(at(root, "a")->n, 0);
    CHECK_INT(at(root, "o")->kind, ARC_CN_MAP);
    rd_done(&r);
}

static void test_strings(void)
{
    struct rd r;
    rd_json(&r, "{\"esc\": \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\","
                " \"u\": \"\\u00e9\\u20AC\","
                " \"pair\": \"\\ud83d\\ude00\","
                " \"raw\": \"h\xc3\xa9\xf0\x9f\x98\x80\","
                " \"nul\": \"a\\u0000b\"}");
    CHECK_INT(r.rc, 0);
    const struct arc_cn *root = r.t.root;
    CHECK_STR(at(root, "esc")->v.s.p, "a\"b\\c/d\b\f\n\r\t");
    CHECK_STR(at(root, "u")->v.s.p, "\xc3\xa9\xe2\x82\xac");
    CHECK_STR(at(root, "pair")->v.s.p, "\xf0\x9f\x98\x80");
    CHECK_STR(at(root, "raw")->v.s.p, "h\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_INT(at(root, "nul")->v.s.len, 3);
    CHECK(memcmp(at(root, "nul")->v.s.p, "a\0b", 3) == 0);
    rd_done(&r);
}

static void test_positions(void)
{
    struct rd r;
    rd_json(&r,
            "{\n"
            "  \"listeners\": [\n"
            "    {\"name\": \"http\",\n"
            "     \"bind\":   \"1.2.3.4:80\"}\n"
            "  ],\n"
            "  \"\xc3\xa9\": [\"\xc3\xa9\", 2]\n"
            "}\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.t.root->line, 1);
    CHECK_INT(r.t.root->col, 1);
    const struct arc_cn *l = at(r.t.root, "listeners");
    CHECK_INT(l->key_line, 2);
    CHECK_INT(l->key_col, 3);
    CHECK_INT(l->line, 2);
    CHECK_INT(l->col, 16);
    const struct arc_cn *item = l->first;
    CHECK_INT(item->line, 3);
    CHECK_INT(item->col, 5);
    const struct arc_cn *bind = at(item, "bind");
    CHECK_INT(bind->key_line, 4);
    CHECK_INT(bind->key_col, 6);
    CHECK_INT(bind->line, 4);
    CHECK_INT(bind->col, 16);
    /* columns count characters, like libyaml */
    const struct arc_cn *e = at(r.t.root, "\xc3\xa9");
    CHECK_INT(e->col, 8);
    CHECK_INT(e->first->next->col, 14);
    rd_done(&r);
}

/* One syntax error: exactly one message, at line:col, containing sub. */
static void syntax_case(const char *text, int line, int col, const char *sub)
{
    struct rd r;
    rd_json(&r, text);
    CHECK_INT(r.rc, -1);
    CHECK(r.t.root == NULL);
    CHECK_INT(r.e.n, 1);
    CHECK_ERR(&r.e, line, col, sub);
    rd_done(&r);
}

static void test_syntax_errors(void)
{
    syntax_case("{\"a\": 1,\n \"b\": 2,\n}", 3, 1, "expected a string key, found '}'");
    syntax_case("{\"a\": 1\n \"b\": 2}", 2, 2, "expected ',' or '}', found '\"'");
    syntax_case("[1, 2", 1, 6, "expected ',' or ']', found end of input");
    syntax_case("{\"a\" 1}", 1, 6, "expected ':' after key");
    syntax_case("{\"a\": tru}", 1, 7, "expected a value");
    syntax_case("{\"a\": 01}", 1, 7, "leading zeros");
    syntax_case("{\"a\": 1.}", 1, 9, "a digit after '.'");
    syntax_case("{\"a\": -}", 1, 8, "expected a digit");
    syntax_case("{\"a\": NaN}", 1, 7, "expected a value");
    syntax_case("{\"a\": 'x'}", 1, 7, "expected a value");
    syntax_case("{\"a\": \"x}", 1, 7, "unterminated string");
    syntax_case("{\"a\": \"x\ty\"}", 1, 9, "control character 0x09");
    syntax_case("{\"a\": \"\\q\"}", 1, 8, "unknown escape '\\q'");
    syntax_case("{\"a\": \"\\u12\"}", 1, 8, "bad \\u escape");
    syntax_case("{\"a\": \"\\ud83d\"}", 1, 8, "high surrogate without low");
    syntax_case("{\"a\": \"\\ude00\"}", 1, 8, "lone low surrogate");
    syntax_case("{\"a\": \"\xc3\x28\"}", 1, 8, "invalid UTF-8");
    syntax_case("{\"a\": \"\xed\xa0\x80\"}", 1, 8, "invalid UTF-8"); /* encoded surrogate */
    syntax_case("{\"a\": \"\xc0\xaf\"}", 1, 8, "invalid UTF-8");     /* overlong */
    syntax_case("{}\n{}", 2, 1, "unexpected '{' after the document");
    syntax_case("{} // comment", 1, 4, "unexpected '/'");
    syntax_case("{\"a\": 99999999999999999999}", 1, 7, "out of range");
    syntax_case("{\"a\": 1e999}", 1, 7, "out of range");
    syntax_case("{\"a\\u0000\": 1}", 1, 2, "key contains a NUL");
    syntax_case("\n\n   x", 3, 4, "expected a value, found 'x'");
}

static void test_duplicates_and_depth(void)
{
    struct rd r;
    rd_json(&r, "{\"a\": 1,\n \"b\": {\"x\": 1, \"x\": 2},\n \"a\": 3}");
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.e.n, 2);
    CHECK_ERR(&r.e, 2, 16, "duplicate key 'x' (first defined at line 2)");
    CHECK_ERR(&r.e, 3, 2, "duplicate key 'a' (first defined at line 1)");
    CHECK_INT(at(r.t.root, "a")->v.i, 1);
    rd_done(&r);

    /* an escaped key equal to a plain one is a duplicate */
    rd_json(&r, "{\"ab\": 1, \"\\u0061b\": 2}");
    CHECK_INT(r.e.n, 1);
    CHECK_ERR(&r.e, 1, 11, "duplicate key 'ab'");
    rd_done(&r);

    char deep[400];
    size_t o = 0;
    for (int i = 0; i < 100; i++)
        deep[o++] = '[';
    for (int i = 0; i < 100; i++)
        deep[o++] = ']';
    deep[o] = '\0';
    /* exactly 64 levels is fine (the same limit in both readers) */
    char ok64[160];
    memset(ok64, '[', 64);
    memset(ok64 + 64, ']', 64);
    ok64[128] = '\0';
    rd_json(&r, ok64);
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.e.n, 0);
    rd_done(&r);
    rd_json(&r, deep);
    CHECK_INT(r.rc, -1);
    CHECK_ERR(&r.e, 1, 65, "nesting deeper than 64");
    rd_done(&r);
}

static void test_bom_and_empty(void)
{
    struct rd r;
    rd_json(&r, "\xef\xbb\xbf{\"a\": 1}");
    CHECK_INT(r.rc, 0);
    CHECK_INT(at(r.t.root, "a")->v.i, 1);
    rd_done(&r);
    rd_json(&r, "  \n ");
    CHECK_INT(r.rc, 0);
    CHECK(r.t.root == NULL);
    rd_done(&r);
    /* not NUL-terminated input: the reader must stay within len */
    rd_json_n(&r, "{\"a\": 12345}", 9);
    CHECK_INT(r.rc, -1);
    CHECK_ERR(&r.e, 1, 10, "expected ',' or '}', found end of input");
    rd_done(&r);
    rd_json_n(&r, "{\"a\": \"xyz\"}", 9);
    CHECK_INT(r.rc, -1);
    CHECK_ERR(&r.e, 1, 7, "unterminated");
    rd_done(&r);
}

int main(void)
{
    RUN(test_values);
    RUN(test_strings);
    RUN(test_positions);
    RUN(test_syntax_errors);
    RUN(test_duplicates_and_depth);
    RUN(test_bom_and_empty);
    return TEST_REPORT();
}
