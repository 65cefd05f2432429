/* A GICv2m MSI frame (ARM's "GICv2m" extension, as Linux's irq-gic-v2m.c programs it).
 *
 * One 4 KiB frame: MSI_TYPER (0x008: [25:16] first SPI INTID, [9:0] number of SPIs),
 * MSI_SETSPI_NS (0x040: a write of an INTID makes that SPI pending) and MSI_IIDR (0xFCC). The
 * write carries only the INTID and nothing about who wrote it, so any bus master that can reach
 * the frame raises any SPI of it: GICv2m gives no MSI isolation.
 *
 * Access rules follow QEMU 7.2's hw/intc/arm_gicv2m.c, checked through qtest: only 32-bit reads
 * return data (other sizes read 0); 16- and 32-bit writes to MSI_SETSPI_NS take effect, the INTID
 * is the value's bits [9:0] (so 0x451 raises SPI 0x51), and an INTID outside the frame's range is
 * ignored; a 64-bit access is two 32-bit ones (low word first); 8-bit writes are ignored.
 * IIDR reads 0x05100000 (QEMU's product ID 0x51 in [31:20]), as QEMU's frame does.
 */
#ifndef VFIOLAB_GIC_V2M_H
#define VFIOLAB_GIC_V2M_H
#include <stdint.h>

/* cffi-begin */
#define VFL_V2M_MSI_TYPER 0x008
#define VFL_V2M_MSI_SETSPI_NS 0x040
#define VFL_V2M_MSI_IIDR 0xFCC
#define VFL_V2M_FRAME_SIZE 0x1000

struct vfl_v2m;

/* first_spi: the INTID of the frame's first SPI (32..1019); num_spis 1..1020-first_spi.
 * NULL when out of range. */
struct vfl_v2m *vfl_v2m_new(uint32_t first_spi, uint32_t num_spis);
void vfl_v2m_free(struct vfl_v2m *v2m);

/* Register access at a frame offset; size 1, 2, 4 or 8 bytes. */
uint64_t vfl_v2m_read(struct vfl_v2m *v2m, uint64_t offset, unsigned size);
void vfl_v2m_write(struct vfl_v2m *v2m, uint64_t offset, uint64_t value, unsigned size);

/* SPIs the frame has raised since the last call (oldest first), at most max; *lost counts those
 * that did not fit the frame's record (1024 entries) and were forgotten. */
uint32_t vfl_v2m_take_raised(struct vfl_v2m *v2m, uint32_t *out, uint32_t max, uint64_t *lost);
uint64_t vfl_v2m_ignored(struct vfl_v2m *v2m);   /* SETSPI writes outside the range */
/* cffi-end */

#endif
