/* Cost of routes[].mirror[].compare on the primary's worker: ns per byte
 * of the body digest (arc_mc__dg_update, fed in 16 KiB pieces as the
 * response body is) and ns per response head summary (arc_mc__sum_head of a
 * 12-field head). The shadow's side runs on the mirror thread. Prints
 * Markdown. Argument: MiB digested per run (default 256). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/mirror_int.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink;

int main(int argc, char **argv)
{
    long mib = argc > 1 ? atol(argv[1]) : 256;
    static char piece[16384];
    for (size_t i = 0; i < sizeof(piece); i++)
        piece[i] = (char)(i * 31 + 7);
    printf("| measure | value |\n|---|---|\n");
    for (int r = 0; r < 3; r++) {
        struct arc_mc_digest d;
        arc_mc__dg_init(&d);
        long n = mib * 1024 * 1024 / (long)sizeof(piece);
        double t0 = now_ns();
        for (long k = 0; k < n; k++)
            arc_mc__dg_update(&d, piece, sizeof(piece));
        sink += arc_mc__dg_final(&d);
        double t = now_ns() - t0;
        printf("| body digest, run %d | %.3f ns/byte (%.2f GB/s) |\n", r + 1,
               t / (double)(n * (long)sizeof(piece)), (double)(n * (long)sizeof(piece)) / t);
    }
    static const char *const names[] = { "Content-Type", "Content-Length", "Date", "Server",
                                         "Cache-Control", "ETag", "Vary", "X-Request-Id",
                                         "X-Version", "Set-Cookie", "Set-Cookie", "Connection" };
    static const char *const values[] = { "application/json", "812", "Mon, 07 Dec 2026 18:00:00 GMT",
                                          "nginx", "no-cache", "\"33a64df5\"", "Accept-Encoding",
                                          "0193a4c2-8f3e-7d1a-b3c4-5d6e7f809a1b", "2.14.1",
                                          "a=1; Path=/", "b=2; Path=/", "keep-alive" };
    struct arc_h1_header h[12];
    for (int i = 0; i < 12; i++)
        h[i] = (struct arc_h1_header){ { names[i], strlen(names[i]) },
                                       { values[i], strlen(values[i]) } };
    static struct arc_mc_sum s;
    long iters = 2000000;
    for (int r = 0; r < 3; r++) {
        double t0 = now_ns();
        for (long k = 0; k < iters; k++) {
            arc_mc__sum_head(&s, 200, h, 12);
            sink += s.n_f;
        }
        printf("| head summary (12 fields), run %d | %.1f ns |\n", r + 1,
               (now_ns() - t0) / (double)iters);
    }
    return 0;
}
