"""Interrupt delivery: device lines through the GIC, MSIs through the ITS or a GICv2m frame.

Lines: a device model drives line `index` high or low (port.set_irq). Whoever requested the IRQ
(request_irq; here a VFIO IRQ context) gets a call when it fires: on a rising edge, and for a level
line also when it is re-enabled while still high (enable_irq replays a pending level interrupt).
disable_irq / enable_irq are VFIO's mask and unmask.

MSIs: vfio-pci's MSI enable allocates vectors through the MSI irqchip (irqchip.py: the C ITS or
GICv2m model, programmed as Linux's drivers program them). VFIO maps the doorbell page into the
device's IOMMU domain inside the software MSI window (iommu_dma_prepare_msi), so the message
address is an IOVA (0x8000000 + the doorbell's page offset). A device raising the vector DMA-writes
the data to that IOVA through the SMMU. The mapping is an ordinary SMMU mapping (flagged as a
doorbell in the C model, which logs writes to it), so *any* DMA write that reaches it rings the
doorbell, exactly as on hardware; board.ring_doorbells() hands each write to the model:
  - ITS: the bus adds the writer's DeviceID (its requester ID, msi-map); data is the EventID; the
    ITS's tables select one LPI, and a device can raise only its own. MSIs are isolated.
    (This is real hardware. QEMU 7.2 gives an ordinary PCI DMA write no requester ID, so on the qemu
    board a forged write reaches the ITS as DeviceID 0 and is dropped: no interrupt at all.)
  - GICv2m: data is an SPI number, written to MSI_SETSPI_NS; any writer can raise any SPI of the
    frame, another device's MSI or a wired SPI in its range (on virt, the SMMU's). MSIs are not
    isolated, which is why type1 refuses the group (EPERM) unless allow_unsafe_interrupts.

/proc/interrupts lists every interrupt with a handler or a count, formatted as Linux 6.1's
show_interrupts (kernel/irq/proc.c) with arm64's IPI lines; the virq numbers are the sim's own.
"""
import errno

from .errors import kernel_error
from .irqchip import ItsIrqchip, V2mIrqchip
from .topology import MSI_IOVA_BASE

PAGE_MASK = ~0xFFF
# The SMMUv3 driver requests its event queue and global error lines at probe (arm_smmu_setup_irqs);
# the priority queue only with PRI, the CMD_SYNC line never (MSI-less: polled).
SMMU_V3_IRQS = ((0, "arm-smmu-v3-evtq"), (3, "arm-smmu-v3-gerror"))
IPI_NAMES = ("Rescheduling interrupts", "Function call interrupts", "CPU stop interrupts",
             "CPU stop (for crash dump) interrupts", "Timer broadcast interrupts",
             "IRQ work interrupts", "CPU wake-up interrupts")


class Line:
    def __init__(self, level_triggered):
        self.level_triggered = level_triggered
        self.level = False
        self.disabled = False
        self.handler = None


class IrqDesc:
    """One Linux interrupt (struct irq_desc) as /proc/interrupts shows it."""

    def __init__(self, virq, chip, hwirq, level, action=None):
        self.virq, self.chip, self.hwirq, self.level = virq, chip, hwirq, level
        self.action = action            # the requester's name, None when free
        self.count = 0
        self.handler = None


class InterruptController:
    def __init__(self, board, gic):
        self.board = board
        self.gic = gic                   # "its" or "v2m"
        self.lines = {}                  # (device name, index) -> Line
        self.descs = []                  # IrqDesc, by virq
        self._next_virq = 1
        self._wired = {}                 # GIC INTID -> IrqDesc of a wired line
        self._msi = {}                   # ITS LPI or v2m SPI -> IrqDesc of an MSI vector
        self.msi_chip = None
        # GICv3 (with the ITS) or, with a GICv2m, a GICv2 as on the qemu board (gic-version=2),
        # whose kernel boots at EL2 (KVM): irq-gic.c then names its chip "GICv2" (else "GIC-0").
        self.gic_chip = "GICv3" if gic == "its" else "GICv2"
        for node in board.topology.msi_controllers:
            if gic == "its" and "arm,gic-v3-its" in node.compatible:
                self.msi_chip = ItsIrqchip(board, node, _root(node))
            if gic == "v2m" and "arm,gic-v2m-frame" in node.compatible:
                self.msi_chip = V2mIrqchip(board, node, _root(node))
        self.doorbell = self.msi_chip.doorbell if self.msi_chip else None
        self._host_driver_irqs()

    @property
    def its(self):
        """The ITS model (vfiolab.hw.gic.ITS): its registers, command queue and tables."""
        return self.msi_chip.its if isinstance(self.msi_chip, ItsIrqchip) else None

    @property
    def v2m(self):
        """The GICv2m frame model (vfiolab.hw.gic.GICv2m)."""
        return self.msi_chip.v2m if isinstance(self.msi_chip, V2mIrqchip) else None

    @property
    def msi_isolated(self):
        """irq_domain_check_msi_remap / iommu_group_has_isolated_msi: only the ITS isolates."""
        return self.gic == "its"

    # --- irq descs ----------------------------------------------------------------------------
    def _new_desc(self, chip, hwirq, level, action):
        desc = IrqDesc(self._next_virq, chip, hwirq, level, action)
        self._next_virq += 1
        self.descs.append(desc)
        return desc

    def _wired_desc(self, intid, level):
        desc = self._wired.get(intid)
        if desc is None:
            desc = self._wired[intid] = self._new_desc(self.gic_chip, intid, level, None)
        return desc

    def _host_driver_irqs(self):
        """Lines the sim's host drivers request at boot (the SMMUv3's, as arm-smmu-v3 does)."""
        for device in self.board.topology.devices:
            if "arm,smmu-v3" in device.compatible:
                for index, name in SMMU_V3_IRQS:
                    if index < len(device.interrupts):
                        self._wired_desc(device.interrupts[index].hwirq, False).action = name

    def proc_interrupts(self):
        """/proc/interrupts, as Linux 6.1's show_interrupts and arm64's arch_show_interrupts print
        it for one CPU."""
        shown = [d for d in sorted(self.descs, key=lambda d: d.virq) if d.action or d.count]
        prec = max(3, len(str(max([d.virq for d in self.descs], default=0))))
        out = [" " * (prec + 8) + "CPU0       \n"]
        for d in shown:
            line = f"{d.virq:>{prec}}: {d.count:>10}  {d.chip:>8}"
            line += f" {d.hwirq:>{prec}} {'Level' if d.level else 'Edge':<8}"
            if d.action:
                line += f"  {d.action}"
            out.append(line + "\n")
        for i, name in enumerate(IPI_NAMES):
            out.append(f"{'IPI':>{prec - 1}}{i}:{' ' if prec >= 4 else ''}{0:>10}       {name}\n")
        out.append(f"{'Err':>{prec}}: {0:>10}\n")
        return "".join(out)

    def smmu_events(self, n):
        """The SMMUv3 wrote n events to its event queue: each raises the event-queue interrupt
        (QEMU's smmuv3_write_eventq pulses it per event; arm_smmu_evtq_thread then logs them)."""
        for desc in self.descs:
            if desc.action == "arm-smmu-v3-evtq":
                desc.count += n

    def count_of(self, action):
        """The interrupt count of the line whose handler is named `action` (None: no such line)."""
        return next((d.count for d in self.descs if d.action == action), None)

    # --- wired lines --------------------------------------------------------------------------
    def line(self, device, index):
        key = (device.name, index)
        if key not in self.lines:
            level = device.interrupts[index].level if index < len(device.interrupts) else True
            self.lines[key] = Line(level)
        return self.lines[key]

    def request(self, device, index, handler, disabled):
        """request_irq (with IRQ_NOAUTOEN when disabled); VFIO's names: vfio-pci's INTx
        "vfio-intx(<pci name>)", vfio-platform's "vfio-irq[<virq>](<name>)"."""
        line = self.line(device, index)
        line.handler, line.disabled = handler, disabled
        if index < len(device.interrupts):
            desc = self._wired_desc(device.interrupts[index].hwirq, line.level_triggered)
            desc.action = (f"vfio-intx({device.name})" if device.pci is not None
                           else f"vfio-irq[{desc.virq}]({device.name})")
        if not disabled and line.level_triggered and line.level:
            self._fire_line(device, index, line)

    def free(self, device, index):
        line = self.line(device, index)
        line.handler = None
        if index < len(device.interrupts):
            desc = self._wired.get(device.interrupts[index].hwirq)
            if desc is not None:
                desc.action = None

    def disable(self, device, index):
        self.line(device, index).disabled = True

    def enable(self, device, index):
        line = self.line(device, index)
        line.disabled = False
        if line.handler and line.level_triggered and line.level:
            self._fire_line(device, index, line)

    def set_line(self, device, index, level):
        if index >= len(device.interrupts):
            return
        line = self.line(device, index)
        rising = level and not line.level
        line.level = level
        if rising and line.handler and not line.disabled:
            self._fire_line(device, index, line)

    def _fire_line(self, device, index, line):
        desc = self._wired.get(device.interrupts[index].hwirq)
        if desc is not None:
            desc.count += 1
        line.handler()

    # --- MSI ----------------------------------------------------------------------------------
    def enable_msi(self, device, nvec, handlers):
        """pci_alloc_irq_vectors + request_irq for vfio-pci's MSI: [(IOVA address, data)] per
        vector; handlers[i] runs when vector i is taken."""
        if self.msi_chip is None:
            raise kernel_error(errno.ENOSPC, "no MSI controller on this board")
        vectors = self.msi_chip.allocate(device, nvec)
        out = []
        for i, (hwirq, doorbell, data) in enumerate(vectors):
            # The PCI MSI domain's hwirq: pci_msi_domain_calc_hwirq (requester ID << 11 | index).
            rid = device.pci.rid if device.pci is not None else 0
            desc = self._new_desc(self.msi_chip.chip_name, rid << 11 | i, False,
                                  f"vfio-msi[{i}]({device.name})")
            desc.handler = handlers[i]
            self._msi[hwirq] = desc
            out.append((MSI_IOVA_BASE + (doorbell & ~PAGE_MASK), data))
        return out

    def disable_msi(self, device):
        """free_irq + pci_free_irq_vectors: the vectors' descs go away."""
        if self.msi_chip is None:
            return
        name = f"({device.name})"
        for hwirq, desc in list(self._msi.items()):
            if desc.action.endswith(name):
                del self._msi[hwirq]
                self.descs.remove(desc)
        self.msi_chip.free(device)

    def ring(self, device, physical, value):
        """A write of `value` reached doorbell register `physical`, from `device`'s stream.
        True when it raised some interrupt."""
        if self.msi_chip is None:
            return False
        raised = self.msi_chip.ring(device, physical, value)
        for hwirq in raised:
            desc = self._msi.get(hwirq) or self._wired.get(hwirq)
            if desc is None or desc.action is None:
                continue                    # nobody requested it: the GIC keeps it disabled
            desc.count += 1
            if desc.handler is not None:
                desc.handler()
        return bool(raised)

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


def _root(node):
    while node.parent is not None:
        node = node.parent
    return node
