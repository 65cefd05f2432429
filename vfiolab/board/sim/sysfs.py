"""/sys as Linux lays it out, built from the topology and kept up to date as drivers bind.

    /sys/devices/platform/<name>/                     the real directories (amba devices too)
    /sys/devices/platform/<pcie>/pci0000:00/<bdf>/    PCI functions
    /sys/bus/{platform,amba,pci}/devices/<name>       -> links to the above
    /sys/bus/<bus>/drivers/<driver>/{bind,unbind,<device> links,module}   (+ new_id for PCI)
    /sys/bus/<bus>/{drivers_probe,drivers_autoprobe}
    /sys/kernel/iommu_groups/<N>/{devices/<name>,reserved_regions,type}
    /sys/firmware/devicetree/base/...                 the device tree, one file per property
    /sys/module/<module>/parameters/...               module parameters: modules.py

Device attributes: driver (link, while bound), driver_override, uevent, subsystem, of_node (link
into /sys/firmware/devicetree/base), iommu_group (link); modalias except on amba (its MODALIAS, and
AMBA_ID, are in uevent only); AMBA adds id and resource; PCI adds vendor, device, class, config,
resource, irq.

of_node property files hold the raw flattened-tree bytes, as Linux shows them: `compatible` is
NUL-separated strings ("arm,pl330\\0arm,primecell\\0"), `reg` and `interrupts` are big-endian
32-bit cells. board.read() on an opened file gives the exact bytes; board.sysfs_read() decodes
them as UTF-8 with replacement, exactly like the host board does with a real kernel's files.
"""


DT_BASE = "/sys/firmware/devicetree/base"


class Sysfs:
    def __init__(self, board):
        self.board = board
        self.vfs = board.vfs
        vfs = self.vfs
        vfs.mkdir("/dev")
        vfs.mkdir("/sys/kernel/iommu_groups")
        self._devicetree(board.topology.root, DT_BASE)
        for bus in ("platform", "amba", "pci"):
            vfs.mkdir(f"/sys/bus/{bus}/devices")
            vfs.mkdir(f"/sys/bus/{bus}/drivers")
            vfs.attr(f"/sys/bus/{bus}/drivers_probe",
                     store=lambda data, bus=bus: board.drivers.drivers_probe_store(bus, data))
            vfs.attr(f"/sys/bus/{bus}/drivers_autoprobe", show=lambda: "1\n", store=lambda data: None)
            vfs.attr(f"/sys/bus/{bus}/uevent", store=lambda data: None)
        for driver in board.drivers.drivers:
            self._driver(driver)
        for group in board.topology.groups:
            self._group(group)
        for device in board.topology.devices:
            self._device(device)
        # /sys/module/<name>/parameters: modules.py, as each module loads

    # --- the device tree ----------------------------------------------------------------------
    def _devicetree(self, node, path):
        self.vfs.mkdir(path)
        self.vfs.attr(f"{path}/name", show=lambda n=node: (n.basename or "").encode() + b"\0")
        for prop, raw in node.properties.items():
            self.vfs.attr(f"{path}/{prop}", show=lambda raw=raw: raw)
        for child in node.children:
            self._devicetree(child, f"{path}/{child.name}")

    # --- drivers ------------------------------------------------------------------------------
    def _driver(self, driver):
        vfs, core = self.vfs, self.board.drivers
        path = driver.sysfs_path
        vfs.mkdir(path)
        vfs.attr(f"{path}/uevent", store=lambda data: None)
        vfs.link(f"{path}/module", f"/sys/module/{driver.module}")
        vfs.mkdir(f"/sys/module/{driver.module}/drivers")
        vfs.link(f"/sys/module/{driver.module}/drivers/{driver.bus}:{driver.name}", path)
        if not driver.suppress_bind_attrs:
            vfs.attr(f"{path}/bind", store=lambda data: core.bind_store(driver, data))
            vfs.attr(f"{path}/unbind", store=lambda data: core.unbind_store(driver, data))
        if driver.bus == "pci":
            vfs.attr(f"{path}/new_id", store=lambda data: core.new_id_store(driver, data))
            vfs.attr(f"{path}/remove_id", store=lambda data: core.remove_id_store(driver, data))

    def driver_bound(self, device, driver):
        self.vfs.link(f"{device.sysfs_path}/driver", driver.sysfs_path)
        self.vfs.link(f"{driver.sysfs_path}/{device.name}", device.sysfs_path)

    def driver_unbound(self, device, driver):
        self.vfs.remove(f"{device.sysfs_path}/driver")
        self.vfs.remove(f"{driver.sysfs_path}/{device.name}")

    # --- IOMMU groups -------------------------------------------------------------------------
    def _group(self, group):
        path = group.sysfs_path
        self.vfs.mkdir(f"{path}/devices")
        self.vfs.attr(f"{path}/reserved_regions", show=lambda: "".join(
            f"0x{start:016x} 0x{end:016x} {kind}\n" for start, end, kind in group.reserved_regions))
        self.vfs.attr(f"{path}/type", show=lambda: "DMA\n")

    # --- devices ------------------------------------------------------------------------------
    def _device(self, device):
        vfs, core = self.vfs, self.board.drivers
        path = device.sysfs_path
        vfs.mkdir(path)
        vfs.link(f"/sys/bus/{device.bus}/devices/{device.name}", path)
        vfs.link(f"{path}/subsystem", f"/sys/bus/{device.bus}")
        vfs.attr(f"{path}/driver_override",
                 show=lambda: f"{device.driver_override}\n" if device.driver_override is not None else "(null)\n",
                 store=lambda data: core.driver_override_store(device, data))
        if device.bus != "amba":
            # amba has no modalias attribute (amba_dev_attrs: id, resource, driver_override); its
            # MODALIAS is in uevent only.
            vfs.attr(f"{path}/modalias", show=lambda: self._modalias(device) + "\n")
        vfs.attr(f"{path}/uevent", show=lambda: self._uevent(device), store=lambda data: None)
        if device.group is not None:
            vfs.link(f"{path}/iommu_group", device.group.sysfs_path)
            vfs.link(f"{device.group.sysfs_path}/devices/{device.name}", path)
        if device.bus == "pci":
            self._pci_attrs(device)
        else:
            vfs.link(f"{path}/of_node", DT_BASE + device.node.path.rstrip("/"))
        if device.bus == "amba":
            # amba_attr_func(id, "%08x\n") and (resource, "\t%016llx\t%016llx\t%016lx\n"): the one
            # resource (adev->res) with IORESOURCE_MEM (0x200) as its flags.
            vfs.attr(f"{path}/id", show=lambda: f"{device.periphid:08x}\n")
            start, size = device.regions[0]
            vfs.attr(f"{path}/resource", show=lambda: f"\t{start:016x}\t{start + size - 1:016x}\t{0x200:016x}\n")

    def _pci_attrs(self, device):
        vfs, fn, path = self.vfs, device.pci, device.sysfs_path
        vfs.attr(f"{path}/vendor", show=lambda: f"0x{fn.vendor:04x}\n")
        vfs.attr(f"{path}/device", show=lambda: f"0x{fn.device:04x}\n")
        vfs.attr(f"{path}/subsystem_vendor", show=lambda: f"0x{fn.subsystem_vendor:04x}\n")
        vfs.attr(f"{path}/subsystem_device", show=lambda: f"0x{fn.subsystem_device:04x}\n")
        vfs.attr(f"{path}/class", show=lambda: f"0x{fn.class_code:06x}\n")
        vfs.attr(f"{path}/revision", show=lambda: f"0x{fn.revision:02x}\n")
        # Linux's IRQ number is assigned when a driver first probes the function (pci_assign_irq);
        # the sim shows the GIC INTID from then on (a real kernel shows its own virq number).
        vfs.attr(f"{path}/irq", show=lambda: f"{device.interrupts[0].hwirq if device.interrupts and device.driver else 0}\n")
        vfs.attr(f"{path}/config", show=lambda: bytes(self.board.pci.config(device)))
        vfs.attr(f"{path}/resource", show=lambda: "".join(
            f"0x{a:016x} 0x{(a + s - 1) if s else 0:016x} 0x{0x40200 if s else 0:016x}\n" for a, s in fn.bars)
            + "0x0000000000000000 0x0000000000000000 0x0000000000000000\n" * 7)

    def _modalias(self, device):
        if device.bus == "pci":
            fn = device.pci
            cls = fn.class_code
            return (f"pci:v{fn.vendor:08X}d{fn.device:08X}sv{fn.subsystem_vendor:08X}sd{fn.subsystem_device:08X}"
                    f"bc{cls >> 16:02X}sc{(cls >> 8) & 0xFF:02X}i{cls & 0xFF:02X}")
        if device.bus == "amba":
            return f"amba:d{device.periphid:08X}"
        node = device.node
        return f"of:N{node.basename}T(null)" + "".join(f"C{c}" for c in node.compatible)

    def _uevent(self, device):
        lines = []
        if device.driver is not None:
            lines.append(f"DRIVER={device.driver.name}")
        if device.bus == "pci":
            fn = device.pci
            lines += [f"PCI_CLASS={fn.class_code:X}", f"PCI_ID={fn.vendor:04X}:{fn.device:04X}",
                      f"PCI_SLOT_NAME={fn.name}"]
        else:
            node = device.node
            lines += [f"OF_NAME={node.basename}", f"OF_FULLNAME={node.path}"]
            lines += [f"OF_COMPATIBLE_{i}={c}" for i, c in enumerate(node.compatible)]
            lines.append(f"OF_COMPATIBLE_N={len(node.compatible)}")
        if device.bus == "amba":
            lines.append(f"AMBA_ID={device.periphid:08x}")       # amba_uevent, before MODALIAS
        lines.append(f"MODALIAS={self._modalias(device)}")
        return "".join(line + "\n" for line in lines)

