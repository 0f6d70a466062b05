/*
 * `arc logs tail` and `arc logs query`: read Arc's NDJSON access log.
 *
 *   tail  [-f] [-n N]   the last N matching lines of the current file; -f
 *                       keeps following it across rotations (a new inode at
 *                       the path, or the file shrinking, means it was rotated:
 *                       the rest of the old file is read, then the new one)
 *   query               every matching line of the rotated files (oldest
 *                       first, .gz read through zlib) and then the current one
 *
 * Filters (all must hold): --status 5xx|4xx|429|404 (comma-separated list
 * allowed), --route R, --upstream U, --client-ip IP, --trace-id T,
 * --request-id ID, --since 10m, --kind access|system|all (access by default:
 * the file also holds Arc's system records, kind "system"). On a terminal lines are shown as aligned,
 * coloured columns; piped (or with --json) they are the NDJSON lines as
 * written.
 */
#include "config/config.h"
#include "obs/accesslog.h"
#include "obs/logcli.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define STATUS_MAX 16
/* How often -f looks for new lines and for a rotation. Like `tail -F`, it
 * follows the name: a file rotated away twice within one poll has its
 * middle file skipped (arc logs query reads every rotated file). */
#define FOLLOW_POLL_MS 50

struct filter {
    struct { int lo, hi; } status[STATUS_MAX];
    size_t n_status;
    const char *route, *upstream, *client_ip, *trace_id, *request_id;
    double since;                       /* unix seconds; 0 = no limit */
    const char *kind;                   /* "access", "system", or NULL: all */
    bool json, color;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: arc logs tail  [-f] [-n N] [--file F | -c CONFIG] [filters] [--json]\n"
            "       arc logs query [--file F | -c CONFIG] [filters] [--json]\n"
            "filters: --status 5xx|4xx|429|404[,...]  --route R  --upstream U  --client-ip IP\n"
            "         --trace-id T  --request-id ID  --since 10m  --kind access|system|all\n"
            "Without --file: logging.output.file of -c CONFIG (else of the default config).\n");
}

static bool parse_status(struct filter *f, const char *s)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (f->n_status == STATUS_MAX)
            return false;
        size_t n = strlen(tok);
        if (n == 3 && tok[0] >= '1' && tok[0] <= '5' && (tok[1] == 'x' || tok[1] == 'X') &&
            (tok[2] == 'x' || tok[2] == 'X')) {
            int c = tok[0] - '0';
            f->status[f->n_status].lo = c * 100;
            f->status[f->n_status++].hi = c * 100 + 99;
            continue;
        }
        char *end;
        long v = strtol(tok, &end, 10);
        if (*end || v < 100 || v > 599)
            return false;
        f->status[f->n_status].lo = f->status[f->n_status].hi = (int)v;
        f->n_status++;
    }
    return f->n_status > 0;
}

/* "2026-12-07T12:20:16.123456789Z" → unix seconds (fraction kept). */
static double parse_ts(const char *s)
{
    if (!s)
        return 0;
    struct tm tm = { 0 };
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return 0;
    double frac = 0;
    if (*rest == '.')
        frac = strtod(rest, NULL);
    return (double)timegm(&tm) + frac;
}

static const char *jstr(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

static bool str_is(json_t *j, const char *k, const char *want)
{
    const char *v = jstr(j, k);
    return v && strcmp(v, want) == 0;
}

/* Parsed line if it matches, else NULL (malformed lines never match). */
static json_t *match(const struct filter *f, const char *line, size_t len)
{
    json_t *j = json_loadb(line, len, 0, NULL);
    if (!json_is_object(j))
        goto no;
    if (f->kind && !str_is(j, "kind", f->kind))
        goto no;
    if (f->n_status) {
        json_int_t st = json_integer_value(json_object_get(j, "status"));
        bool ok = false;
        for (size_t i = 0; i < f->n_status && !ok; i++)
            ok = st >= f->status[i].lo && st <= f->status[i].hi;
        if (!ok)
            goto no;
    }
    if ((f->route && !str_is(j, "route", f->route)) ||
        (f->upstream && !str_is(j, "upstream", f->upstream)) ||
        (f->client_ip && !str_is(j, "client_ip", f->client_ip)) ||
        (f->trace_id && !str_is(j, "trace_id", f->trace_id)) ||
        (f->request_id && !str_is(j, "request_id", f->request_id)))
        goto no;
    if (f->since > 0 && parse_ts(jstr(j, "ts")) < f->since)
        goto no;
    return j;
no:
    json_decref(j);
    return NULL;
}

static void show(const struct filter *f, json_t *j, const char *line, size_t len)
{
    if (f->json) {
        fwrite(line, 1, len, stdout);
        fputc('\n', stdout);
        return;
    }
    const char *ts = jstr(j, "ts");
    if (str_is(j, "kind", "system")) {
        const char *lv = jstr(j, "level");
        bool bad = lv && (strcmp(lv, "error") == 0 || strcmp(lv, "warn") == 0);
        printf("%s%.10s %.12s%s %s%-5s%s %s\n", f->color ? "\033[2m" : "", ts ? ts : "-",
               ts && strlen(ts) >= 23 ? ts + 11 : "", f->color ? "\033[0m" : "",
               f->color && bad ? (lv[0] == 'e' ? "\033[31m" : "\033[33m") : "", lv ? lv : "-",
               f->color ? "\033[0m" : "", jstr(j, "msg") ? jstr(j, "msg") : "");
        return;
    }
    json_int_t st = json_integer_value(json_object_get(j, "status"));
    const char *col = "";
    if (f->color)
        col = st >= 500 ? "\033[31m" : st >= 400 ? "\033[33m" : st >= 300 ? "\033[36m" : "\033[32m";
    const char *reset = f->color ? "\033[0m" : "";
    const char *dim = f->color ? "\033[2m" : "";
    char when[32] = "-";
    if (ts && strlen(ts) >= 23)
        snprintf(when, sizeof(when), "%.10s %.12s", ts, ts + 11);
    const char *path = jstr(j, "path");
    const char *query = jstr(j, "query");
    char target[160];
    snprintf(target, sizeof(target), "%s%s%s", path ? path : "-", query ? "?" : "",
             query ? query : "");
    json_t *d = json_object_get(j, "duration_ms");
    const char *err = jstr(j, "error");
    printf("%s%-23s%s %s%3lld%s %-7s %-40.40s %-16.16s %-16.16s %9.3fms %-15s %s%s%s\n",
           dim, when, reset, col, (long long)st, reset, jstr(j, "method") ? jstr(j, "method") : "-",
           target, jstr(j, "route") ? jstr(j, "route") : "-",
           jstr(j, "upstream") ? jstr(j, "upstream") : "-", json_number_value(d),
           jstr(j, "client_ip") ? jstr(j, "client_ip") : "-", dim,
           jstr(j, "request_id") ? jstr(j, "request_id") : "", reset);
    if (err)
        printf("%s    error: %s%s\n", col, err, reset);
}

/* ------------------------------------------------------------ reading */

/* Reads lines from a plain or gzip file (gzread reads plain files too). */
typedef void (*line_fn)(void *ud, const char *line, size_t len);

static int each_line(const char *path, line_fn fn, void *ud)
{
    gzFile g = gzopen(path, "rb");
    if (!g)
        return -1;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    char chunk[65536];
    int k;
    while (buf && (k = gzread(g, chunk, sizeof(chunk))) > 0) {
        for (int i = 0; i < k; i++) {
            if (chunk[i] == '\n') {
                fn(ud, buf, len);
                len = 0;
                continue;
            }
            if (len + 1 >= cap) {
                char *nb = realloc(buf, cap * 2);
                if (!nb)
                    break;
                buf = nb;
                cap *= 2;
            }
            buf[len++] = chunk[i];
        }
    }
    if (buf && len)
        fn(ud, buf, len);               /* a last line without its newline */
    free(buf);
    gzclose(g);
    return 0;
}

static void query_line(void *ud, const char *line, size_t len)
{
    const struct filter *f = ud;
    json_t *j = match(f, line, len);
    if (j) {
        show(f, j, line, len);
        json_decref(j);
    }
}

static int cmd_query(const char *file, const struct filter *f)
{
    size_t n;
    char **v = arc_alog_rotated(file, &n);
    for (size_t i = 0; i < n; i++) {
        if (each_line(v[i], query_line, (void *)f) < 0)
            fprintf(stderr, "arc: logs: cannot read %s: %s\n", v[i], strerror(errno));
        free(v[i]);
    }
    free(v);
    if (each_line(file, query_line, (void *)f) < 0 && n == 0) {
        fprintf(stderr, "arc: logs: cannot read %s: %s\n", file, strerror(errno));
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

struct tail_ring {
    const struct filter *f;
    char **lines;
    size_t *lens;
    size_t n, cap, next;
};

static void tail_line(void *ud, const char *line, size_t len)
{
    struct tail_ring *t = ud;
    json_t *j = match(t->f, line, len);
    if (!j)
        return;
    json_decref(j);
    if (!t->cap)
        return;
    free(t->lines[t->next]);
    t->lines[t->next] = malloc(len ? len : 1);
    if (t->lines[t->next])
        memcpy(t->lines[t->next], line, len);
    t->lens[t->next] = len;
    t->next = (t->next + 1) % t->cap;
    if (t->n < t->cap)
        t->n++;
}

/* Follows `file` from offset `off`: new complete lines are shown as they
 * appear; a rotation (new inode, or the file got shorter) switches to the
 * new file after the old one's rest. */
static int follow(const char *file, const struct filter *f, off_t off)
{
    FILE *in = fopen(file, "rb");
    struct stat cur = { 0 };
    if (in) {
        fstat(fileno(in), &cur);
        fseeko(in, off, SEEK_SET);
    }
    char *line = NULL;
    size_t cap = 0;
    char *part = NULL;                  /* an incomplete last line, kept */
    size_t part_len = 0;
    for (;;) {
        bool got = false;
        ssize_t k;
        while (in && (k = getline(&line, &cap, in)) > 0) {
            got = true;
            if (line[k - 1] != '\n') {
                char *np = realloc(part, part_len + (size_t)k);
                if (np) {
                    memcpy(np + part_len, line, (size_t)k);
                    part = np;
                    part_len += (size_t)k;
                }
                continue;
            }
            const char *l = line;
            size_t len = (size_t)k - 1;
            char *joined = NULL;
            if (part_len) {
                joined = malloc(part_len + len);
                if (joined) {
                    memcpy(joined, part, part_len);
                    memcpy(joined + part_len, line, len);
                    l = joined;
                    len += part_len;
                }
                part_len = 0;
            }
            query_line((void *)f, l, len);
            free(joined);
        }
        if (in)
            clearerr(in);
        fflush(stdout);
        if (!got) {
            struct stat now;
            bool rotated_away = stat(file, &now) == 0 &&
                                (!in || now.st_ino != cur.st_ino || now.st_dev != cur.st_dev ||
                                 now.st_size < ftello(in));
            if (rotated_away) {
                if (in)
                    fclose(in);
                in = fopen(file, "rb");
                part_len = 0;
                if (in)
                    fstat(fileno(in), &cur);
                continue;
            }
            usleep(FOLLOW_POLL_MS * 1000);
        }
        if (ferror(stdout))
            break;                      /* the reader went away */
    }
    return 1;
}

static int cmd_tail(const char *file, const struct filter *f, bool follow_it, size_t n_lines)
{
    struct tail_ring t = { .f = f, .cap = n_lines };
    t.lines = calloc(n_lines ? n_lines : 1, sizeof(char *));
    t.lens = calloc(n_lines ? n_lines : 1, sizeof(size_t));
    off_t end = 0;
    struct stat st;
    if (stat(file, &st) == 0)
        end = st.st_size;
    if (each_line(file, tail_line, &t) < 0 && !follow_it) {
        fprintf(stderr, "arc: logs: cannot read %s: %s\n", file, strerror(errno));
        free(t.lines);
        free(t.lens);
        return 1;
    }
    size_t first = t.n < t.cap ? 0 : t.next;
    for (size_t i = 0; i < t.n; i++) {
        size_t k = (first + i) % (t.cap ? t.cap : 1);
        json_t *j = json_loadb(t.lines[k], t.lens[k], 0, NULL);
        if (j)
            show(f, j, t.lines[k], t.lens[k]);
        json_decref(j);
    }
    for (size_t i = 0; i < t.cap; i++)
        free(t.lines[i]);
    free(t.lines);
    free(t.lens);
    fflush(stdout);
    if (!follow_it)
        return 0;
    return follow(file, f, end);
}

/* The log file named by a config's logging.output.file. */
static char *file_from_config(const char *path)
{
    struct arc_config *cfg = NULL;
    struct arc_config_errors errs = { 0 };
    if (arc_config_load_file(path, &cfg, &errs) < 0) {
        arc_config_errors_print(&errs, stderr);
        arc_config_errors_dispose(&errs);
        return NULL;
    }
    arc_config_errors_dispose(&errs);
    char *f = cfg->logging.file ? strdup(cfg->logging.file) : NULL;
    if (!f)
        fprintf(stderr, "arc: logs: %s has no logging.output.file; pass --file\n", path);
    arc_config_free(cfg);
    return f;
}

int arc_logs_main(int argc, char **argv, const char *default_config)
{
    if (argc < 3 || (strcmp(argv[2], "tail") != 0 && strcmp(argv[2], "query") != 0)) {
        usage(stderr);
        return 2;
    }
    bool is_tail = strcmp(argv[2], "tail") == 0, follow_it = false;
    struct filter f = { .color = isatty(STDOUT_FILENO), .kind = "access" };
    const char *file = NULL, *config = NULL;
    size_t n_lines = 10;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "-f") == 0 && is_tail) {
            follow_it = true;
            takes = false;
        } else if (strcmp(a, "--json") == 0) {
            f.json = true;
            takes = false;
        } else if (!v) {
            fprintf(stderr, "arc: logs: %s needs a value\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--file") == 0) {
            file = v;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "-n") == 0 && is_tail) {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (*end || n > 1000000) {
                fprintf(stderr, "arc: logs: -n: expected a line count, got '%s'\n", v);
                return 2;
            }
            n_lines = n;
        } else if (strcmp(a, "--status") == 0) {
            if (!parse_status(&f, v)) {
                fprintf(stderr, "arc: logs: --status: expected 5xx, 4xx, 429, 404 ... (a status "
                        "100-599 or a class), got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--kind") == 0) {
            if (strcmp(v, "all") == 0) {
                f.kind = NULL;
            } else if (strcmp(v, "access") == 0 || strcmp(v, "system") == 0) {
                f.kind = v;
            } else {
                fprintf(stderr, "arc: logs: --kind: expected access, system or all, got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--route") == 0) {
            f.route = v;
        } else if (strcmp(a, "--upstream") == 0) {
            f.upstream = v;
        } else if (strcmp(a, "--client-ip") == 0) {
            f.client_ip = v;
        } else if (strcmp(a, "--trace-id") == 0) {
            f.trace_id = v;
        } else if (strcmp(a, "--request-id") == 0) {
            f.request_id = v;
        } else if (strcmp(a, "--since") == 0) {
            uint64_t ms;
            if (arc_config_parse_duration(v, &ms) < 0) {
                fprintf(stderr, "arc: logs: --since: expected a duration like 10m, 30s, 2h, "
                        "got '%s'\n", v);
                return 2;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            f.since = (double)ts.tv_sec + ts.tv_nsec / 1e9 - (double)ms / 1000.0;
        } else {
            fprintf(stderr, "arc: logs: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (takes)
            i++;
    }
    if (!f.color)
        f.json = true;                  /* piped: NDJSON as written */
    char *owned = NULL;
    if (!file) {
        if (!config && default_config && access(default_config, F_OK) == 0)
            config = default_config;
        if (!config) {
            fprintf(stderr, "arc: logs: no --file and no config to find logging.output.file in "
                    "(pass --file or -c)\n");
            return 2;
        }
        owned = file_from_config(config);
        if (!owned)
            return 1;
        file = owned;
    }
    int rc = is_tail ? cmd_tail(file, &f, follow_it, n_lines) : cmd_query(file, &f);
    free(owned);
    return rc;
}
