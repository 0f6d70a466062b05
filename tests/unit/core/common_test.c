/* Proves the string and number helpers in core/common.c behave the way HTTP needs. */
#include "test.h"
#include "core/common.h"

static void test_ieq(void)
{
    CHECK(arc_str_ieq(ARC_STR_LIT("Content-Length"), "content-length", 14));
    CHECK(!arc_str_ieq(ARC_STR_LIT("Content-Lengt"), "content-length", 14));
    CHECK(!arc_str_ieq(ARC_STR_LIT("X"), "y", 1));
    /* '@' and '`' differ by 0x20 but are not letters: must not compare equal */
    CHECK(!arc_str_ieq(ARC_STR_LIT("@"), "`", 1));
}

static void check_u64(uint64_t v, const char *want)
{
    char buf[24];
    char *end = arc_put_u64(buf, v);
    *end = '\0';
    CHECK_STR(buf, want);
}

static void test_put_u64(void)
{
    check_u64(0, "0");
    check_u64(7, "7");
    check_u64(10, "10");
    check_u64(429, "429");
    check_u64(1000000, "1000000");
    check_u64(UINT64_MAX, "18446744073709551615");
    /* every digit count, and its edges */
    char want[24];
    uint64_t p = 1;
    for (int d = 1; d <= 20; d++) {
        snprintf(want, sizeof(want), "%llu", (unsigned long long)p);
        check_u64(p, want);
        if (d < 20) {
            snprintf(want, sizeof(want), "%llu", (unsigned long long)(p * 10 - 1));
            check_u64(p * 10 - 1, want);
            snprintf(want, sizeof(want), "%llu", (unsigned long long)(p * 7 + 3));
            check_u64(p * 7 + 3, want);
            p *= 10;
        }
    }
}

int main(void)
{
    RUN(test_ieq);
    RUN(test_put_u64);
    return TEST_REPORT();
}
