#include <stdlib.h>
#include "gic_v2m.h"

#define RECORD_SLOTS 1024
#define V2M_IIDR 0x05100000u   /* QEMU's: product ID 0x51 in [31:20] */

struct vfl_v2m {
    uint32_t first_spi, num_spis;
    uint32_t raised[RECORD_SLOTS];
    uint32_t head, count;          /* ring of raised SPIs, oldest at head */
    uint64_t lost, ignored;
};

struct vfl_v2m *vfl_v2m_new(uint32_t first_spi, uint32_t num_spis)
{
    /* SPIs are INTIDs 32..1019; MSI_TYPER has 10 bits for each field. */
    if (first_spi < 32 || first_spi > 1019 || num_spis == 0 || num_spis > 1020 - first_spi)
        return NULL;
    struct vfl_v2m *v2m = calloc(1, sizeof(*v2m));
    if (!v2m)
        return NULL;
    v2m->first_spi = first_spi;
    v2m->num_spis = num_spis;
    return v2m;
}

void vfl_v2m_free(struct vfl_v2m *v2m) { free(v2m); }

static void raise_spi(struct vfl_v2m *v2m, uint32_t intid)
{
    if (v2m->count == RECORD_SLOTS) {          /* keep the newest: drop the oldest */
        v2m->head = (v2m->head + 1) % RECORD_SLOTS;
        v2m->count--;
        v2m->lost++;
    }
    v2m->raised[(v2m->head + v2m->count) % RECORD_SLOTS] = intid;
    v2m->count++;
}

static uint32_t read32(struct vfl_v2m *v2m, uint64_t offset)
{
    switch (offset) {
    case VFL_V2M_MSI_TYPER:
        return (v2m->first_spi & 0x3FF) << 16 | (v2m->num_spis & 0x3FF);
    case VFL_V2M_MSI_IIDR:
        return V2M_IIDR;
    default:
        return 0;                              /* MSI_SETSPI_NS is write-only; the rest RAZ */
    }
}

static void write32(struct vfl_v2m *v2m, uint64_t offset, uint32_t value)
{
    if (offset != VFL_V2M_MSI_SETSPI_NS)
        return;
    uint32_t intid = value & 0x3FF;
    if (intid >= v2m->first_spi && intid < v2m->first_spi + v2m->num_spis)
        raise_spi(v2m, intid);
    else
        v2m->ignored++;
}

uint64_t vfl_v2m_read(struct vfl_v2m *v2m, uint64_t offset, unsigned size)
{
    if (offset >= VFL_V2M_FRAME_SIZE)
        return 0;
    if (size == 8)
        return read32(v2m, offset) | (uint64_t)read32(v2m, offset + 4) << 32;
    return size == 4 ? read32(v2m, offset) : 0;
}

void vfl_v2m_write(struct vfl_v2m *v2m, uint64_t offset, uint64_t value, unsigned size)
{
    if (offset >= VFL_V2M_FRAME_SIZE)
        return;
    if (size == 8) {
        write32(v2m, offset, (uint32_t)value);
        write32(v2m, offset + 4, (uint32_t)(value >> 32));
    } else if (size == 4 || size == 2) {
        write32(v2m, offset, (uint32_t)(size == 2 ? value & 0xFFFF : value));
    }
}

uint32_t vfl_v2m_take_raised(struct vfl_v2m *v2m, uint32_t *out, uint32_t max, uint64_t *lost)
{
    uint32_t n = 0;
    while (n < max && v2m->count) {
        out[n++] = v2m->raised[v2m->head];
        v2m->head = (v2m->head + 1) % RECORD_SLOTS;
        v2m->count--;
    }
    if (lost)
        *lost = v2m->lost;
    return n;
}

uint64_t vfl_v2m_ignored(struct vfl_v2m *v2m) { return v2m->ignored; }
