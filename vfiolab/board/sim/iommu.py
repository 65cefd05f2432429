"""The SMMU the sim's devices sit behind: Python's handle on the C model (vfiolab/csrc/iommu.*).

Smmu owns the streams (one vfl_bus per SMMU stream ID) and the fault log; Domain is one IOVA
address space (what a type1 container programs). Mappings point at real process memory that VFIO
pinned (board.alloc buffers), so a device model's DMA lands in the learner's buffer.
"""
import errno
from collections import namedtuple

from vfiolab._hw import ffi, lib

from .errors import kernel_error

ACCESS_NAMES = {lib.VFL_BUS_READ: "read", lib.VFL_BUS_WRITE: "write", lib.VFL_BUS_FETCH: "fetch"}
REASON_NAMES = {lib.VFL_FAULT_NO_DOMAIN: "no domain", lib.VFL_FAULT_TRANSLATION: "translation",
                lib.VFL_FAULT_PERMISSION: "permission"}

IommuFault = namedtuple("IommuFault", "stream device iova length access reason")
IommuFault.__doc__ = "One SMMU event: which stream touched which IOVA, how, and why it faulted."

PROT_READ, PROT_WRITE, PROT_DOORBELL = lib.VFL_IOMMU_READ, lib.VFL_IOMMU_WRITE, lib.VFL_IOMMU_DOORBELL


class Domain:
    """One IOVA space: [iova, iova + size) -> host address, with R/W permissions."""

    def __init__(self, smmu):
        self.smmu = smmu
        self._ptr = lib.vfl_domain_new()
        if self._ptr == ffi.NULL:
            raise kernel_error(errno.ENOMEM)

    def map(self, iova, size, host, prot):
        rc = lib.vfl_domain_map(self._ptr, iova, size, host, prot)
        if rc:
            raise kernel_error(-rc)

    def unmap(self, iova, size):
        return lib.vfl_domain_unmap(self._ptr, iova, size)

    def mappings(self):
        """[(iova, size, host, prot)] in IOVA order."""
        out = []
        iova, size, host, prot = (ffi.new("uint64_t *"), ffi.new("uint64_t *"),
                                  ffi.new("uintptr_t *"), ffi.new("int *"))
        for i in range(lib.vfl_domain_mapping_count(self._ptr)):
            lib.vfl_domain_mapping(self._ptr, i, iova, size, host, prot)
            out.append((iova[0], size[0], host[0], prot[0]))
        return out

    def free(self):
        if self._ptr is not None:
            lib.vfl_domain_free(self.smmu._ptr, self._ptr)
            self._ptr = None


class Smmu:
    """The SMMU: a bus per stream ID, each attached to a Domain or to none (aborting)."""

    def __init__(self, fault_capacity=256):
        self._ptr = ffi.gc(lib.vfl_smmu_new(fault_capacity), lib.vfl_smmu_free)
        self.stream_names = {}   # stream ID -> device name, for readable faults
        self._domains = []

    def new_domain(self):
        domain = Domain(self)
        self._domains.append(domain)
        return domain

    def free_domain(self, domain):
        domain.free()
        if domain in self._domains:
            self._domains.remove(domain)

    def bus(self, stream):
        """The device's struct vfl_bus * (a cffi pointer): hand it to a C device model."""
        return lib.vfl_smmu_stream_bus(self._ptr, stream)

    def attach(self, stream, domain):
        lib.vfl_smmu_attach(self._ptr, stream, domain._ptr if domain is not None else ffi.NULL)

    def dma_read(self, stream, addr, length):
        """Read through the stream's translation: bytes, or None after recording a fault."""
        buf = ffi.new("uint8_t[]", max(length, 1))
        if lib.vfl_dma_read(self.bus(stream), addr, buf, length):
            return None
        return bytes(ffi.buffer(buf, length))

    def dma_write(self, stream, addr, data):
        """Write through the stream's translation: True, or False after recording a fault."""
        return lib.vfl_dma_write(self.bus(stream), addr, data, len(data)) == 0

    def written(self, stream):
        """[(iova, length)] the stream has written so far (its DMA, not the CPU's), merged, in order."""
        n = lib.vfl_smmu_written(self._ptr, stream, ffi.NULL, 0)
        ranges = ffi.new("struct vfl_iommu_range[]", max(n, 1))
        n = min(n, lib.vfl_smmu_written(self._ptr, stream, ranges, n))
        return [(r.start, r.end - r.start) for r in ranges[0:n]]

    def clear_written(self, stream):
        lib.vfl_smmu_clear_written(self._ptr, stream)

    def record_fault(self, stream, iova, length, access, reason=lib.VFL_FAULT_TRANSLATION):
        lib.vfl_smmu_record_fault(self._ptr, stream, iova, length, access, reason)

    def take_doorbell_writes(self):
        """[(stream, iova, bytes written)] that reached doorbell mappings since the last call."""
        raw = ffi.new("struct vfl_iommu_doorbell_write[]", 64)
        n = lib.vfl_smmu_take_doorbell_writes(self._ptr, raw, 64)
        out = []
        for w in raw[0:n]:
            host = ffi.cast("uint8_t *", w.host)
            out.append((w.stream, w.iova, bytes(ffi.buffer(host, min(w.len, 8)))))
            # A doorbell register reads as 0 (GITS_TRANSLATER, MSI_SETSPI_NS): the write must not
            # stay in the scratch page for a later DMA read to find.
            ffi.memmove(host, bytes(w.len), w.len)
        return out

    def faults(self):
        count = min(lib.vfl_smmu_fault_count(self._ptr), 4096)
        raw = ffi.new("struct vfl_iommu_fault[]", max(count, 1))
        n = lib.vfl_smmu_faults(self._ptr, raw, count)
        return [IommuFault(f.stream, self.stream_names.get(f.stream), f.iova, f.len,
                           ACCESS_NAMES.get(f.access, str(f.access)),
                           REASON_NAMES.get(f.reason, hex(f.reason))) for f in raw[0:n]]

    def clear_faults(self):
        lib.vfl_smmu_clear_faults(self._ptr)

    def close(self):
        for domain in list(self._domains):
            self.free_domain(domain)
