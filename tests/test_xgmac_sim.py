"""The xgmac on the sim board through VFIO, as a user-space driver drives it: a TX ring in a
MAP_DMA buffer reaches the wire, an injected frame lands in the RX ring, the main IRQ reaches an
eventfd (level, automasked), a ring at an unmapped IOVA is an SMMU fault and a fatal bus error.
"""
import struct

import pytest

import vfiolab
from vfiolab import uapi as U
from vfiolab.hw import xgmac as X
from vfiolab.hw.xgmac import rx_descriptor, tx_descriptor

import scenarios
from scenarios import Session, dma_map

NAME = "fff50000.ethernet"
IOVA = 0x4000_0000
TX_RING, RX_RING, TX_BUF, RX_BUF = 0x0, 0x1000, 0x2000, 0x4000


@pytest.fixture
def board():
    with vfiolab.open_board("sim") as b:
        yield b


def frame(n):
    return b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x09" + b"\x08\x06" + bytes(range(n - 14))


def session(board):
    return Session(board, scenarios.Target("platform", NAME, "vfio-platform"))


def test_tx_ring_in_a_dma_buffer_reaches_the_wire_and_the_irq_an_eventfd(board):
    with session(board) as s:
        buf = board.alloc(0x8000)
        dma_map(board, s.container, buf.vaddr, IOVA, 0x8000)
        efd = s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [efd]))
        f = frame(128)
        buf[TX_BUF:TX_BUF + len(f)] = f
        buf[TX_RING:TX_RING + 32] = tx_descriptor(IOVA + TX_BUF, len(f), end_ring=True)
        regs = board.mmap(s.device, 0x1000, 0)
        regs.write32(X.DMA_TX_BASE_ADDR, IOVA + TX_RING)
        regs.write32(X.DMA_INTR_ENA, X.STATUS["TI"] | X.STATUS["NIS"])
        regs.write32(X.CONTROL, X.CONTROL_TE)
        regs.write32(X.DMA_CONTROL, X.DMA_CONTROL_ST)
        assert board.poll([efd], 1000) == [efd]
        assert struct.unpack("<Q", board.read(efd, 8))[0] == 1
        assert board.xgmac_wire(NAME).frames_sent() == [f]
        assert struct.unpack_from("<I", buf, TX_RING)[0] & X.DESC_OWN == 0
        assert board.vfio_irq_masked(NAME, 0)                 # automasked until unmask
        regs.write32(X.DMA_STATUS, X.STATUS["TI"] | X.STATUS["NIS"])
        regs.close()


def test_injected_frame_lands_in_the_rx_ring(board):
    with session(board) as s:
        buf = board.alloc(0x8000)
        dma_map(board, s.container, buf.vaddr, IOVA, 0x8000)
        buf[RX_RING:RX_RING + 32] = rx_descriptor(IOVA + RX_BUF, 1536, end_ring=True)
        regs = board.mmap(s.device, 0x1000, 0)
        regs.write32(X.DMA_RX_BASE_ADDR, IOVA + RX_RING)
        regs.write32(X.CONTROL, X.CONTROL_RE)
        regs.write32(X.DMA_CONTROL, X.DMA_CONTROL_SR)
        f = frame(90)
        assert board.xgmac_wire(NAME).inject(f)
        regs.read32(X.DMA_STATUS)                             # any access services the board
        flags = struct.unpack_from("<I", buf, RX_RING)[0]
        assert flags >> 16 & 0x3FFF == len(f) + 4 and not flags & X.DESC_OWN
        assert bytes(buf[RX_BUF:RX_BUF + len(f)]) == f
        regs.close()


def test_ring_at_an_unmapped_iova_is_an_iommu_fault_never_host_memory(board):
    with session(board) as s:
        buf = board.alloc(0x1000)
        dma_map(board, s.container, buf.vaddr, IOVA, 0x1000)
        regs = board.mmap(s.device, 0x1000, 0)
        regs.write32(X.DMA_TX_BASE_ADDR, IOVA + 0x10000)      # past the mapping
        regs.write32(X.CONTROL, X.CONTROL_TE)
        regs.write32(X.DMA_CONTROL, X.DMA_CONTROL_ST)
        status = X.decode_status(regs.read32(X.DMA_STATUS))
        assert "FBI" in status["bits"] and status["bus_error"] == "TX DMA read of a descriptor"
        fault = board.iommu_faults()[-1]
        assert (fault.device, fault.iova, fault.access) == (NAME, IOVA + 0x10000, "read")
        regs.close()


def test_wire_of_a_device_that_is_not_an_xgmac(board):
    with pytest.raises(ValueError, match="not an xgmac"):
        board.xgmac_wire("2c0a0000.dma")
