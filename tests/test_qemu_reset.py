"""vfio-platform's reset on the qemu board's real kernel (Debian 6.1): the portable scenarios of
tests/reset_scenarios.py, with vfio-platform, the Calxeda reset module and a no-IOMMU vfio.ko built
for the guest kernel (vfio_platform_build.py) and a calxeda,hb-xgmac node in the board's device
tree (xgmac_dtb.py). The sim gives the same answers (tests/test_sim_reset.py, kernel 6.1).

Slow: one board boot (about 20 s here) and, on first use, the module build (a minute or two).
"""
import shutil

import pytest

import vfiolab

import reset_scenarios as R

for tool in ("qemu-system-aarch64", "apt-get", "aarch64-linux-gnu-gcc", "make", "dpkg-deb", "dtc"):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is missing: ./bootstrap test installs what the qemu board's "
                    "vfio-platform needs", allow_module_level=True)


@pytest.fixture(scope="module")
def board():
    with vfiolab.open_board("qemu", vfio_platform=True, quiet=True) as b:
        b.modprobe("vfio_platform")
        yield b


@pytest.mark.parametrize("scenario", R.WITH_RESET_MODULE + R.WITHOUT_RESET_MODULE,
                         ids=lambda f: f.__name__)
def test_reset_scenarios_on_the_real_kernel(board, scenario):
    scenario(board, R.xgmac(board))


def test_no_iommu_mode_is_said_plainly(board):
    assert board.sysfs_read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode") == "Y\n"
    assert "tainting kernel" in board.dmesg()


def test_vfio_amba_binds_nothing_on_6_1(board):
    """6.1's vfio_amba_init_dev -> vfio_platform_init_common returns the reset lookup's -ENOENT
    (no AMBA device has a reset module), so vfio-amba's probe fails for every device: seen here
    on Debian's 6.1.192 with the modules built from its own source. The sim lets vfio-amba bind on
    6.1 on purpose (labs 01 and 02 are built on it): vfiolab/board/sim/vfio_platform.py says so."""
    from scenarios import Target
    board.modprobe("vfio_amba")
    gpio = Target("amba", "9030000.pl061", "vfio-amba")
    assert R.try_bind(board, gpio) is None
    assert "vfio-amba: probe of 9030000.pl061 failed with error -2" in board.dmesg()
    board.sysfs_write(f"{gpio.sysfs}/driver_override", "\n")
    board.sysfs_write("/sys/bus/amba/drivers_probe", gpio.name)     # back to pl061_gpio
