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


def test_a_gicv2_host_has_no_vgic_v3_on_either_board():
    with vfiolab.open_board("sim", gic="v2m") as sim:
        kvm_scenarios.kvm_vgic_v3_needs_a_gicv3_host(sim)
    with vfiolab.open_board("qemu", gic="v2m", quiet=True) as qemu:
        kvm_scenarios.kvm_vgic_v3_needs_a_gicv3_host(qemu)
