/*
 * The access-log writer thread and its compressor thread.
 *
 * Writer loop (one thread, the only consumer of every worker's ring):
 *
 *   drain each ring ─▶ format NDJSON into the batch ─▶ batch >= batch_bytes
 *        ▲                                            or flush_interval passed
 *        │                                                  │
 *        └── sleep (min(flush_interval / 2, 10ms)) ◀── write(2): file, stdout
 *
 * File states: OPEN (fd >= 0) ─write error / file vanished─▶ FAILING
 * (fd < 0: reported once, counted, reopened every second; lines that do not
 * fit the held batch are counted as lost) ─open ok─▶ OPEN. SIGUSR1 sets a
 * flag: the next loop closes and reopens the path (logrotate's postrotate).
 *
 * Rotation by size: before a batch would push the file past max_size, the
 * file is renamed to "<file>.<UTC time>" (sortable, unique to the ns) and a
 * new one opened. With compress, the compressor thread gzips rotated files
 * (zlib) to "<name>.gz" off the writer's loop; either way only the newest
 * max_files rotated files are kept.
 *
 * Arc's system log (core/log.h) reaches the same outputs: its sink appends
 * NDJSON lines to a mutex-guarded buffer (any thread, rare, at most
 * SYS_PENDING_MAX bytes waiting: beyond that counted as lost) that each
 * drain moves into the batch first.
 *
 * Writes are plain write(2) on this thread: it is the only thread that ever
 * waits on the disk, so io_uring would buy nothing here but complexity.
 * After each write the file's written bytes are handed to writeback a step
 * at a time and its pages further than writer.drop_behind behind the end
 * are dropped from the page cache (drop_behind()).
 */
#include "config/config.h"
#include "core/log.h"
#include "obs/accesslog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define RETRY_MS 1000           /* reopen a failing file this often */
#define CHECK_MS 1000           /* stat the path this often (moved or deleted under us) */
#define HOLD_BATCHES 4          /* a failing output holds this many batches, then drops */
#define REPORT_MS 10000         /* ring-full drops reported at most this often */
#define SYS_PENDING_MAX (1u << 20)  /* system-log bytes waiting for the writer */

static struct {
    bool running;
    struct arc_logging_conf conf;       /* copy; conf.file owned, redact lists unused */
    struct arc_alog_ring *rings;
    size_t n_rings;
    pthread_t writer, zthread;
    _Atomic int stop, reopen;
    /* writer-thread state */
    int fd;
    uint64_t size;
    uint64_t synced, dropped;           /* drop_behind: file offsets handled so far */
    uint64_t retry_ms, check_ms, report_ms, reported_drops;
    bool failing;
    int last_errno;
    struct arc_sbuf buf;
    size_t buf_lines;
    size_t buf_sys;                     /* of which system-log lines */
    size_t stdout_off;                  /* bytes of buf already written to stdout */
    /* counters (writer writes, anyone reads) */
    _Atomic uint64_t written, sys_written, lost, write_errors, rotations, reopens;
    /* compressor queue */
    pthread_mutex_t zmu;
    pthread_cond_t zcv;
    char **zq;
    size_t zn, zcap;
    bool zstop;
    pthread_mutex_t prune_mu;
    /* system-log lines (core/log.h sink), any thread → writer */
    pthread_mutex_t sys_mu;
    struct arc_sbuf sys;
    size_t sys_lines;
} L = { .fd = -1 };

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

struct arc_alog_ring *arc_alog_ring(unsigned id)
{
    return L.running && id < L.n_rings ? &L.rings[id] : NULL;
}

bool arc_alog_running(void)
{
    return L.running;
}

void arc_alog_reopen(void)
{
    atomic_store(&L.reopen, 1);
}

void arc_alog_stats(struct arc_alog_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!L.running)
        return;
    for (size_t i = 0; i < L.n_rings; i++)
        st->dropped += atomic_load_explicit(&L.rings[i].dropped, memory_order_relaxed);
    st->written = atomic_load(&L.written);
    st->system_written = atomic_load(&L.sys_written);
    st->lost = atomic_load(&L.lost);
    st->write_errors = atomic_load(&L.write_errors);
    st->rotations = atomic_load(&L.rotations);
    st->reopens = atomic_load(&L.reopens);
}

void arc_alog_render_metrics(struct arc_sbuf *o)
{
    if (!L.running)
        return;
    struct arc_alog_stats st;
    arc_alog_stats(&st);
    arc_sbuf_printf(o,
        "# HELP arc_access_log_lines_total Access-log lines written.\n"
        "# TYPE arc_access_log_lines_total counter\n"
        "arc_access_log_lines_total %llu\n"
        "# HELP arc_system_log_lines_total Arc's own system-log records written to the access log's outputs.\n"
        "# TYPE arc_system_log_lines_total counter\n"
        "arc_system_log_lines_total %llu\n"
        "# HELP arc_access_log_dropped_total Access-log records dropped because a worker's ring was full.\n"
        "# TYPE arc_access_log_dropped_total counter\n"
        "arc_access_log_dropped_total %llu\n"
        "# HELP arc_access_log_lost_total Access-log lines lost because the output could not be written.\n"
        "# TYPE arc_access_log_lost_total counter\n"
        "arc_access_log_lost_total %llu\n"
        "# HELP arc_access_log_write_errors_total Failed opens and writes of the access log.\n"
        "# TYPE arc_access_log_write_errors_total counter\n"
        "arc_access_log_write_errors_total %llu\n"
        "# HELP arc_access_log_rotations_total Access-log files rotated by size.\n"
        "# TYPE arc_access_log_rotations_total counter\n"
        "arc_access_log_rotations_total %llu\n"
        "# HELP arc_access_log_reopens_total Access-log reopens asked by SIGUSR1.\n"
        "# TYPE arc_access_log_reopens_total counter\n"
        "arc_access_log_reopens_total %llu\n",
        (unsigned long long)st.written, (unsigned long long)st.system_written,
        (unsigned long long)st.dropped,
        (unsigned long long)st.lost, (unsigned long long)st.write_errors,
        (unsigned long long)st.rotations, (unsigned long long)st.reopens);
}

/* ------------------------------------------------------------ files */

static void fail(const char *what, int err)
{
    bump(&L.write_errors, 1);
    if (!L.failing || L.last_errno != err)
        arc_log(ARC_LOG_ERROR, "access log %s %s: %s (retrying every %d ms; lines are held, "
                "then counted in arc_access_log_lost_total)", what, L.conf.file, strerror(err),
                RETRY_MS);
    L.failing = true;
    L.last_errno = err;
    L.retry_ms = mono_ms() + RETRY_MS;
}

static void close_file(void)
{
    if (L.fd >= 0)
        close(L.fd);
    L.fd = -1;
}

static bool open_file(void)
{
    int fd = open(L.conf.file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail("cannot open", errno);
        return false;
    }
    struct stat st;
    L.size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    L.synced = L.dropped = L.size;      /* (what was there before is left alone) */
    L.fd = fd;
    if (L.failing)
        arc_log(ARC_LOG_INFO, "access log %s: writing again", L.conf.file);
    L.failing = false;
    L.check_ms = mono_ms() + CHECK_MS;
    return true;
}

/* The path no longer names our file (deleted, or its directory removed, or
 * moved without a SIGUSR1): reopen so that lines do not vanish into an
 * unlinked inode. */
static void check_path(void)
{
    uint64_t now = mono_ms();
    if (L.fd < 0 || now < L.check_ms)
        return;
    L.check_ms = now + CHECK_MS;
    struct stat a, b;
    if (stat(L.conf.file, &a) == 0 && fstat(L.fd, &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev)
        return;
    close_file();
    open_file();
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **arc_alog_rotated(const char *file, size_t *n_out)
{
    char dir[4096], base[1024];
    const char *slash = strrchr(file, '/');
    if (slash) {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - file), file);
        if (!dir[0])
            strcpy(dir, "/");
        snprintf(base, sizeof(base), "%s", slash + 1);
    } else {
        strcpy(dir, ".");
        snprintf(base, sizeof(base), "%s", file);
    }
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t bl = strlen(base), n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t el = strlen(e->d_name);
        if (el <= bl + 1 || strncmp(e->d_name, base, bl) != 0 || e->d_name[bl] != '.' ||
            e->d_name[bl + 1] < '0' || e->d_name[bl + 1] > '9' ||
            (el > 4 && strcmp(e->d_name + el - 4, ".tmp") == 0))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nv = realloc(v, cap * sizeof(*v));
            if (!nv)
                break;
            v = nv;
        }
        if (asprintf(&v[n], "%s/%s", dir, e->d_name) >= 0)
            n++;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof(*v), name_cmp);
    *n_out = n;
    return v;
}

/* Keeps the newest max_files rotated files. */
static void prune(void)
{
    pthread_mutex_lock(&L.prune_mu);
    size_t n;
    char **v = arc_alog_rotated(L.conf.file, &n);
    for (size_t i = 0; i < n; i++) {
        if (i + L.conf.max_files < n)
            unlink(v[i]);
        free(v[i]);
    }
    free(v);
    pthread_mutex_unlock(&L.prune_mu);
}

static void zqueue(char *path)
{
    pthread_mutex_lock(&L.zmu);
    if (L.zn == L.zcap) {
        size_t cap = L.zcap ? L.zcap * 2 : 8;
        char **q = realloc(L.zq, cap * sizeof(*q));
        if (!q) {
            pthread_mutex_unlock(&L.zmu);
            free(path);                 /* stays uncompressed */
            return;
        }
        L.zq = q;
        L.zcap = cap;
    }
    L.zq[L.zn++] = path;
    pthread_cond_signal(&L.zcv);
    pthread_mutex_unlock(&L.zmu);
}

static void rotate(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char *to = NULL;
    if (asprintf(&to, "%s.%04d%02d%02dT%02d%02d%02d.%09ldZ", L.conf.file, tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec) < 0)
        return;
    close_file();
    if (rename(L.conf.file, to) < 0) {
        fail("cannot rotate", errno);
        free(to);
        open_file();
        return;
    }
    bump(&L.rotations, 1);
    open_file();
    if (L.conf.compress)
        zqueue(to);
    else {
        free(to);
        prune();
    }
}

static bool write_all(int fd, const char *p, size_t n, int *err)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            *err = errno;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

void arc_alog__drop_plan(uint64_t size, uint64_t behind, uint64_t *synced, uint64_t *dropped,
                         struct arc_alog_drop *out)
{
    memset(out, 0, sizeof(*out));
    if (!behind)
        return;
    uint64_t step = behind / 4;
    if (*synced > size || *dropped > size)     /* (a smaller file: start over) */
        *synced = *dropped = size;
    if (size - *synced >= step) {
        out->sync_off = *synced;
        out->sync_len = size - *synced;
        *synced = size;
    }
    if (size > behind && size - behind > *dropped && size - behind - *dropped >= step) {
        out->drop_off = *dropped;
        out->drop_len = size - behind - *dropped;
        *dropped = size - behind;
    }
}

/* The log is written once and read, if at all, near its end (tail -f):
 * its older pages only crowd the page cache. Written pages are handed to
 * writeback a step at a time, and pages further than drop_behind behind
 * the end (long written back by then) are dropped, so the file reuses the
 * pages it freed instead of taking fresh ones. (On a VM whose free pages go
 * back to the hypervisor, a fresh page costs a fault on the host at first
 * touch: writing to a new file ran at 253-487 MB/s against 3.9 GB/s into
 * reused pages, and the write(2) copy was 9% of the proxy's CPU at 40k
 * lines/s; with this, ~1-2%.) sync_file_range may wait for the device's
 * queue: only this thread waits on the disk. */
static void drop_behind(void)
{
    struct arc_alog_drop d;
    arc_alog__drop_plan(L.size, L.conf.drop_behind, &L.synced, &L.dropped, &d);
    if (d.sync_len)
        (void)sync_file_range(L.fd, (off_t)d.sync_off, (off_t)d.sync_len, SYNC_FILE_RANGE_WRITE);
    if (d.drop_len)
        (void)posix_fadvise(L.fd, (off_t)d.drop_off, (off_t)d.drop_len, POSIX_FADV_DONTNEED);
}

static void flush(void)
{
    if (!L.buf.len)
        return;
    bool done = true;
    if (L.conf.to_stdout && L.stdout_off < L.buf.len) {
        int err;
        if (!write_all(STDOUT_FILENO, L.buf.p + L.stdout_off, L.buf.len - L.stdout_off, &err))
            bump(&L.write_errors, 1);
        L.stdout_off = L.buf.len;
    }
    if (L.conf.file) {
        uint64_t now = mono_ms();
        if (L.fd < 0 && now >= L.retry_ms)
            open_file();
        if (L.fd >= 0 && L.conf.max_size && L.size && L.size + L.buf.len > L.conf.max_size)
            rotate();
        done = false;
        if (L.fd >= 0) {
            int err = 0;
            if (write_all(L.fd, L.buf.p, L.buf.len, &err)) {
                L.size += L.buf.len;
                done = true;
                drop_behind();
            } else {
                /* A partial line may have been written; the next open
                 * appends after it (a reader sees one broken line). */
                fail("cannot write", err);
                close_file();
            }
        }
    }
    if (done) {
        bump(&L.written, L.buf_lines - L.buf_sys);
        bump(&L.sys_written, L.buf_sys);
    } else if (L.buf.len < (size_t)L.conf.batch_bytes * HOLD_BATCHES) {
        return;                         /* held for the next attempt */
    } else {
        bump(&L.lost, L.buf_lines);
    }
    L.buf.len = 0;
    L.buf_lines = 0;
    L.buf_sys = 0;
    L.stdout_off = 0;
}

static void report_drops(void)
{
    uint64_t now = mono_ms();
    if (now < L.report_ms)
        return;
    L.report_ms = now + REPORT_MS;
    uint64_t d = 0;
    for (size_t i = 0; i < L.n_rings; i++)
        d += atomic_load_explicit(&L.rings[i].dropped, memory_order_relaxed);
    if (d != L.reported_drops)
        arc_log(ARC_LOG_WARN, "access log: %llu records dropped (a worker's ring was full; "
                "raise logging.writer.ring_capacity or lower logging.access.sample)",
                (unsigned long long)(d - L.reported_drops));
    L.reported_drops = d;
}

/* The system log's sink (core/log.h): any thread, rare. Lines beyond
 * SYS_PENDING_MAX waiting are counted as lost. */
static void sys_sink(const char *line, size_t len)
{
    pthread_mutex_lock(&L.sys_mu);
    if (L.sys.len + len <= SYS_PENDING_MAX) {
        arc_sbuf_append(&L.sys, line, len);
        L.sys_lines++;
    } else {
        bump(&L.lost, 1);
    }
    pthread_mutex_unlock(&L.sys_mu);
}

static size_t drain_system(void)
{
    pthread_mutex_lock(&L.sys_mu);
    size_t n = L.sys_lines;
    if (n) {
        arc_sbuf_append(&L.buf, L.sys.p, L.sys.len);
        L.buf_lines += n;
        L.buf_sys += n;
        L.sys.len = 0;
        L.sys_lines = 0;
    }
    pthread_mutex_unlock(&L.sys_mu);
    return n;
}

static size_t drain(void)
{
    size_t total = drain_system();
    for (size_t i = 0; i < L.n_rings; i++) {
        struct arc_alog_ring *r = &L.rings[i];
        uint64_t t, n = arc_alog_ring_avail(r, &t);
        for (uint64_t k = 0; k < n; k++) {
            if (k + 1 < n)
                arc_alog_prefetch_read(&r->recs[(t + k + 1) & r->mask]);
            arc_alog_format(&L.buf, &r->recs[(t + k) & r->mask]);
            L.buf_lines++;
            /* Free slots as we go so a busy worker is not held back by a
             * slow disk for a whole batch. */
            if (L.buf.len >= L.conf.batch_bytes) {
                arc_alog_ring_release(r, k + 1);
                total += k + 1;
                n -= k + 1;
                t += k + 1;
                k = (uint64_t)-1;
                flush();
            }
        }
        arc_alog_ring_release(r, n);
        total += n;
    }
    return total;
}

static void *writer_main(void *arg)
{
    (void)arg;
    uint64_t poll_ms = L.conf.flush_interval / 2;
    if (poll_ms > 10)
        poll_ms = 10;
    if (poll_ms < 1)
        poll_ms = 1;
    uint64_t last_flush = mono_ms();
    for (;;) {
        bool stopping = atomic_load(&L.stop);
        if (atomic_exchange(&L.reopen, 0) && L.conf.file) {
            flush();
            close_file();
            bump(&L.reopens, 1);
            open_file();
        }
        if (L.conf.file)
            check_path();
        size_t n = drain();
        uint64_t now = mono_ms();
        if (L.buf.len && (now - last_flush >= L.conf.flush_interval || stopping)) {
            flush();
            last_flush = now;
        }
        report_drops();
        if (stopping && n == 0) {
            flush();
            break;
        }
        struct timespec ts = { 0, (long)(poll_ms * 1000000) };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ------------------------------------------------------------ compressor */

static void compress_one(const char *path)
{
    char tmp[8192], dst[8192];
    snprintf(dst, sizeof(dst), "%s.gz", path);
    snprintf(tmp, sizeof(tmp), "%s.gz.tmp", path);
    FILE *in = fopen(path, "rb");
    if (!in)
        return;                         /* pruned meanwhile */
    gzFile out = gzopen(tmp, "wb6");
    if (!out) {
        arc_log(ARC_LOG_ERROR, "access log: cannot create %s: %s", tmp, strerror(errno));
        fclose(in);
        return;
    }
    char buf[65536];
    size_t k;
    bool ok = true;
    while ((k = fread(buf, 1, sizeof(buf), in)) > 0)
        if (gzwrite(out, buf, (unsigned)k) != (int)k) {
            ok = false;
            break;
        }
    ok = !ferror(in) && ok;
    fclose(in);
    if (gzclose(out) != Z_OK)
        ok = false;
    if (ok && rename(tmp, dst) == 0) {
        unlink(path);
    } else {
        arc_log(ARC_LOG_ERROR, "access log: cannot compress %s (kept uncompressed)", path);
        unlink(tmp);
    }
}

static void *zthread_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&L.zmu);
        while (!L.zn && !L.zstop)
            pthread_cond_wait(&L.zcv, &L.zmu);
        if (!L.zn) {
            pthread_mutex_unlock(&L.zmu);
            return NULL;
        }
        char *p = L.zq[0];
        memmove(L.zq, L.zq + 1, (L.zn - 1) * sizeof(*L.zq));
        L.zn--;
        pthread_mutex_unlock(&L.zmu);
        compress_one(p);
        free(p);
        prune();
    }
}

/* ------------------------------------------------------------ lifecycle */

int arc_alog_start(const struct arc_logging_conf *conf, size_t n_workers, char *err, size_t errlen)
{
    if (L.running)
        return 0;
    L.conf = *conf;
    L.conf.redact_headers = NULL;
    L.conf.redact_query = NULL;
    L.conf.n_redact_headers = L.conf.n_redact_query = 0;
    L.conf.file = conf->file ? strdup(conf->file) : NULL;
    L.rings = calloc(n_workers ? n_workers : 1, sizeof(*L.rings));
    if (!L.rings || (conf->file && !L.conf.file)) {
        snprintf(err, errlen, "access log: out of memory");
        goto fail;
    }
    L.n_rings = n_workers;
    for (size_t i = 0; i < n_workers; i++)
        if (arc_alog_ring_init(&L.rings[i], conf->ring_capacity) < 0) {
            snprintf(err, errlen, "access log: out of memory for %u records per worker",
                     conf->ring_capacity);
            L.n_rings = i;
            goto fail;
        }
    L.fd = -1;
    L.failing = false;
    L.retry_ms = 0;
    L.report_ms = mono_ms() + REPORT_MS;
    pthread_mutex_init(&L.zmu, NULL);
    pthread_cond_init(&L.zcv, NULL);
    pthread_mutex_init(&L.prune_mu, NULL);
    pthread_mutex_init(&L.sys_mu, NULL);
    L.zstop = false;
    atomic_store(&L.stop, 0);
    atomic_store(&L.reopen, 0);
    if (L.conf.file)
        open_file();                    /* failure: reported, retried */
    if (pthread_create(&L.zthread, NULL, zthread_main, NULL) != 0) {
        snprintf(err, errlen, "access log: cannot start the compressor thread");
        goto fail;
    }
    if (pthread_create(&L.writer, NULL, writer_main, NULL) != 0) {
        pthread_mutex_lock(&L.zmu);
        L.zstop = true;
        pthread_cond_signal(&L.zcv);
        pthread_mutex_unlock(&L.zmu);
        pthread_join(L.zthread, NULL);
        snprintf(err, errlen, "access log: cannot start the writer thread");
        goto fail;
    }
    pthread_setname_np(L.writer, "arc-logw");
    pthread_setname_np(L.zthread, "arc-logz");
    L.running = true;
    arc_log_set_sink(sys_sink);         /* the startup messages so far, then live ones */
    return 0;
fail:
    for (size_t i = 0; i < L.n_rings; i++)
        arc_alog_ring_dispose(&L.rings[i]);
    free(L.rings);
    L.rings = NULL;
    L.n_rings = 0;
    close_file();
    free(L.conf.file);
    L.conf.file = NULL;
    return -1;
}

void arc_alog_stop(void)
{
    if (!L.running)
        return;
    arc_log_set_sink(NULL);             /* later messages: stderr only */
    atomic_store(&L.stop, 1);
    pthread_join(L.writer, NULL);
    pthread_mutex_lock(&L.zmu);
    L.zstop = true;
    pthread_cond_signal(&L.zcv);
    pthread_mutex_unlock(&L.zmu);
    pthread_join(L.zthread, NULL);
    L.running = false;
    for (size_t i = 0; i < L.n_rings; i++)
        arc_alog_ring_dispose(&L.rings[i]);
    free(L.rings);
    L.rings = NULL;
    L.n_rings = 0;
    close_file();
    free(L.conf.file);
    L.conf.file = NULL;
    arc_sbuf_dispose(&L.buf);
    arc_sbuf_dispose(&L.sys);
    L.sys_lines = 0;
    free(L.zq);
    L.zq = NULL;
    L.zn = L.zcap = 0;
}
