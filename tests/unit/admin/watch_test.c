/* Proves the file watcher sees the changes operators make to the config
 * file and the certificates it names (a write in place, an editor's
 * rename into place, delete and recreate, a symlink swap), tells the
 * config file from the files it references, ignores other files in the
 * same directories, and follows the running config's file list. Real
 * inotify on a temporary directory. */
#include "test.h"
#include "admin/admin_int.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void path_of(char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static void put(const char *name, const char *text)
{
    char p[PATH_MAX];
    path_of(p, name);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Events are queued synchronously by the syscalls above, so one read sees
 * all of them. */
static unsigned events(struct arc_watch *w)
{
    arc_admin__watch_read(w, 1000);
    unsigned p = w->pending;
    arc_admin__watch_clear(w);
    return p;
}

static void test_split_path(void)
{
    char d[64], n[32];
    CHECK_INT(arc_admin__split_path("a/b/c.pem", d, sizeof(d), n, sizeof(n)), 0);
    CHECK_STR(d, "a/b");
    CHECK_STR(n, "c.pem");
    CHECK_INT(arc_admin__split_path("c.pem", d, sizeof(d), n, sizeof(n)), 0);
    CHECK_STR(d, ".");
    CHECK_STR(n, "c.pem");
    CHECK_INT(arc_admin__split_path("/c", d, sizeof(d), n, sizeof(n)), 0);
    CHECK_STR(d, "/");
    CHECK_STR(n, "c");
    CHECK_INT(arc_admin__split_path("/etc/arc/arc.yaml", d, sizeof(d), n, sizeof(n)), 0);
    CHECK_STR(d, "/etc/arc");
    CHECK_STR(n, "arc.yaml");
    CHECK_INT(arc_admin__split_path("a/", d, sizeof(d), n, sizeof(n)), -1);
    CHECK_INT(arc_admin__split_path("", d, sizeof(d), n, sizeof(n)), -1);
    CHECK_INT(arc_admin__split_path("x/0123456789012345678901234567890123456789", d, sizeof(d),
                                    n, sizeof(n)), -1);
}

static void test_changes_are_seen(void)
{
    struct arc_watch w;
    if (arc_admin__watch_init(&w) < 0) {
        fprintf(stderr, "inotify unavailable: skipped\n");
        return;
    }
    char cfgp[PATH_MAX], certp[PATH_MAX], keyp[PATH_MAX], sub[PATH_MAX];
    path_of(sub, "certs");
    CHECK_INT(mkdir(sub, 0700), 0);
    put("arc.yaml", "a: 1\n");
    put("certs/c.pem", "cert\n");
    put("certs/k.pem", "key\n");
    path_of(cfgp, "arc.yaml");
    path_of(certp, "certs/c.pem");
    path_of(keyp, "certs/k.pem");

    struct arc_tls_cert_conf cert = { .cert_pem = certp, .key_pem = keyp };
    struct arc_listener_tls_conf tls = { .certs = &cert, .n_certs = 1 };
    struct arc_listener_conf l = { .name = "https", .tls = &tls };
    struct arc_config cfg = { .listeners = &l, .n_listeners = 1 };
    arc_admin__watch_set(&w, cfgp, &cfg);
    CHECK_INT(w.n_files, 3);
    CHECK_INT(events(&w), 0);

    put("arc.yaml", "a: 2\n");                                   /* in place */
    CHECK_INT(events(&w), ARC_WATCH_CONFIG);
    CHECK_STR(w.seen, "");                                       /* cleared */
    put("other.yaml", "x\n");                                    /* a neighbour */
    CHECK_INT(events(&w), 0);
    put(".arc.yaml.swp", "x\n");                                 /* an editor: temp, then rename */
    char tmp[PATH_MAX];
    path_of(tmp, ".arc.yaml.swp");
    CHECK_INT(rename(tmp, cfgp), 0);
    CHECK_INT(events(&w), ARC_WATCH_CONFIG);
    put("certs/c.pem.new", "cert2\n");                           /* rotation by rename */
    path_of(tmp, "certs/c.pem.new");
    CHECK_INT(rename(tmp, certp), 0);
    CHECK_INT(events(&w), ARC_WATCH_REF);
    CHECK_INT(unlink(keyp), 0);                                  /* delete, then recreate */
    put("certs/k.pem", "key2\n");
    arc_admin__watch_read(&w, 1000);
    CHECK_INT(w.pending, ARC_WATCH_REF);
    CHECK_INT(w.due, 1000 + ARC_WATCH_DEBOUNCE_MS);
    CHECK_STR(w.seen, "k.pem");
    put("arc.yaml", "a: 3\n");                                   /* both kinds in one burst */
    arc_admin__watch_read(&w, 1100);
    CHECK_INT(w.pending, ARC_WATCH_REF | ARC_WATCH_CONFIG);
    CHECK_INT(w.due, 1100 + ARC_WATCH_DEBOUNCE_MS);              /* pushed back by the last */
    CHECK_STR(w.seen, "k.pem, arc.yaml");
    arc_admin__watch_clear(&w);

    /* A config that no longer names the certificates: their directory is
     * dropped, their changes no longer count. */
    arc_admin__watch_set(&w, cfgp, NULL);
    CHECK_INT(w.n_files, 1);
    put("certs/c.pem", "cert3\n");
    CHECK_INT(events(&w), 0);
    put("arc.yaml", "a: 4\n");
    CHECK_INT(events(&w), ARC_WATCH_CONFIG);

    /* A config file that is a symlink: swapping the link is seen, and so is
     * a write to the file it leads to (in another directory). */
    char link[PATH_MAX], real2[PATH_MAX];
    path_of(link, "link.yaml");
    path_of(real2, "certs/real.yaml");
    put("certs/real.yaml", "a: 5\n");
    CHECK_INT(symlink(real2, link), 0);
    arc_admin__watch_set(&w, link, NULL);
    CHECK_INT(w.n_files, 2);
    put("certs/real.yaml", "a: 6\n");
    CHECK_INT(events(&w), ARC_WATCH_CONFIG);
    char link2[PATH_MAX];
    path_of(link2, "link2.yaml");
    CHECK_INT(symlink(cfgp, link2), 0);
    CHECK_INT(rename(link2, link), 0);
    CHECK_INT(events(&w), ARC_WATCH_CONFIG);

    /* No config file (the embedded default): nothing is watched. */
    arc_admin__watch_set(&w, NULL, &cfg);
    CHECK_INT(w.n_files, 0);
    put("arc.yaml", "a: 7\n");
    CHECK_INT(events(&w), 0);
    arc_admin__watch_dispose(&w);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/arc-watch-test-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_split_path);
    RUN(test_changes_are_seen);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_REPORT();
}
