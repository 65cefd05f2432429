"""QEMU's edu teaching device (hw/misc/edu.c, REFERENCE.md section 8), as the sim's PCI function.

BAR0: 0x00 ID 0x010000ed, 0x04 liveness (reads ~value), 0x08 factorial, 0x20 status (bit 0x80:
IRQ 0x1 when a factorial is done), 0x24 IRQ status, 0x60 raise, 0x64 ack, 0x80/0x88/0x90 DMA
source, destination, count, 0x98 DMA command (1 run, 2 device-to-RAM, 4 IRQ 0x100 when done).
The DMA buffer is 4 KiB at device address 0x40000; bus addresses are clamped to edu's 28-bit DMA
mask as QEMU does. Work completes at once (QEMU uses a timer), so a polling driver sees it done.
"""
from .base import DeviceModel

ID, LIVENESS, FACTORIAL, STATUS, IRQ_STATUS, IRQ_RAISE, IRQ_ACK = 0x00, 0x04, 0x08, 0x20, 0x24, 0x60, 0x64
DMA_SRC, DMA_DST, DMA_COUNT, DMA_CMD = 0x80, 0x88, 0x90, 0x98
STATUS_COMPUTING, STATUS_IRQFACT = 0x01, 0x80
DMA_RUN, DMA_TO_RAM, DMA_IRQ = 0x1, 0x2, 0x4
FACT_IRQ, DMA_DONE_IRQ = 0x001, 0x100
DMA_START, DMA_SIZE = 0x40000, 4096
DMA_MASK = (1 << 28) - 1


class Edu(DeviceModel):
    pci_id = (0x1234, 0x11e8)

    def __init__(self, node):
        super().__init__(node)
        self.reset()

    def reset(self):
        self.liveness = 0
        self.factorial = 1
        self.status = 0
        self.irq_status = 0
        self.dma = {DMA_SRC: 0, DMA_DST: 0, DMA_COUNT: 0, DMA_CMD: 0}
        self.buffer = bytearray(DMA_SIZE)
        self.errors = []

    def mmio_read(self, region, offset, size):
        if region != 0 or (offset < 0x80 and size != 4) or size not in (4, 8):
            return 0xFFFFFFFFFFFFFFFF if size == 8 else 0xFFFFFFFF   # QEMU: ~0 for bad accesses
        if offset == ID:
            return 0x010000ed
        if offset == LIVENESS:
            return ~self.liveness & 0xFFFFFFFF
        if offset == FACTORIAL:
            return self.factorial
        if offset == STATUS:
            return self.status
        if offset == IRQ_STATUS:
            return self.irq_status
        if offset in self.dma:
            return self.dma[offset] & ((1 << (8 * size)) - 1)
        return 0xFFFFFFFFFFFFFFFF if size == 8 else 0xFFFFFFFF

    def mmio_write(self, region, offset, size, value):
        if region != 0 or (offset < 0x80 and size != 4) or size not in (4, 8):
            return
        if offset == LIVENESS:
            self.liveness = value
        elif offset == FACTORIAL:
            # QEMU multiplies in 32 bits; from 34! on, 2^32 divides n!, so the answer is 0.
            result = 1
            for k in range(2, (value & 0xFFFFFFFF) + 1 if value < 34 else 0):
                result = (result * k) & 0xFFFFFFFF
            result = result if value < 34 else 0
            self.factorial = result
            if self.status & STATUS_IRQFACT:
                self.raise_irq(FACT_IRQ)
        elif offset == STATUS:
            self.status = (self.status & STATUS_COMPUTING) | (value & STATUS_IRQFACT)
        elif offset == IRQ_RAISE:
            self.raise_irq(value)
        elif offset == IRQ_ACK:
            self.lower_irq(value)
        elif offset in (DMA_SRC, DMA_DST, DMA_COUNT):
            self.dma[offset] = value
        elif offset == DMA_CMD and not self.dma[DMA_CMD] & DMA_RUN:
            self.dma[DMA_CMD] = value
            if value & DMA_RUN:
                self._run_dma()

    def _run_dma(self):
        cmd, count = self.dma[DMA_CMD], self.dma[DMA_COUNT]
        local = self.dma[DMA_SRC] if cmd & DMA_TO_RAM else self.dma[DMA_DST]
        bus_addr = (self.dma[DMA_DST] if cmd & DMA_TO_RAM else self.dma[DMA_SRC]) & DMA_MASK
        if local < DMA_START or local + count > DMA_START + DMA_SIZE:
            # QEMU calls hw_error() here and the whole VM dies; the sim logs and drops the transfer.
            self.errors.append(f"DMA range {local:#x}+{count:#x} outside the edu buffer")
            if self.port:
                self.port.log(f"edu: DMA range {local:#x}+{count:#x} is outside the buffer "
                              "(QEMU would abort the VM)")
        elif self.port is None or not self.port.bus_master():
            self.errors.append("DMA with bus mastering disabled")
        else:
            at = local - DMA_START
            if cmd & DMA_TO_RAM:
                self.port.dma_write(bus_addr, self.buffer[at:at + count])
            else:
                data = self.port.dma_read(bus_addr, count)
                if data is not None:
                    self.buffer[at:at + count] = data
        self.dma[DMA_CMD] &= ~DMA_RUN
        if cmd & DMA_IRQ:
            self.raise_irq(DMA_DONE_IRQ)

    def raise_irq(self, bits):
        self.irq_status |= bits
        if self.irq_status and self.port:
            if self.port.msi_enabled():
                self.port.send_msi(0)
            else:
                self.port.set_irq(0, True)

    def lower_irq(self, bits):
        self.irq_status &= ~bits
        if not self.irq_status and self.port and not self.port.msi_enabled():
            self.port.set_irq(0, False)
