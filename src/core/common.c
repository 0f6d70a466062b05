#include "core/common.h"

#include <stdio.h>
#include <stdlib.h>

void arc_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "arc: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

bool arc_str_ieq(struct arc_str a, const char *s, size_t n)
{
    if (a.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a.p[i], y = (unsigned char)s[i];
        if ((unsigned)(x - 'A') < 26u)
            x |= 0x20;
        if ((unsigned)(y - 'A') < 26u)
            y |= 0x20;
        if (x != y)
            return false;
    }
    return true;
}

/* "00" to "99": two digits per division (the divisions are multiplies). */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static unsigned digits_u64(uint64_t v)
{
    unsigned n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

char *arc_put_hex(char *w, uint64_t v)
{
    unsigned n = 1;
    for (uint64_t t = v >> 4; t; t >>= 4)
        n++;
    char *e = w + n, *p = e;
    do {
        *--p = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    return e;
}

char *arc_put_u64(char *w, uint64_t v)
{
    /* Written backwards from the end, which the digit count gives: no
     * scratch buffer and no copy (a profile of the access-log writer had
     * the old loop-and-memcpy form at 28% of formatting a line). */
    unsigned n = digits_u64(v);
    char *e = w + n, *p = e;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100) * 2;
        v /= 100;
        *--p = digit_pairs[r + 1];
        *--p = digit_pairs[r];
    }
    if (v >= 10) {
        *--p = digit_pairs[v * 2 + 1];
        *--p = digit_pairs[v * 2];
    } else {
        *--p = (char)('0' + v);
    }
    return e;
}
