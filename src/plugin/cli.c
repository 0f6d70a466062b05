/*
 * `arc plugin build`: ahead-of-time compilation from the command line, into
 * the same cache a config load uses (so a later `arc run` only loads).
 */
#include "plugin/plugin_int.h"
#include "config/config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *arc_plugin_default_cache_dir(void)
{
    char buf[4096];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (geteuid() == 0)
        snprintf(buf, sizeof(buf), "/var/cache/arc/plugins");
    else if (xdg && xdg[0] == '/')
        snprintf(buf, sizeof(buf), "%.4000s/arc/plugins", xdg);
    else if (home && home[0] == '/')
        snprintf(buf, sizeof(buf), "%.4000s/.cache/arc/plugins", home);
    else
        snprintf(buf, sizeof(buf), "/tmp/arc-plugins-%u", (unsigned)geteuid());
    return strdup(buf);
}

static void usage(void)
{
    fprintf(stderr, "usage: arc plugin build [--cache-dir DIR] FILE.wasm...\n"
                    "  compiles proxy-wasm modules into the plugin cache (default: the\n"
                    "  plugins.cache_dir default, see docs/plugins.md)\n");
}

int arc_plugin_cli(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "build") != 0) {
        usage();
        return 2;
    }
    int i = 3;
    char *dir = NULL;
    if (i + 1 < argc && strcmp(argv[i], "--cache-dir") == 0) {
        dir = strdup(argv[i + 1]);
        i += 2;
    } else {
        dir = arc_plugin_default_cache_dir();
    }
    if (!dir || i >= argc) {
        free(dir);
        usage();
        return 2;
    }
    int rc = 0;
    for (; i < argc; i++) {
        char so[4096], err[512];
        if (arc_pl__build(argv[i], dir, ARC_PLUGIN_COMPILE_TIMEOUT_MS, so, sizeof(so), err,
                          sizeof(err)) < 0) {
            fprintf(stderr, "arc: %s: %s\n", argv[i], err);
            rc = 1;
            continue;
        }
        void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
        const struct arc_w2c_module *m = dl ? dlsym(dl, "arc_w2c_module_v1") : NULL;
        if (!m || m->abi != ARC_W2C_ABI) {
            fprintf(stderr, "arc: %s: the compiled object does not load: %s\n", argv[i],
                    dl ? "no module descriptor" : dlerror());
            rc = 1;
        } else {
            printf("ok %s\n", so);
        }
        if (dl)
            dlclose(dl);
    }
    free(dir);
    return rc;
}
