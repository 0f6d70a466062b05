/*
 * The system log (see log.h). One mutex orders the records: stderr and the
 * sink see them in the same order.
 *
 *   arc_log ─▶ format ─┬─▶ stderr (text or NDJSON)
 *                      └─▶ sink set?  yes ─▶ sink (NDJSON)
 *                                     no  ─▶ early buffer (handed over by arc_log_set_sink)
 */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 4096
#define LINE_MAX_BYTES (6 * MSG_MAX + 1024)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool json_stderr;                /* set by arc_log_init */
static bool keep_early;                 /* arc run: keep records for the sink */
static arc_log_sink_fn sink;
static char *early;
static size_t early_len;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

const char *arc_log_level_name(enum arc_log_level lv)
{
    return (unsigned)lv < 4 ? level_names[lv] : "info";
}

void arc_log_init(void)
{
    const char *f = getenv("ARC_LOG_FORMAT");
    pthread_mutex_lock(&mu);
    if (f && strcmp(f, "json") == 0)
        json_stderr = true;
    else if (f && strcmp(f, "text") == 0)
        json_stderr = false;
    else
        json_stderr = !isatty(STDERR_FILENO);
    keep_early = true;
    pthread_mutex_unlock(&mu);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned v = c & (0x3f >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return n;
}

struct out {
    char *p;
    size_t len, cap;                    /* cap excludes the NUL */
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap)
        n = o->cap - o->len;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(struct out *o, const char *s)
{
    static const char hexd[] = "0123456789abcdef";
    put(o, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned c = *u;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            put(o, e, 2);
            u++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = { '\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15] };
            put(o, e, 6);
            u++;
        } else if (c < 0x80) {
            put(o, (const char *)u, 1);
            u++;
        } else {
            size_t n = utf8_len(u);
            if (n) {
                put(o, (const char *)u, n);
                u += n;
            } else {
                put(o, "\\ufffd", 6);
                u++;
            }
        }
    }
    put(o, "\"", 1);
}

size_t arc_log_format_json(char *buf, size_t len, uint64_t ts_ns, enum arc_log_level lv,
                           const char *msg, const char *file, int line, int col)
{
    if (!len)
        return 0;
    struct out o = { buf, 0, len - 1 };
    time_t sec = (time_t)(ts_ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char t[96];
    int k = snprintf(t, sizeof(t), "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09uZ\","
                     "\"kind\":\"system\",\"level\":\"%s\",\"msg\":", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)(ts_ns % 1000000000ull), arc_log_level_name(lv));
    put(&o, t, (size_t)k);
    put_str(&o, msg);
    if (file) {
        put(&o, ",\"file\":", 8);
        put_str(&o, file);
        k = snprintf(t, sizeof(t), ",\"line\":%d,\"col\":%d", line, col);
        put(&o, t, (size_t)k);
    }
    put(&o, "}", 1);
    buf[o.len] = '\0';
    return o.len;
}

static void emit(enum arc_log_level lv, const char *msg, const char *file, int line, int col)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    static char line_buf[LINE_MAX_BYTES];   /* under mu */
    pthread_mutex_lock(&mu);
    size_t n = 0;
    if (json_stderr || sink || keep_early) {
        n = arc_log_format_json(line_buf, sizeof(line_buf) - 1, ns, lv, msg, file, line, col);
        line_buf[n++] = '\n';
        line_buf[n] = '\0';
    }
    if (json_stderr) {
        fwrite(line_buf, 1, n, stderr);
    } else if (file && line > 0) {
        fprintf(stderr, "%s:%d:%d: %s: %s\n", file, line, col,
                lv == ARC_LOG_ERROR ? "error" : lv == ARC_LOG_WARN ? "warning" : "note", msg);
    } else if (file) {
        fprintf(stderr, "%s: %s: %s\n", file,
                lv == ARC_LOG_ERROR ? "error" : lv == ARC_LOG_WARN ? "warning" : "note", msg);
    } else {
        fprintf(stderr, "arc: %s\n", msg);
    }
    fflush(stderr);
    if (sink) {
        sink(line_buf, n);
    } else if (keep_early && early_len + n <= ARC_LOG_EARLY_BYTES) {
        if (!early)
            early = malloc(ARC_LOG_EARLY_BYTES);
        if (early) {
            memcpy(early + early_len, line_buf, n);
            early_len += n;
        }
    }
    pthread_mutex_unlock(&mu);
}

void arc_log(enum arc_log_level lv, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(lv, msg, NULL, 0, 0);
}

void arc_log_at(enum arc_log_level lv, const char *file, int line, int col, const char *msg)
{
    emit(lv, msg ? msg : "", file ? file : "?", line, col);
}

void arc_log_set_sink(arc_log_sink_fn fn)
{
    pthread_mutex_lock(&mu);
    sink = fn;
    if (fn && early_len) {
        /* One line at a time: the sink counts lines. */
        size_t off = 0;
        while (off < early_len) {
            const char *nl = memchr(early + off, '\n', early_len - off);
            size_t n = nl ? (size_t)(nl - (early + off)) + 1 : early_len - off;
            fn(early + off, n);
            off += n;
        }
    }
    free(early);
    early = NULL;
    early_len = 0;
    keep_early = false;                 /* after the first sink, only live records */
    pthread_mutex_unlock(&mu);
}
