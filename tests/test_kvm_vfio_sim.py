"""Lab 03's second half on the sim: a VFIO platform device's level IRQ (the xgmac's, automasked)
delivered into a KVM guest with ACTION_TRIGGER = irqfd and ACTION_UNMASK = resamplefd, with no
user-space read in between; and the same interrupt done by hand in user space for comparison."""
import os
import struct

import pytest

import vfiolab
from vfiolab import guests
from vfiolab import uapi as U
from vfiolab.hw import xgmac as X

import kvm_scenarios
import scenarios
from scenarios import Session

NAME = "fff50000.ethernet"
GSI = 5                       # the guest sees the device's line as SPI 37
UNMASK = U.VFIO_IRQ_SET_DATA_EVENTFD | U.VFIO_IRQ_SET_ACTION_UNMASK


@pytest.fixture
def board():
    with vfiolab.open_board("sim") as b:
        yield b


def raise_line(regs):
    """TPS: stopping the transmitter raises the xgmac's level interrupt until DMA_STATUS is acked."""
    regs.write32(X.DMA_INTR_ENA, X.STATUS["TPS"])
    regs.write32(X.DMA_CONTROL, X.DMA_CONTROL_ST)
    regs.write32(X.DMA_CONTROL, 0)


def ack(regs):
    regs.write32(X.DMA_STATUS, X.STATUS["TPS"])


def readable(board, fd):
    return fd in board.poll([fd], 0)


def test_level_irq_through_irqfd_and_resamplefd_without_user_space(board):
    with Session(board, scenarios.Target("platform", NAME, "vfio-platform")) as s, \
            kvm_scenarios.guest(board, guests.ICFGR_LEVEL) as vmm:
        trigger, resample = s._keep(board.eventfd()), s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [trigger]))
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [resample], flags=UNMASK))
        vmm.irqfd(trigger, GSI, resamplefd=resample)
        regs = board.mmap(s.device, 0x1000, 0)
        for _ in range(3):
            raise_line(regs)
            assert board.vfio_irq_masked(NAME, 0)              # VFIO masked it, KVM holds the SPI
            assert not readable(board, trigger)                # KVM took the count, not user space
            iar = vmm.run()
            assert (iar.reason, iar.addr, iar.data) == ("mmio", guests.REPORT, 32 + GSI)
            ack(regs)                                          # the device's cause is cleared
            eoi = vmm.run()                                    # EOI -> resample -> VFIO unmask
            assert (eoi.addr, eoi.data) == (guests.REPORT + 4, 32 + GSI)
            assert not readable(board, resample)               # VFIO's virqfd consumed it
            assert not board.vfio_irq_masked(NAME, 0)
            kvm_scenarios.nothing_pending(vmm)
        regs.close()


def test_level_irq_not_acked_before_eoi_fires_again_at_once(board):
    with Session(board, scenarios.Target("platform", NAME, "vfio-platform")) as s, \
            kvm_scenarios.guest(board, guests.ICFGR_LEVEL) as vmm:
        trigger, resample = s._keep(board.eventfd()), s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [trigger]))
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [resample], flags=UNMASK))
        vmm.irqfd(trigger, GSI, resamplefd=resample)
        regs = board.mmap(s.device, 0x1000, 0)
        raise_line(regs)
        kvm_scenarios.take(vmm, 32 + GSI)
        kvm_scenarios.take(vmm, 32 + GSI)      # unmasked while the device still asserts: level
        ack(regs)
        kvm_scenarios.take(vmm, 32 + GSI)      # the one already injected before the ack
        kvm_scenarios.nothing_pending(vmm)
        regs.close()


def test_the_same_interrupt_by_hand_in_user_space(board):
    with Session(board, scenarios.Target("platform", NAME, "vfio-platform")) as s, \
            kvm_scenarios.guest(board, guests.ICFGR_LEVEL) as vmm:
        trigger = s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [trigger]))
        regs = board.mmap(s.device, 0x1000, 0)
        for _ in range(2):
            raise_line(regs)
            assert board.poll([trigger], 1000) == [trigger]
            assert struct.unpack("<Q", board.read(trigger, 8))[0] == 1       # user space reads it
            vmm.irq_line(GSI, 1)                                             # and injects it
            iar = vmm.run()
            assert iar.data == 32 + GSI
            ack(regs)
            vmm.irq_line(GSI, 0)
            assert vmm.run().addr == guests.REPORT + 4
            board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, unmask_none())   # and unmasks it
            assert not board.vfio_irq_masked(NAME, 0)
            kvm_scenarios.nothing_pending(vmm)
        regs.close()


def unmask_none():
    """VFIO_DEVICE_SET_IRQS index 0, ACTION_UNMASK with DATA_NONE."""
    return U.vfio_irq_set(flags=U.VFIO_IRQ_SET_DATA_NONE | U.VFIO_IRQ_SET_ACTION_UNMASK, index=0, start=0, count=1)
