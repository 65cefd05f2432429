"""VFIO device fds (drivers/vfio/vfio_main.c) and what vfio-platform and vfio-pci share.

A VfioDevice is created when a VFIO driver binds; GROUP_GET_DEVICE_FD opens it (open_device runs on
the first open, close_device on the last close). Its fd offers the device's ioctls, read/write at
region offsets (index << 40) and mmap of regions. Register accesses through read/write are split
into naturally aligned 4/2/1-byte accesses, as vfio_platform_read_mmio and vfio_pci_core_do_io_rw do.
"""
import errno
import mmap as _mmap
import struct

from vfiolab import uapi
from vfiolab.board.mapping import RegisterWindow

from . import uapi_layouts as L
from .errors import kernel_error
from .memory import PAGE_SIZE
from .files import File
from .userbuf import user_pointer

OFFSET_SHIFT = uapi.VFIO_REGION_OFFSET_SHIFT
OFFSET_MASK = (1 << OFFSET_SHIFT) - 1
PAGE_SHIFT = 12


def split_offset(offset):
    return offset >> OFFSET_SHIFT, offset & OFFSET_MASK


def validate_irq_set(buf, num_irqs, max_irq_type):
    """vfio_set_irqs_validate_and_prepare: (flags, index, start, count, data bytes)."""
    argsz, flags, index, start, count = struct.unpack("<IIIII", buf.read(0, L.IRQ_SET_MINSZ))
    minsz = L.IRQ_SET_MINSZ
    type_mask = uapi.VFIO_IRQ_SET_DATA_TYPE_MASK | uapi.VFIO_IRQ_SET_ACTION_TYPE_MASK
    if argsz < minsz or index >= max_irq_type or count >= 0xFFFFFFFF - start or flags & ~type_mask:
        raise kernel_error(errno.EINVAL, "vfio_set_irqs_validate_and_prepare: argsz, index, start+count or flags")
    if start >= num_irqs or start + count > num_irqs:
        raise kernel_error(errno.EINVAL, f"vfio_set_irqs_validate_and_prepare: start {start} count {count} "
                           f"beyond {num_irqs}")
    data_type = flags & uapi.VFIO_IRQ_SET_DATA_TYPE_MASK
    size = {uapi.VFIO_IRQ_SET_DATA_NONE: 0, uapi.VFIO_IRQ_SET_DATA_BOOL: 1,
            uapi.VFIO_IRQ_SET_DATA_EVENTFD: 4}.get(data_type)
    if size is None:
        raise kernel_error(errno.EINVAL, "vfio_set_irqs_validate_and_prepare: exactly one DATA_ flag")
    data = b""
    if size:
        if argsz - minsz < count * size:
            raise kernel_error(errno.EINVAL, "vfio_set_irqs_validate_and_prepare: argsz too small for the data")
        data = buf.read(minsz, count * size)                 # memdup_user: EFAULT past the buffer
    return flags, index, start, count, data


class Region:
    """One region of a VFIO device: size, flags, and how its bytes are reached."""

    def __init__(self, index, size, flags, read=None, write=None, mmap_ok=False):
        self.index, self.size, self.flags = index, size, flags
        self.read_fn, self.write_fn = read, write
        self.mmap_ok = mmap_ok


class VfioDevice:
    """A device bound to a VFIO driver (struct vfio_device)."""

    def __init__(self, board, device):
        self.board = board
        self.device = device
        self.group = None
        self.open_count = 0

    # -- the driver-specific part ---------------------------------------------------------------
    def open_device(self):
        pass

    def close_device(self):
        pass

    def ioctl(self, request, arg):
        raise kernel_error(errno.ENOTTY)

    def regions(self):
        return []

    has_device_feature = False      # vfio-pci has a device_feature op, vfio-platform none

    def device_feature(self, buf):
        """vfio_ioctl_device_feature: no feature (migration, low power, VF token) is offered."""
        argsz, flags = struct.unpack("<II", buf.read(0, 8))
        known = uapi.VFIO_DEVICE_FEATURE_MASK | uapi.VFIO_DEVICE_FEATURE_SET | \
            uapi.VFIO_DEVICE_FEATURE_GET | uapi.VFIO_DEVICE_FEATURE_PROBE
        if argsz < 8 or flags & ~known:
            raise kernel_error(errno.EINVAL, "vfio_ioctl_device_feature: argsz or unknown flags")
        if not flags & uapi.VFIO_DEVICE_FEATURE_PROBE and flags & uapi.VFIO_DEVICE_FEATURE_SET and \
                flags & uapi.VFIO_DEVICE_FEATURE_GET:
            raise kernel_error(errno.EINVAL, "vfio_ioctl_device_feature: GET and SET together")
        feature = flags & uapi.VFIO_DEVICE_FEATURE_MASK
        if feature in (uapi.VFIO_DEVICE_FEATURE_MIGRATION, 2):      # 2: MIG_DEVICE_STATE
            raise kernel_error(errno.ENOTTY, "vfio_ioctl_device_feature_migration: no migration support")
        if not self.has_device_feature:
            raise kernel_error(errno.EINVAL, "vfio_ioctl_device_feature: this driver has no features")
        raise kernel_error(errno.ENOTTY, "vfio_pci_core_ioctl_feature: feature not supported")

    def request(self):
        """The kernel asks user space to release the device (REQ IRQ on vfio-pci)."""

    def service(self):
        """Asynchronous work done at each board call (virqfd eventfds)."""

    # -- the file ---------------------------------------------------------------------------------
    def open_file(self):
        """vfio_device_open: the first open runs open_device."""
        if self.open_count == 0:
            self.open_device()
        self.open_count += 1
        return DeviceFile(self)

    def release_file(self):
        self.open_count -= 1
        if self.open_count == 0:
            self.close_device()

    def region(self, index):
        regions = self.regions()
        return regions[index] if 0 <= index < len(regions) else None

    def rw(self, offset, data_or_count, write):
        """Shared read/write: pick the region, bound the access, split it into register accesses."""
        index, off = split_offset(offset)
        region = self.region(index)
        needed = uapi.VFIO_REGION_INFO_FLAG_WRITE if write else uapi.VFIO_REGION_INFO_FLAG_READ
        if region is None or not region.flags & needed or region.read_fn is None:
            raise kernel_error(errno.EINVAL, f"{'write' if write else 'read'} at region {index}: no such "
                               "readable/writable region")
        if off >= region.size:
            raise kernel_error(errno.EINVAL, f"offset {off:#x} is past the {region.size:#x}-byte region {index}")
        count = len(data_or_count) if write else data_or_count
        count = min(count, region.size - off)
        out, done = bytearray(), 0
        while done < count:
            at = off + done
            left = count - done
            size = 4 if left >= 4 and at % 4 == 0 else 2 if left >= 2 and at % 2 == 0 else 1
            if write:
                region.write_fn(at, size, int.from_bytes(data_or_count[done:done + size], "little"))
            else:
                out += region.read_fn(at, size).to_bytes(size, "little")
            done += size
        return done if write else bytes(out)


class DeviceFile(File):
    def __init__(self, vdev):
        self.vdev = vdev
        self.name = f"vfio device {vdev.device.name}"
        self.position = 0
        self.refs = 1          # the fd, plus one per live mapping (a VMA holds its file)

    def ioctl(self, request, arg):
        if request == uapi.VFIO_DEVICE_FEATURE:
            return self.vdev.device_feature(user_pointer(arg, "VFIO_DEVICE_FEATURE"))
        return self.vdev.ioctl(request, arg)

    def read(self, n, offset):
        pos = self.position if offset is None else offset
        data = self.vdev.rw(pos, n, write=False)
        if offset is None:
            self.position += len(data)
        return data

    def write(self, data, offset):
        pos = self.position if offset is None else offset
        done = self.vdev.rw(pos, bytes(data), write=True)
        if offset is None:
            self.position += done
        return done

    def mmap(self, length, offset, prot, flags):
        """vfio_platform_mmap / vfio_pci_core_mmap: MAP_SHARED, page aligned, inside the region."""
        index, off = split_offset(offset)
        region = self.vdev.region(index)
        if not flags & _mmap.MAP_SHARED:
            raise kernel_error(errno.EINVAL, "VFIO regions can only be mapped MAP_SHARED")
        if region is None:
            raise kernel_error(errno.EINVAL, f"no region {index}")
        if not region.flags & uapi.VFIO_REGION_INFO_FLAG_MMAP or not region.mmap_ok:
            raise kernel_error(errno.EINVAL, f"region {index} cannot be mmapped (no MMAP flag)")
        if prot & _mmap.PROT_READ and not region.flags & uapi.VFIO_REGION_INFO_FLAG_READ or \
                prot & _mmap.PROT_WRITE and not region.flags & uapi.VFIO_REGION_INFO_FLAG_WRITE:
            raise kernel_error(errno.EINVAL, f"region {index} does not allow this protection")
        length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        limit = (region.size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        if region.size < PAGE_SIZE or off + length > limit:
            raise kernel_error(errno.EINVAL, f"{off:#x}+{length:#x} goes past the {region.size:#x}-byte region {index}")
        self.refs += 1
        return RegionMapping(self, region, off, length, prot)

    def release(self):
        """close(fd); the file itself goes only when no mapping of it is left (fput)."""
        self.put()

    def put(self):
        self.refs -= 1
        if self.refs:
            return
        self.vdev.release_file()
        if self.vdev.group is not None and self.vdev.group.file is not None:
            self.vdev.group.file.device_closed()


class RegionMapping(RegisterWindow):
    """A region mapped into the process: read8/16/32/64(off), write8/16/32/64(off, value).

    Each access is one register access of exactly that width on the device model, as a load or
    store to a real mapping is; the checks are the host board's (vfiolab.board.mapping).
    """

    def __init__(self, file, region, offset, length, prot):
        self.file, self.vdev, self.region = file, file.vdev, region
        self.offset, self.length = offset, length
        self.prot = prot
        self.closed = False

    def _load(self, width, off):
        at, nbytes = self.offset + off, width // 8
        if at + nbytes > self.region.size:
            return (1 << width) - 1        # past the device's registers in the last page
        self.vdev.board.service()
        return self.region.read_fn(at, nbytes) & ((1 << width) - 1)

    def _store(self, width, off, value):
        at, nbytes = self.offset + off, width // 8
        if at + nbytes > self.region.size:
            return
        self.vdev.board.service()
        self.region.write_fn(at, nbytes, value)
        # Hardware starts at once: run what the store set going (e.g. a DMA), so memory read
        # straight after a doorbell-style register write already shows progress.
        self.vdev.board.service()

    def close(self):
        """munmap: the mapping's hold on the device file goes too."""
        if not self.closed:
            self.closed = True
            self.file.put()

    def __len__(self):
        return self.length

    def __repr__(self):
        return (f"<RegionMapping {self.length:#x} bytes of {self.vdev.device.name} region "
                f"{self.region.index} at {self.offset:#x}{', closed' if self.closed else ''}>")


def region_info(vdev, buf):
    """VFIO_DEVICE_GET_REGION_INFO for both drivers' plain regions (no capabilities)."""
    argsz, _flags, index = struct.unpack("<III", buf.read(0, L.REGION_INFO_MINSZ)[:12])
    if argsz < L.REGION_INFO_MINSZ:
        raise kernel_error(errno.EINVAL, "GET_REGION_INFO: argsz is smaller than vfio_region_info")
    region = vdev.region(index)
    if region is None:
        raise kernel_error(errno.EINVAL, f"GET_REGION_INFO: no region {index} "
                           f"(the device has {len(vdev.regions())})")
    buf.write(4, struct.pack("<IIIQQ", region.flags, index, 0, region.size, index << OFFSET_SHIFT))
    return 0

