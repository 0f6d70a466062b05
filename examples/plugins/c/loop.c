/*
 * Budget test filter: with "x-loop: forever" on the request it never
 * returns (a loop with no exit the compiler can see); otherwise it adds
 * "x-loop-filter: passed".
 */
#include "pw.h"

static volatile u32 spin;

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size) { return 1; }

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *t = pw_header(MAP_REQUEST, "x-loop", &l);
    if (t && pw_eq(t, l, "forever"))
        for (;;)
            spin++;
    proxy_add_header_map_value(MAP_REQUEST, "x-loop-filter", 13, "passed", 6);
    return CONTINUE;
}
