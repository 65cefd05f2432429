"""What Linux builds from the device tree at boot: buses, devices, IOMMU groups (no drivers yet).

Naming follows Linux: a platform or AMBA device from a DT node is "<CPU address>.<node name>", the
address being its first `reg` entry translated through every parent bus's `ranges`
(of_device_make_bus_id: "2c0a0000.dma"), a node without `reg` is its full name ("amba", "soc@0"), a PCI function
is "<domain>:<bus>:<slot>.<function>" ("0000:00:01.0"). Nodes compatible with "arm,primecell" go
on the amba bus (of_amba_device_create), other nodes with a `compatible` on the platform bus, the
children of a "simple-bus" too; children of a PCI host node are PCI functions.

IOMMU groups: the devices with an SMMU stream ID (`iommus`, or a PCI host's `iommu-map`), numbered
in tree order; devices sharing a stream ID share a group (arm-smmu's arm_smmu_device_group), and so
do the functions of one multi-function PCI slot, each with its own stream ID: conventional PCI
functions have no ACS to stop peer-to-peer DMA between them (pci_device_group ->
get_pci_function_alias_group). Every
group reserves the software MSI window (arm_smmu_get_resv_regions: MSI_IOVA_BASE 0x8000000,
MSI_IOVA_LENGTH 0x100000).
"""
from dataclasses import dataclass, field

MSI_IOVA_BASE, MSI_IOVA_LENGTH = 0x8000000, 0x100000
IRQ_TYPE_EDGE_RISING, IRQ_TYPE_LEVEL_HIGH = 1, 4
SPI_BASE = 32     # GIC INTID of SPI 0
AMBA_NR_IRQS = 9  # include/linux/amba/bus.h


@dataclass
class Interrupt:
    hwirq: int            # GIC INTID
    level: bool           # level-triggered (MASKABLE | AUTOMASKED under VFIO)


@dataclass
class IommuGroup:
    id: int
    devices: list = field(default_factory=list)
    stream_ids: list = field(default_factory=list)
    reserved_regions: list = field(default_factory=lambda: [(MSI_IOVA_BASE, MSI_IOVA_BASE + MSI_IOVA_LENGTH - 1, "msi")])
    user_owner: object = None     # the VFIO container holding DMA ownership (iommu_group_claim_dma_owner)

    @property
    def sysfs_path(self):
        return f"/sys/kernel/iommu_groups/{self.id}"


class Device:
    """One struct device on a bus: where it lives, what it has, who drives it."""

    def __init__(self, bus, name, node, sysfs_path):
        self.bus = bus                      # "platform", "amba" or "pci"
        self.name = name
        self.node = node
        self.sysfs_path = sysfs_path        # /sys/devices/... (the real directory)
        self.regions = []                   # [(physical address, size)]
        self.interrupts = []                # [Interrupt]
        self.stream = None                  # SMMU stream ID, or None when not behind the SMMU
        self.group = None                   # IommuGroup
        self.driver = None                  # Driver bound now
        self.driver_override = None
        self.model = None                   # DeviceModel (set by the board)
        self.pci = None                     # PciFunction for PCI devices
        self.msi_device_id = None           # ITS DeviceID (PCI requester ID via msi-map)
        self.group_key = None               # what puts it in a group (stream ID, or a PCI slot)

    @property
    def compatible(self):
        return self.node.compatible

    @property
    def periphid(self):
        """An amba device's peripheral ID as the kernel holds it (dev->periphid), what amba_match
        compares with each driver's id_table: `arm,primecell-periphid` from the DT when present
        (of_amba_device_create), else read from the ID registers at the top of its first region
        (amba_read_periphid: bytes of 0xFE0..0xFEC, kept only when 0xFF0..0xFFC hold the PrimeCell
        component ID 0xB105F00D); 0 when neither gives one, and then no driver matches."""
        value = self.node.cell("arm,primecell-periphid")
        if value is not None:
            return value
        return self.model.periphid() if hasattr(self.model, "periphid") else 0

    def __repr__(self):
        return f"<Device {self.bus}:{self.name}>"


@dataclass
class PciFunction:
    domain: int
    bus: int
    slot: int
    function: int
    vendor: int
    device: int
    class_code: int
    revision: int
    bars: list            # [(address, size)] for BAR0..5
    subsystem_vendor: int = 0x1AF4      # QEMU's defaults
    subsystem_device: int = 0x1100
    multifunction: bool = False         # header type bit 7: one of several functions in its slot

    @property
    def rid(self):
        return (self.bus << 8) | (self.slot << 3) | self.function

    @property
    def name(self):
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"


def bus_id(node):
    """of_device_make_bus_id (drivers/of/platform.c): the device's name from its node.

    Walk up from the node: the first node (itself or an ancestor below the root) whose first
    `reg` entry translates to a CPU address gives "<address>.<name>" ("%llx.%pOFn"; with a `mask`
    property "<address>.<lowest mask bit>.<name>"), and the names of the nodes walked past follow
    it after colons; a node without a translatable `reg` contributes its full name with @unit
    (kbasename(full_name)). Under a bus at 0x1c000000 (`ranges = <0 0 0 0x1c000000 ...>`),
    uart@90000 is "1c090000.uart"; a node `soc` without reg holding `firmware` names it
    "soc:firmware".
    """
    name = None
    while node.parent is not None:
        regs = node.reg() if node.has("reg") else []
        address = node.translate(regs[0][0]) if regs else None
        if address is not None:
            mask = node.cell("mask")
            head = f"{address:x}.{(mask & -mask).bit_length() - 1:x}.{node.basename}" \
                if mask else f"{address:x}.{node.basename}"
            return f"{head}:{name}" if name else head
        name = f"{node.name}:{name}" if name else node.name
        node = node.parent
    return name


def _interrupts(node, root):
    cells = node.cells("interrupts") or []
    parent = root
    n = 3
    if node.has("interrupt-parent"):
        parent = root.by_phandle.get(node.cell("interrupt-parent"), root)
    n = parent.cell("#interrupt-cells", 3) if parent is not root else 3
    out = []
    for i in range(0, len(cells) - n + 1, n):
        kind, number, flags = cells[i:i + 3]
        intid = number + (SPI_BASE if kind == 0 else 16)
        out.append(Interrupt(intid, bool(flags & 0xC)))   # IRQ_TYPE_LEVEL_MASK
    return out


class Topology:
    """Every device and IOMMU group the device tree describes, by bus."""

    def __init__(self, root):
        self.root = root
        self.devices = []                   # in tree order
        self.groups = []
        self.msi_controllers = []           # DT nodes (ITS, v2m frames) that are enabled
        self._by_stream = {}
        for node in root.children:
            self._populate(node, "/sys/devices/platform")
        self._assign_groups()

    def _enabled(self, node):
        return node.string("status", "okay") in ("okay", "ok")

    def _populate(self, node, parent_path):
        if not node.compatible or not self._enabled(node):
            return
        if node.has("interrupt-controller"):
            # The GIC is set up by of_irq_init (IRQCHIP_DECLARE), which marks its node populated:
            # no platform device, for it or its ITS / v2m children. Their MSI role stays.
            self._msi_controllers_of(node)
            return
        name = bus_id(node)
        bus = "amba" if "arm,primecell" in node.compatible else "platform"
        dev = self._add(bus, name, node, f"{parent_path}/{name}")
        dev.regions = node.reg() if node.has("reg") else []
        dev.interrupts = _interrupts(node, self.root)
        if bus == "amba":
            # of_amba_device_create: an amba_device has one resource (the first reg entry) and at
            # most AMBA_NR_IRQS interrupts, so vfio-amba exposes exactly one region.
            dev.regions, dev.interrupts = dev.regions[:1], dev.interrupts[:AMBA_NR_IRQS]
        iommus = node.cells("iommus")
        if iommus and len(iommus) >= 2:
            dev.stream = self._stream_id(iommus[0], iommus[1])
        msi_parent = node.cells("msi-parent")
        if msi_parent and len(msi_parent) == 2:
            # <&its DeviceID> (an ITS has #msi-cells = 1): the DeviceID the bus gives its writes.
            dev.msi_device_id = msi_parent[1]
        if "simple-bus" in node.compatible:
            for child in node.children:
                self._populate(child, dev.sysfs_path)
        if "pci-host-ecam-generic" in node.compatible:
            self._populate_pci(node, dev)

    def _stream_id(self, smmu_phandle, sid):
        """The stream ID the SMMU driver takes from a DT `iommus` / `iommu-map` cell. arm-smmu
        (SMMUv1/v2, MMU-500) keeps 16 bits: arm_smmu_of_xlate is FIELD_PREP(ARM_SMMU_SMR_ID =
        GENMASK(15, 0), sid), which drops higher bits, so 0x10008 would become 0x0008 and collide.
        arm-smmu-v3 stream IDs are 32 bits."""
        smmu = self.root.by_phandle.get(smmu_phandle)
        if smmu is not None and any(c in ("arm,smmu-v1", "arm,smmu-v2", "arm,mmu-500", "arm,mmu-401")
                                    for c in smmu.compatible):
            return sid & 0xFFFF
        return sid

    def _msi_controllers_of(self, gic):
        for child in gic.children:
            if any(c in ("arm,gic-v3-its", "arm,gic-v2m-frame") for c in child.compatible) \
                    and self._enabled(child):
                self.msi_controllers.append(child)

    def _populate_pci(self, host, host_dev):
        domain = 0
        bus_first = (host.cells("bus-range") or [0])[0]
        iommu_map = host.cells("iommu-map")           # rid-base, smmu, stream-base, length
        msi_map = host.cells("msi-map")
        bridge_path = f"{host_dev.sysfs_path}/pci{domain:04x}:{bus_first:02x}"
        for node in host.children:
            if not self._enabled(node):
                continue
            devfn = (node.cells("reg") or [0])[0]
            bars = []
            assigned = node.cells("assigned-addresses") or []
            for i in range(0, len(assigned) - 4, 5):
                bar = ((assigned[i] & 0xFF) - 0x10) // 4   # phys.hi register number: 0x10 is BAR0
                while len(bars) < bar:
                    bars.append((0, 0))
                bars.append(((assigned[i + 1] << 32) | assigned[i + 2], (assigned[i + 3] << 32) | assigned[i + 4]))
            fn = PciFunction(domain, (devfn >> 16) & 0xFF, (devfn >> 11) & 0x1F, (devfn >> 8) & 0x7,
                             node.cell("vendor-id"), node.cell("device-id"), node.cell("class-code", 0),
                             node.cell("revision-id", 0), bars + [(0, 0)] * (6 - len(bars)),
                             node.cell("subsystem-vendor-id", 0x1AF4), node.cell("subsystem-id", 0x1100))
            dev = self._add("pci", fn.name, node, f"{bridge_path}/{fn.name}")
            dev.pci = fn
            dev.regions = fn.bars
            if node.has("interrupts"):
                # INTx through the host's interrupt-map (one entry here: every pin to one SPI).
                imap = host.cells("interrupt-map") or []
                dev.interrupts = [Interrupt(imap[-2] + SPI_BASE, True)] if len(imap) >= 2 else []
            # A host bridge function gets no IOMMU group: no driver ever probes it, and on the qemu
            # board (6.1, arm-smmu-v3 as a module) groups are made at probe time.
            is_host_bridge = fn.class_code >> 8 == 0x0600
            if iommu_map and iommu_map[0] <= fn.rid < iommu_map[0] + iommu_map[3] and not is_host_bridge:
                dev.stream = self._stream_id(iommu_map[1], iommu_map[2] + fn.rid - iommu_map[0])
            if msi_map and msi_map[0] <= fn.rid < msi_map[0] + msi_map[3]:
                dev.msi_device_id = msi_map[2] + fn.rid - msi_map[0]
        functions = [d for d in self.devices if d.pci is not None]
        for dev in functions:
            fn = dev.pci
            siblings = [d for d in functions if (d.pci.bus, d.pci.slot) == (fn.bus, fn.slot)]
            fn.multifunction = len(siblings) > 1
            if fn.multifunction and dev.stream is not None:
                dev.group_key = ("pci slot", fn.domain, fn.bus, fn.slot)

    def _add(self, bus, name, node, sysfs_path):
        dev = Device(bus, name, node, sysfs_path)
        self.devices.append(dev)
        return dev

    def _assign_groups(self):
        for dev in self.devices:
            if dev.stream is None:
                continue
            key = dev.group_key if dev.group_key is not None else dev.stream
            group = self._by_stream.get(key)
            if group is None:
                group = IommuGroup(len(self.groups))
                self.groups.append(group)
                self._by_stream[key] = group
            if dev.stream not in group.stream_ids:
                group.stream_ids.append(dev.stream)
            group.devices.append(dev)
            dev.group = group

    def device(self, bus, name):
        for dev in self.devices:
            if dev.bus == bus and dev.name == name:
                return dev
        return None

    def on_bus(self, bus):
        return [dev for dev in self.devices if dev.bus == bus]
