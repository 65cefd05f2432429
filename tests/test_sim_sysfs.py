"""The sim board's sysfs and driver binding: Linux's layout and the driver core's rules."""
import errno
import os

import pytest

import vfiolab
from scenarios import expect_errno

DMA = "/sys/bus/amba/devices/2c0a0000.dma"
XGMAC = "/sys/bus/platform/devices/fff50000.ethernet"
UART = "/sys/bus/amba/devices/1c090000.serial"
GPIO = "/sys/bus/amba/devices/1c1d0000.gpio"
RTC = "/sys/bus/amba/devices/1c170000.rtc"


@pytest.fixture
def board():
    with vfiolab.open_board("sim") as b:
        yield b


def rebind(board, path, driver):
    bus = path.split("/")[3]
    name = os.path.basename(path)
    board.sysfs_write(f"{path}/driver_override", driver)
    if "driver" in board.listdir(path):
        board.sysfs_write(f"{path}/driver/unbind", name)
    board.sysfs_write(f"/sys/bus/{bus}/drivers_probe", name)


def driver_of(board, path):
    return os.path.basename(board.readlink(f"{path}/driver")) if "driver" in board.listdir(path) else None


def test_buses_and_names_follow_linux(board):
    assert board.listdir("/sys/bus/amba/devices") == ["1c090000.serial", "1c170000.rtc", "1c1d0000.gpio",
                                                      "2c0a0000.dma"]
    assert "fff50000.ethernet" in board.listdir("/sys/bus/platform/devices")
    assert board.listdir("/sys/bus/pci/devices") == ["0000:00:00.0", "0000:00:01.0", "0000:00:02.0"]
    assert board.readlink(DMA) == "../../../devices/platform/2c0a0000.dma"
    assert board.readlink(UART) == "../../../devices/platform/amba/1c090000.serial"


def test_host_drivers_claim_their_devices_at_boot(board):
    assert driver_of(board, DMA) == "dma-pl330"
    assert driver_of(board, XGMAC) == "calxedaxgmac"
    assert driver_of(board, UART) == "uart-pl011"
    assert driver_of(board, RTC) == "rtc-pl031"
    assert driver_of(board, GPIO) == "pl061_gpio"
    assert driver_of(board, "/sys/bus/pci/devices/0000:00:01.0") is None     # no edu driver in Linux
    assert board.readlink(f"{DMA}/driver") == "../../../bus/amba/drivers/dma-pl330"
    assert "2c0a0000.dma" in board.listdir("/sys/bus/amba/drivers/dma-pl330")


def test_of_node_shows_the_device_tree_bytes(board):
    assert board.readlink(f"{DMA}/of_node") == "../../../firmware/devicetree/base/dma@2c0a0000"
    assert board.sysfs_read(f"{DMA}/of_node/compatible") == "arm,pl330\0arm,primecell\0"
    fd = board.open(f"{DMA}/of_node/reg", os.O_RDONLY)
    assert board.read(fd, 64) == bytes.fromhex("00000000 2c0a0000 00000000 00001000")
    board.close(fd)
    fd = board.open(f"{XGMAC}/of_node/interrupts", os.O_RDONLY)
    assert board.read(fd, 64) == bytes.fromhex("00000000 0000004d 00000004 00000000 0000004e 00000004")
    board.close(fd)
    assert board.sysfs_read(f"{DMA}/id") == "00241330\n"
    assert board.sysfs_read(f"{DMA}/driver_override") == "(null)\n"


def test_iommu_groups_and_reserved_regions(board):
    assert board.listdir("/sys/kernel/iommu_groups") == ["0", "1", "2", "3", "4"]
    assert board.readlink(f"{DMA}/iommu_group") == "../../../kernel/iommu_groups/0"
    assert board.listdir("/sys/kernel/iommu_groups/2/devices") == ["1c090000.serial", "1c1d0000.gpio"]
    assert board.sysfs_read("/sys/kernel/iommu_groups/0/reserved_regions") == \
        "0x0000000008000000 0x00000000080fffff msi\n"
    assert "iommu_group" not in board.listdir(RTC)


def test_binding_to_vfio_is_an_unbind_and_a_bind(board):
    assert board.listdir("/dev/vfio") == ["vfio"]
    rebind(board, DMA, "vfio-amba")
    assert driver_of(board, DMA) == "vfio-amba"
    assert "2c0a0000.dma" not in board.listdir("/sys/bus/amba/drivers/dma-pl330")
    assert board.listdir("/dev/vfio") == ["0", "vfio"]
    # Back to the host driver: the group's character device goes away.
    board.sysfs_write(f"{DMA}/driver_override", "\n")
    assert board.sysfs_read(f"{DMA}/driver_override") == "(null)\n"
    board.sysfs_write(f"{DMA}/driver/unbind", "2c0a0000.dma")
    board.sysfs_write("/sys/bus/amba/drivers_probe", "2c0a0000.dma")
    assert driver_of(board, DMA) == "dma-pl330"
    assert board.listdir("/dev/vfio") == ["vfio"]


def test_bind_file_of_a_driver(board):
    board.sysfs_write(f"{DMA}/driver/unbind", "2c0a0000.dma\n")
    assert driver_of(board, DMA) is None
    # bind_store: vfio-amba does not match without driver_override (ENODEV) ...
    expect_errno(errno.ENODEV, board.sysfs_write, "/sys/bus/amba/drivers/vfio-amba/bind", "2c0a0000.dma")
    board.sysfs_write(f"{DMA}/driver_override", "vfio-amba")
    board.sysfs_write("/sys/bus/amba/drivers/vfio-amba/bind", "2c0a0000.dma")
    assert driver_of(board, DMA) == "vfio-amba"
    # ... and the host driver no longer matches (the override names another driver).
    board.sysfs_write(f"{DMA}/driver/unbind", "2c0a0000.dma")
    expect_errno(errno.ENODEV, board.sysfs_write, "/sys/bus/amba/drivers/dma-pl330/bind", "2c0a0000.dma")


def test_vfio_platform_needs_a_reset_handler(board):
    pl061 = "/sys/bus/platform/devices/2b400000.iommu"
    assert "unbind" not in board.listdir(f"{pl061}/driver")     # arm-smmu suppresses bind attrs
    # The xgmac has a reset module: it binds.
    rebind(board, XGMAC, "vfio-platform")
    assert driver_of(board, XGMAC) == "vfio-platform"
    # A platform device with no reset handler: the probe fails, the write still succeeds.
    with vfiolab.open_board("sim") as b:
        amba = "/sys/bus/platform/devices/amba"
        b.sysfs_write(f"{amba}/driver_override", "vfio-platform")
        b.sysfs_write("/sys/bus/platform/drivers_probe", "amba")
        assert driver_of(b, amba) is None
        assert "No reset function found for device amba" in b.dmesg()


def test_reset_required_off_lets_vfio_platform_take_any_device():
    with vfiolab.open_board("sim", reset_required=False) as b:
        assert b.sysfs_read("/sys/module/vfio_platform/parameters/reset_required") == "N\n"
        path = "/sys/bus/platform/devices/fff50000.ethernet"
        rebind(b, path, "vfio-platform")
        assert driver_of(b, path) == "vfio-platform"


def test_a_device_without_an_iommu_group_cannot_bind_to_vfio(board):
    rebind(board, RTC, "vfio-amba")
    assert driver_of(board, RTC) is None
    assert "vfio-amba: probe of 1c170000.rtc failed with error -22" in board.dmesg()


def test_viability_needs_every_device_of_the_group(board):
    from vfiolab import uapi as U
    rebind(board, UART, "vfio-amba")
    group = board.open("/dev/vfio/2", os.O_RDWR)
    status = U.vfio_group_status()
    board.ioctl(group, U.VFIO_GROUP_GET_STATUS, status)
    assert status.flags == 0                                  # the GPIO is still on pl061_gpio
    container = board.open("/dev/vfio/vfio", os.O_RDWR)
    # iommu_group_claim_dma_owner: a host driver still does DMA in the group (EPERM, as the qemu
    # board's 6.1 kernel answers with virtio-pci in edu's group).
    import ctypes
    expect_errno(errno.EPERM, board.ioctl, group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
    # Unbinding the GPIO (no driver at all) is enough for viability.
    board.sysfs_write(f"{GPIO}/driver/unbind", "1c1d0000.gpio")
    board.ioctl(group, U.VFIO_GROUP_GET_STATUS, status)
    assert status.flags == U.VFIO_GROUP_FLAGS_VIABLE
    board.ioctl(group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
    # Now user space owns the group's DMA: the host driver cannot take the GPIO back.
    board.sysfs_write("/sys/bus/amba/drivers_probe", "1c1d0000.gpio")
    assert driver_of(board, GPIO) is None
    board.sysfs_write(f"{GPIO}/driver_override", "vfio-amba")
    board.sysfs_write("/sys/bus/amba/drivers_probe", "1c1d0000.gpio")
    assert driver_of(board, GPIO) == "vfio-amba"
    board.ioctl(container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
    board.close(group)
    board.close(container)


def test_garbage_in_sysfs_files(board):
    expect_errno(errno.ENODEV, board.sysfs_write, "/sys/bus/amba/drivers_probe", "\xff\x00garbage")
    expect_errno(errno.ENODEV, board.sysfs_write, f"{DMA}/driver/unbind", "1c090000.serial")
    expect_errno(errno.EINVAL, board.sysfs_write, f"{DMA}/driver_override", "x" * 5000)
    expect_errno(errno.EINVAL, board.sysfs_write, "/sys/bus/pci/drivers/vfio-pci/new_id", "zz")
    expect_errno(errno.EINVAL, board.sysfs_write,
                 "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "maybe")
    expect_errno(errno.EACCES, board.sysfs_write, "/sys/module/vfio_platform/parameters/reset_required", "N")
    expect_errno(errno.EACCES, board.sysfs_read, "/sys/bus/amba/drivers_probe")
    expect_errno(errno.EISDIR, board.sysfs_read, DMA)
    expect_errno(errno.EISDIR, board.sysfs_write, DMA, "x")
    expect_errno(errno.ENOTDIR, board.listdir, f"{DMA}/id")
    expect_errno(errno.EINVAL, board.readlink, f"{DMA}/id")
    expect_errno(errno.ENOENT, board.readlink, "/sys/nowhere")
    expect_errno(errno.EACCES, board.open, f"{DMA}/new_file", os.O_WRONLY | os.O_CREAT)
    assert board.sysfs_write(f"{DMA}/driver_override", "") == 0        # sysfs ignores empty writes
    with pytest.raises(TypeError):
        board.sysfs_write(f"{DMA}/driver_override", 42)
    with pytest.raises(TypeError):
        board.listdir(None)


def test_new_id_binds_edu_to_vfio_pci(board):
    edu = "/sys/bus/pci/devices/0000:00:01.0"
    board.sysfs_write("/sys/bus/pci/drivers/vfio-pci/new_id", "1234 11e8")
    assert driver_of(board, edu) == "vfio-pci"
    expect_errno(errno.EEXIST, board.sysfs_write, "/sys/bus/pci/drivers/vfio-pci/new_id", "1234 11e8")
    assert board.sysfs_read(f"{edu}/vendor") == "0x1234\n"
    assert board.readlink(f"{edu}/iommu_group") == "../../../../../kernel/iommu_groups/3"


def test_allow_unsafe_interrupts_is_a_module_parameter():
    with vfiolab.open_board("sim", gic="v2m") as b:
        path = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"
        assert b.sysfs_read(path) == "N\n"
        b.sysfs_write(path, "Y")
        assert b.allow_unsafe_interrupts and b.sysfs_read(path) == "Y\n"


def test_virt_twin_layout():
    with vfiolab.open_board("sim", layout="virt", gic="v2m") as b:
        assert b.listdir("/sys/bus/pci/devices") == ["0000:00:00.0", "0000:00:01.0", "0000:00:03.0",
                                                     "0000:00:03.1"]
        assert "9000000.pl011" in b.listdir("/sys/bus/amba/devices")
        assert b.readlink("/sys/bus/pci/devices/0000:00:01.0") == \
            "../../../devices/platform/4010000000.pcie/pci0000:00/0000:00:01.0"


# The virt twin's shared group, as the qemu board's 6.1 kernel shows it (REFERENCE.md section 9):
# slot 3 holds a second edu and a virtio-rng (driven by virtio-pci); edu at 00:01.0 stays alone.
EDU2, RNG = "/sys/bus/pci/devices/0000:00:03.0", "/sys/bus/pci/devices/0000:00:03.1"


def _driver(b, base):
    return os.path.basename(b.readlink(f"{base}/driver")) if "driver" in b.listdir(base) else None


def _group_status(b, group):
    """(VFIO_GROUP_GET_STATUS flags, SET_CONTAINER's answer: 0 or the errno name)."""
    import ctypes
    from vfiolab import uapi as U
    fd = b.open(f"/dev/vfio/{group}", os.O_RDWR)
    container = b.open("/dev/vfio/vfio", os.O_RDWR)
    try:
        status = U.vfio_group_status()
        b.ioctl(fd, U.VFIO_GROUP_GET_STATUS, status)
        try:
            b.ioctl(fd, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
            answer = 0
        except OSError as e:
            answer = errno.errorcode[e.errno]
        return status.flags, answer
    finally:
        b.close(fd)
        b.close(container)


def _give(b, base, driver):
    name = os.path.basename(base)
    b.sysfs_write(f"{base}/driver_override", driver)
    if "driver" in b.listdir(base):
        b.sysfs_write(f"{base}/driver/unbind", name)
    b.sysfs_write("/sys/bus/pci/drivers_probe", name)


def test_virt_twin_multifunction_slot_shares_a_group():
    with vfiolab.open_board("sim", layout="virt") as b:
        ids = [tuple(b.sysfs_read(f"{base}/{a}").strip() for a in ("vendor", "device", "class", "revision",
                                                                   "subsystem_vendor", "subsystem_device"))
               for base in (EDU2, RNG)]
        assert ids == [("0x1234", "0x11e8", "0x00ff00", "0x10", "0x1af4", "0x1100"),
                       ("0x1af4", "0x1005", "0x00ff00", "0x00", "0x1af4", "0x0004")]
        assert b.listdir("/sys/kernel/iommu_groups/0/devices") == ["0000:00:03.0", "0000:00:03.1"]
        assert b.listdir("/sys/kernel/iommu_groups/1/devices") == ["0000:00:01.0"]
        assert _driver(b, EDU2) is None and _driver(b, RNG) == "virtio-pci"
        assert b.sysfs_read(f"{RNG}/modalias").strip() == \
            "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00"
        # Header type: both functions carry the multi-function bit, edu at 00:01.0 does not.
        for base, header in ((EDU2, 0x80), (RNG, 0x80), ("/sys/bus/pci/devices/0000:00:01.0", 0)):
            fd = b.open(f"{base}/config", os.O_RDONLY)
            assert b.read(fd, 16)[0x0E] == header
            b.close(fd)


def test_virt_twin_group_viability_follows_virtio_pci():
    """The answers the qemu board's 6.1 kernel gave (tests/test_qemu_vs_sim.py compares them live)."""
    with vfiolab.open_board("sim", layout="virt") as b:
        _give(b, EDU2, "vfio-pci")
        assert _driver(b, EDU2) == "vfio-pci" and b.listdir("/dev/vfio") == ["0", "vfio"]
        assert _group_status(b, 0) == (0, "EPERM")           # virtio-pci still drives 00:03.1
        _give(b, RNG, "vfio-pci")
        assert _group_status(b, 0) == (1, 0)                  # VIABLE
        _give(b, RNG, "virtio-pci")
        assert _driver(b, RNG) == "virtio-pci"
        assert _group_status(b, 0) == (0, "EPERM")
        # Unbound (no driver at all) is viable too.
        b.sysfs_write(f"{RNG}/driver/unbind", "0000:00:03.1")
        assert _group_status(b, 0) == (1, 0)


def test_board_options_are_checked():
    with pytest.raises(ValueError):
        vfiolab.open_board("sim", gic="gicv4")
    with pytest.raises(ValueError):
        vfiolab.open_board("sim", layout="juno")
    with pytest.raises(TypeError):
        vfiolab.open_board("sim", colour="blue")
