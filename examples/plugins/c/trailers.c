/*
 * Trailers only: adds "x-trailer-seen: N" (N = the trailers it got) to the
 * request trailers (map 1) and "x-resp-trailer-seen: N" to the response
 * trailers (map 3). It exports no body callback: bodies pass as they
 * come, never buffered or rewritten.
 */
#include "pw.h"

enum { MAP_REQUEST_TRAILERS = 1, MAP_RESPONSE_TRAILERS = 3 };

static u32 add(u32 map, const char *name, u32 n)
{
    char d[2] = { (char)('0' + n / 10 % 10), (char)('0' + n % 10) };
    proxy_add_header_map_value(map, name, pw_strlen(name), d, 2);
    return CONTINUE;
}

EXPORT(proxy_on_request_trailers) u32 proxy_on_request_trailers(u32 id, u32 n)
{
    return add(MAP_REQUEST_TRAILERS, "x-trailer-seen", n);
}

EXPORT(proxy_on_response_trailers) u32 proxy_on_response_trailers(u32 id, u32 n)
{
    return add(MAP_RESPONSE_TRAILERS, "x-resp-trailer-seen", n);
}
