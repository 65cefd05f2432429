"""The friendly layer (vfiolab.vfio, vfiolab.platform) and the selftests-shaped drivers on the sim board."""
import errno
import time

import pytest

import vfiolab
from vfiolab import platform, uapi, vfio
from vfiolab.drivers import DmaError, DmaRegion, probe_all
from vfiolab.drivers.edu import EduDriver
from vfiolab.drivers.pl330 import PL330Driver

PL330 = "2c0a0000.dma"


@pytest.fixture
def board():
    with vfiolab.open_board("sim") as b:
        yield b


def open_pl330(board):
    assert platform.bind_to_vfio(board, PL330) == "dma-pl330"
    container = vfio.Container(board)
    group = vfio.Group.of_device(board, PL330)
    group.set_container(container)
    container.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
    return container, group, group.device(PL330)


def test_platform_helpers_follow_sysfs(board):
    assert platform.bus_of(board, PL330) == "amba"
    assert platform.find_by_compatible(board, "arm,pl330") == [PL330]
    assert platform.driver_of(board, PL330) == "dma-pl330"
    group = platform.iommu_group(board, PL330)
    assert PL330 in platform.group_devices(board, group)
    assert platform.bind_to_vfio(board, PL330) == "dma-pl330"
    assert platform.driver_of(board, PL330) == "vfio-amba"
    assert platform.restore(board, PL330) == "dma-pl330"
    with pytest.raises(FileNotFoundError, match="no device"):
        platform.bus_of(board, "12345678.nothing")


def test_first_device_says_what_a_board_lacks(board):
    assert platform.first_device(board, "arm,nothing", "arm,pl330") == PL330
    assert platform.first_device(board, (0x1234, 0x11E8)).startswith("0000:")
    with pytest.raises(LookupError, match=r"no arm,pl999 or PCI abcd:0001 device to copy with.*amba: "):
        platform.first_device(board, "arm,pl999", (0xABCD, 1), why="to copy with")


def test_container_group_device_regions_and_iova_ranges(board):
    container, group, device = open_pl330(board)
    with container, group, device:
        assert group.viable and group.status() & uapi.VFIO_GROUP_FLAGS_CONTAINER_SET
        assert container.check_extension(uapi.VFIO_TYPE1v2_IOMMU)
        pgsizes, ranges = container.iommu_info()
        assert pgsizes & 0x1000
        # The MSI window (0x8000000, 1 MiB) is left out of the usable IOVA ranges.
        assert (0, 0x7FFFFFF) in ranges and ranges[1][0] == 0x8100000
        assert device.kind == "amba" and device.num_regions == 1
        region = device.region(0)
        assert region.offset == uapi.region_offset(0) and region.mmappable
        assert device.irq(0).automasked


def test_errors_name_the_ioctl_and_keep_the_errno(board):
    container, group, device = open_pl330(board)
    with container, group, device:
        buf = board.alloc(0x2000)
        container.map_dma(buf, 0x100000, 0x2000)
        with pytest.raises(vfio.VfioError, match=r"VFIO_IOMMU_MAP_DMA\(iova=0x101000") as e:
            container.map_dma(buf, 0x101000, 0x1000)
        assert e.value.errno == errno.EEXIST
        with pytest.raises(vfio.VfioError, match="VFIO_DEVICE_GET_REGION_INFO") as e:
            device.region(5)
        assert e.value.errno == errno.EINVAL
        assert container.unmap_dma(0x100000, 0x2000) == 0x2000
    with pytest.raises(vfio.VfioError, match="closed") as e:
        device.region(0)
    assert e.value.errno == errno.EBADF


def test_pl330_driver_copies_and_reports_an_iommu_fault(board):
    container, group, device = open_pl330(board)
    with container, group, device:
        code, src, dst = board.alloc(0x1000), board.alloc(0x10000), board.alloc(0x10000)
        container.map_dma(code, 0x100000, 0x1000)
        container.map_dma(src, 0x200000, 0x10000, write=False)
        container.map_dma(dst, 0x300000, 0x10000)
        memoryview(src)[:] = bytes(range(251)) * 261 + bytes(0x10000 - 251 * 261)
        driver = probe_all(device)
        assert isinstance(driver, PL330Driver)
        driver.init(DmaRegion(code, 0x100000, 0x1000))
        driver.memcpy_start(0x200000, 0x300000, 0x10000, count=2)
        driver.memcpy_wait()
        assert bytes(dst) == bytes(src)
        # The destination is not mapped: the SMMU records the write, the channel a data write error.
        board.clear_iommu_faults()
        driver.memcpy_start(0x200000, 0x900000, 0x1000)
        started = time.monotonic()
        with pytest.raises(DmaError, match="data write error"):
            driver.memcpy_wait(timeout_ms=60_000)
        # The abort line's eventfd reports the fault at once, not after the event's timeout.
        assert time.monotonic() - started < 30
        assert any(f.iova == 0x900000 for f in board.iommu_faults())
        # DMAKILL recovers the channel; the next copy works and raises its event.
        driver.kill()
        driver.memcpy_start(0x200000, 0x300000, 0x1000)
        driver.memcpy_wait()
        driver.remove()


def test_edu_driver_on_the_virt_twin():
    with vfiolab.open_board("sim", layout="virt") as board:
        edu = next(d for d in platform.devices(board, "pci")
                   if board.sysfs_read(f"/sys/bus/pci/devices/{d}/vendor").strip() == "0x1234")
        platform.bind_to_vfio(board, edu)
        with vfio.Container(board) as container, vfio.Group.of_device(board, edu) as group:
            group.set_container(container)
            container.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
            with group.device(edu) as device:
                src, dst = board.alloc(0x1000), board.alloc(0x1000)
                container.map_dma(src, 0x200000, 0x1000)
                container.map_dma(dst, 0x300000, 0x1000)
                memoryview(src)[:] = bytes(range(256)) * 16
                driver = probe_all(device)
                assert isinstance(driver, EduDriver)
                driver.init()
                driver.memcpy_start(0x200000, 0x300000, 2048)
                driver.memcpy_wait()
                assert bytes(dst)[:2048] == bytes(src)[:2048]
                driver.send_msi()
                assert driver.irq.wait(1000) == 1
                driver.remove()


def test_misuse_of_the_friendly_layer_and_drivers_is_explained(board):
    container, group, device = open_pl330(board)
    with container, group, device:
        with pytest.raises(TypeError, match="device name must be a str"):
            group.device(None)
        driver = PL330Driver(device)
        assert driver.probe()
        with pytest.raises(DmaError, match=r"call init\(region\) first"):
            driver.memcpy_start(0x1000, 0x2000, 64)
        with pytest.raises(DmaError, match=r"call init\(region\) first"):
            driver.memcpy_wait()
        # The board's own explanation survives in the VfioError, beside the ioctl's name.
        with pytest.raises(vfio.VfioError, match=r"VFIO_DEVICE_GET_REGION_INFO\(index=5\) failed: \S+"):
            device.region(5)
