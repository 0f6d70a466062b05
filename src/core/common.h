/**
 * Small shared definitions every module uses: assertions, container_of,
 * branch hints and the borrowed string view.
 * Thread: any.
 */
#ifndef ARC_CORE_COMMON_H
#define ARC_CORE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#define ARC_LIKELY(x)   __builtin_expect(!!(x), 1)
#define ARC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ARC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ARC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ARC_MAX(a, b) ((a) > (b) ? (a) : (b))

#define arc_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Always-on invariant check. Never use it for input a peer controls. */
void arc_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));
#define ARC_ASSERT(e) \
    (ARC_LIKELY(e) ? (void)0 : arc_assert_fail(#e, __FILE__, __LINE__))

/** A borrowed byte range; never NUL-terminated unless said so. */
struct arc_str {
    const char *p;
    size_t len;
};

#define ARC_STR_LIT(s) ((struct arc_str){ (s), sizeof(s) - 1 })

static inline struct arc_str arc_str_make(const char *p, size_t len)
{
    return (struct arc_str){ p, len };
}

static inline bool arc_str_eq(struct arc_str a, const char *lit, size_t n)
{
    return a.len == n && memcmp(a.p, lit, n) == 0;
}

/* ASCII case-insensitive equality (header names, tokens). */
bool arc_str_ieq(struct arc_str a, const char *s, size_t n);

/* Writes the decimal digits of v at w (at most 20 bytes, no NUL) and
 * returns the end: numbers on hot paths without printf. */
char *arc_put_u64(char *w, uint64_t v);
/* The same in lower-case hexadecimal (at most 16 bytes): chunk sizes. */
char *arc_put_hex(char *w, uint64_t v);

#endif
