/*
 * Background compiles for reloads: a reload nobody waits on (SIGHUP, a
 * file change) never runs wasm2c or the C compiler on the control thread.
 * The control thread arms deferral and builds the new snapshot; a module
 * missing from the cache is only recorded (the build fails quietly with
 * "compile pending"); a thread then compiles exactly the recorded modules
 * into the cache (arc_pl__build, as `arc plugin build` does: a file in, a
 * cached object out; it touches nothing else); when it is done the
 * control thread joins it and runs the reload again, which now only loads
 * cached objects, or reports a module's compile error at its position
 * (the failures of the last compile are kept until
 * arc_plugin_compile_forget).
 *
 *   IDLE --compile_start--> RUNNING --thread ends (done)--> DONE
 *   DONE --compile_join--> IDLE
 *
 * One compile at a time, so a module is never compiled twice at once.
 * Everything here but `done` and the job array while RUNNING is the
 * control thread's; the thread owns the job array until it sets `done`.
 */
#include "plugin/plugin.h"
#include "plugin/plugin_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    char *file, *cache_dir;
    uint32_t timeout_ms;
    char hex[65];
    bool ok;
    char err[512];
};

struct jobs {
    struct job *v;
    size_t n, cap;
};

static struct {
    bool armed;
    struct jobs missing;        /* recorded while armed */
    struct jobs run;            /* the thread's, while RUNNING/DONE */
    struct jobs failed;         /* the last compile's failures */
    bool running;
    pthread_t th;
    atomic_bool done;
} D;

static void jobs_free(struct jobs *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free(j->v[i].file);
        free(j->v[i].cache_dir);
    }
    free(j->v);
    *j = (struct jobs){ 0 };
}

static const struct job *jobs_find(const struct jobs *j, const char *hex)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->v[i].hex, hex) == 0)
            return &j->v[i];
    return NULL;
}

static bool jobs_add(struct jobs *j, const char *file, const char *cache_dir, const char *hex,
                     uint32_t timeout_ms)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 4;
        struct job *v = realloc(j->v, cap * sizeof(*v));
        if (!v)
            return false;
        j->v = v;
        j->cap = cap;
    }
    struct job *b = &j->v[j->n];
    *b = (struct job){ .file = strdup(file), .cache_dir = strdup(cache_dir),
                       .timeout_ms = timeout_ms };
    if (!b->file || !b->cache_dir) {
        free(b->file);
        free(b->cache_dir);
        return false;
    }
    snprintf(b->hex, sizeof(b->hex), "%s", hex);
    j->n++;
    return true;
}

bool arc_pl__defer_armed(void)
{
    return D.armed;
}

void arc_plugin_defer_arm(bool on)
{
    D.armed = on;
    jobs_free(&D.missing);
}

size_t arc_plugin_defer_missing(void)
{
    return D.missing.n;
}

int arc_pl__defer_lookup(const char *wasm_path, const char *cache_dir, uint32_t timeout_ms,
                         char *so_path, size_t so_len, char *err, size_t err_len)
{
    char hex[65];
    int r = arc_pl__cached(wasm_path, cache_dir, so_path, so_len, hex, err, err_len);
    if (r != 0)
        return r < 0 ? -1 : 0;
    const struct job *f = jobs_find(&D.failed, hex);
    if (f) {
        snprintf(err, err_len, "%s", f->err);
        return -1;
    }
    /* (a module named twice is compiled once) */
    if (!jobs_find(&D.missing, hex) &&
        !jobs_add(&D.missing, wasm_path, cache_dir, hex, timeout_ms)) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    snprintf(err, err_len, "compile pending");
    return -1;
}

static void *compile_main(void *arg)
{
    (void)arg;
    char so[4096];
    for (size_t i = 0; i < D.run.n; i++) {
        struct job *j = &D.run.v[i];
        j->ok = arc_pl__build(j->file, j->cache_dir, j->timeout_ms, so, sizeof(so), j->err,
                              sizeof(j->err)) == 0;
    }
    atomic_store(&D.done, true);
    return NULL;
}

int arc_plugin_compile_start(void)
{
    if (D.running || D.missing.n == 0)
        return -1;
    jobs_free(&D.failed);
    D.run = D.missing;
    D.missing = (struct jobs){ 0 };
    atomic_store(&D.done, false);
    if (pthread_create(&D.th, NULL, compile_main, NULL) != 0) {
        jobs_free(&D.run);
        return -1;
    }
    D.running = true;
    return 0;
}

bool arc_plugin_compile_running(void)
{
    return D.running;
}

bool arc_plugin_compile_done(void)
{
    return D.running && atomic_load(&D.done);
}

size_t arc_plugin_compile_join(void)
{
    if (!D.running)
        return 0;
    pthread_join(D.th, NULL);
    D.running = false;
    size_t n = D.run.n;
    for (size_t i = 0; i < D.run.n; i++) {
        const struct job *j = &D.run.v[i];
        /* (out of memory: the module is compiled again next time) */
        if (!j->ok && jobs_add(&D.failed, j->file, j->cache_dir, j->hex, j->timeout_ms))
            memcpy(D.failed.v[D.failed.n - 1].err, j->err, sizeof(j->err));
    }
    jobs_free(&D.run);
    return n;
}

void arc_plugin_compile_forget(void)
{
    jobs_free(&D.failed);
}

void arc_plugin_compile_shutdown(void)
{
    /* (a compiler still running is killed: the join is bounded) */
    arc_pl__build_stop(true);
    arc_plugin_compile_join();
    arc_pl__build_stop(false);
    arc_plugin_compile_forget();
    arc_plugin_defer_arm(false);
}
