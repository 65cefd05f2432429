/* A flat memory bus: host memory at bus address 0, and copies through any vfl_bus.
 *
 * Standalone device models (vfiolab.hw.pl330.PL330()) get a flat bus of their own: one anonymous
 * mapping that the OS backs with zero pages lazily, so 256 MiB costs nothing until touched. An
 * access past its end is a bus error (translate returns NULL). vfl_bus_read/vfl_bus_write let
 * Python (tests, widgets) reach memory through any bus, page by page, the way a device would.
 */
#ifndef VFIOLAB_FLATMEM_H
#define VFIOLAB_FLATMEM_H
#include <stdint.h>
#include "bus.h"

/* cffi-begin */
struct vfl_flatmem;
/* NULL when the mapping cannot be made. */
struct vfl_flatmem *vfl_flatmem_new(uint64_t size);
void vfl_flatmem_free(struct vfl_flatmem *mem);
struct vfl_bus vfl_flatmem_bus(struct vfl_flatmem *mem);
uint8_t *vfl_flatmem_base(struct vfl_flatmem *mem);
uint64_t vfl_flatmem_size(struct vfl_flatmem *mem);
/* 0 on success, -1 when some part of [addr, addr + n) faults (bytes before it were copied). */
int vfl_bus_read(const struct vfl_bus *bus, uint64_t addr, void *buf, uint64_t n);
int vfl_bus_write(const struct vfl_bus *bus, uint64_t addr, const void *buf, uint64_t n);
/* cffi-end */

/* The loop under both, for C models: addresses wrap with addr_mask (0xFFFFFFFF for a 32-bit
 * master such as the PL330, UINT64_MAX otherwise). buf is read for VFL_BUS_WRITE, else filled. */
int vfl_bus_copy(const struct vfl_bus *bus, uint64_t addr, uint64_t addr_mask, uint8_t *buf,
                 uint64_t n, int access);

#endif
