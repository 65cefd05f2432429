/* Reference memory operations: the ceiling every DMA model's bandwidth is measured against. */
#ifndef VFIOLAB_MEMOPS_H
#define VFIOLAB_MEMOPS_H
#include <stddef.h>
#include <stdint.h>

/* cffi-begin */
/* Copy n bytes with the C library's memcpy: what "a plain memory copy" means in `vfiolab bench`. */
void vfl_memcpy(void *dst, const void *src, size_t n);
/* Index of the first byte where a and b differ, or n when they are equal (for DMA checks). */
size_t vfl_first_difference(const void *a, const void *b, size_t n);
/* cffi-end */

#endif
