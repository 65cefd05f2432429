#include <string.h>
#include "memops.h"

void vfl_memcpy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}

size_t vfl_first_difference(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    size_t i = 0;
    /* Compare 4 KiB at a time with memcmp (fast), then find the byte inside the differing block. */
    while (i < n) {
        size_t chunk = n - i < 4096 ? n - i : 4096;
        if (memcmp(x + i, y + i, chunk) != 0)
            break;
        i += chunk;
    }
    while (i < n && x[i] == y[i])
        i++;
    return i;
}
