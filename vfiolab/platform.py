"""Buses, devices, drivers and IOMMU groups, read from sysfs on any board.

What Lab 01 teaches, as functions the other labs reuse: find a device by name or compatible, see
which driver holds it, move it to a VFIO driver (driver_override, unbind, drivers_probe) and back.
"""
import posixpath

BUSES = ("platform", "amba", "pci")
VFIO_DRIVER = {"platform": "vfio-platform", "amba": "vfio-amba", "pci": "vfio-pci"}


def bus_of(board, device):
    """The bus ("platform", "amba" or "pci") that holds `device`."""
    for bus in BUSES:
        try:
            if device in board.listdir(f"/sys/bus/{bus}/devices"):
                return bus
        except FileNotFoundError:
            continue
    raise FileNotFoundError(2, f"no device {device!r} on the {', '.join(BUSES)} buses")


def devices(board, bus):
    try:
        return sorted(board.listdir(f"/sys/bus/{bus}/devices"))
    except FileNotFoundError:
        return []


def driver_of(board, device):
    """Name of the driver bound to `device`, or None."""
    bus = bus_of(board, device)
    try:
        return posixpath.basename(board.readlink(f"/sys/bus/{bus}/devices/{device}/driver"))
    except FileNotFoundError:
        return None


def compatible_of(board, device, bus=None):
    """The device-tree compatible strings of a device (empty for devices without a DT node)."""
    bus = bus or bus_of(board, device)
    try:
        raw = board.sysfs_read(f"/sys/bus/{bus}/devices/{device}/of_node/compatible")
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [c for c in raw.replace("\0", "\n").split("\n") if c]


def find_by_compatible(board, compatible):
    """Every device, on any bus, whose DT node lists `compatible`."""
    return [dev for bus in BUSES for dev in devices(board, bus) if compatible in compatible_of(board, dev, bus)]


def iommu_group(board, device):
    """The IOMMU group number of `device`, or None when no IOMMU translates for it."""
    bus = bus_of(board, device)
    try:
        return int(posixpath.basename(board.readlink(f"/sys/bus/{bus}/devices/{device}/iommu_group")))
    except FileNotFoundError:
        return None


def group_devices(board, group):
    return sorted(board.listdir(f"/sys/kernel/iommu_groups/{group}/devices"))


def bind(board, device, driver):
    """Move `device` to `driver` the way the kernel documents it: driver_override, unbind, drivers_probe.

    Returns the driver that held it before (None if unbound), so the caller can restore it.
    """
    bus = bus_of(board, device)
    previous = driver_of(board, device)
    board.sysfs_write(f"/sys/bus/{bus}/devices/{device}/driver_override", driver)
    if previous is not None:
        board.sysfs_write(f"/sys/bus/{bus}/devices/{device}/driver/unbind", device)
    board.sysfs_write(f"/sys/bus/{bus}/drivers_probe", device)
    return previous


def bind_to_vfio(board, device):
    """Give `device` to its bus's VFIO driver; returns the host driver it had."""
    return bind(board, device, VFIO_DRIVER[bus_of(board, device)])


def restore(board, device):
    """Clear driver_override and let the kernel pick the device's usual driver again."""
    bus = bus_of(board, device)
    board.sysfs_write(f"/sys/bus/{bus}/devices/{device}/driver_override", "\n")
    if driver_of(board, device) is not None:
        board.sysfs_write(f"/sys/bus/{bus}/devices/{device}/driver/unbind", device)
    board.sysfs_write(f"/sys/bus/{bus}/drivers_probe", device)
    return driver_of(board, device)


# --- following a device to its device-tree node, its resources and its SMMU (Lab 01) ----------
DT_BASE = "/sys/firmware/devicetree/base"


def find_by_pci_id(board, vendor, device):
    """Every PCI function with this vendor and device ID (e.g. QEMU's edu: 0x1234, 0x11e8)."""
    found = []
    for dev in devices(board, "pci"):
        base = f"/sys/bus/pci/devices/{dev}"
        if (int(board.sysfs_read(f"{base}/vendor"), 16), int(board.sysfs_read(f"{base}/device"), 16)) \
                == (vendor, device):
            found.append(dev)
    return found


def first_device(board, *wanted, why=""):
    """The first device found among `wanted`: compatible strings ("arm,pl330") or PCI IDs
    ((0x1234, 0x11e8)), tried in order. A board with none of them (your own hardware, say) gets a
    LookupError that says what was looked for and what the board has instead, not an IndexError."""
    for want in wanted:
        found = find_by_pci_id(board, *want) if isinstance(want, tuple) else find_by_compatible(board, want)
        if found:
            return found[0]
    names = " or ".join(f"PCI {w[0]:04x}:{w[1]:04x}" if isinstance(w, tuple) else w for w in wanted)
    have = {bus: devices(board, bus) for bus in BUSES}
    listing = "; ".join(f"{bus}: {', '.join(d[:6])}{' ...' if len(d) > 6 else ''}" for bus, d in have.items() if d)
    raise LookupError(f"this board has no {names} device{' ' + why if why else ''}. It has {listing or 'no devices'}. "
                      "On your own hardware, set the variable to one of those names by hand.")


def device_path(board, device):
    """The device's real directory, /sys/devices/...: where it sits in the tree of buses."""
    bus = bus_of(board, device)
    return posixpath.normpath(posixpath.join(f"/sys/bus/{bus}/devices",
                                             board.readlink(f"/sys/bus/{bus}/devices/{device}")))


def _raw(board, path):
    """A sysfs file's exact bytes (DT properties are binary: sysfs_read would mangle them)."""
    import os
    fd = board.open(path, os.O_RDONLY)
    try:
        return board.read(fd, 65536, 0)
    finally:
        board.close(fd)


def _cells(board, path):
    raw = _raw(board, path)
    return [int.from_bytes(raw[i:i + 4], "big") for i in range(0, len(raw) - 3, 4)]


def _cell(board, path, default):
    try:
        return _cells(board, path)[0]
    except (FileNotFoundError, NotADirectoryError, IndexError):
        return default


def of_node(board, device):
    """The device-tree node a device was made from ("/dma@2c0a0000"), or None (e.g. a PCI function)."""
    bus = bus_of(board, device)
    try:
        target = board.readlink(f"/sys/bus/{bus}/devices/{device}/of_node")
    except FileNotFoundError:
        return None
    return "/" + target.split("/devicetree/base/", 1)[1]


def device_for_node(board, node):
    """(bus, device name) of the device Linux made from DT node `node` ("/soc/dma@ff1f0000"), or None."""
    for bus in BUSES:
        for dev in devices(board, bus):
            if of_node(board, dev) == node:
                return bus, dev
    return None


def reg_of(board, device):
    """[(address, size)] from the device's DT `reg`, in the parent's #address-cells/#size-cells.

    Addresses are as the node writes them (a parent's `ranges` may translate them further)."""
    node = of_node(board, device)
    if node is None:
        return []
    parent = DT_BASE + posixpath.dirname(node).rstrip("/")
    na, ns = _cell(board, f"{parent}/#address-cells", 2), _cell(board, f"{parent}/#size-cells", 1)
    try:
        cells = _cells(board, f"{DT_BASE}{node}/reg")
    except FileNotFoundError:
        return []
    join = lambda part: sum(c << (32 * (len(part) - 1 - i)) for i, c in enumerate(part))
    step = na + ns
    return [(join(cells[i:i + na]), join(cells[i + na:i + step])) for i in range(0, len(cells) - step + 1, step)]


def _interrupt_cells(board, node):
    """#interrupt-cells of the node's interrupt parent (found by `interrupt-parent`, as Linux does)."""
    path = node
    while True:
        phandle = _cell(board, f"{DT_BASE}{path}/interrupt-parent".replace("//", "/"), None)
        if phandle is not None or path == "/":
            break
        path = posixpath.dirname(path)
    if phandle is not None:
        for name in board.listdir(DT_BASE):
            candidate = f"{DT_BASE}/{name}"
            if _cell(board, f"{candidate}/phandle", None) == phandle:
                return _cell(board, f"{candidate}/#interrupt-cells", 3)
    return 3


def interrupts_of(board, device):
    """The DT `interrupts` entries of a device, one tuple of cells each (GIC: (type, number, flags))."""
    node = of_node(board, device)
    if node is None:
        return []
    try:
        cells = _cells(board, f"{DT_BASE}{node}/interrupts")
    except FileNotFoundError:
        return []
    n = _interrupt_cells(board, node)
    return [tuple(cells[i:i + n]) for i in range(0, len(cells) - n + 1, n)]


def describe_interrupt(cells):
    """A GIC interrupt specifier in words: (0, 95, 4) -> "SPI 95 (INTID 127), level-high"."""
    if len(cells) != 3:
        return " ".join(hex(c) for c in cells)
    kind, number, flags = cells
    trigger = {1: "edge-rising", 2: "edge-falling", 4: "level-high", 8: "level-low"}.get(flags & 0xF, hex(flags))
    if kind == 0:
        return f"SPI {number} (INTID {number + 32}), {trigger}"
    return f"PPI {number} (INTID {number + 16}), {trigger}"


def smmu_of(board, device):
    """(SMMU device name, stream ID or None) of the IOMMU that translates for `device`, or None.

    A real kernel links <device>/iommu to the SMMU's iommu class device; otherwise the device tree
    says it: `iommus = <&smmu SID>` on the node, or the PCI host bridge's `iommu-map`
    (stream ID = base + requester ID)."""
    bus = bus_of(board, device)
    try:
        target = board.readlink(f"/sys/bus/{bus}/devices/{device}/iommu")
        smmu = posixpath.basename(target.split("/iommu/", 1)[0])
    except (FileNotFoundError, OSError):
        smmu = None
    stream = None
    phandle = None
    node = of_node(board, device)
    if node is not None:
        try:
            cells = _cells(board, f"{DT_BASE}{node}/iommus")
            phandle, stream = cells[0], (cells[1] if len(cells) > 1 else None)
        except FileNotFoundError:
            pass
    elif bus == "pci":
        host = next((part for part in device_path(board, device).split("/")
                     if part in devices(board, "platform")), None)
        host_node = of_node(board, host) if host else None
        if host_node is not None:
            try:
                rid_base, phandle, sid_base, length = _cells(board, f"{DT_BASE}{host_node}/iommu-map")[:4]
                b, rest = device.split(":")[1:]
                slot, fn = rest.split(".")
                rid = (int(b, 16) << 8) | (int(slot, 16) << 3) | int(fn, 16)
                stream = sid_base + rid - rid_base if rid_base <= rid < rid_base + length else None
            except (FileNotFoundError, ValueError):
                pass
    if smmu is None and phandle is not None:
        for dev in devices(board, "platform"):
            node = of_node(board, dev)
            if node is not None and _cell(board, f"{DT_BASE}{node}/phandle", None) == phandle:
                smmu = dev
                break
    if smmu is None:
        return None
    return smmu, stream


def reserved_regions(board, group):
    """[(start, end, kind)] of IOVA ranges the group's DMA may not use (e.g. the SMMU's MSI window)."""
    regions = []
    for line in board.sysfs_read(f"/sys/kernel/iommu_groups/{group}/reserved_regions").splitlines():
        start, end, kind = line.split()
        regions.append((int(start, 16), int(end, 16), kind))
    return regions


def is_vfio_driver(name):
    return name in VFIO_DRIVER.values()


def group_viable(board, group):
    """True when VFIO could take the group: each of its devices is bound to a VFIO driver or to none."""
    return all(driver is None or is_vfio_driver(driver)
               for driver in (driver_of(board, dev) for dev in group_devices(board, group)))


def iommu_groups(board):
    """Every IOMMU group number, in order."""
    try:
        return sorted(int(g) for g in board.listdir("/sys/kernel/iommu_groups"))
    except FileNotFoundError:
        return []


def modalias(board, device):
    """What the kernel matches drivers and modules against ("of:N...C...", "amba:d...", "pci:v...").

    Read from the device's uevent: amba devices have no modalias file of their own."""
    uevent = board.sysfs_read(f"/sys/bus/{bus_of(board, device)}/devices/{device}/uevent")
    return next((line[len("MODALIAS="):] for line in uevent.splitlines() if line.startswith("MODALIAS=")), None)


def driver_override(board, device):
    """The device's driver_override, or None when unset (sysfs shows "(null)")."""
    text = board.sysfs_read(f"/sys/bus/{bus_of(board, device)}/devices/{device}/driver_override").strip()
    return None if text == "(null)" else text


def inventory(board, buses=BUSES):
    """One row per device on `buses`: {"bus", "device", "driver", "group"}, in few sysfs reads."""
    group_of = {}
    for group in iommu_groups(board):
        for dev in group_devices(board, group):
            group_of[dev] = group
    rows = []
    for bus in buses:
        for dev in devices(board, bus):
            try:
                driver = posixpath.basename(board.readlink(f"/sys/bus/{bus}/devices/{dev}/driver"))
            except FileNotFoundError:
                driver = None
            rows.append({"bus": bus, "device": dev, "driver": driver, "group": group_of.get(dev)})
    return rows


def describe(board, device):
    """Everything Lab 01 follows for one device: node, compatible, resources, driver, group, SMMU."""
    bus = bus_of(board, device)
    base = f"/sys/bus/{bus}/devices/{device}"
    group = iommu_group(board, device)
    info = {"device": device, "bus": bus, "path": device_path(board, device),
            "of_node": of_node(board, device), "compatible": compatible_of(board, device),
            "driver": driver_of(board, device),
            "driver_override": board.sysfs_read(f"{base}/driver_override").strip(),
            "reg": reg_of(board, device), "interrupts": interrupts_of(board, device),
            "group": group, "smmu": smmu_of(board, device)}
    if bus == "pci":
        info["pci_id"] = "%04x:%04x" % (int(board.sysfs_read(f"{base}/vendor"), 16),
                                        int(board.sysfs_read(f"{base}/device"), 16))
        bars = []
        for line in board.sysfs_read(f"{base}/resource").splitlines()[:6]:
            start, end, _flags = (int(x, 16) for x in line.split())
            bars.append((start, end - start + 1) if end else (0, 0))
        info["bars"] = bars
    if bus == "amba":
        info["periphid"] = board.sysfs_read(f"{base}/id").strip()
    if group is not None:
        info["group_devices"] = group_devices(board, group)
        info["group_viable"] = group_viable(board, group)
        info["reserved_regions"] = reserved_regions(board, group)
    return info
