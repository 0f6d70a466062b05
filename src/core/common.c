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

char *arc_put_u64(char *w, uint64_t v)
{
    char t[20];
    size_t i = sizeof(t);
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(w, t + i, sizeof(t) - i);
    return w + sizeof(t) - i;
}
