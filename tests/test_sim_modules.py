"""Kernel modules on the sim board (vfiolab/board/sim/modules.py): modprobe, rmmod, modules(),
/sys/module/<name>/parameters, driver (un)registration, refusals, bad input."""
import errno

import pytest

import vfiolab
from vfiolab import uapi as U

import reset_scenarios as R
from scenarios import Session, expect_errno, pl330


@pytest.fixture
def board():
    with vfiolab.open_board("sim") as b:
        yield b


def test_boot_modules_and_their_dependencies(board):
    mods = board.modules()
    assert set(mods) == {"vfio", "vfio_iommu_type1", "vfio_platform_base", "vfio_platform",
                         "vfio_amba", "vfio_pci_core", "vfio_pci"}
    assert sorted(mods["vfio_platform_base"]["used_by"]) == ["vfio_amba", "vfio_platform"]
    assert mods["vfio_platform"]["params"] == {"reset_required": "Y"}
    assert "ids" not in mods["vfio_pci"]["params"]                 # mode 0: not in sysfs
    assert board.listdir("/sys/module/vfio_platform_base/holders") == ["vfio_amba", "vfio_platform"]
    assert board.sysfs_read("/sys/module/vfio_platform/initstate") == "live\n"


def test_rmmod_unregisters_the_driver_and_modprobe_brings_it_back(board):
    target = pl330(board)
    R.try_bind(board, R.Target(target.bus, target.name, target.driver))
    board.rmmod("vfio-amba")                                     # '-' or '_'
    assert "vfio-amba" not in board.listdir("/sys/bus/amba/drivers")
    assert "driver" not in board.listdir(target.sysfs)           # unbound with it
    assert "vfio_amba" not in board.listdir("/sys/module")
    board.modprobe("vfio_amba")
    assert R.driver_of(board, target) == "vfio-amba"             # driver_override still says so
    assert board.readlink("/sys/bus/amba/drivers/vfio-amba/module").endswith("module/vfio_amba")


def test_an_open_device_pins_its_driver_module(board):
    target = pl330(board)
    with Session(board, target):
        assert board.modules()["vfio_amba"]["refcount"] == 1
        e = expect_errno(errno.EBUSY, board.rmmod, "vfio_amba")
        assert "in use" in str(e)
    board.rmmod("vfio_amba")


def test_modprobe_resolves_an_alias_and_loads_dependencies(board):
    board.rmmod("vfio_platform")
    board.rmmod("vfio_amba")
    board.rmmod("vfio_platform_base")
    assert board.modprobe("vfio-reset:calxeda,hb-xgmac") == "vfio_platform_calxedaxgmac"
    assert {"vfio_platform_base", "vfio_platform_calxedaxgmac"} <= set(board.modules())
    assert board.listdir("/sys/module/vfio_platform_base/holders") == ["vfio_platform_calxedaxgmac"]


def test_parameters_at_load_time(board):
    board.rmmod("vfio_platform")
    board.modprobe("vfio_platform", reset_required="n", colour="blue")
    assert board.sysfs_read("/sys/module/vfio_platform/parameters/reset_required") == "N\n"
    assert "vfio_platform: unknown parameter 'colour' ignored" in board.dmesg()
    board.modprobe("vfio_platform", reset_required=1)            # already loaded: unchanged
    assert board.modules()["vfio_platform"]["params"] == {"reset_required": "N"}
    board.rmmod("vfio_platform")
    expect_errno(errno.EINVAL, board.modprobe, "vfio_platform", reset_required="perhaps")
    assert "vfio_platform: `perhaps' invalid for parameter `reset_required'" in board.dmesg()
    assert "vfio_platform" not in board.modules()
    board.rmmod("vfio_iommu_type1")
    board.modprobe("vfio_iommu_type1", dma_entry_limit="0x100", allow_unsafe_interrupts=True)
    assert board.sysfs_read("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit") == "256\n"
    assert board.allow_unsafe_interrupts is True
    expect_errno(errno.EINVAL, board.sysfs_write,
                 "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit", "-1")


def test_allow_unsafe_interrupts_is_the_module_parameter():
    with vfiolab.open_board("sim", gic="v2m") as b:
        path = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"
        assert b.sysfs_read(path) == "N\n"
        with Session(b, pl330(b), iommu=None) as s:
            import ctypes
            b.ioctl(s.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(s.container))
            expect_errno(errno.EPERM, b.ioctl, s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
            b.sysfs_write(path, "Y")                                 # 0644: takes effect
            b.ioctl(s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
            expect_errno(errno.EBUSY, b.rmmod, "vfio_iommu_type1")   # a container uses it
    with vfiolab.open_board("sim", gic="v2m", allow_unsafe_interrupts=True) as b:
        assert b.modules()["vfio_iommu_type1"]["params"]["allow_unsafe_interrupts"] == "Y"


def test_refusals_and_bad_input(board):
    e = expect_errno(errno.ENOENT, board.modprobe, "e1000e")
    assert "not found in directory /lib/modules/6.1.0-vfiolab-sim" in str(e)
    expect_errno(errno.ENOENT, board.rmmod, "vfio_platform_calxedaxgmac")   # not loaded
    e = expect_errno(errno.EBUSY, board.rmmod, "vfio")
    assert "in use by:" in str(e)
    with pytest.raises(TypeError):
        board.modprobe(None)
    with pytest.raises(TypeError):
        board.rmmod("")
    with pytest.raises(ValueError, match="no such module"):
        vfiolab.open_board("sim", missing_modules=["vfio_nope"])


def test_a_missing_module_cannot_be_loaded():
    with vfiolab.open_board("sim", missing_modules=["vfio-platform-calxedaxgmac"]) as b:
        expect_errno(errno.ENOENT, b.modprobe, "vfio_platform_calxedaxgmac")
        expect_errno(errno.ENOENT, b.modprobe, "vfio-reset:calxeda,hb-xgmac")
    with vfiolab.open_board("sim", missing_modules=["vfio_amba"]) as b:
        assert "vfio-amba" not in b.listdir("/sys/bus/amba/drivers")
        assert "vfio_amba" not in b.modules()
