/*
 * The access log's SPSC ring (full ring drops and counts, order kept across
 * threads, head and tail on separate cache lines) and its NDJSON formatter
 * (every field, nulls, escaping of hostile bytes, truncation marks).
 */
#include "test.h"
#include "obs/accesslog.h"
#include "obs/metrics.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Sets a string field of a record (what the worker does with arc_alog_put). */
#define SET(r, F, v) arc_alog_put((r), ARC_ALOG_S_##F, (v), strlen(v))

_Static_assert(offsetof(struct arc_alog_ring, tail) - offsetof(struct arc_alog_ring, head) >=
               ARC_ALOG_CACHELINE, "head and tail share a cache line");
_Static_assert(offsetof(struct arc_alog_ring, mask) - offsetof(struct arc_alog_ring, tail) >=
               ARC_ALOG_CACHELINE, "tail shares a cache line with the producer's fields");

static void test_ring_full_drops(void)
{
    struct arc_alog_ring r;
    CHECK(arc_alog_ring_init(&r, 3) < 0);
    CHECK(arc_alog_ring_init(&r, 4) == 0);
    for (int i = 0; i < 4; i++) {
        struct arc_alog_rec *rec = arc_alog_ring_claim(&r);
        CHECK(rec != NULL);
        if (rec)
            rec->status = (uint16_t)(200 + i);
        arc_alog_ring_commit(&r);
    }
    CHECK(arc_alog_ring_claim(&r) == NULL);
    CHECK(arc_alog_ring_claim(&r) == NULL);
    CHECK_INT(atomic_load(&r.dropped), 2);
    uint64_t t;
    CHECK_INT(arc_alog_ring_avail(&r, &t), 4);
    CHECK_INT(r.recs[t & r.mask].status, 200);
    CHECK_INT(r.recs[(t + 3) & r.mask].status, 203);
    arc_alog_ring_release(&r, 2);
    struct arc_alog_rec *rec = arc_alog_ring_claim(&r);
    CHECK(rec != NULL);
    if (rec)
        rec->status = 299;
    arc_alog_ring_commit(&r);
    CHECK_INT(arc_alog_ring_avail(&r, &t), 3);
    CHECK_INT(r.recs[(t + 2) & r.mask].status, 299);
    CHECK_INT(atomic_load(&r.dropped), 2);
    arc_alog_ring_dispose(&r);
}

/* A ring of 2 MB or more is whole 2 MB pages (aligned, zeroed, advised
 * huge): every slot is usable through a wrap and the ring frees cleanly. */
static void test_ring_large(void)
{
    struct arc_alog_ring r;
    uint32_t cap = 2048;                /* 2048 x ~2.1 kB > 2 MB */
    CHECK((size_t)cap * sizeof(struct arc_alog_rec) >= ((size_t)2 << 20));
    CHECK(arc_alog_ring_init(&r, cap) == 0);
    CHECK(r.map_len >= (size_t)cap * sizeof(struct arc_alog_rec));
    CHECK(((uintptr_t)r.recs & (((uintptr_t)2 << 20) - 1)) == 0);
    CHECK_INT(r.recs[cap - 1].used, 0);
    uint64_t bad = 0;
    for (uint32_t round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < cap; i++) {
            struct arc_alog_rec *rec = arc_alog_ring_claim(&r);
            CHECK(rec != NULL);
            if (!rec)
                return;
            memset(rec, 0, sizeof(*rec));
            rec->bytes_in = round * cap + i;
            arc_alog_put(rec, ARC_ALOG_S_PATH, "/p", 2);
            arc_alog_ring_commit(&r);
        }
        uint64_t t, n = arc_alog_ring_avail(&r, &t);
        CHECK_INT(n, cap);
        for (uint64_t k = 0; k < n; k++) {
            const struct arc_alog_rec *rec = &r.recs[(t + k) & r.mask];
            if (rec->bytes_in != round * cap + k || strcmp(arc_alog_str(rec, PATH), "/p") != 0)
                bad++;
        }
        arc_alog_ring_release(&r, n);
    }
    CHECK_INT(bad, 0);
    CHECK_INT(atomic_load(&r.dropped), 0);
    arc_alog_ring_dispose(&r);
    CHECK(r.recs == NULL);
}

#define N_PUSH 2000000

static void *producer(void *arg)
{
    struct arc_alog_ring *r = arg;
    for (uint64_t i = 0; i < N_PUSH; i++) {
        struct arc_alog_rec *rec = arc_alog_ring_claim(r);
        if (!rec)
            continue;
        rec->bytes_in = i;
        rec->bytes_out = ~i;
        arc_alog_ring_commit(r);
    }
    return NULL;
}

/* A consumer on another thread sees every record it gets whole and in
 * order; received + dropped = pushed. */
static void test_ring_threads(void)
{
    struct arc_alog_ring r;
    CHECK(arc_alog_ring_init(&r, 64) == 0);
    pthread_t th;
    pthread_create(&th, NULL, producer, &r);
    uint64_t got = 0, last = 0, bad = 0;
    bool first = true;
    for (;;) {
        uint64_t t, n = arc_alog_ring_avail(&r, &t);
        for (uint64_t k = 0; k < n; k++) {
            const struct arc_alog_rec *rec = &r.recs[(t + k) & r.mask];
            if (rec->bytes_out != ~rec->bytes_in || (!first && rec->bytes_in <= last))
                bad++;
            last = rec->bytes_in;
            first = false;
        }
        arc_alog_ring_release(&r, n);
        got += n;
        if (got + atomic_load(&r.dropped) == N_PUSH)
            break;
    }
    pthread_join(th, NULL);
    CHECK_INT(bad, 0);
    CHECK_INT(got + atomic_load(&r.dropped), N_PUSH);
    CHECK(got > 0);
    arc_alog_ring_dispose(&r);
}

static json_t *format_one(const struct arc_alog_rec *rec, char *line, size_t cap)
{
    struct arc_sbuf o = { 0 };
    arc_alog_format(&o, rec);
    CHECK(o.len > 0 && o.p[o.len - 1] == '\n');
    CHECK(memchr(o.p, '\n', o.len) == o.p + o.len - 1);
    snprintf(line, cap, "%s", o.p);
    json_error_t je;
    json_t *j = json_loadb(o.p, o.len, 0, &je);
    if (!j)
        fprintf(stderr, "not JSON (%s): %s", je.text, o.p);
    CHECK(j != NULL);
    arc_sbuf_dispose(&o);
    return j;
}

#define JSTR(j, k) json_string_value(json_object_get((j), (k)))
#define JINT(j, k) json_integer_value(json_object_get((j), (k)))
#define JREAL(j, k) json_number_value(json_object_get((j), (k)))
#define JNULL(j, k) json_is_null(json_object_get((j), (k)))

static void test_format_full(void)
{
    struct arc_alog_rec r;
    memset(&r, 0, sizeof(r));
    r.ts_ns = 1796646016ull * 1000000000ull + 123456789;    /* 2026-12-07T12:20:16.123456789Z */
    r.dur_ns = 12345678;
    r.connect_ns = 1000;
    r.ttfb_ns = 5500000;
    r.response_ns = 12000000;
    r.bytes_in = 11;
    r.bytes_out = 22;
    r.status = 201;
    r.protocol = ARC_ALOG_H2;
    r.https = 1;
    r.attempt = 2;
    r.err = 0;
    r.outcome = ARC_ALOG_O_COMPLETE;
    r.tls = 1;
    r.traced = 1;
    r.trace_flags = 1;
    r.has_parent = 1;
    for (int i = 0; i < 16; i++)
        r.trace_id[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 8; i++) {
        r.span_id[i] = (uint8_t)(0x10 + i);
        r.parent_id[i] = (uint8_t)(0xf0 + i);
    }
    r.client.in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::7", &r.client.in6.sin6_addr);
    r.client.in6.sin6_port = htons(40000);
    SET(&r, METHOD, "POST");
    SET(&r, HOST, "api.example.com");
    SET(&r, PATH, "/v1/items");
    SET(&r, QUERY, "a=1&token=REDACTED");
    SET(&r, ROUTE, "items");
    SET(&r, UPSTREAM, "app");
    r.has_upstream = 1;
    SET(&r, UPSTREAM_ADDR, "10.0.0.1:8080");
    SET(&r, REQUEST_ID, "01937a3b-0000-7000-8000-000000000000");
    SET(&r, TLS_VERSION, "TLSv1.3");
    SET(&r, TLS_CIPHER, "TLS_AES_128_GCM_SHA256");
    SET(&r, TLS_SNI, "api.example.com");
    SET(&r, TLS_SUBJECT, "CN=client,O=Example");
    SET(&r, USER_AGENT, "curl/8");
    SET(&r, REFERER, "https://example.com/");
    r.rl = ARC_ALOG_RL_REJECTED;
    r.rl_quota = 100;
    r.rl_window = 60;
    char line[4096];
    json_t *j = format_one(&r, line, sizeof(line));
    if (!j)
        return;
    CHECK_STR(JSTR(j, "ts"), "2026-12-07T12:20:16.123456789Z");
    CHECK_STR(JSTR(j, "kind"), "access");
    CHECK_STR(JSTR(j, "request_id"), "01937a3b-0000-7000-8000-000000000000");
    CHECK_STR(JSTR(j, "trace_id"), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    CHECK_STR(JSTR(j, "span_id"), "1011121314151617");
    CHECK_STR(JSTR(j, "parent_span_id"), "f0f1f2f3f4f5f6f7");
    CHECK(json_is_true(json_object_get(j, "trace_sampled")));
    CHECK_STR(JSTR(j, "method"), "POST");
    CHECK_STR(JSTR(j, "scheme"), "https");
    CHECK_STR(JSTR(j, "host"), "api.example.com");
    CHECK_STR(JSTR(j, "path"), "/v1/items");
    CHECK_STR(JSTR(j, "query"), "a=1&token=REDACTED");
    CHECK_STR(JSTR(j, "protocol"), "h2");
    CHECK_INT(JINT(j, "status"), 201);
    CHECK_STR(JSTR(j, "route"), "items");
    CHECK_STR(JSTR(j, "upstream"), "app");
    CHECK_STR(JSTR(j, "upstream_addr"), "10.0.0.1:8080");
    CHECK_INT(JINT(j, "attempt"), 2);
    CHECK_STR(JSTR(j, "client_ip"), "2001:db8::7");
    CHECK_INT(JINT(j, "client_port"), 40000);
    json_t *tls = json_object_get(j, "tls");
    CHECK_STR(JSTR(tls, "version"), "TLSv1.3");
    CHECK_STR(JSTR(tls, "cipher"), "TLS_AES_128_GCM_SHA256");
    CHECK_STR(JSTR(tls, "sni"), "api.example.com");
    CHECK_STR(JSTR(tls, "client_subject"), "CN=client,O=Example");
    CHECK_INT(JINT(j, "bytes_received"), 11);
    CHECK_INT(JINT(j, "bytes_sent"), 22);
    CHECK(JREAL(j, "duration_ms") == 12.346);
    CHECK(JREAL(j, "upstream_connect_ms") == 0.001);
    CHECK(JREAL(j, "upstream_ttfb_ms") == 5.5);
    CHECK(JREAL(j, "upstream_response_ms") == 12.0);
    CHECK_STR(JSTR(j, "user_agent"), "curl/8");
    CHECK_STR(JSTR(j, "referer"), "https://example.com/");
    CHECK(JNULL(j, "error"));
    CHECK(json_object_get(j, "truncated") == NULL);
    json_t *rl = json_object_get(j, "rate_limit");
    CHECK_STR(JSTR(rl, "name"), "items");
    CHECK_STR(JSTR(rl, "decision"), "rejected");
    CHECK_INT(JINT(rl, "quota"), 100);
    CHECK_INT(JINT(rl, "window_s"), 60);
    json_decref(j);
    /* every decision by name; a heavy hitter's block names its policy */
    static const char *const dec[] = { "", "allowed", "rejected", "delayed", "blocked",
                                       "allowed", "rejected" };
    for (unsigned k = ARC_ALOG_RL_ALLOWED; k <= ARC_ALOG_RL_HH_REJECTED; k++) {
        r.rl = (uint8_t)k;
        j = format_one(&r, line, sizeof(line));
        if (!j)
            continue;
        rl = json_object_get(j, "rate_limit");
        CHECK_STR(JSTR(rl, "decision"), dec[k]);
        CHECK_STR(JSTR(rl, "name"), k >= ARC_ALOG_RL_BLOCKED ? "heavy_hitters" : "items");
        json_decref(j);
    }
}

/* An aborted request with no route: nulls where nothing happened. */
static void test_format_nulls_and_errors(void)
{
    struct arc_alog_rec r;
    memset(&r, 0, sizeof(r));
    r.ts_ns = 1;
    r.status = 499;
    r.protocol = ARC_ALOG_H10;
    r.outcome = ARC_ALOG_O_CLIENT_ABORT;
    r.connect_ns = r.ttfb_ns = r.response_ns = ARC_ALOG_NONE;
    r.client.in.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.9", &r.client.in.sin_addr);
    r.client.in.sin_port = htons(1234);
    char line[4096];
    json_t *j = format_one(&r, line, sizeof(line));
    if (!j)
        return;
    CHECK_STR(JSTR(j, "ts"), "1970-01-01T00:00:00.000000001Z");
    CHECK_STR(JSTR(j, "protocol"), "http/1.0");
    CHECK_STR(JSTR(j, "scheme"), "http");
    CHECK_INT(JINT(j, "status"), 499);
    const char *nulls[] = { "request_id", "trace_id", "span_id", "parent_span_id", "method",
                            "host", "path", "query", "route", "upstream", "upstream_addr", "tls",
                            "upstream_connect_ms", "upstream_ttfb_ms", "upstream_response_ms",
                            "user_agent", "referer", "rate_limit" };
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (!JNULL(j, nulls[i])) {
            fprintf(stderr, "%s should be null: %s", nulls[i], line);
            CHECK(0);
        }
    CHECK(JREAL(j, "duration_ms") == 0.0);
    CHECK_STR(JSTR(j, "client_ip"), "192.0.2.9");
    CHECK_INT(JINT(j, "client_port"), 1234);
    CHECK_STR(JSTR(j, "error"), "client_abort");
    json_decref(j);
    /* an error kind wins over the outcome; unknown client: nulls */
    r.err = 1 + ARC_ERR_UPSTREAM_TIMEOUT;
    r.outcome = ARC_ALOG_O_COMPLETE;
    r.client.sa.sa_family = 0;
    j = format_one(&r, line, sizeof(line));
    if (j) {
        CHECK_STR(JSTR(j, "error"), "upstream_timeout");
        CHECK(JNULL(j, "client_ip"));
        CHECK(JNULL(j, "client_port"));
        json_decref(j);
    }
    CHECK_STR(arc_alog_error_text(0, ARC_ALOG_O_UPSTREAM_CUT), "upstream_cut");
    CHECK_STR(arc_alog_error_text(0, ARC_ALOG_O_CLIENT_TIMEOUT), "client_timeout");
    CHECK(arc_alog_error_text(0, ARC_ALOG_O_TUNNEL_END) == NULL);
    /* every error kind has its name in the log, the later ones too */
    CHECK_STR(arc_alog_error_text(1 + ARC_ERR_BODY_TOO_LARGE, 0), "body_too_large");
    CHECK_STR(arc_alog_error_text(1 + ARC_ERR_ROUTE_TIMEOUT, 0), "route_timeout");
    for (unsigned k = 0; k < ARC_ERR__COUNT; k++)
        CHECK(strcmp(arc_alog_error_text(1 + k, 0), "error") != 0);
    CHECK_STR(arc_alog_error_text(200, 0), "error");
}

/* Whatever bytes a client sends, the line is one valid JSON object. */
static void test_format_hostile_bytes(void)
{
    struct arc_alog_rec r;
    memset(&r, 0, sizeof(r));
    r.connect_ns = r.ttfb_ns = r.response_ns = ARC_ALOG_NONE;
    SET(&r, PATH, "/a\"b\\c\n\r\t\x01\x7f");
    SET(&r, USER_AGENT, "bad \xff\xfe utf8 \xc3\xa9 ok \xe2\x82");
    SET(&r, REFERER, "\xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf");
    r.truncated = (1u << ARC_ALOG_T_PATH) | (1u << ARC_ALOG_T_USER_AGENT);
    char line[4096];
    json_t *j = format_one(&r, line, sizeof(line));
    if (!j)
        return;
    CHECK_STR(JSTR(j, "path"), "/a\"b\\c\n\r\t\x01\x7f");
    CHECK_STR(JSTR(j, "user_agent"), "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xc3\xa9 ok \xef\xbf\xbd\xef\xbf\xbd");
    /* an emoji passes; a surrogate and an overlong form do not */
    CHECK(strncmp(JSTR(j, "referer"), "\xf0\x9f\x98\x80 \xef\xbf\xbd", 8) == 0);
    CHECK(strstr(JSTR(j, "referer"), "\xc0") == NULL);
    json_t *t = json_object_get(j, "truncated");
    CHECK_INT(json_array_size(t), 2);
    CHECK_STR(json_string_value(json_array_get(t, 0)), "path");
    CHECK_STR(json_string_value(json_array_get(t, 1)), "user_agent");
    json_decref(j);
}

/* The packed string area: a field over its cap is cut to cap - 1 bytes and
 * marked; an empty value is absent; a field set again wins; setting fields
 * over and over never writes past the area (what does not fit is cut). */
/* The text of "key":value in line (value up to the next ',' or '}'). */
static const char *field_text(const char *line, const char *key, char *out, size_t cap)
{
    char k[64];
    snprintf(k, sizeof(k), "\"%s\":", key);
    const char *p = strstr(line, k);
    out[0] = '\0';
    if (!p)
        return out;
    p += strlen(k);
    size_t n = strcspn(p, ",}");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

/* Record fields are escaped a word at a time, the last short word read
 * past the field: at every length from 1 to 40, with a byte to escape (or
 * none) at every position, the text is what the byte-by-byte escaper
 * gives, bytes after the field never show, and a field that ends the
 * string area (its last word read from the record's padding) is exact. */
static void test_format_field_words(void)
{
    static const char specials[] = { 0, '"', '\\', '\n', 0x1f, 0x7f, (char)0x80, (char)0xc3, (char)0xff,
                                     0x20, 0x7e };
    struct arc_alog_rec *r = malloc(sizeof(*r));    /* exact size: ASan sees any over-read */
    CHECK(r != NULL);
    if (!r)
        return;
    long bad = 0;
    for (size_t n = 1; n <= 40; n++)
        for (size_t sp = 0; sp < sizeof(specials); sp++)
            for (size_t at = 0; at < (sp ? n : 1); at++) {
                char v[64];
                for (size_t i = 0; i < n; i++)
                    v[i] = (char)('A' + (i * 7 + n) % 26);
                if (sp)
                    v[at] = specials[(size_t)sp];
                v[n] = '\0';
                memset(r, '"', sizeof(*r));     /* what follows a field: quotes */
                memset(r, 0, offsetof(struct arc_alog_rec, strs));
                r->connect_ns = r->ttfb_ns = r->response_ns = ARC_ALOG_NONE;
                arc_alog_strs_reset(r);
                arc_alog_put(r, ARC_ALOG_S_PATH, v, n);
                r->strs[r->used] = '"';         /* the byte after the NUL too */
                struct arc_sbuf o = { 0 }, want = { 0 };
                arc_alog_format(&o, r);
                arc_alog_json_str(&want, v);
                char got[512];
                field_text(o.p, "path", got, sizeof(got));
                if (strcmp(got, want.p) != 0) {
                    if (bad++ < 5)
                        fprintf(stderr, "n=%zu sp=%zu at=%zu: %s != %s\n", n, sp, at, got, want.p);
                }
                arc_sbuf_dispose(&o);
                arc_sbuf_dispose(&want);
            }
    CHECK_INT(bad, 0);
    /* Every field at its cap: the last one ends the string area. */
    memset(r, 0, sizeof(*r));
    r->connect_ns = r->ttfb_ns = r->response_ns = ARC_ALOG_NONE;
    r->has_upstream = 1;
    r->tls = 1;
    char big[600];
    memset(big, 'x', sizeof(big));
    for (unsigned f = 0; f < ARC_ALOG_S__COUNT; f++)
        arc_alog_put(r, f, big, arc_alog_caps[f] - 1);
    CHECK_INT(r->used, ARC_ALOG_STR_BYTES);
    memset(r->strs_pad, '"', sizeof(r->strs_pad));
    char *line = malloc(16384);
    json_t *j = line ? format_one(r, line, 16384) : NULL;
    if (j) {
        CHECK_INT(strlen(JSTR(j, "referer")), ARC_ALOG_REFERER - 1);
        CHECK_INT(strlen(JSTR(j, "path")), ARC_ALOG_PATH - 1);
        CHECK(strspn(JSTR(j, "referer"), "x") == ARC_ALOG_REFERER - 1);
        json_decref(j);
    }
    free(line);
    free(r);
}

/* Numbers as the line writes them, at the digit-count boundaries. */
static void test_format_numbers(void)
{
    static const uint64_t v[] = { 0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1001, 9999, 10000,
                                  65535, 123456789, 18446744073709551614ull };
    struct arc_alog_rec r;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(&r, 0, sizeof(r));
        r.connect_ns = ARC_ALOG_NONE;
        r.bytes_in = v[i];
        r.bytes_out = v[i] / 3;
        r.status = (uint16_t)(100 + v[i] % 900);
        r.attempt = (uint8_t)v[i];
        r.client.in.sin_family = AF_INET;
        r.client.in.sin_addr.s_addr = htonl((uint32_t)(v[i] * 2654435761u));
        r.client.in.sin_port = htons((uint16_t)v[i]);
        r.dur_ns = v[i];                /* ms with µs, rounded to the nearest µs */
        r.ttfb_ns = v[i] * 1000;
        r.response_ns = v[i] % 1000000000000ull;
        struct arc_sbuf o = { 0 };
        arc_alog_format(&o, &r);
        char got[128], want[128];
        snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
        CHECK_STR(field_text(o.p, "bytes_received", got, sizeof(got)), want);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)(v[i] / 3));
        CHECK_STR(field_text(o.p, "bytes_sent", got, sizeof(got)), want);
        snprintf(want, sizeof(want), "%u", (unsigned)(100 + v[i] % 900));
        CHECK_STR(field_text(o.p, "status", got, sizeof(got)), want);
        snprintf(want, sizeof(want), "%u", (unsigned)(uint8_t)v[i]);
        CHECK_STR(field_text(o.p, "attempt", got, sizeof(got)), want);
        snprintf(want, sizeof(want), "%u", (unsigned)(uint16_t)v[i]);
        CHECK_STR(field_text(o.p, "client_port", got, sizeof(got)), want);
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &r.client.in.sin_addr, ip, sizeof(ip));
        snprintf(want, sizeof(want), "\"%s\"", ip);
        CHECK_STR(field_text(o.p, "client_ip", got, sizeof(got)), want);
        const struct { const char *key; uint64_t ns; } ms[] = {
            { "duration_ms", r.dur_ns }, { "upstream_ttfb_ms", r.ttfb_ns },
            { "upstream_response_ms", r.response_ns },
        };
        for (size_t k = 0; k < 3; k++) {
            unsigned long long us = (unsigned long long)((ms[k].ns + 500) / 1000);
            snprintf(want, sizeof(want), "%llu.%03llu", us / 1000, us % 1000);
            CHECK_STR(field_text(o.p, ms[k].key, got, sizeof(got)), want);
        }
        CHECK_STR(field_text(o.p, "upstream_connect_ms", got, sizeof(got)), "null");
        arc_sbuf_dispose(&o);
    }
}

/* Trace and span ids as hex: every byte value. */
static void test_format_hex_ids(void)
{
    struct arc_alog_rec r;
    for (unsigned k = 0; k < 16; k++) {
        memset(&r, 0, sizeof(r));
        r.connect_ns = r.ttfb_ns = r.response_ns = ARC_ALOG_NONE;
        r.traced = 1;
        r.has_parent = 1;
        for (unsigned i = 0; i < 16; i++)
            r.trace_id[i] = (uint8_t)(16 * k + i);
        for (unsigned i = 0; i < 8; i++) {
            r.span_id[i] = (uint8_t)(255 - 16 * k - i);
            r.parent_id[i] = (uint8_t)(16 * k + 8 + i);
        }
        char want[3][40], got[64];
        for (unsigned i = 0; i < 16; i++)
            snprintf(want[0] + 2 * i, 3, "%02x", r.trace_id[i]);
        for (unsigned i = 0; i < 8; i++) {
            snprintf(want[1] + 2 * i, 3, "%02x", r.span_id[i]);
            snprintf(want[2] + 2 * i, 3, "%02x", r.parent_id[i]);
        }
        struct arc_sbuf o = { 0 };
        arc_alog_format(&o, &r);
        const char *keys[3] = { "trace_id", "span_id", "parent_span_id" };
        for (int j = 0; j < 3; j++) {
            char q[160];
            snprintf(q, sizeof(q), "\"%s\"", want[j]);
            CHECK_STR(field_text(o.p, keys[j], got, sizeof(got)), q);
        }
        arc_sbuf_dispose(&o);
    }
}

/* logging.writer.drop_behind: writeback a step (behind / 4) at a time,
 * pages dropped once further than `behind` behind the end, a step at a
 * time; never with 0; a file that shrank (rotated) starts over. */
static void test_drop_plan(void)
{
    struct arc_alog_drop d;
    uint64_t synced = 0, dropped = 0;
    const uint64_t mb = 1 << 20;
    arc_alog__drop_plan(100 * mb, 0, &synced, &dropped, &d);
    CHECK(!d.sync_len && !d.drop_len && synced == 0 && dropped == 0);
    arc_alog__drop_plan(1 * mb, 8 * mb, &synced, &dropped, &d);
    CHECK(!d.sync_len && !d.drop_len);              /* less than a step (2 MB) */
    arc_alog__drop_plan(2 * mb, 8 * mb, &synced, &dropped, &d);
    CHECK_INT(d.sync_off, 0);
    CHECK_INT(d.sync_len, 2 * mb);
    CHECK_INT(synced, 2 * mb);
    CHECK(!d.drop_len);
    arc_alog__drop_plan(9 * mb, 8 * mb, &synced, &dropped, &d);
    CHECK_INT(d.sync_off, 2 * mb);
    CHECK_INT(d.sync_len, 7 * mb);
    CHECK(!d.drop_len);                             /* 1 MB behind the mark: not a step */
    arc_alog__drop_plan(10 * mb, 8 * mb, &synced, &dropped, &d);
    CHECK(!d.sync_len);
    CHECK_INT(d.drop_off, 0);
    CHECK_INT(d.drop_len, 2 * mb);
    CHECK_INT(dropped, 2 * mb);
    arc_alog__drop_plan(11 * mb, 8 * mb, &synced, &dropped, &d);
    CHECK_INT(d.sync_off, 9 * mb);                  /* a step since the last one */
    CHECK_INT(d.sync_len, 2 * mb);
    CHECK(!d.drop_len);
    arc_alog__drop_plan(20 * mb, 8 * mb, &synced, &dropped, &d);
    CHECK_INT(d.sync_off, 11 * mb);
    CHECK_INT(d.sync_len, 9 * mb);
    CHECK_INT(d.drop_off, 2 * mb);
    CHECK_INT(d.drop_len, 10 * mb);
    /* every byte synced before it is dropped, and nothing twice */
    CHECK(synced >= dropped + 8 * mb);
    arc_alog__drop_plan(3 * mb, 8 * mb, &synced, &dropped, &d);     /* a new file */
    CHECK(!d.sync_len && !d.drop_len);
    CHECK_INT(synced, 3 * mb);
    CHECK_INT(dropped, 3 * mb);
    arc_alog__drop_plan(5 * mb, 8 * mb, &synced, &dropped, &d);
    CHECK_INT(d.sync_off, 3 * mb);
    CHECK_INT(d.sync_len, 2 * mb);
}

/* "ts": the seconds part is remembered between lines; it stays right
 * across second, minute, hour, day, month and year boundaries, leap days
 * (2000 and 2024 are leap years, 2100 is not), and lines out of time order
 * (rings of several workers interleave). */
static void test_format_timestamps(void)
{
    static const struct { uint64_t sec; uint32_t ns; const char *text; } t[] = {
        { 951782399, 999999999, "2000-02-28T23:59:59.999999999Z" },
        { 951782400, 0, "2000-02-29T00:00:00.000000000Z" },
        { 951868800, 1, "2000-03-01T00:00:00.000000001Z" },
        { 1709164799, 100000000, "2024-02-28T23:59:59.100000000Z" },
        { 1709164800, 10, "2024-02-29T00:00:00.000000010Z" },
        { 1709251199, 999999999, "2024-02-29T23:59:59.999999999Z" },
        { 1709251200, 123456789, "2024-03-01T00:00:00.123456789Z" },
        { 1735689599, 500000000, "2024-12-31T23:59:59.500000000Z" },
        { 1735689600, 500000000, "2025-01-01T00:00:00.500000000Z" },
        { 4107542399, 7, "2100-02-28T23:59:59.000000007Z" },
        { 4107542400, 70, "2100-03-01T00:00:00.000000070Z" },
        { 1796646016, 123456789, "2026-12-07T12:20:16.123456789Z" },
        { 1796646016, 987654321, "2026-12-07T12:20:16.987654321Z" },
        { 1796646017, 0, "2026-12-07T12:20:17.000000000Z" },
        { 1796646059, 0, "2026-12-07T12:20:59.000000000Z" },
        { 1796646060, 0, "2026-12-07T12:21:00.000000000Z" },
        { 1796648399, 0, "2026-12-07T12:59:59.000000000Z" },
        { 1796648400, 0, "2026-12-07T13:00:00.000000000Z" },
        { 1796646016, 5, "2026-12-07T12:20:16.000000005Z" },       /* back in time */
        { 0, 0, "1970-01-01T00:00:00.000000000Z" },
    };
    struct arc_alog_rec r;
    memset(&r, 0, sizeof(r));
    r.connect_ns = r.ttfb_ns = r.response_ns = ARC_ALOG_NONE;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
            size_t k = pass ? sizeof(t) / sizeof(t[0]) - 1 - i : i;
            r.ts_ns = t[k].sec * 1000000000ull + t[k].ns;
            struct arc_sbuf o = { 0 };
            arc_alog_format(&o, &r);
            char want[64];
            snprintf(want, sizeof(want), "{\"ts\":\"%s\",", t[k].text);
            CHECK(strncmp(o.p, want, strlen(want)) == 0);
            if (strncmp(o.p, want, strlen(want)) != 0)
                fprintf(stderr, "got %.40s want %s\n", o.p, want);
            arc_sbuf_dispose(&o);
        }
}

static void test_put_caps_and_bounds(void)
{
    static struct arc_alog_rec r;
    memset(&r, 0, sizeof(r));
    char big[4097];
    memset(big, 'p', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    arc_alog_put(&r, ARC_ALOG_S_PATH, big, sizeof(big) - 1);
    CHECK_INT(strlen(arc_alog_str(&r, PATH)), ARC_ALOG_PATH - 1);
    CHECK(r.truncated & (1u << ARC_ALOG_T_PATH));
    arc_alog_put(&r, ARC_ALOG_S_HOST, "h", 1);
    arc_alog_put(&r, ARC_ALOG_S_HOST, "h2", 2);
    CHECK_STR(arc_alog_str(&r, HOST), "h2");
    CHECK_STR(arc_alog_str(&r, PATH), big + sizeof(big) - ARC_ALOG_PATH);
    arc_alog_put(&r, ARC_ALOG_S_REFERER, "", 0);
    CHECK_STR(arc_alog_str(&r, REFERER), "");
    CHECK_STR(arc_alog_str(&r, QUERY), "");
    CHECK(!(r.truncated & (1u << ARC_ALOG_T_USER_AGENT)));
    for (int i = 0; i < 100; i++)
        arc_alog_put(&r, ARC_ALOG_S_USER_AGENT, big, sizeof(big) - 1);
    CHECK(r.used <= ARC_ALOG_STR_BYTES);
    CHECK(r.truncated & (1u << ARC_ALOG_T_USER_AGENT));
    CHECK(strlen(arc_alog_str(&r, USER_AGENT)) < ARC_ALOG_UA);
    CHECK_STR(arc_alog_str(&r, HOST), "h2");
    arc_alog_strs_reset(&r);
    CHECK_STR(arc_alog_str(&r, PATH), "");
    CHECK_INT(r.used, 1);
}

int main(void)
{
    RUN(test_ring_full_drops);
    RUN(test_ring_threads);
    RUN(test_ring_large);
    RUN(test_format_full);
    RUN(test_format_nulls_and_errors);
    RUN(test_format_hostile_bytes);
    RUN(test_put_caps_and_bounds);
    RUN(test_format_field_words);
    RUN(test_format_numbers);
    RUN(test_format_timestamps);
    RUN(test_format_hex_ids);
    RUN(test_drop_plan);
    return TEST_REPORT();
}
