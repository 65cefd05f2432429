/* A GICv3 as KVM's vGICv3 presents it to a guest with one vCPU: distributor, redistributor, CPU
 * interface (the ICC_*_EL1 system registers).
 *
 * Behaviour follows arch/arm64/kvm/vgic (vgic-mmio-v3.c, vgic.c, vgic-init.c) and the GICv3
 * architecture: SPIs reset edge-triggered, group 1, priority 0, disabled; SGIs reset enabled and
 * edge, PPIs level. An interrupt is pending when its latch is set (edge, or ISPENDR) or, for a level
 * interrupt, while its input line is high. Acknowledging (IAR1) makes it active; EOIR1 drops the
 * running priority and, with ICC_CTLR_EL1.EOImode 0, deactivates it (ICC_DIR_EL1 does with 1).
 * Deactivating a level-triggered SPI queues an EOI notification: KVM asks for an EOI maintenance
 * interrupt only for level interrupts, and its irqfd resampler hangs off that (the line is lowered
 * and the resamplefd signalled by whoever drains the queue, vfl_vgic3_take_eoi).
 *
 * Not modelled: group 0 (FIQ), LPIs (no ITS here), SGI generation (ICC_SGI1R_EL1), binary point
 * preemption (preemption compares whole priorities), more than one vCPU.
 *
 * The SPI state API (vfl_vgic3_set_line, vfl_vgic3_irq_state) is what other interrupt sources
 * (irqfd, KVM_IRQ_LINE, an MSI frame turning a doorbell write into an SPI) drive.
 */
#ifndef VFIOLAB_VGIC3_H
#define VFIOLAB_VGIC3_H
#include <stdint.h>

/* cffi-begin */
struct vfl_vgic3;

/* The CPU interface registers a guest reaches with MRS/MSR. */
enum vfl_icc_reg {
    VFL_ICC_IAR1 = 0, VFL_ICC_EOIR1, VFL_ICC_HPPIR1, VFL_ICC_PMR, VFL_ICC_RPR, VFL_ICC_IGRPEN1,
    VFL_ICC_SRE, VFL_ICC_CTLR, VFL_ICC_DIR, VFL_ICC_BPR1
};

struct vfl_vgic3_irq {
    uint32_t intid;
    uint32_t enabled, pending, active;
    uint32_t level;       /* 1: level-triggered (ICFGR 0b00), 0: edge (0b10) */
    uint32_t line;        /* input line (level interrupts) */
    uint32_t latch;       /* pending latch (edges, ISPENDR) */
    uint32_t priority, group;
    uint64_t route;       /* GICD_IROUTER (SPIs) */
};

/* nr_spis: a multiple of 32, 32..988 (KVM: 32 + nr_spis is 64..1024). NULL otherwise. */
struct vfl_vgic3 *vfl_vgic3_new(uint32_t nr_spis);
void vfl_vgic3_free(struct vfl_vgic3 *gic);
void vfl_vgic3_reset(struct vfl_vgic3 *gic);
uint32_t vfl_vgic3_nr_spis(struct vfl_vgic3 *gic);

/* MMIO at an offset into the distributor (64 KiB) or the redistributor (RD + SGI frames, 128 KiB).
 * len 1, 2, 4 or 8; bad widths and reserved offsets read as zero and ignore writes (RAZ/WI). */
uint64_t vfl_vgic3_dist_read(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len);
void vfl_vgic3_dist_write(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len, uint64_t value);
uint64_t vfl_vgic3_redist_read(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len);
void vfl_vgic3_redist_write(struct vfl_vgic3 *gic, uint64_t offset, uint32_t len, uint64_t value);

/* An input line (kvm_vgic_inject_irq): level 1/0. An edge interrupt latches on level 1; a level
 * interrupt is pending while its line is high. -1 for an INTID that is not an SGI/PPI/SPI here. */
int vfl_vgic3_set_line(struct vfl_vgic3 *gic, uint32_t intid, int level);
/* -1 for no such INTID. */
int vfl_vgic3_irq_state(struct vfl_vgic3 *gic, uint32_t intid, struct vfl_vgic3_irq *out);

/* The CPU interface: 0 on success, -1 when the access is UNDEFINED (a read of a write-only
 * register, a write of a read-only one). */
int vfl_vgic3_icc_read(struct vfl_vgic3 *gic, int reg, uint64_t *value);
int vfl_vgic3_icc_write(struct vfl_vgic3 *gic, int reg, uint64_t value);
/* 1 when the CPU interface signals an IRQ (what PSTATE.I masks; WFI wakes on it). */
int vfl_vgic3_irq_signalled(struct vfl_vgic3 *gic);

/* Level SPIs deactivated since the last call, oldest first: 1 and *intid, or 0 when none. */
int vfl_vgic3_take_eoi(struct vfl_vgic3 *gic, uint32_t *intid);
int vfl_vgic3_eoi_pending(struct vfl_vgic3 *gic);
/* cffi-end */

#endif
