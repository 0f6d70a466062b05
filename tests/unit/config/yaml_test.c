/* Proves the YAML reader builds the positioned tree with core-schema scalar
 * resolution, exact line:col for keys and values, and positioned errors for
 * syntax problems and the constructs it refuses (anchors, aliases, several
 * documents, complex keys, duplicate keys, odd tags). */
#include "config_test.h"
#include "config/tree_int.h"

struct rd {
    struct arc_ctree t;
    struct arc_config_errors e;
    struct arc_conf_diag d;
    int rc;
};

static void rd_yaml(struct rd *r, const char *text)
{
    memset(r, 0, sizeof(*r));
    arc_config__diag_init(&r->d, &r->e, "t.yaml");
    r->rc = arc_config__read_yaml(text, strlen(text), &r->t, &r->d);
    arc_config__diag_finish(&r->d);
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

static void test_scalars(void)
{
    struct rd r;
    rd_yaml(&r,
            "int: 8080\n"
            "neg: -12\n"
            "hex: 0x1F\n"
            "oct: 0o17\n"
            "lead0: 010\n"
            "quoted: \"8080\"\n"
            "single: 'true'\n"
            "t: true\n"
            "f: False\n"
            "yes: yes\n"
            "n1: null\n"
            "n2: ~\n"
            "n3:\n"
            "fl: 1.5\n"
            "exp: 1e3\n"
            "dot: .5\n"
            "str: 30s\n"
            "tagged: !!str 42\n"
            "nonspec: ! 42\n"
            "lit: |\n"
            "  a\n"
            "  b\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.e.n, 0);
    const struct arc_cn *root = r.t.root;
    CHECK(root && root->kind == ARC_CN_MAP);
    CHECK_INT(at(root, "int")->kind, ARC_CN_INT);
    CHECK_INT(at(root, "int")->v.i, 8080);
    CHECK_INT(at(root, "neg")->v.i, -12);
    CHECK_INT(at(root, "hex")->v.i, 31);
    CHECK_INT(at(root, "oct")->v.i, 15);
    CHECK_INT(at(root, "lead0")->v.i, 10);      /* 1.2 core: decimal, not octal */
    CHECK_INT(at(root, "quoted")->kind, ARC_CN_STR);
    CHECK_STR(at(root, "quoted")->v.s.p, "8080");
    CHECK_INT(at(root, "single")->kind, ARC_CN_STR);
    CHECK_INT(at(root, "t")->kind, ARC_CN_BOOL);
    CHECK(at(root, "t")->v.b);
    CHECK(!at(root, "f")->v.b);
    CHECK_INT(at(root, "yes")->kind, ARC_CN_STR); /* not YAML 1.1's boolean */
    CHECK_INT(at(root, "n1")->kind, ARC_CN_NULL);
    CHECK_INT(at(root, "n2")->kind, ARC_CN_NULL);
    CHECK_INT(at(root, "n3")->kind, ARC_CN_NULL);
    CHECK_INT(at(root, "fl")->kind, ARC_CN_FLOAT);
    CHECK(at(root, "fl")->v.f == 1.5);
    CHECK(at(root, "exp")->v.f == 1000.0);
    CHECK(at(root, "dot")->v.f == 0.5);
    CHECK_STR(at(root, "str")->v.s.p, "30s");
    CHECK_INT(at(root, "tagged")->kind, ARC_CN_STR);
    CHECK_INT(at(root, "nonspec")->kind, ARC_CN_STR);
    CHECK_STR(at(root, "lit")->v.s.p, "a\nb\n");
    rd_done(&r);
}

static void test_positions(void)
{
    struct rd r;
    rd_yaml(&r,
            "# comment\n"
            "listeners:\n"
            "  - name: http\n"
            "    bind:   \"1.2.3.4:80\"\n"
            "flow: {a: 1, b: [x, y]}\n");
    CHECK_INT(r.rc, 0);
    const struct arc_cn *l = at(r.t.root, "listeners");
    CHECK_INT(l->key_line, 2);
    CHECK_INT(l->key_col, 1);
    CHECK_INT(l->kind, ARC_CN_SEQ);
    CHECK_INT(l->line, 3);
    CHECK_INT(l->col, 3);
    const struct arc_cn *item = l->first;
    CHECK_INT(item->kind, ARC_CN_MAP);
    CHECK_INT(item->line, 3);
    CHECK_INT(item->col, 5);
    const struct arc_cn *bind = at(item, "bind");
    CHECK_INT(bind->key_line, 4);
    CHECK_INT(bind->key_col, 5);
    CHECK_INT(bind->line, 4);
    CHECK_INT(bind->col, 13);
    const struct arc_cn *flow = at(r.t.root, "flow");
    CHECK_INT(flow->line, 5);
    CHECK_INT(flow->col, 7);
    const struct arc_cn *b = at(flow, "b");
    CHECK_INT(b->key_col, 14);
    CHECK_INT(b->first->next->line, 5);
    CHECK_INT(b->first->next->col, 21);
    CHECK_STR(b->first->next->v.s.p, "y");
    rd_done(&r);

    /* columns count characters, not bytes (as in the JSON reader) */
    rd_yaml(&r, "k: \"h\xc3\xa9\" \n\xc3\xa9t\xc3\xa9: 1\nx: [\"\xc3\xa9\", 2]\n");
    CHECK_INT(r.rc, 0);
    const struct arc_cn *x = at(r.t.root, "x");
    CHECK_INT(x->first->next->col, 10);
    CHECK_INT(at(r.t.root, "\xc3\xa9t\xc3\xa9")->col, 6);
    rd_done(&r);
}

static void test_syntax_error(void)
{
    struct rd r;
    rd_yaml(&r,
            "listeners:\n"
            "  - name: http\n"
            "    bind: [1, 2\n"
            "routes: x\n");
    CHECK_INT(r.rc, -1);
    CHECK(r.t.root == NULL);
    CHECK_INT(r.e.n, 1);
    CHECK_ERR(&r.e, 4, 7, "YAML syntax error");
    rd_done(&r);

    rd_yaml(&r, "a: 1\n b: 2\n");
    CHECK_INT(r.rc, -1);
    CHECK_ERR(&r.e, 2, 3, "mapping values are not allowed");
    rd_done(&r);

    rd_yaml(&r, "a: \"unterminated\n");
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 1);
    CHECK(r.e.n == 1 && r.e.v[0].line == 2);
    rd_done(&r);

    /* invalid UTF-8: reader error, positioned from the byte offset */
    rd_yaml(&r, "a: 1\nb: \xff\n");
    CHECK_INT(r.rc, -1);
    CHECK_ERR(&r.e, 2, 4, "YAML:");
    rd_done(&r);

    /* a tab used for indentation */
    rd_yaml(&r, "a:\n\tb: 1\n");
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 1);
    CHECK(r.e.n == 1 && r.e.v[0].line == 2);
    rd_done(&r);
}

static void test_refused_constructs(void)
{
    struct rd r;
    rd_yaml(&r,
            "base: &b\n"
            "  x: 1\n"
            "copy: *b\n"
            "more: &c 5\n");
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 3);
    CHECK_ERR(&r.e, 1, 7, "anchors (&b) are not supported");
    CHECK_ERR(&r.e, 3, 7, "aliases (*b) are not supported");
    CHECK_ERR(&r.e, 4, 7, "anchors (&c)");
    rd_done(&r);

    /* an alias in key position is refused like any alias */
    rd_yaml(&r, "a: &x k\n*x : 1\n");
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 2);
    CHECK_ERR(&r.e, 2, 1, "aliases (*x) are not supported");
    rd_done(&r);

    rd_yaml(&r, "a: 1\n---\nb: 2\n");
    CHECK_INT(r.rc, -1);
    CHECK_ERR(&r.e, 2, 1, "only one YAML document");
    rd_done(&r);

    rd_yaml(&r, "? [a, b]\n: 1\n");
    CHECK_INT(r.rc, -1);
    CHECK_ERR(&r.e, 1, 3, "cannot be used as a key");
    rd_done(&r);

    rd_yaml(&r, "a: !custom 1\nb: !!binary aGk=\nc: !!int x\nd: !!set {}\n");
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 4);
    CHECK_ERR(&r.e, 1, 4, "unsupported YAML tag '!custom'");
    CHECK_ERR(&r.e, 2, 4, "unsupported YAML tag '!!binary'");
    CHECK_ERR(&r.e, 3, 4, "'x' is not a valid !!int");
    CHECK_ERR(&r.e, 4, 4, "unsupported YAML tag");
    rd_done(&r);

    rd_yaml(&r, "a: .inf\nb: -.Inf\nc: .nan\nd: 1e999\ne: 9223372036854775808\n"
                "f: -9223372036854775808\n");
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 5);
    CHECK_ERR(&r.e, 1, 4, "cannot be represented");
    CHECK_ERR(&r.e, 2, 4, "cannot be represented");
    CHECK_ERR(&r.e, 3, 4, "cannot be represented");
    CHECK_ERR(&r.e, 4, 4, "cannot be represented");
    CHECK_ERR(&r.e, 5, 4, "out of range");
    rd_done(&r);

    /* deep nesting is refused, not a stack overflow */
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
    rd_yaml(&r, ok64);
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.e.n, 0);
    rd_done(&r);
    rd_yaml(&r, deep);
    CHECK_INT(r.rc, -1);
    CHECK_ERR(&r.e, 1, 65, "nesting deeper than 64");
    rd_done(&r);
}

static void test_duplicate_keys(void)
{
    struct rd r;
    rd_yaml(&r,
            "a: 1\n"
            "b:\n"
            "  x: 1\n"
            "  x: 2\n"
            "a: 3\n");
    /* duplicates are errors but not fatal: the tree is built, first wins */
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.e.n, 2);
    CHECK_ERR(&r.e, 4, 3, "duplicate key 'x' (first defined at line 3)");
    CHECK_ERR(&r.e, 5, 1, "duplicate key 'a' (first defined at line 1)");
    CHECK_INT(at(r.t.root, "a")->v.i, 1);
    rd_done(&r);

    /* keys are compared as text: the int 1 and the string "1" collide */
    rd_yaml(&r, "1: a\n\"1\": b\n");
    CHECK_INT(r.e.n, 1);
    CHECK_ERR(&r.e, 2, 1, "duplicate key '1'");
    rd_done(&r);

    /* large maps take the sorting path */
    char big[4096];
    size_t o = 0;
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, "k%d: %d\n", i % 30, i);
    rd_yaml(&r, big);
    CHECK_INT(r.e.n, 10);
    CHECK_ERR(&r.e, 31, 1, "duplicate key 'k0' (first defined at line 1)");
    CHECK_ERR(&r.e, 40, 1, "duplicate key 'k9' (first defined at line 10)");
    rd_done(&r);
}

static void test_empty(void)
{
    struct rd r;
    rd_yaml(&r, "");
    CHECK_INT(r.rc, 0);
    CHECK(r.t.root == NULL);
    rd_done(&r);
    rd_yaml(&r, "# only a comment\n");
    CHECK_INT(r.rc, 0);
    CHECK(r.t.root == NULL);
    rd_done(&r);
}

int main(void)
{
    RUN(test_scalars);
    RUN(test_positions);
    RUN(test_syntax_error);
    RUN(test_refused_constructs);
    RUN(test_duplicate_keys);
    RUN(test_empty);
    return TEST_REPORT();
}
