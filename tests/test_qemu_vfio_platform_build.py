"""vfiolab.board.qemu.vfio_platform_build: vfio-platform, vfio-amba, the reset modules and a
no-IOMMU vfio.ko built for the qemu board's exact guest kernel from Debian's packages.

Slow on first run (about 150 MB of packages and a minute of building; cached afterwards). The
modules are checked as the guest kernel would check them: vermagic, dependencies, the reset
module's alias, the parameters."""
import shutil

import pytest

from vfiolab.board.qemu import kmod
from vfiolab.board.qemu import vfio_platform_build as vpb

for tool in ("qemu-system-aarch64", "apt-get", "aarch64-linux-gnu-gcc", "make", "dpkg-deb"):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is missing: ./bootstrap test installs what this build needs",
                    allow_module_level=True)


@pytest.fixture(scope="module")
def built():
    return vpb.ensure_modules()


def test_modules_for_the_guest_kernel(built):
    mods = built.modules
    assert set(mods) == {"vfio", "vfio_platform", "vfio_platform_base", "vfio_amba",
                         "vfio_platform_calxedaxgmac", "vfio_platform_amdxgbe"}
    for name, path in mods.items():
        info = kmod.modinfo(path)
        assert info["vermagic"].startswith(built.kver + " "), name
    info = {name: kmod.modinfo(path) for name, path in mods.items()}

    def depends(name):      # modpost writes the file names (vfio-platform-base), '-' and all
        return {d.replace("-", "_") for d in info[name]["depends"].split(",")}
    assert depends("vfio_platform") == {"vfio", "vfio_platform_base"}
    assert depends("vfio_platform_calxedaxgmac") == {"vfio_platform_base"}
    assert info["vfio_platform_calxedaxgmac"]["alias"] == "vfio-reset:calxeda,hb-xgmac"
    assert info["vfio_platform"]["parm"].startswith("reset_required:")
    assert info["vfio"]["parm"].startswith("enable_unsafe_noiommu_mode:")   # the no-IOMMU vfio.ko


def test_a_second_call_uses_the_cache(built):
    again = vpb.ensure_modules()
    assert again.ready() and again.modules == built.modules
