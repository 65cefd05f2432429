"""Calxeda xgmac, registers only (REFERENCE.md section 5): what the VFIO reset module touches.

Frames and descriptors are a later issue; here the register file behaves: VERSION reads 0x1012 as
on QEMU's model, DMA_STATUS is write-1-to-clear, BUS_MODE's soft-reset bit self-clears, and the
main IRQ line follows (DMA_STATUS & DMA_INTR_ENA) != 0.
"""
from .base import RegisterFile

CONTROL, FRAME_FILTER, VERSION = 0x000, 0x004, 0x020
DMA_BUS_MODE, DMA_STATUS, DMA_CONTROL, DMA_INTR_ENA = 0xF00, 0xF14, 0xF18, 0xF1C
MAIN_IRQ = 0


class Xgmac(RegisterFile):
    def fixed_words(self):
        return {0: {VERSION: 0x1012}}

    def mmio_write(self, region, offset, size, value):
        if region == 0 and offset == DMA_STATUS:
            current = self.mmio_read(0, DMA_STATUS, 4)
            super().mmio_write(0, DMA_STATUS, 4, current & ~value)   # write 1 to clear
        elif region == 0 and offset == DMA_BUS_MODE:
            super().mmio_write(0, DMA_BUS_MODE, 4, value & ~0x1)    # soft reset completes at once
        else:
            super().mmio_write(region, offset, size, value)
        self._update_irq()

    def raise_status(self, bits):
        """Set DMA_STATUS bits as the DMA engine would (tests and later models use this)."""
        super().mmio_write(0, DMA_STATUS, 4, self.mmio_read(0, DMA_STATUS, 4) | bits)
        self._update_irq()

    def _update_irq(self):
        if self.port is not None:
            pending = self.mmio_read(0, DMA_STATUS, 4) & self.mmio_read(0, DMA_INTR_ENA, 4)
            self.port.set_irq(MAIN_IRQ, pending != 0)
