/*
 * Control-plane API, the pure parts: bearer-token checks, long-poll query
 * parsing, entity-tag matching, body formats. No I/O, no allocation.
 */
#include "admin/admin_int.h"

#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"

bool arc_admin__token_eq(const char *given, size_t given_len, const char *want, size_t want_len)
{
    /* Comparing the bytes directly would leak the length (a loop that
     * stops at the shorter) or, with memcmp, the position of the first
     * difference. Digests have a fixed length and are compared in full. */
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)given, given_len, a);
    SHA256((const unsigned char *)want, want_len, b);
    return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

bool arc_admin__bearer(struct arc_str v, struct arc_str *token)
{
    while (v.len && ows(v.p[0])) {
        v.p++;
        v.len--;
    }
    while (v.len && ows(v.p[v.len - 1]))
        v.len--;
    if (v.len < 7 || strncasecmp(v.p, "bearer", 6) != 0 || !ows(v.p[6]))
        return false;
    size_t i = 7;
    while (i < v.len && ows(v.p[i]))
        i++;
    if (i == v.len)
        return false;
    *token = arc_str_make(v.p + i, v.len - i);
    return true;
}

bool arc_admin__is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes v into out (NUL-terminated); -1 if it does not fit or
 * an escape is malformed. '+' stays '+' (no value here has spaces). */
static int pct_decode(struct arc_str v, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        if (c == '%') {
            if (i + 2 >= v.len)
                return -1;
            int h = hexval(v.p[i + 1]), l = hexval(v.p[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int arc_admin__longpoll_query(struct arc_str q, struct arc_longpoll_q *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    out->timeout_ms = ARC_LONGPOLL_DEFAULT_MS;
    bool has_timeout = false;
    size_t i = 0;
    while (i <= q.len) {
        size_t j = i;
        while (j < q.len && q.p[j] != '&')
            j++;
        struct arc_str kv = arc_str_make(q.p + i, j - i);
        i = j + 1;
        if (kv.len == 0)
            continue;
        const char *eq = memchr(kv.p, '=', kv.len);
        struct arc_str k = arc_str_make(kv.p, eq ? (size_t)(eq - kv.p) : kv.len);
        struct arc_str v = eq ? arc_str_make(eq + 1, kv.len - k.len - 1) : arc_str_make("", 0);
        char val[80];
        if (arc_str_eq(k, "since", 5)) {
            if (out->has_since) {
                *err = "since: given twice";
                return -1;
            }
            if (pct_decode(v, val, sizeof(val)) < 0 || strlen(val) != 64) {
                *err = "since: expected a fingerprint (64 hex digits)";
                return -1;
            }
            for (size_t n = 0; n < 64; n++) {
                int h = hexval(val[n]);
                if (h < 0) {
                    *err = "since: expected a fingerprint (64 hex digits)";
                    return -1;
                }
                out->since[n] = "0123456789abcdef"[h];
            }
            out->since[64] = '\0';
            out->has_since = true;
        } else if (arc_str_eq(k, "timeout", 7)) {
            if (has_timeout) {
                *err = "timeout: given twice";
                return -1;
            }
            has_timeout = true;
            uint64_t ms = 0;
            bool digits = v.len > 0 && v.len <= 6;
            for (size_t n = 0; digits && n < v.len; n++)
                digits = v.p[n] >= '0' && v.p[n] <= '9';
            if (digits) {
                for (size_t n = 0; n < v.len; n++)
                    ms = ms * 10 + (uint64_t)(v.p[n] - '0');
                ms *= 1000;
            } else if (pct_decode(v, val, sizeof(val)) < 0 ||
                       arc_config_parse_duration(val, &ms) < 0) {
                *err = "timeout: expected a duration such as 30s, 500ms or 2m";
                return -1;
            }
            out->timeout_ms = ms > ARC_LONGPOLL_MAX_MS ? ARC_LONGPOLL_MAX_MS : ms;
        }
    }
    return 0;
}

bool arc_admin__etag_match(struct arc_str v, const char *fp)
{
    size_t fl = strlen(fp);
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (ows(v.p[i]) || v.p[i] == ','))
            i++;
        if (i == v.len)
            break;
        if (v.p[i] == '*')
            return true;
        /* If-None-Match uses the weak comparison (RFC 9110 §13.1.2). */
        if (v.len - i >= 2 && v.p[i] == 'W' && v.p[i + 1] == '/')
            i += 2;
        if (i < v.len && v.p[i] == '"') {
            size_t s = ++i;
            while (i < v.len && v.p[i] != '"')
                i++;
            if (i - s == fl && memcmp(v.p + s, fp, fl) == 0)
                return true;
            if (i < v.len)
                i++;
        } else {
            /* Not an entity tag: skip to the next list element. */
            while (i < v.len && v.p[i] != ',')
                i++;
        }
    }
    return false;
}

const char *arc_admin__body_format(const struct arc_str *ct, const char *body, size_t len)
{
    struct arc_str t = ct ? *ct : arc_str_make("", 0);
    const char *semi = t.len ? memchr(t.p, ';', t.len) : NULL;
    if (semi)
        t.len = (size_t)(semi - t.p);
    while (t.len && ows(t.p[t.len - 1]))
        t.len--;
    while (t.len && ows(t.p[0])) {
        t.p++;
        t.len--;
    }
    static const struct { const char *type, *format; } types[] = {
        { "application/json", "json" }, { "text/json", "json" },
        { "application/yaml", "yaml" }, { "application/x-yaml", "yaml" },
        { "text/yaml", "yaml" }, { "text/x-yaml", "yaml" },
        { "application/toml", "toml" }, { "text/toml", "toml" }, { "text/x-toml", "toml" },
    };
    for (size_t i = 0; i < ARC_ARRAY_LEN(types); i++)
        if (arc_str_ieq(t, types[i].type, strlen(types[i].type)))
            return types[i].format;
    if (t.len && !arc_str_ieq(t, "application/octet-stream", 24))
        return NULL;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    return i < len && body[i] == '{' ? "json" : "yaml";
}
