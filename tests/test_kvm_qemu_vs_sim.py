"""Differential: lab 03's guest under the sim's KVM and under the qemu board's real KVM, driven by the
same script, must give the same exits (kind, address, data, width, direction, in order) and the
same irqfd / resamplefd counts, for level and for edge SPIs; with a GICv2 host (gic="v2m") both
refuse the vGICv3 alike."""
import shutil
import struct

import pytest

import vfiolab
from vfiolab import guests

import kvm_scenarios
from kvm_scenarios import count, readable, signal

pytestmark = pytest.mark.skipif(not shutil.which("qemu-system-aarch64"),
                                reason="qemu-system-aarch64 is not installed (./bootstrap test installs it)")


def exit_trace(board, icfgr):
    """Every exit and eventfd count the script produces, as comparable tuples."""
    trace = []
    with kvm_scenarios.guest(board, icfgr) as vmm:
        def run(n=1):
            for _ in range(n):
                e = vmm.run()
                if e.reason == "intr":      # real KVM injects an irqfd from a kworker: give a late
                    e = vmm.run()           # one a second slice before calling it "nothing"
                trace.append((e.reason, e.addr, e.data, e.length, e.is_write))

        vmm.irq_line(3, 1)                          # KVM_IRQ_LINE: raise, taken, still high or latched
        run(2)
        vmm.irq_line(3, 0)
        run(1)
        vmm.irq_line(4, 1)                          # a pulse between two KVM_RUNs
        vmm.irq_line(4, 0)
        run(1)
        trigger, resample, plain = board.eventfd(), board.eventfd(), board.eventfd()
        try:
            vmm.irqfd(trigger, 6, resamplefd=resample)
            signal(board, trigger)
            run(3)
            trace.append(("resamplefd", readable(board, resample) and count(board, resample)))
            trace.append(("trigger", readable(board, trigger)))
            vmm.irqfd(plain, 7)                     # without resample: asserted, never lowered
            signal(board, plain)
            run(3)
            vmm.irqfd(trigger, 6, deassign=True)
            signal(board, trigger)
            run(1)
            trace.append(("trigger after deassign", readable(board, trigger) and count(board, trigger)))
            trace.append(("dist", vmm.dist_reg(0x104), vmm.dist_reg(0xC08), vmm.dist_reg(0x0)))
            vmm.irqfd(plain, 7, deassign=True)
        finally:
            for fd in (trigger, resample, plain):
                board.close(fd)
    return trace


@pytest.fixture(scope="module")
def qemu():
    with vfiolab.open_board("qemu", quiet=True) as b:
        yield b


@pytest.mark.parametrize("icfgr", [guests.ICFGR_LEVEL, guests.ICFGR_EDGE], ids=["level", "edge"])
def test_the_guest_exits_alike_on_sim_and_real_kvm(qemu, icfgr):
    with vfiolab.open_board("sim") as sim:
        expected = exit_trace(sim, icfgr)
    got = exit_trace(qemu, icfgr)
    assert got == expected
    assert sum(1 for t in expected if t[0] == "mmio") >= 4      # the script did exercise the guest


REGISTER_PROBE = """
    movz x3, #0x0a00, lsl #16          // REPORT: every store below is one MMIO exit
    movz x1, #0x0800, lsl #16          // GICD
    movz x2, #0x080a, lsl #16          // GICR
    mrs x0, icc_ctlr_el1
    str x0, [x3]
    mrs x0, icc_sre_el1
    str x0, [x3]
    mov x0, #0xff
    msr icc_pmr_el1, x0
    mrs x0, icc_pmr_el1                // the priority bits the CPU interface keeps
    str x0, [x3]
    mrs x0, icc_rpr_el1
    str x0, [x3]
    mrs x0, icc_bpr1_el1
    str x0, [x3]
    mrs x0, icc_igrpen1_el1
    str x0, [x3]
    mrs x0, icc_iar1_el1               // nothing pending: 1023
    str x0, [x3]
    mrs x0, currentel
    str x0, [x3]
    mrs x0, mpidr_el1
    str x0, [x3]
    mrs x0, daif
    str x0, [x3]
    mrs x0, vbar_el1
    str x0, [x3]
    ldr w0, [x1]                       // GICD_CTLR, TYPER, IIDR, STATUSR
    str x0, [x3]
    ldr w0, [x1, #4]
    str x0, [x3]
    ldr w0, [x1, #8]
    str x0, [x3]
    ldr w0, [x1, #0x10]
    str x0, [x3]
    mov w0, #-1
    str w0, [x1, #0x420]               // IPRIORITYR8: the priority bits the distributor keeps
    ldr w0, [x1, #0x420]
    str x0, [x3]
    ldr w0, [x1, #0xc08]               // ICFGR2 at reset: edge
    str x0, [x3]
    ldr x0, [x2, #8]                   // GICR_TYPER (64-bit)
    str x0, [x3]
    ldr w0, [x2]                       // GICR_CTLR, IIDR, WAKER
    str x0, [x3]
    ldr w0, [x2, #4]
    str x0, [x3]
    ldr w0, [x2, #0x14]
    str x0, [x3]
    movz x4, #0x0001, lsl #16
    add x4, x2, x4                     // the SGI frame
    ldr w0, [x4, #0x100]               // GICR_ISENABLER0: SGIs reset enabled
    str x0, [x3]
    ldr w0, [x4, #0xc04]               // GICR_ICFGR1: PPIs level
    str x0, [x3]
    b .
"""


def register_trace(board):
    from vfiolab.hw.a64_asm import assemble
    from vfiolab.hw.kvm import Vmm
    out = []
    with Vmm(board) as vmm:
        vmm.load(assemble(REGISTER_PROBE, base=guests.BASE))
        for _ in range(40):
            e = vmm.run()
            if e.reason != "mmio":
                break
            out.append((e.addr, e.length, e.data))
    return out


def test_system_and_gic_registers_read_alike(qemu):
    with vfiolab.open_board("sim") as sim:
        expected = register_trace(sim)
    assert len(expected) == 23
    got = register_trace(qemu)
    names = ["ICC_CTLR", "ICC_SRE", "ICC_PMR", "ICC_RPR", "ICC_BPR1", "ICC_IGRPEN1", "ICC_IAR1",
             "CurrentEL", "MPIDR", "DAIF", "VBAR", "GICD_CTLR", "GICD_TYPER", "GICD_IIDR",
             "GICD_STATUSR", "IPRIORITYR8", "ICFGR2", "GICR_TYPER", "GICR_CTLR", "GICR_IIDR",
             "GICR_WAKER", "GICR_ISENABLER0", "GICR_ICFGR1"]
    differ = [(n, hex(a[2]), hex(b[2])) for n, a, b in zip(names, got, expected) if a != b]
    assert differ == [] and len(got) == len(expected), f"(register, real KVM, sim): {differ}; real KVM gave {got}"


# Last: opening the v2m qemu board closes the module's one (one qemu board per process).
def test_a_gicv2_host_has_no_vgic_v3_on_either_board():
    with vfiolab.open_board("sim", gic="v2m") as sim:
        kvm_scenarios.kvm_vgic_v3_needs_a_gicv3_host(sim)
    with vfiolab.open_board("qemu", gic="v2m", quiet=True) as qemu:
        kvm_scenarios.kvm_vgic_v3_needs_a_gicv3_host(qemu)
