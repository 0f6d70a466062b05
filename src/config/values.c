/*
 * Value syntaxes shared by the schema and the tests: durations, sizes,
 * socket addresses and CIDR prefixes. All strict: no whitespace, no signs,
 * no host names (resolving names would make loading a config depend on DNS
 * and make the fingerprint lie about what a node listens on).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"

/* Reads decimal digits at *s into *v (overflow-checked). Returns the number
 * of digits, or -1 on overflow. */
static int digits(const char **s, uint64_t *v)
{
    int n = 0;
    uint64_t acc = 0;
    while (**s >= '0' && **s <= '9') {
        unsigned d = (unsigned)(**s - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return -1;
        acc = acc * 10 + d;
        (*s)++;
        n++;
    }
    *v = acc;
    return n;
}

int arc_config_parse_duration(const char *s, uint64_t *ms)
{
    uint64_t v, mul;
    if (!s || digits(&s, &v) <= 0)
        return -1;
    if (strcmp(s, "ms") == 0)
        mul = 1;
    else if (strcmp(s, "s") == 0)
        mul = 1000;
    else if (strcmp(s, "m") == 0)
        mul = 60 * 1000;
    else if (strcmp(s, "h") == 0)
        mul = 3600 * 1000;
    else
        return -1;
    if (v > UINT64_MAX / mul)
        return -1;
    *ms = v * mul;
    return 0;
}

static bool suffix_is(const char *s, const char *suf)
{
    return strcasecmp(s, suf) == 0;
}

int arc_config_parse_size(const char *s, uint64_t *bytes)
{
    uint64_t v, mul;
    if (!s || digits(&s, &v) <= 0)
        return -1;
    if (*s == '\0' || suffix_is(s, "b"))
        mul = 1;
    else if (suffix_is(s, "kb"))
        mul = 1024;
    else if (suffix_is(s, "mb"))
        mul = 1024 * 1024;
    else if (suffix_is(s, "gb"))
        mul = 1024 * 1024 * 1024;
    else
        return -1;
    if (v > UINT64_MAX / mul)
        return -1;
    *bytes = v * mul;
    return 0;
}

/* Port: 1-5 decimal digits, 0..65535. */
static int parse_port(const char *s, uint16_t *port)
{
    uint64_t v;
    const char *p = s;
    int n = digits(&p, &v);
    if (n <= 0 || n > 5 || *p != '\0' || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int arc_config_parse_addr(const char *s, struct arc_addr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_s;
    uint16_t port;
    struct arc_addr a;
    memset(&a, 0, sizeof(a));

    if (!s)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        size_t n = (size_t)(close - s - 1);
        if (n == 0 || n >= sizeof(host))
            return -1;
        memcpy(host, s + 1, n);
        host[n] = '\0';
        port_s = close + 2;
        if (parse_port(port_s, &port) < 0)
            return -1;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
        /* inet_pton rejects "%zone" suffixes: zones are not supported. */
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        a.len = sizeof(*sin6);
        char norm[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, norm, sizeof(norm));
        snprintf(a.text, sizeof(a.text), "[%s]:%u", norm, (unsigned)port);
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return -1;
        size_t n = (size_t)(colon - s);
        if (n == 0 || n >= sizeof(host))
            return -1;
        memcpy(host, s, n);
        host[n] = '\0';
        if (parse_port(colon + 1, &port) < 0)
            return -1;
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
        /* inet_pton(AF_INET) takes only the dotted quad (no "1.2.3",
         * no octal), and an unbracketed IPv6 address fails here too. */
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        a.len = sizeof(*sin);
        char norm[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, norm, sizeof(norm));
        snprintf(a.text, sizeof(a.text), "%s:%u", norm, (unsigned)port);
    }
    *out = a;
    return 0;
}

int arc_config_parse_cidr(const char *s, struct arc_cidr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    struct arc_cidr c;
    memset(&c, 0, sizeof(c));
    if (!s)
        return -1;
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(host))
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    int bits;
    if (inet_pton(AF_INET, host, c.addr) == 1) {
        c.family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, host, c.addr) == 1) {
        c.family = AF_INET6;
        bits = 128;
    } else {
        return -1;
    }
    uint64_t prefix = (uint64_t)bits;
    if (slash) {
        const char *p = slash + 1;
        int nd = digits(&p, &prefix);
        if (nd <= 0 || nd > 3 || *p != '\0' || prefix > (uint64_t)bits)
            return -1;
    }
    c.prefix = (uint8_t)prefix;
    /* Host bits must be zero: "10.0.0.1/8" is more likely a typo than a
     * deliberate way to write 10.0.0.0/8. */
    for (int i = 0; i < bits / 8; i++) {
        int keep = (int)c.prefix - i * 8;
        uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        if (c.addr[i] & (uint8_t)~mask)
            return -1;
    }
    char norm[INET6_ADDRSTRLEN];
    inet_ntop(c.family, c.addr, norm, sizeof(norm));
    snprintf(c.text, sizeof(c.text), "%s/%u", norm, (unsigned)c.prefix);
    *out = c;
    return 0;
}

bool arc_config_cidr_contains(const struct arc_cidr *c, const struct sockaddr *sa)
{
    const uint8_t *a;
    int family = sa->sa_family;
    if (family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (c->family == AF_INET && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
            a += 12;
            family = AF_INET;
        }
    } else {
        return false;
    }
    if (family != c->family)
        return false;
    int full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(a, c->addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == c->addr[full];
}

const char *const arc_var_names[ARC_VAR__COUNT] = {
    [ARC_VAR_HOST] = "host",
    [ARC_VAR_CLIENT_IP] = "client_ip",
    [ARC_VAR_CLIENT_PORT] = "client_port",
    [ARC_VAR_SCHEME] = "scheme",
    [ARC_VAR_METHOD] = "method",
    [ARC_VAR_PATH] = "path",
    [ARC_VAR_QUERY] = "query",
    [ARC_VAR_REQUEST_URI] = "request_uri",
    [ARC_VAR_ROUTE] = "route",
    [ARC_VAR_REQUEST_ID] = "request_id",
};

int arc_var_lookup(const char *name, size_t n)
{
    for (int i = 0; i < ARC_VAR__COUNT; i++)
        if (strlen(arc_var_names[i]) == n && memcmp(arc_var_names[i], name, n) == 0)
            return i;
    return -1;
}
