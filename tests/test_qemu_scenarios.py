"""The portable scenarios (tests/scenarios.py) on the real kernel in the qemu board, with edu.

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


@pytest.fixture(scope="module")
def qemu():
    with vfiolab.open_board("qemu", gic="its", quiet=True) as board:
        yield board


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda f: f.__name__)
def test_scenario_on_edu(qemu, scenario):
    scenario(qemu, scenarios.edu(qemu))
