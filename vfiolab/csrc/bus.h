/* A bus master's view of memory: how every C device model reaches memory.
 *
 * A device model never dereferences an address it was given. It asks its bus to translate
 * [addr, addr + len) into host memory; the sim board's bus is the IOMMU (vfiolab/csrc/iommu.*),
 * which walks the device's mappings and records a fault (stream, IOVA, access) when there is none,
 * exactly as an SMMU logs an event. A standalone model (e.g. vfiolab.hw.pl330.PL330()) uses a flat
 * memory bus instead. Each bus master gets its own vfl_bus, so ctx can carry its stream ID.
 */
#ifndef VFIOLAB_BUS_H
#define VFIOLAB_BUS_H
#include <stdint.h>

/* cffi-begin */
enum vfl_bus_access { VFL_BUS_READ = 0, VFL_BUS_WRITE = 1, VFL_BUS_FETCH = 2 };

struct vfl_bus {
    /* Host memory backing addr, valid for *len bytes; NULL when the access faults (the bus records
     * why). The bus may shorten *len (to a page or mapping boundary): the caller then continues at
     * addr + *len with another call. A NULL translate means every access faults. */
    uint8_t *(*translate)(void *ctx, uint64_t addr, uint64_t *len, int access);
    void *ctx;
    /* Told after [addr, addr + len) was written through translate()'s pointer (NULL: nobody
     * listens). The sim's SMMU keeps what each stream wrote, so a check can tell a device's DMA
     * from bytes the CPU put there. */
    void (*wrote)(void *ctx, uint64_t addr, uint64_t len);
};
/* cffi-end */

#endif
