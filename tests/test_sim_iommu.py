"""The C SMMU model (vfiolab/csrc/iommu.c) on its own: mappings, permissions, faults, doorbells."""
import errno

import pytest

from vfiolab._hw import ffi, lib
from vfiolab.board.sim.iommu import PROT_DOORBELL, PROT_READ, PROT_WRITE, Smmu


@pytest.fixture
def smmu():
    s = Smmu(fault_capacity=4)
    yield s
    s.close()


def host(buf):
    return int(ffi.cast("uintptr_t", buf))


def test_translate_within_and_across_mappings(smmu):
    domain = smmu.new_domain()
    low, high = ffi.new("uint8_t[]", 0x1000), ffi.new("uint8_t[]", 0x1000)
    domain.map(0x10000, 0x1000, host(low), PROT_READ | PROT_WRITE)
    domain.map(0x11000, 0x1000, host(high), PROT_READ | PROT_WRITE)
    smmu.attach(7, domain)
    # A write spanning two mappings lands in two unrelated host buffers.
    assert smmu.dma_write(7, 0x10FFE, b"abcd")
    assert bytes(low[0xFFE:0x1000]) == b"ab" and bytes(high[0:2]) == b"cd"
    assert smmu.dma_read(7, 0x10FFE, 4) == b"abcd"
    assert smmu.faults() == []


def test_overlap_and_bad_maps(smmu):
    domain = smmu.new_domain()
    buf = ffi.new("uint8_t[]", 0x2000)
    domain.map(0x4000, 0x2000, host(buf), PROT_READ)
    for iova, size in ((0x4000, 0x1000), (0x3000, 0x2000), (0x5FFF, 1)):
        with pytest.raises(OSError) as e:
            domain.map(iova, size, host(buf), PROT_READ)
        assert e.value.errno == errno.EEXIST
    for iova, size, prot in ((0x8000, 0, PROT_READ), (2**64 - 0x1000, 0x2000, PROT_READ), (0x8000, 0x1000, 0)):
        with pytest.raises(OSError) as e:
            domain.map(iova, size, host(buf), prot)
        assert e.value.errno == errno.EINVAL
    domain.map(0x6000, 0x1000, host(buf), PROT_READ)          # adjacent is fine
    assert [m[0] for m in domain.mappings()] == [0x4000, 0x6000]


def test_unmap_removes_only_whole_mappings_inside(smmu):
    domain = smmu.new_domain()
    buf = ffi.new("uint8_t[]", 0x1000)
    for iova in (0x1000, 0x2000, 0x3000):
        domain.map(iova, 0x1000, host(buf), PROT_READ)
    assert domain.unmap(0x1800, 0x2000) == 0x1000               # only 0x2000 lies inside
    assert [m[0] for m in domain.mappings()] == [0x1000, 0x3000]
    assert domain.unmap(0, 2**64 - 1) == 0x2000


def test_faults_are_recorded_with_stream_iova_access_reason(smmu):
    domain = smmu.new_domain()
    buf = ffi.new("uint8_t[]", 0x1000)
    domain.map(0x1000, 0x1000, host(buf), PROT_READ)
    smmu.attach(3, domain)
    smmu.stream_names[3] = "dev"
    assert smmu.dma_read(3, 0x5000, 8) is None
    assert not smmu.dma_write(3, 0x1000, b"x")
    assert smmu.dma_read(9, 0x1000, 1) is None                  # stream 9 has no domain
    assert [(f.stream, f.device, f.iova, f.access, f.reason) for f in smmu.faults()] == [
        (3, "dev", 0x5000, "read", "translation"), (3, "dev", 0x1000, "write", "permission"),
        (9, None, 0x1000, "read", "no domain")]
    assert buf[0] == 0                                          # nothing written anywhere


def test_fault_log_keeps_the_newest(smmu):
    for i in range(10):
        smmu.dma_read(1, 0x1000 * i, 4)
    faults = smmu.faults()
    assert len(faults) == 4 and faults[-1].iova == 0x9000
    assert lib.vfl_smmu_fault_count(smmu._ptr) == 10


def test_freeing_a_domain_detaches_its_streams(smmu):
    domain = smmu.new_domain()
    buf = ffi.new("uint8_t[]", 0x1000)
    domain.map(0, 0x1000, host(buf), PROT_READ)
    smmu.attach(1, domain)
    smmu.free_domain(domain)
    assert smmu.dma_read(1, 0, 4) is None
    assert smmu.faults()[-1].reason == "no domain"


def test_doorbell_writes_are_logged(smmu):
    domain = smmu.new_domain()
    page = ffi.new("uint8_t[]", 0x1000)
    domain.map(0x8000000, 0x1000, host(page), PROT_WRITE | PROT_DOORBELL)
    smmu.attach(5, domain)
    assert smmu.dma_write(5, 0x8000040, (42).to_bytes(4, "little"))
    assert smmu.take_doorbell_writes() == [(5, 0x8000040, (42).to_bytes(4, "little"))]
    assert smmu.take_doorbell_writes() == []
    assert smmu.dma_read(5, 0x8000040, 4) is None               # write-only doorbell


def test_flat_bus_copy_helpers_fail_cleanly_on_a_null_bus():
    bus = ffi.new("struct vfl_bus *")
    out = ffi.new("uint8_t[4]")
    assert lib.vfl_dma_read(bus, 0, out, 4) == -errno.EFAULT
