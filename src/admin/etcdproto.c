/*
 * The etcd config source's pure parts (etcd.c is the loop side): base64,
 * the JSON bodies of etcd's v3 gateway requests, its range and watch
 * answers, and an incremental HTTP/1.1 response reader. Unit-tested
 * (tests/unit/admin/etcd_test.c). Thread: any.
 */
#include "admin/admin_int.h"
#include "core/sbuf.h"
#include "http1/http1.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A config is at most 16 MiB, base64 grows it by a third, JSON adds a little. */
#define ETCD_BODY_MAX (24u << 20)

/* ------------------------------------------------------------ pure helpers */

char *arc_etcd__b64(const void *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

char *arc_etcd__unb64(const char *s, size_t n, size_t *out_len)
{
    if (n % 4 != 0 || n > INT32_MAX)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    int r = n ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : 0;
    if (r < 0) {
        free(out);
        return NULL;
    }
    size_t len = (size_t)r;
    /* EVP_DecodeBlock counts the padding's bytes as data: drop them. */
    if (n >= 1 && s[n - 1] == '=')
        len--;
    if (n >= 2 && s[n - 2] == '=')
        len--;
    out[len] = '\0';
    *out_len = len;
    return (char *)out;
}

char *arc_etcd__key(const char *prefix)
{
    size_t n = strlen(prefix);
    char *k = malloc(n + sizeof("config"));
    if (!k)
        return NULL;
    memcpy(k, prefix, n);
    memcpy(k + n, "config", sizeof("config"));
    return k;
}

/* {"key": b64} (range), {"create_request": {"key", "start_revision"}}
 * (watch) or {"key", "value"} (put): JSON, owned by the caller. */
static char *body_json(json_t *doc)
{
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return s;
}

char *arc_etcd__range_body(const char *key)
{
    char *k = arc_etcd__b64(key, strlen(key));
    char *s = k ? body_json(json_pack("{s:s}", "key", k)) : NULL;
    free(k);
    return s;
}

char *arc_etcd__watch_body(const char *key, int64_t start_revision)
{
    char *k = arc_etcd__b64(key, strlen(key));
    char *s = k ? body_json(json_pack("{s:{s:s,s:I}}", "create_request", "key", k,
                                      "start_revision", (json_int_t)start_revision))
                : NULL;
    free(k);
    return s;
}

char *arc_etcd__put_body(const char *key, const char *value, size_t len)
{
    char *k = arc_etcd__b64(key, strlen(key)), *v = arc_etcd__b64(value, len);
    char *s = k && v ? body_json(json_pack("{s:s,s:s}", "key", k, "value", v)) : NULL;
    free(k);
    free(v);
    return s;
}

/* etcd's gateway writes int64 fields as JSON strings ("42"). */
int64_t arc_etcd__int64(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

/* The value of a kv object ({"key", "value", "mod_revision"}), decoded. */
static int kv_value(const json_t *kv, struct arc_etcd_value *out)
{
    const json_t *v = json_object_get(kv, "value");
    out->mod_revision = arc_etcd__int64(kv, "mod_revision");
    if (!v) {                           /* an empty value is left out */
        out->text = calloc(1, 1);
        out->len = 0;
        return out->text ? 0 : -1;
    }
    if (!json_is_string(v))
        return -1;
    out->text = arc_etcd__unb64(json_string_value(v), json_string_length(v), &out->len);
    return out->text ? 0 : -1;
}

int arc_etcd__parse_range(const char *body, size_t len, struct arc_etcd_value *out,
                          int64_t *revision, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *doc = json_loadb(body, len, 0, &je);
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "range answer is not a JSON object");
        json_decref(doc);
        return -1;
    }
    *revision = arc_etcd__int64(json_object_get(doc, "header"), "revision");
    const json_t *kvs = json_object_get(doc, "kvs");
    int rc = 0;
    if (json_is_array(kvs) && json_array_size(kvs) > 0) {
        if (kv_value(json_array_get(kvs, 0), out) < 0) {
            snprintf(err, errlen, "range answer: the value is not base64");
            rc = -1;
        } else {
            rc = 1;
        }
    }
    json_decref(doc);
    return rc;
}

int arc_etcd__parse_watch(const char *line, size_t len, struct arc_etcd_event *ev,
                          char *err, size_t errlen)
{
    memset(ev, 0, sizeof(*ev));
    json_error_t je;
    json_t *doc = json_loadb(line, len, 0, &je);
    const json_t *res = json_object_get(doc, "result");
    if (!json_is_object(doc) || !json_is_object(res)) {
        const json_t *e = json_object_get(doc, "error");
        snprintf(err, errlen, "watch: %s",
                 json_is_object(e) && json_is_string(json_object_get(e, "message"))
                     ? json_string_value(json_object_get(e, "message"))
                     : "not a watch response");
        json_decref(doc);
        return -1;
    }
    ev->revision = arc_etcd__int64(json_object_get(res, "header"), "revision");
    ev->created = json_is_true(json_object_get(res, "created"));
    if (json_is_true(json_object_get(res, "canceled")) ||
        arc_etcd__int64(res, "compact_revision") > 0) {
        snprintf(err, errlen, "watch canceled by etcd%s",
                 arc_etcd__int64(res, "compact_revision") > 0 ? " (revision compacted)" : "");
        json_decref(doc);
        return -1;
    }
    const json_t *evs = json_object_get(res, "events");
    size_t n = json_is_array(evs) ? json_array_size(evs) : 0;
    /* Only the last event counts: the earlier values were replaced. */
    if (n) {
        const json_t *e = json_array_get(evs, n - 1);
        const json_t *type = json_object_get(e, "type");
        if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0) {
            ev->deleted = true;
            ev->value.mod_revision = arc_etcd__int64(json_object_get(e, "kv"), "mod_revision");
        } else if (kv_value(json_object_get(e, "kv"), &ev->value) < 0) {
            snprintf(err, errlen, "watch: the value is not base64");
            json_decref(doc);
            return -1;
        } else {
            ev->has_value = true;
        }
    }
    json_decref(doc);
    return 0;
}

/* ------------------------------------------------------------ response reader */

void arc_etcd__reader_init(struct arc_etcd_reader *r)
{
    arc_sbuf_dispose(&r->raw);
    arc_sbuf_dispose(&r->body);
    memset(r, 0, sizeof(*r));
    arc_h1_chunked_init(&r->chunk);
}

void arc_etcd__reader_dispose(struct arc_etcd_reader *r)
{
    arc_sbuf_dispose(&r->raw);
    arc_sbuf_dispose(&r->body);
}

int arc_etcd__reader_feed(struct arc_etcd_reader *r, const char *p, size_t n, char *err,
                          size_t errlen)
{
    if (r->done)
        return 1;
    if (!r->head_done) {
        arc_sbuf_append(&r->raw, p, n);
        struct arc_h1_header hdrs[64];
        struct arc_h1_response resp;
        struct arc_h1_limits lim = { .max_header_bytes = 65536, .max_headers = 64 };
        enum arc_h1_status st = arc_h1_parse_response(r->raw.p, r->raw.len, &lim, false, false,
                                                      hdrs, 64, &resp);
        if (st == ARC_H1_INCOMPLETE)
            return r->raw.len > lim.max_header_bytes ? (snprintf(err, errlen, "answer head too "
                                                                 "large"), -1) : 0;
        if (st != ARC_H1_OK) {
            snprintf(err, errlen, "malformed answer");
            return -1;
        }
        if (resp.status < 200) {        /* 100 Continue: skip it */
            size_t rest = r->raw.len - resp.head_len;
            memmove(r->raw.p, r->raw.p + resp.head_len, rest);
            r->raw.len = rest;
            return rest ? arc_etcd__reader_feed(r, "", 0, err, errlen) : 0;
        }
        r->status = resp.status;
        r->framing = resp.body;
        r->left = resp.content_length;
        r->head_done = true;
        p = r->raw.p + resp.head_len;
        n = r->raw.len - resp.head_len;
        if (r->framing == ARC_H1_BODY_NONE || (r->framing == ARC_H1_BODY_LENGTH && !r->left)) {
            r->done = true;
            return 1;
        }
    }
    while (n) {
        size_t take = n;
        if (r->framing == ARC_H1_BODY_LENGTH) {
            take = (size_t)ARC_MIN((uint64_t)n, r->left);
            arc_sbuf_append(&r->body, p, take);
            r->left -= take;
            if (!r->left)
                r->done = true;
        } else if (r->framing == ARC_H1_BODY_CHUNKED) {
            const char *data, *why;
            size_t dlen;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&r->chunk, p, n, &take, &data, &dlen,
                                                          &why);
            if (rc == ARC_H1_CHUNK_ERROR) {
                snprintf(err, errlen, "bad chunked answer: %s", why);
                return -1;
            }
            if (rc == ARC_H1_CHUNK_DATA)
                arc_sbuf_append(&r->body, data, dlen);
            if (rc == ARC_H1_CHUNK_DONE)
                r->done = true;
        } else {
            arc_sbuf_append(&r->body, p, take);        /* until close */
        }
        if (r->body.len > ETCD_BODY_MAX) {
            snprintf(err, errlen, "answer larger than %u bytes", ETCD_BODY_MAX);
            return -1;
        }
        p += take;
        n -= take;
        if (r->done)
            break;
    }
    /* (the head buffer is not needed any more once the body started) */
    if (r->raw.len) {
        arc_sbuf_dispose(&r->raw);
        r->raw = (struct arc_sbuf){ 0 };
    }
    return r->done ? 1 : 0;
}

size_t arc_etcd__reader_line(struct arc_etcd_reader *r, char **line)
{
    char *nl = r->body.len ? memchr(r->body.p + r->off, '\n', r->body.len - r->off) : NULL;
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - (r->body.p + r->off));
    *line = r->body.p + r->off;
    r->off += n + 1;
    return n + 1;
}

void arc_etcd__reader_compact(struct arc_etcd_reader *r)
{
    if (!r->off)
        return;
    memmove(r->body.p, r->body.p + r->off, r->body.len - r->off);
    r->body.len -= r->off;
    r->off = 0;
}

