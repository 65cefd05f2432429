"""The Calxeda xgmac on the sim board: the C model (vfiolab.hw.xgmac) plugged into the board.

Every descriptor and buffer access goes through the device's SMMU stream (port.bus): a ring at an
unmapped IOVA is an SMMU fault (board.iommu_faults()) and a fatal bus error in DMA_STATUS. IRQ
index 0 is the main line, level-triggered on DMA_STATUS & DMA_INTR_ENA (VFIO automasks it); index 1,
power management, never fires here. The DMAs run whenever the board services devices. The wire
(board.xgmac_wire(name)) shows the frames sent and injects frames to receive.
"""
from .base import DeviceModel

MAIN_IRQ = 0
DEFAULT_MAC = b"\x52\x54\x00\x12\x34\x56"


class XgmacWire:
    """The cable at the xgmac's port: frames it sent, frames it is to receive."""

    def __init__(self, model):
        self._model = model
        self._sent = []

    def frames_sent(self):
        """Every frame sent so far, oldest first (they stay listed; clear() forgets them)."""
        self._sent += self._model.engine.frames_sent()
        return list(self._sent)

    def clear(self):
        self.frames_sent()
        self._sent = []

    def inject(self, frame):
        """A frame arrives (no FCS). True when the MAC took it; False when it dropped it
        (receiver off, receive FIFO full, shorter than 14 bytes)."""
        return self._model.engine.receive(frame)


class XgmacDevice(DeviceModel):
    def __init__(self, node):
        super().__init__(node)
        mac = node.properties.get("local-mac-address")     # as the Linux driver reads it
        self.mac = bytes(mac) if mac is not None and len(mac) == 6 else DEFAULT_MAC
        self.engine = None
        self.wire = XgmacWire(self)

    def attach(self, port):
        from vfiolab.hw.xgmac import Xgmac
        super().attach(port)
        self.engine = Xgmac.on_bus(port.bus, mac=self.mac)
        self.engine.on_irq(lambda level: self.port.set_irq(MAIN_IRQ, level))

    def mmio_read(self, region, offset, size):
        if region or offset >= 0x1000:
            return 0
        if size == 8 and not offset & 7:
            return self.engine.readl(offset) | self.engine.readl(offset + 4) << 32
        word = self.engine.readl(offset & ~3)       # 32-bit registers
        shift = 8 * (offset & 3)
        return (word >> shift) & ((1 << (8 * size)) - 1) if size < 4 else word

    def mmio_write(self, region, offset, size, value):
        if region or offset >= 0x1000:
            return
        if size == 4 and not offset & 3:
            self.engine.writel(offset, value)
        elif size == 8 and not offset & 7:
            self.engine.writel(offset, value & 0xFFFFFFFF)
            self.engine.writel(offset + 4, value >> 32)

    def reset(self):
        self.engine.reset()

    def step(self, budget=1000):
        self.engine.run(budget)
        return not self.engine.idle
