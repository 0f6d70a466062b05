/* Proves the value syntaxes (durations, sizes, addresses, CIDR prefixes)
 * accept exactly the documented forms and reject everything else. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test.h"
#include "config/config.h"
#include "core/common.h"

static void test_duration(void)
{
    uint64_t ms = 7;
    CHECK_INT(arc_config_parse_duration("250ms", &ms), 0);
    CHECK_INT(ms, 250);
    CHECK_INT(arc_config_parse_duration("30s", &ms), 0);
    CHECK_INT(ms, 30000);
    CHECK_INT(arc_config_parse_duration("2m", &ms), 0);
    CHECK_INT(ms, 120000);
    CHECK_INT(arc_config_parse_duration("1h", &ms), 0);
    CHECK_INT(ms, 3600000);
    CHECK_INT(arc_config_parse_duration("0s", &ms), 0);
    CHECK_INT(ms, 0);
    CHECK_INT(arc_config_parse_duration("720h", &ms), 0);
    CHECK_INT(ms, 720ull * 3600000);

    ms = 7;
    const char *bad[] = { "", "30", "s", "-1s", "+1s", "1.5s", "30 s", " 30s", "30s ",
                          "30S", "30sec", "1d", "1m30s", "ms", "18446744073709551616ms",
                          "5124095576031h" /* overflows in ms */ };
    for (size_t i = 0; i < ARC_ARRAY_LEN(bad); i++) {
        if (arc_config_parse_duration(bad[i], &ms) != -1)
            fprintf(stderr, "accepted bad duration '%s'\n", bad[i]);
        CHECK_INT(arc_config_parse_duration(bad[i], &ms), -1);
    }
    CHECK_INT(ms, 7); /* untouched on failure */
    CHECK_INT(arc_config_parse_duration(NULL, &ms), -1);
    /* the largest hour count that fits */
    CHECK_INT(arc_config_parse_duration("5124095576030h", &ms), 0);
}

static void test_size(void)
{
    uint64_t b = 0;
    CHECK_INT(arc_config_parse_size("512", &b), 0);
    CHECK_INT(b, 512);
    CHECK_INT(arc_config_parse_size("64kb", &b), 0);
    CHECK_INT(b, 65536);
    CHECK_INT(arc_config_parse_size("10mb", &b), 0);
    CHECK_INT(b, 10u << 20);
    CHECK_INT(arc_config_parse_size("1gb", &b), 0);
    CHECK_INT(b, 1u << 30);
    CHECK_INT(arc_config_parse_size("16KB", &b), 0);
    CHECK_INT(b, 16384);
    CHECK_INT(arc_config_parse_size("100b", &b), 0);
    CHECK_INT(b, 100);
    CHECK_INT(arc_config_parse_size("0", &b), 0);
    CHECK_INT(b, 0);

    const char *bad[] = { "", "kb", "1k", "1 kb", "-1", "1.5mb", "1tb", "1kib", "0x10",
                          "18446744073709551616", "17179869184gb" };
    for (size_t i = 0; i < ARC_ARRAY_LEN(bad); i++) {
        if (arc_config_parse_size(bad[i], &b) != -1)
            fprintf(stderr, "accepted bad size '%s'\n", bad[i]);
        CHECK_INT(arc_config_parse_size(bad[i], &b), -1);
    }
}

static void test_addr(void)
{
    struct arc_addr a;
    CHECK_INT(arc_config_parse_addr("1.2.3.4:80", &a), 0);
    CHECK_STR(a.text, "1.2.3.4:80");
    CHECK_INT(a.ss.ss_family, AF_INET);
    CHECK_INT(a.len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.ss;
    CHECK_INT(ntohs(sin->sin_port), 80);
    CHECK_INT(ntohl(sin->sin_addr.s_addr), 0x01020304);

    CHECK_INT(arc_config_parse_addr("[::1]:8443", &a), 0);
    CHECK_STR(a.text, "[::1]:8443");
    CHECK_INT(a.ss.ss_family, AF_INET6);
    CHECK_INT(a.len, sizeof(struct sockaddr_in6));
    CHECK_INT(ntohs(((const struct sockaddr_in6 *)&a.ss)->sin6_port), 8443);

    /* normalised: zeros compressed, lower case, leading zeros in port gone */
    CHECK_INT(arc_config_parse_addr("[2001:DB8:0:0:0:0:0:1]:0080", &a), 0);
    CHECK_STR(a.text, "[2001:db8::1]:80");
    /* port 0 = kernel-assigned */
    CHECK_INT(arc_config_parse_addr("0.0.0.0:0", &a), 0);
    CHECK_STR(a.text, "0.0.0.0:0");
    CHECK_INT(arc_config_parse_addr("[::]:65535", &a), 0);
    CHECK_STR(a.text, "[::]:65535");

    const char *bad[] = { "", "1.2.3.4", "1.2.3.4:", ":80", "localhost:80", "1.2.3:80",
                          "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:8o", "::1:80", "[::1]",
                          "[::1]80", "[]:80", "[1.2.3.4]:80", "[fe80::1%eth0]:80",
                          "1.2.3.4:123456", "*:80", " 1.2.3.4:80", "01.2.3.4:80" };
    for (size_t i = 0; i < ARC_ARRAY_LEN(bad); i++) {
        if (arc_config_parse_addr(bad[i], &a) != -1)
            fprintf(stderr, "accepted bad address '%s'\n", bad[i]);
        CHECK_INT(arc_config_parse_addr(bad[i], &a), -1);
    }
}

static void test_cidr(void)
{
    struct arc_cidr c;
    CHECK_INT(arc_config_parse_cidr("10.0.0.0/8", &c), 0);
    CHECK_STR(c.text, "10.0.0.0/8");
    CHECK_INT(c.family, AF_INET);
    CHECK_INT(c.prefix, 8);
    CHECK_INT(arc_config_parse_cidr("192.168.1.7", &c), 0);
    CHECK_STR(c.text, "192.168.1.7/32");
    CHECK_INT(arc_config_parse_cidr("2001:DB8::/32", &c), 0);
    CHECK_STR(c.text, "2001:db8::/32");
    CHECK_INT(c.family, AF_INET6);
    CHECK_INT(arc_config_parse_cidr("::/0", &c), 0);
    CHECK_INT(arc_config_parse_cidr("0.0.0.0/0", &c), 0);
    CHECK_INT(arc_config_parse_cidr("10.1.2.0/23", &c), 0);

    const char *bad[] = { "", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "/8", "10/8",
                          "::1/129", "2001:db8::1/32", "10.0.0.0/8/8", "10.0.0.0/-1",
                          "10.0.0.0/0008", "10.1.3.0/23", "host/8" };
    for (size_t i = 0; i < ARC_ARRAY_LEN(bad); i++) {
        if (arc_config_parse_cidr(bad[i], &c) != -1)
            fprintf(stderr, "accepted bad cidr '%s'\n", bad[i]);
        CHECK_INT(arc_config_parse_cidr(bad[i], &c), -1);
    }
}

static void test_cidr_contains(void)
{
    struct arc_cidr c;
    struct sockaddr_in sin = { .sin_family = AF_INET };
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

    CHECK_INT(arc_config_parse_cidr("10.1.2.0/23", &c), 0);
    inet_pton(AF_INET, "10.1.3.255", &sin.sin_addr);
    CHECK(arc_config_cidr_contains(&c, (struct sockaddr *)&sin));
    inet_pton(AF_INET, "10.1.4.0", &sin.sin_addr);
    CHECK(!arc_config_cidr_contains(&c, (struct sockaddr *)&sin));
    /* a v4-mapped peer on a dual-stack socket still matches a v4 prefix */
    inet_pton(AF_INET6, "::ffff:10.1.2.9", &sin6.sin6_addr);
    CHECK(arc_config_cidr_contains(&c, (struct sockaddr *)&sin6));
    inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
    CHECK(!arc_config_cidr_contains(&c, (struct sockaddr *)&sin6));

    CHECK_INT(arc_config_parse_cidr("2001:db8::/32", &c), 0);
    CHECK(arc_config_cidr_contains(&c, (struct sockaddr *)&sin6));
    CHECK(!arc_config_cidr_contains(&c, (struct sockaddr *)&sin));
    CHECK_INT(arc_config_parse_cidr("0.0.0.0/0", &c), 0);
    CHECK(arc_config_cidr_contains(&c, (struct sockaddr *)&sin));
}

int main(void)
{
    RUN(test_duration);
    RUN(test_size);
    RUN(test_addr);
    RUN(test_cidr);
    RUN(test_cidr_contains);
    return TEST_REPORT();
}
