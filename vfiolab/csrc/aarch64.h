/* A small, exact AArch64 interpreter for an EL1 guest: what the sim board's KVM runs.
 *
 * Instructions (A64, as the Arm ARM encodes them):
 *   MOVZ/MOVN/MOVK; ADD/ADDS/SUB/SUBS immediate and shifted register (CMP, CMN, MOV to/from SP);
 *   AND/ORR/EOR/ANDS immediate (bitmask) and shifted register, with N (BIC/ORN/EON/BICS, MOV, TST);
 *   B, BL, B.cond, CBZ/CBNZ, BR, BLR, RET, ERET;
 *   LDR/STR (B, H, W, X) with an unsigned scaled offset, and LDUR/STUR, pre- and post-index forms;
 *   MRS/MSR of VBAR_EL1, ESR_EL1, FAR_EL1, ELR_EL1, SPSR_EL1, SP_EL0, DAIF, NZCV, CurrentEL,
 *   MPIDR_EL1, TPIDR_EL1 and the GIC CPU interface (ICC_IAR1/EOIR1/HPPIR1/PMR/RPR/IGRPEN1/SRE/CTLR/
 *   DIR/BPR1_EL1); MSR DAIFSet/DAIFClr; ISB, DSB, DMB; WFI; every other hint (NOP, YIELD, WFE, ...)
 *   executes as a NOP, as the architecture says unallocated hints do.
 * IRQ exceptions: when the vGIC signals and PSTATE.I is clear, before the next instruction:
 *   ELR_EL1 = that instruction, SPSR_EL1 = PSTATE, PSTATE.DAIF all set, EL1h, PC = VBAR_EL1 + 0x080
 *   (from EL1t) or + 0x280 (from EL1h). ESR_EL1 is not written (IRQs have no syndrome).
 *
 * What the VMM sees (vfl_a64_run's exits): a load or store that misses guest RAM and the vGIC's
 * frames is an MMIO exit (address, width, direction, data), completed on the next run as KVM does
 * (kvm_handle_mmio_return: a load's data lands in Rt zero-extended, then the PC moves on). An
 * encoding outside the subset, a system register outside the list, a write of a read-only one,
 * or a PC that is unaligned or outside RAM stops with an exit that names the PC and the word:
 * never a crash. Real KVM would deliver an Undefined Instruction exception into the guest for a
 * truly undefined word; an instruction this subset lacks cannot be emulated here, so it stops.
 * WFI with nothing to wake it stops with a WFI exit (PC already past the WFI, as kvm_handle_wfx
 * leaves it); the step budget stops a guest that never exits.
 *
 * Only EL1 runs here: a PSTATE whose mode is not EL1t/EL1h (e.g. an ERET to EL0) stops with
 * VFL_A64_EXIT_BAD_MODE. No MMU (SCTLR_EL1.M is 0 after KVM's reset), no alignment checks, no
 * synchronous exceptions, no FP/SIMD.
 */
#ifndef VFIOLAB_AARCH64_H
#define VFIOLAB_AARCH64_H
#include <stdint.h>
#include "vgic3.h"

/* cffi-begin */
struct vfl_a64;

enum vfl_a64_exit_reason {
    VFL_A64_EXIT_BUDGET = 0,   /* the step budget ran out */
    VFL_A64_EXIT_MMIO = 1,     /* a load/store outside RAM */
    VFL_A64_EXIT_UNDEF = 2,    /* an encoding or system register outside the subset */
    VFL_A64_EXIT_FETCH = 3,    /* the PC is unaligned or outside RAM */
    VFL_A64_EXIT_WFI = 4,      /* WFI with no interrupt to wake it */
    VFL_A64_EXIT_EOI = 5,      /* a level SPI was deactivated: drain vfl_vgic3_take_eoi */
    VFL_A64_EXIT_BAD_MODE = 6, /* PSTATE names a mode other than EL1t/EL1h */
    VFL_A64_EXIT_NISV = 7      /* MMIO by a writeback (pre/post-index) form: no valid syndrome,
                                * which KVM_RUN answers with ENOSYS */
};

struct vfl_a64_exit {
    uint32_t reason;
    uint32_t insn;        /* the instruction word (MMIO, UNDEF) */
    uint64_t pc;          /* its address */
    uint64_t addr;        /* MMIO: guest physical address */
    uint64_t data;        /* MMIO write: the value stored */
    uint32_t len;         /* MMIO: 1, 2, 4 or 8 bytes */
    uint32_t is_write;
};

/* Register numbers for get/set: 0-30 X0-X30, then these. */
enum vfl_a64_reg {
    VFL_A64_SP_EL0 = 31, VFL_A64_PC = 32, VFL_A64_PSTATE = 33, VFL_A64_SP_EL1 = 34,
    VFL_A64_ELR_EL1 = 35, VFL_A64_SPSR_EL1 = 36, VFL_A64_VBAR_EL1 = 37, VFL_A64_ESR_EL1 = 38,
    VFL_A64_FAR_EL1 = 39, VFL_A64_TPIDR_EL1 = 40, VFL_A64_NREGS = 41
};

struct vfl_a64 *vfl_a64_new(void);
void vfl_a64_free(struct vfl_a64 *cpu);
/* KVM's vCPU reset: registers 0, PSTATE EL1h with DAIF masked (0x3c5), PC 0. */
void vfl_a64_reset(struct vfl_a64 *cpu);
/* Guest RAM slot (0..31): [gpa, gpa + size) is host memory at `host`; size 0 deletes the slot. */
int vfl_a64_set_ram(struct vfl_a64 *cpu, uint32_t slot, uint64_t gpa, uint64_t size, uint8_t *host);
/* The vGIC behind the ICC registers and at the two frames (NULL detaches it). */
void vfl_a64_attach_vgic(struct vfl_a64 *cpu, struct vfl_vgic3 *gic, uint64_t dist_base, uint64_t redist_base);
uint64_t vfl_a64_get_reg(struct vfl_a64 *cpu, uint32_t reg);
/* -1 for no such register. */
int vfl_a64_set_reg(struct vfl_a64 *cpu, uint32_t reg, uint64_t value);
/* The data an MMIO load exit returns; the load completes at the start of the next run. */
void vfl_a64_set_mmio_data(struct vfl_a64 *cpu, uint64_t data);
/* Run at most `budget` instructions; fills *exit and returns its reason. */
uint32_t vfl_a64_run(struct vfl_a64 *cpu, uint64_t budget, struct vfl_a64_exit *exit);
/* Instructions executed since reset. */
uint64_t vfl_a64_steps(struct vfl_a64 *cpu);
/* cffi-end */

#endif
