/*
 * OTLP span JSON of one record: the server span and the upstream client
 * span, their ids, parents, times, kinds, statuses and attributes; no
 * client span without an upstream attempt.
 */
#include "test.h"
#include "obs/otlp.h"
#include "obs/metrics.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <string.h>

/* Sets a string field of a record (what the worker does with arc_alog_put). */
#define SET(r, F, v) arc_alog_put((r), ARC_ALOG_S_##F, (v), strlen(v))

static json_t *spans_of(const struct arc_alog_rec *r)
{
    struct arc_sbuf o = { 0 };
    bool first = true;
    arc_sbuf_append(&o, "[", 1);
    arc_otlp_spans(&o, r, &first);
    arc_sbuf_append(&o, "]", 1);
    json_error_t je;
    json_t *j = json_loadb(o.p, o.len, 0, &je);
    if (!j)
        fprintf(stderr, "not JSON (%s): %s\n", je.text, o.p);
    CHECK(j != NULL);
    arc_sbuf_dispose(&o);
    return j;
}

static const char *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a) {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0) {
            json_t *v = json_object_get(a, "value");
            json_t *s = json_object_get(v, "stringValue");
            return json_string_value(s ? s : json_object_get(v, "intValue"));
        }
    }
    return NULL;
}

#define JS(j, k) json_string_value(json_object_get((j), (k)))

static void fill(struct arc_alog_rec *r)
{
    memset(r, 0, sizeof(*r));
    r->ts_ns = 1000000000ull;
    r->dur_ns = 5000000;
    r->connect_ns = 100000;
    r->ttfb_ns = 2000000;
    r->response_ns = 4000000;
    r->status = 503;
    r->protocol = ARC_ALOG_H2;
    r->attempt = 2;
    r->traced = 1;
    r->trace_flags = 1;
    r->has_parent = 1;
    r->has_upstream = 1;
    memset(r->trace_id, 0xab, 16);
    memset(r->span_id, 0x11, 8);
    memset(r->parent_id, 0x22, 8);
    memset(r->server_span_id, 0x33, 8);
    r->client.in.sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.2.3", &r->client.in.sin_addr);
    r->client.in.sin_port = htons(5555);
    SET(r, METHOD, "PUT");
    SET(r, HOST, "h.example");
    SET(r, PATH, "/a\"b");
    SET(r, ROUTE, "items");
    SET(r, UPSTREAM, "app");
    SET(r, UPSTREAM_ADDR, "[::1]:8080");
    SET(r, REQUEST_ID, "rid-1");
}

static void test_two_spans(void)
{
    struct arc_alog_rec r;
    fill(&r);
    json_t *j = spans_of(&r);
    if (!j)
        return;
    CHECK_INT(json_array_size(j), 2);
    json_t *s = json_array_get(j, 0), *c = json_array_get(j, 1);
    CHECK_STR(JS(s, "traceId"), "abababababababababababababababab");
    CHECK_STR(JS(s, "spanId"), "3333333333333333");
    CHECK_STR(JS(s, "parentSpanId"), "2222222222222222");
    CHECK_STR(JS(c, "spanId"), "1111111111111111");
    CHECK_STR(JS(c, "parentSpanId"), "3333333333333333");
    CHECK_INT(json_integer_value(json_object_get(s, "kind")), 2);
    CHECK_INT(json_integer_value(json_object_get(c, "kind")), 3);
    CHECK_STR(JS(s, "name"), "PUT items");
    CHECK_STR(JS(c, "name"), "PUT");
    CHECK_STR(JS(s, "startTimeUnixNano"), "1000000000");
    CHECK_STR(JS(s, "endTimeUnixNano"), "1005000000");
    CHECK_STR(JS(c, "startTimeUnixNano"), "1001000000");
    CHECK_STR(JS(c, "endTimeUnixNano"), "1005000000");
    CHECK_INT(json_integer_value(json_object_get(s, "flags")), 0x301);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(s, "status"), "code")), 2);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(c, "status"), "code")), 2);
    CHECK_STR(attr(s, "http.request.method"), "PUT");
    CHECK_STR(attr(s, "http.response.status_code"), "503");
    CHECK_STR(attr(s, "url.path"), "/a\"b");
    CHECK(attr(s, "url.query") == NULL);
    CHECK_STR(attr(s, "network.protocol.version"), "2");
    CHECK_STR(attr(s, "client.address"), "10.1.2.3");
    CHECK_STR(attr(s, "client.port"), "5555");
    CHECK_STR(attr(s, "server.address"), "h.example");
    CHECK_STR(attr(s, "arc.request_id"), "rid-1");
    CHECK_STR(attr(s, "error.type"), "503");
    CHECK_STR(attr(c, "error.type"), "503");
    CHECK_STR(attr(c, "server.address"), "::1");
    CHECK_STR(attr(c, "server.port"), "8080");
    CHECK_STR(attr(c, "http.request.resend_count"), "1");
    CHECK_STR(attr(c, "http.response.status_code"), "503");
    CHECK_STR(attr(c, "arc.upstream"), "app");
    json_decref(j);
}

static void test_local_answer_has_one_span(void)
{
    struct arc_alog_rec r;
    fill(&r);
    r.status = 404;
    r.err = 1 + ARC_ERR_NOT_FOUND;
    r.has_upstream = 0;
    r.attempt = 0;
    r.has_parent = 0;
    r.off[ARC_ALOG_S_ROUTE] = 0;
    r.response_ns = r.ttfb_ns = r.connect_ns = ARC_ALOG_NONE;
    json_t *j = spans_of(&r);
    if (!j)
        return;
    CHECK_INT(json_array_size(j), 1);
    json_t *s = json_array_get(j, 0);
    CHECK(json_object_get(s, "parentSpanId") == NULL);
    CHECK_STR(JS(s, "name"), "PUT");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(s, "status"), "code")), 0);
    CHECK_INT(json_integer_value(json_object_get(s, "flags")), 0x101);
    json_decref(j);
}

int main(void)
{
    RUN(test_two_spans);
    RUN(test_local_answer_has_one_span);
    return TEST_REPORT();
}
