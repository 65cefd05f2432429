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
        if isinstance(vdev, int):
            return vdev
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
        if self.bus == "amba" and board.since("platform_deprecated") and \
                board.kernel_modules.once("vfio_amba_deprecation"):
            board.log(f"vfio-amba {device.name}: DEPRECATION: vfio-amba is deprecated and will be "
                      "removed in a future kernel release")
        vdev = PlatformVfioDevice(board, device, self.bus)
        rc = vdev.init_common()         # the reset lookup (vfio_platform.py)
        return vdev if rc == 0 else rc


class VfioPciDriver(VfioDriver):
    def __init__(self):
        super().__init__("vfio-pci", "pci", module="vfio_pci")

    def make_vdev(self, board, device):
        return PciVfioDevice(board, device)


def vfio_drivers():
    return [VfioPlatformDriver("platform"), VfioPlatformDriver("amba"), VfioPciDriver()]
