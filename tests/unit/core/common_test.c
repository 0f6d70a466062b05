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

static void check_hex(uint64_t v)
{
    char buf[24], want[24];
    char *end = arc_put_hex(buf, v);
    *end = '\0';
    snprintf(want, sizeof(want), "%llx", (unsigned long long)v);
    CHECK_STR(buf, want);
}

static void test_put_hex(void)
{
    check_hex(0);
    check_hex(9);
    check_hex(10);
    check_hex(255);
    check_hex(256);
    check_hex(UINT64_MAX);
    /* every digit count, and its edges */
    for (int d = 0; d < 64; d += 4) {
        uint64_t p = 1ull << d;
        check_hex(p);
        check_hex(p - 1);
        check_hex(p * 11 + 5);
    }
}

int main(void)
{
    RUN(test_ieq);
    RUN(test_put_u64);
    RUN(test_put_hex);
    return TEST_REPORT();
}
