/*
 * Key extraction: IPv6 clients keyed by prefix (and IPv4, IPv4-mapped
 * IPv6 by address), X-Forwarded-For walked from the nearest hop with
 * trusted hops skipped and garbage stopping the walk, cookies found among
 * several.
 */
#include "limit/limit.h"
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static struct sockaddr_storage ip(const char *s)
{
    struct sockaddr_storage ss;
    bool ok = arc_rl_parse_ip(s, strlen(s), &ss);
    CHECK(ok);
    return ss;
}

static uint64_t key(const char *s, uint32_t prefix)
{
    struct sockaddr_storage ss = ip(s);
    uint8_t kb[ARC_RL_KEY_ADDR];
    size_t n = arc_rl_key_addr((const struct sockaddr *)&ss, prefix, kb);
    return arc_rl_hash(kb, n);
}

static void test_ipv6_prefixes(void)
{
    CHECK(key("2001:db8:1:2::a", 64) == key("2001:db8:1:2:ffff:1:2:3", 64));
    CHECK(key("2001:db8:1:2::a", 64) != key("2001:db8:1:3::a", 64));
    CHECK(key("2001:db8:1:2::a", 48) == key("2001:db8:1:ffff::a", 48));
    CHECK(key("2001:db8:1:2::a", 48) != key("2001:db8:2:2::a", 48));
    CHECK(key("2001:db8::1", 128) != key("2001:db8::2", 128));
    /* a prefix that is not a whole number of bytes */
    CHECK(key("2001:db8:1:0::", 60) == key("2001:db8:1:f::", 60));
    CHECK(key("2001:db8:1:0::", 60) != key("2001:db8:1:10::", 60));
    /* IPv4 by address; an IPv4-mapped IPv6 client is the same IPv4 client */
    CHECK(key("10.0.0.1", 64) != key("10.0.0.2", 64));
    CHECK(key("10.0.0.1", 64) == key("::ffff:10.0.0.1", 64));
    /* (bytes: family marker first, so ::a.b.c.d-like IPv6 never equals IPv4) */
    uint8_t kb[ARC_RL_KEY_ADDR];
    struct sockaddr_storage ss = ip("2001:db8:aaaa:bbbb:cccc::1");
    CHECK_INT(arc_rl_key_addr((const struct sockaddr *)&ss, 64, kb), 17);
    CHECK_INT(kb[0], 6);
    CHECK_INT(kb[9], 0);                /* host half zeroed */
    CHECK_INT(kb[8], 0xbb);
}

static void test_parse_ip(void)
{
    struct sockaddr_storage ss;
    CHECK(arc_rl_parse_ip(" 1.2.3.4 ", 9, &ss) && ss.ss_family == AF_INET);
    CHECK(arc_rl_parse_ip("[2001:db8::1]", 13, &ss) && ss.ss_family == AF_INET6);
    CHECK(!arc_rl_parse_ip("1.2.3.4:80", 10, &ss));
    CHECK(!arc_rl_parse_ip("unknown", 7, &ss));
    CHECK(!arc_rl_parse_ip("", 0, &ss));
    CHECK(!arc_rl_parse_ip("1.2.3.4\0x", 9, &ss));
}

/* trusted: 10.0.0.0/8 and 2001:db8:ffff::/48 */
static bool trusted(const void *ud, const struct sockaddr *sa)
{
    (void)ud;
    if (sa->sa_family == AF_INET)
        return ((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr)[0] == 10;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    return a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8 && a[4] == 0xff &&
           a[5] == 0xff;
}

static const char *client(const char *const *vals, size_t n)
{
    static char buf[64];
    struct arc_str v[8];
    for (size_t i = 0; i < n; i++)
        v[i] = (struct arc_str){ vals[i], strlen(vals[i]) };
    struct sockaddr_storage out = ip("10.9.9.9");   /* the (trusted) peer */
    arc_rl_xff_client(v, n, trusted, NULL, &out);
    if (out.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&out)->sin_addr, buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&out)->sin6_addr, buf, sizeof(buf));
    return buf;
}

static void test_xff_walk(void)
{
    const char *a[] = { "1.1.1.1" };
    CHECK_STR(client(a, 1), "1.1.1.1");
    const char *b[] = { "6.6.6.6, 1.1.1.1, 10.0.0.7" };        /* spoofed left part ignored */
    CHECK_STR(client(b, 1), "1.1.1.1");
    const char *c[] = { "2.2.2.2", "3.3.3.3,10.1.1.1" };       /* two fields: the last is nearest */
    CHECK_STR(client(c, 2), "3.3.3.3");
    const char *d[] = { "2.2.2.2", "10.1.1.1", "10.2.2.2" };   /* trusted hops across fields */
    CHECK_STR(client(d, 3), "2.2.2.2");
    const char *e[] = { "10.1.1.1, 10.2.2.2" };                 /* all trusted: the leftmost */
    CHECK_STR(client(e, 1), "10.1.1.1");
    const char *f[] = { "1.1.1.1, garbage, 10.3.3.3" };         /* garbage stops at the hop after it */
    CHECK_STR(client(f, 1), "10.3.3.3");
    const char *g[] = { "junk" };
    CHECK_STR(client(g, 1), "10.9.9.9");                        /* the peer stands */
    const char *h[] = { "2001:db8:1::5, [2001:db8:ffff::1]" };
    CHECK_STR(client(h, 1), "2001:db8:1::5");
    const char *i[] = { "" };
    CHECK_STR(client(i, 1), "10.9.9.9");
}

static void test_cookie(void)
{
    struct arc_str v[2] = { ARC_STR_LIT("a=1; sid=xyz ;b=2"), ARC_STR_LIT("sid=later; c=3") };
    struct arc_str s = arc_rl_cookie(v, 2, "sid");
    CHECK_VIEW(s.p, s.len, "xyz");
    s = arc_rl_cookie(v, 2, "c");
    CHECK_VIEW(s.p, s.len, "3");
    s = arc_rl_cookie(v, 2, "si");
    CHECK(s.p == NULL);
    struct arc_str w[1] = { ARC_STR_LIT("flag; sid=") };
    s = arc_rl_cookie(w, 1, "sid");
    CHECK(s.p != NULL && s.len == 0);
    s = arc_rl_cookie(w, 1, "flag");
    CHECK(s.p == NULL);
}

int main(void)
{
    RUN(test_ipv6_prefixes);
    RUN(test_parse_ip);
    RUN(test_xff_walk);
    RUN(test_cookie);
    return TEST_REPORT();
}
