"""The DMA-330 on the sim board: the C engine (vfiolab.hw.pl330) plugged into the board.

Every beat the engine masters goes through the device's SMMU stream (port.bus), so a program with
a bad address faults in the SMMU (board.iommu_faults()) and in the engine (FTR data read/write
error). Interrupt lines follow the DT node (the sim's fvp.dts order): index 0 is the abort line, index 1 + n is
event IRQ n. The engine runs whenever the board services devices (each system call and each
mapped register access), so a driver polling CSR sees its channel progress.
"""
from .base import DeviceModel

ABORT_LINE = 0


class PL330Engine(DeviceModel):
    def __init__(self, node):
        super().__init__(node)
        self.channels = node.cell("#dma-channels", 8)
        self.peripherals = min(node.cell("#dma-requests", 32), 32)
        self.event_lines = max(1, len(node.cells("interrupts") or []) // 3 - 1)
        self.engine = None
        self._lines = 0
        self._abort = False

    def attach(self, port):
        from vfiolab.hw.pl330 import PL330
        super().attach(port)
        self.engine = PL330.on_bus(port.bus, channels=self.channels, peripherals=self.peripherals,
                                   events=max(self.event_lines, 1))
        self.engine.on_irq(self._irq_changed)

    def periphid(self):
        return self.node.cell("arm,primecell-periphid", 0x00241330)

    def _irq_changed(self, lines, abort):
        changed = lines ^ self._lines
        self._lines = lines
        for n in range(self.event_lines):
            if changed >> n & 1:
                self.port.set_irq(1 + n, bool(lines >> n & 1))
        if bool(abort) != self._abort:
            self._abort = bool(abort)
            self.port.set_irq(ABORT_LINE, self._abort)

    def mmio_read(self, region, offset, size):
        if size == 8 and not offset & 7:            # two words, as mmio_write splits them
            return self.engine.readl(offset) | self.engine.readl(offset + 4) << 32
        word = self.engine.readl(offset & ~3)       # APB: 32-bit registers
        shift = 8 * (offset & 3)
        return (word >> shift) & ((1 << (8 * size)) - 1) if size < 4 else word

    def mmio_write(self, region, offset, size, value):
        if size == 4 and not offset & 3:
            self.engine.writel(offset, value)
        elif size == 8 and not offset & 7:
            self.engine.writel(offset, value & 0xFFFFFFFF)
            self.engine.writel(offset + 4, value >> 32)

    def reset(self):
        self.engine.reset()

    def step(self, budget=1000):
        # Up to `budget` cycles, taking the engine's fast path for bulk copies.
        lib = self.engine._lib
        lib.vfl_pl330_run(self.engine._dma, budget, 1)
        return not lib.vfl_pl330_idle(self.engine._dma)
