"""Board scenarios: plain functions that take a board and assert what the Linux kernel answers.

They use only the board contract (vfiolab.board), so the same function runs on the sim board and on
a real kernel (the qemu board, real hardware). Each misuse names, in a comment, the kernel function
that picks its errno. A scenario leaves the board as it found it, except for the device binding
(binding twice is harmless).

    target = scenarios.pl330(board)        # or scenarios.edu(board): the device to drive
    scenarios.map_dma_misuse(board, target)

`Target` says which device a scenario drives: the PL330 on the sim's amba bus (the original VFIO
platform test's device), or QEMU's edu on PCI (what a real arm64 Debian kernel can assign).
ALL lists the scenarios that work with either target; PL330_ONLY needs the PL330.
"""
import ctypes
import errno
import os
import posixpath
import struct
from dataclasses import dataclass

from vfiolab import uapi as U

IOVA = 0x100000
PAGE = 0x1000
MSI_WINDOW = (0x8000000, 0x80FFFFF)
PRIMECELL_ID = 0xB105F00D
PL330_PERIPH_ID_WORDS = [0x30, 0x13, 0x24, 0x00]
EDU_ID = 0x010000ED


# --- helpers -------------------------------------------------------------------------------------
def expect_errno(expected, call, *args, **kwargs):
    """Run call(*args); it must fail with OSError `expected`. Returns the OSError."""
    what = f"{getattr(call, '__name__', call)}{args!r}"
    try:
        result = call(*args, **kwargs)
    except OSError as e:
        assert e.errno == expected, (f"{what} failed with {errno.errorcode.get(e.errno, e.errno)} ({e}); "
                                     f"the kernel gives {errno.errorcode[expected]}")
        return e
    raise AssertionError(f"{what} returned {result!r}; the kernel fails it with {errno.errorcode[expected]}")


@dataclass
class Target:
    bus: str            # "amba", "platform" or "pci"
    name: str           # the device's name on its bus
    driver: str         # the VFIO driver that takes it

    @property
    def sysfs(self):
        return f"/sys/bus/{self.bus}/devices/{self.name}"


def find_by_compatible(board, bus, compatible):
    for name in board.listdir(f"/sys/bus/{bus}/devices"):
        base = f"/sys/bus/{bus}/devices/{name}"
        if "of_node" in board.listdir(base) and \
                compatible in board.sysfs_read(f"{base}/of_node/compatible").split("\0"):
            return name
    return None


def pl330(board):
    """The DMA-330 on the amba bus (the sim has one at 0x2c0a0000: 2c0a0000.dma)."""
    name = find_by_compatible(board, "amba", "arm,pl330")
    assert name, "no arm,pl330 device on the amba bus"
    return Target("amba", name, "vfio-amba")


def edu(board):
    """QEMU's edu device (1234:11e8) on PCI."""
    for name in board.listdir("/sys/bus/pci/devices"):
        base = f"/sys/bus/pci/devices/{name}"
        if (board.sysfs_read(f"{base}/vendor").strip(), board.sysfs_read(f"{base}/device").strip()) == \
                ("0x1234", "0x11e8"):
            return Target("pci", name, "vfio-pci")
    raise AssertionError("no edu (1234:11e8) on the PCI bus")


def bind(board, target):
    """driver_override, unbind the current driver, drivers_probe: returns the IOMMU group number."""
    board.sysfs_write(f"{target.sysfs}/driver_override", target.driver)
    if "driver" in board.listdir(target.sysfs):
        if posixpath.basename(board.readlink(f"{target.sysfs}/driver")) == target.driver:
            return group_of(board, target)
        board.sysfs_write(f"{target.sysfs}/driver/unbind", target.name)
    board.sysfs_write(f"/sys/bus/{target.bus}/drivers_probe", target.name)
    assert posixpath.basename(board.readlink(f"{target.sysfs}/driver")) == target.driver
    return group_of(board, target)


def group_of(board, target):
    return posixpath.basename(board.readlink(f"{target.sysfs}/iommu_group"))


class Session:
    """Container, group and (optionally) device fds for one target; closes them in reverse."""

    def __init__(self, board, target, iommu=U.VFIO_TYPE1v2_IOMMU, device=True):
        self.board, self.target = board, target
        self.group_id = bind(board, target)
        self.fds = []
        self.container = self._keep(board.open("/dev/vfio/vfio", os.O_RDWR))
        self.group = self._keep(board.open(f"/dev/vfio/{self.group_id}", os.O_RDWR))
        self.device = None
        if iommu is not None:
            board.ioctl(self.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
            board.ioctl(self.container, U.VFIO_SET_IOMMU, iommu)
            if device:
                self.device = self._keep(board.ioctl(self.group, U.VFIO_GROUP_GET_DEVICE_FD,
                                                     target.name.encode()))

    def _keep(self, fd):
        self.fds.append(fd)
        return fd

    def close(self):
        for fd in reversed(self.fds):
            try:
                self.board.close(fd)
            except OSError:
                pass
        self.fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def dma_map(board, container, vaddr, iova, size, flags=U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE,
            argsz=None):
    arg = U.vfio_iommu_type1_dma_map(flags=flags, vaddr=vaddr, iova=iova, size=size)
    if argsz is not None:
        arg.argsz = argsz
    return board.ioctl(container, U.VFIO_IOMMU_MAP_DMA, arg)


def dma_unmap(board, container, iova, size, flags=0):
    arg = U.vfio_iommu_type1_dma_unmap(flags=flags, iova=iova, size=size)
    board.ioctl(container, U.VFIO_IOMMU_UNMAP_DMA, arg)
    return arg.size


def iommu_info(board, container, argsz=4096):
    """VFIO_IOMMU_GET_INFO with room for the capabilities: (header, raw bytes)."""
    raw = (ctypes.c_uint8 * argsz)()
    ctypes.c_uint32.from_buffer(raw).value = argsz
    board.ioctl(container, U.VFIO_IOMMU_GET_INFO, raw)
    return U.vfio_iommu_type1_info.from_buffer_copy(bytes(raw)), bytes(raw)


def iova_ranges(raw, header):
    """Walk the capability chain to IOVA_RANGE: [(start, end)]."""
    cap = header.cap_offset
    while cap:
        cap_id, _version, nxt = struct.unpack_from("<HHI", raw, cap)
        if cap_id == U.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
            nr = struct.unpack_from("<I", raw, cap + 8)[0]
            return [struct.unpack_from("<QQ", raw, cap + 16 + 16 * i) for i in range(nr)]
        cap = nxt
    raise AssertionError("no IOVA_RANGE capability in the chain")


# --- the original user-space PL330 VFIO test, step by step -----------------------------------------
def pl330_user_space_flow(board, target=None):
    """Find the PL330, bind it to vfio-amba, container, group, device, regions, mmap, IDs, DMA
    mapping, eventfd IRQ: what the Virtual Open Systems PL330 VFIO test did, on today's API."""
    target = target or pl330(board)
    # 1. The device and its host driver, as sysfs shows them.
    assert "driver_override" in board.listdir(target.sysfs)
    group_id = bind(board, target)
    assert group_id in board.listdir("/dev/vfio")
    with Session(board, target, iommu=None) as s:
        # 2. Container and group.
        assert board.ioctl(s.container, U.VFIO_GET_API_VERSION) == U.VFIO_API_VERSION
        assert board.ioctl(s.container, U.VFIO_CHECK_EXTENSION, U.VFIO_TYPE1_IOMMU) == 1
        status = U.vfio_group_status()
        board.ioctl(s.group, U.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == U.VFIO_GROUP_FLAGS_VIABLE
        board.ioctl(s.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(s.container))
        board.ioctl(s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1_IOMMU)
        board.ioctl(s.group, U.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == U.VFIO_GROUP_FLAGS_VIABLE | U.VFIO_GROUP_FLAGS_CONTAINER_SET
        # 3. The device: one MMIO region, an AMBA device, IRQs.
        device = s._keep(board.ioctl(s.group, U.VFIO_GROUP_GET_DEVICE_FD, target.name.encode()))
        info = U.vfio_device_info()
        board.ioctl(device, U.VFIO_DEVICE_GET_INFO, info)
        assert info.flags & U.VFIO_DEVICE_FLAGS_AMBA and not info.flags & U.VFIO_DEVICE_FLAGS_RESET
        assert info.num_regions == 1 and info.num_irqs >= 1
        region = U.vfio_region_info(index=0)
        board.ioctl(device, U.VFIO_DEVICE_GET_REGION_INFO, region)
        assert region.offset == U.region_offset(0) and region.size == 0x1000
        assert region.flags == U.VFIO_REGION_INFO_FLAG_READ | U.VFIO_REGION_INFO_FLAG_WRITE | \
            U.VFIO_REGION_INFO_FLAG_MMAP
        # 4. mmap and the IDs: PrimeCell 0xB105F00D, peripheral ID 0x30 0x13 0x24 0x00.
        regs = board.mmap(device, region.size, region.offset)
        cell_id = sum((regs.read32(0xFF0 + 4 * i) & 0xFF) << (8 * i) for i in range(4))
        assert cell_id == PRIMECELL_ID
        assert [regs.read32(0xFE0 + 4 * i) & 0xFF for i in range(4)] == PL330_PERIPH_ID_WORDS
        # ... and the same words through read() at the region's offset.
        assert struct.unpack("<4I", board.read(device, 16, region.offset + 0xFF0)) == (0x0D, 0xF0, 0x05, 0xB1)
        # 5. A DMA buffer mapped at an IOVA, then unmapped.
        buf = board.alloc(0x10000)
        dma_map(board, s.container, buf.vaddr, IOVA, 0x10000)
        assert dma_unmap(board, s.container, IOVA, 0x10000) == 0x10000
        # 6. Interrupts: level lines are EVENTFD|MASKABLE|AUTOMASKED, one per index.
        irq = U.vfio_irq_info(index=0)
        board.ioctl(device, U.VFIO_DEVICE_GET_IRQ_INFO, irq)
        assert irq.count == 1
        assert irq.flags == U.VFIO_IRQ_INFO_EVENTFD | U.VFIO_IRQ_INFO_MASKABLE | U.VFIO_IRQ_INFO_AUTOMASKED
        efd = s._keep(board.eventfd())
        board.ioctl(device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [efd]))
        # A loopback trigger (DATA_NONE) fires the handler: the eventfd counts, the line automasks.
        board.ioctl(device, U.VFIO_DEVICE_SET_IRQS, U.vfio_irq_set(
            flags=U.VFIO_IRQ_SET_DATA_NONE | U.VFIO_IRQ_SET_ACTION_TRIGGER, index=0, start=0, count=1))
        assert board.poll([efd], 1000) == [efd]
        assert struct.unpack("<Q", board.read(efd, 8))[0] == 1
        board.ioctl(device, U.VFIO_DEVICE_SET_IRQS, U.vfio_irq_set(
            flags=U.VFIO_IRQ_SET_DATA_NONE | U.VFIO_IRQ_SET_ACTION_UNMASK, index=0, start=0, count=1))
        board.ioctl(device, U.VFIO_DEVICE_SET_IRQS, U.vfio_irq_set(
            flags=U.VFIO_IRQ_SET_DATA_NONE | U.VFIO_IRQ_SET_ACTION_TRIGGER, index=0, start=0, count=0))
        regs.close()


# --- misuse: containers ----------------------------------------------------------------------------
def container_misuse(board, target):
    bind(board, target)
    container = board.open("/dev/vfio/vfio", os.O_RDWR)
    try:
        # vfio_container_ioctl_check_extension: unknown extensions are 0, not an error.
        assert board.ioctl(container, U.VFIO_CHECK_EXTENSION, 0x7FFF) == 0
        assert board.ioctl(container, U.VFIO_CHECK_EXTENSION, U.VFIO_TYPE1v2_IOMMU) == 1
        # vfio_ioctl_set_iommu: no group in the container yet.
        expect_errno(errno.EINVAL, board.ioctl, container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
        # vfio_fops_unl_ioctl: no IOMMU driver set, so backend ioctls are EINVAL.
        buf = board.alloc(PAGE)
        expect_errno(errno.EINVAL, dma_map, board, container, buf.vaddr, IOVA, PAGE)
        expect_errno(errno.EINVAL, board.ioctl, container, U.VFIO_IOMMU_GET_INFO, U.vfio_iommu_type1_info())
    finally:
        board.close(container)


def set_iommu_misuse(board, target):
    with Session(board, target, iommu=None) as s:
        board.ioctl(s.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(s.container))
        # vfio_ioctl_set_iommu: no backend takes type 0x7F: ret stays -ENODEV.
        expect_errno(errno.ENODEV, board.ioctl, s.container, U.VFIO_SET_IOMMU, 0x7F)
        board.ioctl(s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
        # vfio_ioctl_set_iommu: an IOMMU driver is already set.
        expect_errno(errno.EINVAL, board.ioctl, s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
        # vfio_iommu_type1_ioctl: unknown request.
        expect_errno(errno.ENOTTY, board.ioctl, s.container, U.VFIO_DEVICE_GET_INFO, U.vfio_device_info())


# --- misuse: groups --------------------------------------------------------------------------------
def group_misuse(board, target):
    group_id = bind(board, target)
    with Session(board, target, iommu=None) as s:
        # vfio_group_fops_open: one open file per group.
        expect_errno(errno.EBUSY, board.open, f"/dev/vfio/{group_id}", os.O_RDWR)
        # vfio_group_ioctl_get_device_fd -> vfio_device_open_file: no container/IOMMU yet.
        expect_errno(errno.EINVAL, board.ioctl, s.group, U.VFIO_GROUP_GET_DEVICE_FD, target.name.encode())
        # vfio_group_ioctl_unset_container: nothing to unset.
        expect_errno(errno.EINVAL, board.ioctl, s.group, U.VFIO_GROUP_UNSET_CONTAINER)
        # vfio_group_ioctl_set_container: fdget fails on a closed fd.
        closed = board.eventfd()
        board.close(closed)
        expect_errno(errno.EBADF, board.ioctl, s.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(closed))
        # ... and the fd is open but not a container (nor an iommufd).
        efd = s._keep(board.eventfd())
        e = expect_errno_any((errno.EBADFD, errno.EINVAL), board.ioctl, s.group, U.VFIO_GROUP_SET_CONTAINER,
                             ctypes.c_int32(efd))
        del e
        board.ioctl(s.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(s.container))
        # vfio_group_ioctl_set_container: already in a container.
        expect_errno(errno.EINVAL, board.ioctl, s.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(s.container))
        board.ioctl(s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
        # vfio_device_get_from_name: no such device in this group.
        expect_errno(errno.ENODEV, board.ioctl, s.group, U.VFIO_GROUP_GET_DEVICE_FD, b"no-such-device")
        device = s._keep(board.ioctl(s.group, U.VFIO_GROUP_GET_DEVICE_FD, target.name.encode()))
        # vfio_group_ioctl_unset_container: a device fd is open.
        expect_errno(errno.EBUSY, board.ioctl, s.group, U.VFIO_GROUP_UNSET_CONTAINER)
        board.close(device)
        s.fds.remove(device)
        board.ioctl(s.group, U.VFIO_GROUP_UNSET_CONTAINER)
        status = U.vfio_group_status()
        board.ioctl(s.group, U.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == U.VFIO_GROUP_FLAGS_VIABLE
        # vfio_group_ioctl_get_status: argsz smaller than the struct.
        expect_errno(errno.EINVAL, board.ioctl, s.group, U.VFIO_GROUP_GET_STATUS, U.vfio_group_status(argsz=4))
        # vfio_group_fops_unl_ioctl: not a group ioctl.
        expect_errno(errno.ENOTTY, board.ioctl, s.group, U.VFIO_GET_API_VERSION)


def expect_errno_any(expected, call, *args):
    """Like expect_errno, for the few answers that changed between kernel versions."""
    try:
        result = call(*args)
    except OSError as e:
        assert e.errno in expected, f"{call.__name__}{args!r}: {errno.errorcode.get(e.errno)} not in " \
                                    f"{[errno.errorcode[x] for x in expected]}"
        return e
    raise AssertionError(f"{call.__name__}{args!r} returned {result!r}")


# --- misuse: DMA mappings --------------------------------------------------------------------------
def map_dma_misuse(board, target):
    with Session(board, target, device=False) as s:
        c = s.container
        buf = board.alloc(0x10000)
        rw = U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE
        # vfio_dma_do_map: size 0, or size/iova/vaddr not multiples of the smallest IOMMU page.
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, IOVA, 0)
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, IOVA, 0x800)
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, IOVA + 0x10, PAGE)
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr + 0x10, IOVA, PAGE)
        # vfio_dma_do_map: neither READ nor WRITE.
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, IOVA, PAGE, flags=0)
        # vfio_iommu_type1_map_dma: unknown flag bits, or argsz short of the struct.
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, IOVA, PAGE, flags=rw | 0x100)
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, IOVA, PAGE, argsz=16)
        # vfio_dma_do_map: the IOVA range wraps around.
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, (1 << 64) - PAGE, 2 * PAGE)
        # vfio_iommu_iova_dma_valid: the MSI window is reserved; beyond the aperture is invalid.
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, MSI_WINDOW[0], PAGE)
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, MSI_WINDOW[0] - PAGE, 2 * PAGE)
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, 1 << 60, PAGE)
        # vfio_pin_map_dma -> pin_user_pages: the vaddr is not mapped in the process.
        expect_errno(errno.EFAULT, dma_map, board, c, 0x1000, IOVA, PAGE)
        # A good mapping, then overlaps of it: vfio_find_dma finds one, -EEXIST.
        dma_map(board, c, buf.vaddr, IOVA, 0x4000)
        expect_errno(errno.EEXIST, dma_map, board, c, buf.vaddr, IOVA, 0x4000)
        expect_errno(errno.EEXIST, dma_map, board, c, buf.vaddr, IOVA + 0x3000, 0x2000)
        expect_errno(errno.EEXIST, dma_map, board, c, buf.vaddr, IOVA - PAGE, 0x2000)
        dma_map(board, c, buf.vaddr + 0x4000, IOVA + 0x4000, 0x4000)       # adjacent is fine
        assert dma_unmap(board, c, IOVA, 0x8000) == 0x8000


def unmap_dma_misuse(board, target):
    with Session(board, target, device=False) as s:    # type1v2
        c = s.container
        buf = board.alloc(0x10000)
        dma_map(board, c, buf.vaddr, IOVA, 0x4000)
        # vfio_dma_do_unmap: iova or size not page aligned, size 0.
        expect_errno(errno.EINVAL, dma_unmap, board, c, IOVA + 0x10, PAGE)
        expect_errno(errno.EINVAL, dma_unmap, board, c, IOVA, 0x10)
        expect_errno(errno.EINVAL, dma_unmap, board, c, IOVA, 0)
        # vfio_dma_do_unmap (v2): a range may not split a mapping, at either end.
        expect_errno(errno.EINVAL, dma_unmap, board, c, IOVA + PAGE, PAGE)
        expect_errno(errno.EINVAL, dma_unmap, board, c, IOVA, PAGE)
        # UNMAP_FLAG_ALL wants iova = size = 0.
        expect_errno(errno.EINVAL, dma_unmap, board, c, IOVA, 0x4000, flags=U.VFIO_DMA_UNMAP_FLAG_ALL)
        # Nothing mapped there: success, size 0.
        assert dma_unmap(board, c, 0x40000000, PAGE) == 0
        # A range covering the whole mapping (and more) unmaps it.
        assert dma_unmap(board, c, IOVA - 0x10000, 0x20000) == 0x4000
        dma_map(board, c, buf.vaddr, IOVA, 0x4000)
        dma_map(board, c, buf.vaddr + 0x4000, IOVA + 0x10000, 0x4000)
        assert dma_unmap(board, c, 0, 0, flags=U.VFIO_DMA_UNMAP_FLAG_ALL) == 0x8000


def unmap_dma_type1_v1(board, target):
    """Type1 (v1) semantics: a range starting inside a mapping unmaps nothing, and succeeds."""
    with Session(board, target, iommu=U.VFIO_TYPE1_IOMMU, device=False) as s:
        c = s.container
        buf = board.alloc(0x10000)
        dma_map(board, c, buf.vaddr, IOVA, 0x4000)
        assert dma_unmap(board, c, IOVA + PAGE, PAGE) == 0
        assert dma_unmap(board, c, IOVA, PAGE) == 0x4000       # covers the first IOVA: all of it


def iommu_info_argsz(board, target):
    with Session(board, target, device=False) as s:
        c = s.container
        # vfio_iommu_type1_get_info: argsz short of iova_pgsizes.
        expect_errno(errno.EINVAL, board.ioctl, c, U.VFIO_IOMMU_GET_INFO, U.vfio_iommu_type1_info(argsz=8))
        # Enough for the header but not the caps: CAPS set, argsz raised to what is needed, no offset.
        info = U.vfio_iommu_type1_info(argsz=16)
        board.ioctl(c, U.VFIO_IOMMU_GET_INFO, info)
        assert info.flags == U.VFIO_IOMMU_INFO_PGSIZES | U.VFIO_IOMMU_INFO_CAPS
        assert info.argsz > ctypes.sizeof(U.vfio_iommu_type1_info) and info.cap_offset == 0
        assert info.iova_pgsizes & PAGE
        needed = info.argsz
        header, raw = iommu_info(board, c, needed)
        assert header.cap_offset == ctypes.sizeof(U.vfio_iommu_type1_info) and header.argsz == needed
        ranges = iova_ranges(raw, header)
        assert ranges[0] == (0, MSI_WINDOW[0] - 1) and ranges[1][0] == MSI_WINDOW[1] + 1


# --- misuse: devices -------------------------------------------------------------------------------
def device_info_misuse(board, target):
    with Session(board, target) as s:
        d = s.device
        info = U.vfio_device_info()
        board.ioctl(d, U.VFIO_DEVICE_GET_INFO, info)
        # GET_INFO / GET_REGION_INFO / GET_IRQ_INFO: argsz short of the struct is EINVAL.
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_GET_INFO, U.vfio_device_info(argsz=8))
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_GET_REGION_INFO, U.vfio_region_info(argsz=16))
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_GET_IRQ_INFO, U.vfio_irq_info(argsz=8))
        # ... and an index past the device's regions or IRQs is EINVAL.
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_GET_REGION_INFO,
                     U.vfio_region_info(index=info.num_regions))
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_GET_IRQ_INFO, U.vfio_irq_info(index=info.num_irqs))
        # An ioctl the device does not have.
        expect_errno(errno.ENOTTY, board.ioctl, d, U.VFIO_GROUP_GET_STATUS, U.vfio_group_status())


def region_access_misuse(board, target):
    with Session(board, target) as s:
        d = s.device
        region = U.vfio_region_info(index=0)
        board.ioctl(d, U.VFIO_DEVICE_GET_REGION_INFO, region)
        # mmap: beyond the region, or at an offset that is not page aligned (the mmap syscall).
        expect_errno(errno.EINVAL, board.mmap, d, region.size + PAGE, region.offset)
        expect_errno(errno.EINVAL, board.mmap, d, PAGE, region.offset + region.size)
        expect_errno(errno.EINVAL, board.mmap, d, PAGE, region.offset + 0x10)
        # read/write at an offset past the region (vfio_platform_read / vfio_pci_bar_rw).
        expect_errno(errno.EINVAL, board.read, d, 4, region.offset + region.size)
        # No region 40 at all.
        expect_errno(errno.EINVAL, board.read, d, 4, U.region_offset(40))
        # A read running past the end is cut short at the end.
        assert len(board.read(d, 16, region.offset + region.size - 8)) == 8


def irq_misuse(board, target):
    with Session(board, target) as s:
        d = s.device
        info = U.vfio_device_info()
        board.ioctl(d, U.VFIO_DEVICE_GET_INFO, info)
        efd = s._keep(board.eventfd())
        trigger = U.VFIO_IRQ_SET_DATA_EVENTFD | U.VFIO_IRQ_SET_ACTION_TRIGGER
        # vfio_set_irqs_validate_and_prepare: index past the IRQs, two DATA flags, unknown flag bits,
        # start+count past the index's count, argsz too short for the data.
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(info.num_irqs, [efd]))
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(
            0, [efd], flags=trigger | U.VFIO_IRQ_SET_DATA_BOOL))
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(
            0, [efd], flags=trigger | 0x1000))
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [efd] * 64))
        short = U.irq_set_eventfds(0, [efd])
        short.argsz = ctypes.sizeof(U.vfio_irq_set) + 2
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, short)
        # No action flag, or two: no handler is chosen (-ENOTTY), in both vfio-platform and vfio-pci.
        expect_errno(errno.ENOTTY, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(
            0, [efd], flags=U.VFIO_IRQ_SET_DATA_EVENTFD))
        expect_errno(errno.ENOTTY, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(
            0, [efd], flags=trigger | U.VFIO_IRQ_SET_ACTION_MASK))
        # eventfd_ctx_fdget: a closed fd is EBADF; an fd that is not an eventfd is EINVAL.
        closed = board.eventfd()
        board.close(closed)
        expect_errno(errno.EBADF, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [closed]))
        expect_errno(errno.EINVAL, board.ioctl, d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [s.container]))
        # A good trigger, then disabled with DATA_NONE and count 0.
        board.ioctl(d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [efd]))
        board.ioctl(d, U.VFIO_DEVICE_SET_IRQS, U.vfio_irq_set(
            flags=U.VFIO_IRQ_SET_DATA_NONE | U.VFIO_IRQ_SET_ACTION_TRIGGER, index=0, start=0, count=0))


def closed_fds(board, target):
    with Session(board, target) as s:
        d = s.device
    # Every fd of the session is closed now.
    expect_errno(errno.EBADF, board.ioctl, d, U.VFIO_DEVICE_GET_INFO, U.vfio_device_info())
    expect_errno(errno.EBADF, board.ioctl, s.container, U.VFIO_GET_API_VERSION)
    expect_errno(errno.EBADF, board.read, d, 4, 0)
    expect_errno(errno.EBADF, board.close, d)


def wrong_arg_types(board, target):
    """Python-level mistakes are TypeErrors, before any system call."""
    with Session(board, target) as s:
        for bad in (1.5, None, [1, 2], object()):
            try:
                board.ioctl(s.device, U.VFIO_DEVICE_GET_INFO, bad)
            except TypeError:
                continue
            raise AssertionError(f"ioctl with arg {bad!r} did not raise TypeError")


def sysfs_garbage(board, target):
    bind(board, target)
    # drivers_probe_store / unbind_store / bind_store: no such device (bus_find_device_by_name).
    expect_errno(errno.ENODEV, board.sysfs_write, f"/sys/bus/{target.bus}/drivers_probe", "no-such-device")
    driver_dir = f"/sys/bus/{target.bus}/drivers/{target.driver}"
    expect_errno(errno.ENODEV, board.sysfs_write, f"{driver_dir}/unbind", "no-such-device")
    expect_errno(errno.ENODEV, board.sysfs_write, f"{driver_dir}/bind", "no-such-device")
    # bind_store: __driver_probe_device finds the device already bound.
    expect_errno(errno.EBUSY, board.sysfs_write, f"{driver_dir}/bind", target.name)
    # kernfs_fop_open: a read-only attribute cannot be opened for writing, even by root.
    # (amba devices have no modalias attribute: their read-only `id` stands in.)
    read_only = "id" if target.bus == "amba" else "modalias"
    expect_errno(errno.EACCES, board.sysfs_write, f"{target.sysfs}/{read_only}", "x")
    # sysfs_write opens without O_CREAT: a file sysfs does not have is ENOENT.
    expect_errno(errno.ENOENT, board.sysfs_write, f"{target.sysfs}/no_such_attribute", "x")
    # Unknown paths.
    expect_errno(errno.ENOENT, board.sysfs_read, f"/sys/bus/{target.bus}/devices/no-such-device/driver_override")
    expect_errno(errno.ENOENT, board.listdir, "/sys/bus/no-such-bus")
    expect_errno(errno.ENOENT, board.open, "/dev/vfio/9999", os.O_RDWR)
    # driver_override takes any name; the device's binding does not change until a probe.
    board.sysfs_write(f"{target.sysfs}/driver_override", "no-such-driver\n")
    assert board.sysfs_read(f"{target.sysfs}/driver_override") == "no-such-driver\n"
    board.sysfs_write(f"{target.sysfs}/driver_override", target.driver)
    assert posixpath.basename(board.readlink(f"{target.sysfs}/driver")) == target.driver


def mapping_keeps_the_device_open(board, target):
    """A live mmap holds the device file, and the device file holds the group (seen on 6.1)."""
    with Session(board, target) as s:
        region = U.vfio_region_info(index=0)
        board.ioctl(s.device, U.VFIO_DEVICE_GET_REGION_INFO, region)
        regs = board.mmap(s.device, PAGE, region.offset)
        group_id = s.group_id
    # Every fd is closed, but the mapping still holds the device, so the group is still open.
    expect_errno(errno.EBUSY, board.open, f"/dev/vfio/{group_id}", os.O_RDWR)
    regs.close()
    board.close(board.open(f"/dev/vfio/{group_id}", os.O_RDWR))


def update_vaddr(board, target):
    """VFIO_UPDATE_VADDR: invalidate a mapping's vaddr (UNMAP FLAG_VADDR), then give a new one."""
    with Session(board, target, device=False) as s:
        c = s.container
        buf = board.alloc(0x2000)
        assert board.ioctl(c, U.VFIO_CHECK_EXTENSION, U.VFIO_UPDATE_VADDR) == 1
        # vfio_dma_do_map: no mapping there (-ENOENT), or one whose vaddr is still valid (-EINVAL).
        expect_errno(errno.ENOENT, dma_map, board, c, buf.vaddr, IOVA, PAGE, flags=U.VFIO_DMA_MAP_FLAG_VADDR)
        dma_map(board, c, buf.vaddr, IOVA, PAGE)
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, IOVA, PAGE, flags=U.VFIO_DMA_MAP_FLAG_VADDR)
        # READ/WRITE together with VADDR is EINVAL.
        expect_errno(errno.EINVAL, dma_map, board, c, buf.vaddr, IOVA, PAGE,
                     flags=U.VFIO_DMA_MAP_FLAG_VADDR | U.VFIO_DMA_MAP_FLAG_READ)
        assert dma_unmap(board, c, IOVA, PAGE, flags=U.VFIO_DMA_UNMAP_FLAG_VADDR) == PAGE
        dma_map(board, c, buf.vaddr + PAGE, IOVA, PAGE, flags=U.VFIO_DMA_MAP_FLAG_VADDR)
        assert dma_unmap(board, c, IOVA, PAGE) == PAGE


def edu_intx_unmask_through_an_eventfd(board, target):
    """INTx the way a VMM wires it (KVM's resamplefd): a trigger eventfd, and an unmask eventfd that
    user space writes to when the guest has handled the interrupt. edu raises INTx (no MSI enabled)
    with IRQ_RAISE (0x60) and lowers it with IRQ_ACK (0x64); vfio-pci masks INTx as it fires
    (vfio_intx_handler) until the unmask eventfd is signalled (vfio_pci_intx_unmask_handler)."""
    from vfiolab.drivers.edu import IRQ_ACK as ack_irq, IRQ_RAISE as raise_irq
    with Session(board, target) as s:
        d = s.device
        bar0 = U.vfio_region_info(index=U.VFIO_PCI_BAR0_REGION_INDEX)
        board.ioctl(d, U.VFIO_DEVICE_GET_REGION_INFO, bar0)
        regs = board.mmap(d, 0x1000, bar0.offset)
        trigger, unmask = s._keep(board.eventfd()), s._keep(board.eventfd())
        board.ioctl(d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(U.VFIO_PCI_INTX_IRQ_INDEX, [trigger]))
        board.ioctl(d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(
            U.VFIO_PCI_INTX_IRQ_INDEX, [unmask],
            flags=U.VFIO_IRQ_SET_DATA_EVENTFD | U.VFIO_IRQ_SET_ACTION_UNMASK))

        def fired(timeout_ms):
            if not board.poll([trigger], timeout_ms):
                return 0
            return int.from_bytes(board.read(trigger, 8), "little")

        try:
            regs.write32(raise_irq, 1)
            assert fired(5000) == 1, "edu's INTx did not reach the trigger eventfd"
            regs.write32(ack_irq, 1)             # the line drops; INTx stays masked
            regs.write32(raise_irq, 2)           # the line rises again: masked, so nothing
            assert fired(300) == 0, "INTx fired again before it was unmasked"
            board.write(unmask, (1).to_bytes(8, "little"))   # "the guest handled it"
            assert fired(5000) == 1, "writing the unmask eventfd did not unmask INTx"
            regs.write32(ack_irq, 2)
        finally:
            regs.close()
        board.ioctl(d, U.VFIO_DEVICE_SET_IRQS, U.vfio_irq_set(
            flags=U.VFIO_IRQ_SET_DATA_NONE | U.VFIO_IRQ_SET_ACTION_TRIGGER,
            index=U.VFIO_PCI_INTX_IRQ_INDEX, start=0, count=0))


def eventfd_counter(board, target):
    """A board eventfd is a counter: writes add, a read returns the sum and clears it (EAGAIN when
    zero with EFD_NONBLOCK), and 0xffffffffffffffff is not a value one may write (eventfd_write)."""
    efd = board.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        assert board.write(efd, (5).to_bytes(8, "little")) == 8
        assert board.write(efd, (2).to_bytes(8, "little")) == 8
        assert board.poll([efd], 0) == [efd]
        assert int.from_bytes(board.read(efd, 8), "little") == 7
        expect_errno(errno.EAGAIN, board.read, efd, 8)
        expect_errno(errno.EINVAL, board.write, efd, b"\xff" * 8)
        # The counter holds at most 0xfffffffffffffffe: a write past it would block (EAGAIN here).
        assert board.write(efd, (0xfffffffffffffffe).to_bytes(8, "little")) == 8
        expect_errno(errno.EAGAIN, board.write, efd, (1).to_bytes(8, "little"))
        assert int.from_bytes(board.read(efd, 8), "little") == 0xfffffffffffffffe
        expect_errno(errno.EINVAL, board.write, efd, b"\x01\x00")
    finally:
        board.close(efd)


ALL = [container_misuse, set_iommu_misuse, group_misuse, map_dma_misuse, unmap_dma_misuse,
       unmap_dma_type1_v1, iommu_info_argsz, device_info_misuse, region_access_misuse, irq_misuse,
       closed_fds, wrong_arg_types, sysfs_garbage, mapping_keeps_the_device_open, update_vaddr,
       eventfd_counter]
PL330_ONLY = [pl330_user_space_flow]
EDU_ONLY = [edu_intx_unmask_through_an_eventfd]


# --- MSI on ARM: the doorbell, the message, and forging an MSI with the device's own DMA ----------
# Where QEMU 7.2 differs from real hardware (REFERENCE.md section 11): its ordinary PCI DMA carries
# no requester ID, so a DMA write that reaches GITS_TRANSLATER arrives as DeviceID 0, which no MAPD
# mapped: the ITS drops it and nothing is raised. On hardware (and on the sim, which models
# hardware) the ITS sees the writer's own DeviceID and the forged write raises the writer's own LPI.
QEMU_ITS_FORGED_WRITE_IS_DEVICE_ID_0 = True
UNSAFE_PARAM = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"
NO_REMAPPING = ("vfio_iommu_type1_attach_group: No interrupt remapping support.  Use the module "
                "param \"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this platform")
MSI_CAP = 0x40
SMMU_EVTQ = "arm-smmu-v3-evtq"


def _dmesg(board):
    log = board.dmesg()
    return log if isinstance(log, str) else "\n".join(log)


def msi_controller(board):
    """("v2m", first SPI, last SPI) from GICv2m's boot line, else ("its", None, None)."""
    import re
    found = re.search(r"GICv2m: range\[mem [^\]]*\], SPI\[(\d+):(\d+)\]", _dmesg(board))
    return ("v2m", int(found[1]), int(found[2])) if found else ("its", None, None)


def proc_interrupts(board):
    """{handler name: (count on all CPUs, chip, hwirq, Edge/Level)} from /proc/interrupts."""
    lines = board.sysfs_read("/proc/interrupts").splitlines()
    cpus = len(lines[0].split())
    out = {}
    for line in lines[1:]:
        head, _, rest = line.partition(":")
        words = rest.split()
        if not head.strip().isdigit() or len(words) < cpus + 4:
            continue
        counts, (chip, hwirq, kind), action = words[:cpus], words[cpus:cpus + 3], " ".join(words[cpus + 3:])
        out[action] = (sum(map(int, counts)), chip, int(hwirq), kind)
    return out


def msi_message(board, target):
    """The MSI address and data the kernel programmed into the function (sysfs config, not VFIO's
    virtualised copy): (address, data)."""
    fd = board.open(f"{target.sysfs}/config", os.O_RDONLY)
    try:
        cap = board.read(fd, 16, MSI_CAP)
    finally:
        board.close(fd)
    lo, hi, data = struct.unpack_from("<IIH", cap, 4)
    return hi << 32 | lo, data


class EduMsi:
    """edu through VFIO with MSI on an eventfd, its DMA engine, and a mapped page at IOVA."""

    def __init__(self, board, target):
        from vfiolab.drivers import edu as E
        self.E, self.board, self.target = E, board, target
        self.s = Session(board, target)
        d = self.s.device
        config = U.region_offset(U.VFIO_PCI_CONFIG_REGION_INDEX)
        command = int.from_bytes(board.read(d, 2, config + E.PCI_COMMAND), "little")
        board.write(d, (command | 0x6).to_bytes(2, "little"), config + E.PCI_COMMAND)
        self.msi = self.s._keep(board.eventfd())
        board.ioctl(d, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(U.VFIO_PCI_MSI_IRQ_INDEX, [self.msi]))
        bar0 = U.vfio_region_info(index=U.VFIO_PCI_BAR0_REGION_INDEX)
        board.ioctl(d, U.VFIO_DEVICE_GET_REGION_INFO, bar0)
        self.regs = board.mmap(d, 0x1000, bar0.offset)
        self.buf = board.alloc(PAGE)
        dma_map(board, self.s.container, self.buf.vaddr, IOVA, PAGE)
        self.action = f"vfio-msi[0]({target.name})"
        # How long to wait before deciding that no MSI came: the sim delivers at once.
        self.quiet_ms = 0 if board.kind == "sim" else 1000

    def dma(self, src, dst, count, to_ram):
        """One edu transfer without its completion interrupt; waits until it is done."""
        E, regs = self.E, self.regs
        regs.write64(E.DMA_SRC, src)
        regs.write64(E.DMA_DST, dst)
        regs.write64(E.DMA_COUNT, count)
        regs.write64(E.DMA_CMD, E.CMD_START | (E.CMD_TO_RAM if to_ram else 0))
        for _ in range(5000):
            if not regs.read64(E.DMA_CMD) & E.CMD_START:
                return
            self.board.poll([self.msi], 1)
        raise AssertionError("edu's DMA did not finish within 5 s")

    def write_by_dma(self, iova, value):
        """edu's DMA engine writes the 4 bytes of value at iova: RAM -> edu's buffer -> iova."""
        self.buf[0:4] = value.to_bytes(4, "little")
        self.dma(IOVA, self.E.BUFFER, 4, to_ram=False)
        self.dma(self.E.BUFFER, iova, 4, to_ram=True)

    def msis(self, timeout_ms):
        if self.board.poll([self.msi], timeout_ms) != [self.msi]:
            return 0
        return int.from_bytes(self.board.read(self.msi, 8), "little")

    def close(self):
        self.regs.close()
        self.s.close()


def msi_message_and_doorbell(board, target):
    """Enabling MSI: the kernel allocates the interrupt (an LPI behind MAPD/MAPTI on the ITS, an SPI
    on GICv2m), maps the doorbell into the device's domain at the start of the MSI window
    (iommu_dma_prepare_msi) and programs address = that IOVA + the doorbell's offset (0x040 for both
    GITS_TRANSLATER and MSI_SETSPI_NS), data = EventID 0 (ITS) or the SPI (v2m). The window is a hole
    in IOVA_RANGE and MAP_DMA there is EINVAL; the doorbell page reads 0 by DMA (the SMMU cannot map
    write-only); the next page of the window is not mapped: a DMA there is an SMMU fault."""
    kind, first, last = msi_controller(board)
    edu = EduMsi(board, target)
    try:
        address, data = msi_message(board, target)
        assert address == MSI_WINDOW[0] + 0x40, hex(address)
        if kind == "its":
            assert data == 0
        else:
            assert first <= data <= last, (data, first, last)
        count, chip, hwirq, edge = proc_interrupts(board)[edu.action]
        rid = int(target.name.split(":")[1], 16) << 8 | int(target.name[-4:-2], 16) << 3 | int(target.name[-1])
        assert (count, chip, hwirq, edge) == (0, "ITS-MSI" if kind == "its" else "MSI", rid << 11, "Edge")
        header, raw = iommu_info(board, edu.s.container)
        ranges = iova_ranges(raw, header)
        assert not any(lo <= address <= hi for lo, hi in ranges), "the doorbell IOVA is not in the hole"
        expect_errno(errno.EINVAL, dma_map, board, edu.s.container, edu.buf.vaddr, address & ~0xFFF, PAGE)
        # A real MSI arrives (edu's IRQ_RAISE sends its programmed message).
        edu.regs.write32(edu.E.IRQ_RAISE, 1)
        assert edu.msis(5000) == 1
        edu.regs.write32(edu.E.IRQ_ACK, 1)
        assert proc_interrupts(board)[edu.action][0] == 1
        # DMA read of the doorbell: no fault, 0.
        faults = len(board.iommu_faults())
        edu.buf[0:4] = b"\xa5" * 4
        edu.dma(address, edu.E.BUFFER, 4, to_ram=False)
        edu.dma(edu.E.BUFFER, IOVA, 4, to_ram=True)
        assert bytes(edu.buf[0:4]) == bytes(4) and len(board.iommu_faults()) == faults
        # The next page of the window: unmapped.
        edu.dma(edu.E.BUFFER, address + PAGE, 4, to_ram=True)
        import time
        deadline = time.monotonic() + 30
        while len(board.iommu_faults()) == faults and time.monotonic() < deadline:
            time.sleep(0.05)
        fault = board.iommu_faults()[-1]
        assert (fault.iova, fault.access) == (address + PAGE, "write")
    finally:
        edu.close()


def msi_forged_by_dma(board, target):
    """An MSI is only a DMA write to the doorbell, so edu's own DMA engine can forge one. GICv2m:
    the data is an SPI and the frame cannot tell who wrote it: edu raises its own SPI, and any
    other SPI in the frame (here the SMMU's event-queue interrupt, wired into the frame's range on
    virt); an INTID outside the range is ignored. ITS: the data is only an EventID and the DeviceID
    comes from the bus: edu reaches only its own events (on QEMU 7.2 not even those: see
    QEMU_ITS_FORGED_WRITE_IS_DEVICE_ID_0)."""
    kind, first, last = msi_controller(board)
    edu = EduMsi(board, target)
    try:
        address, data = msi_message(board, target)
        before = proc_interrupts(board)
        evtq = before[SMMU_EVTQ][2]

        def forge(value):
            start = proc_interrupts(board)
            edu.write_by_dma(address, value)
            got = edu.msis(edu.quiet_ms)
            end = proc_interrupts(board)
            return got, {k: end[k][0] - start[k][0] for k in (edu.action, SMMU_EVTQ)}

        if kind == "v2m":
            assert first <= evtq <= last, "the SMMU's SPI is not in the frame on this board"
            assert forge(data) == (1, {edu.action: 1, SMMU_EVTQ: 0})
            assert forge(evtq) == (0, {edu.action: 0, SMMU_EVTQ: 1})
            assert forge(first - 1) == (0, {edu.action: 0, SMMU_EVTQ: 0})
            assert forge(last + 1) == (0, {edu.action: 0, SMMU_EVTQ: 0})
        else:
            own = 0 if board.kind == "qemu" and QEMU_ITS_FORGED_WRITE_IS_DEVICE_ID_0 else 1
            assert forge(data) == (own, {edu.action: own, SMMU_EVTQ: 0})
            for value in (1, evtq, 8192):               # not edu's events: dropped
                assert forge(value) == (0, {edu.action: 0, SMMU_EVTQ: 0})
        assert board.iommu_faults()[-1:] == [] or board.iommu_faults()[-1].iova != address
    finally:
        edu.close()


def unsafe_interrupts_refused(board, target):
    """Without isolated MSIs (GICv2m) type1 refuses to attach the group (EPERM) and says why,
    unless vfio_iommu_type1's allow_unsafe_interrupts is set; with the ITS it attaches."""
    kind, _, _ = msi_controller(board)
    old = board.sysfs_read(UNSAFE_PARAM).strip()
    board.sysfs_write(UNSAFE_PARAM, "N")
    try:
        assert board.sysfs_read(UNSAFE_PARAM).strip() == "N"
        with Session(board, target, iommu=None) as s:
            board.ioctl(s.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(s.container))
            if kind == "v2m":
                expect_errno(errno.EPERM, board.ioctl, s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
                assert NO_REMAPPING in _dmesg(board)
            else:
                board.ioctl(s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
        board.sysfs_write(UNSAFE_PARAM, "Y")
        with Session(board, target, device=False):
            pass                                         # attaches on both
    finally:
        board.sysfs_write(UNSAFE_PARAM, old)


MSI_FORGING = [msi_message_and_doorbell, msi_forged_by_dma, unsafe_interrupts_refused]
