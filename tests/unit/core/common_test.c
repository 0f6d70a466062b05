/* Proves the string helpers in core/common.c compare the way HTTP needs. */
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

int main(void)
{
    RUN(test_ieq);
    return TEST_REPORT();
}
