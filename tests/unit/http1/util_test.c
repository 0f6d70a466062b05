/* Proves the resumable head scan: trickled one byte at a time, a head asks
 * for a parse once per line (not once per byte), and a head arriving in one
 * piece asks once. */
#include "test.h"
#include "http1/http1.h"

static const char HEAD[] = "GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-B: 2\r\n\r\n";

static void test_trickle_parses_once_per_line(void)
{
    size_t n = sizeof(HEAD) - 1;
    uint32_t scanned = 0;
    int asks = 0, lines = 0;
    for (size_t len = 1; len <= n; len++) {
        if (arc_h1_head_scan(HEAD, len, &scanned))
            asks++;
        if (HEAD[len - 1] == '\n')
            lines++;
        CHECK_INT(scanned, len);
    }
    CHECK_INT(lines, 5);
    CHECK_INT(asks, lines);
}

static void test_whole_head_asks_once(void)
{
    uint32_t scanned = 0;
    CHECK(arc_h1_head_scan(HEAD, sizeof(HEAD) - 1, &scanned));
    CHECK(!arc_h1_head_scan(HEAD, sizeof(HEAD) - 1, &scanned));
}

static void test_no_newline_no_ask(void)
{
    uint32_t scanned = 0;
    CHECK(!arc_h1_head_scan("GET /very-long-target", 21, &scanned));
    CHECK(!arc_h1_head_scan("GET /very-long-target-more", 26, &scanned));
    CHECK(arc_h1_head_scan("GET /very-long-target-more\n", 27, &scanned));
}

int main(void)
{
    RUN(test_trickle_parses_once_per_line);
    RUN(test_whole_head_asks_once);
    RUN(test_no_newline_no_ask);
    return TEST_REPORT();
}
