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


def compatible_of(board, device):
    """The device-tree compatible strings of a device (empty for devices without a DT node)."""
    bus = bus_of(board, device)
    try:
        raw = board.sysfs_read(f"/sys/bus/{bus}/devices/{device}/of_node/compatible")
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [c for c in raw.replace("\0", "\n").split("\n") if c]


def find_by_compatible(board, compatible):
    """Every device, on any bus, whose DT node lists `compatible`."""
    return [dev for bus in BUSES for dev in devices(board, bus) if compatible in compatible_of(board, dev)]


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
