/* KVM's vGICv3 for one vCPU: see vgic3.h. Offsets are the GICv3 architecture's; the values KVM
 * shows (TYPER, IIDR, CTLR's fixed bits, 5 priority bits) are from arch/arm64/kvm/vgic. */
#include "vgic3.h"

#include <stdlib.h>
#include <string.h>

#define NR_PRIVATE 32
#define SPURIOUS 1023u
#define PRIORITY_MASK 0xF8u        /* VGIC_PRI_BITS = 5: IPRIORITYR and PMR keep the top 5 bits */
#define MAX_ACTIVE 32
#define EOI_QUEUE 64

/* GICD_CTLR bits: KVM's v3 distributor always has affinity routing and a single security state. */
#define CTLR_ENABLE_G1A (1u << 1)
#define CTLR_ARE_NS (1u << 4)
#define CTLR_DS (1u << 6)
/* GICD_IIDR / GICR_IIDR: implementer ARM (0x43b), revision 3 (KVM_VGIC_IMP_REV_3), product 'K'. */
#define KVM_IIDR ((0x4bu << 24) | (3u << 12) | 0x43bu)
/* GICR_IIDR has no revision field in KVM (0x4b00043b on the qemu board's 6.1). */
#define KVM_GICR_IIDR ((0x4bu << 24) | 0x43bu)
#define GICR_CTLR_CES (1u << 1)
#define GICR_CTLR_IR (1u << 2)
#define PIDR2_GICV3 0x3bu
#define INTERRUPT_ID_BITS_SPIS 10u
#define ICC_CTLR_A3V (1u << 15)
#define ICC_CTLR_PRIBITS (4u << 8)     /* 5 priority bits */
#define ICC_CTLR_IDBITS (1u << 11)     /* 24-bit INTIDs: ICC_CTLR_EL1 reads 0x8c00 on the qemu board */
#define ICC_CTLR_EOIMODE (1u << 1)
#define ICC_CTLR_CBPR 1u
#define BPR1_MIN 3u

struct irq {
    uint8_t enabled, latch, line, active, level, group, priority;
    uint64_t route;
};

struct vfl_vgic3 {
    uint32_t nr_spis, nr_irqs;
    struct irq *irqs;
    uint32_t dist_enabled;
    /* CPU interface */
    uint32_t pmr, igrpen1, eoimode, cbpr, bpr1;
    uint32_t active_stack[MAX_ACTIVE];   /* acknowledged INTIDs, innermost last: running priority */
    uint32_t active_depth;
    uint32_t eoi_queue[EOI_QUEUE];
    uint32_t eoi_head, eoi_count;
};

struct vfl_vgic3 *vfl_vgic3_new(uint32_t nr_spis)
{
    if (nr_spis < 32 || nr_spis > 988 || nr_spis % 32)
        return NULL;
    struct vfl_vgic3 *gic = calloc(1, sizeof(*gic));
    if (!gic)
        return NULL;
    gic->nr_spis = nr_spis;
    gic->nr_irqs = NR_PRIVATE + nr_spis;
    gic->irqs = calloc(gic->nr_irqs, sizeof(struct irq));
    if (!gic->irqs) {
        free(gic);
        return NULL;
    }
    vfl_vgic3_reset(gic);
    return gic;
}

void vfl_vgic3_free(struct vfl_vgic3 *gic)
{
    if (gic) {
        free(gic->irqs);
        free(gic);
    }
}

void vfl_vgic3_reset(struct vfl_vgic3 *gic)
{
    /* kvm_vgic_dist_init / kvm_vgic_vcpu_init: v3 interrupts are group 1; SGIs enabled and edge,
     * PPIs level, SPIs edge (VGIC_CONFIG_EDGE is 0), all priority 0. */
    memset(gic->irqs, 0, gic->nr_irqs * sizeof(struct irq));
    for (uint32_t i = 0; i < gic->nr_irqs; i++) {
        gic->irqs[i].group = 1;
        gic->irqs[i].level = i >= 16 && i < NR_PRIVATE;
        gic->irqs[i].enabled = i < 16;
    }
    gic->dist_enabled = 0;
    gic->pmr = 0;
    gic->igrpen1 = 0;
    gic->eoimode = 0;
    gic->cbpr = 0;
    gic->bpr1 = BPR1_MIN;
    gic->active_depth = 0;
    gic->eoi_head = gic->eoi_count = 0;
}

uint32_t vfl_vgic3_nr_spis(struct vfl_vgic3 *gic) { return gic->nr_spis; }

static int pending(const struct irq *irq) { return irq->latch || (irq->level && irq->line); }

/* Highest-priority interrupt the distributor forwards to the vCPU, or NULL. KVM's
 * vgic_target_oracle: enabled and pending, the distributor enabled; an SPI whose IROUTER names no
 * vCPU (our one vCPU has affinity 0) goes nowhere. An active interrupt is not forwarded again. */
static uint32_t highest_pending(const struct vfl_vgic3 *gic)
{
    uint32_t best = SPURIOUS, best_priority = 0x100;
    if (!gic->dist_enabled)
        return SPURIOUS;
    for (uint32_t i = 0; i < gic->nr_irqs; i++) {
        const struct irq *irq = &gic->irqs[i];
        if (!irq->enabled || !pending(irq) || irq->active || irq->group != 1)
            continue;
        if (i >= NR_PRIVATE && (irq->route & 0xFF00FFFFFFull) != 0)
            continue;
        if (irq->priority < best_priority) {
            best = i;
            best_priority = irq->priority;
        }
    }
    return best;
}

static uint32_t running_priority(const struct vfl_vgic3 *gic)
{
    if (!gic->active_depth)
        return 0xFF;
    return gic->irqs[gic->active_stack[gic->active_depth - 1]].priority;
}

int vfl_vgic3_irq_signalled(struct vfl_vgic3 *gic)
{
    if (!gic->igrpen1)
        return 0;
    uint32_t id = highest_pending(gic);
    if (id == SPURIOUS)
        return 0;
    uint32_t priority = gic->irqs[id].priority;
    return priority < gic->pmr && priority < running_priority(gic);
}

static void deactivate(struct vfl_vgic3 *gic, uint32_t id)
{
    if (id >= gic->nr_irqs || !gic->irqs[id].active)
        return;
    gic->irqs[id].active = 0;
    if (id >= NR_PRIVATE && gic->irqs[id].level && gic->eoi_count < EOI_QUEUE) {
        gic->eoi_queue[(gic->eoi_head + gic->eoi_count) % EOI_QUEUE] = id;
        gic->eoi_count++;
    }
}

int vfl_vgic3_take_eoi(struct vfl_vgic3 *gic, uint32_t *intid)
{
    if (!gic->eoi_count)
        return 0;
    *intid = gic->eoi_queue[gic->eoi_head];
    gic->eoi_head = (gic->eoi_head + 1) % EOI_QUEUE;
    gic->eoi_count--;
    return 1;
}

int vfl_vgic3_eoi_pending(struct vfl_vgic3 *gic) { return gic->eoi_count != 0; }

int vfl_vgic3_set_line(struct vfl_vgic3 *gic, uint32_t intid, int level)
{
    if (intid >= gic->nr_irqs)
        return -1;
    struct irq *irq = &gic->irqs[intid];
    /* vgic_validate_injection: a level interrupt follows its line, an edge latches on a 1. */
    if (irq->level)
        irq->line = level != 0;
    else if (level)
        irq->latch = 1;
    return 0;
}

int vfl_vgic3_irq_state(struct vfl_vgic3 *gic, uint32_t intid, struct vfl_vgic3_irq *out)
{
    if (intid >= gic->nr_irqs)
        return -1;
    const struct irq *irq = &gic->irqs[intid];
    out->intid = intid;
    out->enabled = irq->enabled;
    out->pending = pending(irq);
    out->active = irq->active;
    out->level = irq->level;
    out->line = irq->line;
    out->latch = irq->latch;
    out->priority = irq->priority;
    out->group = irq->group;
    out->route = irq->route;
    return 0;
}

/* --- bit-per-interrupt and byte-per-interrupt register banks ------------------------------------ */
enum bank { B_GROUP, B_SENABLE, B_CENABLE, B_SPEND, B_CPEND, B_SACTIVE, B_CACTIVE };

static uint32_t bank_read(const struct vfl_vgic3 *gic, enum bank bank, uint32_t first)
{
    uint32_t value = 0;
    for (uint32_t i = 0; i < 32 && first + i < gic->nr_irqs; i++) {
        const struct irq *irq = &gic->irqs[first + i];
        uint32_t bit = 0;
        switch (bank) {
        case B_GROUP: bit = irq->group; break;
        case B_SENABLE: case B_CENABLE: bit = irq->enabled; break;
        case B_SPEND: case B_CPEND: bit = pending(irq); break;
        case B_SACTIVE: case B_CACTIVE: bit = irq->active; break;
        }
        value |= bit << i;
    }
    return value;
}

static void bank_write(struct vfl_vgic3 *gic, enum bank bank, uint32_t first, uint32_t value)
{
    for (uint32_t i = 0; i < 32 && first + i < gic->nr_irqs; i++) {
        uint32_t id = first + i;
        struct irq *irq = &gic->irqs[id];
        int bit = (value >> i) & 1;
        if (bank == B_GROUP) {
            irq->group = bit;
            continue;
        }
        if (!bit)
            continue;
        switch (bank) {
        case B_SENABLE: irq->enabled = 1; break;
        case B_CENABLE: irq->enabled = 0; break;
        case B_SPEND: irq->latch = 1; break;
        /* ICPENDR clears the latch; a level interrupt whose line is high stays pending. */
        case B_CPEND: irq->latch = 0; break;
        case B_SACTIVE: irq->active = 1; break;
        case B_CACTIVE: deactivate(gic, id); break;
        default: break;
        }
    }
}

static uint32_t config_read(const struct vfl_vgic3 *gic, uint32_t first)
{
    uint32_t value = 0;
    for (uint32_t i = 0; i < 16 && first + i < gic->nr_irqs; i++)
        if (!gic->irqs[first + i].level)
            value |= 2u << (2 * i);
    return value;
}

static void config_write(struct vfl_vgic3 *gic, uint32_t first, uint32_t value)
{
    /* vgic_mmio_write_config: SGI and PPI configurations are read-only in KVM. */
    for (uint32_t i = 0; i < 16 && first + i < gic->nr_irqs; i++)
        if (first + i >= NR_PRIVATE)
            gic->irqs[first + i].level = !((value >> (2 * i + 1)) & 1);
}

static uint64_t priority_read(const struct vfl_vgic3 *gic, uint32_t first, uint32_t len)
{
    uint64_t value = 0;
    for (uint32_t i = 0; i < len && first + i < gic->nr_irqs; i++)
        value |= (uint64_t)gic->irqs[first + i].priority << (8 * i);
    return value;
}

static void priority_write(struct vfl_vgic3 *gic, uint32_t first, uint32_t len, uint64_t value)
{
    for (uint32_t i = 0; i < len && first + i < gic->nr_irqs; i++)
        gic->irqs[first + i].priority = (value >> (8 * i)) & PRIORITY_MASK;
}

/* The registers both frames share, with INTIDs counted from `base` (0 in the SGI frame,
 * 0 in the distributor, whose INTIDs 0-31 are RAZ/WI under affinity routing). Returns 1 when
 * `offset` is one of them. */
static int banked_access(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len, uint64_t *value,
                         int write, uint32_t lowest, uint32_t limit)
{
    static const struct { uint32_t start; enum bank bank; } banks[] = {
        {0x080, B_GROUP}, {0x100, B_SENABLE}, {0x180, B_CENABLE}, {0x200, B_SPEND},
        {0x280, B_CPEND}, {0x300, B_SACTIVE}, {0x380, B_CACTIVE},
    };
    for (unsigned b = 0; b < sizeof(banks) / sizeof(banks[0]); b++) {
        if (offset >= banks[b].start && offset < banks[b].start + 0x80) {
            uint32_t first = (uint32_t)(offset - banks[b].start) * 8;
            if (len != 4 || offset % 4 || first < lowest || first >= limit)
                return 1;                                   /* RAZ/WI */
            if (write)
                bank_write(gic, banks[b].bank, first, (uint32_t)*value);
            else
                *value = bank_read(gic, banks[b].bank, first);
            return 1;
        }
    }
    if (offset >= 0x400 && offset < 0x800) {                 /* IPRIORITYR: byte accesses too */
        uint32_t first = (uint32_t)(offset - 0x400);
        if ((len != 1 && len != 4) || offset % len || first < lowest || first >= limit)
            return 1;
        if (write)
            priority_write(gic, first, len, *value);
        else
            *value = priority_read(gic, first, len);
        return 1;
    }
    if (offset >= 0xC00 && offset < 0xD00) {                 /* ICFGR */
        uint32_t first = (uint32_t)(offset - 0xC00) * 4;
        if (len != 4 || offset % 4 || first < lowest || first >= limit)
            return 1;
        if (write)
            config_write(gic, first, (uint32_t)*value);
        else
            *value = config_read(gic, first);
        return 1;
    }
    return 0;
}

/* --- distributor -------------------------------------------------------------------------------- */
static uint64_t dist_access(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len, uint64_t value, int write)
{
    uint64_t out = 0;
    if (banked_access(gic, offset, len, write ? &value : &out, write, NR_PRIVATE, gic->nr_irqs))
        return out;
    if (offset >= 0x6100 && offset < 0x6000 + 8ull * gic->nr_irqs) {   /* IROUTER<n>, n >= 32 */
        uint32_t id = (uint32_t)((offset - 0x6000) / 8), half = (offset % 8) / 4;
        if (!((len == 8 && offset % 8 == 0) || (len == 4 && offset % 4 == 0)))
            return 0;
        uint64_t *route = &gic->irqs[id].route;
        if (write) {
            uint64_t v = len == 8 ? value : half ? (*route & 0xFFFFFFFFull) | (value << 32)
                                                 : (*route & ~0xFFFFFFFFull) | (uint32_t)value;
            *route = v & 0xFF00FFFFFFull;      /* affinity only: KVM keeps no IRM bit */
            return 0;
        }
        return len == 8 ? *route : (uint32_t)(*route >> (32 * half));
    }
    if (len != 4 || offset % 4)
        return 0;
    switch (offset) {
    case 0x0000:                                                        /* GICD_CTLR */
        if (write)
            gic->dist_enabled = (value & CTLR_ENABLE_G1A) != 0;
        return CTLR_ARE_NS | CTLR_DS | (gic->dist_enabled ? CTLR_ENABLE_G1A : 0);
    case 0x0004:                                                        /* GICD_TYPER */
        return ((gic->nr_irqs >> 5) - 1) | ((INTERRUPT_ID_BITS_SPIS - 1) << 19);
    case 0x0008:                                                        /* GICD_IIDR */
        return KVM_IIDR;
    case 0x0010:                       /* GICD_STATUSR: read-as-ones in KVM (seen on the qemu board) */
        return 0xFFFFFFFFu;
    case 0xFFE8:                                                        /* GICD_PIDR2 */
        return PIDR2_GICV3;
    }
    return 0;
}

uint64_t vfl_vgic3_dist_read(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len)
{
    return dist_access(gic, offset, len, 0, 0);
}

void vfl_vgic3_dist_write(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len, uint64_t value)
{
    dist_access(gic, offset, len, value, 1);
}

/* --- redistributor: RD_base frame, then SGI_base frame at +64 KiB ------------------------------- */
static uint64_t redist_access(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len, uint64_t value, int write)
{
    uint64_t out = 0;
    if (offset >= 0x10000) {
        banked_access(gic, offset - 0x10000, len, write ? &value : &out, write, 0, NR_PRIVATE);
        return out;
    }
    if (offset == 0x0008 && len == 8)
        return 1u << 4;                        /* GICR_TYPER: affinity 0, processor 0, Last */
    if (len != 4 || offset % 4)
        return 0;
    switch (offset) {
    case 0x0000: return GICR_CTLR_CES | GICR_CTLR_IR;   /* GICR_CTLR: no LPIs; revision 3's bits */
    case 0x0004: return KVM_GICR_IIDR;         /* GICR_IIDR */
    case 0x0008: return 1u << 4;               /* GICR_TYPER, low half */
    case 0x000C: return 0;                     /* GICR_TYPER, high half: affinity 0 */
    case 0xFFE8: return PIDR2_GICV3;
    }
    return 0;                                  /* WAKER (RAZ/WI in KVM), ... */
}

uint64_t vfl_vgic3_redist_read(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len)
{
    return redist_access(gic, offset, len, 0, 0);
}

void vfl_vgic3_redist_write(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len, uint64_t value)
{
    redist_access(gic, offset, len, value, 1);
}

/* --- CPU interface ------------------------------------------------------------------------------ */
int vfl_vgic3_icc_read(struct vfl_vgic3 *gic, int reg, uint64_t *value)
{
    switch (reg) {
    case VFL_ICC_IAR1: {
        *value = SPURIOUS;
        if (!vfl_vgic3_irq_signalled(gic) || gic->active_depth == MAX_ACTIVE)
            return 0;
        uint32_t id = highest_pending(gic);
        gic->irqs[id].active = 1;
        gic->irqs[id].latch = 0;              /* a level interrupt stays pending while its line is high */
        gic->active_stack[gic->active_depth++] = id;
        *value = id;
        return 0;
    }
    case VFL_ICC_HPPIR1:
        *value = gic->igrpen1 ? highest_pending(gic) : SPURIOUS;
        return 0;
    case VFL_ICC_PMR: *value = gic->pmr; return 0;
    case VFL_ICC_RPR: *value = running_priority(gic); return 0;
    case VFL_ICC_IGRPEN1: *value = gic->igrpen1; return 0;
    case VFL_ICC_SRE: *value = 0x7; return 0;     /* SRE, DFB, DIB: system registers only */
    case VFL_ICC_CTLR:
        *value = ICC_CTLR_A3V | ICC_CTLR_IDBITS | ICC_CTLR_PRIBITS | (gic->eoimode ? ICC_CTLR_EOIMODE : 0) |
                 gic->cbpr;
        return 0;
    case VFL_ICC_BPR1: *value = gic->bpr1; return 0;
    }
    return -1;                                     /* EOIR1, DIR: write-only */
}

int vfl_vgic3_icc_write(struct vfl_vgic3 *gic, int reg, uint64_t value)
{
    uint32_t id = value & 0xFFFFFF;
    switch (reg) {
    case VFL_ICC_EOIR1:
        if (id >= 1020 && id <= 1023)
            return 0;                  /* special INTIDs: no priority drop */
        if (gic->active_depth)
            gic->active_depth--;       /* priority drop: the running priority's interrupt */
        if (!gic->eoimode)
            deactivate(gic, id);
        return 0;
    case VFL_ICC_DIR:
        if (gic->eoimode)
            deactivate(gic, id);
        return 0;
    case VFL_ICC_PMR: gic->pmr = value & PRIORITY_MASK; return 0;
    case VFL_ICC_IGRPEN1: gic->igrpen1 = value & 1; return 0;
    case VFL_ICC_SRE: return 0;        /* RAO/WI */
    case VFL_ICC_CTLR:
        gic->eoimode = (value & ICC_CTLR_EOIMODE) != 0;
        gic->cbpr = value & ICC_CTLR_CBPR;
        return 0;
    case VFL_ICC_BPR1:
        gic->bpr1 = (value & 7) < BPR1_MIN ? BPR1_MIN : (value & 7);
        return 0;
    }
    return -1;                         /* IAR1, HPPIR1, RPR: read-only */
}
