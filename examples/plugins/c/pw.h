/*
 * A minimal proxy-wasm 0.2.1 binding for filters written in C (clang
 * --target=wasm32, no libc). Each filter includes this once.
 */
#ifndef PW_H
#define PW_H

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long size_t;

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

enum { MAP_REQUEST = 0, MAP_RESPONSE = 2 };
enum { BUF_PLUGIN_CONFIGURATION = 7 };
enum { CONTINUE = 0, PAUSE = 1 };

IMPORT(proxy_log) u32 proxy_log(u32 level, const char *msg, size_t len);
IMPORT(proxy_get_header_map_value) u32 proxy_get_header_map_value(u32 map, const char *k, size_t kl,
                                                                  char **ret, size_t *ret_len);
IMPORT(proxy_add_header_map_value) u32 proxy_add_header_map_value(u32 map, const char *k, size_t kl,
                                                                  const char *v, size_t vl);
IMPORT(proxy_replace_header_map_value) u32 proxy_replace_header_map_value(u32 map, const char *k,
                                                                          size_t kl, const char *v,
                                                                          size_t vl);
IMPORT(proxy_remove_header_map_value) u32 proxy_remove_header_map_value(u32 map, const char *k,
                                                                        size_t kl);
IMPORT(proxy_get_buffer_bytes) u32 proxy_get_buffer_bytes(u32 type, u32 start, u32 max, char **ret,
                                                          size_t *ret_len);
IMPORT(proxy_send_local_response) u32 proxy_send_local_response(u32 status, const char *details,
                                                                size_t dl, const char *body,
                                                                size_t bl, const char *hdrs,
                                                                size_t hl, int grpc);
IMPORT(proxy_get_property) u32 proxy_get_property(const char *path, size_t pl, char **ret,
                                                  size_t *ret_len);

static inline size_t pw_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static inline int pw_eq(const char *a, size_t al, const char *b)
{
    size_t bl = pw_strlen(b);
    if (al != bl)
        return 0;
    for (size_t i = 0; i < al; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* A bump allocator over a static arena: the host returns results in it. */
static char pw_heap[1 << 16];
static size_t pw_top;

EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (pw_top + n > sizeof(pw_heap))
        pw_top = 0;                     /* filters here keep nothing across calls */
    void *p = pw_heap + pw_top;
    pw_top += n;
    return p;
}

EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}
EXPORT(proxy_on_vm_start) u32 proxy_on_vm_start(u32 root, u32 size) { return 1; }
/* The root context of each HTTP context (a root per configuration). */
static u32 pw_ctx_root[256];
EXPORT(proxy_on_context_create) void proxy_on_context_create(u32 id, u32 root)
{
    pw_ctx_root[id % 256] = root;
}

/* The value of a header of `map` (NULL, 0 if absent). */
static inline char *pw_header(u32 map, const char *name, size_t *len)
{
    char *v = 0;
    *len = 0;
    if (proxy_get_header_map_value(map, name, pw_strlen(name), &v, len) != 0)
        return 0;
    return v;
}

#endif
