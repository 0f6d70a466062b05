/*
 * What a request is counted under (limit.h, "Keys"): pure helpers over
 * addresses and field values, so that they are tested without a proxy.
 */
#include "limit/limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

size_t arc_rl_key_addr(const struct sockaddr *sa, uint32_t prefix, uint8_t out[ARC_RL_KEY_ADDR])
{
    if (sa->sa_family == AF_INET) {
        out[0] = 4;
        memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 5;
    }
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (memcmp(a, mapped, 12) == 0) {
        out[0] = 4;
        memcpy(out + 1, a + 12, 4);
        return 5;
    }
    if (prefix > 128)
        prefix = 128;
    out[0] = 6;
    memset(out + 1, 0, 16);
    uint32_t full = prefix / 8, rem = prefix % 8;
    memcpy(out + 1, a, full);
    if (rem)
        out[1 + full] = (uint8_t)(a[full] & (0xff << (8 - rem)));
    return 17;
}

bool arc_rl_parse_ip(const char *p, size_t n, struct sockaddr_storage *ss)
{
    while (n && (p[0] == ' ' || p[0] == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n >= 2 && p[0] == '[' && p[n - 1] == ']')
        p++, n -= 2;
    char buf[64];
    if (n == 0 || n >= sizeof(buf) || memchr(p, '\0', n))
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, buf, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

void arc_rl_xff_client(const struct arc_str *values, size_t n, arc_rl_trusted_fn trusted,
                       const void *ud, struct sockaddr_storage *out)
{
    for (size_t i = n; i-- > 0;) {
        const char *v = values[i].p;
        size_t end = values[i].len;
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            struct sockaddr_storage ss;
            if (!arc_rl_parse_ip(v + start, end - start, &ss))
                return;                 /* garbage: the last good hop stands */
            *out = ss;
            if (!trusted(ud, (const struct sockaddr *)&ss))
                return;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
}

struct arc_str arc_rl_cookie(const struct arc_str *values, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++) {
        const char *p = values[i].p, *e = p + values[i].len;
        while (p < e) {
            while (p < e && (*p == ' ' || *p == ';' || *p == '\t'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(e - p));
            if (!semi)
                semi = e;
            const char *eq = memchr(p, '=', (size_t)(semi - p));
            if (eq && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
                const char *vs = eq + 1, *ve = semi;
                while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                return (struct arc_str){ vs, (size_t)(ve - vs) };
            }
            p = semi;
        }
    }
    return (struct arc_str){ NULL, 0 };
}
