"""Lab 03's widgets are thin views: the xgmac view shows the registers, the OWN bits in the
driver's memory and the wire as they are; the IRQ timeline shows each stage's state at the moment
it samples (device line, VFIO's mask, unread eventfd counts, the vGIC's SPI, the guest's report)."""
import os
import struct

import vfiolab
from vfiolab import guests, platform, uapi, vfio
from vfiolab.hw import xgmac as X
from vfiolab.hw.kvm import Vmm
from vfiolab.widgets.irq_timeline import IrqTimeline, eventfd_count
from vfiolab.widgets.xgmac_rings import XgmacView

XGMAC = "fff50000.ethernet"
IOVA = 0x40000000


def opened(board):
    platform.bind_to_vfio(board, XGMAC)
    container = vfio.Container(board)
    group = vfio.Group.of_device(board, XGMAC)
    group.set_container(container)
    container.set_iommu()
    return container, group, group.device(XGMAC)


def test_xgmac_view_shows_own_bits_registers_and_the_wire():
    with vfiolab.open_board("sim") as board:
        container, group, device = opened(board)
        mem = board.alloc(0x4000)
        container.map_dma(mem, IOVA, 0x4000)
        frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01\x88\xb5" + bytes(100)
        mem[0x2000:0x2000 + len(frame)] = frame
        mem[0:32] = X.tx_descriptor(IOVA + 0x2000, len(frame), end_ring=True)
        view = XgmacView(board, XGMAC, memory=mem, iova=IOVA, tx_ring=IOVA, slots=1, live=False)
        assert "tx OWN D" in view.text() and "wire 0 frames" in view.text()
        assert "vfiolab-xgmac" in view.widget._dom_classes
        assert view.refresh_button.tooltip
        regs = device.region(0).mmap(0x1000)
        regs.write32(X.DMA_TX_BASE_ADDR, IOVA)
        regs.write32(X.CONTROL, X.CONTROL_TE)
        regs.write32(X.DMA_CONTROL, X.DMA_CONTROL_ST)
        view.refresh()
        assert "tx OWN c" in view.text() and "wire 1 frames" in view.text()
        assert "CONTROL 0x00000008" in view.text() and "TE" in view.html.value
        assert "not open through VFIO" not in view.html.value          # VFIO's mask is shown
        regs.close()
        device.close()


def test_eventfd_count_reads_without_consuming():
    fd = os.eventfd(0)
    try:
        assert eventfd_count(fd) == 0
        os.eventfd_write(fd, 3)
        assert eventfd_count(fd) == 3 and eventfd_count(fd) == 3
        assert os.eventfd_read(fd) == 3
    finally:
        os.close(fd)
    assert eventfd_count(None) is None


def test_timeline_follows_one_interrupt_through_irqfd_and_resamplefd():
    with vfiolab.open_board("sim") as board:
        container, group, device = opened(board)
        regs = device.region(0).mmap(0x1000)
        trigger, resample = board.eventfd(), board.eventfd()
        board.ioctl(device.fd, uapi.VFIO_DEVICE_SET_IRQS, uapi.irq_set_eventfds(0, [trigger]))
        board.ioctl(device.fd, uapi.VFIO_DEVICE_SET_IRQS, uapi.irq_set_eventfds(
            0, [resample], flags=uapi.VFIO_IRQ_SET_DATA_EVENTFD | uapi.VFIO_IRQ_SET_ACTION_UNMASK))
        with Vmm(board) as vmm:
            vmm.load(guests.irq_guest())
            vmm.write32(guests.PARAMS, guests.ICFGR_LEVEL)
            vmm.run()
            vmm.irqfd(trigger, 5, resamplefd=resample)

            def raise_line():
                regs.write32(X.DMA_INTR_ENA, X.STATUS["TPS"])
                regs.write32(X.DMA_CONTROL, X.DMA_CONTROL_ST)
                regs.write32(X.DMA_CONTROL, 0)

            timeline = IrqTimeline(board, XGMAC, vmm, gsi=5, trigger=trigger, resample=resample,
                                   report=guests.REPORT,
                                   actions={"Raise": (raise_line, "raise the line")})
            assert "vfiolab-irq-timeline" in timeline.widget._dom_classes
            buttons = timeline.widget.children[0].children
            assert all(b.tooltip for b in buttons)
            buttons[0].click()                                  # Raise, then a sample
            timeline.sample("KVM_RUN", vmm.run())
            regs.write32(X.DMA_STATUS, X.STATUS["TPS"])
            timeline.sample("acked")
            timeline.sample("KVM_RUN", vmm.run())
            lines = timeline.text().splitlines()
            assert lines[0] == "Raise: line high, VFIO masked, trigger 0, resample 0, SPI pending/-"
            # level: KVM holds the SPI asserted until the EOI, so it is pending again while active
            assert lines[1].endswith("SPI pending/active, guest: IAR: took INTID 37")
            assert lines[2].startswith("acked: line low, VFIO masked")
            assert lines[3] == ("KVM_RUN: line low, VFIO unmasked, trigger 0, resample 0, SPI -/-, "
                                "guest: EOI of INTID 37 written")
            timeline.clear()
            assert timeline.rows == [] and "No moments" in timeline.html.value
        regs.close()
        device.close()
        for fd in (trigger, resample):
            board.close(fd)


def test_timeline_says_n_a_where_a_board_cannot_show_a_stage():
    """A board without the sim's model and VFIO state (a real kernel keeps both to itself): the
    device line and VFIO's mask read n/a; the eventfd counts are still read."""
    import types
    fd = os.eventfd(2)
    try:
        timeline = IrqTimeline(types.SimpleNamespace(), XGMAC, vmm=None, trigger=fd)
        timeline.sample("on a real kernel")
        assert timeline.text() == "on a real kernel: line n/a, VFIO n/a, trigger 2, resample None, SPI n/a/n/a"
    finally:
        os.close(fd)
