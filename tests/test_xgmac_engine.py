"""The xgmac model (vfiolab/csrc/xgmac.c) through its headless face, vfiolab.hw.xgmac.Xgmac: rings,
frames on the wire, loopback, status bits and their summaries, the level IRQ, faults through the SMMU.
"""
import struct

import pytest

from vfiolab.hw import xgmac as X
from vfiolab.hw.xgmac import Xgmac, rx_descriptor, tx_descriptor

TX_RING, RX_RING, BUFS = 0x1000, 0x3000, 0x10000


def frame(n, seed=1, ethertype=0x0800):
    payload = bytes((seed * 7 + i * 13) & 0xFF for i in range(n - 14))
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + \
        ethertype.to_bytes(2, "big") + payload


def started(mac, tx=True, rx=False, loopback=False, intr=0x1FFFF):
    mac.writel(X.DMA_TX_BASE_ADDR, TX_RING)
    mac.writel(X.DMA_RX_BASE_ADDR, RX_RING)
    mac.writel(X.DMA_INTR_ENA, intr)
    mac.writel(X.CONTROL, (X.CONTROL_TE if tx else 0) | (X.CONTROL_RE if rx else 0) |
               (X.CONTROL_LM if loopback else 0))
    mac.writel(X.DMA_CONTROL, (X.DMA_CONTROL_ST if tx else 0) | (X.DMA_CONTROL_SR if rx else 0))
    return mac


def test_power_on_registers():
    mac = Xgmac(mac=bytes([0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF]))
    assert mac.readl(X.VERSION) == 0x1012
    assert mac.readl(X.ADDR_HIGH0) == 0xEFCD and mac.readl(X.ADDR_LOW0) == 0xAB005452
    assert mac.readl(X.DMA_STATUS) == 0 and not mac.irq_line
    mac.writel(X.VERSION, 0)
    assert mac.readl(X.VERSION) == 0x1012          # read-only


def test_one_frame_in_two_buffers_is_sent_whole_and_the_descriptor_handed_back():
    mac = Xgmac()
    f = frame(300)
    mac.mem_write(BUFS, f[:100])
    mac.mem_write(BUFS + 0x1000, f[100:])
    mac.mem_write(TX_RING, tx_descriptor(BUFS, 100, BUFS + 0x1000, 200, end_ring=True))
    started(mac)
    assert mac.frames_sent() == []                 # nothing moves until the model runs
    mac.run()
    assert mac.frames_sent() == [f]
    d = mac.descriptor(TX_RING)
    assert not d.own and d.flags == X.TX_INTERRUPT | X.TX_LAST | X.TX_FIRST | X.TX_END_RING
    st = mac.status()
    assert st["bits"] == ["TI", "TU", "NIS"] and st["tx"] == "suspended"
    assert mac.readl(X.DMA_CUR_TX_DESC) == TX_RING   # END_RING: back at the base


def test_frame_over_three_descriptors_short_frame_padded_ring_wraps():
    mac = Xgmac()
    f = frame(40)
    for i, (lo, hi) in enumerate(((0, 14), (14, 30), (30, 40))):
        mac.mem_write(BUFS + 0x100 * i, f[lo:hi])
        mac.mem_write(TX_RING + 32 * i, tx_descriptor(BUFS + 0x100 * i, hi - lo, first=i == 0,
                                                      last=i == 2, interrupt=i == 2))
    mac.mem_write(TX_RING + 96, tx_descriptor(0, 0, own=False, end_ring=True))
    started(mac)
    mac.run()
    assert mac.frames_sent() == [f + bytes(20)]    # padded to 60 bytes
    assert mac.readl(X.DMA_CUR_TX_DESC) == TX_RING + 96
    # the same frame with padding off, placed at the ring's end: the next one wraps to the base
    mac.mem_write(TX_RING + 96, tx_descriptor(BUFS, 14, disable_pad=True, end_ring=True))
    mac.writel(X.DMA_TX_POLL, 1)
    mac.run()
    assert mac.frames_sent() == [f[:14]]
    assert mac.readl(X.DMA_CUR_TX_DESC) == TX_RING


def test_interrupt_bit_off_no_ti_and_summary_only_when_enabled():
    mac = Xgmac()
    mac.mem_write(BUFS, frame(64))
    mac.mem_write(TX_RING, tx_descriptor(BUFS, 64, interrupt=False, end_ring=True))
    started(mac, intr=0)
    mac.run()
    assert mac.status()["bits"] == ["TU"] and not mac.irq_line   # TU not enabled: no NIS
    mac.writel(X.DMA_INTR_ENA, X.STATUS["TU"])
    assert mac.irq_line                                # level: status & enable
    mac.writel(X.DMA_STATUS, X.STATUS["TU"])           # write 1 to clear
    assert not mac.irq_line and mac.readl(X.DMA_STATUS) & 0x1FFFF == 0


def test_nothing_moves_without_st_or_te_and_stopping_sets_tps():
    mac = Xgmac()
    mac.mem_write(BUFS, frame(64))
    mac.mem_write(TX_RING, tx_descriptor(BUFS, 64, end_ring=True))
    started(mac)
    mac.writel(X.CONTROL, 0)                           # transmitter off: the DMA waits
    mac.run()
    assert mac.frames_sent() == [] and mac.descriptor(TX_RING).own
    mac.writel(X.DMA_CONTROL, 0)
    assert mac.status()["bits"] == ["TPS", "AIS"] and mac.status()["tx"] == "stopped"
    mac.writel(X.CONTROL, X.CONTROL_TE)
    mac.run()
    assert mac.frames_sent() == []                     # ST is off now
    mac.writel(X.DMA_CONTROL, X.DMA_CONTROL_ST)
    mac.run()
    assert len(mac.frames_sent()) == 1


def test_loopback_frame_lands_in_the_rx_ring_with_fcs():
    import zlib
    mac = Xgmac()
    f = frame(100)
    mac.mem_write(BUFS, f)
    mac.mem_write(TX_RING, tx_descriptor(BUFS, len(f), end_ring=True))
    mac.mem_write(RX_RING, rx_descriptor(BUFS + 0x4000, 1536, end_ring=True))
    started(mac, rx=True, loopback=True)
    mac.run()
    assert mac.frames_sent() == []                     # loopback: not on the wire
    d = mac.descriptor(RX_RING, rx=True)
    assert not d.own and d.frame_length == len(f) + 4
    assert d.flags & (X.RX_FIRST | X.RX_LAST | X.RX_FRAME_TYPE) == X.RX_FIRST | X.RX_LAST | X.RX_FRAME_TYPE
    got = mac.mem_read(BUFS + 0x4000, len(f) + 4)
    assert got[:-4] == f and struct.unpack("<I", got[-4:])[0] == zlib.crc32(f)
    assert {"RI", "NIS"} <= set(mac.status()["bits"])
    assert mac.counters()["frames_looped"] == 1 and mac.counters()["frames_received"] == 1


def test_received_frame_spans_descriptors_and_ru_then_resume():
    mac = Xgmac()
    mac.mem_write(RX_RING, rx_descriptor(BUFS, 64, BUFS + 0x100, 64))
    mac.mem_write(RX_RING + 32, rx_descriptor(BUFS + 0x200, 256, end_ring=True))
    started(mac, tx=False, rx=True)
    f = frame(200, ethertype=0x0050)                   # an 802.3 length field: no FRAME_TYPE
    assert mac.receive(f)
    mac.run()
    first, second = mac.descriptor(RX_RING, True), mac.descriptor(RX_RING + 32, True)
    assert first.flags == X.RX_FIRST and second.flags == X.RX_LAST | (204 << 16)
    assert mac.mem_read(BUFS, 64) + mac.mem_read(BUFS + 0x100, 64) + \
        mac.mem_read(BUFS + 0x200, 76)[:-4] == f
    # the ring is used up: the next frame waits in the FIFO, RU is raised
    assert mac.receive(frame(80))
    mac.run()
    assert "RU" in mac.status()["bits"] and mac.status()["rx"] == "suspended"
    assert mac.rx_fifo_frames == 1
    mac.mem_write(RX_RING, rx_descriptor(BUFS, 1536))
    mac.writel(X.DMA_RX_POLL, 1)
    mac.run()
    assert mac.rx_fifo_frames == 0 and mac.descriptor(RX_RING, True).frame_length == 84


def test_receiver_off_or_runt_drops():
    mac = Xgmac()
    assert not mac.receive(frame(64))                  # RE is off
    started(mac, tx=False, rx=True)
    assert not mac.receive(b"\x01" * 13)
    assert mac.counters()["frames_dropped"] == 2
    with pytest.raises(ValueError, match="longer than"):
        mac.receive(bytes(mac.max_frame + 1))


def test_soft_reset_clears_registers_and_the_bit_self_clears():
    mac = Xgmac()
    started(mac, rx=True)
    mac.writel(X.DMA_BUS_MODE, X.BUS_MODE_SFT_RESET)
    assert mac.readl(X.DMA_BUS_MODE) == 0
    assert mac.readl(X.DMA_CONTROL) == 0 and mac.readl(X.DMA_TX_BASE_ADDR) == 0
    assert mac.readl(X.CONTROL) == 0 and mac.readl(X.ADDR_LOW0) != 0


def test_bad_input_is_refused_clearly():
    mac = Xgmac()
    with pytest.raises(ValueError, match="aligned"):
        mac.readl(0x2)
    with pytest.raises(ValueError, match="out of range"):
        mac.writel(0x1000, 0)
    with pytest.raises(TypeError):
        mac.writel(X.CONTROL, "8")
    with pytest.raises(ValueError, match="buffer 1 length"):
        tx_descriptor(0, 0x2000)
    with pytest.raises(ValueError, match="6 bytes"):
        Xgmac(mac=b"\x00")


def test_ring_at_an_unmapped_iova_is_an_smmu_fault_and_a_fatal_bus_error():
    from vfiolab.board.sim.iommu import PROT_READ, PROT_WRITE, Smmu
    smmu = Smmu()
    domain = smmu.new_domain()
    host = bytearray(0x10000)
    from vfiolab._hw import ffi
    buf = ffi.from_buffer(host)
    domain.map(0x100000, 0x10000, int(ffi.cast("uintptr_t", buf)), PROT_READ | PROT_WRITE)
    smmu.attach(7, domain)
    mac = Xgmac.on_bus(smmu.bus(7))
    mac.writel(X.DMA_TX_BASE_ADDR, 0x200000)           # nothing mapped there
    mac.writel(X.DMA_INTR_ENA, 0x1FFFF)
    mac.writel(X.CONTROL, X.CONTROL_TE)
    mac.writel(X.DMA_CONTROL, X.DMA_CONTROL_ST)
    mac.run()
    (fault,) = smmu.faults()
    assert (fault.stream, fault.iova, fault.access, fault.reason) == (7, 0x200000, "read",
                                                                      "translation")
    st = mac.status()
    assert {"FBI", "AIS"} <= set(st["bits"]) and st["tx"] == "stopped"
    assert st["bus_error"] == "TX DMA read of a descriptor" and mac.irq_line
    # the DMA stays off after a fatal bus error until a soft reset
    mac.writel(X.DMA_TX_BASE_ADDR, 0x100000)
    mac.writel(X.DMA_CONTROL, 0)
    mac.writel(X.DMA_CONTROL, X.DMA_CONTROL_ST)
    assert mac.status()["tx"] == "stopped"
    # a buffer write outside the mapping: RX DMA write of a buffer
    mac.writel(X.DMA_BUS_MODE, X.BUS_MODE_SFT_RESET)
    smmu.clear_faults()
    mac.mem_write(0x100000, rx_descriptor(0x300000, 1536, end_ring=True))
    mac.writel(X.DMA_RX_BASE_ADDR, 0x100000)
    mac.writel(X.CONTROL, X.CONTROL_RE)
    mac.writel(X.DMA_CONTROL, X.DMA_CONTROL_SR)
    mac.receive(frame(64))
    mac.run()
    assert [(f.iova, f.access) for f in smmu.faults()] == [(0x300000, "write")]
    assert mac.status()["bus_error"] == "RX DMA write of a buffer"
    assert host[0:4] == rx_descriptor(0x300000, 1536)[:4]   # descriptor not handed back
