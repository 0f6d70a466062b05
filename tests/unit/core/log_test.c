/* Proves the system log's NDJSON record: the access log's ts format, the
 * level names, escaping of quotes, control bytes and invalid UTF-8 (valid
 * UTF-8 kept), the file/line/col fields of configuration errors, and
 * truncation that still leaves a NUL-terminated string in the buffer. */
#include "test.h"
#include "core/log.h"

#include <string.h>

/* 2026-12-07T12:20:16.000000042Z */
#define TS_NS (1796646016ull * 1000000000ull + 42ull)

static void test_record_shape(void)
{
    char b[512];
    size_t n = arc_log_format_json(b, sizeof(b), TS_NS, ARC_LOG_WARN, "reload \"x\" failed", NULL,
                                   0, 0);
    CHECK_STR(b, "{\"ts\":\"2026-12-07T12:20:16.000000042Z\",\"kind\":\"system\","
                 "\"level\":\"warn\",\"msg\":\"reload \\\"x\\\" failed\"}");
    CHECK_INT(n, strlen(b));
}

static void test_config_error_fields(void)
{
    char b[512];
    arc_log_format_json(b, sizeof(b), TS_NS, ARC_LOG_ERROR, "unknown key 'x'", "/etc/arc.yaml",
                        4, 7);
    CHECK_STR(b, "{\"ts\":\"2026-12-07T12:20:16.000000042Z\",\"kind\":\"system\","
                 "\"level\":\"error\",\"msg\":\"unknown key 'x'\",\"file\":\"/etc/arc.yaml\","
                 "\"line\":4,\"col\":7}");
}

static void test_escaping(void)
{
    char b[512];
    arc_log_format_json(b, sizeof(b), TS_NS, ARC_LOG_INFO, "a\\b\n\x01\x7f caf\xc3\xa9 \xff\xc3(",
                        NULL, 0, 0);
    const char *msg = strstr(b, "\"msg\":");
    CHECK(msg != NULL);
    CHECK_STR(msg, "\"msg\":\"a\\\\b\\u000a\\u0001\\u007f caf\xc3\xa9 \\ufffd\\ufffd(\"}");
}

static void test_levels(void)
{
    CHECK_STR(arc_log_level_name(ARC_LOG_DEBUG), "debug");
    CHECK_STR(arc_log_level_name(ARC_LOG_INFO), "info");
    CHECK_STR(arc_log_level_name(ARC_LOG_WARN), "warn");
    CHECK_STR(arc_log_level_name(ARC_LOG_ERROR), "error");
}

static void test_truncation(void)
{
    char b[40];
    memset(b, 'z', sizeof(b));
    size_t n = arc_log_format_json(b, sizeof(b), TS_NS, ARC_LOG_INFO, "long message", NULL, 0, 0);
    CHECK_INT(n, sizeof(b) - 1);
    CHECK_INT(b[sizeof(b) - 1], 0);
    CHECK(memcmp(b, "{\"ts\":\"2026-12-07T12:20:16", 25) == 0);
}

int main(void)
{
    RUN(test_record_shape);
    RUN(test_config_error_fields);
    RUN(test_escaping);
    RUN(test_levels);
    RUN(test_truncation);
    return TEST_REPORT();
}
