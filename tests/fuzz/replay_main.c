/*
 * Replays fuzz inputs without libFuzzer: calls LLVMFuzzerTestOneInput on
 * every file named on the command line and every regular file in every
 * directory named there (not recursive). `make test` links it with each
 * *_fuzz.c under gcc ASan/UBSan, so the committed corpora run on every build.
 * Exits 1 if a path cannot be read; a failing input aborts in the target.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs one file through the target; returns 0 or -errno. The buffer is
 * exactly the file's size so ASan catches reads past the input, as
 * libFuzzer's own buffers do. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int e = -errno;
        fclose(f);
        return e;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    size_t replayed = 0;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            int e = replay_file(argv[i]);
            if (e) {
                fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(-e));
                rc = 1;
            } else {
                replayed++;
            }
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
            continue;
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char path[4096];
            struct stat fsb;
            if (snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name) >= (int)sizeof(path))
                continue;
            if (stat(path, &fsb) != 0 || !S_ISREG(fsb.st_mode))
                continue;
            int e = replay_file(path);
            if (e) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(-e));
                rc = 1;
            } else {
                replayed++;
            }
        }
        closedir(d);
    }
    printf("replayed %zu inputs\n", replayed);
    return rc;
}
