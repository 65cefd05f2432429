"""Interrupt delivery: device lines through the GIC to VFIO, and MSIs through a doorbell.

Lines: a device model drives line `index` high or low (port.set_irq). Whoever requested the IRQ
(request_irq; here a VFIO IRQ context) gets a call when it fires: on a rising edge, and for a level
line also when it is re-enabled while still high (enable_irq replays a pending level interrupt).
disable_irq / enable_irq are VFIO's mask and unmask.

MSIs: the kernel composes each vector's message when vfio-pci enables MSI. The doorbell page is
mapped into the device's IOMMU domain inside the software MSI window (iommu_dma_prepare_msi), so
the message address is an IOVA (0x8000000 + the doorbell's page offset). A device raising the
vector writes the data to that IOVA through the SMMU. The mapping is an ordinary SMMU mapping
(flagged as a doorbell in the C model, which logs writes to it), so *any* DMA write that reaches
it rings the doorbell, exactly as on hardware; board.ring_doorbells() delivers them. The
doorbell decodes the write:
  - ITS: the bus adds the DeviceID (requester ID, msi-map); data is the EventID; the pair selects
    one LPI, and a device can raise only its own. MSIs are isolated.
  - GICv2m: data is an SPI number, written to MSI_SETSPI_NS; any writer can raise any SPI of the
    frame. MSIs are not isolated, which is why type1 refuses the group (EPERM) unless
    allow_unsafe_interrupts.
"""
import errno

from .errors import kernel_error
from .topology import MSI_IOVA_BASE

GITS_TRANSLATER = 0x10040
V2M_MSI_SETSPI_NS = 0x040
LPI_BASE = 8192
PAGE_MASK = ~0xFFF


class Line:
    def __init__(self, level_triggered):
        self.level_triggered = level_triggered
        self.level = False
        self.disabled = False
        self.handler = None


class InterruptController:
    def __init__(self, board, gic):
        self.board = board
        self.gic = gic                   # "its" or "v2m"
        self.lines = {}                  # (device name, index) -> Line
        self.msi_targets = {}            # ITS: (device id, event id) -> callback; v2m: spi -> callback
        self.next_lpi = LPI_BASE
        self.doorbell = None             # physical address of the MSI doorbell register
        self.v2m_spis = []
        for node in board.topology.msi_controllers:
            base = node.reg()[0][0]
            if gic == "its" and "arm,gic-v3-its" in node.compatible:
                self.doorbell = base + GITS_TRANSLATER
            if gic == "v2m" and "arm,gic-v2m-frame" in node.compatible:
                self.doorbell = base + V2M_MSI_SETSPI_NS
                first = node.cell("arm,msi-base-spi", 64)
                # arm,msi-base-spi overrides MSI_TYPER's first SPI, an INTID as the data carries it.
                self.v2m_spis = list(range(first, first + node.cell("arm,msi-num-spis", 32)))

    @property
    def msi_isolated(self):
        """irq_domain_check_msi_remap / iommu_group_has_isolated_msi: only the ITS isolates."""
        return self.gic == "its"

    # --- wired lines --------------------------------------------------------------------------
    def line(self, device, index):
        key = (device.name, index)
        if key not in self.lines:
            level = device.interrupts[index].level if index < len(device.interrupts) else True
            self.lines[key] = Line(level)
        return self.lines[key]

    def request(self, device, index, handler, disabled):
        """request_irq (with IRQ_NOAUTOEN when disabled)."""
        line = self.line(device, index)
        line.handler, line.disabled = handler, disabled
        if not disabled and line.level_triggered and line.level:
            handler()

    def free(self, device, index):
        line = self.line(device, index)
        line.handler = None

    def disable(self, device, index):
        self.line(device, index).disabled = True

    def enable(self, device, index):
        line = self.line(device, index)
        line.disabled = False
        if line.handler and line.level_triggered and line.level:
            line.handler()

    def set_line(self, device, index, level):
        if index >= len(device.interrupts):
            return
        line = self.line(device, index)
        rising = level and not line.level
        line.level = level
        if rising and line.handler and not line.disabled:
            line.handler()

    # --- MSI ----------------------------------------------------------------------------------
    def compose_msi(self, device, vector, callback):
        """Allocate an MSI for device's vector: (IOVA address, data); callback runs on delivery."""
        if self.doorbell is None:
            raise kernel_error(errno.ENOSPC, "no MSI controller on this board")
        if self.gic == "its":
            if device.msi_device_id is None:
                raise kernel_error(errno.EINVAL, "the device has no ITS DeviceID (msi-map)")
            self.msi_targets[(device.msi_device_id, vector)] = callback
            data = vector                             # the EventID; MAPTI maps it to an LPI
            self.next_lpi += 1
        else:
            used = {k for k in self.msi_targets if isinstance(k, int)}
            free = [spi for spi in self.v2m_spis if spi not in used]
            if not free:
                raise kernel_error(errno.ENOSPC, "GICv2m frame: no free SPI")
            data = free[0]
            self.msi_targets[data] = callback
        address = MSI_IOVA_BASE + (self.doorbell & ~PAGE_MASK)
        return address, data

    def release_msi(self, device, vector, data):
        if self.gic == "its":
            self.msi_targets.pop((device.msi_device_id, vector), None)
        else:
            self.msi_targets.pop(data, None)

    def ring(self, device, physical, value):
        """A write of `value` reached doorbell register `physical`, from `device`'s stream."""
        if physical != self.doorbell:
            return False
        # ITS: the DeviceID comes from the bus, not from the data, so a device reaches only its
        # own events. GICv2m: the data is the SPI, whoever writes it.
        key = (device.msi_device_id, value) if self.gic == "its" else value
        callback = self.msi_targets.get(key)
        if callback is not None:
            callback()
        return callback is not None

    def send_msi(self, device, vector):
        """A PCI function raises MSI `vector`: a DMA write of the programmed data to the programmed
        address, through its SMMU stream (a fault if the doorbell is not mapped there)."""
        message = self.board.pci.msi_message(device, vector)
        if message is None or device.stream is None:
            return False
        address, data = message
        ok = self.board.smmu.dma_write(device.stream, address, data.to_bytes(4, "little"))
        self.board.ring_doorbells()
        return ok
