"""User-space DMA drivers over VFIO, shaped like the Linux VFIO selftests' driver ops
(tools/testing/selftests/vfio/lib: struct vfio_pci_driver_ops).

A driver takes an open vfio.Device and a DmaRegion it may use for its own data (microcode, bounce
buffers), both set up by the caller, then:

    driver.probe()                       -> True if this driver knows the device
    driver.init(region)                  enable the device and its interrupt
    driver.memcpy_start(src, dst, size, count=1)   copy size bytes from IOVA src to IOVA dst, count times
    driver.memcpy_wait(timeout_ms)       wait for the interrupt; raise DmaError if the device faulted
    driver.send_msi()                    make the device signal its MSI (where it has one)
    driver.remove()                      quiesce the device, release the interrupt

max_memcpy_size and max_memcpy_count say what one memcpy_start may ask for.
"""
import dataclasses


class DmaError(RuntimeError):
    """The device reported a failed transfer (a fault, a timeout); the message says what it saw."""


@dataclasses.dataclass
class DmaRegion:
    """Memory this process allocated (board.alloc) and mapped for the device at `iova`."""
    buffer: object
    iova: int
    size: int

    @property
    def vaddr(self):
        return self.buffer.vaddr

    def view(self):
        return memoryview(self.buffer).cast("B")


def probe_all(device, drivers=None):
    """The first driver (class) whose probe() accepts `device`, instantiated, or None."""
    from .edu import EduDriver
    from .pl330 import PL330Driver
    from .xgmac import XgmacDriver
    for cls in drivers or (PL330Driver, EduDriver, XgmacDriver):
        driver = cls(device)
        if driver.probe():
            return driver
    return None
