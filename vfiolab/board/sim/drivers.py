"""The driver core: which driver a device binds to, and the sysfs files that bind and unbind.

Follows drivers/base/{bus.c,dd.c,driver.c} and the bus match functions:
  - platform_match / amba_match / pci_bus_match: with driver_override set, only the driver of that
    name matches (vfio-platform and vfio-amba have no ID table: override is their only way in;
    vfio-pci also matches new_id entries);
  - drivers_probe (bus.c drivers_probe_store): ENODEV for an unknown device name; otherwise probe
    the matching driver; a failed probe leaves the device unbound and the write still succeeds
    (really_probe returns probe errors as positive values, bus_rescan_devices_helper drops them);
  - driver/unbind (unbind_store): ENODEV unless the device is bound to this driver;
  - driver/bind (bind_store): ENODEV unless the driver matches, EBUSY if already bound
    (__driver_probe_device), and a probe error as a negative errno (device_driver_attach);
  - driver_override (driver_set_override): anything shorter than a page, up to the first newline;
    "" or "\\n" clears it; shows "(null)" when unset.
Host drivers claim DMA through the IOMMU's default domain: probing one in a group whose DMA is
owned by a VFIO container fails with EBUSY (iommu_device_use_default_domain).
"""
import errno

from .errors import kernel_error
from .memory import PAGE_SIZE



class Driver:
    """A kernel driver: its name, bus, and what it matches (DT compatible, amba peripheral ID, PCI ID)."""

    is_vfio = False

    def __init__(self, name, bus, compatibles=(), suppress_bind_attrs=False, module=None, pci_ids=(),
                 amba_ids=()):
        self.name = name
        self.bus = bus
        self.compatibles = list(compatibles)
        self.pci_ids = list(pci_ids)                     # static ID table: (vendor, first, last device)
        self.amba_ids = list(amba_ids)                   # struct amba_id table: (id, mask)
        # struct device_driver.driver_managed_dma: the driver takes DMA ownership itself (the VFIO
        # drivers; pci-stub too on Linux), so really_probe skips iommu_device_use_default_domain for
        # it. A group is viable while every device in it is unbound or bound to such a driver
        # (iommu_group_dma_owner_claimed counts the others). No host driver of the sim sets it.
        self.driver_managed_dma = self.is_vfio
        self.suppress_bind_attrs = suppress_bind_attrs   # no bind/unbind files (e.g. arm-smmu)
        self.module = module or name.replace("-", "_")
        self.dynamic_ids = []                            # PCI new_id entries (vendor, device)
        self.devices = []

    @property
    def sysfs_path(self):
        return f"/sys/bus/{self.bus}/drivers/{self.name}"

    def id_match(self, device):
        if device.bus == "pci":
            fn = device.pci
            return (fn.vendor, fn.device) in self.dynamic_ids or any(
                fn.vendor == vendor and first <= fn.device <= last for vendor, first, last in self.pci_ids)
        if device.bus == "amba":
            # amba_lookup: the peripheral ID, masked, against the id_table; compatible plays no part.
            periphid = device.periphid
            return any((periphid & mask) == id_ for id_, mask in self.amba_ids)
        return any(c in self.compatibles for c in device.compatible)

    def probe(self, board, device):
        """0 or a negative errno, as a driver's probe returns."""
        if device.group is not None and device.group.user_owner is not None:
            board.log(f"{self.name} {device.name}: DMA owned by user space (iommu_device_use_default_domain: -EBUSY)")
            return -errno.EBUSY
        board.log(f"{self.name} {device.name}: probed")
        return 0

    def remove(self, board, device):
        pass


# The platform host drivers Linux would bind at boot, by compatible (of_match_table).
HOST_DRIVERS = [
    ("calxedaxgmac", "platform", ["calxeda,hb-xgmac"], False, "calxedaxgmac"),
    ("arm-smmu", "platform", ["arm,mmu-500", "arm,smmu-v2"], True, "arm_smmu"),
    ("arm-smmu-v3", "platform", ["arm,smmu-v3"], True, "arm_smmu_v3"),
    ("pci-host-generic", "platform", ["pci-host-ecam-generic"], True, "pci_host_generic"),
]

# The amba host drivers, by their id_table: {id, mask} pairs matched against the peripheral ID
# (drivers/dma/pl330.c, tty/serial/amba-pl011.c, rtc/rtc-pl031.c, gpio/gpio-pl061.c; ARM parts only:
# ST's 0x00380802 UART and 0x00180031/0x00280031 RTCs are in the same tables, kept here too).
HOST_AMBA_DRIVERS = [
    ("dma-pl330", [(0x00041330, 0x000FFFFF)], "pl330"),
    ("uart-pl011", [(0x00041011, 0x000FFFFF), (0x00380802, 0x00FFFFFF)], "amba_pl011"),
    ("rtc-pl031", [(0x00041031, 0x000FFFFF), (0x00180031, 0x00FFFFFF), (0x00280031, 0x00FFFFFF)],
     "rtc_pl031"),
    ("pl061_gpio", [(0x00041061, 0x000FFFFF)], "gpio_pl061"),
]

# Host PCI drivers, by ID. virtio_pci's table is PCI_DEVICE(0x1af4, PCI_ANY_ID) and its probe takes
# only device IDs 0x1000-0x107f (-ENODEV otherwise): the range is the match here.
HOST_PCI_DRIVERS = [
    ("virtio-pci", [(0x1AF4, 0x1000, 0x107F)], "virtio_pci"),
]


def host_drivers():
    """Every host driver of the sim kernel: amba by peripheral ID, platform by compatible, PCI by ID."""
    return ([Driver(name, "amba", module=module, amba_ids=ids) for name, ids, module in HOST_AMBA_DRIVERS]
            + [Driver(name, bus, compatibles, suppress, module)
               for name, bus, compatibles, suppress, module in HOST_DRIVERS]
            + [Driver(name, "pci", module=module, pci_ids=ids) for name, ids, module in HOST_PCI_DRIVERS])


class DriverCore:
    """Binding rules over the board's devices and drivers; sysfs calls into it."""

    def __init__(self, board, drivers):
        self.board = board
        self.drivers = list(drivers)

    def drivers_on(self, bus):
        return [d for d in self.drivers if d.bus == bus]

    def driver(self, bus, name):
        for d in self.drivers:
            if d.bus == bus and d.name == name:
                return d
        return None

    def match(self, driver, device):
        if driver.bus != device.bus:
            return False
        if device.driver_override is not None:
            # platform_match / amba_match: override wins outright. pci_match_device: a set override
            # excludes every other driver, and makes the named one match any ID.
            return device.driver_override == driver.name
        return driver.id_match(device)

    # --- binding ------------------------------------------------------------------------------
    def probe(self, driver, device):
        """really_probe: 0 when bound, else the (negative) probe error; the device stays unbound."""
        rc = driver.probe(self.board, device)
        if rc:
            if rc not in (-errno.ENODEV, -errno.ENXIO):
                # really_probe's pr_warn, as the qemu board's 6.1 prints it
                self.board.log(f"{driver.name}: probe of {device.name} failed with error {rc}")
            return rc
        device.driver = driver
        driver.devices.append(device)
        self.board.sysfs.driver_bound(device, driver)
        return 0

    def attach(self, device):
        """device_attach: try every matching driver in order until one binds; True when bound."""
        if device.driver is not None:
            return True
        for driver in self.drivers_on(device.bus):
            if self.match(driver, device) and self.probe(driver, device) == 0:
                return True
        return False

    def release(self, device):
        """device_release_driver."""
        driver = device.driver
        if driver is None:
            return
        driver.remove(self.board, device)       # may raise (a VFIO device still open)
        driver.devices.remove(device)
        device.driver = None
        self.board.sysfs.driver_unbound(device, driver)
        self.board.log(f"{driver.name} {device.name}: unbound")

    def boot(self):
        for device in self.board.topology.devices:
            self.attach(device)

    # --- sysfs store methods ------------------------------------------------------------------
    def find_device(self, bus, text):
        """bus_find_device_by_name: the name compared with sysfs_streq (one trailing newline ok)."""
        name = _sysfs_str(text)
        if name is None:
            return None
        for device in self.board.topology.on_bus(bus):
            if device.name == name:
                return device
        return None

    def drivers_probe_store(self, bus, data):
        device = self.find_device(bus, data)
        if device is None:
            raise kernel_error(errno.ENODEV, "drivers_probe_store: no such device on this bus")
        self.attach(device)

    def unbind_store(self, driver, data):
        device = self.find_device(driver.bus, data)
        if device is None or device.driver is not driver:
            raise kernel_error(errno.ENODEV, "unbind_store: the device is not bound to this driver")
        self.release(device)

    def bind_store(self, driver, data):
        device = self.find_device(driver.bus, data)
        if device is None or not self.match(driver, device):
            raise kernel_error(errno.ENODEV, "bind_store: no such device, or the driver does not match it")
        if device.driver is not None:
            raise kernel_error(errno.EBUSY, "__driver_probe_device: the device already has a driver")
        rc = self.probe(driver, device)
        if rc:
            raise kernel_error(-rc, f"probe of {device.name} failed")

    def driver_override_store(self, device, data):
        # driver_set_override: len >= PAGE_SIZE - 1 is EINVAL; the string ends at its first NUL.
        if len(data) >= PAGE_SIZE - 1:
            raise kernel_error(errno.EINVAL, "driver_set_override: longer than a page")
        text = data.split(b"\0", 1)[0]
        if not text:
            device.driver_override = None
            return
        if text.startswith(b"\n"):
            device.driver_override = None
            return
        device.driver_override = text.split(b"\n", 1)[0].decode("utf-8", "surrogateescape")

    def new_id_store(self, driver, data):
        """pci new_id_store: "vendor device [subvendor subdevice class class_mask driver_data]"."""
        fields = data.decode("ascii", "replace").split()
        try:
            values = [int(f, 16) for f in fields[:2]]
        except ValueError:
            values = []
        if len(values) < 2:
            raise kernel_error(errno.EINVAL, "new_id_store: needs at least \"vendor device\" in hex")
        vendor, device_id = values
        if (vendor, device_id) in driver.dynamic_ids:
            raise kernel_error(errno.EEXIST, "pci_add_dynid: this ID is already there")
        driver.dynamic_ids.append((vendor, device_id))
        # driver_attach: bind every unbound device the new ID matches.
        for device in self.board.topology.on_bus(driver.bus):
            if device.driver is None and self.match(driver, device):
                self.probe(driver, device)

    def remove_id_store(self, driver, data):
        fields = data.decode("ascii", "replace").split()
        try:
            key = tuple(int(f, 16) for f in fields[:2])
        except ValueError:
            key = ()
        if len(key) < 2:
            raise kernel_error(errno.EINVAL, "remove_id_store: needs \"vendor device\" in hex")
        if key not in driver.dynamic_ids:
            raise kernel_error(errno.ENODEV, "remove_id_store: no such dynamic ID")
        driver.dynamic_ids.remove(key)


def _sysfs_str(data):
    """The text a sysfs_streq comparison sees: one trailing newline dropped; None if not text."""
    try:
        text = data.split(b"\0", 1)[0].decode()
    except UnicodeDecodeError:
        return None
    return text[:-1] if text.endswith("\n") else text
