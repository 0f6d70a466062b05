/*
 * Match expressions: the parser (text → node array, errors with the byte
 * offset of the offending character) and the satisfiability search the
 * build uses to tell whether two routes' matchers can hold together.
 *
 * Node layout. `a and b and c` is one AND node whose operands are chained
 * through `next`, not a left-deep tree: nesting then grows only with
 * parentheses and `not` (both bounded by ARC_RT_MAX_EXPR_DEPTH), so every
 * recursive walk over an expression has a small fixed depth.
 */
#include "router/router_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

enum tok { T_END, T_LP, T_RP, T_ID, T_AND, T_OR, T_NOT, T_BAD };

struct parser {
    const char *s;
    size_t len, pos;            /* pos: first byte after the current token */
    enum tok tok;
    size_t tpos, tlen;          /* current token */
    const char *const *ids;
    size_t n_ids;
    struct arc_rt__xnode *nodes;
    size_t n;
    uint64_t used;
    char *err;
    size_t errlen;
    size_t *offset;
    bool failed;
};

static int fail(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, size_t at, const char *fmt, ...)
{
    if (p->failed)
        return -1;
    p->failed = true;
    if (p->offset)
        *p->offset = at;
    if (p->err && p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool id_start(unsigned char c)
{
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_';
}

static bool id_char(unsigned char c)
{
    return id_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static bool word_is(const struct parser *p, const char *w)
{
    size_t n = strlen(w);
    return p->tlen == n && memcmp(p->s + p->tpos, w, n) == 0;
}

static void next(struct parser *p)
{
    size_t i = p->pos;
    while (i < p->len && (p->s[i] == ' ' || p->s[i] == '\t' || p->s[i] == '\n' || p->s[i] == '\r'))
        i++;
    p->tpos = i;
    p->tlen = 1;
    if (i == p->len) {
        p->tok = T_END;
        p->tlen = 0;
    } else if (p->s[i] == '(') {
        p->tok = T_LP;
    } else if (p->s[i] == ')') {
        p->tok = T_RP;
    } else if (id_start((unsigned char)p->s[i])) {
        size_t e = i + 1;
        while (e < p->len && id_char((unsigned char)p->s[e]))
            e++;
        p->tlen = e - i;
        p->tok = word_is(p, "and") ? T_AND : word_is(p, "or") ? T_OR
               : word_is(p, "not") ? T_NOT : T_ID;
    } else {
        p->tok = T_BAD;
    }
    p->pos = p->tpos + p->tlen;
}

/* "')'", "'and'", "'x'", "the end of the expression" for messages. */
static const char *tok_text(const struct parser *p, char *buf, size_t len)
{
    if (p->tok == T_END)
        return "the end of the expression";
    unsigned char c = (unsigned char)p->s[p->tpos];
    if (p->tok == T_BAD && (c < 0x20 || c >= 0x7f))
        snprintf(buf, len, "byte 0x%02x", c);
    else
        snprintf(buf, len, "'%.*s'", (int)ARC_MIN(p->tlen, (size_t)40), p->s + p->tpos);
    return buf;
}

/* A character that is not part of the language: say what was meant when
 * it is another language's operator. */
static int bad_char(struct parser *p)
{
    char c = p->s[p->tpos];
    char c2 = p->tpos + 1 < p->len ? p->s[p->tpos + 1] : '\0';
    if (c == '&')
        return fail(p, p->tpos, "'%s' is not an operator here: write 'and'", c2 == '&' ? "&&" : "&");
    if (c == '|')
        return fail(p, p->tpos, "'%s' is not an operator here: write 'or'", c2 == '|' ? "||" : "|");
    if (c == '!')
        return fail(p, p->tpos, "'!' is not an operator here: write 'not'");
    if (c >= '0' && c <= '9')
        return fail(p, p->tpos, "a matcher id cannot start with a digit");
    char b[48];
    return fail(p, p->tpos, "unexpected %s", tok_text(p, b, sizeof(b)));
}

/* "and"/"or"/"not" if the current token is one of them in another case
 * ("AND"), else NULL. */
static const char *miscased_keyword(const struct parser *p)
{
    static const char *const kw[] = { "and", "or", "not" };
    if (p->tok != T_ID)
        return NULL;
    for (size_t i = 0; i < ARC_ARRAY_LEN(kw); i++)
        if (p->tlen == strlen(kw[i]) && strncasecmp(p->s + p->tpos, kw[i], p->tlen) == 0)
            return kw[i];
    return NULL;
}

/* Error for a token where an operator, ')' or the end was expected. */
static int not_an_operator(struct parser *p, const char *expected)
{
    char b[64];
    const char *kw = miscased_keyword(p);
    if (kw)
        return fail(p, p->tpos, "operators are lower-case: write '%s'", kw);
    if (p->tok == T_BAD)
        return bad_char(p);
    return fail(p, p->tpos, "expected %s but found %s", expected, tok_text(p, b, sizeof(b)));
}

static long add_node(struct parser *p, uint8_t op, uint8_t pred, uint16_t a)
{
    struct arc_rt__xnode *n = &p->nodes[p->n];
    *n = (struct arc_rt__xnode){ .op = op, .pred = pred, .a = a, .next = ARC_RT__XNONE };
    return (long)p->n++;
}

static long parse_or(struct parser *p, unsigned depth);

static long parse_factor(struct parser *p, unsigned depth)
{
    char b[64];
    if (depth >= ARC_RT_MAX_EXPR_DEPTH)
        return fail(p, p->tpos, "nested more than %d levels deep", ARC_RT_MAX_EXPR_DEPTH);
    switch (p->tok) {
    case T_NOT: {
        next(p);
        long x = parse_factor(p, depth + 1);
        if (x < 0)
            return -1;
        return add_node(p, ARC_RT__X_NOT, 0, (uint16_t)x);
    }
    case T_LP: {
        size_t open = p->tpos;
        next(p);
        long x = parse_or(p, depth + 1);
        if (x < 0)
            return -1;
        if (p->tok == T_END)
            return fail(p, open, "'(' is never closed");
        if (p->tok != T_RP)
            return p->tok == T_BAD ? bad_char(p) : not_an_operator(p, "'and', 'or' or ')'");
        next(p);
        return x;
    }
    case T_ID:
        for (size_t i = 0; i < p->n_ids; i++) {
            const char *id = p->ids[i];
            if (id && strlen(id) == p->tlen && memcmp(id, p->s + p->tpos, p->tlen) == 0) {
                p->used |= 1ull << i;
                next(p);
                return add_node(p, ARC_RT__X_PRED, (uint8_t)i, 0);
            }
        }
        if (miscased_keyword(p))
            return fail(p, p->tpos, "operators are lower-case: write '%s'", miscased_keyword(p));
        return fail(p, p->tpos, "unknown matcher '%.*s' (no header, cookie or query matcher "
                    "of this route has that id)", (int)ARC_MIN(p->tlen, (size_t)64), p->s + p->tpos);
    case T_BAD:
        return bad_char(p);
    default:
        return fail(p, p->tpos, "expected a matcher id, 'not' or '(' but found %s",
                    tok_text(p, b, sizeof(b)));
    }
}

/* One n-ary node for a chain of the same operator (see the file comment). */
static long parse_chain(struct parser *p, unsigned depth, enum tok op_tok, uint8_t op,
                        long (*operand)(struct parser *, unsigned))
{
    long first = operand(p, depth);
    if (first < 0)
        return -1;
    if (p->tok != op_tok)
        return first;
    long last = first;
    while (p->tok == op_tok) {
        next(p);
        long x = operand(p, depth);
        if (x < 0)
            return -1;
        p->nodes[last].next = (uint16_t)x;
        last = x;
    }
    return add_node(p, op, 0, (uint16_t)first);
}

static long parse_and(struct parser *p, unsigned depth)
{
    return parse_chain(p, depth, T_AND, ARC_RT__X_AND, parse_factor);
}

static long parse_or(struct parser *p, unsigned depth)
{
    return parse_chain(p, depth, T_OR, ARC_RT__X_OR, parse_and);
}

int arc_rt__expr_parse(const char *s, const char *const *ids, size_t n_ids,
                       struct arc_rt__xnode *nodes, size_t *n, uint64_t *used,
                       char *err, size_t errlen, size_t *offset)
{
    struct parser p = {
        .s = s, .len = s ? strlen(s) : 0, .ids = ids, .n_ids = ARC_MIN(n_ids, (size_t)ARC_RT_MAX_PREDS),
        .nodes = nodes, .err = err, .errlen = errlen, .offset = offset,
    };
    *n = 0;
    if (used)
        *used = 0;
    if (offset)
        *offset = 0;
    if (p.len > ARC_RT_MAX_EXPR)
        return fail(&p, ARC_RT_MAX_EXPR, "longer than %d bytes", ARC_RT_MAX_EXPR);
    next(&p);
    if (p.tok == T_END)
        return fail(&p, p.tpos, "empty expression");
    long root = parse_or(&p, 0);
    if (root < 0)
        return -1;
    if (p.tok == T_RP)
        return fail(&p, p.tpos, "')' without a matching '('");
    if (p.tok == T_BAD)
        return bad_char(&p);
    if (p.tok != T_END)
        return not_an_operator(&p, "'and', 'or' or the end of the expression");
    *n = p.n;
    if (used)
        *used = p.used;
    return 0;
}

int arc_rt_check_expr(const char *expr, const char *const *ids, size_t n_ids,
                      uint64_t *used, char *err, size_t errlen, size_t *offset)
{
    /* Bounded so that the node array fits on the stack. */
    struct arc_rt__xnode nodes[ARC_RT__XNODES(ARC_RT_MAX_EXPR)];
    size_t n;
    if (!expr) {
        if (err && errlen)
            snprintf(err, errlen, "no expression");
        if (offset)
            *offset = 0;
        return -1;
    }
    if (strlen(expr) > ARC_RT_MAX_EXPR) {
        if (err && errlen)
            snprintf(err, errlen, "longer than %d bytes", ARC_RT_MAX_EXPR);
        if (offset)
            *offset = ARC_RT_MAX_EXPR;
        return -1;
    }
    return arc_rt__expr_parse(expr, ids, n_ids, nodes, &n, used, err, errlen, offset);
}

/* ------------------------------------------------------------- satisfiability */

/* Kleene's three-valued logic over a partial assignment: F and anything is
 * F, T or anything is T, otherwise unknown. A formula that is already T (or
 * F) under the partial assignment stays so under every completion. */

#define MAX_VARS (2 * ARC_RT_MAX_PREDS)
#define SAT_BUDGET 200000

struct sat {
    const struct arc_rt__formula *f[2];
    uint8_t map[2][ARC_RT_MAX_PREDS];   /* matcher index → variable */
    uint32_t atom[MAX_VARS];
    int16_t exists_of[MAX_VARS];        /* variable of the `exists` atom of its field, -1 */
    uint8_t val[MAX_VARS];
    size_t nv;
    long budget;
};

static uint8_t eval3(const struct sat *s, int w, uint16_t i)
{
    const struct arc_rt__formula *f = s->f[w];
    const struct arc_rt__xnode *n = &f->x[i];
    uint8_t r;
    switch (n->op) {
    case ARC_RT__X_PRED:
        return s->val[s->map[w][n->pred]];
    case ARC_RT__X_NOT:
        r = eval3(s, w, n->a);
        return r == ARC_RT__U ? r : (uint8_t)!r;
    case ARC_RT__X_AND:
        r = ARC_RT__T;
        for (uint16_t k = n->a; k != ARC_RT__XNONE; k = f->x[k].next) {
            uint8_t v = eval3(s, w, k);
            if (v == ARC_RT__F)
                return v;
            if (v == ARC_RT__U)
                r = v;
        }
        return r;
    default:
        r = ARC_RT__F;
        for (uint16_t k = n->a; k != ARC_RT__XNONE; k = f->x[k].next) {
            uint8_t v = eval3(s, w, k);
            if (v == ARC_RT__T)
                return v;
            if (v == ARC_RT__U)
                r = v;
        }
        return r;
    }
}

static uint8_t eval_formula(const struct sat *s, int w)
{
    const struct arc_rt__formula *f = s->f[w];
    if (!f)
        return ARC_RT__T;
    if (f->x)
        return eval3(s, w, (uint16_t)(f->nx - 1));
    uint8_t r = ARC_RT__T;
    for (size_t i = 0; i < f->n; i++) {
        uint8_t v = s->val[s->map[w][i]];
        if (v == ARC_RT__F)
            return v;
        if (v == ARC_RT__U)
            r = v;
    }
    return r;
}

/* No atom holds while its field's `exists` is false. */
static bool consistent(const struct sat *s)
{
    for (size_t v = 0; v < s->nv; v++)
        if (s->val[v] == ARC_RT__T && s->exists_of[v] >= 0 &&
            s->val[s->exists_of[v]] == ARC_RT__F)
            return false;
    return true;
}

static int search(struct sat *s)
{
    if (--s->budget < 0)
        return 1;
    uint8_t a = eval_formula(s, 0), b = eval_formula(s, 1);
    if (a == ARC_RT__F || b == ARC_RT__F || !consistent(s))
        return 0;
    /* A consistent partial assignment that makes both true extends to a
     * consistent full one: unset `exists` atoms true, every other false. */
    if (a == ARC_RT__T && b == ARC_RT__T)
        return 1;
    size_t v = 0;
    while (v < s->nv && s->val[v] != ARC_RT__U)
        v++;
    if (v == s->nv)
        return 0;       /* unreachable: an unknown formula has an unset variable */
    for (int b2 = 1; b2 >= 0; b2--) {
        s->val[v] = (uint8_t)b2;
        if (search(s)) {
            s->val[v] = ARC_RT__U;
            return 1;
        }
    }
    s->val[v] = ARC_RT__U;
    return 0;
}

static uint8_t var_of(struct sat *s, uint32_t atom)
{
    for (size_t v = 0; v < s->nv; v++)
        if (s->atom[v] == atom)
            return (uint8_t)v;
    s->atom[s->nv] = atom;
    s->val[s->nv] = ARC_RT__U;
    return (uint8_t)s->nv++;
}

int arc_rt__satisfiable(const struct arc_rt__formula *a, const struct arc_rt__formula *b,
                        const struct arc_rt__atom *atoms)
{
    struct sat s = { .f = { a, b }, .budget = SAT_BUDGET };
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; s.f[w] && i < s.f[w]->n && i < ARC_RT_MAX_PREDS; i++)
            s.map[w][i] = var_of(&s, s.f[w]->atoms[i]);
    for (size_t v = 0; v < s.nv; v++) {
        s.exists_of[v] = -1;
        const struct arc_rt__atom *x = &atoms[s.atom[v]];
        if (x->op == ARC_RT_EXISTS)
            continue;
        for (size_t u = 0; u < s.nv; u++) {
            const struct arc_rt__atom *y = &atoms[s.atom[u]];
            if (y->op == ARC_RT_EXISTS && y->field == x->field)
                s.exists_of[v] = (int16_t)u;
        }
    }
    return search(&s);
}
