/*
 * Access-log records: the ring's setup and the NDJSON formatter the writer
 * thread runs for each record (logwriter.c drives both).
 *
 * The formatter is pure (record in, bytes appended out) so that the unit
 * test can check every field. Client-supplied text is escaped as JSON and
 * bytes that are not valid UTF-8 become U+FFFD, so every line is valid JSON
 * whatever a client sent.
 */
#include "obs/accesslog.h"
#include "obs/metrics.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int arc_alog_ring_init(struct arc_alog_ring *r, uint32_t capacity)
{
    if (capacity < 2 || (capacity & (capacity - 1)))
        return -1;
    memset(r, 0, sizeof(*r));
    /* calloc: untouched pages cost nothing until the ring wraps onto them. */
    r->recs = calloc(capacity, sizeof(*r->recs));
    if (!r->recs)
        return -1;
    r->mask = capacity - 1;
    r->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)r;
    return 0;
}

void arc_alog_ring_dispose(struct arc_alog_ring *r)
{
    free(r->recs);
    r->recs = NULL;
}

static const char *const err_names[ARC_ERR__COUNT] = {
    [ARC_ERR_BAD_REQUEST] = "bad_request",
    [ARC_ERR_URI_TOO_LONG] = "uri_too_long",
    [ARC_ERR_HEADERS_TOO_LARGE] = "headers_too_large",
    [ARC_ERR_NOT_IMPLEMENTED] = "not_implemented",
    [ARC_ERR_BAD_VERSION] = "bad_version",
    [ARC_ERR_NOT_FOUND] = "not_found",
    [ARC_ERR_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [ARC_ERR_CLIENT_TIMEOUT] = "client_timeout",
    [ARC_ERR_UPSTREAM_CONNECT] = "upstream_connect",
    [ARC_ERR_UPSTREAM_TIMEOUT] = "upstream_timeout",
    [ARC_ERR_UPSTREAM_BAD] = "upstream_bad_response",
    [ARC_ERR_UPSTREAM_RESET] = "upstream_reset",
    [ARC_ERR_NO_ENDPOINT] = "no_endpoint",
    [ARC_ERR_CLIENT_ABORT] = "client_abort",
};

/* Outcomes (ARC_ALOG_O_*, mirroring enum ex_outcome) that are errors by
 * themselves when no error kind was recorded. */
static const char *const outcome_errors[] = {
    [ARC_ALOG_O_COMPLETE] = NULL,
    [ARC_ALOG_O_CLIENT_ABORT] = "client_abort",
    [ARC_ALOG_O_CLIENT_TIMEOUT] = "client_timeout",
    [ARC_ALOG_O_UPSTREAM_CUT] = "upstream_cut",
    [ARC_ALOG_O_TUNNEL_END] = NULL,
};

const char *arc_alog_error_text(unsigned err, unsigned outcome)
{
    if (err) {
        const char *n = err - 1 < ARC_ERR__COUNT ? err_names[err - 1] : NULL;
        return n ? n : "error";
    }
    return outcome < sizeof(outcome_errors) / sizeof(outcome_errors[0]) ? outcome_errors[outcome]
                                                                         : NULL;
}

static const char *const trunc_names[ARC_ALOG_T__COUNT] = {
    "method", "host", "path", "query", "route", "upstream", "request_id", "tls.sni",
    "tls.client_subject", "user_agent", "referer",
};

/* ------------------------------------------------------------ JSON text */

static void lit(struct arc_sbuf *o, const char *s)
{
    arc_sbuf_append(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

static void jstr(struct arc_sbuf *o, const char *s)
{
    arc_sbuf_append(o, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), run = 0, i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        if (run)
            arc_sbuf_append(o, p + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            arc_sbuf_append(o, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof(e), "\\u%04x", c);
            arc_sbuf_append(o, e, 6);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                arc_sbuf_append(o, p + i, l);
                i += l;
            } else {
                lit(o, "\\ufffd");
                i++;
            }
        }
    }
    if (run)
        arc_sbuf_append(o, p + n - run, run);
    arc_sbuf_append(o, "\"", 1);
}

/* "key": "value" or "key": null for an empty string. */
static void kstr(struct arc_sbuf *o, const char *key, const char *v)
{
    arc_sbuf_printf(o, ",\"%s\":", key);
    if (v && *v)
        jstr(o, v);
    else
        lit(o, "null");
}

static void hex(struct arc_sbuf *o, const uint8_t *b, size_t n)
{
    static const char d[] = "0123456789abcdef";
    char t[64];
    for (size_t i = 0; i < n; i++) {
        t[2 * i] = d[b[i] >> 4];
        t[2 * i + 1] = d[b[i] & 15];
    }
    arc_sbuf_append(o, t, 2 * n);
}

/* ns → "12.345" ms (µs resolution), or null when it did not happen. */
static void kms(struct arc_sbuf *o, const char *key, uint64_t ns)
{
    if (ns == ARC_ALOG_NONE) {
        arc_sbuf_printf(o, ",\"%s\":null", key);
        return;
    }
    uint64_t us = (ns + 500) / 1000;
    arc_sbuf_printf(o, ",\"%s\":%llu.%03llu", key, (unsigned long long)(us / 1000),
                    (unsigned long long)(us % 1000));
}

void arc_alog_format(struct arc_sbuf *o, const struct arc_alog_rec *r)
{
    time_t sec = (time_t)(r->ts_ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&sec, &tm);
    arc_sbuf_printf(o, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09lluZ\",\"kind\":\"access\"",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                    tm.tm_sec, (unsigned long long)(r->ts_ns % 1000000000ull));
    kstr(o, "request_id", r->request_id);
    if (r->traced) {
        lit(o, ",\"trace_id\":\"");
        hex(o, r->trace_id, 16);
        lit(o, "\",\"span_id\":\"");
        hex(o, r->span_id, 8);
        lit(o, "\",\"parent_span_id\":");
        if (r->has_parent) {
            lit(o, "\"");
            hex(o, r->parent_id, 8);
            lit(o, "\"");
        } else {
            lit(o, "null");
        }
        arc_sbuf_printf(o, ",\"trace_sampled\":%s", (r->trace_flags & 1) ? "true" : "false");
    } else {
        lit(o, ",\"trace_id\":null,\"span_id\":null,\"parent_span_id\":null,\"trace_sampled\":false");
    }
    kstr(o, "method", r->method);
    kstr(o, "scheme", r->https ? "https" : "http");
    kstr(o, "host", r->host);
    kstr(o, "path", r->path);
    kstr(o, "query", r->query);
    kstr(o, "protocol", r->protocol == ARC_ALOG_H2 ? "h2" : r->protocol == ARC_ALOG_H10
                                                                ? "http/1.0" : "http/1.1");
    arc_sbuf_printf(o, ",\"status\":%u", r->status);
    kstr(o, "route", r->route);
    kstr(o, "upstream", r->has_upstream ? r->upstream : NULL);
    kstr(o, "upstream_addr", r->has_upstream ? r->upstream_addr : NULL);
    arc_sbuf_printf(o, ",\"attempt\":%u", r->attempt);
    char ip[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;
    if (r->client.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &r->client.in.sin_addr, ip, sizeof(ip));
        port = ntohs(r->client.in.sin_port);
    } else if (r->client.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &r->client.in6.sin6_addr, ip, sizeof(ip));
        port = ntohs(r->client.in6.sin6_port);
    }
    kstr(o, "client_ip", ip);
    if (ip[0])
        arc_sbuf_printf(o, ",\"client_port\":%u", port);
    else
        lit(o, ",\"client_port\":null");
    if (r->tls) {
        lit(o, ",\"tls\":{\"version\":");
        r->tls_version[0] ? jstr(o, r->tls_version) : lit(o, "null");
        kstr(o, "cipher", r->tls_cipher);
        kstr(o, "sni", r->tls_sni);
        kstr(o, "client_subject", r->tls_subject);
        lit(o, "}");
    } else {
        lit(o, ",\"tls\":null");
    }
    arc_sbuf_printf(o, ",\"bytes_received\":%llu,\"bytes_sent\":%llu",
                    (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out);
    kms(o, "duration_ms", r->dur_ns);
    kms(o, "upstream_connect_ms", r->connect_ns);
    kms(o, "upstream_ttfb_ms", r->ttfb_ns);
    kms(o, "upstream_response_ms", r->response_ns);
    kstr(o, "user_agent", r->user_agent);
    kstr(o, "referer", r->referer);
    kstr(o, "error", arc_alog_error_text(r->err, r->outcome));
    if (r->truncated) {
        lit(o, ",\"truncated\":[");
        bool first = true;
        for (unsigned i = 0; i < ARC_ALOG_T__COUNT; i++)
            if (r->truncated & (1u << i)) {
                arc_sbuf_printf(o, "%s\"%s\"", first ? "" : ",", trunc_names[i]);
                first = false;
            }
        lit(o, "]");
    }
    lit(o, "}\n");
}
