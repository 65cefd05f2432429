"""Friendly VFIO objects over any board: Container, Group, Device, Region, Irq.

Modeled on rust-vmm's vfio-ioctls: the raw uAPI (vfiolab.uapi) stays apart from these objects, and
each object owns exactly one fd (Container, Group, Device) and closes it when done. Every failure is
a VfioError: an OSError with the kernel's errno whose message names the ioctl and its arguments.

    with Container(board) as container, Group.of_device(board, "2c0a0000.dma") as group:
        group.set_container(container)
        container.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
        with group.device("2c0a0000.dma") as dev:
            regs = dev.region(0).mmap()
"""
import ctypes
import errno
import os
import posixpath

from . import uapi

# ioctl number -> name, for error messages (VFIO ioctls are the constants of type ';').
_IOCTL_NAMES = {value: name for name, value in uapi.header_constants().items()
                if value >> 8 == ord(uapi.VFIO_TYPE)}


class VfioError(OSError):
    """An ioctl or file operation that the kernel refused; .errno is the kernel's."""


def _call(board, fd, request, arg=0, what=""):
    try:
        return board.ioctl(fd, request, arg)
    except OSError as e:
        name = _IOCTL_NAMES.get(request, hex(request))
        detail = f"({what})" if what else ""
        # Keep the board's explanation (the sim says which rule was broken), not just strerror.
        reason = e.strerror or os.strerror(e.errno)
        raise VfioError(e.errno, f"{name}{detail} failed: {reason}") from None


class _FdOwner:
    """Owns one fd on a board; closes it on close() or at the end of a with block."""

    def __init__(self, board, fd):
        self.board, self.fd = board, fd

    def close(self):
        if self.fd is not None:
            fd, self.fd = self.fd, None
            self.board.close(fd)

    def _live_fd(self):
        if self.fd is None:
            raise VfioError(errno.EBADF, f"{type(self).__name__} is closed")
        return self.fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Container(_FdOwner):
    """/dev/vfio/vfio: an IOMMU context that groups join, where DMA is mapped."""

    def __init__(self, board, path="/dev/vfio/vfio"):
        super().__init__(board, board.open(path, os.O_RDWR))
        version = self.api_version()
        if version != uapi.VFIO_API_VERSION:
            self.close()
            raise VfioError(errno.EINVAL, f"VFIO API version {version}, expected {uapi.VFIO_API_VERSION}")

    def api_version(self):
        return _call(self.board, self._live_fd(), uapi.VFIO_GET_API_VERSION)

    def check_extension(self, extension):
        return bool(_call(self.board, self._live_fd(), uapi.VFIO_CHECK_EXTENSION, extension,
                          f"{extension}"))

    def set_iommu(self, iommu_type=uapi.VFIO_TYPE1v2_IOMMU):
        _call(self.board, self._live_fd(), uapi.VFIO_SET_IOMMU, iommu_type, f"{iommu_type}")

    def iommu_info(self):
        """(page-size bitmap, [(first, last) IOVA ranges]) from IOMMU_GET_INFO and its IOVA_RANGE cap."""
        fd = self._live_fd()
        info = uapi.vfio_iommu_type1_info()
        _call(self.board, fd, uapi.VFIO_IOMMU_GET_INFO, info)
        ranges = []
        if info.flags & uapi.VFIO_IOMMU_INFO_CAPS and info.argsz > ctypes.sizeof(info):
            # The first call told us how big the buffer with its capability chain must be.
            buf = (ctypes.c_uint8 * info.argsz)()
            ctypes.c_uint32.from_buffer(buf, 0).value = info.argsz
            _call(self.board, fd, uapi.VFIO_IOMMU_GET_INFO, buf)
            info = uapi.vfio_iommu_type1_info.from_buffer_copy(buf)
            offset = info.cap_offset
            while offset:
                header = uapi.vfio_info_cap_header.from_buffer(buf, offset)
                if header.id == uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
                    cap = uapi.vfio_iommu_type1_info_cap_iova_range.from_buffer(buf, offset)
                    first = offset + ctypes.sizeof(cap)
                    for i in range(cap.nr_iovas):
                        r = uapi.vfio_iova_range.from_buffer(buf, first + i * ctypes.sizeof(uapi.vfio_iova_range))
                        ranges.append((r.start, r.end))
                offset = header.next
        return info.iova_pgsizes, ranges

    def map_dma(self, vaddr, iova, size, read=True, write=True):
        """Let devices in this container reach [vaddr, vaddr+size) of this process at `iova`."""
        vaddr = getattr(vaddr, "vaddr", vaddr)
        flags = (uapi.VFIO_DMA_MAP_FLAG_READ if read else 0) | (uapi.VFIO_DMA_MAP_FLAG_WRITE if write else 0)
        arg = uapi.vfio_iommu_type1_dma_map(flags=flags, vaddr=vaddr, iova=iova, size=size)
        _call(self.board, self._live_fd(), uapi.VFIO_IOMMU_MAP_DMA, arg,
              f"iova=0x{iova:x}, size=0x{size:x}, {'r' if read else '-'}{'w' if write else '-'}")

    def unmap_dma(self, iova, size):
        """Remove mappings in [iova, iova+size); returns how many bytes were unmapped."""
        arg = uapi.vfio_iommu_type1_dma_unmap(iova=iova, size=size)
        _call(self.board, self._live_fd(), uapi.VFIO_IOMMU_UNMAP_DMA, arg, f"iova=0x{iova:x}, size=0x{size:x}")
        return arg.size


def iommu_group_of(board, device_name):
    """The IOMMU group number of a device on the platform, amba or pci bus."""
    for bus in ("platform", "amba", "pci"):
        path = f"/sys/bus/{bus}/devices/{device_name}"
        try:
            return int(posixpath.basename(board.readlink(f"{path}/iommu_group")))
        except FileNotFoundError:
            continue
    raise VfioError(errno.ENOENT, f"no device {device_name!r} with an IOMMU group on the platform, amba or pci bus")


class Group(_FdOwner):
    """/dev/vfio/N: the unit of isolation; its devices are only usable once it joins a container."""

    def __init__(self, board, group_id):
        self.id = group_id
        super().__init__(board, board.open(f"/dev/vfio/{group_id}", os.O_RDWR))

    @classmethod
    def of_device(cls, board, device_name):
        return cls(board, iommu_group_of(board, device_name))

    def status(self):
        arg = uapi.vfio_group_status()
        _call(self.board, self._live_fd(), uapi.VFIO_GROUP_GET_STATUS, arg)
        return arg.flags

    @property
    def viable(self):
        return bool(self.status() & uapi.VFIO_GROUP_FLAGS_VIABLE)

    def set_container(self, container):
        arg = ctypes.c_int32(container._live_fd())
        _call(self.board, self._live_fd(), uapi.VFIO_GROUP_SET_CONTAINER, arg)

    def unset_container(self):
        _call(self.board, self._live_fd(), uapi.VFIO_GROUP_UNSET_CONTAINER)

    def device(self, name):
        if not isinstance(name, str):
            raise TypeError(f"device name must be a str (e.g. \"2c0a0000.dma\"), not {type(name).__name__}")
        fd = _call(self.board, self._live_fd(), uapi.VFIO_GROUP_GET_DEVICE_FD, name.encode() + b"\0", name)
        return Device(self.board, fd, name)


class Device(_FdOwner):
    """A device fd: its regions, its IRQs, reset."""

    def __init__(self, board, fd, name):
        super().__init__(board, fd)
        self.name = name
        info = uapi.vfio_device_info()
        try:
            _call(board, fd, uapi.VFIO_DEVICE_GET_INFO, info)
        except OSError:
            self.close()
            raise
        self.flags, self.num_regions, self.num_irqs = info.flags, info.num_regions, info.num_irqs

    @property
    def kind(self):
        for flag, name in ((uapi.VFIO_DEVICE_FLAGS_PLATFORM, "platform"), (uapi.VFIO_DEVICE_FLAGS_AMBA, "amba"),
                           (uapi.VFIO_DEVICE_FLAGS_PCI, "pci")):
            if self.flags & flag:
                return name
        return "other"

    def region(self, index):
        arg = uapi.vfio_region_info(index=index)
        _call(self.board, self._live_fd(), uapi.VFIO_DEVICE_GET_REGION_INFO, arg, f"index={index}")
        return Region(self, index, arg.flags, arg.size, arg.offset)

    def irq(self, index):
        arg = uapi.vfio_irq_info(index=index)
        _call(self.board, self._live_fd(), uapi.VFIO_DEVICE_GET_IRQ_INFO, arg, f"index={index}")
        return Irq(self, index, arg.flags, arg.count)

    def reset(self):
        _call(self.board, self._live_fd(), uapi.VFIO_DEVICE_RESET)

    def close(self):
        for irq in list(getattr(self, "_irqs", ())):
            irq.close_eventfd()
        super().close()


class Region:
    """One region of a device: read/write through the device fd, or mmap it."""

    def __init__(self, device, index, flags, size, offset):
        self.device, self.index, self.flags, self.size, self.offset = device, index, flags, size, offset

    @property
    def mmappable(self):
        return bool(self.flags & uapi.VFIO_REGION_INFO_FLAG_MMAP)

    def read(self, offset, n):
        return self.device.board.read(self.device._live_fd(), n, self.offset + offset)

    def write(self, offset, data):
        return self.device.board.write(self.device._live_fd(), data, self.offset + offset)

    def mmap(self, length=None):
        return self.device.board.mmap(self.device._live_fd(), length or self.size, self.offset)

    def __repr__(self):
        return f"Region(index={self.index}, size=0x{self.size:x}, offset=0x{self.offset:x}, flags=0x{self.flags:x})"


class Irq:
    """One IRQ index of a device, signalled on an eventfd this object owns once enabled."""

    def __init__(self, device, index, flags, count):
        self.device, self.index, self.flags, self.count = device, index, flags, count
        self.eventfd = None

    @property
    def automasked(self):
        return bool(self.flags & uapi.VFIO_IRQ_INFO_AUTOMASKED)

    def _set(self, flags, arg=None, what=""):
        if arg is None:
            arg = uapi.vfio_irq_set(flags=flags, index=self.index, start=0, count=1)
        _call(self.device.board, self.device._live_fd(), uapi.VFIO_DEVICE_SET_IRQS, arg,
              f"index={self.index}, {what}")

    def enable(self):
        """Route this IRQ to a new eventfd (SET_IRQS DATA_EVENTFD|ACTION_TRIGGER); returns the fd."""
        board = self.device.board
        fd = board.eventfd()
        try:
            self._set(0, uapi.irq_set_eventfds(self.index, [fd]), "trigger eventfd")
        except OSError:
            board.close(fd)
            raise
        self.close_eventfd()
        self.eventfd = fd
        self.device.__dict__.setdefault("_irqs", set()).add(self)
        return fd

    def disable(self):
        """Tear the trigger down: DATA_NONE|ACTION_TRIGGER with count 0."""
        arg = uapi.vfio_irq_set(flags=uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_TRIGGER,
                                index=self.index, start=0, count=0)
        self._set(0, arg, "disable")
        self.close_eventfd()

    def mask(self):
        self._set(uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_MASK, what="mask")

    def unmask(self):
        self._set(uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_UNMASK, what="unmask")

    def trigger(self):
        """Fire the IRQ from user space (a loopback test of the eventfd path)."""
        self._set(uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_TRIGGER, what="trigger")

    def wait(self, timeout_ms=1000):
        """Wait for the eventfd; returns how many times it fired (0 on timeout)."""
        if self.eventfd is None:
            raise VfioError(errno.EINVAL, f"IRQ {self.index} has no eventfd: call enable() first")
        board = self.device.board
        if not board.poll([self.eventfd], timeout_ms):
            return 0
        return int.from_bytes(board.read(self.eventfd, 8), "little")

    def close_eventfd(self):
        if self.eventfd is not None:
            fd, self.eventfd = self.eventfd, None
            self.device.board.close(fd)
