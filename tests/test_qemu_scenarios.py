"""The portable scenarios (tests/scenarios.py) on the real kernel in the qemu board, with edu,
with a GICv3 ITS and with a GICv2m.

The same functions run on the sim board (tests/test_sim_scenarios.py); here the Linux kernel itself
answers, so a scenario that passes on the sim and fails here shows a sim bug (or a scenario bug).
"""
import shutil

import pytest

import vfiolab

import scenarios

pytestmark = pytest.mark.skipif(
    not shutil.which("qemu-system-aarch64"),
    reason="qemu-system-aarch64 is not installed (sudo apt install qemu-system-arm); "
           "the qemu board's tests need it")


@pytest.fixture(scope="module", params=["its", "v2m"])
def qemu(request):
    # With a GICv2m, attaching a group needs allow_unsafe_interrupts (tested in test_qemu_board).
    with vfiolab.open_board("qemu", gic=request.param, allow_unsafe_interrupts=request.param == "v2m",
                            quiet=True) as board:
        yield board


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda f: f.__name__)
def test_scenario_on_edu(qemu, scenario):
    scenario(qemu, scenarios.edu(qemu))


@pytest.mark.parametrize("scenario", scenarios.EDU_ONLY, ids=lambda f: f.__name__)
def test_edu_scenario(qemu, scenario):
    scenario(qemu, scenarios.edu(qemu))


@pytest.mark.parametrize("scenario", scenarios.MSI_FORGING, ids=lambda f: f.__name__)
def test_msi_scenario(qemu, scenario):
    """Doorbell, message, forging and allow_unsafe_interrupts on the real kernel; the same
    functions run on the sim in tests/test_sim_msi.py (the ITS case expects QEMU 7.2's drop here:
    scenarios.QEMU_ITS_FORGED_WRITE_IS_DEVICE_ID_0)."""
    scenario(qemu, scenarios.edu(qemu))
