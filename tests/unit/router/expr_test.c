/* Proves the match-expression parser accepts the grammar of router.h with
 * the right precedence and associativity (checked by evaluating the parsed
 * nodes over every assignment of the matchers), rejects malformed text with
 * the byte offset of the offending character and a message that says what
 * was expected, and that the satisfiability search used for ambiguity knows
 * when two routes' matchers can and cannot hold together. */
#include "test.h"
#include "router/router_int.h"

static const char *const IDS[] = { "a", "b", "c", "is-beta", "_x1", NULL, "d" };
#define NIDS ARC_ARRAY_LEN(IDS)

static struct arc_rt__xnode g_nodes[ARC_RT__XNODES(ARC_RT_MAX_EXPR)];
static size_t g_n;
static char g_err[256];
static size_t g_off;

static int parse(const char *s, uint64_t *used)
{
    g_err[0] = '\0';
    g_off = 9999;
    return arc_rt__expr_parse(s, IDS, NIDS, g_nodes, &g_n, used, g_err, sizeof(g_err), &g_off);
}

static bool eval(uint16_t i, uint32_t assign)
{
    const struct arc_rt__xnode *n = &g_nodes[i];
    switch (n->op) {
    case ARC_RT__X_PRED:
        return (assign >> n->pred) & 1;
    case ARC_RT__X_NOT:
        return !eval(n->a, assign);
    case ARC_RT__X_AND:
        for (uint16_t k = n->a; k != ARC_RT__XNONE; k = g_nodes[k].next)
            if (!eval(k, assign))
                return false;
        return true;
    default:
        for (uint16_t k = n->a; k != ARC_RT__XNONE; k = g_nodes[k].next)
            if (eval(k, assign))
                return true;
        return false;
    }
}

typedef bool (*ref_fn)(bool a, bool b, bool c, bool d);

/* Parses `s` and compares it with `ref` on all 16 assignments of a,b,c,d. */
static void check_valid(const char *s, ref_fn ref, uint64_t want_used, int line)
{
    uint64_t used = 0;
    t_checks++;
    if (parse(s, &used) != 0) {
        t_failures++;
        fprintf(stderr, "%s:%d: '%s' rejected: %s (offset %zu)\n", __FILE__, line, s, g_err, g_off);
        return;
    }
    for (uint32_t v = 0; v < 16; v++) {
        bool a = v & 1, b = v & 2, c = v & 4, d = v & 8;
        uint32_t assign = (uint32_t)a | (uint32_t)b << 1 | (uint32_t)c << 2 | (uint32_t)d << 6;
        if (eval((uint16_t)(g_n - 1), assign) != ref(a, b, c, d)) {
            t_failures++;
            fprintf(stderr, "%s:%d: '%s' wrong for a=%d b=%d c=%d d=%d\n", __FILE__, line, s,
                    a, b, c, d);
            return;
        }
    }
    if (used != want_used) {
        t_failures++;
        fprintf(stderr, "%s:%d: '%s' used %#llx, want %#llx\n", __FILE__, line, s,
                (unsigned long long)used, (unsigned long long)want_used);
    }
}
static bool r_a(bool a, bool b, bool c, bool d) { (void)b; (void)c; (void)d; return a; }
static bool r_and(bool a, bool b, bool c, bool d) { (void)c; (void)d; return a && b; }
static bool r_or(bool a, bool b, bool c, bool d) { (void)c; (void)d; return a || b; }
static bool r_not(bool a, bool b, bool c, bool d) { (void)b; (void)c; (void)d; return !a; }
static bool r_prec1(bool a, bool b, bool c, bool d) { (void)d; return a || (b && c); }
static bool r_prec2(bool a, bool b, bool c, bool d) { (void)d; return (a && b) || c; }
static bool r_paren(bool a, bool b, bool c, bool d) { (void)d; return (a || b) && c; }
static bool r_notprec(bool a, bool b, bool c, bool d) { (void)c; (void)d; return !a && b; }
static bool r_notparen(bool a, bool b, bool c, bool d) { (void)c; (void)d; return !(a && b); }
static bool r_chain(bool a, bool b, bool c, bool d) { return a && b && c && d; }
static bool r_mixed(bool a, bool b, bool c, bool d) { return (a && !b) || (c && !(d || a)); }
static bool r_dnot(bool a, bool b, bool c, bool d) { (void)b; (void)c; (void)d; return !!a; }
static bool r_repeat(bool a, bool b, bool c, bool d) { (void)c; (void)d; return a && (b || a); }

static void test_valid_expressions(void)
{
    check_valid("a", r_a, 1, __LINE__);
    check_valid("  a\t\n", r_a, 1, __LINE__);
    check_valid("a and b", r_and, 3, __LINE__);
    check_valid("a or b", r_or, 3, __LINE__);
    check_valid("not a", r_not, 1, __LINE__);
    check_valid("a or b and c", r_prec1, 7, __LINE__);        /* and binds tighter */
    check_valid("a and b or c", r_prec2, 7, __LINE__);
    check_valid("(a or b) and c", r_paren, 7, __LINE__);
    check_valid("not a and b", r_notprec, 3, __LINE__);       /* not binds tightest */
    check_valid("not (a and b)", r_notparen, 3, __LINE__);
    check_valid("a and b and c and d", r_chain, 0x47, __LINE__);
    check_valid("(a and not b) or (c and not (d or a))", r_mixed, 0x47, __LINE__);
    check_valid("not not a", r_dnot, 1, __LINE__);
    check_valid("((a))", r_a, 1, __LINE__);
    check_valid("a and (b or a)", r_repeat, 3, __LINE__);
    check_valid("a and(b)or(b)and a", r_and, 3, __LINE__);   /* no spaces needed around ( ) */

    /* ids with '-' and '_', and the id table's gaps */
    uint64_t used = 0;
    CHECK_INT(parse("is-beta or _x1", &used), 0);
    CHECK_INT(used, 0x18);
    /* a long chain stays one node, so depth does not grow with length */
    static char chain[ARC_RT_MAX_EXPR + 8];
    size_t o = 0;
    while (o + 6 < ARC_RT_MAX_EXPR) {
        memcpy(chain + o, "a and ", 6);
        o += 6;
    }
    memcpy(chain + o, "b", 2);
    CHECK_INT(parse(chain, &used), 0);
    CHECK_INT(g_nodes[g_n - 1].op, ARC_RT__X_AND);
    /* 31 levels of nesting is fine */
    char deep[256] = "";
    for (int i = 0; i < ARC_RT_MAX_EXPR_DEPTH - 1; i++)
        strcat(deep, "(");
    strcat(deep, "a");
    for (int i = 0; i < ARC_RT_MAX_EXPR_DEPTH - 1; i++)
        strcat(deep, ")");
    CHECK_INT(parse(deep, &used), 0);
}

static void check_bad(const char *s, size_t off, const char *msg, int line)
{
    uint64_t used;
    t_checks++;
    int rc = parse(s, &used);
    if (rc != -1 || g_off != off || !strstr(g_err, msg)) {
        t_failures++;
        fprintf(stderr, "%s:%d: '%s': rc %d, offset %zu, error '%s'; want offset %zu and '%s'\n",
                __FILE__, line, s, rc, g_off, g_err, off, msg);
    }
    /* the public check says the same */
    char e2[256];
    size_t o2 = 0;
    t_checks++;
    if (arc_rt_check_expr(s, IDS, NIDS, &used, e2, sizeof(e2), &o2) != -1 || o2 != off ||
        strcmp(e2, g_err) != 0) {
        t_failures++;
        fprintf(stderr, "%s:%d: arc_rt_check_expr('%s') disagrees: %zu '%s'\n", __FILE__, line,
                s, o2, e2);
    }
}
#define BAD(s, off, msg) check_bad(s, off, msg, __LINE__)

static void test_invalid_expressions(void)
{
    BAD("", 0, "empty expression");
    BAD("   ", 3, "empty expression");
    BAD("a and", 5, "expected a matcher id, 'not' or '(' but found the end of the expression");
    BAD("a or or b", 5, "expected a matcher id, 'not' or '(' but found 'or'");
    BAD("and a", 0, "but found 'and'");
    BAD("a b", 2, "expected 'and', 'or' or the end of the expression but found 'b'");
    BAD("(a or b", 0, "'(' is never closed");
    BAD("a and (b or (c)", 6, "'(' is never closed");
    BAD("a)", 1, "')' without a matching '('");
    BAD("(a b)", 3, "expected 'and', 'or' or ')' but found 'b'");
    BAD("()", 1, "expected a matcher id, 'not' or '(' but found ')'");
    BAD("not", 3, "but found the end of the expression");
    BAD("a and zz", 6, "unknown matcher 'zz'");
    BAD("a and A", 6, "unknown matcher 'A'");             /* ids are case-sensitive */
    BAD("a AND b", 2, "operators are lower-case: write 'and'");
    BAD("NOT a", 0, "operators are lower-case: write 'not'");
    BAD("a && b", 2, "'&&' is not an operator here: write 'and'");
    BAD("a || b", 2, "'||' is not an operator here: write 'or'");
    BAD("!a", 0, "'!' is not an operator here: write 'not'");
    BAD("a & b", 2, "'&' is not an operator here");
    BAD("a and 1b", 6, "cannot start with a digit");
    BAD("a = b", 2, "unexpected '='");
    BAD("a and \xc3\xa9", 6, "unexpected byte 0xc3");
    BAD("(a and b) c", 10, "but found 'c'");
    BAD("(a or b))", 8, "')' without a matching '('");
    BAD("(a or b) =", 9, "unexpected '='");
    BAD("(a ! b)", 3, "'!' is not an operator here");

    char deep[256] = "";
    for (int i = 0; i < ARC_RT_MAX_EXPR_DEPTH + 1; i++)
        strcat(deep, "(");
    strcat(deep, "a");
    BAD(deep, ARC_RT_MAX_EXPR_DEPTH, "nested more than 32 levels deep");
    char nots[256] = "";
    for (int i = 0; i < ARC_RT_MAX_EXPR_DEPTH + 1; i++)
        strcat(nots, "not ");
    strcat(nots, "a");
    BAD(nots, 4 * ARC_RT_MAX_EXPR_DEPTH, "nested more than 32 levels deep");

    static char big[ARC_RT_MAX_EXPR + 4];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    BAD(big, ARC_RT_MAX_EXPR, "longer than 4096 bytes");

    /* no ids at all: every name is unknown */
    char e[128];
    size_t off;
    uint64_t used;
    CHECK_INT(arc_rt_check_expr("a", NULL, 0, &used, e, sizeof(e), &off), -1);
    CHECK(strstr(e, "unknown matcher 'a'") != NULL);
    CHECK_INT(arc_rt_check_expr(NULL, IDS, NIDS, &used, e, sizeof(e), &off), -1);
}

/* ------------------------------------------------------------- satisfiability */

static struct arc_rt__atom g_atoms[8];

/* atoms: 0 = exists(X), 1 = equals(X,"a"), 2 = equals(X,"b"), 3 = exists(Y),
 * 4 = regex(Y), 5 = equals(Z,"1") with Z having no exists atom */
static void atoms_init(void)
{
    static const struct { uint8_t op; uint32_t field; } a[] = {
        { ARC_RT_EXISTS, 0 }, { ARC_RT_EQUALS, 0 }, { ARC_RT_EQUALS, 0 },
        { ARC_RT_EXISTS, 1 }, { ARC_RT_REGEX, 1 }, { ARC_RT_EQUALS, 2 },
    };
    for (size_t i = 0; i < ARC_ARRAY_LEN(a); i++)
        g_atoms[i] = (struct arc_rt__atom){ .source = ARC_RT_HEADER, .op = a[i].op,
                                            .field = a[i].field };
}

/* Formula from an expression over ids p0..p7 mapped to `atoms`. */
struct fbuf {
    struct arc_rt__xnode nodes[64];
    uint32_t atoms[8];
    struct arc_rt__formula f;
};

static const struct arc_rt__formula *formula(struct fbuf *fb, const char *expr,
                                             const uint32_t *atoms, size_t n)
{
    static const char *const pid[] = { "p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7" };
    memcpy(fb->atoms, atoms, n * sizeof(*atoms));
    fb->f = (struct arc_rt__formula){ .atoms = fb->atoms, .n = n };
    if (expr) {
        size_t nx = 0, off;
        char e[128];
        uint64_t used;
        if (arc_rt__expr_parse(expr, pid, n, fb->nodes, &nx, &used, e, sizeof(e), &off) != 0) {
            fprintf(stderr, "bad test expr '%s': %s\n", expr, e);
            t_failures++;
        }
        fb->f.x = fb->nodes;
        fb->f.nx = nx;
    }
    return &fb->f;
}

static void test_satisfiable(void)
{
    atoms_init();
    struct fbuf A, B;
    /* all-of with no expression */
    CHECK_INT(arc_rt__satisfiable(formula(&A, NULL, (uint32_t[]){ 1 }, 1),
                                  formula(&B, NULL, (uint32_t[]){ 2 }, 1), g_atoms), 1);
    /* equals a and equals b on one header can both hold (two field lines) */
    CHECK_INT(arc_rt__satisfiable(formula(&A, "p0 and p1", (uint32_t[]){ 1, 2 }, 2), NULL,
                                  g_atoms), 1);
    /* a matcher and its negation */
    CHECK_INT(arc_rt__satisfiable(formula(&A, "p0", (uint32_t[]){ 1 }, 1),
                                  formula(&B, "not p0", (uint32_t[]){ 1 }, 1), g_atoms), 0);
    CHECK_INT(arc_rt__satisfiable(formula(&A, "p0 and not p0", (uint32_t[]){ 4 }, 1), NULL,
                                  g_atoms), 0);
    /* any test of X implies exists(X) */
    CHECK_INT(arc_rt__satisfiable(formula(&A, NULL, (uint32_t[]){ 1 }, 1),
                                  formula(&B, "not p0", (uint32_t[]){ 0 }, 1), g_atoms), 0);
    CHECK_INT(arc_rt__satisfiable(formula(&A, "p0 and not p1", (uint32_t[]){ 2, 0 }, 2), NULL,
                                  g_atoms), 0);
    /* ... but not the converse: exists(X) does not imply equals(X,a) */
    CHECK_INT(arc_rt__satisfiable(formula(&A, NULL, (uint32_t[]){ 0 }, 1),
                                  formula(&B, "not p0", (uint32_t[]){ 1 }, 1), g_atoms), 1);
    /* different fields are independent */
    CHECK_INT(arc_rt__satisfiable(formula(&A, "p0 and not p1", (uint32_t[]){ 4, 0 }, 2), NULL,
                                  g_atoms), 1);
    CHECK_INT(arc_rt__satisfiable(formula(&A, "not p0", (uint32_t[]){ 3 }, 1),
                                  formula(&B, NULL, (uint32_t[]){ 4 }, 1), g_atoms), 0);
    /* case splits: (a or b) vs (not a and not b) never; vs (not a) yes */
    CHECK_INT(arc_rt__satisfiable(formula(&A, "p0 or p1", (uint32_t[]){ 1, 5 }, 2),
                                  formula(&B, "not p0 and not p1", (uint32_t[]){ 1, 5 }, 2),
                                  g_atoms), 0);
    CHECK_INT(arc_rt__satisfiable(formula(&A, "p0 or p1", (uint32_t[]){ 1, 5 }, 2),
                                  formula(&B, "not p0", (uint32_t[]){ 1 }, 1), g_atoms), 1);
    /* exclusive via exists: (not exists X) vs (X = a or X = b) */
    CHECK_INT(arc_rt__satisfiable(formula(&A, "not p0", (uint32_t[]){ 0 }, 1),
                                  formula(&B, "p0 or p1", (uint32_t[]){ 1, 2 }, 2), g_atoms), 0);
    /* a tautology is satisfiable with anything satisfiable */
    CHECK_INT(arc_rt__satisfiable(formula(&A, "p0 or not p0", (uint32_t[]){ 4 }, 1),
                                  formula(&B, "not p0", (uint32_t[]){ 3 }, 1), g_atoms), 1);
}

int main(void)
{
    RUN(test_valid_expressions);
    RUN(test_invalid_expressions);
    RUN(test_satisfiable);
    return TEST_REPORT();
}
