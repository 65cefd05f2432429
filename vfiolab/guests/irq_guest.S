// Lab 03's guest: enables the GICv3 CPU interface and SPIs 32-63, then waits for interrupts.
// Each interrupt is reported to the VMM by an MMIO store (an address outside RAM and the GIC), so
// the VMM sees: IAR value (REPORT + 0), then EOI done (REPORT + 4). It runs unchanged on the sim's
// interpreter and on real KVM (loaded at BASE; vectors need 2 KiB alignment).
.equ BASE,     0x40000000
.equ GICD,     0x08000000      // KVM_VGIC_V3_ADDR_TYPE_DIST, as the VMM sets it
.equ REPORT,   0x0a000000      // no memslot here: every access is a KVM_EXIT_MMIO
.equ PARAMS,   0x40001000      // written by the VMM before KVM_RUN: +0 GICD_ICFGR2 value

start:
    movz x0, #0x4000, lsl #16
    movk x0, #0x0800               // x0 = BASE + 0x800: the vector table
    msr vbar_el1, x0
    mrs x0, icc_sre_el1
    orr x0, x0, #1                 // system-register interface (RAO/WI under KVM)
    msr icc_sre_el1, x0
    isb
    mov x0, #0xf0
    msr icc_pmr_el1, x0            // let every priority above 0xf0 through
    mov x0, #1
    msr icc_igrpen1_el1, x0        // group 1 on
    isb
    movz x1, #0x0800, lsl #16      // x1 = GICD
    mov w0, #0x12
    str w0, [x1]                   // GICD_CTLR = ARE_NS | EnableGrp1A
    movz x2, #0x4000, lsl #16
    movk x2, #0x1000               // x2 = PARAMS
    ldr w0, [x2]
    str w0, [x1, #0xc08]           // GICD_ICFGR2: SPIs 32-47, 0 = level, 0xaaaaaaaa = edge
    mov w0, #-1
    str w0, [x1, #0x104]           // GICD_ISENABLER1: SPIs 32-63 on
    dsb sy
    msr daifclr, #2                // unmask IRQs
idle:
    wfi
    b idle

    .balign 2048
vectors:
    .space 0x200                   // vectors + 0x200: synchronous, current EL with SP_ELx
sync:
    movz x3, #0x0a00, lsl #16
    mrs x0, esr_el1
    str w0, [x3, #8]               // REPORT + 8: an unexpected exception's syndrome
    b sync
    .balign 0x80                   // vectors + 0x280: IRQ, current EL with SP_ELx
irq:
    mrs x0, icc_iar1_el1
    cmp x0, #1023
    b.eq done                      // spurious: nothing to acknowledge
    movz x3, #0x0a00, lsl #16
    str w0, [x3]                   // REPORT + 0: the INTID taken
    msr icc_eoir1_el1, x0
    isb
    str w0, [x3, #4]               // REPORT + 4: EOI written
done:
    eret
