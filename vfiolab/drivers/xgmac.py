"""A user-space driver for the Calxeda xgmac through vfio-platform: a memcpy through MAC loopback.

The xgmac has no copy engine, but with CONTROL.LM every frame its TX DMA sends comes back through
its RX DMA: memcpy_start(src, dst, size) sends `size` bytes at IOVA src as one frame (FIRST|LAST,
padding off) and receives it at IOVA dst. The MAC appends the 4-byte FCS to what it receives, so
the RX descriptor gives buffer 1 exactly `size` bytes at dst and buffer 2 four bytes in the
driver's own region: nothing past dst + size is written. The RX interrupt (RI, level-triggered on
DMA_STATUS & DMA_INTR_ENA, automasked by VFIO) ends the copy; memcpy_wait clears it (write 1 to
clear) and unmasks the line. A fatal bus error (a ring or buffer at an IOVA the IOMMU does not
map) raises DmaError naming the DMA and the access.

Register and descriptor layout: vfiolab.hw.xgmac (drivers/net/ethernet/calxeda/xgmac.c).
The driver ops are those of vfiolab.drivers (the Linux VFIO selftests' shape); there is no MSI.
"""
from ..hw import xgmac as hw
from . import DmaError

COMPATIBLE = "calxeda,hb-xgmac"
MAIN_IRQ = 0
TX_DESC, RX_DESC, FCS_SCRATCH = 0x00, 0x20, 0x40       # offsets in the driver's region
REGION_BYTES = 0x44
IRQ_BITS = hw.STATUS["RI"] | hw.STATUS["NIS"] | hw.STATUS["FBI"] | hw.STATUS["AIS"]


class XgmacDriver:
    name = "xgmac"
    max_memcpy_count = 1
    max_memcpy_size = hw.BUFFER_MAX            # one buffer of one descriptor
    min_memcpy_size = 14                       # shorter frames are runts the MAC drops

    def __init__(self, device):
        self.device = device
        self.regs = self.irq = self.region = None

    def probe(self):
        dev = self.device
        if dev.kind != "platform" or dev.num_regions < 1:
            return False
        compat = f"/sys/bus/platform/devices/{dev.name}/of_node/compatible"
        try:
            compatibles = dev.board.sysfs_read(compat).split("\0")
        except OSError:
            return False
        if COMPATIBLE not in compatibles or not dev.region(0).mmappable:
            return False
        self.regs = dev.region(0).mmap()
        return True

    def init(self, region):
        if self.regs is None and not self.probe():
            raise DmaError(f"{self.device.name} is not a {COMPATIBLE}")
        if region.size < REGION_BYTES:
            raise ValueError(f"the xgmac driver needs {REGION_BYTES} bytes of DMA region for its "
                             f"two descriptors and the FCS, not {region.size}")
        self.region = region
        self.irq = self.device.irq(MAIN_IRQ)
        self.irq.enable()
        r = self.regs
        r.write32(hw.DMA_INTR_ENA, 0)
        r.write32(hw.DMA_STATUS, 0x1FFFF)
        self.region.view()[:REGION_BYTES] = bytes(REGION_BYTES)   # both descriptors CPU-owned
        r.write32(hw.DMA_TX_BASE_ADDR, region.iova + TX_DESC)
        r.write32(hw.DMA_RX_BASE_ADDR, region.iova + RX_DESC)
        r.write32(hw.CONTROL, hw.CONTROL_TE | hw.CONTROL_RE | hw.CONTROL_LM)
        r.write32(hw.DMA_CONTROL, hw.DMA_CONTROL_ST | hw.DMA_CONTROL_SR)
        r.write32(hw.DMA_STATUS, 0x1FFFF)          # the empty rings' TU/RU of the first fetch
        r.write32(hw.DMA_INTR_ENA, IRQ_BITS)

    def remove(self):
        """Quiesce as the reset module does: interrupts off, both DMAs and the MAC stopped."""
        if self.regs is not None:
            self.regs.write32(hw.DMA_INTR_ENA, 0)
            self.regs.write32(hw.DMA_CONTROL, 0)
            self.regs.write32(hw.CONTROL, self.regs.read32(hw.CONTROL) &
                              ~(hw.CONTROL_TE | hw.CONTROL_RE))
        if self.irq is not None:
            self.irq.disable()
            self.irq = None

    def _require_init(self):
        if self.irq is None:
            raise DmaError("the driver is not initialised: call init(region) first")

    def memcpy_start(self, src, dst, size, count=1):
        self._require_init()
        if not self.min_memcpy_size <= size <= self.max_memcpy_size or count != 1:
            raise ValueError(f"the xgmac copies {self.min_memcpy_size}..{self.max_memcpy_size} "
                             "bytes (one loopback frame) per start")
        for what, addr in (("src", src), ("dst", dst)):
            if not 0 <= addr <= 0xFFFFFFFF - size:
                raise ValueError(f"{what} 0x{addr:x}: xgmac descriptors hold 32-bit addresses")
        iova = self.region.iova
        view = self.region.view()
        view[RX_DESC:RX_DESC + 32] = hw.rx_descriptor(dst, size, iova + FCS_SCRATCH, 4,
                                                      end_ring=True)
        view[TX_DESC:TX_DESC + 32] = hw.tx_descriptor(src, size, interrupt=False, end_ring=True,
                                                      disable_pad=True)
        self.regs.write32(hw.DMA_RX_POLL, 1)
        self.regs.write32(hw.DMA_TX_POLL, 1)

    def memcpy_wait(self, timeout_ms=1000):
        self._require_init()
        fired = self.irq.wait(timeout_ms)
        status = self.regs.read32(hw.DMA_STATUS)
        decoded = hw.decode_status(status)
        if status & hw.STATUS["FBI"]:
            raise DmaError(f"xgmac fatal bus error: {decoded['bus_error']} (DMA_STATUS "
                           f"0x{status:08x}); the DMA stays stopped until a soft reset")
        if not fired:
            raise DmaError(f"no interrupt within {timeout_ms} ms (DMA_STATUS 0x{status:08x}: TX "
                           f"{decoded['tx']}, RX {decoded['rx']}, bits {decoded['bits']})")
        self.regs.write32(hw.DMA_STATUS, status & 0x1FFFF)
        if self.irq.automasked:
            self.irq.unmask()
