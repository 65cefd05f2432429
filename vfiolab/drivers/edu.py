"""A user-space driver for QEMU's edu teaching device (1234:11e8) through vfio-pci.

edu's DMA engine only moves data between memory and its own 4 KiB buffer at device address 0x40000,
so a memcpy is two transfers: memory -> buffer, then buffer -> memory, each ending in an interrupt
(cmd bit 2). Register map: REFERENCE.md section 8 (QEMU hw/misc/edu.c).
"""

from .. import uapi
from . import DmaError

VENDOR, DEVICE = 0x1234, 0x11E8
ID, LIVENESS, STATUS, IRQ_STATUS, IRQ_RAISE, IRQ_ACK = 0x00, 0x04, 0x20, 0x24, 0x60, 0x64
DMA_SRC, DMA_DST, DMA_COUNT, DMA_CMD = 0x80, 0x88, 0x90, 0x98
CMD_START, CMD_TO_RAM, CMD_IRQ = 1, 2, 4
DMA_IRQ = 0x100
BUFFER = 0x40000
PCI_COMMAND, PCI_COMMAND_MASTER = 0x04, 0x4


class EduDriver:
    name = "edu"
    max_memcpy_count = 1
    # QEMU 7.2 aborts on a transfer that ends exactly at the end of the 4 KiB buffer (fixed in 9.1):
    # stay strictly inside it.
    max_memcpy_size = 2048

    def __init__(self, device):
        self.device = device
        self.bar = self.irq = self.pending = None

    def _config(self):
        return self.device.region(uapi.VFIO_PCI_CONFIG_REGION_INDEX)

    def probe(self):
        if self.device.kind != "pci":
            return False
        ids = int.from_bytes(self._config().read(0, 4), "little")
        return ids == VENDOR | DEVICE << 16

    def init(self, region=None):
        config = self._config()
        command = int.from_bytes(config.read(PCI_COMMAND, 2), "little")
        config.write(PCI_COMMAND, (command | PCI_COMMAND_MASTER).to_bytes(2, "little"))
        self.bar = self.device.region(uapi.VFIO_PCI_BAR0_REGION_INDEX).mmap()
        self.irq = self.device.irq(uapi.VFIO_PCI_MSI_IRQ_INDEX)
        self.irq.enable()

    def remove(self):
        if self.irq is not None:
            self.irq.disable()
            self.irq = None

    def transfer(self, src, dst, count, to_ram):
        """Start one DMA between memory and edu's buffer (BUFFER..+4 KiB), ending in an MSI."""
        self.bar.write64(DMA_SRC, src)
        self.bar.write64(DMA_DST, dst)
        self.bar.write64(DMA_COUNT, count)
        self.bar.write64(DMA_CMD, CMD_START | CMD_IRQ | (CMD_TO_RAM if to_ram else 0))

    def _require_init(self):
        if self.irq is None:
            raise DmaError("the driver is not initialised: call init() first")

    def memcpy_start(self, src, dst, size, count=1):
        self._require_init()
        if not 0 < size <= self.max_memcpy_size or count != 1:
            raise ValueError(f"edu copies 1..{self.max_memcpy_size} bytes, once per start")
        self.transfer(src, BUFFER, size, to_ram=False)
        self.pending = (BUFFER, dst, size)

    def wait_irq(self, timeout_ms):
        """Wait for edu's MSI and acknowledge it; returns edu's IRQ status."""
        if not self.irq.wait(timeout_ms):
            raise DmaError(f"no MSI from edu within {timeout_ms} ms (status 0x{self.bar.read32(STATUS):x})")
        status = self.bar.read32(IRQ_STATUS)
        self.bar.write32(IRQ_ACK, status)  # edu wants the ack even with MSI
        return status

    def memcpy_wait(self, timeout_ms=2000):
        self._require_init()
        self.wait_irq(timeout_ms)
        if self.pending:
            src, dst, size = self.pending
            self.pending = None
            self.transfer(src, dst, size, to_ram=True)
            self.wait_irq(timeout_ms)

    def send_msi(self):
        self._require_init()
        self.bar.write32(IRQ_RAISE, 1)
