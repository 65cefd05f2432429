"""The VFIO drivers a device can be bound to: vfio-platform, vfio-amba and vfio-pci.

Their probes follow the kernel: vfio-platform refuses a device with no reset handler while
reset_required is set ("No reset function found for device ...": -ENOENT from
vfio_platform_get_reset); every VFIO driver needs the device to be in an IOMMU group
(vfio_group_find_or_alloc: -EINVAL without one); vfio-pci takes only normal (type 0) functions.
"""
import errno

from .drivers import Driver
from .vfio_pci import PciVfioDevice
from .vfio_platform import PlatformVfioDevice


class VfioDriver(Driver):
    is_vfio = True

    def __init__(self, name, bus, module):
        super().__init__(name, bus, module=module)
        self.vdevs = {}

    def make_vdev(self, board, device):
        raise NotImplementedError

    def probe(self, board, device):
        vdev = self.make_vdev(board, device)
        if vdev is None:
            return -errno.ENOENT
        if device.group is None:
            board.log(f"{self.name} {device.name}: no IOMMU group for the device")
            return -errno.EINVAL
        board.vfio.register(vdev)
        self.vdevs[device.name] = vdev
        return 0

    def remove(self, board, device):
        vdev = self.vdevs[device.name]
        board.vfio.unregister(vdev)             # EBUSY (sim) while its fd is open
        del self.vdevs[device.name]


class VfioPlatformDriver(VfioDriver):
    def __init__(self, bus):
        name = "vfio-amba" if bus == "amba" else "vfio-platform"
        super().__init__(name, bus, module=name.replace("-", "_"))

    def make_vdev(self, board, device):
        vdev = PlatformVfioDevice(board, device, self.bus)
        if self.bus == "amba":
            board.log(f"vfio-amba {device.name}: DEPRECATION: vfio-amba will be removed in a future "
                      "kernel release (Linux 6.18)")
        if vdev.reset_handler is None and vdev.reset_required:
            board.log(f"vfio-platform {device.name}: No reset function found for device {device.name}")
            return None
        return vdev


class VfioPciDriver(VfioDriver):
    def __init__(self):
        super().__init__("vfio-pci", "pci", module="vfio_pci")

    def make_vdev(self, board, device):
        return PciVfioDevice(board, device)


def vfio_drivers():
    return [VfioPlatformDriver("platform"), VfioPlatformDriver("amba"), VfioPciDriver()]
