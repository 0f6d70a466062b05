/*
 * Reload on file change: an inotify descriptor polled on the control ring.
 * See struct arc_watch in admin_int.h for why directories are watched.
 *
 * Events (IN_NONBLOCK descriptor, drained with read() until EAGAIN):
 *   IN_CLOSE_WRITE  a write finished (in place, or a new file's first)
 *   IN_MOVED_TO     something was renamed onto the name (editors, `mv`,
 *                   atomic certificate rotation)
 *   IN_MOVED_FROM, IN_DELETE, IN_CREATE   the name went away or appeared
 *                   (delete-and-recreate, a symlink made)
 *   IN_ATTRIB       permissions, owner, times (a key made readable, touch)
 * IN_MODIFY is left out on purpose: it fires for every write(2) of a file
 * still being written, and CLOSE_WRITE follows when the writer is done.
 */
#include "core/log.h"
#include "admin/admin_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | \
                    IN_ATTRIB | IN_ONLYDIR)

int arc_admin__split_path(const char *path, char *dir, size_t dirlen, char *name,
                          size_t namelen)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t bl = strlen(base);
    if (bl == 0 || bl >= namelen)
        return -1;
    size_t dl;
    const char *d;
    if (!slash) {
        d = ".";
        dl = 1;
    } else if (slash == path) {
        d = "/";
        dl = 1;
    } else {
        d = path;
        dl = (size_t)(slash - path);
    }
    if (dl >= dirlen)
        return -1;
    memcpy(dir, d, dl);
    dir[dl] = '\0';
    memcpy(name, base, bl + 1);
    return 0;
}

int arc_admin__watch_init(struct arc_watch *w)
{
    memset(w, 0, sizeof(*w));
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    return w->fd < 0 ? -errno : 0;
}

struct wlist {
    struct arc_watch_file *v;
    size_t n, cap;
};

static void wlist_add(struct wlist *l, const char *dir, const char *name, unsigned kind)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].dir, dir) == 0 && strcmp(l->v[i].name, name) == 0) {
            l->v[i].kind |= kind;
            return;
        }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct arc_watch_file *v = realloc(l->v, cap * sizeof(*v));
        ARC_ASSERT(v != NULL);
        l->v = v;
        l->cap = cap;
    }
    char *d = strdup(dir), *n = strdup(name);
    ARC_ASSERT(d && n);
    l->v[l->n++] = (struct arc_watch_file){ .dir = d, .name = n, .wd = -1, .kind = kind };
}

/* The path as written, and where it leads if that is elsewhere (a symlink:
 * its target's directory sees a swap that the link's directory does not,
 * e.g. Kubernetes' ..data volumes). */
static void add_path(struct wlist *l, const char *path, unsigned kind)
{
    if (!path || !*path)
        return;
    char dir[PATH_MAX], name[NAME_MAX + 1];
    if (arc_admin__split_path(path, dir, sizeof(dir), name, sizeof(name)) < 0)
        return;
    wlist_add(l, dir, name, kind);
    /* Only when it leads somewhere else than dir/name itself. */
    char real[PATH_MAX], rdir[PATH_MAX], here[PATH_MAX + NAME_MAX + 2];
    if (!realpath(path, real) || !realpath(dir, rdir))
        return;
    snprintf(here, sizeof(here), "%s%s%s", rdir, strcmp(rdir, "/") ? "/" : "", name);
    if (strcmp(real, here) != 0 &&
        arc_admin__split_path(real, dir, sizeof(dir), name, sizeof(name)) == 0)
        wlist_add(l, dir, name, kind);
}

static void free_files(struct arc_watch_file *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].dir);
        free(v[i].name);
    }
    free(v);
}

void arc_admin__watch_set(struct arc_watch *w, const char *config_path,
                          const struct arc_config *cfg)
{
    if (w->fd < 0)
        return;
    struct wlist l = { 0 };
    if (config_path) {
        add_path(&l, config_path, ARC_WATCH_CONFIG);
        for (size_t i = 0; cfg && i < cfg->n_listeners; i++) {
            const struct arc_listener_tls_conf *t = cfg->listeners[i].tls;
            for (size_t j = 0; t && j < t->n_certs; j++) {
                add_path(&l, t->certs[j].cert_pem, ARC_WATCH_REF);
                add_path(&l, t->certs[j].key_pem, ARC_WATCH_REF);
            }
            if (t)
                add_path(&l, t->client_ca_pem, ARC_WATCH_REF);
        }
        for (size_t i = 0; cfg && i < cfg->n_upstreams; i++) {
            const struct arc_upstream_tls_conf *t = cfg->upstreams[i].tls;
            if (!t)
                continue;
            add_path(&l, t->ca_pem, ARC_WATCH_REF);
            add_path(&l, t->client_cert_pem, ARC_WATCH_REF);
            add_path(&l, t->client_key_pem, ARC_WATCH_REF);
        }
    }
    /* New watches first (a directory already watched keeps its wd), then
     * the ones nothing needs any more: no moment without a watch. */
    for (size_t i = 0; i < l.n; i++) {
        int wd = inotify_add_watch(w->fd, l.v[i].dir, WATCH_MASK);
        if (wd < 0) {
            bool said = false;
            for (size_t j = 0; j < i && !said; j++)
                said = l.v[j].wd < 0 && strcmp(l.v[j].dir, l.v[i].dir) == 0;
            if (!said)
                arc_log(ARC_LOG_ERROR, "cannot watch %s for changes to %s: %s (reload with "
                        "SIGHUP or the API instead)", l.v[i].dir, l.v[i].name, strerror(errno));
        }
        l.v[i].wd = wd;
    }
    for (size_t i = 0; i < w->n_files; i++) {
        int wd = w->files[i].wd;
        bool used = wd < 0;
        for (size_t j = 0; j < l.n && !used; j++)
            used = l.v[j].wd == wd;
        for (size_t j = 0; j < i && !used; j++)
            used = w->files[j].wd == wd;        /* removed already */
        if (!used)
            inotify_rm_watch(w->fd, wd);
    }
    bool same = l.n == w->n_files;
    for (size_t i = 0; same && i < l.n; i++)
        same = strcmp(l.v[i].dir, w->files[i].dir) == 0 &&
               strcmp(l.v[i].name, w->files[i].name) == 0;
    if (!same && l.n) {
        char names[512];
        size_t o = 0;
        names[0] = '\0';
        for (size_t i = 0; i < l.n && o < sizeof(names); i++)
            o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s/%s", i ? ", " : "",
                                  l.v[i].dir, l.v[i].name);
        arc_log(ARC_LOG_INFO, "watching for changes (reload %d ms after the last): %s",
                ARC_WATCH_DEBOUNCE_MS, names);
    }
    fflush(stderr);
    free_files(w->files, w->n_files);
    w->files = l.v;
    w->n_files = l.n;
}

static void note(struct arc_watch *w, const char *name)
{
    size_t n = strlen(w->seen), k = strlen(name);
    for (const char *p = w->seen; (p = strstr(p, name)); p += k)
        if ((p == w->seen || p[-1] == ' ') && (p[k] == ',' || p[k] == '\0'))
            return;
    if (n + k + 3 < sizeof(w->seen))
        snprintf(w->seen + n, sizeof(w->seen) - n, "%s%s", n ? ", " : "", name);
}

bool arc_admin__watch_read(struct arc_watch *w, uint64_t now)
{
    if (w->fd < 0)
        return false;
    /* Aligned as the man page says: events are read in place. */
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    for (;;) {
        ssize_t r = read(w->fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (char *p = buf; p < buf + r;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                /* Events were lost: anything may have changed. */
                w->pending |= ARC_WATCH_CONFIG | ARC_WATCH_REF;
                note(w, "(event queue overflowed)");
                hit = true;
                continue;
            }
            if (ev->mask & IN_IGNORED) {
                /* The directory went away (or we dropped it): its names
                 * are watched again after the next successful reload. */
                for (size_t i = 0; i < w->n_files; i++)
                    if (w->files[i].wd == ev->wd)
                        w->files[i].wd = -1;
                continue;
            }
            if (!ev->len)
                continue;
            for (size_t i = 0; i < w->n_files; i++) {
                const struct arc_watch_file *f = &w->files[i];
                if (f->wd == ev->wd && strcmp(f->name, ev->name) == 0) {
                    w->pending |= f->kind;
                    note(w, f->name);
                    hit = true;
                }
            }
        }
    }
    if (hit)
        w->due = now + ARC_WATCH_DEBOUNCE_MS;
    return hit;
}

void arc_admin__watch_clear(struct arc_watch *w)
{
    w->pending = 0;
    w->seen[0] = '\0';
}

void arc_admin__watch_dispose(struct arc_watch *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    free_files(w->files, w->n_files);
    w->files = NULL;
    w->n_files = 0;
}
