/*
 * Containment test filter: with "x-trap: oob" on the request it reads far
 * outside its linear memory, with "x-trap: unreachable" it executes
 * `unreachable`; otherwise it adds "x-trap-filter: passed". On the
 * response, "x-trap: oob" from the upstream makes it read out of bounds.
 */
#include "pw.h"

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size) { return 1; }

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *t = pw_header(MAP_REQUEST, "x-trap", &l);
    if (t && pw_eq(t, l, "oob"))
        return *(volatile u32 *)0xfffffff0u;
    if (t && pw_eq(t, l, "unreachable"))
        __builtin_trap();
    proxy_add_header_map_value(MAP_REQUEST, "x-trap-filter", 13, "passed", 6);
    return CONTINUE;
}

EXPORT(proxy_on_response_headers) u32 proxy_on_response_headers(u32 id, u32 n, u32 eos)
{
    size_t l;
    char *t = pw_header(MAP_RESPONSE, "x-trap", &l);
    if (t && pw_eq(t, l, "oob"))
        return *(volatile u32 *)0xfffffff0u;
    return CONTINUE;
}
