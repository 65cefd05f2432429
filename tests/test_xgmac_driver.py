"""vfiolab.drivers.xgmac.XgmacDriver on the sim board: a memcpy through MAC loopback, through
vfio-platform and the SMMU, ended by the level RX interrupt; a bad IOVA is a DmaError."""
import pytest

import vfiolab
from vfiolab import platform, uapi, vfio
from vfiolab.drivers import DmaError, DmaRegion, probe_all
from vfiolab.drivers.xgmac import XgmacDriver

XGMAC = "fff50000.ethernet"


@pytest.fixture
def xgmac_device():
    with vfiolab.open_board("sim") as board:
        platform.bind_to_vfio(board, XGMAC)
        with vfio.Container(board) as c, vfio.Group.of_device(board, XGMAC) as g:
            g.set_container(c)
            c.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
            own, mem = board.alloc(0x1000), board.alloc(0x10000)
            c.map_dma(own, 0x10000, 0x1000)
            c.map_dma(mem, 0x100000, 0x10000)
            with g.device(XGMAC) as dev:
                yield board, dev, DmaRegion(own, 0x10000, 0x1000), mem


def test_memcpy_through_loopback_writes_exactly_the_destination(xgmac_device):
    board, dev, region, mem = xgmac_device
    driver = probe_all(dev)
    assert isinstance(driver, XgmacDriver)
    driver.init(region)
    data = bytes((i * 7) & 0xFF for i in range(3000))
    memoryview(mem)[:3000] = data
    memoryview(mem)[0x8000:0x9000] = b"\xAA" * 0x1000
    for size in (14, 3000):
        driver.memcpy_start(0x100000, 0x108000, size)
        driver.memcpy_wait()
        assert bytes(mem[0x8000:0x8000 + size]) == data[:size]
        assert bytes(mem[0x8000 + size:0x8000 + size + 8]) == b"\xAA" * 8   # FCS went elsewhere
    assert board.xgmac_wire(XGMAC).frames_sent() == []                     # loopback: no wire
    driver.remove()
    assert board.model(XGMAC).engine.readl(0xF18) == 0


def test_unmapped_destination_is_a_dma_error_and_an_smmu_fault(xgmac_device):
    board, dev, region, mem = xgmac_device
    driver = XgmacDriver(dev)
    assert driver.probe()
    driver.init(region)
    driver.memcpy_start(0x100000, 0x200000, 64)
    with pytest.raises(DmaError, match="RX DMA write of a buffer"):
        driver.memcpy_wait()
    assert board.iommu_faults()[-1].iova == 0x200000


def test_bad_requests(xgmac_device):
    board, dev, region, mem = xgmac_device
    driver = XgmacDriver(dev)
    with pytest.raises(DmaError, match="init"):
        driver.memcpy_start(0x100000, 0x108000, 64)
    driver.init(region)
    for size in (13, 0x2000):
        with pytest.raises(ValueError, match="14..8191"):
            driver.memcpy_start(0x100000, 0x108000, size)
    with pytest.raises(ValueError, match="32-bit"):
        driver.memcpy_start(1 << 32, 0x108000, 64)
    with pytest.raises(ValueError, match="needs 68 bytes"):
        XgmacDriver(dev).init(DmaRegion(region.buffer, region.iova, 16))
