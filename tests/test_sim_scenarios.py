"""The portable scenarios (tests/scenarios.py) on the sim board: the PL330 on the FVP-like SoC and
edu on the virt twin, with both GIC flavours where MSIs are not involved."""
import pytest

import vfiolab

import scenarios


@pytest.fixture
def fvp():
    with vfiolab.open_board("sim", gic="its") as board:
        yield board


@pytest.fixture
def virt():
    with vfiolab.open_board("sim", gic="its", layout="virt") as board:
        yield board


def test_pl330_user_space_flow(fvp):
    scenarios.pl330_user_space_flow(fvp)


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda f: f.__name__)
def test_scenario_on_the_pl330(fvp, scenario):
    scenario(fvp, scenarios.pl330(fvp))


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda f: f.__name__)
def test_scenario_on_edu(virt, scenario):
    scenario(virt, scenarios.edu(virt))


@pytest.mark.parametrize("scenario", scenarios.EDU_ONLY, ids=lambda f: f.__name__)
def test_edu_scenario(virt, scenario):
    scenario(virt, scenarios.edu(virt))
