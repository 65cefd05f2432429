"""The VFIO user-space ABI: constants, ioctl numbers and structs of <linux/vfio.h>.

Names are exactly the header's, so a learner can read this next to the kernel source. This module is
the single source of truth for every board (sim, qemu, host); tests/test_uapi.py compiles a C probe
against the real header and compares every number and layout defined here.

Only the standard library is used: this module also runs inside the qemu board's guest.

Layout note: the header this was checked against is Debian 12's linux-libc-dev (Linux 6.1), where
struct vfio_device_info is 20 bytes. Linux 6.8 appended `__u32 pad` (24 bytes; commit a881b496941f
"vfio: align capability structures"); the kernel only requires argsz >= offsetofend(num_irqs),
so both sizes work against either kernel. tests/test_uapi.py also passes against Debian 13's
6.12 header (VFIOLAB_UAPI_INCLUDE), where that tail is the only difference.
"""
import ctypes

# --- ioctl encoding (include/uapi/asm-generic/ioctl.h) -------------------------------------------
_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE = 0


def _IO(type_, nr):
    """VFIO uses _IO (no direction, no size) for every ioctl: argsz inside the struct says the size."""
    return (_IOC_NONE << _IOC_DIRSHIFT) | (ord(type_) << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT)


# --- API version and extensions -------------------------------------------------------------------
VFIO_API_VERSION = 0

VFIO_TYPE1_IOMMU = 1
VFIO_SPAPR_TCE_IOMMU = 2
VFIO_TYPE1v2_IOMMU = 3
VFIO_DMA_CC_IOMMU = 4
VFIO_EEH = 5
VFIO_TYPE1_NESTING_IOMMU = 6
VFIO_SPAPR_TCE_v2_IOMMU = 7
VFIO_NOIOMMU_IOMMU = 8
VFIO_UNMAP_ALL = 9
VFIO_UPDATE_VADDR = 10

VFIO_TYPE = ';'
VFIO_BASE = 100

# --- ioctls ----------------------------------------------------------------------------------------
VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0)
VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1)
VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2)
VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3)
VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4)
VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5)
VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6)
VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7)
VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8)
VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9)
VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10)
VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11)
VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12)
VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13)
VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14)
VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15)
VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16)
VFIO_DEVICE_FEATURE = _IO(VFIO_TYPE, VFIO_BASE + 17)

# --- flags -----------------------------------------------------------------------------------------
VFIO_GROUP_FLAGS_VIABLE = 1 << 0
VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1

VFIO_DEVICE_FLAGS_RESET = 1 << 0
VFIO_DEVICE_FLAGS_PCI = 1 << 1
VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2
VFIO_DEVICE_FLAGS_AMBA = 1 << 3
VFIO_DEVICE_FLAGS_CCW = 1 << 4
VFIO_DEVICE_FLAGS_AP = 1 << 5
VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6
VFIO_DEVICE_FLAGS_CAPS = 1 << 7

VFIO_DEVICE_FEATURE_MASK = 0xFFFF
VFIO_DEVICE_FEATURE_GET = 1 << 16
VFIO_DEVICE_FEATURE_SET = 1 << 17
VFIO_DEVICE_FEATURE_PROBE = 1 << 18
VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0
VFIO_DEVICE_FEATURE_MIGRATION = 1

VFIO_DEVICE_API_PCI_STRING = "vfio-pci"
VFIO_DEVICE_API_PLATFORM_STRING = "vfio-platform"
VFIO_DEVICE_API_AMBA_STRING = "vfio-amba"

VFIO_REGION_INFO_FLAG_READ = 1 << 0
VFIO_REGION_INFO_FLAG_WRITE = 1 << 1
VFIO_REGION_INFO_FLAG_MMAP = 1 << 2
VFIO_REGION_INFO_FLAG_CAPS = 1 << 3
VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1

VFIO_IRQ_INFO_EVENTFD = 1 << 0
VFIO_IRQ_INFO_MASKABLE = 1 << 1
VFIO_IRQ_INFO_AUTOMASKED = 1 << 2
VFIO_IRQ_INFO_NORESIZE = 1 << 3

VFIO_IRQ_SET_DATA_NONE = 1 << 0
VFIO_IRQ_SET_DATA_BOOL = 1 << 1
VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2
VFIO_IRQ_SET_ACTION_MASK = 1 << 3
VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4
VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5
VFIO_IRQ_SET_DATA_TYPE_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD
VFIO_IRQ_SET_ACTION_TYPE_MASK = VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER

VFIO_IOMMU_INFO_PGSIZES = 1 << 0
VFIO_IOMMU_INFO_CAPS = 1 << 1
VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1
VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2
VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3

VFIO_DMA_MAP_FLAG_READ = 1 << 0
VFIO_DMA_MAP_FLAG_WRITE = 1 << 1
VFIO_DMA_MAP_FLAG_VADDR = 1 << 2

VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0
VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1
VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2

# vfio-pci region and IRQ indexes (anonymous enums in the header).
VFIO_PCI_BAR0_REGION_INDEX = 0
VFIO_PCI_BAR1_REGION_INDEX = 1
VFIO_PCI_BAR2_REGION_INDEX = 2
VFIO_PCI_BAR3_REGION_INDEX = 3
VFIO_PCI_BAR4_REGION_INDEX = 4
VFIO_PCI_BAR5_REGION_INDEX = 5
VFIO_PCI_ROM_REGION_INDEX = 6
VFIO_PCI_CONFIG_REGION_INDEX = 7
VFIO_PCI_VGA_REGION_INDEX = 8
VFIO_PCI_NUM_REGIONS = 9

VFIO_PCI_INTX_IRQ_INDEX = 0
VFIO_PCI_MSI_IRQ_INDEX = 1
VFIO_PCI_MSIX_IRQ_INDEX = 2
VFIO_PCI_ERR_IRQ_INDEX = 3
VFIO_PCI_REQ_IRQ_INDEX = 4
VFIO_PCI_NUM_IRQS = 5

# Region file offsets: vfio-platform and vfio-pci both place region i at i << 40
# (VFIO_PLATFORM_OFFSET_SHIFT / VFIO_PCI_OFFSET_SHIFT in the kernel, not part of the uAPI header).
VFIO_REGION_OFFSET_SHIFT = 40


def region_offset(index):
    """File offset of region `index` on a vfio-platform, vfio-amba or vfio-pci device fd."""
    return index << VFIO_REGION_OFFSET_SHIFT


# --- structs ---------------------------------------------------------------------------------------
u8, u16, u32, u64, s32 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32


_INT_CODES = set("bBhHiIlLqQ")  # ctypes type codes of the integer fields


class _Struct(ctypes.Structure):
    """A header struct; argsz defaults to the struct's own size, as every VFIO caller sets it."""

    def __init__(self, **fields):
        super().__init__(**fields)
        if "argsz" in dict(self._fields_) and "argsz" not in fields:
            self.argsz = ctypes.sizeof(self)

    def __setattr__(self, name, value):
        # ctypes silently keeps the low bits of an int that does not fit (MAP_DMA at iova 2**64 +
        # 0x1000 would map 0x1000): refuse it, as the C compiler would warn.
        kind = dict(self._fields_).get(name)
        if kind is not None and getattr(kind, "_type_", None) in _INT_CODES:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{type(self).__name__}.{name} must be an int, not {type(value).__name__}")
            bits = ctypes.sizeof(kind) * 8
            low, high = (-(1 << bits - 1), (1 << bits - 1) - 1) if kind._type_.islower() else (0, (1 << bits) - 1)
            if not low <= value <= high:
                raise ValueError(f"{type(self).__name__}.{name} = {value:#x} does not fit its "
                                 f"{'s' if low else 'u'}{bits} field ({low:#x}..{high:#x})")
        super().__setattr__(name, value)

    def __repr__(self):
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name, kind in self._fields_
                         if not issubclass(kind, ctypes.Array))
        return f"{type(self).__name__}({body})"


class vfio_info_cap_header(_Struct):
    _fields_ = [("id", u16), ("version", u16), ("next", u32)]


class vfio_group_status(_Struct):
    _fields_ = [("argsz", u32), ("flags", u32)]


class vfio_device_info(_Struct):
    _fields_ = [("argsz", u32), ("flags", u32), ("num_regions", u32), ("num_irqs", u32),
                ("cap_offset", u32)]


class vfio_region_info(_Struct):
    _fields_ = [("argsz", u32), ("flags", u32), ("index", u32), ("cap_offset", u32),
                ("size", u64), ("offset", u64)]


class vfio_region_sparse_mmap_area(_Struct):
    _fields_ = [("offset", u64), ("size", u64)]


class vfio_region_info_cap_sparse_mmap(_Struct):
    _fields_ = [("header", vfio_info_cap_header), ("nr_areas", u32), ("reserved", u32),
                ("areas", vfio_region_sparse_mmap_area * 0)]


class vfio_irq_info(_Struct):
    _fields_ = [("argsz", u32), ("flags", u32), ("index", u32), ("count", u32)]


class vfio_irq_set(_Struct):
    _fields_ = [("argsz", u32), ("flags", u32), ("index", u32), ("start", u32), ("count", u32),
                ("data", u8 * 0)]


class vfio_iommu_type1_info(_Struct):
    _fields_ = [("argsz", u32), ("flags", u32), ("iova_pgsizes", u64), ("cap_offset", u32)]


class vfio_iova_range(_Struct):
    _fields_ = [("start", u64), ("end", u64)]


class vfio_iommu_type1_info_cap_iova_range(_Struct):
    _fields_ = [("header", vfio_info_cap_header), ("nr_iovas", u32), ("reserved", u32),
                ("iova_ranges", vfio_iova_range * 0)]


class vfio_iommu_type1_info_dma_avail(_Struct):
    _fields_ = [("header", vfio_info_cap_header), ("avail", u32)]


class vfio_iommu_type1_dma_map(_Struct):
    _fields_ = [("argsz", u32), ("flags", u32), ("vaddr", u64), ("iova", u64), ("size", u64)]


class vfio_iommu_type1_dma_unmap(_Struct):
    _fields_ = [("argsz", u32), ("flags", u32), ("iova", u64), ("size", u64), ("data", u8 * 0)]


def irq_set_eventfds(index, fds, start=0, flags=VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER):
    """A vfio_irq_set followed by its s32 eventfd array, as one buffer (ctypes has no flexible arrays).

    Returns a ctypes object whose header fields are those of vfio_irq_set; pass it to ioctl as is.
    """
    fds = list(fds)

    class vfio_irq_set_eventfds(_Struct):
        _fields_ = vfio_irq_set._fields_[:-1] + [("fds", s32 * len(fds))]

    arg = vfio_irq_set_eventfds(flags=flags, index=index, start=start, count=len(fds))
    arg.fds[:] = fds
    return arg


def irq_set_bools(index, values, start=0, flags=VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER):
    """A vfio_irq_set followed by its u8 bool array (DATA_BOOL), as one buffer."""
    values = [1 if v else 0 for v in values]

    class vfio_irq_set_bools(_Struct):
        _fields_ = vfio_irq_set._fields_[:-1] + [("bools", u8 * len(values))]

    arg = vfio_irq_set_bools(flags=flags, index=index, start=start, count=len(values))
    arg.bools[:] = values
    return arg


def header_constants():
    """Every constant this module mirrors from the header, by name (for the probe test)."""
    return {name: value for name, value in globals().items()
            if name.startswith("VFIO_") and isinstance(value, int)
            and name != "VFIO_REGION_OFFSET_SHIFT"}


def header_structs():
    """Every struct this module mirrors from the header, by name (for the probe test)."""
    return {name: value for name, value in globals().items()
            if name.startswith("vfio_") and isinstance(value, type) and issubclass(value, _Struct)}
