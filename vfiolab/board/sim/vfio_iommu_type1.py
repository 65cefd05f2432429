"""VFIO's type1 IOMMU backend (drivers/vfio/vfio_iommu_type1.c) over the sim's SMMU.

One SMMU domain per container: every group attached shares it (the kernel would also share one
domain when the groups sit behind the same IOMMU). DMA mappings pin board.alloc memory: MAP_DMA's
vaddr must lie inside one live allocation, or it fails with EFAULT as pin_user_pages does for an
unmapped address. Errnos are the kernel's, checked in the same order as vfio_dma_do_map,
vfio_dma_do_unmap and vfio_iommu_type1_get_info.
"""
import bisect
import ctypes
import errno
import struct

from . import uapi_layouts as L
from .errors import kernel_error
from .iommu import PROT_DOORBELL, PROT_READ, PROT_WRITE
from .topology import MSI_IOVA_BASE, MSI_IOVA_LENGTH
from .userbuf import user_pointer
from vfiolab import uapi

IOVA_BITS = 48                                   # the SMMU's input address size
PGSIZE_BITMAP = 0x40201000                       # 4K | 2M | 1G: io-pgtable-arm, 4K granule
DMA_ENTRY_LIMIT = 65535                          # module parameter dma_entry_limit (U16_MAX)
DIRTY_BITMAP_SIZE_MAX = 0x10000000               # DIRTY_BITMAP_BYTES(INT_MAX pages)
U64_MAX = (1 << 64) - 1


class DmaMapping:
    def __init__(self, iova, size, vaddr, prot, pin):
        self.iova, self.size, self.vaddr, self.prot, self.pin = iova, size, vaddr, prot, pin
        self.vaddr_invalid = False     # UNMAP_DMA with FLAG_VADDR: waiting for a new vaddr

    @property
    def end(self):
        return self.iova + self.size


class Type1Iommu:
    """struct vfio_iommu: one per container after VFIO_SET_IOMMU."""

    def __init__(self, board, v2):
        self.board = board
        self.v2 = v2               # TYPE1v2 (and TYPE1_NESTING, which implies v2)
        self.groups = []
        self.dmas = []                           # sorted by iova
        self.dma_avail = DMA_ENTRY_LIMIT
        self.domain = board.smmu.new_domain()
        self.msi_pages = {}                      # IOVA page -> doorbell physical page
        self._doorbell_scratch = []              # host pages behind doorbell mappings
        self.pgsize_bitmap = PGSIZE_BITMAP

    # --- groups -------------------------------------------------------------------------------
    def iova_ranges(self):
        """The aperture minus every attached group's reserved regions (vfio_iommu_resv_exclude)."""
        ranges = [(0, (1 << IOVA_BITS) - 1)] if self.groups else []
        for group in self.groups:
            for start, end, _kind in group.iommu_group.reserved_regions:
                cut = []
                for lo, hi in ranges:
                    if end < lo or start > hi:
                        cut.append((lo, hi))
                        continue
                    if lo < start:
                        cut.append((lo, start - 1))
                    if hi > end:
                        cut.append((end + 1, hi))
                ranges = cut
        return ranges

    def attach_group(self, vfio_group):
        """vfio_iommu_type1_attach_group."""
        if vfio_group in self.groups:
            raise kernel_error(errno.EINVAL, "vfio_iommu_type1_attach_group: group already attached")
        iommu_group = vfio_group.iommu_group
        # New reserved regions may not cover existing mappings (vfio_iommu_resv_conflict).
        for start, end, _ in iommu_group.reserved_regions:
            if any(d.iova <= end and start < d.end for d in self.dmas):
                raise kernel_error(errno.EINVAL, "vfio_iommu_resv_conflict: a mapping covers a reserved region")
        interrupts = self.board.interrupts
        if not self.board.allow_unsafe_interrupts and not interrupts.msi_isolated:
            self.board.log("vfio_iommu_type1_attach_group: No interrupt remapping support.  Use the "
                           "module param \"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this platform")
            raise kernel_error(errno.EPERM, "vfio_iommu_type1_attach_group: MSIs are not isolated "
                               f"(GIC {interrupts.gic}) and allow_unsafe_interrupts is off")
        self.groups.append(vfio_group)
        for device in iommu_group.devices:
            self.board.smmu.attach(device.stream, self.domain)
        # iommu_get_msi_cookie: the MSI window is where doorbells will be mapped.
        self.msi_base = MSI_IOVA_BASE

    def detach_group(self, vfio_group):
        if vfio_group in self.groups:
            self.groups.remove(vfio_group)
            for device in vfio_group.iommu_group.devices:
                self.board.smmu.attach(device.stream, None)

    def release(self):
        """vfio_iommu_type1_release: unmap and unpin everything, free the domain."""
        for group in list(self.groups):
            self.detach_group(group)
        for dma in self.dmas:
            dma.pin.release()
        self.dmas = []
        self.board.smmu.free_domain(self.domain)

    def map_doorbell(self, doorbell_physical):
        """iommu_dma_prepare_msi: map the doorbell page at the next page of the MSI window."""
        page = doorbell_physical & ~0xFFF
        for iova, phys in self.msi_pages.items():
            if phys == page:
                return iova
        iova = MSI_IOVA_BASE + 0x1000 * len(self.msi_pages)
        if iova >= MSI_IOVA_BASE + MSI_IOVA_LENGTH:
            raise kernel_error(errno.ENOSPC, "the MSI window is full")
        # In the SMMU the doorbell page is an ordinary mapping: any DMA write to it rings the
        # doorbell (the board reads what landed in this scratch page). iommu_dma_get_msi_page asks
        # for IOMMU_WRITE, but the LPAE format cannot say write-only, so reads go through too (and
        # read 0, as GITS_TRANSLATER and MSI_SETSPI_NS do: seen on the qemu board).
        scratch = ctypes.create_string_buffer(0x1000)
        self._doorbell_scratch.append(scratch)
        self.domain.map(iova, 0x1000, ctypes.addressof(scratch), PROT_READ | PROT_WRITE | PROT_DOORBELL)
        self.msi_pages[iova] = page
        return iova

    # --- ioctls -------------------------------------------------------------------------------
    def check_extension(self, arg):
        return check_extension(self, arg, self.board)

    def ioctl(self, request, arg):
        if request == uapi.VFIO_CHECK_EXTENSION:
            return self.check_extension(arg if isinstance(arg, int) else 0)
        if request == uapi.VFIO_IOMMU_GET_INFO:
            return self.get_info(user_pointer(arg, "VFIO_IOMMU_GET_INFO"))
        if request == uapi.VFIO_IOMMU_MAP_DMA:
            return self.map_dma(user_pointer(arg, "VFIO_IOMMU_MAP_DMA"))
        if request == uapi.VFIO_IOMMU_UNMAP_DMA:
            return self.unmap_dma(user_pointer(arg, "VFIO_IOMMU_UNMAP_DMA"))
        raise kernel_error(errno.ENOTTY, f"vfio_iommu_type1_ioctl: unknown request {request:#x}")

    def get_info(self, buf):
        """vfio_iommu_type1_get_info: PGSIZES, then the capability chain if argsz has room."""
        minsz = L.TYPE1_INFO_MINSZ
        argsz = struct.unpack_from("<I", buf.read(0, minsz))[0]
        if argsz < minsz:
            raise kernel_error(errno.EINVAL, "vfio_iommu_type1_get_info: argsz is smaller than the struct's minimum")
        copy = min(argsz, L.TYPE1_INFO_SIZE)
        flags = uapi.VFIO_IOMMU_INFO_PGSIZES
        caps = self._info_caps()
        cap_offset = 0
        if caps:
            flags |= uapi.VFIO_IOMMU_INFO_CAPS
            if argsz < L.TYPE1_INFO_SIZE + len(caps):
                argsz = L.TYPE1_INFO_SIZE + len(caps)
            else:
                buf.write(L.TYPE1_INFO_SIZE, caps)
                cap_offset = L.TYPE1_INFO_SIZE
        info = struct.pack("<IIQI4x", argsz, flags, self.pgsize_bitmap, cap_offset)
        buf.write(0, info[:copy])
        return 0

    def _info_caps(self):
        """Migration, DMA-available and IOVA-range capabilities, chained as vfio_info_cap_add does
        (each 8-byte aligned; `next` is an offset from the start of the info struct)."""
        pgsize = self.pgsize_bitmap & -self.pgsize_bitmap
        iovas = self.iova_ranges()
        bodies = [
            (uapi.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, struct.pack("<I4xQQ", 0, pgsize, DIRTY_BITMAP_SIZE_MAX)),
            (uapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, struct.pack("<I", self.dma_avail)),
            (uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
             struct.pack("<II", len(iovas), 0) + b"".join(struct.pack("<QQ", s, e) for s, e in iovas)),
        ]
        out = bytearray()
        align = 8 if self.board.since("aligned_capability_chain") else 1
        for i, (cap_id, body) in enumerate(bodies):
            size = (8 + len(body) + align - 1) // align * align
            start = len(out)
            nxt = L.TYPE1_INFO_SIZE + start + size if i < len(bodies) - 1 else 0
            out += struct.pack("<HHI", cap_id, 1, nxt) + body
            out += bytes(start + size - len(out))
        return bytes(out)

    def _find_dma(self, start, size):
        """vfio_find_dma: any mapping overlapping [start, start + size)."""
        for dma in self.dmas:
            if dma.iova < start + size and start < dma.end:
                return dma
        return None

    def _iova_valid(self, start, end):
        """vfio_iommu_iova_dma_valid."""
        ranges = self.iova_ranges()
        return not ranges or any(lo <= start and end <= hi for lo, hi in ranges)

    def map_dma(self, buf):
        """vfio_iommu_type1_map_dma + vfio_dma_do_map."""
        minsz = L.DMA_MAP_MINSZ
        argsz, flags, vaddr, iova, size = struct.unpack("<IIQQQ", buf.read(0, minsz))
        mask = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE | uapi.VFIO_DMA_MAP_FLAG_VADDR
        if argsz < minsz or flags & ~mask:
            raise kernel_error(errno.EINVAL, "vfio_iommu_type1_map_dma: argsz too small or unknown flags")
        set_vaddr = bool(flags & uapi.VFIO_DMA_MAP_FLAG_VADDR)
        prot = (PROT_WRITE if flags & uapi.VFIO_DMA_MAP_FLAG_WRITE else 0) | \
               (PROT_READ if flags & uapi.VFIO_DMA_MAP_FLAG_READ else 0)
        if (prot and set_vaddr) or (not prot and not set_vaddr):
            raise kernel_error(errno.EINVAL, "vfio_dma_do_map: set READ and/or WRITE (or only VADDR)")
        pgsize = self.pgsize_bitmap & -self.pgsize_bitmap
        if not size or (size | iova | vaddr) & (pgsize - 1):
            raise kernel_error(errno.EINVAL, f"vfio_dma_do_map: size, iova and vaddr must be non-zero "
                               f"multiples of the {pgsize:#x}-byte IOMMU page")
        if iova + size - 1 > U64_MAX or vaddr + size - 1 > U64_MAX:
            raise kernel_error(errno.EINVAL, "vfio_dma_do_map: the range wraps around")
        dma = self._find_dma(iova, size)
        if set_vaddr:
            # VFIO_UPDATE_VADDR: a new vaddr for an exact mapping whose vaddr was invalidated.
            if dma is None:
                raise kernel_error(errno.ENOENT, "vfio_dma_do_map: VADDR update of no mapping")
            if not dma.vaddr_invalid or dma.iova != iova or dma.size != size:
                raise kernel_error(errno.EINVAL, "vfio_dma_do_map: VADDR update needs an exact mapping "
                                   "invalidated with VFIO_DMA_UNMAP_FLAG_VADDR first")
            pin = self.board.memory.pin(vaddr, size)
            dma.pin.release()
            dma.vaddr, dma.pin, dma.vaddr_invalid = vaddr, pin, False
            self.domain.unmap(dma.iova, dma.size)
            self.domain.map(dma.iova, dma.size, pin.host_address, dma.prot)
            return 0
        if dma is not None:
            raise kernel_error(errno.EEXIST, f"vfio_dma_do_map: IOVA {iova:#x}+{size:#x} overlaps the "
                               f"mapping at {dma.iova:#x}+{dma.size:#x}")
        if not self.dma_avail:
            raise kernel_error(errno.ENOSPC, "vfio_dma_do_map: dma_entry_limit reached")
        if not self._iova_valid(iova, iova + size - 1):
            raise kernel_error(errno.EINVAL, f"vfio_iommu_iova_dma_valid: {iova:#x}+{size:#x} is outside "
                               "the valid IOVA ranges (the MSI window 0x8000000-0x80fffff is reserved)")
        pin = self.board.memory.pin(vaddr, size)          # EFAULT: pin_user_pages
        try:
            self.domain.map(iova, size, pin.host_address, prot)
        except OSError:
            pin.release()
            raise
        bisect.insort(self.dmas, DmaMapping(iova, size, vaddr, prot, pin), key=lambda d: d.iova)
        self.dma_avail -= 1
        return 0

    def unmap_dma(self, buf):
        """vfio_iommu_type1_unmap_dma + vfio_dma_do_unmap (v1: unmap whole mappings starting in
        the range; v2: refuse to split a mapping)."""
        minsz = L.DMA_UNMAP_MINSZ
        argsz, flags, iova, size = struct.unpack("<IIQQ", buf.read(0, minsz))
        mask = uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | uapi.VFIO_DMA_UNMAP_FLAG_VADDR | \
            uapi.VFIO_DMA_UNMAP_FLAG_ALL
        if argsz < minsz or flags & ~mask:
            raise kernel_error(errno.EINVAL, "vfio_iommu_type1_unmap_dma: argsz too small or unknown flags")
        if flags & uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP and \
                flags & (uapi.VFIO_DMA_UNMAP_FLAG_ALL | uapi.VFIO_DMA_UNMAP_FLAG_VADDR):
            raise kernel_error(errno.EINVAL, "vfio_iommu_type1_unmap_dma: dirty bitmap with ALL or VADDR")
        if flags & uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP:
            # Dirty tracking is never started on the sim (vfio_iommu_type1_dirty_pages).
            raise kernel_error(errno.EINVAL, "vfio_iommu_type1_unmap_dma: dirty page tracking is not enabled")
        pgsize = self.pgsize_bitmap & -self.pgsize_bitmap
        unmap_all = bool(flags & uapi.VFIO_DMA_UNMAP_FLAG_ALL)
        unmapped = 0

        def fail(detail):
            # vfio_dma_do_unmap reports the size (0 here) only on success: arg is left as it was.
            raise kernel_error(errno.EINVAL, "vfio_dma_do_unmap: " + detail)

        if iova & (pgsize - 1):
            fail(f"iova {iova:#x} is not {pgsize:#x}-aligned")
        if unmap_all:
            if iova or size:
                fail("UNMAP_FLAG_ALL needs iova and size 0")
            size = U64_MAX
        elif not size or size & (pgsize - 1) or iova + size - 1 > U64_MAX:
            fail("size must be a non-zero multiple of the page size, without wrapping")
        last = min(iova + size - 1, U64_MAX)
        if self.v2 and not unmap_all:
            first = self._find_dma(iova, 1)
            if first is not None and first.iova != iova:
                fail("type1v2 cannot unmap part of a mapping (the range starts inside one)")
            end_dma = self._find_dma(last, 1)
            if end_dma is not None and end_dma.end != last + 1:
                fail("type1v2 cannot unmap part of a mapping (the range ends inside one)")
        if flags & uapi.VFIO_DMA_UNMAP_FLAG_VADDR:
            # Invalidate the vaddrs (the IOMMU mappings stay); all or nothing.
            hit = [d for d in self.dmas if d.iova <= last and iova < d.end]
            if any(d.vaddr_invalid for d in hit):
                fail("a vaddr in the range is already invalidated")
            for d in hit:
                d.vaddr_invalid = True
                unmapped += d.size
            buf.put_u64(16, unmapped)
            return 0
        keep, removing = [], True
        for dma in self.dmas:
            overlaps = dma.iova <= last and iova < dma.end
            if overlaps and removing and not self.v2 and iova > dma.iova:
                removing = False     # v1: a range starting inside a mapping unmaps nothing more
            if not (overlaps and removing):
                keep.append(dma)
                continue
            self.domain.unmap(dma.iova, dma.size)
            dma.pin.release()
            unmapped += dma.size
            self.dma_avail += 1
        self.dmas = keep
        buf.put_u64(16, unmapped)
        return 0


def check_extension(iommu, arg, board):
    """vfio_iommu_type1_check_extension (iommu is None before SET_IOMMU)."""
    if arg in (uapi.VFIO_TYPE1_IOMMU, uapi.VFIO_TYPE1v2_IOMMU, uapi.VFIO_UNMAP_ALL):
        return 1
    if arg == uapi.VFIO_TYPE1_NESTING_IOMMU:
        return 0 if board.since("type1_nesting_extension") else 1
    if arg == uapi.VFIO_UPDATE_VADDR:
        return 1 if iommu is not None else 0
    # VFIO_DMA_CC_IOMMU: arm-smmu domains do not enforce cache coherency (seen: 0 on the qemu
    # board's SMMUv3); every other extension is another backend's.
    return 0
